//===- Support.cpp - What the fuzz targets share --------------------------===//

#include "Support.h"

#include <cstdio>
#include <cstdlib>
#include <sys/mman.h>
#include <unistd.h>

namespace kiln::fuzz {

MemoryFile::MemoryFile(const uint8_t *data, size_t size) {
  fd = memfd_create("kiln-fuzz", 0);
  if (fd < 0) {
    std::perror("memfd_create");
    std::abort();
  }
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) {
      std::perror("write");
      std::abort();
    }
    done += static_cast<size_t>(n);
  }
  filePath = "/proc/self/fd/" + std::to_string(fd);
}

MemoryFile::~MemoryFile() {
  if (fd >= 0)
    close(fd);
}

} // namespace kiln::fuzz
