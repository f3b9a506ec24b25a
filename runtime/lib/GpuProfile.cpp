//===- GpuProfile.cpp - Timing on the GPU with CUDA events ----------------===//
//
// KILN_PROFILE=1: the executor records a CUDA event around every launch
// (GpuLaunch.cpp); recordProfile adds up each call's GPU time per kernel,
// and printProfile prints, when the executor goes, the time per kernel
// (whose names say how each was mapped: decode_k12_gemv_kn) and per mapping;
// KILN_PROFILE_TOP=N lists the N longest kernels (default 25), and
// KILN_PROFILE_TOP=decode (or prefill) every kernel of that entry in schedule
// order.
// measureCopyBandwidth times device-to-device copies for kiln-run --bench.
//
//===----------------------------------------------------------------------===//

#include "GpuExecutor.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace kiln::runtime {
using detail::fail;

namespace gpu {

bool GpuExecutor::measureCopyBandwidth(uint64_t bytes, int repeats,
                                       double *bytesPerSecond,
                                       std::string *error) {
  if (!cuda.cuMemcpyDtoDAsync_v2 || !cuda.cuEventCreate ||
      !cuda.cuEventRecord || !cuda.cuEventElapsedTime ||
      !cuda.cuEventDestroy_v2)
    return fail(error, "measuring bandwidth needs cuMemcpyDtoDAsync and CUDA "
                       "events, which this driver lacks");
  if (!check(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent", error, deviceName))
    return false;
  CUdeviceptr from = 0, to = 0;
  CUevent start = nullptr, stop = nullptr;
  auto release = [&] {
    if (from)
      cuda.cuMemFree_v2(from);
    if (to)
      cuda.cuMemFree_v2(to);
    if (start)
      cuda.cuEventDestroy_v2(start);
    if (stop)
      cuda.cuEventDestroy_v2(stop);
  };
  bool ok = check(cuda.cuMemAlloc_v2(&from, bytes), "cuMemAlloc", error,
                  "bandwidth test, ", bytes, " bytes") &&
            check(cuda.cuMemAlloc_v2(&to, bytes), "cuMemAlloc", error,
                  "bandwidth test, ", bytes, " bytes") &&
            check(cuda.cuMemsetD8Async(from, 1, bytes, stream),
                  "cuMemsetD8Async", error, "bandwidth test") &&
            check(cuda.cuEventCreate(&start, 0), "cuEventCreate", error,
                  "bandwidth test") &&
            check(cuda.cuEventCreate(&stop, 0), "cuEventCreate", error,
                  "bandwidth test");
  double best = 0;
  // One untimed copy first (clocks up).
  for (int i = 0; ok && i <= repeats; ++i) {
    float ms = 0;
    ok = check(cuda.cuEventRecord(start, stream), "cuEventRecord", error,
               "bandwidth test") &&
         check(cuda.cuMemcpyDtoDAsync_v2(to, from, bytes, stream),
               "cuMemcpyDtoDAsync", error, "bandwidth test") &&
         check(cuda.cuEventRecord(stop, stream), "cuEventRecord", error,
               "bandwidth test") &&
         check(cuda.cuStreamSynchronize(stream), "cuStreamSynchronize", error,
               "bandwidth test") &&
         check(cuda.cuEventElapsedTime(&ms, start, stop), "cuEventElapsedTime",
               error, "bandwidth test");
    if (ok && i > 0 && ms > 0)
      best = std::max(best, 2.0 * double(bytes) / (double(ms) * 1e-3));
  }
  release();
  if (ok && best <= 0)
    return fail(error, "could not time a ", bytes, "-byte device copy");
  if (ok)
    *bytesPerSecond = best;
  return ok;
}

bool GpuExecutor::recordProfile(const EntrySpec &spec, const Entry &entry,
                                std::string *error) {
  for (size_t i = 0; i < entry.launches.size(); ++i) {
    float ms = 0;
    if (!check(cuda.cuEventElapsedTime(&ms, events[i], events[i + 1]),
               "cuEventElapsedTime", error, "KILN_PROFILE, entry '", spec.name,
               "'"))
      return false;
    KernelTime &t = kernelTimes[entry.launches[i].spec->kernel];
    t.ms += ms;
    ++t.calls;
  }
  return true;
}

void GpuExecutor::printProfile() const {
  double total = 0;
  std::map<std::string, KernelTime> byMapping;
  for (const auto &[name, t] : kernelTimes) {
    total += t.ms;
    // decode_k12_gemv_kn -> "decode gemv_kn"
    size_t k = name.find("_k");
    size_t mark = k == std::string::npos ? k : name.find('_', k + 2);
    KernelTime &m =
        byMapping[mark == std::string::npos
                      ? name
                      : name.substr(0, k) + " " + name.substr(mark + 1)];
    m.ms += t.ms;
    m.calls += t.calls;
  }
  std::vector<std::pair<std::string, KernelTime>> kernels(kernelTimes.begin(),
                                                          kernelTimes.end());
  std::sort(kernels.begin(), kernels.end(), [](const auto &a, const auto &b) {
    return a.second.ms > b.second.ms;
  });
  auto row = [&](const std::string &name, const KernelTime &t) {
    std::fprintf(
        stderr,
        "kiln profile: %10.3f ms %5.1f%% %8llu calls %9.2f us/call  %s\n", t.ms,
        total > 0 ? 100.0 * t.ms / total : 0.0,
        static_cast<unsigned long long>(t.calls),
        t.calls ? 1000.0 * t.ms / double(t.calls) : 0.0, name.c_str());
  };
  std::fprintf(stderr,
               "kiln profile: GPU time %.3f ms in %zu kernels; by mapping:\n",
               total, kernelTimes.size());
  std::vector<std::pair<std::string, KernelTime>> mappings(byMapping.begin(),
                                                           byMapping.end());
  std::sort(mappings.begin(), mappings.end(), [](const auto &a, const auto &b) {
    return a.second.ms > b.second.ms;
  });
  for (const auto &[name, t] : mappings)
    row(name, t);
  const char *top = std::getenv("KILN_PROFILE_TOP");
  if (top && (std::string(top) == "decode" || std::string(top) == "prefill")) {
    // <entry>_k<N>_...: in schedule order.
    const std::string prefix = std::string(top) + "_k";
    auto index = [&](const std::string &name) {
      return std::strtoll(name.c_str() + prefix.size(), nullptr, 10);
    };
    std::vector<std::pair<std::string, KernelTime>> entry;
    for (const auto &kt : kernels)
      if (kt.first.rfind(prefix, 0) == 0)
        entry.push_back(kt);
    std::sort(entry.begin(), entry.end(), [&](const auto &a, const auto &b) {
      return index(a.first) < index(b.first);
    });
    std::fprintf(stderr, "kiln profile: the %s entry's kernels:\n", top);
    for (const auto &[name, t] : entry)
      row(name, t);
    return;
  }
  size_t count = top ? std::strtoull(top, nullptr, 10) : 25;
  std::fprintf(stderr, "kiln profile: the %zu longest kernels:\n", count);
  for (size_t i = 0; i < kernels.size() && i < count; ++i)
    row(kernels[i].first, kernels[i].second);
}

} // namespace gpu
} // namespace kiln::runtime
