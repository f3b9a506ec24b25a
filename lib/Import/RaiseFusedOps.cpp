//===- RaiseFusedOps.cpp - Raise the fused norm ops and RoPE tables -------===//
//
// RMSNorm as one op (ONNX opset 23's RMSNormalization, onnxruntime's
// SimplifiedLayerNormalization and com.microsoft::SkipSimplifiedLayer-
// Normalization, whose fourth output is the residual sum), the RoPE
// inverse frequencies read back from the cos/sin tables that
// RotaryEmbedding and GroupQueryAttention take, and what onnxruntime-genai's
// model builder writes around them: the embedding as Gather(Transpose(W))
// or GatherBlockQuantized, and packed QKV projections.
//
//===----------------------------------------------------------------------===//

#include "OnnxAttrs.h"
#include "Raiser.h"

#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <cstring>

using namespace kiln;
using namespace mlir;
using llvm::formatv;
using llvm::StringRef;

Value Raiser::fusedRmsNorm(const onnx::NodeProto &node, StringRef value) {
  const std::string &op = node.op_type();
  bool skip = op == "SkipSimplifiedLayerNormalization";
  if (skip && node.domain() != "com.microsoft")
    return fail(node, "SkipSimplifiedLayerNormalization is onnxruntime's "
                      "(domain com.microsoft)");
  if (!skip) {
    int64_t axis = attrInt(node, "axis", -1);
    std::optional<size_t> rank = shapes.rank(node.input(0));
    if (axis != -1 && (!rank || axis != static_cast<int64_t>(*rank) - 1))
      return fail(node, formatv("normalizes from axis {0}; Kiln's RMSNorm is "
                                "over the last axis",
                                axis));
  }
  if (skip && node.input_size() > 3 && !node.input(3).empty())
    return fail(node, "a bias input is not supported");
  bool sumOut = skip && node.output_size() > 3 && value == node.output(3);
  if (value != node.output(0) && !sumOut)
    return fail(node, formatv("output '{0}' is used on the residual stream; "
                              "only the normalized output{1} can be",
                              value, skip ? " and the residual sum" : ""));

  Value x;
  if (skip) {
    // The residual sum is output 3 when the graph names it: raise it once
    // through the memo so the next layer's skip input shares it.
    if (!sumOut && node.output_size() > 3 && !node.output(3).empty()) {
      x = activation(node.output(3));
    } else {
      Value a = activation(node.input(0));
      Value b = a ? activation(node.input(1)) : Value();
      if (!a || !b)
        return {};
      if (a.getType() != b.getType())
        return fail(node, "input and skip have different shapes");
      x = tfm::AddOp::create(builder, loc(node), a, b);
    }
    if (sumOut)
      return x;
  } else {
    x = activation(node.input(0));
  }
  if (!x)
    return {};
  StringRef scale = node.input(skip ? 2 : 1);
  const ConstTensor *w = model.constant(scale);
  auto features = cast<RankedTensorType>(x.getType()).getDimSize(2);
  if (!w || w->dims.size() != 1 || w->dims[0] != features)
    return fail(node, formatv("the scale '{0}' is not a 1-D initializer of "
                              "{1} elements",
                              scale, features));
  Value wv = weight(scale, node);
  if (!wv)
    return {};
  return tfm::RmsNormOp::create(
      builder, loc(node), x.getType(), x, wv,
      builder.getF32FloatAttr(attrFloat(node, "epsilon", 1e-5f)));
}

Value Raiser::ropeFromCaches(const onnx::NodeProto &node, StringRef cosName,
                             StringRef sinName, int64_t headDim,
                             double &scaling) {
  const ConstTensor *c = constantThroughReshapes(cosName);
  const ConstTensor *s = constantThroughReshapes(sinName);
  int64_t half = headDim / 2;
  if (!c || !s || c->dims.size() != 2 || c->dims != s->dims ||
      c->dims[1] != half || c->dims[0] < 2)
    return fail(node, formatv("expected cos_cache and sin_cache to be "
                              "constant [max_pos >= 2, head_dim / 2 = {0}] "
                              "tables",
                              half));
  int64_t rows = c->dims[0];
  auto at = [&](const ConstTensor *t, int64_t p, int64_t i) {
    return t->asDouble(p * half + i);
  };
  // Row 0 holds cos(0) * scaling = scaling and sin(0) = 0.
  scaling = at(c, 0, 0);
  if (!(scaling > 0))
    return fail(node, "cos_cache row 0 is not a positive constant (cos(0) "
                      "times the attention scaling)");
  // The angle of row p is p * inv_freq: estimate inv_freq from row 1, then
  // refine it from rows 2, 4, 8, ... and the last row, choosing the turn
  // count nearest the estimate, so its error shrinks with p.
  std::vector<int64_t> probes;
  for (int64_t p = 2; p < rows - 1; p *= 2)
    probes.push_back(p);
  if (rows > 2)
    probes.push_back(rows - 1);
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; ++i) {
    double est = std::atan2(at(s, 1, i), at(c, 1, i));
    for (int64_t p : probes) {
      double a = std::atan2(at(s, p, i), at(c, p, i));
      double turns = std::round((p * est - a) / (2 * M_PI));
      est = (a + 2 * M_PI * turns) / p;
    }
    // Tables computed in float32 (as transformers and the model builder do:
    // float(p) * inv_freq, then cos and sin) are matched exactly by one of
    // the floats next to the estimate: take the one that reproduces them
    // best.
    float best = static_cast<float>(est);
    double bestErr = INFINITY;
    float cand = best;
    for (int k = 0; k < 4; ++k)
      cand = std::nextafter(cand, -INFINITY);
    for (int k = 0; k <= 8; ++k, cand = std::nextafter(cand, INFINITY)) {
      double err = 0;
      for (int64_t p = 1; p < rows; ++p) {
        float angle = static_cast<float>(p) * cand;
        err += std::abs(at(c, p, i) - scaling * std::cos(angle)) +
               std::abs(at(s, p, i) - scaling * std::sin(angle));
      }
      if (err < bestErr) {
        bestErr = err;
        best = cand;
      }
    }
    inv[i] = best;
  }
  // Every row must be what tfm.rope computes, within the tables' precision.
  double tol = c->dtype == onnx::TensorProto::FLOAT     ? 2e-4
               : c->dtype == onnx::TensorProto::FLOAT16 ? 4e-3
                                                        : 2e-2;
  for (int64_t p = 0; p < rows; ++p)
    for (int64_t i = 0; i < half; ++i) {
      float angle = static_cast<float>(p) * inv[i];
      if (std::abs(at(c, p, i) - scaling * std::cos(angle)) > tol * scaling ||
          std::abs(at(s, p, i) - scaling * std::sin(angle)) > tol * scaling)
        return fail(node, formatv("cos_cache/sin_cache row {0}, column {1} is "
                                  "not cos/sin(position * inv_freq) of one "
                                  "inverse frequency per column",
                                  p, i));
    }
  return setInvFreq(node, inv);
}

//===----------------------------------------------------------------------===//
// The embedding lookup
//===----------------------------------------------------------------------===//

bool Raiser::findEmbedding(StringRef ids) {
  const onnx::NodeProto *fallback = nullptr;
  for (const onnx::NodeProto *user : model.consumers(ids)) {
    if (user->input_size() < 2 || user->input(1) != ids)
      continue;
    const std::string &op = user->op_type();
    if (op == "Gather" && attrInt(*user, "axis", 0) == 0) {
      if (const ConstTensor *c = model.constant(user->input(0))) {
        if (!elementTypeFor(ctx, c->dtype) && !fallback) {
          // Codes: dequantized below, or refused by its data type.
          fallback = user;
          continue;
        }
        embeddingNode = user;
        embeddingTable = c;
        return true;
      }
      // Gather(Transpose(W [H, V]), ids): the builder's tied embedding,
      // which shares the lm_head's [H, V] weight. The [V, H] table is
      // made here; the logits then use it too (tied).
      const onnx::NodeProto *t = model.producer(user->input(0));
      const ConstTensor *w = t && t->op_type() == "Transpose"
                                 ? model.constant(t->input(0))
                                 : nullptr;
      std::vector<int64_t> perm =
          t ? attrInts(*t, "perm") : std::vector<int64_t>{};
      if (!w || w->dims.size() != 2 ||
          !(perm.empty() || perm == std::vector<int64_t>{1, 0}))
        continue;
      const int64_t h = w->dims[0], v = w->dims[1];
      const size_t es = onnxTypeSize(w->dtype);
      madeTableBytes.assign(w->bytes.size(), 0);
      for (int64_t row = 0; row < v; ++row)
        for (int64_t col = 0; col < h; ++col)
          std::memcpy(&madeTableBytes[(row * h + col) * es],
                      w->bytes.data() + (col * v + row) * es, es);
      madeTable = std::make_unique<ConstTensor>();
      madeTable->name = w->name + ".transposed";
      madeTable->dtype = w->dtype;
      madeTable->dims = {v, h};
      madeTable->bytes = madeTableBytes;
      embeddingNode = user;
      embeddingTable = madeTable.get();
      return true;
    }
    if (op == "GatherBlockQuantized") {
      embeddingNode = user;
      return makeDequantizedTable(*user);
    }
  }
  // DequantizeLinear(Gather(W_q, ids)): onnxruntime's quantize_dynamic
  // stores the table as 8-bit codes with one scale (and zero point).
  for (const onnx::NodeProto *user : model.consumers(ids)) {
    if (user->op_type() != "Gather" || user->input_size() < 2 ||
        user->input(1) != ids || attrInt(*user, "axis", 0) != 0)
      continue;
    const ConstTensor *q = model.constant(user->input(0));
    auto users = model.consumers(user->output(0));
    if (!q || q->dims.size() != 2 || users.size() != 1 ||
        users.front()->op_type() != "DequantizeLinear")
      continue;
    embeddingNode = users.front();
    return makeDequantizeLinearTable(*embeddingNode, *q);
  }
  if (fallback) {
    embeddingNode = fallback;
    embeddingTable = model.constant(fallback->input(0));
    return true;
  }
  return false;
}

bool Raiser::makeDequantizeLinearTable(const onnx::NodeProto &dq,
                                       const ConstTensor &q) {
  auto bad = [&](const llvm::Twine &what) {
    fail(dq, "the 8-bit embedding table: " + what);
    return false;
  };
  const bool isSigned = q.dtype == onnx::TensorProto::INT8;
  if (!isSigned && q.dtype != onnx::TensorProto::UINT8)
    return bad(formatv("codes of data type {0}; expected UINT8 or INT8",
                       onnxTypeName(q.dtype)));
  const ConstTensor *scale = model.constant(dq.input(1));
  const ConstTensor *zp = dq.input_size() > 2 && !dq.input(2).empty()
                              ? model.constant(dq.input(2))
                              : nullptr;
  const int64_t vocab = q.dims[0], hidden = q.dims[1];
  // One scale for the table, or one per row (axis 0).
  if (!scale || !elementTypeFor(ctx, scale->dtype) ||
      !(scale->numElements() == 1 ||
        (scale->numElements() == vocab && attrInt(dq, "axis", 1) == 0)))
    return bad("expected one float scale, or one per row (axis=0)");
  if (dq.input_size() > 2 && !dq.input(2).empty() &&
      (!zp || zp->dtype != q.dtype ||
       zp->numElements() != scale->numElements()))
    return bad("expected zero points of the codes' type, one per scale");
  Type elt = elementTypeFor(ctx, scale->dtype);
  auto &semantics = cast<FloatType>(elt).getFloatSemantics();
  const size_t width = onnxTypeSize(scale->dtype);
  auto code = [&](const ConstTensor &t, int64_t i) -> int64_t {
    auto byte = static_cast<uint8_t>(t.bytes[i]);
    return isSigned ? static_cast<int8_t>(byte) : byte;
  };
  madeTableBytes.assign(vocab * hidden * width, 0);
  for (int64_t row = 0; row < vocab; ++row) {
    int64_t g = scale->numElements() == 1 ? 0 : row;
    float sc = static_cast<float>(scale->asDouble(g));
    int64_t z = zp ? code(*zp, g) : 0;
    for (int64_t col = 0; col < hidden; ++col) {
      llvm::APFloat f(static_cast<float>(code(q, row * hidden + col) - z) * sc);
      bool lost;
      f.convert(semantics, llvm::APFloat::rmNearestTiesToEven, &lost);
      uint64_t raw = f.bitcastToAPInt().getZExtValue();
      std::memcpy(&madeTableBytes[(row * hidden + col) * width], &raw, width);
    }
  }
  madeTable = std::make_unique<ConstTensor>();
  madeTable->name = q.name + ".dequantized";
  madeTable->dtype = scale->dtype;
  madeTable->dims = {vocab, hidden};
  madeTable->bytes = madeTableBytes;
  embeddingTable = madeTable.get();
  return true;
}

bool Raiser::makeDequantizedTable(const onnx::NodeProto &node) {
  // com.microsoft::GatherBlockQuantized(data [V, H * bits / 8] uint8,
  // indices, scales [V, H / block], zero_points?): rows of data dequantized,
  // (code - zero_point) * scale, in blocks of block_size along H. The table
  // is dequantized here to the scales' type, once: Kiln keeps embeddings in
  // the float type.
  auto bad = [&](const llvm::Twine &what) {
    fail(node, what);
    return false;
  };
  if (node.domain() != "com.microsoft")
    return bad("GatherBlockQuantized is onnxruntime's (domain com.microsoft)");
  const int64_t bits = attrInt(node, "bits", 4);
  const int64_t block = attrInt(node, "block_size", 128);
  if (attrInt(node, "gather_axis", 0) != 0 ||
      attrInt(node, "quantize_axis", 1) != 1)
    return bad("expected gather_axis=0 and quantize_axis=1 (rows of a "
               "[vocab, hidden] table quantized along hidden)");
  if (bits != 4 && bits != 8)
    return bad(formatv("bits={0}: Kiln supports 4 and 8", bits));
  const ConstTensor *data = constantThroughReshapes(node.input(0));
  const ConstTensor *scales =
      node.input_size() > 2 ? constantThroughReshapes(node.input(2)) : nullptr;
  if (!data || data->dtype != onnx::TensorProto::UINT8 || !scales ||
      !elementTypeFor(ctx, scales->dtype) || data->dims.empty())
    return bad("expected uint8 data and float scales initializers");
  const int64_t vocab = data->dims[0];
  const int64_t hidden = data->numElements() / vocab * 8 / bits;
  if (block <= 0 || hidden % block ||
      scales->numElements() != vocab * (hidden / block))
    return bad(formatv("scales of {0} elements do not fit a [{1}, {2}] table "
                       "in blocks of {3}",
                       scales->numElements(), vocab, hidden, block));
  const ConstTensor *zp = node.input_size() > 3 && !node.input(3).empty()
                              ? constantThroughReshapes(node.input(3))
                              : nullptr;
  const int64_t blocks = hidden / block;
  const int64_t zpPerRow = llvm::divideCeil(blocks * bits, 8);
  if (node.input_size() > 3 && !node.input(3).empty() &&
      (!zp || zp->dtype != onnx::TensorProto::UINT8 ||
       zp->numElements() != vocab * zpPerRow))
    return bad("expected packed uint8 zero points [vocab, blocks * bits / 8]");
  auto code = [&](const ConstTensor &t, int64_t perRow, int64_t row,
                  int64_t i) -> int64_t {
    auto byte =
        static_cast<uint8_t>(t.bytes[row * perRow + (bits == 8 ? i : i / 2)]);
    return bits == 8 ? byte : (i % 2 ? byte >> 4 : byte & 0xF);
  };
  Type elt = elementTypeFor(ctx, scales->dtype);
  auto &semantics = cast<FloatType>(elt).getFloatSemantics();
  const size_t width = onnxTypeSize(scales->dtype);
  madeTableBytes.assign(vocab * hidden * width, 0);
  const int64_t dataPerRow = hidden * bits / 8;
  for (int64_t row = 0; row < vocab; ++row)
    for (int64_t col = 0; col < hidden; ++col) {
      int64_t blk = col / block;
      int64_t z = zp ? code(*zp, zpPerRow, row, blk) : int64_t{1} << (bits - 1);
      double value = static_cast<float>(code(*data, dataPerRow, row, col) - z) *
                     static_cast<float>(scales->asDouble(row * blocks + blk));
      llvm::APFloat f(static_cast<float>(value));
      bool lost;
      f.convert(semantics, llvm::APFloat::rmNearestTiesToEven, &lost);
      uint64_t raw = f.bitcastToAPInt().getZExtValue();
      std::memcpy(&madeTableBytes[(row * hidden + col) * width], &raw, width);
    }
  madeTable = std::make_unique<ConstTensor>();
  madeTable->name = data->name + ".dequantized";
  madeTable->dtype = scales->dtype;
  madeTable->dims = {vocab, hidden};
  madeTable->bytes = madeTableBytes;
  embeddingTable = madeTable.get();
  return true;
}

//===----------------------------------------------------------------------===//
// Packed QKV
//===----------------------------------------------------------------------===//

SmallVector<Value> Raiser::splitProjection(const onnx::NodeProto &user,
                                           StringRef value,
                                           ArrayRef<int64_t> widths) {
  int64_t total = 0;
  for (int64_t w : widths)
    total += w;
  const onnx::NodeProto *node = model.producer(skipCasts(value));
  auto bad = [&](const llvm::Twine &what) {
    fail(user, "packed QKV: " + what);
    return SmallVector<Value>();
  };
  if (!node)
    return bad("the query input is not computed");
  SmallVector<Value> result;
  if (node->op_type() == "MatMulNBits") {
    if (node->input_size() > 5 && !node->input(5).empty())
      return bad("a MatMulNBits bias is not supported");
    if (attrInt(*node, "N", -1) != total)
      return bad(formatv("MatMulNBits N={0}, expected {1}",
                         attrInt(*node, "N", -1), total));
    int64_t row0 = 0;
    for (int64_t w : widths) {
      result.push_back(outInProjection(
          *node, [&] { return quantizedWeight(*node, row0, w); }, ""));
      if (!result.back())
        return {};
      row0 += w;
    }
    return result;
  }
  if (node->op_type() != "MatMul")
    return bad("expected the query input to be a MatMul or MatMulNBits "
               "projection");
  auto w = projectionWeight(*node);
  if (!w)
    return bad("expected a projection by a 2-D weight initializer (or its "
               "Transpose)");
  auto [tensor, layout] = *w;
  bool outIn = layout == tfm::WeightLayout::out_in;
  const int64_t k = tensor->dims[outIn ? 1 : 0],
                n = tensor->dims[outIn ? 0 : 1];
  if (n != total)
    return bad(
        formatv("the projection has {0} outputs, expected {1}", n, total));
  Value input = activation(node->input(0));
  if (!input)
    return {};
  const size_t es = onnxTypeSize(tensor->dtype);
  Type elt = elementTypeFor(ctx, tensor->dtype);
  if (elt != elementType)
    return bad("the weight's type is not the activations'");
  int64_t col0 = 0;
  for (int64_t width : widths) {
    std::string symbol =
        formatv("{0}.cols{1}-{2}", tensor->name, col0, col0 + width).str();
    Value wv;
    if (outIn) {
      // [N, K]: the slice is rows, contiguous.
      wv = constantWeight(symbol, RankedTensorType::get({width, k}, elt),
                          tensor->bytes.slice(col0 * k * es, width * k * es),
                          es, *node);
    } else {
      // [K, N]: the slice is columns, copied.
      std::vector<char> bytes(k * width * es);
      for (int64_t row = 0; row < k; ++row)
        std::memcpy(&bytes[row * width * es],
                    tensor->bytes.data() + (row * n + col0) * es, width * es);
      wv = constantWeight(
          symbol, RankedTensorType::get({k, width}, elt),
          HeapAsmResourceBlob::allocateAndCopyWithAlign(bytes, es), *node);
    }
    if (!wv)
      return {};
    result.push_back(tfm::LinearOp::create(
        builder, loc(*node), activationType(width), input, wv, Value(),
        tfm::WeightLayoutAttr::get(ctx, layout),
        /*rms_norm_epsilon=*/nullptr, /*swiglu=*/nullptr));
    col0 += width;
  }
  return result;
}
