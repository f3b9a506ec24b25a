//===- MatmulMma.cpp - The matmul_mma kernel (tensor cores) ---------------===//
//
// The matmul_mma recipe of the kernel library (KernelLibrary.h): the
// projection out[b, s, n] += x[b, s, k] * w[n, k] with more than a few rows
// (prefill, batched decode: b * s > 4) and 16-bit float operands, on the tensor
// cores. How it maps the work is described at its class.
//
//===----------------------------------------------------------------------===//

#include "passes/kernels/TensorCore.h"

#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

#include <cstdlib>

namespace kiln::kernels {
using namespace gemv;

namespace {

/// How a matmul_mma kernel divides the work: a block computes a bm x bn tile
/// of the projection (bn weight rows), its warps a warpsM x warpsN grid of
/// (bm / warpsM) x (bn / warpsN) tiles, each as m16n8k16 MMAs; K advances bk
/// at a time through a ring of `stages` workgroup buffers.
struct Tiling {
  int64_t bm, bn, warpsM, warpsN, stages;
  static constexpr int64_t kBk = 32;
  /// Rows of a workgroup tile are padded by 8 elements (16 bytes), so that
  /// the 8 rows an ldmatrix reads fall in different banks.
  static constexpr int64_t kPad = 8;
  int64_t threads() const { return 32 * warpsM * warpsN; }
  int64_t warpRows() const { return bm / warpsM; }
  int64_t warpCols() const { return bn / warpsN; }
  int64_t mTiles() const { return warpRows() / 16; } // m16 tiles a warp
  int64_t nTiles() const { return warpCols() / 8; }  // n8 tiles a warp
  int64_t stageBytes() const { return (bm + bn) * (kBk + kPad) * 2; }
};

/// matmul_mma: a tile of the projection per block, computed by m16n8k16
/// `nvgpu.mma.sync` (f32 accumulators in registers) from operands that
/// `nvgpu.ldmatrix` reads out of workgroup memory, where
/// `nvgpu.device_async_copy` (cp.async) stages the next K slices of x's rows
/// and w's rows while the current one is multiplied (a ring of 2-4 buffers).
/// Rows past the end of x or w are zero-filled, not read. The kernel also
/// computes, from the x tiles it stages, the sums of squares of the rows of a
/// fused RMSNorm (members), and applies the elementwise epilogue as it stores
/// each accumulator (the RMS scale, a residual add, the f16 conversion). For
/// an epilogue reading two column ranges (SwiGLU's gate and up) each warp's
/// weight rows interleave the ranges, so that every thread holds gate and up
/// of the same output column.
class MatmulMma final : public TensorCoreRecipe {
public:
  StringRef name() const override { return "matmul_mma"; }

  static std::optional<Projection> matchMma(Operation *op) {
    return matchTensorCore(op, kMaxRowsBeforeMma, Tiling::kBk);
  }

  bool matches(Operation *op) const override {
    return matchMma(op).has_value();
  }

  /// The tiling for `rows` x `cols` output tiles: 128 x 128 (8 warps, 2
  /// stages) when that still makes a block for each of ~132 SMs, else 64 x 64
  /// (4 warps, 4 stages). Both keep the stage ring under 48 KiB. At most 64
  /// rows (batched decode), where the weights' bytes are the cost: a 64-row
  /// tile, 128 columns for SwiGLU's gate/up (`nOff` 2), 32 columns in 6
  /// stages for a projection without a fused RMSNorm (o_proj, down: twice
  /// the blocks), as measured on the H200 with the 8B shape at 64 rows (us a
  /// layer, 64 x 64 before: gate/up 144.8 -> 116.2, down 130.3 -> 106.1,
  /// o_proj 44.0 -> 38.2; q/k/v, with its RMSNorm, was fastest at 64 x 64).
  /// KILN_TUNE_MATMUL_MMA=<bm>x<bn>s<stages>w<warpsM>x<warpsN> (e.g.
  /// 64x32s6w2x2) overrides the choice for measurements where it fits the
  /// projection (valid()); `nOff` column ranges share a warp's columns.
  static Tiling tilingFor(int64_t rows, int64_t weightRows, int64_t nOff,
                          bool rowNorm) {
    if (const char *env = std::getenv("KILN_TUNE_MATMUL_MMA")) {
      StringRef text(env);
      int64_t v[5] = {0, 0, 0, 0, 0};
      bool ok = !text.consumeInteger(10, v[0]) && text.consume_front("x") &&
                !text.consumeInteger(10, v[1]) && text.consume_front("s") &&
                !text.consumeInteger(10, v[2]) && text.consume_front("w") &&
                !text.consumeInteger(10, v[3]) && text.consume_front("x") &&
                !text.consumeInteger(10, v[4]) && text.empty();
      Tiling t{v[0], v[1], v[3], v[4], v[2]};
      if (ok && valid(t, nOff))
        return t;
    }
    if (rows <= 64) {
      Tiling gateUp{64, 128, 1, 4, 3}, narrow{64, 32, 2, 2, 6};
      if (nOff == 2 && valid(gateUp, nOff))
        return gateUp;
      if (!rowNorm && valid(narrow, nOff))
        return narrow;
    }
    Tiling big{128, 128, 2, 4, 0};
    Tiling small{64, 64, 2, 2, 0};
    Tiling t =
        llvm::divideCeil(rows, big.bm) * llvm::divideCeil(weightRows, big.bn) >=
                132
            ? big
            : small;
    t.stages = std::min<int64_t>(4, (48 * 1024) / t.stageBytes());
    return t;
  }

  /// Whether the kernel can be built with `t`: whole m16 and n8 tiles per
  /// warp (n tiles in pairs, 16 columns per column range), every thread
  /// copying whole chunks of both tiles, at least a thread per row for the
  /// row norms, 2 or more stages within 48 KiB.
  static bool valid(const Tiling &t, int64_t nOff) {
    const int64_t chunks = Tiling::kBk / 8;
    return t.bm > 0 && t.bn > 0 && t.warpsM > 0 && t.warpsN > 0 &&
           t.threads() <= 1024 && t.bm % (16 * t.warpsM) == 0 &&
           t.bn % (16 * t.warpsN) == 0 && (t.warpCols() / nOff) % 16 == 0 &&
           (t.bm * chunks) % t.threads() == 0 &&
           (t.bn * chunks) % t.threads() == 0 && t.threads() >= t.bm &&
           t.threads() % t.bm == 0 &&
           (Tiling::kBk / (t.threads() / t.bm)) % 8 == 0 && t.stages >= 2 &&
           t.stages * t.stageBytes() <= 48 * 1024;
  }

  FailureOr<LaunchShape> build(OpBuilder &b, Operation *op, IRMapping &map,
                               gpu::GPUFuncOp kernel, Value init,
                               ArrayRef<Operation *> fused) const override {
    std::optional<Projection> p = matchMma(op);
    if (!p)
      return failure();
    Operation *epilogue = epilogueIn(op, fused);
    Location loc = op->getLoc();
    KernelBuilder kb(b, loc, kernel);
    auto g = cast<linalg::GenericOp>(op);
    Value x = map.lookup(g.getDpsInputs()[0]);
    Value w = map.lookup(g.getDpsInputs()[1]);
    Value out = map.lookup(g.getDpsInits()[0]);
    const int64_t rows = p->batch * p->seq, K = p->k;
    // Output columns (SwiGLU: half the projection's) and the projection
    // column offsets each reads.
    OutputColumns oc = outputColumns(op, epilogue, p->n);
    const int64_t nOff = oc.offsets.size();
    const int64_t width = oc.width;
    Tiling t = tilingFor(rows, p->n, nOff, !members(op).empty());
    const int64_t wn = t.warpCols(), per = wn / nOff, ntg = t.nTiles() / nOff;
    if (per % 16)
      return failure();
    const int64_t blockCols = t.bn / nOff; // output columns a block
    const int64_t kTiles = K / Tiling::kBk;
    const int64_t chunksPerRow = Tiling::kBk / 8; // 16-byte copies
    Type elem = p->weightType;
    Type f32 = b.getF32Type();
    auto idx = [&](int64_t v) { return kb.index(v); };

    OpBuilder::InsertionGuard guard(b);
    std::optional<RowNormOps> norm =
        members(op).empty() ? std::nullopt : rowNormOf(op);
    Value smemA =
        kb.workgroupBuffer({t.stages, t.bm, Tiling::kBk + Tiling::kPad}, elem);
    Value smemB =
        kb.workgroupBuffer({t.stages, t.bn, Tiling::kBk + Tiling::kPad}, elem);
    Value rowSq = norm ? kb.workgroupBuffer({t.bm}, f32) : Value();

    Value tid = kb.threadIdX();
    Value lane = kb.rem(tid, 32);
    Value warp = kb.div(tid, 32);
    Value warpM = kb.rem(warp, t.warpsM), warpN = kb.div(warp, t.warpsM);
    Value blockN = kb.blockIdX();
    Value blockM = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
    Value m0 = kb.mul(blockM, t.bm);
    Value n0 = kb.mul(blockN, blockCols);
    // x[b, s, k] of row r of the projection (b * seq + s).
    auto xAt = [&](Value r, Value k) -> SmallVector<Value, 3> {
      return {kb.div(r, p->seq), kb.rem(r, p->seq), k};
    };

    // The copies of k tile `kt` (any index: past the last, they zero-fill)
    // into stage `stage`: each thread copies 16-byte chunks of x's and w's
    // rows, a row past the end (or a k tile past the last) reads nothing.
    const int64_t chunksA = t.bm * chunksPerRow, chunksB = t.bn * chunksPerRow;
    auto issue = [&](Value stage, Value kt) {
      SmallVector<Value> tokens;
      Value ktValid = kb.ult(kt, kTiles);
      Value ktClamped =
          arith::MinUIOp::create(b, loc, kt, idx(kTiles - 1)).getResult();
      Value k0 = kb.mul(ktClamped, Tiling::kBk);
      auto copy = [&](Value dst, Value row, Value col, Value src,
                      ValueRange srcAt, Value valid) {
        Value count = arith::SelectOp::create(b, loc, valid, idx(8), idx(0));
        tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
            b, loc, nvgpu::DeviceAsyncTokenType::get(b.getContext()), dst,
            ValueRange{stage, row, col}, src, srcAt, b.getIndexAttr(8), count,
            b.getUnitAttr()));
      };
      for (int64_t c = 0; c < chunksA; c += t.threads()) {
        Value chunk = kb.add(tid, idx(c));
        Value row = kb.div(chunk, chunksPerRow);
        Value col = kb.mul(kb.rem(chunk, chunksPerRow), 8);
        Value r = kb.add(m0, row);
        Value valid = arith::AndIOp::create(b, loc, ktValid, kb.ult(r, rows));
        Value rc = arith::MinUIOp::create(b, loc, r, idx(rows - 1));
        copy(smemA, row, col, x, xAt(rc, kb.add(k0, col)), valid);
      }
      for (int64_t c = 0; c < chunksB; c += t.threads()) {
        Value chunk = kb.add(tid, idx(c));
        Value row = kb.div(chunk, chunksPerRow);
        Value col = kb.mul(kb.rem(chunk, chunksPerRow), 8);
        // Row q of warp column group w: column n0 + w * per + q % per of
        // offset q / per.
        Value q = kb.rem(row, wn);
        Value n =
            kb.add(kb.add(n0, kb.mul(kb.div(row, wn), per)), kb.rem(q, per));
        Value weightRow = n;
        if (nOff == 2)
          weightRow = kb.add(n, arith::SelectOp::create(b, loc, kb.ult(q, per),
                                                        idx(oc.offsets[0]),
                                                        idx(oc.offsets[1])));
        else if (oc.offsets[0])
          weightRow = kb.add(n, idx(oc.offsets[0]));
        Value valid = arith::AndIOp::create(b, loc, ktValid, kb.ult(n, width));
        Value wc = arith::MinUIOp::create(b, loc, weightRow, idx(p->n - 1));
        copy(smemB, row, col, w, ValueRange{wc, kb.add(k0, col)}, valid);
      }
      return nvgpu::DeviceAsyncCreateGroupOp::create(
          b, loc, nvgpu::DeviceAsyncTokenType::get(b.getContext()), tokens);
    };
    // The first stages - 1 k tiles.
    Value group;
    for (int64_t s = 0; s + 1 < t.stages; ++s)
      group = issue(idx(s), idx(s));

    // Accumulators [m tile][n tile] (vector<2x2xf32>), then the partial sum
    // of squares of the thread's part of its x row.
    const int64_t mt = t.mTiles(), nt = t.nTiles();
    auto accType = VectorType::get({2, 2}, f32);
    auto sqType = VectorType::get({8}, f32);
    SmallVector<Value> inits(
        mt * nt, arith::ConstantOp::create(
                     b, loc, accType, DenseElementsAttr::get(accType, 0.0f)));
    if (norm)
      inits.push_back(arith::ConstantOp::create(
          b, loc, sqType, DenseElementsAttr::get(sqType, 0.0f)));
    const int64_t threadsPerRow = t.threads() / t.bm;
    const int64_t sqElems = Tiling::kBk / threadsPerRow;
    auto fragA = VectorType::get({4, 2}, elem);
    auto loop = scf::ForOp::create(
        b, loc, idx(0), idx(kTiles), idx(1), inits,
        [&](OpBuilder &nb, Location l, Value kt, ValueRange accs) {
          OpBuilder::InsertionGuard inner(b);
          b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          // Tile kt has arrived once at most stages - 2 groups are pending;
          // the barrier also tells that every warp is done with the stage
          // the next copies overwrite (read in iteration kt - 1).
          nvgpu::DeviceAsyncWaitOp::create(b, l, group,
                                           b.getI32IntegerAttr(t.stages - 2));
          gpu::BarrierOp::create(b, l);
          Value ahead = kb.add(kt, idx(t.stages - 1));
          issue(kb.rem(ahead, t.stages), ahead);
          Value stage = kb.rem(kt, t.stages);
          SmallVector<Value> next(accs.begin(), accs.end());
          for (int64_t kk = 0; kk < Tiling::kBk / 16; ++kk) {
            SmallVector<Value> as, bs;
            for (int64_t i = 0; i < mt; ++i) {
              Value row =
                  kb.add(kb.add(kb.mul(warpM, t.warpRows()), idx(i * 16)),
                         kb.rem(lane, 16));
              Value col = kb.add(idx(kk * 16), kb.mul(kb.div(lane, 16), 8));
              as.push_back(nvgpu::LdMatrixOp::create(
                  b, l, fragA, smemA, ValueRange{stage, row, col},
                  /*transpose=*/false, /*numTiles=*/4));
            }
            for (int64_t j = 0; j < nt; j += 2) {
              Value row =
                  kb.add(kb.add(kb.mul(warpN, wn), idx(j * 8)),
                         kb.add(kb.rem(lane, 8), kb.mul(kb.div(lane, 16), 8)));
              Value col =
                  kb.add(idx(kk * 16), kb.mul(kb.rem(kb.div(lane, 8), 2), 8));
              Value pair = nvgpu::LdMatrixOp::create(
                  b, l, fragA, smemB, ValueRange{stage, row, col},
                  /*transpose=*/false, /*numTiles=*/4);
              // Rows 0-1 are n tile j's operand, rows 2-3 n tile j + 1's.
              for (int64_t h = 0; h < 2; ++h)
                bs.push_back(mmaOperandB(b, l, pair, h));
            }
            for (int64_t i = 0; i < mt; ++i)
              for (int64_t j = 0; j < nt; ++j)
                next[i * nt + j] = nvgpu::MmaSyncOp::create(
                    b, l, as[i], bs[j], next[i * nt + j],
                    ArrayRef<int64_t>{16, 8, 16});
          }
          if (norm) {
            // This thread's sqElems elements of row tid / threadsPerRow.
            Value row = kb.div(tid, threadsPerRow);
            Value col0 = kb.mul(kb.rem(tid, threadsPerRow), sqElems);
            Value sq = next.back();
            for (int64_t e = 0; e < sqElems; e += 8) {
              Value v = vector::LoadOp::create(
                  b, l, VectorType::get({8}, elem), smemA,
                  ValueRange{stage, row, kb.add(col0, idx(e))});
              v = kb.extendTo(b, v, sqType);
              sq = vector::FMAOp::create(b, l, v, v, sq);
            }
            next.back() = sq;
          }
          scf::YieldOp::create(b, l, next);
        });
    ValueRange results = loop.getResults();

    // The rows' sums of squares, for the block and the kernels after it.
    Value sqBuffer = norm ? map.lookup(norm->squares) : Value();
    if (norm)
      publishRowSquares(b, loc, kb, results.back(), threadsPerRow, tid, rowSq,
                        sqBuffer, m0, rows, p->seq, blockN);

    // The epilogue: element (h, c) of accumulator [i][j] is row
    // warpM * warpRows + 16 i + 8 h + lane / 4, projection column
    // (j's group offset) + n0 + warpN * per + 8 (j % ntg) + 2 (lane % 4) + c.
    const bool rowsWhole = rows % t.bm == 0, colsWhole = width % blockCols == 0;
    for (int64_t i = 0; i < mt; ++i)
      for (int64_t h = 0; h < 2; ++h) {
        Value localRow =
            kb.add(kb.add(kb.mul(warpM, t.warpRows()), idx(16 * i + 8 * h)),
                   kb.div(lane, 4));
        Value r = kb.add(m0, localRow);
        llvm::SmallDenseMap<Value, Value> known;
        if (norm)
          known[norm->squares] =
              memref::LoadOp::create(b, loc, rowSq, ValueRange{localRow});
        for (int64_t j = 0; j < ntg; ++j)
          for (int64_t c = 0; c < 2; ++c) {
            Value n =
                kb.add(kb.add(kb.add(n0, kb.mul(warpN, per)), idx(8 * j + c)),
                       kb.mul(kb.rem(lane, 4), 2));
            storeElement(
                b, loc, kb, op, epilogue, map, init, out, oc.offsets,
                [&](int64_t gi) -> Value {
                  return vector::ExtractOp::create(
                      b, loc, results[i * nt + gi * ntg + j],
                      ArrayRef<int64_t>{h, c});
                },
                r, n, rows, width, p->seq, rowsWhole, colsWhole, known);
          }
      }

    LaunchShape shape;
    shape.grid[0] = llvm::divideCeil(width, blockCols);
    shape.grid[1] = llvm::divideCeil(rows, t.bm);
    shape.block[0] = t.threads();
    shape.tiling = std::to_string(t.bm) + "x" + std::to_string(t.bn) + "x" +
                   std::to_string(Tiling::kBk) + "s" + std::to_string(t.stages);
    return shape;
  }
};

} // namespace

const KernelRecipe &matmulMma() {
  static const MatmulMma recipe;
  return recipe;
}

} // namespace kiln::kernels
