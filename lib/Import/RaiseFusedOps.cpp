//===- RaiseFusedOps.cpp - Raise the fused norm ops and RoPE tables -------===//
//
// RMSNorm as one op (ONNX opset 23's RMSNormalization, onnxruntime's
// SimplifiedLayerNormalization and com.microsoft::SkipSimplifiedLayer-
// Normalization, whose fourth output is the residual sum), and the RoPE
// inverse frequencies read back from the cos/sin tables that
// RotaryEmbedding and GroupQueryAttention take.
//
//===----------------------------------------------------------------------===//

#include "OnnxAttrs.h"
#include "Raiser.h"

#include "llvm/Support/FormatVariadic.h"

#include <cmath>

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
