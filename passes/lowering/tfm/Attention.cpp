//===- Attention.cpp - tfm.kv_append, tfm.attention
//-------------------------===//
//
// The KV-cache scatter and grouped-query causal attention; the attention's
// linalg steps carry kiln.region so that a GPU kernel can take them whole.
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "passes/lowering/tfm/LowerTfm.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <limits>

namespace kiln::tfm_lowering {
namespace {

/// Paged: the block id (i32) that row `bi` of `table` gives position `t`
/// (entry t / `bs`), and whether it names one of the pool's `numBlocks`.
std::pair<Value, Value> blockOf(OpBuilder &b, Location loc, Value table,
                                Value bi, Value t, Value bs,
                                int64_t numBlocks) {
  Value block = tensor::ExtractOp::create(
      b, loc, table, ValueRange{bi, arith::DivUIOp::create(b, loc, t, bs)});
  auto i32 = [&](int64_t v) -> Value {
    return arith::ConstantOp::create(
        b, loc, b.getI32IntegerAttr(static_cast<int32_t>(v)));
  };
  Value inPool = arith::AndIOp::create(
      b, loc,
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, block, i32(0)),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, block,
                            i32(numBlocks)));
  return {block, inPool};
}

/// forall b, s: if 0 <= p < max_seq: cache[b, :, p, :] = value[b, s, :].
///
/// The iterations write distinct positions, so they are an scf.forall (a GPU
/// runs them in parallel). Its terminator inserts a slice of `rows = valid ?
/// 1 : 0` rows at `valid ? p : 0`: nothing for a position outside the cache
/// (padding, p < 0), so the write is unconditional. (Its loops' bound,
/// `select(valid, 1, 0)`, becomes `scf.if valid` around a loop of 1 in
/// kiln-lower-linalg-to-loops.) For a chunk of tokens (prefill) the forall
/// also runs over the KV heads and head_dim, an element per iteration, so
/// that a GPU copies the chunk with a thread per element instead of a thread
/// per token; so does a batch of sequences (a thread per batch row copying
/// its row took ~32 us a layer on the 8B shape). One token of one sequence
/// keeps a row per iteration, the form attention_decode takes into its
/// kernel.
struct LowerKvAppend : TfmLowering<tfm::KvAppendOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::KvAppendOp op,
                         PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType cacheType = op.getType();
    RankedTensorType valueType = op.getValue().getType();
    Type element = valueType.getElementType();
    int64_t kvHeads = cacheType.getDimSize(1), maxSeq = cacheType.getDimSize(2),
            headDim = cacheType.getDimSize(3);
    Value value = op.getValue(), positions = op.getPositions();
    // Paged: positions reach max_blocks * block_size; the row is a block.
    Value table = op.getBlockTable();
    const int64_t blockSize = maxSeq;
    if (table)
      maxSeq =
          blockSize * cast<RankedTensorType>(table.getType()).getDimSize(1);
    Type posType = cast<ShapedType>(positions.getType()).getElementType();
    Value zero = arith::ConstantOp::create(rewriter, loc,
                                           rewriter.getIntegerAttr(posType, 0));
    Value limit = arith::ConstantOp::create(
        rewriter, loc, rewriter.getIntegerAttr(posType, maxSeq));
    const int64_t dyn = ShapedType::kDynamic;
    const bool perElement =
        valueType.getDimSize(0) > 1 || valueType.getDimSize(1) > 1;
    SmallVector<OpFoldResult> bounds{
        rewriter.getIndexAttr(valueType.getDimSize(0)),
        rewriter.getIndexAttr(valueType.getDimSize(1))};
    if (perElement)
      bounds.append(
          {rewriter.getIndexAttr(kvHeads), rewriter.getIndexAttr(headDim)});
    // What one iteration writes: [1, kv_heads, rows, head_dim], or
    // [1, 1, rows, 1] per element.
    const int64_t g = perElement ? 1 : kvHeads, d = perElement ? 1 : headDim;
    auto forall = scf::ForallOp::create(
        rewriter, loc, bounds, ValueRange{op.getCache()}, std::nullopt,
        [&](OpBuilder &b, Location loc, ValueRange args) {
          Value bi = args[0], si = args[1], cache = args.back();
          Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
          Value gi = perElement ? args[2] : c0, di = perElement ? args[3] : c0;
          Value p =
              tensor::ExtractOp::create(b, loc, positions, ValueRange{bi, si});
          Value valid = arith::AndIOp::create(
              b, loc,
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, p, zero),
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, p,
                                    limit));
          Value pIndex;
          // The cache row: the batch row, or (paged) the block holding p,
          // whose slot is p % block_size; a block id outside the pool is
          // not written.
          Value cacheRow = bi;
          if (table) {
            pIndex = arith::SelectOp::create(
                b, loc, valid,
                arith::IndexCastOp::create(b, loc, b.getIndexType(), p), c0);
            Value bs = arith::ConstantIndexOp::create(b, loc, blockSize);
            auto [block, inPool] =
                blockOf(b, loc, table, bi, pIndex, bs, cacheType.getDimSize(0));
            valid = arith::AndIOp::create(b, loc, valid, inPool);
            cacheRow = arith::SelectOp::create(
                b, loc, valid,
                arith::IndexCastOp::create(b, loc, b.getIndexType(), block),
                c0);
            pIndex = arith::RemUIOp::create(b, loc, pIndex, bs);
          }
          Value rows = arith::SelectOp::create(
              b, loc, valid, arith::ConstantIndexOp::create(b, loc, 1), c0);
          if (!table)
            pIndex = arith::IndexCastOp::create(b, loc, b.getIndexType(), p);
          Value at = arith::SelectOp::create(b, loc, valid, pIndex, c0);
          // The new k or v: value[b, s, g * D + d ..] ([g * d] elements).
          Value col =
              perElement
                  ? arith::AddIOp::create(
                        b, loc,
                        arith::MulIOp::create(
                            b, loc, gi,
                            arith::ConstantIndexOp::create(b, loc, headDim)),
                        di)
                        .getResult()
                  : c0;
          Value row = tensor::ExtractSliceOp::create(
              b, loc, RankedTensorType::get({g * d}, element), value,
              ValueRange{bi, si, col}, ValueRange{}, ValueRange{},
              b.getDenseI64ArrayAttr({dyn, dyn, dyn}),
              b.getDenseI64ArrayAttr({1, 1, g * d}),
              b.getDenseI64ArrayAttr({1, 1, 1}));
          Value heads = tensor::ExpandShapeOp::create(
              b, loc, RankedTensorType::get({1, g, 1, d}, element), row,
              ArrayRef<ReassociationIndices>{{0, 1, 2, 3}});
          // [1, g, rows, d] of the new heads and of the cache at the
          // position; the copy into the cache's own slice bufferizes to an
          // in-place write, no temporary.
          auto sliceType = RankedTensorType::get({1, g, dyn, d}, element);
          auto strides = b.getDenseI64ArrayAttr({1, 1, 1, 1});
          auto sizes = b.getDenseI64ArrayAttr({1, g, dyn, d});
          Value newRows = tensor::ExtractSliceOp::create(
              b, loc, sliceType, heads, ValueRange{}, ValueRange{rows},
              ValueRange{}, b.getDenseI64ArrayAttr({0, 0, 0, 0}), sizes,
              strides);
          SmallVector<Value> slotAt{cacheRow, at};
          auto offsets = b.getDenseI64ArrayAttr({dyn, 0, dyn, 0});
          if (perElement) {
            slotAt = {cacheRow, gi, at, di};
            offsets = b.getDenseI64ArrayAttr({dyn, dyn, dyn, dyn});
          }
          Value slot = tensor::ExtractSliceOp::create(
              b, loc, sliceType, cache, slotAt, ValueRange{rows}, ValueRange{},
              offsets, sizes, strides);
          Value written =
              linalg::CopyOp::create(b, loc, newRows, slot).getResult(0);
          auto inParallel = scf::InParallelOp::create(b, loc);
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPointToStart(inParallel.getBody());
          tensor::ParallelInsertSliceOp::create(b, loc, written, cache, slotAt,
                                                ValueRange{rows}, ValueRange{},
                                                offsets, sizes, strides);
        });
    return forall.getResult(0);
  }
};

/// Reference attention over the whole cache with a causal mask by position:
///   scores[b,h,s,t] = t <= p[b,s] ? scale * q[b,s,h,:] . K[b,h/rep,t,:] : -inf
///   out[b,s,h,:]   = sum_t softmax_t(scores) * V[b,h/rep,t,:]
/// Rows with no visible key (padding, p < 0) produce zeros.
struct LowerAttention : TfmLowering<tfm::AttentionOp> {
  using TfmLowering::TfmLowering;
  FailureOr<Value> lower(tfm::AttentionOp op,
                         PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    NestBuilder g(rewriter, loc);
    RankedTensorType qType = op.getType();
    RankedTensorType cacheType = op.getKeyCache().getType();
    Type elt = qType.getElementType(), f32 = rewriter.getF32Type();
    int64_t batch = qType.getDimSize(0), seq = qType.getDimSize(1);
    int64_t heads = op.getNumHeads(), headDim = op.getHeadDim();
    int64_t maxSeq = cacheType.getDimSize(2);
    int64_t rep = heads / op.getNumKvHeads();
    Value keys = op.getKeyCache(), values = op.getValueCache();
    if (Value table = op.getBlockTable()) {
      // Paged: the rows' slots gathered from the pools through the table,
      // [B, kv_heads, max_blocks * block_size, D]; the steps below read them
      // as an unpaged cache.
      const int64_t blockSize = maxSeq;
      maxSeq *= cast<RankedTensorType>(table.getType()).getDimSize(1);
      SmallVector<int64_t> shape{
          batch, static_cast<int64_t>(op.getNumKvHeads()), maxSeq, headDim};
      AffineMap id =
          AffineMap::getMultiDimIdentityMap(4, rewriter.getContext());
      auto gather = [&](Value pool) {
        return g.generic(
            RankedTensorType::get(shape, elt), {}, g.empty(shape, elt), {id},
            {kPar, kPar, kPar, kPar},
            [&](OpBuilder &b, Location loc, ValueRange) {
              Value bi = linalg::IndexOp::create(b, loc, 0);
              Value hi = linalg::IndexOp::create(b, loc, 1);
              Value ti = linalg::IndexOp::create(b, loc, 2);
              Value di = linalg::IndexOp::create(b, loc, 3);
              Value bs = arith::ConstantIndexOp::create(b, loc, blockSize);
              // A block id outside the pool reads block 0 (the runtime
              // never passes one for a visible slot).
              auto [block, inPool] =
                  blockOf(b, loc, table, bi, ti, bs, cacheType.getDimSize(0));
              Value row = arith::SelectOp::create(
                  b, loc, inPool,
                  arith::IndexCastOp::create(b, loc, b.getIndexType(), block),
                  arith::ConstantIndexOp::create(b, loc, 0));
              Value v = tensor::ExtractOp::create(
                  b, loc, pool,
                  ValueRange{row, hi, arith::RemUIOp::create(b, loc, ti, bs),
                             di});
              linalg::YieldOp::create(b, loc, v);
            });
      };
      keys = gather(keys);
      values = gather(values);
    }

    // q as [B, S, H, D].
    Value q4 = tensor::ExpandShapeOp::create(
        rewriter, loc, RankedTensorType::get({batch, seq, heads, headDim}, elt),
        op.getQuery(), ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3}});
    SmallVector<int64_t> bhst{batch, heads, seq, maxSeq};
    SmallVector<int64_t> bhs{batch, heads, seq};
    auto bhstType = RankedTensorType::get(bhst, f32);
    auto bhsType = RankedTensorType::get(bhs, f32);
    AffineExpr kvHead = g.d(1).floorDiv(rep);

    // Raw dot products over d (dims b, h, s, t, d).
    Value dots = g.generic(
        bhstType, {q4, keys}, g.filled(bhst, 0.0),
        {g.map(5, {g.d(0), g.d(2), g.d(1), g.d(4)}),
         g.map(5, {g.d(0), kvHead, g.d(3), g.d(4)}),
         g.map(5, {g.d(0), g.d(1), g.d(2), g.d(3)})},
        {kPar, kPar, kPar, kPar, kRed},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          Value prod = arith::MulFOp::create(b, loc, toF32(b, loc, a[0]),
                                             toF32(b, loc, a[1]));
          linalg::YieldOp::create(
              b, loc, arith::AddFOp::create(b, loc, a[2], prod).getResult());
        });
    // Scale and causal mask by position (dims b, h, s, t).
    Value scale = g.f32(op.getScale().convertToDouble());
    Value negInf = g.f32(-std::numeric_limits<double>::infinity());
    AffineMap id4 = AffineMap::getMultiDimIdentityMap(4, rewriter.getContext());
    Value masked = g.generic(
        bhstType, {dots, op.getPositions()}, g.empty(bhst, f32),
        {id4, g.map(4, {g.d(0), g.d(2)}), id4}, {kPar, kPar, kPar, kPar},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          Value t = arith::IndexCastOp::create(
              b, loc, a[1].getType(), linalg::IndexOp::create(b, loc, 3));
          Value visible =
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle, t, a[1]);
          Value s = arith::MulFOp::create(b, loc, a[0], scale);
          linalg::YieldOp::create(
              b, loc,
              arith::SelectOp::create(b, loc, visible, s, negInf).getResult());
        });
    AffineMap toBhs = g.map(4, {g.d(0), g.d(1), g.d(2)});
    Value rowMax = g.generic(
        bhsType, {masked},
        g.filled(bhs, -std::numeric_limits<double>::infinity()), {id4, toBhs},
        {kPar, kPar, kPar, kRed},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          linalg::YieldOp::create(
              b, loc,
              arith::MaximumFOp::create(b, loc, a[0], a[1]).getResult());
        });
    Value zero = g.f32(0.0);
    Value probs = g.generic(
        bhstType, {masked, rowMax}, g.empty(bhst, f32), {id4, toBhs, id4},
        {kPar, kPar, kPar, kPar},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          Value e = math::ExpOp::create(
              b, loc, arith::SubFOp::create(b, loc, a[0], a[1]));
          Value empty = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ,
                                              a[1], negInf);
          linalg::YieldOp::create(
              b, loc,
              arith::SelectOp::create(b, loc, empty, zero, e).getResult());
        });
    Value rowSum = g.generic(
        bhsType, {probs}, g.filled(bhs, 0.0), {id4, toBhs},
        {kPar, kPar, kPar, kRed},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          linalg::YieldOp::create(
              b, loc, arith::AddFOp::create(b, loc, a[0], a[1]).getResult());
        });
    // Weighted sum of values (dims b, h, s, d, t).
    SmallVector<int64_t> bhsd{batch, heads, seq, headDim};
    Value weighted = g.generic(
        RankedTensorType::get(bhsd, f32), {probs, values}, g.filled(bhsd, 0.0),
        {g.map(5, {g.d(0), g.d(1), g.d(2), g.d(4)}),
         g.map(5, {g.d(0), kvHead, g.d(4), g.d(3)}),
         g.map(5, {g.d(0), g.d(1), g.d(2), g.d(3)})},
        {kPar, kPar, kPar, kPar, kRed},
        [&](OpBuilder &b, Location loc, ValueRange a) {
          Value prod = arith::MulFOp::create(b, loc, a[0], toF32(b, loc, a[1]));
          linalg::YieldOp::create(
              b, loc, arith::AddFOp::create(b, loc, a[2], prod).getResult());
        });
    // Normalize and go back to [B, S, H, D] (dims b, s, h, d).
    SmallVector<int64_t> bshd{batch, seq, heads, headDim};
    Value out4 =
        g.generic(RankedTensorType::get(bshd, elt), {weighted, rowSum},
                  g.empty(bshd, elt),
                  {g.map(4, {g.d(0), g.d(2), g.d(1), g.d(3)}),
                   g.map(4, {g.d(0), g.d(2), g.d(1)}), id4},
                  {kPar, kPar, kPar, kPar},
                  [&](OpBuilder &b, Location loc, ValueRange a) {
                    Value positive = arith::CmpFOp::create(
                        b, loc, arith::CmpFPredicate::OGT, a[1], zero);
                    Value v = arith::SelectOp::create(
                        b, loc, positive,
                        arith::DivFOp::create(b, loc, a[0], a[1]), zero);
                    linalg::YieldOp::create(b, loc, fromF32(b, loc, v, elt));
                  });
    // Provenance for kernel formation (kiln-select-kernels): every op of
    // this lowering says which tfm.attention it computes and which step it
    // is, with the attention's parameters, so a GPU kernel can take the
    // whole group without re-deriving it from the loops.
    auto id = op->getAttrOfType<IntegerAttr>(kRegionIdAttr);
    if (id) {
      auto tag = [&](Value v, int64_t step) {
        NamedAttrList attrs;
        attrs.append("op", rewriter.getStringAttr("tfm.attention"));
        attrs.append("id", id);
        attrs.append("step", rewriter.getI64IntegerAttr(step));
        attrs.append("num_heads", op.getNumHeadsAttr());
        attrs.append("num_kv_heads", op.getNumKvHeadsAttr());
        attrs.append("head_dim", op.getHeadDimAttr());
        attrs.append("scale", op.getScaleAttr());
        DictionaryAttr region = attrs.getDictionary(rewriter.getContext());
        Operation *def = v.getDefiningOp();
        def->setAttr(kRegionAttr, region);
        // The fill of a reduction's accumulator belongs to the group too.
        if (auto generic = dyn_cast<linalg::GenericOp>(def))
          if (auto fill =
                  generic.getDpsInits()[0].getDefiningOp<linalg::FillOp>())
            fill->setAttr(kRegionAttr, region);
      };
      SmallVector<Value> steps{dots,   masked,   rowMax, probs,
                               rowSum, weighted, out4};
      for (auto [step, v] : llvm::enumerate(steps))
        tag(v, static_cast<int64_t>(step));
      // Paged: the gathers of K and V through the block table are steps 7
      // and 8 (a kernel reads the pools through the table instead).
      if (op.getBlockTable()) {
        tag(keys, 7);
        tag(values, 8);
      }
    }
    return tensor::CollapseShapeOp::create(
               rewriter, loc, qType, out4,
               ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3}})
        .getResult();
  }
};

} // namespace

void populateAttentionPatterns(RewritePatternSet &patterns) {
  patterns.add<LowerKvAppend, LowerAttention>(patterns.getContext());
}

} // namespace kiln::tfm_lowering
