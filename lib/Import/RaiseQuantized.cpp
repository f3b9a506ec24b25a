//===- RaiseQuantized.cpp - Quantized projections from ONNX ---------------===//
//
// onnxruntime's com.microsoft::MatMulNBits, as onnxruntime-genai's model
// builder and transformers.js's q4 files write it:
//
//   Y[..., N] = A[..., K] x dequant(B)^T (+ bias)
//   B            uint8 [N, k_blocks, block_size * bits / 8]: per output row,
//                blocks of block_size codes along K, two 4-bit codes per
//                byte with the first in the low four bits
//   scales       [N, k_blocks] (older files: flat [N * k_blocks]), A's type
//   zero_points  none (2^(bits-1)), uint8 packed like B, or A's type
//   g_idx        (act-order) not supported
//
// is raised to tfm.linear (or tfm.logits) of a tfm.dequantize whose packed
// codes are B's bytes as they are, [N, K * bits / 8]: the same layout, so
// the weights are never re-quantized or even copied. Packed uint8 zero
// points become floats in the scale type (small integers, exact).
//
//===----------------------------------------------------------------------===//

#include "OnnxAttrs.h"
#include "Raiser.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

using namespace kiln;
using namespace mlir;
using llvm::formatv;
using llvm::StringRef;

Value Raiser::quantizedWeight(const onnx::NodeProto &node, int64_t row0,
                              int64_t rows) {
  const int64_t k = attrInt(node, "K", -1), n = attrInt(node, "N", -1);
  const int64_t bits = attrInt(node, "bits", 4);
  const int64_t block = attrInt(node, "block_size", -1);
  if (k <= 0 || n <= 0)
    return fail(node, "MatMulNBits needs positive K and N attributes");
  if (bits != 4 && bits != 8)
    return fail(node, formatv("MatMulNBits with bits={0}: Kiln supports 4 and "
                              "8",
                              bits));
  if (block < 16 || !llvm::isPowerOf2_64(block))
    return fail(node, formatv("MatMulNBits block_size {0}: expected a power "
                              "of two >= 16",
                              block));
  if (k % block != 0)
    return fail(node, formatv("MatMulNBits with K={0} not a multiple of "
                              "block_size {1} (padded blocks) is not supported",
                              k, block));
  if (node.input_size() > 4 && !node.input(4).empty())
    return fail(node, "MatMulNBits with g_idx (act-order) is not supported");
  const int64_t blocks = k / block, blob = block * bits / 8;

  const ConstTensor *b = model.constant(node.input(1));
  if (!b || b->dtype != onnx::TensorProto::UINT8 || b->dims.size() != 3 ||
      b->dims[0] != n || b->dims[1] != blocks || b->dims[2] != blob)
    return fail(node, formatv("MatMulNBits B '{0}': expected a uint8 "
                              "initializer [N={1}, k_blocks={2}, {3}]",
                              node.input(1), n, blocks, blob));
  const ConstTensor *scales = model.constant(node.input(2));
  if (!scales || elementTypeFor(ctx, scales->dtype) != elementType ||
      scales->numElements() != n * blocks ||
      !(scales->dims.size() == 1 ||
        (scales->dims.size() == 2 && scales->dims[0] == n)))
    return fail(node, formatv("MatMulNBits scales '{0}': expected an "
                              "initializer [N={1}, k_blocks={2}] (or flat) of "
                              "the activations' type",
                              node.input(2), n, blocks));
  // Rows [row0, row0 + rows) of the weight (a packed QKV projection is
  // split by rows): contiguous in B, the scales and the zero points.
  if (rows < 0)
    rows = n;
  const bool whole = row0 == 0 && rows == n;
  const std::string suffix =
      whole ? std::string() : formatv(".rows{0}-{1}", row0, row0 + rows).str();
  const size_t sw = onnxTypeSize(scales->dtype);
  auto scaleType = RankedTensorType::get({rows, blocks}, elementType);
  Value packed = constantWeight(
      node.input(1) + suffix,
      RankedTensorType::get({rows, k * bits / 8}, builder.getI8Type()),
      b->bytes.slice(row0 * blocks * blob, rows * blocks * blob), 1, node);
  Value s = constantWeight(
      node.input(2) + suffix, scaleType,
      scales->bytes.slice(row0 * blocks * sw, rows * blocks * sw), sw, node);
  Value zeros;
  if (node.input_size() > 3 && !node.input(3).empty()) {
    const ConstTensor *z = model.constant(node.input(3));
    const int64_t packedPerRow = llvm::divideCeil(blocks * bits, 8);
    if (z && z->dtype == scales->dtype && z->numElements() == n * blocks) {
      zeros = constantWeight(
          node.input(3) + suffix, scaleType,
          z->bytes.slice(row0 * blocks * sw, rows * blocks * sw), sw, node);
    } else if (z && z->dtype == onnx::TensorProto::UINT8 &&
               z->numElements() == n * packedPerRow) {
      // Unpacked to floats in the scale type.
      auto &semantics = cast<FloatType>(elementType).getFloatSemantics();
      const size_t width = sw;
      std::vector<char> values(rows * blocks * width);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t blk = 0; blk < blocks; ++blk) {
          const int64_t row = row0 + r;
          uint8_t byte;
          if (bits == 8) {
            byte = static_cast<uint8_t>(z->bytes[row * packedPerRow + blk]);
          } else {
            byte = static_cast<uint8_t>(z->bytes[row * packedPerRow + blk / 2]);
            byte = blk % 2 ? byte >> 4 : byte & 0xF;
          }
          llvm::APFloat f(semantics, byte);
          uint64_t raw = f.bitcastToAPInt().getZExtValue();
          std::memcpy(&values[(r * blocks + blk) * width], &raw, width);
        }
      zeros = constantWeight(
          node.input(3) + ".unpacked" + suffix, scaleType,
          HeapAsmResourceBlob::allocateAndCopyWithAlign(values, width), node);
    } else {
      return fail(node, formatv("MatMulNBits zero_points '{0}': expected "
                                "uint8 [N={1}, {2}] (packed) or the scales' "
                                "type and shape [N={1}, k_blocks={3}]",
                                node.input(3), n, packedPerRow, blocks));
    }
  }
  if (!packed || !s ||
      (node.input_size() > 3 && !node.input(3).empty() && !zeros))
    return {};
  return tfm::DequantizeOp::create(
      builder, loc(node), RankedTensorType::get({rows, k}, elementType), packed,
      s, zeros, bits, block);
}

Value Raiser::quantizedLinear(const onnx::NodeProto &node, StringRef bias) {
  if (node.input_size() > 5 && !node.input(5).empty()) {
    if (!bias.empty())
      return fail(node, "MatMulNBits with a bias input and an Add of another");
    bias = node.input(5);
  }
  return outInProjection(node, [&] { return quantizedWeight(node); }, bias);
}

Value Raiser::outInProjection(const onnx::NodeProto &node,
                              function_ref<Value()> makeWeight,
                              StringRef bias) {
  Value input = activation(node.input(0));
  Value w = input ? makeWeight() : Value();
  if (!w)
    return {};
  auto wt = cast<RankedTensorType>(w.getType());
  int64_t n = wt.getDimSize(0);
  int64_t features = cast<RankedTensorType>(input.getType()).getDimSize(2);
  if (features != wt.getDimSize(1))
    return fail(node, formatv("the weight has {0} input features, its input "
                              "{1}",
                              wt.getDimSize(1), features));
  Value b = projectionBias(node, bias, n);
  if (!bias.empty() && !b)
    return {};
  return tfm::LinearOp::create(
      builder, loc(node), activationType(n), input, w, b,
      tfm::WeightLayoutAttr::get(ctx, tfm::WeightLayout::out_in),
      /*rms_norm_epsilon=*/nullptr, /*swiglu=*/nullptr);
}

//===----------------------------------------------------------------------===//
// DequantizeLinear feeding MatMul
//===----------------------------------------------------------------------===//
//
// ONNX's own form (opset 21 adds block_size and int4/uint4):
//
//   W = DequantizeLinear(W_q [K, N], scale, zero_point, axis, block_size)
//   Y = MatMul(A, W)
//
// with blocks of block_size along K (axis 0, scale [K / block_size, N]),
// one scale per output column (axis 1, scale [N]) or one for the tensor.
// ONNX packs 4-bit tensors in row-major order, two elements per byte, the
// first in the low bits: W_q's rows run along N, Kiln's packed rows along K,
// so the codes are moved (never re-quantized) into [N, K] order; signed
// codes are stored offset by 2^(bits-1) with the zero point moved alike.

namespace {
/// The code of element `i` of a row-major integer tensor of `dtype`.
int64_t codeAt(const ConstTensor &t, int64_t i) {
  auto byte = [&](int64_t b) { return static_cast<uint8_t>(t.bytes[b]); };
  switch (t.dtype) {
  case kOnnxUint4:
    return i % 2 ? byte(i / 2) >> 4 : byte(i / 2) & 0xF;
  case kOnnxInt4: {
    int64_t v = i % 2 ? byte(i / 2) >> 4 : byte(i / 2) & 0xF;
    return v >= 8 ? v - 16 : v;
  }
  case onnx::TensorProto::INT8:
    return static_cast<int8_t>(byte(i));
  default: // UINT8
    return byte(i);
  }
}
} // namespace

Value Raiser::dequantizeLinearWeight(const onnx::NodeProto &dq) {
  const ConstTensor *zp = dq.input_size() > 2 && !dq.input(2).empty()
                              ? model.constant(dq.input(2))
                              : nullptr;
  if (dq.input_size() > 2 && !dq.input(2).empty() && !zp)
    return fail(dq, "expected the zero point to be an initializer of the "
                    "weight's type and the scale's shape");
  return dequantizeWeight(dq, model.constant(dq.input(0)),
                          model.constant(dq.input(1)), zp,
                          attrInt(dq, "axis", 1), attrInt(dq, "block_size", 0));
}

Value Raiser::dequantizeWeight(const onnx::NodeProto &dq, const ConstTensor *x,
                               const ConstTensor *scale, const ConstTensor *zp,
                               int64_t axis, int64_t blockSize) {
  if (!x || x->dims.size() != 2 ||
      !llvm::is_contained({kOnnxUint4, kOnnxInt4,
                           static_cast<int32_t>(onnx::TensorProto::INT8),
                           static_cast<int32_t>(onnx::TensorProto::UINT8)},
                          x->dtype))
    return fail(dq, "expected a 2-D int4, uint4, int8 or uint8 weight "
                    "initializer [K, N] to dequantize");
  const int64_t k = x->dims[0], n = x->dims[1];
  const bool four = x->dtype == kOnnxUint4 || x->dtype == kOnnxInt4;
  const bool isSigned =
      x->dtype == kOnnxInt4 || x->dtype == onnx::TensorProto::INT8;
  const int64_t bits = four ? 4 : 8, offset = isSigned ? 1 << (bits - 1) : 0;
  if (!scale || elementTypeFor(ctx, scale->dtype) != elementType)
    return fail(dq, "expected the scale to be an initializer of the "
                    "activations' type");
  if (zp && (zp->dtype != x->dtype || zp->dims != scale->dims))
    return fail(dq, "expected the zero point to be an initializer of the "
                    "weight's type and the scale's shape");
  axis = axis < 0 ? axis + 2 : axis;
  // Where the scale of (k, n) is: scale[(k / group) * stride + n * step].
  int64_t group, stride = 0, step = 0;
  if (blockSize > 0) {
    if (axis != 0 || k % blockSize != 0 || (four && blockSize % 2) ||
        scale->dims != std::vector<int64_t>{k / blockSize, n})
      return fail(dq, formatv("blocked DequantizeLinear: expected blocks "
                              "along the input features (axis 0) that divide "
                              "K={0}{1}, and a scale [{2}, N={3}]",
                              k, four ? " into an even count" : "",
                              blockSize > 0 ? k / blockSize : 0, n));
    group = blockSize;
    stride = n;
    step = 1;
  } else if (scale->numElements() == 1) {
    group = k; // one scale for the tensor
  } else if (axis == 1 && scale->dims == std::vector<int64_t>{n}) {
    group = k; // one per output column
    step = 1;
  } else {
    return fail(dq, formatv("DequantizeLinear of a [{0}, {1}] weight: "
                            "expected a scalar scale, one per column (axis "
                            "1) or blocks along axis 0",
                            k, n));
  }
  const int64_t groups = k / group;
  const size_t width = onnxTypeSize(scale->dtype);
  std::vector<char> packed(n * k * bits / 8), scales(n * groups * width);
  for (int64_t row = 0; row < n; ++row) {
    for (int64_t col = 0; col < k; ++col) {
      auto u = static_cast<uint8_t>(codeAt(*x, col * n + row) + offset);
      if (bits == 8)
        packed[row * k + col] = static_cast<char>(u);
      else
        packed[(row * k + col) / 2] |= static_cast<char>(col % 2 ? u << 4 : u);
    }
    for (int64_t g = 0; g < groups; ++g)
      std::memcpy(&scales[(row * groups + g) * width],
                  scale->bytes.data() + (g * stride + row * step) * width,
                  width);
  }
  std::string base = x->name;
  auto scaleType = RankedTensorType::get({n, groups}, elementType);
  Value p = constantWeight(
      base + ".packed",
      RankedTensorType::get({n, k * bits / 8}, builder.getI8Type()),
      HeapAsmResourceBlob::allocateAndCopyWithAlign(packed, 1), dq);
  Value s = constantWeight(
      base + ".scales", scaleType,
      HeapAsmResourceBlob::allocateAndCopyWithAlign(scales, width), dq);
  Value zeros;
  // A signed weight without a zero point has the implicit one.
  if (zp || !isSigned) {
    auto &semantics = cast<FloatType>(elementType).getFloatSemantics();
    std::vector<char> values(n * groups * width);
    for (int64_t row = 0; row < n; ++row)
      for (int64_t g = 0; g < groups; ++g) {
        int64_t z = (zp ? codeAt(*zp, g * stride + row * step) : 0) + offset;
        uint64_t raw =
            llvm::APFloat(semantics, z).bitcastToAPInt().getZExtValue();
        std::memcpy(&values[(row * groups + g) * width], &raw, width);
      }
    zeros = constantWeight(
        base + ".zero_points", scaleType,
        HeapAsmResourceBlob::allocateAndCopyWithAlign(values, width), dq);
  }
  if (!p || !s || ((zp || !isSigned) && !zeros))
    return {};
  return tfm::DequantizeOp::create(builder, loc(dq),
                                   RankedTensorType::get({n, k}, elementType),
                                   p, s, zeros, bits, group);
}

Value Raiser::quantizedLinear(const onnx::NodeProto &dq,
                              const onnx::NodeProto &mm, StringRef bias) {
  return outInProjection(mm, [&] { return dequantizeLinearWeight(dq); }, bias);
}

//===----------------------------------------------------------------------===//
// onnxruntime's quantize_dynamic
//===----------------------------------------------------------------------===//
//
//   (x_q, x_scale, x_zp) = DynamicQuantizeLinear(x)     uint8, per tensor
//   Y = Mul(Cast(MatMulInteger(x_q, W_q [K, N], x_zp, w_zp), to=FLOAT),
//           Mul(x_scale, w_scale))
//
// is x's tfm.dynamic_quantize (the same codes, dequantized) projected by
// W_q dequantized: equal up to f32 rounding, since both factors are exact
// multiples of their scales. One tfm.dynamic_quantize per
// DynamicQuantizeLinear (q, k and v share theirs).

Value Raiser::integerLinear(const onnx::NodeProto &mul) {
  for (int i = 0; i < 2; ++i) {
    const onnx::NodeProto *toFloat = model.producer(mul.input(i));
    const onnx::NodeProto *mmi = toFloat && toFloat->op_type() == "Cast"
                                     ? model.producer(toFloat->input(0))
                                     : nullptr;
    if (!mmi || mmi->op_type() != "MatMulInteger")
      continue;
    auto bad = [&](const llvm::Twine &what) {
      return fail(*mmi, "expected onnxruntime's dynamic quantization "
                        "(MatMulInteger of DynamicQuantizeLinear(x) by an "
                        "8-bit weight, scaled by x_scale * w_scale): " +
                            what);
    };
    const onnx::NodeProto *dql = model.producer(mmi->input(0));
    if (!dql || dql->op_type() != "DynamicQuantizeLinear" ||
        dql->output_size() < 3)
      return bad("A is not DynamicQuantizeLinear(x)");
    if (mmi->input_size() < 3 || mmi->input(2) != dql->output(2))
      return bad("A's zero point is not DynamicQuantizeLinear's");
    if (elementType != builder.getF32Type() ||
        attrInt(*toFloat, "to", 0) != onnx::TensorProto::FLOAT)
      return bad("only float32 models are supported");
    const onnx::NodeProto *product = model.producer(mul.input(1 - i));
    const ConstTensor *wScale = nullptr;
    for (int j = 0; product && product->op_type() == "Mul" && j < 2; ++j)
      if (product->input(j) == dql->output(1))
        wScale = model.constant(product->input(1 - j));
    if (!wScale)
      return bad("the product is not scaled by Mul(x_scale, w_scale) with a "
                 "constant w_scale");
    const ConstTensor *wZero = mmi->input_size() > 3 && !mmi->input(3).empty()
                                   ? model.constant(mmi->input(3))
                                   : nullptr;
    if (mmi->input_size() > 3 && !mmi->input(3).empty() && !wZero)
      return bad("the weight's zero point is not an initializer");
    const ConstTensor *w = model.constant(mmi->input(1));
    if (!w || (w->dtype != onnx::TensorProto::INT8 &&
               w->dtype != onnx::TensorProto::UINT8))
      return bad("B is not an int8 or uint8 initializer");

    Value &xq = dynamicQuantized_[dql->output(0)];
    if (!xq) {
      Value x = activation(dql->input(0));
      if (!x)
        return {};
      xq = tfm::DynamicQuantizeOp::create(builder, loc(*dql), x);
    }
    // One scale for the weight, or one per output column (per_channel).
    Value wv = dequantizeWeight(*mmi, w, wScale, wZero, /*axis=*/1,
                                /*blockSize=*/0);
    if (!wv)
      return {};
    int64_t n = cast<RankedTensorType>(wv.getType()).getDimSize(0);
    return tfm::LinearOp::create(
        builder, loc(*mmi), activationType(n), xq, wv, Value(),
        tfm::WeightLayoutAttr::get(ctx, tfm::WeightLayout::out_in),
        /*rms_norm_epsilon=*/nullptr, /*swiglu=*/nullptr);
  }
  return {};
}
