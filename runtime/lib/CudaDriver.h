//===- CudaDriver.h - The CUDA driver API, loaded with dlopen -------------===//
//
// The CUDA driver API, loaded at run time with dlopen("libcuda.so.1"): the
// runtime neither links libcuda nor includes cuda.h, so it builds without the
// CUDA toolkit, and a machine without a GPU still loads artifacts and says so.
// Driver::get() looks the entry points up once per process; the GPU executor
// (GpuExecutor.h) calls them. Not installed.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_LIB_CUDADRIVER_H
#define KILN_RUNTIME_LIB_CUDADRIVER_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln::runtime::gpu {

//===----------------------------------------------------------------------===//
// The driver API subset Kiln uses. Types and values copied from cuda.h of
// CUDA 13.0 (unchanged since CUDA 11); cuda.h is deliberately not included.
//===----------------------------------------------------------------------===//

using CUresult = int; // enum cudaError_enum
using CUdevice = int;
using CUdeviceptr = unsigned long long; // 64-bit on every 64-bit host
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;
using CUgraph = struct CUgraph_st *;
using CUgraphExec = struct CUgraphExec_st *;
using CUgraphNode = struct CUgraphNode_st *;
using CUevent = struct CUevent_st *;
static_assert(sizeof(CUdeviceptr) == 8, "CUdeviceptr is 64 bits");

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_INVALID_VALUE = 1;
// CUdevice_attribute
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
// CUfunction_attribute
constexpr int CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0;
constexpr int CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1;
constexpr int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
// CUjit_option
constexpr int CU_JIT_ERROR_LOG_BUFFER = 5;
constexpr int CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;
// CUstream_flags, CUstreamCaptureMode
constexpr unsigned CU_STREAM_NON_BLOCKING = 1;
constexpr int CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;
/// Dynamic shared memory a kernel may use without opting in.
constexpr uint32_t kDefaultDynamicSharedLimit = 48 * 1024;
// cuLaunchKernelEx's configuration (cuda.h: CUlaunchAttribute,
// CUlaunchConfig; CUlaunchAttributeValue is a union padded to 64 bytes).
constexpr int CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6;
struct CUlaunchAttribute {
  int id;
  char pad[8 - sizeof(int)];
  union {
    char bytes[64];
    int programmaticStreamSerializationAllowed;
  } value;
};
static_assert(sizeof(CUlaunchAttribute) == 72, "cuda.h's layout");
struct CUlaunchConfig {
  unsigned gridDimX, gridDimY, gridDimZ;
  unsigned blockDimX, blockDimY, blockDimZ;
  unsigned sharedMemBytes;
  CUstream hStream;
  CUlaunchAttribute *attrs;
  unsigned numAttrs;
};

// X(name, required, return type, parameter types...)
#define KILN_CUDA_FUNCTIONS(X)                                                 \
  X(cuGetErrorName, true, CUresult, CUresult, const char **)                   \
  X(cuGetErrorString, true, CUresult, CUresult, const char **)                 \
  X(cuInit, true, CUresult, unsigned)                                          \
  X(cuDriverGetVersion, true, CUresult, int *)                                 \
  X(cuDeviceGetCount, true, CUresult, int *)                                   \
  X(cuDeviceGet, true, CUresult, CUdevice *, int)                              \
  X(cuDeviceGetAttribute, true, CUresult, int *, int, CUdevice)                \
  X(cuDeviceGetName, true, CUresult, char *, int, CUdevice)                    \
  X(cuDevicePrimaryCtxRetain, true, CUresult, CUcontext *, CUdevice)           \
  X(cuDevicePrimaryCtxRelease_v2, true, CUresult, CUdevice)                    \
  X(cuCtxSetCurrent, true, CUresult, CUcontext)                                \
  X(cuStreamCreate, true, CUresult, CUstream *, unsigned)                      \
  X(cuStreamDestroy_v2, true, CUresult, CUstream)                              \
  X(cuStreamSynchronize, true, CUresult, CUstream)                             \
  X(cuModuleLoadDataEx, true, CUresult, CUmodule *, const void *, unsigned,    \
    int *, void **)                                                            \
  X(cuModuleUnload, true, CUresult, CUmodule)                                  \
  X(cuModuleGetFunction, true, CUresult, CUfunction *, CUmodule, const char *) \
  X(cuFuncGetAttribute, true, CUresult, int *, int, CUfunction)                \
  X(cuFuncSetAttribute, true, CUresult, CUfunction, int, int)                  \
  X(cuFuncGetParamInfo, false, CUresult, CUfunction, size_t, size_t *,         \
    size_t *)                                                                  \
  X(cuMemAlloc_v2, true, CUresult, CUdeviceptr *, size_t)                      \
  X(cuMemFree_v2, true, CUresult, CUdeviceptr)                                 \
  X(cuMemHostRegister_v2, false, CUresult, void *, size_t, unsigned)           \
  X(cuMemHostUnregister, false, CUresult, void *)                              \
  X(cuMemsetD8Async, true, CUresult, CUdeviceptr, unsigned char, size_t,       \
    CUstream)                                                                  \
  X(cuMemcpyHtoDAsync_v2, true, CUresult, CUdeviceptr, const void *, size_t,   \
    CUstream)                                                                  \
  X(cuMemcpyDtoHAsync_v2, true, CUresult, void *, CUdeviceptr, size_t,         \
    CUstream)                                                                  \
  X(cuMemcpyDtoDAsync_v2, false, CUresult, CUdeviceptr, CUdeviceptr, size_t,   \
    CUstream)                                                                  \
  X(cuLaunchKernel, true, CUresult, CUfunction, unsigned, unsigned, unsigned,  \
    unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **)        \
  X(cuLaunchKernelEx, false, CUresult, const CUlaunchConfig *, CUfunction,     \
    void **, void **)                                                          \
  X(cuStreamBeginCapture_v2, false, CUresult, CUstream, int)                   \
  X(cuStreamEndCapture, false, CUresult, CUstream, CUgraph *)                  \
  X(cuGraphInstantiateWithFlags, false, CUresult, CUgraphExec *, CUgraph,      \
    unsigned long long)                                                        \
  X(cuGraphInstantiate_v2, false, CUresult, CUgraphExec *, CUgraph,            \
    CUgraphNode *, char *, size_t)                                             \
  X(cuGraphLaunch, false, CUresult, CUgraphExec, CUstream)                     \
  X(cuGraphExecDestroy, false, CUresult, CUgraphExec)                          \
  X(cuGraphDestroy, false, CUresult, CUgraph)                                  \
  X(cuEventCreate, false, CUresult, CUevent *, unsigned)                       \
  X(cuEventRecord, false, CUresult, CUevent, CUstream)                         \
  X(cuEventElapsedTime, false, CUresult, float *, CUevent, CUevent)            \
  X(cuEventDestroy_v2, false, CUresult, CUevent)

/// The driver's entry points, looked up once per process. libcuda is never
/// dlclosed: the driver keeps threads of its own after cuInit.
struct Driver {
#define KILN_CUDA_POINTER(name, required, ret, ...)                            \
  ret (*name)(__VA_ARGS__) = nullptr;
  KILN_CUDA_FUNCTIONS(KILN_CUDA_POINTER)
#undef KILN_CUDA_POINTER
  void *handle = nullptr;
  std::string loadError;

  static const Driver &get();

  bool graphsAvailable() const;

  /// "CUDA_ERROR_OUT_OF_MEMORY (2): out of memory".
  std::string describe(CUresult rc) const;

private:
  static Driver load();
};

} // namespace kiln::runtime::gpu

#endif // KILN_RUNTIME_LIB_CUDADRIVER_H
