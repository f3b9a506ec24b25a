//===- OnnxAttrs.h - ONNX node attribute accessors --------------*- C++ -*-===//

#ifndef KILN_LIB_IMPORT_ONNXATTRS_H
#define KILN_LIB_IMPORT_ONNXATTRS_H

#include "onnx.pb.h"

#include "llvm/ADT/StringRef.h"

#include <vector>

namespace kiln {

inline const onnx::AttributeProto *findAttr(const onnx::NodeProto &node,
                                            llvm::StringRef name) {
  for (const auto &a : node.attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

inline bool hasAttr(const onnx::NodeProto &node, llvm::StringRef name) {
  return findAttr(node, name) != nullptr;
}

inline int64_t attrInt(const onnx::NodeProto &node, llvm::StringRef name,
                       int64_t fallback) {
  const onnx::AttributeProto *a = findAttr(node, name);
  return a ? a->i() : fallback;
}

inline float attrFloat(const onnx::NodeProto &node, llvm::StringRef name,
                       float fallback) {
  const onnx::AttributeProto *a = findAttr(node, name);
  return a ? a->f() : fallback;
}

inline std::vector<int64_t> attrInts(const onnx::NodeProto &node,
                                     llvm::StringRef name) {
  const onnx::AttributeProto *a = findAttr(node, name);
  if (!a)
    return {};
  return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}

} // namespace kiln

#endif // KILN_LIB_IMPORT_ONNXATTRS_H
