//===- Pipelines.cpp - Kiln's compilation pipelines -----------------------===//

#include "kiln/Pipelines/Pipelines.h"
#include "passes/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/Linalg/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Tensor/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void kiln::buildLoopsPipeline(OpPassManager &pm, const PipelineOptions &opts) {
  SpecializeEntryPointsOptions entry;
  entry.batch = opts.batch;
  entry.prefillChunk = opts.prefillChunk;
  entry.maxSeqLen = opts.maxSeqLen;
  pm.addPass(createSpecializeEntryPoints(entry));
  pm.addNestedPass<func::FuncOp>(createLowerTfmToLinalg());
  // No CSE before bufferization: merging identical tensor.empty/fill inits
  // would make ops share destinations and force copies.
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createBindBuffers());
  // Lets results (logits) be computed straight into their I/O destination.
  pm.addPass(bufferization::createEmptyTensorEliminationPass());
  bufferization::OneShotBufferizePassOptions bufferize;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  pm.addNestedPass<func::FuncOp>(createPlanMemory());
  pm.addPass(createCanonicalizerPass());
}

void kiln::buildCpuToLLVMPipeline(OpPassManager &pm) {
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  ConvertFuncToLLVMPassOptions func;
  func.useBarePtrCallConv = true;
  pm.addPass(createConvertFuncToLLVMPass(func));
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

void kiln::registerPipelineInterfaces(DialectRegistry &registry) {
  arith::registerBufferizableOpInterfaceExternalModels(registry);
  linalg::registerBufferizableOpInterfaceExternalModels(registry);
  scf::registerBufferizableOpInterfaceExternalModels(registry);
  tensor::registerBufferizableOpInterfaceExternalModels(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
}

void kiln::registerPipelines() {
  PassPipelineRegistration<>(
      "kiln-loops-pipeline",
      "tfm -> static entry points -> linalg -> bufferized loop nests with a "
      "planned arena (default options)",
      [](OpPassManager &pm) { buildLoopsPipeline(pm, PipelineOptions()); });
  PassPipelineRegistration<>(
      "kiln-cpu-to-llvm", "Loop nests -> LLVM dialect for the host",
      [](OpPassManager &pm) { buildCpuToLLVMPipeline(pm); });
}
