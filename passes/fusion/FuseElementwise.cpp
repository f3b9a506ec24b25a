//===- FuseElementwise.cpp - Elementwise producers into their consumers ---===//
//
// Upstream linalg elementwise fusion (`populateElementwiseOpsFusionPatterns`)
// on the tensors that kiln-lower-tfm-to-linalg produces, before
// bufferization: an all-parallel linalg.generic whose result has one user is
// inlined into that user's body, so its result never goes to memory and, on
// GPU targets, needs no kernel of its own (e.g. the f32 -> f16 conversion of
// the scores into the mask select, the RoPE cos/sin of a position into the
// rotation).
//
// Only single-use producers fuse (a producer with several users would be
// recomputed in each), and only into consumers without reduction loops: the
// kernel library and the reduction mappings recognise matrix products,
// norms and softmax sums by their operands, which must stay loads.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#define DEBUG_TYPE "kiln-fuse-elementwise"

namespace kiln {
#define GEN_PASS_DEF_FUSEELEMENTWISE
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

struct FuseElementwise : kiln::impl::FuseElementwiseBase<FuseElementwise> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    linalg::ControlFusionFn control = [](OpOperand *fused) {
      Operation *producer = fused->get().getDefiningOp();
      auto consumer = dyn_cast<linalg::LinalgOp>(fused->getOwner());
      // Reductions (matrix products, norms, softmax sums) keep their operands
      // as they are: the kernel library and the reduction mappings match
      // them by shape, and a norm recomputed inside a GEMV would be redone
      // by every block.
      return producer && producer->hasOneUse() && consumer &&
             consumer.getNumReductionLoops() == 0;
    };
    linalg::populateElementwiseOpsFusionPatterns(patterns, control);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
