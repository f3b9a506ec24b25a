//===- kiln-compile.cpp - Kiln's ahead-of-time compiler driver ------------===//
//
// kiln-compile model.onnx --emit=tfm|summary [-o out]
//
//===----------------------------------------------------------------------===//

#include "kiln/Import/OnnxImporter.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace llvm;

namespace {
enum class Emit { Tfm, Summary, Shapes };

cl::OptionCategory category("kiln-compile options");
cl::opt<std::string> inputPath(cl::Positional, cl::desc("<model.onnx>"),
                               cl::Required, cl::cat(category));
cl::opt<Emit> emit("emit", cl::desc("What to produce"),
                   cl::values(clEnumValN(Emit::Tfm, "tfm",
                                         "the raised tfm-dialect module"),
                              clEnumValN(Emit::Summary, "summary",
                                         "the model's hyper-parameters as JSON"),
                              clEnumValN(Emit::Shapes, "shapes",
                                         "the ONNX graph's inferred symbolic "
                                         "shapes (for diagnosing imports)")),
                   cl::init(Emit::Tfm), cl::cat(category));
cl::opt<std::string> outputPath("o", cl::desc("Output file (default: stdout)"),
                                cl::value_desc("file"), cl::init("-"),
                                cl::cat(category));
cl::opt<bool> printWeights(
    "print-weights",
    cl::desc("With --emit=tfm, print weight data (hex) so the output can be "
             "parsed back; elided by default"),
    cl::init(false), cl::cat(category));

int error(const Twine &message) {
  WithColor::error(errs(), "kiln-compile") << message << "\n";
  return 1;
}
} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv,
                              "Kiln: ahead-of-time compiler for Llama-family "
                              "models\n");
  if (emit == Emit::Shapes) {
    auto shapes = kiln::describeOnnxShapes(inputPath);
    if (!shapes)
      return error(toString(shapes.takeError()));
    outs() << *shapes;
    return 0;
  }
  mlir::MLIRContext context;
  // Diagnostics from verification go to stderr as one line each.
  context.printOpOnDiagnostic(false);
  auto imported = kiln::importOnnxModel(inputPath, context);
  if (!imported)
    return error(toString(imported.takeError()));

  std::string errorMessage;
  auto output = mlir::openOutputFile(outputPath, &errorMessage);
  if (!output)
    return error(errorMessage);
  switch (emit) {
  case Emit::Tfm: {
    mlir::OpPrintingFlags flags;
    if (!printWeights)
      flags.elideLargeResourceString(0);
    imported->module->print(output->os(), flags);
    output->os() << "\n";
    break;
  }
  case Emit::Summary: {
    auto summary = kiln::summarizeModel(*imported->module);
    if (!summary)
      return error(toString(summary.takeError()));
    output->os() << *summary << "\n";
    break;
  }
  }
  output->keep();
  return 0;
}
