//===- GemvNK.cpp - The gemv_nk kernel
//--------------------------------------===//
//
// The gemv_nk recipe of the kernel library (KernelLibrary.h); how it maps the
// work is described at its class.
//
//===----------------------------------------------------------------------===//

#include "passes/kernels/Gemv.h"

#include <cstdlib>
#include <limits>

namespace kiln::kernels {
using namespace gemv;

namespace {

/// gemv_nk: the same projection with w stored [out, in] (tied embeddings as
/// the logits weight, Gemm with transB): a warp per output column n, 8 per
/// block; lane l reads elements [l * V, l * V + V) of each 32 * V-wide
/// stretch of row n with one 16-byte load, then the warp adds its lanes with
/// gpu.subgroup_reduce.
class GemvNK final : public GemvRecipe {
public:
  GemvNK() : GemvRecipe(/*inOut=*/false) {}
  static constexpr int64_t kThreads = 256;
  static constexpr int64_t kWarps = kThreads / 32;

  StringRef name() const override { return "gemv_nk"; }
  bool fusesRowNorm() const override { return true; }
  bool supportsColumnOffsets() const override { return true; }

  bool matches(Operation *op) const override {
    std::optional<Projection> p = match(op);
    if (!p || p->k % vectorWidth(p->weightType) != 0)
      return false;
    // More rows than kMaxRowsBeforeMma: the tensor cores, when they can.
    return p->batch * p->seq <= kMaxRowsBeforeMma || !matmulMma().matches(op);
  }

  /// Output columns per warp: more (up to 4) while the columns still fill
  /// `minBlocks` blocks of 8 warps (256) before split-K, so that a warp's
  /// fixed costs (its x loads, reductions and store) are shared by more
  /// weight bytes; one for few columns (latency-bound small GEMVs) and for
  /// several batch rows (registers). A warp then keeps at most 8 x 16 bytes
  /// a lane of loads in flight (steps per iteration times columns, as gemv_q
  /// does). On the H200, the 1B shape's gate/up went from one column a warp
  /// over whole rows (2 weight rows x 2048, 105 registers) to four columns
  /// a warp over a quarter of each row (split-K: 8 rows x 512, 127
  /// registers; 1024 blocks both): fp16 decode 1236.1 / 1231.1 -> 1274.2 /
  /// 1271.1 tok/s in two calls, the same greedy tokens; the old rule with
  /// the cap alone 1232.9, and 512 blocks (two columns) 1235.2. An 8B-shaped
  /// model of 4 layers (q/k/v, o_proj and down at 2 columns, gate/up at 4):
  /// 1379.6 / 1392.5 -> 1398.5 / 1405.2 tok/s. KILN_TUNE_GEMV_NK=<blocks>
  /// replaces the 256 for measurements (1024 was the rule before).
  static int64_t minBlocks() {
    const char *env = std::getenv("KILN_TUNE_GEMV_NK");
    int64_t blocks = 0;
    if (!env || StringRef(env).getAsInteger(10, blocks) || blocks < 1)
      return 256;
    return blocks;
  }
  static int64_t columnsPerWarp(const Projection &p, int64_t rows) {
    if (rows > 1)
      return 1;
    const int64_t least = minBlocks();
    for (int64_t c : {4, 2})
      if (p.n % (kWarps * c) == 0 && p.n / (kWarps * c) >= least)
        return c;
    return 1;
  }

  FailureOr<LaunchShape> build(OpBuilder &b, Operation *op, IRMapping &map,
                               gpu::GPUFuncOp kernel, Value init,
                               ArrayRef<Operation *> fused) const override {
    Operation *epilogue = epilogueIn(op, fused);
    Location loc = op->getLoc();
    KernelBuilder kb(b, loc, kernel);
    FailureOr<Operands> o = operands(op, map, kb);
    if (failed(o))
      return failure();
    const Projection *p = &o->p;
    Value x = o->x, w = o->w;
    const int64_t rows = o->rows, vec = o->vec;
    // Output columns: the epilogue's (SwiGLU: half the projection's, each
    // needing columns n and n + N/2).
    OutputColumns oc = outputColumns(op, epilogue, p->n);
    Projection domain = *p;
    domain.n = oc.width;
    const int64_t cpw = columnsPerWarp(domain, rows);
    VectorType vf32 = o->vf32, vw = o->vw, vx = o->vx;
    // x rows start 16-byte aligned when x has w's element type (k % vec == 0).
    const uint64_t xAlign = p->inputType == p->weightType
                                ? 16
                                : p->inputType.getIntOrFloatBitWidth() / 8;
    auto idx = [&](int64_t v) { return kb.index(v); };
    auto toF32 = [&](OpBuilder &nb, Value v, Type type) {
      return kb.extendTo(nb, v, type);
    };

    OpBuilder::InsertionGuard guard(b);
    const int64_t stride = 32 * vec;
    const int64_t slices = splitK(oc.width, cpw, p->k, stride, kWarps);
    const int64_t sliceK = p->k / slices;
    WarpColumns wc = warpColumns(b, loc, kb, oc.width, cpw, kWarps, slices);
    Value lane = wc.lane;
    // The projection columns this warp reads: [offset][output column].
    const SmallVector<Value> ns =
        projectionColumns(b, loc, kb, wc.ns, oc.offsets);
    const int64_t ncol = ns.size();
    Value zero = arith::ConstantOp::create(b, loc, vf32,
                                           DenseElementsAttr::get(vf32, 0.0f));
    // Accumulators [column][batch row], then (with a row norm) the sums of
    // x^2 [batch row].
    RowNormSums norm;
    norm.ops = members(op).empty() ? std::nullopt : rowNormOf(op);
    const int64_t nAcc = ncol * rows;
    SmallVector<Value> inits(nAcc + (norm.ops ? rows : 0), zero);
    Value kFirst = arith::MulIOp::create(b, loc, lane, idx(vec));
    Value kEnd = idx(p->k);
    if (slices > 1) {
      Value k0 = arith::MulIOp::create(b, loc, wc.slice, idx(sliceK));
      kFirst = arith::AddIOp::create(b, loc, k0, kFirst);
      kEnd = arith::AddIOp::create(b, loc, k0, idx(sliceK));
    }
    // A warp covers 32 * V elements of a row per step (unrollFor: up to 4
    // steps per iteration).
    // (at most 8 loads of 16 bytes a lane in flight: see columnsPerWarp)
    const int64_t unroll =
        std::min(unrollFor(sliceK, stride), std::max<int64_t>(1, 8 / ncol));
    for (int64_t u = 1; u < unroll; ++u)
      idx(u * stride);
    // One iteration: its weight loads [column][step] (all issued before any
    // FMA), x's, and the FMAs.
    auto weightsAt = [&](OpBuilder &nb, Location l, ArrayRef<Value> ks) {
      SmallVector<SmallVector<Value>> wf(ncol);
      for (int64_t u = 0; u < unroll; ++u)
        for (int64_t c = 0; c < ncol; ++c)
          wf[c].push_back(vector::LoadOp::create(
              nb, l, vw, w, ValueRange{ns[c], ks[u]},
              /*nontemporal=*/false, llvm::MaybeAlign(16)));
      return wf;
    };
    auto iteration = [&](OpBuilder &nb, Location l, ArrayRef<Value> ks,
                         const SmallVector<SmallVector<Value>> &wf,
                         ValueRange accs) {
      SmallVector<Value> next(accs.begin(), accs.end());
      for (int64_t u = 0; u < unroll; ++u)
        for (int64_t r = 0; r < rows; ++r) {
          Value xv = toF32(nb,
                           vector::LoadOp::create(
                               nb, l, vx, x, o->xAt(kb, r, ks[u]),
                               /*nontemporal=*/false, llvm::MaybeAlign(xAlign)),
                           vf32);
          for (int64_t c = 0; c < ncol; ++c)
            next[c * rows + r] = vector::FMAOp::create(
                nb, l, vf32, xv, toF32(nb, wf[c][u], vf32), next[c * rows + r]);
          if (norm.ops)
            next[nAcc + r] =
                vector::FMAOp::create(nb, l, vf32, xv, xv, next[nAcc + r]);
        }
      return next;
    };
    // The first iteration is peeled when every lane has one (a slice of at
    // least unroll * 32 * V elements).
    ValueRange results = loopAlongK(
        b, loc, kb, kFirst, kEnd, unroll * stride, sliceK >= unroll * stride,
        inits, [&](OpBuilder &nb, Location l, Value k, ValueRange accs) {
          SmallVector<Value> ks = stepOffsets(nb, l, kb, k, unroll, stride);
          return iteration(nb, l, ks, weightsAt(nb, l, ks), accs);
        });
    for (Value v : results.drop_front(nAcc))
      norm.partial.push_back(v);
    reduceAndStore(
        b, loc, kb, op, epilogue, map, results.take_front(nAcc), wc, rows,
        o->out, init, [&](int64_t r, Value n) { return o->xAt(kb, r, n); },
        norm, oc.offsets);

    LaunchShape shape;
    shape.grid[0] = llvm::divideCeil(oc.width, (kWarps / slices) * cpw);
    shape.block[0] = kThreads;
    return shape;
  }
};

} // namespace

const KernelRecipe &gemvNK() {
  static const GemvNK recipe;
  return recipe;
}

} // namespace kiln::kernels
