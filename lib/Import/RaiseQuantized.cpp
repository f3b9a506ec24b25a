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

#include "Raiser.h"
#include "OnnxAttrs.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

using namespace kiln;
using namespace mlir;
using llvm::formatv;
using llvm::StringRef;

Value Raiser::quantizedWeight(const onnx::NodeProto &node) {
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
  auto scaleType = RankedTensorType::get({n, blocks}, elementType);
  Value packed = constantWeight(
      node.input(1),
      RankedTensorType::get({n, k * bits / 8}, builder.getI8Type()), b->bytes,
      1, node);
  Value s = constantWeight(node.input(2), scaleType, scales->bytes,
                           onnxTypeSize(scales->dtype), node);
  Value zeros;
  if (node.input_size() > 3 && !node.input(3).empty()) {
    const ConstTensor *z = model.constant(node.input(3));
    const int64_t packedPerRow = llvm::divideCeil(blocks * bits, 8);
    if (z && z->dtype == scales->dtype && z->numElements() == n * blocks) {
      zeros = constantWeight(node.input(3), scaleType, z->bytes,
                             onnxTypeSize(z->dtype), node);
    } else if (z && z->dtype == onnx::TensorProto::UINT8 &&
               z->numElements() == n * packedPerRow) {
      // Unpacked to floats in the scale type.
      auto &semantics = cast<FloatType>(elementType).getFloatSemantics();
      const size_t width = onnxTypeSize(scales->dtype);
      std::vector<char> values(n * blocks * width);
      for (int64_t row = 0; row < n; ++row)
        for (int64_t blk = 0; blk < blocks; ++blk) {
          uint8_t byte;
          if (bits == 8) {
            byte = static_cast<uint8_t>(z->bytes[row * packedPerRow + blk]);
          } else {
            byte = static_cast<uint8_t>(z->bytes[row * packedPerRow + blk / 2]);
            byte = blk % 2 ? byte >> 4 : byte & 0xF;
          }
          llvm::APFloat f(semantics, byte);
          uint64_t raw = f.bitcastToAPInt().getZExtValue();
          std::memcpy(&values[(row * blocks + blk) * width], &raw, width);
        }
      zeros = constantWeight(
          node.input(3) + ".unpacked", scaleType,
          HeapAsmResourceBlob::allocateAndCopyWithAlign(values, width), node);
    } else {
      return fail(node, formatv("MatMulNBits zero_points '{0}': expected "
                                "uint8 [N={1}, {2}] (packed) or the scales' "
                                "type and shape [N={1}, k_blocks={3}]",
                                node.input(3), n, packedPerRow, blocks));
    }
  }
  if (!packed || !s || (node.input_size() > 3 && !node.input(3).empty() &&
                        !zeros))
    return {};
  return tfm::DequantizeOp::create(builder, loc(node),
                                   RankedTensorType::get({n, k}, elementType),
                                   packed, s, zeros, bits, block);
}

Value Raiser::quantizedLinear(const onnx::NodeProto &node, StringRef bias) {
  if (node.input_size() > 5 && !node.input(5).empty()) {
    if (!bias.empty())
      return fail(node, "MatMulNBits with a bias input and an Add of another");
    bias = node.input(5);
  }
  Value input = activation(node.input(0));
  if (!input)
    return {};
  Value w = quantizedWeight(node);
  if (!w)
    return {};
  int64_t n = cast<RankedTensorType>(w.getType()).getDimSize(0);
  int64_t k = cast<RankedTensorType>(w.getType()).getDimSize(1);
  if (cast<RankedTensorType>(input.getType()).getDimSize(2) != k)
    return fail(node, formatv("MatMulNBits K={0}, but its input has {1} "
                              "features",
                              k, cast<RankedTensorType>(input.getType())
                                     .getDimSize(2)));
  Value b;
  if (!bias.empty()) {
    const ConstTensor *bt = model.constant(bias);
    if (!bt || bt->dims.size() != 1 || bt->dims[0] != n)
      return fail(node, formatv("bias '{0}' is not a 1-D initializer of {1} "
                                "elements",
                                bias, n));
    b = weight(bias, node);
    if (!b)
      return {};
  }
  return tfm::LinearOp::create(
      builder, loc(node), activationType(n), input, w, b,
      tfm::WeightLayoutAttr::get(ctx, tfm::WeightLayout::out_in));
}
