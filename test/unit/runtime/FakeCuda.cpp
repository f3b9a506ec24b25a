//===- FakeCuda.cpp - A fake libcuda.so.1 that runs the fake kernels ------===//
//
// The subset of the CUDA driver API the GPU executor uses, on the host:
// device memory is host memory (filled with 0xCD, as a real allocation is
// not zeroed), streams run work when it is enqueued, graphs record kernel
// launches with their parameter values and replay them, and the "module" is
// the fake PTX of FakeArtifact.cpp: its .target and .entry lines name the
// architecture and the kernels (FakeKernels.c's halves of an entry). A
// cubin is "\x7fELF" followed by the same text. See FakeCuda.h.
//
//===----------------------------------------------------------------------===//

#include "FakeCuda.h"
#include "FakeKernels.h"

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#define API extern "C" __attribute__((visibility("default")))

using CUresult = int;
using CUdeviceptr = unsigned long long;

namespace {

enum : CUresult {
  SUCCESS = 0,
  INVALID_VALUE = 1,
  OUT_OF_MEMORY = 2,
  NOT_INITIALIZED = 3,
  NO_DEVICE = 100,
  INVALID_DEVICE = 101,
  INVALID_IMAGE = 200,
  INVALID_CONTEXT = 201,
  NO_BINARY_FOR_GPU = 209,
  INVALID_PTX = 218,
  INVALID_HANDLE = 400,
  NOT_FOUND = 500,
  ILLEGAL_ADDRESS = 700,
  LAUNCH_FAILED = 719,
  CAPTURE_UNSUPPORTED = 900,
  CAPTURE_INVALIDATED = 901,
  UNKNOWN = 999,
};

struct ErrorText {
  CUresult code;
  const char *name, *text;
};
const ErrorText kErrors[] = {
    {SUCCESS, "CUDA_SUCCESS", "no error"},
    {INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE",
     "device kernel image is invalid"},
    {INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {NO_BINARY_FOR_GPU, "CUDA_ERROR_NO_BINARY_FOR_GPU",
     "no kernel image is available for execution on the device"},
    {INVALID_PTX, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS",
     "an illegal memory access was encountered"},
    {LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {CAPTURE_UNSUPPORTED, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
     "operation not permitted when stream is capturing"},
    {CAPTURE_INVALIDATED, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
     "operation failed due to a previous error during capture"},
    {UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

struct Kernel {
  std::string name;
  int params = 0;
  int64_t seq = 0;
  bool argmax = false, sample = false;
  int dynamicSharedLimit = 48 * 1024;
};

struct Module {
  std::vector<std::unique_ptr<Kernel>> kernels;
};

struct Node {
  Kernel *kernel;
  unsigned grid[3], block[3], shared;
  std::vector<CUdeviceptr> params;
};

struct Graph {
  std::vector<Node> nodes;
};

struct Stream {
  unsigned flags = 0;
  Graph *capture = nullptr;
  bool captureInvalid = false;
};

struct Context {
  int refs = 0;
};

struct State {
  std::mutex mutex;
  bool initialized = false;
  int arch = 90, devices = 1, maxThreads = 1024;
  std::string failName;
  int failAt = 1;
  CUresult failCode = UNKNOWN;
  std::map<std::string, int> calls;
  std::map<uintptr_t, size_t> memory;
  std::map<void *, size_t> registered;
  std::set<Module *> modules;
  std::set<Stream *> streams;
  std::set<Graph *> graphs, graphExecs;
  Context primary;
  KilnFakeCudaStats stats = {};

  void readEnvironment() {
    auto number = [](const char *name, int fallback) {
      const char *v = std::getenv(name);
      return v && *v ? std::atoi(v) : fallback;
    };
    arch = number("KILN_FAKE_CUDA_ARCH", 90);
    devices = number("KILN_FAKE_CUDA_DEVICES", 1);
    maxThreads = number("KILN_FAKE_CUDA_MAX_THREADS", 1024);
    failName.clear();
    failAt = 1;
    failCode = UNKNOWN;
    if (const char *v = std::getenv("KILN_FAKE_CUDA_FAIL")) {
      std::string spec = v;
      size_t colon = spec.find(':');
      failName = spec.substr(0, colon);
      if (colon != std::string::npos) {
        std::string rest = spec.substr(colon + 1);
        failAt = std::atoi(rest.c_str());
        size_t second = rest.find(':');
        if (second != std::string::npos)
          failCode = std::atoi(rest.c_str() + second + 1);
      }
    }
    calls.clear();
  }

  void resetCounters() {
    KilnFakeCudaStats fresh = {};
    fresh.allocations = stats.allocations;
    fresh.modules = stats.modules;
    fresh.streams = stats.streams;
    fresh.graphs = stats.graphs;
    fresh.graphExecs = stats.graphExecs;
    fresh.hostRegistered = stats.hostRegistered;
    fresh.primaryContextRefs = stats.primaryContextRefs;
    stats = fresh;
  }

  void log(const char *call, const std::string &detail) {
    std::string line =
        std::string(call) + (detail.empty() ? "" : "(" + detail + ")") + "\n";
    size_t used = std::strlen(stats.log);
    if (used + line.size() < sizeof(stats.log))
      std::memcpy(stats.log + used, line.c_str(), line.size() + 1);
  }

  /// Counts the call; the configured one fails.
  CUresult enter(const char *call, const std::string &detail = "") {
    log(call, detail);
    int n = ++calls[call];
    if (call == failName && n == failAt)
      return failCode;
    return SUCCESS;
  }

  /// [p, p + bytes) inside one live allocation.
  bool inDevice(CUdeviceptr p, size_t bytes) const {
    auto it = memory.upper_bound(static_cast<uintptr_t>(p));
    if (it == memory.begin())
      return false;
    --it;
    uint64_t at = p - it->first;
    return at < it->second && bytes <= it->second - at;
  }
};

State &state() {
  static State s;
  return s;
}

thread_local Context *current = nullptr;

#define ENTER(...)                                                             \
  State &S = state();                                                          \
  std::lock_guard<std::mutex> lock(S.mutex);                                   \
  if (CUresult injected = S.enter(__VA_ARGS__))                                \
    return injected;

#define NEED_INIT                                                              \
  if (!S.initialized)                                                          \
    return NOT_INITIALIZED;

#define NEED_CONTEXT                                                           \
  NEED_INIT                                                                    \
  if (current != &S.primary || S.primary.refs == 0)                            \
    return INVALID_CONTEXT;

/// The stream, or null for the legacy NULL stream (counted); false for an
/// unknown handle.
bool knownStream(State &S, void *handle, Stream **out) {
  if (!handle) {
    ++S.stats.nullStreamOps;
    *out = nullptr;
    return true;
  }
  *out = static_cast<Stream *>(handle);
  return S.streams.count(*out) != 0;
}

/// Runs one kernel on the host.
CUresult execute(State &S, const Node &node) {
  for (CUdeviceptr p : node.params)
    if (!S.memory.count(static_cast<uintptr_t>(p)))
      return ILLEGAL_ADDRESS; // the ABI passes buffer base addresses only
  auto ptr = [&](int i) { return reinterpret_cast<void *>(node.params[i]); };
  if (node.kernel->sample)
    fakeSample(node.kernel->seq, ptr(1));
  else if (node.kernel->argmax)
    fakeArgmax(node.kernel->seq, ptr(0), ptr(1));
  else
    fakeStep(node.kernel->seq, ptr(0), ptr(1), ptr(2), ptr(3));
  ++S.stats.kernelsRun;
  return SUCCESS;
}

/// The architecture of a fake image's ".target sm_XY" line.
int imageArch(const std::string &text) {
  size_t at = text.find(".target sm_");
  return at == std::string::npos ? 0 : std::atoi(text.c_str() + at + 11);
}

/// Parses the .entry lines of a fake image into kernels.
CUresult parseKernels(const std::string &text, Module *module,
                      std::string *log) {
  size_t at = 0;
  while ((at = text.find(".entry ", at)) != std::string::npos) {
    at += 7;
    size_t open = text.find('(', at), close = text.find(')', at);
    if (open == std::string::npos || close == std::string::npos) {
      *log = "fake ptxas: malformed .entry";
      return INVALID_PTX;
    }
    auto kernel = std::make_unique<Kernel>();
    kernel->name = text.substr(at, open - at);
    for (size_t p = open; (p = text.find(".param", p)) < close; ++p)
      ++kernel->params;
    std::string base = kernel->name;
    int want;
    if (base.size() > 5 && base.compare(base.size() - 5, 5, "_step") == 0) {
      base.resize(base.size() - 5);
      want = 4;
    } else if (base.size() > 7 &&
               base.compare(base.size() - 7, 7, "_argmax") == 0) {
      base.resize(base.size() - 7);
      kernel->argmax = true;
      want = 2;
    } else if (base.size() > 7 &&
               base.compare(base.size() - 7, 7, "_sample") == 0) {
      base.resize(base.size() - 7);
      kernel->sample = true;
      want = 2;
    } else {
      want = -1;
    }
    kernel->seq = base == "fake_prefill"  ? FAKE_PREFILL_SEQ
                  : base == "fake_decode" ? 1
                                          : 0;
    if (!kernel->seq || kernel->params != want) {
      *log = "fake ptxas: no fake kernel '" + kernel->name + "' with " +
             std::to_string(kernel->params) + " parameters";
      return INVALID_PTX;
    }
    module->kernels.push_back(std::move(kernel));
  }
  return SUCCESS;
}

void writeLog(unsigned count, int *options, void **values,
              const std::string &text) {
  char *buffer = nullptr;
  size_t size = 0;
  for (unsigned i = 0; i < count; ++i) {
    if (options[i] == 5)
      buffer = static_cast<char *>(values[i]);
    if (options[i] == 6)
      size = static_cast<size_t>(reinterpret_cast<uintptr_t>(values[i]));
  }
  if (buffer && size) {
    std::snprintf(buffer, size, "%s", text.c_str());
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// Controls
//===----------------------------------------------------------------------===//

API void kilnFakeCudaReset(void) {
  State &S = state();
  std::lock_guard<std::mutex> lock(S.mutex);
  S.readEnvironment();
  S.resetCounters();
}

API const KilnFakeCudaStats *kilnFakeCudaStats(void) { return &state().stats; }

API void kilnFakeCudaDestroyGraphs(void) {
  State &S = state();
  std::lock_guard<std::mutex> lock(S.mutex);
  for (Graph *g : S.graphs)
    delete g;
  S.graphs.clear();
  S.stats.graphs = 0;
}

//===----------------------------------------------------------------------===//
// The driver API
//===----------------------------------------------------------------------===//

API CUresult cuGetErrorName(CUresult code, const char **name) {
  for (const ErrorText &e : kErrors)
    if (e.code == code) {
      *name = e.name;
      return SUCCESS;
    }
  *name = nullptr;
  return INVALID_VALUE;
}

API CUresult cuGetErrorString(CUresult code, const char **text) {
  for (const ErrorText &e : kErrors)
    if (e.code == code) {
      *text = e.text;
      return SUCCESS;
    }
  *text = nullptr;
  return INVALID_VALUE;
}

API CUresult cuInit(unsigned flags) {
  State &S = state();
  std::lock_guard<std::mutex> lock(S.mutex);
  if (!S.initialized)
    S.readEnvironment();
  if (CUresult injected = S.enter("cuInit"))
    return injected;
  if (flags != 0)
    return INVALID_VALUE;
  if (S.devices < 1)
    return NO_DEVICE;
  S.initialized = true;
  return SUCCESS;
}

API CUresult cuDriverGetVersion(int *version) {
  *version = 13000;
  return SUCCESS;
}

API CUresult cuDeviceGetCount(int *count) {
  ENTER("cuDeviceGetCount");
  NEED_INIT
  *count = S.devices;
  return SUCCESS;
}

API CUresult cuDeviceGet(int *device, int ordinal) {
  ENTER("cuDeviceGet");
  NEED_INIT
  if (ordinal < 0 || ordinal >= S.devices)
    return INVALID_DEVICE;
  *device = ordinal;
  return SUCCESS;
}

API CUresult cuDeviceGetAttribute(int *value, int attribute, int device) {
  ENTER("cuDeviceGetAttribute", std::to_string(attribute));
  NEED_INIT
  if (device != 0)
    return INVALID_DEVICE;
  switch (attribute) {
  case 75: // COMPUTE_CAPABILITY_MAJOR
    *value = S.arch / 10;
    return SUCCESS;
  case 76: // COMPUTE_CAPABILITY_MINOR
    *value = S.arch % 10;
    return SUCCESS;
  case 97: // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
    *value = 232448;
    return SUCCESS;
  }
  return INVALID_VALUE;
}

API CUresult cuDeviceGetName(char *name, int length, int device) {
  ENTER("cuDeviceGetName");
  NEED_INIT
  if (device != 0)
    return INVALID_DEVICE;
  std::snprintf(name, static_cast<size_t>(length), "Kiln Fake GPU");
  return SUCCESS;
}

API CUresult cuDevicePrimaryCtxRetain(void **ctx, int device) {
  ENTER("cuDevicePrimaryCtxRetain");
  NEED_INIT
  if (device != 0)
    return INVALID_DEVICE;
  ++S.primary.refs;
  S.stats.primaryContextRefs = S.primary.refs;
  *ctx = &S.primary;
  return SUCCESS;
}

API CUresult cuDevicePrimaryCtxRelease_v2(int device) {
  ENTER("cuDevicePrimaryCtxRelease_v2");
  NEED_INIT
  if (device != 0 || S.primary.refs == 0)
    return INVALID_VALUE;
  S.stats.primaryContextRefs = --S.primary.refs;
  return SUCCESS;
}

API CUresult cuCtxSetCurrent(void *ctx) {
  ENTER("cuCtxSetCurrent");
  NEED_INIT
  if (ctx && ctx != &S.primary)
    return INVALID_CONTEXT;
  current = static_cast<Context *>(ctx);
  return SUCCESS;
}

API CUresult cuStreamCreate(void **stream, unsigned flags) {
  ENTER("cuStreamCreate", std::to_string(flags));
  NEED_CONTEXT
  auto *s = new Stream;
  s->flags = flags;
  S.streams.insert(s);
  S.stats.streams = static_cast<int64_t>(S.streams.size());
  *stream = s;
  return SUCCESS;
}

API CUresult cuStreamDestroy_v2(void *handle) {
  ENTER("cuStreamDestroy_v2");
  NEED_CONTEXT
  auto *s = static_cast<Stream *>(handle);
  if (!S.streams.erase(s))
    return INVALID_HANDLE;
  delete s->capture;
  delete s;
  S.stats.streams = static_cast<int64_t>(S.streams.size());
  return SUCCESS;
}

API CUresult cuStreamSynchronize(void *handle) {
  ENTER("cuStreamSynchronize");
  NEED_CONTEXT
  Stream *s;
  if (!knownStream(S, handle, &s))
    return INVALID_HANDLE;
  if (s && s->capture)
    return CAPTURE_UNSUPPORTED;
  ++S.stats.syncs;
  return SUCCESS;
}

API CUresult cuModuleLoadDataEx(void **module, const void *image,
                                unsigned count, int *options, void **values) {
  const char *bytes = static_cast<const char *>(image);
  bool cubin = std::memcmp(bytes,
                           "\x7f"
                           "ELF",
                           4) == 0;
  ENTER("cuModuleLoadDataEx", cubin ? "cubin" : "ptx");
  NEED_CONTEXT
  std::string text(cubin ? bytes + 4 : bytes); // PTX: up to its NUL
  int arch = imageArch(text);
  if (cubin) {
    if (reinterpret_cast<uintptr_t>(image) % 8)
      return INVALID_IMAGE;
    if (arch / 10 != S.arch / 10 || arch % 10 > S.arch % 10)
      return NO_BINARY_FOR_GPU;
  } else {
    std::string log;
    if (arch == 0 || arch > S.arch)
      log = "ptxas fatal   : SM version specified by .target is higher "
            "than default SM version assumed";
    else if (text.find("fake-jit-error") != std::string::npos)
      log = "ptxas application ptx input, line 9; error   : fake-jit-error";
    if (!log.empty()) {
      writeLog(count, options, values, log);
      return INVALID_PTX;
    }
  }
  auto m = std::make_unique<Module>();
  std::string log;
  if (CUresult rc = parseKernels(text, m.get(), &log)) {
    writeLog(count, options, values, log);
    return rc;
  }
  ++(cubin ? S.stats.cubinLoads : S.stats.ptxLoads);
  S.modules.insert(m.get());
  S.stats.modules = static_cast<int64_t>(S.modules.size());
  *module = m.release();
  return SUCCESS;
}

API CUresult cuModuleUnload(void *handle) {
  ENTER("cuModuleUnload");
  NEED_CONTEXT
  auto *m = static_cast<Module *>(handle);
  if (!S.modules.erase(m))
    return INVALID_HANDLE;
  delete m;
  S.stats.modules = static_cast<int64_t>(S.modules.size());
  return SUCCESS;
}

API CUresult cuModuleGetFunction(void **function, void *handle,
                                 const char *name) {
  ENTER("cuModuleGetFunction", name);
  NEED_CONTEXT
  auto *m = static_cast<Module *>(handle);
  if (!S.modules.count(m))
    return INVALID_HANDLE;
  for (auto &k : m->kernels)
    if (k->name == name) {
      *function = k.get();
      return SUCCESS;
    }
  return NOT_FOUND;
}

API CUresult cuFuncGetAttribute(int *value, int attribute, void *function) {
  ENTER("cuFuncGetAttribute", std::to_string(attribute));
  NEED_CONTEXT
  if (!function)
    return INVALID_HANDLE;
  switch (attribute) {
  case 0: // MAX_THREADS_PER_BLOCK
    *value = S.maxThreads;
    return SUCCESS;
  case 1: // SHARED_SIZE_BYTES (static)
    *value = 0;
    return SUCCESS;
  case 8: // MAX_DYNAMIC_SHARED_SIZE_BYTES
    *value = static_cast<Kernel *>(function)->dynamicSharedLimit;
    return SUCCESS;
  }
  return INVALID_VALUE;
}

API CUresult cuFuncSetAttribute(void *function, int attribute, int value) {
  ENTER("cuFuncSetAttribute",
        std::to_string(attribute) + "," + std::to_string(value));
  NEED_CONTEXT
  if (!function)
    return INVALID_HANDLE;
  if (attribute != 8 || value < 0 || value > 232448)
    return INVALID_VALUE;
  static_cast<Kernel *>(function)->dynamicSharedLimit = value;
  ++S.stats.funcSetAttributeCalls;
  return SUCCESS;
}

API CUresult cuFuncGetParamInfo(void *function, size_t index, size_t *offset,
                                size_t *size) {
  ENTER("cuFuncGetParamInfo", std::to_string(index));
  NEED_CONTEXT
  auto *k = static_cast<Kernel *>(function);
  if (!k || index >= static_cast<size_t>(k->params))
    return INVALID_VALUE;
  *offset = index * 8;
  if (size)
    *size = 8;
  return SUCCESS;
}

API CUresult cuMemAlloc_v2(CUdeviceptr *out, size_t bytes) {
  ENTER("cuMemAlloc_v2", std::to_string(bytes));
  NEED_CONTEXT
  ++S.stats.allocCalls;
  if (bytes == 0)
    return INVALID_VALUE;
  void *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!p)
    return OUT_OF_MEMORY;
  std::memset(p, 0xCD, bytes); // device memory starts out as garbage
  S.memory[reinterpret_cast<uintptr_t>(p)] = bytes;
  S.stats.allocations = static_cast<int64_t>(S.memory.size());
  *out = reinterpret_cast<uintptr_t>(p);
  return SUCCESS;
}

API CUresult cuMemFree_v2(CUdeviceptr p) {
  ENTER("cuMemFree_v2");
  NEED_CONTEXT
  if (!S.memory.erase(static_cast<uintptr_t>(p)))
    return INVALID_VALUE;
  std::free(reinterpret_cast<void *>(p));
  S.stats.allocations = static_cast<int64_t>(S.memory.size());
  return SUCCESS;
}

API CUresult cuMemHostRegister_v2(void *p, size_t bytes, unsigned flags) {
  ENTER("cuMemHostRegister_v2", std::to_string(bytes));
  NEED_CONTEXT
  if (!p || !bytes || flags != 0 || S.registered.count(p))
    return INVALID_VALUE;
  S.registered[p] = bytes;
  S.stats.hostRegistered = static_cast<int64_t>(S.registered.size());
  return SUCCESS;
}

API CUresult cuMemHostUnregister(void *p) {
  ENTER("cuMemHostUnregister");
  NEED_CONTEXT
  if (!S.registered.erase(p))
    return INVALID_VALUE;
  S.stats.hostRegistered = static_cast<int64_t>(S.registered.size());
  return SUCCESS;
}

API CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char value, size_t bytes,
                             void *handle) {
  ENTER("cuMemsetD8Async", std::to_string(bytes));
  NEED_CONTEXT
  Stream *s;
  if (!knownStream(S, handle, &s))
    return INVALID_HANDLE;
  if (s && s->capture)
    return CAPTURE_UNSUPPORTED;
  if (!S.inDevice(p, bytes))
    return INVALID_VALUE;
  std::memset(reinterpret_cast<void *>(p), value, bytes);
  ++S.stats.memsetCalls;
  return SUCCESS;
}

API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src,
                                  size_t bytes, void *handle) {
  ENTER("cuMemcpyHtoDAsync_v2", std::to_string(bytes));
  NEED_CONTEXT
  Stream *s;
  if (!knownStream(S, handle, &s))
    return INVALID_HANDLE;
  if (s && s->capture)
    return CAPTURE_UNSUPPORTED;
  if (!S.inDevice(dst, bytes) ||
      S.inDevice(reinterpret_cast<uintptr_t>(src), 1))
    return INVALID_VALUE;
  std::memcpy(reinterpret_cast<void *>(dst), src, bytes);
  ++S.stats.htodCalls;
  S.stats.htodBytes += static_cast<int64_t>(bytes);
  return SUCCESS;
}

API CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t bytes,
                                  void *handle) {
  ENTER("cuMemcpyDtoHAsync_v2", std::to_string(bytes));
  NEED_CONTEXT
  Stream *s;
  if (!knownStream(S, handle, &s))
    return INVALID_HANDLE;
  if (s && s->capture)
    return CAPTURE_UNSUPPORTED;
  if (!S.inDevice(src, bytes) ||
      S.inDevice(reinterpret_cast<uintptr_t>(dst), 1))
    return INVALID_VALUE;
  std::memcpy(dst, reinterpret_cast<const void *>(src), bytes);
  ++S.stats.dtohCalls;
  S.stats.dtohBytes += static_cast<int64_t>(bytes);
  return SUCCESS;
}

/* cuLaunchKernel and cuLaunchKernelEx (the caller holds the lock). */
static CUresult launchKernel(State &S, CUresult rc, Kernel *k, unsigned gx,
                             unsigned gy, unsigned gz, unsigned bx, unsigned by,
                             unsigned bz, unsigned shared, void *handle,
                             void **params, void **extra);

API CUresult cuLaunchKernel(void *function, unsigned gx, unsigned gy,
                            unsigned gz, unsigned bx, unsigned by, unsigned bz,
                            unsigned shared, void *handle, void **params,
                            void **extra) {
  auto *k = static_cast<Kernel *>(function);
  State &S = state();
  std::lock_guard<std::mutex> lock(S.mutex);
  CUresult rc = S.enter("cuLaunchKernel", k ? k->name : "null");
  return launchKernel(S, rc, k, gx, gy, gz, bx, by, bz, shared, handle, params,
                      extra);
}

/* cuda.h's CUlaunchAttribute and CUlaunchConfig. */
struct FakeLaunchAttribute {
  int id;
  char pad[4];
  union {
    char bytes[64];
    int value;
  } value;
};
struct FakeLaunchConfig {
  unsigned gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ;
  unsigned sharedMemBytes;
  void *hStream;
  FakeLaunchAttribute *attrs;
  unsigned numAttrs;
};

API CUresult cuLaunchKernelEx(const FakeLaunchConfig *config, void *function,
                              void **params, void **extra) {
  auto *k = static_cast<Kernel *>(function);
  State &S = state();
  std::lock_guard<std::mutex> lock(S.mutex);
  CUresult rc = S.enter("cuLaunchKernelEx", k ? k->name : "null");
  if (!config || (config->numAttrs && !config->attrs))
    return INVALID_VALUE;
  bool dependent = false;
  for (unsigned i = 0; i < config->numAttrs; ++i) {
    // Only programmatic stream serialization (6), on or off; sm_90+.
    if (config->attrs[i].id != 6 || S.arch < 90)
      return INVALID_VALUE;
    dependent = config->attrs[i].value.value != 0;
  }
  rc = launchKernel(S, rc, k, config->gridDimX, config->gridDimY,
                    config->gridDimZ, config->blockDimX, config->blockDimY,
                    config->blockDimZ, config->sharedMemBytes, config->hStream,
                    params, extra);
  if (rc == SUCCESS && dependent)
    ++S.stats.dependentLaunches;
  return rc;
}

static CUresult launchKernel(State &S, CUresult rc, Kernel *k, unsigned gx,
                             unsigned gy, unsigned gz, unsigned bx, unsigned by,
                             unsigned bz, unsigned shared, void *handle,
                             void **params, void **extra) {
  NEED_CONTEXT
  Stream *s;
  if (!knownStream(S, handle, &s))
    return INVALID_HANDLE;
  uint64_t threads = uint64_t(bx) * by * bz;
  if (rc == SUCCESS &&
      (!k || extra || !params || !gx || !gy || !gz || !threads ||
       threads > static_cast<uint64_t>(S.maxThreads) ||
       shared > static_cast<unsigned>(k->dynamicSharedLimit)))
    rc = INVALID_VALUE;
  Node node{k, {gx, gy, gz}, {bx, by, bz}, shared, {}};
  // The parameter values are read now (and kept by a capture).
  for (int i = 0; rc == SUCCESS && i < k->params; ++i)
    node.params.push_back(*static_cast<CUdeviceptr *>(params[i]));
  if (s && s->capture) {
    if (rc != SUCCESS)
      s->captureInvalid = true; // as a real driver invalidates the capture
    else
      s->capture->nodes.push_back(std::move(node));
    return rc;
  }
  if (rc != SUCCESS)
    return rc;
  ++S.stats.kernelLaunches;
  return execute(S, node);
}

API CUresult cuStreamBeginCapture_v2(void *handle, int mode) {
  ENTER("cuStreamBeginCapture_v2", std::to_string(mode));
  NEED_CONTEXT
  Stream *s;
  if (!knownStream(S, handle, &s) || !s)
    return INVALID_VALUE; // the legacy stream cannot be captured
  if (s->capture || mode < 0 || mode > 2)
    return INVALID_VALUE;
  s->capture = new Graph;
  s->captureInvalid = false;
  ++S.stats.captures;
  return SUCCESS;
}

API CUresult cuStreamEndCapture(void *handle, void **graph) {
  ENTER("cuStreamEndCapture");
  NEED_CONTEXT
  Stream *s;
  if (!knownStream(S, handle, &s) || !s || !s->capture)
    return INVALID_VALUE;
  Graph *g = s->capture;
  s->capture = nullptr;
  if (s->captureInvalid) {
    delete g;
    *graph = nullptr;
    return CAPTURE_INVALIDATED;
  }
  S.graphs.insert(g);
  S.stats.graphs = static_cast<int64_t>(S.graphs.size());
  *graph = g;
  return SUCCESS;
}

API CUresult cuGraphInstantiateWithFlags(void **exec, void *graph,
                                         unsigned long long flags) {
  ENTER("cuGraphInstantiateWithFlags");
  NEED_CONTEXT
  auto *g = static_cast<Graph *>(graph);
  if (!S.graphs.count(g) || flags)
    return INVALID_VALUE;
  auto *e = new Graph(*g);
  S.graphExecs.insert(e);
  S.stats.graphExecs = static_cast<int64_t>(S.graphExecs.size());
  *exec = e;
  return SUCCESS;
}

API CUresult cuGraphInstantiate_v2(void **exec, void *graph, void **errorNode,
                                   char *log, size_t logSize) {
  if (log && logSize)
    log[0] = '\0';
  if (errorNode)
    *errorNode = nullptr;
  return cuGraphInstantiateWithFlags(exec, graph, 0);
}

API CUresult cuGraphLaunch(void *exec, void *handle) {
  ENTER("cuGraphLaunch");
  NEED_CONTEXT
  Stream *s;
  auto *e = static_cast<Graph *>(exec);
  if (!knownStream(S, handle, &s))
    return INVALID_HANDLE;
  if (!S.graphExecs.count(e))
    return INVALID_VALUE;
  ++S.stats.graphLaunches;
  for (const Node &node : e->nodes)
    if (CUresult rc = execute(S, node))
      return rc;
  return SUCCESS;
}

API CUresult cuGraphExecDestroy(void *exec) {
  ENTER("cuGraphExecDestroy");
  NEED_CONTEXT
  auto *e = static_cast<Graph *>(exec);
  if (!S.graphExecs.erase(e))
    return INVALID_VALUE;
  delete e;
  S.stats.graphExecs = static_cast<int64_t>(S.graphExecs.size());
  return SUCCESS;
}

API CUresult cuGraphDestroy(void *graph) {
  ENTER("cuGraphDestroy");
  NEED_CONTEXT
  auto *g = static_cast<Graph *>(graph);
  if (!S.graphs.erase(g))
    return INVALID_VALUE;
  delete g;
  S.stats.graphs = static_cast<int64_t>(S.graphs.size());
  return SUCCESS;
}

// CUDA events (KILN_PROFILE): every interval between two records is 0.25 ms.
API CUresult cuEventCreate(void **event, unsigned) {
  ENTER("cuEventCreate");
  NEED_CONTEXT
  *event = new int(0);
  return SUCCESS;
}

API CUresult cuEventRecord(void *event, void *) {
  ENTER("cuEventRecord");
  NEED_CONTEXT
  return event ? SUCCESS : INVALID_VALUE;
}

API CUresult cuEventElapsedTime(float *ms, void *start, void *end) {
  ENTER("cuEventElapsedTime");
  NEED_CONTEXT
  if (!start || !end)
    return INVALID_VALUE;
  *ms = 0.25f;
  return SUCCESS;
}

API CUresult cuEventDestroy_v2(void *event) {
  ENTER("cuEventDestroy_v2");
  delete static_cast<int *>(event);
  return SUCCESS;
}
