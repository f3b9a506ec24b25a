//===- Artifact.h - A loaded and validated model.kiln ---------------------===//
//
// Maps an artifact file read-only and checks it completely before anything
// uses it: header, format version, sizes and section bounds, metadata
// checksum, the FlatBuffer itself, and the consistency of weights, KV cache,
// kernel images and entry points. Every failure is a one-line message.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_ARTIFACT_H
#define KILN_RUNTIME_ARTIFACT_H

#include "kiln/runtime/ArtifactTypes.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::runtime {

class Artifact {
public:
  struct OpenOptions {
    /// Check the weights section against its XXH3 chunk hashes (reads every
    /// byte once, in parallel); off only when the user asks.
    bool verifyWeights = true;
  };
  /// Opens and validates `path`. Returns null and sets `*error` on failure.
  static std::unique_ptr<Artifact> open(const std::string &path,
                                        std::string *error);
  static std::unique_ptr<Artifact>
  open(const std::string &path, const OpenOptions &options, std::string *error);
  ~Artifact();
  Artifact(const Artifact &) = delete;
  Artifact &operator=(const Artifact &) = delete;

  const std::string &path() const { return filePath; }
  uint32_t formatVersion() const { return version; }
  uint64_t fileSize() const { return mappedSize; }

  const ArtifactContents &contents() const { return data; }
  const std::string &target() const { return data.target; }
  const ModelInfo &model() const { return data.model; }
  const KvCacheSpec &kvCache() const { return data.kvCache; }
  const std::vector<KernelImage> &images() const { return data.images; }
  const std::vector<EntrySpec> &entries() const { return data.entries; }
  const std::vector<WeightInfo> &weights() const { return data.weights; }
  /// The tokenizer files; empty() when the artifact carries none.
  const TokenizerFiles &tokenizer() const { return data.tokenizer; }

  /// Null when there is no entry of that name.
  const EntrySpec *findEntry(std::string_view name) const;
  const KernelImage *findImage(std::string_view name) const;

  /// Start of the read-only weights section (4096-byte aligned).
  const uint8_t *weightsData() const { return weightsBase; }
  uint64_t weightsSize() const { return weightsBytes; }

  /// Tensor parallelism: the ranks the model is split over (1: none), and
  /// each rank's weight set (the offsets of weights() are inside a set;
  /// rank 0's starts the section).
  int64_t tensorParallel() const { return data.tensorParallel; }
  const uint8_t *rankWeights(int64_t rank) const {
    return weightsBase + static_cast<uint64_t>(rank) * setBytes;
  }
  uint64_t rankWeightsSize() const { return setBytes; }

private:
  Artifact() = default;

  std::string filePath;
  uint32_t version = 0;
  void *mapping = nullptr;
  uint64_t mappedSize = 0;
  const uint8_t *weightsBase = nullptr;
  uint64_t weightsBytes = 0;
  uint64_t setBytes = 0;
  ArtifactContents data;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_ARTIFACT_H
