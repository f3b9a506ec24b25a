//===- ArenaPlan.cpp - Interval packing of buffers into one arena ---------===//
//
// Greedy first-fit by decreasing size: the usual static planner (IREE's
// LayoutSlices, TFLite's arena planner). Not optimal, but deterministic and
// good on transformer graphs, where a few large activations dominate.
//
//===----------------------------------------------------------------------===//

#include "passes/memory/ArenaPlan.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/MathExtras.h"

#include <numeric>

using namespace llvm;

namespace kiln {

static bool liveTogether(const PlannedBuffer &a, const PlannedBuffer &b) {
  return a.start <= b.end && b.start <= a.end;
}

static bool bytesOverlap(const PlannedBuffer &a, const PlannedBuffer &b) {
  return a.offset < b.offset + b.size && b.offset < a.offset + a.size;
}

int64_t planArena(MutableArrayRef<PlannedBuffer> buffers, int64_t alignment) {
  assert(alignment > 0 && "alignment must be positive");
  SmallVector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  llvm::stable_sort(order, [&](size_t a, size_t b) {
    if (buffers[a].size != buffers[b].size)
      return buffers[a].size > buffers[b].size;
    return buffers[a].start < buffers[b].start;
  });

  SmallVector<size_t> placed;
  int64_t arenaSize = 0;
  for (size_t idx : order) {
    PlannedBuffer &buf = buffers[idx];
    SmallVector<const PlannedBuffer *> conflicts;
    for (size_t other : placed)
      if (liveTogether(buf, buffers[other]))
        conflicts.push_back(&buffers[other]);
    llvm::sort(conflicts, [](const PlannedBuffer *a, const PlannedBuffer *b) {
      return a->offset < b->offset;
    });
    // Conflicts are in offset order, so the first gap that fits is lowest.
    int64_t candidate = 0;
    for (const PlannedBuffer *other : conflicts) {
      if (candidate + buf.size <= other->offset)
        break;
      candidate = std::max<int64_t>(
          candidate, alignTo(other->offset + other->size, alignment));
    }
    buf.offset = candidate;
    arenaSize = std::max(arenaSize, candidate + buf.size);
    placed.push_back(idx);
  }
  return arenaSize;
}

LogicalResult checkArenaPlan(ArrayRef<PlannedBuffer> buffers, int64_t alignment,
                             int64_t arenaSize, std::string *why) {
  auto fail = [&](const Twine &msg) {
    if (why)
      *why = msg.str();
    return failure();
  };
  if (alignment <= 0)
    return fail("alignment " + Twine(alignment) + " is not positive");
  for (auto [i, buf] : llvm::enumerate(buffers)) {
    if (buf.offset < 0 || buf.size < 0 || buf.start > buf.end)
      return fail("buffer #" + Twine(i) + " is malformed (offset " +
                  Twine(buf.offset) + ", size " + Twine(buf.size) + ", live [" +
                  Twine(buf.start) + ", " + Twine(buf.end) + "])");
    if (buf.offset % alignment != 0)
      return fail("buffer #" + Twine(i) + " at offset " + Twine(buf.offset) +
                  " is not aligned to " + Twine(alignment));
    if (buf.offset + buf.size > arenaSize)
      return fail("buffer #" + Twine(i) + " ends at " +
                  Twine(buf.offset + buf.size) + ", past the arena size " +
                  Twine(arenaSize));
  }
  for (size_t i = 0, e = buffers.size(); i < e; ++i) {
    for (size_t j = i + 1; j < e; ++j) {
      const PlannedBuffer &a = buffers[i], &b = buffers[j];
      if (!liveTogether(a, b) || !bytesOverlap(a, b))
        continue;
      return fail("buffers #" + Twine(i) + " and #" + Twine(j) +
                  " are live together over [" +
                  Twine(std::max(a.start, b.start)) + ", " +
                  Twine(std::min(a.end, b.end)) + "] but share bytes [" +
                  Twine(std::max(a.offset, b.offset)) + ", " +
                  Twine(std::min(a.offset + a.size, b.offset + b.size)) + ")");
    }
  }
  return success();
}

} // namespace kiln
