//===- GemvQuant.cpp - The gemv_q kernel: GEMV over packed int4/int8 ------===//
//
// The decode projection by a weight that tfm.dequantize makes (lowered by
// --kiln-lower-tfm-to-linalg into one reduction tagged kiln.region
// {op, bits, group_size, zero_points}): the kernel reads the packed codes
// and dequantizes them in registers; the float weight never exists.
//
// The mapping is gemv_nk's: a warp per output column (or 2 or 4 columns
// when there are many), lane l reading bytes [16 l, 16 l + 16) of each
// 512-byte stretch of the row (32 int4 or 16 int8 codes), up to 4 stretches
// per iteration with all their loads issued first, then a whole-warp sum.
//
// Dequantizing without integer-to-float conversions (a quarter-rate
// instruction): the 16 bytes are 4 words; code j of a word (bits
// [b j, b j + b)) or'ed into the mantissa of 2^23 is the float 2^23 + q
// exactly, so q - zero is one subtraction. Lane w of the vector of code j
// holds element (32 / b) w + j of the load, multiplied by the matching
// element of x (a shuffle of registers). A group's partial dot product is
// scaled once: acc += scale * sum_j (q_j - zero) x_j. With zero points
// stored per group (possibly non-integral floats), the zero point's term
// is taken out of the sum instead: scale * (sum_j q_j x_j - zero * sum_j x_j).
//
// With f16 activations and the implicit zero point (symmetric codes), the
// codes are dequantized two at a time instead (packedHalf): code j of each
// 16-bit half of a word, masked and or'ed into the mantissa of 1024.0h, is
// the f16 pair (1024 + q, 1024 + q') (times 16 for an odd nibble), and one
// f16x2 fma makes (q - zero) / 4 of both (int8: / 64), exactly. The pairs
// then multiply x's pairs in f16x2 fmas, the products of a word's codes
// summed two halves of 4 (int8: 2) in f16 before they are widened and
// accumulated in f32 with the group's scale; the 1/4 (1/64) keeps those
// short sums of products far from the f16 range (|sum| <= 8 max |x|) and is
// multiplied back once a scale (the scales are loaded times 4 or 64). That is
// about half the instructions a code of the f32 form takes, whose issue rate
// bounds the kernel; KILN_TUNE_GEMV_Q_F32=1 keeps the f32 form for
// measurements. In that form the mask and the or are one lop3 a word (inline
// PTX; ptxas leaves two LOP3s), and x is staged once per block in workgroup
// memory in the order of the codes' pairs, its row norm's squares added there
// once (see `stage` in build): each warp loaded, rearranged (PRMTs, again
// for each column) and squared all of x itself. On the 8B shape's gate/up
// that took a lane's instructions from ~1380 to ~1140 (ptxas, sm_90a, the
// same 80 registers). KILN_TUNE_GEMV_Q_LOP3=0 and KILN_TUNE_GEMV_Q_STAGE=0
// keep the old forms for measurements.
//
// KILN_TUNE_GEMV_Q_MMA=<slices> selects a tensor-core form instead
// (GemvQuantMma.cpp): mma.sync over 16 output columns a warp, measured correct
// but slower on the H200, kept as the measurement path the next GEMV work
// starts from.
//
//===----------------------------------------------------------------------===//

#include "passes/kernels/GemvQuant.h"
#include "dialects/Kiln/KilnDialect.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Utils/IndexingUtils.h"
#include "llvm/Support/FormatVariadic.h"

namespace kiln::kernels {
namespace gemv {

std::optional<QuantProjection> matchQuantized(Operation *op) {
  auto g = dyn_cast<linalg::GenericOp>(op);
  auto region = op->getAttrOfType<DictionaryAttr>(kRegionAttr);
  if (!g || !region || !g.hasPureBufferSemantics() || g.getNumDpsInits() != 1)
    return std::nullopt;
  auto name = region.getAs<StringAttr>("op");
  auto bitsAttr = region.getAs<IntegerAttr>("bits");
  auto groupAttr = region.getAs<IntegerAttr>("group_size");
  auto zerosAttr = region.getAs<BoolAttr>("zero_points");
  if (!name ||
      (name.getValue() != "tfm.linear" && name.getValue() != "tfm.logits") ||
      !bitsAttr || !groupAttr || !zerosAttr)
    return std::nullopt;
  QuantProjection p;
  p.bits = bitsAttr.getInt();
  p.group = groupAttr.getInt();
  p.zeroPoints = zerosAttr.getValue();
  if ((p.bits != 4 && p.bits != 8) || p.group <= 0 ||
      g.getNumDpsInputs() != (p.zeroPoints ? 4u : 3u))
    return std::nullopt;
  using utils::IteratorType;
  if (g.getIteratorTypesArray() !=
      SmallVector<IteratorType>{IteratorType::parallel, IteratorType::parallel,
                                IteratorType::parallel,
                                IteratorType::reduction})
    return std::nullopt;
  SmallVector<MemRefType> types;
  for (Value v : g->getOperands()) {
    auto t = dyn_cast<MemRefType>(v.getType());
    if (!t || !t.hasStaticShape() || !t.getLayout().isIdentity())
      return std::nullopt;
    types.push_back(t);
  }
  MemRefType x = types[0], packed = types[1], scales = types[2],
             out = types.back();
  p.batch = x.getDimSize(0);
  p.seq = x.getDimSize(1);
  p.k = x.getDimSize(2);
  p.n = out.getDimSize(2);
  p.inputType = x.getElementType();
  p.scaleType = scales.getElementType();
  if (x.getRank() != 3 || out.getRank() != 3 || !out.getElementType().isF32() ||
      !isa<FloatType>(p.inputType) || !isa<FloatType>(p.scaleType) ||
      !packed.getElementType().isInteger(8) || p.k % p.group != 0 ||
      packed.getShape() != ArrayRef<int64_t>{p.n, p.k * p.bits / 8} ||
      scales.getShape() != ArrayRef<int64_t>{p.n, p.k / p.group} ||
      (p.zeroPoints && types[3] != scales))
    return std::nullopt;
  // The maps the lowering writes.
  MLIRContext *ctx = op->getContext();
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto map = [&](ArrayRef<AffineExpr> exprs) {
    return AffineMap::get(4, 0, exprs, ctx);
  };
  SmallVector<AffineMap> expected{
      map({d(0), d(1), d(3)}),
      map({d(2), p.bits == 4 ? d(3).floorDiv(2) : d(3)}),
      map({d(2), d(3).floorDiv(p.group)})};
  if (p.zeroPoints)
    expected.push_back(expected.back());
  expected.push_back(map({d(0), d(1), d(2)}));
  if (g.getIndexingMapsArray() != expected)
    return std::nullopt;
  return p;
}

FailureOr<LaunchShape> GemvQuant::build(OpBuilder &b, Operation *op,
                                        IRMapping &map, gpu::GPUFuncOp kernel,
                                        Value init,
                                        ArrayRef<Operation *> fused) const {
  std::optional<QuantProjection> found = suitable(op);
  if (!found)
    return failure();
  const QuantProjection p = *found;
  Operation *epilogue = epilogueIn(op, fused);
  Location loc = op->getLoc();
  KernelBuilder kb(b, loc, kernel);
  auto g = cast<linalg::GenericOp>(op);
  Value x = map.lookup(g.getDpsInputs()[0]);
  Value packed = map.lookup(g.getDpsInputs()[1]);
  Value scales = map.lookup(g.getDpsInputs()[2]);
  Value zeros = p.zeroPoints ? map.lookup(g.getDpsInputs()[3]) : Value();
  Value out = map.lookup(g.getDpsInits()[0]);

  const int64_t rows = p.batch * p.seq;
  // Output columns: the epilogue's (SwiGLU: half the projection's, each
  // needing columns n and n + N/2).
  OutputColumns oc = outputColumns(op, epilogue, p.n);
  if (int64_t slices = mmaSlices(p, oc.width, p.batch * p.seq))
    return buildMma(b, kb, op, map, init, epilogue, p, oc, slices, x, packed,
                    scales, out);
  QuantProjection domain = p;
  domain.n = oc.width;
  const int64_t cpw = columnsPerWarp(domain, rows);
  const int64_t codes = codesPerLoad(p), perWord = 32 / p.bits;
  const int64_t chunkCodes = chunk(p), wordsPerChunk = chunkCodes / perWord;
  const int64_t rowBytes = p.k * p.bits / 8;
  const bool oneGroup = p.group == p.k;
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  auto v4f32 = VectorType::get({4}, f32);
  auto v4i32 = VectorType::get({4}, i32);
  auto v16i8 = VectorType::get({16}, b.getI8Type());
  auto vxIn = VectorType::get({codes}, p.inputType);
  auto vxF32 = VectorType::get({codes}, f32);
  auto idx = [&](int64_t v) { return kb.index(v); };
  auto splatF = [&](OpBuilder &nb, Location l, double v) -> Value {
    return arith::ConstantOp::create(nb, l, v4f32,
                                     DenseElementsAttr::get(v4f32, float(v)));
  };
  auto splatI = [&](OpBuilder &nb, Location l, int32_t v) -> Value {
    return arith::ConstantOp::create(
        nb, l, v4i32, DenseElementsAttr::get(v4i32, APInt(32, v)));
  };
  // The f16-pair form (see the file comment): f16 activations, codes
  // with the implicit zero point.
  const bool packedHalf = p.inputType.isF16() && !p.zeroPoints &&
                          !std::getenv("KILN_TUNE_GEMV_Q_F32");
  const int64_t pairs = perWord / 2;
  const double prescale = p.bits == 4 ? 0.25 : 1.0 / 64;
  // One lop3 a word for (w & mask) | 1024.0h pair (ptxas leaves the and
  // and the or as two LOP3s); KILN_TUNE_GEMV_Q_LOP3=0 keeps the two.
  const bool lop3 = packedHalf && !tuneOff("KILN_TUNE_GEMV_Q_LOP3");
  auto v8f16 = VectorType::get({8}, b.getF16Type());
  auto v8f32 = VectorType::get({8}, f32);
  auto splatH = [&](OpBuilder &nb, Location l, double v) -> Value {
    Attribute e = FloatAttr::get(nb.getF16Type(), v);
    return arith::ConstantOp::create(nb, l, v8f16,
                                     DenseElementsAttr::get(v8f16, e));
  };
  auto xAt = [&](int64_t r, Value k) -> SmallVector<Value, 3> {
    return {idx(r / p.seq), idx(r % p.seq), k};
  };

  OpBuilder::InsertionGuard guard(b);
  // Split-K (GemvRecipe::splitK): a row of packed codes is short.
  const int64_t slices =
      splitK(oc.width, cpw, rowBytes, kStride, kWarps, tuning().maxSlices);
  const int64_t sliceBytes = rowBytes / slices;
  WarpColumns wc = warpColumns(b, loc, kb, oc.width, cpw, kWarps, slices);
  Value lane = wc.lane;
  // The projection columns this warp reads: [offset][output column].
  const SmallVector<Value> ns =
      projectionColumns(b, loc, kb, wc.ns, oc.offsets);
  const int64_t ncol = ns.size();

  // x staged once per block in workgroup memory (f16 pairs form): every
  // warp otherwise loads its 64 bytes of x a 16-byte code load from
  // global memory, rearranges them into the codes' pairs (16 PRMTs a load
  // and column: ptxas rematerialises them per column) and, with a row
  // norm, adds their squares, each warp the whole row again. Staged, the
  // block's threads load x once, store it in the pairs' order and add
  // the squares once (a barrier publishes both); a warp then reads ready
  // pairs with 16-byte ld.shared, conflict-free: for load chunk c (codes
  // [codes c, codes c + codes) of a row), pair j sits at halves
  // (c / 32) 32 codes + 256 j + 8 (c % 32), so the 32 lanes of a warp
  // (consecutive chunks) read 512 contiguous bytes. Needs every thread
  // (no spare warps) and at most 32 KiB; KILN_TUNE_GEMV_Q_STAGE=0 keeps
  // the per-warp form.
  const int64_t chunksPerRow = p.k / codes;
  const int64_t stagedRow = llvm::divideCeil(chunksPerRow, 32) * 32 * codes;
  const bool stage = packedHalf && !tuneOff("KILN_TUNE_GEMV_Q_STAGE") &&
                     rows * stagedRow * 2 <= kMaxStagedBytes &&
                     oc.width % ((kWarps / slices) * cpw) == 0;
  Value staged; // the staged x, [rows * stagedRow] f16
  // Pair j of x in the codes' order (from a load's `codes` elements of x):
  // word w's halves hold codes perWord w + j and perWord w + j + pairs.
  auto xPair = [&](OpBuilder &nb, Location l, Value xh, int64_t j) -> Value {
    SmallVector<int64_t> mask;
    for (int64_t w = 0; w < 4; ++w) {
      mask.push_back(w * perWord + j);
      mask.push_back(w * perWord + j + pairs);
    }
    return vector::ShuffleOp::create(nb, l, xh, xh, mask);
  };
  // The code index of the first code of the load at byte `byte` of a row.
  auto codeAt = [&](OpBuilder &nb, Location l, Value byte) -> Value {
    return p.bits == 4 ? arith::MulIOp::create(nb, l, byte, idx(2)).getResult()
                       : byte;
  };
  auto stagedAt = [&](OpBuilder &nb, Location l, int64_t r, Value chunkIdx,
                      int64_t j) -> Value {
    Value hi = arith::MulIOp::create(
        nb, l, arith::DivUIOp::create(nb, l, chunkIdx, idx(32)),
        idx(32 * codes));
    Value lo = arith::MulIOp::create(
        nb, l, arith::RemUIOp::create(nb, l, chunkIdx, idx(32)), idx(8));
    Value at = arith::AddIOp::create(nb, l, hi, lo);
    return arith::AddIOp::create(nb, l, at, idx(r * stagedRow + 256 * j));
  };

  // The one scale (and zero point) of a row quantized per channel.
  auto scaleOf = [&](OpBuilder &nb, Location l, Value m, Value n,
                     Value group) -> Value {
    return kb.extendTo(
        nb, memref::LoadOp::create(nb, l, m, ValueRange{n, group}), f32);
  };
  // A group's scale, times 1 / prescale in the f16-pair form (a power of
  // two: exact, once a scale rather than once an accumulator lane).
  auto groupScale = [&](OpBuilder &nb, Location l, Value n,
                        Value group) -> Value {
    Value v = scaleOf(nb, l, scales, n, group);
    if (!packedHalf)
      return v;
    return arith::MulFOp::create(
        nb, l, v,
        arith::ConstantOp::create(nb, l, f32,
                                  nb.getF32FloatAttr(float(1 / prescale))));
  };
  SmallVector<Value> rowScale(ncol), rowZero(ncol);
  if (oneGroup)
    for (int64_t c = 0; c < ncol; ++c) {
      rowScale[c] = groupScale(b, loc, ns[c], idx(0));
      if (zeros)
        rowZero[c] = scaleOf(b, loc, zeros, ns[c], idx(0));
    }

  // Steps a loop iteration: with many columns a warp, fewer (the loads of
  // one iteration stay in registers: at most 8 x 16 bytes a lane).
  int64_t unroll =
      std::min(unrollFor(sliceBytes, kStride), std::max<int64_t>(1, 8 / ncol));
  // A slice of an odd number (5 or more) of warp steps, which unrollFor
  // leaves at one step an iteration (the 8B shape's down projection: 7
  // steps of 512 bytes a warp), takes two a pipelined iteration and the
  // last step after the loop: twice the loads in flight (H200: that down
  // projection 17.4 -> 15.0 us, 128 registers, no spills; the 8B's int4
  // decode 509 -> 556 tok/s). KILN_TUNE_GEMV_Q_TAIL=0 keeps one step an
  // iteration.
  const int64_t sliceSteps = sliceBytes / kStride;
  int64_t tailSteps = 0;
  if (unroll == 1 && ncol <= 4 && sliceBytes % kStride == 0 &&
      sliceSteps >= 5 && sliceSteps % 2 == 1 &&
      !tuneOff("KILN_TUNE_GEMV_Q_TAIL")) {
    unroll = 2;
    tailSteps = 1;
  }
  Value firstByte = arith::MulIOp::create(b, loc, lane, idx(kLoadBytes));
  Value endByte = idx(rowBytes);
  if (slices > 1) {
    Value b0 = arith::MulIOp::create(b, loc, wc.slice, idx(sliceBytes));
    firstByte = arith::AddIOp::create(b, loc, b0, firstByte);
    endByte = arith::AddIOp::create(b, loc, b0, idx(sliceBytes));
  }
  Value zero = splatF(b, loc, 0.0);
  // Accumulators [column][batch row], then (with a row norm) the sums of
  // x^2 [batch row].
  RowNormSums norm;
  norm.ops = members(op).empty() ? std::nullopt : rowNormOf(op);
  const int64_t nAcc = ncol * rows;
  SmallVector<Value> inits(nAcc, zero);
  if (norm.ops && !stage)
    inits.append(rows, arith::ConstantOp::create(
                           b, loc, vxF32, DenseElementsAttr::get(vxF32, 0.0f))
                           .getResult());
  // Stages x (see `stage`), after the first code loads so that they stay
  // ahead of kiln-dependent-launch's wait.
  auto stageX = [&](OpBuilder &nb, Location l) {
    staged = kb.workgroupBuffer({rows * stagedRow}, nb.getF16Type());
    Value tid = kb.threadIdX();
    SmallVector<Value> sums;
    for (int64_t r = 0; r < rows; ++r) {
      // The squares are added per pair vector (8 lanes of f32, not one
      // a code of the load: the first code loads are live here).
      SmallVector<Value> init;
      if (norm.ops)
        init.push_back(arith::ConstantOp::create(
            nb, l, v8f32, DenseElementsAttr::get(v8f32, 0.0f)));
      auto loop = scf::ForOp::create(
          nb, l, tid, idx(chunksPerRow), idx(kThreads), init,
          [&](OpBuilder &lb, Location ll, Value c, ValueRange cur) {
            Value k = arith::MulIOp::create(lb, ll, c, idx(codes));
            Value xh = vector::LoadOp::create(lb, ll, vxIn, x, xAt(r, k),
                                              /*nontemporal=*/false,
                                              llvm::MaybeAlign(16));
            SmallVector<Value> next(cur.begin(), cur.end());
            for (int64_t j = 0; j < pairs; ++j) {
              Value xs = xPair(lb, ll, xh, j);
              if (norm.ops) {
                Value xv = kb.extendTo(lb, xs, v8f32);
                next[0] = vector::FMAOp::create(lb, ll, xv, xv, next[0]);
              }
              vector::StoreOp::create(
                  lb, ll, xs, staged, ValueRange{stagedAt(lb, ll, r, c, j)},
                  /*nontemporal=*/false, llvm::MaybeAlign(16));
            }
            scf::YieldOp::create(lb, ll, next);
          });
      if (norm.ops)
        sums.push_back(warpSum(nb, l, loop.getResult(0)));
    }
    if (!norm.ops) {
      gpu::BarrierOp::create(nb, l);
      return;
    }
    // Each warp's sums, then every thread adds them in warp order.
    Value perWarp = kb.workgroupBuffer({kWarps * rows}, f32);
    Value warp = arith::DivUIOp::create(nb, l, tid, idx(32));
    Value first =
        arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, wc.lane, idx(0));
    auto put = scf::IfOp::create(nb, l, first, /*withElseRegion=*/false);
    {
      OpBuilder::InsertionGuard inner(nb);
      nb.setInsertionPointToStart(&put.getThenRegion().front());
      Value base = arith::MulIOp::create(nb, l, warp, idx(rows));
      for (int64_t r = 0; r < rows; ++r)
        memref::StoreOp::create(
            nb, l, sums[r], perWarp,
            ValueRange{arith::AddIOp::create(nb, l, base, idx(r))});
    }
    gpu::BarrierOp::create(nb, l);
    for (int64_t r = 0; r < rows; ++r) {
      Value total = memref::LoadOp::create(nb, l, perWarp, idx(r));
      for (int64_t w = 1; w < kWarps; ++w)
        total = arith::AddFOp::create(
            nb, l, total,
            memref::LoadOp::create(nb, l, perWarp, idx(w * rows + r)));
      norm.total.push_back(total);
    }
  };
  // One iteration's byte offsets (up to 4 steps), its code loads
  // [column][step] (all issued before any arithmetic) and its arithmetic.
  auto stepsAt = [&](OpBuilder &nb, Location l, Value byte0, int64_t steps) {
    return stepOffsets(nb, l, kb, byte0, steps, kStride);
  };
  auto codesAt = [&](OpBuilder &nb, Location l, ArrayRef<Value> bytes) {
    SmallVector<SmallVector<Value>> words(ncol);
    for (int64_t u = 0; u < int64_t(bytes.size()); ++u)
      for (int64_t c = 0; c < ncol; ++c) {
        Value raw = vector::LoadOp::create(
            nb, l, v16i8, packed, ValueRange{ns[c], bytes[u]},
            /*nontemporal=*/false, llvm::MaybeAlign(16));
        words[c].push_back(vector::BitCastOp::create(nb, l, v4i32, raw));
      }
    return words;
  };
  // The scales (and zero points) of the step whose first code is k0, per
  // column: one lane a word.
  auto stepScales = [&](OpBuilder &nb, Location l, Value k0) {
    // Per word lane: the scale and zero point of its group.
    auto perWordLane = [&](Value m, int64_t c) -> Value {
      SmallVector<Value> chunks;
      for (int64_t ch = 0; ch < codes / chunkCodes; ++ch) {
        Value kk = ch ? arith::AddIOp::create(nb, l, k0, idx(ch * chunkCodes))
                            .getResult()
                      : k0;
        Value grp = arith::DivUIOp::create(nb, l, kk, idx(p.group));
        chunks.push_back(m == scales ? groupScale(nb, l, ns[c], grp)
                                     : scaleOf(nb, l, m, ns[c], grp));
      }
      if (chunks.size() == 1)
        return vector::BroadcastOp::create(nb, l, v4f32, chunks[0]);
      SmallVector<Value> lanes;
      for (int64_t w = 0; w < 4; ++w)
        lanes.push_back(chunks[w / wordsPerChunk]);
      return vector::FromElementsOp::create(nb, l, v4f32, lanes);
    };
    SmallVector<Value> scaleV(ncol), zeroV(ncol);
    for (int64_t c = 0; c < ncol; ++c) {
      scaleV[c] = oneGroup
                      ? vector::BroadcastOp::create(nb, l, v4f32, rowScale[c])
                            .getResult()
                      : perWordLane(scales, c);
      if (zeros)
        zeroV[c] = oneGroup
                       ? vector::BroadcastOp::create(nb, l, v4f32, rowZero[c])
                             .getResult()
                       : perWordLane(zeros, c);
    }
    return std::make_pair(scaleV, zeroV);
  };
  // `loadedScales` ([step][column]): the scales when they were loaded
  // already (the peeled first iteration's, before x is staged).
  auto iteration = [&](OpBuilder &nb, Location l, ArrayRef<Value> bytes,
                       const SmallVector<SmallVector<Value>> &words,
                       ValueRange accs, ArrayRef<Value> loadedScales = {}) {
    SmallVector<Value> next(accs.begin(), accs.end());
    const int64_t steps = bytes.size();
    for (int64_t u = 0; u < steps; ++u) {
      Value k0 = codeAt(nb, l, bytes[u]);
      // This step's scales (and zero points).
      SmallVector<Value> scaleV, zeroV;
      if (!loadedScales.empty()) {
        scaleV.assign(loadedScales.begin() + u * ncol,
                      loadedScales.begin() + (u + 1) * ncol);
        zeroV.assign(ncol, Value());
      } else {
        std::tie(scaleV, zeroV) = stepScales(nb, l, k0);
      }
      // Codes as floats (q - implicit zero point, or q), by position
      // j in their word. With one batch row they are made where they
      // are used (fewer live registers); with several, once.
      const double bias =
          zeros ? 8388608.0 : 8388608.0 + double(1 << (p.bits - 1));
      auto codesOf = [&](int64_t c) {
        SmallVector<Value> q;
        for (int64_t j = 0; j < perWord; ++j) {
          Value v = words[c][u];
          if (j)
            v = arith::ShRUIOp::create(nb, l, v,
                                       splatI(nb, l, int32_t(j * p.bits)));
          v = arith::AndIOp::create(nb, l, v, splatI(nb, l, (1 << p.bits) - 1));
          v = arith::OrIOp::create(nb, l, v, splatI(nb, l, 0x4B000000));
          Value f = vector::BitCastOp::create(nb, l, v4f32, v);
          q.push_back(arith::SubFOp::create(nb, l, f, splatF(nb, l, bias)));
        }
        return q;
      };
      if (packedHalf) {
        // (w & mask) | bits on each word of `w` (vector<4xi32>).
        auto andOr = [&](OpBuilder &ob, Location ol, Value w, int32_t mask,
                         int32_t bits) -> Value {
          if (!lop3) {
            Value masked =
                arith::AndIOp::create(ob, ol, w, splatI(ob, ol, mask));
            return arith::OrIOp::create(ob, ol, masked, splatI(ob, ol, bits));
          }
          std::string text =
              llvm::formatv("lop3.b32 $0, $1, {0:x8}, {1:x8}, 0xEA;",
                            uint32_t(mask), uint32_t(bits))
                  .str();
          SmallVector<Value> words;
          for (int64_t e = 0; e < 4; ++e) {
            Value word = vector::ExtractOp::create(ob, ol, w, e);
            words.push_back(LLVM::InlineAsmOp::create(
                                ob, ol, i32, ValueRange{word}, text, "=r,r",
                                /*has_side_effects=*/false,
                                /*is_align_stack=*/false,
                                LLVM::tailcallkind::TailCallKind::None,
                                LLVM::AsmDialectAttr(), ArrayAttr())
                                .getResult(0));
          }
          return vector::FromElementsOp::create(ob, ol, v4i32, words);
        };
        // (q - zero) * prescale as f16 pairs, pair j holding codes j and
        // j + perWord / 2 of each word (two 16-bit halves).
        auto halfCodesOf = [&](int64_t c) {
          SmallVector<Value> q;
          Value w = words[c][u];
          Value w8 = arith::ShRUIOp::create(nb, l, w, splatI(nb, l, 8));
          for (int64_t j = 0; j < pairs; ++j) {
            const bool odd = p.bits == 4 && j % 2;
            const bool high = p.bits == 4 ? j >= 2 : j >= 1;
            const int32_t mask = p.bits == 8 ? 0x00FF00FF
                                 : odd       ? 0x00F000F0
                                             : 0x000F000F;
            Value v = andOr(nb, l, high ? w8 : w, mask, 0x64006400);
            Value h = vector::BitCastOp::create(nb, l, v8f16, v);
            // h = 1024 + m q with m = 16 for an odd nibble, else 1.
            const double m = odd ? 16.0 : 1.0;
            const double zc = double(1 << (p.bits - 1));
            q.push_back(vector::FMAOp::create(
                nb, l, h, splatH(nb, l, prescale / m),
                splatH(nb, l, -(1024.0 / m + zc) * prescale)));
          }
          return q;
        };
        // With one batch row, each column's codes are made where they
        // are used (fewer live registers); with several, once.
        SmallVector<SmallVector<Value>> hq(ncol);
        if (rows > 1)
          for (int64_t c = 0; c < ncol; ++c)
            hq[c] = halfCodesOf(c);
        for (int64_t r = 0; r < rows; ++r) {
          // x's pairs in the codes' order: read from the staged x, or
          // loaded and rearranged here (the row norm's squares too).
          SmallVector<Value> xs;
          if (staged) {
            Value c = arith::DivUIOp::create(nb, l, k0, idx(codes));
            for (int64_t j = 0; j < pairs; ++j)
              xs.push_back(vector::LoadOp::create(
                  nb, l, v8f16, staged, ValueRange{stagedAt(nb, l, r, c, j)},
                  /*nontemporal=*/false, llvm::MaybeAlign(16)));
          } else {
            Value xh = vector::LoadOp::create(nb, l, vxIn, x, xAt(r, k0),
                                              /*nontemporal=*/false,
                                              llvm::MaybeAlign(16));
            if (norm.ops) {
              Value xv = kb.extendTo(nb, xh, vxF32);
              next[nAcc + r] =
                  vector::FMAOp::create(nb, l, xv, xv, next[nAcc + r]);
            }
            for (int64_t j = 0; j < pairs; ++j)
              xs.push_back(xPair(nb, l, xh, j));
          }
          for (int64_t c = 0; c < ncol; ++c) {
            SmallVector<Value> q = rows > 1 ? hq[c] : halfCodesOf(c);
            Value dot = arith::MulFOp::create(nb, l, q[0], xs[0]);
            for (int64_t j = 1; j < pairs; ++j)
              dot = vector::FMAOp::create(nb, l, q[j], xs[j], dot);
            // Widened, the two halves of each word added.
            Value wide = arith::ExtFOp::create(nb, l, v8f32, dot);
            Value sum = arith::AddFOp::create(
                nb, l,
                vector::ShuffleOp::create(nb, l, wide, wide,
                                          ArrayRef<int64_t>{0, 2, 4, 6}),
                vector::ShuffleOp::create(nb, l, wide, wide,
                                          ArrayRef<int64_t>{1, 3, 5, 7}));
            Value &acc = next[c * rows + r];
            acc = vector::FMAOp::create(nb, l, sum, scaleV[c], acc);
          }
        }
        continue;
      }
      SmallVector<SmallVector<Value>> shared;
      if (rows > 1)
        for (int64_t c = 0; c < ncol; ++c)
          shared.push_back(codesOf(c));
      for (int64_t r = 0; r < rows; ++r) {
        Value xv = kb.extendTo(
            nb,
            // A load's first code is a multiple of 16 (whole
            // loads per row), so x's 16-byte alignment holds.
            vector::LoadOp::create(nb, l, vxIn, x, xAt(r, k0),
                                   /*nontemporal=*/false, llvm::MaybeAlign(16)),
            vxF32);
        if (norm.ops)
          next[nAcc + r] = vector::FMAOp::create(nb, l, xv, xv, next[nAcc + r]);
        // x at the codes of position j: elements perWord * w + j.
        SmallVector<Value> xs;
        for (int64_t j = 0; j < perWord; ++j) {
          SmallVector<int64_t> mask;
          for (int64_t w = 0; w < 4; ++w)
            mask.push_back(w * perWord + j);
          xs.push_back(vector::ShuffleOp::create(nb, l, xv, xv, mask));
        }
        Value xsum;
        if (zeros) {
          xsum = xs[0];
          for (int64_t j = 1; j < perWord; ++j)
            xsum = arith::AddFOp::create(nb, l, xsum, xs[j]);
        }
        for (int64_t c = 0; c < ncol; ++c) {
          SmallVector<Value> q = rows > 1 ? shared[c] : codesOf(c);
          Value dot = arith::MulFOp::create(nb, l, q[0], xs[0]);
          for (int64_t j = 1; j < perWord; ++j)
            dot = vector::FMAOp::create(nb, l, q[j], xs[j], dot);
          if (zeros)
            dot = arith::SubFOp::create(
                nb, l, dot, arith::MulFOp::create(nb, l, zeroV[c], xsum));
          Value &acc = next[c * rows + r];
          acc = vector::FMAOp::create(nb, l, dot, scaleV[c], acc);
        }
      }
    }
    return next;
  };
  const int64_t iterBytes = unroll * kStride;
  // The pipelined iterations' bytes (the slice but a tail step).
  const int64_t mainBytes = sliceBytes - tailSteps * kStride;
  SmallVector<Value> results;
  if (mainBytes % iterBytes == 0 && mainBytes >= 2 * iterBytes) {
    // Every lane has the same number (>= 2) of iterations: software
    // pipelined, the codes of iteration i + 1 loaded before the
    // arithmetic of iteration i, so that a warp always has loads in
    // flight. The first loads come first in the kernel (see loopAlongK).
    auto flat = [](const SmallVector<SmallVector<Value>> &w) {
      SmallVector<Value> v;
      for (const SmallVector<Value> &c : w)
        v.append(c.begin(), c.end());
      return v;
    };
    auto unflat = [&](ValueRange v) {
      SmallVector<SmallVector<Value>> w(ncol);
      for (int64_t c = 0; c < ncol; ++c)
        w[c].append(v.begin() + c * unroll, v.begin() + (c + 1) * unroll);
      return w;
    };
    SmallVector<Value> carried =
        flat(codesAt(b, loc, stepsAt(b, loc, firstByte, unroll)));
    if (stage)
      stageX(b, loc);
    const int64_t nWords = carried.size();
    carried.append(inits.begin(), inits.end());
    Value lastByte =
        arith::AddIOp::create(b, loc, firstByte, idx(mainBytes - iterBytes));
    auto loop = scf::ForOp::create(
        b, loc, arith::AddIOp::create(b, loc, firstByte, idx(iterBytes)),
        arith::AddIOp::create(b, loc, lastByte, idx(iterBytes)), idx(iterBytes),
        carried, [&](OpBuilder &nb, Location l, Value byte0, ValueRange cur) {
          SmallVector<Value> next =
              flat(codesAt(nb, l, stepsAt(nb, l, byte0, unroll)));
          Value prev = arith::SubIOp::create(nb, l, byte0, idx(iterBytes));
          SmallVector<Value> accs =
              iteration(nb, l, stepsAt(nb, l, prev, unroll),
                        unflat(cur.take_front(nWords)), cur.drop_front(nWords));
          next.append(accs.begin(), accs.end());
          scf::YieldOp::create(nb, l, next);
        });
    ValueRange res = loop.getResults();
    // The tail step's codes are loaded before the last iteration's
    // arithmetic.
    SmallVector<Value> tailBytes;
    SmallVector<SmallVector<Value>> tailWords;
    if (tailSteps) {
      tailBytes = stepsAt(
          b, loc, arith::AddIOp::create(b, loc, firstByte, idx(mainBytes)),
          tailSteps);
      tailWords = codesAt(b, loc, tailBytes);
    }
    results = iteration(b, loc, stepsAt(b, loc, lastByte, unroll),
                        unflat(res.take_front(nWords)), res.drop_front(nWords));
    if (tailSteps)
      results = iteration(b, loc, tailBytes, tailWords, results);
  } else {
    assert(tailSteps == 0 && "a tail step needs the pipelined loop");
    // The first iteration is peeled when every lane has one (loopAlongK;
    // x is staged between its code loads and its arithmetic).
    const bool peel = sliceBytes >= iterBytes;
    SmallVector<Value> start(inits);
    Value from = firstByte;
    if (peel && stage) {
      SmallVector<Value> bytes = stepsAt(b, loc, firstByte, unroll);
      SmallVector<SmallVector<Value>> words = codesAt(b, loc, bytes);
      // Its scales too are loaded before the wait, not after the barrier.
      SmallVector<Value> scalesFirst;
      for (Value byte : bytes)
        llvm::append_range(scalesFirst,
                           stepScales(b, loc, codeAt(b, loc, byte)).first);
      stageX(b, loc);
      start = iteration(b, loc, bytes, words, inits, scalesFirst);
      from = arith::AddIOp::create(b, loc, firstByte, idx(iterBytes));
    } else if (stage) {
      stageX(b, loc);
    }
    ValueRange r = loopAlongK(
        b, loc, kb, from, endByte, iterBytes, peel && !stage, start,
        [&](OpBuilder &nb, Location l, Value byte0, ValueRange accs) {
          SmallVector<Value> bytes = stepsAt(nb, l, byte0, unroll);
          return iteration(nb, l, bytes, codesAt(nb, l, bytes), accs);
        });
    results.assign(r.begin(), r.end());
  }
  for (Value v : ArrayRef<Value>(results).drop_front(nAcc))
    norm.partial.push_back(v);
  SmallVector<Value> accs(ArrayRef<Value>(results).take_front(nAcc));
  reduceAndStore(b, loc, kb, op, epilogue, map, accs, wc, rows, out, init, xAt,
                 norm, oc.offsets);

  LaunchShape shape;
  shape.grid[0] = llvm::divideCeil(oc.width, (kWarps / slices) * cpw);
  shape.block[0] = kThreads;
  return shape;
}

} // namespace gemv

const KernelRecipe &gemvQuant() {
  static const gemv::GemvQuant recipe;
  return recipe;
}

} // namespace kiln::kernels
