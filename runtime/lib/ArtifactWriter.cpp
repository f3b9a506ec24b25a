//===- ArtifactWriter.cpp - Builds a model.kiln file ---------------------===//

#include "kiln/runtime/ArtifactWriter.h"

#include <xxhash.h>

#include <algorithm>

#include "FileHeader.h"
#include "Format.h"
#include "artifact_generated.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unistd.h>

namespace kiln::runtime {
using detail::alignUp;
using detail::fail;

struct ArtifactWriter::Impl {
  ArtifactContents contents;
  // Backing storage of contents.images[i].data; moving a vector keeps its
  // heap buffer, so the pointers stay valid as these grow.
  std::vector<std::vector<uint8_t>> imageBytes;
  // Per weight: the caller's bytes, or ours when `owned` is non-empty, or
  // a source to pull them from.
  std::vector<const void *> weightData;
  std::vector<std::shared_ptr<WeightSource>> weightSources;
  std::vector<std::vector<uint8_t>> ownedWeights;
  uint64_t weightsEnd = 0;
  // Tensor parallelism: rankSources[r - 1][i] is rank r's weight i.
  std::vector<std::vector<std::shared_ptr<WeightSource>>> rankSources;
  std::function<void(uint64_t, uint64_t)> progress;
};

ArtifactWriter::ArtifactWriter() : impl(std::make_unique<Impl>()) {}
ArtifactWriter::~ArtifactWriter() = default;

void ArtifactWriter::setTarget(std::string target) {
  impl->contents.target = std::move(target);
}

void ArtifactWriter::setModel(const ModelInfo &model) {
  impl->contents.model = model;
}

void ArtifactWriter::setKvCache(const KvCacheSpec &kvCache) {
  impl->contents.kvCache = kvCache;
}

void ArtifactWriter::addKernelImage(std::string name, ImageKind kind,
                                    std::vector<uint8_t> bytes) {
  impl->imageBytes.push_back(std::move(bytes));
  const std::vector<uint8_t> &stored = impl->imageBytes.back();
  impl->contents.images.push_back(
      {std::move(name), kind, stored.data(), stored.size()});
}

void ArtifactWriter::addEntry(const EntrySpec &entry) {
  impl->contents.entries.push_back(entry);
}

void ArtifactWriter::setTokenizer(TokenizerFiles files) {
  impl->contents.tokenizer = std::move(files);
}

void ArtifactWriter::setTensorParallel(int64_t ranks) {
  impl->contents.tensorParallel = ranks;
  impl->rankSources.resize(ranks > 1 ? ranks - 1 : 0);
}

bool ArtifactWriter::addRankWeight(int64_t rank, const std::string &name,
                                   std::shared_ptr<WeightSource> source) {
  if (rank < 1 || rank > static_cast<int64_t>(impl->rankSources.size()))
    return false;
  const std::vector<WeightInfo> &weights = impl->contents.weights;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i].name != name)
      continue;
    if (!source || source->rows() * source->rowBytes() != weights[i].size)
      return false;
    std::vector<std::shared_ptr<WeightSource>> &set =
        impl->rankSources[rank - 1];
    set.resize(weights.size());
    set[i] = std::move(source);
    return true;
  }
  return false;
}

uint64_t ArtifactWriter::addWeight(std::string name, DType dtype,
                                   std::vector<int64_t> shape, const void *data,
                                   size_t size) {
  uint64_t offset = alignUp(impl->weightsEnd, kBufferAlignment);
  impl->contents.weights.push_back(
      {std::move(name), dtype, std::move(shape), offset, size});
  impl->weightData.push_back(data);
  impl->weightSources.emplace_back();
  impl->weightsEnd = offset + size;
  return offset;
}

WeightSource::~WeightSource() = default;

uint64_t ArtifactWriter::addWeight(std::string name, DType dtype,
                                   std::vector<int64_t> shape,
                                   std::shared_ptr<WeightSource> source) {
  uint64_t size = source ? source->rows() * source->rowBytes() : 0;
  uint64_t offset =
      addWeight(std::move(name), dtype, std::move(shape), nullptr, size);
  impl->weightSources.back() = std::move(source);
  return offset;
}

uint64_t ArtifactWriter::addWeight(std::string name, DType dtype,
                                   std::vector<int64_t> shape,
                                   std::vector<uint8_t> bytes) {
  impl->ownedWeights.push_back(std::move(bytes));
  const std::vector<uint8_t> &stored = impl->ownedWeights.back();
  return addWeight(std::move(name), dtype, std::move(shape), stored.data(),
                   stored.size());
}

uint64_t ArtifactWriter::weightsSize() const { return impl->weightsEnd; }

void ArtifactWriter::setProgress(
    std::function<void(uint64_t done, uint64_t total)> fn) {
  impl->progress = std::move(fn);
}

namespace {

using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

fb::DType toFb(DType t) { return static_cast<fb::DType>(t); }

Offset<fb::Tensor> buildTensor(FlatBufferBuilder &b, const TensorSpec &t) {
  return fb::CreateTensorDirect(b, t.name.c_str(), toFb(t.dtype), &t.shape,
                                t.offset);
}

Offset<fb::Entry> buildEntry(FlatBufferBuilder &b, const EntrySpec &e) {
  std::vector<Offset<fb::Buffer>> plan;
  for (const BufferSpec &buf : e.plan)
    plan.push_back(
        fb::CreateBufferDirect(b, buf.name.c_str(), buf.offset, buf.size));
  std::vector<Offset<fb::Launch>> launches;
  for (const LaunchSpec &l : e.launches) {
    std::vector<uint32_t> grid(l.grid, l.grid + 3), block(l.block, l.block + 3);
    launches.push_back(fb::CreateLaunchDirect(
        b, l.kernel.c_str(), &grid, &block, l.sharedBytes, &l.args,
        l.argOffsets.empty() ? nullptr : &l.argOffsets,
        l.argBytes.empty() ? nullptr : &l.argBytes, l.waitsForPrevious));
  }
  auto tokens = buildTensor(b, e.tokens);
  auto positions = buildTensor(b, e.positions);
  auto logits = buildTensor(b, e.logits);
  Offset<fb::Tensor> argmax, sampling, seeds, blockTable;
  if (!e.argmax.name.empty())
    argmax = buildTensor(b, e.argmax);
  if (!e.sampling.name.empty())
    sampling = buildTensor(b, e.sampling);
  if (!e.seeds.name.empty())
    seeds = buildTensor(b, e.seeds);
  if (!e.blockTable.name.empty())
    blockTable = buildTensor(b, e.blockTable);
  return fb::CreateEntryDirect(b, e.name.c_str(), e.symbol.c_str(),
                               e.image.c_str(), e.batch, e.seq, e.ioSize,
                               e.arenaSize, tokens, positions, logits, &plan,
                               &launches, argmax, sampling, seeds, blockTable);
}

/// Serializes the metadata section.
void buildMetadata(FlatBufferBuilder &b, const ArtifactContents &c) {
  const ModelInfo &m = c.model;
  auto model = fb::CreateModelInfoDirect(
      b, m.numLayers, m.hiddenSize, m.numHeads, m.numKvHeads, m.headDim,
      m.vocabSize, m.intermediateSize, m.rmsNormEps, m.tiedEmbeddings,
      m.dtype.c_str());
  const KvCacheSpec &kv = c.kvCache;
  auto kvCache = fb::CreateKvCacheDirect(
      b, kv.numLayers, kv.batch, kv.numKvHeads, kv.maxSeqLen, kv.headDim,
      toFb(kv.dtype), &kv.kOffsets, &kv.vOffsets, kv.kvBytes, kv.blockSize,
      kv.numBlocks);

  std::vector<Offset<fb::KernelImage>> images;
  for (const KernelImage &image : c.images) {
    auto bytes = b.CreateVector(image.data, image.size);
    images.push_back(
        fb::CreateKernelImage(b, b.CreateString(image.name),
                              static_cast<fb::ImageKind>(image.kind), bytes));
  }
  std::vector<Offset<fb::Entry>> entries;
  for (const EntrySpec &e : c.entries)
    entries.push_back(buildEntry(b, e));
  std::vector<Offset<fb::Weight>> weights;
  for (const WeightInfo &w : c.weights)
    weights.push_back(fb::CreateWeightDirect(b, w.name.c_str(), toFb(w.dtype),
                                             &w.shape, w.offset, w.size));
  Offset<fb::TokenizerFiles> tokenizer;
  if (!c.tokenizer.empty()) {
    const TokenizerFiles &t = c.tokenizer;
    auto optional = [&](const std::string &s) {
      return s.empty() ? Offset<flatbuffers::String>() : b.CreateString(s);
    };
    tokenizer = fb::CreateTokenizerFiles(b, b.CreateString(t.tokenizerJson),
                                         optional(t.tokenizerConfigJson),
                                         optional(t.generationConfigJson));
  }
  b.Finish(fb::CreateArtifactDirect(
               b, c.target.c_str(), model, kvCache, &images, &entries, &weights,
               c.weightsChunkSize, &c.weightsHashes, tokenizer,
               c.tensorParallel > 1 ? c.tensorParallel : 0, c.rankWeightsSize),
           fb::ArtifactIdentifier());
}

/// A FILE that is closed (and its temporary path removed) unless committed.
class TempFile {
public:
  explicit TempFile(std::string finalPath)
      : finalPath(std::move(finalPath)),
        tempPath(this->finalPath + ".tmp." + std::to_string(getpid())) {}
  ~TempFile() {
    if (file)
      std::fclose(file);
    if (!committed)
      std::remove(tempPath.c_str());
  }

  bool open(std::string *error) {
    file = std::fopen(tempPath.c_str(), "wb");
    if (!file)
      return fail(error, "cannot open '", tempPath,
                  "' for writing: ", std::strerror(errno));
    return true;
  }

  bool put(const void *data, size_t size, std::string *error) {
    if (size && std::fwrite(data, 1, size, file) != size)
      return fail(error, "cannot write '", tempPath,
                  "': ", std::strerror(errno));
    return true;
  }

  bool rewind(std::string *error) {
    if (std::fseek(file, 0, SEEK_SET) != 0)
      return fail(error, "cannot seek in '", tempPath,
                  "': ", std::strerror(errno));
    return true;
  }

  bool zeros(uint64_t count, std::string *error) {
    static const uint8_t zero[4096] = {};
    while (count) {
      size_t n = count < sizeof(zero) ? count : sizeof(zero);
      if (!put(zero, n, error))
        return false;
      count -= n;
    }
    return true;
  }

  bool commit(std::string *error) {
    int rc = std::fclose(file);
    file = nullptr;
    if (rc != 0)
      return fail(error, "cannot write '", tempPath,
                  "': ", std::strerror(errno));
    if (std::rename(tempPath.c_str(), finalPath.c_str()) != 0)
      return fail(error, "cannot rename '", tempPath, "' to '", finalPath,
                  "': ", std::strerror(errno));
    committed = true;
    return true;
  }

private:
  std::string finalPath, tempPath;
  std::FILE *file = nullptr;
  bool committed = false;
};

} // namespace

bool ArtifactWriter::write(const std::string &path, std::string *error) {
  ArtifactContents &c = impl->contents;
  // Tensor parallelism: one weight set per rank, each aligned.
  const int64_t ranks = std::max<int64_t>(c.tensorParallel, 1);
  const uint64_t setSize = ranks > 1
                               ? alignUp(impl->weightsEnd, kBufferAlignment)
                               : impl->weightsEnd;
  const uint64_t sectionSize = setSize * static_cast<uint64_t>(ranks);
  c.rankWeightsSize = ranks > 1 ? setSize : 0;
  std::string why;
  if (!validateContents(c, setSize, &why))
    return fail(error, "invalid artifact: ", why);
  for (size_t i = 0; i < c.weights.size(); ++i) {
    if (!impl->weightData[i] && !impl->weightSources[i] && c.weights[i].size)
      return fail(error, "weight '", c.weights[i].name, "' has no data");
    for (size_t r = 0; r < impl->rankSources.size(); ++r)
      if (c.weights[i].size &&
          (impl->rankSources[r].size() <= i || !impl->rankSources[r][i]))
        return fail(error, "weight '", c.weights[i].name,
                    "' has no data for rank ", r + 1);
  }

  // The weights section's chunk hashes go into the metadata, which precedes
  // the section. The metadata is built first with placeholder hashes (the
  // same count, so the same size), the weights are written and hashed in one
  // pass, then the metadata is built again and written over the placeholder.
  ArtifactContents hashed = c;
  hashed.weightsChunkSize = kWeightsChunkSize;
  hashed.weightsHashes.assign(
      (sectionSize + kWeightsChunkSize - 1) / kWeightsChunkSize, 0);
  FlatBufferBuilder placeholder(1 << 16);
  buildMetadata(placeholder, hashed);

  detail::FileHeader header{};
  std::memcpy(header.magic, detail::kMagic, sizeof(header.magic));
  header.formatVersion =
      ranks > 1 ? kTensorParallelFormatVersion : kFormatVersion;
  header.headerSize = kHeaderSize;
  header.metaOffset = kHeaderSize;
  header.metaSize = placeholder.GetSize();
  header.weightsOffset =
      alignUp(header.metaOffset + header.metaSize, kWeightsSectionAlignment);
  header.weightsSize = sectionSize;
  header.fileSize = header.weightsOffset + header.weightsSize;

  TempFile out(path);
  if (!out.open(error) || !out.zeros(header.weightsOffset, error))
    return false;

  hashed.weightsHashes.clear();
  XXH3_state_t *state = XXH3_createState();
  struct FreeState {
    XXH3_state_t *s;
    ~FreeState() { XXH3_freeState(s); }
  } freeState{state};
  uint64_t inChunk = 0, written = 0;
  XXH3_64bits_reset(state);
  // Hashes and writes `size` bytes (zeros when `data` is null).
  static const uint8_t zeros[4096] = {};
  auto emit = [&](const uint8_t *data, uint64_t size) {
    while (size) {
      uint64_t n = std::min(size, kWeightsChunkSize - inChunk);
      if (!data)
        n = std::min<uint64_t>(n, sizeof(zeros));
      const uint8_t *piece = data ? data : zeros;
      XXH3_64bits_update(state, piece, n);
      if (!out.put(piece, n, error))
        return false;
      written += n;
      if (impl->progress)
        impl->progress(written, sectionSize);
      if (data)
        data += n;
      size -= n;
      inChunk += n;
      if (inChunk == kWeightsChunkSize) {
        hashed.weightsHashes.push_back(XXH3_64bits_digest(state));
        XXH3_64bits_reset(state);
        inChunk = 0;
      }
    }
    return true;
  };
  constexpr uint64_t kPieceBytes = uint64_t(64) << 20;
  std::vector<char> piece;
  uint64_t position = 0;
  for (int64_t rank = 0; rank < ranks; ++rank)
    for (size_t i = 0; i < c.weights.size(); ++i) {
      const WeightInfo &w = c.weights[i];
      const uint64_t base = static_cast<uint64_t>(rank) * setSize;
      if (!emit(nullptr, base + w.offset - position))
        return false;
      position = base + w.offset + w.size;
      std::shared_ptr<WeightSource> &owner =
          rank ? impl->rankSources[rank - 1][i] : impl->weightSources[i];
      WeightSource *source = owner.get();
      const void *data = rank ? nullptr : impl->weightData[i];
      if (source && source->view())
        data = source->view();
      if (data || !source) {
        // In pieces, so a source over a mapped file can drop each piece's
        // pages once it is written.
        const uint8_t *bytes = static_cast<const uint8_t *>(data);
        for (uint64_t done = 0; done < w.size;) {
          uint64_t n = std::min(kPieceBytes, w.size - done);
          if (!emit(bytes ? bytes + done : nullptr, n))
            return false;
          if (source)
            source->released(done, n);
          done += n;
        }
      } else {
        uint64_t rowBytes = source->rowBytes(), rows = source->rows();
        uint64_t perPiece = std::max<uint64_t>(1, kPieceBytes / rowBytes);
        for (uint64_t r = 0; r < rows; r += perPiece) {
          uint64_t count = std::min(perPiece, rows - r);
          piece.resize(count * rowBytes);
          source->readRows(r, count, piece.data());
          if (!emit(reinterpret_cast<const uint8_t *>(piece.data()),
                    piece.size()))
            return false;
        }
      }
      if (source)
        source->release();
      owner.reset();
    }
  if (!emit(nullptr, sectionSize - position))
    return false;
  if (inChunk)
    hashed.weightsHashes.push_back(XXH3_64bits_digest(state));

  FlatBufferBuilder builder(1 << 16);
  buildMetadata(builder, hashed);
  if (builder.GetSize() != header.metaSize)
    return fail(error, "internal error: the artifact's metadata changed size "
                       "when its weight hashes were filled in");
  header.metaCrc32 = detail::crc32(builder.GetBufferPointer(), header.metaSize);
  uint8_t headerBytes[kHeaderSize];
  detail::encodeHeader(header, headerBytes);
  if (!out.rewind(error) || !out.put(headerBytes, kHeaderSize, error) ||
      !out.put(builder.GetBufferPointer(), header.metaSize, error))
    return false;
  return out.commit(error);
}

} // namespace kiln::runtime
