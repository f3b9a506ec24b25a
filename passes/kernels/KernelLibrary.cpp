//===- KernelLibrary.cpp - Hand-built GPU kernels -------------------------===//
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

#include "passes/kernels/KernelLibrary.h"
#include "passes/kernels/KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/Support/MathExtras.h"

#include <limits>

using namespace mlir;

namespace kiln::kernels {

KernelRecipe::~KernelRecipe() = default;

Value KernelRecipe::fusableInit(Operation *) const { return {}; }
bool KernelRecipe::acceptsEpilogue(Operation *, Operation *) const {
  return false;
}
SmallVector<Operation *> KernelRecipe::members(Operation *) const { return {}; }
SmallVector<Operation *> KernelRecipe::fusedOps(Operation *op) const {
  SmallVector<Operation *> ops = members(op);
  Operation *next = op->getNextNode();
  while (next && (isa<memref::AllocOp>(next) ||
                  (isMemoryEffectFree(next) && next->getNumRegions() == 0)))
    next = next->getNextNode();
  auto tag = next ? next->getAttrOfType<StringAttr>(kKernelAttr) : StringAttr();
  if (tag && tag.getValue() == kFused && !llvm::is_contained(ops, next))
    ops.push_back(next);
  return ops;
}

namespace {

/// `v` without an arith.extf in front of it.
Value withoutExt(Value v) {
  if (auto ext = v.getDefiningOp<arith::ExtFOp>())
    return ext.getIn();
  return v;
}

/// The static sizes of a projection out[b, s, n] += x[b, s, k] * w[.., ..].
struct Projection {
  int64_t batch = 0, seq = 0, k = 0, n = 0;
  Type weightType, inputType;
};

/// Matches the linalg.generic that --kiln-lower-tfm-to-linalg makes of
/// tfm.linear and tfm.logits, bufferized: ins(x : [B, S, K], w), outs(acc :
/// [B, S, N] f32), iterators (parallel x 3, reduction), body
/// acc + ext(x) * ext(w). `inOut`: w is [K, N] (else [N, K]).
std::optional<Projection> matchProjection(Operation *op, bool inOut) {
  auto g = dyn_cast<linalg::GenericOp>(op);
  if (!g || !g.hasPureBufferSemantics() || g.getNumDpsInputs() != 2 ||
      g.getNumDpsInits() != 1)
    return std::nullopt;
  using utils::IteratorType;
  if (g.getIteratorTypesArray() !=
      SmallVector<IteratorType>{IteratorType::parallel, IteratorType::parallel,
                                IteratorType::parallel,
                                IteratorType::reduction})
    return std::nullopt;
  MLIRContext *ctx = op->getContext();
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto map = [&](ArrayRef<AffineExpr> exprs) {
    return AffineMap::get(4, 0, exprs, ctx);
  };
  SmallVector<AffineMap> expected{
      map({d(0), d(1), d(3)}),
      inOut ? map({d(3), d(2)}) : map({d(2), d(3)}),
      map({d(0), d(1), d(2)})};
  if (g.getIndexingMapsArray() != expected)
    return std::nullopt;
  auto x = dyn_cast<MemRefType>(g.getDpsInputs()[0].getType());
  auto w = dyn_cast<MemRefType>(g.getDpsInputs()[1].getType());
  auto out = dyn_cast<MemRefType>(g.getDpsInits()[0].getType());
  if (!x || !w || !out || !x.hasStaticShape() || !w.hasStaticShape() ||
      !out.hasStaticShape() || !w.getLayout().isIdentity() ||
      !out.getElementType().isF32() || !isa<FloatType>(x.getElementType()) ||
      !isa<FloatType>(w.getElementType()))
    return std::nullopt;

  // acc + x * w, in either operand order.
  Block &body = g.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto add = yield.getNumOperands() == 1
                 ? yield.getOperand(0).getDefiningOp<arith::AddFOp>()
                 : arith::AddFOp();
  if (!add || body.getOperations().size() > 5)
    return std::nullopt;
  Value acc = body.getArgument(2);
  Value product = add.getLhs() == acc   ? add.getRhs()
                  : add.getRhs() == acc ? add.getLhs()
                                        : Value();
  auto mul = product ? product.getDefiningOp<arith::MulFOp>() : arith::MulFOp();
  if (!mul)
    return std::nullopt;
  Value a = withoutExt(mul.getLhs()), b = withoutExt(mul.getRhs());
  if (!((a == body.getArgument(0) && b == body.getArgument(1)) ||
        (a == body.getArgument(1) && b == body.getArgument(0))))
    return std::nullopt;

  Projection p;
  p.batch = x.getDimSize(0);
  p.seq = x.getDimSize(1);
  p.k = x.getDimSize(2);
  p.n = out.getDimSize(2);
  p.weightType = w.getElementType();
  p.inputType = x.getElementType();
  return p;
}

/// What both GEMV kernels share: the projection they implement (at most 8
/// rows, 16- or 32-bit weights) and its operands inside the kernel.
class GemvRecipe : public KernelRecipe {
public:
  static constexpr int64_t kMaxRows = 8; // batch * seq

  /// Weight elements per 16-byte load.
  static int64_t vectorWidth(Type weight) {
    return 16 / (weight.getIntOrFloatBitWidth() / 8);
  }

  Value fusableInit(Operation *op) const override {
    return cast<linalg::GenericOp>(op).getDpsInits()[0];
  }

  /// Any elementwise consumer of the [B, S, N] result with identity maps:
  /// the final store computes it (the f16 conversion of the accumulator, a
  /// residual add).
  bool acceptsEpilogue(Operation *op, Operation *consumer) const override {
    auto g = dyn_cast<linalg::GenericOp>(consumer);
    Value out = cast<linalg::GenericOp>(op).getDpsInits()[0];
    if (!g || !g.hasPureBufferSemantics() || g.getNumDpsInits() != 1 ||
        g.getNumParallelLoops() != g.getNumLoops() ||
        llvm::count(g.getDpsInputs(), out) != 1 || g.getDpsInits()[0] == out ||
        !llvm::all_of(g.getIndexingMapsArray(),
                      [](AffineMap m) { return m.isIdentity(); }))
      return false;
    auto shape = cast<MemRefType>(out.getType()).getShape();
    for (Value v : g->getOperands()) {
      auto t = dyn_cast<MemRefType>(v.getType());
      if (!t || t.getShape() != shape)
        return false;
    }
    return llvm::all_of(g.getRegion().front().without_terminator(),
                        [](Operation &o) { return isMemoryEffectFree(&o); });
  }

protected:
  /// Stores the finished accumulator value `acc` of element `at`: into the
  /// projection's output, or through the epilogue into the epilogue's.
  static void storeResult(OpBuilder &b, Location loc, Operation *op,
                          Operation *epilogue, IRMapping &map, Value acc,
                          ValueRange at) {
    Value out = cast<linalg::GenericOp>(op).getDpsInits()[0];
    if (!epilogue) {
      memref::StoreOp::create(b, loc, acc, map.lookup(out), at);
      return;
    }
    auto g = cast<linalg::GenericOp>(epilogue);
    Block &body = g.getRegion().front();
    // Values the body captures from above were rematerialised in `map`.
    IRMapping inner = map;
    for (auto [operand, arg] : llvm::zip(g->getOperands(), body.getArguments()))
      if (!arg.use_empty())
        inner.map(arg, operand == out
                           ? acc
                           : memref::LoadOp::create(b, loc, map.lookup(operand),
                                                    at)
                                 .getResult());
    for (Operation &o : body.without_terminator())
      b.clone(o, inner);
    auto yield = cast<linalg::YieldOp>(body.getTerminator());
    memref::StoreOp::create(b, loc, inner.lookup(yield.getOperand(0)),
                            map.lookup(g.getDpsInits()[0]), at);
  }

protected:
  explicit GemvRecipe(bool inOut) : inOut(inOut) {}

  /// The projection when it suits a GEMV kernel.
  std::optional<Projection> match(Operation *op) const {
    std::optional<Projection> p = matchProjection(op, inOut);
    if (!p || p->batch * p->seq > kMaxRows)
      return std::nullopt;
    unsigned bits = p->weightType.getIntOrFloatBitWidth();
    if (bits != 16 && bits != 32)
      return std::nullopt;
    return p;
  }

  struct Operands {
    Projection p;
    Value x, w, out;
    int64_t rows = 0, vec = 0;
    VectorType vf32, vw, vx; // V x f32, V x weight, V x input
    /// x[b, s, k] of batch row `r` (b * seq + s).
    SmallVector<Value, 3> xAt(KernelBuilder &kb, int64_t r, Value k) const {
      return {kb.index(r / p.seq), kb.index(r % p.seq), k};
    }
  };

  FailureOr<Operands> operands(Operation *op, IRMapping &map,
                               KernelBuilder &kb) const {
    std::optional<Projection> p = match(op);
    if (!p)
      return failure();
    auto g = cast<linalg::GenericOp>(op);
    Operands o;
    o.p = *p;
    o.x = map.lookup(g.getDpsInputs()[0]);
    o.w = map.lookup(g.getDpsInputs()[1]);
    o.out = map.lookup(g.getDpsInits()[0]);
    o.rows = p->batch * p->seq;
    o.vec = vectorWidth(p->weightType);
    o.vf32 = VectorType::get({o.vec}, kb.b.getF32Type());
    o.vw = VectorType::get({o.vec}, p->weightType);
    o.vx = VectorType::get({o.vec}, p->inputType);
    return o;
  }

private:
  bool inOut;
};

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
    Operation *epilogue = fused.empty() ? nullptr : fused.front();
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
            ks.push_back(u ? arith::AddIOp::create(nb, l, k, idx(u * kStep))
                               .getResult()
                           : k);
            Value wv = vector::LoadOp::create(
                nb, l, vw, w, ValueRange{ks.back(), n0},
                /*nontemporal=*/false, llvm::MaybeAlign(16));
            wf.push_back(toF32(nb, wv, vf32));
          }
          SmallVector<Value> next(accs.begin(), accs.end());
          for (int64_t u = 0; u < unroll; ++u)
            for (int64_t r = 0; r < rows; ++r) {
              Value xs = memref::LoadOp::create(nb, l, x,
                                                o->xAt(kb, r, ks[u]));
              Value xb = vector::BroadcastOp::create(nb, l, vf32,
                                                     toF32(nb, xs, f32));
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
        init ? init : memref::LoadOp::create(b, loc, out, ValueRange{bi, si, n});
    storeResult(b, loc, op, epilogue, map,
                arith::AddFOp::create(b, loc, old, sum), ValueRange{bi, si, n});

    LaunchShape shape;
    shape.grid[0] = p->n / cols;
    shape.block[0] = kThreads;
    return shape;
  }
};

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

  bool matches(Operation *op) const override {
    std::optional<Projection> p = match(op);
    return p && p->k % vectorWidth(p->weightType) == 0;
  }

  /// Output columns per warp: more when there are so many that blocks would
  /// still fill the GPU several times over (gate/up, the logits), so that a
  /// warp's fixed costs (its x loads, reductions and store) are shared by
  /// more weight bytes; one for few columns (latency-bound small GEMVs) and
  /// for several batch rows (registers).
  static int64_t columnsPerWarp(const Projection &p, int64_t rows) {
    if (rows > 1)
      return 1;
    for (int64_t c : {4, 2})
      if (p.n % (kWarps * c) == 0 && p.n / (kWarps * c) >= 1024)
        return c;
    return 1;
  }

  FailureOr<LaunchShape> build(OpBuilder &b, Operation *op, IRMapping &map,
                               gpu::GPUFuncOp kernel, Value init,
                               ArrayRef<Operation *> fused) const override {
    Operation *epilogue = fused.empty() ? nullptr : fused.front();
    Location loc = op->getLoc();
    KernelBuilder kb(b, loc, kernel);
    FailureOr<Operands> o = operands(op, map, kb);
    if (failed(o))
      return failure();
    const Projection *p = &o->p;
    Value x = o->x, w = o->w;
    const int64_t rows = o->rows, vec = o->vec;
    const int64_t cpw = columnsPerWarp(*p, rows);
    VectorType vf32 = o->vf32, vw = o->vw, vx = o->vx;
    // x rows start 16-byte aligned when x has w's element type (k % vec == 0).
    const uint64_t xAlign =
        p->inputType == p->weightType ? 16
                                      : p->inputType.getIntOrFloatBitWidth() / 8;
    auto idx = [&](int64_t v) { return kb.index(v); };
    auto toF32 = [&](OpBuilder &nb, Value v, Type type) {
      return kb.extendTo(nb, v, type);
    };

    Value tid = kb.threadIdX();
    Value bid = kb.blockIdX();
    Value lane = arith::RemUIOp::create(b, loc, tid, idx(32));
    // Warp j of the grid computes columns j * cpw .. j * cpw + cpw - 1.
    Value n0 = arith::MulIOp::create(
        b, loc,
        arith::AddIOp::create(
            b, loc, arith::MulIOp::create(b, loc, bid, idx(kWarps)),
            arith::DivUIOp::create(b, loc, tid, idx(32))),
        idx(cpw));
    SmallVector<Value> ns{n0};
    for (int64_t c = 1; c < cpw; ++c)
      ns.push_back(arith::AddIOp::create(b, loc, n0, idx(c)));
    OpBuilder::InsertionGuard guard(b);
    if (p->n % (kWarps * cpw)) {
      Value inRange = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                            n0, idx(p->n));
      auto ifOp = scf::IfOp::create(b, loc, inRange, /*withElseRegion=*/false);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    }
    Value zero = arith::ConstantOp::create(b, loc, vf32,
                                           DenseElementsAttr::get(vf32, 0.0f));
    // Accumulators [column][batch row].
    SmallVector<Value> inits(cpw * rows, zero);
    Value kFirst = arith::MulIOp::create(b, loc, lane, idx(vec));
    // A warp covers 32 * V elements of a row per step. Up to 4 steps per
    // iteration, all their weight loads (cpw rows) issued before any FMA,
    // keep 64 bytes or more per lane in flight.
    const int64_t stride = 32 * vec;
    const int64_t unroll = p->k % (4 * stride) == 0   ? 4
                           : p->k % (2 * stride) == 0 ? 2
                                                      : 1;
    for (int64_t u = 1; u < unroll; ++u)
      idx(u * stride);
    auto loop = scf::ForOp::create(
        b, loc, kFirst, idx(p->k), idx(unroll * stride), inits,
        [&](OpBuilder &nb, Location l, Value k, ValueRange accs) {
          SmallVector<Value> ks;
          SmallVector<SmallVector<Value>> wf(cpw);
          for (int64_t u = 0; u < unroll; ++u)
            ks.push_back(u ? arith::AddIOp::create(nb, l, k, idx(u * stride))
                               .getResult()
                           : k);
          for (int64_t u = 0; u < unroll; ++u)
            for (int64_t c = 0; c < cpw; ++c) {
              Value wv = vector::LoadOp::create(nb, l, vw, w,
                                                ValueRange{ns[c], ks[u]},
                                                /*nontemporal=*/false,
                                                llvm::MaybeAlign(16));
              wf[c].push_back(toF32(nb, wv, vf32));
            }
          SmallVector<Value> next(accs.begin(), accs.end());
          for (int64_t u = 0; u < unroll; ++u)
            for (int64_t r = 0; r < rows; ++r) {
              Value xv = toF32(nb,
                               vector::LoadOp::create(
                                   nb, l, vx, x, o->xAt(kb, r, ks[u]),
                                   /*nontemporal=*/false,
                                   llvm::MaybeAlign(xAlign)),
                               vf32);
              for (int64_t c = 0; c < cpw; ++c)
                next[c * rows + r] = vector::FMAOp::create(
                    nb, l, vf32, xv, wf[c][u], next[c * rows + r]);
            }
          scf::YieldOp::create(nb, l, next);
        });
    SmallVector<Value> totals;
    for (Value acc : loop.getResults()) {
      Value sum = vector::ReductionOp::create(b, loc,
                                              vector::CombiningKind::ADD, acc);
      totals.push_back(gpu::SubgroupReduceOp::create(
          b, loc, sum, gpu::AllReduceOperation::ADD, /*uniform=*/true));
    }
    Value leader = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                         lane, idx(0));
    auto write = scf::IfOp::create(b, loc, leader, /*withElseRegion=*/false);
    b.setInsertionPointToStart(&write.getThenRegion().front());
    for (int64_t c = 0; c < cpw; ++c)
      for (int64_t r = 0; r < rows; ++r) {
        SmallVector<Value, 3> at = o->xAt(kb, r, ns[c]);
        Value old = init ? init
                         : memref::LoadOp::create(b, loc, o->out, at).getResult();
        storeResult(b, loc, op, epilogue, map,
                    arith::AddFOp::create(b, loc, old, totals[c * rows + r]),
                    at);
      }

    LaunchShape shape;
    shape.grid[0] = llvm::divideCeil(p->n, kWarps * cpw);
    shape.block[0] = kThreads;
    return shape;
  }
};

/// argmax_rows: tfm.argmax's reduction (value and first index of the largest
/// element of each row of [B, S, V], strict `>`, starting from the values
/// already in the two outputs), a block of 1024 threads per row. Thread t
/// scans elements t, t + 1024, ... (coalesced), warps combine (value, index)
/// pairs with
/// gpu.shuffle xor, workgroup memory combines the 32 warps, and thread 0
/// folds the row's winner into the outputs as the sequential scan would:
/// it replaces them only when strictly greater.
class ArgmaxRows final : public KernelRecipe {
public:
  static constexpr int64_t kThreads = 1024;

  StringRef name() const override { return "argmax_rows"; }

  struct Shape {
    int64_t batch, seq, vocab;
  };

  static std::optional<Shape> match(Operation *op) {
    auto g = dyn_cast<linalg::GenericOp>(op);
    if (!g || !g.hasPureBufferSemantics() || g.getNumDpsInputs() != 1 ||
        g.getNumDpsInits() != 2)
      return std::nullopt;
    using utils::IteratorType;
    if (g.getIteratorTypesArray() !=
        SmallVector<IteratorType>{IteratorType::parallel,
                                  IteratorType::parallel,
                                  IteratorType::reduction})
      return std::nullopt;
    MLIRContext *ctx = op->getContext();
    auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    SmallVector<AffineMap> expected{
        AffineMap::get(3, 0, {d(0), d(1), d(2)}, ctx),
        AffineMap::get(3, 0, {d(0), d(1)}, ctx),
        AffineMap::get(3, 0, {d(0), d(1)}, ctx)};
    if (g.getIndexingMapsArray() != expected)
      return std::nullopt;
    auto in = dyn_cast<MemRefType>(g.getDpsInputs()[0].getType());
    auto best = dyn_cast<MemRefType>(g.getDpsInits()[0].getType());
    auto index = dyn_cast<MemRefType>(g.getDpsInits()[1].getType());
    if (!in || !best || !index || !in.hasStaticShape() ||
        !best.getElementType().isF32() || !index.getElementType().isInteger(64) ||
        !isa<FloatType>(in.getElementType()) ||
        in.getDimSize(2) >= (int64_t(1) << 31))
      return std::nullopt;
    // yield select(x > best, x, best), select(x > best, index(2), idx).
    Block &body = g.getRegion().front();
    auto yield = cast<linalg::YieldOp>(body.getTerminator());
    auto selV = yield.getOperand(0).getDefiningOp<arith::SelectOp>();
    auto selI = yield.getOperand(1).getDefiningOp<arith::SelectOp>();
    if (!selV || !selI || selV.getCondition() != selI.getCondition() ||
        selV.getFalseValue() != body.getArgument(1) ||
        selI.getFalseValue() != body.getArgument(2))
      return std::nullopt;
    auto cmp = selV.getCondition().getDefiningOp<arith::CmpFOp>();
    if (!cmp || cmp.getPredicate() != arith::CmpFPredicate::OGT ||
        cmp.getLhs() != selV.getTrueValue() ||
        cmp.getRhs() != body.getArgument(1) ||
        withoutExt(cmp.getLhs()) != body.getArgument(0))
      return std::nullopt;
    auto cast = selI.getTrueValue().getDefiningOp<arith::IndexCastOp>();
    auto linalgIndex =
        cast ? cast.getIn().getDefiningOp<linalg::IndexOp>() : linalg::IndexOp();
    if (!linalgIndex || linalgIndex.getDim() != 2)
      return std::nullopt;
    return Shape{in.getDimSize(0), in.getDimSize(1), in.getDimSize(2)};
  }

  bool matches(Operation *op) const override { return match(op).has_value(); }

  FailureOr<LaunchShape> build(OpBuilder &b, Operation *op, IRMapping &map,
                               gpu::GPUFuncOp kernel, Value init,
                               ArrayRef<Operation *> fused) const override {
    Operation *epilogue = fused.empty() ? nullptr : fused.front();
    std::optional<Shape> shape = match(op);
    if (!shape)
      return failure();
    auto g = cast<linalg::GenericOp>(op);
    Location loc = op->getLoc();
    Value in = map.lookup(g.getDpsInputs()[0]);
    Value bestOut = map.lookup(g.getDpsInits()[0]);
    Value indexOut = map.lookup(g.getDpsInits()[1]);
    Type f32 = b.getF32Type(), i32 = b.getI32Type();
    const int64_t warps = kThreads / 32;
    KernelBuilder kb(b, loc, kernel);
    auto idx = [&](int64_t v) { return kb.index(v); };
    auto i32c = [&](int64_t v) {
      return arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(v));
    };
    // (v, i) beats (bv, bi) when larger, or equal with a smaller index.
    auto better = [&](OpBuilder &nb, Value v, Value i, Value bv, Value bi) {
      Value gt = arith::CmpFOp::create(nb, loc, arith::CmpFPredicate::OGT, v, bv);
      Value eq = arith::CmpFOp::create(nb, loc, arith::CmpFPredicate::OEQ, v, bv);
      Value lt = arith::CmpIOp::create(nb, loc, arith::CmpIPredicate::slt, i, bi);
      return arith::OrIOp::create(nb, loc, gt,
                                  arith::AndIOp::create(nb, loc, eq, lt));
    };

    Value tid = kb.threadIdX();
    Value row = kb.blockIdX();
    Value bi = arith::DivUIOp::create(b, loc, row, idx(shape->seq));
    Value si = arith::RemUIOp::create(b, loc, row, idx(shape->seq));
    Value negInf = arith::ConstantOp::create(
        b, loc, b.getF32FloatAttr(-std::numeric_limits<float>::infinity()));
    Value noIndex = i32c(std::numeric_limits<int32_t>::max());
    auto scan = scf::ForOp::create(
        b, loc, tid, idx(shape->vocab), idx(kThreads),
        ValueRange{negInf, noIndex},
        [&](OpBuilder &nb, Location l, Value k, ValueRange acc) {
          Value x = memref::LoadOp::create(nb, l, in, ValueRange{bi, si, k});
          if (x.getType() != f32)
            x = arith::ExtFOp::create(nb, l, f32, x);
          // Ascending k: strict `>` keeps the thread's first maximum.
          Value gt =
              arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT, x, acc[0]);
          Value k32 = arith::IndexCastOp::create(nb, l, i32, k);
          scf::YieldOp::create(
              nb, l,
              ValueRange{arith::SelectOp::create(nb, l, gt, x, acc[0]),
                         arith::SelectOp::create(nb, l, gt, k32, acc[1])});
        });
    Value v = scan.getResult(0), i = scan.getResult(1);
    Value width = i32c(32);
    for (int64_t offset = 16; offset >= 1; offset /= 2) {
      Value off = i32c(offset);
      Value ov = gpu::ShuffleOp::create(b, loc, v, off, width,
                                        gpu::ShuffleMode::XOR)
                     .getShuffleResult();
      Value oi = gpu::ShuffleOp::create(b, loc, i, off, width,
                                        gpu::ShuffleMode::XOR)
                     .getShuffleResult();
      Value take = better(b, ov, oi, v, i);
      v = arith::SelectOp::create(b, loc, take, ov, v);
      i = arith::SelectOp::create(b, loc, take, oi, i);
    }
    Value smemV = kb.workgroupBuffer({warps}, f32);
    Value smemI = kb.workgroupBuffer({warps}, i32);
    Value warp = arith::DivUIOp::create(b, loc, tid, idx(32));
    Value first = arith::CmpIOp::create(
        b, loc, arith::CmpIPredicate::eq,
        arith::RemUIOp::create(b, loc, tid, idx(32)), idx(0));
    auto write = scf::IfOp::create(b, loc, first, /*withElseRegion=*/false);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&write.getThenRegion().front());
      memref::StoreOp::create(b, loc, v, smemV, ValueRange{warp});
      memref::StoreOp::create(b, loc, i, smemI, ValueRange{warp});
    }
    gpu::BarrierOp::create(b, loc);
    Value leader = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                         tid, idx(0));
    auto finish = scf::IfOp::create(b, loc, leader, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&finish.getThenRegion().front());
    Value bv = memref::LoadOp::create(b, loc, smemV, ValueRange{idx(0)});
    Value bx = memref::LoadOp::create(b, loc, smemI, ValueRange{idx(0)});
    for (int64_t w = 1; w < warps; ++w) {
      Value wv = memref::LoadOp::create(b, loc, smemV, ValueRange{idx(w)});
      Value wi = memref::LoadOp::create(b, loc, smemI, ValueRange{idx(w)});
      Value take = better(b, wv, wi, bv, bx);
      bv = arith::SelectOp::create(b, loc, take, wv, bv);
      bx = arith::SelectOp::create(b, loc, take, wi, bx);
    }
    // Fold into the outputs like the sequential scan: only a strictly larger
    // value replaces what they hold.
    Value oldV = memref::LoadOp::create(b, loc, bestOut, ValueRange{bi, si});
    Value wins =
        arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, bv, oldV);
    auto replace = scf::IfOp::create(b, loc, wins, /*withElseRegion=*/false);
    b.setInsertionPointToStart(&replace.getThenRegion().front());
    memref::StoreOp::create(b, loc, bv, bestOut, ValueRange{bi, si});
    memref::StoreOp::create(
        b, loc, arith::ExtSIOp::create(b, loc, b.getI64Type(), bx), indexOut,
        ValueRange{bi, si});

    LaunchShape launch;
    launch.grid[0] = shape->batch * shape->seq;
    launch.block[0] = kThreads;
    return launch;
  }
};

} // namespace

ArrayRef<const KernelRecipe *> recipes() {
  static const GemvKN gemvKN;
  static const GemvNK gemvNK;
  static const ArgmaxRows argmaxRows;
  static const KernelRecipe *const all[] = {&gemvKN, &gemvNK, &argmaxRows,
                                            &attentionDecode()};
  return all;
}

const KernelRecipe *lookup(StringRef name) {
  for (const KernelRecipe *recipe : recipes())
    if (recipe->name() == name)
      return recipe;
  return nullptr;
}

} // namespace kiln::kernels
