//===- LowerTfm.h - What the tfm -> linalg patterns share -----*- C++ -*-===//
//
// --kiln-lower-tfm-to-linalg (LowerTfmToLinalg.cpp) runs the patterns of
// three files as one dialect conversion: Projections.cpp (tfm.linear,
// tfm.logits, tfm.dequantize), Attention.cpp (tfm.kv_append,
// tfm.attention) and Layer.cpp (the others). They share the helpers here:
// a builder of linalg.generic nests computing in f32, and TfmLowering, the
// base of every pattern.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_LOWERING_TFM_LOWERTFM_H
#define KILN_PASSES_LOWERING_TFM_LOWERTFM_H

#include "dialects/Kiln/KilnDialect.h"
#include "dialects/Tfm/TfmOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/DialectConversion.h"

namespace kiln::tfm_lowering {

using namespace mlir;
using utils::IteratorType;

inline constexpr IteratorType kPar = IteratorType::parallel;
inline constexpr IteratorType kRed = IteratorType::reduction;

/// Builds linalg.generic nests (and their inits) at one location.
struct NestBuilder {
  NestBuilder(PatternRewriter &rewriter, Location loc)
      : b(rewriter), loc(loc) {}

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

inline Value toF32(OpBuilder &b, Location loc, Value v) {
  if (v.getType().isF32())
    return v;
  return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
}

inline Value fromF32(OpBuilder &b, Location loc, Value v, Type elt) {
  if (elt.isF32())
    return v;
  return arith::TruncFOp::create(b, loc, elt, v);
}

/// Fails the match unless every operand and result is statically shaped:
/// the reference lowering runs after --kiln-specialize-entry-points.
inline LogicalResult requireStatic(Operation *op, PatternRewriter &rewriter) {
  for (Type t : llvm::concat<Type>(op->getOperandTypes(), op->getResultTypes()))
    if (auto s = dyn_cast<ShapedType>(t); s && !s.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs static shapes");
  return success();
}

/// Elementwise `fn` over equally shaped operands (any rank; tfm.add and
/// tfm.swiglu allow any), computed in f32.
inline Value
elementwise(NestBuilder &g, ValueRange operands, RankedTensorType resultType,
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

/// What every pattern shares: a tfm op lowers only with static shapes
/// (after --kiln-specialize-entry-points; the pass reports the others
/// first), into ops that replace its one result.
template <typename OpT> struct TfmLowering : OpConversionPattern<OpT> {
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

/// sum_k x[b, s, k]^2 as f32 [B, S] for x [B, S, K]: RMSNorm's reduction
/// (tfm.rms_norm, and tfm.linear with rms_norm_epsilon).
Value rowSumOfSquares(NestBuilder &g, Value x);
/// Inside a body: 1 / sqrt(sum / features + eps), the inverse RMS of a row
/// from its sum of squares (all f32).
Value inverseRms(OpBuilder &b, Location loc, Value sum, Value features,
                 Value eps, Value one);

/// The patterns of each file.
void populateProjectionPatterns(RewritePatternSet &patterns);
void populateAttentionPatterns(RewritePatternSet &patterns);
void populateLayerPatterns(RewritePatternSet &patterns);

} // namespace kiln::tfm_lowering

#endif // KILN_PASSES_LOWERING_TFM_LOWERTFM_H
