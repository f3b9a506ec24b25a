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
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kiln::runtime {

/// The bytes of a weight that the writer pulls while it writes, piece by
/// piece: the compiler makes its fused, transposed, scaled and quantized
/// weights here, so a model's weights never have to be in memory at once.
/// A weight is `rows()` rows of `rowBytes()` bytes (row major).
class WeightSource {
public:
  virtual ~WeightSource();
  virtual uint64_t rows() const = 0;
  virtual uint64_t rowBytes() const = 0;
  /// Writes rows [first, first + count) to `out` (count * rowBytes() bytes).
  virtual void readRows(uint64_t first, uint64_t count, char *out) = 0;
  /// All the bytes, when they already lie in memory (written without a
  /// copy); null otherwise.
  virtual const char *view() const { return nullptr; }
  /// Bytes [offset, offset + size) of view() have been read for the last
  /// time in this pass: a source over a mapped file may drop their pages.
  virtual void released(uint64_t offset, uint64_t size) {}
  /// Called once the writer has read everything: drop caches and release
  /// the pages read from.
  virtual void release() {}
};

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
  /// Same, with bytes that write() pulls from `source` (rows() * rowBytes()
  /// must equal the element count of `shape` times the size of `dtype`).
  uint64_t addWeight(std::string name, DType dtype, std::vector<int64_t> shape,
                     std::shared_ptr<WeightSource> source);

  /// Called by write() after each piece of the weights section with the
  /// bytes written so far and the section's size (a progress display).
  /// Tensor parallelism: `ranks` weight sets, the first made by addWeight,
  /// rank r's (r >= 1) by addRankWeight for every weight.
  void setTensorParallel(int64_t ranks);
  /// Rank `rank`'s bytes of the weight `name` (added before by addWeight,
  /// with the same size); false when there is no such weight or rank.
  bool addRankWeight(int64_t rank, const std::string &name,
                     std::shared_ptr<WeightSource> source);

  void setProgress(std::function<void(uint64_t done, uint64_t total)> fn);

  /// Size of the weights section so far.
  uint64_t weightsSize() const;

  /// Checks everything and writes the file (through a temporary file that is
  /// renamed over `path`, so a failed write leaves no partial artifact). The
  /// weights are read once, in pieces of at most 64 MiB, and hashed on the
  /// way; the metadata with the hashes is written last, over its
  /// placeholder.
  /// On failure returns false and sets `*error` to a one-line message.
  bool write(const std::string &path, std::string *error);

private:
  struct Impl;
  std::unique_ptr<Impl> impl;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_ARTIFACTWRITER_H
