//===- Format.cpp - Private helpers shared by the runtime's sources ------===//

#include "Format.h"

#include <array>

namespace kiln::runtime::detail {

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

bool tensorBytes(const std::vector<int64_t> &shape, DType dtype,
                 uint64_t *bytes) {
  uint64_t total = dtypeSize(dtype);
  for (int64_t dim : shape) {
    if (dim < 0 ||
        __builtin_mul_overflow(total, static_cast<uint64_t>(dim), &total))
      return false;
  }
  *bytes = total;
  return true;
}

static std::array<uint32_t, 256> makeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

uint32_t crc32(const void *data, size_t size) {
  static const std::array<uint32_t, 256> table = makeCrcTable();
  const auto *bytes = static_cast<const uint8_t *>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i)
    c = table[(c ^ bytes[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

} // namespace kiln::runtime::detail
