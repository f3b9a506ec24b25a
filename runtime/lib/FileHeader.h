//===- FileHeader.h - The fixed 64-byte header of model.kiln -------------===//
//
//   offset size field
//        0    8 magic "KILNART\0"
//        8    4 format_version
//       12    4 header_size (64)
//       16    8 meta_offset     24 8 meta_size      (the FlatBuffer)
//       32    8 weights_offset  40 8 weights_size   (4096-aligned section)
//       48    8 file_size
//       56    4 meta_crc32 (CRC-32 of the metadata bytes)
//       60    4 reserved (0)
// All integers little-endian. Not installed: only the runtime knows this.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_LIB_FILEHEADER_H
#define KILN_RUNTIME_LIB_FILEHEADER_H

#include <cstdint>
#include <cstring>

namespace kiln::runtime::detail {

constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'A', 'R', 'T', '\0'};

struct FileHeader {
  char magic[8];
  uint32_t formatVersion;
  uint32_t headerSize;
  uint64_t metaOffset;
  uint64_t metaSize;
  uint64_t weightsOffset;
  uint64_t weightsSize;
  uint64_t fileSize;
  uint32_t metaCrc32;
  uint32_t reserved;
};

template <typename T> inline void storeLE(uint8_t *out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i)
    out[i] = static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i));
}

template <typename T> inline T loadLE(const uint8_t *in) {
  uint64_t value = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    value |= static_cast<uint64_t>(in[i]) << (8 * i);
  return static_cast<T>(value);
}

inline void encodeHeader(const FileHeader &h, uint8_t out[64]) {
  std::memcpy(out, h.magic, 8);
  storeLE(out + 8, h.formatVersion);
  storeLE(out + 12, h.headerSize);
  storeLE(out + 16, h.metaOffset);
  storeLE(out + 24, h.metaSize);
  storeLE(out + 32, h.weightsOffset);
  storeLE(out + 40, h.weightsSize);
  storeLE(out + 48, h.fileSize);
  storeLE(out + 56, h.metaCrc32);
  storeLE(out + 60, h.reserved);
}

inline FileHeader decodeHeader(const uint8_t in[64]) {
  FileHeader h;
  std::memcpy(h.magic, in, 8);
  h.formatVersion = loadLE<uint32_t>(in + 8);
  h.headerSize = loadLE<uint32_t>(in + 12);
  h.metaOffset = loadLE<uint64_t>(in + 16);
  h.metaSize = loadLE<uint64_t>(in + 24);
  h.weightsOffset = loadLE<uint64_t>(in + 32);
  h.weightsSize = loadLE<uint64_t>(in + 40);
  h.fileSize = loadLE<uint64_t>(in + 48);
  h.metaCrc32 = loadLE<uint32_t>(in + 56);
  h.reserved = loadLE<uint32_t>(in + 60);
  return h;
}

} // namespace kiln::runtime::detail

#endif // KILN_RUNTIME_LIB_FILEHEADER_H
