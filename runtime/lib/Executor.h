//===- Executor.h - Runs an artifact's entry points on a target ----------===//
//
// The target-specific half of a Session: it turns the artifact's kernel
// images into callable entry points. Buffers belong to the Session.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_LIB_EXECUTOR_H
#define KILN_RUNTIME_LIB_EXECUTOR_H

#include <cstdint>
#include <memory>
#include <string>

namespace kiln::runtime {
class Artifact;

/// Rows [first, first + count) of an entry's [batch * seq]-slot outputs
/// (slot = batch row * seq + index in the row).
struct SlotRange {
  int64_t first = 0;
  int64_t count = 0;
};

/// What the caller reads from the io buffer after a call. Executors whose io
/// buffer lives elsewhere (a GPU's memory) copy back exactly these rows;
/// executors that run on the host io buffer have nothing to do.
struct Readback {
  SlotRange logits; // rows of the logits tensor
  SlotRange argmax; // elements of the argmax tensor (entries that have one)
};

class Executor {
public:
  virtual ~Executor() = default;
  /// Runs artifact.entries()[entryIndex]. The caller has written the
  /// entry's tokens and positions into `io`; afterwards the rows of
  /// `readback` are valid in `io`.
  virtual bool run(size_t entryIndex, const void *weights, void *kv,
                   void *arena, void *io, const Readback &readback,
                   std::string *error) = 0;
  /// Whether entry points read and write the Session's host arena (CPU);
  /// executors with their own device buffers need none.
  virtual bool usesHostArena() const { return true; }
  /// The Session's host io buffer (`bytes` long), once, before any run; it
  /// stays allocated until the executor is destroyed. A GPU executor
  /// page-locks it for faster copies.
  virtual bool attachHostIo(void *io, uint64_t bytes, std::string *error) {
    return true;
  }
  /// The Session changed its host KV cache (preload or clear): executors
  /// with their own device copy take it over.
  virtual bool kvUpdated(const void *kv, std::string *error) { return true; }
  /// The Session zeroed its host KV cache (a new conversation): executors
  /// with more caches than the Session's (a tensor-parallel artifact's
  /// other ranks) clear theirs.
  virtual bool kvCleared(const void *kv, std::string *error) {
    return kvUpdated(kv, error);
  }
  /// Seconds rank 0 has spent in collectives so far (tensor parallelism).
  virtual double collectiveSeconds() const { return 0; }
  /// Where entry points run, for people ("host CPU", "NVIDIA H100 (sm_90)").
  virtual std::string device() const { return "host CPU"; }
  /// Copies `bytes` within the memory the entry points read (device memory
  /// on a GPU, host memory on the CPU) `repeats` times and returns the best
  /// bytes read + written per second (kiln-run --bench: the limit a decode
  /// step is measured against).
  virtual bool measureCopyBandwidth(uint64_t bytes, int repeats,
                                    double *bytesPerSecond, std::string *error);
};

/// Picks the executor for artifact.target(): "cpu" or "sm_*".
std::unique_ptr<Executor> createExecutor(const Artifact &artifact,
                                         std::string *error);
std::unique_ptr<Executor> createCpuExecutor(const Artifact &artifact,
                                            std::string *error);
std::unique_ptr<Executor> createGpuExecutor(const Artifact &artifact,
                                            std::string *error);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_LIB_EXECUTOR_H
