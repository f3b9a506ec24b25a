//===- AttentionDecode.cpp - One kernel for a decode step's attention -----===//
//
// attention_decode: the whole of one tfm.attention for one new token per
// sequence, as one launch instead of the seven of its lowering (q.k, mask,
// max, exp, sum, p.v, normalisation, each with a fill). The lowering marks
// its ops with `kiln.region` (passes/RegionAttr.h); this recipe takes the
// group whose step 0 (q.k) it is asked about, reads the operands from the
// steps that hold them (q and K from step 0, positions from step 1, V from
// step 5, the output from step 6) and computes the same function:
//
//   out[b, 0, h, :] = sum_t softmax_t(scale * q[b, 0, h, :] . K[b, g, t, :])
//   V[b, g, t, :] over t <= positions[b, 0], g = h / (heads / kv_heads); 0 if
//   no t.
//
// One block per (sequence, KV head): K and V rows of that head are read
// once for all its query heads. Only positions that exist are read (the
// KV buffer's max_seq_len does not matter). Each warp takes every W-th
// position, 4 positions per iteration with their loads issued together, and
// keeps an online softmax (running max, sum and weighted V) per query head
// in registers, its 32 lanes splitting head_dim; workgroup memory joins the
// warps at the end.
//
//===----------------------------------------------------------------------===//

#include "passes/RegionAttr.h"
#include "passes/kernels/KernelBuilder.h"
#include "passes/kernels/KernelLibrary.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"

#include <limits>

using namespace mlir;

namespace kiln::kernels {
namespace {

/// The steps of one lowered tfm.attention and its parameters.
struct Group {
  std::array<linalg::GenericOp, 7> steps;
  SmallVector<Operation *> fills;
  int64_t heads = 0, kvHeads = 0, headDim = 0;
  double scale = 1.0;
  int64_t batch = 0, seq = 0, maxSeq = 0;
};

DictionaryAttr regionOf(Operation *op) {
  auto d = op->getAttrOfType<DictionaryAttr>(kRegionAttr);
  if (!d)
    return {};
  auto name = d.getAs<StringAttr>("op");
  return name && name.getValue() == "tfm.attention" ? d : DictionaryAttr();
}

int64_t dictInt(DictionaryAttr d, StringRef key) {
  auto a = d.getAs<IntegerAttr>(key);
  return a ? a.getInt() : -1;
}

/// The group that `op` (step 0) leads, complete and bufferized, or nothing.
std::optional<Group> groupOf(Operation *op) {
  DictionaryAttr d = regionOf(op);
  if (!d || dictInt(d, "step") != 0 || !isa<linalg::GenericOp>(op))
    return std::nullopt;
  int64_t id = dictInt(d, "id");
  Group g;
  for (Operation &o : *op->getBlock()) {
    DictionaryAttr od = regionOf(&o);
    if (!od || dictInt(od, "id") != id)
      continue;
    if (isa<linalg::FillOp>(o)) {
      g.fills.push_back(&o);
      continue;
    }
    int64_t step = dictInt(od, "step");
    auto generic = dyn_cast<linalg::GenericOp>(o);
    if (!generic || step < 0 || step > 6 || g.steps[step] ||
        !generic.hasPureBufferSemantics())
      return std::nullopt;
    g.steps[step] = generic;
  }
  if (llvm::any_of(g.steps, [](linalg::GenericOp s) { return !s; }))
    return std::nullopt;
  if (g.steps[0].getNumDpsInputs() != 2 || g.steps[1].getNumDpsInputs() != 2 ||
      g.steps[5].getNumDpsInputs() != 2 || g.steps[6].getNumDpsInits() != 1)
    return std::nullopt;
  g.heads = dictInt(d, "num_heads");
  g.kvHeads = dictInt(d, "num_kv_heads");
  g.headDim = dictInt(d, "head_dim");
  auto scale = d.getAs<FloatAttr>("scale");
  if (!scale || g.heads <= 0 || g.kvHeads <= 0 || g.headDim <= 0 ||
      g.heads % g.kvHeads)
    return std::nullopt;
  g.scale = scale.getValueAsDouble();
  auto q = dyn_cast<MemRefType>(g.steps[0].getDpsInputs()[0].getType());
  auto k = dyn_cast<MemRefType>(g.steps[0].getDpsInputs()[1].getType());
  auto v = dyn_cast<MemRefType>(g.steps[5].getDpsInputs()[1].getType());
  auto pos = dyn_cast<MemRefType>(g.steps[1].getDpsInputs()[1].getType());
  auto out = dyn_cast<MemRefType>(g.steps[6].getDpsInits()[0].getType());
  if (!q || !k || !v || !pos || !out || q.getRank() != 4 || k.getRank() != 4 ||
      v != k || out.getRank() != 4 || pos.getRank() != 2 ||
      !q.hasStaticShape() || !k.hasStaticShape() || !out.hasStaticShape() ||
      !pos.getElementType().isInteger(64))
    return std::nullopt;
  g.batch = q.getDimSize(0);
  g.seq = q.getDimSize(1);
  g.maxSeq = k.getDimSize(2);
  if (q.getShape() != ArrayRef<int64_t>{g.batch, g.seq, g.heads, g.headDim} ||
      out.getShape() != q.getShape() ||
      k.getShape() !=
          ArrayRef<int64_t>{g.batch, g.kvHeads, g.maxSeq, g.headDim} ||
      pos.getShape() != ArrayRef<int64_t>{g.batch, g.seq})
    return std::nullopt;
  return g;
}

class AttentionDecode final : public KernelRecipe {
public:
  static constexpr int64_t kUnroll = 4; // positions per warp and iteration

  StringRef name() const override { return "attention_decode"; }

  /// Decode (one new token per sequence) with head_dim a multiple of 32 up
  /// to 256 and at most 16 query heads per KV head.
  bool matches(Operation *op) const override {
    std::optional<Group> g = groupOf(op);
    return g && g->seq == 1 && g->headDim % 32 == 0 && g->headDim <= 256 &&
           g->heads / g->kvHeads <= 16;
  }

  SmallVector<Operation *> members(Operation *op) const override {
    std::optional<Group> g = groupOf(op);
    if (!g)
      return {};
    SmallVector<Operation *> ops(g->fills.begin(), g->fills.end());
    for (linalg::GenericOp s : llvm::drop_begin(g->steps))
      ops.push_back(s);
    return ops;
  }

  /// Warps per block: as many as workgroup memory for their partial results
  /// (rep x (head_dim + 2) floats each) allows, at most 32.
  static int64_t warpsFor(int64_t rep, int64_t headDim) {
    int64_t warps = 32;
    while (warps > 1 && warps * rep * (headDim + 2) * 4 > 40 * 1024)
      warps /= 2;
    return warps;
  }

  FailureOr<LaunchShape> build(OpBuilder &b, Operation *op, IRMapping &map,
                               gpu::GPUFuncOp kernel, Value init,
                               ArrayRef<Operation *> fused) const override {
    std::optional<Group> g = groupOf(op);
    if (!g)
      return failure();
    Location loc = op->getLoc();
    KernelBuilder kb(b, loc, kernel);
    const int64_t rep = g->heads / g->kvHeads, D = g->headDim, E = D / 32;
    const int64_t warps = warpsFor(rep, D), threads = warps * 32;
    Value q = map.lookup(g->steps[0].getDpsInputs()[0]);
    Value kc = map.lookup(g->steps[0].getDpsInputs()[1]);
    Value pos = map.lookup(g->steps[1].getDpsInputs()[1]);
    Value vc = map.lookup(g->steps[5].getDpsInputs()[1]);
    Value out = map.lookup(g->steps[6].getDpsInits()[0]);
    Type f32 = b.getF32Type();
    Type outElt = cast<MemRefType>(out.getType()).getElementType();
    auto idx = [&](int64_t v) { return kb.index(v); };
    auto cf = [&](OpBuilder &nb, double v) -> Value {
      return arith::ConstantOp::create(nb, loc, nb.getF32FloatAttr(v));
    };
    auto ext = [&](OpBuilder &nb, Value v) { return kb.extendTo(nb, v, f32); };
    const double negInf = -std::numeric_limits<double>::infinity();

    Value tid = kb.threadIdX(), bid = kb.blockIdX();
    Value bi = arith::DivUIOp::create(b, loc, bid, idx(g->kvHeads));
    Value grp = arith::RemUIOp::create(b, loc, bid, idx(g->kvHeads));
    Value lane = arith::RemUIOp::create(b, loc, tid, idx(32));
    Value warp = arith::DivUIOp::create(b, loc, tid, idx(32));

    // Visible positions: 0 .. min(position, maxSeq - 1).
    Value p = memref::LoadOp::create(b, loc, pos, ValueRange{bi, idx(0)});
    Value n64 = arith::AddIOp::create(
        b, loc, p, arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(1)));
    n64 = arith::MaxSIOp::create(
        b, loc, n64, arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0)));
    n64 = arith::MinSIOp::create(
        b, loc, n64,
        arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(g->maxSeq)));
    Value n = arith::IndexCastOp::create(b, loc, b.getIndexType(), n64);
    Value nLast = arith::SubIOp::create(b, loc, n, idx(1));

    // This lane's elements of head_dim: lane * E .. lane * E + E - 1.
    SmallVector<Value> dIdx;
    for (int64_t e = 0; e < E; ++e)
      dIdx.push_back(arith::AddIOp::create(
          b, loc, arith::MulIOp::create(b, loc, lane, idx(E)), idx(e)));
    // q, pre-scaled, per query head of the group.
    SmallVector<SmallVector<Value>> qv(rep);
    Value scale = cf(b, g->scale);
    for (int64_t r = 0; r < rep; ++r) {
      Value h = arith::AddIOp::create(
          b, loc, arith::MulIOp::create(b, loc, grp, idx(rep)), idx(r));
      for (int64_t e = 0; e < E; ++e)
        qv[r].push_back(arith::MulFOp::create(
            b, loc,
            ext(b, memref::LoadOp::create(b, loc, q,
                                          ValueRange{bi, idx(0), h, dIdx[e]})),
            scale));
    }

    // State per query head: running max m, sum l, weighted values acc[E].
    SmallVector<Value> state;
    for (int64_t r = 0; r < rep; ++r) {
      state.push_back(cf(b, negInf));
      state.push_back(cf(b, 0.0));
      for (int64_t e = 0; e < E; ++e)
        state.push_back(cf(b, 0.0));
    }
    const int64_t perState = 2 + E;
    auto loop = scf::ForOp::create(
        b, loc, warp, n, idx(warps * kUnroll), state,
        [&](OpBuilder &nb, Location l, Value t0, ValueRange st) {
          // Positions t0 + u * warps; past n - 1 they are read at n - 1 and
          // masked (their score is -inf: they change nothing).
          SmallVector<Value> valid;
          SmallVector<SmallVector<Value>> kRow(kUnroll), vRow(kUnroll);
          for (int64_t u = 0; u < kUnroll; ++u) {
            Value t = arith::AddIOp::create(nb, l, t0, idx(u * warps));
            valid.push_back(
                arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, t, n));
            Value tc = arith::MinUIOp::create(nb, l, t, nLast);
            for (int64_t e = 0; e < E; ++e) {
              kRow[u].push_back(memref::LoadOp::create(
                  nb, l, kc, ValueRange{bi, grp, tc, dIdx[e]}));
              vRow[u].push_back(memref::LoadOp::create(
                  nb, l, vc, ValueRange{bi, grp, tc, dIdx[e]}));
            }
          }
          SmallVector<Value> next(st.begin(), st.end());
          for (int64_t u = 0; u < kUnroll; ++u)
            for (int64_t r = 0; r < rep; ++r) {
              Value partial;
              for (int64_t e = 0; e < E; ++e) {
                Value prod =
                    arith::MulFOp::create(nb, l, qv[r][e], ext(nb, kRow[u][e]));
                partial = partial ? arith::AddFOp::create(nb, l, partial, prod)
                                        .getResult()
                                  : prod;
              }
              Value s = gpu::SubgroupReduceOp::create(
                  nb, l, partial, gpu::AllReduceOperation::ADD,
                  /*uniform=*/true);
              s = arith::SelectOp::create(nb, l, valid[u], s, cf(nb, negInf));
              Value m = next[r * perState], sum = next[r * perState + 1];
              Value m2 = arith::MaximumFOp::create(nb, l, m, s);
              // m2 is finite once a valid position was seen; before that
              // (all masked so far) keep everything at its start.
              Value seen = arith::CmpFOp::create(
                  nb, l, arith::CmpFPredicate::ONE, m2, cf(nb, negInf));
              Value safeM2 =
                  arith::SelectOp::create(nb, l, seen, m2, cf(nb, 0.0));
              Value c = math::ExpOp::create(
                  nb, l, arith::SubFOp::create(nb, l, m, safeM2));
              Value pe = math::ExpOp::create(
                  nb, l, arith::SubFOp::create(nb, l, s, safeM2));
              next[r * perState] = m2;
              next[r * perState + 1] = arith::AddFOp::create(
                  nb, l, arith::MulFOp::create(nb, l, sum, c), pe);
              for (int64_t e = 0; e < E; ++e) {
                Value &acc = next[r * perState + 2 + e];
                acc = arith::AddFOp::create(
                    nb, l, arith::MulFOp::create(nb, l, acc, c),
                    arith::MulFOp::create(nb, l, pe, ext(nb, vRow[u][e])));
              }
            }
          scf::YieldOp::create(nb, l, next);
        });

    // Join the warps: partial (m, l) and acc per warp and query head.
    Value sm = kb.workgroupBuffer({warps * rep}, f32);
    Value sl = kb.workgroupBuffer({warps * rep}, f32);
    Value sacc = kb.workgroupBuffer({warps * rep * D}, f32);
    Value leader =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lane, idx(0));
    for (int64_t r = 0; r < rep; ++r) {
      Value slot = arith::AddIOp::create(
          b, loc, arith::MulIOp::create(b, loc, warp, idx(rep)), idx(r));
      auto ifLeader = scf::IfOp::create(b, loc, leader, false);
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(&ifLeader.getThenRegion().front());
        memref::StoreOp::create(b, loc, loop.getResult(r * perState), sm,
                                ValueRange{slot});
        memref::StoreOp::create(b, loc, loop.getResult(r * perState + 1), sl,
                                ValueRange{slot});
      }
      Value base = arith::MulIOp::create(b, loc, slot, idx(D));
      for (int64_t e = 0; e < E; ++e)
        memref::StoreOp::create(
            b, loc, loop.getResult(r * perState + 2 + e), sacc,
            ValueRange{arith::AddIOp::create(b, loc, base, dIdx[e])});
    }
    gpu::BarrierOp::create(b, loc);

    // Thread i < rep * D (strided by the block) finishes element i % D of
    // query head i / D.
    scf::ForOp::create(
        b, loc, tid, idx(rep * D), idx(threads), ValueRange{},
        [&](OpBuilder &nb, Location l, Value i, ValueRange) {
          Value r = arith::DivUIOp::create(nb, l, i, idx(D));
          Value d = arith::RemUIOp::create(nb, l, i, idx(D));
          Value mMax = cf(nb, negInf);
          for (int64_t w = 0; w < warps; ++w) {
            Value slot = arith::AddIOp::create(nb, l, idx(w * rep), r);
            mMax = arith::MaximumFOp::create(
                nb, l, mMax,
                memref::LoadOp::create(nb, l, sm, ValueRange{slot}));
          }
          Value anySeen = arith::CmpFOp::create(
              nb, l, arith::CmpFPredicate::ONE, mMax, cf(nb, negInf));
          Value sum = cf(nb, 0.0), acc = cf(nb, 0.0);
          for (int64_t w = 0; w < warps; ++w) {
            Value slot = arith::AddIOp::create(nb, l, idx(w * rep), r);
            Value mw = memref::LoadOp::create(nb, l, sm, ValueRange{slot});
            // A warp that saw no position contributes nothing.
            Value has = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::ONE,
                                              mw, cf(nb, negInf));
            Value f = arith::SelectOp::create(
                nb, l, has,
                math::ExpOp::create(nb, l,
                                    arith::SubFOp::create(nb, l, mw, mMax)),
                cf(nb, 0.0));
            sum = arith::AddFOp::create(
                nb, l, sum,
                arith::MulFOp::create(
                    nb, l, f,
                    memref::LoadOp::create(nb, l, sl, ValueRange{slot})));
            Value at = arith::AddIOp::create(
                nb, l, arith::MulIOp::create(nb, l, slot, idx(D)), d);
            acc = arith::AddFOp::create(
                nb, l, acc,
                arith::MulFOp::create(
                    nb, l, f,
                    memref::LoadOp::create(nb, l, sacc, ValueRange{at})));
          }
          Value positive = arith::CmpFOp::create(
              nb, l, arith::CmpFPredicate::OGT, sum, cf(nb, 0.0));
          Value ok = arith::AndIOp::create(nb, l, anySeen, positive);
          Value v = arith::SelectOp::create(
              nb, l, ok, arith::DivFOp::create(nb, l, acc, sum), cf(nb, 0.0));
          if (outElt != f32)
            v = arith::TruncFOp::create(nb, l, outElt, v);
          Value h = arith::AddIOp::create(
              nb, l, arith::MulIOp::create(nb, l, grp, idx(rep)), r);
          memref::StoreOp::create(nb, l, v, out, ValueRange{bi, idx(0), h, d});
          scf::YieldOp::create(nb, l);
        });

    LaunchShape shape;
    shape.grid[0] = g->batch * g->kvHeads;
    shape.block[0] = threads;
    return shape;
  }
};

} // namespace

const KernelRecipe &attentionDecode() {
  static const AttentionDecode recipe;
  return recipe;
}

} // namespace kiln::kernels
