//===- onnx.cpp - Fuzzes the ONNX loader and importer ---------------------===//
//
// kiln-compile's front half on arbitrary model.onnx bytes: the protobuf
// parse, validation, symbolic shape inference and raising into tfm
// (importOnnxModel), and --emit=shapes (describeOnnxShapes). Any input may be
// refused with an error; none may crash, hang, leak or trip a sanitizer.
//
//===----------------------------------------------------------------------===//

#include "Support.h"

#include "kiln/Import/OnnxImporter.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/Error.h"

using namespace kiln;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::MemoryFile file(data, size);
  {
    mlir::MLIRContext context;
    context.printOpOnDiagnostic(false);
    auto imported = importOnnxModel(file.path(), context);
    if (!imported)
      llvm::consumeError(imported.takeError());
  }
  auto shapes = describeOnnxShapes(file.path());
  if (!shapes)
    llvm::consumeError(shapes.takeError());
  return 0;
}
