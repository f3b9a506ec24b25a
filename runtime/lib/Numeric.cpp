//===- Numeric.cpp - Conversions between f32 and the 16-bit float types --===//

#include "kiln/runtime/Numeric.h"

#include <cstring>

namespace kiln::runtime {

static uint32_t bitsOf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

static float floatOf(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

float halfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1F;
  uint32_t mantissa = h & 0x3FF;
  if (exponent == 0x1F) // inf / NaN
    return floatOf(sign | 0x7F800000u | (mantissa << 13));
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24.
    float value = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    return sign ? -value : value;
  }
  return floatOf(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t floatToHalf(float value) {
  uint32_t f = bitsOf(value);
  uint16_t sign = static_cast<uint16_t>((f >> 16) & 0x8000);
  uint32_t abs = f & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) // inf / NaN
    return sign | 0x7C00 | (abs > 0x7F800000u ? 0x200 : 0);
  if (abs >= 0x477FF000u) // rounds to >= 65520: overflow
    return sign | 0x7C00;
  if (abs < 0x38800000u) {
    // Result is subnormal or zero: scale into the integer mantissa and let
    // the FPU round to nearest even.
    float scaled = floatOf(abs) * 16777216.0f; // 2^24
    uint32_t mantissa = static_cast<uint32_t>(scaled);
    float rest = scaled - static_cast<float>(mantissa);
    if (rest > 0.5f || (rest == 0.5f && (mantissa & 1)))
      ++mantissa;
    return sign | static_cast<uint16_t>(mantissa);
  }
  uint32_t rounded = abs + 0xFFFu + ((abs >> 13) & 1);
  return sign | static_cast<uint16_t>((rounded - 0x38000000u) >> 13);
}

float bf16ToFloat(uint16_t bits) {
  return floatOf(static_cast<uint32_t>(bits) << 16);
}

uint16_t floatToBf16(float value) {
  uint32_t f = bitsOf(value);
  if ((f & 0x7FFFFFFFu) > 0x7F800000u) // NaN: keep it quiet
    return static_cast<uint16_t>((f >> 16) | 0x40);
  f += 0x7FFFu + ((f >> 16) & 1);
  return static_cast<uint16_t>(f >> 16);
}

void convertToFloat(const void *src, DType dtype, size_t count, float *dst) {
  const auto *halves = static_cast<const uint16_t *>(src);
  switch (dtype) {
  case DType::F16:
    for (size_t i = 0; i < count; ++i)
      dst[i] = halfToFloat(halves[i]);
    return;
  case DType::BF16:
    for (size_t i = 0; i < count; ++i)
      dst[i] = bf16ToFloat(halves[i]);
    return;
  default:
    if (count) // memcpy's pointers must be valid even for 0 bytes
      std::memcpy(dst, src, count * sizeof(float));
  }
}

void convertFromFloat(const float *src, DType dtype, size_t count, void *dst) {
  auto *halves = static_cast<uint16_t *>(dst);
  switch (dtype) {
  case DType::F16:
    for (size_t i = 0; i < count; ++i)
      halves[i] = floatToHalf(src[i]);
    return;
  case DType::BF16:
    for (size_t i = 0; i < count; ++i)
      halves[i] = floatToBf16(src[i]);
    return;
  default:
    if (count) // --past with past_len 0 passes null pointers (UBSan)
      std::memcpy(dst, src, count * sizeof(float));
  }
}

} // namespace kiln::runtime
