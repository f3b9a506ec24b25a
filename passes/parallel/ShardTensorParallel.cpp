//===- ShardTensorParallel.cpp - Megatron-style tensor parallelism --------===//
//
// One rank's program of a model split over `ranks` GPUs. The program is the
// same on every rank (SPMD); only the weights differ, so the pass is run once
// per rank (`rank=r`) on a copy of the imported module, the kernels are
// compiled from rank 0's and each rank's weights are written to the artifact
// (issue 16):
//
//   attention: q/k/v projections by output columns (whole heads: rank r has
//              query heads [r H/N, (r+1) H/N) and KV heads [r KV/N, ...), so
//              each GQA group stays on one rank), attention over the local
//              heads, its KV caches [batch, KV/N, seq, head_dim];
//              o_proj by input rows, then tfm.all_reduce
//   MLP:       gate/up by output columns, SwiGLU on the local columns,
//              down by input rows, then tfm.all_reduce
//   lm_head:   by vocabulary rows, then tfm.all_gather of the logits
//   embedding: by vocabulary rows (`rows from` a weight holding the slice's
//              first row: ids outside the slice give zeros), then
//              tfm.all_reduce; a tied table's slice is the lm_head's, stored
//              once
//
// Norms stay whole on every rank. A projection's bias follows
// its weight: split with the columns, or (row-split projections) kept by
// rank 0 only, the other ranks adding zeros, so that the all-reduce adds it
// once.
//
//===----------------------------------------------------------------------===//

#include "dialects/Tfm/TfmOps.h"
#include "passes/Passes.h"
#include "passes/fusion/ConstantWeights.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MLProgram/IR/MLProgram.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/SymbolTable.h"

#include <string>

#define DEBUG_TYPE "kiln-shard-tensor-parallel"

namespace kiln {
#define GEN_PASS_DEF_SHARDTENSORPARALLEL
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

/// `v`'s type with its last dimension `size`.
void setFeatures(Value v, int64_t size) {
  auto type = cast<RankedTensorType>(v.getType());
  SmallVector<int64_t> shape(type.getShape());
  shape.back() = size;
  v.setType(type.clone(shape));
}

/// The op that is `v`'s one user, or null.
Operation *soleUser(Value v) {
  return v.hasOneUse() ? *v.getUsers().begin() : nullptr;
}

struct ShardTensorParallel
    : kiln::impl::ShardTensorParallelBase<ShardTensorParallel> {
  using Base::Base;

  ModuleOp module;
  SymbolTable *symbols = nullptr;
  /// The options' values.
  int64_t n = 1, r = 0;
  /// Globals whose loads were replaced by a shard's.
  SmallVector<std::string> replaced;
  /// The shard made of (global, split dimension): a tied embedding table
  /// and lm_head share theirs.
  DenseMap<std::pair<Operation *, int64_t>, ml_program::GlobalOp> shards;

  void runOnOperation() override {
    module = getOperation();
    n = ranks;
    r = rank;
    if (n < 1 || r < 0 || r >= n) {
      module.emitError() << "kiln-shard-tensor-parallel: rank " << r
                         << " is not one of " << n << " ranks";
      return signalPassFailure();
    }
    if (n == 1)
      return;
    SymbolTable table(module);
    symbols = &table;
    for (auto func : llvm::to_vector(module.getOps<func::FuncOp>())) {
      if (func.isExternal())
        continue;
      if (failed(shardFunc(func)))
        return signalPassFailure();
    }
    eraseUnusedGlobals(module, table, replaced);
    Builder b(module.getContext());
    module->setAttr("tfm.tensor_parallel", b.getI64IntegerAttr(n));
    module->setAttr("tfm.rank", b.getI64IntegerAttr(r));
  }

  LogicalResult shardFunc(func::FuncOp func) {
    SmallVector<tfm::AttentionOp> attentions;
    SmallVector<tfm::SwiGluOp> mlps;
    SmallVector<tfm::LogitsOp> heads;
    SmallVector<tfm::EmbeddingOp> embeddings;
    func.walk([&](Operation *op) {
      if (auto e = dyn_cast<tfm::EmbeddingOp>(op))
        embeddings.push_back(e);
      else if (auto a = dyn_cast<tfm::AttentionOp>(op))
        attentions.push_back(a);
      else if (auto s = dyn_cast<tfm::SwiGluOp>(op))
        mlps.push_back(s);
      else if (auto l = dyn_cast<tfm::LogitsOp>(op))
        heads.push_back(l);
    });
    if (attentions.empty() && mlps.empty() && heads.empty())
      return success();
    // Nothing may already be fused: the split is defined on the imported
    // projections.
    WalkResult fused = func.walk([&](tfm::LinearOp op) {
      if (op.getRmsNormEpsilon() || op.getSwiglu()) {
        op.emitError("kiln-shard-tensor-parallel runs on unfused "
                     "projections; run it before the fusion passes");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (fused.wasInterrupted())
      return failure();
    for (tfm::AttentionOp a : attentions)
      if (failed(shardAttention(func, a)))
        return failure();
    for (tfm::SwiGluOp s : mlps)
      if (failed(shardMlp(func, s)))
        return failure();
    for (tfm::LogitsOp l : heads)
      if (failed(shardLmHead(func, l)))
        return failure();
    for (tfm::EmbeddingOp e : embeddings)
      if (failed(shardEmbedding(func, e)))
        return failure();
    // Cache arguments and returned caches changed type.
    Block &entry = func.getBody().front();
    auto ret = cast<func::ReturnOp>(func.getBody().back().getTerminator());
    func.setFunctionType(FunctionType::get(
        func.getContext(), entry.getArgumentTypes(), ret.getOperandTypes()));
    return success();
  }

  /// A new global `<name>.shard` (the same name on every rank) of `type`
  /// holding `source`, loaded at the start of `func`.
  Value shardGlobal(func::FuncOp func, ml_program::GlobalOp original,
                    RankedTensorType type, WeightRef source) {
    ml_program::GlobalOp g = createWeightGlobal(
        *symbols, original, original.getSymName().str() + ".shard", type,
        std::move(source));
    replaced.push_back(original.getSymName().str());
    return loadAtStart(func.getBody().front(), g);
  }

  /// This rank's block of the constant tensor `v` (rank 1 or 2), cut along
  /// `dim` into `ranks` equal parts; emits an error at `user` otherwise.
  FailureOr<Value> shardConstant(func::FuncOp func, Operation *user, Value v,
                                 int64_t dim, StringRef what) {
    ml_program::GlobalOp g = constantGlobal(v, *symbols);
    WeightRef source = g ? globalWeight(g) : nullptr;
    if (!source)
      return user->emitError()
             << "cannot split the " << what
             << " over ranks: it is not a constant weight (a quantized or "
                "computed weight cannot be split yet)";
    if (ml_program::GlobalOp made = shards.lookup({g, dim}))
      return loadAtStart(func.getBody().front(), made);
    auto type = cast<RankedTensorType>(v.getType());
    int64_t size = type.getDimSize(dim);
    if (size % n != 0)
      return user->emitError() << "cannot split the " << what << " over " << n
                               << " ranks: dimension " << dim << " has " << size
                               << " elements, not a multiple of " << n;
    SmallVector<int64_t> shape(type.getShape());
    shape[dim] = size / n;
    auto local = type.clone(shape);
    const uint64_t elt = type.getElementTypeBitWidth() / 8;
    WeightRef slice;
    if (type.getRank() == 2 && dim == 0) {
      // Whole rows.
      slice =
          sliceWeight(source, r * shape[0], shape[0], 0, source->rowBytes());
    } else {
      // A block of each row's elements (a vector is one row).
      uint64_t width = shape.back() * elt;
      slice = sliceWeight(source, 0, source->rows(), r * width, width);
    }
    Value load = shardGlobal(func, g, local, std::move(slice));
    shards[{g, dim}] = symbols->lookup<ml_program::GlobalOp>(
        load.getDefiningOp<ml_program::GlobalLoadConstOp>()
            .getGlobal()
            .getLeafReference());
    return load;
  }

  /// Splits `op`'s weight (and bias) by output features: this rank's
  /// contiguous block of `outputs / ranks` features.
  LogicalResult splitOutputs(func::FuncOp func, tfm::LinearOp op,
                             StringRef what) {
    bool outIn = op.getLayout() == tfm::WeightLayout::out_in;
    FailureOr<Value> w =
        shardConstant(func, op, op.getWeight(), outIn ? 0 : 1, what);
    if (failed(w))
      return failure();
    op.getWeightMutable().assign(*w);
    if (Value bias = op.getBias()) {
      FailureOr<Value> bv =
          shardConstant(func, op, bias, 0, (what + " bias").str());
      if (failed(bv))
        return failure();
      op.getBiasMutable().assign(*bv);
    }
    setFeatures(op.getResult(), op.getOutFeatures());
    return success();
  }

  /// Splits `op`'s weight by input features and sums the ranks' partial
  /// results with a tfm.all_reduce after it.
  LogicalResult splitInputs(func::FuncOp func, tfm::LinearOp op,
                            StringRef what) {
    bool outIn = op.getLayout() == tfm::WeightLayout::out_in;
    FailureOr<Value> w =
        shardConstant(func, op, op.getWeight(), outIn ? 1 : 0, what);
    if (failed(w))
      return failure();
    op.getWeightMutable().assign(*w);
    if (Value bias = op.getBias()) {
      // Rank 0 adds the bias, the others zeros: the all-reduce adds it once.
      ml_program::GlobalOp g = constantGlobal(bias, *symbols);
      WeightRef source = g ? globalWeight(g) : nullptr;
      if (!source)
        return op.emitError()
               << "cannot split the " << what << ": its bias is not a constant";
      auto type = cast<RankedTensorType>(bias.getType());
      Value local;
      if (r == 0) {
        local = shardGlobal(func, g, type, source);
      } else {
        OpBuilder b(g);
        auto zeros = ml_program::GlobalOp::create(
            b, g.getLoc(), g.getSymName().str() + ".shard", type,
            /*is_mutable=*/false,
            DenseElementsAttr::get(type, b.getZeroAttr(type.getElementType())),
            b.getStringAttr("private"));
        symbols->insert(zeros);
        replaced.push_back(g.getSymName().str());
        local = loadAtStart(func.getBody().front(), zeros);
      }
      op.getBiasMutable().assign(local);
    }
    OpBuilder b(op.getContext());
    b.setInsertionPointAfter(op);
    auto sum = tfm::AllReduceOp::create(b, op.getLoc(), op.getResult(), n);
    op.getResult().replaceAllUsesExcept(sum.getResult()[0], sum);
    return success();
  }

  /// The projection whose result `v` is, directly or through the tfm.rope
  /// that is its one user; emits an error at `at` otherwise.
  FailureOr<tfm::LinearOp> projectionOf(Value v, Operation *at,
                                        StringRef what) {
    tfm::RopeOp rope = v.getDefiningOp<tfm::RopeOp>();
    if (rope) {
      if (!rope.getResult().hasOneUse())
        return at->emitError() << "cannot split the " << what
                               << ": its RoPE result has other users";
      v = rope.getInput();
    }
    auto linear = v.getDefiningOp<tfm::LinearOp>();
    if (!linear || !linear.getResult().hasOneUse())
      return at->emitError()
             << "cannot split the " << what
             << " over ranks: it is not a projection used only by this "
                "attention";
    return linear;
  }

  LogicalResult shardAttention(func::FuncOp func, tfm::AttentionOp att) {
    const int64_t heads = att.getNumHeads(), kvHeads = att.getNumKvHeads();
    const int64_t headDim = att.getHeadDim();
    if (heads % n != 0 || kvHeads % n != 0)
      return att.emitError()
             << "cannot split attention over " << n << " ranks: its " << heads
             << " query heads and " << kvHeads
             << " key/value heads must both be multiples of " << n;
    if (att.getBlockTable())
      return att.emitError("kiln-shard-tensor-parallel runs before "
                           "kiln-specialize-entry-points (paged caches)");
    FailureOr<tfm::LinearOp> q =
        projectionOf(att.getQuery(), att, "query projection");
    if (failed(q))
      return failure();
    // Each cache: a kv_append of a projection (through RoPE for keys) into a
    // function argument.
    SmallVector<tfm::LinearOp> kv;
    SmallVector<tfm::KvAppendOp> appends;
    for (auto [cache, what] :
         {std::pair(att.getKeyCache(), "key projection"),
          std::pair(att.getValueCache(), "value projection")}) {
      auto append = cache.getDefiningOp<tfm::KvAppendOp>();
      if (!append || !isa<BlockArgument>(append.getCache()) ||
          !append.getCache().hasOneUse())
        return att.emitError()
               << "cannot split attention over ranks: its "
               << (kv.empty() ? "key" : "value")
               << " cache is not a kv_append into a function argument";
      FailureOr<tfm::LinearOp> p = projectionOf(append.getValue(), att, what);
      if (failed(p))
        return failure();
      kv.push_back(*p);
      appends.push_back(append);
    }
    if (failed(splitOutputs(func, *q, "query projection")) ||
        failed(splitOutputs(func, kv[0], "key projection")) ||
        failed(splitOutputs(func, kv[1], "value projection")))
      return failure();
    const int64_t localHeads = heads / n, localKv = kvHeads / n;
    // RoPE keeps its input's type.
    if (auto rope = att.getQuery().getDefiningOp<tfm::RopeOp>())
      setFeatures(rope.getResult(), localHeads * headDim);
    for (tfm::KvAppendOp append : appends) {
      if (auto rope = append.getValue().getDefiningOp<tfm::RopeOp>())
        setFeatures(rope.getResult(), localKv * headDim);
      auto cacheType = cast<RankedTensorType>(append.getCache().getType());
      SmallVector<int64_t> shape(cacheType.getShape());
      shape[1] = localKv;
      auto local = cacheType.clone(shape);
      append.getCache().setType(local);
      append.getResult().setType(local);
    }
    Builder b(att.getContext());
    att.setNumHeadsAttr(b.getI64IntegerAttr(localHeads));
    att.setNumKvHeadsAttr(b.getI64IntegerAttr(localKv));
    setFeatures(att.getResult(), localHeads * headDim);
    // o_proj: the attention's one user.
    auto out = dyn_cast_or_null<tfm::LinearOp>(soleUser(att.getResult()));
    if (!out)
      return att.emitError("cannot split attention over ranks: its result "
                           "is not used by one output projection only");
    return splitInputs(func, out, "output projection");
  }

  LogicalResult shardMlp(func::FuncOp func, tfm::SwiGluOp swiglu) {
    auto gate = swiglu.getGate().getDefiningOp<tfm::LinearOp>();
    auto up = swiglu.getUp().getDefiningOp<tfm::LinearOp>();
    auto down = dyn_cast_or_null<tfm::LinearOp>(soleUser(swiglu.getResult()));
    if (!gate || !up || !gate.getResult().hasOneUse() ||
        !up.getResult().hasOneUse() || !down)
      return swiglu.emitError(
          "cannot split the MLP over ranks: SwiGLU's gate and up are not "
          "projections used only by it, or its result is not used by one "
          "down projection only");
    if (failed(splitOutputs(func, gate, "gate projection")) ||
        failed(splitOutputs(func, up, "up projection")))
      return failure();
    swiglu.getResult().setType(gate.getResult().getType());
    return splitInputs(func, down, "down projection");
  }

  LogicalResult shardEmbedding(func::FuncOp func, tfm::EmbeddingOp embedding) {
    auto table = embedding.getTable().getType();
    const int64_t vocab = table.getDimSize(0);
    // A vocabulary that does not divide, or a table that is not a constant
    // (a dequantized one), stays whole on every rank.
    ml_program::GlobalOp g = constantGlobal(embedding.getTable(), *symbols);
    if (vocab % n != 0 || !g || !globalWeight(g))
      return success();
    FailureOr<Value> part =
        shardConstant(func, embedding, embedding.getTable(), 0, "embedding");
    if (failed(part))
      return failure();
    embedding.getTableMutable().assign(*part);
    // The slice's first row is a weight (the same program on every rank).
    OpBuilder gb(g);
    auto firstType = RankedTensorType::get({1}, gb.getI64Type());
    auto first = ml_program::GlobalOp::create(
        gb, g.getLoc(), g.getSymName().str() + ".first_row", firstType,
        /*is_mutable=*/false,
        DenseElementsAttr::get(firstType, ArrayRef<int64_t>{r * (vocab / n)}),
        gb.getStringAttr("private"));
    symbols->insert(first);
    embedding.getFirstRowMutable().assign(
        loadAtStart(func.getBody().front(), first));
    OpBuilder b(embedding.getContext());
    b.setInsertionPointAfter(embedding);
    auto sum = tfm::AllReduceOp::create(b, embedding.getLoc(),
                                        embedding.getResult(), n);
    embedding.getResult().replaceAllUsesExcept(sum.getResult()[0], sum);
    return success();
  }

  LogicalResult shardLmHead(func::FuncOp func, tfm::LogitsOp logits) {
    int64_t vocab = logits.getVocabSize();
    // A vocabulary that does not divide stays whole on every rank.
    if (vocab % n != 0)
      return success();
    bool outIn = logits.getLayout() == tfm::WeightLayout::out_in;
    FailureOr<Value> w = shardConstant(func, logits, logits.getWeight(),
                                       outIn ? 0 : 1, "lm_head");
    if (failed(w))
      return failure();
    logits.getWeightMutable().assign(*w);
    // The slice is no longer the whole embedding table (a split table's
    // slice is the same global, which the artifact stores once).
    logits.setTied(false);
    setFeatures(logits.getResult(), vocab / n);
    OpBuilder b(logits.getContext());
    b.setInsertionPointAfter(logits);
    auto local = logits.getResult();
    auto type = cast<RankedTensorType>(local.getType());
    SmallVector<int64_t> shape(type.getShape());
    shape.back() = vocab;
    auto all = tfm::AllGatherOp::create(
        b, logits.getLoc(), TypeRange{type.clone(shape)}, local,
        /*init=*/Value(), n, type.getRank() - 1);
    local.replaceAllUsesExcept(all.getResult()[0], all);
    return success();
  }
};

} // namespace
