//===- QuantizeWeights.cpp - Weight-only int8/int4 quantization -----------===//
//
// Batch-1 decode reads every weight once per token; int8 weights halve and
// int4 weights quarter those bytes. This pass replaces the constant weight
// of each tfm.linear (and of tfm.logits with `lm-head`) by a
// tfm.dequantize of packed integers and per-group scales made at compile
// time; the embedding table stays in its float type (one row is read per
// token). Lowering fuses the dequantization into the projection, so the
// packed bytes are what a kernel reads.
//
// Per row (output feature) and group of `group-size` input features:
//
// * symmetric (default): the element of largest magnitude m maps to the
//   most negative code, scale = m / -2^(bits-1), codes clamped to
//   [-2^(bits-1), 2^(bits-1) - 1] and stored offset by 2^(bits-1) (the
//   implicit zero point), as llama.cpp's q4_0/q8_0 do;
// * asymmetric: scale = (max - min) / (2^bits - 1) and an integer zero
//   point round(-min / scale), stored in the scale type.
//
// The scale is rounded to its storage type before the codes are computed,
// so the codes are the best ones for the scale the kernels will use.
//
//===----------------------------------------------------------------------===//

#include "dialects/Tfm/TfmOps.h"
#include "kiln/runtime/Numeric.h"
#include "passes/Passes.h"
#include "passes/fusion/ConstantWeights.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Threading.h"
#include "llvm/ADT/StringMap.h"

#include <cmath>

#define DEBUG_TYPE "kiln-quantize-weights"

namespace kiln {
#define GEN_PASS_DEF_QUANTIZEWEIGHTS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;
namespace rt = kiln::runtime;

namespace {

/// The quantized form of one weight.
struct Quantized {
  ml_program::GlobalOp packed, scales, zeroPoints;
};

struct QuantizeWeights : kiln::impl::QuantizeWeightsBase<QuantizeWeights> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (scheme != "int8" && scheme != "int4") {
      module.emitError() << "kiln-quantize-weights: unknown scheme '" << scheme
                         << "' (expected int8 or int4)";
      return signalPassFailure();
    }
    bits = scheme == "int8" ? 8 : 4;
    if (groupSize < 0 || (groupSize > 0 && !llvm::isPowerOf2_64(groupSize)) ||
        (bits == 4 && groupSize == 0)) {
      module.emitError() << "kiln-quantize-weights: group-size " << groupSize
                         << " is not a power of two"
                         << (bits == 4 ? "" : " or 0 (one group per row)");
      return signalPassFailure();
    }
    SymbolTable symbols(module);
    SmallVector<std::string> originals;
    bool failed = false;
    auto rewrite = [&](auto op) {
      FailureOr<bool> done =
          quantize(op, op.getWeight(), op.getLayout(), symbols, originals);
      if (mlir::failed(done)) {
        failed = true;
        return;
      }
      if (*done)
        op.setLayout(tfm::WeightLayout::out_in);
    };
    module.walk([&](Operation *op) {
      if (auto linear = dyn_cast<tfm::LinearOp>(op))
        rewrite(linear);
      else if (auto logits = dyn_cast<tfm::LogitsOp>(op); logits && lmHead)
        rewrite(logits);
    });
    if (failed)
      return signalPassFailure();
    eraseUnusedGlobals(module, symbols, originals);
  }

  /// Replaces the constant `weight` operand of `op` by a tfm.dequantize;
  /// false when it is not a constant weight this can quantize.
  template <typename OpT>
  FailureOr<bool> quantize(OpT op, Value weight, tfm::WeightLayout layout,
                           SymbolTable &symbols,
                           SmallVector<std::string> &originals) {
    ml_program::GlobalOp g = constantGlobal(weight, symbols);
    if (!g)
      return false;
    auto type = cast<RankedTensorType>(g.getType());
    std::optional<rt::DType> dtype = floatDType(type.getElementType());
    if (type.getRank() != 2 || !dtype)
      return false;
    const bool inOut = layout == tfm::WeightLayout::in_out;
    const int64_t n = type.getDimSize(inOut ? 1 : 0);
    const int64_t k = type.getDimSize(inOut ? 0 : 1);
    const int64_t group = groupSize ? groupSize : k;
    if (k % group != 0) {
      op->emitWarning() << "kept in " << type.getElementType() << ": its " << k
                        << " input features are not a multiple of the group "
                           "size "
                        << group;
      return false;
    }
    std::string key = (g.getSymName() + (inOut ? ".t" : "")).str();
    Quantized q = made.lookup(key);
    if (!q.packed) {
      q = make(g, *dtype, inOut, n, k, group, symbols);
      made[key] = q;
      originals.push_back(g.getSymName().str());
    }
    Block &entry =
        op->template getParentOfType<func::FuncOp>().getBody().front();
    Value packed = loadAtStart(entry, q.packed);
    Value scales = loadAtStart(entry, q.scales);
    Value zeros = q.zeroPoints ? loadAtStart(entry, q.zeroPoints) : Value();
    OpBuilder b(op);
    auto result = RankedTensorType::get({n, k}, type.getElementType());
    Value dq = tfm::DequantizeOp::create(b, op.getLoc(), result, packed, scales,
                                         zeros, bits, group);
    op.getWeightMutable().assign(dq);
    return true;
  }

  /// Quantizes global `g` ([N, K], or [K, N] when `inOut`) row by row in
  /// parallel.
  Quantized make(ml_program::GlobalOp g, rt::DType dtype, bool inOut, int64_t n,
                 int64_t k, int64_t group, SymbolTable &symbols) {
    std::vector<char> storage;
    ArrayRef<char> bytes = *globalBytes(g, storage);
    Type elt = cast<RankedTensorType>(g.getType()).getElementType();
    const size_t eltBytes = rt::dtypeSize(dtype);
    const int64_t groups = k / group;
    const int64_t levels = int64_t{1} << bits;
    // Scales and zero points as stored (rounded to the weight's type), then
    // the codes, one row per task.
    std::vector<float> scales(n * groups), zeros(asymmetric ? n * groups : 0);
    std::vector<uint8_t> codes(n * k);
    parallelFor(&getContext(), 0, n, [&](size_t row) {
      std::vector<float> w(k);
      if (inOut) {
        for (int64_t c = 0; c < k; ++c)
          rt::convertToFloat(bytes.data() + (c * n + row) * eltBytes, dtype, 1,
                             &w[c]);
      } else {
        rt::convertToFloat(bytes.data() + row * k * eltBytes, dtype, k,
                           w.data());
      }
      for (int64_t gi = 0; gi < groups; ++gi) {
        const float *x = &w[gi * group];
        float lo = x[0], hi = x[0];
        for (int64_t i = 1; i < group; ++i) {
          lo = std::min(lo, x[i]);
          hi = std::max(hi, x[i]);
        }
        float scale, zero;
        if (asymmetric) {
          lo = std::min(lo, 0.0f);
          hi = std::max(hi, 0.0f);
          scale = roundTo(dtype, (hi - lo) / float(levels - 1));
          // (+ 0 turns a -0 from -lo = -0 into 0.)
          zero = scale > 0 ? std::clamp(std::nearbyint(-lo / scale), 0.0f,
                                        float(levels - 1)) +
                                 0.0f
                           : 0.0f;
          zeros[row * groups + gi] = zero;
        } else {
          // The element of largest magnitude takes the most negative code.
          float m = std::fabs(lo) > std::fabs(hi) ? lo : hi;
          scale = roundTo(dtype, m / -float(levels / 2));
          zero = float(levels / 2);
        }
        scales[row * groups + gi] = scale;
        for (int64_t i = 0; i < group; ++i) {
          float c = scale != 0 ? std::nearbyint(x[i] / scale) + zero : zero;
          codes[row * k + gi * group + i] =
              static_cast<uint8_t>(std::clamp(c, 0.0f, float(levels - 1)));
        }
      }
    });

    MLIRContext *ctx = &getContext();
    auto i8 = IntegerType::get(ctx, 8);
    std::string base = (g.getSymName() + (inOut ? ".t" : "") + "." + scheme +
                        "g" + std::to_string(group))
                           .str();
    Quantized q;
    q.packed = createWeightGlobal(
        symbols, g, base + ".packed",
        RankedTensorType::get({n, k * bits / 8}, i8),
        [&](MutableArrayRef<char> out) {
          if (bits == 8) {
            std::memcpy(out.data(), codes.data(), codes.size());
            return;
          }
          for (size_t i = 0; i < out.size(); ++i)
            out[i] = static_cast<char>(codes[2 * i] | (codes[2 * i + 1] << 4));
        });
    auto scaleType = RankedTensorType::get({n, groups}, elt);
    auto fill = [&](const std::vector<float> &values) {
      return [&, ptr = &values](MutableArrayRef<char> out) {
        rt::convertFromFloat(ptr->data(), dtype, ptr->size(), out.data());
      };
    };
    q.scales = createWeightGlobal(symbols, g, base + ".scales", scaleType,
                                  fill(scales));
    if (asymmetric)
      q.zeroPoints = createWeightGlobal(symbols, g, base + ".zero_points",
                                        scaleType, fill(zeros));
    return q;
  }

  static float roundTo(rt::DType dtype, float v) {
    float r;
    switch (dtype) {
    case rt::DType::F16: {
      uint16_t h;
      rt::convertFromFloat(&v, dtype, 1, &h);
      rt::convertToFloat(&h, dtype, 1, &r);
      return r;
    }
    case rt::DType::BF16: {
      uint16_t h;
      rt::convertFromFloat(&v, dtype, 1, &h);
      rt::convertToFloat(&h, dtype, 1, &r);
      return r;
    }
    default:
      return v;
    }
  }

  int64_t bits = 8;
  /// Quantized copies by the original's name (shared by the entry points).
  llvm::StringMap<Quantized> made;
};

} // namespace
