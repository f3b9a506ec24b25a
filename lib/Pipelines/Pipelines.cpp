//===- Pipelines.cpp - Kiln's compilation pipelines -----------------------===//

#include "kiln/Pipelines/Pipelines.h"
#include "dialects/Tfm/TfmOps.h"
#include "passes/Passes.h"

#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVM.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/NVVMToLLVM/NVVMToLLVM.h"
#include "mlir/Conversion/Passes.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVM.h"
#include "mlir/Dialect/Arith/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/IR/DstBufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/Linalg/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Dialect/Tensor/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"

#include <cstdlib>
#include <string>

using namespace mlir;

void kiln::buildTensorParallelSplit(OpPassManager &pm,
                                    const PipelineOptions &opts) {
  if (opts.tensorParallel <= 1)
    return;
  ShardTensorParallelOptions shard;
  shard.ranks = opts.tensorParallel;
  shard.rank = opts.rank;
  pm.addPass(createShardTensorParallel(shard));
}

void kiln::buildLoopsPipeline(OpPassManager &pm, const PipelineOptions &opts) {
  buildTensorParallelSplit(pm, opts);
  SpecializeEntryPointsOptions entry;
  entry.batch = opts.batch;
  entry.prefillChunk = opts.prefillChunk;
  entry.maxSeqLen = opts.maxSeqLen;
  entry.prefillLogits = opts.prefillLogits;
  entry.decodeBatches.assign(opts.decodeBatches.begin(),
                             opts.decodeBatches.end());
  entry.sampling = opts.deviceSampling;
  entry.kvBlockSize = opts.kvBlockSize;
  entry.kvBlocks = opts.kvBlocks;
  pm.addPass(createSpecializeEntryPoints(entry));
  if (opts.fuseProjections) {
    FuseProjectionsOptions fuse;
    fuse.transposeInOut = opts.transposeWeights;
    pm.addPass(createFuseProjections(fuse));
  }
  if (opts.fuseSwiglu)
    pm.addNestedPass<func::FuncOp>(createFuseSwiGlu());
  if (opts.fuseNorm)
    pm.addPass(createFuseNormProjection());
  if (opts.transposeWeights)
    pm.addPass(createTransposeWeights());
  if (!opts.quantize.empty()) {
    QuantizeWeightsOptions quant;
    quant.scheme = opts.quantize;
    quant.groupSize = opts.quantizeGroupSize;
    quant.asymmetric = opts.quantizeAsymmetric;
    quant.lmHead = opts.quantizeLmHead;
    pm.addPass(createQuantizeWeights(quant));
  }
  if (opts.stopAfterTfm)
    return;
  pm.addNestedPass<func::FuncOp>(createLowerTfmToLinalg());
  pm.addNestedPass<func::FuncOp>(createNarrowLogits());
  if (opts.fuseElementwise)
    pm.addNestedPass<func::FuncOp>(createFuseElementwise());
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
  // The KV appends' scf.forall (no results once bufferized) -> scf.parallel,
  // the form loop mapping and the CPU's loop lowering take.
  pm.addPass(createForallToParallelLoopPass());
  if (opts.parallelLoops) {
    // GPU targets: ops with a hand-built kernel stay whole.
    SelectKernelsOptions select;
    select.epilogues = opts.fuseEpilogues;
    if (!opts.fuseAttention)
      select.disable.append({"attention_decode", "attention_prefill"});
    if (!opts.tensorCores)
      select.disable.append({"matmul_mma", "attention_prefill"});
    select.warpgroupMma = opts.tensorCores && opts.wgmma && opts.targetWgmma;
    pm.addPass(createSelectKernels(select));
    pm.addNestedPass<func::FuncOp>(createLowerLinalgToLoops());
    // Loop nests in the form kiln-map-loops-to-gpu reads them (fills as one
    // store), so that the planner sees the fills it will fold (scratch).
    pm.addPass(createCanonicalizerPass());
  } else
    pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  pm.addNestedPass<func::FuncOp>(createPlanMemory());
  pm.addPass(createCanonicalizerPass());
}

void kiln::buildCpuToLLVMPipeline(OpPassManager &pm) {
  pm.addPass(createLowerCollectivesToCalls());
  pm.addNestedPass<func::FuncOp>(createPromoteAccumulators());
  pm.addPass(createOutlineLoopNests());
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

void kiln::buildGpuPipeline(OpPassManager &pm, const GpuOptions &opts) {
  MapLoopsToGpuOptions map;
  map.clusterBlocks = opts.clusterBlocks;
  pm.addPass(createMapLoopsToGpu(map));
  pm.addPass(createCanonicalizerPass());
  if (opts.dependentLaunch)
    pm.addPass(createDependentLaunch());
  if (opts.deduplicate)
    pm.addPass(createDeduplicateKernels());
  OpPassManager &dev = pm.nest<gpu::GPUModuleOp>();
  dev.addPass(createLowerSubgroupReduce());
  dev.addPass(createParallelForToNestedForsPass());
  dev.addPass(createLowerAffinePass());
  dev.addPass(createSCFToControlFlowPass());
  dev.addPass(memref::createExpandStridedMetadataPass());
  dev.addPass(createLowerAffinePass());
  GpuNVVMAttachTargetOptions target;
  target.chip = opts.chip;
  target.optLevel = 3;
  if (!opts.libdevice.empty())
    target.linkLibs.push_back(opts.libdevice);
  pm.addPass(createGpuNVVMAttachTarget(target));
  ConvertGpuOpsToNVVMOpsOptions nvvm;
  nvvm.useBarePtrCallConv = true;
  nvvm.indexBitwidth = 64;
  // The tensor-core kernels' nvgpu ops (ldmatrix, mma.sync, cp.async) first,
  // as upstream's gpu-lower-to-nvvm-pipeline does.
  pm.nest<gpu::GPUModuleOp>().addPass(createConvertNVGPUToNVVMPass());
  pm.nest<gpu::GPUModuleOp>().addPass(createConvertGpuOpsToNVVMOps(nvvm));
  // NVVM ops built as inline PTX (matmul_wgmma's wgmma.mma_async).
  pm.nest<gpu::GPUModuleOp>().addPass(createConvertNVVMToLLVMPass());
  pm.nest<gpu::GPUModuleOp>().addPass(createReconcileUnrealizedCastsPass());
  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = "isa"; // PTX; ptxas makes the cubin
  pm.addPass(createGpuModuleToBinaryPass(binary));
}

namespace {
/// tfm.sample bufferizes in destination style: the same op on the buffers of
/// its operands, writing the buffer of `init` (see the op's description).
struct SampleBufferization
    : bufferization::DstBufferizableOpInterfaceExternalModel<
          SampleBufferization, kiln::tfm::SampleOp> {
  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const bufferization::BufferizationOptions &options,
                          bufferization::BufferizationState &state) const {
    auto sample = cast<kiln::tfm::SampleOp>(op);
    SmallVector<Value> buffers;
    for (Value operand : sample->getOperands()) {
      FailureOr<Value> buffer =
          bufferization::getBuffer(rewriter, operand, options, state);
      if (failed(buffer))
        return failure();
      buffers.push_back(*buffer);
    }
    rewriter.setInsertionPoint(op);
    kiln::tfm::SampleOp::create(rewriter, op->getLoc(), TypeRange{}, buffers[0],
                                buffers[1], buffers[2], buffers[3]);
    bufferization::replaceOpWithBufferizedValues(rewriter, op, buffers[3]);
    return success();
  }
};

/// tfm.all_reduce sums in place: its result is its operand's buffer
/// (one-shot bufferization copies the operand first where it is read later).
struct AllReduceBufferization
    : bufferization::BufferizableOpInterface::ExternalModel<
          AllReduceBufferization, kiln::tfm::AllReduceOp> {
  bool bufferizesToMemoryRead(Operation *, OpOperand &,
                              const bufferization::AnalysisState &) const {
    return true;
  }
  bool bufferizesToMemoryWrite(Operation *, OpOperand &,
                               const bufferization::AnalysisState &) const {
    return true;
  }
  bufferization::AliasingValueList
  getAliasingValues(Operation *op, OpOperand &,
                    const bufferization::AnalysisState &) const {
    return {{op->getResult(0), bufferization::BufferRelation::Equivalent}};
  }
  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const bufferization::BufferizationOptions &options,
                          bufferization::BufferizationState &state) const {
    auto reduce = cast<kiln::tfm::AllReduceOp>(op);
    FailureOr<Value> buffer =
        bufferization::getBuffer(rewriter, reduce.getInput(), options, state);
    if (failed(buffer))
      return failure();
    rewriter.setInsertionPoint(op);
    kiln::tfm::AllReduceOp::create(rewriter, op->getLoc(), TypeRange{}, *buffer,
                                   reduce.getRanks());
    bufferization::replaceOpWithBufferizedValues(rewriter, op, *buffer);
    return success();
  }
};

/// tfm.all_gather reads its operand and writes a new buffer. The collectives
/// gather along a new leading axis (each rank's buffer after the other, as
/// NCCL's all-gather writes them); for axis k > 0 the ranks are then moved
/// next to axis k:
///   [d0.., dk, ..] -> [1, d0.., dk, ..] -gather-> [N, d0.., dk, ..]
///   -transpose-> [d0.., N, dk, ..] -collapse-> [d0.., N dk, ..]
/// When d0 .. d(k-1) are all 1 (a decode step's logits) the gathered buffer
/// is already in the result's order: reshapes only.
struct AllGatherBufferization
    : bufferization::BufferizableOpInterface::ExternalModel<
          AllGatherBufferization, kiln::tfm::AllGatherOp> {
  bool bufferizesToMemoryRead(Operation *, OpOperand &,
                              const bufferization::AnalysisState &) const {
    return true;
  }
  bool bufferizesToMemoryWrite(Operation *, OpOperand &,
                               const bufferization::AnalysisState &) const {
    return false;
  }
  bufferization::AliasingValueList
  getAliasingValues(Operation *, OpOperand &,
                    const bufferization::AnalysisState &) const {
    return {};
  }
  bool bufferizesToAllocation(Operation *, Value) const { return true; }
  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const bufferization::BufferizationOptions &options,
                          bufferization::BufferizationState &state) const {
    auto gather = cast<kiln::tfm::AllGatherOp>(op);
    Location loc = op->getLoc();
    FailureOr<Value> buffer =
        bufferization::getBuffer(rewriter, gather.getInput(), options, state);
    if (failed(buffer))
      return failure();
    rewriter.setInsertionPoint(op);
    auto inType = cast<RankedTensorType>(gather.getInput().getType());
    const int64_t axis = gather.getAxis(), ranks = gather.getRanks();
    const int64_t rank = inType.getRank();
    Type element = inType.getElementType();
    auto alloc = [&](ArrayRef<int64_t> shape) {
      return options.createAlloc(rewriter, loc, MemRefType::get(shape, element),
                                 {});
    };
    // The collectives read a contiguous buffer.
    Value input = *buffer;
    if (!cast<MemRefType>(input.getType()).getLayout().isIdentity()) {
      FailureOr<Value> copy = alloc(inType.getShape());
      if (failed(copy))
        return failure();
      linalg::CopyOp::create(rewriter, loc, input, *copy);
      input = *copy;
    }
    SmallVector<int64_t> lead{1};
    lead.append(inType.getShape().begin(), inType.getShape().end());
    SmallVector<ReassociationIndices> join{{0, 1}};
    for (int64_t d = 2; d <= rank; ++d)
      join.push_back({d});
    Value expanded = memref::ExpandShapeOp::create(
        rewriter, loc, MemRefType::get(lead, element), input, join);
    lead[0] = ranks;
    FailureOr<Value> gathered = alloc(lead);
    if (failed(gathered))
      return failure();
    kiln::tfm::AllGatherOp::create(rewriter, loc, TypeRange{}, expanded,
                                   *gathered, ranks, 0);
    auto resultType = cast<RankedTensorType>(gather.getResult()[0].getType());
    auto result = MemRefType::get(resultType.getShape(), element);
    int64_t outer = 1;
    for (int64_t d = 0; d < axis; ++d)
      outer *= inType.getDimSize(d);
    Value out;
    if (outer == 1) {
      // [N, 1.., dk, rest..] -> [N dk, rest..] -> [1.., N dk, rest..].
      SmallVector<ReassociationIndices> toFlat(1), toResult(1);
      for (int64_t d = 0; d <= axis + 1; ++d)
        toFlat[0].push_back(d);
      for (int64_t d = axis + 2; d <= rank; ++d)
        toFlat.push_back({d});
      SmallVector<int64_t> flat{ranks * inType.getDimSize(axis)};
      for (int64_t d = axis + 1; d < rank; ++d)
        flat.push_back(inType.getDimSize(d));
      for (int64_t d = 0; d <= axis; ++d)
        toResult[0].push_back(d);
      for (int64_t d = axis + 1; d < rank; ++d)
        toResult.push_back({d});
      Value collapsed = memref::CollapseShapeOp::create(
          rewriter, loc, MemRefType::get(flat, element), *gathered, toFlat);
      out = memref::ExpandShapeOp::create(rewriter, loc, result, collapsed,
                                          toResult);
    } else {
      SmallVector<int64_t> perm, moved;
      for (int64_t d = 1; d <= axis; ++d)
        perm.push_back(d);
      perm.push_back(0);
      for (int64_t d = axis + 1; d <= rank; ++d)
        perm.push_back(d);
      for (int64_t d : perm)
        moved.push_back(lead[d]);
      FailureOr<Value> transposed = alloc(moved);
      if (failed(transposed))
        return failure();
      linalg::TransposeOp::create(rewriter, loc, *gathered, *transposed, perm);
      SmallVector<ReassociationIndices> merge;
      for (int64_t d = 0; d < axis; ++d)
        merge.push_back({d});
      merge.push_back({axis, axis + 1});
      for (int64_t d = axis + 2; d <= rank; ++d)
        merge.push_back({d});
      out = memref::CollapseShapeOp::create(rewriter, loc, result, *transposed,
                                            merge);
    }
    bufferization::replaceOpWithBufferizedValues(rewriter, op, out);
    return success();
  }
};
} // namespace

void kiln::registerPipelineInterfaces(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, tfm::TfmDialect *) {
    tfm::SampleOp::attachInterface<SampleBufferization>(*ctx);
    tfm::AllReduceOp::attachInterface<AllReduceBufferization>(*ctx);
    tfm::AllGatherOp::attachInterface<AllGatherBufferization>(*ctx);
  });
  arith::registerBufferizableOpInterfaceExternalModels(registry);
  linalg::registerBufferizableOpInterfaceExternalModels(registry);
  scf::registerBufferizableOpInterfaceExternalModels(registry);
  tensor::registerBufferizableOpInterfaceExternalModels(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerGPUDialectTranslation(registry);
  // convert-gpu-to-nvvm lowers whatever dialects the kernels contain through
  // their ConvertToLLVM interfaces.
  arith::registerConvertArithToLLVMInterface(registry);
  cf::registerConvertControlFlowToLLVMInterface(registry);
  registerConvertFuncToLLVMInterface(registry);
  index::registerConvertIndexToLLVMInterface(registry);
  registerConvertMathToLLVMInterface(registry);
  registerConvertMemRefToLLVMInterface(registry);
  registerConvertNVVMToLLVMInterface(registry);
  vector::registerConvertVectorToLLVMInterface(registry);
  ub::registerConvertUBToLLVMInterface(registry);
  registerNVVMDialectTranslation(registry);
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
}

void kiln::registerPipelines() {
  PassPipelineRegistration<>(
      "kiln-loops-pipeline",
      "tfm -> static entry points -> linalg -> bufferized loop nests with a "
      "planned arena (default options)",
      [](OpPassManager &pm) { buildLoopsPipeline(pm, PipelineOptions()); });
  PassPipelineRegistration<>(
      "kiln-gpu-pipeline",
      "Planned parallel loop nests -> kernels -> NVVM -> PTX (sm_90)",
      [](OpPassManager &pm) { buildGpuPipeline(pm, GpuOptions()); });
  PassPipelineRegistration<>(
      "kiln-cpu-to-llvm", "Loop nests -> LLVM dialect for the host",
      [](OpPassManager &pm) { buildCpuToLLVMPipeline(pm); });
}

llvm::Error kiln::runPipeline(ModuleOp module, llvm::StringRef what,
                              llvm::function_ref<void(OpPassManager &)> build) {
  PassManager pm(module.getContext());
  build(pm);
  // KILN_PASS_TIMING=1: MLIR's per-pass timing report on stderr, per stage.
  if (const char *timing = std::getenv("KILN_PASS_TIMING");
      timing && std::string(timing) == "1")
    pm.enableTiming();
  std::string diagnostics;
  {
    ScopedDiagnosticHandler handler(module.getContext(), [&](Diagnostic &d) {
      if (d.getSeverity() == DiagnosticSeverity::Error)
        diagnostics += (diagnostics.empty() ? "" : "; ") + d.str();
      return success();
    });
    if (succeeded(pm.run(module)))
      return llvm::Error::success();
  }
  return llvm::createStringError(
      what + " failed" + (diagnostics.empty() ? "" : ": " + diagnostics));
}
