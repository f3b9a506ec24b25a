//===- Numeric.h - Conversions between f32 and the 16-bit float types ----===//

#ifndef KILN_RUNTIME_NUMERIC_H
#define KILN_RUNTIME_NUMERIC_H

#include "kiln/runtime/ArtifactTypes.h"

#include <cstddef>
#include <cstdint>

namespace kiln::runtime {

float halfToFloat(uint16_t bits);
/// Round to nearest even; overflow gives infinity, NaN stays NaN.
uint16_t floatToHalf(float value);
float bf16ToFloat(uint16_t bits);
/// Round to nearest even; NaN stays NaN.
uint16_t floatToBf16(float value);

/// Converts `count` elements of `dtype` (f32, f16 or bf16) to f32.
void convertToFloat(const void *src, DType dtype, size_t count, float *dst);
/// Converts `count` f32 values to `dtype` (f32, f16 or bf16).
void convertFromFloat(const float *src, DType dtype, size_t count, void *dst);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_NUMERIC_H
