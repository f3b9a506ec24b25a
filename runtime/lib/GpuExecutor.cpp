//===- GpuExecutor.cpp - Entry points on an NVIDIA GPU --------------------===//
//
// The CUDA driver API, loaded at run time with dlopen("libcuda.so.1"): the
// runtime neither links libcuda nor includes cuda.h, so it builds without the
// CUDA toolkit, and a machine without a GPU still loads artifacts and says so.
// The sources: CudaDriver.{h,cpp} (the driver's entry points), GpuExecutor.h
// (the class), this file (load and call), GpuLaunch.cpp (an entry's launches
// and its CUDA graph) and GpuProfile.cpp (KILN_PROFILE, the copy bandwidth).
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
//      launch.args[i] plus launch.argOffsets[i] (a layer's tensor, for a
//      kernel the layers share) and params[i] = &args[i]; both live as long
//      as the executor, so launches allocate nothing.
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
// longest kernels (default 25), and KILN_PROFILE_TOP=decode (or prefill) every
// kernel of that entry in schedule order.
//
//===----------------------------------------------------------------------===//

#include "GpuExecutor.h"

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/Target.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace kiln::runtime {
using detail::fail;

namespace gpu {
namespace {

bool envFlag(const char *name, bool fallback) {
  const char *value = std::getenv(name);
  if (!value || !*value)
    return fallback;
  return std::strcmp(value, "0") != 0;
}

} // namespace

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
  const uint64_t sizes[4] = {artifact.rankWeightsSize(),
                             artifact.kvCache().kvBytes, arenaBytes, ioBytes};
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
      const LaunchSpec &l = *launch.spec;
      for (size_t a = 0; a < l.args.size(); ++a)
        launch.args.push_back(buffers[l.args[a]] +
                              (l.argOffsets.empty() ? 0 : l.argOffsets[a]));
      for (CUdeviceptr &arg : launch.args)
        launch.params.push_back(&arg);
    }
    const int64_t slots = spec.batch * spec.logitRows();
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
    // The sampling parameters and keys (entries that sample on the device):
    // one more copy, of both.
    if (spec.samplesOnDevice()) {
      const uint64_t from = std::min(spec.sampling.offset, spec.seeds.offset);
      const uint64_t to =
          std::max(spec.sampling.offset + spec.sampling.byteSize(),
                   spec.seeds.offset + spec.seeds.byteSize());
      if (between(spec.logits) || between(spec.argmax) ||
          (spec.logits.offset < to &&
           spec.logits.offset + spec.logits.byteSize() > from) ||
          (spec.argmax.offset < to &&
           spec.argmax.offset + spec.argmax.byteSize() > from)) {
        entry.inputs.push_back(
            {spec.sampling.offset, spec.sampling.byteSize()});
        entry.inputs.push_back({spec.seeds.offset, spec.seeds.byteSize()});
      } else {
        entry.inputs.push_back({from, to - from});
      }
    }
    // A paged KV cache's block table, written per call.
    if (!spec.blockTable.name.empty())
      entry.inputs.push_back(
          {spec.blockTable.offset, spec.blockTable.byteSize()});
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
  const int64_t slots = spec.batch * spec.logitRows();
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

} // namespace gpu

std::unique_ptr<Executor> createGpuExecutor(const Artifact &artifact,
                                            std::string *error) {
  auto executor = std::make_unique<gpu::GpuExecutor>(artifact);
  if (!executor->init(error))
    return nullptr;
  return executor;
}

} // namespace kiln::runtime
