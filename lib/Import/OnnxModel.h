//===- OnnxModel.h - A loaded, validated ONNX model -------------*- C++ -*-===//
//
// Owns the parsed protobuf and the bytes of every initializer (inline or ONNX
// external data, memory-mapped), and indexes the graph by value name.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_IMPORT_ONNXMODEL_H
#define KILN_LIB_IMPORT_ONNXMODEL_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace onnx {
class ModelProto;
class GraphProto;
class NodeProto;
class TensorProto;
class ValueInfoProto;
} // namespace onnx

namespace kiln {

/// ONNX TensorProto.DataType names and element sizes (0 if unsupported).
std::string onnxTypeName(int32_t dtype);
size_t onnxTypeSize(int32_t dtype);
/// ONNX's 4-bit integer data types (newer than the schema Kiln builds with);
/// onnxTypeSize is 0 for them: two elements share a byte.
inline constexpr int32_t kOnnxUint4 = 21, kOnnxInt4 = 22;

/// A constant tensor: an initializer or a Constant node's value.
struct ConstTensor {
  std::string name;
  int32_t dtype = 0;
  std::vector<int64_t> dims;
  llvm::ArrayRef<char> bytes; // little-endian, row-major; owned by OnnxModel
  bool external = false;

  int64_t numElements() const;
  /// Element `i` converted to double (float or integer types).
  double asDouble(int64_t i) const;
  int64_t asInt(int64_t i) const;
};

class OnnxModel {
public:
  ~OnnxModel();
  /// Parses and validates `path`: protobuf, opset, every initializer's size
  /// against its shape, external data bounds.
  static llvm::Expected<std::unique_ptr<OnnxModel>> load(llvm::StringRef path);

  const onnx::GraphProto &graph() const;
  llvm::StringRef path() const { return path_; }
  int64_t opsetVersion() const { return opset_; }

  const onnx::NodeProto *producer(llvm::StringRef value) const;
  const ConstTensor *constant(llvm::StringRef value) const;
  const onnx::ValueInfoProto *graphInput(llvm::StringRef value) const;
  llvm::ArrayRef<const onnx::NodeProto *>
  consumers(llvm::StringRef value) const;
  /// Nodes in a topological order.
  llvm::ArrayRef<const onnx::NodeProto *> nodes() const { return order_; }
  /// Drops the resident pages of `bytes` when they lie in a memory-mapped
  /// external-data file (read back from the file if touched again); nothing
  /// otherwise.
  void releasePages(llvm::ArrayRef<char> bytes) const;

private:
  OnnxModel();
  llvm::Error index();
  llvm::Expected<ConstTensor> readTensor(const onnx::TensorProto &t,
                                         llvm::StringRef context);
  llvm::Expected<llvm::ArrayRef<char>> readExternal(const onnx::TensorProto &t,
                                                    size_t expectedBytes);

  std::string path_, dir_;
  int64_t opset_ = 0;
  std::unique_ptr<onnx::ModelProto> proto_;
  llvm::StringMap<std::unique_ptr<llvm::MemoryBuffer>> externalFiles_;
  std::vector<std::unique_ptr<std::vector<char>>> ownedData_;
  llvm::StringMap<ConstTensor> constants_;
  llvm::StringMap<const onnx::NodeProto *> producers_;
  llvm::StringMap<std::vector<const onnx::NodeProto *>> consumers_;
  llvm::StringMap<const onnx::ValueInfoProto *> inputs_;
  std::vector<const onnx::NodeProto *> order_;
};

/// "node 'name' (OpType)" for messages.
std::string describeNode(const onnx::NodeProto &node);

} // namespace kiln

#endif // KILN_LIB_IMPORT_ONNXMODEL_H
