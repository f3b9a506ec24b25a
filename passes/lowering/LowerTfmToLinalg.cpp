//===- LowerTfmToLinalg.cpp - Reference lowering of tfm to linalg ---------===//
//
// One pattern per tfm op, producing target-neutral linalg.generic loop nests
// on tensors (f32 accumulation, one rounding to the storage type at the end).
// The CPU target runs exactly this; the GPU target maps the same nests onto
// blocks and threads. A dialect conversion with tfm illegal; every pattern
// derives from TfmLowering (static shapes, one result replaced).
//
//===----------------------------------------------------------------------===//

#include "dialects/Tfm/TfmOps.h"
#include "passes/Passes.h"
#include "passes/RegionAttr.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/DialectConversion.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <limits>

#define DEBUG_TYPE "kiln-lower-tfm-to-linalg"

namespace kiln {
#define GEN_PASS_DEF_LOWERTFMTOLINALG
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;
using utils::IteratorType;

namespace {

constexpr IteratorType kPar = IteratorType::parallel;
constexpr IteratorType kRed = IteratorType::reduction;

/// Helpers for building linalg.generic nests with f32 arithmetic.
/// Set on each tfm.attention before the patterns run: its number in the
/// function, which kRegionAttr repeats on its lowered ops.
constexpr llvm::StringLiteral kRegionIdAttr = "kiln.region_id";

struct Builder {
  Builder(PatternRewriter &rewriter, Location loc) : b(rewriter), loc(loc) {}

  Value f32(double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value empty(ArrayRef<int64_t> shape, Type elt) {
    return tensor::EmptyOp::create(b, loc, shape, elt);
  }
  /// A tensor filled with `value` (f32).
  Value filled(ArrayRef<int64_t> shape, double value) {
    Value init = empty(shape, b.getF32Type());
    return linalg::FillOp::create(b, loc, ValueRange{f32(value)},
                                  ValueRange{init})
        .getResult(0);
  }
  /// `maps` in dims d0..d{n-1}, as written with `exprs`.
  AffineMap map(unsigned dims, ArrayRef<AffineExpr> exprs) {
    return AffineMap::get(dims, 0, exprs, b.getContext());
  }
  AffineExpr d(unsigned i) { return b.getAffineDimExpr(i); }

  Value generic(Type resultType, ValueRange ins, Value out,
                ArrayRef<AffineMap> maps, ArrayRef<IteratorType> iters,
                function_ref<void(OpBuilder &, Location, ValueRange)> body) {
    return linalg::GenericOp::create(b, loc, TypeRange{resultType}, ins,
                                     ValueRange{out}, maps, iters, body)
        .getResult(0);
  }

  PatternRewriter &b;
  Location loc;
};

Value toF32(OpBuilder &b, Location loc, Value v) {
  if (v.getType().isF32())
    return v;
  return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
}

Value fromF32(OpBuilder &b, Location loc, Value v, Type elt) {
  if (elt.isF32())
    return v;
  return arith::TruncFOp::create(b, loc, elt, v);
}

/// Fails the match unless every operand and result is statically shaped:
/// the reference lowering runs after --kiln-specialize-entry-points.
LogicalResult requireStatic(Operation *op, PatternRewriter &rewriter) {
  for (Type t : llvm::concat<Type>(op->getOperandTypes(), op->getResultTypes()))
    if (auto s = dyn_cast<ShapedType>(t); s && !s.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs static shapes");
  return success();
}

/// Elementwise `fn` over equally shaped operands (any rank; tfm.add and
/// tfm.swiglu allow any), computed in f32.
Value elementwise(Builder &g, ValueRange operands, RankedTensorType resultType,
                  function_ref<Value(OpBuilder &, Location, ValueRange)> fn) {
  unsigned rank = resultType.getRank();
  AffineMap id = AffineMap::getMultiDimIdentityMap(rank, g.b.getContext());
  SmallVector<AffineMap> maps(operands.size() + 1, id);
  Type elt = resultType.getElementType();
  return g.generic(resultType, operands, g.empty(resultType.getShape(), elt),
                   maps, SmallVector<IteratorType>(rank, kPar),
                   [&](OpBuilder &b, Location loc, ValueRange args) {
                     SmallVector<Value> xs;
                     for (Value a : args.drop_back())
                       xs.push_back(toF32(b, loc, a));
                     linalg::YieldOp::create(
                         b, loc, fromF32(b, loc, fn(b, loc, xs), elt));
                   });
}

/// `acc` (f32 [B, S, N]) plus `bias[n]`, rounded to the result type.
Value finishProjection(Builder &g, Value acc, Value bias,
                       RankedTensorType resultType) {
  Type elt = resultType.getElementType();
  if (!bias && elt.isF32())
    return acc;
  SmallVector<Value> ins{acc};
  SmallVector<AffineMap> maps{g.map(3, {g.d(0), g.d(1), g.d(2)})};
  if (bias) {
    ins.push_back(bias);
    maps.push_back(g.map(3, {g.d(2)}));
  }
  maps.push_back(g.map(3, {g.d(0), g.d(1), g.d(2)}));
  return g.generic(resultType, ins, g.empty(resultType.getShape(), elt), maps,
                   {kPar, kPar, kPar},
                   [&](OpBuilder &b, Location loc, ValueRange a) {
                     Value v = a[0];
                     if (bias)
                       v = arith::AddFOp::create(b, loc, v,
                                                 toF32(b, loc, a[1]));
                     linalg::YieldOp::create(b, loc, fromF32(b, loc, v, elt));
                   });
}

/// acc[b, s, n] = sum_k x[b, s, k] * W[k, n] (in_out) or W[n, k] (out_in),
/// then `+ bias[n]` and rounding to the result type.
Value projection(Builder &g, Value x, Value w, Value bias,
                 tfm::WeightLayout layout, RankedTensorType resultType) {
  auto [batch, seq, n] = std::make_tuple(resultType.getDimSize(0),
                                         resultType.getDimSize(1),
                                         resultType.getDimSize(2));
  AffineMap wMap = layout == tfm::WeightLayout::in_out
                       ? g.map(4, {g.d(3), g.d(2)})
                       : g.map(4, {g.d(2), g.d(3)});
  Value acc = g.generic(
      RankedTensorType::get({batch, seq, n}, g.b.getF32Type()), {x, w},
      g.filled({batch, seq, n}, 0.0),
      {g.map(4, {g.d(0), g.d(1), g.d(3)}), wMap,
       g.map(4, {g.d(0), g.d(1), g.d(2)})},
      {kPar, kPar, kPar, kRed},
      [&](OpBuilder &b, Location loc, ValueRange a) {
        Value prod = arith::MulFOp::create(b, loc, toF32(b, loc, a[0]),
                                           toF32(b, loc, a[1]));
        linalg::YieldOp::create(b, loc,
                                arith::AddFOp::create(b, loc, a[2], prod)
                                    .getResult());
      });
  return finishProjection(g, acc, bias, resultType);
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
    code = arith::AndIOp::create(
        b, loc, arith::ShRUIOp::create(b, loc, code, shift),
        arith::ConstantIntOp::create(b, loc, i32, 15));
  }
  Value q = arith::UIToFPOp::create(b, loc, b.getF32Type(), code);
  Value zero = dq.getZeroPoints()
                   ? toF32(b, loc, args[2])
                   : arith::ConstantOp::create(
                         b, loc,
                         b.getF32FloatAttr(double(int64_t{1}
                                                  << (dq.getBits() - 1))));
  return arith::MulFOp::create(b, loc, arith::SubFOp::create(b, loc, q, zero),
                               toF32(b, loc, args[1]));
}

/// The packed, scales and zero-point operands of `dq` with their maps from
/// (row, col) dims `row` and `col`.
void dequantizeOperands(Builder &g, tfm::DequantizeOp dq, unsigned dims,
                        AffineExpr row, AffineExpr col,
                        SmallVector<Value> &ins,
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
Value quantizedProjection(Builder &g, Value x, tfm::DequantizeOp dq, Value bias,
                          RankedTensorType resultType, StringRef opName) {
  auto [batch, seq, n] = std::make_tuple(resultType.getDimSize(0),
                                         resultType.getDimSize(1),
                                         resultType.getDimSize(2));
  SmallVector<Value> ins{x};
  SmallVector<AffineMap> maps{g.map(4, {g.d(0), g.d(1), g.d(3)})};
  dequantizeOperands(g, dq, 4, g.d(2), g.d(3), ins, maps);
  maps.push_back(g.map(4, {g.d(0), g.d(1), g.d(2)}));
  auto generic = linalg::GenericOp::create(
      g.b, g.loc, TypeRange{RankedTensorType::get({batch, seq, n},
                                                  g.b.getF32Type())},
      ins, ValueRange{g.filled({batch, seq, n}, 0.0)}, maps,
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
  return finishProjection(g, generic.getResult(0), bias, resultType);
}

/// A projection by `w` in `layout`, fused with its dequantization when a
/// tfm.dequantize makes `w`.
Value anyProjection(Builder &g, Value x, Value w, Value bias,
                    tfm::WeightLayout layout, RankedTensorType resultType,
                    StringRef opName) {
  if (auto dq = w.getDefiningOp<tfm::DequantizeOp>();
      dq && layout == tfm::WeightLayout::out_in)
    return quantizedProjection(g, x, dq, bias, resultType, opName);
  return projection(g, x, w, bias, layout, resultType);
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

/// What every pattern shares: a tfm op lowers only with static shapes
/// (after --kiln-specialize-entry-points; the pass reports the others
/// first), into ops that replace its one result.
template <typename OpT>
struct TfmLowering : OpConversionPattern<OpT> {
  using OpConversionPattern<OpT>::OpConversionPattern;

  LogicalResult
  matchAndRewrite(OpT op, typename OpT::Adaptor,
                  ConversionPatternRewriter &rewriter) const final {
    if (failed(requireStatic(op, rewriter)))
      return failure();
    FailureOr<Value> result = lower(op, rewriter);
    if (failed(result))
      return failure();
    rewriter.replaceOp(op, *result);
    return success();
  }

  /// The value that replaces `op`'s result.
  virtual FailureOr<Value> lower(OpT op, PatternRewriter &rewriter) const = 0;
};

struct LowerEmbedding : TfmLowering<tfm::EmbeddingOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::EmbeddingOp op,
                         PatternRewriter &rewriter) const override {
    Builder g(rewriter, op.getLoc());
    RankedTensorType type = op.getType();
    Value table = op.getTable();
    Value result = g.generic(
        type, {op.getIds()}, g.empty(type.getShape(), type.getElementType()),
        {g.map(3, {g.d(0), g.d(1)}), g.map(3, {g.d(0), g.d(1), g.d(2)})},
        {kPar, kPar, kPar}, [&](OpBuilder &b, Location loc, ValueRange a) {
          Value row = arith::IndexCastOp::create(b, loc, b.getIndexType(), a[0]);
          Value col = linalg::IndexOp::create(b, loc, 2);
          linalg::YieldOp::create(
              b, loc,
              tensor::ExtractOp::create(b, loc, table, ValueRange{row, col})
                  .getResult());
        });
    return result;
  }
};

struct LowerRmsNorm : TfmLowering<tfm::RmsNormOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::RmsNormOp op,
                         PatternRewriter &rewriter) const override {
    Builder g(rewriter, op.getLoc());
    RankedTensorType type = op.getType();
    auto shape = type.getShape();
    Value sumSq = g.generic(
        RankedTensorType::get(shape.take_front(2), rewriter.getF32Type()),
        {op.getInput()}, g.filled(shape.take_front(2), 0.0),
        {g.map(3, {g.d(0), g.d(1), g.d(2)}), g.map(3, {g.d(0), g.d(1)})},
        {kPar, kPar, kRed}, [&](OpBuilder &b, Location loc, ValueRange a) {
          Value x = toF32(b, loc, a[0]);
          Value sq = arith::MulFOp::create(b, loc, x, x);
          linalg::YieldOp::create(
              b, loc, arith::AddFOp::create(b, loc, a[1], sq).getResult());
        });
    Value hidden = g.f32(static_cast<double>(shape[2]));
    Value eps = g.f32(op.getEpsilon().convertToDouble());
    Value one = g.f32(1.0);
    Type elt = type.getElementType();
    Value result = g.generic(
        type, {op.getInput(), sumSq, op.getWeight()},
        g.empty(shape, elt),
        {g.map(3, {g.d(0), g.d(1), g.d(2)}), g.map(3, {g.d(0), g.d(1)}),
         g.map(3, {g.d(2)}), g.map(3, {g.d(0), g.d(1), g.d(2)})},
        {kPar, kPar, kPar}, [&](OpBuilder &b, Location loc, ValueRange a) {
          Value mean = arith::DivFOp::create(b, loc, a[1], hidden);
          Value rms = math::SqrtOp::create(
              b, loc, arith::AddFOp::create(b, loc, mean, eps));
          Value inv = arith::DivFOp::create(b, loc, one, rms);
          Value v = arith::MulFOp::create(b, loc, toF32(b, loc, a[0]), inv);
          v = arith::MulFOp::create(b, loc, v, toF32(b, loc, a[2]));
          linalg::YieldOp::create(b, loc, fromF32(b, loc, v, elt));
        });
    return result;
  }
};

struct LowerLinear : TfmLowering<tfm::LinearOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::LinearOp op,
                         PatternRewriter &rewriter) const override {
    Builder g(rewriter, op.getLoc());
    return anyProjection(g, op.getInput(), op.getWeight(),
                                         op.getBias(), op.getLayout(),
                                         op.getType(), "tfm.linear");
  }
};

struct LowerLogits : TfmLowering<tfm::LogitsOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::LogitsOp op,
                         PatternRewriter &rewriter) const override {
    Builder g(rewriter, op.getLoc());
    return anyProjection(g, op.getInput(), op.getWeight(),
                                         Value(), op.getLayout(), op.getType(),
                                         "tfm.logits");
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
    Builder g(rewriter, op.getLoc());
    RankedTensorType type = op.getType();
    SmallVector<Value> ins;
    SmallVector<AffineMap> maps;
    dequantizeOperands(g, op, 2, g.d(0), g.d(1), ins, maps);
    maps.push_back(g.map(2, {g.d(0), g.d(1)}));
    Type elt = type.getElementType();
    return g.generic(type, ins, g.empty(type.getShape(), elt), maps,
                      {kPar, kPar}, [&](OpBuilder &b, Location loc,
                                        ValueRange a) {
                        Value col = linalg::IndexOp::create(b, loc, 1);
                        Value w = dequantizedElement(b, loc, op,
                                                     a.drop_back(), col);
                        linalg::YieldOp::create(b, loc,
                                                fromF32(b, loc, w, elt));
                      });
  }
};

struct LowerRope : TfmLowering<tfm::RopeOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::RopeOp op,
                         PatternRewriter &rewriter) const override {
    Builder g(rewriter, op.getLoc());
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
          Value xv = toF32(b, loc,
                           tensor::ExtractOp::create(b, loc, x,
                                                     ValueRange{bi, si, c}));
          Value xp = toF32(
              b, loc,
              tensor::ExtractOp::create(b, loc, x, ValueRange{bi, si, partner}));
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
    return result;
  }
};

struct LowerSwiGlu : TfmLowering<tfm::SwiGluOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::SwiGluOp op,
                         PatternRewriter &rewriter) const override {
    Builder g(rewriter, op.getLoc());
    Value one = g.f32(1.0);
    return elementwise(g, {op.getGate(), op.getUp()}, op.getType(),
                        [&](OpBuilder &b, Location loc, ValueRange x) {
                          Value e = math::ExpOp::create(
                              b, loc, arith::NegFOp::create(b, loc, x[0]));
                          Value sig = arith::DivFOp::create(
                              b, loc, one, arith::AddFOp::create(b, loc, one, e));
                          Value silu = arith::MulFOp::create(b, loc, x[0], sig);
                          return arith::MulFOp::create(b, loc, silu, x[1])
                              .getResult();
                        });
  }
};

struct LowerAdd : TfmLowering<tfm::AddOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::AddOp op,
                         PatternRewriter &rewriter) const override {
    Builder g(rewriter, op.getLoc());
    return elementwise(g, {op.getLhs(), op.getRhs()}, op.getType(),
                        [](OpBuilder &b, Location loc, ValueRange x) {
                          return arith::AddFOp::create(b, loc, x[0], x[1])
                              .getResult();
                        });
  }
};

/// for b, s: if 0 <= p < max_seq: cache[b, :, p, :] = value[b, s, :].
struct LowerKvAppend : TfmLowering<tfm::KvAppendOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::KvAppendOp op,
                         PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType cacheType = op.getType();
    RankedTensorType valueType = op.getValue().getType();
    int64_t kvHeads = cacheType.getDimSize(1), maxSeq = cacheType.getDimSize(2),
            headDim = cacheType.getDimSize(3);
    Builder g(rewriter, loc);
    Value c0 = g.index(0), c1 = g.index(1);
    Value value = op.getValue(), positions = op.getPositions();
    Type posType = cast<ShapedType>(positions.getType()).getElementType();
    Value zero = arith::ConstantOp::create(
        rewriter, loc, rewriter.getIntegerAttr(posType, 0));
    Value limit = arith::ConstantOp::create(
        rewriter, loc, rewriter.getIntegerAttr(posType, maxSeq));
    auto outer = scf::ForOp::create(
        rewriter, loc, c0, g.index(valueType.getDimSize(0)), c1,
        ValueRange{op.getCache()},
        [&](OpBuilder &b, Location loc, Value bi, ValueRange outerIter) {
          auto inner = scf::ForOp::create(
              b, loc, c0, arith::ConstantIndexOp::create(
                              b, loc, valueType.getDimSize(1)),
              c1, outerIter,
              [&](OpBuilder &b, Location loc, Value si, ValueRange iter) {
                Value p = tensor::ExtractOp::create(b, loc, positions,
                                                    ValueRange{bi, si});
                Value valid = arith::AndIOp::create(
                    b, loc,
                    arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, p,
                                          zero),
                    arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, p,
                                          limit));
                auto ifOp = scf::IfOp::create(
                    b, loc, valid,
                    [&](OpBuilder &b, Location loc) {
                      Value row = tensor::ExtractSliceOp::create(
                          b, loc,
                          RankedTensorType::get({kvHeads * headDim},
                                                valueType.getElementType()),
                          value, ValueRange{bi, si}, ValueRange{}, ValueRange{},
                          b.getDenseI64ArrayAttr(
                              {ShapedType::kDynamic, ShapedType::kDynamic, 0}),
                          b.getDenseI64ArrayAttr({1, 1, kvHeads * headDim}),
                          b.getDenseI64ArrayAttr({1, 1, 1}));
                      auto sliceType = RankedTensorType::get(
                          {1, kvHeads, 1, headDim}, valueType.getElementType());
                      Value heads = tensor::ExpandShapeOp::create(
                          b, loc, sliceType, row,
                          ArrayRef<ReassociationIndices>{{0, 1, 2, 3}});
                      Value pIdx = arith::IndexCastOp::create(
                          b, loc, b.getIndexType(), p);
                      // Copy into the cache's own slice and insert it back:
                      // bufferizes to an in-place write, no temporary.
                      auto offsets = b.getDenseI64ArrayAttr(
                          {ShapedType::kDynamic, 0, ShapedType::kDynamic, 0});
                      auto sizes =
                          b.getDenseI64ArrayAttr({1, kvHeads, 1, headDim});
                      auto strides = b.getDenseI64ArrayAttr({1, 1, 1, 1});
                      Value slot = tensor::ExtractSliceOp::create(
                          b, loc, sliceType, iter[0], ValueRange{bi, pIdx},
                          ValueRange{}, ValueRange{}, offsets, sizes, strides);
                      Value written =
                          linalg::CopyOp::create(b, loc, heads, slot)
                              .getResult(0);
                      Value updated = tensor::InsertSliceOp::create(
                          b, loc, written, iter[0], ValueRange{bi, pIdx},
                          ValueRange{}, ValueRange{}, offsets, sizes, strides);
                      scf::YieldOp::create(b, loc, updated);
                    },
                    [&](OpBuilder &b, Location loc) {
                      scf::YieldOp::create(b, loc, iter[0]);
                    });
                scf::YieldOp::create(b, loc, ifOp.getResults());
              });
          // Iterations write distinct positions: a GPU may run them in
          // parallel (--kiln-map-loops-to-gpu).
          inner->setAttr("kiln.independent", b.getUnitAttr());
          scf::YieldOp::create(b, loc, inner.getResults());
        });
    outer->setAttr("kiln.independent", rewriter.getUnitAttr());
    return outer.getResult(0);
  }
};

/// Reference attention over the whole cache with a causal mask by position:
///   scores[b,h,s,t] = t <= p[b,s] ? scale * q[b,s,h,:] . K[b,h/rep,t,:] : -inf
///   out[b,s,h,:]   = sum_t softmax_t(scores) * V[b,h/rep,t,:]
/// Rows with no visible key (padding, p < 0) produce zeros.
struct LowerAttention : TfmLowering<tfm::AttentionOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::AttentionOp op,
                         PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Builder g(rewriter, loc);
    RankedTensorType qType = op.getType();
    RankedTensorType cacheType = op.getKeyCache().getType();
    Type elt = qType.getElementType(), f32 = rewriter.getF32Type();
    int64_t batch = qType.getDimSize(0), seq = qType.getDimSize(1);
    int64_t heads = op.getNumHeads(), headDim = op.getHeadDim();
    int64_t maxSeq = cacheType.getDimSize(2);
    int64_t rep = heads / op.getNumKvHeads();

    // q as [B, S, H, D].
    Value q4 = tensor::ExpandShapeOp::create(
        rewriter, loc, RankedTensorType::get({batch, seq, heads, headDim}, elt),
        op.getQuery(), ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3}});
    SmallVector<int64_t> bhst{batch, heads, seq, maxSeq};
    SmallVector<int64_t> bhs{batch, heads, seq};
    auto bhstType = RankedTensorType::get(bhst, f32);
    auto bhsType = RankedTensorType::get(bhs, f32);
    AffineExpr kvHead = g.d(1).floorDiv(rep);

    // Raw dot products over d (dims b, h, s, t, d).
    Value dots = g.generic(
        bhstType, {q4, op.getKeyCache()}, g.filled(bhst, 0.0),
        {g.map(5, {g.d(0), g.d(2), g.d(1), g.d(4)}),
         g.map(5, {g.d(0), kvHead, g.d(3), g.d(4)}),
         g.map(5, {g.d(0), g.d(1), g.d(2), g.d(3)})},
        {kPar, kPar, kPar, kPar, kRed},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          Value prod = arith::MulFOp::create(b, loc, toF32(b, loc, a[0]),
                                             toF32(b, loc, a[1]));
          linalg::YieldOp::create(
              b, loc, arith::AddFOp::create(b, loc, a[2], prod).getResult());
        });
    // Scale and causal mask by position (dims b, h, s, t).
    Value scale = g.f32(op.getScale().convertToDouble());
    Value negInf = g.f32(-std::numeric_limits<double>::infinity());
    AffineMap id4 = AffineMap::getMultiDimIdentityMap(4, rewriter.getContext());
    Value masked = g.generic(
        bhstType, {dots, op.getPositions()}, g.empty(bhst, f32),
        {id4, g.map(4, {g.d(0), g.d(2)}), id4}, {kPar, kPar, kPar, kPar},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          Value t = arith::IndexCastOp::create(b, loc, a[1].getType(),
                                               linalg::IndexOp::create(b, loc, 3));
          Value visible = arith::CmpIOp::create(
              b, loc, arith::CmpIPredicate::sle, t, a[1]);
          Value s = arith::MulFOp::create(b, loc, a[0], scale);
          linalg::YieldOp::create(
              b, loc, arith::SelectOp::create(b, loc, visible, s, negInf)
                          .getResult());
        });
    AffineMap toBhs = g.map(4, {g.d(0), g.d(1), g.d(2)});
    Value rowMax = g.generic(
        bhsType, {masked},
        g.filled(bhs, -std::numeric_limits<double>::infinity()), {id4, toBhs},
        {kPar, kPar, kPar, kRed}, [&](OpBuilder &b, Location loc, ValueRange a) {
          linalg::YieldOp::create(
              b, loc, arith::MaximumFOp::create(b, loc, a[0], a[1]).getResult());
        });
    Value zero = g.f32(0.0);
    Value probs = g.generic(
        bhstType, {masked, rowMax}, g.empty(bhst, f32), {id4, toBhs, id4},
        {kPar, kPar, kPar, kPar}, [&](OpBuilder &b, Location loc, ValueRange a) {
          Value e = math::ExpOp::create(b, loc,
                                        arith::SubFOp::create(b, loc, a[0], a[1]));
          Value empty = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ,
                                              a[1], negInf);
          linalg::YieldOp::create(
              b, loc, arith::SelectOp::create(b, loc, empty, zero, e).getResult());
        });
    Value rowSum = g.generic(
        bhsType, {probs}, g.filled(bhs, 0.0), {id4, toBhs},
        {kPar, kPar, kPar, kRed}, [&](OpBuilder &b, Location loc, ValueRange a) {
          linalg::YieldOp::create(
              b, loc, arith::AddFOp::create(b, loc, a[0], a[1]).getResult());
        });
    // Weighted sum of values (dims b, h, s, d, t).
    SmallVector<int64_t> bhsd{batch, heads, seq, headDim};
    Value weighted = g.generic(
        RankedTensorType::get(bhsd, f32), {probs, op.getValueCache()},
        g.filled(bhsd, 0.0),
        {g.map(5, {g.d(0), g.d(1), g.d(2), g.d(4)}),
         g.map(5, {g.d(0), kvHead, g.d(4), g.d(3)}),
         g.map(5, {g.d(0), g.d(1), g.d(2), g.d(3)})},
        {kPar, kPar, kPar, kPar, kRed},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          Value prod = arith::MulFOp::create(b, loc, a[0], toF32(b, loc, a[1]));
          linalg::YieldOp::create(
              b, loc, arith::AddFOp::create(b, loc, a[2], prod).getResult());
        });
    // Normalize and go back to [B, S, H, D] (dims b, s, h, d).
    SmallVector<int64_t> bshd{batch, seq, heads, headDim};
    Value out4 = g.generic(
        RankedTensorType::get(bshd, elt), {weighted, rowSum},
        g.empty(bshd, elt),
        {g.map(4, {g.d(0), g.d(2), g.d(1), g.d(3)}),
         g.map(4, {g.d(0), g.d(2), g.d(1)}), id4},
        {kPar, kPar, kPar, kPar}, [&](OpBuilder &b, Location loc, ValueRange a) {
          Value positive = arith::CmpFOp::create(
              b, loc, arith::CmpFPredicate::OGT, a[1], zero);
          Value v = arith::SelectOp::create(
              b, loc, positive, arith::DivFOp::create(b, loc, a[0], a[1]), zero);
          linalg::YieldOp::create(b, loc, fromF32(b, loc, v, elt));
        });
    // Provenance for kernel formation (kiln-select-kernels): every op of
    // this lowering says which tfm.attention it computes and which step it
    // is, with the attention's parameters, so a GPU kernel can take the
    // whole group without re-deriving it from the loops.
    auto id = op->getAttrOfType<IntegerAttr>(kRegionIdAttr);
    if (id) {
      auto tag = [&](Value v, int64_t step) {
        NamedAttrList attrs;
        attrs.append("op", rewriter.getStringAttr("tfm.attention"));
        attrs.append("id", id);
        attrs.append("step", rewriter.getI64IntegerAttr(step));
        attrs.append("num_heads", op.getNumHeadsAttr());
        attrs.append("num_kv_heads", op.getNumKvHeadsAttr());
        attrs.append("head_dim", op.getHeadDimAttr());
        attrs.append("scale", op.getScaleAttr());
        DictionaryAttr region = attrs.getDictionary(rewriter.getContext());
        Operation *def = v.getDefiningOp();
        def->setAttr(kRegionAttr, region);
        // The fill of a reduction's accumulator belongs to the group too.
        if (auto generic = dyn_cast<linalg::GenericOp>(def))
          if (auto fill = generic.getDpsInits()[0].getDefiningOp<linalg::FillOp>())
            fill->setAttr(kRegionAttr, region);
      };
      SmallVector<Value> steps{dots,   masked,   rowMax, probs,
                               rowSum, weighted, out4};
      for (auto [step, v] : llvm::enumerate(steps))
        tag(v, static_cast<int64_t>(step));
    }
    return tensor::CollapseShapeOp::create(
               rewriter, loc, qType, out4,
               ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3}})
        .getResult();
  }
};

/// Row-wise argmax as one reduction with two results (value, index); strict
/// `>` keeps the first index on ties.
struct LowerArgmax : TfmLowering<tfm::ArgmaxOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::ArgmaxOp op,
                         PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Builder g(rewriter, loc);
    RankedTensorType type = op.getType();
    Value maxInit = g.filled(type.getShape(),
                             -std::numeric_limits<double>::infinity());
    Value zero = arith::ConstantOp::create(rewriter, loc,
                                           rewriter.getI64IntegerAttr(0));
    Value idxInit =
        linalg::FillOp::create(rewriter, loc, ValueRange{zero},
                               ValueRange{g.empty(type.getShape(),
                                                  rewriter.getI64Type())})
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
          Value better = arith::CmpFOp::create(
              b, loc, arith::CmpFPredicate::OGT, x, a[1]);
          linalg::YieldOp::create(
              b, loc,
              ValueRange{arith::SelectOp::create(b, loc, better, x, a[1]),
                         arith::SelectOp::create(b, loc, better, v, a[2])});
        });
    return generic.getResult(1);
  }
};

struct LowerTfmToLinalg : kiln::impl::LowerTfmToLinalgBase<LowerTfmToLinalg> {
  void runOnOperation() override {
    // Number the attentions, for the provenance of their lowered ops.
    int64_t attentions = 0;
    getOperation().walk([&](tfm::AttentionOp op) {
      op->setAttr(kRegionIdAttr,
                  IntegerAttr::get(IntegerType::get(&getContext(), 64),
                                   attentions++));
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
    target.addDynamicallyLegalOp<tfm::DequantizeOp>([](tfm::DequantizeOp op) {
      return !op->use_empty() && llvm::all_of(op->getUsers(), [](Operation *u) {
        return isa<tfm::LinearOp, tfm::LogitsOp>(u);
      });
    });
    RewritePatternSet patterns(&getContext());
    patterns.add<LowerEmbedding, LowerRmsNorm, LowerLinear, LowerLogits,
                 LowerDequantize, LowerRope, LowerSwiGlu, LowerAdd,
                 LowerKvAppend, LowerAttention, LowerArgmax>(&getContext());
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
