//===- ArtifactWriter.h - Builds a model.kiln file ------------------------===//
//
// The compiler's only way to produce an artifact. It describes the model,
// KV cache, kernel images, entry points and weights with plain structs;
// write() lays out and checks the file (the same checks the loader makes),
// so an inconsistent description fails at compile time, not at load time.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_ARTIFACTWRITER_H
#define KILN_RUNTIME_ARTIFACTWRITER_H

#include "kiln/runtime/ArtifactTypes.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln::runtime {

class ArtifactWriter {
public:
  ArtifactWriter();
  ~ArtifactWriter();
  ArtifactWriter(const ArtifactWriter &) = delete;
  ArtifactWriter &operator=(const ArtifactWriter &) = delete;

  /// "cpu", or a GPU architecture such as "sm_90".
  void setTarget(std::string target);
  void setModel(const ModelInfo &model);
  void setKvCache(const KvCacheSpec &kvCache);
  void addKernelImage(std::string name, ImageKind kind,
                      std::vector<uint8_t> bytes);
  void addEntry(const EntrySpec &entry);
  /// Stores the tokenizer files (tokenizerJson non-empty); the caller has
  /// checked them (Tokenizer::create).
  void setTokenizer(TokenizerFiles files);

  /// Adds a weight and returns its offset in the weights section (a multiple
  /// of kBufferAlignment). Offsets depend only on the sizes of the weights
  /// added before, so they are known before write(). `data` is not copied
  /// and must stay alive until write() returns. `size` must equal the
  /// element count of `shape` times the size of `dtype`.
  uint64_t addWeight(std::string name, DType dtype, std::vector<int64_t> shape,
                     const void *data, size_t size);
  /// Same, but the writer keeps the bytes.
  uint64_t addWeight(std::string name, DType dtype, std::vector<int64_t> shape,
                     std::vector<uint8_t> bytes);

  /// Size of the weights section so far.
  uint64_t weightsSize() const;

  /// Checks everything and writes the file (through a temporary file that is
  /// renamed over `path`, so a failed write leaves no partial artifact).
  /// On failure returns false and sets `*error` to a one-line message.
  bool write(const std::string &path, std::string *error) const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_ARTIFACTWRITER_H
