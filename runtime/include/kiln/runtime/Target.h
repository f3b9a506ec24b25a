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

/// The compute capability's major version of a supported GPU target
/// (sm_90a -> 9, sm_100 -> 10); 0 for anything else.
int gpuTargetMajor(std::string_view target);

/// The supported GPU targets, for messages: "sm_80, sm_86, ...".
const char *supportedGpuTargets();

/// The x86-64 micro-architecture level the CPU target's code is generated
/// for: x86-64-v3 (AVX2, FMA, F16C, BMI2; Haswell and Zen 1 and later), so
/// that f16 weights convert in one instruction instead of a libcall.
inline constexpr const char *kCpuBaseline = "x86-64-v3";

/// Whether the CPU this runs on has what kCpuBaseline code uses; when it has
/// not, `missing` names the first feature it lacks (e.g. "f16c").
bool hostMeetsCpuBaseline(const char **missing);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_TARGET_H
