//===- AttentionGroup.h - The ops attention_decode computes -----*- C++ -*-===//
//
// The group of bufferized ops that one lowered tfm.attention is (its seven
// steps, marked `kiln.region` {op = "tfm.attention", id, step}; see
// kRegionAttr in dialects/Kiln/KilnDialect.h) and, for one sequence and one new
// token, what feeds it that the kernel can compute too (RoPE of q and k, the
// KV-cache appends): found from the IR, never re-derived from loops.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_KERNELS_ATTENTIONGROUP_H
#define KILN_PASSES_KERNELS_ATTENTIONGROUP_H

#include "dialects/Kiln/KilnDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "passes/kernels/KernelLibrary.h"
#include "llvm/ADT/SmallVector.h"

#include <array>
#include <optional>

namespace kiln::kernels::attention {

using namespace mlir;

/// What feeds a decode attention and its kernel can compute instead (one
/// sequence, one new token): RoPE of q and of the new k (tfm.rope's
/// generics, tagged kRegionAttr {op = "tfm.rope"}) and the appends of the
/// new k and v to the caches (tfm.kv_append: an scf.if around a linalg.copy
/// into the cache row at the position).
struct Prologue {
  linalg::GenericOp ropeQ, ropeK;
  Operation *appendK = nullptr, *appendV = nullptr;
  Value qSrc, kSrc, vSrc; // [1, 1, heads * D], [1, 1, kv_heads * D] x 2
  Value freqs;            // [D / 2] f32
  double scaling = 1.0;
};

/// The steps of one lowered tfm.attention and its parameters.
struct Group {
  std::array<linalg::GenericOp, 7> steps;
  SmallVector<Operation *> fills;
  int64_t heads = 0, kvHeads = 0, headDim = 0;
  double scale = 1.0;
  int64_t batch = 0, seq = 0, maxSeq = 0;
  std::optional<Prologue> prologue;
};

/// The group that `op` (step 0) leads, complete and bufferized, with its
/// prologue when there is one; nothing otherwise.
std::optional<Group> groupOf(Operation *op);

/// The buffers the steps of `g` write for each other (scores, row maxima and
/// sums, probabilities, unnormalised output): allocations that no op outside
/// the group uses. A kernel computing the whole group keeps them in
/// registers (KernelRecipe::scratch).
SmallVector<Value> scratchOf(const Group &g);

/// What the attention kernels share: the group's steps after the first, and
/// their fills, are members; the buffers between the steps are scratch.
class AttentionRecipe : public KernelRecipe {
public:
  SmallVector<Value> scratch(Operation *op) const override {
    std::optional<Group> g = groupOf(op);
    return g ? scratchOf(*g) : SmallVector<Value>();
  }
  SmallVector<Operation *> members(Operation *op) const override {
    std::optional<Group> g = groupOf(op);
    if (!g)
      return {};
    SmallVector<Operation *> ops(g->fills.begin(), g->fills.end());
    for (linalg::GenericOp s : llvm::drop_begin(g->steps))
      ops.push_back(s);
    return ops;
  }
};

} // namespace kiln::kernels::attention

#endif // KILN_PASSES_KERNELS_ATTENTIONGROUP_H
