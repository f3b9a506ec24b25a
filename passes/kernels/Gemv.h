//===- Gemv.h - What the GEMV kernel recipes share ----------------*- C++
//-*-===//
//
// The decode projection out[b, s, n] += x[b, s, k] * w (few rows b * s) that
// gemv_kn (GemvKN.cpp, w [in, out]) and gemv_nk (GemvNK.cpp, w [out, in])
// implement: its match, its operands inside the kernel, and the final store
// (into the output, or through an elementwise epilogue).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_KERNELS_GEMV_H
#define KILN_PASSES_KERNELS_GEMV_H

#include "passes/kernels/KernelBuilder.h"
#include "passes/kernels/KernelLibrary.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/Support/MathExtras.h"

namespace kiln::kernels::gemv {

using namespace mlir;

/// The static sizes of a projection out[b, s, n] += x[b, s, k] * w[.., ..].
struct Projection {
  int64_t batch = 0, seq = 0, k = 0, n = 0;
  Type weightType, inputType;
};

/// Matches the linalg.generic that --kiln-lower-tfm-to-linalg makes of
/// tfm.linear and tfm.logits, bufferized (see Gemv.cpp).
std::optional<Projection> matchProjection(Operation *op, bool inOut);

class GemvRecipe : public KernelRecipe {
public:
  static constexpr int64_t kMaxRows = 8; // batch * seq

  /// Weight elements per 16-byte load.
  static int64_t vectorWidth(Type weight) {
    return 16 / (weight.getIntOrFloatBitWidth() / 8);
  }

  Value fusableInit(Operation *op) const override {
    return cast<linalg::GenericOp>(op).getDpsInits()[0];
  }

  /// Any elementwise consumer of the [B, S, N] result with identity maps:
  /// the final store computes it (the f16 conversion of the accumulator, a
  /// residual add).
  bool acceptsEpilogue(Operation *op, Operation *consumer) const override {
    auto g = dyn_cast<linalg::GenericOp>(consumer);
    Value out = cast<linalg::GenericOp>(op).getDpsInits()[0];
    if (!g || !g.hasPureBufferSemantics() || g.getNumDpsInits() != 1 ||
        g.getNumParallelLoops() != g.getNumLoops() ||
        llvm::count(g.getDpsInputs(), out) != 1 || g.getDpsInits()[0] == out ||
        !llvm::all_of(g.getIndexingMapsArray(),
                      [](AffineMap m) { return m.isIdentity(); }))
      return false;
    auto shape = cast<MemRefType>(out.getType()).getShape();
    for (Value v : g->getOperands()) {
      auto t = dyn_cast<MemRefType>(v.getType());
      if (!t || t.getShape() != shape)
        return false;
    }
    return llvm::all_of(g.getRegion().front().without_terminator(),
                        [](Operation &o) { return isMemoryEffectFree(&o); });
  }

protected:
  /// Stores the finished accumulator value `acc` of element `at`: into the
  /// projection's output, or through the epilogue into the epilogue's.
  static void storeResult(OpBuilder &b, Location loc, Operation *op,
                          Operation *epilogue, IRMapping &map, Value acc,
                          ValueRange at) {
    Value out = cast<linalg::GenericOp>(op).getDpsInits()[0];
    if (!epilogue) {
      memref::StoreOp::create(b, loc, acc, map.lookup(out), at);
      return;
    }
    auto g = cast<linalg::GenericOp>(epilogue);
    Block &body = g.getRegion().front();
    // Values the body captures from above were rematerialised in `map`.
    IRMapping inner = map;
    for (auto [operand, arg] : llvm::zip(g->getOperands(), body.getArguments()))
      if (!arg.use_empty())
        inner.map(arg, operand == out ? acc
                                      : memref::LoadOp::create(
                                            b, loc, map.lookup(operand), at)
                                            .getResult());
    for (Operation &o : body.without_terminator())
      b.clone(o, inner);
    auto yield = cast<linalg::YieldOp>(body.getTerminator());
    memref::StoreOp::create(b, loc, inner.lookup(yield.getOperand(0)),
                            map.lookup(g.getDpsInits()[0]), at);
  }

protected:
  /// The thread's lane and the output columns its warp computes: warp j of
  /// the grid (`warpsPerBlock` a block) takes columns j * cpw .. j * cpw +
  /// cpw - 1. When the warps outnumber the `n` columns, the builder is left
  /// inside an scf.if that the spare warps skip (the caller holds an
  /// InsertionGuard).
  struct WarpColumns {
    Value lane;
    SmallVector<Value> ns;
  };
  static WarpColumns warpColumns(OpBuilder &b, Location loc, KernelBuilder &kb,
                                 int64_t n, int64_t cpw,
                                 int64_t warpsPerBlock) {
    auto idx = [&](int64_t v) { return kb.index(v); };
    Value tid = kb.threadIdX();
    Value bid = kb.blockIdX();
    WarpColumns wc;
    wc.lane = arith::RemUIOp::create(b, loc, tid, idx(32));
    Value n0 = arith::MulIOp::create(
        b, loc,
        arith::AddIOp::create(
            b, loc, arith::MulIOp::create(b, loc, bid, idx(warpsPerBlock)),
            arith::DivUIOp::create(b, loc, tid, idx(32))),
        idx(cpw));
    wc.ns.push_back(n0);
    for (int64_t c = 1; c < cpw; ++c)
      wc.ns.push_back(arith::AddIOp::create(b, loc, n0, idx(c)));
    if (n % (warpsPerBlock * cpw)) {
      Value inRange =
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, n0, idx(n));
      auto ifOp = scf::IfOp::create(b, loc, inRange, /*withElseRegion=*/false);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    }
    return wc;
  }

  /// Adds each lane's partial sums `accs` ([column][batch row] vectors)
  /// across the warp, and lane 0 stores element at(r, n) of each: the old
  /// value (or the fused fill value `init`) plus the sum, through the
  /// epilogue when there is one.
  static void
  reduceAndStore(OpBuilder &b, Location loc, KernelBuilder &kb, Operation *op,
                 Operation *epilogue, IRMapping &map, ValueRange accs,
                 const WarpColumns &wc, int64_t rows, Value out, Value init,
                 function_ref<SmallVector<Value, 3>(int64_t r, Value n)> at) {
    SmallVector<Value> totals;
    for (Value acc : accs) {
      Value sum =
          vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD, acc);
      totals.push_back(gpu::SubgroupReduceOp::create(
          b, loc, sum, gpu::AllReduceOperation::ADD, /*uniform=*/true));
    }
    Value leader = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                         wc.lane, kb.index(0));
    auto write = scf::IfOp::create(b, loc, leader, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&write.getThenRegion().front());
    for (auto [c, n] : llvm::enumerate(wc.ns))
      for (int64_t r = 0; r < rows; ++r) {
        SmallVector<Value, 3> where = at(r, n);
        Value old =
            init ? init
                 : memref::LoadOp::create(b, loc, out, where).getResult();
        storeResult(b, loc, op, epilogue, map,
                    arith::AddFOp::create(b, loc, old, totals[c * rows + r]),
                    where);
      }
  }

  explicit GemvRecipe(bool inOut) : inOut(inOut) {}

  /// The projection when it suits a GEMV kernel.
  std::optional<Projection> match(Operation *op) const {
    std::optional<Projection> p = matchProjection(op, inOut);
    if (!p || p->batch * p->seq > kMaxRows)
      return std::nullopt;
    unsigned bits = p->weightType.getIntOrFloatBitWidth();
    if (bits != 16 && bits != 32)
      return std::nullopt;
    return p;
  }

  struct Operands {
    Projection p;
    Value x, w, out;
    int64_t rows = 0, vec = 0;
    VectorType vf32, vw, vx; // V x f32, V x weight, V x input
    /// x[b, s, k] of batch row `r` (b * seq + s).
    SmallVector<Value, 3> xAt(KernelBuilder &kb, int64_t r, Value k) const {
      return {kb.index(r / p.seq), kb.index(r % p.seq), k};
    }
  };

  FailureOr<Operands> operands(Operation *op, IRMapping &map,
                               KernelBuilder &kb) const {
    std::optional<Projection> p = match(op);
    if (!p)
      return failure();
    auto g = cast<linalg::GenericOp>(op);
    Operands o;
    o.p = *p;
    o.x = map.lookup(g.getDpsInputs()[0]);
    o.w = map.lookup(g.getDpsInputs()[1]);
    o.out = map.lookup(g.getDpsInits()[0]);
    o.rows = p->batch * p->seq;
    o.vec = vectorWidth(p->weightType);
    o.vf32 = VectorType::get({o.vec}, kb.b.getF32Type());
    o.vw = VectorType::get({o.vec}, p->weightType);
    o.vx = VectorType::get({o.vec}, p->inputType);
    return o;
  }

private:
  bool inOut;
};

} // namespace kiln::kernels::gemv

#endif // KILN_PASSES_KERNELS_GEMV_H
