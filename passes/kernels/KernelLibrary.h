//===- KernelLibrary.h - Hand-built GPU kernels -----------------*- C++ -*-===//
//
// The kernels the GPU backend can put in place of the generic loop-nest
// mapping, one recipe per kind of op. --kiln-select-kernels asks every recipe
// whether it implements an op (after bufferization, before the op becomes
// loops) and tags the op with the first that does (`kiln.kernel = "<name>"`);
// --kiln-lower-linalg-to-loops leaves tagged ops alone and
// --kiln-map-loops-to-gpu has the recipe build the kernel body.
//
// A recipe builds ordinary gpu/vector/scf/memref IR, so its kernel goes
// through the same NVVM lowering as generated ones. Adding a kernel: derive
// from KernelRecipe, add it to recipes() in KernelLibrary.cpp, give it a lit
// test in test/Passes/kernels/.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_KERNELS_KERNELLIBRARY_H
#define KILN_PASSES_KERNELS_KERNELLIBRARY_H

#include "dialects/Kiln/KilnDialect.h"
#include "mlir/IR/Value.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <array>
#include <cstdint>
#include <string>

namespace mlir {
class IRMapping;
class OpBuilder;
class Operation;
namespace gpu {
class GPUFuncOp;
} // namespace gpu
} // namespace mlir

namespace kiln::kernels {

/// The kKernelAttr value of an op that another op's kernel computes (an
/// elementwise epilogue, a member of a group such as an attention's steps):
/// it gets no launch of its own. See KernelRecipe::fusedOps.
inline constexpr llvm::StringLiteral kFused = "fused";

/// Grid and block of a kernel's launch (x, y, z).
struct LaunchShape {
  std::array<int64_t, 3> grid{1, 1, 1};
  std::array<int64_t, 3> block{1, 1, 1};
  /// Blocks per thread-block cluster (sm_90+; at most what the gpu.module's
  /// kiln.cluster_blocks allows, dividing the grid); {1, 1, 1}: none.
  std::array<int64_t, 3> cluster{1, 1, 1};
  /// How the kernel divides the work when the recipe chooses among tilings
  /// ([a-z0-9] only: it ends the kernel's name), e.g. "128x128x32s2"; empty
  /// when there is no choice.
  std::string tiling;
  /// Bytes of dynamic shared memory the launch gives each block (0: none);
  /// above 48 KiB the runtime opts the kernel in.
  int64_t sharedBytes = 0;
};

/// One hand-built kernel.
class KernelRecipe {
public:
  virtual ~KernelRecipe();
  /// The name the op is tagged with.
  virtual llvm::StringRef name() const = 0;
  /// Whether the kernel implements `op` (a bufferized op with static shapes).
  virtual bool matches(mlir::Operation *op) const = 0;
  /// Whether the kernel needs sm_90a's warpgroup MMA (wgmma): selected only
  /// where --kiln-select-kernels has warpgroup-mma set.
  virtual bool needsWarpgroupMma() const { return false; }
  /// The buffer (an operand of `op`) whose every element the kernel writes
  /// once from an initial value it can take as a constant, so that a fill of
  /// it just before can be fused into the kernel; null when there is none.
  virtual mlir::Value fusableInit(mlir::Operation *op) const;
  /// Whether the kernel can apply `consumer` (an elementwise linalg.generic
  /// with identity maps over the shape of the buffer `op` writes, reading
  /// that buffer once) to each element as it stores it, so that `consumer`
  /// needs no launch and the buffer is never read back. The caller checks
  /// that nothing else uses the buffer and that nothing runs in between.
  virtual bool acceptsEpilogue(mlir::Operation *op,
                               mlir::Operation *consumer) const;
  /// Ops the kernel for `op` always computes besides `op` (the other steps
  /// of a group `op` leads); kiln-select-kernels tags them kFused.
  virtual llvm::SmallVector<mlir::Operation *>
  members(mlir::Operation *op) const;
  /// Buffers (memref.alloc results) that only `op`'s group (`op`, its
  /// members and their fills) uses and that its kernel never touches: the
  /// intermediate results it keeps in registers (an attention's scores).
  /// kiln-plan-memory gives them no bytes of the arena.
  virtual llvm::SmallVector<mlir::Value> scratch(mlir::Operation *op) const;
  /// Everything the kernel for `op` computes besides `op`: members(op) and
  /// the epilogue kiln-select-kernels gave it (the next op with effects,
  /// when tagged kFused).
  llvm::SmallVector<mlir::Operation *> fusedOps(mlir::Operation *op) const;
  /// Builds the kernel body at the builder's insertion point (the kernel's
  /// entry block, before its terminator is added); `map` takes `op`'s
  /// operands to their values inside the kernel. `init`, when set, is the
  /// initial value of every element of fusableInit(op) (its fill was fused):
  /// the kernel must not read that buffer. `fused` is fusedOps(op): `map`
  /// holds their operands too (an epilogue's results are stored instead of
  /// `op`'s). Returns the launch shape.
  virtual mlir::FailureOr<LaunchShape>
  build(mlir::OpBuilder &builder, mlir::Operation *op, mlir::IRMapping &map,
        mlir::gpu::GPUFuncOp kernel, mlir::Value init,
        llvm::ArrayRef<mlir::Operation *> fused) const = 0;
};

/// The first op after `op` in its block that has memory effects (skipping
/// allocations, views and other effect-free ops without regions): where a
/// kernel's epilogue must stand.
mlir::Operation *nextWithEffects(mlir::Operation *op);

/// The recipes, one file each.
const KernelRecipe &gemvKN();           // GemvKN.cpp
const KernelRecipe &gemvNK();           // GemvNK.cpp
const KernelRecipe &gemvQuant();        // GemvQuant.cpp
const KernelRecipe &matmulMma();        // MatmulMma.cpp
const KernelRecipe &matmulWgmma();      // MatmulWgmma.cpp
const KernelRecipe &argmaxRows();       // ArgmaxRows.cpp
const KernelRecipe &sampleRows();       // SampleRows.cpp
const KernelRecipe &attentionDecode();  // AttentionDecode.cpp
const KernelRecipe &attentionPrefill(); // AttentionPrefill.cpp

/// Every recipe, in order of preference.
llvm::ArrayRef<const KernelRecipe *> recipes();
/// The recipe called `name`, or null.
const KernelRecipe *lookup(llvm::StringRef name);

} // namespace kiln::kernels

#endif // KILN_PASSES_KERNELS_KERNELLIBRARY_H
