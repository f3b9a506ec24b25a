//===- AttentionPrefill.cpp - Flash attention for prefill -----------------===//
//
// attention_prefill: the whole of one tfm.attention for a chunk of tokens
// (seq > 1) as one launch on the tensor cores, the scores never in memory
// (flash attention, as FlashAttention-2 computes it). AttentionGroup.h finds
// the group; the recipe computes the same function as the seven steps:
//
//   out[b, s, h, :] = sum_t softmax_t(scale * q[b, s, h, :] . K[b, g, t, :])
//   V[b, g, t, :] over t <= positions[b, s], t < max_seq_len,
//   g = h / (heads / kv_heads); 0 where there is no t.
//
// A block per (sequence, query head, tile of 64 query rows), 4 warps of 16
// rows each, last tiles first (they have the most positions to read). Each
// warp keeps its rows' q as m16n8k16 A operands in registers; the block
// stages K and V tiles of the positions some row of the tile can see
// (cp.async into two workgroup buffers, the next tile loading while the
// current one is used), computes S = q K^T with nvgpu.mma.sync, masks it by
// position, keeps an online softmax per row (running max and sum, exp2 of
// pre-scaled scores), and adds P V into f32 accumulators, P going from the
// accumulator layout straight into A operands (f16) and V read with
// transposing ldmatrix. Positions past the last one a row of the tile can
// see are zero-filled, never read.
//
//===----------------------------------------------------------------------===//

#include "passes/kernels/AttentionGroup.h"
#include "passes/kernels/KernelBuilder.h"
#include "passes/kernels/KernelLibrary.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"

#include <cmath>
#include <limits>

using namespace mlir;

namespace kiln::kernels {
namespace {

using attention::Group;
using attention::groupOf;

class AttentionPrefill final : public attention::AttentionRecipe {
public:
  static constexpr int64_t kRows = 64; // query rows a block (16 a warp)
  static constexpr int64_t kWarps = 4;
  static constexpr int64_t kPad = 8; // elements padding a workgroup row

  StringRef name() const override { return "attention_prefill"; }

  /// A chunk of tokens (seq > 1), head_dim a multiple of 16 up to 128, q and
  /// the caches of one 16-bit float type, their rows contiguous.
  bool matches(Operation *op) const override {
    std::optional<Group> g = groupOf(op);
    if (!g || g->seq <= 1 || g->headDim % 16 || g->headDim > 128 || g->prologue)
      return false;
    auto q = cast<MemRefType>(g->steps[0].getDpsInputs()[0].getType());
    auto k = cast<MemRefType>(g->steps[0].getDpsInputs()[1].getType());
    auto out = cast<MemRefType>(g->steps[6].getDpsInits()[0].getType());
    Type e = q.getElementType();
    return (e.isF16() || e.isBF16()) && k.getElementType() == e &&
           isa<FloatType>(out.getElementType()) && q.isLastDimUnitStride() &&
           k.isLastDimUnitStride() && k.getLayout().isIdentity();
  }

  /// Positions a K/V tile: 64, or 32 for head_dim over 64 (two stages of K
  /// and V stay under 48 KiB of workgroup memory).
  static int64_t tileFor(int64_t headDim) { return headDim <= 64 ? 64 : 32; }

  FailureOr<LaunchShape> build(OpBuilder &b, Operation *op, IRMapping &map,
                               gpu::GPUFuncOp kernel, Value init,
                               ArrayRef<Operation *> fused) const override {
    std::optional<Group> g = groupOf(op);
    if (!g || !matches(op))
      return failure();
    Location loc = op->getLoc();
    KernelBuilder kb(b, loc, kernel);
    const int64_t D = g->headDim, S = g->seq, T = g->maxSeq;
    const int64_t rep = g->heads / g->kvHeads, BN = tileFor(D);
    const int64_t qTiles = llvm::divideCeil(S, kRows);
    Value q = map.lookup(g->steps[0].getDpsInputs()[0]);

    // The caches, or (paged) the pools (kvIndices addresses them).
    Value kBuf = kvBuffer(*g, map, /*values=*/false);
    Value vBuf = kvBuffer(*g, map, /*values=*/true);
    Value pos = map.lookup(g->steps[1].getDpsInputs()[1]);

    Value out = map.lookup(g->steps[6].getDpsInits()[0]);
    Type f32 = b.getF32Type(), i32 = b.getI32Type();
    Type elem = cast<MemRefType>(q.getType()).getElementType();
    Type outElt = cast<MemRefType>(out.getType()).getElementType();
    auto idx = [&](int64_t v) { return kb.index(v); };
    auto cf = [&](double v) -> Value {
      return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
    };
    const double negInf = -std::numeric_limits<double>::infinity();

    OpBuilder::InsertionGuard guard(b);
    Value smemK = kb.workgroupBuffer({2, BN, D + kPad}, elem);
    Value smemV = kb.workgroupBuffer({2, BN, D + kPad}, elem);
    Value smemEnd = kb.workgroupBuffer({kWarps}, i32);

    Value tid = kb.threadIdX();
    Value lane = kb.rem(tid, 32), warp = kb.div(tid, 32);
    Value qTile = arith::SubIOp::create(b, loc, idx(qTiles - 1), kb.blockIdX());
    Value h = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
    Value bi = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
    Value grp = kb.div(h, rep);
    Value s0 = kb.mul(qTile, kRows);
    Value quad = kb.div(lane, 4), inQuad = kb.rem(lane, 4);

    // The thread's two rows (quad and quad + 8 of its warp's 16) and the
    // positions each can see: t < lim = clamp(position + 1, 0, T); 0 for a
    // row past the chunk.
    Value rows[2], lims[2];
    for (int64_t i = 0; i < 2; ++i) {
      Value r = kb.add(kb.add(s0, kb.mul(warp, 16)), kb.add(quad, idx(8 * i)));
      Value inChunk =
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, r, idx(S));
      rows[i] = arith::MinUIOp::create(b, loc, r, idx(S - 1));
      Value p = memref::LoadOp::create(b, loc, pos, ValueRange{bi, rows[i]});
      Value n = arith::AddIOp::create(
          b, loc, p, arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(1)));
      n = arith::MaxSIOp::create(
          b, loc, n, arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0)));
      n = arith::MinSIOp::create(
          b, loc, n, arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(T)));
      n = arith::SelectOp::create(
          b, loc, inChunk, n,
          arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0)));
      lims[i] = arith::IndexCastOp::create(b, loc, b.getIndexType(), n);
    }
    // The block's last visible position + 1: the maximum over its rows
    // (butterfly shuffles in the warp, then workgroup memory).
    Value end = butterfly(
        b, loc,
        arith::IndexCastOp::create(
            b, loc, i32, arith::MaxUIOp::create(b, loc, lims[0], lims[1])),
        32, [&](Value x, Value y) {
          return arith::MaxSIOp::create(b, loc, x, y).getResult();
        });
    {
      Value first =
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lane, idx(0));
      auto put = scf::IfOp::create(b, loc, first, false);
      OpBuilder::InsertionGuard inner(b);
      b.setInsertionPointToStart(&put.getThenRegion().front());
      memref::StoreOp::create(b, loc, end, smemEnd, ValueRange{warp});
    }
    gpu::BarrierOp::create(b, loc);
    Value kvEnd32 = memref::LoadOp::create(b, loc, smemEnd, ValueRange{idx(0)});
    for (int64_t w = 1; w < kWarps; ++w)
      kvEnd32 = arith::MaxSIOp::create(
          b, loc, kvEnd32,
          memref::LoadOp::create(b, loc, smemEnd, ValueRange{idx(w)}));
    Value kvEnd = arith::IndexCastOp::create(b, loc, b.getIndexType(), kvEnd32);
    Value kvTiles = kb.div(kb.add(kvEnd, idx(BN - 1)), BN);

    // q of the thread's rows as A operands, one per 16 of head_dim:
    // rows (quad, quad + 8) x columns (2 inQuad, +1, +8, +9).
    auto v2 = VectorType::get({2}, elem);
    auto fragType = VectorType::get({4, 2}, elem);
    Value zeroFrag = arith::ConstantOp::create(
        b, loc, fragType,
        DenseElementsAttr::get(fragType, b.getZeroAttr(elem)));
    SmallVector<Value> qFrags;
    for (int64_t ks = 0; ks < D / 16; ++ks) {
      Value frag = zeroFrag;
      for (int64_t part = 0; part < 4; ++part) {
        Value col = kb.add(idx(ks * 16 + (part / 2) * 8), kb.mul(inQuad, 2));
        Value piece = vector::LoadOp::create(
            b, loc, v2, q, ValueRange{bi, rows[part % 2], h, col});
        frag = vector::InsertOp::create(b, loc, piece, frag,
                                        ArrayRef<int64_t>{part});
      }
      qFrags.push_back(frag);
    }

    // The copies of K and V tile `j` into stage `stage`: 16-byte chunks;
    // positions at or past kvEnd are zero-filled.
    const int64_t chunksPerRow = D / 8, chunks = BN * chunksPerRow;
    const int64_t threads = kWarps * 32;
    auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
    auto issue = [&](Value stage, Value j) {
      SmallVector<Value> tokens;
      Value t0 = kb.mul(j, BN);
      for (int64_t c = 0; c < chunks; c += threads) {
        Value chunk = kb.add(tid, idx(c));
        Value row = kb.div(chunk, chunksPerRow);
        Value col = kb.mul(kb.rem(chunk, chunksPerRow), 8);
        Value t = kb.add(t0, row);
        Value valid =
            arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, t, kvEnd);
        Value count = arith::SelectOp::create(b, loc, valid, idx(8), idx(0));
        Value tc = arith::MinUIOp::create(b, loc, t, idx(T - 1));
        // Slot tc of the sequence: its cache row, or (paged) the block its
        // table names.
        SmallVector<Value, 4> at = kvIndices(b, loc, *g, map, bi, grp, tc, col);
        for (auto [dst, src] :
             {std::pair{smemK, kBuf}, std::pair{smemV, vBuf}}) {
          tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
              b, loc, tokenType, dst, ValueRange{stage, row, col}, src, at,
              b.getIndexAttr(8), count, b.getUnitAttr()));
        }
      }
      return nvgpu::DeviceAsyncCreateGroupOp::create(b, loc, tokenType, tokens);
    };
    Value group = issue(idx(0), idx(0));

    // State: per row (2) the running max and this thread's part of the sum,
    // then the output accumulators, one per 8 of head_dim.
    auto accType = VectorType::get({2, 2}, f32);
    Value zeroAcc = arith::ConstantOp::create(
        b, loc, accType, DenseElementsAttr::get(accType, 0.0f));
    SmallVector<Value> state{cf(negInf), cf(negInf), cf(0.0), cf(0.0)};
    for (int64_t dt = 0; dt < D / 8; ++dt)
      state.push_back(zeroAcc);
    const double scaleLog2 = g->scale / std::log(2.0);
    auto loop = scf::ForOp::create(
        b, loc, idx(0), kvTiles, idx(1), state,
        [&](OpBuilder &nb, Location l, Value j, ValueRange st) {
          OpBuilder::InsertionGuard inner(b);
          b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          nvgpu::DeviceAsyncWaitOp::create(b, l, group, b.getI32IntegerAttr(0));
          gpu::BarrierOp::create(b, l);
          Value next = kb.add(j, idx(1));
          issue(kb.rem(next, 2), next);
          Value stage = kb.rem(j, 2);
          Value t0 = kb.mul(j, BN);

          // S = q K^T: BN / 8 accumulators.
          SmallVector<Value> sAcc(BN / 8, zeroAcc);
          for (int64_t ks = 0; ks < D / 16; ++ks)
            for (int64_t jp = 0; jp < BN / 16; ++jp) {
              Value row =
                  kb.add(idx(jp * 16),
                         kb.add(kb.rem(lane, 8), kb.mul(kb.div(lane, 16), 8)));
              Value col =
                  kb.add(idx(ks * 16), kb.mul(kb.rem(kb.div(lane, 8), 2), 8));
              Value pair = nvgpu::LdMatrixOp::create(
                  b, l, fragType, smemK, ValueRange{stage, row, col},
                  /*transpose=*/false, /*numTiles=*/4);
              for (int64_t hh = 0; hh < 2; ++hh)
                sAcc[2 * jp + hh] = nvgpu::MmaSyncOp::create(
                    b, l, qFrags[ks], mmaOperandB(b, l, pair, hh),
                    sAcc[2 * jp + hh], ArrayRef<int64_t>{16, 8, 16});
            }

          // Scale (to base 2), mask, and the online softmax per row.
          SmallVector<Value> m{st[0], st[1]}, sum{st[2], st[3]};
          SmallVector<SmallVector<Value>> sc(BN / 8); // [n tile][i * 2 + c]
          SmallVector<Value> safe(2), corr(2);
          for (int64_t i = 0; i < 2; ++i) {
            Value rowMax = cf(negInf);
            for (int64_t nt = 0; nt < BN / 8; ++nt)
              for (int64_t c = 0; c < 2; ++c) {
                Value t =
                    kb.add(kb.add(t0, idx(nt * 8 + c)), kb.mul(inQuad, 2));
                Value ok = arith::CmpIOp::create(
                    b, l, arith::CmpIPredicate::ult, t, lims[i]);
                Value s = vector::ExtractOp::create(b, l, sAcc[nt],
                                                    ArrayRef<int64_t>{i, c});
                s = arith::MulFOp::create(b, l, s, cf(scaleLog2));
                s = arith::SelectOp::create(b, l, ok, s, cf(negInf));
                sc[nt].push_back(s);
                rowMax = arith::MaximumFOp::create(b, l, rowMax, s);
              }
            // A row's 4 lanes (a quad) hold its columns.
            rowMax = butterfly(b, l, rowMax, 4, [&](Value x, Value y) {
              return arith::MaximumFOp::create(b, l, x, y).getResult();
            });
            Value mNew = arith::MaximumFOp::create(b, l, m[i], rowMax);
            Value seen = arith::CmpFOp::create(b, l, arith::CmpFPredicate::ONE,
                                               mNew, cf(negInf));
            safe[i] = arith::SelectOp::create(b, l, seen, mNew, cf(0.0));
            corr[i] = math::Exp2Op::create(
                b, l, arith::SubFOp::create(b, l, m[i], safe[i]));
            m[i] = mNew;
            sum[i] = arith::MulFOp::create(b, l, sum[i], corr[i]);
          }
          // p = exp2(s - max), summed per row, as A operands of P V.
          SmallVector<Value> pRows; // [n tile][i]: vector<2 x elem>
          for (int64_t nt = 0; nt < BN / 8; ++nt)
            for (int64_t i = 0; i < 2; ++i) {
              SmallVector<Value> ps;
              for (int64_t c = 0; c < 2; ++c) {
                Value p = math::Exp2Op::create(
                    b, l,
                    arith::SubFOp::create(b, l, sc[nt][i * 2 + c], safe[i]));
                sum[i] = arith::AddFOp::create(b, l, sum[i], p);
                ps.push_back(arith::TruncFOp::create(b, l, elem, p));
              }
              pRows.push_back(vector::FromElementsOp::create(b, l, v2, ps));
            }
          SmallVector<Value> o(st.begin() + 4, st.end());
          for (int64_t dt = 0; dt < D / 8; ++dt) {
            Value scaled = zeroAcc;
            for (int64_t i = 0; i < 2; ++i) {
              Value row =
                  vector::ExtractOp::create(b, l, o[dt], ArrayRef<int64_t>{i});
              Value c = vector::BroadcastOp::create(
                  b, l, VectorType::get({2}, f32), corr[i]);
              scaled = vector::InsertOp::create(
                  b, l, arith::MulFOp::create(b, l, row, c), scaled,
                  ArrayRef<int64_t>{i});
            }
            o[dt] = scaled;
          }
          // O += P V: P's A operand for positions 16 kk .. 16 kk + 15 is the
          // rows of n tiles 2 kk and 2 kk + 1; V's B operands come from
          // transposing ldmatrix of its [t, d] rows.
          for (int64_t kk = 0; kk < BN / 16; ++kk) {
            Value pFrag = zeroFrag;
            for (int64_t part = 0; part < 4; ++part)
              pFrag = vector::InsertOp::create(
                  b, l, pRows[(2 * kk + part / 2) * 2 + part % 2], pFrag,
                  ArrayRef<int64_t>{part});
            for (int64_t dp = 0; dp < D / 16; ++dp) {
              Value row = kb.add(idx(kk * 16),
                                 kb.add(kb.rem(lane, 8),
                                        kb.mul(kb.rem(kb.div(lane, 8), 2), 8)));
              Value col = kb.add(idx(dp * 16), kb.mul(kb.div(lane, 16), 8));
              Value pair = nvgpu::LdMatrixOp::create(
                  b, l, fragType, smemV, ValueRange{stage, row, col},
                  /*transpose=*/true, /*numTiles=*/4);
              for (int64_t hh = 0; hh < 2; ++hh)
                o[2 * dp + hh] = nvgpu::MmaSyncOp::create(
                    b, l, pFrag, mmaOperandB(b, l, pair, hh), o[2 * dp + hh],
                    ArrayRef<int64_t>{16, 8, 16});
            }
          }
          SmallVector<Value> yielded{m[0], m[1], sum[0], sum[1]};
          yielded.append(o.begin(), o.end());
          scf::YieldOp::create(b, l, yielded);
        });

    // Each row's sum over its quad; out = O / sum (0 for a row that sees no
    // position), stored for rows of the chunk.
    ValueRange res = loop.getResults();
    for (int64_t i = 0; i < 2; ++i) {
      Value total = butterfly(b, loc, res[2 + i], 4, [&](Value x, Value y) {
        return arith::AddFOp::create(b, loc, x, y).getResult();
      });
      Value positive = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT,
                                             total, cf(0.0));
      Value inv = arith::SelectOp::create(
          b, loc, positive, arith::DivFOp::create(b, loc, cf(1.0), total),
          cf(0.0));
      Value r = kb.add(kb.add(s0, kb.mul(warp, 16)), kb.add(quad, idx(8 * i)));
      Value inChunk =
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, r, idx(S));
      auto store = scf::IfOp::create(b, loc, inChunk, false);
      OpBuilder::InsertionGuard inner(b);
      b.setInsertionPointToStart(&store.getThenRegion().front());
      for (int64_t dt = 0; dt < D / 8; ++dt)
        for (int64_t c = 0; c < 2; ++c) {
          Value v = vector::ExtractOp::create(b, loc, res[4 + dt],
                                              ArrayRef<int64_t>{i, c});
          v = arith::MulFOp::create(b, loc, v, inv);
          if (outElt != f32)
            v = arith::TruncFOp::create(b, loc, outElt, v);
          Value d = kb.add(idx(dt * 8 + c), kb.mul(inQuad, 2));
          memref::StoreOp::create(b, loc, v, out, ValueRange{bi, r, h, d});
        }
    }

    LaunchShape shape;
    shape.grid = {qTiles, g->heads, g->batch};
    shape.block[0] = threads;
    shape.tiling = "q" + std::to_string(kRows) + "kv" + std::to_string(BN);
    return shape;
  }
};

} // namespace

const KernelRecipe &attentionPrefill() {
  static const AttentionPrefill recipe;
  return recipe;
}

} // namespace kiln::kernels
