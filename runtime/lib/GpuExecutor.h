//===- GpuExecutor.h - The executor of sm_* artifacts ---------------------===//
//
// The GPU executor's class, shared by its sources: GpuExecutor.cpp (loading:
// device, module, kernels, buffers; a call), GpuLaunch.cpp (an entry's
// launches, one by one or captured into a CUDA graph) and GpuProfile.cpp
// (timing with CUDA events: KILN_PROFILE's per-kernel profile and the copy
// bandwidth of kiln-run --bench). Not installed.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_LIB_GPUEXECUTOR_H
#define KILN_RUNTIME_LIB_GPUEXECUTOR_H

#include "CudaDriver.h"
#include "Executor.h"
#include "Format.h"

#include "kiln/runtime/ArtifactTypes.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kiln::runtime::gpu {

/// One launch of a schedule, ready to go.
struct Launch {
  const LaunchSpec *spec = nullptr;
  CUfunction function = nullptr;
  std::vector<CUdeviceptr> args; // the buffers' device addresses
  std::vector<void *> params;    // params[i] = &args[i]
};

/// A byte range of the io buffer.
struct IoRange {
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct Entry {
  std::vector<Launch> launches;
  std::vector<IoRange> inputs; // tokens and positions
  uint64_t logitsRowBytes = 0;
  CUgraphExec graph = nullptr;
};

class GpuExecutor final : public Executor {
public:
  explicit GpuExecutor(const Artifact &artifact)
      : artifact(artifact), cuda(Driver::get()) {}
  ~GpuExecutor() override;
  bool init(std::string *error);

  bool run(size_t entryIndex, const void *weights, void *kv, void *arena,
           void *io, const Readback &readback, std::string *error) override;
  bool kvUpdated(const void *kv, std::string *error) override;
  bool usesHostArena() const override { return false; }
  bool attachHostIo(void *io, uint64_t bytes, std::string *error) override;
  std::string device() const override { return deviceName; }
  bool measureCopyBandwidth(uint64_t bytes, int repeats, double *bytesPerSecond,
                            std::string *error) override;

private:
  /// Fails naming `call` and what it was for (`what...`, formatted only on
  /// failure: a decode step builds no strings).
  template <typename... Ts>
  bool check(CUresult rc, const char *call, std::string *error,
             const Ts &...what) const {
    if (rc == CUDA_SUCCESS)
      return true;
    return detail::fail(error, call, " failed (", what...,
                        "): ", cuda.describe(rc));
  }
  bool loadModule(const char **used, std::string *error);
  bool prepareKernels(std::string *error);
  bool allocateBuffers(std::string *error);
  bool captureGraph(size_t entryIndex, std::string *error);
  bool launch(const EntrySpec &spec, const Entry &entry, bool syncEach,
              std::string *error);
  bool copyBack(const TensorSpec &tensor, uint64_t rowBytes,
                const SlotRange &rows, int64_t slots, void *io,
                std::string *error);

  const Artifact &artifact;
  const Driver &cuda;
  CUdevice dev = 0;
  int ccMajor = 0, ccMinor = 0;
  std::string gpu;         // "NVIDIA H100 80GB HBM3 (sm_90)"
  std::string deviceName;  // gpu plus the image and launch mode used
  CUcontext ctx = nullptr; // the retained primary context
  CUstream stream = nullptr;
  CUmodule module = nullptr;
  CUdeviceptr buffers[4] = {0, 0, 0, 0}; // weights, kv, arena, io
  uint64_t bufferBytes[4] = {0, 0, 0, 0};
  void *pinnedIo = nullptr; // the Session's io, when page-locked
  std::vector<Entry> entries;
  bool syncEachLaunch = false;
  // Programmatic dependent launch (sm_90+): each launch after an entry's
  // first whose kernel waits for the grid before it (the artifact says so:
  // LaunchSpec::waitsForPrevious) may start while that one finishes.
  // KILN_CUDA_PDL=0 turns it off.
  bool dependentLaunch = false;

  // KILN_PROFILE=1: events around every launch, GPU time per kernel name.
  struct KernelTime {
    double ms = 0;
    uint64_t calls = 0;
  };
  bool profile = false;
  std::vector<CUevent> events; // one more than the longest schedule
  std::map<std::string, KernelTime> kernelTimes;
  bool recordProfile(const EntrySpec &spec, const Entry &entry,
                     std::string *error);
  void printProfile() const;
};

} // namespace kiln::runtime::gpu

#endif // KILN_RUNTIME_LIB_GPUEXECUTOR_H
