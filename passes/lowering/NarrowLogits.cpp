//===- NarrowLogits.cpp - Compute only the logits rows returned -----------===//
//
// An entry point that returns a slice of the logits (@prefill's last row)
// gets the slice moved above the ops that produce it, so that only those rows
// are computed; see the pass description in Passes.td.
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "dialects/Tfm/TfmOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tensor/Transforms/Transforms.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#define DEBUG_TYPE "kiln-narrow-logits"

namespace kiln {
#define GEN_PASS_DEF_NARROWLOGITS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

/// A slice of a tensor-parallel rank's gathered logits that keeps the whole
/// gathered axis is the gather of the same slice of each rank's logits:
/// slice first, so that it keeps bubbling up to the lm_head.
struct SliceBeforeAllGather : OpRewritePattern<tensor::ExtractSliceOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(tensor::ExtractSliceOp slice,
                                PatternRewriter &rewriter) const override {
    auto gather = slice.getSource().getDefiningOp<tfm::AllGatherOp>();
    if (!gather || !gather->hasOneUse() || !slice.hasUnitStride() ||
        slice.getSourceType().getRank() != slice.getResultType().getRank())
      return failure();
    const int64_t axis = gather.getAxis();
    auto full = slice.getSourceType().getDimSize(axis);
    std::optional<int64_t> offset =
        getConstantIntValue(slice.getMixedOffsets()[axis]);
    std::optional<int64_t> size =
        getConstantIntValue(slice.getMixedSizes()[axis]);
    if (!offset || !size || *offset != 0 || *size != full)
      return failure();
    SmallVector<OpFoldResult> sizes = slice.getMixedSizes();
    auto inType = cast<RankedTensorType>(gather.getInput().getType());
    sizes[axis] = rewriter.getIndexAttr(inType.getDimSize(axis));
    Value part = tensor::ExtractSliceOp::create(
        rewriter, slice.getLoc(), gather.getInput(), slice.getMixedOffsets(),
        sizes, slice.getMixedStrides());
    rewriter.replaceOpWithNewOp<tfm::AllGatherOp>(
        slice, TypeRange{slice.getResultType()}, part, Value(),
        gather.getRanks(), axis);
    return success();
  }
};

struct NarrowLogits : kiln::impl::NarrowLogitsBase<NarrowLogits> {
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (!func->hasAttr(kEntryAttr) || func.getBody().empty())
      return;
    // The slices the entry returns (also read by its argmax).
    SmallVector<Operation *> roots;
    for (Value v : func.getBody().front().getTerminator()->getOperands())
      if (auto slice = v.getDefiningOp<tensor::ExtractSliceOp>())
        roots.push_back(slice);
    if (roots.empty())
      return;
    MLIRContext *ctx = &getContext();
    RewritePatternSet patterns(ctx);
    linalg::populateBubbleUpExtractSliceOpPatterns(patterns);
    linalg::populateSwapExtractSliceWithFillPatterns(patterns);
    tensor::ExtractSliceOp::getCanonicalizationPatterns(patterns, ctx);
    patterns.add<SliceBeforeAllGather>(ctx);
    // A slice of a tensor.empty (a fill's destination): an empty of the
    // slice's shape, not a view of a full-size buffer.
    tensor::populateFoldTensorEmptyPatterns(patterns);
    // Only the returned slices and what rewriting them creates: every other
    // slice (a KV append's rows, q/k/v of a fused projection) stays where
    // it is. The other ops are on the list too, so that the producers the
    // slices leave without users are erased (and a fill then has one user
    // left, the slice that takes its rows).
    SmallVector<Operation *> ops(roots);
    func.walk([&](Operation *op) {
      if (op != func && !isa<tensor::ExtractSliceOp>(op))
        ops.push_back(op);
    });
    GreedyRewriteConfig config;
    config.setStrictness(GreedyRewriteStrictness::ExistingAndNewOps);
    (void)applyOpPatternsGreedily(ops, std::move(patterns), config);
  }
};

} // namespace
