//===- kiln-opt.cpp - Kiln's mlir-opt driver for lit tests ----------------===//

#include "kiln/InitAllDialects.h"
#include "kiln/Pipelines/Pipelines.h"
#include "passes/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  kiln::registerAllDialects(registry);
  // The tensor-core kernels' ops (matmul_mma), for tests that read them.
  registry.insert<mlir::nvgpu::NVGPUDialect>();
  // Upstream passes used in Kiln's pipelines and tests (canonicalize, cse).
  mlir::registerTransformsPasses();
  // The upstream steps of Kiln's pipelines, for tests that run them alone.
  mlir::bufferization::registerOneShotBufferizePass();
  mlir::bufferization::registerEmptyTensorEliminationPass();
  mlir::registerConvertLinalgToLoopsPass();
  mlir::registerConvertLinalgToParallelLoopsPass();
  mlir::registerConvertNVGPUToNVVMPass();
  mlir::registerConvertGpuOpsToNVVMOpsPass();
  kiln::registerPipelineInterfaces(registry);
  kiln::registerKilnPasses();
  kiln::registerPipelines();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Kiln optimizer driver\n", registry));
}
