//===- Format.h - Private helpers shared by the runtime's sources --------===//
//
// Error formatting and overflow-checked size arithmetic. Not installed.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_LIB_FORMAT_H
#define KILN_RUNTIME_LIB_FORMAT_H

#include "kiln/runtime/ArtifactTypes.h"

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace kiln::runtime::detail {

/// Sets `*error` to the concatenation of `parts`; returns false.
template <typename... Ts> bool fail(std::string *error, const Ts &...parts) {
  if (error) {
    std::ostringstream os;
    (os << ... << parts);
    *error = os.str();
  }
  return false;
}

/// "[2, 16, 4]".
std::string shapeString(const std::vector<int64_t> &shape);

/// True when [offset, offset + size) lies inside [0, limit).
inline bool inBounds(uint64_t offset, uint64_t size, uint64_t limit) {
  return offset <= limit && size <= limit - offset;
}

/// Bytes of a tensor; false for a negative dimension or on overflow.
bool tensorBytes(const std::vector<int64_t> &shape, DType dtype,
                 uint64_t *bytes);

inline uint64_t alignUp(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

/// CRC-32 (IEEE 802.3, the polynomial of zlib's crc32).
uint32_t crc32(const void *data, size_t size);

} // namespace kiln::runtime::detail

#endif // KILN_RUNTIME_LIB_FORMAT_H
