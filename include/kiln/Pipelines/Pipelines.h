//===- Pipelines.h - Kiln's compilation pipelines ---------------*- C++ -*-===//

#ifndef KILN_PIPELINES_PIPELINES_H
#define KILN_PIPELINES_PIPELINES_H

#include "passes/EntryShape.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

/// The most ranks --tensor-parallel splits a model over (GPUs of a host).
constexpr int64_t kMaxTensorParallel = 64;

/// The compile options of the pipelines, with their defaults; kiln-compile's
/// flags are parsed into it (parseQuantize, disableFusion) and checked by
/// verify(), so the tool and the library agree on every rule.
struct PipelineOptions {
  int64_t batch = kDefaultBatch;
  int64_t prefillChunk = kDefaultPrefillChunk;
  int64_t maxSeqLen = kDefaultMaxSeqLen;
  /// The prefill entries' logits: "both" (@prefill the last row, @prefill_all
  /// every row), "last" or "all" (kiln-specialize-entry-points).
  std::string prefillLogits = "both";
  /// More decode entries for fewer sequences (@decode_b<N>, each N from 1
  /// to batch - 1; kiln-specialize-entry-points).
  std::vector<int64_t> decodeBatches;
  /// Paged KV cache: positions per block (0: contiguous caches) and blocks
  /// in each layer's pool (0: batch * ceil(maxSeqLen / kvBlockSize)).
  int64_t kvBlockSize = 0;
  int64_t kvBlocks = 0;
  /// Lower linalg to scf.parallel (GPU targets) instead of sequential loops.
  bool parallelLoops = false;
  /// Entries sample on the device (tfm.sample; GPU targets) instead of
  /// returning only the argmax.
  bool deviceSampling = false;
  /// Fusion passes (kiln-compile --no-fuse=... turns them off, one by one).
  bool fuseProjections = true;
  bool fuseNorm = true;   // kiln-fuse-norm-projection
  bool fuseSwiglu = true; // kiln-fuse-swiglu
  bool transposeWeights = true;
  bool fuseEpilogues = true; // kiln-select-kernels{epilogues}
  bool fuseAttention = true; // attention_decode, attention_prefill
  /// Split-KV decode attention over a thread-block cluster (sm_90+).
  bool splitKv = true;
  bool tensorCores = true; // matmul_mma, matmul_wgmma, attention_prefill
  /// matmul_wgmma (sm_90a's warpgroup MMA) for prefill's projections, where
  /// the target has it (targetWgmma: kiln-compile --target sm_90).
  bool wgmma = true;
  bool targetWgmma = false;
  bool fuseElementwise = true;
  /// kiln-deduplicate-kernels: layers share their kernels (GPU targets).
  bool dedupKernels = true;
  /// Weight-only quantization (kiln-quantize-weights): "" (none), "int8" or
  /// "int4"; group size 0 is one group per row.
  std::string quantize;
  int64_t quantizeGroupSize = 0;
  bool quantizeAsymmetric = false;
  bool quantizeLmHead = false;
  /// Stop after the tfm -> tfm passes (kiln-compile --emit=tfm-opt).
  bool stopAfterTfm = false;
  /// Tensor parallelism (kiln-shard-tensor-parallel): the ranks the model is
  /// split over (1: none) and the rank whose program and weights to make.
  int64_t tensorParallel = 1;
  int64_t rank = 0;

  /// Sets quantize and quantizeGroupSize from --quantize's value: int8,
  /// int8:G, int4 (groups of 32) or int4:G, with G = 32, 64 or 128.
  llvm::Error parseQuantize(llvm::StringRef text);
  /// Turns off what --no-fuse=`name` names (a fusion pass, or "all").
  llvm::Error disableFusion(llvm::StringRef name);
  /// The values together: the entry shapes' bounds (checkEntryShape) and the
  /// quantization flags. Errors name the flag.
  llvm::Error verify() const;
};

struct GpuOptions {
  std::string chip = "sm_90"; // NVPTX target, e.g. sm_80, sm_90
  std::string libdevice;      // CUDA's libdevice.10.bc, linked for math
  /// Kernels wait for the grid before them (kiln-dependent-launch), so that
  /// the runtime may launch them early: sm_90 and later.
  bool dependentLaunch = true;
  /// kiln-deduplicate-kernels: each distinct kernel generated once.
  bool deduplicate = true;
  /// Most blocks per thread-block cluster a kernel may use (sm_90 and later;
  /// 1: none): kiln-map-loops-to-gpu's cluster-blocks (split-KV decode
  /// attention).
  int64_t clusterBlocks = 1;
};

/// tfm (from the importer) -> static entry points -> linalg -> bufferized,
/// buffers bound to the runtime ABI and planned in the arena: the
/// target-neutral part, ending in memref + scf loop nests.
void buildLoopsPipeline(mlir::OpPassManager &pm, const PipelineOptions &opts);

/// The split of the imported module into rank `opts.rank`'s program of
/// `opts.tensorParallel` (the first pass of buildLoopsPipeline; nothing for
/// one rank).
void buildTensorParallelSplit(mlir::OpPassManager &pm,
                              const PipelineOptions &opts);

/// Loop nests -> LLVM dialect for the host (bare-pointer entry points).
void buildCpuToLLVMPipeline(mlir::OpPassManager &pm);

/// Parallel loop nests -> one kernel per nest in gpu.module @kiln_kernels,
/// lowered through NVVM to PTX (gpu.binary); the entry points become
/// launch schedules.
void buildGpuPipeline(mlir::OpPassManager &pm, const GpuOptions &opts);

/// Runs the pipeline `build` makes on `module`, turning its error
/// diagnostics into the error's message ("<what> failed: ...").
llvm::Error runPipeline(mlir::ModuleOp module, llvm::StringRef what,
                        llvm::function_ref<void(mlir::OpPassManager &)> build);

/// Registers the dialect interfaces the pipelines need (bufferization and
/// LLVM translation models).
void registerPipelineInterfaces(mlir::DialectRegistry &registry);

/// Registers `kiln-loops-pipeline` and `kiln-cpu-pipeline` for kiln-opt.
void registerPipelines();

} // namespace kiln

#endif // KILN_PIPELINES_PIPELINES_H
