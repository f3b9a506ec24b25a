/*===- FakeCuda.h - Controls of the fake CUDA driver (libcuda.so.1) -----===*\
|*                                                                          *|
|* FakeCuda.cpp builds a libcuda.so.1 that runs the fake model's kernels    *|
|* (FakeKernels.c) on the host, so the GPU executor can be tested without a *|
|* GPU: load it with LD_LIBRARY_PATH=<its directory>.                       *|
|*                                                                          *|
|* Environment, read by cuInit and kilnFakeCudaReset:                       *|
|*   KILN_FAKE_CUDA_ARCH=90      compute capability (major*10 + minor)      *|
|*   KILN_FAKE_CUDA_DEVICES=1    0: cuInit fails with CUDA_ERROR_NO_DEVICE  *|
|*   KILN_FAKE_CUDA_MAX_THREADS=1024  each kernel's max threads per block   *|
|*   KILN_FAKE_CUDA_FAIL=name[:n[:code]]  the n-th call (default 1) of the  *|
|*       driver function `name` returns `code` (default 999, UNKNOWN)       *|
|*                                                                          *|
|* The fake checks what a real driver would reject (uninitialised driver,   *|
|* no current context, unknown handles, device ranges outside an            *|
|* allocation, synchronising a capturing stream, shared memory above 48 KiB *|
|* without opting in) and counts what the runtime did.                      *|
|*                                                                          *|
\*===----------------------------------------------------------------------===*/

#ifndef KILN_TEST_FAKECUDA_H
#define KILN_TEST_FAKECUDA_H

#include <stdint.h>

struct KilnFakeCudaStats {
  /* Live objects (0 after a clean shutdown). */
  int64_t allocations, modules, streams, graphs, graphExecs, hostRegistered;
  int64_t primaryContextRefs;
  /* Counters since the last reset. */
  int64_t allocCalls;
  int64_t htodCalls, htodBytes, dtohCalls, dtohBytes, memsetCalls;
  int64_t kernelLaunches; /* cuLaunchKernel(Ex) outside capture */
  /* cuLaunchKernelEx with programmatic stream serialization, captured or
     not. */
  int64_t dependentLaunches;
  int64_t kernelsRun; /* kernels executed, graph replays included */
  int64_t captures, graphLaunches, syncs;
  int64_t nullStreamOps; /* work sent to the legacy NULL stream */
  int64_t cubinLoads, ptxLoads;
  int64_t funcSetAttributeCalls;
  /* The driver calls since the last reset, one per line:
     "name" or "name(detail)", truncated at the buffer's end. */
  char log[8192];
};

#ifdef __cplusplus
extern "C" {
#endif
/* Re-reads the environment and clears the counters and the log. */
void kilnFakeCudaReset(void);
const struct KilnFakeCudaStats *kilnFakeCudaStats(void);
/* Destroys the graphs still alive: one whose cuGraphDestroy was made to fail
   stays in the driver, and a later test in the same process would count it. */
void kilnFakeCudaDestroyGraphs(void);
#ifdef __cplusplus
}
#endif

#endif /* KILN_TEST_FAKECUDA_H */
