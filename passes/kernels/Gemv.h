//===- Gemv.h - What the GEMV kernel recipes share ----------------*- C++
//-*-===//
//
// The decode projection out[b, s, n] += x[b, s, k] * w (few rows b * s) that
// gemv_kn (GemvKN.cpp, w [in, out]) and gemv_nk (GemvNK.cpp, w [out, in])
// implement: its match, its operands inside the kernel, and the final store
// (into the output, or through an elementwise epilogue).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_KERNELS_GEMV_H
#define KILN_PASSES_KERNELS_GEMV_H

#include "passes/kernels/KernelBuilder.h"
#include "passes/kernels/KernelLibrary.h"
#include "passes/lowering/gpu/LoopNests.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/Support/MathExtras.h"

namespace kiln::kernels::gemv {

using namespace mlir;

/// The static sizes of a projection out[b, s, n] += x[b, s, k] * w[.., ..].
struct Projection {
  int64_t batch = 0, seq = 0, k = 0, n = 0;
  Type weightType, inputType;
};

/// Matches the linalg.generic that --kiln-lower-tfm-to-linalg makes of
/// tfm.linear and tfm.logits, bufferized (see Gemv.cpp).
std::optional<Projection> matchProjection(Operation *op, bool inOut);

/// The sum of squares of x[b, s, :] that the lowering of a tfm.linear with
/// `rms_norm_epsilon` computes before the projection (kRegionAttr step
/// "sum_squares"), its accumulator's fill (may be null) and its output
/// buffer ([B, S] f32), which the projection's finishing op reads.
struct RowNormOps {
  linalg::GenericOp sum;
  Operation *fill = nullptr;
  Value squares;
};
/// The row norm of the projection `op` (a bufferized projection generic):
/// a "sum_squares" generic over `op`'s x, before `op` in its block, whose
/// output a generic after `op` reads together with `op`'s output.
std::optional<RowNormOps> rowNormOf(Operation *op);

class GemvRecipe : public KernelRecipe {
public:
  static constexpr int64_t kMaxRows = 8; // batch * seq
  /// Rows (batch * seq) above which a 16-bit float projection goes to the
  /// tensor cores (matmul_mma) rather than a GEMV: a GEMV keeps a warp's
  /// accumulators for every row in registers, and at 8 rows a SwiGLU
  /// projection's (gate and up) spill (the 8B shape's gate/up took 4.5 ms a
  /// call at batch 8; matmul_mma 0.14 ms at batch 32).
  static constexpr int64_t kMaxRowsBeforeMma = 4;

  /// Weight elements per 16-byte load.
  static int64_t vectorWidth(Type weight) {
    return 16 / (weight.getIntOrFloatBitWidth() / 8);
  }

  Value fusableInit(Operation *op) const override {
    return cast<linalg::GenericOp>(op).getDpsInits()[0];
  }

  /// Any elementwise consumer of the [B, S, N] result that reads it once
  /// with the identity map and writes a buffer of its shape, its other
  /// operands read through projections of the identity (a bias [N], a row
  /// norm's sum of squares [B, S]): the final store computes it (the f16
  /// conversion of the accumulator, the RMS scale, a residual add). With
  /// supportsColumnOffsets(), also one that reads several column ranges of
  /// the result as subviews (columnOffset: SwiGLU's gate and up halves) and
  /// writes [B, S, W]: each warp then computes the columns n + c of every
  /// offset c for its output columns n.
  bool acceptsEpilogue(Operation *op, Operation *consumer) const override {
    auto g = dyn_cast<linalg::GenericOp>(consumer);
    Value out = cast<linalg::GenericOp>(op).getDpsInits()[0];
    if (!g || !g.hasPureBufferSemantics() || g.getNumDpsInits() != 1 ||
        g.getNumParallelLoops() != g.getNumLoops() ||
        columnOffset(g.getDpsInits()[0], out))
      return false;
    auto shape = cast<MemRefType>(out.getType()).getShape();
    auto result = dyn_cast<MemRefType>(g.getDpsInits()[0].getType());
    if (!result || !result.hasStaticShape() || result.getRank() != 3 ||
        result.getShape().take_front(2) != shape.take_front(2))
      return false;
    SmallVector<int64_t> offsets;
    for (OpOperand &operand : g->getOpOperands()) {
      Value v = operand.get();
      auto t = dyn_cast<MemRefType>(v.getType());
      AffineMap m = g.getMatchingIndexingMap(&operand);
      if (!t || !t.hasStaticShape())
        return false;
      if (std::optional<int64_t> c = columnOffset(v, out)) {
        if (!m.isIdentity() || t.getShape() != result.getShape() ||
            llvm::is_contained(offsets, *c))
          return false;
        offsets.push_back(*c);
        continue;
      }
      if (auto view = v.getDefiningOp<ViewLikeOpInterface>();
          view && view.getViewSource() == out)
        return false; // some other view of the result
      if (g.isDpsInit(&operand) ? !m.isIdentity() : !m.isProjectedPermutation())
        return false;
    }
    if (offsets.empty())
      return false;
    bool shifted =
        offsets.size() > 1 || offsets[0] != 0 || result.getShape() != shape;
    if (shifted && !supportsColumnOffsets())
      return false;
    return llvm::all_of(g.getRegion().front().without_terminator(),
                        [](Operation &o) { return isMemoryEffectFree(&o); });
  }

  /// 0 when `v` is `out`, c when it is a subview of `out` ([B, S, N]) taking
  /// columns [c, c + W) of every row (static offsets, unit strides); else
  /// nothing.
  static std::optional<int64_t> columnOffset(Value v, Value out) {
    if (v == out)
      return 0;
    auto sv = v.getDefiningOp<memref::SubViewOp>();
    if (!sv || sv.getSource() != out || !sv.hasUnitStride())
      return std::nullopt;
    ArrayRef<int64_t> offsets = sv.getStaticOffsets();
    ArrayRef<int64_t> sizes = sv.getStaticSizes();
    auto shape = cast<MemRefType>(out.getType()).getShape();
    if (offsets.size() != 3 || offsets[0] != 0 || offsets[1] != 0 ||
        ShapedType::isDynamic(offsets[2]) || sizes.size() != 3 ||
        sizes[0] != shape[0] || sizes[1] != shape[1])
      return std::nullopt;
    return offsets[2];
  }

  /// The projection's f32 accumulator when the kernel never touches it: its
  /// elementwise epilogue is fused (the kernel stores the epilogue's result)
  /// and its zero fill is the kernel's initial value (the op with effects
  /// right before `op`, group members aside: kiln-map-loops-to-gpu folds it
  /// into the launch), nothing else using it. Logits [rows, vocab] in f32
  /// are the largest buffer of a prefill otherwise.
  SmallVector<Value> scratch(Operation *op) const override {
    Value out = cast<linalg::GenericOp>(op).getDpsInits()[0];
    if (!out.getDefiningOp<memref::AllocOp>())
      return {};
    SmallVector<Operation *> fused = fusedOps(op);
    Operation *epilogue = epilogueIn(op, fused);
    if (!epilogue)
      return {};
    Operation *prev = op->getPrevNode();
    auto isFused = [](Operation *o) {
      auto tag = o->getAttrOfType<StringAttr>(kKernelAttr);
      return tag && tag.getValue() == kFused;
    };
    while (prev && (isa<memref::AllocOp>(prev) || isFused(prev) ||
                    (isMemoryEffectFree(prev) && prev->getNumRegions() == 0)))
      prev = prev->getPrevNode();
    // A linalg.fill, or the loop nest it has become.
    std::optional<gpu_mapping::Fill> fill =
        prev ? gpu_mapping::matchFill(prev) : std::nullopt;
    if (!fill || fill->memref != out)
      return {};
    for (Operation *user : out.getUsers()) {
      if (user == op || user == epilogue || prev->isAncestor(user) ||
          isa<memref::DeallocOp>(user))
        continue;
      if (isa<memref::SubViewOp>(user) &&
          llvm::all_of(user->getUsers(),
                       [&](Operation *u) { return u == epilogue; }))
        continue;
      return {};
    }
    return {out};
  }

  /// Everything the kernel for `op` computes besides `op`: the row norm it
  /// takes (when the recipe fusesRowNorm()).
  SmallVector<Operation *> members(Operation *op) const override {
    std::optional<RowNormOps> norm =
        fusesRowNorm() && matches(op) ? rowNormOf(op) : std::nullopt;
    if (!norm)
      return {};
    SmallVector<Operation *> ops;
    if (norm->fill)
      ops.push_back(norm->fill);
    ops.push_back(norm->sum);
    return ops;
  }

protected:
  /// Whether the kernel computes a row norm's sum of squares from the x it
  /// loads (see rowNormOf); the others leave it to its own kernel.
  virtual bool fusesRowNorm() const { return false; }
  /// Whether the kernel can compute several column ranges of the result per
  /// output column (see acceptsEpilogue).
  virtual bool supportsColumnOffsets() const { return false; }

  /// Warps per column (split-K): with few columns (o_proj, down, q/k/v of
  /// a 1B-sized model: 2048-3072) one warp per column leaves the GPU with
  /// ~16 warps per SM, each with a short loop: not enough loads in flight to
  /// hide DRAM latency. S warps then share a column, each reading one S-th
  /// of its row (`length` elements or bytes, read `step` at a time by the
  /// warp), until there are ~8192 warps (their sums meet in workgroup
  /// memory). `maxSlices` (when not 0) caps S.
  static int64_t splitK(int64_t width, int64_t cpw, int64_t length,
                        int64_t step, int64_t warpsPerBlock,
                        int64_t maxSlices = 0) {
    int64_t slices = 1;
    const int64_t most =
        maxSlices ? std::min(maxSlices, warpsPerBlock) : warpsPerBlock;
    while (slices < most && (width / cpw) * slices < 8192 &&
           length % (2 * slices * step) == 0 &&
           width % ((warpsPerBlock / (2 * slices)) * cpw) == 0)
      slices *= 2;
    return slices;
  }

  /// Warp steps per loop iteration over a slice of `length` (a multiple of
  /// the count when it can be): up to 4, all their loads issued before any
  /// FMA, keep 64 bytes or more per lane in flight (8 measured no faster on
  /// the H200).
  static int64_t unrollFor(int64_t length, int64_t step) {
    int64_t unroll = 1;
    while (unroll < 4 && length % (2 * unroll * step) == 0)
      unroll *= 2;
    return unroll;
  }

  /// The offsets `first`, `first + stride`, ... of `steps` warp steps along
  /// K: where one loop iteration's loads go (all issued before any FMA).
  static SmallVector<Value> stepOffsets(OpBuilder &b, Location loc,
                                        KernelBuilder &kb, Value first,
                                        int64_t steps, int64_t stride) {
    SmallVector<Value> offsets;
    for (int64_t u = 0; u < steps; ++u)
      offsets.push_back(
          u ? arith::AddIOp::create(b, loc, first, kb.index(u * stride))
                  .getResult()
            : first);
    return offsets;
  }

  /// One iteration of a GEMV's loop along K at `k`: its weight loads first
  /// (all issued before any arithmetic), then the arithmetic into `accs`;
  /// returns the next accumulators.
  using Iteration = llvm::function_ref<SmallVector<Value>(
      OpBuilder &, Location, Value k, ValueRange accs)>;

  /// The loop over [first, end) in steps of `step`, from `inits`; returns the
  /// final accumulators. With `peel` (every lane has at least one iteration)
  /// the first iteration is peeled: its weight loads come first in the
  /// kernel, before anything reads memory another kernel writes, so that
  /// with programmatic dependent launch (kiln-dependent-launch puts the wait
  /// after them) they overlap the end of the kernel before.
  static ValueRange loopAlongK(OpBuilder &b, Location loc, KernelBuilder &kb,
                               Value first, Value end, int64_t step, bool peel,
                               ValueRange inits, Iteration iteration) {
    Value start = first;
    SmallVector<Value> accs(inits.begin(), inits.end());
    if (peel) {
      accs = iteration(b, loc, first, inits);
      start = arith::AddIOp::create(b, loc, first, kb.index(step));
    }
    auto loop = scf::ForOp::create(
        b, loc, start, end, kb.index(step), accs,
        [&](OpBuilder &nb, Location l, Value k, ValueRange current) {
          scf::YieldOp::create(nb, l, iteration(nb, l, k, current));
        });
    return loop.getResults();
  }

  /// The output columns of the kernel for projection `op` (N wide): its
  /// epilogue's W columns, and for each the projection columns n + c, c in
  /// `offsets` ({0} without an epilogue reading column ranges).
  struct OutputColumns {
    int64_t width = 0;
    SmallVector<int64_t> offsets{0};
  };
  static OutputColumns outputColumns(Operation *op, Operation *epilogue,
                                     int64_t n) {
    OutputColumns oc;
    oc.width = n;
    if (!epilogue)
      return oc;
    auto g = cast<linalg::GenericOp>(epilogue);
    Value out = cast<linalg::GenericOp>(op).getDpsInits()[0];
    oc.width = cast<MemRefType>(g.getDpsInits()[0].getType()).getDimSize(2);
    oc.offsets.clear();
    for (Value v : g.getDpsInputs())
      if (std::optional<int64_t> c = columnOffset(v, out))
        oc.offsets.push_back(*c);
    return oc;
  }

  /// The projection columns a warp computes: n + c for each offset c (outer)
  /// and each of its output columns n (inner).
  static SmallVector<Value> projectionColumns(OpBuilder &b, Location loc,
                                              KernelBuilder &kb,
                                              ArrayRef<Value> ns,
                                              ArrayRef<int64_t> offsets) {
    SmallVector<Value> cols;
    for (int64_t c : offsets)
      for (Value n : ns)
        cols.push_back(
            c ? arith::AddIOp::create(b, loc, n, kb.index(c)).getResult() : n);
    return cols;
  }

  /// The epilogue among `fused` (fusedOps(op)): what follows the members.
  Operation *epilogueIn(Operation *op, ArrayRef<Operation *> fused) const {
    return fused.size() > members(op).size() ? fused.back() : nullptr;
  }

  /// Stores the finished accumulator value `acc` of element `at`: into the
  /// projection's output, or through the epilogue into the epilogue's.
  /// `known` holds values the kernel has in registers for the element
  /// (a row norm's sum of squares), by the buffer the epilogue would read.
  static void storeResult(OpBuilder &b, Location loc, Operation *op,
                          Operation *epilogue, IRMapping &map, Value acc,
                          ValueRange at,
                          const llvm::SmallDenseMap<Value, Value> &known =
                              llvm::SmallDenseMap<Value, Value>()) {
    storeResult(b, loc, op, epilogue, map, ArrayRef<Value>{acc}, {0}, at,
                known);
  }
  /// The same for an epilogue that reads the result at several column
  /// offsets: `accs[i]` is the value at column n + offsets[i] for the
  /// output element `at` = (b, s, n).
  static void storeResult(OpBuilder &b, Location loc, Operation *op,
                          Operation *epilogue, IRMapping &map,
                          ArrayRef<Value> accs, ArrayRef<int64_t> offsets,
                          ValueRange at,
                          const llvm::SmallDenseMap<Value, Value> &known =
                              llvm::SmallDenseMap<Value, Value>()) {
    Value out = cast<linalg::GenericOp>(op).getDpsInits()[0];
    if (!epilogue) {
      memref::StoreOp::create(b, loc, accs[0], map.lookup(out), at);
      return;
    }
    auto g = cast<linalg::GenericOp>(epilogue);
    Block &body = g.getRegion().front();
    // Values the body captures from above were rematerialised in `map`.
    IRMapping inner = map;
    for (auto [operand, arg] :
         llvm::zip(g->getOpOperands(), body.getArguments())) {
      if (arg.use_empty())
        continue;
      Value v = operand.get();
      if (std::optional<int64_t> c = columnOffset(v, out)) {
        inner.map(arg, accs[llvm::find(offsets, *c) - offsets.begin()]);
      } else if (Value k = known.lookup(v)) {
        inner.map(arg, k);
      } else {
        SmallVector<Value, 3> where;
        for (AffineExpr e : g.getMatchingIndexingMap(&operand).getResults())
          where.push_back(at[cast<AffineDimExpr>(e).getPosition()]);
        inner.map(
            arg,
            memref::LoadOp::create(b, loc, map.lookup(v), where).getResult());
      }
    }
    for (Operation &o : body.without_terminator())
      b.clone(o, inner);
    auto yield = cast<linalg::YieldOp>(body.getTerminator());
    memref::StoreOp::create(b, loc, inner.lookup(yield.getOperand(0)),
                            map.lookup(g.getDpsInits()[0]), at);
  }

protected:
  /// The thread's lane and the output columns its warp computes: warp j of
  /// the grid (`warpsPerBlock` a block) takes columns j * cpw .. j * cpw +
  /// cpw - 1. When the warps outnumber the `n` columns, the builder is left
  /// inside an scf.if that the spare warps skip (the caller holds an
  /// InsertionGuard). With `slices` S > 1 (split-K), the S warps
  /// j * S .. j * S + S - 1 of a block share columns, each taking one S-th
  /// of the reduction (`slice`); there must be no spare warps.
  struct WarpColumns {
    Value lane;
    SmallVector<Value> ns;
    Value slice, group; // with slices > 1: the warp's slice and column group
    int64_t slices = 1, groups = 0;
  };
  static WarpColumns warpColumns(OpBuilder &b, Location loc, KernelBuilder &kb,
                                 int64_t n, int64_t cpw, int64_t warpsPerBlock,
                                 int64_t slices = 1) {
    auto idx = [&](int64_t v) { return kb.index(v); };
    Value tid = kb.threadIdX();
    Value bid = kb.blockIdX();
    WarpColumns wc;
    wc.lane = arith::RemUIOp::create(b, loc, tid, idx(32));
    Value warp = arith::DivUIOp::create(b, loc, tid, idx(32));
    const int64_t groups = warpsPerBlock / slices;
    if (slices > 1) {
      wc.slices = slices;
      wc.groups = groups;
      wc.slice = arith::RemUIOp::create(b, loc, warp, idx(slices));
      warp = arith::DivUIOp::create(b, loc, warp, idx(slices));
      wc.group = warp;
    }
    Value n0 = arith::MulIOp::create(
        b, loc,
        arith::AddIOp::create(
            b, loc, arith::MulIOp::create(b, loc, bid, idx(groups)), warp),
        idx(cpw));
    wc.ns.push_back(n0);
    for (int64_t c = 1; c < cpw; ++c)
      wc.ns.push_back(arith::AddIOp::create(b, loc, n0, idx(c)));
    if (n % (groups * cpw)) {
      assert(slices == 1 && "split-K needs whole blocks");
      Value inRange =
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, n0, idx(n));
      auto ifOp = scf::IfOp::create(b, loc, inRange, /*withElseRegion=*/false);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    }
    return wc;
  }

  /// The sum of a lane's partial sums `acc` (a vector) over the warp.
  static Value warpSum(OpBuilder &b, Location loc, Value acc) {
    Value sum =
        vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD, acc);
    return gpu::SubgroupReduceOp::create(b, loc, sum,
                                         gpu::AllReduceOperation::ADD,
                                         /*uniform=*/true);
  }

  /// The row norm a kernel computes (members(op)): each lane's partial sums
  /// of x^2 per batch row, added across the warp by reduceAndStore.
  struct RowNormSums {
    std::optional<RowNormOps> ops;
    SmallVector<Value> partial; // [batch row] vectors
    /// Or the block's sums already ([batch row] f32, in every thread): the
    /// kernel staged x once per block and added its squares there.
    SmallVector<Value> total;
  };

  /// Adds each lane's partial sums `accs` ([column][batch row] vectors)
  /// across the warp, and lane 0 stores element at(r, n) of each: the old
  /// value (or the fused fill value `init`) plus the sum, through the
  /// epilogue when there is one. With a row norm, the warp of column 0 also
  /// stores each row's sum of squares, and the epilogue reads it from
  /// registers.
  static void
  reduceAndStore(OpBuilder &b, Location loc, KernelBuilder &kb, Operation *op,
                 Operation *epilogue, IRMapping &map, ValueRange accs,
                 const WarpColumns &wc, int64_t rows, Value out, Value init,
                 function_ref<SmallVector<Value, 3>(int64_t r, Value n)> at,
                 const RowNormSums &norm = {},
                 ArrayRef<int64_t> offsets = {0}) {
    SmallVector<Value> totals, squares;
    for (Value acc : accs)
      totals.push_back(warpSum(b, loc, acc));
    for (Value partial : norm.partial)
      squares.push_back(warpSum(b, loc, partial));
    Value leader = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                         wc.lane, kb.index(0));
    if (wc.slices > 1) {
      // Split-K: the warps of slices 1.. leave their sums in workgroup
      // memory; slice 0's adds them and stores.
      const int64_t nv = totals.size() + squares.size();
      Value smem =
          kb.workgroupBuffer({wc.groups * wc.slices * nv}, b.getF32Type());
      Value base = arith::MulIOp::create(
          b, loc,
          arith::AddIOp::create(
              b, loc,
              arith::MulIOp::create(b, loc, wc.group, kb.index(wc.slices)),
              wc.slice),
          kb.index(nv));
      Value notFirst = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                             wc.slice, kb.index(0));
      auto put = scf::IfOp::create(
          b, loc, arith::AndIOp::create(b, loc, leader, notFirst),
          /*withElseRegion=*/false);
      {
        OpBuilder::InsertionGuard inner(b);
        b.setInsertionPointToStart(&put.getThenRegion().front());
        int64_t i = 0;
        for (Value v : llvm::concat<Value>(totals, squares))
          memref::StoreOp::create(
              b, loc, v, smem,
              ValueRange{arith::AddIOp::create(b, loc, base, kb.index(i++))});
      }
      gpu::BarrierOp::create(b, loc);
      leader = arith::AndIOp::create(
          b, loc, leader,
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, wc.slice,
                                kb.index(0)));
      // Only the leader uses the sums, but every lane may load them (from
      // its group's slots: in bounds).
      Value first =
          arith::MulIOp::create(b, loc, wc.group, kb.index(wc.slices * nv));
      auto addSlices = [&](Value &v, int64_t i) {
        for (int64_t sl = 1; sl < wc.slices; ++sl)
          v = arith::AddFOp::create(
              b, loc, v,
              memref::LoadOp::create(
                  b, loc, smem,
                  ValueRange{arith::AddIOp::create(b, loc, first,
                                                   kb.index(sl * nv + i))}));
      };
      int64_t i = 0;
      for (Value &v : totals)
        addSlices(v, i++);
      for (Value &v : squares)
        addSlices(v, i++);
    }
    if (!norm.total.empty())
      squares.assign(norm.total.begin(), norm.total.end());
    auto write = scf::IfOp::create(b, loc, leader, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&write.getThenRegion().front());
    if (norm.ops) {
      Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                          wc.ns[0], kb.index(0));
      auto once = scf::IfOp::create(b, loc, first, /*withElseRegion=*/false);
      OpBuilder::InsertionGuard inner(b);
      b.setInsertionPointToStart(&once.getThenRegion().front());
      for (int64_t r = 0; r < rows; ++r) {
        SmallVector<Value, 3> where = at(r, kb.index(0));
        memref::StoreOp::create(b, loc, squares[r],
                                map.lookup(norm.ops->squares),
                                ValueRange{where[0], where[1]});
      }
    }
    // totals: [offset][column][row].
    const int64_t cols = wc.ns.size();
    for (auto [c, n] : llvm::enumerate(wc.ns))
      for (int64_t r = 0; r < rows; ++r) {
        SmallVector<Value, 3> where = at(r, n);
        SmallVector<Value> values;
        for (auto [i, off] : llvm::enumerate(offsets)) {
          Value old = init;
          if (!old) {
            SmallVector<Value, 3> from = where;
            if (off)
              from[2] = arith::AddIOp::create(b, loc, n, kb.index(off));
            old = memref::LoadOp::create(b, loc, out, from);
          }
          values.push_back(arith::AddFOp::create(
              b, loc, old, totals[(i * cols + c) * rows + r]));
        }
        llvm::SmallDenseMap<Value, Value> known;
        if (norm.ops)
          known[norm.ops->squares] = squares[r];
        storeResult(b, loc, op, epilogue, map, values, offsets, where, known);
      }
  }

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

} // namespace kiln::kernels::gemv

#endif // KILN_PASSES_KERNELS_GEMV_H
