//===- Compiler.h - From a raised tfm module to model.kiln ------*- C++ -*-===//

#ifndef KILN_COMPILER_COMPILER_H
#define KILN_COMPILER_COMPILER_H

#include "kiln/Import/OnnxImporter.h"
#include "kiln/Pipelines/Pipelines.h"
#include "kiln/runtime/ArtifactTypes.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace kiln {

struct CompileOptions {
  PipelineOptions pipeline;
  std::string target = "cpu";
  std::string output = "model.kiln";
  /// Stored in the artifact when not empty (checked by the caller).
  runtime::TokenizerFiles tokenizer;
  /// Called while the artifact's weights are written (bytes done, total).
  std::function<void(uint64_t, uint64_t)> writeProgress;

  /// The target (cpu or a supported GPU) and the pipeline's options
  /// (PipelineOptions::verify); kiln-compile runs it before any work and
  /// lowerToLoops again.
  llvm::Error verify() const;
};

/// Sizes of everything the runtime allocates, for the memory report.
struct MemoryReport {
  uint64_t weightsBytes = 0, kvBytes = 0, arenaBytes = 0, ioBytes = 0;
  /// Tensor parallelism: the ranks; the figures above are each rank's.
  int64_t ranks = 1;
  int64_t layers = 0, kvHeads = 0, headDim = 0, maxSeqLen = 0, batch = 0;
  int64_t kvBlockSize = 0, kvBlocks = 0; // paged KV cache
  unsigned kvElementBytes = 0;
  uint64_t gpuKernels = 0, ptxBytes = 0; // GPU targets: launches, PTX size
  uint64_t distinctKernels = 0; // kernels the launches name (after dedup)
  uint64_t waitingLaunches = 0; // launches that may start early (sm_90+)
  /// Launches per mapping (hand-built kernel or generic mapping), by name.
  std::map<std::string, uint64_t> launchesByMapping;
  /// Launches per tiling of a hand-built kernel ("matmul_mma 128x128x32s2":
  /// the tile the recipe chose for the shape).
  std::map<std::string, uint64_t> launchesByTiling;
  /// Launches of each entry point's schedule, in entry order.
  std::vector<std::pair<std::string, uint64_t>> launchesByEntry;

  void print(llvm::raw_ostream &os) const;
};

/// The PTX of a module lowered by lowerToLoops for a GPU target (drops the
/// weights: this is for inspecting code, not for running it).
llvm::Expected<std::string> emitGpuAssembly(mlir::ModuleOp module,
                                            const CompileOptions &opts);

/// True for the NVIDIA targets Kiln generates code for
/// (runtime::isSupportedGpuTarget, the one owner of the list).
bool isGpuTarget(llvm::StringRef target);

/// Runs `stage(name, fn)` for each compilation stage so the driver can time
/// and report it.
using StageRunner =
    std::function<llvm::Error(llvm::StringRef, std::function<llvm::Error()>)>;

/// Lowers the importer's module (in place) to loop nests with a planned
/// arena: the part --emit=memory-plan stops after.
llvm::Error lowerToLoops(mlir::ModuleOp module, const CompileOptions &opts,
                         const StageRunner &stage);

/// Prints each entry point's arena plan (from --kiln-plan-memory).
void printMemoryPlan(mlir::ModuleOp module, llvm::raw_ostream &os);

class WeightStore;

/// While alive, the weight passes on `context` do not compute the weights
/// they make (fused, transposed, scaled, quantized): emitArtifact's writer
/// makes each one piece by piece as it writes it, so peak memory does not
/// grow with the model. `releasePages(bytes)` is called when a weight read
/// straight from the input (the importer's mapping) has been written.
class StreamedWeights {
public:
  StreamedWeights(mlir::MLIRContext *context,
                  std::function<void(llvm::ArrayRef<char>)> releasePages);
  ~StreamedWeights();

private:
  std::unique_ptr<WeightStore> store;
};

/// Generates code for the lowered module and writes the artifact. `summary`
/// is summarizeModel's (taken before lowering). With --tensor-parallel N,
/// `module` is rank 0's and `rankModules` ranks 1 .. N-1's, each lowered
/// with its `rank`: the code is rank 0's (checked to be every rank's) and
/// each rank's weights are written.
llvm::Expected<MemoryReport>
emitArtifact(mlir::ModuleOp module, const ModelSummary &summary,
             const CompileOptions &opts, const StageRunner &stage,
             llvm::ArrayRef<mlir::ModuleOp> rankModules = {});

} // namespace kiln

#endif // KILN_COMPILER_COMPILER_H
