//===- Raise.cpp - Raise the residual stream of an ONNX Llama graph -------===//
//
// Embedding, RMSNorm, projections, SwiGLU, residual adds and logits; the
// attention block is in RaiseAttention.cpp.
//
//===----------------------------------------------------------------------===//

#include "OnnxAttrs.h"
#include "Raiser.h"
#include "ShapeRules.h"

#include "kiln/Import/OnnxImporter.h"
#include "kiln/InitAllDialects.h"

#include "mlir/Dialect/MLProgram/IR/MLProgram.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <cstring>

using namespace kiln;
using namespace mlir;
using llvm::formatv;
using llvm::StringRef;

Type kiln::elementTypeFor(MLIRContext *ctx, int32_t dtype) {
  switch (dtype) {
  case onnx::TensorProto::FLOAT:
    return Float32Type::get(ctx);
  case onnx::TensorProto::FLOAT16:
    return Float16Type::get(ctx);
  case onnx::TensorProto::BFLOAT16:
    return BFloat16Type::get(ctx);
  default:
    return {};
  }
}

namespace {
bool isFloatType(int32_t dtype) {
  return dtype == onnx::TensorProto::FLOAT ||
         dtype == onnx::TensorProto::FLOAT16 ||
         dtype == onnx::TensorProto::BFLOAT16 ||
         dtype == onnx::TensorProto::DOUBLE;
}
} // namespace

Raiser::Raiser(const OnnxModel &model, const ShapeInference &shapes,
               ModuleOp module)
    : ctx(module.getContext()), builder(module.getContext()), model(model),
      shapes(shapes), module(module) {}

//===----------------------------------------------------------------------===//
// Graph queries
//===----------------------------------------------------------------------===//

StringRef Raiser::skipCasts(StringRef value) const {
  while (const onnx::NodeProto *n = model.producer(value)) {
    if (n->op_type() == "Identity") {
      value = n->input(0);
      continue;
    }
    if (n->op_type() != "Cast")
      break;
    const ValueFacts *from = shapes.get(n->input(0));
    if (!from || !isFloatType(from->dtype) ||
        !isFloatType(static_cast<int32_t>(attrInt(*n, "to", 0))))
      break;
    value = n->input(0);
  }
  return value;
}

const onnx::NodeProto *Raiser::producerIs(StringRef value,
                                          StringRef opType) const {
  const onnx::NodeProto *n = model.producer(skipCasts(value));
  return n && n->op_type() == opType ? n : nullptr;
}

const ConstTensor *Raiser::constantThroughReshapes(StringRef value) const {
  while (true) {
    if (const ConstTensor *c = model.constant(value))
      return c;
    const onnx::NodeProto *n = model.producer(value);
    if (!n || !llvm::is_contained({"Cast", "Identity", "Reshape", "Unsqueeze",
                                   "Squeeze", "Expand"},
                                  n->op_type()))
      return nullptr;
    value = n->input(0);
  }
}

std::optional<double> Raiser::scalarConstant(StringRef value) const {
  const ConstTensor *c = constantThroughReshapes(value);
  if (!c || c->numElements() != 1)
    return std::nullopt;
  return c->asDouble(0);
}

std::optional<std::vector<int64_t>> Raiser::constInts(StringRef value) const {
  const ValueFacts *f = shapes.get(value);
  if (!f || !f->ints)
    return std::nullopt;
  std::vector<int64_t> r;
  for (const Poly &p : *f->ints) {
    if (!p.isConstant())
      return std::nullopt;
    r.push_back(p.constantValue());
  }
  return r;
}

bool Raiser::dependsOnWeights(StringRef value) {
  auto it = weightDeps_.find(value);
  if (it != weightDeps_.end())
    return it->second;
  weightDeps_[value] = false; // breaks cycles in malformed graphs
  bool result = false;
  if (const ConstTensor *c = model.constant(value)) {
    // Float weights, or the 8- and 4-bit codes of quantized ones.
    bool codes = llvm::is_contained(
        {static_cast<int32_t>(onnx::TensorProto::INT8),
         static_cast<int32_t>(onnx::TensorProto::UINT8), kOnnxInt4, kOnnxUint4},
        c->dtype);
    result = (isFloatType(c->dtype) || codes) && c->dims.size() >= 2 &&
             c->numElements() > 64;
  } else if (const onnx::NodeProto *n = model.producer(value)) {
    // Shape and Size read only dimensions, never data.
    if (n->op_type() == "Shape" || n->op_type() == "Size")
      return weightDeps_[value] = false;
    for (const std::string &in : n->input())
      if (!in.empty() && dependsOnWeights(in)) {
        result = true;
        break;
      }
  }
  return weightDeps_[value] = result;
}

/// The nearest node upstream of `node`'s inputs (breadth first, at most
/// `depth` producers deep) whose op type Kiln does not know (no shape rule:
/// nothing Kiln raises), or null.
static const onnx::NodeProto *unknownProducer(const OnnxModel &model,
                                              const onnx::NodeProto &node,
                                              int depth = 16) {
  std::vector<const onnx::NodeProto *> frontier{&node};
  llvm::DenseSet<const onnx::NodeProto *> seen{&node};
  for (int d = 0; d < depth && !frontier.empty(); ++d) {
    std::vector<const onnx::NodeProto *> next;
    for (const onnx::NodeProto *n : frontier)
      for (const std::string &in : n->input()) {
        const onnx::NodeProto *p = in.empty() ? nullptr : model.producer(in);
        if (!p || !seen.insert(p).second)
          continue;
        if (p->op_type() != "Constant" && !shapeRule(p->op_type()))
          return p;
        next.push_back(p);
      }
    frontier = std::move(next);
  }
  return nullptr;
}

Value Raiser::fail(const onnx::NodeProto &node, const llvm::Twine &message) {
  std::string text = describeNode(node) + ": " + message.str();
  // What cannot be raised often only reads what Kiln does not know: name it.
  if (const onnx::NodeProto *unknown = unknownProducer(model, node))
    text += " (it reads the output of " + describeNode(*unknown) +
            ", an op type Kiln does not support)";
  return fail(text);
}

Value Raiser::fail(const llvm::Twine &message) {
  if (!error_)
    error_ = message.str();
  return {};
}

Location Raiser::loc(const onnx::NodeProto &node) {
  return NameLoc::get(
      StringAttr::get(ctx, node.name().empty() ? node.op_type() : node.name()));
}

RankedTensorType Raiser::activationType(int64_t features) const {
  return RankedTensorType::get(
      {ShapedType::kDynamic, ShapedType::kDynamic, features}, elementType);
}

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

Value Raiser::weight(StringRef name, const onnx::NodeProto &user) {
  auto it = weights_.find(name);
  if (it != weights_.end())
    return it->second;
  const ConstTensor *c = model.constant(name);
  if (!c && madeTable && name == madeTable->name) {
    // Made at import: the module gets its own copy (the Raiser's goes).
    c = madeTable.get();
    return constantWeight(name, RankedTensorType::get(c->dims, elementType),
                          HeapAsmResourceBlob::allocateAndCopyWithAlign(
                              c->bytes, onnxTypeSize(c->dtype)),
                          user);
  }
  if (!c)
    return fail(user, "expected '" + name + "' to be an initializer");
  Type elt = elementTypeFor(ctx, c->dtype);
  if (!elt)
    return fail(user, formatv("weight '{0}' has data type {1}; Kiln supports "
                              "FLOAT, FLOAT16 and BFLOAT16 weights",
                              name, onnxTypeName(c->dtype)));
  if (elt != elementType)
    return fail(user, formatv("weight '{0}' has data type {1}, but the model's "
                              "activations are {2}",
                              name, onnxTypeName(c->dtype),
                              onnxTypeName(embeddingTable->dtype)));
  auto type = RankedTensorType::get(c->dims, elt);
  return constantWeight(name, type, c->bytes, onnxTypeSize(c->dtype), user);
}

Value Raiser::constantWeight(StringRef symbol, RankedTensorType type,
                             ArrayRef<char> bytes, size_t align,
                             const onnx::NodeProto &user) {
  auto it = weights_.find(symbol);
  if (it != weights_.end())
    return it->second;
  // Reference the bytes in place; copy only if misaligned.
  AsmResourceBlob blob =
      reinterpret_cast<uintptr_t>(bytes.data()) % align == 0
          ? UnmanagedAsmResourceBlob::allocateWithAlign(bytes, align)
          : HeapAsmResourceBlob::allocateAndCopyWithAlign(bytes, align);
  return constantWeight(symbol, type, std::move(blob), user);
}

Value Raiser::constantWeight(StringRef symbol, RankedTensorType type,
                             AsmResourceBlob blob,
                             const onnx::NodeProto &user) {
  auto it = weights_.find(symbol);
  if (it != weights_.end())
    return it->second;
  auto value =
      DenseResourceElementsAttr::get(type, symbol.str(), std::move(blob));

  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPoint(func);
  auto global = ml_program::GlobalOp::create(builder, loc(user), symbol, type,
                                             /*is_mutable=*/false, value,
                                             builder.getStringAttr("private"));
  SymbolTable(module).insert(global, Block::iterator(func));
  builder.setInsertionPointToStart(&func.getBody().front());
  // Loads go at the top of the function so every use is dominated.
  if (!weights_.empty()) {
    Operation *last = nullptr;
    for (auto &kv : weights_)
      if (Operation *op = kv.second.getDefiningOp())
        if (!last || last->isBeforeInBlock(op))
          last = op;
    if (last)
      builder.setInsertionPointAfter(last);
  }
  Value load = ml_program::GlobalLoadConstOp::create(
      builder, global.getLoc(), type,
      FlatSymbolRefAttr::get(global.getSymNameAttr()));
  return weights_[symbol] = load;
}

//===----------------------------------------------------------------------===//
// Residual-stream patterns
//===----------------------------------------------------------------------===//

Value Raiser::activation(StringRef value) {
  if (failed())
    return {};
  StringRef v = skipCasts(value);
  auto it = memo_.find(v);
  if (it != memo_.end())
    return it->second;
  const onnx::NodeProto *node = model.producer(v);
  if (!node)
    return fail(formatv("'{0}' is used as a hidden state but is a graph input "
                        "or constant, not computed from the tokens",
                        v));
  Value result = raiseNode(*node, v);
  if (result) {
    auto type = cast<RankedTensorType>(result.getType());
    std::optional<int64_t> features = shapes.staticDim(v, -1);
    if (features && type.getDimSize(2) != *features)
      return fail(*node, formatv("raised to {0} features, but the graph says "
                                 "{1}",
                                 type.getDimSize(2), *features));
  }
  return memo_[v] = result;
}

Value Raiser::raiseNode(const onnx::NodeProto &node, StringRef value) {
  const std::string &op = node.op_type();
  if (op == "Gather" || op == "GatherBlockQuantized" ||
      (op == "DequantizeLinear" && &node == embeddingNode))
    return embedding(node);
  if (op == "MatMul" || op == "Gemm")
    return linear(node, /*bias=*/"");
  if (op == "MatMulNBits")
    return quantizedLinear(node, /*bias=*/"");
  if (op == "Reshape")
    return attentionBlock(node);
  if (op == "RMSNormalization" || op == "SimplifiedLayerNormalization" ||
      op == "SkipSimplifiedLayerNormalization")
    return fusedRmsNorm(node, value);
  if (op == "Attention")
    return onnxAttention(node, /*headMerge=*/nullptr);
  if (op == "GroupQueryAttention")
    return groupQueryAttention(node);
  if (op == "Add") {
    // Projection bias: Add(MatMul(x, W), b) with a 1-D constant b.
    for (int i = 0; i < 2; ++i) {
      const ConstTensor *b = model.constant(node.input(i));
      const onnx::NodeProto *mm = producerIs(node.input(1 - i), "MatMul");
      if (b && b->dims.size() == 1 && mm)
        return linear(*mm, node.input(i));
      const onnx::NodeProto *q = producerIs(node.input(1 - i), "MatMulNBits");
      if (b && b->dims.size() == 1 && q)
        return quantizedLinear(*q, node.input(i));
    }
    Value lhs = activation(node.input(0));
    Value rhs = activation(node.input(1));
    if (!lhs || !rhs)
      return {};
    if (lhs.getType() != rhs.getType())
      return fail(node, "residual operands have different shapes");
    return tfm::AddOp::create(builder, loc(node), lhs, rhs);
  }
  if (op == "Mul") {
    if (Value v = integerLinear(node))
      return v;
    if (failed())
      return {};
    for (int i = 0; i < 2; ++i) {
      const ConstTensor *w = model.constant(node.input(i));
      if (w && w->dims.size() == 1)
        return rmsNorm(node);
    }
    return swiglu(node);
  }
  return fail(node, "cannot raise this node on the residual stream: expected "
                    "an embedding Gather, a residual Add, an RMSNorm or "
                    "SwiGLU Mul, a projection MatMul, an attention-output "
                    "Reshape, or a fused RMSNorm or attention op");
}

Value Raiser::embedding(const onnx::NodeProto &gather) {
  if (&gather != embeddingNode) {
    const ConstTensor *table = model.constant(gather.input(0));
    if (!table || table->dims.size() != 2 ||
        !model.graphInput(gather.input(1)) || attrInt(gather, "axis", 0) != 0)
      return fail(gather, "expected an embedding lookup: Gather(axis=0) of a "
                          "2-D initializer by the token-id graph input");
    return fail(gather, "a second embedding table");
  }
  const ConstTensor *table = embeddingTable;
  if (table->dims.size() != 2)
    return fail(gather, "expected a 2-D embedding table");
  Value w = weight(table->name, gather);
  if (!w)
    return {};
  return tfm::EmbeddingOp::create(builder, loc(gather),
                                  activationType(table->dims[1]), w, tokens,
                                  /*first_row=*/Value());
}

Value Raiser::rmsNorm(const onnx::NodeProto &mul) {
  // Mul(weight, normed) or Mul(normed, weight).
  int wi = model.constant(mul.input(0)) ? 0 : 1;
  StringRef weightName = mul.input(wi);
  StringRef normed = skipCasts(mul.input(1 - wi));
  auto mismatch = [&](const llvm::Twine &what) {
    return fail(mul,
                "expected RMSNorm (x * 1/sqrt(mean(x^2) + eps) * weight): " +
                    what);
  };
  const onnx::NodeProto *scaleNode = model.producer(normed);
  if (!scaleNode ||
      (scaleNode->op_type() != "Mul" && scaleNode->op_type() != "Div"))
    return mismatch("the weight multiplies neither a Mul nor a Div");

  // Find x and the Sqrt(mean + eps) it is divided by.
  StringRef x, sqrtValue;
  if (scaleNode->op_type() == "Div") {
    x = scaleNode->input(0);
    sqrtValue = scaleNode->input(1);
  } else {
    for (int i = 0; i < 2 && sqrtValue.empty(); ++i) {
      StringRef r = skipCasts(scaleNode->input(i));
      const onnx::NodeProto *rn = model.producer(r);
      if (!rn)
        continue;
      if (rn->op_type() == "Reciprocal") {
        sqrtValue = rn->input(0);
      } else if (rn->op_type() == "Div") {
        std::optional<double> one = scalarConstant(rn->input(0));
        if (one && *one == 1.0)
          sqrtValue = rn->input(1);
      }
      if (!sqrtValue.empty())
        x = scaleNode->input(1 - i);
    }
  }
  const onnx::NodeProto *sqrtNode =
      sqrtValue.empty() ? nullptr : producerIs(sqrtValue, "Sqrt");
  if (!sqrtNode)
    return mismatch("no Reciprocal(Sqrt(...)), Div(1, Sqrt(...)) or "
                    "Div(x, Sqrt(...))");
  const onnx::NodeProto *addEps = producerIs(sqrtNode->input(0), "Add");
  if (!addEps)
    return mismatch("Sqrt's input is not mean + eps");
  std::optional<double> eps;
  const onnx::NodeProto *mean = nullptr;
  for (int i = 0; i < 2; ++i)
    if ((eps = scalarConstant(addEps->input(i)))) {
      mean = producerIs(addEps->input(1 - i), "ReduceMean");
      break;
    }
  if (!eps || !mean)
    return mismatch("the Add before Sqrt is not ReduceMean + constant eps");
  const onnx::NodeProto *square = model.producer(skipCasts(mean->input(0)));
  bool squares =
      square && ((square->op_type() == "Pow" &&
                  scalarConstant(square->input(1)) == 2.0) ||
                 (square->op_type() == "Mul" &&
                  skipCasts(square->input(0)) == skipCasts(square->input(1))));
  if (!squares)
    return mismatch("ReduceMean's input is not x^2");
  if (skipCasts(square->input(0)) != skipCasts(x))
    return mismatch("the squared value is not the normalized value");
  // The mean must be over the last axis only.
  std::vector<int64_t> axes = attrInts(*mean, "axes");
  if (mean->input_size() > 1)
    if (auto a = constInts(mean->input(1)))
      axes = *a;
  std::optional<size_t> rank = shapes.rank(mean->input(0));
  if (axes.size() != 1 || !rank ||
      (axes[0] != -1 && axes[0] != static_cast<int64_t>(*rank) - 1))
    return mismatch("ReduceMean is not over the last axis");

  Value input = activation(x);
  Value w = weight(weightName, mul);
  if (!input || !w)
    return {};
  return tfm::RmsNormOp::create(builder, loc(mul), input.getType(), input, w,
                                builder.getF32FloatAttr(*eps));
}

Value Raiser::swiglu(const onnx::NodeProto &mul) {
  // Mul(silu(gate), up) in either order, silu(g) = Mul(g, Sigmoid(g)).
  for (int i = 0; i < 2; ++i) {
    const onnx::NodeProto *silu = producerIs(mul.input(i), "Mul");
    if (!silu)
      continue;
    for (int j = 0; j < 2; ++j) {
      const onnx::NodeProto *sig = producerIs(silu->input(j), "Sigmoid");
      if (!sig || skipCasts(sig->input(0)) != skipCasts(silu->input(1 - j)))
        continue;
      Value gate = activation(silu->input(1 - j));
      Value up = activation(mul.input(1 - i));
      if (!gate || !up)
        return {};
      if (gate.getType() != up.getType())
        return fail(mul, "SwiGLU gate and up projections differ in shape");
      return tfm::SwiGluOp::create(builder, loc(mul), gate, up);
    }
  }
  return fail(mul, "expected RMSNorm (a Mul by a 1-D weight) or SwiGLU "
                   "(Mul(Mul(g, Sigmoid(g)), up)), found neither");
}

std::optional<std::pair<const ConstTensor *, tfm::WeightLayout>>
Raiser::projectionWeight(const onnx::NodeProto &node) {
  StringRef w = node.input(1);
  bool transB = node.op_type() == "Gemm" && attrInt(node, "transB", 0);
  if (const ConstTensor *c = model.constant(w))
    if (c->dims.size() == 2)
      return std::make_pair(c, transB ? tfm::WeightLayout::out_in
                                      : tfm::WeightLayout::in_out);
  if (const onnx::NodeProto *t = model.producer(w))
    if (t->op_type() == "Transpose" && !transB) {
      std::vector<int64_t> perm = attrInts(*t, "perm");
      const ConstTensor *c = model.constant(t->input(0));
      if (c && c->dims.size() == 2 &&
          (perm.empty() || perm == std::vector<int64_t>{1, 0}))
        return std::make_pair(c, tfm::WeightLayout::out_in);
    }
  return std::nullopt;
}

Value Raiser::linear(const onnx::NodeProto &mm, StringRef bias) {
  if (const onnx::NodeProto *dq = producerIs(mm.input(1), "DequantizeLinear"))
    if (mm.op_type() == "MatMul")
      return quantizedLinear(*dq, mm, bias);
  auto w = projectionWeight(mm);
  if (!w)
    return fail(mm, "expected a projection by a 2-D weight initializer (or "
                    "its Transpose)");
  if (mm.op_type() == "Gemm") {
    if (attrInt(mm, "transA", 0) || attrFloat(mm, "alpha", 1.0f) != 1.0f ||
        attrFloat(mm, "beta", 1.0f) != 1.0f)
      return fail(mm, "only Gemm with transA=0, alpha=1, beta=1 is supported");
    if (mm.input_size() > 2 && !mm.input(2).empty())
      bias = mm.input(2);
  }
  auto [tensor, layout] = *w;
  int64_t n = tensor->dims[layout == tfm::WeightLayout::out_in ? 0 : 1];
  Value input = activation(mm.input(0));
  Value wv = weight(tensor->name, mm);
  Value b = projectionBias(mm, bias, n);
  if (!input || !wv || (!bias.empty() && !b))
    return {};
  return tfm::LinearOp::create(builder, loc(mm), activationType(n), input, wv,
                               b, tfm::WeightLayoutAttr::get(ctx, layout),
                               /*rms_norm_epsilon=*/nullptr,
                               /*swiglu=*/nullptr);
}

Value Raiser::projectionBias(const onnx::NodeProto &node, StringRef bias,
                             int64_t n) {
  if (bias.empty())
    return {};
  const ConstTensor *bt = model.constant(bias);
  if (!bt || bt->dims.size() != 1 || bt->dims[0] != n)
    return fail(node, formatv("bias '{0}' is not a 1-D initializer of {1} "
                              "elements",
                              bias, n));
  return weight(bias, node);
}

bool Raiser::isTransposedCopy(const ConstTensor &a,
                              const ConstTensor &b) const {
  // a is [V, H]; b is [H, V]; equal if b[h][v] == a[v][h] bytewise.
  if (a.dtype != b.dtype || a.dims.size() != 2 || b.dims.size() != 2 ||
      a.dims[0] != b.dims[1] || a.dims[1] != b.dims[0])
    return false;
  size_t es = onnxTypeSize(a.dtype);
  int64_t rows = a.dims[0], cols = a.dims[1];
  // Both tables are read whole when they are equal (a tied 128K-token
  // vocabulary: 1 GB of pages or more), and b in columns: a fault in a file
  // mapping maps a whole large folio of the page cache, so each row of b
  // touched brings in far more than the element read. Compare in tiles (a band
  // of a's rows by a block of b's rows) and hand each tile's pages back to the
  // file when it is done.
  constexpr int64_t kBand = 4096, kBlock = 256;
  for (int64_t v0 = 0; v0 < rows; v0 += kBand) {
    int64_t v1 = std::min(rows, v0 + kBand);
    for (int64_t h0 = 0; h0 < cols; h0 += kBlock) {
      int64_t h1 = std::min(cols, h0 + kBlock);
      for (int64_t v = v0; v < v1; ++v)
        for (int64_t h = h0; h < h1; ++h)
          if (std::memcmp(a.bytes.data() + (v * cols + h) * es,
                          b.bytes.data() + (h * rows + v) * es, es) != 0)
            return false;
      for (int64_t h = h0; h < h1; ++h)
        model.releasePages(b.bytes.slice((h * rows + v0) * es, (v1 - v0) * es));
    }
    model.releasePages(a.bytes.slice(v0 * cols * es, (v1 - v0) * cols * es));
  }
  return true;
}

Value Raiser::logits(StringRef output) {
  const onnx::NodeProto *mm = producerIs(output, "MatMul");
  if (!mm)
    mm = producerIs(output, "Gemm");
  if (const onnx::NodeProto *q = producerIs(output, "MatMulNBits")) {
    // A quantized lm_head (onnxruntime-genai, transformers.js q4): its own
    // weight, never tied.
    Value input = activation(q->input(0));
    Value w = input ? quantizedWeight(*q) : Value();
    if (!w)
      return {};
    int64_t vocab = cast<RankedTensorType>(w.getType()).getDimSize(0);
    auto op = tfm::LogitsOp::create(
        builder, loc(*q), activationType(vocab), input, w,
        tfm::WeightLayoutAttr::get(ctx, tfm::WeightLayout::out_in));
    // The builder's tied int4 embedding gathers from the lm_head's codes.
    if (embeddingNode->op_type() == "GatherBlockQuantized" &&
        constantThroughReshapes(embeddingNode->input(0)) ==
            model.constant(q->input(1)))
      op.setTied(true);
    return op;
  }
  const onnx::NodeProto *dqLogits =
      mm && mm->op_type() == "MatMul"
          ? producerIs(mm->input(1), "DequantizeLinear")
          : nullptr;
  if (dqLogits && embeddingNode &&
      embeddingNode->op_type() == "DequantizeLinear") {
    // quantize_dynamic's tied lm_head: DequantizeLinear(Transpose(W_q)) of
    // the embedding's codes and scale, i.e. the dequantized table.
    const onnx::NodeProto *t = producerIs(dqLogits->input(0), "Transpose");
    const onnx::NodeProto *gather = model.producer(embeddingNode->input(0));
    auto same = [&](int i) {
      // (StringRef on both arms: `? input(i) : ""` would be a temporary
      // std::string, gone before the comparison.)
      StringRef a = i < dqLogits->input_size() ? StringRef(dqLogits->input(i))
                                               : StringRef();
      StringRef b = i < embeddingNode->input_size()
                        ? StringRef(embeddingNode->input(i))
                        : StringRef();
      return a == b;
    };
    if (t && gather && t->input(0) == gather->input(0) && same(1) && same(2)) {
      Value input = activation(mm->input(0));
      Value wv = input ? weight(embeddingTable->name, *mm) : Value();
      if (!wv)
        return {};
      auto op = tfm::LogitsOp::create(
          builder, loc(*mm), activationType(embeddingTable->dims[0]), input, wv,
          tfm::WeightLayoutAttr::get(ctx, tfm::WeightLayout::out_in));
      op.setTied(true);
      return op;
    }
  }
  if (const onnx::NodeProto *dq = dqLogits) {
    Value input = activation(mm->input(0));
    Value w = input ? dequantizeLinearWeight(*dq) : Value();
    if (!w)
      return {};
    int64_t vocab = cast<RankedTensorType>(w.getType()).getDimSize(0);
    return tfm::LogitsOp::create(
        builder, loc(*mm), activationType(vocab), input, w,
        tfm::WeightLayoutAttr::get(ctx, tfm::WeightLayout::out_in));
  }
  if (!mm) {
    const onnx::NodeProto *n = model.producer(skipCasts(output));
    return n ? fail(*n, "expected the logits to come from a MatMul by the "
                        "output-embedding weight")
             : fail("the logits output '" + output + "' is not computed");
  }
  auto w = projectionWeight(*mm);
  if (!w)
    return fail(*mm, "expected the logits projection by a 2-D weight "
                     "initializer (or its Transpose)");
  Value input = activation(mm->input(0));
  if (!input)
    return {};
  auto [tensor, layout] = *w;
  bool tied = tensor == embeddingTable;
  if (!tied && embeddingTable && layout == tfm::WeightLayout::in_out &&
      isTransposedCopy(*embeddingTable, *tensor)) {
    // TorchScript exports store the tied lm_head as a transposed copy of the
    // embedding table: use the table itself and store the weights once.
    tied = true;
    tensor = embeddingTable;
    layout = tfm::WeightLayout::out_in;
  }
  Value wv = weight(tensor->name, *mm);
  if (!wv)
    return {};
  int64_t vocab = tensor->dims[layout == tfm::WeightLayout::out_in ? 0 : 1];
  auto op =
      tfm::LogitsOp::create(builder, loc(*mm), activationType(vocab), input, wv,
                            tfm::WeightLayoutAttr::get(ctx, layout));
  if (tied)
    op.setTied(true);
  return op;
}
