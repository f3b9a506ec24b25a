//===- Target.h - The targets Kiln compiles for -----------------*- C++ -*-===//
//
// One owner for target names: kiln-compile refuses, before any work, a name
// this does not accept. The runtime's loader checks an artifact's target
// against the device it runs on.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_TARGET_H
#define KILN_RUNTIME_TARGET_H

#include <string_view>

namespace kiln::runtime {

/// True for the NVIDIA architectures Kiln generates code for: those that
/// LLVM 22's NVPTX backend and CUDA 13's ptxas both know, from sm_80 (the
/// kernels use shfl.sync, bf16 conversions and 16-byte vector loads).
bool isSupportedGpuTarget(std::string_view target);

/// The supported GPU targets, for messages: "sm_80, sm_86, ...".
const char *supportedGpuTargets();

} // namespace kiln::runtime

#endif // KILN_RUNTIME_TARGET_H
