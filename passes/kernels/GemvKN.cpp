//===- GemvKN.cpp - The gemv_kn kernel
//--------------------------------------===//
//
// gemv_kn: the decode-time projection out[b, s, n] += x[b, s, k] * w[k, n]
// with w stored [in, out] (the layout both PyTorch exporters give MatMul) and
// few rows (b * s <= 8). The generic mapping gives each output a thread that
// walks a column of w: 2- or 4-byte loads and only N threads in all. Here a
// block of T threads (1024 when there are fewer than 512 blocks, else 256)
// owns C = 2 * V adjacent columns (V = 16 bytes / the weight element): thread
// t loads the V columns (cl = t % 2) of rows k = t / 2 + (T / 2) i with one
// 16-byte load each, up to 4 rows before their FMAs, so each warp reads 16
// rows x 32 contiguous bytes per load, and keeps f32 partial sums per batch
// row. The T / 2 partial sums of a column are added in two steps: a
// clustered gpu.subgroup_reduce over the 16 lanes of a warp that hold the
// same columns, then through workgroup memory across the warps.
//
//===----------------------------------------------------------------------===//

#include "passes/kernels/Gemv.h"

#include <limits>

namespace kiln::kernels {
using namespace gemv;

namespace {

class GemvKN final : public GemvRecipe {
public:
  GemvKN() : GemvRecipe(/*inOut=*/true) {}
  static constexpr int64_t kColumnLanes = 2; // lanes across a 32-byte row
  // Blocks are N / (2 * V): when that is too few to fill the GPU several
  // times over (N = 2048 or less at f16), 1024 threads per block keep 4x
  // more loads in flight per SM, if the accumulators (rows x V floats) leave
  // registers for them (64 per thread at 1024 threads).
  static int64_t threadsFor(int64_t blocks, int64_t accumulators) {
    return blocks < 512 && accumulators <= 16 ? 1024 : 256;
  }

  StringRef name() const override { return "gemv_kn"; }

  bool matches(Operation *op) const override {
    std::optional<Projection> p = match(op);
    return p && p->n % (kColumnLanes * vectorWidth(p->weightType)) == 0;
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
    Value x = o->x, w = o->w, out = o->out;
    const int64_t rows = o->rows, vec = o->vec;
    const int64_t cols = kColumnLanes * vec;
    const int64_t kThreads = threadsFor(p->n / cols, rows * vec);
    const int64_t kStep = kThreads / kColumnLanes, warps = kThreads / 32;
    Type f32 = b.getF32Type();
    VectorType vf32 = o->vf32, vw = o->vw;
    auto idx = [&](int64_t v) { return kb.index(v); };
    auto toF32 = [&](OpBuilder &nb, Value v, Type type) {
      return kb.extendTo(nb, v, type);
    };

    Value tid = kb.threadIdX();
    Value bid = kb.blockIdX();
    Value lane = arith::RemUIOp::create(b, loc, tid, idx(kColumnLanes));
    Value kFirst = arith::DivUIOp::create(b, loc, tid, idx(kColumnLanes));
    Value nBlock = arith::MulIOp::create(b, loc, bid, idx(cols));
    Value n0 = arith::AddIOp::create(
        b, loc, nBlock, arith::MulIOp::create(b, loc, lane, idx(vec)));
    Value zero = arith::ConstantOp::create(b, loc, vf32,
                                           DenseElementsAttr::get(vf32, 0.0f));
    SmallVector<Value> inits(rows, zero);
    // Up to 4 rows per thread and step, their loads issued before any FMA,
    // keep 64 bytes per thread in flight.
    const int64_t unroll = p->k % (4 * kStep) == 0   ? 4
                           : p->k % (2 * kStep) == 0 ? 2
                                                     : 1;
    for (int64_t u = 1; u < unroll; ++u)
      idx(u * kStep);
    auto loop = scf::ForOp::create(
        b, loc, kFirst, idx(p->k), idx(unroll * kStep), inits,
        [&](OpBuilder &nb, Location l, Value k, ValueRange accs) {
          SmallVector<Value> ks, wf;
          for (int64_t u = 0; u < unroll; ++u) {
            ks.push_back(
                u ? arith::AddIOp::create(nb, l, k, idx(u * kStep)).getResult()
                  : k);
            Value wv = vector::LoadOp::create(
                nb, l, vw, w, ValueRange{ks.back(), n0},
                /*nontemporal=*/false, llvm::MaybeAlign(16));
            wf.push_back(toF32(nb, wv, vf32));
          }
          SmallVector<Value> next(accs.begin(), accs.end());
          for (int64_t u = 0; u < unroll; ++u)
            for (int64_t r = 0; r < rows; ++r) {
              Value xs = memref::LoadOp::create(nb, l, x, o->xAt(kb, r, ks[u]));
              Value xb =
                  vector::BroadcastOp::create(nb, l, vf32, toF32(nb, xs, f32));
              next[r] = vector::FMAOp::create(nb, l, vf32, xb, wf[u], next[r]);
            }
          scf::YieldOp::create(nb, l, next);
        });

    // Lanes l, l + 2, ..., l + 30 of a warp hold the same columns
    // (sums[row][v]: column lane * vec + v of the lane's pair).
    SmallVector<SmallVector<Value>> sums;
    for (Value acc : loop.getResults()) {
      SmallVector<Value> &row = sums.emplace_back();
      for (int64_t v = 0; v < vec; ++v)
        row.push_back(gpu::SubgroupReduceOp::create(
            b, loc, vector::ExtractOp::create(b, loc, acc, v),
            gpu::AllReduceOperation::ADD, /*uniform=*/true,
            /*cluster_size=*/uint32_t(32 / kColumnLanes),
            /*cluster_stride=*/uint32_t(kColumnLanes)));
    }

    // Across warps: partial[warp][row][column] in workgroup memory.
    Value smem = kb.workgroupBuffer({warps * rows * cols}, f32);
    Value warp = arith::DivUIOp::create(b, loc, tid, idx(32));
    Value warpLane = arith::RemUIOp::create(b, loc, tid, idx(32));
    Value writes = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                         warpLane, idx(kColumnLanes));
    auto store = scf::IfOp::create(b, loc, writes, /*withElseRegion=*/false);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&store.getThenRegion().front());
      Value laneColumn = arith::MulIOp::create(b, loc, lane, idx(vec));
      for (int64_t r = 0; r < rows; ++r) {
        Value slot = arith::AddIOp::create(
            b, loc,
            arith::MulIOp::create(
                b, loc,
                arith::AddIOp::create(
                    b, loc, arith::MulIOp::create(b, loc, warp, idx(rows)),
                    idx(r)),
                idx(cols)),
            laneColumn);
        for (int64_t v = 0; v < vec; ++v)
          memref::StoreOp::create(
              b, loc, sums[r][v], smem,
              ValueRange{arith::AddIOp::create(b, loc, slot, idx(v))});
      }
    }
    gpu::BarrierOp::create(b, loc);

    // Thread t < rows * cols finishes column t % cols of row t / cols.
    Value finishes = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                           tid, idx(rows * cols));
    auto finish = scf::IfOp::create(b, loc, finishes, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&finish.getThenRegion().front());
    Value row = arith::DivUIOp::create(b, loc, tid, idx(cols));
    Value col = arith::RemUIOp::create(b, loc, tid, idx(cols));
    Value sum;
    for (int64_t wi = 0; wi < warps; ++wi) {
      Value slot = arith::AddIOp::create(
          b, loc,
          arith::MulIOp::create(
              b, loc, arith::AddIOp::create(b, loc, idx(wi * rows), row),
              idx(cols)),
          col);
      Value part = memref::LoadOp::create(b, loc, smem, ValueRange{slot});
      sum = sum ? arith::AddFOp::create(b, loc, sum, part).getResult() : part;
    }
    Value bi = arith::DivUIOp::create(b, loc, row, idx(p->seq));
    Value si = arith::RemUIOp::create(b, loc, row, idx(p->seq));
    Value n = arith::AddIOp::create(b, loc, nBlock, col);
    Value old =
        init ? init
             : memref::LoadOp::create(b, loc, out, ValueRange{bi, si, n});
    storeResult(b, loc, op, epilogue, map,
                arith::AddFOp::create(b, loc, old, sum), ValueRange{bi, si, n});

    LaunchShape shape;
    shape.grid[0] = p->n / cols;
    shape.block[0] = kThreads;
    return shape;
  }
};

} // namespace

const KernelRecipe &gemvKN() {
  static const GemvKN recipe;
  return recipe;
}

} // namespace kiln::kernels
