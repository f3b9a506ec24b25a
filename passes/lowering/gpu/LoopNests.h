//===- LoopNests.h - The loop nests kiln-map-loops-to-gpu maps -*- C++ -*-===//
//
// Matchers over the planned, bufferized loop nests of an entry point: the
// parallel nests, the reductions linalg's loops become, the fills of their
// accumulators, and the host ops a kernel rematerialises. MapLoopsToGpu.cpp
// decides from these how each nest runs.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_LOWERING_GPU_LOOPNESTS_H
#define KILN_PASSES_LOWERING_GPU_LOOPNESTS_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"

#include <optional>

namespace kiln::gpu_mapping {

using namespace mlir;

/// A loop nest whose iterations are independent: its static trip counts
/// (lower bound 0, step 1), induction variables and innermost body.
struct ParallelNest {
  SmallVector<int64_t> tripCounts;
  SmallVector<Value> ivs;
  Block *body = nullptr;
};

/// A loop that folds one value per iteration into a single memory location:
///   scf.for %k = 0 to R { ...; %a = memref.load %acc[I];
///                          %r = combine(%a, %c); memref.store %r, %acc[I] }
/// with I independent of %k and nothing else written: what linalg reductions
/// become (RMSNorm's sum of squares, softmax's max and sum, attention's q.k
/// and p.v, matrix products).
struct ReductionLoop {
  scf::ForOp loop;
  int64_t tripCount = 0;
  memref::LoadOp load;
  Operation *combine = nullptr;
  memref::StoreOp store;
  Value contribution;
  arith::AtomicRMWKind kind;
  gpu::AllReduceOperation gpuKind;
  /// Every load that depends on %k reads along its contiguous last dimension
  /// at %k, so lanes striding over %k read neighbouring elements.
  bool contiguous = false;
};

/// A top-level reduction: a bare reduction loop (one point), or a parallel
/// nest whose body is effect-free ops and one reduction loop.
struct ReductionNest {
  std::optional<ParallelNest> nest;
  ReductionLoop reduction;
  int64_t points = 1;
};

/// A top-level op that sets every element of a buffer to one constant (what
/// linalg.fill of an accumulator becomes): a lone memref.store into a
/// one-element buffer, or a parallel nest whose body is only that store at
/// its induction variables.
struct Fill {
  Value memref;
  TypedAttr value;
};

/// The constant an index value is, if it is one.
std::optional<int64_t> constantIndex(Value v);
/// `op` as a nest of independent loops (an scf.parallel, such as what the KV
/// appends' scf.forall becomes) from 0 with step 1, or nothing.
std::optional<ParallelNest> parallelNest(Operation *op);
/// Binds the nest's induction variables to the digits of `linear`, row-major
/// (the last dimension fastest); `index` makes the index constants.
void delinearize(OpBuilder &b, Location loc, const ParallelNest &nest,
                 Value linear, function_ref<Value(int64_t)> index,
                 IRMapping &map);
std::optional<ReductionLoop> matchReductionLoop(Operation *op);
std::optional<ReductionNest> matchReductionNest(Operation *op);
std::optional<Fill> matchFill(Operation *op);
/// Ops that only compute addresses or constants: the host keeps none of
/// them once every kernel has rematerialised what it uses.
bool isDefinition(Operation *op);
/// A top-level read that can move into the kernel using it.
bool isMovableRead(Operation *op);

} // namespace kiln::gpu_mapping

#endif // KILN_PASSES_LOWERING_GPU_LOOPNESTS_H
