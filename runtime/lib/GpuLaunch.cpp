//===- GpuLaunch.cpp - An entry's launches and its CUDA graph -------------===//
//
// GpuExecutor::launch issues an entry's kernels on the executor's stream in
// schedule order: plain launches, or on sm_90 and later programmatic
// dependent launches after the first (KILN_CUDA_PDL=0: plain ones); with
// KILN_CUDA_SYNC=1 a synchronisation after each, so that an error names the
// kernel; with KILN_PROFILE=1 a CUDA event before each and after the last.
// GpuExecutor::captureGraph records those launches once into a CUDA graph
// and instantiates it; GpuExecutor::run then replays it with cuGraphLaunch.
//
//===----------------------------------------------------------------------===//

#include "GpuExecutor.h"

#include "kiln/runtime/Artifact.h"

#include <string>

namespace kiln::runtime {
using detail::fail;

namespace gpu {

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

} // namespace gpu
} // namespace kiln::runtime
