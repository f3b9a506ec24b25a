//===- MatmulWgmma.cpp - The matmul_wgmma kernel (sm_90 warpgroup MMA) ----===//
//
// The matmul_wgmma recipe of the kernel library (KernelLibrary.h): the
// projection out[b, s, n] += x[b, s, k] * w[n, k] of prefill and batched
// decode (more than 4 rows, 16-bit float operands, K a multiple of 64) on
// sm_90's warpgroup
// tensor-core instruction, `wgmma.mma_async`, which reads both operands from
// shared memory through descriptors and keeps a 64 x N accumulator tile per
// warpgroup (128 threads) in registers. How it maps the work is described at
// its class. Selected only when --kiln-select-kernels has warpgroup-mma set
// (kiln-compile: --target sm_90, whose code is built for sm_90a); on other
// targets matmul_mma takes the projection.
//
//===----------------------------------------------------------------------===//

#include "passes/kernels/TensorCore.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

#include <cstdlib>

namespace kiln::kernels {
using namespace gemv;

namespace {

/// How a matmul_wgmma kernel divides the work: a block computes a bm x bn
/// tile of the projection (bn weight rows) with bm / 64 warpgroups, each a
/// 64 x bn accumulator tile; K advances 64 elements (one 128-byte swizzle
/// atom of a row) at a time through a ring of `stages` buffers in dynamic
/// shared memory. `inFlight` (0 or 1) k tiles' wgmma may still run when the
/// next k tile starts; the copies run stages - 1 - inFlight tiles ahead.
struct Tiling {
  int64_t bm, bn, stages, inFlight;
  static constexpr int64_t kBk = 64;
  static constexpr int64_t kRowBytes = kBk * 2;
  /// sm_90's shared memory a block may opt in to (227 KiB), less the
  /// kernel's static buffers (row norms) and the 1 KiB the ring's start is
  /// aligned by (a swizzle pattern repeats every 1024 bytes).
  static constexpr int64_t kMaxRing = 227 * 1024 - 2 * 1024;
  int64_t warpgroups() const { return bm / 64; }
  int64_t threads() const { return 128 * warpgroups(); }
  int64_t stageBytes() const { return (bm + bn) * kRowBytes; }
  int64_t sharedBytes() const { return stages * stageBytes() + 1024; }
  int64_t ahead() const { return stages - 1 - inFlight; }
};

/// matmul_wgmma: a tile of the projection per block. Every thread stages
/// 16-byte chunks of x's rows and w's rows with cp.async
/// (`nvgpu.device_async_copy`, rows past the end zero-filled) into the ring,
/// in the 128-byte swizzled layout wgmma reads (chunk c of row r at chunk
/// c ^ (r % 8) of its 128-byte row; 8 rows make a 1024-byte core-matrix
/// group). Once a k tile has arrived (cp.async wait, a proxy fence so that
/// the async proxy sees the copies, a barrier), each warpgroup issues four
/// `wgmma.mma_async` m64nNk16 (f32 accumulators) on descriptors of its 64
/// rows of x and of the bn weight rows, advancing 32 bytes along K within
/// the swizzle atom; one k tile's group stays in flight while the next tile
/// is waited for and staged (the copies run one stage less ahead, so that
/// they never overwrite a stage an unfinished group reads). The block also
/// sums the squares of the x rows it stages for a fused RMSNorm (members)
/// and applies the elementwise epilogue as it stores each accumulator, as
/// matmul_mma does (TensorCore.h). For SwiGLU's two column ranges the
/// first half of the tile's weight rows are gate's columns and the second
/// half up's, so that each thread holds gate and up of the same columns.
/// Blocks run along M first (grid x), so that the blocks resident at once
/// share their weight tiles in L2.
class MatmulWgmma final : public TensorCoreRecipe {
public:
  StringRef name() const override { return "matmul_wgmma"; }
  bool needsWarpgroupMma() const override { return true; }

  /// As many rows as matmul_mma takes (more than 4: prefill, batched
  /// decode).
  static std::optional<Projection> matchWgmma(Operation *op) {
    return matchTensorCore(op, kMaxRowsBeforeMma, Tiling::kBk);
  }

  bool matches(Operation *op) const override {
    return matchWgmma(op).has_value();
  }

  /// Whether the kernel can be built with `t`: 1 or 2 warpgroups, a wgmma
  /// N of at most 256 that each column range fills in whole n8 tiles, and a
  /// ring of 2 or more stages.
  static bool valid(const Tiling &t, int64_t nOff) {
    return (t.bm == 64 || t.bm == 128) && t.bn > 0 && t.bn <= 256 &&
           t.bn % (8 * nOff) == 0 && (t.inFlight == 0 || t.inFlight == 1) &&
           t.ahead() >= 1 && t.stages * t.stageBytes() <= Tiling::kMaxRing;
  }

  /// The largest tile (128 x 256, 128 x 128, 64 x 256, 64 x 128, 64 x 64;
  /// at most 64 rows: 64 x 256 down to 64 x 32) that still gives a block to
  /// each of the H100/H200's 132 SMs, else the one with the most blocks; as
  /// many stages as fit, at most 4 (at most 64 rows: 8), with one k tile's
  /// wgmma in flight. KILN_TUNE_MATMUL_WGMMA=<bm>x<bn>s<stages>f<in
  /// flight> overrides the choice for measurements where it is valid().
  static Tiling tilingFor(int64_t rows, int64_t width, int64_t nOff) {
    if (const char *env = std::getenv("KILN_TUNE_MATMUL_WGMMA")) {
      StringRef text(env);
      int64_t v[4] = {0, 0, 0, 0};
      bool ok = !text.consumeInteger(10, v[0]) && text.consume_front("x") &&
                !text.consumeInteger(10, v[1]) && text.consume_front("s") &&
                !text.consumeInteger(10, v[2]) && text.consume_front("f") &&
                !text.consumeInteger(10, v[3]) && text.empty();
      Tiling t{v[0], v[1], v[2], v[3]};
      if (ok && valid(t, nOff))
        return t;
    }
    // At most 64 rows (batched decode, short chunks) the weights' bytes are
    // the cost: one warpgroup, narrower tiles for more blocks, and up to 8
    // stages so that more of them are in flight.
    const bool fewRows = rows <= 64;
    const Tiling many[] = {{128, 256, 0, 1},
                           {128, 128, 0, 1},
                           {64, 256, 0, 1},
                           {64, 128, 0, 1},
                           {64, 64, 0, 1}};
    const Tiling few[] = {
        {64, 256, 0, 1}, {64, 128, 0, 1}, {64, 64, 0, 1}, {64, 32, 0, 1}};
    Tiling best{0, 0, 0, 0};
    int64_t bestBlocks = 0;
    for (Tiling t : fewRows ? ArrayRef<Tiling>(few) : ArrayRef<Tiling>(many)) {
      t.stages =
          std::min<int64_t>(fewRows ? 8 : 4, Tiling::kMaxRing / t.stageBytes());
      if (!valid(t, nOff))
        continue;
      int64_t blocks =
          llvm::divideCeil(rows, t.bm) * llvm::divideCeil(width, t.bn / nOff);
      if (blocks >= 132)
        return t;
      if (blocks > bestBlocks) {
        best = t;
        bestBlocks = blocks;
      }
    }
    return best;
  }

  FailureOr<LaunchShape> build(OpBuilder &b, Operation *op, IRMapping &map,
                               gpu::GPUFuncOp kernel, Value init,
                               ArrayRef<Operation *> fused) const override {
    std::optional<Projection> p = matchWgmma(op);
    if (!p)
      return failure();
    Operation *epilogue = epilogueIn(op, fused);
    Location loc = op->getLoc();
    MLIRContext *ctx = b.getContext();
    KernelBuilder kb(b, loc, kernel);
    auto g = cast<linalg::GenericOp>(op);
    Value x = map.lookup(g.getDpsInputs()[0]);
    Value w = map.lookup(g.getDpsInputs()[1]);
    Value out = map.lookup(g.getDpsInits()[0]);
    const int64_t rows = p->batch * p->seq, K = p->k;
    OutputColumns oc = outputColumns(op, epilogue, p->n);
    const int64_t nOff = oc.offsets.size();
    const int64_t width = oc.width;
    Tiling t = tilingFor(rows, width, nOff);
    if (!valid(t, nOff))
      return failure();
    const int64_t blockCols = t.bn / nOff; // output columns a block
    const int64_t kTiles = K / Tiling::kBk;
    const int64_t chunksPerRow = Tiling::kBk / 8; // 16-byte copies
    Type elem = p->weightType;
    Type f32 = b.getF32Type(), i64 = b.getI64Type();
    auto idx = [&](int64_t v) { return kb.index(v); };

    OpBuilder::InsertionGuard guard(b);
    std::optional<RowNormOps> norm =
        members(op).empty() ? std::nullopt : rowNormOf(op);
    Value rowSq = norm ? kb.workgroupBuffer({t.bm}, f32) : Value();

    // The ring: dynamic shared memory from its first 1024-byte boundary, x's
    // stages then w's, each [stages, rows, 64] in the swizzled layout.
    auto workgroup =
        gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
    auto bytesType = MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                                     MemRefLayoutAttrInterface(), workgroup);
    Value dynamic = gpu::DynamicSharedMemoryOp::create(b, loc, bytesType);
    Value address =
        memref::ExtractAlignedPointerAsIndexOp::create(b, loc, dynamic);
    Value pad = kb.rem(
        arith::SubIOp::create(b, loc, idx(1024), kb.rem(address, 1024)), 1024);
    const int64_t bytesA = t.stages * t.bm * Tiling::kRowBytes;
    auto ringType = [&](int64_t r) {
      return MemRefType::get({t.stages, r, Tiling::kBk}, elem,
                             MemRefLayoutAttrInterface(), workgroup);
    };
    Value smemA = memref::ViewOp::create(b, loc, ringType(t.bm), dynamic, pad,
                                         ValueRange{});
    Value smemB =
        memref::ViewOp::create(b, loc, ringType(t.bn), dynamic,
                               kb.add(pad, idx(bytesA)), ValueRange{});
    Value ringA =
        arith::IndexCastUIOp::create(b, loc, i64, kb.add(address, pad));

    Value tid = kb.threadIdX();
    Value lane = kb.rem(tid, 32);
    Value group = kb.div(tid, 128);          // warpgroup
    Value warp = kb.rem(kb.div(tid, 32), 4); // warp of the warpgroup
    Value blockM = kb.blockIdX();
    Value blockN = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
    Value m0 = kb.mul(blockM, t.bm);
    Value n0 = kb.mul(blockN, blockCols);
    auto xAt = [&](Value r, Value k) -> SmallVector<Value, 3> {
      return {kb.div(r, p->seq), kb.rem(r, p->seq), k};
    };

    // The copies of k tile `kt` (past the last: zero-filled) into `stage`.
    const int64_t chunksA = t.bm * chunksPerRow, chunksB = t.bn * chunksPerRow;
    auto issue = [&](Value stage, Value kt) {
      SmallVector<Value> tokens;
      Value ktValid = kb.ult(kt, kTiles);
      Value ktClamped =
          arith::MinUIOp::create(b, loc, kt, idx(kTiles - 1)).getResult();
      Value k0 = kb.mul(ktClamped, Tiling::kBk);
      auto copy = [&](Value dst, Value row, Value chunk, Value src,
                      ValueRange srcAt, Value valid) {
        Value count = arith::SelectOp::create(b, loc, valid, idx(8), idx(0));
        Value swizzled =
            kb.mul(arith::XOrIOp::create(b, loc, chunk, kb.rem(row, 8)), 8);
        tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
            b, loc, nvgpu::DeviceAsyncTokenType::get(ctx), dst,
            ValueRange{stage, row, swizzled}, src, srcAt, b.getIndexAttr(8),
            count, b.getUnitAttr()));
      };
      for (int64_t c = 0; c < chunksA; c += t.threads()) {
        Value id = kb.add(tid, idx(c));
        Value row = kb.div(id, chunksPerRow), chunk = kb.rem(id, chunksPerRow);
        Value r = kb.add(m0, row);
        Value valid = arith::AndIOp::create(b, loc, ktValid, kb.ult(r, rows));
        Value rc = arith::MinUIOp::create(b, loc, r, idx(rows - 1));
        copy(smemA, row, chunk, x, xAt(rc, kb.add(k0, kb.mul(chunk, 8))),
             valid);
      }
      for (int64_t c = 0; c < chunksB; c += t.threads()) {
        Value id = kb.add(tid, idx(c));
        Value row = kb.div(id, chunksPerRow), chunk = kb.rem(id, chunksPerRow);
        // Tile row q: column n0 + q % blockCols of column range q / blockCols.
        Value n = kb.add(n0, kb.rem(row, blockCols));
        Value weightRow = n;
        if (nOff == 2)
          weightRow = kb.add(n, arith::SelectOp::create(
                                    b, loc, kb.ult(row, blockCols),
                                    idx(oc.offsets[0]), idx(oc.offsets[1])));
        else if (oc.offsets[0])
          weightRow = kb.add(n, idx(oc.offsets[0]));
        Value valid = arith::AndIOp::create(b, loc, ktValid, kb.ult(n, width));
        Value wc = arith::MinUIOp::create(b, loc, weightRow, idx(p->n - 1));
        copy(smemB, row, chunk, w, ValueRange{wc, kb.add(k0, kb.mul(chunk, 8))},
             valid);
      }
      return nvgpu::DeviceAsyncCreateGroupOp::create(
          b, loc, nvgpu::DeviceAsyncTokenType::get(ctx), tokens);
    };
    Value pending;
    for (int64_t s = 0; s < t.ahead(); ++s)
      pending = issue(idx(s), idx(s));

    // A shared-memory matrix descriptor (128-byte swizzle, K-major): the
    // start address / 16, leading byte offset 1 (unused when swizzled),
    // stride byte offset 1024 / 16 between 8-row groups, layout type 1.
    auto descriptor = [&](Value byteAddress) -> Value {
      Value a = arith::AndIOp::create(
          b, loc, byteAddress,
          arith::ConstantIntOp::create(b, loc, i64, 0x3FFFF));
      a = arith::ShRUIOp::create(b, loc, a,
                                 arith::ConstantIntOp::create(b, loc, i64, 4));
      const int64_t flags =
          (int64_t(1) << 16) | (int64_t(64) << 32) | (int64_t(1) << 62);
      return arith::OrIOp::create(
          b, loc, a, arith::ConstantIntOp::create(b, loc, i64, flags));
    };
    auto bytes = [&](Value v) -> Value {
      return arith::IndexCastUIOp::create(b, loc, i64, v);
    };

    // The accumulators: bn / 2 f32 a thread (wgmma's register fragment).
    const int64_t regs = t.bn / 2;
    auto accType =
        LLVM::LLVMStructType::getLiteral(ctx, SmallVector<Type>(regs, f32));
    auto sqType = VectorType::get({8}, f32);
    SmallVector<Value> inits{LLVM::ZeroOp::create(b, loc, accType)};
    if (norm)
      inits.push_back(arith::ConstantOp::create(
          b, loc, sqType, DenseElementsAttr::get(sqType, 0.0f)));
    const int64_t threadsPerRow = t.threads() / t.bm;
    const int64_t sqElems = Tiling::kBk / threadsPerRow;
    auto wgType = elem.isF16() ? NVVM::WGMMATypes::f16 : NVVM::WGMMATypes::bf16;
    // This warpgroup's rows of x and the weight rows, at stage 0.
    Value groupA = kb.add(ringA, bytes(kb.mul(group, 64 * Tiling::kRowBytes)));
    Value ringB = kb.add(ringA, bytes(idx(bytesA)));
    auto loop = scf::ForOp::create(
        b, loc, idx(0), idx(kTiles), idx(1), inits,
        [&](OpBuilder &nb, Location l, Value kt, ValueRange accs) {
          OpBuilder::InsertionGuard inner(b);
          b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          // Tile kt has arrived once at most ahead - 1 copy groups are
          // pending; the fence makes the copies visible to wgmma (the async
          // proxy), the barrier makes every thread's visible and tells that
          // every warpgroup's wgmma of tile kt - 1 - inFlight, which read the
          // stage the next copies overwrite, is done.
          nvgpu::DeviceAsyncWaitOp::create(b, l, pending,
                                           b.getI32IntegerAttr(t.ahead() - 1));
          NVVM::FenceProxyOp::create(
              b, l,
              NVVM::ProxyKindAttr::get(ctx, NVVM::ProxyKind::async_shared),
              NVVM::SharedSpaceAttr::get(ctx, NVVM::SharedSpace::shared_cta));
          gpu::BarrierOp::create(b, l);
          Value ahead = kb.add(kt, idx(t.ahead()));
          issue(kb.rem(ahead, t.stages), ahead);
          Value stage = kb.rem(kt, t.stages);
          Value a0 =
              kb.add(groupA, bytes(kb.mul(stage, t.bm * Tiling::kRowBytes)));
          Value b0 =
              kb.add(ringB, bytes(kb.mul(stage, t.bn * Tiling::kRowBytes)));
          NVVM::WgmmaFenceAlignedOp::create(b, l);
          Value acc = accs[0];
          for (int64_t kk = 0; kk < Tiling::kBk / 16; ++kk) {
            Value step = arith::ConstantIntOp::create(b, l, i64, kk * 32);
            acc = NVVM::WgmmaMmaAsyncOp::create(
                b, l, accType, acc,
                descriptor(arith::AddIOp::create(b, l, a0, step)),
                descriptor(arith::AddIOp::create(b, l, b0, step)),
                NVVM::MMAShapeAttr::get(ctx, 64, t.bn, 16), wgType, wgType,
                NVVM::WGMMATypes::f32, NVVM::WGMMAScaleOut::one,
                NVVM::WGMMAScaleIn::one, NVVM::WGMMAScaleIn::one,
                NVVM::MMALayout::row, NVVM::MMALayout::col,
                NVVM::MMAIntOverflowAttr());
          }
          NVVM::WgmmaGroupSyncAlignedOp::create(b, l);
          NVVM::WgmmaWaitGroupSyncOp::create(b, l, t.inFlight);
          SmallVector<Value> next{acc};
          if (norm) {
            // This thread's sqElems elements of row tid / threadsPerRow (in
            // swizzled order: the sum does not care).
            Value row = kb.div(tid, threadsPerRow);
            Value col0 = kb.mul(kb.rem(tid, threadsPerRow), sqElems);
            Value sq = accs[1];
            for (int64_t e = 0; e < sqElems; e += 8) {
              Value v = vector::LoadOp::create(
                  b, l, VectorType::get({8}, elem), smemA,
                  ValueRange{stage, row, kb.add(col0, idx(e))});
              v = kb.extendTo(b, v, sqType);
              sq = vector::FMAOp::create(b, l, v, v, sq);
            }
            next.push_back(sq);
          }
          scf::YieldOp::create(b, l, next);
        });
    ValueRange results = loop.getResults();
    if (t.inFlight)
      NVVM::WgmmaWaitGroupSyncOp::create(b, loc, 0);

    // The rows' sums of squares, for the block and the kernels after it.
    Value sqBuffer = norm ? map.lookup(norm->squares) : Value();
    if (norm)
      publishRowSquares(b, loc, kb, results.back(), threadsPerRow, tid, rowSq,
                        sqBuffer, m0, rows, p->seq, blockN);

    // The epilogue: register 4 j + 2 h + c of the fragment is row
    // 16 warp + lane / 4 + 8 h of the warpgroup's 64, tile column
    // 8 j + 2 (lane % 4) + c; column range i's registers start at
    // i * blockCols / 2.
    const bool rowsWhole = rows % t.bm == 0, colsWhole = width % blockCols == 0;
    for (int64_t h = 0; h < 2; ++h) {
      Value localRow = kb.add(kb.add(kb.mul(group, 64), kb.mul(warp, 16)),
                              kb.add(kb.div(lane, 4), idx(8 * h)));
      Value r = kb.add(m0, localRow);
      llvm::SmallDenseMap<Value, Value> known;
      if (norm)
        known[norm->squares] =
            memref::LoadOp::create(b, loc, rowSq, ValueRange{localRow});
      for (int64_t j = 0; j < blockCols / 8; ++j)
        for (int64_t c = 0; c < 2; ++c) {
          Value n =
              kb.add(kb.add(n0, idx(8 * j + c)), kb.mul(kb.rem(lane, 4), 2));
          storeElement(
              b, loc, kb, op, epilogue, map, init, out, oc.offsets,
              [&](int64_t gi) -> Value {
                return LLVM::ExtractValueOp::create(
                    b, loc, results[0], 4 * j + 2 * h + c + gi * blockCols / 2);
              },
              r, n, rows, width, p->seq, rowsWhole, colsWhole, known);
        }
    }

    LaunchShape shape;
    shape.grid[0] = llvm::divideCeil(rows, t.bm);
    shape.grid[1] = llvm::divideCeil(width, blockCols);
    shape.block[0] = t.threads();
    shape.sharedBytes = t.sharedBytes();
    shape.tiling = std::to_string(t.bm) + "x" + std::to_string(t.bn) + "x" +
                   std::to_string(Tiling::kBk) + "s" +
                   std::to_string(t.stages) + "f" + std::to_string(t.inFlight);
    return shape;
  }
};

} // namespace

const KernelRecipe &matmulWgmma() {
  static const MatmulWgmma recipe;
  return recipe;
}

} // namespace kiln::kernels
