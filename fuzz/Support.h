//===- Support.h - What the fuzz targets share ------------------*- C++ -*-===//

#ifndef KILN_FUZZ_SUPPORT_H
#define KILN_FUZZ_SUPPORT_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln::fuzz {

/// An anonymous in-memory file holding `data` (memfd), for loaders that take
/// a path; its path is /proc/self/fd/N. Closed when destroyed.
class MemoryFile {
public:
  MemoryFile(const uint8_t *data, size_t size);
  ~MemoryFile();
  MemoryFile(const MemoryFile &) = delete;
  MemoryFile &operator=(const MemoryFile &) = delete;
  const std::string &path() const { return filePath; }

private:
  int fd = -1;
  std::string filePath;
};

} // namespace kiln::fuzz

#endif // KILN_FUZZ_SUPPORT_H
