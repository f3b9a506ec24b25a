//===- TestUtil.h - Files and paths for the runtime unit tests -----------===//

#ifndef KILN_TEST_TESTUTIL_H
#define KILN_TEST_TESTUTIL_H

#include "gtest/gtest.h"

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

namespace kiln::test {

inline ::testing::AssertionResult hasSubstr(const char *, const char *,
                                            const std::string &text,
                                            const std::string &part) {
  if (text.find(part) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "expected to contain: " << part << "\n  actual: " << text;
}

/// EXPECT that `text` contains `part` (gmock's HasSubstr without gmock).
#define EXPECT_HAS_SUBSTR(text, part)                                          \
  EXPECT_PRED_FORMAT2(::kiln::test::hasSubstr, text, part)

/// A path unique to the running test, removed afterwards.
class TempPath {
public:
  explicit TempPath(const std::string &suffix) {
    const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = ::testing::TempDir() + "kiln-" + info->test_suite_name() + "-" +
           info->name() + "-" + std::to_string(getpid()) + suffix;
  }
  ~TempPath() { std::remove(path.c_str()); }
  const std::string &str() const { return path; }
  operator const std::string &() const { return path; }

private:
  std::string path;
};

inline std::vector<uint8_t> readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

inline void writeBytes(const std::string &path,
                       const std::vector<uint8_t> &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
}

template <typename T>
void storeLE(std::vector<uint8_t> &bytes, size_t offset, T value) {
  for (size_t i = 0; i < sizeof(T); ++i)
    bytes[offset + i] = static_cast<uint8_t>(uint64_t(value) >> (8 * i));
}

template <typename T>
T loadLE(const std::vector<uint8_t> &bytes, size_t offset) {
  uint64_t value = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    value |= uint64_t(bytes[offset + i]) << (8 * i);
  return static_cast<T>(value);
}

} // namespace kiln::test

#endif // KILN_TEST_TESTUTIL_H
