//===- Session.cpp - Runs prefill and decode on a loaded artifact --------===//

#include "kiln/runtime/Session.h"

#include "Executor.h"
#include "Format.h"

#include "kiln/runtime/Numeric.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace kiln::runtime {
using detail::fail;

namespace {

void *allocateAligned(uint64_t size) {
  size = detail::alignUp(std::max<uint64_t>(size, 1), kBufferAlignment);
  void *p = std::aligned_alloc(kBufferAlignment, size);
  if (p)
    std::memset(p, 0, size);
  return p;
}

/// " (row N)" for the batched calls' messages; built only on failure.
std::string rowTag(bool batched, int64_t row) {
  return batched ? " (row " + std::to_string(row) + ")" : "";
}

int64_t *ioTensor(void *io, const TensorSpec &t) {
  return reinterpret_cast<int64_t *>(static_cast<uint8_t *>(io) + t.offset);
}

} // namespace

std::unique_ptr<Session> Session::create(std::shared_ptr<const Artifact> model,
                                         std::string *error) {
  if (!model) {
    fail(error, "no artifact");
    return nullptr;
  }
  std::unique_ptr<Session> s(new Session());
  s->model = model;
  const std::vector<EntrySpec> &entries = model->entries();
  int prefill = -1, decode = -1, prefillAll = -1;
  uint64_t ioSize = 0, arenaSize = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].name == "prefill")
      prefill = static_cast<int>(i);
    if (entries[i].name == "prefill_all")
      prefillAll = static_cast<int>(i);
    if (entries[i].name == "decode")
      decode = static_cast<int>(i);
    if (entries[i].name.rfind("decode_b", 0) == 0)
      s->smallerDecodes.push_back(i);
    ioSize = std::max(ioSize, entries[i].ioSize);
    arenaSize = std::max(arenaSize, entries[i].arenaSize);
  }
  if (prefill < 0 && decode < 0) {
    fail(error, "artifact has no 'prefill' or 'decode' entry point");
    return nullptr;
  }
  s->prefillIndex = prefill >= 0 ? prefill : decode;
  s->decodeIndex = decode >= 0 ? decode : prefill;
  std::sort(
      s->smallerDecodes.begin(), s->smallerDecodes.end(),
      [&](size_t a, size_t b) { return entries[a].batch < entries[b].batch; });
  if (decode < 0)
    s->smallerDecodes.clear();
  const EntrySpec &first = entries[s->prefillIndex];
  s->allRowsIndex = prefillAll >= 0 ? prefillAll
                    : first.logitRows() == first.seq
                        ? static_cast<int64_t>(s->prefillIndex)
                        : -1;

  s->executor = createExecutor(*model, error);
  if (!s->executor)
    return nullptr;

  const KvCacheSpec &kv = model->kvCache();
  s->kv = allocateAligned(kv.kvBytes);
  s->arena = allocateAligned(s->executor->usesHostArena() ? arenaSize : 0);
  s->io = allocateAligned(ioSize);
  if (!s->kv || !s->arena || !s->io) {
    fail(error, "cannot allocate the KV cache (", kv.kvBytes,
         " bytes), arena (", arenaSize, " bytes) and io buffer (", ioSize,
         " bytes)");
    return nullptr;
  }
  if (!s->executor->attachHostIo(s->io, ioSize, error))
    return nullptr;
  int64_t batch = kv.batch, vocab = model->model().vocabSize;
  s->lastLogits.resize(batch * vocab);
  s->rowLogits.assign(batch, nullptr);
  s->rowArgmax.assign(batch, -1);
  s->rowSampling.assign(batch * 4, 0.0f);
  s->rowSeed.assign(batch, 0);
  s->rowDraws.assign(batch, 0);
  for (int64_t row = 0; row < batch; ++row)
    s->setSampling(row, SamplerOptions());
  s->observerScratch.resize(vocab);
  s->rowTokens.assign(batch, nullptr);
  s->rowLengths.assign(batch, 0);
  s->rowStarts.assign(batch, 0);
  s->stepTokens.assign(batch, 0);
  s->stepPositions.assign(batch, -1);
  s->rowBlocks.assign(batch, {});
  if (kv.paged())
    for (int64_t b = kv.numBlocks - 1; b >= 0; --b)
      s->freeBlocks.push_back(static_cast<int32_t>(b));
  return s;
}

std::unique_ptr<Session> Session::open(const std::string &path,
                                       std::string *error) {
  std::shared_ptr<const Artifact> artifact = Artifact::open(path, error);
  if (!artifact)
    return nullptr;
  return create(std::move(artifact), error);
}

Session::~Session() {
  executor.reset(); // unload kernels before their buffers go
  std::free(kv);
  std::free(arena);
  std::free(io);
}

int64_t Session::batch() const { return model->kvCache().batch; }
int64_t Session::vocabSize() const { return model->model().vocabSize; }
int64_t Session::maxSeqLen() const { return model->kvCache().maxSeqLen; }
int64_t Session::prefillChunk() const {
  return model->entries()[prefillIndex].seq;
}
uint64_t Session::kvBytes() const { return model->kvCache().kvBytes; }

const float *Session::logits(int64_t row) const {
  return row >= 0 && row < batch() ? rowLogits[row] : nullptr;
}

bool Session::hasArgmax() const {
  const std::vector<EntrySpec> &entries = model->entries();
  return !entries[prefillIndex].argmax.name.empty() &&
         !entries[decodeIndex].argmax.name.empty();
}

bool Session::samplesOnDevice() const {
  const std::vector<EntrySpec> &entries = model->entries();
  return entries[prefillIndex].samplesOnDevice() &&
         entries[decodeIndex].samplesOnDevice();
}

void Session::setSampling(int64_t row, const SamplerOptions &o,
                          uint64_t draws) {
  setSampling(row, o);
  if (row >= 0 && row < batch())
    rowDraws[row] = draws;
}

int64_t Session::rowKvBlocks(int64_t row) const {
  return row >= 0 && row < batch() ? static_cast<int64_t>(rowBlocks[row].size())
                                   : 0;
}

int64_t Session::kvBlocksFor(int64_t positions) const {
  const int64_t size = kvBlockSize();
  return size > 0 ? (std::max<int64_t>(positions, 0) + size - 1) / size : 0;
}

void Session::releaseRow(int64_t row) {
  if (row < 0 || row >= batch())
    return;
  std::vector<int32_t> &blocks = rowBlocks[row];
  // Back in reverse so that the next row takes them in the same order.
  freeBlocks.insert(freeBlocks.end(), blocks.rbegin(), blocks.rend());
  blocks.clear();
}

bool Session::reserveBlocks(int64_t row, int64_t end, std::string *error) {
  if (!paged())
    return true;
  std::vector<int32_t> &blocks = rowBlocks[row];
  const int64_t need = kvBlocksFor(end) - static_cast<int64_t>(blocks.size());
  if (need <= 0)
    return true;
  if (need > freeKvBlocks())
    return fail(error, "row ", row, " needs ", need, " more KV blocks of ",
                kvBlockSize(), " positions for positions up to ", end - 1,
                " but the paged KV cache has ", freeKvBlocks(), " free of ",
                kvBlocks(), " (kiln-compile --kv-blocks)");
  for (int64_t i = 0; i < need; ++i) {
    blocks.push_back(freeBlocks.back());
    freeBlocks.pop_back();
  }
  return true;
}

void Session::writeBlockTable(const EntrySpec &entry) {
  if (entry.blockTable.name.empty())
    return;
  auto *table = reinterpret_cast<int32_t *>(static_cast<uint8_t *>(io) +
                                            entry.blockTable.offset);
  const int64_t width = entry.blockTable.shape[1];
  for (int64_t row = 0; row < entry.batch; ++row) {
    const std::vector<int32_t> &blocks = rowBlocks[row];
    for (int64_t j = 0; j < width; ++j)
      table[row * width + j] =
          j < static_cast<int64_t>(blocks.size()) ? blocks[j] : -1;
  }
}

void Session::setSampling(int64_t row, const SamplerOptions &o) {
  if (row < 0 || row >= batch())
    return;
  float *p = &rowSampling[row * 4];
  p[0] = o.temperature;
  p[1] = static_cast<float>(o.topK);
  p[2] = o.topP;
  p[3] = o.minP;
  rowSeed[row] = o.seed;
  rowDraws[row] = 0;
}

void Session::writeSampling(const EntrySpec &entry,
                            const std::function<bool(int64_t)> &draws) {
  if (!entry.samplesOnDevice())
    return;
  // The entry's rows (a @decode_b<N> entry has the first N).
  const size_t rows =
      std::min(rowSeed.size(), static_cast<size_t>(entry.batch));
  auto *params = reinterpret_cast<float *>(static_cast<uint8_t *>(io) +
                                           entry.sampling.offset);
  std::copy(rowSampling.begin(), rowSampling.begin() + 4 * rows, params);
  auto *keys = reinterpret_cast<uint64_t *>(static_cast<uint8_t *>(io) +
                                            entry.seeds.offset);
  for (size_t row = 0; row < rows; ++row) {
    // splitmix64 of seed + draw: distinct, well-mixed keys per draw.
    const uint64_t draw =
        draws(static_cast<int64_t>(row)) ? ++rowDraws[row] : rowDraws[row] + 1;
    uint64_t z = rowSeed[row] + draw * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    keys[row] = z ^ (z >> 31);
  }
}

int64_t Session::argmax(int64_t row) const {
  return row >= 0 && row < batch() ? rowArgmax[row] : -1;
}

bool Session::takeArgmax(const EntrySpec &entry, int64_t row, int64_t slot,
                         std::string *error) {
  if (entry.argmax.name.empty())
    return true;
  int64_t value = ioTensor(io, entry.argmax)[slot];
  if (value < 0 || value >= vocabSize())
    return fail(error, "entry '", entry.name, "' returned argmax ", value,
                rowTag(batchedCall, row), ", outside the vocabulary [0, ",
                vocabSize(), ")");
  rowArgmax[row] = value;
  return true;
}

void Session::setLogitsObserver(LogitsObserver fn) { observer = std::move(fn); }

bool Session::clearKvCache(std::string *error) {
  std::memset(kv, 0, kvBytes());
  return executor->kvCleared(kv, error);
}

std::string Session::device() const { return executor->device(); }

double Session::collectiveSeconds() const {
  return executor->collectiveSeconds();
}

bool Session::measureCopyBandwidth(uint64_t bytes, int repeats,
                                   double *bytesPerSecond, std::string *error) {
  return executor->measureCopyBandwidth(bytes, repeats, bytesPerSecond, error);
}

void Session::collectLogits(const EntrySpec &entry, int64_t row, int64_t slot,
                            int64_t position, Keep keep) {
  if (!observer && keep == Keep::None)
    return;
  int64_t vocab = vocabSize();
  const uint8_t *src = static_cast<const uint8_t *>(io) + entry.logits.offset +
                       slot * vocab * dtypeSize(entry.logits.dtype);
  const float *values = reinterpret_cast<const float *>(src);
  float *kept = &lastLogits[row * vocab];
  if (entry.logits.dtype != DType::F32 || keep == Keep::Copy) {
    float *dst = keep == Keep::None ? observerScratch.data() : kept;
    convertToFloat(src, entry.logits.dtype, vocab, dst);
    values = dst;
  }
  if (keep != Keep::None)
    rowLogits[row] = values;
  if (observer)
    observer(row, position, values);
}

bool Session::prefill(const std::vector<int64_t> &tokens, int64_t startPos,
                      std::string *error) {
  std::fill(rowLengths.begin(), rowLengths.end(), 0);
  rowTokens[0] = tokens.data();
  rowLengths[0] = static_cast<int64_t>(tokens.size());
  rowStarts[0] = startPos;
  batchedCall = false;
  return prefillRows(error);
}

bool Session::prefillBatch(const std::vector<std::vector<int64_t>> &prompts,
                           const std::vector<int64_t> &startPos,
                           std::string *error) {
  if (prompts.size() != rowLengths.size() ||
      startPos.size() != rowLengths.size())
    return fail(error,
                "prefillBatch needs one prompt and start position per "
                "batch row (",
                rowLengths.size(), "), got ", prompts.size(), " and ",
                startPos.size());
  for (size_t row = 0; row < prompts.size(); ++row) {
    rowTokens[row] = prompts[row].data();
    rowLengths[row] = static_cast<int64_t>(prompts[row].size());
    rowStarts[row] = startPos[row];
  }
  batchedCall = true;
  return prefillRows(error);
}

bool Session::prefillRows(std::string *error) {
  const int64_t batch = this->batch(), vocab = vocabSize(),
                context = maxSeqLen();
  int64_t longest = 0;
  for (int64_t row = 0; row < batch; ++row) {
    int64_t length = rowLengths[row], start = rowStarts[row];
    if (length == 0)
      continue;
    if (start < 0)
      return fail(error, "start position ", start, rowTag(batchedCall, row),
                  " is negative");
    if (length > context || start > context - length)
      return fail(error, "prompt of ", length, " tokens starting at position ",
                  start, rowTag(batchedCall, row),
                  " does not fit the context of ", context, " tokens");
    for (int64_t i = 0; i < length; ++i) {
      int64_t token = rowTokens[row][i];
      if (token < 0 || token >= vocab)
        return fail(error, "token id ", token, " at prompt index ", i,
                    rowTag(batchedCall, row), " is outside the vocabulary [0, ",
                    vocab, ")");
    }
    longest = std::max(longest, length);
  }
  if (longest == 0)
    return fail(error, "empty prompt");
  for (int64_t row = 0; row < batch; ++row)
    if (rowLengths[row] > 0 &&
        !reserveBlocks(row, rowStarts[row] + rowLengths[row], error))
      return false;

  // A logits observer (perplexity, dumps) needs every row's logits: the
  // entry computing them all. Otherwise the one computing the last row of
  // a chunk when there is one; each sequence is then right-aligned in its
  // chunks (padding first), so that its last token is that row.
  if (observer && allRowsIndex < 0)
    return fail(error,
                "this artifact computes the logits of each prompt's last "
                "token only (kiln-compile --prefill-logits=last); every "
                "position's logits (--perplexity, --dump-logits) need "
                "--prefill-logits=both or all");
  const size_t entryIndex =
      observer ? static_cast<size_t>(allRowsIndex) : prefillIndex;
  const EntrySpec &entry = model->entries()[entryIndex];
  const int64_t seq = entry.seq, rows = entry.logitRows();
  const bool lastRowOnly = rows != seq;
  const int64_t chunks = (longest + seq - 1) / seq;
  int64_t *tokens = ioTensor(io, entry.tokens);
  int64_t *positions = ioTensor(io, entry.positions);
  std::fill(rowLogits.begin(), rowLogits.end(), nullptr);
  std::fill(rowArgmax.begin(), rowArgmax.end(), -1);
  const bool wantLogits = logitsWanted();
  // Where row r's prompt starts in its stream of chunks.
  auto lead = [&](int64_t row) {
    return lastRowOnly ? chunks * seq - rowLengths[row] : int64_t(0);
  };
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    for (int64_t row = 0; row < batch; ++row)
      for (int64_t i = 0; i < seq; ++i) {
        int64_t index = chunk * seq + i - lead(row);
        bool real =
            rowLengths[row] > 0 && index >= 0 && index < rowLengths[row];
        tokens[row * seq + i] = real ? rowTokens[row][index] : 0;
        positions[row * seq + i] = real ? rowStarts[row] + index : -1;
      }
    // The logits slots of the rows whose last token is in this chunk.
    int64_t first = -1, last = -1;
    for (int64_t row = 0; row < batch; ++row) {
      int64_t end = lead(row) + rowLengths[row] - 1;
      if (rowLengths[row] == 0 || end / seq != chunk)
        continue;
      int64_t slot = row * rows + (lastRowOnly ? 0 : end % seq);
      first = first < 0 ? slot : first;
      last = slot;
    }
    Readback readback;
    SlotRange lastTokens{first, first < 0 ? 0 : last - first + 1};
    if (observer)
      readback.logits = {0, batch * rows};
    else if (wantLogits)
      readback.logits = lastTokens;
    if (!entry.argmax.name.empty())
      readback.argmax = lastTokens;
    // The rows that draw in this chunk: those whose last token is in it.
    writeSampling(entry, [&](int64_t row) {
      return rowLengths[row] > 0 &&
             (lead(row) + rowLengths[row] - 1) / seq == chunk;
    });
    writeBlockTable(entry);
    if (!executor->run(entryIndex, model->weightsData(), kv, arena, io,
                       readback, error))
      return false;
    for (int64_t row = 0; row < batch; ++row) {
      if (rowLengths[row] == 0)
        continue;
      if (lastRowOnly) {
        if (chunk != chunks - 1)
          continue;
        int64_t index = rowLengths[row] - 1;
        if (!takeArgmax(entry, row, row, error))
          return false;
        collectLogits(entry, row, row, rowStarts[row] + index,
                      wantLogits ? Keep::Copy : Keep::None);
        continue;
      }
      for (int64_t i = 0; i < seq; ++i) {
        int64_t index = chunk * seq + i;
        if (index >= rowLengths[row])
          break;
        bool lastToken = index == rowLengths[row] - 1;
        if (lastToken && !takeArgmax(entry, row, row * seq + i, error))
          return false;
        collectLogits(entry, row, row * seq + i, rowStarts[row] + index,
                      lastToken && wantLogits ? Keep::Copy : Keep::None);
      }
    }
  }
  return true;
}

bool Session::decode(int64_t token, int64_t position, std::string *error) {
  std::fill(stepPositions.begin(), stepPositions.end(), -1);
  stepTokens[0] = token;
  stepPositions[0] = position;
  if (position < 0)
    return fail(error, "position ", position, " is negative");
  batchedCall = false;
  return decodeRows(error);
}

bool Session::decodeBatch(const std::vector<int64_t> &tokens,
                          const std::vector<int64_t> &positions,
                          std::string *error) {
  if (tokens.size() != stepTokens.size() ||
      positions.size() != stepTokens.size())
    return fail(error,
                "decodeBatch needs one token and position per batch "
                "row (",
                stepTokens.size(), "), got ", tokens.size(), " and ",
                positions.size());
  std::copy(tokens.begin(), tokens.end(), stepTokens.begin());
  std::copy(positions.begin(), positions.end(), stepPositions.begin());
  batchedCall = true;
  return decodeRows(error);
}

bool Session::decodeRows(std::string *error) {
  const int64_t batch = this->batch(), vocab = vocabSize(),
                context = maxSeqLen();
  for (int64_t row = 0; row < batch; ++row) {
    int64_t token = stepTokens[row], position = stepPositions[row];
    if (position == -1)
      continue;
    if (position < 0 || position >= context)
      return fail(error, "position ", position, rowTag(batchedCall, row),
                  " is outside the context of ", context, " tokens");
    if (token < 0 || token >= vocab)
      return fail(error, "token id ", token, rowTag(batchedCall, row),
                  " is outside the vocabulary [0, ", vocab, ")");
  }
  for (int64_t row = 0; row < batch; ++row)
    if (stepPositions[row] >= 0 &&
        !reserveBlocks(row, stepPositions[row] + 1, error))
      return false;

  // The smallest decode entry whose rows hold every sequence of the call:
  // @decode_b<N> when the last one is below row N, else @decode.
  int64_t used = 0;
  for (int64_t row = 0; row < batch; ++row)
    if (stepPositions[row] >= 0)
      used = row + 1;
  size_t index = decodeIndex;
  for (size_t candidate : smallerDecodes)
    if (model->entries()[candidate].batch >= used) {
      index = candidate;
      break;
    }
  const EntrySpec &entry = model->entries()[index];
  const int64_t seq = entry.seq;
  int64_t *tokens = ioTensor(io, entry.tokens);
  int64_t *positions = ioTensor(io, entry.positions);
  for (int64_t row = 0; row < entry.batch; ++row)
    for (int64_t i = 0; i < seq; ++i) {
      bool real = i == 0 && stepPositions[row] >= 0;
      tokens[row * seq + i] = real ? stepTokens[row] : 0;
      positions[row * seq + i] = real ? stepPositions[row] : -1;
    }
  int64_t first = -1, last = -1;
  for (int64_t row = 0; row < batch; ++row)
    if (stepPositions[row] >= 0) {
      first = first < 0 ? row * seq : first;
      last = row * seq;
    }
  const bool wantLogits = logitsWanted();
  Readback readback;
  SlotRange active{first, first < 0 ? 0 : last - first + 1};
  if (observer || wantLogits)
    readback.logits = active;
  if (!entry.argmax.name.empty())
    readback.argmax = active;
  writeSampling(entry, [&](int64_t row) { return stepPositions[row] >= 0; });
  writeBlockTable(entry);
  if (!executor->run(index, model->weightsData(), kv, arena, io, readback,
                     error))
    return false;
  lastDecodeBatch = entry.batch;
  for (int64_t row = 0; row < batch; ++row) {
    rowLogits[row] = nullptr;
    rowArgmax[row] = -1;
    if (stepPositions[row] < 0)
      continue;
    if (!takeArgmax(entry, row, row * seq, error))
      return false;
    collectLogits(entry, row, row * seq, stepPositions[row],
                  wantLogits ? Keep::Reference : Keep::None);
  }
  return true;
}

bool Session::loadKvCache(const float *past, int64_t pastLen,
                          std::string *error) {
  const KvCacheSpec &spec = model->kvCache();
  if (pastLen < 0 || pastLen > spec.maxSeqLen)
    return fail(error, "past length ", pastLen, " is outside the context of ",
                spec.maxSeqLen, " tokens");
  const size_t elementSize = dtypeSize(spec.dtype);
  if (spec.paged()) {
    // Through each row's blocks: [block, head, slot, :].
    for (int64_t row = 0; row < spec.batch; ++row)
      if (!reserveBlocks(row, pastLen, error))
        return false;
    const int64_t heads = spec.numKvHeads, d = spec.headDim;
    for (int64_t layer = 0; layer < spec.numLayers; ++layer)
      for (int which = 0; which < 2; ++which) {
        uint64_t offset = which ? spec.vOffsets[layer] : spec.kOffsets[layer];
        const float *src =
            past + (2 * layer + which) * spec.batch * heads * pastLen * d;
        uint8_t *pool = static_cast<uint8_t *>(kv) + offset;
        for (int64_t row = 0; row < spec.batch; ++row)
          for (int64_t h = 0; h < heads; ++h)
            for (int64_t p = 0; p < pastLen; ++p) {
              int64_t block = rowBlocks[row][p / spec.blockSize];
              int64_t slot = p % spec.blockSize;
              convertFromFloat(
                  src + ((row * heads + h) * pastLen + p) * d, spec.dtype, d,
                  pool + (((block * heads + h) * spec.blockSize + slot) * d) *
                             elementSize);
            }
      }
    return executor->kvUpdated(kv, error);
  }
  const int64_t rows = spec.batch * spec.numKvHeads;
  for (int64_t layer = 0; layer < spec.numLayers; ++layer)
    for (int which = 0; which < 2; ++which) {
      uint64_t offset = which ? spec.vOffsets[layer] : spec.kOffsets[layer];
      const float *src =
          past + (2 * layer + which) * rows * pastLen * spec.headDim;
      uint8_t *block = static_cast<uint8_t *>(kv) + offset;
      for (int64_t r = 0; r < rows; ++r)
        convertFromFloat(src + r * pastLen * spec.headDim, spec.dtype,
                         pastLen * spec.headDim,
                         block +
                             r * spec.maxSeqLen * spec.headDim * elementSize);
    }
  return executor->kvUpdated(kv, error);
}

} // namespace kiln::runtime
