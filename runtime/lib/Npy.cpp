//===- Npy.cpp - Reads and writes float32 NumPy .npy files ---------------===//

#include "kiln/runtime/Npy.h"

#include "Format.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace kiln::runtime {
using detail::fail;

namespace {

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kNpyMagicSize = 6;

struct FileCloser {
  void operator()(std::FILE *f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

std::string shapeTuple(const std::vector<int64_t> &shape) {
  std::string out = "(";
  for (int64_t dim : shape)
    out += std::to_string(dim) + (shape.size() == 1 ? "," : ", ");
  if (shape.size() > 1)
    out.resize(out.size() - 2);
  return out + ")";
}

/// The value text after `'key':` in a header dict, or "" when absent.
std::string dictValue(const std::string &header, const std::string &key) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos)
    return "";
  at = header.find(':', at);
  if (at == std::string::npos)
    return "";
  ++at;
  while (at < header.size() && header[at] == ' ')
    ++at;
  size_t end = at;
  if (at < header.size() && header[at] == '(')
    end = header.find(')', at) + 1;
  else if (at < header.size() && header[at] == '\'')
    end = header.find('\'', at + 1) + 1;
  else
    end = header.find_first_of(",}", at);
  if (end == std::string::npos || end == 0)
    return "";
  return header.substr(at, end - at);
}

bool parseShape(const std::string &tuple, std::vector<int64_t> *shape) {
  if (tuple.size() < 2 || tuple.front() != '(' || tuple.back() != ')')
    return false;
  shape->clear();
  const char *p = tuple.c_str() + 1;
  while (*p && *p != ')') {
    while (*p == ' ' || *p == ',')
      ++p;
    if (*p == ')')
      break;
    char *end;
    errno = 0;
    long long dim = std::strtoll(p, &end, 10);
    if (end == p || errno || dim < 0)
      return false;
    shape->push_back(dim);
    p = end;
  }
  return true;
}

} // namespace

bool writeNpy(const std::string &path, const float *data,
              const std::vector<int64_t> &shape, std::string *error) {
  std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shapeTuple(shape) +
      ", }";
  // Magic, version, u16 length, dict, spaces, '\n': a multiple of 64 bytes.
  size_t unpadded = kNpyMagicSize + 2 + 2 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  uint8_t preamble[kNpyMagicSize + 4];
  std::memcpy(preamble, kNpyMagic, kNpyMagicSize);
  preamble[6] = 1;
  preamble[7] = 0;
  preamble[8] = static_cast<uint8_t>(dict.size() & 0xFF);
  preamble[9] = static_cast<uint8_t>(dict.size() >> 8);

  size_t count = 1;
  for (int64_t dim : shape)
    count *= static_cast<size_t>(dim);
  File file(std::fopen(path.c_str(), "wb"));
  if (!file)
    return fail(error, "cannot open '", path,
                "' for writing: ", std::strerror(errno));
  if (std::fwrite(preamble, 1, sizeof(preamble), file.get()) !=
          sizeof(preamble) ||
      std::fwrite(dict.data(), 1, dict.size(), file.get()) != dict.size() ||
      (count && std::fwrite(data, sizeof(float), count, file.get()) != count) ||
      std::fclose(file.release()) != 0)
    return fail(error, "cannot write '", path, "': ", std::strerror(errno));
  return true;
}

bool readNpy(const std::string &path, std::vector<int64_t> *shape,
             std::vector<float> *data, std::string *error) {
  File file(std::fopen(path.c_str(), "rb"));
  if (!file)
    return fail(error, "cannot open '", path, "': ", std::strerror(errno));
  uint8_t preamble[kNpyMagicSize + 2];
  if (std::fread(preamble, 1, sizeof(preamble), file.get()) !=
          sizeof(preamble) ||
      std::memcmp(preamble, kNpyMagic, kNpyMagicSize) != 0)
    return fail(error, "'", path, "' is not a .npy file");
  uint8_t major = preamble[6];
  size_t lengthBytes = major == 1 ? 2 : 4;
  if (major < 1 || major > 3)
    return fail(error, "'", path, "' has unsupported .npy version ",
                int(major));
  uint8_t lengthField[4] = {};
  if (std::fread(lengthField, 1, lengthBytes, file.get()) != lengthBytes)
    return fail(error, "'", path, "' is truncated");
  size_t headerSize = lengthField[0] | (lengthField[1] << 8) |
                      (size_t(lengthField[2]) << 16) |
                      (size_t(lengthField[3]) << 24);
  // A header length beyond the file must not allocate (fuzz-npy found 4 GB
  // headers of 20-byte files).
  long headerStart = std::ftell(file.get());
  if (headerStart < 0 || std::fseek(file.get(), 0, SEEK_END) != 0)
    return fail(error, "cannot read '", path, "'");
  long fileEnd = std::ftell(file.get());
  if (fileEnd < headerStart ||
      std::fseek(file.get(), headerStart, SEEK_SET) != 0)
    return fail(error, "cannot read '", path, "'");
  if (headerSize > static_cast<uint64_t>(fileEnd - headerStart))
    return fail(error, "'", path, "' is truncated (its header claims ",
                headerSize, " bytes)");
  std::string header(headerSize, '\0');
  if (std::fread(header.data(), 1, headerSize, file.get()) != headerSize)
    return fail(error, "'", path, "' is truncated");

  std::string descr = dictValue(header, "descr");
  if (descr != "'<f4'")
    return fail(error, "'", path, "' has dtype ", descr.empty() ? "?" : descr,
                "; expected float32 ('<f4')");
  if (dictValue(header, "fortran_order") != "False")
    return fail(error, "'", path, "' is not in C order");
  if (!parseShape(dictValue(header, "shape"), shape))
    return fail(error, "'", path, "' has an unreadable shape");

  uint64_t bytes;
  if (!detail::tensorBytes(*shape, DType::F32, &bytes))
    return fail(error, "'", path, "' has an invalid shape");
  // Compare with the file before allocating: a bad shape must not OOM.
  long dataStart = std::ftell(file.get());
  if (dataStart < 0 || std::fseek(file.get(), 0, SEEK_END) != 0)
    return fail(error, "cannot read '", path, "'");
  uint64_t available = static_cast<uint64_t>(std::ftell(file.get())) -
                       static_cast<uint64_t>(dataStart);
  if (available != bytes)
    return fail(error, "'", path, "' has ", available, " bytes of data; shape ",
                detail::shapeString(*shape), " needs ", bytes);
  std::fseek(file.get(), dataStart, SEEK_SET);
  data->resize(bytes / sizeof(float));
  if (std::fread(data->data(), 1, bytes, file.get()) != bytes)
    return fail(error, "cannot read '", path, "'");
  return true;
}

} // namespace kiln::runtime
