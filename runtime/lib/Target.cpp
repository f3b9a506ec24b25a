//===- Target.cpp - The targets Kiln compiles for -------------------------===//

#include "kiln/runtime/Target.h"

#include <algorithm>
#include <array>

namespace {
// LLVM 22 knows sm_101 too, but CUDA 13's ptxas does not (it became sm_110);
// sm_75 and older are left out: not every kernel selects there (sm_60/61
// have no shfl.sync in LLVM's default PTX version for them).
constexpr std::array<std::string_view, 22> kTargets = {
    "sm_80",   "sm_86",  "sm_87",   "sm_88",   "sm_89",  "sm_90",
    "sm_90a",  "sm_100", "sm_100a", "sm_100f", "sm_103", "sm_103a",
    "sm_103f", "sm_110", "sm_110a", "sm_110f", "sm_120", "sm_120a",
    "sm_120f", "sm_121", "sm_121a", "sm_121f"};
} // namespace

bool kiln::runtime::isSupportedGpuTarget(std::string_view target) {
  return std::find(kTargets.begin(), kTargets.end(), target) != kTargets.end();
}

bool kiln::runtime::parseGpuTarget(std::string_view target, GpuArch *arch) {
  if (!isNvidiaTargetName(target))
    return false;
  std::string_view digits = target.substr(3);
  char suffix = 0;
  if (!digits.empty() && (digits.back() == 'a' || digits.back() == 'f')) {
    suffix = digits.back();
    digits.remove_suffix(1);
  }
  if (digits.size() < 2 || digits.size() > 3 || digits[0] == '0')
    return false;
  int version = 0;
  for (char c : digits) {
    if (c < '0' || c > '9')
      return false;
    version = version * 10 + (c - '0');
  }
  *arch = {version / 10, version % 10, suffix};
  return true;
}

int kiln::runtime::gpuTargetMajor(std::string_view target) {
  GpuArch arch;
  if (!isSupportedGpuTarget(target) || !parseGpuTarget(target, &arch))
    return 0;
  return arch.major;
}

const char *kiln::runtime::supportedGpuTargets() {
  return "sm_80, sm_86, sm_87, sm_88, sm_89, sm_90, sm_90a, sm_100, sm_100a, "
         "sm_100f, sm_103, sm_103a, sm_103f, sm_110, sm_110a, sm_110f, "
         "sm_120, sm_120a, sm_120f, sm_121, sm_121a, sm_121f";
}

bool kiln::runtime::hostMeetsCpuBaseline(const char **missing) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  // The features x86-64-v3 adds over the baseline that compiled code uses.
  struct Feature {
    const char *name;
    bool present;
  };
  const Feature features[] = {{"avx", __builtin_cpu_supports("avx") != 0},
                              {"avx2", __builtin_cpu_supports("avx2") != 0},
                              {"fma", __builtin_cpu_supports("fma") != 0},
                              {"f16c", __builtin_cpu_supports("f16c") != 0},
                              {"bmi2", __builtin_cpu_supports("bmi2") != 0},
                              {"movbe", __builtin_cpu_supports("movbe") != 0}};
  for (const Feature &f : features)
    if (!f.present) {
      *missing = f.name;
      return false;
    }
#endif
  *missing = nullptr;
  return true;
}
