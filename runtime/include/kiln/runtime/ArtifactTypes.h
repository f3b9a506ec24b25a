//===- ArtifactTypes.h - Plain descriptions of an artifact's contents -----===//
//
// The structs the compiler fills in for ArtifactWriter and the loader hands
// back from Artifact. Plain C++17: no FlatBuffers types leak out of the
// runtime, which alone knows the byte layout of model.kiln.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_ARTIFACTTYPES_H
#define KILN_RUNTIME_ARTIFACTTYPES_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::runtime {

/// Version of the model.kiln layout this runtime reads and writes.
constexpr uint32_t kFormatVersion = 2;
/// The version of artifacts split over several ranks (tensorParallel > 1),
/// which older runtimes must refuse rather than run as one rank.
constexpr uint32_t kTensorParallelFormatVersion = 3;
/// The most ranks an artifact is split over.
constexpr int64_t kMaxRanks = 64;
/// Size of the fixed file header.
constexpr uint64_t kHeaderSize = 64;
/// The weights section starts at a multiple of this (so it can be mmapped).
constexpr uint64_t kWeightsSectionAlignment = 4096;
/// Alignment of every weight inside the weights section, of every io tensor
/// inside an io buffer and of every per-layer block inside the KV buffer.
/// The runtime allocates weights, kv, arena and io buffers at least this
/// aligned.
constexpr uint64_t kBufferAlignment = 64;

enum class DType : uint8_t { F32, F16, BF16, I64, I32, I8, U8 };

/// Bytes per element.
size_t dtypeSize(DType type);
/// "f32", "f16", "bf16", "i64", "i32", "i8", "u8".
const char *dtypeName(DType type);

enum class ImageKind : uint8_t { SharedObject, Ptx, Cubin };
const char *imageKindName(ImageKind kind);

struct ModelInfo {
  int64_t numLayers = 0;
  int64_t hiddenSize = 0;
  int64_t numHeads = 0;
  int64_t numKvHeads = 0;
  int64_t headDim = 0;
  int64_t vocabSize = 0;
  int64_t intermediateSize = 0;
  double rmsNormEps = 0;
  bool tiedEmbeddings = false;
  /// Free-form compute/weight type, e.g. "float16" or "int8-weight-only".
  std::string dtype;
};

/// One KV buffer of `kvBytes`. Per layer a K block at kOffsets[layer] and a V
/// block at vOffsets[layer], each [batch, numKvHeads, maxSeqLen, headDim] of
/// `dtype`, row-major. Offsets are multiples of kBufferAlignment.
struct KvCacheSpec {
  int64_t numLayers = 0;
  int64_t batch = 0;
  int64_t numKvHeads = 0;
  int64_t maxSeqLen = 0;
  int64_t headDim = 0;
  DType dtype = DType::F32;
  std::vector<uint64_t> kOffsets;
  std::vector<uint64_t> vOffsets;
  uint64_t kvBytes = 0;
  /// Paged: positions per block and blocks in each layer's pool; 0, 0 for
  /// contiguous caches.
  int64_t blockSize = 0;
  int64_t numBlocks = 0;

  bool paged() const { return blockSize > 0; }
  /// Blocks in one sequence's table (paged).
  int64_t maxBlocks() const { return paged() ? maxSeqLen / blockSize : 0; }
  /// Bytes of one K (or V) block of one layer (paged: of one pool).
  uint64_t blockBytes() const;
  /// Fills kOffsets/vOffsets (k0, v0, k1, v1, ... each aligned) and kvBytes.
  void layoutContiguous();
};

/// A row-major tensor at `offset` bytes inside an entry's io buffer.
struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;

  int64_t numElements() const;
  uint64_t byteSize() const;
};

/// A buffer of the static memory plan, inside an entry's arena.
struct BufferSpec {
  std::string name;
  uint64_t offset = 0;
  uint64_t size = 0;
};

/// One kernel launch of a GPU entry point. Each kernel parameter is the
/// device address of one runtime buffer, by id: 0 weights, 1 kv, 2 arena,
/// 3 io.
struct LaunchSpec {
  std::string kernel;
  uint32_t grid[3] = {1, 1, 1};
  uint32_t block[3] = {1, 1, 1};
  uint32_t sharedBytes = 0;
  /// Buffer id of each kernel parameter (0 weights, 1 kv, 2 arena, 3 io).
  std::vector<uint8_t> args;
  /// Empty, or one per arg: the parameter points argOffsets[i] bytes into
  /// its buffer, and the kernel touches argBytes[i] bytes from there (0: up to
  /// the buffer's end). A kernel that several layers share takes the
  /// layer's tensors this way.
  std::vector<uint64_t> argOffsets;
  std::vector<uint64_t> argBytes;
  /// The kernel waits for the grid before it (griddepcontrol.wait) before it
  /// touches memory another kernel writes: it may be launched as a
  /// programmatic dependent launch.
  bool waitsForPrevious = false;
};

/// One entry point: extern "C" void symbol(void *weights, void *kv,
/// void *arena, void *io). Processes `seq` tokens for each of `batch` rows.
struct EntrySpec {
  std::string name;   // "prefill", "decode"
  std::string symbol; // symbol in the kernel image
  std::string image;  // kernel image holding `symbol`; empty: search all
  int64_t batch = 0;
  int64_t seq = 0;
  uint64_t ioSize = 0;
  uint64_t arenaSize = 0;
  TensorSpec tokens;    // i64 [batch, seq]
  TensorSpec positions; // i64 [batch, seq]; -1 = padding slot
  /// f32 | f16 | bf16 [batch, seq, vocab], or [batch, 1, vocab]: the
  /// chunk's last row only (Session then places each sequence's last token
  /// there).
  TensorSpec logits;
  TensorSpec argmax; // optional (empty name: absent): i64 [batch, rows]
  /// Optional (both or neither): the entry draws the next token of each row
  /// into `argmax` on the device. f32 [batch, 4]: temperature (0: greedy),
  /// top_k (0: all), top_p (1: all), min_p (0: all); i64 [batch]: a key per
  /// sequence, the same key giving the same draw.
  TensorSpec sampling;
  TensorSpec seeds;
  bool samplesOnDevice() const { return !sampling.name.empty(); }
  /// Paged KV cache (empty name: absent): i32 [batch, max_blocks], the block
  /// ids of each row's positions.
  TensorSpec blockTable;
  /// Rows of logits per sequence: seq, or 1 for a last-row entry.
  int64_t logitRows() const {
    return logits.shape.size() == 3 && logits.shape[1] == 1 ? 1 : seq;
  }
  std::vector<BufferSpec> plan;
  std::vector<LaunchSpec> launches; // GPU targets: the schedule, in order
};

/// One weight inside the weights section.
struct WeightInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0; // from the start of the weights section
  uint64_t size = 0;   // bytes
};

/// A kernel image as stored in a loaded artifact (bytes point into the file).
struct KernelImage {
  std::string name;
  ImageKind kind = ImageKind::SharedObject;
  const uint8_t *data = nullptr;
  size_t size = 0;
};

/// The Hugging Face tokenizer files an artifact carries, by content (see
/// Tokenizer.h). tokenizerJson is empty when it carries none.
struct TokenizerFiles {
  std::string tokenizerJson;        // tokenizer.json
  std::string tokenizerConfigJson;  // tokenizer_config.json, optional
  std::string generationConfigJson; // generation_config.json, optional

  bool empty() const { return tokenizerJson.empty(); }
};

/// Everything the metadata section describes.
struct ArtifactContents {
  std::string target;
  ModelInfo model;
  KvCacheSpec kvCache;
  std::vector<KernelImage> images;
  std::vector<EntrySpec> entries;
  std::vector<WeightInfo> weights;
  /// XXH3-64 of each weightsChunkSize-byte chunk of the weights section.
  uint64_t weightsChunkSize = 0;
  std::vector<uint64_t> weightsHashes;
  TokenizerFiles tokenizer;
  /// Tensor parallelism: ranks (1: none) and the bytes of one rank's weight
  /// set (the weights section holds tensorParallel of them, rank r's at
  /// r * rankWeightsSize; `weights` gives offsets inside a set).
  int64_t tensorParallel = 1;
  uint64_t rankWeightsSize = 0;
};

/// Bytes per hashed chunk of the weights section: chunks hash in parallel
/// and a damaged byte is located to 64 MiB.
inline constexpr uint64_t kWeightsChunkSize = uint64_t(64) << 20;

/// The consistency checks shared by the writer and the loader: dimensions,
/// dtypes, io tensor shapes and bounds, KV blocks inside kvBytes, weights
/// inside a weights section of `weightsSize` bytes, unique names, alignment.
bool validateContents(const ArtifactContents &contents, uint64_t weightsSize,
                      std::string *error);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_ARTIFACTTYPES_H
