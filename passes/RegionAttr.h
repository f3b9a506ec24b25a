//===- RegionAttr.h - Provenance of lowered ops -----------------*- C++ -*-===//
//
// `kiln.region`: a dictionary that kiln-lower-tfm-to-linalg puts on each
// linalg op it makes of a tfm op whose lowering takes several ops (today
// tfm.attention), so that kernel formation can take the group as one
// kernel without re-deriving it from loops:
//
//   {op = "tfm.attention", id = <n-th in the function>, step = <0..6>,
//    num_heads, num_kv_heads, head_dim, scale}
//
// Steps of tfm.attention: 0 q.k dot products, 1 scale and causal mask,
// 2 row max, 3 exp, 4 row sum, 5 p.v, 6 normalisation into the output; the
// fill of a step's accumulator carries that step's dictionary.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_REGIONATTR_H
#define KILN_PASSES_REGIONATTR_H

#include "llvm/ADT/StringRef.h"

namespace kiln {
inline constexpr llvm::StringLiteral kRegionAttr = "kiln.region";
} // namespace kiln

#endif // KILN_PASSES_REGIONATTR_H
