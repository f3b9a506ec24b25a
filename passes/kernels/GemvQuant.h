//===- GemvQuant.h - The gemv_q kernel recipe -------------------*- C++ -*-===//
//
// gemv_q (GemvQuant.cpp: the CUDA-core forms; GemvQuantMma.cpp: the
// tensor-core form kept for measurements): the decode projection by a
// weight that tfm.dequantize makes, reading the packed codes and
// dequantizing them in registers.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_KERNELS_GEMVQUANT_H
#define KILN_PASSES_KERNELS_GEMVQUANT_H

#include "passes/kernels/Gemv.h"

#include <cstdlib>

namespace kiln::kernels::gemv {

/// The quantized projection out[b, s, n] += x[b, s, k] * dq(w)[n, k].
struct QuantProjection {
  int64_t batch = 0, seq = 0, k = 0, n = 0, bits = 0, group = 0;
  bool zeroPoints = false;
  Type inputType, scaleType;
};

/// Matches the reduction --kiln-lower-tfm-to-linalg makes of a tfm.linear
/// or tfm.logits whose weight tfm.dequantize makes (its kiln.region).
std::optional<QuantProjection> matchQuantized(Operation *op);

class GemvQuant final : public GemvRecipe {
public:
  GemvQuant() : GemvRecipe(/*inOut=*/false) {}
  static constexpr int64_t kThreads = 256;
  static constexpr int64_t kWarps = kThreads / 32;
  static constexpr int64_t kLoadBytes = 16;
  static constexpr int64_t kStride = 32 * kLoadBytes; // bytes per warp step
  /// The most workgroup memory x staged once per block may take.
  static constexpr int64_t kMaxStagedBytes = 32 * 1024;

  /// Whether the measurement switch `name` is set to 0.
  static bool tuneOff(const char *name) {
    const char *env = std::getenv(name);
    return env && StringRef(env) == "0";
  }

  StringRef name() const override { return "gemv_q"; }
  bool fusesRowNorm() const override { return true; }
  bool supportsColumnOffsets() const override { return true; }

  /// Measurement knobs, KILN_TUNE_GEMV_Q=[b]<blocks>[s<slices>]: the
  /// blocks columnsPerWarp keeps (default 64 for int4, 264 for int8) and the
  /// most warps that share a column (split-K; default 8, GemvRecipe::splitK's
  /// rule). Anything else is ignored.
  struct Tuning {
    std::optional<int64_t> minBlocks;
    int64_t maxSlices = kWarps;
  };
  static Tuning tuning() {
    Tuning t;
    const char *env = std::getenv("KILN_TUNE_GEMV_Q");
    if (!env)
      return t;
    StringRef rest(env);
    rest.consume_front("b");
    int64_t blocks = 0, slices = 0;
    if (rest.consumeInteger(10, blocks) || blocks < 1)
      return t;
    if (!rest.empty() &&
        (!rest.consume_front("s") || rest.consumeInteger(10, slices) ||
         !rest.empty() || !llvm::isPowerOf2_64(slices) || slices > kWarps))
      return t;
    t.minBlocks = blocks;
    if (slices)
      t.maxSlices = slices;
    return t;
  }

  /// Codes per 16-byte load, and per group-uniform chunk of one.
  static int64_t codesPerLoad(const QuantProjection &p) { return 128 / p.bits; }
  static int64_t chunk(const QuantProjection &p) {
    return std::min(codesPerLoad(p), p.group);
  }

  static std::optional<QuantProjection> suitable(Operation *op) {
    std::optional<QuantProjection> p = matchQuantized(op);
    if (!p || p->batch * p->seq > kMaxRows)
      return std::nullopt;
    int64_t codes = codesPerLoad(*p), perWord = 32 / p->bits;
    // Whole loads per row; a load's codes in whole groups or a group in
    // whole words of the load.
    if ((p->k * p->bits / 8) % kLoadBytes != 0 ||
        (p->group % codes != 0 &&
         (codes % p->group != 0 || p->group % perWord != 0)))
      return std::nullopt;
    return p;
  }

  bool matches(Operation *op) const override {
    return suitable(op).has_value();
  }

  /// Output columns per warp: with one batch row, as many (up to 4) as
  /// still give the grid `minBlocks` blocks before split-K, so that a
  /// warp's fixed costs (x's loads, 64 bytes of x a lane for 16 bytes of
  /// int4 codes, and the reduction) are shared by more weight bytes: a row
  /// of packed codes is short (1 KB for 2048 int4). int4 keeps 64 blocks
  /// (split-K multiplies them), int8 264 (2 per SM of a 132-SM GPU): on the
  /// H200, 64 for int4 took the 8B shape's down projection from 25.2 to
  /// 17.3 us and its decode from 395.8 to 471.5 tok/s, the 1B's from 1657
  /// to 1838, while int8 was slower with it (1B 1605 -> 1576 tok/s).
  /// KILN_TUNE_GEMV_Q=<blocks> replaces the rule for measurements (see
  /// Tuning).
  static int64_t columnsPerWarp(const QuantProjection &p, int64_t rows) {
    if (rows > 1)
      return 1;
    const int64_t minBlocks =
        tuning().minBlocks.value_or(p.bits == 4 ? 64 : 264);
    for (int64_t c : {4, 2})
      if (p.n % (kWarps * c) == 0 && p.n / (kWarps * c) >= minBlocks)
        return c;
    return 1;
  }

  /// The tensor-core form (see buildMma), for measurements only:
  /// KILN_TUNE_GEMV_Q_MMA=<slices> (a power of two up to 8: the warps that
  /// share a column tile, split-K) selects it where it suits: int4 codes
  /// with the implicit zero point, f16 activations, groups of a multiple of
  /// 128 codes (one scale per 64-byte stretch of a row), whole tiles of 16
  /// output columns and stretches per slice. Returns the slices, 0 for the
  /// CUDA-core form. Not the default: on the H200 it was correct (the real
  /// model's int4:128 perplexity 7.8867 against 7.8866, the same 256 greedy
  /// tokens on the 1B shape) but slower (8B shape 332.6 against 472.0
  /// tok/s, 1B 1135.1 against 1847.5): a warp's 16 columns leave few warps,
  /// and the one-hot reduction below costs ~a third of its instructions.
  static int64_t mmaSlices(const QuantProjection &p, int64_t width,
                           int64_t rows) {
    const char *env = std::getenv("KILN_TUNE_GEMV_Q_MMA");
    int64_t s = 0;
    if (!env || StringRef(env).getAsInteger(10, s) || s <= 0 || s > kWarps ||
        !llvm::isPowerOf2_64(s))
      return 0;
    if (p.bits != 4 || p.zeroPoints || !p.inputType.isF16() ||
        p.group % kStretchCodes != 0 || p.k % kStretchCodes != 0 || rows > 8 ||
        width % kTile != 0)
      return 0;
    const int64_t stretches = p.k / kStretchCodes, tiles = width / kTile;
    if (stretches % s != 0 || (s > 1 && tiles % (kWarps / s) != 0))
      return 0;
    return s;
  }
  static constexpr int64_t kTile = 16;          // output columns a warp
  static constexpr int64_t kStretchCodes = 128; // codes a step, per row

  /// The tensor-core form: a warp computes 16 output columns (per column
  /// offset: SwiGLU's gate and up) by mma.sync m16n8k16, the weight rows as
  /// A and up to 8 batch rows as B's columns. Lane (g, c) = (lane / 4,
  /// lane % 4) loads bytes [16 c, 16 c + 16) of each 64-byte stretch of
  /// rows g and g + 8: 32 consecutive codes of each, which it dequantizes
  /// exactly to f16 q - 8 in pairs (the f16-pair trick of the CUDA-core
  /// form: nibble j of both halves of a word, or'ed into 1024.0h, and one
  /// f16x2 fma). The mma's k order is free as long as A and B agree: lane
  /// c's k slots (2c, 2c + 1) and (2c + 8, 2c + 9) of step (w, h) hold its
  /// codes 8 w + 2 h + {0, 4} and 8 w + 2 h + {1, 5}, exactly the pairs a
  /// word gives, and B's lane (g, c) holds x of batch row g at the same
  /// codes. Each stretch (one group) goes to a zero accumulator, scaled
  /// into the running one by the row's scale; products are exact and sums
  /// f32. The accumulators then go through reduceAndStore as one-hot lane
  /// vectors (the lane holding column m, batch row r contributes it).
  FailureOr<LaunchShape> buildMma(OpBuilder &b, KernelBuilder &kb,
                                  Operation *op, IRMapping &map, Value init,
                                  Operation *epilogue, const QuantProjection &p,
                                  const OutputColumns &oc, int64_t slices,
                                  Value x, Value packed, Value scales,
                                  Value out) const;

  FailureOr<LaunchShape> build(OpBuilder &b, Operation *op, IRMapping &map,
                               gpu::GPUFuncOp kernel, Value init,
                               ArrayRef<Operation *> fused) const override;
};

} // namespace kiln::kernels::gemv

#endif // KILN_PASSES_KERNELS_GEMVQUANT_H
