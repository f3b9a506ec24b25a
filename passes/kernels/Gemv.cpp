//===- Gemv.cpp - What the GEMV kernel recipes share ----------------------===//

#include "passes/kernels/Gemv.h"
#include "dialects/Kiln/KilnDialect.h"

namespace kiln::kernels::gemv {

/// Matches the linalg.generic that --kiln-lower-tfm-to-linalg makes of
/// tfm.linear and tfm.logits, bufferized: ins(x : [B, S, K], w), outs(acc :
/// [B, S, N] f32), iterators (parallel x 3, reduction), body
/// acc + ext(x) * ext(w). `inOut`: w is [K, N] (else [N, K]).
std::optional<Projection> matchProjection(Operation *op, bool inOut) {
  auto g = dyn_cast<linalg::GenericOp>(op);
  if (!g || !g.hasPureBufferSemantics() || g.getNumDpsInputs() != 2 ||
      g.getNumDpsInits() != 1)
    return std::nullopt;
  using utils::IteratorType;
  if (g.getIteratorTypesArray() !=
      SmallVector<IteratorType>{IteratorType::parallel, IteratorType::parallel,
                                IteratorType::parallel,
                                IteratorType::reduction})
    return std::nullopt;
  MLIRContext *ctx = op->getContext();
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto map = [&](ArrayRef<AffineExpr> exprs) {
    return AffineMap::get(4, 0, exprs, ctx);
  };
  SmallVector<AffineMap> expected{map({d(0), d(1), d(3)}),
                                  inOut ? map({d(3), d(2)}) : map({d(2), d(3)}),
                                  map({d(0), d(1), d(2)})};
  if (g.getIndexingMapsArray() != expected)
    return std::nullopt;
  auto x = dyn_cast<MemRefType>(g.getDpsInputs()[0].getType());
  auto w = dyn_cast<MemRefType>(g.getDpsInputs()[1].getType());
  auto out = dyn_cast<MemRefType>(g.getDpsInits()[0].getType());
  if (!x || !w || !out || !x.hasStaticShape() || !w.hasStaticShape() ||
      !out.hasStaticShape() || !w.getLayout().isIdentity() ||
      !out.getElementType().isF32() || !isa<FloatType>(x.getElementType()) ||
      !isa<FloatType>(w.getElementType()))
    return std::nullopt;

  // acc + x * w, in either operand order.
  Block &body = g.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto add = yield.getNumOperands() == 1
                 ? yield.getOperand(0).getDefiningOp<arith::AddFOp>()
                 : arith::AddFOp();
  if (!add || body.getOperations().size() > 5)
    return std::nullopt;
  Value acc = body.getArgument(2);
  Value product = add.getLhs() == acc   ? add.getRhs()
                  : add.getRhs() == acc ? add.getLhs()
                                        : Value();
  auto mul = product ? product.getDefiningOp<arith::MulFOp>() : arith::MulFOp();
  if (!mul)
    return std::nullopt;
  Value a = withoutExt(mul.getLhs()), b = withoutExt(mul.getRhs());
  if (!((a == body.getArgument(0) && b == body.getArgument(1)) ||
        (a == body.getArgument(1) && b == body.getArgument(0))))
    return std::nullopt;

  Projection p;
  p.batch = x.getDimSize(0);
  p.seq = x.getDimSize(1);
  p.k = x.getDimSize(2);
  p.n = out.getDimSize(2);
  p.weightType = w.getElementType();
  p.inputType = x.getElementType();
  return p;
}

std::optional<RowNormOps> rowNormOf(Operation *op) {
  auto proj = dyn_cast<linalg::GenericOp>(op);
  if (!proj || proj.getNumDpsInputs() < 1 || proj.getNumDpsInits() != 1)
    return std::nullopt;
  Value x = proj.getDpsInputs()[0], out = proj.getDpsInits()[0];
  for (Operation *user : x.getUsers()) {
    auto sum = dyn_cast<linalg::GenericOp>(user);
    auto region =
        sum ? sum->getAttrOfType<DictionaryAttr>(kRegionAttr) : nullptr;
    auto step = region ? region.getAs<StringAttr>("step") : nullptr;
    if (!step || step.getValue() != "sum_squares" ||
        sum->getBlock() != op->getBlock() || !sum->isBeforeInBlock(op) ||
        !sum.hasPureBufferSemantics() || sum.getNumDpsInputs() != 1 ||
        sum.getDpsInputs()[0] != x || sum.getNumDpsInits() != 1)
      continue;
    RowNormOps norm;
    norm.sum = sum;
    norm.squares = sum.getDpsInits()[0];
    auto type = dyn_cast<MemRefType>(norm.squares.getType());
    if (!type || type.getRank() != 2 || !type.getElementType().isF32())
      continue;
    bool finished = false, ok = true;
    for (Operation *other : norm.squares.getUsers()) {
      if (other == sum.getOperation() || isa<memref::DeallocOp>(other))
        continue;
      if (auto fill = dyn_cast<linalg::FillOp>(other);
          fill && fill->getBlock() == sum->getBlock() &&
          fill->isBeforeInBlock(sum) && !norm.fill) {
        norm.fill = fill;
        continue;
      }
      auto finish = dyn_cast<linalg::GenericOp>(other);
      if (finish && op->isBeforeInBlock(finish) &&
          llvm::any_of(finish.getDpsInputs(), [&](Value v) {
            return GemvRecipe::columnOffset(v, out).has_value();
          })) {
        finished = true;
        continue;
      }
      ok = false; // some other reader: leave the sum to its own kernel
    }
    if (finished && ok)
      return norm;
  }
  return std::nullopt;
}

/// What both GEMV kernels share: the projection they implement (at most 8
/// rows, 16- or 32-bit weights) and its operands inside the kernel.

} // namespace kiln::kernels::gemv
