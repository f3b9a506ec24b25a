//===- Artifact.cpp - Loads and validates a model.kiln -------------------===//

#include "kiln/runtime/Artifact.h"

#include "FileHeader.h"
#include "Format.h"
#include "artifact_generated.h"

#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::runtime {
using detail::fail;
using detail::inBounds;

namespace {

std::string str(const flatbuffers::String *s) {
  return s ? s->str() : std::string();
}

template <typename T> std::vector<T> vec(const flatbuffers::Vector<T> *v) {
  return v ? std::vector<T>(v->begin(), v->end()) : std::vector<T>();
}

bool convertDType(fb::DType in, DType *out, const std::string &where,
                  std::string *error) {
  if (in > fb::DType::MAX)
    return fail(error, where, " has unknown dtype ", static_cast<int>(in));
  *out = static_cast<DType>(in);
  return true;
}

bool convertTensor(const fb::Tensor *in, TensorSpec *out,
                   const std::string &where, std::string *error) {
  if (!in)
    return fail(error, where, " is missing");
  out->name = str(in->name());
  out->shape = vec(in->shape());
  out->offset = in->offset();
  return convertDType(in->dtype(), &out->dtype, where, error);
}

bool convertEntry(const fb::Entry &in, EntrySpec *out, std::string *error) {
  out->name = str(in.name());
  out->symbol = str(in.symbol());
  out->image = str(in.image());
  out->batch = in.batch();
  out->seq = in.seq();
  out->ioSize = in.io_size();
  out->arenaSize = in.arena_size();
  std::string where = "entry '" + out->name + "' ";
  if (!convertTensor(in.tokens(), &out->tokens, where + "tokens tensor",
                     error) ||
      !convertTensor(in.positions(), &out->positions,
                     where + "positions tensor", error) ||
      !convertTensor(in.logits(), &out->logits, where + "logits tensor", error))
    return false;
  if (in.plan())
    for (const fb::Buffer *b : *in.plan())
      out->plan.push_back({str(b->name()), b->offset(), b->size()});
  if (in.argmax() &&
      !convertTensor(in.argmax(), &out->argmax, where + "argmax tensor", error))
    return false;
  if (in.sampling() && !convertTensor(in.sampling(), &out->sampling,
                                      where + "sampling tensor", error))
    return false;
  if (in.seeds() &&
      !convertTensor(in.seeds(), &out->seeds, where + "seeds tensor", error))
    return false;
  if (in.block_table() && !convertTensor(in.block_table(), &out->blockTable,
                                         where + "block_table tensor", error))
    return false;
  if (in.launches())
    for (const fb::Launch *l : *in.launches()) {
      LaunchSpec spec;
      spec.kernel = str(l->kernel());
      if (!l->grid() || l->grid()->size() != 3 || !l->block() ||
          l->block()->size() != 3)
        return fail(error, where, "launch of '", spec.kernel,
                    "' needs 3 grid and 3 block sizes");
      for (int i = 0; i < 3; ++i) {
        spec.grid[i] = l->grid()->Get(i);
        spec.block[i] = l->block()->Get(i);
      }
      spec.sharedBytes = l->shared_bytes();
      spec.waitsForPrevious = l->waits_for_previous();
      if (l->args())
        spec.args.assign(l->args()->begin(), l->args()->end());
      if (l->arg_offsets())
        spec.argOffsets.assign(l->arg_offsets()->begin(),
                               l->arg_offsets()->end());
      if (l->arg_bytes())
        spec.argBytes.assign(l->arg_bytes()->begin(), l->arg_bytes()->end());
      out->launches.push_back(std::move(spec));
    }
  return true;
}

/// Copies the verified FlatBuffer into plain structs (kernel image bytes stay
/// in the mapping).
bool convert(const fb::Artifact &in, ArtifactContents *out,
             std::string *error) {
  out->target = str(in.target());
  const fb::ModelInfo *m = in.model();
  if (!m)
    return fail(error, "metadata has no model info");
  out->model = {m->num_layers(),        m->hidden_size(),  m->num_heads(),
                m->num_kv_heads(),      m->head_dim(),     m->vocab_size(),
                m->intermediate_size(), m->rms_norm_eps(), m->tied_embeddings(),
                str(m->dtype())};
  const fb::KvCache *kv = in.kv_cache();
  if (!kv)
    return fail(error, "metadata has no KV-cache spec");
  KvCacheSpec &k = out->kvCache;
  k.numLayers = kv->num_layers();
  k.batch = kv->batch();
  k.numKvHeads = kv->num_kv_heads();
  k.maxSeqLen = kv->max_seq_len();
  k.headDim = kv->head_dim();
  k.kOffsets = vec(kv->k_offsets());
  k.vOffsets = vec(kv->v_offsets());
  k.kvBytes = kv->kv_bytes();
  k.blockSize = kv->block_size();
  k.numBlocks = kv->num_blocks();
  if (!convertDType(kv->dtype(), &k.dtype, "KV cache", error))
    return false;

  if (in.images())
    for (const fb::KernelImage *image : *in.images()) {
      KernelImage ki;
      ki.name = str(image->name());
      if (image->kind() > fb::ImageKind::MAX)
        return fail(error, "kernel image '", ki.name, "' has unknown kind ",
                    static_cast<int>(image->kind()));
      ki.kind = static_cast<ImageKind>(image->kind());
      if (image->bytes()) {
        ki.data = image->bytes()->data();
        ki.size = image->bytes()->size();
      }
      out->images.push_back(std::move(ki));
    }
  if (in.entries())
    for (const fb::Entry *entry : *in.entries()) {
      out->entries.emplace_back();
      if (!convertEntry(*entry, &out->entries.back(), error))
        return false;
    }
  if (in.weights())
    for (const fb::Weight *w : *in.weights()) {
      WeightInfo wi{str(w->name()), DType::F32, vec(w->shape()), w->offset(),
                    w->size()};
      if (!convertDType(w->dtype(), &wi.dtype, "weight '" + wi.name + "'",
                        error))
        return false;
      out->weights.push_back(std::move(wi));
    }
  out->tensorParallel = in.tensor_parallel() > 1 ? in.tensor_parallel() : 1;
  out->rankWeightsSize = in.rank_weights_size();
  out->weightsChunkSize = in.weights_chunk_size();
  out->weightsHashes = vec(in.weights_hashes());
  if (const fb::TokenizerFiles *t = in.tokenizer()) {
    out->tokenizer = {str(t->tokenizer_json()), str(t->tokenizer_config_json()),
                      str(t->generation_config_json())};
    if (out->tokenizer.empty())
      return fail(error, "metadata has a tokenizer without tokenizer.json");
  }
  return true;
}

/// Checks every chunk of the weights section against its XXH3-64 (chunks in
/// parallel); names the first damaged chunk.
bool verifyWeights(const uint8_t *base, uint64_t size,
                   const ArtifactContents &c, std::string *error) {
  if (c.weightsChunkSize == 0)
    return fail(error, "the artifact has no weights checksums (written by an "
                       "older kiln-compile): compile it again");
  uint64_t chunks = (size + c.weightsChunkSize - 1) / c.weightsChunkSize;
  if (c.weightsHashes.size() != chunks)
    return fail(error, "the artifact has ", c.weightsHashes.size(),
                " weights checksums for ", chunks, " chunks");
  std::vector<char> bad(chunks, 0);
  unsigned workers =
      std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(),
                                      static_cast<unsigned>(chunks)));
  std::atomic<uint64_t> next{0};
  auto work = [&]() {
    for (uint64_t i = next++; i < chunks; i = next++) {
      uint64_t begin = i * c.weightsChunkSize;
      uint64_t n = std::min(c.weightsChunkSize, size - begin);
      bad[i] = XXH3_64bits(base + begin, n) != c.weightsHashes[i];
    }
  };
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < workers; ++t)
    threads.emplace_back(work);
  work();
  for (std::thread &t : threads)
    t.join();
  for (uint64_t i = 0; i < chunks; ++i)
    if (bad[i]) {
      uint64_t begin = i * c.weightsChunkSize;
      return fail(error, "weights checksum mismatch in bytes [", begin, ", ",
                  std::min(size, begin + c.weightsChunkSize),
                  ") of the weights section: the file is damaged");
    }
  return true;
}

/// Checks the fixed header against the actual file size.
bool checkHeader(const detail::FileHeader &h, uint64_t actualSize,
                 std::string *error) {
  if (std::memcmp(h.magic, detail::kMagic, sizeof(h.magic)) != 0)
    return fail(error, "not a Kiln artifact (bad magic)");
  if (h.formatVersion != kFormatVersion &&
      h.formatVersion != kTensorParallelFormatVersion)
    return fail(error, "unsupported artifact format version ", h.formatVersion,
                " (this runtime supports versions ", kFormatVersion, " and ",
                kTensorParallelFormatVersion, ")");
  if (h.headerSize != kHeaderSize)
    return fail(error, "bad header size ", h.headerSize, " (expected ",
                kHeaderSize, ")");
  if (h.fileSize > actualSize)
    return fail(error, "truncated: header says ", h.fileSize,
                " bytes, file has ", actualSize);
  if (h.fileSize < actualSize)
    return fail(error, "trailing data: header says ", h.fileSize,
                " bytes, file has ", actualSize);
  if (h.metaOffset < kHeaderSize || h.metaOffset % 8 || h.metaSize == 0 ||
      !inBounds(h.metaOffset, h.metaSize, h.fileSize))
    return fail(error, "metadata section [offset ", h.metaOffset, ", size ",
                h.metaSize, "] is not inside the file (", h.fileSize,
                " bytes)");
  if (h.weightsOffset % kWeightsSectionAlignment ||
      h.weightsOffset < h.metaOffset + h.metaSize ||
      !inBounds(h.weightsOffset, h.weightsSize, h.fileSize))
    return fail(error, "weights section [offset ", h.weightsOffset, ", size ",
                h.weightsSize,
                "] is misplaced (must follow the metadata at a multiple of ",
                kWeightsSectionAlignment, " inside the file of ", h.fileSize,
                " bytes)");
  return true;
}

} // namespace

std::unique_ptr<Artifact> Artifact::open(const std::string &path,
                                         std::string *error) {
  return open(path, OpenOptions(), error);
}

std::unique_ptr<Artifact> Artifact::open(const std::string &path,
                                         const OpenOptions &options,
                                         std::string *error) {
  std::string why;
  auto failWith = [&](const std::string &message) {
    fail(error, path, ": ", message);
    return nullptr;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return failWith(std::string("cannot open: ") + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return failWith("not a regular file");
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < kHeaderSize) {
    ::close(fd);
    return failWith("not a Kiln artifact (" + std::to_string(size) +
                    " bytes, shorter than the " + std::to_string(kHeaderSize) +
                    "-byte header)");
  }
  void *mapping = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int mmapErrno = errno;
  ::close(fd);
  if (mapping == MAP_FAILED)
    return failWith(std::string("cannot map: ") + std::strerror(mmapErrno));

  std::unique_ptr<Artifact> artifact(new Artifact());
  artifact->filePath = path;
  artifact->mapping = mapping;
  artifact->mappedSize = size;
  const auto *bytes = static_cast<const uint8_t *>(mapping);

  detail::FileHeader header = detail::decodeHeader(bytes);
  if (!checkHeader(header, size, &why))
    return failWith(why);
  artifact->version = header.formatVersion;

  const uint8_t *meta = bytes + header.metaOffset;
  uint32_t crc = detail::crc32(meta, header.metaSize);
  if (crc != header.metaCrc32) {
    char detailText[64];
    std::snprintf(detailText, sizeof(detailText),
                  " (stored 0x%08x, computed 0x%08x)", header.metaCrc32, crc);
    return failWith(std::string("metadata checksum mismatch") + detailText);
  }
  flatbuffers::Verifier verifier(meta, header.metaSize, /*max_depth=*/64,
                                 /*max_tables=*/10000000);
  if (!fb::VerifyArtifactBuffer(verifier))
    return failWith("metadata is not a valid Kiln FlatBuffer");

  artifact->weightsBase = bytes + header.weightsOffset;
  artifact->weightsBytes = header.weightsSize;
  if (!convert(*fb::GetArtifact(meta), &artifact->data, &why))
    return failWith(why);
  // Tensor parallelism: one weight set per rank (format version 3 only).
  const ArtifactContents &c = artifact->data;
  const bool split = c.tensorParallel > 1;
  if (split != (header.formatVersion == kTensorParallelFormatVersion))
    return failWith("format version " + std::to_string(header.formatVersion) +
                    (split ? " cannot hold a tensor-parallel artifact"
                           : " is for tensor-parallel artifacts, but this one "
                             "has one rank"));
  if (c.tensorParallel > kMaxRanks)
    return failWith("tensor_parallel " + std::to_string(c.tensorParallel) +
                    " is more than " + std::to_string(kMaxRanks) + " ranks");
  if (split && (c.rankWeightsSize % kBufferAlignment ||
                c.rankWeightsSize * static_cast<uint64_t>(c.tensorParallel) !=
                    header.weightsSize))
    return failWith("the weights section (" +
                    std::to_string(header.weightsSize) + " bytes) is not " +
                    std::to_string(c.tensorParallel) + " aligned sets of " +
                    std::to_string(c.rankWeightsSize) + " bytes");
  if (!split && c.rankWeightsSize != 0)
    return failWith("rank_weights_size is set in an artifact of one rank");
  artifact->setBytes = split ? c.rankWeightsSize : header.weightsSize;
  if (!validateContents(artifact->data, artifact->setBytes, &why))
    return failWith(why);
  if (options.verifyWeights &&
      !verifyWeights(artifact->weightsBase, header.weightsSize, artifact->data,
                     &why))
    return failWith(why);
  return artifact;
}

Artifact::~Artifact() {
  if (mapping)
    munmap(mapping, mappedSize);
}

const EntrySpec *Artifact::findEntry(std::string_view name) const {
  for (const EntrySpec &entry : data.entries)
    if (entry.name == name)
      return &entry;
  return nullptr;
}

const KernelImage *Artifact::findImage(std::string_view name) const {
  for (const KernelImage &image : data.images)
    if (image.name == name)
      return &image;
  return nullptr;
}

} // namespace kiln::runtime
