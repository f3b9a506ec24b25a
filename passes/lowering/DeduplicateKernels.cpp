//===- DeduplicateKernels.cpp - Each distinct kernel generated once -------===//
//
// A kernel of kiln-map-loops-to-gpu addresses each tensor as a memref.view of
// one of the four runtime buffers at a constant byte offset; the same layer
// at another depth is the same kernel up to those offsets. This pass turns
// each such view into a kernel parameter (the launch passes the view, made
// on the host) and merges kernels that are then identical. See Passes.td.
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/OperationSupport.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/raw_ostream.h"

#include <tuple>

#define DEBUG_TYPE "kiln-deduplicate-kernels"

namespace kiln {
#define GEN_PASS_DEF_DEDUPLICATEKERNELS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

/// A view of kernel parameter `arg` (one of the runtime buffers) at a
/// constant byte offset, with a static shape.
struct LiftedView {
  unsigned arg;
  int64_t offset;
  MemRefType type;
};

using ViewKey = std::tuple<unsigned, int64_t, Type>;

struct DeduplicateKernels
    : kiln::impl::DeduplicateKernelsBase<DeduplicateKernels> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Launches of each kernel, by kernel name.
    llvm::StringMap<SmallVector<gpu::LaunchFuncOp>> launches;
    module.walk([&](gpu::LaunchFuncOp launch) {
      launches[launch.getKernelName()].push_back(launch);
    });
    for (auto kernels : module.getOps<gpu::GPUModuleOp>()) {
      SmallVector<gpu::GPUFuncOp> funcs(kernels.getOps<gpu::GPUFuncOp>());
      for (gpu::GPUFuncOp kernel : funcs)
        if (kernel.isKernel())
          lift(kernel, launches[kernel.getName()]);
      merge(kernels, funcs, launches);
    }
  }

  /// Each constant-offset view of a parameter becomes a parameter of its
  /// own: appended in order of first use, one per (buffer, offset, type).
  void lift(gpu::GPUFuncOp kernel, ArrayRef<gpu::LaunchFuncOp> uses) {
    Block &entry = kernel.getBody().front();
    const unsigned numBuffers = kernel.getNumArguments();
    llvm::MapVector<ViewKey, SmallVector<memref::ViewOp>> views;
    kernel.walk([&](memref::ViewOp view) {
      auto source = dyn_cast<BlockArgument>(view.getSource());
      auto type = view.getType();
      std::optional<int64_t> shift = getConstantIntValue(view.getByteShift());
      if (!source || source.getOwner() != &entry || !shift ||
          !type.hasStaticShape() || !type.getLayout().isIdentity() ||
          !view.getSizes().empty())
        return;
      views[{source.getArgNumber(), *shift, type}].push_back(view);
    });
    if (views.empty())
      return;
    // Every launch must be able to pass the view: its operand for the
    // buffer is a block argument of the host function.
    for (gpu::LaunchFuncOp launch : uses)
      if (launch.getKernelOperands().size() != numBuffers)
        return;
    // Parameters go before the workgroup attributions (also block
    // arguments); a view of the weights stays marked read-only.
    OpBuilder attrs(kernel.getContext());
    for (auto &[key, ops] : views) {
      auto [arg, offset, type] = key;
      unsigned index = kernel.getNumArguments();
      DictionaryAttr dict = kernel.getArgAttr(arg, kWeightsAttr)
                                ? attrs.getDictionaryAttr(attrs.getNamedAttr(
                                      kWeightsAttr, attrs.getUnitAttr()))
                                : attrs.getDictionaryAttr({});
      if (failed(kernel.insertArgument(index, type, dict, kernel.getLoc())))
        return signalPassFailure();
      BlockArgument param = entry.getArgument(index);
      for (memref::ViewOp view : ops) {
        Operation *shift = view.getByteShift().getDefiningOp();
        view.replaceAllUsesWith(param);
        view.erase();
        if (shift && shift->use_empty())
          shift->erase();
      }
    }
    // Buffers the kernel no longer reads directly are dropped: the entry
    // points' buffers differ in size, so a kernel that keeps one cannot be
    // shared between entries.
    llvm::BitVector unused(kernel.getNumArguments());
    for (unsigned i = 0; i < numBuffers; ++i)
      unused[i] = entry.getArgument(i).use_empty();
    if (failed(kernel.eraseArguments(unused)))
      return signalPassFailure();
    for (gpu::LaunchFuncOp launch : uses) {
      OpBuilder b(launch);
      SmallVector<Value> operands;
      for (unsigned i = 0; i < numBuffers; ++i)
        if (!unused[i])
          operands.push_back(launch.getKernelOperands()[i]);
      DenseMap<int64_t, Value> shifts;
      for (auto &[key, ops] : views) {
        auto [arg, offset, type] = key;
        Value &shift = shifts[offset];
        if (!shift)
          shift = arith::ConstantIndexOp::create(b, launch.getLoc(), offset);
        operands.push_back(memref::ViewOp::create(
            b, launch.getLoc(), cast<MemRefType>(type),
            launch.getKernelOperands()[arg], shift, ValueRange{}));
      }
      launch.getKernelOperandsMutable().assign(operands);
    }
  }

  /// The kernel's text with its name left out: equal for kernels that
  /// compute the same thing from the same parameters.
  static std::string body(gpu::GPUFuncOp kernel) {
    StringAttr name = kernel.getNameAttr();
    kernel.setName("k");
    std::string text;
    llvm::raw_string_ostream os(text);
    kernel->print(os, OpPrintingFlags().useLocalScope().assumeVerified());
    kernel.setName(name);
    return text;
  }

  /// Kernels identical to an earlier one are erased and their launches
  /// retargeted to it.
  void merge(gpu::GPUModuleOp kernels, ArrayRef<gpu::GPUFuncOp> funcs,
             llvm::StringMap<SmallVector<gpu::LaunchFuncOp>> &launches) {
    llvm::StringMap<gpu::GPUFuncOp> first;
    for (gpu::GPUFuncOp kernel : funcs) {
      if (!kernel.isKernel())
        continue;
      auto [it, added] = first.try_emplace(body(kernel), kernel);
      if (added)
        continue;
      gpu::GPUFuncOp keep = it->second;
      auto target = SymbolRefAttr::get(
          kernels.getNameAttr(), {FlatSymbolRefAttr::get(keep.getNameAttr())});
      auto &uses = launches[kernel.getName()];
      for (gpu::LaunchFuncOp launch : uses) {
        launch.setKernelAttr(target);
        launches[keep.getName()].push_back(launch);
      }
      uses.clear();
      kernel.erase();
    }
  }
};

} // namespace
