//===- LowerTfmToLinalg.cpp - Reference lowering of tfm to linalg ---------===//
//
// One pattern per tfm op, producing target-neutral linalg.generic loop nests
// on tensors (f32 accumulation, one rounding to the storage type at the end).
// The CPU target runs exactly this; the GPU target maps the same nests onto
// blocks and threads. A dialect conversion with tfm illegal; the patterns
// live in tfm/ (LowerTfm.h), each derived from TfmLowering.
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "passes/Passes.h"
#include "passes/lowering/tfm/LowerTfm.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#define DEBUG_TYPE "kiln-lower-tfm-to-linalg"

namespace kiln {
#define GEN_PASS_DEF_LOWERTFMTOLINALG
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;
using namespace kiln::tfm_lowering;

namespace {

struct LowerTfmToLinalg : kiln::impl::LowerTfmToLinalgBase<LowerTfmToLinalg> {
  void runOnOperation() override {
    // Number the attentions, for the provenance of their lowered ops.
    int64_t attentions = 0;
    getOperation().walk([&](tfm::AttentionOp op) {
      op->setAttr(
          kRegionIdAttr,
          IntegerAttr::get(IntegerType::get(&getContext(), 64), attentions++));
    });
    // Every tfm op needs static shapes: report the first that has none.
    WalkResult dynamic = getOperation().walk([](Operation *op) {
      if (!op->getDialect() || !isa<tfm::TfmDialect>(op->getDialect()))
        return WalkResult::advance();
      for (Type t :
           llvm::concat<Type>(op->getOperandTypes(), op->getResultTypes()))
        if (auto st = dyn_cast<ShapedType>(t); st && !st.hasStaticShape()) {
          op->emitOpError("was not lowered (it needs static shapes: run "
                          "--kiln-specialize-entry-points first)");
          return WalkResult::interrupt();
        }
      return WalkResult::advance();
    });
    if (dynamic.wasInterrupted())
      return signalPassFailure();

    // tfm is illegal, except a tfm.dequantize that only projections read:
    // they lower with it (fused) and it goes when nothing reads it.
    ConversionTarget target(getContext());
    target.addLegalDialect<linalg::LinalgDialect, tensor::TensorDialect,
                           arith::ArithDialect, math::MathDialect,
                           scf::SCFDialect, affine::AffineDialect>();
    target.addIllegalDialect<tfm::TfmDialect>();
    // tfm.sample has no linalg form: it bufferizes as it is and the kernel
    // library implements it (GPU targets only).
    target.addLegalOp<tfm::SampleOp>();
    // The collectives bufferize as they are and each target implements them.
    target.addLegalOp<tfm::AllReduceOp, tfm::AllGatherOp>();
    target.addDynamicallyLegalOp<tfm::DequantizeOp>([](tfm::DequantizeOp op) {
      return !op->use_empty() && llvm::all_of(op->getUsers(), [](Operation *u) {
        return isa<tfm::LinearOp, tfm::LogitsOp>(u);
      });
    });
    RewritePatternSet patterns(&getContext());
    populateProjectionPatterns(patterns);
    populateAttentionPatterns(patterns);
    populateLayerPatterns(patterns);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      return signalPassFailure();
    getOperation().walk([](tfm::DequantizeOp op) {
      if (op->use_empty())
        op->erase();
    });
    // Fold and unique the constants the patterns made (at the top of the
    // function, as later passes expect them).
    (void)applyPatternsGreedily(getOperation(), FrozenRewritePatternSet());
  }
};

} // namespace
