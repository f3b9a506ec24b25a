//===- GpuExecutor.cpp - Entry points on an NVIDIA GPU (not built yet) ---===//
//
// The CUDA driver is loaded with dlopen so the runtime has no link-time
// dependency on it and a machine without a GPU still loads artifacts. Only
// the driver probe exists today; the launcher is a later issue, and this
// file says so rather than pretending to run anything.
//
//===----------------------------------------------------------------------===//

#include "Executor.h"
#include "Format.h"

#include "kiln/runtime/Artifact.h"

#include <dlfcn.h>

namespace kiln::runtime {
using detail::fail;

namespace {

/// Number of CUDA devices, or -1 when there is no usable driver.
int probeCudaDevices() {
  void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!driver)
    return -1;
  using InitFn = int (*)(unsigned);
  using CountFn = int (*)(int *);
  auto init = reinterpret_cast<InitFn>(dlsym(driver, "cuInit"));
  auto count = reinterpret_cast<CountFn>(dlsym(driver, "cuDeviceGetCount"));
  int devices = -1;
  if (init && count && init(0) == 0 && count(&devices) != 0)
    devices = -1;
  dlclose(driver);
  return devices;
}

} // namespace

std::unique_ptr<Executor> createGpuExecutor(const Artifact &artifact,
                                            std::string *error) {
  int devices = probeCudaDevices();
  if (devices <= 0)
    fail(error, "no CUDA driver or GPU found");
  else
    fail(error, "found a CUDA driver and ", devices,
         " GPU(s), but the GPU executor is not built yet (artifact target '",
         artifact.target(), "')");
  return nullptr;
}

} // namespace kiln::runtime
