//===- GpuExecutor.cpp - Entry points on an NVIDIA GPU --------------------===//
//
// The CUDA driver API, loaded with dlopen (no link-time libcuda: a machine
// without a GPU still loads artifacts and says so).
//
// At load: cuInit, device 0, its compute capability; the cubin if it was
// built for this exact architecture, else the PTX (JIT-compiled by the
// driver); one primary context and one stream; every kernel of every launch
// schedule looked up; device weights (uploaded once), KV cache (zeroed),
// arena and io buffers allocated once.
//
// A call: the tokens and positions the Session wrote into its host io buffer
// go to the device, the entry's schedule is launched (kernel parameters are
// the four buffers' device addresses), and the outputs come back into the
// host io buffer. Decode steps replay a CUDA graph captured on the first
// step. Every driver call is checked; errors name the call and, for
// launches, the kernel.
//
//===----------------------------------------------------------------------===//

#include "Executor.h"
#include "Format.h"

#include "kiln/runtime/Artifact.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <map>

namespace kiln::runtime {
using detail::fail;

namespace {

// The driver API types and constants Kiln uses (from cuda.h, CUDA 12/13).
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;
using CUgraph = struct CUgraph_st *;
using CUgraphExec = struct CUgraphExec_st *;
constexpr int kComputeCapabilityMajor = 75, kComputeCapabilityMinor = 76;
constexpr int kStreamNonBlocking = 1;
constexpr int kCaptureModeRelaxed = 2;
constexpr int kJitErrorLogBuffer = 5, kJitErrorLogBufferSize = 6;

struct Driver {
  void *handle = nullptr;
#define KILN_CUDA_FN(name, ret, ...) ret (*name)(__VA_ARGS__) = nullptr;
#define KILN_CUDA_FNS(X)                                                       \
  X(cuInit, CUresult, unsigned)                                                \
  X(cuDeviceGet, CUresult, CUdevice *, int)                                    \
  X(cuDeviceGetCount, CUresult, int *)                                         \
  X(cuDeviceGetAttribute, CUresult, int *, int, CUdevice)                      \
  X(cuDeviceGetName, CUresult, char *, int, CUdevice)                          \
  X(cuDevicePrimaryCtxRetain, CUresult, CUcontext *, CUdevice)                 \
  X(cuDevicePrimaryCtxRelease_v2, CUresult, CUdevice)                          \
  X(cuCtxSetCurrent, CUresult, CUcontext)                                      \
  X(cuModuleLoadDataEx, CUresult, CUmodule *, const void *, unsigned, int *,   \
    void **)                                                                   \
  X(cuModuleUnload, CUresult, CUmodule)                                        \
  X(cuModuleGetFunction, CUresult, CUfunction *, CUmodule, const char *)       \
  X(cuMemAlloc_v2, CUresult, CUdeviceptr *, size_t)                            \
  X(cuMemFree_v2, CUresult, CUdeviceptr)                                       \
  X(cuMemsetD8_v2, CUresult, CUdeviceptr, unsigned char, size_t)               \
  X(cuMemcpyHtoD_v2, CUresult, CUdeviceptr, const void *, size_t)              \
  X(cuMemcpyHtoDAsync_v2, CUresult, CUdeviceptr, const void *, size_t,         \
    CUstream)                                                                  \
  X(cuMemcpyDtoHAsync_v2, CUresult, void *, CUdeviceptr, size_t, CUstream)     \
  X(cuStreamCreate, CUresult, CUstream *, unsigned)                            \
  X(cuStreamDestroy_v2, CUresult, CUstream)                                    \
  X(cuStreamSynchronize, CUresult, CUstream)                                   \
  X(cuLaunchKernel, CUresult, CUfunction, unsigned, unsigned, unsigned,        \
    unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **)        \
  X(cuStreamBeginCapture_v2, CUresult, CUstream, int)                          \
  X(cuStreamEndCapture, CUresult, CUstream, CUgraph *)                         \
  X(cuGraphInstantiateWithFlags, CUresult, CUgraphExec *, CUgraph,             \
    unsigned long long)                                                        \
  X(cuGraphLaunch, CUresult, CUgraphExec, CUstream)                            \
  X(cuGraphExecDestroy, CUresult, CUgraphExec)                                 \
  X(cuGraphDestroy, CUresult, CUgraph)                                         \
  X(cuGetErrorName, CUresult, CUresult, const char **)                         \
  X(cuGetErrorString, CUresult, CUresult, const char **)
  KILN_CUDA_FNS(KILN_CUDA_FN)

  bool load(std::string *why) {
    handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!handle)
      return fail(why, "cannot load libcuda.so.1: ", dlerror());
#define KILN_CUDA_SYM(name, ...)                                               \
  name = reinterpret_cast<decltype(name)>(dlsym(handle, #name));               \
  if (!name)                                                                   \
    return fail(why, "the CUDA driver lacks " #name);
    KILN_CUDA_FNS(KILN_CUDA_SYM)
    return true;
  }

  std::string describe(CUresult rc) const {
    const char *name = nullptr, *text = nullptr;
    if (cuGetErrorName)
      cuGetErrorName(rc, &name);
    if (cuGetErrorString)
      cuGetErrorString(rc, &text);
    return std::string(name ? name : "CUDA error") + " (" +
           std::to_string(rc) + ")" + (text ? std::string(": ") + text : "");
  }
};

class GpuExecutor final : public Executor {
public:
  explicit GpuExecutor(const Artifact &artifact) : artifact(artifact) {}
  ~GpuExecutor() override;
  bool init(std::string *error);
  bool run(size_t entryIndex, const void *weights, void *kv, void *arena,
           void *io, std::string *error) override;
  bool kvUpdated(const void *kv, std::string *error) override;
  std::string device() const override { return deviceName; }

private:
  bool check(CUresult rc, const char *call, std::string *error,
             const std::string &what = "") {
    if (rc == 0)
      return true;
    return fail(error, call, what.empty() ? "" : " (" + what + ")",
                " failed: ", cuda.describe(rc));
  }
  bool launchSchedule(const EntrySpec &entry, std::string *error);

  const Artifact &artifact;
  Driver cuda;
  CUdevice dev = 0;
  bool haveContext = false;
  CUcontext ctx = nullptr;
  CUmodule module = nullptr;
  CUstream stream = nullptr;
  CUdeviceptr buffers[4] = {0, 0, 0, 0}; // weights, kv, arena, io
  uint64_t kvBytes = 0;
  std::map<std::string, CUfunction> functions;
  std::vector<CUgraphExec> graphs; // per entry; null until captured
  std::vector<CUgraph> graphSources;
  std::string deviceName;
};

GpuExecutor::~GpuExecutor() {
  if (!cuda.handle)
    return;
  if (haveContext)
    cuda.cuCtxSetCurrent(ctx);
  for (CUgraphExec g : graphs)
    if (g)
      cuda.cuGraphExecDestroy(g);
  for (CUgraph g : graphSources)
    if (g)
      cuda.cuGraphDestroy(g);
  for (CUdeviceptr p : buffers)
    if (p)
      cuda.cuMemFree_v2(p);
  if (stream)
    cuda.cuStreamDestroy_v2(stream);
  if (module)
    cuda.cuModuleUnload(module);
  if (haveContext)
    cuda.cuDevicePrimaryCtxRelease_v2(dev);
  dlclose(cuda.handle);
}

bool GpuExecutor::init(std::string *error) {
  std::string why;
  if (!cuda.load(&why))
    return fail(error, "no CUDA driver or GPU found (", why, ")");
  CUresult rc = cuda.cuInit(0);
  int count = 0;
  if (rc != 0 || cuda.cuDeviceGetCount(&count) != 0 || count == 0)
    return fail(error, "no CUDA driver or GPU found (",
                rc != 0 ? "cuInit: " + cuda.describe(rc) : "no devices",
                ")");
  if (!check(cuda.cuDeviceGet(&dev, 0), "cuDeviceGet", error))
    return false;
  int major = 0, minor = 0;
  char name[256] = {0};
  if (!check(cuda.cuDeviceGetAttribute(&major, kComputeCapabilityMajor, dev),
             "cuDeviceGetAttribute", error) ||
      !check(cuda.cuDeviceGetAttribute(&minor, kComputeCapabilityMinor, dev),
             "cuDeviceGetAttribute", error) ||
      !check(cuda.cuDeviceGetName(name, sizeof(name) - 1, dev),
             "cuDeviceGetName", error))
    return false;
  std::string arch = "sm_" + std::to_string(major * 10 + minor);
  deviceName = std::string(name) + " (" + arch + ")";

  // The cubin runs only on the architecture it was built for; otherwise the
  // driver JIT-compiles the PTX (for this or a newer architecture).
  const std::string &target = artifact.target();
  bool exact = target == arch || target == arch + "a";
  const KernelImage *cubin = nullptr, *ptx = nullptr;
  for (const KernelImage &image : artifact.images()) {
    if (image.kind == ImageKind::Cubin)
      cubin = &image;
    if (image.kind == ImageKind::Ptx)
      ptx = &image;
  }
  std::string ptxText;
  const void *image = nullptr;
  if (cubin && exact) {
    image = cubin->data;
  } else if (ptx) {
    ptxText.assign(reinterpret_cast<const char *>(ptx->data), ptx->size);
    image = ptxText.c_str(); // NUL-terminated for the driver
  } else {
    return fail(error, "the artifact has a cubin for ", target,
                " but no PTX, and this GPU is ", deviceName);
  }

  if (!check(cuda.cuDevicePrimaryCtxRetain(&ctx, dev),
             "cuDevicePrimaryCtxRetain", error))
    return false;
  haveContext = true;
  if (!check(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent", error) ||
      !check(cuda.cuStreamCreate(&stream, kStreamNonBlocking),
             "cuStreamCreate", error))
    return false;
  char log[8192] = {0};
  int options[] = {kJitErrorLogBuffer, kJitErrorLogBufferSize};
  void *values[] = {log, reinterpret_cast<void *>(sizeof(log) - 1)};
  CUresult load = cuda.cuModuleLoadDataEx(&module, image, 2, options, values);
  if (load != 0)
    return fail(error, "cuModuleLoadDataEx failed for the ",
                image == ptxText.c_str() ? "PTX" : "cubin", " of ", target,
                " on ", deviceName, ": ", cuda.describe(load),
                log[0] ? std::string("; ") + log : "");
  for (const EntrySpec &entry : artifact.entries())
    for (const LaunchSpec &launch : entry.launches) {
      if (functions.count(launch.kernel))
        continue;
      CUfunction fn = nullptr;
      if (!check(cuda.cuModuleGetFunction(&fn, module, launch.kernel.c_str()),
                 "cuModuleGetFunction", error, "kernel '" + launch.kernel + "'"))
        return false;
      functions[launch.kernel] = fn;
    }

  // Buffers, once: weights uploaded, KV cache zeroed.
  uint64_t arenaBytes = 0, ioBytes = 0;
  for (const EntrySpec &e : artifact.entries()) {
    arenaBytes = std::max(arenaBytes, e.arenaSize);
    ioBytes = std::max(ioBytes, e.ioSize);
  }
  kvBytes = artifact.kvCache().kvBytes;
  uint64_t sizes[4] = {artifact.weightsSize(), kvBytes, arenaBytes, ioBytes};
  const char *names[4] = {"weights", "KV cache", "arena", "io buffer"};
  for (int i = 0; i < 4; ++i)
    if (!check(cuda.cuMemAlloc_v2(&buffers[i], std::max<uint64_t>(sizes[i], 64)),
               "cuMemAlloc", error,
               std::string(names[i]) + ", " + std::to_string(sizes[i]) +
                   " bytes"))
      return false;
  if (!check(cuda.cuMemcpyHtoD_v2(buffers[0], artifact.weightsData(),
                                  artifact.weightsSize()),
             "cuMemcpyHtoD", error, "weights") ||
      !check(cuda.cuMemsetD8_v2(buffers[1], 0, std::max<uint64_t>(kvBytes, 64)),
             "cuMemsetD8", error, "KV cache"))
    return false;
  graphs.assign(artifact.entries().size(), nullptr);
  graphSources.assign(artifact.entries().size(), nullptr);
  return true;
}

bool GpuExecutor::kvUpdated(const void *kv, std::string *error) {
  if (!check(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent", error))
    return false;
  return check(cuda.cuMemcpyHtoD_v2(buffers[1], kv, kvBytes), "cuMemcpyHtoD",
               error, "KV cache");
}

bool GpuExecutor::launchSchedule(const EntrySpec &entry, std::string *error) {
  for (size_t i = 0; i < entry.launches.size(); ++i) {
    const LaunchSpec &l = entry.launches[i];
    CUdeviceptr args[4];
    void *params[4];
    for (size_t a = 0; a < l.args.size() && a < 4; ++a) {
      args[a] = buffers[l.args[a]];
      params[a] = &args[a];
    }
    CUresult rc = cuda.cuLaunchKernel(
        functions[l.kernel], l.grid[0], l.grid[1], l.grid[2], l.block[0],
        l.block[1], l.block[2], l.sharedBytes, stream, params, nullptr);
    if (rc != 0)
      return fail(error, "launch ", i, " of entry '", entry.name,
                  "' (kernel '", l.kernel, "') failed: ", cuda.describe(rc));
  }
  return true;
}

bool GpuExecutor::run(size_t entryIndex, const void *, void *, void *,
                      void *io, std::string *error) {
  const EntrySpec &entry = artifact.entries()[entryIndex];
  if (!check(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent", error))
    return false;
  // Inputs: the tokens and positions the Session wrote.
  auto upload = [&](const TensorSpec &t) {
    return check(cuda.cuMemcpyHtoDAsync_v2(
                     buffers[3] + t.offset,
                     static_cast<const uint8_t *>(io) + t.offset,
                     t.byteSize(), stream),
                 "cuMemcpyHtoDAsync", error, t.name);
  };
  if (!upload(entry.tokens) || !upload(entry.positions))
    return false;

  // Decode steps replay a graph of the schedule, captured on the first one.
  if (entry.seq == 1) {
    if (!graphs[entryIndex]) {
      if (!check(cuda.cuStreamBeginCapture_v2(stream, kCaptureModeRelaxed),
                 "cuStreamBeginCapture", error))
        return false;
      bool ok = launchSchedule(entry, error);
      CUgraph graph = nullptr;
      CUresult end = cuda.cuStreamEndCapture(stream, &graph);
      if (!ok || !check(end, "cuStreamEndCapture", error, entry.name))
        return false;
      graphSources[entryIndex] = graph;
      if (!check(cuda.cuGraphInstantiateWithFlags(&graphs[entryIndex], graph,
                                                  0),
                 "cuGraphInstantiate", error, entry.name))
        return false;
    }
    if (!check(cuda.cuGraphLaunch(graphs[entryIndex], stream),
               "cuGraphLaunch", error, entry.name))
      return false;
  } else if (!launchSchedule(entry, error)) {
    return false;
  }

  // Outputs: the logits (and the argmax, when the entry has it).
  const TensorSpec &logits = entry.logits;
  if (!check(cuda.cuMemcpyDtoHAsync_v2(
                 static_cast<uint8_t *>(io) + logits.offset,
                 buffers[3] + logits.offset, logits.byteSize(), stream),
             "cuMemcpyDtoHAsync", error, "logits"))
    return false;
  if (!entry.argmax.name.empty() &&
      !check(cuda.cuMemcpyDtoHAsync_v2(
                 static_cast<uint8_t *>(io) + entry.argmax.offset,
                 buffers[3] + entry.argmax.offset, entry.argmax.byteSize(),
                 stream),
             "cuMemcpyDtoHAsync", error, "argmax"))
    return false;
  // A kernel fault surfaces here; name the entry it happened in.
  return check(cuda.cuStreamSynchronize(stream), "cuStreamSynchronize", error,
               "after entry '" + entry.name + "'");
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
