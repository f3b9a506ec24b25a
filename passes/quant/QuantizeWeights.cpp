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
#include "llvm/Support/Parallel.h"

#include <cmath>
#include <cstring>

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

/// The storage value of `v` in `dtype`, as f32.
float roundTo(rt::DType dtype, float v) {
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

/// The quantization of one [N, K] weight (read from a [K, N] source when
/// `inOut`), row by row: what the packed codes, the scales and the zero
/// points of QuantizedPart are made from.
struct QuantizeJob {
  WeightRef source;
  rt::DType dtype;
  bool inOut, asymmetric;
  int64_t n, k, group, bits;
  /// The whole [K, N] source, when it is not in memory (inOut only).
  std::vector<char> cache;

  /// Rows [first, first + count): codes [count, k], scales and zero points
  /// [count, k / group] (as stored, rounded to the weight's type). Rows in
  /// parallel; each is independent of the thread count.
  void rows(uint64_t first, uint64_t count, uint8_t *codes, float *scales,
            float *zeros) {
    const size_t eltBytes = rt::dtypeSize(dtype);
    const int64_t groups = k / group;
    const int64_t levels = int64_t{1} << bits;
    const char *in = source->view();
    const bool view = in != nullptr;
    std::vector<char> piece;
    if (!in && inOut) {
      if (cache.empty())
        cache = readAll(*source);
      in = cache.data();
    } else if (!in) {
      piece.resize(count * k * eltBytes);
      source->readRows(first, count, piece.data());
    } else if (!inOut) {
      in += first * k * eltBytes;
    }
    if (!piece.empty())
      in = piece.data();
    llvm::parallelFor(0, count, [&](size_t i) {
      const uint64_t row = first + i;
      std::vector<float> w(k);
      if (inOut) {
        for (int64_t c = 0; c < k; ++c)
          rt::convertToFloat(in + (c * n + row) * eltBytes, dtype, 1, &w[c]);
      } else {
        rt::convertToFloat(in + i * k * eltBytes, dtype, k, w.data());
      }
      for (int64_t gi = 0; gi < groups; ++gi) {
        const float *x = &w[gi * group];
        float lo = x[0], hi = x[0];
        for (int64_t j = 1; j < group; ++j) {
          lo = std::min(lo, x[j]);
          hi = std::max(hi, x[j]);
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
          zeros[i * groups + gi] = zero;
        } else {
          // The element of largest magnitude takes the most negative code.
          float m = std::fabs(lo) > std::fabs(hi) ? lo : hi;
          scale = roundTo(dtype, m / -float(levels / 2));
          zero = float(levels / 2);
        }
        scales[i * groups + gi] = scale;
        for (int64_t j = 0; j < group; ++j) {
          float c = scale != 0 ? std::nearbyint(x[j] / scale) + zero : zero;
          codes[i * k + gi * group + j] =
              static_cast<uint8_t>(std::clamp(c, 0.0f, float(levels - 1)));
        }
      }
    });
    // What was read from a mapped source can go.
    if (view && inOut)
      for (int64_t c = 0; c < k; ++c)
        source->released((c * n + first) * eltBytes, count * eltBytes);
    else if (view)
      source->released(first * k * eltBytes, count * k * eltBytes);
  }

  void release() {
    std::vector<char>().swap(cache);
    source->release();
  }
};

/// One of the three weights a QuantizeJob makes; each computes the rows it
/// is asked for (the job's arithmetic is cheap next to reading the source).
class QuantizedPart : public rt::WeightSource {
public:
  enum Kind { Codes, Scales, ZeroPoints };
  QuantizedPart(std::shared_ptr<QuantizeJob> job, Kind kind)
      : job(std::move(job)), kind(kind) {}
  uint64_t rows() const override { return job->n; }
  uint64_t rowBytes() const override {
    return kind == Codes ? job->k * job->bits / 8
                         : job->k / job->group * rt::dtypeSize(job->dtype);
  }
  void readRows(uint64_t first, uint64_t count, char *out) override {
    const int64_t groups = job->k / job->group;
    std::vector<uint8_t> codes(count * job->k);
    std::vector<float> scales(count * groups),
        zeros(job->asymmetric ? count * groups : 0);
    job->rows(first, count, codes.data(), scales.data(), zeros.data());
    switch (kind) {
    case Codes:
      if (job->bits == 8) {
        std::memcpy(out, codes.data(), codes.size());
        return;
      }
      for (size_t i = 0; i < codes.size() / 2; ++i)
        out[i] = static_cast<char>(codes[2 * i] | (codes[2 * i + 1] << 4));
      return;
    case Scales:
      rt::convertFromFloat(scales.data(), job->dtype, scales.size(), out);
      return;
    case ZeroPoints:
      rt::convertFromFloat(zeros.data(), job->dtype, zeros.size(), out);
      return;
    }
  }
  void release() override { job->release(); }

private:
  std::shared_ptr<QuantizeJob> job;
  Kind kind;
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

  /// Quantizes global `g` ([N, K], or [K, N] when `inOut`): three globals
  /// (packed codes, scales, zero points) whose rows a shared QuantizeJob
  /// computes when they are read.
  Quantized make(ml_program::GlobalOp g, rt::DType dtype, bool inOut, int64_t n,
                 int64_t k, int64_t group, SymbolTable &symbols) {
    Type elt = cast<RankedTensorType>(g.getType()).getElementType();
    auto job = std::make_shared<QuantizeJob>();
    job->source = globalWeight(g);
    job->dtype = dtype;
    job->inOut = inOut;
    job->n = n;
    job->k = k;
    job->group = group;
    job->bits = bits;
    job->asymmetric = asymmetric;
    MLIRContext *ctx = &getContext();
    auto i8 = IntegerType::get(ctx, 8);
    std::string base = (g.getSymName() + (inOut ? ".t" : "") + "." + scheme +
                        "g" + std::to_string(group))
                           .str();
    const int64_t groups = k / group;
    Quantized q;
    q.packed = createWeightGlobal(
        symbols, g, base + ".packed",
        RankedTensorType::get({n, k * bits / 8}, i8),
        std::make_shared<QuantizedPart>(job, QuantizedPart::Codes));
    auto scaleType = RankedTensorType::get({n, groups}, elt);
    q.scales = createWeightGlobal(
        symbols, g, base + ".scales", scaleType,
        std::make_shared<QuantizedPart>(job, QuantizedPart::Scales));
    if (asymmetric)
      q.zeroPoints = createWeightGlobal(
          symbols, g, base + ".zero_points", scaleType,
          std::make_shared<QuantizedPart>(job, QuantizedPart::ZeroPoints));
    return q;
  }

  int64_t bits = 8;
  /// Quantized copies by the original's name (shared by the entry points).
  llvm::StringMap<Quantized> made;
};

} // namespace
