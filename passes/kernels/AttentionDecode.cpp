//===- AttentionDecode.cpp - One kernel for a decode step's attention -----===//
//
// attention_decode: the whole of one tfm.attention for one new token per
// sequence, as one launch instead of the seven of its lowering (q.k, mask,
// max, exp, sum, p.v, normalisation, each with a fill), and for one sequence
// also the RoPE and KV-cache appends that feed it. AttentionGroup.h finds
// the group (from the lowering's `kiln.region` marks); this recipe computes
// the same function:
//
//   out[b, 0, h, :] = sum_t softmax_t(scale * q[b, 0, h, :] . K[b, g, t, :])
//   V[b, g, t, :] over t <= positions[b, 0], g = h / (heads / kv_heads); 0 if
//   no t.
//
// A block per (sequence, group of query heads): all heads of a KV head's
// group (its K and V rows read once) when that gives enough blocks, else
// fewer. Only positions that exist are read (the KV buffer's max_seq_len
// does not matter). Each warp takes every W-th position, 4 positions per
// iteration with their loads issued together, and keeps an online softmax
// (running max, sum and weighted V) per query head in registers, its 32
// lanes splitting head_dim; workgroup memory joins the warps at the end.
//
// Split-KV (flash-decoding) on sm_90 and later, in the same one launch: a
// thread-block cluster of up to 8 blocks per group of query heads, the
// positions dealt over all warps of the cluster; after a cluster barrier
// each block reads the other blocks' partial (max, sum, weighted V) through
// distributed shared memory and finishes its slice of the output. More SMs
// read the KV cache of one head group, and K/V of a KV head are read once
// for all its query heads (configFor).
//
//===----------------------------------------------------------------------===//

#include "passes/kernels/AttentionGroup.h"
#include "passes/kernels/KernelBuilder.h"
#include "passes/kernels/KernelLibrary.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"

#include <cstdlib>
#include <limits>
#include <string>

using namespace mlir;

namespace kiln::kernels {
namespace {

using attention::Group;
using attention::groupOf;
using attention::Prologue;

class AttentionDecode final : public attention::AttentionRecipe {
public:
  StringRef name() const override { return "attention_decode"; }

  /// Decode (one new token per sequence) with head_dim a multiple of 32 up
  /// to 256 and at most 16 query heads per KV head.
  bool matches(Operation *op) const override {
    std::optional<Group> g = groupOf(op);
    return g && g->seq == 1 && g->headDim % 32 == 0 && g->headDim <= 256 &&
           g->heads / g->kvHeads <= 16;
  }

  /// The steps (AttentionRecipe) and, for one sequence, the prologue.
  SmallVector<Operation *> members(Operation *op) const override {
    std::optional<Group> g = groupOf(op);
    if (!g)
      return {};
    SmallVector<Operation *> ops = AttentionRecipe::members(op);
    if (const Prologue *p = g->prologue ? &*g->prologue : nullptr)
      ops.append({p->ropeQ, p->ropeK, p->appendK, p->appendV});
    return ops;
  }

  /// Warps per block: as many as workgroup memory for their partial results
  /// (heads x (head_dim + 2) floats each) allows, at most 32.
  static int64_t warpsFor(int64_t heads, int64_t headDim) {
    int64_t warps = 32;
    while (warps > 1 && warps * heads * (headDim + 2) * 4 > 40 * 1024)
      warps /= 2;
    return warps;
  }

  /// Query heads per block: all of a KV head's group (its K and V rows read
  /// once) when that still gives `minBlocks` blocks or more (`blocksPerHead`
  /// blocks per group of heads); with fewer sequences x KV heads, fewer heads
  /// per block (down to one) so that more SMs work, each block reading its
  /// group's rows again (from L2). At most `maxState` registers of online
  /// softmax state per lane (heads x (2 + head_dim / 32)).
  static int64_t headsPerBlock(const Group &g, int64_t blocksPerHead = 1,
                               int64_t minBlocks = 64,
                               int64_t maxState = 1 << 20) {
    const int64_t rep = g.heads / g.kvHeads, E = g.headDim / 32;
    for (int64_t hpb = rep; hpb > 1; --hpb)
      if (rep % hpb == 0 &&
          g.batch * (g.heads / hpb) * blocksPerHead >= minBlocks &&
          hpb * (2 + E) <= maxState)
        return hpb;
    return 1;
  }

  /// How the work is divided: query heads per block, warps per block, and
  /// blocks per cluster splitting the positions between them.
  struct Config {
    int64_t hpb = 1, warps = 1, cluster = 1;
    int64_t unroll = 4; // positions per warp and iteration, loads together
  };

  /// Without clusters, a block per group of query heads, its warps taking
  /// every W-th position. With clusters (sm_90+: `maxCluster` >= 2), split-KV
  /// (flash-decoding) in one launch: the positions are dealt over the warps
  /// of a cluster of 8 blocks of 8 warps, each block folds its warps'
  /// partial softmax results, and the blocks combine theirs through
  /// distributed shared memory, each finishing a slice of the output. A
  /// block takes the query heads of a KV head's group together (K and V
  /// read once) only while that still leaves 256 blocks: on the H200 the
  /// 1B shape's decode attention (32 heads, 8 KV heads, 128 + 256
  /// positions) took 8.4 us a layer so, 9.5 us as a block per head without
  /// clusters, 9.3 us with the 4 heads of a group per block (check.sh
  /// decode, KILN_PROFILE). KILN_TUNE_ATTENTION_DECODE=h<heads>w<warps>
  /// c<cluster>u<unroll> (e.g. h2w8c8u4) overrides the choice for such
  /// measurements; a value that does not fit is ignored.
  static Config configFor(const Group &g, int64_t maxCluster) {
    Config c;
    const int64_t rep = g.heads / g.kvHeads;
    if (maxCluster < 2) {
      c.hpb = headsPerBlock(g);
      c.warps = warpsFor(c.hpb, g.headDim);
    } else {
      c.cluster = std::min<int64_t>(maxCluster, 8);
      c.hpb = headsPerBlock(g, c.cluster, /*minBlocks=*/256, /*maxState=*/40);
      c.warps = 8;
    }
    if (const char *env = std::getenv("KILN_TUNE_ATTENTION_DECODE")) {
      // h<heads>w<warps>c<cluster>u<unroll>, e.g. h1w8c8u8.
      StringRef text(env);
      int64_t v[4] = {0, 0, 0, 0};
      bool ok = true;
      for (auto [i, key] : llvm::enumerate(StringRef("hwcu"))) {
        ok = ok && text.consume_front(StringRef(&key, 1)) &&
             !text.consumeInteger(10, v[i]);
      }
      const auto [h, w, cl, u] = v;
      if (ok && text.empty() && h >= 1 && rep % h == 0 && w >= 1 && w <= 32 &&
          llvm::isPowerOf2_64(w) && cl >= 1 &&
          cl <= std::max<int64_t>(maxCluster, 1) && u >= 1 && u <= 16 &&
          w * h * (g.headDim + 2) * 4 <= 40 * 1024)
        c = Config{h, w, cl, u};
    }
    return c;
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
    const Config cfg = configFor(*g, kb.maxClusterBlocks());
    const int64_t hpb = cfg.hpb, blocksPerSeq = g->heads / hpb;
    const int64_t warps = cfg.warps, threads = warps * 32, C = cfg.cluster;
    const int64_t unroll = cfg.unroll;
    const Prologue *pro = g->prologue ? &*g->prologue : nullptr;
    Value q = map.lookup(g->steps[0].getDpsInputs()[0]);
    Value pos = map.lookup(g->steps[1].getDpsInputs()[1]);
    // The caches, or (paged) the pools (kvIndices addresses them).
    Value kBuf = kvBuffer(*g, map, /*values=*/false);
    Value vBuf = kvBuffer(*g, map, /*values=*/true);
    Value out = map.lookup(g->steps[6].getDpsInits()[0]);
    Type f32 = b.getF32Type();
    Type outElt = cast<MemRefType>(out.getType()).getElementType();
    Type qElt = cast<MemRefType>(q.getType()).getElementType();
    Type cacheElt = cast<MemRefType>(g->steps[0].getDpsInputs()[1].getType())
                        .getElementType();
    auto idx = [&](int64_t v) { return kb.index(v); };
    auto cf = [&](OpBuilder &nb, double v) -> Value {
      return arith::ConstantOp::create(nb, loc, nb.getF32FloatAttr(v));
    };
    auto ext = [&](OpBuilder &nb, Value v) { return kb.extendTo(nb, v, f32); };
    // `v` (f32) rounded to `elt` and back, as storing it would.
    auto roundTo = [&](Value v, Type elt) -> Value {
      if (elt == f32)
        return v;
      return ext(b, arith::TruncFOp::create(b, loc, elt, v));
    };
    const double negInf = -std::numeric_limits<double>::infinity();

    // Block `bid` is block `rank` of cluster `cid` (clusters of C
    // consecutive blocks along x); a cluster per group of query heads.
    Value tid = kb.threadIdX(), bid = kb.blockIdX();
    Value rank = idx(0), cid = bid;
    if (C > 1) {
      rank = arith::RemUIOp::create(b, loc, bid, idx(C));
      cid = arith::DivUIOp::create(b, loc, bid, idx(C));
    }
    Value bi = arith::DivUIOp::create(b, loc, cid, idx(blocksPerSeq));
    Value hb = arith::RemUIOp::create(b, loc, cid, idx(blocksPerSeq));
    Value h0 = arith::MulIOp::create(b, loc, hb, idx(hpb)); // first head
    Value grp = arith::DivUIOp::create(b, loc, h0, idx(rep));
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

    // RoPE (the prologue): element d of the head starting at column `base`
    // of `src`, rotated with its partner d +- D/2 by the position's angles.
    SmallVector<Value> cosE, sinE, partner, firstHalf;
    if (pro) {
      Value freqs = map.lookup(pro->freqs);
      Value pf = arith::SIToFPOp::create(b, loc, f32, p);
      for (int64_t e = 0; e < E; ++e) {
        Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                            dIdx[e], idx(D / 2));
        Value j = arith::SelectOp::create(
            b, loc, first, dIdx[e],
            arith::SubIOp::create(b, loc, dIdx[e], idx(D / 2)));
        partner.push_back(arith::SelectOp::create(
            b, loc, first, arith::AddIOp::create(b, loc, dIdx[e], idx(D / 2)),
            arith::SubIOp::create(b, loc, dIdx[e], idx(D / 2))));
        firstHalf.push_back(first);
        Value theta = arith::MulFOp::create(
            b, loc, pf, memref::LoadOp::create(b, loc, freqs, ValueRange{j}));
        cosE.push_back(arith::MulFOp::create(
            b, loc, math::CosOp::create(b, loc, theta), cf(b, pro->scaling)));
        sinE.push_back(arith::MulFOp::create(
            b, loc, math::SinOp::create(b, loc, theta), cf(b, pro->scaling)));
      }
    }
    auto roped = [&](Value src, Value base, int64_t e) -> Value {
      Value x =
          ext(b, memref::LoadOp::create(
                     b, loc, src,
                     ValueRange{bi, idx(0),
                                arith::AddIOp::create(b, loc, base, dIdx[e])}));
      Value xp = ext(
          b, memref::LoadOp::create(
                 b, loc, src,
                 ValueRange{bi, idx(0),
                            arith::AddIOp::create(b, loc, base, partner[e])}));
      Value xc = arith::MulFOp::create(b, loc, x, cosE[e]);
      Value ps = arith::MulFOp::create(b, loc, xp, sinE[e]);
      return arith::SelectOp::create(b, loc, firstHalf[e],
                                     arith::SubFOp::create(b, loc, xc, ps),
                                     arith::AddFOp::create(b, loc, xc, ps));
    };

    // q, pre-scaled, per query head of the block.
    SmallVector<SmallVector<Value>> qv(hpb);
    Value scale = cf(b, g->scale);
    for (int64_t r = 0; r < hpb; ++r) {
      Value h = arith::AddIOp::create(b, loc, h0, idx(r));
      for (int64_t e = 0; e < E; ++e) {
        Value x;
        if (pro)
          x = roundTo(roped(map.lookup(pro->qSrc),
                            arith::MulIOp::create(b, loc, h, idx(D)), e),
                      qElt);
        else
          x = ext(b, memref::LoadOp::create(
                         b, loc, q, ValueRange{bi, idx(0), h, dIdx[e]}));
        qv[r].push_back(arith::MulFOp::create(b, loc, x, scale));
      }
    }

    // The new token's k (roped) and v, in the cache's type: the first block
    // of the KV head's group appends them (when the position is in the
    // cache); every block uses them for position p instead of reading the
    // cache, which another block may not have written yet.
    SmallVector<Value> kNew, vNew;
    if (pro) {
      Value kvBase = arith::MulIOp::create(b, loc, grp, idx(D));
      for (int64_t e = 0; e < E; ++e) {
        Value k = roped(map.lookup(pro->kSrc), kvBase, e);
        kNew.push_back(
            cacheElt == f32
                ? k
                : arith::TruncFOp::create(b, loc, cacheElt, k).getResult());
        vNew.push_back(memref::LoadOp::create(
            b, loc, map.lookup(pro->vSrc),
            ValueRange{bi, idx(0),
                       arith::AddIOp::create(b, loc, kvBase, dIdx[e])}));
        if (cast<MemRefType>(pro->vSrc.getType()).getElementType() != cacheElt)
          return failure();
      }
      Value zero64 = arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0));
      Value max64 =
          arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(g->maxSeq));
      Value writer = arith::AndIOp::create(
          b, loc,
          arith::AndIOp::create(
              b, loc,
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, p,
                                    zero64),
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, p,
                                    max64)),
          arith::AndIOp::create(
              b, loc,
              arith::CmpIOp::create(
                  b, loc, arith::CmpIPredicate::eq,
                  arith::RemUIOp::create(b, loc, h0, idx(rep)), idx(0)),
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                    arith::AddIOp::create(b, loc, warp, rank),
                                    idx(0))));
      auto append = scf::IfOp::create(b, loc, writer, false);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&append.getThenRegion().front());
      Value pi = arith::IndexCastOp::create(b, loc, b.getIndexType(), p);
      // Its row of the cache, or (paged) its slot of the block the table
      // names.
      SmallVector<Value, 4> at =
          kvIndices(b, loc, *g, map, bi, grp, pi, dIdx[0]);
      for (int64_t e = 0; e < E; ++e) {
        at[3] = dIdx[e];
        memref::StoreOp::create(b, loc, kNew[e], kBuf, at);
        memref::StoreOp::create(b, loc, vNew[e], vBuf, at);
      }
    }
    Value pIdx = arith::IndexCastOp::create(b, loc, b.getIndexType(), p);

    // State per query head: running max m, sum l, weighted values acc[E].
    SmallVector<Value> state;
    for (int64_t r = 0; r < hpb; ++r) {
      state.push_back(cf(b, negInf));
      state.push_back(cf(b, 0.0));
      for (int64_t e = 0; e < E; ++e)
        state.push_back(cf(b, 0.0));
    }
    const int64_t perState = 2 + E;
    // The cluster's warps, numbered across its blocks, take every
    // (C * warps)-th position.
    const int64_t allWarps = C * warps;
    Value firstT =
        C > 1
            ? arith::AddIOp::create(
                  b, loc, arith::MulIOp::create(b, loc, rank, idx(warps)), warp)
                  .getResult()
            : warp;
    auto loop = scf::ForOp::create(
        b, loc, firstT, n, idx(allWarps * unroll), state,
        [&](OpBuilder &nb, Location l, Value t0, ValueRange st) {
          // Positions t0 + u * warps; past n - 1 they are read at n - 1 and
          // masked (their score is -inf: they change nothing).
          SmallVector<Value> valid;
          SmallVector<SmallVector<Value>> kRow(unroll), vRow(unroll);
          for (int64_t u = 0; u < unroll; ++u) {
            Value t = arith::AddIOp::create(nb, l, t0, idx(u * allWarps));
            valid.push_back(
                arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, t, n));
            Value tc = arith::MinUIOp::create(nb, l, t, nLast);
            Value isNew = pro ? arith::CmpIOp::create(
                                    nb, l, arith::CmpIPredicate::eq, tc, pIdx)
                                    .getResult()
                              : Value();
            // Slot tc of the sequence: in its cache row, or (paged) in the
            // block its table names.
            SmallVector<Value, 4> at =
                kvIndices(nb, l, *g, map, bi, grp, tc, dIdx[0]);
            for (int64_t e = 0; e < E; ++e) {
              at[3] = dIdx[e];
              Value kv = memref::LoadOp::create(nb, l, kBuf, at);
              Value vv = memref::LoadOp::create(nb, l, vBuf, at);
              if (pro) {
                kv = arith::SelectOp::create(nb, l, isNew, kNew[e], kv);
                vv = arith::SelectOp::create(nb, l, isNew, vNew[e], vv);
              }
              kRow[u].push_back(kv);
              vRow[u].push_back(vv);
            }
          }
          SmallVector<Value> next(st.begin(), st.end());
          for (int64_t u = 0; u < unroll; ++u)
            for (int64_t r = 0; r < hpb; ++r) {
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
    Value sm = kb.workgroupBuffer({warps * hpb}, f32);
    Value sl = kb.workgroupBuffer({warps * hpb}, f32);
    Value sacc = kb.workgroupBuffer({warps * hpb * D}, f32);
    Value leader =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lane, idx(0));
    for (int64_t r = 0; r < hpb; ++r) {
      Value slot = arith::AddIOp::create(
          b, loc, arith::MulIOp::create(b, loc, warp, idx(hpb)), idx(r));
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

    // Folds partial results (max m, sum l, weighted values acc) into one:
    // M = max m, L = sum f l, A = sum f acc with f = exp(m - M); a partial
    // that saw no position (m = -inf) contributes nothing.
    struct Folded {
      Value m, l, acc;
    };
    auto fold = [&](OpBuilder &nb, Location l, ArrayRef<Value> ms,
                    ArrayRef<Value> ls, ArrayRef<Value> accs) {
      Value mMax = cf(nb, negInf);
      for (Value m : ms)
        mMax = arith::MaximumFOp::create(nb, l, mMax, m);
      Value sum = cf(nb, 0.0), acc = cf(nb, 0.0);
      for (auto [mw, lw, aw] : llvm::zip_equal(ms, ls, accs)) {
        Value has = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::ONE, mw,
                                          cf(nb, negInf));
        Value f = arith::SelectOp::create(
            nb, l, has,
            math::ExpOp::create(nb, l, arith::SubFOp::create(nb, l, mw, mMax)),
            cf(nb, 0.0));
        sum = arith::AddFOp::create(nb, l, sum,
                                    arith::MulFOp::create(nb, l, f, lw));
        acc = arith::AddFOp::create(nb, l, acc,
                                    arith::MulFOp::create(nb, l, f, aw));
      }
      return Folded{mMax, sum, acc};
    };
    // Output element d of the block's query head r: A / L (0 when no
    // position was seen).
    auto finish = [&](OpBuilder &nb, Location l, Folded f, Value r, Value d) {
      Value anySeen = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::ONE,
                                            f.m, cf(nb, negInf));
      Value positive = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT,
                                             f.l, cf(nb, 0.0));
      Value ok = arith::AndIOp::create(nb, l, anySeen, positive);
      Value v = arith::SelectOp::create(
          nb, l, ok, arith::DivFOp::create(nb, l, f.acc, f.l), cf(nb, 0.0));
      if (outElt != f32)
        v = arith::TruncFOp::create(nb, l, outElt, v);
      Value h = arith::AddIOp::create(nb, l, h0, r);
      memref::StoreOp::create(nb, l, v, out, ValueRange{bi, idx(0), h, d});
    };

    // The block's result per element i < heads per block * D (a thread
    // each, strided by the block): its warps' partials folded. Without a
    // cluster that is the output; in a cluster it is the block's partial,
    // kept in workgroup memory for the other blocks.
    Value bm, bl, bacc;
    if (C > 1) {
      bm = kb.workgroupBuffer({hpb}, f32);
      bl = kb.workgroupBuffer({hpb}, f32);
      bacc = kb.workgroupBuffer({hpb * D}, f32);
    }
    scf::ForOp::create(
        b, loc, tid, idx(hpb * D), idx(threads), ValueRange{},
        [&](OpBuilder &nb, Location l, Value i, ValueRange) {
          Value r = arith::DivUIOp::create(nb, l, i, idx(D));
          Value d = arith::RemUIOp::create(nb, l, i, idx(D));
          SmallVector<Value> ms, ls, accs;
          for (int64_t w = 0; w < warps; ++w) {
            Value slot = arith::AddIOp::create(nb, l, idx(w * hpb), r);
            ms.push_back(memref::LoadOp::create(nb, l, sm, ValueRange{slot}));
            ls.push_back(memref::LoadOp::create(nb, l, sl, ValueRange{slot}));
            accs.push_back(memref::LoadOp::create(
                nb, l, sacc,
                ValueRange{arith::AddIOp::create(
                    nb, l, arith::MulIOp::create(nb, l, slot, idx(D)), d)}));
          }
          Folded f = fold(nb, l, ms, ls, accs);
          if (C == 1) {
            finish(nb, l, f, r, d);
          } else {
            memref::StoreOp::create(nb, l, f.acc, bacc, ValueRange{i});
            Value first = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq,
                                                d, idx(0));
            auto ifFirst = scf::IfOp::create(nb, l, first, false);
            OpBuilder::InsertionGuard guard(nb);
            nb.setInsertionPointToStart(&ifFirst.getThenRegion().front());
            memref::StoreOp::create(nb, l, f.m, bm, ValueRange{r});
            memref::StoreOp::create(nb, l, f.l, bl, ValueRange{r});
          }
          scf::YieldOp::create(nb, l);
        });

    // In a cluster: after a cluster barrier, thread i (strided by the
    // cluster's threads) folds the C blocks' partials of element i, read
    // from their workgroup memory, into the output.
    if (C > 1) {
      kb.clusterBarrier();
      Value firstI = arith::AddIOp::create(
          b, loc, arith::MulIOp::create(b, loc, rank, idx(threads)), tid);
      scf::ForOp::create(
          b, loc, firstI, idx(hpb * D), idx(C * threads), ValueRange{},
          [&](OpBuilder &nb, Location l, Value i, ValueRange) {
            Value r = arith::DivUIOp::create(nb, l, i, idx(D));
            Value d = arith::RemUIOp::create(nb, l, i, idx(D));
            SmallVector<Value> ms, ls, accs;
            for (int64_t c = 0; c < C; ++c) {
              ms.push_back(kb.clusterLoad(nb, bm, r, idx(c)));
              ls.push_back(kb.clusterLoad(nb, bl, r, idx(c)));
              accs.push_back(kb.clusterLoad(nb, bacc, i, idx(c)));
            }
            finish(nb, l, fold(nb, l, ms, ls, accs), r, d);
            scf::YieldOp::create(nb, l);
          });
    }

    // No block leaves while another may still read its workgroup memory.
    if (C > 1)
      kb.clusterBarrier();

    LaunchShape shape;
    shape.grid[0] = g->batch * blocksPerSeq * C;
    shape.block[0] = threads;
    shape.cluster[0] = C;
    if (C > 1)
      shape.tiling = "h" + std::to_string(hpb) + "w" + std::to_string(warps) +
                     "c" + std::to_string(C) + "u" + std::to_string(unroll);
    return shape;
  }
};

} // namespace

const KernelRecipe &attentionDecode() {
  static const AttentionDecode recipe;
  return recipe;
}

} // namespace kiln::kernels
