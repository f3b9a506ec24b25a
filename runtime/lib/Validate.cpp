//===- Validate.cpp - Consistency checks of an artifact's contents -------===//
//
// Run by ArtifactWriter::write before anything is written and by
// Artifact::open after the FlatBuffer is verified, so the compiler and the
// runtime agree on what a well-formed artifact is.
//
//===----------------------------------------------------------------------===//

#include "Format.h"

#include "kiln/runtime/Target.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace kiln::runtime {
using detail::fail;
using detail::inBounds;
using detail::shapeString;

namespace {

struct Extent {
  std::string what;
  uint64_t offset;
  uint64_t size;
};

/// Fails when two non-empty extents overlap.
bool checkDisjoint(std::vector<Extent> extents, const char *space,
                   std::string *error) {
  std::sort(
      extents.begin(), extents.end(),
      [](const Extent &a, const Extent &b) { return a.offset < b.offset; });
  const Extent *previous = nullptr;
  for (const Extent &extent : extents) {
    if (extent.size == 0)
      continue;
    if (previous && extent.offset < previous->offset + previous->size)
      return fail(error, extent.what, " overlaps ", previous->what, " in the ",
                  space);
    previous = &extent;
  }
  return true;
}

bool isFloat(DType type) {
  return type == DType::F32 || type == DType::F16 || type == DType::BF16;
}

bool validateModel(const ModelInfo &m, std::string *error) {
  const std::pair<const char *, int64_t> dims[] = {
      {"num_layers", m.numLayers}, {"hidden_size", m.hiddenSize},
      {"num_heads", m.numHeads},   {"num_kv_heads", m.numKvHeads},
      {"head_dim", m.headDim},     {"vocab_size", m.vocabSize}};
  for (const auto &[name, value] : dims)
    if (value <= 0)
      return fail(error, "model ", name, " must be positive, got ", value);
  if (m.intermediateSize < 0)
    return fail(error, "model intermediate_size must not be negative, got ",
                m.intermediateSize);
  if (m.numHeads % m.numKvHeads != 0)
    return fail(error, "model num_heads ", m.numHeads,
                " is not a multiple of num_kv_heads ", m.numKvHeads);
  if (!std::isfinite(m.rmsNormEps) || m.rmsNormEps < 0)
    return fail(error, "model rms_norm_eps must be finite and >= 0, got ",
                m.rmsNormEps);
  return true;
}

bool validateKvCache(const KvCacheSpec &kv, const ModelInfo &m, int64_t ranks,
                     std::string *error) {
  // Split over ranks, each rank's cache holds its share of the KV heads.
  if (ranks < 1 || m.numKvHeads % ranks != 0)
    return fail(error, "the model's ", m.numKvHeads,
                " KV heads do not split over ", ranks, " ranks");
  if (kv.numLayers != m.numLayers || kv.numKvHeads != m.numKvHeads / ranks ||
      kv.headDim != m.headDim)
    return fail(error, "KV cache [layers ", kv.numLayers, ", kv_heads ",
                kv.numKvHeads, ", head_dim ", kv.headDim,
                "] does not match the model [", m.numLayers, ", ",
                m.numKvHeads / ranks, ", ", m.headDim, "]");
  if (kv.batch <= 0 || kv.maxSeqLen <= 0)
    return fail(error, "KV cache batch and max_seq_len must be positive, got ",
                kv.batch, " and ", kv.maxSeqLen);
  if (!isFloat(kv.dtype))
    return fail(error, "KV cache dtype ", dtypeName(kv.dtype),
                " is not supported (f32, f16 or bf16)");
  if (kv.kOffsets.size() != static_cast<size_t>(kv.numLayers) ||
      kv.vOffsets.size() != static_cast<size_t>(kv.numLayers))
    return fail(error, "KV cache has ", kv.kOffsets.size(), " K and ",
                kv.vOffsets.size(), " V offsets for ", kv.numLayers, " layers");
  if (kv.blockSize < 0 || kv.numBlocks < 0 ||
      (kv.blockSize > 0) != (kv.numBlocks > 0) ||
      (kv.paged() && (kv.maxSeqLen % kv.blockSize != 0 ||
                      kv.numBlocks > std::numeric_limits<int32_t>::max())))
    return fail(error, "paged KV cache block_size ", kv.blockSize,
                " and num_blocks ", kv.numBlocks,
                " must both be positive (or both 0), with max_seq_len ",
                kv.maxSeqLen,
                " a multiple of block_size and num_blocks an i32 block id");
  uint64_t block;
  if (!detail::tensorBytes({kv.paged() ? kv.numBlocks : kv.batch, kv.numKvHeads,
                            kv.paged() ? kv.blockSize : kv.maxSeqLen,
                            kv.headDim},
                           kv.dtype, &block))
    return fail(error, "KV cache block size overflows");
  std::vector<Extent> extents;
  for (int64_t layer = 0; layer < kv.numLayers; ++layer) {
    for (int which = 0; which < 2; ++which) {
      uint64_t offset = which ? kv.vOffsets[layer] : kv.kOffsets[layer];
      std::string what = std::string(which ? "V" : "K") + " block of layer " +
                         std::to_string(layer);
      if (offset % kBufferAlignment)
        return fail(error, "KV cache ", what, " offset ", offset,
                    " is not a multiple of ", kBufferAlignment);
      if (!inBounds(offset, block, kv.kvBytes))
        return fail(error, "KV cache ", what, " [offset ", offset, ", size ",
                    block, "] lies outside kv_bytes ", kv.kvBytes);
      extents.push_back({what, offset, block});
    }
  }
  return checkDisjoint(std::move(extents), "KV buffer", error);
}

bool validateImages(const std::vector<KernelImage> &images,
                    std::string *error) {
  if (images.empty())
    return fail(error, "artifact has no kernel images");
  std::set<std::string> names;
  for (const KernelImage &image : images) {
    if (image.name.empty())
      return fail(error, "kernel image with an empty name");
    if (!names.insert(image.name).second)
      return fail(error, "duplicate kernel image '", image.name, "'");
    if (image.size == 0 || !image.data)
      return fail(error, "kernel image '", image.name, "' is empty");
  }
  return true;
}

/// A GPU target is sm_XY[a|f] and has PTX or a cubin to load.
bool validateTargetImages(const ArtifactContents &c, std::string *error) {
  if (!isNvidiaTargetName(c.target))
    return true;
  GpuArch arch;
  if (!parseGpuTarget(c.target, &arch))
    return fail(error, "GPU target '", c.target,
                "' is not sm_<version>[a|f] (e.g. sm_80, sm_90a)");
  for (const KernelImage &image : c.images)
    if (image.kind == ImageKind::Ptx || image.kind == ImageKind::Cubin)
      return true;
  return fail(error, "GPU target '", c.target,
              "' has no Ptx or Cubin kernel image");
}

bool validateIoTensor(const EntrySpec &entry, const TensorSpec &tensor,
                      const char *role, const std::vector<int64_t> &shape,
                      std::string *error) {
  std::string where = "entry '" + entry.name + "' " + role + " tensor";
  const std::string r = role;
  bool dtypeOk = r == "logits"        ? isFloat(tensor.dtype)
                 : r == "sampling"    ? tensor.dtype == DType::F32
                 : r == "block_table" ? tensor.dtype == DType::I32
                                      : tensor.dtype == DType::I64;
  if (!dtypeOk)
    return fail(error, where, " has dtype ", dtypeName(tensor.dtype),
                r == "logits"        ? ", expected f32, f16 or bf16"
                : r == "sampling"    ? ", expected f32"
                : r == "block_table" ? ", expected i32"
                                     : ", expected i64");
  if (tensor.shape != shape)
    return fail(error, where, " has shape ", shapeString(tensor.shape),
                ", expected ", shapeString(shape));
  uint64_t bytes;
  if (!detail::tensorBytes(tensor.shape, tensor.dtype, &bytes))
    return fail(error, where, " size overflows");
  if (tensor.offset % kBufferAlignment)
    return fail(error, where, " offset ", tensor.offset,
                " is not a multiple of ", kBufferAlignment);
  if (!inBounds(tensor.offset, bytes, entry.ioSize))
    return fail(error, where, " [offset ", tensor.offset, ", size ", bytes,
                "] lies outside io_size ", entry.ioSize);
  return true;
}

/// GPU targets: every entry has a schedule of launches, each naming its
/// kernel, with a grid and block within CUDA's limits and kernel parameters
/// that are buffer ids. Other targets have no schedules.
bool validateSchedule(const ArtifactContents &c, const EntrySpec &e,
                      uint64_t weightsSize, std::string *error) {
  if (!isNvidiaTargetName(c.target)) {
    if (!e.launches.empty())
      return fail(error, "entry '", e.name, "' of target '", c.target,
                  "' has a launch schedule (only GPU targets launch kernels)");
    return true;
  }
  if (e.launches.empty())
    return fail(error, "entry '", e.name, "' of GPU target '", c.target,
                "' has no launch schedule");
  for (size_t i = 0; i < e.launches.size(); ++i) {
    const LaunchSpec &l = e.launches[i];
    if (l.kernel.empty())
      return fail(error, "entry '", e.name, "' launch ", i,
                  " has no kernel name");
    std::string where = "entry '" + e.name + "' launch " + std::to_string(i) +
                        " ('" + l.kernel + "')";
    uint64_t threads = uint64_t(l.block[0]) * l.block[1] * l.block[2];
    if (threads == 0 || threads > 1024 || l.block[2] > 64)
      return fail(error, where, " has a block of [", l.block[0], ", ",
                  l.block[1], ", ", l.block[2], "] = ", threads,
                  " threads (1 to 1024, z at most 64)");
    if (!l.grid[0] || !l.grid[1] || !l.grid[2] || l.grid[0] > 0x7FFFFFFFu ||
        l.grid[1] > 65535 || l.grid[2] > 65535)
      return fail(error, where, " has a grid of [", l.grid[0], ", ", l.grid[1],
                  ", ", l.grid[2], "] (x 1 to 2^31-1, y and z 1 to 65535)");
    for (uint8_t arg : l.args)
      if (arg > 3)
        return fail(error, where, " takes buffer id ", int(arg),
                    " (0 weights, 1 kv, 2 arena, 3 io)");
    if ((!l.argOffsets.empty() && l.argOffsets.size() != l.args.size()) ||
        (!l.argBytes.empty() && l.argBytes.size() != l.args.size()))
      return fail(error, where, " has ", l.args.size(), " arguments but ",
                  l.argOffsets.size(), " offsets and ", l.argBytes.size(),
                  " sizes");
    const uint64_t sizes[4] = {weightsSize, c.kvCache.kvBytes, e.arenaSize,
                               e.ioSize};
    static const char *const names[4] = {"weights", "kv", "arena", "io"};
    for (size_t a = 0; a < l.argOffsets.size(); ++a) {
      uint64_t offset = l.argOffsets[a];
      uint64_t bytes = l.argBytes.empty() ? 0 : l.argBytes[a];
      if (!inBounds(offset, bytes, sizes[l.args[a]]))
        return fail(error, where, " argument ", a, " [offset ", offset,
                    ", size ", bytes, "] lies outside the ", names[l.args[a]],
                    " buffer of ", sizes[l.args[a]], " bytes");
    }
  }
  return true;
}

bool validateEntries(const ArtifactContents &c, uint64_t weightsSize,
                     std::string *error) {
  if (c.entries.empty())
    return fail(error, "artifact has no entry points");
  std::set<std::string> names;
  for (const EntrySpec &e : c.entries) {
    if (e.name.empty())
      return fail(error, "entry point with an empty name");
    if (!names.insert(e.name).second)
      return fail(error, "duplicate entry point '", e.name, "'");
    if (e.symbol.empty())
      return fail(error, "entry '", e.name, "' has no symbol");
    if (!e.image.empty() &&
        std::none_of(c.images.begin(), c.images.end(),
                     [&](const KernelImage &i) { return i.name == e.image; }))
      return fail(error, "entry '", e.name, "' names kernel image '", e.image,
                  "', which the artifact does not contain");
    // @decode_b<N>: a decode entry over the cache's first N rows.
    const bool fewer = e.name.rfind("decode_b", 0) == 0;
    if (fewer ? e.batch < 1 || e.batch >= c.kvCache.batch
              : e.batch != c.kvCache.batch)
      return fail(error, "entry '", e.name, "' batch ", e.batch,
                  fewer ? " is not below the KV cache batch "
                        : " does not match the KV cache batch ",
                  c.kvCache.batch);
    if (e.seq <= 0 || e.seq > c.kvCache.maxSeqLen)
      return fail(error, "entry '", e.name, "' seq ", e.seq,
                  " is outside [1, max_seq_len ", c.kvCache.maxSeqLen, "]");
    if (!validateIoTensor(e, e.tokens, "tokens", {e.batch, e.seq}, error) ||
        !validateIoTensor(e, e.positions, "positions", {e.batch, e.seq},
                          error) ||
        !validateIoTensor(e, e.logits, "logits",
                          {e.batch, e.logitRows(), c.model.vocabSize}, error))
      return false;
    std::vector<Extent> ioExtents = {
        {"tokens", e.tokens.offset, e.tokens.byteSize()},
        {"positions", e.positions.offset, e.positions.byteSize()},
        {"logits", e.logits.offset, e.logits.byteSize()}};
    if (!e.argmax.name.empty()) {
      if (!validateIoTensor(e, e.argmax, "argmax", {e.batch, e.logitRows()},
                            error))
        return false;
      ioExtents.push_back({"argmax", e.argmax.offset, e.argmax.byteSize()});
    }
    if (e.sampling.name.empty() != e.seeds.name.empty() ||
        (!e.sampling.name.empty() && e.argmax.name.empty()))
      return fail(error, "entry '", e.name,
                  "' must have the sampling and seeds tensors together, and "
                  "an argmax tensor with them");
    if (!e.sampling.name.empty()) {
      if (!validateIoTensor(e, e.sampling, "sampling", {e.batch, 4}, error) ||
          !validateIoTensor(e, e.seeds, "seeds", {e.batch}, error))
        return false;
      ioExtents.push_back(
          {"sampling", e.sampling.offset, e.sampling.byteSize()});
      ioExtents.push_back({"seeds", e.seeds.offset, e.seeds.byteSize()});
    }
    if (e.blockTable.name.empty() == c.kvCache.paged())
      return fail(error, "entry '", e.name, "' ",
                  c.kvCache.paged() ? "has no block_table tensor for the "
                                      "paged KV cache"
                                    : "has a block_table tensor but the KV "
                                      "cache is not paged");
    if (c.kvCache.paged()) {
      if (!validateIoTensor(e, e.blockTable, "block_table",
                            {e.batch, c.kvCache.maxBlocks()}, error))
        return false;
      ioExtents.push_back(
          {"block_table", e.blockTable.offset, e.blockTable.byteSize()});
    }
    if (!checkDisjoint(ioExtents,
                       ("io buffer of entry '" + e.name + "'").c_str(), error))
      return false;
    if (!validateSchedule(c, e, weightsSize, error))
      return false;
    for (const BufferSpec &b : e.plan)
      if (!inBounds(b.offset, b.size, e.arenaSize))
        return fail(error, "entry '", e.name, "' plan buffer '", b.name,
                    "' [offset ", b.offset, ", size ", b.size,
                    "] lies outside arena_size ", e.arenaSize);
  }
  return true;
}

bool validateWeights(const std::vector<WeightInfo> &weights,
                     uint64_t weightsSize, std::string *error) {
  std::set<std::string> names;
  std::vector<Extent> extents;
  for (const WeightInfo &w : weights) {
    if (w.name.empty())
      return fail(error, "weight with an empty name");
    if (!names.insert(w.name).second)
      return fail(error, "duplicate weight '", w.name, "'");
    uint64_t bytes;
    if (!detail::tensorBytes(w.shape, w.dtype, &bytes))
      return fail(error, "weight '", w.name, "' has invalid shape ",
                  shapeString(w.shape));
    if (bytes != w.size)
      return fail(error, "weight '", w.name, "' is ", w.size, " bytes, but ",
                  dtypeName(w.dtype), " ", shapeString(w.shape), " needs ",
                  bytes);
    if (w.offset % kBufferAlignment)
      return fail(error, "weight '", w.name, "' offset ", w.offset,
                  " is not a multiple of ", kBufferAlignment);
    if (!inBounds(w.offset, w.size, weightsSize))
      return fail(error, "weight '", w.name, "' [offset ", w.offset, ", size ",
                  w.size, "] lies outside the weights section (", weightsSize,
                  " bytes)");
    extents.push_back({"weight '" + w.name + "'", w.offset, w.size});
  }
  return checkDisjoint(std::move(extents), "weights section", error);
}

} // namespace

bool validateContents(const ArtifactContents &contents, uint64_t weightsSize,
                      std::string *error) {
  if (contents.target.empty())
    return fail(error, "artifact has no target");
  return validateModel(contents.model, error) &&
         validateKvCache(contents.kvCache, contents.model,
                         contents.tensorParallel, error) &&
         validateImages(contents.images, error) &&
         validateTargetImages(contents, error) &&
         validateEntries(contents, weightsSize, error) &&
         validateWeights(contents.weights, weightsSize, error);
}

} // namespace kiln::runtime
