//===- KernelBuilder.h - Helpers for building GPU kernel bodies -*- C++ -*-===//
//
// What every hand-built kernel and every reduction mapping of
// --kiln-map-loops-to-gpu needs while it writes a gpu.func body: index
// constants hoisted to the kernel's entry (where they dominate uses inside
// any scf.if or scf.for), thread and block ids, workgroup buffers.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_KERNELS_KERNELBUILDER_H
#define KILN_PASSES_KERNELS_KERNELBUILDER_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"

namespace kiln::kernels {

/// `v` without an arith.extf in front of it (the recipes match bodies that
/// compute in f32 from narrower operands).
mlir::Value withoutExt(mlir::Value v);

/// Rows 2 h and 2 h + 1 of an x4 `nvgpu.ldmatrix` result (vector<4x2>): the
/// m16n8k16 B operand of one n8 tile (vector<2x2>), built row by row (1-D
/// extracts and inserts lower directly).
mlir::Value mmaOperandB(mlir::OpBuilder &b, mlir::Location loc,
                        mlir::Value pair, int64_t h);

/// `v` combined over each aligned group of `lanes` lanes (a power of two up
/// to 32) by XOR butterfly shuffles: every lane of the group gets the result.
mlir::Value
butterfly(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v, int32_t lanes,
          llvm::function_ref<mlir::Value(mlir::Value, mlir::Value)> combine);

class KernelBuilder {
public:
  /// `b` inserts into `kernel`'s body; the helpers build at its insertion
  /// point, except index() which builds at the kernel's entry.
  KernelBuilder(mlir::OpBuilder &b, mlir::Location loc,
                mlir::gpu::GPUFuncOp kernel);

  /// An index constant, created once per kernel at its entry.
  mlir::Value index(int64_t value);
  /// Index arithmetic at the insertion point: a + c, a * n, a / n, a % n
  /// (unsigned) and a < n, n a constant.
  mlir::Value add(mlir::Value a, mlir::Value c);
  mlir::Value mul(mlir::Value a, int64_t n);
  mlir::Value div(mlir::Value a, int64_t n);
  mlir::Value rem(mlir::Value a, int64_t n);
  mlir::Value ult(mlir::Value a, int64_t n);
  mlir::Value threadIdX();
  mlir::Value blockIdX();
  /// A new workgroup (shared) memory buffer of the kernel.
  mlir::Value workgroupBuffer(llvm::ArrayRef<int64_t> shape,
                              mlir::Type element);
  /// The block's argmax of one (f32 value, i32 index) pair per thread: the
  /// larger value, or on a tie the lower index. Warps combine by shuffles,
  /// workgroup memory joins `warps` warps after a barrier, and thread 0
  /// folds them: the builder is left inside thread 0's scf.if (keep an
  /// InsertionGuard), where the returned pair is valid.
  std::pair<mlir::Value, mlir::Value>
  blockArgmax(mlir::Value value, mlir::Value index, int64_t warps);
  /// The most blocks the kernel may group into a thread-block cluster: the
  /// gpu.module's kiln.cluster_blocks (sm_90+), else 1.
  int64_t maxClusterBlocks() const;
  /// Every thread of every block of the cluster waits for all to arrive
  /// (barrier.cluster.arrive/wait.aligned: release and acquire, so workgroup
  /// memory written before is visible to the cluster's blocks after).
  void clusterBarrier();
  /// Element `index` of the 1-D workgroup buffer `buffer` of the cluster's
  /// block `rank` (an index; distributed shared memory: mapa, then
  /// ld.shared::cluster), built with `nb`.
  mlir::Value clusterLoad(mlir::OpBuilder &nb, mlir::Value buffer,
                          mlir::Value index, mlir::Value rank);
  /// `v` extended to `type` (f32 or a vector of f32) unless it has it.
  mlir::Value extendTo(mlir::OpBuilder &b, mlir::Value v, mlir::Type type);

  mlir::OpBuilder &b;
  mlir::Location loc;
  mlir::gpu::GPUFuncOp kernel;

private:
  mlir::OpBuilder top; // at the kernel's entry
  llvm::SmallDenseMap<int64_t, mlir::Value> indices;
};

} // namespace kiln::kernels

#endif // KILN_PASSES_KERNELS_KERNELBUILDER_H
