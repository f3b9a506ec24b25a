//===- ArgmaxRows.cpp - The argmax_rows kernel
//------------------------------===//
//
// The argmax_rows recipe of the kernel library (KernelLibrary.h); how it maps
// the work is described at its class.
//
//===----------------------------------------------------------------------===//

#include "passes/kernels/KernelBuilder.h"
#include "passes/kernels/KernelLibrary.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"

#include <limits>

namespace kiln::kernels {
using namespace mlir;

namespace {

/// argmax_rows: tfm.argmax's reduction (value and first index of the largest
/// element of each row of [B, S, V], strict `>`, starting from the values
/// already in the two outputs), a block of 1024 threads per row. Thread t
/// scans elements t, t + 1024, ... (coalesced; 16 loads issued together),
/// warps combine (value, index)
/// pairs with
/// gpu.shuffle xor, workgroup memory combines the 32 warps, and thread 0
/// folds the row's winner into the outputs as the sequential scan would:
/// it replaces them only when strictly greater.
class ArgmaxRows final : public KernelRecipe {
public:
  static constexpr int64_t kThreads = 1024;
  static constexpr int64_t kUnroll = 16;

  StringRef name() const override { return "argmax_rows"; }

  struct Shape {
    int64_t batch, seq, vocab;
  };

  static std::optional<Shape> match(Operation *op) {
    auto g = dyn_cast<linalg::GenericOp>(op);
    if (!g || !g.hasPureBufferSemantics() || g.getNumDpsInputs() != 1 ||
        g.getNumDpsInits() != 2)
      return std::nullopt;
    using utils::IteratorType;
    if (g.getIteratorTypesArray() !=
        SmallVector<IteratorType>{IteratorType::parallel,
                                  IteratorType::parallel,
                                  IteratorType::reduction})
      return std::nullopt;
    MLIRContext *ctx = op->getContext();
    auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    SmallVector<AffineMap> expected{
        AffineMap::get(3, 0, {d(0), d(1), d(2)}, ctx),
        AffineMap::get(3, 0, {d(0), d(1)}, ctx),
        AffineMap::get(3, 0, {d(0), d(1)}, ctx)};
    if (g.getIndexingMapsArray() != expected)
      return std::nullopt;
    auto in = dyn_cast<MemRefType>(g.getDpsInputs()[0].getType());
    auto best = dyn_cast<MemRefType>(g.getDpsInits()[0].getType());
    auto index = dyn_cast<MemRefType>(g.getDpsInits()[1].getType());
    if (!in || !best || !index || !in.hasStaticShape() ||
        !best.getElementType().isF32() ||
        !index.getElementType().isInteger(64) ||
        !isa<FloatType>(in.getElementType()) ||
        in.getDimSize(2) >= (int64_t(1) << 31))
      return std::nullopt;
    // yield select(x > best, x, best), select(x > best, index(2), idx).
    Block &body = g.getRegion().front();
    auto yield = cast<linalg::YieldOp>(body.getTerminator());
    auto selV = yield.getOperand(0).getDefiningOp<arith::SelectOp>();
    auto selI = yield.getOperand(1).getDefiningOp<arith::SelectOp>();
    if (!selV || !selI || selV.getCondition() != selI.getCondition() ||
        selV.getFalseValue() != body.getArgument(1) ||
        selI.getFalseValue() != body.getArgument(2))
      return std::nullopt;
    auto cmp = selV.getCondition().getDefiningOp<arith::CmpFOp>();
    if (!cmp || cmp.getPredicate() != arith::CmpFPredicate::OGT ||
        cmp.getLhs() != selV.getTrueValue() ||
        cmp.getRhs() != body.getArgument(1) ||
        withoutExt(cmp.getLhs()) != body.getArgument(0))
      return std::nullopt;
    auto cast = selI.getTrueValue().getDefiningOp<arith::IndexCastOp>();
    auto linalgIndex = cast ? cast.getIn().getDefiningOp<linalg::IndexOp>()
                            : linalg::IndexOp();
    if (!linalgIndex || linalgIndex.getDim() != 2)
      return std::nullopt;
    return Shape{in.getDimSize(0), in.getDimSize(1), in.getDimSize(2)};
  }

  bool matches(Operation *op) const override { return match(op).has_value(); }

  FailureOr<LaunchShape> build(OpBuilder &b, Operation *op, IRMapping &map,
                               gpu::GPUFuncOp kernel, Value init,
                               ArrayRef<Operation *> fused) const override {
    std::optional<Shape> shape = match(op);
    if (!shape)
      return failure();
    auto g = cast<linalg::GenericOp>(op);
    Location loc = op->getLoc();
    Value in = map.lookup(g.getDpsInputs()[0]);
    Value bestOut = map.lookup(g.getDpsInits()[0]);
    Value indexOut = map.lookup(g.getDpsInits()[1]);
    Type f32 = b.getF32Type(), i32 = b.getI32Type();
    const int64_t warps = kThreads / 32;
    KernelBuilder kb(b, loc, kernel);
    auto idx = [&](int64_t v) { return kb.index(v); };
    auto i32c = [&](int64_t v) {
      return arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(v));
    };
    Value tid = kb.threadIdX();
    Value row = kb.blockIdX();
    Value bi = arith::DivUIOp::create(b, loc, row, idx(shape->seq));
    Value si = arith::RemUIOp::create(b, loc, row, idx(shape->seq));
    Value negInf = arith::ConstantOp::create(
        b, loc, b.getF32FloatAttr(-std::numeric_limits<float>::infinity()));
    Value noIndex = i32c(std::numeric_limits<int32_t>::max());
    // Folds element k into the running (value, index); ascending k with a
    // strict `>` keeps the thread's first maximum.
    auto fold = [&](OpBuilder &nb, Location l, Value k, Value x,
                    SmallVector<Value, 2> &acc) {
      if (x.getType() != f32)
        x = arith::ExtFOp::create(nb, l, f32, x);
      Value gt =
          arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT, x, acc[0]);
      Value k32 = arith::IndexCastOp::create(nb, l, i32, k);
      acc = {arith::SelectOp::create(nb, l, gt, x, acc[0]),
             arith::SelectOp::create(nb, l, gt, k32, acc[1])};
    };
    // kUnroll elements per thread and iteration, all loaded before any is
    // compared: a row of 128K logits is 8 dependent rounds of loads instead
    // of 125. The rest (fewer than kThreads * kUnroll) one at a time.
    const int64_t step = kThreads * kUnroll;
    const int64_t full = shape->vocab / step * step;
    SmallVector<Value> inits{negInf, noIndex};
    if (full > 0) {
      auto main = scf::ForOp::create(
          b, loc, tid, idx(full), idx(step), inits,
          [&](OpBuilder &nb, Location l, Value k, ValueRange args) {
            SmallVector<Value> ks, xs;
            for (int64_t u = 0; u < kUnroll; ++u) {
              ks.push_back(
                  u ? arith::AddIOp::create(nb, l, k, idx(u * kThreads))
                          .getResult()
                    : k);
              xs.push_back(
                  memref::LoadOp::create(nb, l, in, ValueRange{bi, si, ks[u]}));
            }
            SmallVector<Value, 2> acc(args.begin(), args.end());
            for (int64_t u = 0; u < kUnroll; ++u)
              fold(nb, l, ks[u], xs[u], acc);
            scf::YieldOp::create(nb, l, acc);
          });
      inits.assign(main.getResults().begin(), main.getResults().end());
    }
    Value tailStart =
        full ? arith::AddIOp::create(b, loc, tid, idx(full)).getResult() : tid;
    auto scan = scf::ForOp::create(
        b, loc, tailStart, idx(shape->vocab), idx(kThreads), inits,
        [&](OpBuilder &nb, Location l, Value k, ValueRange args) {
          SmallVector<Value, 2> acc(args.begin(), args.end());
          fold(nb, l, k,
               memref::LoadOp::create(nb, l, in, ValueRange{bi, si, k}), acc);
          scf::YieldOp::create(nb, l, acc);
        });
    OpBuilder::InsertionGuard guard(b);
    auto [bv, bx] = kb.blockArgmax(scan.getResult(0), scan.getResult(1), warps);
    // Fold into the outputs like the sequential scan: only a strictly larger
    // value replaces what they hold.
    Value oldV = memref::LoadOp::create(b, loc, bestOut, ValueRange{bi, si});
    Value wins =
        arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, bv, oldV);
    auto replace = scf::IfOp::create(b, loc, wins, /*withElseRegion=*/false);
    b.setInsertionPointToStart(&replace.getThenRegion().front());
    memref::StoreOp::create(b, loc, bv, bestOut, ValueRange{bi, si});
    memref::StoreOp::create(b, loc,
                            arith::ExtSIOp::create(b, loc, b.getI64Type(), bx),
                            indexOut, ValueRange{bi, si});

    LaunchShape launch;
    launch.grid[0] = shape->batch * shape->seq;
    launch.block[0] = kThreads;
    return launch;
  }
};

} // namespace

const KernelRecipe &argmaxRows() {
  static const ArgmaxRows recipe;
  return recipe;
}

} // namespace kiln::kernels
