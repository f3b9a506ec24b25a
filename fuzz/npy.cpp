//===- npy.cpp - Fuzzes readNpy (kiln-run --past) -------------------------===//

#include "Support.h"

#include "kiln/runtime/Npy.h"

using namespace kiln;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::MemoryFile file(data, size);
  std::vector<int64_t> shape;
  std::vector<float> values;
  std::string error;
  if (runtime::readNpy(file.path(), &shape, &values, &error)) {
    int64_t count = 1;
    for (int64_t d : shape)
      count *= d;
    if (count != static_cast<int64_t>(values.size()))
      __builtin_trap(); // the shape must describe the data read
  } else if (error.empty()) {
    __builtin_trap();
  }
  return 0;
}
