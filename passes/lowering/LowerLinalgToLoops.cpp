//===- LowerLinalgToLoops.cpp - Linalg to loops, kernels aside ------------===//
//
// Upstream's linalg-to-(parallel-)loops rewrite, applied to every bufferized
// linalg op that --kiln-select-kernels gave no hand-built kernel. A loop
// whose bound is `select(c, n, 0)` (a guarded write of a KV-cache row) comes
// out as `scf.if c` around a loop to the constant n.
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "passes/Passes.h"
#include "passes/kernels/KernelLibrary.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"

#define DEBUG_TYPE "kiln-lower-linalg-to-loops"

namespace kiln {
#define GEN_PASS_DEF_LOWERLINALGTOLOOPS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

/// `loop` (an scf.parallel or scf.for from 0, no results) when a bound is
/// select(c, n, 0) with n constant: moved under `scf.if c`, that bound n.
void guardSelectedBound(RewriterBase &rewriter, Operation *loop) {
  MutableArrayRef<OpOperand> bounds;
  if (auto par = dyn_cast<scf::ParallelOp>(loop))
    bounds = par.getUpperBoundMutable();
  else if (auto f = dyn_cast<scf::ForOp>(loop))
    bounds = f.getUpperBoundMutable();
  if (loop->getNumResults() != 0)
    return;
  for (OpOperand &bound : bounds) {
    auto select = bound.get().getDefiningOp<arith::SelectOp>();
    if (!select || !getConstantIntValue(select.getTrueValue()) ||
        !isConstantIntValue(select.getFalseValue(), 0))
      continue;
    rewriter.setInsertionPoint(loop);
    auto guard =
        scf::IfOp::create(rewriter, loop->getLoc(), select.getCondition(),
                          /*withElseRegion=*/false);
    rewriter.moveOpBefore(loop, guard.thenBlock()->getTerminator());
    rewriter.modifyOpInPlace(loop, [&] { bound.set(select.getTrueValue()); });
    return;
  }
}

struct LowerLinalgToLoops
    : kiln::impl::LowerLinalgToLoopsBase<LowerLinalgToLoops> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<linalg::LinalgOp> ops;
    // Ops that a kernel implements stay whole, and so does what is nested in
    // them (a member such as a KV-cache append's scf.if and its copy).
    getOperation().walk([&](linalg::LinalgOp op) {
      for (Operation *o = op; o; o = o->getParentOp())
        if (o->hasAttr(kKernelAttr))
          return;
      ops.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (linalg::LinalgOp op : ops) {
      if (!op.hasPureBufferSemantics()) {
        op->emitOpError("expected buffer semantics before the loop lowering");
        return signalPassFailure();
      }
      rewriter.setInsertionPoint(op);
      FailureOr<linalg::LinalgLoops> loops =
          parallel ? linalg::linalgOpToParallelLoops(rewriter, op)
                   : linalg::linalgOpToLoops(rewriter, op);
      if (failed(loops)) {
        op->emitOpError("could not be lowered to loops");
        return signalPassFailure();
      }
      if (!loops->empty())
        guardSelectedBound(rewriter, loops->front());
      rewriter.eraseOp(op);
    }
  }
};

} // namespace
