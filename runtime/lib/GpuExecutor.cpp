//===- GpuExecutor.cpp - Entry points on an NVIDIA GPU --------------------===//
//
// The CUDA driver API, loaded at run time with dlopen("libcuda.so.1"): the
// runtime neither links libcuda nor includes cuda.h, so it builds without the
// CUDA toolkit, and a machine without a GPU still loads artifacts and says so.
//
// Load (createGpuExecutor), each step checked:
//   1. dlopen libcuda.so.1, dlsym the entry points (the _v2 names cuda.h maps
//      the plain names to), cuInit(0), at least one device. Any failure here:
//      "no CUDA driver or GPU found (<reason>)".
//   2. Device 0: name and compute capability. The kernel image: the cubin
//      when it was built for this GPU (same major version and a minor
//      version no newer than the GPU's; exactly this GPU for sm_XYa), else
//      the PTX, which the driver JIT-compiles for this or a newer GPU. A GPU
//      older than the target is refused up front. A failed load reports the
//      driver's JIT error log.
//   3. The device's primary context, made current; one non-blocking stream.
//      All work below goes to that stream (never the legacy NULL stream,
//      with which a non-blocking stream does not synchronise).
//   4. Every kernel of every schedule: cuModuleGetFunction; its parameter
//      count (cuFuncGetParamInfo, where the driver has it: one 8-byte device
//      pointer per buffer id of the launch); threads per block against the
//      compiled kernel's limit; dynamic shared memory above 48 KiB opted in.
//      Per launch, the parameter array: args[i] is the CUdeviceptr of buffer
//      launch.args[i] and params[i] = &args[i]; both live as long as the
//      executor, so launches allocate nothing.
//   5. Device buffers, once: weights (copied from the file mapping), KV cache,
//      arena and io (each the largest of the entries'), the last three
//      zeroed. The Session's host io buffer is page-locked when the driver
//      allows (faster small copies); otherwise it is used as it is.
//   6. Each entry's schedule captured on the stream into a CUDA graph and
//      instantiated. Capture records the launches without running them (the
//      driver copies the parameter values then), so this has no effect on
//      the buffers.
//
// A call (run), all on the stream, in order:
//   HtoD of the tokens and positions the Session wrote (one copy: they are
//   adjacent at the start of io; two when another tensor lies between),
//   cuGraphLaunch of the entry's graph (or its launches one by one),
//   DtoH of only the rows of logits and argmax the Session reads (for greedy
//   decode of one row: the 8 bytes of its argmax), cuStreamSynchronize.
//   Nothing is allocated and nothing else is synchronised.
//
// Errors name the driver call, what it was for (for launches the entry, the
// launch index and the kernel) and the driver's error name and text. A fault
// inside a kernel surfaces at the synchronisation after the call; with
// KILN_CUDA_SYNC=1 launches run one by one with a synchronisation after
// each, so the error names the kernel. KILN_CUDA_GRAPHS=0 launches without
// graphs. On sm_90 and later, launches after an entry's first are
// programmatic dependent launches (KILN_CUDA_PDL=0: plain ones). KILN_PROFILE=1
// launches without graphs too, times every launch with CUDA events and prints,
// when the executor goes, the GPU time per kernel (whose names say how each was
// mapped: decode_k12_gemv_kn) and per mapping; KILN_PROFILE_TOP=N lists the N
// longest kernels (default 25), and KILN_PROFILE_TOP=decode every kernel of the
// decode entry in schedule order.
//
//===----------------------------------------------------------------------===//

#include "Executor.h"
#include "Format.h"

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/Target.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

namespace kiln::runtime {
using detail::fail;

namespace {

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

  static const Driver &get() {
    static const Driver driver = load();
    return driver;
  }

  bool graphsAvailable() const {
    return cuStreamBeginCapture_v2 && cuStreamEndCapture && cuGraphLaunch &&
           cuGraphExecDestroy && cuGraphDestroy &&
           (cuGraphInstantiateWithFlags || cuGraphInstantiate_v2);
  }

  /// "CUDA_ERROR_OUT_OF_MEMORY (2): out of memory".
  std::string describe(CUresult rc) const {
    const char *name = nullptr, *text = nullptr;
    if (cuGetErrorName && cuGetErrorName(rc, &name) != CUDA_SUCCESS)
      name = nullptr;
    if (cuGetErrorString && cuGetErrorString(rc, &text) != CUDA_SUCCESS)
      text = nullptr;
    return std::string(name ? name : "CUDA error") + " (" + std::to_string(rc) +
           ")" + (text ? std::string(": ") + text : "");
  }

private:
  static Driver load() {
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
};

bool envFlag(const char *name, bool fallback) {
  const char *value = std::getenv(name);
  if (!value || !*value)
    return fallback;
  return std::strcmp(value, "0") != 0;
}

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
    return fail(error, call, " failed (", what..., "): ", cuda.describe(rc));
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

GpuExecutor::~GpuExecutor() {
  if (!ctx)
    return;
  // Errors cannot be reported from here; the driver releases what is left
  // with the context at the latest.
  cuda.cuCtxSetCurrent(ctx);
  if (stream)
    cuda.cuStreamSynchronize(stream);
  if (profile)
    printProfile();
  for (CUevent event : events)
    cuda.cuEventDestroy_v2(event);
  for (Entry &entry : entries)
    if (entry.graph)
      cuda.cuGraphExecDestroy(entry.graph);
  if (pinnedIo)
    cuda.cuMemHostUnregister(pinnedIo);
  for (CUdeviceptr buffer : buffers)
    if (buffer)
      cuda.cuMemFree_v2(buffer);
  if (stream)
    cuda.cuStreamDestroy_v2(stream);
  if (module)
    cuda.cuModuleUnload(module);
  cuda.cuDevicePrimaryCtxRelease_v2(dev);
}

bool GpuExecutor::init(std::string *error) {
  // 1. Driver and device.
  if (!cuda.loadError.empty())
    return fail(error, "no CUDA driver or GPU found (", cuda.loadError, ")");
  CUresult rc = cuda.cuInit(0);
  if (rc != CUDA_SUCCESS)
    return fail(
        error, "no CUDA driver or GPU found (cuInit: ", cuda.describe(rc), ")");
  int count = 0;
  rc = cuda.cuDeviceGetCount(&count);
  if (rc != CUDA_SUCCESS)
    return fail(error, "no CUDA driver or GPU found (cuDeviceGetCount: ",
                cuda.describe(rc), ")");
  if (count < 1)
    return fail(error, "no CUDA driver or GPU found (the driver sees no "
                       "device)");
  char name[256] = {0};
  if (!check(cuda.cuDeviceGet(&dev, 0), "cuDeviceGet", error, "device 0") ||
      !check(cuda.cuDeviceGetAttribute(
                 &ccMajor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev),
             "cuDeviceGetAttribute", error, "compute capability") ||
      !check(cuda.cuDeviceGetAttribute(
                 &ccMinor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev),
             "cuDeviceGetAttribute", error, "compute capability") ||
      !check(cuda.cuDeviceGetName(name, sizeof(name) - 1, dev),
             "cuDeviceGetName", error, "device 0"))
    return false;
  gpu = std::string(name) + " (sm_" + std::to_string(ccMajor) +
        std::to_string(ccMinor) + ")";
  syncEachLaunch = envFlag("KILN_CUDA_SYNC", false);
  profile = envFlag("KILN_PROFILE", false);
  if (profile && !(cuda.cuEventCreate && cuda.cuEventRecord &&
                   cuda.cuEventElapsedTime && cuda.cuEventDestroy_v2))
    return fail(error, "KILN_PROFILE=1 needs CUDA events, which this driver "
                       "lacks");
  dependentLaunch = ccMajor >= 9 && cuda.cuLaunchKernelEx && !syncEachLaunch &&
                    envFlag("KILN_CUDA_PDL", true);
  const bool useGraphs = !syncEachLaunch && !profile &&
                         envFlag("KILN_CUDA_GRAPHS", true) &&
                         cuda.graphsAvailable();

  // 2-3. Context, stream, module.
  CUcontext primary = nullptr;
  if (!check(cuda.cuDevicePrimaryCtxRetain(&primary, dev),
             "cuDevicePrimaryCtxRetain", error, gpu))
    return false;
  ctx = primary;
  const char *image = nullptr;
  if (!check(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent", error, gpu) ||
      !check(cuda.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING),
             "cuStreamCreate", error, gpu) ||
      !loadModule(&image, error))
    return false;

  // 4-6. Kernels, buffers, graphs.
  if (!prepareKernels(error) || !allocateBuffers(error))
    return false;
  if (profile) {
    size_t longest = 0;
    for (const Entry &entry : entries)
      longest = std::max(longest, entry.launches.size());
    events.resize(longest + 1, nullptr);
    for (CUevent &event : events)
      if (!check(cuda.cuEventCreate(&event, 0), "cuEventCreate", error,
                 "KILN_PROFILE"))
        return false;
  }
  if (useGraphs)
    for (size_t i = 0; i < entries.size(); ++i)
      if (!captureGraph(i, error))
        return false;
  deviceName = std::string(name) + " (sm_" + std::to_string(ccMajor) +
               std::to_string(ccMinor) + "; " + image + "; " +
               (useGraphs        ? "CUDA graphs"
                : syncEachLaunch ? "launches synchronised one by one"
                : profile        ? "launches timed one by one (KILN_PROFILE)"
                                 : "launches without graphs") +
               ")";
  return true;
}

bool GpuExecutor::loadModule(const char **used, std::string *error) {
  const std::string &target = artifact.target();
  GpuArch want;
  if (!parseGpuTarget(target, &want)) // validated on load
    return fail(error, "GPU target '", target, "' is not sm_<version>");
  const KernelImage *cubin = nullptr, *ptx = nullptr;
  for (const KernelImage &image : artifact.images()) {
    if (image.kind == ImageKind::Cubin && !cubin)
      cubin = &image;
    if (image.kind == ImageKind::Ptx && !ptx)
      ptx = &image;
  }
  // A cubin runs on its major architecture from its minor version on (only
  // on exactly its GPU for sm_XYa). PTX is JIT-compiled for this or any
  // newer GPU, except architecture-specific (sm_XYa) PTX, which runs on its
  // GPU only, and family-specific (sm_XYf) PTX, which stays in its family.
  const int have = ccMajor * 10 + ccMinor;
  const int needed = want.major * 10 + want.minor;
  const bool cubinFits =
      ccMajor == want.major &&
      (want.suffix == 'a' ? ccMinor == want.minor : ccMinor >= want.minor);
  const bool ptxFits = want.suffix == 'a'   ? have == needed
                       : want.suffix == 'f' ? cubinFits
                                            : have >= needed;
  if (!(cubin && cubinFits) && !(ptx && ptxFits))
    return fail(error, "this artifact was compiled for ", target, " (",
                cubin ? "cubin" : "", cubin && ptx ? " and " : "",
                ptx ? "PTX" : "", ") and cannot run on ", gpu,
                "; compile it with --target sm_", have);

  char log[16384];
  auto tryLoad = [&](const void *image, std::string *why) {
    log[0] = '\0';
    int options[] = {CU_JIT_ERROR_LOG_BUFFER,
                     CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *values[] = {log, reinterpret_cast<void *>(uintptr_t(sizeof(log)))};
    CUresult rc = cuda.cuModuleLoadDataEx(&module, image, 2, options, values);
    if (rc == CUDA_SUCCESS)
      return true;
    module = nullptr;
    log[sizeof(log) - 1] = '\0';
    *why = cuda.describe(rc);
    if (log[0])
      *why += "; JIT error log: " + std::string(log);
    return false;
  };
  std::string cubinError;
  if (cubin && cubinFits) {
    // The driver parses the ELF in place: give it an 8-byte aligned copy
    // (bytes inside the FlatBuffer are only 4-byte aligned).
    std::vector<uint64_t> aligned((cubin->size + 7) / 8);
    std::memcpy(aligned.data(), cubin->data, cubin->size);
    if (tryLoad(aligned.data(), &cubinError)) {
      *used = "cubin";
      return true;
    }
    if (!(ptx && ptxFits))
      return fail(error, "cuModuleLoadDataEx failed (the cubin of ", target,
                  " on ", gpu, "): ", cubinError);
  }
  // PTX must be NUL-terminated text; the artifact may store it without.
  std::string text(reinterpret_cast<const char *>(ptx->data), ptx->size);
  std::string ptxError;
  if (tryLoad(text.c_str(), &ptxError)) {
    *used = cubinError.empty() ? "PTX, JIT-compiled"
                               : "PTX, JIT-compiled after the cubin failed";
    return true;
  }
  return fail(error, "cuModuleLoadDataEx failed (the PTX of ", target, " on ",
              gpu, "): ", ptxError,
              cubinError.empty() ? ""
                                 : "; the cubin failed too: " + cubinError);
}

bool GpuExecutor::prepareKernels(std::string *error) {
  int sharedOptIn = 0;
  if (!check(cuda.cuDeviceGetAttribute(
                 &sharedOptIn,
                 CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev),
             "cuDeviceGetAttribute", error, "shared memory per block"))
    return false;
  struct Kernel {
    CUfunction function = nullptr;
    size_t params = 0;
    uint32_t dynamicShared = 0; // opted in so far
  };
  std::map<std::string, Kernel> kernels;
  entries.resize(artifact.entries().size());
  for (size_t e = 0; e < entries.size(); ++e) {
    const EntrySpec &spec = artifact.entries()[e];
    for (size_t i = 0; i < spec.launches.size(); ++i) {
      const LaunchSpec &l = spec.launches[i];
      const std::string what = "entry '" + spec.name + "' launch " +
                               std::to_string(i) + ", kernel '" + l.kernel +
                               "'";
      auto [it, added] = kernels.try_emplace(l.kernel);
      Kernel &k = it->second;
      if (added) {
        CUresult rc =
            cuda.cuModuleGetFunction(&k.function, module, l.kernel.c_str());
        if (rc != CUDA_SUCCESS)
          return fail(error, "kernel '", l.kernel, "' (", what,
                      ") is not in the module: cuModuleGetFunction failed: ",
                      cuda.describe(rc));
        k.params = l.args.size();
        // One 8-byte device pointer per buffer id. Drivers without
        // cuFuncGetParamInfo (before CUDA 12.4) skip this check, as do
        // kernels the driver cannot describe.
        constexpr size_t kMaxParams = 256;
        size_t count = 0, size = 0, offset = 0;
        rc = CUDA_SUCCESS;
        for (; cuda.cuFuncGetParamInfo && count <= kMaxParams; ++count) {
          rc = cuda.cuFuncGetParamInfo(k.function, count, &offset, &size);
          if (rc != CUDA_SUCCESS)
            break;
          if (size != sizeof(CUdeviceptr))
            return fail(error, "parameter ", count, " of kernel '", l.kernel,
                        "' is ", size, " bytes, not a device pointer (", what,
                        ")");
        }
        if (cuda.cuFuncGetParamInfo && rc == CUDA_ERROR_INVALID_VALUE &&
            count != k.params)
          return fail(error, what, " passes ", k.params,
                      " buffers, but the kernel takes ", count, " parameters");
      } else if (l.args.size() != k.params) {
        return fail(error, what, " passes ", l.args.size(),
                    " buffers, but an earlier launch of the kernel passes ",
                    k.params);
      }
      int maxThreads = 0, staticShared = 0;
      if (!check(cuda.cuFuncGetAttribute(
                     &maxThreads, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
                     k.function),
                 "cuFuncGetAttribute", error, what) ||
          !check(cuda.cuFuncGetAttribute(&staticShared,
                                         CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
                                         k.function),
                 "cuFuncGetAttribute", error, what))
        return false;
      const uint64_t threads = uint64_t(l.block[0]) * l.block[1] * l.block[2];
      if (threads > uint64_t(std::max(maxThreads, 0)))
        return fail(error, what, " has ", threads,
                    " threads per block; the compiled kernel allows at most ",
                    maxThreads);
      if (uint64_t(l.sharedBytes) + uint64_t(std::max(staticShared, 0)) >
          uint64_t(std::max(sharedOptIn, 0)))
        return fail(error, what, " needs ", l.sharedBytes,
                    " bytes of dynamic shared memory besides ", staticShared,
                    " static; ", gpu, " has ", sharedOptIn, " per block");
      if (l.sharedBytes > kDefaultDynamicSharedLimit &&
          l.sharedBytes > k.dynamicShared) {
        if (!check(
                cuda.cuFuncSetAttribute(
                    k.function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    static_cast<int>(l.sharedBytes)),
                "cuFuncSetAttribute", error, what, ", dynamic shared memory"))
          return false;
        k.dynamicShared = l.sharedBytes;
      }
      Launch launch;
      launch.spec = &l;
      launch.function = k.function;
      entries[e].launches.push_back(std::move(launch));
    }
  }
  return true;
}

bool GpuExecutor::allocateBuffers(std::string *error) {
  uint64_t arenaBytes = 0, ioBytes = 0;
  for (const EntrySpec &e : artifact.entries()) {
    arenaBytes = std::max(arenaBytes, e.arenaSize);
    ioBytes = std::max(ioBytes, e.ioSize);
  }
  const uint64_t sizes[4] = {artifact.weightsSize(), artifact.kvCache().kvBytes,
                             arenaBytes, ioBytes};
  const char *names[4] = {"weights", "KV cache", "arena", "io buffer"};
  for (int i = 0; i < 4; ++i) {
    // cuMemAlloc refuses 0 bytes; its blocks are at least 256-byte aligned.
    bufferBytes[i] = std::max<uint64_t>(sizes[i], kBufferAlignment);
    if (!check(cuda.cuMemAlloc_v2(&buffers[i], bufferBytes[i]), "cuMemAlloc",
               error, names[i], ", ", bufferBytes[i], " bytes on ", gpu))
      return false;
  }
  if (sizes[0] &&
      !check(cuda.cuMemcpyHtoDAsync_v2(buffers[0], artifact.weightsData(),
                                       sizes[0], stream),
             "cuMemcpyHtoDAsync", error, "weights, ", sizes[0], " bytes"))
    return false;
  for (int i = 1; i < 4; ++i)
    if (!check(cuda.cuMemsetD8Async(buffers[i], 0, bufferBytes[i], stream),
               "cuMemsetD8Async", error, names[i]))
      return false;
  if (!check(cuda.cuStreamSynchronize(stream), "cuStreamSynchronize", error,
             "uploading the weights"))
    return false;

  // Kernel parameters and the input copies of each entry.
  for (size_t e = 0; e < entries.size(); ++e) {
    const EntrySpec &spec = artifact.entries()[e];
    Entry &entry = entries[e];
    for (Launch &launch : entry.launches) {
      for (uint8_t id : launch.spec->args)
        launch.args.push_back(buffers[id]);
      for (CUdeviceptr &arg : launch.args)
        launch.params.push_back(&arg);
    }
    const int64_t slots = spec.batch * spec.seq;
    entry.logitsRowBytes = slots > 0 ? spec.logits.byteSize() / slots : 0;
    // Tokens and positions in one copy unless an output lies between them.
    const uint64_t begin = std::min(spec.tokens.offset, spec.positions.offset);
    const uint64_t end =
        std::max(spec.tokens.offset + spec.tokens.byteSize(),
                 spec.positions.offset + spec.positions.byteSize());
    auto between = [&](const TensorSpec &t) {
      return !t.name.empty() && t.offset < end &&
             t.offset + t.byteSize() > begin;
    };
    if (between(spec.logits) || between(spec.argmax))
      entry.inputs = {{spec.tokens.offset, spec.tokens.byteSize()},
                      {spec.positions.offset, spec.positions.byteSize()}};
    else
      entry.inputs = {{begin, end - begin}};
  }
  return true;
}

bool GpuExecutor::attachHostIo(void *io, uint64_t bytes, std::string *) {
  // Page-locked host memory makes the per-call copies plain DMA; where the
  // driver refuses (a limit on locked memory), pageable copies work as well.
  if (cuda.cuMemHostRegister_v2 && cuda.cuMemHostUnregister && bytes &&
      cuda.cuCtxSetCurrent(ctx) == CUDA_SUCCESS &&
      cuda.cuMemHostRegister_v2(io, bytes, 0) == CUDA_SUCCESS)
    pinnedIo = io;
  return true;
}

bool GpuExecutor::captureGraph(size_t entryIndex, std::string *error) {
  const EntrySpec &spec = artifact.entries()[entryIndex];
  Entry &entry = entries[entryIndex];
  if (!check(cuda.cuStreamBeginCapture_v2(stream,
                                          CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
             "cuStreamBeginCapture", error, "entry '", spec.name, "'"))
    return false;
  std::string launchError;
  const bool launched = launch(spec, entry, false, &launchError);
  // End the capture whatever happened, so that the stream leaves capture
  // mode.
  CUgraph graph = nullptr;
  CUresult rc = cuda.cuStreamEndCapture(stream, &graph);
  if (!launched) {
    if (graph)
      cuda.cuGraphDestroy(graph);
    return fail(error, "capturing entry '", spec.name,
                "' into a CUDA graph: ", launchError);
  }
  if (!check(rc, "cuStreamEndCapture", error, "entry '", spec.name, "'"))
    return false;
  char log[4096] = {0};
  if (cuda.cuGraphInstantiateWithFlags)
    rc = cuda.cuGraphInstantiateWithFlags(&entry.graph, graph, 0);
  else
    rc = cuda.cuGraphInstantiate_v2(&entry.graph, graph, nullptr, log,
                                    sizeof(log) - 1);
  // The executable graph does not depend on the graph it came from.
  CUresult destroyed = cuda.cuGraphDestroy(graph);
  if (rc != CUDA_SUCCESS) {
    entry.graph = nullptr;
    return fail(error, "cuGraphInstantiate failed (entry '", spec.name,
                "'): ", cuda.describe(rc), log[0] ? "; " : "", log);
  }
  return check(destroyed, "cuGraphDestroy", error, "entry '", spec.name, "'");
}

bool GpuExecutor::launch(const EntrySpec &spec, const Entry &entry,
                         bool syncEach, std::string *error) {
  for (size_t i = 0; i < entry.launches.size(); ++i) {
    const Launch &l = entry.launches[i];
    const LaunchSpec &s = *l.spec;
    // The driver reads the parameter values during the call (and copies
    // them into the graph's node when capturing); they stay put anyway.
    const char *call = "cuLaunchKernel";
    if (profile && !check(cuda.cuEventRecord(events[i], stream),
                          "cuEventRecord", error, "KILN_PROFILE"))
      return false;
    CUresult rc;
    if (dependentLaunch && i > 0 && s.waitsForPrevious) {
      call = "cuLaunchKernelEx";
      CUlaunchAttribute attr{};
      attr.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
      attr.value.programmaticStreamSerializationAllowed = 1;
      CUlaunchConfig config{s.grid[0],  s.grid[1],  s.grid[2],     s.block[0],
                            s.block[1], s.block[2], s.sharedBytes, stream,
                            &attr,      1};
      rc = cuda.cuLaunchKernelEx(&config, l.function,
                                 const_cast<void **>(l.params.data()), nullptr);
    } else {
      rc = cuda.cuLaunchKernel(l.function, s.grid[0], s.grid[1], s.grid[2],
                               s.block[0], s.block[1], s.block[2],
                               s.sharedBytes, stream,
                               const_cast<void **>(l.params.data()), nullptr);
    }
    if (rc == CUDA_SUCCESS && syncEach) {
      call = "cuStreamSynchronize";
      rc = cuda.cuStreamSynchronize(stream);
    }
    if (rc != CUDA_SUCCESS)
      return fail(error, call, " failed (entry '", spec.name, "' launch ", i,
                  " of ", entry.launches.size(), ", kernel '", s.kernel,
                  "', grid [", s.grid[0], ", ", s.grid[1], ", ", s.grid[2],
                  "], block [", s.block[0], ", ", s.block[1], ", ", s.block[2],
                  "], ", s.sharedBytes, " bytes of shared memory",
                  "): ", cuda.describe(rc));
  }
  return !profile ||
         check(cuda.cuEventRecord(events[entry.launches.size()], stream),
               "cuEventRecord", error, "KILN_PROFILE");
}

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
  if (top && std::string(top) == "decode") {
    // decode_k<N>_...: in schedule order.
    auto index = [](const std::string &name) {
      return std::strtoll(name.c_str() + 8, nullptr, 10);
    };
    std::vector<std::pair<std::string, KernelTime>> decode;
    for (const auto &kt : kernels)
      if (kt.first.rfind("decode_k", 0) == 0)
        decode.push_back(kt);
    std::sort(decode.begin(), decode.end(), [&](const auto &a, const auto &b) {
      return index(a.first) < index(b.first);
    });
    std::fprintf(stderr, "kiln profile: the decode entry's kernels:\n");
    for (const auto &[name, t] : decode)
      row(name, t);
    return;
  }
  size_t count = top ? std::strtoull(top, nullptr, 10) : 25;
  std::fprintf(stderr, "kiln profile: the %zu longest kernels:\n", count);
  for (size_t i = 0; i < kernels.size() && i < count; ++i)
    row(kernels[i].first, kernels[i].second);
}

bool GpuExecutor::copyBack(const TensorSpec &tensor, uint64_t rowBytes,
                           const SlotRange &rows, int64_t slots, void *io,
                           std::string *error) {
  if (rows.count <= 0)
    return true;
  if (tensor.name.empty() || rows.first < 0 || rows.first > slots ||
      rows.count > slots - rows.first)
    return fail(error, "internal error: rows [", rows.first, ", +", rows.count,
                ") of '", tensor.name, "' requested, ", slots, " exist");
  const uint64_t offset = tensor.offset + uint64_t(rows.first) * rowBytes;
  const uint64_t bytes = uint64_t(rows.count) * rowBytes;
  return check(cuda.cuMemcpyDtoHAsync_v2(static_cast<uint8_t *>(io) + offset,
                                         buffers[3] + offset, bytes, stream),
               "cuMemcpyDtoHAsync", error, tensor.name, ", ", bytes, " bytes");
}

bool GpuExecutor::run(size_t entryIndex, const void *, void *, void *, void *io,
                      const Readback &readback, std::string *error) {
  const EntrySpec &spec = artifact.entries()[entryIndex];
  const Entry &entry = entries[entryIndex];
  // The context is current per thread: the Session may be used from any one.
  if (!check(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent", error, "entry '",
             spec.name, "'"))
    return false;
  for (const IoRange &in : entry.inputs)
    if (!check(cuda.cuMemcpyHtoDAsync_v2(buffers[3] + in.offset,
                                         static_cast<const uint8_t *>(io) +
                                             in.offset,
                                         in.size, stream),
               "cuMemcpyHtoDAsync", error, "tokens and positions of entry '",
               spec.name, "'"))
      return false;
  if (entry.graph) {
    if (!check(cuda.cuGraphLaunch(entry.graph, stream), "cuGraphLaunch", error,
               "entry '", spec.name, "'"))
      return false;
  } else if (!launch(spec, entry, syncEachLaunch, error)) {
    return false;
  }
  const int64_t slots = spec.batch * spec.seq;
  if (!copyBack(spec.logits, entry.logitsRowBytes, readback.logits, slots, io,
                error) ||
      !copyBack(spec.argmax, sizeof(int64_t), readback.argmax, slots, io,
                error))
    return false;
  // A fault inside a kernel surfaces here.
  if (!check(cuda.cuStreamSynchronize(stream), "cuStreamSynchronize", error,
             "after entry '", spec.name,
             "'; KILN_CUDA_SYNC=1 names the failing kernel"))
    return false;
  return !profile || recordProfile(spec, entry, error);
}

bool GpuExecutor::kvUpdated(const void *kv, std::string *error) {
  const uint64_t bytes = artifact.kvCache().kvBytes;
  return check(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent", error,
               "KV cache") &&
         (bytes == 0 ||
          check(cuda.cuMemcpyHtoDAsync_v2(buffers[1], kv, bytes, stream),
                "cuMemcpyHtoDAsync", error, "KV cache, ", bytes, " bytes")) &&
         check(cuda.cuStreamSynchronize(stream), "cuStreamSynchronize", error,
               "KV cache upload");
}

} // namespace

std::unique_ptr<Executor> createGpuExecutor(const Artifact &artifact,
                                            std::string *error) {
  auto executor = std::make_unique<GpuExecutor>(artifact);
  if (!executor->init(error))
    return nullptr;
  return executor;
}

} // namespace kiln::runtime
