//===- GemvQuantMma.cpp - gemv_q's tensor-core form -----------------------===//
//
// KILN_TUNE_GEMV_Q_MMA=<slices> selects it instead of the CUDA-core forms
// of GemvQuant.cpp (see GemvQuant::mmaSlices): mma.sync over 16 output
// columns a warp, measured correct but slower on the H200, kept as the
// measurement path the next GEMV work starts from.
//
//===----------------------------------------------------------------------===//

#include "passes/kernels/GemvQuant.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Utils/IndexingUtils.h"

namespace kiln::kernels::gemv {

FailureOr<LaunchShape> GemvQuant::buildMma(
    OpBuilder &b, KernelBuilder &kb, Operation *op, IRMapping &map, Value init,
    Operation *epilogue, const QuantProjection &p, const OutputColumns &oc,
    int64_t slices, Value x, Value packed, Value scales, Value out) const {
  Location loc = op->getLoc();
  const int64_t rows = p.batch * p.seq;
  const int64_t stretchBytes = kStretchCodes / 2;
  const int64_t sliceBytes = p.k / 2 / slices;
  const int64_t steps = sliceBytes / stretchBytes;
  const int64_t unroll = steps % 2 == 0 ? 2 : 1;
  Type f32 = b.getF32Type(), f16 = b.getF16Type(), i32 = b.getI32Type();
  auto idx = [&](int64_t v) { return kb.index(v); };
  auto v4i32 = VectorType::get({4}, i32);
  auto v16i8 = VectorType::get({16}, b.getI8Type());
  auto v2f16 = VectorType::get({2}, f16);
  auto v32f16 = VectorType::get({32}, f16);
  auto fragA = VectorType::get({4, 2}, f16);
  auto fragB = VectorType::get({2, 2}, f16);
  auto fragC = VectorType::get({2, 2}, f32);
  auto splatI = [&](OpBuilder &nb, Location l, int32_t v) -> Value {
    return arith::ConstantOp::create(nb, l, i32, nb.getI32IntegerAttr(v));
  };
  auto splatH2 = [&](OpBuilder &nb, Location l, double v) -> Value {
    return arith::ConstantOp::create(
        nb, l, v2f16, DenseElementsAttr::get(v2f16, FloatAttr::get(f16, v)));
  };
  Value zeroC = arith::ConstantOp::create(b, loc, fragC,
                                          DenseElementsAttr::get(fragC, 0.0f));
  Value zeroB = arith::ConstantOp::create(
      b, loc, fragB, DenseElementsAttr::get(fragB, b.getZeroAttr(f16)));
  auto v2f32 = VectorType::get({2}, f32);
  Value zeroAFrag = arith::ConstantOp::create(
      b, loc, fragA, DenseElementsAttr::get(fragA, b.getZeroAttr(f16)));
  Value zeroX = arith::ConstantOp::create(
      b, loc, v32f16, DenseElementsAttr::get(v32f16, b.getZeroAttr(f16)));

  OpBuilder::InsertionGuard guard(b);
  WarpColumns wc = warpColumns(b, loc, kb, oc.width, kTile, kWarps, slices);
  Value lane = wc.lane;
  Value quad = arith::DivUIOp::create(b, loc, lane, idx(4));   // g
  Value inQuad = arith::RemUIOp::create(b, loc, lane, idx(4)); // c
  // Rows g and g + 8 of each column offset's tile.
  SmallVector<Value> tileRows; // [offset][2]
  for (int64_t off : oc.offsets) {
    Value base =
        off ? arith::AddIOp::create(b, loc, wc.ns[0], idx(off)).getResult()
            : wc.ns[0];
    Value r0 = arith::AddIOp::create(b, loc, base, quad);
    tileRows.push_back(r0);
    tileRows.push_back(arith::AddIOp::create(b, loc, r0, idx(8)));
  }
  const int64_t tiles = oc.offsets.size();
  // B's batch row: g, clamped (lanes g >= rows hold zeros).
  Value hasRow =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, quad, idx(rows));
  Value row = arith::MinUIOp::create(b, loc, quad, idx(rows - 1));
  Value xb = arith::DivUIOp::create(b, loc, row, idx(p.seq));
  Value xs = arith::RemUIOp::create(b, loc, row, idx(p.seq));
  Value laneByte = arith::MulIOp::create(b, loc, inQuad, idx(16));
  Value firstByte = laneByte;
  if (slices > 1)
    firstByte = arith::AddIOp::create(
        b, loc, arith::MulIOp::create(b, loc, wc.slice, idx(sliceBytes)),
        laneByte);
  Value endByte = arith::AddIOp::create(b, loc, firstByte, idx(sliceBytes));

  RowNormSums norm;
  norm.ops = members(op).empty() ? std::nullopt : rowNormOf(op);
  // Carried: an accumulator per tile, then (with a norm) this lane's sum
  // of squares of its x.
  SmallVector<Value> inits(tiles, zeroC);
  if (norm.ops)
    inits.push_back(zeroC);
  auto iteration = [&](OpBuilder &nb, Location l, Value byte0,
                       ValueRange accs) -> SmallVector<Value> {
    SmallVector<Value> next(accs.begin(), accs.end());
    // Every load of the iteration first: codes [stretch][tile][g, g+8].
    SmallVector<Value> bytes;
    for (int64_t u = 0; u < unroll; ++u)
      bytes.push_back(
          u ? arith::AddIOp::create(nb, l, byte0, idx(u * stretchBytes))
                  .getResult()
            : byte0);
    SmallVector<Value> words;
    for (int64_t u = 0; u < unroll; ++u)
      for (Value r : tileRows) {
        Value raw = vector::LoadOp::create(
            nb, l, v16i8, packed, ValueRange{r, bytes[u]},
            /*nontemporal=*/false, llvm::MaybeAlign(16));
        words.push_back(vector::BitCastOp::create(nb, l, v4i32, raw));
      }
    for (int64_t u = 0; u < unroll; ++u) {
      // This lane's 32 codes start at code 2 * bytes[u].
      Value k0 = arith::MulIOp::create(nb, l, bytes[u], idx(2));
      Value xv =
          vector::LoadOp::create(nb, l, v32f16, x, ValueRange{xb, xs, k0},
                                 /*nontemporal=*/false, llvm::MaybeAlign(16));
      xv = arith::SelectOp::create(nb, l, hasRow, xv, zeroX);
      // B of step (w, h): x at codes 8 w + 2 h + {0, 4} and {1, 5}.
      SmallVector<Value> bFrags;
      for (int64_t w = 0; w < 4; ++w)
        for (int64_t h = 0; h < 2; ++h) {
          int64_t c0 = 8 * w + 2 * h;
          Value frag = zeroB;
          for (int64_t r = 0; r < 2; ++r)
            frag = vector::InsertOp::create(
                nb, l,
                vector::ShuffleOp::create(
                    nb, l, xv, xv, ArrayRef<int64_t>{c0 + r, c0 + r + 4}),
                frag, ArrayRef<int64_t>{r});
          bFrags.push_back(frag);
          // The row norm's sums of squares on the tensor cores too: A's
          // row m holds x of batch row m at B's k slots, so C[r][r] is
          // x_r . x_r (products exact, sums f32).
          if (norm.ops) {
            Value ax = zeroAFrag;
            for (int64_t r = 0; r < 2; ++r)
              ax = vector::InsertOp::create(
                  nb, l,
                  vector::ExtractOp::create(nb, l, frag, ArrayRef<int64_t>{r}),
                  ax, ArrayRef<int64_t>{2 * r});
            next[tiles] = nvgpu::MmaSyncOp::create(
                nb, l, ax, frag, next[tiles], ArrayRef<int64_t>{16, 8, 16});
          }
        }
      // The group of this stretch: its scale for rows g and g + 8.
      Value group = arith::DivUIOp::create(nb, l, k0, idx(p.group));
      for (int64_t t = 0; t < tiles; ++t) {
        // Pair j of word w of row i (0: g, 1: g + 8): q - 8 in f16.
        auto pairsOf = [&](Value wordVec, int64_t w) {
          Value word =
              vector::ExtractOp::create(nb, l, wordVec, ArrayRef<int64_t>{w});
          Value w8 = arith::ShRUIOp::create(nb, l, word, splatI(nb, l, 8));
          SmallVector<Value> q;
          for (int64_t j = 0; j < 4; ++j) {
            const bool odd = j % 2;
            Value v = arith::AndIOp::create(
                nb, l, j >= 2 ? w8 : word,
                splatI(nb, l, odd ? 0x00F000F0 : 0x000F000F));
            v = arith::OrIOp::create(nb, l, v, splatI(nb, l, 0x64006400));
            Value h = vector::BitCastOp::create(
                nb, l, v2f16,
                vector::BroadcastOp::create(nb, l, VectorType::get({1}, i32),
                                            v));
            const double m = odd ? 16.0 : 1.0;
            q.push_back(
                vector::FMAOp::create(nb, l, h, splatH2(nb, l, 1.0 / m),
                                      splatH2(nb, l, -(1024.0 / m + 8.0))));
          }
          return q;
        };
        Value wg = words[(u * tiles + t) * 2];
        Value wg8 = words[(u * tiles + t) * 2 + 1];
        Value tmp = zeroC;
        for (int64_t w = 0; w < 4; ++w) {
          SmallVector<Value> qa = pairsOf(wg, w), qb = pairsOf(wg8, w);
          for (int64_t h = 0; h < 2; ++h) {
            Value frag = zeroAFrag;
            Value parts[4] = {qa[2 * h], qb[2 * h], qa[2 * h + 1],
                              qb[2 * h + 1]};
            for (int64_t r = 0; r < 4; ++r)
              frag = vector::InsertOp::create(nb, l, parts[r], frag,
                                              ArrayRef<int64_t>{r});
            tmp = nvgpu::MmaSyncOp::create(nb, l, frag, bFrags[2 * w + h], tmp,
                                           ArrayRef<int64_t>{16, 8, 16});
          }
        }
        // acc += scale(row) * tmp, rows g and g + 8 (1-D halves: the
        // NVVM lowering takes 1-D vector arithmetic).
        for (int64_t i = 0; i < 2; ++i) {
          Value s = kb.extendTo(
              nb,
              memref::LoadOp::create(nb, l, scales,
                                     ValueRange{tileRows[2 * t + i], group}),
              f32);
          Value half = vector::FMAOp::create(
              nb, l,
              vector::ExtractOp::create(nb, l, tmp, ArrayRef<int64_t>{i}),
              vector::BroadcastOp::create(nb, l, v2f32, s),
              vector::ExtractOp::create(nb, l, next[t], ArrayRef<int64_t>{i}));
          next[t] = vector::InsertOp::create(nb, l, half, next[t],
                                             ArrayRef<int64_t>{i});
        }
      }
    }
    return next;
  };
  ValueRange results =
      loopAlongK(b, loc, kb, firstByte, endByte, unroll * stretchBytes,
                 /*peel=*/true, inits, iteration);
  // One-hot lane vectors for reduceAndStore: [offset][column][batch row]
  // (the lane holding column m, batch row r contributes it).
  auto v1f32 = VectorType::get({1}, f32);
  Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0));
  SmallVector<Value> accs;
  for (int64_t t = 0; t < tiles; ++t)
    for (int64_t m = 0; m < kTile; ++m)
      for (int64_t r = 0; r < rows; ++r) {
        Value mine = arith::AndIOp::create(
            b, loc,
            arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, quad,
                                  idx(m % 8)),
            arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, inQuad,
                                  idx(r / 2)));
        Value v = vector::ExtractOp::create(b, loc, results[t],
                                            ArrayRef<int64_t>{m / 8, r % 2});
        accs.push_back(vector::BroadcastOp::create(
            b, loc, v1f32, arith::SelectOp::create(b, loc, mine, v, zero)));
      }
  if (norm.ops) {
    // C[r][r] is held by lane (r, r / 2), element [0][r % 2].
    for (int64_t r = 0; r < rows; ++r) {
      Value sq = vector::ExtractOp::create(b, loc, results[tiles],
                                           ArrayRef<int64_t>{0, r % 2});
      Value mine = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lane,
                                         idx(4 * r + r / 2));
      norm.partial.push_back(vector::BroadcastOp::create(
          b, loc, v1f32, arith::SelectOp::create(b, loc, mine, sq, zero)));
    }
  }
  auto xAt = [&](int64_t r, Value k) -> SmallVector<Value, 3> {
    return {idx(r / p.seq), idx(r % p.seq), k};
  };
  reduceAndStore(b, loc, kb, op, epilogue, map, accs, wc, rows, out, init, xAt,
                 norm, oc.offsets);
  LaunchShape shape;
  shape.grid[0] = oc.width / ((kWarps / slices) * kTile);
  shape.block[0] = kThreads;
  shape.tiling = "mma" + std::to_string(slices);
  return shape;
}

} // namespace kiln::kernels::gemv
