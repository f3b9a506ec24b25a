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
// group when they fit (its K and V rows read once for all of them). Only
// positions that exist are read (the KV buffer's max_seq_len does not
// matter). The block first puts its heads' q (and the new token's k and v,
// roped) in workgroup memory, an element per thread. A warp then reads
// 32 / L positions at once, L lanes a position, each lane 16 bytes of the K
// and V rows (configFor): a score is L-lane partial dot products summed by
// log2(L) shuffles. Each (warp, slot) is a stream taking every S-th position,
// several per iteration with all their loads issued first, and keeps an
// online softmax (running max, sum and its lane's share of the weighted V)
// per query head in registers, rescaled once per iteration. Shuffles join
// a warp's slots and workgroup memory its warps at the end.
//
// Split-KV (flash-decoding) on sm_90 and later, in the same one launch: a
// thread-block cluster of up to 8 blocks per group of query heads, the
// positions dealt over the streams of the cluster; after a cluster barrier
// each block reads the other blocks' partial (max, sum, weighted V) through
// distributed shared memory and finishes its slice of the output.
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
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"

#include <algorithm>
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

  /// Lanes per position: the most (a power of two up to 32 dividing
  /// head_dim) that still give each lane 16 bytes of a K or V row or more.
  static int64_t lanesFor(int64_t headDim, int64_t cacheBytes) {
    int64_t lanes = 32;
    while (lanes > 1 &&
           (headDim % lanes != 0 || headDim / lanes * cacheBytes < 16))
      lanes /= 2;
    return lanes;
  }

  /// Registers of a query head's q slice and online softmax state per lane.
  static int64_t registersPerHead(int64_t vec) { return 2 + 2 * vec; }

  /// Query heads per block: all of a KV head's group (its K and V rows read
  /// once for all of them) when that still gives `minBlocks` blocks or more
  /// (`blocksPerHead` blocks per group of heads) and fits `maxRegisters` of
  /// q and state per lane; else fewer (down to one), each block reading its
  /// group's rows again (from L2).
  static int64_t headsPerBlock(const Group &g, int64_t vec,
                               int64_t blocksPerHead, int64_t minBlocks,
                               int64_t maxRegisters = 96) {
    const int64_t rep = g.heads / g.kvHeads;
    for (int64_t hpb = rep; hpb > 1; --hpb)
      if (rep % hpb == 0 &&
          g.batch * (g.heads / hpb) * blocksPerHead >= minBlocks &&
          hpb * registersPerHead(vec) <= maxRegisters)
        return hpb;
    return 1;
  }

  /// How the work is divided: query heads per block, warps per block,
  /// blocks per cluster splitting the positions between them, positions
  /// per stream and iteration, and lanes per position.
  struct Config {
    int64_t hpb = 1, warps = 1, cluster = 1;
    int64_t unroll = 4; // positions per stream and iteration, loads together
    int64_t lanes = 32;
  };

  /// A warp reads 32 / lanes positions at once, `lanes` lanes a position
  /// with 16-byte loads (lanesFor), so that a score costs log2(lanes)
  /// shuffles. Without clusters, a block per group of query heads. With
  /// clusters (sm_90+: `maxCluster` >= 2), split-KV (flash-decoding) in one
  /// launch: the positions are dealt over the slots of the warps of a
  /// cluster of 8 blocks of 8 warps, each block folds its warps' partial
  /// softmax results, and the blocks combine theirs through distributed
  /// shared memory, each finishing a slice of the output; a block takes all
  /// query heads of a KV head's group (K and V read once). Each stream takes
  /// `unroll` positions per iteration, enough for 512 positions a round.
  /// KILN_TUNE_ATTENTION_DECODE=h<heads>w<warps>c<cluster>u<unroll> (e.g.
  /// h2w8c8u4) overrides the choice for measurements; a value that does not
  /// fit is ignored.
  static Config configFor(const Group &g, int64_t maxCluster,
                          int64_t cacheBytes) {
    Config c;
    const int64_t rep = g.heads / g.kvHeads;
    c.lanes = lanesFor(g.headDim, cacheBytes);
    const int64_t vec = g.headDim / c.lanes, slots = 32 / c.lanes;
    if (maxCluster < 2) {
      // At most 16 warps: 128 registers a thread for the loads in flight.
      c.hpb = headsPerBlock(g, vec, 1, /*minBlocks=*/64);
      c.warps = std::min<int64_t>(16, warpsFor(c.hpb, g.headDim));
    } else {
      c.cluster = std::min<int64_t>(maxCluster, 8);
      c.hpb = headsPerBlock(g, vec, c.cluster, /*minBlocks=*/1);
      c.warps = 8;
    }
    c.unroll = std::clamp<int64_t>(512 / (c.cluster * c.warps * slots), 1, 4);
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
      if (ok && text.empty() && h >= 1 && rep % h == 0 &&
          h * registersPerHead(vec) <= 160 && w >= 1 && w <= 32 &&
          llvm::isPowerOf2_64(w) && cl >= 1 &&
          cl <= std::max<int64_t>(maxCluster, 1) && u >= 1 && u <= 16 &&
          w * h * (g.headDim + 2) * 4 <= 40 * 1024)
        c = Config{h, w, cl, u, c.lanes};
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
    const int64_t rep = g->heads / g->kvHeads, D = g->headDim;
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
    const int64_t cacheBytes = cacheElt.getIntOrFloatBitWidth() / 8;
    const Config cfg = configFor(*g, kb.maxClusterBlocks(), cacheBytes);
    const int64_t hpb = cfg.hpb, blocksPerSeq = g->heads / hpb;
    const int64_t warps = cfg.warps, threads = warps * 32, C = cfg.cluster;
    const int64_t unroll = cfg.unroll;
    auto idx = [&](int64_t v) { return kb.index(v); };
    auto cf = [&](OpBuilder &nb, double v) -> Value {
      return arith::ConstantOp::create(nb, loc, nb.getF32FloatAttr(v));
    };
    auto ext = [&](OpBuilder &nb, Value v) { return kb.extendTo(nb, v, f32); };
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

    // This thread's share: lane = slot * tx + dx reads elements
    // d0 .. d0 + vec - 1 (d0 = dx * vec) of its slot's position.
    const int64_t tx = cfg.lanes, vec = D / tx, py = 32 / tx;
    Value slot = kb.div(lane, tx);
    Value d0 = kb.mul(kb.rem(lane, tx), vec);
    Value pIdx = arith::IndexCastOp::create(b, loc, b.getIndexType(), p);

    // The block's query heads (and with the prologue the new token's k and
    // v) into workgroup memory, an element per thread: q roped (rounded to
    // q's type, as the unfused pipeline stores it) and pre-scaled; k roped
    // in the cache's type; v as it is. The block that appends them (the
    // first of its KV head's group and of its cluster, when the position is
    // in the cache) stores k and v into the cache; every block uses them for
    // position p instead of reading the cache, which another block may not
    // have written yet.
    Value qS = kb.workgroupBuffer({hpb * D}, f32);
    Value kS, vS;
    // RoPE: element d of the head starting at column `base` of `src`,
    // rotated with its partner d +- D/2 by the position's angles.
    auto roped = [&](OpBuilder &nb, Location l, Value src, Value base,
                     Value d) -> Value {
      Value first = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, d,
                                          idx(D / 2));
      Value lower = arith::SubIOp::create(nb, l, d, idx(D / 2));
      Value j = arith::SelectOp::create(nb, l, first, d, lower);
      Value partner = arith::SelectOp::create(
          nb, l, first, arith::AddIOp::create(nb, l, d, idx(D / 2)), lower);
      Value theta = arith::MulFOp::create(
          nb, l, arith::SIToFPOp::create(nb, l, f32, p),
          memref::LoadOp::create(nb, l, map.lookup(pro->freqs), ValueRange{j}));
      Value cosT = arith::MulFOp::create(
          nb, l, math::CosOp::create(nb, l, theta), cf(nb, pro->scaling));
      Value sinT = arith::MulFOp::create(
          nb, l, math::SinOp::create(nb, l, theta), cf(nb, pro->scaling));
      auto at = [&](Value e) {
        return ext(nb, memref::LoadOp::create(
                           nb, l, src,
                           ValueRange{bi, idx(0),
                                      arith::AddIOp::create(nb, l, base, e)}));
      };
      Value xc = arith::MulFOp::create(nb, l, at(d), cosT);
      Value ps = arith::MulFOp::create(nb, l, at(partner), sinT);
      return arith::SelectOp::create(nb, l, first,
                                     arith::SubFOp::create(nb, l, xc, ps),
                                     arith::AddFOp::create(nb, l, xc, ps));
    };
    Value scale = cf(b, g->scale);
    scf::ForOp::create(
        b, loc, tid, idx(hpb * D), idx(threads), ValueRange{},
        [&](OpBuilder &nb, Location l, Value i, ValueRange) {
          Value r = arith::DivUIOp::create(nb, l, i, idx(D));
          Value d = arith::RemUIOp::create(nb, l, i, idx(D));
          Value h = arith::AddIOp::create(nb, l, h0, r);
          Value x;
          if (pro) {
            x = roped(nb, l, map.lookup(pro->qSrc),
                      arith::MulIOp::create(nb, l, h, idx(D)), d);
            if (qElt != f32)
              x = ext(nb, arith::TruncFOp::create(nb, l, qElt, x));
          } else {
            x = ext(nb, memref::LoadOp::create(nb, l, q,
                                               ValueRange{bi, idx(0), h, d}));
          }
          memref::StoreOp::create(nb, l, arith::MulFOp::create(nb, l, x, scale),
                                  qS, ValueRange{i});
          scf::YieldOp::create(nb, l);
        });
    if (pro) {
      if (cast<MemRefType>(pro->vSrc.getType()).getElementType() != cacheElt)
        return failure();
      kS = kb.workgroupBuffer({D}, cacheElt);
      vS = kb.workgroupBuffer({D}, cacheElt);
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
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, rank,
                                    idx(0))));
      Value kvBase = arith::MulIOp::create(b, loc, grp, idx(D));
      scf::ForOp::create(
          b, loc, tid, idx(D), idx(threads), ValueRange{},
          [&](OpBuilder &nb, Location l, Value d, ValueRange) {
            Value k = roped(nb, l, map.lookup(pro->kSrc), kvBase, d);
            if (cacheElt != f32)
              k = arith::TruncFOp::create(nb, l, cacheElt, k);
            Value v = memref::LoadOp::create(
                nb, l, map.lookup(pro->vSrc),
                ValueRange{bi, idx(0),
                           arith::AddIOp::create(nb, l, kvBase, d)});
            memref::StoreOp::create(nb, l, k, kS, ValueRange{d});
            memref::StoreOp::create(nb, l, v, vS, ValueRange{d});
            auto append = scf::IfOp::create(nb, l, writer, false);
            {
              OpBuilder::InsertionGuard guard(nb);
              nb.setInsertionPointToStart(&append.getThenRegion().front());
              // Its row of the cache, or (paged) its slot of the block the
              // table names.
              SmallVector<Value, 4> at =
                  kvIndices(nb, l, *g, map, bi, grp, pIdx, d);
              memref::StoreOp::create(nb, l, k, kBuf, at);
              memref::StoreOp::create(nb, l, v, vBuf, at);
            }
            scf::YieldOp::create(nb, l);
          });
    }
    gpu::BarrierOp::create(b, loc);

    // This thread's q elements per head, and the new k and v.
    VectorType vF32 = VectorType::get({vec}, f32);
    VectorType vCache = VectorType::get({vec}, cacheElt);
    // The largest power of two dividing `bytes`, at most 16.
    auto alignOf = [](int64_t bytes) {
      return llvm::MaybeAlign(std::min<uint64_t>(
          16, uint64_t(1) << llvm::countr_zero(uint64_t(bytes))));
    };
    const llvm::MaybeAlign kvAlign = alignOf(vec * cacheBytes);
    SmallVector<Value> qv;
    for (int64_t r = 0; r < hpb; ++r)
      qv.push_back(vector::LoadOp::create(
          b, loc, vF32, qS, ValueRange{kb.add(d0, idx(r * D))},
          /*nontemporal=*/false, alignOf(vec * 4)));
    Value kNew, vNew;
    if (pro) {
      kNew = vector::LoadOp::create(b, loc, vCache, kS, ValueRange{d0},
                                    /*nontemporal=*/false, kvAlign);
      vNew = vector::LoadOp::create(b, loc, vCache, vS, ValueRange{d0},
                                    /*nontemporal=*/false, kvAlign);
    }

    // State per query head: running max m, sum l, weighted values acc
    // (vec elements).
    Value zeros = arith::ConstantOp::create(b, loc, vF32,
                                            DenseElementsAttr::get(vF32, 0.0f));
    SmallVector<Value> state;
    for (int64_t r = 0; r < hpb; ++r)
      state.append({cf(b, negInf), cf(b, 0.0), zeros});
    // Streams: the (warp, slot) pairs of the cluster, numbered across its
    // blocks; stream s takes positions s, s + S, s + 2 S, ... (S streams),
    // `unroll` of them per iteration with all their loads issued first. The
    // loop runs over the warp's first stream (the same trip count for all
    // its lanes, whose shuffles need every lane), each slot offset from it.
    const int64_t streams = C * warps * py;
    Value warpFirst = kb.mul(kb.add(kb.mul(rank, warps), warp), py);
    auto loop = scf::ForOp::create(
        b, loc, warpFirst, n, idx(streams * unroll), state,
        [&](OpBuilder &nb, Location l, Value w0, ValueRange st) {
          // Positions past n - 1 are read at n - 1 and masked (their score
          // is -inf: they change nothing).
          Value t0 = arith::AddIOp::create(nb, l, w0, slot);
          SmallVector<Value> valid, kRow, vRow;
          for (int64_t u = 0; u < unroll; ++u) {
            Value t = arith::AddIOp::create(nb, l, t0, idx(u * streams));
            valid.push_back(
                arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, t, n));
            Value tc = arith::MinUIOp::create(nb, l, t, nLast);
            // Slot tc of the sequence: in its cache row, or (paged) in the
            // block its table names.
            SmallVector<Value, 4> at =
                kvIndices(nb, l, *g, map, bi, grp, tc, d0);
            Value kv = vector::LoadOp::create(nb, l, vCache, kBuf, at,
                                              /*nontemporal=*/false, kvAlign);
            Value vv = vector::LoadOp::create(nb, l, vCache, vBuf, at,
                                              /*nontemporal=*/false, kvAlign);
            if (pro) {
              Value isNew = arith::CmpIOp::create(
                  nb, l, arith::CmpIPredicate::eq, tc, pIdx);
              kv = arith::SelectOp::create(nb, l, isNew, kNew, kv);
              vv = arith::SelectOp::create(nb, l, isNew, vNew, vv);
            }
            kRow.push_back(kb.extendTo(nb, kv, vF32));
            vRow.push_back(kb.extendTo(nb, vv, vF32));
          }
          SmallVector<Value> next;
          for (int64_t r = 0; r < hpb; ++r) {
            // Scores: the slot's tx lanes sum their products.
            SmallVector<Value> s;
            Value m = st[3 * r], mNew = m;
            for (int64_t u = 0; u < unroll; ++u) {
              Value partial = vector::ReductionOp::create(
                  nb, l, vector::CombiningKind::ADD,
                  arith::MulFOp::create(nb, l, qv[r], kRow[u]));
              Value sum = butterfly(nb, l, partial, tx, [&](Value a, Value c) {
                return arith::AddFOp::create(nb, l, a, c);
              });
              s.push_back(arith::SelectOp::create(nb, l, valid[u], sum,
                                                  cf(nb, negInf)));
              mNew = arith::MaximumFOp::create(nb, l, mNew, s.back());
            }
            // mNew is finite once a valid position was seen; before that
            // (all masked so far) keep everything at its start.
            Value seen = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::ONE,
                                               mNew, cf(nb, negInf));
            Value safe =
                arith::SelectOp::create(nb, l, seen, mNew, cf(nb, 0.0));
            Value c = math::ExpOp::create(
                nb, l, arith::SubFOp::create(nb, l, m, safe));
            Value sum = arith::MulFOp::create(nb, l, st[3 * r + 1], c);
            Value acc = arith::MulFOp::create(
                nb, l, st[3 * r + 2],
                vector::BroadcastOp::create(nb, l, vF32, c));
            for (int64_t u = 0; u < unroll; ++u) {
              Value pe = math::ExpOp::create(
                  nb, l, arith::SubFOp::create(nb, l, s[u], safe));
              sum = arith::AddFOp::create(nb, l, sum, pe);
              acc = vector::FMAOp::create(
                  nb, l, vector::BroadcastOp::create(nb, l, vF32, pe), vRow[u],
                  acc);
            }
            next.append({mNew, sum, acc});
          }
          scf::YieldOp::create(nb, l, next);
        });

    // Folds partial results (max m, sum l, weighted values acc) into one:
    // M = max m, L = sum f l, A = sum f acc with f = exp(m - M); a partial
    // that saw no position (m = -inf) contributes nothing.
    struct Folded {
      Value m, l, acc;
    };
    auto weight = [&](OpBuilder &nb, Location l, Value m, Value mMax) {
      Value has = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::ONE, m,
                                        cf(nb, negInf));
      return arith::SelectOp::create(
          nb, l, has,
          math::ExpOp::create(nb, l, arith::SubFOp::create(nb, l, m, mMax)),
          cf(nb, 0.0));
    };
    auto fold = [&](OpBuilder &nb, Location l, ArrayRef<Value> ms,
                    ArrayRef<Value> ls, ArrayRef<Value> accs) {
      Value mMax = cf(nb, negInf);
      for (Value m : ms)
        mMax = arith::MaximumFOp::create(nb, l, mMax, m);
      Value sum = cf(nb, 0.0), acc = cf(nb, 0.0);
      for (auto [mw, lw, aw] : llvm::zip_equal(ms, ls, accs)) {
        Value f = weight(nb, l, mw, mMax);
        sum = arith::AddFOp::create(nb, l, sum,
                                    arith::MulFOp::create(nb, l, f, lw));
        acc = arith::AddFOp::create(nb, l, acc,
                                    arith::MulFOp::create(nb, l, f, aw));
      }
      return Folded{mMax, sum, acc};
    };

    // Join the slots of a warp (XOR shuffles across slots: every slot ends
    // with the warp's partial), then the warps: partial (m, l) and acc per
    // warp and query head in workgroup memory.
    Value sm = kb.workgroupBuffer({warps * hpb}, f32);
    Value sl = kb.workgroupBuffer({warps * hpb}, f32);
    Value sacc = kb.workgroupBuffer({warps * hpb * D}, f32);
    Value leader =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lane, idx(0));
    Value firstSlot = kb.ult(lane, tx);
    for (int64_t r = 0; r < hpb; ++r) {
      Value m = loop.getResult(3 * r), sum = loop.getResult(3 * r + 1),
            acc = loop.getResult(3 * r + 2);
      for (int32_t off = tx; off < 32; off *= 2) {
        auto other = [&](Value v) -> Value {
          return gpu::ShuffleOp::create(b, loc, v, off, /*width=*/32,
                                        gpu::ShuffleMode::XOR)
              .getShuffleResult();
        };
        Value mo = other(m), lo = other(sum);
        Value ao = zeros;
        for (int64_t e = 0; e < vec; ++e)
          ao = vector::InsertOp::create(b, loc,
                                        other(vector::ExtractOp::create(
                                            b, loc, acc, ArrayRef<int64_t>{e})),
                                        ao, ArrayRef<int64_t>{e});
        Value mMax = arith::MaximumFOp::create(b, loc, m, mo);
        Value f = weight(b, loc, m, mMax), fo = weight(b, loc, mo, mMax);
        sum =
            arith::AddFOp::create(b, loc, arith::MulFOp::create(b, loc, sum, f),
                                  arith::MulFOp::create(b, loc, lo, fo));
        acc = arith::AddFOp::create(
            b, loc,
            arith::MulFOp::create(b, loc, acc,
                                  vector::BroadcastOp::create(b, loc, vF32, f)),
            arith::MulFOp::create(
                b, loc, ao, vector::BroadcastOp::create(b, loc, vF32, fo)));
        m = mMax;
      }
      Value at = kb.add(kb.mul(warp, hpb), idx(r));
      auto ifLeader = scf::IfOp::create(b, loc, leader, false);
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(&ifLeader.getThenRegion().front());
        memref::StoreOp::create(b, loc, m, sm, ValueRange{at});
        memref::StoreOp::create(b, loc, sum, sl, ValueRange{at});
      }
      auto ifFirst = scf::IfOp::create(b, loc, firstSlot, false);
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(&ifFirst.getThenRegion().front());
        vector::StoreOp::create(b, loc, acc, sacc,
                                ValueRange{kb.add(kb.mul(at, D), d0)},
                                /*nontemporal=*/false, alignOf(vec * 4));
      }
    }
    gpu::BarrierOp::create(b, loc);

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
