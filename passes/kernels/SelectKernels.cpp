//===- SelectKernels.cpp - Tag ops with hand-built GPU kernels ------------===//
//
// Every linalg op of an entry point that a recipe of the kernel library
// implements gets `kiln.kernel = "<recipe>"`; see KernelLibrary.h.
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "dialects/Tfm/TfmOps.h"
#include "passes/Passes.h"
#include "passes/kernels/KernelLibrary.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
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
      if (!func->hasAttr(kEntryAttr))
        continue;
      // Linalg ops, and tfm.sample (which has no loop form: a recipe must
      // take it).
      WalkResult walk = func.walk([&](Operation *op) {
        if (!isa<linalg::LinalgOp, tfm::SampleOp>(op))
          return WalkResult::advance();
        for (const kernels::KernelRecipe *recipe : kernels::recipes()) {
          if (llvm::is_contained(disable, recipe->name().str()) ||
              (recipe->needsWarpgroupMma() && !warpgroupMma) ||
              !recipe->matches(op))
            continue;
          op->setAttr(kKernelAttr, builder.getStringAttr(recipe->name()));
          break;
        }
        if (isa<tfm::SampleOp>(op) && !op->hasAttr(kKernelAttr)) {
          op->emitOpError("has no kernel (the kernel library's sample_rows "
                          "implements it on static buffers)");
          return WalkResult::interrupt();
        }
        return WalkResult::advance();
      });
      if (walk.wasInterrupted())
        return signalPassFailure();
      auto fuse = [&](Operation *op) {
        op->setAttr(kKernelAttr, builder.getStringAttr(kernels::kFused));
      };
      // Groups first (an attention's steps), then epilogues.
      func.walk([&](linalg::LinalgOp op) {
        auto name = op->getAttrOfType<StringAttr>(kKernelAttr);
        if (const kernels::KernelRecipe *recipe =
                name ? kernels::lookup(name.getValue()) : nullptr)
          for (Operation *member : recipe->members(op))
            fuse(member);
      });
      if (epilogues)
        func.walk([&](linalg::LinalgOp op) {
          if (Operation *consumer = epilogueOf(op))
            fuse(consumer);
        });
    }
  }

  /// The elementwise consumer that `op`'s kernel can compute as it stores
  /// (KernelRecipe::acceptsEpilogue), when that is safe: `op`'s output is a
  /// buffer of its own (memref.alloc) that only a fill, `op` and the consumer
  /// (directly or through subviews only it reads) use, and nothing with memory
  /// effects runs between `op` and the consumer. (The arena planner keeps
  /// `op`'s operands and the consumer's output apart: they are live in the same
  /// launch.)
  static Operation *epilogueOf(linalg::LinalgOp op) {
    auto name = op->getAttrOfType<StringAttr>(kKernelAttr);
    const kernels::KernelRecipe *recipe =
        name ? kernels::lookup(name.getValue()) : nullptr;
    if (!recipe || op->getNumResults() != 0 || op.getNumDpsInits() != 1)
      return nullptr;
    Value out = op.getDpsInits()[0];
    if (!out.getDefiningOp<memref::AllocOp>())
      return nullptr;
    Operation *next = kernels::nextWithEffects(op);
    if (!next || next->hasAttr(kKernelAttr) ||
        !recipe->acceptsEpilogue(op, next))
      return nullptr;
    for (Operation *user : out.getUsers()) {
      if (user == op || user == next || isa<memref::DeallocOp>(user))
        continue;
      // A view that only the consumer reads (SwiGLU's halves).
      if (isa<memref::SubViewOp>(user) &&
          llvm::all_of(user->getUsers(),
                       [&](Operation *u) { return u == next; }))
        continue;
      auto fill = dyn_cast<linalg::FillOp>(user);
      if (!fill || !fill->isBeforeInBlock(op))
        return nullptr;
    }
    return next;
  }
};

} // namespace
