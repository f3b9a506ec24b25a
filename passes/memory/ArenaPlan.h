//===- ArenaPlan.h - Interval packing of buffers into one arena -*- C++ -*-===//
//
// The placement and the check behind --kiln-plan-memory, free of IR so that
// unit tests can feed them hand-made lifetimes (and hand-made bad plans).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_MEMORY_ARENAPLAN_H
#define KILN_PASSES_MEMORY_ARENAPLAN_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/LogicalResult.h"

#include <cstdint>
#include <string>

namespace kiln {

/// One buffer of the arena: bytes [offset, offset + size), live over the
/// inclusive range [start, end] of top-level op indices.
struct PlannedBuffer {
  int64_t offset = 0;
  int64_t size = 0;
  int64_t start = 0;
  int64_t end = 0;
};

/// Sets `offset` of every buffer: largest first (ties: earlier start, then
/// input order), each at the lowest multiple of `alignment` that overlaps no
/// already placed buffer live at the same time. `alignment` must be > 0.
/// Returns the arena size, the largest end offset (0 without buffers).
int64_t planArena(llvm::MutableArrayRef<PlannedBuffer> buffers,
                  int64_t alignment);

/// Checks a plan independently of planArena: every offset is a non-negative
/// multiple of `alignment`, every buffer lies within [0, arenaSize), and two
/// buffers whose live ranges intersect have disjoint bytes. On failure, sets
/// `*why` (when non-null) to the first violation found.
llvm::LogicalResult checkArenaPlan(llvm::ArrayRef<PlannedBuffer> buffers,
                                   int64_t alignment, int64_t arenaSize,
                                   std::string *why = nullptr);

} // namespace kiln

#endif // KILN_PASSES_MEMORY_ARENAPLAN_H
