//===- GpuTarget.h - NVIDIA code generation ---------------------*- C++ -*-===//
//
// The GPU half of code generation, beside the CPU's (CpuTarget.h): the GPU
// pipeline down to PTX (upstream's gpu-module-to-binary, format "isa"), the
// CUDA toolkit's ptxas for the cubin, and the launch schedule the runtime
// replays for each entry point.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TARGET_GPUTARGET_H
#define KILN_TARGET_GPUTARGET_H

#include "kiln/runtime/ArtifactTypes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kiln {

/// The architecture kernels for `target` are built for: sm_90 code is built
/// for sm_90a, whose warpgroup MMA (matmul_wgmma) runs on the 9.0 devices
/// (H100, H200) only; the artifact still says sm_90. Other targets as they
/// are.
std::string kernelArch(llvm::StringRef target);
/// Whether kernels for `target` may use sm_90a's warpgroup MMA (wgmma).
inline bool hasWarpgroupMma(llvm::StringRef target) {
  return kernelArch(target) == "sm_90a";
}

struct GpuCode {
  std::string ptx;
  std::vector<uint8_t> cubin; // empty without ptxas
  std::string ptxasLog;
};

/// Runs the GPU pipeline on a module lowered to loop nests (buildGpuPipeline
/// for `chip`, with dependent launches from sm_90 on and CUDA's libdevice when
/// a toolkit is installed) and, when `assemble` and ptxas is found ($PATH,
/// $CUDA_HOME/bin, /usr/local/cuda/bin), assembles the PTX with `ptxas -O3`.
/// The artifact keeps the PTX beside the cubin (the driver JIT-compiles it on
/// newer GPUs), which one gpu-module-to-binary format does not give: hence
/// ptxas is run here on the PTX that pass produced. `splitKv`: kernels may
/// use thread-block clusters of up to 8 blocks from sm_90 on (the decode
/// attention splits its positions over one).
llvm::Expected<GpuCode> generateGpuCode(mlir::ModuleOp module,
                                        llvm::StringRef chip,
                                        bool assemble = true,
                                        bool deduplicate = true,
                                        bool splitKv = true);

/// The launch schedule of a lowered GPU entry point: its gpu.launch_func ops
/// in order, with constant grid and block sizes and runtime buffers as
/// arguments. Counts the launches per `kiln.mapping` into `byMapping`, and
/// those with a `kiln.tiling` per "mapping tiling" into `byTiling`.
llvm::Expected<std::vector<runtime::LaunchSpec>>
launchSchedule(mlir::func::FuncOp func,
               std::map<std::string, uint64_t> *byMapping,
               std::map<std::string, uint64_t> *byTiling);

} // namespace kiln

#endif // KILN_TARGET_GPUTARGET_H
