//===- CudaDriver.cpp - Loads libcuda.so.1 and its entry points -----------===//
//
// dlopen("libcuda.so.1") and dlsym of every entry point of
// KILN_CUDA_FUNCTIONS (the _v2 names cuda.h maps the plain names to), once
// per process. A missing library or a missing required entry point is kept
// in Driver::loadError; the GPU executor reports it as "no CUDA driver or GPU
// found (<reason>)".
//
//===----------------------------------------------------------------------===//

#include "CudaDriver.h"

#include <dlfcn.h>

namespace kiln::runtime::gpu {

const Driver &Driver::get() {
  static const Driver driver = load();
  return driver;
}

bool Driver::graphsAvailable() const {
  return cuStreamBeginCapture_v2 && cuStreamEndCapture && cuGraphLaunch &&
         cuGraphExecDestroy && cuGraphDestroy &&
         (cuGraphInstantiateWithFlags || cuGraphInstantiate_v2);
}

std::string Driver::describe(CUresult rc) const {
  const char *name = nullptr, *text = nullptr;
  if (cuGetErrorName && cuGetErrorName(rc, &name) != CUDA_SUCCESS)
    name = nullptr;
  if (cuGetErrorString && cuGetErrorString(rc, &text) != CUDA_SUCCESS)
    text = nullptr;
  return std::string(name ? name : "CUDA error") + " (" + std::to_string(rc) +
         ")" + (text ? std::string(": ") + text : "");
}

Driver Driver::load() {
  Driver d;
  d.handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!d.handle) {
    const char *why = dlerror();
    d.loadError = std::string("cannot load libcuda.so.1: ") +
                  (why ? why : "unknown error");
    return d;
  }
#define KILN_CUDA_LOOKUP(name, required, ...)                                  \
  d.name = reinterpret_cast<decltype(d.name)>(dlsym(d.handle, #name));         \
  if (required && !d.name && d.loadError.empty())                              \
    d.loadError = "libcuda.so.1 lacks " #name                                  \
                  " (the NVIDIA driver is too old for this runtime)";
  KILN_CUDA_FUNCTIONS(KILN_CUDA_LOOKUP)
#undef KILN_CUDA_LOOKUP
  return d;
}

} // namespace kiln::runtime::gpu
