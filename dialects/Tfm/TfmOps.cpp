//===- TfmOps.cpp - Transformer dialect op verifiers ----------------------===//
//
// ODS checks ranks and element kinds; these verifiers check the relations
// between operands (feature sizes, head counts, dynamic-compatible batch and
// sequence dims) that ODS constraints cannot express.
//
//===----------------------------------------------------------------------===//

#include "dialects/Tfm/TfmOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace kiln::tfm;

namespace {
/// Two dimensions agree if either is dynamic or both are equal.
bool dimsAgree(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

std::string dimStr(int64_t d) {
  return ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
}

/// Checks that `[batch, seq]` of `tokens` agrees with the leading dims of
/// `activation`.
LogicalResult verifyTokenDims(Operation *op, RankedTensorType tokens,
                              StringRef tokensName, RankedTensorType activation,
                              StringRef activationName) {
  for (int i = 0; i < 2; ++i) {
    if (!dimsAgree(tokens.getDimSize(i), activation.getDimSize(i)))
      return op->emitOpError()
             << tokensName << " dim " << i << " ("
             << dimStr(tokens.getDimSize(i)) << ") does not match "
             << activationName << " dim " << i << " ("
             << dimStr(activation.getDimSize(i)) << ")";
  }
  return success();
}

LogicalResult verifyProjection(Operation *op, RankedTensorType input,
                               RankedTensorType weight, WeightLayout layout,
                               RankedTensorType result, bool halved = false) {
  if (input.getElementType() != weight.getElementType() ||
      input.getElementType() != result.getElementType())
    return op->emitOpError(
        "input, weight and result must have the same element type");
  bool outIn = layout == WeightLayout::out_in;
  int64_t k = weight.getDimSize(outIn ? 1 : 0);
  int64_t n = weight.getDimSize(outIn ? 0 : 1);
  if (halved && !ShapedType::isDynamic(n)) {
    if (n % 2 != 0)
      return op->emitOpError() << "swiglu needs an even number of output "
                                  "features, the weight has "
                               << n;
    n /= 2;
  }
  if (!dimsAgree(input.getDimSize(2), k))
    return op->emitOpError()
           << "input features (" << dimStr(input.getDimSize(2))
           << ") do not match the weight's input features (" << dimStr(k)
           << ") for layout " << stringifyWeightLayout(layout);
  if (!dimsAgree(result.getDimSize(2), n))
    return op->emitOpError()
           << "result features (" << dimStr(result.getDimSize(2))
           << ") do not match the weight's output features (" << dimStr(n)
           << ") for layout " << stringifyWeightLayout(layout);
  for (int i = 0; i < 2; ++i)
    if (!dimsAgree(input.getDimSize(i), result.getDimSize(i)))
      return op->emitOpError()
             << "result dim " << i << " (" << dimStr(result.getDimSize(i))
             << ") does not match input dim " << i << " ("
             << dimStr(input.getDimSize(i)) << ")";
  return success();
}
} // namespace

//===----------------------------------------------------------------------===//
// EmbeddingOp
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  RankedTensorType table = getTable().getType();
  RankedTensorType result = getResult().getType();
  if (table.getElementType() != result.getElementType())
    return emitOpError("result element type must match the table's");
  if (!dimsAgree(table.getDimSize(1), result.getDimSize(2)))
    return emitOpError() << "result hidden size ("
                         << dimStr(result.getDimSize(2))
                         << ") does not match the table's ("
                         << dimStr(table.getDimSize(1)) << ")";
  return verifyTokenDims(*this, getIds().getType(), "ids", result, "result");
}

//===----------------------------------------------------------------------===//
// RmsNormOp
//===----------------------------------------------------------------------===//

LogicalResult RmsNormOp::verify() {
  if (getInput().getType() != getResult().getType())
    return emitOpError() << "result type " << getResult().getType()
                         << " must equal the input's " << getInput().getType();
  int64_t hidden = getInput().getType().getDimSize(2);
  int64_t weight = getWeight().getType().getDimSize(0);
  if (!dimsAgree(hidden, weight))
    return emitOpError() << "weight size (" << dimStr(weight)
                         << ") does not match the normalized dimension ("
                         << dimStr(hidden) << ")";
  if (!(getEpsilon().convertToFloat() > 0.0f))
    return emitOpError("epsilon must be positive");
  return success();
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

int64_t LinearOp::getInFeatures() {
  return getWeight().getType().getDimSize(
      getLayout() == WeightLayout::out_in ? 1 : 0);
}

int64_t LinearOp::getOutFeatures() {
  return getWeight().getType().getDimSize(
      getLayout() == WeightLayout::out_in ? 0 : 1);
}

//===----------------------------------------------------------------------===//
// DequantizeOp
//===----------------------------------------------------------------------===//

LogicalResult DequantizeOp::verify() {
  auto packed = getPacked().getType();
  auto scales = getScales().getType();
  auto result = getResult().getType();
  int64_t bits = getBits(), group = getGroupSize();
  if (!result.hasStaticShape() || !packed.hasStaticShape() ||
      !scales.hasStaticShape())
    return emitOpError("needs static shapes");
  int64_t rows = result.getDimSize(0), cols = result.getDimSize(1);
  if (scales.getElementType() != result.getElementType())
    return emitOpError("scales must have the result's element type");
  if (cols % group != 0 || (bits == 4 && group % 2 != 0))
    return emitOpError() << "group_size " << group << " does not divide the "
                         << cols << " columns"
                         << (bits == 4 ? " into an even count" : "");
  if (packed.getDimSize(0) != rows || packed.getDimSize(1) != cols * bits / 8)
    return emitOpError() << "packed must be [" << rows << ", "
                         << cols * bits / 8 << "] for " << bits
                         << "-bit values of a " << rows << "x" << cols
                         << " weight, got [" << packed.getDimSize(0) << ", "
                         << packed.getDimSize(1) << "]";
  auto check = [&](RankedTensorType t, StringRef what) -> LogicalResult {
    if (t.getDimSize(0) != rows || t.getDimSize(1) != cols / group)
      return emitOpError() << what << " must be [" << rows << ", "
                           << cols / group << "] (one per group of " << group
                           << "), got [" << t.getDimSize(0) << ", "
                           << t.getDimSize(1) << "]";
    return success();
  };
  if (failed(check(scales, "scales")))
    return failure();
  if (Value z = getZeroPoints()) {
    auto zt = cast<RankedTensorType>(z.getType());
    if (zt.getElementType() != result.getElementType())
      return emitOpError("zero_points must have the result's element type");
    return check(zt, "zero_points");
  }
  return success();
}

LogicalResult LinearOp::verify() {
  if (failed(verifyProjection(*this, getInput().getType(),
                              getWeight().getType(), getLayout(),
                              getResult().getType(), getSwiglu())))
    return failure();
  if (Value bias = getBias()) {
    auto biasType = cast<RankedTensorType>(bias.getType());
    if (biasType.getElementType() != getResult().getType().getElementType())
      return emitOpError("bias element type must match the result's");
    if (!dimsAgree(biasType.getDimSize(0), getOutFeatures()))
      return emitOpError() << "bias size (" << dimStr(biasType.getDimSize(0))
                           << ") does not match the output features ("
                           << dimStr(getOutFeatures()) << ")";
  }
  return success();
}

//===----------------------------------------------------------------------===//
// RopeOp
//===----------------------------------------------------------------------===//

LogicalResult RopeOp::verify() {
  if (getInput().getType() != getResult().getType())
    return emitOpError() << "result type " << getResult().getType()
                         << " must equal the input's " << getInput().getType();
  int64_t headDim = getHeadDim();
  if (headDim % 2 != 0)
    return emitOpError() << "head_dim (" << headDim << ") must be even";
  int64_t features = getInput().getType().getDimSize(2);
  if (!ShapedType::isDynamic(features) && features % headDim != 0)
    return emitOpError() << "feature size (" << features
                         << ") is not a multiple of head_dim (" << headDim
                         << ")";
  int64_t freqs = getInvFreq().getType().getDimSize(0);
  if (!dimsAgree(freqs, headDim / 2))
    return emitOpError() << "inv_freq has " << dimStr(freqs)
                         << " entries, expected head_dim / 2 = " << headDim / 2;
  return verifyTokenDims(*this, getPositions().getType(), "positions",
                         getInput().getType(), "input");
}

//===----------------------------------------------------------------------===//
// KvAppendOp
//===----------------------------------------------------------------------===//

/// A paged op's block table has a row per batch row of `tokens` and at least
/// one block.
static LogicalResult verifyBlockTable(Operation *op, RankedTensorType table,
                                      RankedTensorType tokens) {
  if (!dimsAgree(table.getDimSize(0), tokens.getDimSize(0)))
    return op->emitOpError()
           << "block table has " << dimStr(table.getDimSize(0))
           << " rows, expected one per batch row ("
           << dimStr(tokens.getDimSize(0)) << ")";
  if (table.getDimSize(1) == 0)
    return op->emitOpError("block table has no block per row");
  return success();
}

LogicalResult KvAppendOp::verify() {
  if (getCache().getType() != getResult().getType())
    return emitOpError() << "result type " << getResult().getType()
                         << " must equal the cache's " << getCache().getType();
  RankedTensorType value = getValue().getType();
  RankedTensorType cache = getCache().getType();
  if (value.getElementType() != cache.getElementType())
    return emitOpError("value and cache must have the same element type");
  int64_t kvHeads = cache.getDimSize(1), headDim = cache.getDimSize(3);
  if (!ShapedType::isDynamic(kvHeads) && !ShapedType::isDynamic(headDim) &&
      !dimsAgree(value.getDimSize(2), kvHeads * headDim))
    return emitOpError() << "value features (" << dimStr(value.getDimSize(2))
                         << ") must be num_kv_heads * head_dim = " << kvHeads
                         << " * " << headDim;
  if (Value table = getBlockTable()) {
    if (failed(verifyBlockTable(*this, cast<RankedTensorType>(table.getType()),
                                value)))
      return failure();
  } else if (!dimsAgree(value.getDimSize(0), cache.getDimSize(0))) {
    return emitOpError("value batch does not match the cache batch");
  }
  return verifyTokenDims(*this, getPositions().getType(), "positions", value,
                         "value");
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::verify() {
  if (getQuery().getType() != getResult().getType())
    return emitOpError() << "result type " << getResult().getType()
                         << " must equal the query's " << getQuery().getType();
  int64_t heads = getNumHeads(), kvHeads = getNumKvHeads();
  int64_t headDim = getHeadDim();
  if (heads % kvHeads != 0)
    return emitOpError() << "num_heads (" << heads
                         << ") must be a multiple of num_kv_heads (" << kvHeads
                         << ")";
  RankedTensorType query = getQuery().getType();
  RankedTensorType cache = getKeyCache().getType();
  if (query.getElementType() != cache.getElementType())
    return emitOpError("query and caches must have the same element type");
  int64_t qFeatures;
  if (llvm::MulOverflow(heads, headDim, qFeatures))
    return emitOpError("num_heads * head_dim overflows");
  if (!dimsAgree(query.getDimSize(2), qFeatures))
    return emitOpError() << "query features (" << dimStr(query.getDimSize(2))
                         << ") must be num_heads * head_dim = " << heads
                         << " * " << headDim;
  if (!dimsAgree(cache.getDimSize(1), kvHeads))
    return emitOpError() << "cache has " << dimStr(cache.getDimSize(1))
                         << " KV heads, expected num_kv_heads = " << kvHeads;
  if (!dimsAgree(cache.getDimSize(3), headDim))
    return emitOpError() << "cache head size (" << dimStr(cache.getDimSize(3))
                         << ") does not match head_dim (" << headDim << ")";
  if (Value table = getBlockTable()) {
    if (failed(verifyBlockTable(*this, cast<RankedTensorType>(table.getType()),
                                query)))
      return failure();
  } else if (!dimsAgree(cache.getDimSize(0), query.getDimSize(0))) {
    return emitOpError("cache batch does not match the query batch");
  }
  if (!(getScale().convertToFloat() > 0.0f))
    return emitOpError("scale must be positive");
  return verifyTokenDims(*this, getPositions().getType(), "positions", query,
                         "query");
}

//===----------------------------------------------------------------------===//
// LogitsOp
//===----------------------------------------------------------------------===//

int64_t LogitsOp::getVocabSize() {
  return getWeight().getType().getDimSize(
      getLayout() == WeightLayout::out_in ? 0 : 1);
}

LogicalResult LogitsOp::verify() {
  return verifyProjection(*this, getInput().getType(), getWeight().getType(),
                          getLayout(), getResult().getType());
}

//===----------------------------------------------------------------------===//
// ArgmaxOp
//===----------------------------------------------------------------------===//

LogicalResult ArgmaxOp::verify() {
  return verifyTokenDims(*this, getResult().getType(), "result",
                         getLogits().getType(), "logits");
}

LogicalResult SampleOp::verify() {
  auto logits = cast<ShapedType>(getLogits().getType());
  auto params = cast<ShapedType>(getParams().getType());
  auto seeds = cast<ShapedType>(getSeeds().getType());
  auto init = cast<ShapedType>(getInit().getType());
  bool tensors = isa<RankedTensorType>(logits);
  for (Type t : {params, seeds, init})
    if (isa<RankedTensorType>(t) != tensors)
      return emitOpError("operands must be all tensors or all memrefs");
  if (!logits.hasRank() || logits.getRank() != 3 ||
      !isa<FloatType>(logits.getElementType()))
    return emitOpError("logits must be [batch, seq, vocab] floats, got ")
           << logits;
  if (!params.hasRank() || params.getRank() != 2 ||
      !params.getElementType().isF32() ||
      (params.hasStaticShape() && params.getDimSize(1) != 4))
    return emitOpError("params must be [batch, 4] f32 (temperature, top_k, "
                       "top_p, min_p), got ")
           << params;
  if (!seeds.hasRank() || seeds.getRank() != 1 ||
      !seeds.getElementType().isInteger(64))
    return emitOpError("seeds must be [batch] i64, got ") << seeds;
  if (!init.hasRank() || init.getRank() != 2 ||
      !init.getElementType().isInteger(64))
    return emitOpError("init must be [batch, seq] i64, got ") << init;
  auto same = [](int64_t a, int64_t b) {
    return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
  };
  if (!same(logits.getDimSize(0), init.getDimSize(0)) ||
      !same(logits.getDimSize(1), init.getDimSize(1)) ||
      !same(logits.getDimSize(0), params.getDimSize(0)) ||
      !same(logits.getDimSize(0), seeds.getDimSize(0)))
    return emitOpError("batch and seq of logits ")
           << logits << " must match params, seeds and init " << init;
  if (tensors != (getNumResults() == 1) ||
      (tensors && getResult().front().getType() != init))
    return emitOpError(tensors ? "on tensors has one result, the type of init"
                               : "on memrefs has no result");
  return success();
}

void SampleOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  if (!hasPureBufferSemantics())
    return;
  for (OpOperand *in : getDpsInputOperands())
    effects.emplace_back(MemoryEffects::Read::get(), in,
                         SideEffects::DefaultResource::get());
  effects.emplace_back(MemoryEffects::Write::get(), &getInitMutable(),
                       SideEffects::DefaultResource::get());
}

// Collectives: the tensor forms have no effects; bufferized, all_reduce
// sums in place and all_gather writes `init`.
void AllReduceOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  if (!isa<MemRefType>(getInput().getType()))
    return;
  effects.emplace_back(MemoryEffects::Read::get(), &getInputMutable(),
                       SideEffects::DefaultResource::get());
  effects.emplace_back(MemoryEffects::Write::get(), &getInputMutable(),
                       SideEffects::DefaultResource::get());
}

void AllGatherOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  if (!isa<MemRefType>(getInput().getType()))
    return;
  effects.emplace_back(MemoryEffects::Read::get(), &getInputMutable(),
                       SideEffects::DefaultResource::get());
  if (getInit())
    effects.emplace_back(MemoryEffects::Write::get(), &getInitMutable()[0],
                         SideEffects::DefaultResource::get());
}

#define GET_OP_CLASSES
#include "dialects/Tfm/TfmOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Result types (InferTypeOpInterface)
//===----------------------------------------------------------------------===//
//
// Each op's result type follows from its operands (and layout): entry-point
// specialization re-derives them from static operands through the interface.
// The inferred type is only as static as the operands; the importer may
// declare the same dimensions, and each op's verifier reports a mismatch
// with its own message, so any declared type of the right count is
// "compatible" here.

namespace {
RankedTensorType activationLike(Value like, int64_t features, Type elt) {
  auto t = cast<RankedTensorType>(like.getType());
  return RankedTensorType::get({t.getDimSize(0), t.getDimSize(1), features},
                               elt);
}
int64_t outFeatures(Value weight, WeightLayout layout) {
  return cast<RankedTensorType>(weight.getType())
      .getDimSize(layout == WeightLayout::out_in ? 0 : 1);
}
/// [batch, seq, out features] of `input`'s element type.
RankedTensorType projectionResult(Value input, Value weight,
                                  WeightLayout layout) {
  return activationLike(
      input, outFeatures(weight, layout),
      cast<RankedTensorType>(input.getType()).getElementType());
}
} // namespace

LogicalResult EmbeddingOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location>,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  auto table = cast<RankedTensorType>(adaptor.getTable().getType());
  auto ids = cast<RankedTensorType>(adaptor.getIds().getType());
  types.push_back(RankedTensorType::get(
      {ids.getDimSize(0), ids.getDimSize(1), table.getDimSize(1)},
      table.getElementType()));
  return success();
}

LogicalResult DequantizeOp::inferReturnTypes(MLIRContext *,
                                             std::optional<Location>,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &types) {
  auto packed = cast<RankedTensorType>(adaptor.getPacked().getType());
  auto scales = cast<RankedTensorType>(adaptor.getScales().getType());
  int64_t cols = packed.getDimSize(1);
  if (!ShapedType::isDynamic(cols))
    cols = cols * 8 / adaptor.getBits();
  types.push_back(RankedTensorType::get({packed.getDimSize(0), cols},
                                        scales.getElementType()));
  return success();
}

LogicalResult LinearOp::inferReturnTypes(MLIRContext *, std::optional<Location>,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  RankedTensorType type = projectionResult(
      adaptor.getInput(), adaptor.getWeight(), adaptor.getLayout());
  int64_t n = type.getDimSize(2);
  if (adaptor.getSwiglu() && !ShapedType::isDynamic(n))
    type = activationLike(adaptor.getInput(), n / 2, type.getElementType());
  types.push_back(type);
  return success();
}

LogicalResult LogitsOp::inferReturnTypes(MLIRContext *, std::optional<Location>,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  types.push_back(projectionResult(adaptor.getInput(), adaptor.getWeight(),
                                   adaptor.getLayout()));
  return success();
}

LogicalResult ArgmaxOp::inferReturnTypes(MLIRContext *context,
                                         std::optional<Location>,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  auto logits = cast<RankedTensorType>(adaptor.getLogits().getType());
  types.push_back(RankedTensorType::get(logits.getShape().take_front(2),
                                        IntegerType::get(context, 64)));
  return success();
}

// The ops whose result has the type of one operand.
LogicalResult RmsNormOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location>,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &types) {
  types.push_back(adaptor.getInput().getType());
  return success();
}

LogicalResult RopeOp::inferReturnTypes(MLIRContext *, std::optional<Location>,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &types) {
  types.push_back(adaptor.getInput().getType());
  return success();
}

LogicalResult KvAppendOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location>,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &types) {
  types.push_back(adaptor.getCache().getType());
  return success();
}

LogicalResult AttentionOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location>,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  types.push_back(adaptor.getQuery().getType());
  return success();
}

#define KILN_TFM_ANY_COMPATIBLE(Op)                                            \
  bool Op::isCompatibleReturnTypes(TypeRange l, TypeRange r) {                 \
    return l.size() == r.size();                                               \
  }
KILN_TFM_ANY_COMPATIBLE(EmbeddingOp)
KILN_TFM_ANY_COMPATIBLE(DequantizeOp)
KILN_TFM_ANY_COMPATIBLE(LinearOp)
KILN_TFM_ANY_COMPATIBLE(LogitsOp)
KILN_TFM_ANY_COMPATIBLE(ArgmaxOp)
KILN_TFM_ANY_COMPATIBLE(RmsNormOp)
KILN_TFM_ANY_COMPATIBLE(RopeOp)
KILN_TFM_ANY_COMPATIBLE(KvAppendOp)
KILN_TFM_ANY_COMPATIBLE(AttentionOp)
KILN_TFM_ANY_COMPATIBLE(AllGatherOp)
KILN_TFM_ANY_COMPATIBLE(AllReduceOp)
#undef KILN_TFM_ANY_COMPATIBLE

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

// The tensor forms return a tensor; the memref forms nothing.
LogicalResult AllReduceOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location>,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  if (isa<RankedTensorType>(adaptor.getInput().getType()))
    types.push_back(adaptor.getInput().getType());
  return success();
}

LogicalResult AllGatherOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  auto input = dyn_cast<RankedTensorType>(adaptor.getInput().getType());
  if (!input)
    return success();
  int64_t axis = adaptor.getAxis();
  if (axis >= input.getRank())
    return emitOptionalError(loc, "axis ", axis,
                             " is not a dimension of a rank-", input.getRank(),
                             " operand");
  SmallVector<int64_t> shape(input.getShape());
  if (!ShapedType::isDynamic(shape[axis]))
    shape[axis] *= adaptor.getRanks();
  types.push_back(input.clone(shape));
  return success();
}

LogicalResult AllGatherOp::verify() {
  auto input = cast<ShapedType>(getInput().getType());
  const bool buffers = isa<MemRefType>(input);
  if (buffers != static_cast<bool>(getInit()))
    return emitOpError(buffers ? "on buffers needs an `into` buffer"
                               : "on tensors takes no `into` buffer");
  ShapedType result = buffers ? cast<ShapedType>(getInit().getType())
                              : cast<ShapedType>(getResult()[0].getType());
  const int64_t axis = static_cast<int64_t>(getAxis());
  if (axis >= input.getRank())
    return emitOpError() << "axis " << axis << " is not a dimension of a rank-"
                         << input.getRank() << " operand";
  if (result.getRank() != input.getRank() ||
      result.getElementType() != input.getElementType())
    return emitOpError("result must have the operand's rank and element type");
  for (int64_t d = 0; d < input.getRank(); ++d) {
    int64_t in = input.getDimSize(d);
    if (d == axis && !ShapedType::isDynamic(in))
      in *= static_cast<int64_t>(getRanks());
    if (!dimsAgree(in, result.getDimSize(d)))
      return emitOpError() << "result dim " << d << " ("
                           << dimStr(result.getDimSize(d)) << ") must be "
                           << (d == axis ? "ranks x the operand's"
                                         : "the operand's")
                           << " (" << dimStr(in) << ")";
  }
  return success();
}
