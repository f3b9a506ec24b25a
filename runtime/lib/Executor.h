//===- Executor.h - Runs an artifact's entry points on a target ----------===//
//
// The target-specific half of a Session: it turns the artifact's kernel
// images into callable entry points. Buffers belong to the Session.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_LIB_EXECUTOR_H
#define KILN_RUNTIME_LIB_EXECUTOR_H

#include <memory>
#include <string>

namespace kiln::runtime {
class Artifact;

class Executor {
public:
  virtual ~Executor() = default;
  /// Runs artifact.entries()[entryIndex] on the given buffers.
  virtual bool run(size_t entryIndex, const void *weights, void *kv,
                   void *arena, void *io, std::string *error) = 0;
  /// The Session changed its host KV cache (preload or clear): executors
  /// with their own device copy take it over.
  virtual bool kvUpdated(const void *kv, std::string *error) { return true; }
  /// Where entry points run, for people ("host CPU", "NVIDIA H100 (sm_90)").
  virtual std::string device() const { return "host CPU"; }
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
