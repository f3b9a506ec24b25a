//===- Layer.cpp - the rest of a decoder layer
//------------------------------===//
//
// Embedding lookup, RMSNorm, RoPE, SwiGLU, residual add, argmax and the
// run-time activation quantization: elementwise, per-row and whole-tensor
// nests.
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "passes/lowering/tfm/LowerTfm.h"

#include "mlir/Dialect/Math/IR/Math.h"

#include <limits>

namespace kiln::tfm_lowering {
namespace {

struct LowerEmbedding : TfmLowering<tfm::EmbeddingOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::EmbeddingOp op,
                         PatternRewriter &rewriter) const override {
    NestBuilder g(rewriter, op.getLoc());
    RankedTensorType type = op.getType();
    Value table = op.getTable();
    Value first;
    if (Value firstRow = op.getFirstRow())
      first = arith::IndexCastOp::create(
          rewriter, op.getLoc(), rewriter.getIndexType(),
          tensor::ExtractOp::create(rewriter, op.getLoc(), firstRow,
                                    ValueRange{arith::ConstantIndexOp::create(
                                        rewriter, op.getLoc(), 0)}));
    const int64_t rows = op.getTable().getType().getDimSize(0);
    Value result = g.generic(
        type, {op.getIds()}, g.empty(type.getShape(), type.getElementType()),
        {g.map(3, {g.d(0), g.d(1)}), g.map(3, {g.d(0), g.d(1), g.d(2)})},
        {kPar, kPar, kPar}, [&](OpBuilder &b, Location loc, ValueRange a) {
          Value row =
              arith::IndexCastOp::create(b, loc, b.getIndexType(), a[0]);
          Value col = linalg::IndexOp::create(b, loc, 2);
          if (!first) {
            linalg::YieldOp::create(
                b, loc,
                tensor::ExtractOp::create(b, loc, table, ValueRange{row, col})
                    .getResult());
            return;
          }
          // A rank's slice of the table: rows outside it are zeros.
          Value local = arith::SubIOp::create(b, loc, row, first);
          Value zero = arith::ConstantIndexOp::create(b, loc, 0);
          Value above = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge,
                                              local, zero);
          Value below = arith::CmpIOp::create(
              b, loc, arith::CmpIPredicate::slt, local,
              arith::ConstantIndexOp::create(b, loc, rows));
          Value inside = arith::AndIOp::create(b, loc, above, below);
          Value safe = arith::SelectOp::create(b, loc, inside, local, zero);
          Value v =
              tensor::ExtractOp::create(b, loc, table, ValueRange{safe, col});
          Value none = arith::ConstantOp::create(
              b, loc, b.getZeroAttr(type.getElementType()));
          linalg::YieldOp::create(
              b, loc,
              arith::SelectOp::create(b, loc, inside, v, none).getResult());
        });
    return result;
  }
};

struct LowerRmsNorm : TfmLowering<tfm::RmsNormOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::RmsNormOp op,
                         PatternRewriter &rewriter) const override {
    NestBuilder g(rewriter, op.getLoc());
    RankedTensorType type = op.getType();
    auto shape = type.getShape();
    Value sumSq = rowSumOfSquares(g, op.getInput());
    Value hidden = g.f32(static_cast<double>(shape[2]));
    Value eps = g.f32(op.getEpsilon().convertToDouble());
    Value one = g.f32(1.0);
    Type elt = type.getElementType();
    Value result = g.generic(
        type, {op.getInput(), sumSq, op.getWeight()}, g.empty(shape, elt),
        {g.map(3, {g.d(0), g.d(1), g.d(2)}), g.map(3, {g.d(0), g.d(1)}),
         g.map(3, {g.d(2)}), g.map(3, {g.d(0), g.d(1), g.d(2)})},
        {kPar, kPar, kPar}, [&](OpBuilder &b, Location loc, ValueRange a) {
          Value inv = inverseRms(b, loc, a[1], hidden, eps, one);
          Value v = arith::MulFOp::create(b, loc, toF32(b, loc, a[0]), inv);
          v = arith::MulFOp::create(b, loc, v, toF32(b, loc, a[2]));
          linalg::YieldOp::create(b, loc, fromF32(b, loc, v, elt));
        });
    return result;
  }
};

struct LowerRope : TfmLowering<tfm::RopeOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::RopeOp op,
                         PatternRewriter &rewriter) const override {
    NestBuilder g(rewriter, op.getLoc());
    RankedTensorType type = op.getType();
    Type elt = type.getElementType();
    int64_t headDim = op.getHeadDim(), half = headDim / 2;
    Value x = op.getInput(), freqs = op.getInvFreq();
    Value cHeadDim = g.index(headDim), cHalf = g.index(half);
    Value scaling = g.f32(op.getAttentionScaling().convertToDouble());
    Value result = g.generic(
        type, {op.getPositions()}, g.empty(type.getShape(), elt),
        {g.map(3, {g.d(0), g.d(1)}), g.map(3, {g.d(0), g.d(1), g.d(2)})},
        {kPar, kPar, kPar}, [&](OpBuilder &b, Location loc, ValueRange a) {
          Value bi = linalg::IndexOp::create(b, loc, 0);
          Value si = linalg::IndexOp::create(b, loc, 1);
          Value c = linalg::IndexOp::create(b, loc, 2);
          Value i = arith::RemUIOp::create(b, loc, c, cHeadDim);
          Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                              i, cHalf);
          Value j = arith::SelectOp::create(
              b, loc, first, i, arith::SubIOp::create(b, loc, i, cHalf));
          Value partner = arith::SelectOp::create(
              b, loc, first, arith::AddIOp::create(b, loc, c, cHalf),
              arith::SubIOp::create(b, loc, c, cHalf));
          Value xv = toF32(
              b, loc,
              tensor::ExtractOp::create(b, loc, x, ValueRange{bi, si, c}));
          Value xp = toF32(b, loc,
                           tensor::ExtractOp::create(
                               b, loc, x, ValueRange{bi, si, partner}));
          Value pos = arith::SIToFPOp::create(b, loc, b.getF32Type(), a[0]);
          Value f = tensor::ExtractOp::create(b, loc, freqs, ValueRange{j});
          Value theta = arith::MulFOp::create(b, loc, pos, f);
          Value cs = arith::MulFOp::create(
              b, loc, math::CosOp::create(b, loc, theta), scaling);
          Value sn = arith::MulFOp::create(
              b, loc, math::SinOp::create(b, loc, theta), scaling);
          Value xc = arith::MulFOp::create(b, loc, xv, cs);
          Value ps = arith::MulFOp::create(b, loc, xp, sn);
          Value r = arith::SelectOp::create(
              b, loc, first, arith::SubFOp::create(b, loc, xc, ps),
              arith::AddFOp::create(b, loc, xc, ps));
          linalg::YieldOp::create(b, loc, fromF32(b, loc, r, elt));
        });
    // A decode attention kernel applies RoPE itself (attention_decode).
    result.getDefiningOp()->setAttr(
        kRegionAttr,
        rewriter.getDictionaryAttr(
            {rewriter.getNamedAttr("op", rewriter.getStringAttr("tfm.rope")),
             rewriter.getNamedAttr("head_dim", op.getHeadDimAttr()),
             rewriter.getNamedAttr("attention_scaling",
                                   op.getAttentionScalingAttr())}));
    return result;
  }
};

struct LowerSwiGlu : TfmLowering<tfm::SwiGluOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::SwiGluOp op,
                         PatternRewriter &rewriter) const override {
    NestBuilder g(rewriter, op.getLoc());
    Value one = g.f32(1.0);
    return elementwise(
        g, {op.getGate(), op.getUp()}, op.getType(),
        [&](OpBuilder &b, Location loc, ValueRange x) {
          Value e =
              math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x[0]));
          Value sig = arith::DivFOp::create(
              b, loc, one, arith::AddFOp::create(b, loc, one, e));
          Value silu = arith::MulFOp::create(b, loc, x[0], sig);
          return arith::MulFOp::create(b, loc, silu, x[1]).getResult();
        });
  }
};

/// DynamicQuantizeLinear's statistics as one reduction of the whole tensor
/// into two scalars (min and max, both started at 0: lo = min(0, min(x))),
/// then the quantize-dequantize of each element.
struct LowerDynamicQuantize : TfmLowering<tfm::DynamicQuantizeOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::DynamicQuantizeOp op,
                         PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    NestBuilder g(rewriter, loc);
    RankedTensorType type = op.getType();
    Type elt = type.getElementType();
    Value lo0 = g.filled({}, 0.0), hi0 = g.filled({}, 0.0);
    AffineMap all = g.map(3, {g.d(0), g.d(1), g.d(2)}), scalar = g.map(3, {});
    auto stats = linalg::GenericOp::create(
        rewriter, loc, TypeRange{lo0.getType(), hi0.getType()},
        ValueRange{op.getInput()}, ValueRange{lo0, hi0},
        ArrayRef<AffineMap>{all, scalar, scalar},
        ArrayRef<IteratorType>{kRed, kRed, kRed},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          Value x = toF32(b, loc, a[0]);
          linalg::YieldOp::create(
              b, loc,
              ValueRange{arith::MinimumFOp::create(b, loc, a[1], x),
                         arith::MaximumFOp::create(b, loc, a[2], x)});
        });
    Value zero = g.f32(0.0), levels = g.f32(255.0);
    return g.generic(
        type, {op.getInput(), stats.getResult(0), stats.getResult(1)},
        g.empty(type.getShape(), elt), {all, scalar, scalar, all},
        {kPar, kPar, kPar}, [&](OpBuilder &b, Location loc, ValueRange a) {
          auto clamp = [&](Value v) {
            return arith::MinimumFOp::create(
                b, loc, arith::MaximumFOp::create(b, loc, v, zero), levels);
          };
          Value s = arith::DivFOp::create(
              b, loc, arith::SubFOp::create(b, loc, a[2], a[1]), levels);
          Value z = clamp(math::RoundEvenOp::create(
              b, loc,
              arith::DivFOp::create(b, loc, arith::NegFOp::create(b, loc, a[1]),
                                    s)));
          Value x = toF32(b, loc, a[0]);
          Value q = clamp(arith::AddFOp::create(
              b, loc,
              math::RoundEvenOp::create(b, loc,
                                        arith::DivFOp::create(b, loc, x, s)),
              z));
          Value r = arith::MulFOp::create(
              b, loc, arith::SubFOp::create(b, loc, q, z), s);
          Value flat =
              arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, s, zero);
          linalg::YieldOp::create(
              b, loc,
              fromF32(b, loc, arith::SelectOp::create(b, loc, flat, zero, r),
                      elt));
        });
  }
};

struct LowerAdd : TfmLowering<tfm::AddOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::AddOp op,
                         PatternRewriter &rewriter) const override {
    NestBuilder g(rewriter, op.getLoc());
    return elementwise(
        g, {op.getLhs(), op.getRhs()}, op.getType(),
        [](OpBuilder &b, Location loc, ValueRange x) {
          return arith::AddFOp::create(b, loc, x[0], x[1]).getResult();
        });
  }
};

/// Row-wise argmax as one reduction with two results (value, index); strict
/// `>` keeps the first index on ties.
struct LowerArgmax : TfmLowering<tfm::ArgmaxOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::ArgmaxOp op,
                         PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    NestBuilder g(rewriter, loc);
    RankedTensorType type = op.getType();
    Value maxInit =
        g.filled(type.getShape(), -std::numeric_limits<double>::infinity());
    Value zero =
        arith::ConstantOp::create(rewriter, loc, rewriter.getI64IntegerAttr(0));
    Value idxInit =
        linalg::FillOp::create(
            rewriter, loc, ValueRange{zero},
            ValueRange{g.empty(type.getShape(), rewriter.getI64Type())})
            .getResult(0);
    AffineMap rows = g.map(3, {g.d(0), g.d(1)});
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{maxInit.getType(), type},
        ValueRange{op.getLogits()}, ValueRange{maxInit, idxInit},
        ArrayRef<AffineMap>{g.map(3, {g.d(0), g.d(1), g.d(2)}), rows, rows},
        ArrayRef<IteratorType>{kPar, kPar, kRed},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          Value x = toF32(b, loc, a[0]);
          Value v = arith::IndexCastOp::create(
              b, loc, b.getI64Type(), linalg::IndexOp::create(b, loc, 2));
          Value better =
              arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, x, a[1]);
          linalg::YieldOp::create(
              b, loc,
              ValueRange{arith::SelectOp::create(b, loc, better, x, a[1]),
                         arith::SelectOp::create(b, loc, better, v, a[2])});
        });
    return generic.getResult(1);
  }
};

} // namespace

Value rowSumOfSquares(NestBuilder &g, Value x) {
  auto shape = cast<RankedTensorType>(x.getType()).getShape();
  return g.generic(
      RankedTensorType::get(shape.take_front(2), g.b.getF32Type()), {x},
      g.filled(shape.take_front(2), 0.0),
      {g.map(3, {g.d(0), g.d(1), g.d(2)}), g.map(3, {g.d(0), g.d(1)})},
      {kPar, kPar, kRed}, [&](OpBuilder &b, Location loc, ValueRange a) {
        Value v = toF32(b, loc, a[0]);
        Value sq = arith::MulFOp::create(b, loc, v, v);
        linalg::YieldOp::create(
            b, loc, arith::AddFOp::create(b, loc, a[1], sq).getResult());
      });
}

Value inverseRms(OpBuilder &b, Location loc, Value sum, Value features,
                 Value eps, Value one) {
  Value mean = arith::DivFOp::create(b, loc, sum, features);
  Value rms =
      math::SqrtOp::create(b, loc, arith::AddFOp::create(b, loc, mean, eps));
  return arith::DivFOp::create(b, loc, one, rms);
}

void populateLayerPatterns(RewritePatternSet &patterns) {
  patterns.add<LowerEmbedding, LowerRmsNorm, LowerRope, LowerSwiGlu, LowerAdd,
               LowerArgmax, LowerDynamicQuantize>(patterns.getContext());
}

} // namespace kiln::tfm_lowering
