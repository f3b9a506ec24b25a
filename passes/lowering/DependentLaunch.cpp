//===- DependentLaunch.cpp - Kernels that may launch early ----------------===//
//
// Programmatic dependent launch (sm_90+): each kernel of the module waits for
// the grids it depends on (griddepcontrol.wait) before it touches memory a
// kernel may write (only index arithmetic and loads of the weights, an
// argument marked kiln.weights, may come first), then lets its own
// dependents launch (griddepcontrol.launch_dependents). The
// runtime launches an entry's kernels with programmatic stream serialization,
// so the next kernel's launch and block scheduling overlap this one's run.
//
// Both are inline PTX with side effects and a memory clobber, as CUTLASS
// writes them, not the nvvm.griddepcontrol op: LLVM's intrinsic is
// IntrNoMem, so LLVM may move loads across it. It did: a GEMV's first weight
// loads, used only after a loop, sank below the wait (and nothing kept a
// load of the previous kernel's output from rising above it).
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "llvm/ADT/StringSet.h"

#define DEBUG_TYPE "kiln-dependent-launch"

namespace kiln {
#define GEN_PASS_DEF_DEPENDENTLAUNCH
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

constexpr StringLiteral kWait = "griddepcontrol.wait;";
constexpr StringLiteral kLaunchDependents = "griddepcontrol.launch_dependents;";

/// Whether `v` is (a view of) an argument of `kernel` marked kiln.weights:
/// memory no kernel writes.
bool isWeights(Value v, gpu::GPUFuncOp kernel) {
  while (auto view = v.getDefiningOp<ViewLikeOpInterface>())
    v = view.getViewSource();
  auto arg = dyn_cast<BlockArgument>(v);
  return arg && arg.getOwner() == &kernel.getBody().front() &&
         kernel.getArgAttr(arg.getArgNumber(), kWeightsAttr);
}

/// The first op of the kernel's entry block that may touch memory another
/// kernel writes: the ops before it compute indices or read weights (a GEMV
/// issues its first weight loads there), so they may run before the wait.
Operation *firstDependentOp(gpu::GPUFuncOp kernel) {
  for (Operation &op : kernel.getBody().front()) {
    if (op.getNumRegions() == 0 && isMemoryEffectFree(&op))
      continue;
    Value read;
    if (auto load = dyn_cast<memref::LoadOp>(op))
      read = load.getMemRef();
    else if (auto load = dyn_cast<vector::LoadOp>(op))
      read = load.getBase();
    if (!read || !isWeights(read, kernel))
      return &op;
  }
  return kernel.getBody().front().getTerminator();
}

struct DependentLaunch : kiln::impl::DependentLaunchBase<DependentLaunch> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Kernels that wait, by (module, kernel) name.
    llvm::StringSet<> waiting;
    for (auto kernels : module.getOps<gpu::GPUModuleOp>())
      for (auto kernel : kernels.getOps<gpu::GPUFuncOp>()) {
        if (!kernel.isKernel() || kernel.getBody().empty())
          continue;
        std::string key = (kernels.getName() + "::" + kernel.getName()).str();
        Block &entry = kernel.getBody().front();
        // Once: a kernel that already waits is left as it is.
        if (llvm::any_of(entry, [](Operation &op) {
              if (auto g = dyn_cast<NVVM::GriddepcontrolOp>(op))
                return g.getKind() == NVVM::GridDepActionKind::wait;
              auto a = dyn_cast<LLVM::InlineAsmOp>(op);
              return a && a.getAsmString() == kWait;
            })) {
          waiting.insert(key);
          continue;
        }
        OpBuilder b(&entry, entry.begin());
        b.setInsertionPoint(firstDependentOp(kernel));
        for (StringRef text : {kWait, kLaunchDependents})
          LLVM::InlineAsmOp::create(
              b, kernel.getLoc(), TypeRange(), ValueRange(), text, "~{memory}",
              /*has_side_effects=*/true,
              /*is_align_stack=*/false, LLVM::tailcallkind::TailCallKind::None,
              LLVM::AsmDialectAttr(), ArrayAttr());
        waiting.insert(key);
      }
    UnitAttr unit = UnitAttr::get(&getContext());
    module.walk([&](gpu::LaunchFuncOp launch) {
      std::string key = (launch.getKernelModuleName().getValue() +
                         "::" + launch.getKernelName().getValue())
                            .str();
      if (waiting.contains(key))
        launch->setAttr(kWaitsForPreviousAttr, unit);
    });
  }
};

} // namespace
