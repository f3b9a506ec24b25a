//===- NumericNpyTest.cpp - f16/bf16 conversions and .npy files ----------===//

#include "TestUtil.h"

#include "kiln/runtime/Npy.h"
#include "kiln/runtime/Numeric.h"

#include <cmath>
#include <limits>

using namespace kiln::runtime;
using namespace kiln::test;

namespace {

TEST(NumericTest, HalfExactValues) {
  EXPECT_EQ(floatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(floatToHalf(65520.0f), 0x7C00); // rounds to infinity
  EXPECT_EQ(floatToHalf(1e-8f), 0x0000);
  EXPECT_EQ(floatToHalf(5.9604645e-8f), 0x0001); // smallest subnormal
  EXPECT_EQ(floatToHalf(6.1035156e-5f), 0x0400); // smallest normal
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(NAN))));
  EXPECT_EQ(halfToFloat(0x3555), 0.33325195f);
  EXPECT_EQ(halfToFloat(0x0001), 5.9604645e-8f);
  EXPECT_EQ(halfToFloat(0x8000), -0.0f);
}

TEST(NumericTest, HalfRoundTripsEveryValue) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    float value = halfToFloat(uint16_t(bits));
    if (std::isnan(value))
      continue;
    EXPECT_EQ(floatToHalf(value), bits) << std::hex << bits;
  }
}

TEST(NumericTest, HalfRoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10).
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(floatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
}

TEST(NumericTest, BFloat16) {
  EXPECT_EQ(floatToBf16(1.0f), 0x3F80);
  EXPECT_EQ(bf16ToFloat(0x4049), 3.140625f);
  EXPECT_EQ(floatToBf16(3.14159265f), 0x4049);
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(NAN))));
  float in[3] = {1.0f, -0.5f, 256.0f};
  uint16_t mid[3];
  float out[3];
  convertFromFloat(in, DType::BF16, 3, mid);
  convertToFloat(mid, DType::BF16, 3, out);
  EXPECT_EQ(std::vector<float>(out, out + 3), std::vector<float>(in, in + 3));
}

// Zero elements from null pointers (what --past with past_len 0 passes) copy
// nothing; memcpy with a null pointer is undefined even for 0 bytes, which
// UBSan reported before the fix.
TEST(NumericTest, ZeroElementsFromNullPointers) {
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    convertFromFloat(nullptr, dtype, 0, nullptr);
    convertToFloat(nullptr, dtype, 0, nullptr);
  }
  float one = 1.0f, out = 0.0f;
  convertFromFloat(&one, DType::F32, 1, &out);
  EXPECT_EQ(out, 1.0f);
}

TEST(NpyTest, RoundTrip) {
  TempPath path(".npy");
  std::vector<float> data(2 * 3 * 5);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = float(i) - 7.5f;
  std::string error;
  ASSERT_TRUE(writeNpy(path, data.data(), {2, 3, 5}, &error)) << error;
  std::vector<uint8_t> bytes = readBytes(path);
  ASSERT_GE(bytes.size(), 128u);
  uint16_t headerLength = loadLE<uint16_t>(bytes, 8);
  EXPECT_EQ((10 + headerLength) % 64, 0);
  std::string header(bytes.begin() + 10, bytes.begin() + 10 + headerLength);
  EXPECT_HAS_SUBSTR(header, "{'descr': '<f4', 'fortran_order': False, "
                            "'shape': (2, 3, 5), }");
  EXPECT_EQ(header.back(), '\n');

  std::vector<int64_t> shape;
  std::vector<float> back;
  ASSERT_TRUE(readNpy(path, &shape, &back, &error)) << error;
  EXPECT_EQ(shape, (std::vector<int64_t>{2, 3, 5}));
  EXPECT_EQ(back, data);
}

TEST(NpyTest, OneDimensionalShape) {
  TempPath path(".npy");
  float data[4] = {1, 2, 3, 4};
  std::string error;
  ASSERT_TRUE(writeNpy(path, data, {4}, &error)) << error;
  std::vector<uint8_t> bytes = readBytes(path);
  std::string text(bytes.begin(), bytes.end());
  EXPECT_HAS_SUBSTR(text, "'shape': (4,), }");
  std::vector<int64_t> shape;
  std::vector<float> back;
  ASSERT_TRUE(readNpy(path, &shape, &back, &error)) << error;
  EXPECT_EQ(shape, (std::vector<int64_t>{4}));
}

TEST(NpyTest, Errors) {
  TempPath path(".npy");
  float data[4] = {1, 2, 3, 4};
  std::string error;
  std::vector<int64_t> shape;
  std::vector<float> back;
  ASSERT_TRUE(writeNpy(path, data, {4}, &error)) << error;
  std::vector<uint8_t> bytes = readBytes(path);

  std::vector<uint8_t> truncated(bytes.begin(), bytes.end() - 4);
  writeBytes(path, truncated);
  EXPECT_FALSE(readNpy(path, &shape, &back, &error));
  EXPECT_HAS_SUBSTR(error, "has 12 bytes of data; shape [4] needs 16");

  std::string text(bytes.begin(), bytes.end());
  text.replace(text.find("<f4"), 3, "<f8");
  writeBytes(path, std::vector<uint8_t>(text.begin(), text.end()));
  EXPECT_FALSE(readNpy(path, &shape, &back, &error));
  EXPECT_HAS_SUBSTR(error, "has dtype '<f8'; expected float32 ('<f4')");

  writeBytes(path, {'n', 'o', 'p', 'e', 0, 0, 0, 0, 0, 0});
  EXPECT_FALSE(readNpy(path, &shape, &back, &error));
  EXPECT_HAS_SUBSTR(error, "is not a .npy file");

  // A version-2 header (4-byte length) that claims 4 GB in a 16-byte file:
  // refused without allocating it (fuzz-npy: it allocated the 4 GB).
  writeBytes(path, {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0xF0, 0xFF, 0xFF, 0xFF,
                    '{', '}', ' ', '\n'});
  EXPECT_FALSE(readNpy(path, &shape, &back, &error));
  EXPECT_HAS_SUBSTR(error, "is truncated (its header claims 4294967280 bytes)");
}

} // namespace
