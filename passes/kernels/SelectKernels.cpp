//===- SelectKernels.cpp - Tag ops with hand-built GPU kernels ------------===//
//
// Every linalg op of an entry point that a recipe of the kernel library
// implements gets `kiln.kernel = "<recipe>"`; see KernelLibrary.h.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/kernels/KernelLibrary.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/STLExtras.h"

#define DEBUG_TYPE "kiln-select-kernels"

namespace kiln {
#define GEN_PASS_DEF_SELECTKERNELS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

struct SelectKernels : kiln::impl::SelectKernelsBase<SelectKernels> {
  using Base::Base;

  void runOnOperation() override {
    for (StringRef name : disable)
      if (!kernels::lookup(name)) {
        getOperation().emitError("--kiln-select-kernels: no kernel recipe "
                                 "named '")
            << name << "'";
        return signalPassFailure();
      }
    Builder builder(&getContext());
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (!func->hasAttr("kiln.entry"))
        continue;
      func.walk([&](linalg::LinalgOp op) {
        for (const kernels::KernelRecipe *recipe : kernels::recipes()) {
          if (llvm::is_contained(disable, recipe->name().str()) ||
              !recipe->matches(op))
            continue;
          op->setAttr(kernels::kKernelAttr,
                      builder.getStringAttr(recipe->name()));
          break;
        }
      });
    }
  }
};

} // namespace
