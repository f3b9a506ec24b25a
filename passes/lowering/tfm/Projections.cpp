//===- Projections.cpp - tfm.linear, tfm.logits, tfm.dequantize
//-------------===//
//
// A projection is one reduction over x and the weight (in either layout),
// then the bias and the rounding to the result type. A weight that
// tfm.dequantize makes is read as packed codes inside that reduction.
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "passes/lowering/tfm/LowerTfm.h"

#include "mlir/Dialect/Math/IR/Math.h"

namespace kiln::tfm_lowering {
namespace {

/// What a tfm.linear computes from its f32 projection besides the bias and
/// the rounding: the RMS normalisation of its input that `rms_norm_epsilon`
/// asks for (sum_k x[b, s, k]^2 as f32 [B, S], the input features and
/// epsilon), and the `swiglu` activation of its two halves.
struct Finish {
  Value sumSquares;
  int64_t features = 0;
  double epsilon = 0;
  bool swiglu = false;
};

/// sum_k x[b, s, k]^2 as f32 [B, S], tagged kRegionAttr {op = "tfm.linear",
/// step = "sum_squares"}: a GEMV kernel reading x computes it on the way.
void addRowNorm(NestBuilder &g, Value x, double epsilon, Finish &finish) {
  Value sum = rowSumOfSquares(g, x);
  sum.getDefiningOp()->setAttr(
      kRegionAttr,
      g.b.getDictionaryAttr(
          {g.b.getNamedAttr("op", g.b.getStringAttr("tfm.linear")),
           g.b.getNamedAttr("step", g.b.getStringAttr("sum_squares"))}));
  finish.sumSquares = sum;
  finish.features = cast<RankedTensorType>(x.getType()).getDimSize(2);
  finish.epsilon = epsilon;
}

/// `acc` (f32 [B, S, N]), scaled by the row's inverse RMS when `finish` has
/// a sum of squares, plus `bias[n]`, rounded to the result type; with
/// `swiglu`, silu(that at n) * (that at n + N/2) for n < N/2 instead.
Value finishProjection(NestBuilder &g, Value acc, Value bias,
                       RankedTensorType resultType, const Finish &finish = {}) {
  Type elt = resultType.getElementType();
  if (!bias && !finish.sumSquares && !finish.swiglu && elt.isF32())
    return acc;
  SmallVector<int64_t> shape(resultType.getShape());
  const int64_t half = shape[2] / 2;
  if (finish.swiglu)
    shape[2] = half;
  // Inputs: acc (with swiglu, its halves [0, N/2) and [N/2, N) as slices),
  // the sum of squares, the bias (halved likewise).
  auto halves = [&](Value v) -> SmallVector<Value, 2> {
    if (!finish.swiglu)
      return {v};
    auto type = cast<RankedTensorType>(v.getType());
    SmallVector<Value, 2> out;
    for (int64_t part = 0; part < 2; ++part) {
      SmallVector<int64_t> offsets(type.getRank(), 0), sizes(type.getShape()),
          strides(type.getRank(), 1);
      offsets.back() = part * half;
      sizes.back() = half;
      out.push_back(tensor::ExtractSliceOp::create(
          g.b, g.loc, RankedTensorType::get(sizes, type.getElementType()), v,
          ValueRange{}, ValueRange{}, ValueRange{}, offsets, sizes, strides));
    }
    return out;
  };
  SmallVector<Value> ins;
  SmallVector<AffineMap> maps;
  for (Value part : halves(acc)) {
    ins.push_back(part);
    maps.push_back(g.map(3, {g.d(0), g.d(1), g.d(2)}));
  }
  if (finish.sumSquares) {
    ins.push_back(finish.sumSquares);
    maps.push_back(g.map(3, {g.d(0), g.d(1)}));
  }
  if (bias)
    for (Value part : halves(bias)) {
      ins.push_back(part);
      maps.push_back(g.map(3, {g.d(2)}));
    }
  maps.push_back(g.map(3, {g.d(0), g.d(1), g.d(2)}));
  Value features, eps, one;
  if (finish.sumSquares || finish.swiglu)
    one = g.f32(1.0);
  if (finish.sumSquares) {
    features = g.f32(static_cast<double>(finish.features));
    eps = g.f32(finish.epsilon);
  }
  return g.generic(
      RankedTensorType::get(shape, elt), ins, g.empty(shape, elt), maps,
      {kPar, kPar, kPar}, [&](OpBuilder &b, Location loc, ValueRange a) {
        const unsigned parts = finish.swiglu ? 2 : 1;
        SmallVector<Value, 2> v(a.begin(), a.begin() + parts);
        unsigned next = parts;
        if (finish.sumSquares) {
          Value inv = inverseRms(b, loc, a[next++], features, eps, one);
          for (Value &p : v)
            p = arith::MulFOp::create(b, loc, p, inv);
        }
        if (bias)
          for (Value &p : v)
            p = arith::AddFOp::create(b, loc, p, toF32(b, loc, a[next++]));
        Value y = v[0];
        if (finish.swiglu) {
          Value e =
              math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, v[0]));
          Value sig = arith::DivFOp::create(
              b, loc, one, arith::AddFOp::create(b, loc, one, e));
          y = arith::MulFOp::create(
              b, loc, arith::MulFOp::create(b, loc, v[0], sig), v[1]);
        }
        linalg::YieldOp::create(b, loc, fromF32(b, loc, y, elt));
      });
}

/// acc[b, s, n] = sum_k x[b, s, k] * W[k, n] (in_out) or W[n, k] (out_in),
/// then `+ bias[n]` and rounding to the result type.
Value projection(NestBuilder &g, Value x, Value w, Value bias,
                 tfm::WeightLayout layout, RankedTensorType resultType,
                 const Finish &norm) {
  auto [batch, seq, n] =
      std::make_tuple(resultType.getDimSize(0), resultType.getDimSize(1),
                      resultType.getDimSize(2));
  AffineMap wMap = layout == tfm::WeightLayout::in_out
                       ? g.map(4, {g.d(3), g.d(2)})
                       : g.map(4, {g.d(2), g.d(3)});
  Value acc = g.generic(
      RankedTensorType::get({batch, seq, n}, g.b.getF32Type()), {x, w},
      g.filled({batch, seq, n}, 0.0),
      {g.map(4, {g.d(0), g.d(1), g.d(3)}), wMap,
       g.map(4, {g.d(0), g.d(1), g.d(2)})},
      {kPar, kPar, kPar, kRed}, [&](OpBuilder &b, Location loc, ValueRange a) {
        Value prod = arith::MulFOp::create(b, loc, toF32(b, loc, a[0]),
                                           toF32(b, loc, a[1]));
        linalg::YieldOp::create(
            b, loc, arith::AddFOp::create(b, loc, a[2], prod).getResult());
      });
  return finishProjection(g, acc, bias, resultType, norm);
}

/// The weight element (row, col) of `dq` as f32, in a body whose `args`
/// are the packed byte, the scale and (when `dq` has them) the zero point;
/// `col` is the column's index.
Value dequantizedElement(OpBuilder &b, Location loc, tfm::DequantizeOp dq,
                         ValueRange args, Value col) {
  Type i32 = b.getI32Type();
  Value code = arith::ExtUIOp::create(b, loc, i32, args[0]);
  if (dq.getBits() == 4) {
    // Odd columns are the high four bits of their byte.
    Value odd = arith::AndIOp::create(
        b, loc, arith::IndexCastOp::create(b, loc, i32, col),
        arith::ConstantIntOp::create(b, loc, i32, 1));
    Value shift = arith::ShLIOp::create(
        b, loc, odd, arith::ConstantIntOp::create(b, loc, i32, 2));
    code = arith::AndIOp::create(b, loc,
                                 arith::ShRUIOp::create(b, loc, code, shift),
                                 arith::ConstantIntOp::create(b, loc, i32, 15));
  }
  Value q = arith::UIToFPOp::create(b, loc, b.getF32Type(), code);
  Value zero =
      dq.getZeroPoints()
          ? toF32(b, loc, args[2])
          : arith::ConstantOp::create(
                b, loc,
                b.getF32FloatAttr(double(int64_t{1} << (dq.getBits() - 1))));
  return arith::MulFOp::create(b, loc, arith::SubFOp::create(b, loc, q, zero),
                               toF32(b, loc, args[1]));
}

/// The packed, scales and zero-point operands of `dq` with their maps from
/// (row, col) dims `row` and `col`.
void dequantizeOperands(NestBuilder &g, tfm::DequantizeOp dq, unsigned dims,
                        AffineExpr row, AffineExpr col, SmallVector<Value> &ins,
                        SmallVector<AffineMap> &maps) {
  int64_t group = dq.getGroupSize();
  ins.push_back(dq.getPacked());
  maps.push_back(g.map(dims, {row, dq.getBits() == 4 ? col.floorDiv(2) : col}));
  ins.push_back(dq.getScales());
  maps.push_back(g.map(dims, {row, col.floorDiv(group)}));
  if (Value z = dq.getZeroPoints()) {
    ins.push_back(z);
    maps.push_back(g.map(dims, {row, col.floorDiv(group)}));
  }
}

/// `projection` for a weight that `dq` dequantizes ([N, K]): one reduction
/// that reads the packed codes and dequantizes each in the loop body, tagged
/// with kRegionAttr {op, bits, group_size, zero_points} so that a kernel can
/// take it whole.
Value quantizedProjection(NestBuilder &g, Value x, tfm::DequantizeOp dq,
                          Value bias, RankedTensorType resultType,
                          StringRef opName, const Finish &norm) {
  auto [batch, seq, n] =
      std::make_tuple(resultType.getDimSize(0), resultType.getDimSize(1),
                      resultType.getDimSize(2));
  SmallVector<Value> ins{x};
  SmallVector<AffineMap> maps{g.map(4, {g.d(0), g.d(1), g.d(3)})};
  dequantizeOperands(g, dq, 4, g.d(2), g.d(3), ins, maps);
  maps.push_back(g.map(4, {g.d(0), g.d(1), g.d(2)}));
  auto generic = linalg::GenericOp::create(
      g.b, g.loc,
      TypeRange{RankedTensorType::get({batch, seq, n}, g.b.getF32Type())}, ins,
      ValueRange{g.filled({batch, seq, n}, 0.0)}, maps,
      {kPar, kPar, kPar, kRed}, [&](OpBuilder &b, Location loc, ValueRange a) {
        Value k = linalg::IndexOp::create(b, loc, 3);
        Value w = dequantizedElement(b, loc, dq, a.slice(1, a.size() - 2), k);
        Value prod = arith::MulFOp::create(b, loc, toF32(b, loc, a[0]), w);
        linalg::YieldOp::create(
            b, loc, arith::AddFOp::create(b, loc, a.back(), prod).getResult());
      });
  NamedAttrList attrs;
  attrs.append("op", g.b.getStringAttr(opName));
  attrs.append("bits", dq.getBitsAttr());
  attrs.append("group_size", dq.getGroupSizeAttr());
  attrs.append("zero_points", g.b.getBoolAttr(dq.getZeroPoints() != nullptr));
  generic->setAttr(kRegionAttr, attrs.getDictionary(g.b.getContext()));
  return finishProjection(g, generic.getResult(0), bias, resultType, norm);
}

/// The float matrix `dq` makes, in its element type.
Value dequantizedMatrix(NestBuilder &g, tfm::DequantizeOp dq) {
  RankedTensorType type = dq.getType();
  SmallVector<Value> ins;
  SmallVector<AffineMap> maps;
  dequantizeOperands(g, dq, 2, g.d(0), g.d(1), ins, maps);
  maps.push_back(g.map(2, {g.d(0), g.d(1)}));
  Type elt = type.getElementType();
  return g.generic(type, ins, g.empty(type.getShape(), elt), maps, {kPar, kPar},
                   [&](OpBuilder &b, Location loc, ValueRange a) {
                     Value col = linalg::IndexOp::create(b, loc, 1);
                     Value w =
                         dequantizedElement(b, loc, dq, a.drop_back(), col);
                     linalg::YieldOp::create(b, loc, fromF32(b, loc, w, elt));
                   });
}

/// Rows (batch x seq) up to which a projection by a dequantized weight
/// decodes the packed codes inside its reduction (decode: each code is read
/// once, what gemv_q does). With more rows (prefill) every code would be
/// decoded once per row: the weight is dequantized once into the float type
/// instead and the projection is the float one.
constexpr int64_t kFusedDequantizeRows = 8;

/// A projection by `w` in `layout`, fused with its dequantization when a
/// tfm.dequantize makes `w` and the rows are few.
Value anyProjection(NestBuilder &g, Value x, Value w, Value bias,
                    tfm::WeightLayout layout, RankedTensorType resultType,
                    StringRef opName, const Finish &norm = {}) {
  auto dq = w.getDefiningOp<tfm::DequantizeOp>();
  if (!dq || layout != tfm::WeightLayout::out_in)
    return projection(g, x, w, bias, layout, resultType, norm);
  if (resultType.getDimSize(0) * resultType.getDimSize(1) <=
      kFusedDequantizeRows)
    return quantizedProjection(g, x, dq, bias, resultType, opName, norm);
  return projection(g, x, dequantizedMatrix(g, dq), bias, layout, resultType,
                    norm);
}

struct LowerLinear : TfmLowering<tfm::LinearOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::LinearOp op,
                         PatternRewriter &rewriter) const override {
    NestBuilder g(rewriter, op.getLoc());
    Finish finish;
    if (FloatAttr eps = op.getRmsNormEpsilonAttr())
      addRowNorm(g, op.getInput(), eps.getValueAsDouble(), finish);
    finish.swiglu = op.getSwiglu();
    // The projection's own type: N features (twice the result's with
    // swiglu).
    RankedTensorType type = op.getType();
    if (finish.swiglu)
      type = RankedTensorType::get(
          {type.getDimSize(0), type.getDimSize(1), op.getOutFeatures()},
          type.getElementType());
    return anyProjection(g, op.getInput(), op.getWeight(), op.getBias(),
                         op.getLayout(), type, "tfm.linear", finish);
  }
};

struct LowerLogits : TfmLowering<tfm::LogitsOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::LogitsOp op,
                         PatternRewriter &rewriter) const override {
    NestBuilder g(rewriter, op.getLoc());
    return anyProjection(g, op.getInput(), op.getWeight(), Value(),
                         op.getLayout(), op.getType(), "tfm.logits");
  }
};

/// A tfm.dequantize that a projection does not absorb (an embedding table,
/// a weight read in_out) becomes the float matrix.
struct LowerDequantize : TfmLowering<tfm::DequantizeOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::DequantizeOp op,
                         PatternRewriter &rewriter) const override {
    for (Operation *user : op->getUsers())
      if (isa<tfm::LinearOp, tfm::LogitsOp>(user))
        return rewriter.notifyMatchFailure(op, "lowered with its projection");
    NestBuilder g(rewriter, op.getLoc());
    return dequantizedMatrix(g, op);
  }
};

} // namespace

void populateProjectionPatterns(RewritePatternSet &patterns) {
  patterns.add<LowerLinear, LowerLogits, LowerDequantize>(
      patterns.getContext());
}

} // namespace kiln::tfm_lowering
