//===- Collectives.h - The host collectives a CPU entry point calls -------===//
//
// A tensor-parallel artifact (kiln-compile --tensor-parallel N) runs one
// program per rank. On the CPU target each rank's entry point is called as
//
//   symbol(weights, kv, arena, io, KilnHostCollectives *collectives)
//
// and calls through `collectives` for its tfm.all_reduce and tfm.all_gather
// (kiln-lower-collectives-to-calls emits the calls; the runtime implements
// them over the threads that run the ranks). The layout is a C ABI shared by
// the compiler and the runtime: the function pointers at offsets 0 and 8.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_COLLECTIVES_H
#define KILN_RUNTIME_COLLECTIVES_H

#include <cstdint>

extern "C" {

struct KilnHostCollectives {
  /// Sums `count` elements of `dtype` (kiln::runtime::DType: F32, F16 or
  /// BF16) at `data` over the ranks, in place: accumulated in f32 in rank
  /// order, rounded once, the same bytes on every rank.
  void (*allReduce)(KilnHostCollectives *self, void *data, int64_t count,
                    int32_t dtype);
  /// Writes every rank's `count` elements at `in` to `out`, rank 0's first
  /// (`out` holds ranks x count elements).
  void (*allGather)(KilnHostCollectives *self, const void *in, void *out,
                    int64_t count, int32_t dtype);
};

} // extern "C"

namespace kiln::runtime {
/// Byte offsets of the function pointers, as kiln-lower-collectives-to-calls
/// loads them.
inline constexpr int64_t kAllReduceSlot = 0;
inline constexpr int64_t kAllGatherSlot = 1;
} // namespace kiln::runtime

#endif // KILN_RUNTIME_COLLECTIVES_H
