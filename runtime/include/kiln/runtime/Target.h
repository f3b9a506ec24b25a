//===- Target.h - The targets Kiln compiles for -----------------*- C++ -*-===//
//
// One owner for target names. kiln-compile refuses, before any work, a name
// isSupportedGpuTarget does not accept; the loader dispatches on
// isNvidiaTargetName, checks the name with parseGpuTarget and the device
// against the parsed architecture.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_TARGET_H
#define KILN_RUNTIME_TARGET_H

#include <string_view>

namespace kiln::runtime {

/// An NVIDIA target "sm_XY", "sm_XYa" (architecture-specific) or "sm_XYf"
/// (family-specific), e.g. sm_90 -> {9, 0, 0}, sm_100a -> {10, 0, 'a'}.
struct GpuArch {
  int major = 0;
  int minor = 0;
  char suffix = 0; // 0, 'a' or 'f'
};

/// True when `target` names an NVIDIA target ("sm_" and anything after it):
/// the GPU executor's artifacts, whose name parseGpuTarget then checks.
inline bool isNvidiaTargetName(std::string_view target) {
  return target.substr(0, 3) == "sm_";
}

/// Parses sm_<2 or 3 digits>[a|f] (no leading zero); false for anything else.
/// The loader accepts any such name, newer than this compiler's list too.
bool parseGpuTarget(std::string_view target, GpuArch *arch);

/// True for the NVIDIA architectures Kiln generates code for (a subset of
/// what parseGpuTarget accepts): those that
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
