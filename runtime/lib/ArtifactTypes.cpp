//===- ArtifactTypes.cpp - Helpers of the plain artifact structs ---------===//

#include "kiln/runtime/ArtifactTypes.h"

namespace kiln::runtime {

size_t dtypeSize(DType type) {
  switch (type) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
    return 2;
  case DType::I64:
    return 8;
  case DType::I8:
  case DType::U8:
    return 1;
  }
  return 0;
}

const char *dtypeName(DType type) {
  switch (type) {
  case DType::F32:
    return "f32";
  case DType::F16:
    return "f16";
  case DType::BF16:
    return "bf16";
  case DType::I64:
    return "i64";
  case DType::I32:
    return "i32";
  case DType::I8:
    return "i8";
  case DType::U8:
    return "u8";
  }
  return "?";
}

const char *imageKindName(ImageKind kind) {
  switch (kind) {
  case ImageKind::SharedObject:
    return "SharedObject";
  case ImageKind::Ptx:
    return "Ptx";
  case ImageKind::Cubin:
    return "Cubin";
  }
  return "?";
}

static uint64_t alignUp(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

uint64_t KvCacheSpec::blockBytes() const {
  if (paged())
    return static_cast<uint64_t>(numBlocks) * numKvHeads * blockSize * headDim *
           dtypeSize(dtype);
  return static_cast<uint64_t>(batch) * numKvHeads * maxSeqLen * headDim *
         dtypeSize(dtype);
}

void KvCacheSpec::layoutContiguous() {
  uint64_t block = alignUp(blockBytes(), kBufferAlignment);
  kOffsets.clear();
  vOffsets.clear();
  uint64_t offset = 0;
  for (int64_t layer = 0; layer < numLayers; ++layer) {
    kOffsets.push_back(offset);
    vOffsets.push_back(offset + block);
    offset += 2 * block;
  }
  kvBytes = offset;
}

int64_t TensorSpec::numElements() const {
  int64_t count = 1;
  for (int64_t dim : shape)
    count *= dim;
  return count;
}

uint64_t TensorSpec::byteSize() const {
  return static_cast<uint64_t>(numElements()) * dtypeSize(dtype);
}

} // namespace kiln::runtime
