//===- LowerLinalgToLoops.cpp - Linalg to loops, kernels aside ------------===//
//
// Upstream's linalg-to-(parallel-)loops rewrite, applied to every bufferized
// linalg op that --kiln-select-kernels gave no hand-built kernel.
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
#include "mlir/IR/PatternMatch.h"

#define DEBUG_TYPE "kiln-lower-linalg-to-loops"

namespace kiln {
#define GEN_PASS_DEF_LOWERLINALGTOLOOPS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

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
      rewriter.eraseOp(op);
    }
  }
};

} // namespace
