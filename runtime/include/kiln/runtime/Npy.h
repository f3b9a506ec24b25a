//===- Npy.h - Reads and writes float32 NumPy .npy files -----------------===//
//
// Just enough of the .npy format for logits dumps and KV-cache inputs:
// little-endian float32, C order. Writes version 1.0; reads 1.0, 2.0, 3.0.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_NPY_H
#define KILN_RUNTIME_NPY_H

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::runtime {

/// Writes `data` (the product of `shape` floats) as '<f4'.
bool writeNpy(const std::string &path, const float *data,
              const std::vector<int64_t> &shape, std::string *error);

/// Reads a '<f4' C-order array.
bool readNpy(const std::string &path, std::vector<int64_t> *shape,
             std::vector<float> *data, std::string *error);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_NPY_H
