//===- OnnxImporter.h - Raise an ONNX Llama export to tfm -------*- C++ -*-===//
//
// Entry point of Kiln's front end: reads an ONNX model (inline initializers or
// ONNX external data), infers symbolic shapes, recognises the decoder's op
// patterns and builds a `tfm` module.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_IMPORT_ONNXIMPORTER_H
#define KILN_IMPORT_ONNXIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <memory>

namespace kiln {

class OnnxModel;

/// A raised module together with the file data its weights point into. Weight
/// attributes reference the model's memory-mapped bytes without copying, so
/// the module must not outlive this object.
struct ImportedModel {
  ImportedModel();
  ImportedModel(ImportedModel &&);
  ~ImportedModel();
  std::unique_ptr<OnnxModel> source;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  /// Drops the resident pages of `bytes` when they lie in a mapped
  /// external-data file of the model (after the artifact writer copied them).
  void releasePages(llvm::ArrayRef<char> bytes) const;
};

/// Reads `path` and raises it. Errors are single-line messages that name the
/// file, the ONNX node (name and op type) or initializer at fault and what was
/// expected.
llvm::Expected<ImportedModel> importOnnxModel(llvm::StringRef path,
                                              mlir::MLIRContext &context);

/// One line per node output: the symbolic shape (and known integer values)
/// that the importer inferred. For diagnosing graphs that do not raise.
llvm::Expected<std::string> describeOnnxShapes(llvm::StringRef path);

/// The model's hyper-parameters, read back from a raised `tfm` module (not
/// from any side file): what artifact emission records and what
/// `kiln-compile --emit=summary` prints (as JSON).
struct ModelSummary {
  int64_t numLayers = 0, hiddenSize = 0, numHeads = 0, numKvHeads = 0,
          headDim = 0, vocabSize = 0, intermediateSize = 0;
  double rmsNormEps = 0;
  bool tiedEmbeddings = false;
  std::string dtype; // "float32", "float16", "bfloat16"
  bool attentionBias = false;
  double attentionScale = 0;

  /// One JSON object, keys as in Hugging Face configs where they exist.
  std::string toJson() const;
};

llvm::Expected<ModelSummary> summarizeModel(mlir::ModuleOp module);

} // namespace kiln

#endif // KILN_IMPORT_ONNXIMPORTER_H
