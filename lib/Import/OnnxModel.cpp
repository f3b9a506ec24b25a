//===- OnnxModel.cpp - Load and validate an ONNX model --------------------===//

#include "OnnxModel.h"

#include "onnx.pb.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SHA1.h"

#include <cstring>
#include <iterator>
#include <limits>
#include <sys/mman.h>
#include <unistd.h>

using namespace kiln;
using llvm::createStringError;
using llvm::formatv;

namespace {
/// Opsets whose semantics the importer implements (ReduceMean/Squeeze/
/// Unsqueeze/Slice axes as inputs or attributes are both handled).
constexpr int64_t kMinOpset = 13, kMaxOpset = 23;

llvm::Error fail(const llvm::Twine &msg) {
  return createStringError(llvm::inconvertibleErrorCode(), msg);
}

uint16_t loadU16(const char *p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

float halfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { // subnormal: renormalize
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) {
        man <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
} // namespace

std::string kiln::onnxTypeName(int32_t dtype) {
  if (onnx::TensorProto_DataType_IsValid(dtype))
    return onnx::TensorProto_DataType_Name(
        static_cast<onnx::TensorProto_DataType>(dtype));
  // Types added to ONNX after the schema Kiln is built against.
  static const char *const newer[] = {
      "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ",
      "UINT4",        "INT4",           "FLOAT4E2M1", "FLOAT8E8M0"};
  if (dtype >= 17 && dtype < 17 + static_cast<int32_t>(std::size(newer)))
    return newer[dtype - 17];
  return formatv("<unknown data type {0}>", dtype).str();
}

size_t kiln::onnxTypeSize(int32_t dtype) {
  switch (dtype) {
  case onnx::TensorProto::FLOAT:
  case onnx::TensorProto::INT32:
  case onnx::TensorProto::UINT32:
    return 4;
  case onnx::TensorProto::FLOAT16:
  case onnx::TensorProto::BFLOAT16:
  case onnx::TensorProto::INT16:
  case onnx::TensorProto::UINT16:
    return 2;
  case onnx::TensorProto::DOUBLE:
  case onnx::TensorProto::INT64:
  case onnx::TensorProto::UINT64:
  case onnx::TensorProto::COMPLEX64:
    return 8;
  case onnx::TensorProto::COMPLEX128:
    return 16;
  case onnx::TensorProto::INT8:
  case onnx::TensorProto::UINT8:
  case onnx::TensorProto::BOOL:
    return 1;
  default:
    return 0;
  }
}

/// `s` with control and non-ASCII bytes escaped (\XX): a name from the file
/// can hold anything, and an error stays one readable line.
static std::string printable(llvm::StringRef s) {
  std::string out;
  llvm::raw_string_ostream os(out);
  llvm::printEscapedString(s, os);
  return out;
}

std::string kiln::describeNode(const onnx::NodeProto &node) {
  return formatv("node '{0}' ({1})",
                 node.name().empty() ? std::string("<unnamed>")
                                     : printable(node.name()),
                 printable(node.op_type()))
      .str();
}

int64_t ConstTensor::numElements() const {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

double ConstTensor::asDouble(int64_t i) const {
  const char *p = bytes.data() + i * onnxTypeSize(dtype);
  switch (dtype) {
  case onnx::TensorProto::FLOAT: {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  case onnx::TensorProto::DOUBLE: {
    double d;
    std::memcpy(&d, p, 8);
    return d;
  }
  case onnx::TensorProto::FLOAT16:
    return halfToFloat(loadU16(p));
  case onnx::TensorProto::BFLOAT16: {
    uint32_t bits = uint32_t(loadU16(p)) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  case onnx::TensorProto::INT64:
  case onnx::TensorProto::UINT64:
  case onnx::TensorProto::INT32:
  case onnx::TensorProto::UINT32:
  case onnx::TensorProto::INT16:
  case onnx::TensorProto::UINT16:
  case onnx::TensorProto::INT8:
  case onnx::TensorProto::UINT8:
  case onnx::TensorProto::BOOL:
    return static_cast<double>(asInt(i));
  default: // not a number (string, complex, float8, ...)
    return std::numeric_limits<double>::quiet_NaN();
  }
}

int64_t ConstTensor::asInt(int64_t i) const {
  const char *p = bytes.data() + i * onnxTypeSize(dtype);
  switch (dtype) {
  case onnx::TensorProto::INT64:
  case onnx::TensorProto::UINT64: {
    int64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  case onnx::TensorProto::INT32: {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  case onnx::TensorProto::UINT32: {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  case onnx::TensorProto::INT16: {
    int16_t v;
    std::memcpy(&v, p, 2);
    return v;
  }
  case onnx::TensorProto::UINT16:
    return loadU16(p);
  case onnx::TensorProto::INT8:
    return static_cast<int8_t>(*p);
  case onnx::TensorProto::UINT8:
  case onnx::TensorProto::BOOL:
    return static_cast<uint8_t>(*p);
  case onnx::TensorProto::FLOAT:
  case onnx::TensorProto::DOUBLE:
  case onnx::TensorProto::FLOAT16:
  case onnx::TensorProto::BFLOAT16: {
    // Truncated toward zero; a value no int64 holds (NaN, 1e30) is 0, never
    // an undefined conversion.
    double d = asDouble(i);
    return d > -9.2e18 && d < 9.2e18 ? static_cast<int64_t>(d) : 0;
  }
  default: // not a number (string, complex, float8, ...)
    return 0;
  }
}

OnnxModel::OnnxModel() : proto_(std::make_unique<onnx::ModelProto>()) {}
OnnxModel::~OnnxModel() = default;

const onnx::GraphProto &OnnxModel::graph() const { return proto_->graph(); }

const onnx::NodeProto *OnnxModel::producer(llvm::StringRef value) const {
  auto it = producers_.find(value);
  return it == producers_.end() ? nullptr : it->second;
}

const ConstTensor *OnnxModel::constant(llvm::StringRef value) const {
  auto it = constants_.find(value);
  return it == constants_.end() ? nullptr : &it->second;
}

const onnx::ValueInfoProto *OnnxModel::graphInput(llvm::StringRef value) const {
  auto it = inputs_.find(value);
  return it == inputs_.end() ? nullptr : it->second;
}

llvm::ArrayRef<const onnx::NodeProto *>
OnnxModel::consumers(llvm::StringRef value) const {
  auto it = consumers_.find(value);
  if (it == consumers_.end())
    return {};
  return it->second;
}

llvm::Expected<llvm::ArrayRef<char>>
OnnxModel::readExternal(const onnx::TensorProto &t, size_t expectedBytes) {
  std::string location, checksum;
  int64_t offset = 0, length = -1;
  for (const auto &kv : t.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset" || kv.key() == "length") {
      int64_t v;
      if (llvm::StringRef(kv.value()).getAsInteger(10, v) || v < 0)
        return fail(formatv("initializer '{0}': external data {1} '{2}' is "
                            "not a non-negative integer",
                            t.name(), kv.key(), kv.value()));
      (kv.key() == "offset" ? offset : length) = v;
    } else if (kv.key() == "checksum") {
      checksum = kv.value();
    } else {
      // A damaged or misspelt key must not silently become a default (an
      // 'offset' that is no longer read would read from 0).
      return fail(formatv("initializer '{0}': unknown external_data key '{1}' "
                          "(ONNX defines location, offset, length, checksum)",
                          t.name(), kv.key()));
    }
  }
  if (location.empty())
    return fail(
        formatv("initializer '{0}': external data has no location", t.name()));
  // The location is relative to the model's directory and may not leave it.
  if (llvm::sys::path::is_absolute(location) ||
      llvm::any_of(llvm::make_range(llvm::sys::path::begin(location),
                                    llvm::sys::path::end(location)),
                   [](llvm::StringRef c) { return c == ".."; }))
    return fail(formatv("initializer '{0}': external data location '{1}' "
                        "must be a relative path inside the model's directory",
                        t.name(), location));
  if (length >= 0 && static_cast<size_t>(length) != expectedBytes)
    return fail(formatv("initializer '{0}': external data length {1} does not "
                        "match its shape and type ({2} bytes)",
                        t.name(), length, expectedBytes));

  auto &buffer = externalFiles_[location];
  if (!buffer) {
    llvm::SmallString<256> file(dir_);
    llvm::sys::path::append(file, location);
    // A symbolic link is followed, and where it leads must be inside the
    // model's directory too.
    llvm::SmallString<256> realFile, realDir;
    if (!llvm::sys::fs::real_path(file, realFile) &&
        !llvm::sys::fs::real_path(dir_.empty() ? "." : dir_, realDir)) {
      llvm::StringRef inside(realFile);
      if (!inside.consume_front(realDir) ||
          !llvm::sys::path::is_separator(inside.empty() ? '\0' : inside[0]))
        return fail(formatv("initializer '{0}': external data file '{1}' "
                            "resolves to '{2}', outside the model's directory",
                            t.name(), location, realFile));
    }
    auto mapped = llvm::MemoryBuffer::getFile(file, /*IsText=*/false,
                                              /*RequiresNullTerminator=*/false);
    if (!mapped)
      return fail(formatv("initializer '{0}': cannot open external data file "
                          "'{1}': {2}",
                          t.name(), file, mapped.getError().message()));
    buffer = std::move(*mapped);
  }
  size_t fileSize = buffer->getBufferSize();
  if (static_cast<size_t>(offset) > fileSize ||
      expectedBytes > fileSize - static_cast<size_t>(offset))
    return fail(formatv("initializer '{0}': external data needs bytes "
                        "[{1}, {2}) of '{3}', but the file has {4} bytes",
                        t.name(), offset, offset + expectedBytes, location,
                        fileSize));
  llvm::ArrayRef<char> bytes(buffer->getBufferStart() + offset, expectedBytes);
  if (!checksum.empty()) {
    // ONNX's checksum: the SHA-1 digest of the tensor's bytes, in hex.
    auto digest = llvm::SHA1::hash(llvm::ArrayRef<uint8_t>(
        reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size()));
    std::string hex = llvm::toHex(digest, /*LowerCase=*/true);
    if (llvm::StringRef(checksum).lower() != hex)
      return fail(formatv("initializer '{0}': external data checksum mismatch "
                          "(stored {1}, computed SHA-1 {2})",
                          t.name(), checksum, hex));
  }
  return bytes;
}

llvm::Expected<ConstTensor> OnnxModel::readTensor(const onnx::TensorProto &t,
                                                  llvm::StringRef context) {
  ConstTensor c;
  c.name = t.name();
  c.dtype = t.data_type();
  c.dims.assign(t.dims().begin(), t.dims().end());
  size_t elemSize = onnxTypeSize(c.dtype);
  const bool fourBit = c.dtype == kOnnxUint4 || c.dtype == kOnnxInt4;
  if (elemSize == 0 && !fourBit)
    return fail(formatv("{0} '{1}': unsupported data type {2} (Kiln reads "
                        "float, integer and bool tensors; weights must be "
                        "FLOAT, FLOAT16 or BFLOAT16)",
                        context, t.name(), onnxTypeName(c.dtype)));
  int64_t n = 1;
  for (int64_t d : c.dims) {
    if (d < 0)
      return fail(
          formatv("{0} '{1}': negative dimension {2}", context, t.name(), d));
    n *= d;
  }
  // 4-bit types hold two elements per byte, the first in the low bits.
  size_t expected = fourBit ? static_cast<size_t>(n + 1) / 2
                            : static_cast<size_t>(n) * elemSize;

  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    auto bytes = readExternal(t, expected);
    if (!bytes)
      return bytes.takeError();
    c.bytes = *bytes;
    c.external = true;
    return c;
  }
  if (t.has_raw_data()) {
    if (t.raw_data().size() != expected)
      return fail(formatv(
          "{0} '{1}': {2} bytes of data for shape [{3}] of "
          "{4} (expected {5})",
          context, t.name(), t.raw_data().size(),
          llvm::join(llvm::map_range(
                         c.dims, [](int64_t d) { return std::to_string(d); }),
                     ","),
          onnxTypeName(c.dtype), expected));
    c.bytes = llvm::ArrayRef<char>(t.raw_data().data(), expected);
    return c;
  }
  // Typed fields: copy into owned little-endian storage.
  auto owned = std::make_unique<std::vector<char>>(expected);
  char *out = owned->data();
  int64_t count = -1;
  if (fourBit) {
    // int32_data holds one packed byte (two elements) per entry.
    count = t.int32_data_size();
    if (count == static_cast<int64_t>(expected)) {
      for (int64_t i = 0; i < count; ++i)
        out[i] = static_cast<char>(t.int32_data(i) & 0xFF);
      count = n;
    }
  }
  if (!fourBit)
    switch (c.dtype) {
    case onnx::TensorProto::FLOAT:
      count = t.float_data_size();
      if (count == n)
        std::memcpy(out, t.float_data().data(), expected);
      break;
    case onnx::TensorProto::DOUBLE:
      count = t.double_data_size();
      if (count == n)
        std::memcpy(out, t.double_data().data(), expected);
      break;
    case onnx::TensorProto::INT64:
      count = t.int64_data_size();
      if (count == n)
        std::memcpy(out, t.int64_data().data(), expected);
      break;
    case onnx::TensorProto::UINT64:
      count = t.uint64_data_size();
      if (count == n)
        std::memcpy(out, t.uint64_data().data(), expected);
      break;
    default: // int32_data carries every type of 32 bits or fewer
      count = t.int32_data_size();
      if (count == n)
        for (int64_t i = 0; i < n; ++i) {
          int32_t v = t.int32_data(static_cast<int>(i));
          std::memcpy(out + i * elemSize, &v, elemSize);
        }
      break;
    }
  if (count != n)
    return fail(formatv("{0} '{1}': {2} values for shape of {3} elements",
                        context, t.name(), count, n));
  c.bytes = llvm::ArrayRef<char>(owned->data(), expected);
  ownedData_.push_back(std::move(owned));
  return c;
}

namespace {
/// The inputs and outputs the ONNX operator specification requires (opsets
/// 13-23 and com.microsoft's contrib ops) of the ops the raiser reads: a node
/// with fewer is malformed, and is rejected here so that no pattern has to
/// check before it reads input(i).
struct Arity {
  int inputs, outputs;
};
std::optional<Arity> requiredArity(const onnx::NodeProto &node) {
  static const llvm::StringMap<Arity> onnxOps = {
      {"Add", {2, 1}},
      {"Sub", {2, 1}},
      {"Mul", {2, 1}},
      {"Div", {2, 1}},
      {"Pow", {2, 1}},
      {"Equal", {2, 1}},
      {"Less", {2, 1}},
      {"LessOrEqual", {2, 1}},
      {"Greater", {2, 1}},
      {"GreaterOrEqual", {2, 1}},
      {"MatMul", {2, 1}},
      {"MatMulInteger", {2, 1}},
      {"Gemm", {2, 1}},
      {"Gather", {2, 1}},
      {"Reshape", {2, 1}},
      {"Expand", {2, 1}},
      {"Unsqueeze", {2, 1}},
      {"Squeeze", {1, 1}},
      {"Slice", {3, 1}},
      {"Where", {3, 1}},
      {"Range", {3, 1}},
      {"Concat", {1, 1}},
      {"Sqrt", {1, 1}},
      {"Reciprocal", {1, 1}},
      {"Neg", {1, 1}},
      {"Cos", {1, 1}},
      {"Sin", {1, 1}},
      {"Sigmoid", {1, 1}},
      {"Cast", {1, 1}},
      {"Identity", {1, 1}},
      {"IsNaN", {1, 1}},
      {"Softmax", {1, 1}},
      {"Transpose", {1, 1}},
      {"Shape", {1, 1}},
      {"Size", {1, 1}},
      {"Trilu", {1, 1}},
      {"ReduceMean", {1, 1}},
      {"DequantizeLinear", {2, 1}},
      {"DynamicQuantizeLinear", {1, 3}},
      {"Attention", {3, 1}},
      {"RotaryEmbedding", {3, 1}},
      {"RMSNormalization", {2, 1}},
      {"GatherND", {2, 1}},
      {"Flatten", {1, 1}},
      {"ConstantOfShape", {1, 1}},
  };
  static const llvm::StringMap<Arity> microsoftOps = {
      {"SimplifiedLayerNormalization", {2, 1}},
      {"SkipSimplifiedLayerNormalization", {3, 1}},
      {"GroupQueryAttention", {7, 3}},
      {"MatMulNBits", {3, 1}},
      {"GatherBlockQuantized", {3, 1}},
      {"RotaryEmbedding", {4, 1}},
  };
  // SimplifiedLayerNormalization is also found in the default domain.
  bool onnxDomain = node.domain().empty() || node.domain() == "ai.onnx";
  const llvm::StringMap<Arity> &table =
      onnxDomain && !llvm::StringRef(node.op_type())
                         .ends_with("SimplifiedLayerNormalization")
          ? onnxOps
          : microsoftOps;
  auto it = table.find(node.op_type());
  if (it == table.end())
    return std::nullopt;
  return it->second;
}
} // namespace

llvm::Error OnnxModel::index() {
  const onnx::GraphProto &g = proto_->graph();
  for (const auto &in : g.input())
    inputs_[in.name()] = &in;
  for (const auto &init : g.initializer()) {
    auto t = readTensor(init, "initializer");
    if (!t)
      return t.takeError();
    inputs_.erase(init.name()); // an initializer may also be listed as input
    constants_[init.name()] = std::move(*t);
  }
  for (const auto &node : g.node()) {
    if (node.output_size() == 0) // every ONNX operator has an output
      return fail(describeNode(node) + ": has no outputs");
    if (std::optional<Arity> arity = requiredArity(node))
      if (node.input_size() < arity->inputs ||
          node.output_size() < arity->outputs)
        return fail(formatv("{0}: has {1} inputs and {2} outputs; {3} needs "
                            "at least {4} and {5}",
                            describeNode(node), node.input_size(),
                            node.output_size(), node.op_type(), arity->inputs,
                            arity->outputs));
    for (const auto &out : node.output())
      if (!out.empty())
        producers_[out] = &node;
    for (const auto &in : node.input())
      if (!in.empty())
        consumers_[in].push_back(&node);
    if (!node.domain().empty() && node.domain() != "ai.onnx")
      continue;
    if (node.op_type() == "Constant") {
      if (node.output_size() != 1 || node.attribute_size() != 1)
        return fail(describeNode(node) + ": expected one output and one value");
      const auto &a = node.attribute(0);
      if (a.name() == "value") {
        auto t = readTensor(a.t(), "Constant");
        if (!t)
          return t.takeError();
        constants_[node.output(0)] = std::move(*t);
        continue;
      }
      // Scalar and list forms: materialize as owned tensors.
      ConstTensor c;
      c.name = node.output(0);
      auto owned = std::make_unique<std::vector<char>>();
      auto put = [&](const void *p, size_t size) {
        owned->insert(owned->end(), static_cast<const char *>(p),
                      static_cast<const char *>(p) + size);
      };
      if (a.name() == "value_float") {
        c.dtype = onnx::TensorProto::FLOAT;
        float f = a.f();
        put(&f, 4);
      } else if (a.name() == "value_int") {
        c.dtype = onnx::TensorProto::INT64;
        int64_t v = a.i();
        put(&v, 8);
      } else if (a.name() == "value_floats") {
        c.dtype = onnx::TensorProto::FLOAT;
        c.dims = {a.floats_size()};
        for (float f : a.floats())
          put(&f, 4);
      } else if (a.name() == "value_ints") {
        c.dtype = onnx::TensorProto::INT64;
        c.dims = {a.ints_size()};
        for (int64_t v : a.ints())
          put(&v, 8);
      } else {
        return fail(describeNode(node) + ": unsupported constant attribute '" +
                    a.name() + "'");
      }
      c.bytes = llvm::ArrayRef<char>(owned->data(), owned->size());
      ownedData_.push_back(std::move(owned));
      constants_[node.output(0)] = std::move(c);
    }
  }

  // Topological order (ONNX requires it, but do not rely on it).
  llvm::StringMap<bool> ready;
  for (const auto &kv : inputs_)
    ready[kv.getKey()] = true;
  for (const auto &kv : constants_)
    ready[kv.getKey()] = true;
  std::vector<const onnx::NodeProto *> pending;
  for (const auto &node : g.node())
    pending.push_back(&node);
  while (!pending.empty()) {
    std::vector<const onnx::NodeProto *> next;
    for (const onnx::NodeProto *node : pending) {
      bool ok = llvm::all_of(node->input(), [&](const std::string &in) {
        return in.empty() || ready.count(in);
      });
      if (!ok) {
        next.push_back(node);
        continue;
      }
      order_.push_back(node);
      for (const auto &out : node->output())
        ready[out] = true;
    }
    if (next.size() == pending.size()) {
      const onnx::NodeProto *node = next.front();
      for (const auto &in : node->input())
        if (!in.empty() && !ready.count(in))
          return fail(describeNode(*node) + ": input '" + in +
                      "' is not produced by any node, initializer or graph "
                      "input (or the graph has a cycle)");
    }
    pending = std::move(next);
  }
  return llvm::Error::success();
}

llvm::Expected<std::unique_ptr<OnnxModel>>
OnnxModel::load(llvm::StringRef path) {
  auto file = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                          /*RequiresNullTerminator=*/false);
  if (!file)
    return fail(
        formatv("cannot open '{0}': {1}", path, file.getError().message()));
  std::unique_ptr<OnnxModel> model(new OnnxModel());
  model->path_ = path.str();
  model->dir_ = llvm::sys::path::parent_path(path).str();
  if (model->dir_.empty())
    model->dir_ = ".";
  llvm::StringRef bytes = (*file)->getBuffer();
  if (bytes.size() > static_cast<size_t>(INT32_MAX))
    return fail(formatv("'{0}' is {1} bytes; protobuf cannot parse files over "
                        "2 GiB: export the weights as ONNX external data",
                        path, bytes.size()));
  if (!model->proto_->ParseFromArray(bytes.data(),
                                     static_cast<int>(bytes.size())))
    return fail(formatv("'{0}' is not a valid ONNX model: the protobuf does "
                        "not parse ({1} bytes; truncated or corrupted?)",
                        path, bytes.size()));
  if (!model->proto_->has_graph() || model->proto_->graph().node_size() == 0)
    return fail(formatv("'{0}' has no graph nodes: not an ONNX model", path));

  for (const auto &opset : model->proto_->opset_import())
    if (opset.domain().empty() || opset.domain() == "ai.onnx")
      model->opset_ = opset.version();
  if (model->opset_ < kMinOpset || model->opset_ > kMaxOpset)
    return fail(formatv("'{0}': unsupported opset: default domain version {1} "
                        "(Kiln supports {2} to {3}; re-export with "
                        "opset_version in that range)",
                        path, model->opset_, kMinOpset, kMaxOpset));
  if (llvm::Error err = model->index())
    return fail(formatv("'{0}': {1}", path, llvm::toString(std::move(err))));
  return model;
}

void OnnxModel::releasePages(llvm::ArrayRef<char> bytes) const {
  if (bytes.empty())
    return;
  for (const auto &entry : externalFiles_) {
    const llvm::MemoryBuffer &b = *entry.second;
    // Only a file mapping: the pages of a buffer read into memory hold the
    // only copy of the data.
    if (b.getBufferKind() != llvm::MemoryBuffer::MemoryBuffer_MMap ||
        bytes.data() < b.getBufferStart() ||
        bytes.data() + bytes.size() > b.getBufferEnd())
      continue;
    // Rounded outward to 2 MiB: a fault in a file mapping maps the whole
    // large folio of the page cache around it (up to 2 MiB; 64 KiB of
    // fault-around with small pages), so a strided read of a few KiB brings
    // in far more. Bytes of a neighbouring range on a dropped page are read
    // back from the file if they are needed again (the mapping is
    // read-only).
    uintptr_t page = std::max<uintptr_t>(
        static_cast<uintptr_t>(sysconf(_SC_PAGESIZE)), uintptr_t(2) << 20);
    uintptr_t small = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    uintptr_t start = reinterpret_cast<uintptr_t>(b.getBufferStart());
    uintptr_t stop = reinterpret_cast<uintptr_t>(b.getBufferEnd());
    // Never outside the mapping (its first and last pages).
    uintptr_t begin =
        std::max(reinterpret_cast<uintptr_t>(bytes.data()) & ~(page - 1),
                 start & ~(small - 1));
    uintptr_t end = std::min(
        (reinterpret_cast<uintptr_t>(bytes.data()) + bytes.size() + page - 1) &
            ~(page - 1),
        (stop + small - 1) & ~(small - 1));
    (void)madvise(reinterpret_cast<void *>(begin), end - begin, MADV_DONTNEED);
    return;
  }
}
