//===- Session.h - Runs prefill and decode on a loaded artifact ----------===//
//
// A Session owns everything a run needs, all allocated when it is created:
// the KV cache (zeroed), one activation arena (the largest of the entries'),
// one io buffer (likewise) and a little logits scratch. The weights stay in
// the artifact's read-only mapping. prefill/decode allocate nothing.
//
// Prompts are fed to the "prefill" entry in chunks of its `seq` tokens; the
// slots after the end of a prompt (and of idle batch rows) get token 0 and
// position -1, which the kernels treat as padding. Decode feeds one token
// per batch row to the "decode" entry. Either entry stands in for the other
// when the artifact lacks it.
//
// Outputs: the logits of each row's last real token (logits(row)) and, when
// the artifact's entries return it, the index of its largest logit computed
// by the kernels (argmax(row)). A caller that needs only argmax turns
// setKeepLogits off; a GPU session then copies back a few bytes per call
// instead of the logits.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_SESSION_H
#define KILN_RUNTIME_SESSION_H

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/Sampler.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kiln::runtime {
class Executor;

/// Called for every real (non-padding) token a call processed, with that
/// token's logits as f32 (valid only during the call).
using LogitsObserver =
    std::function<void(int64_t row, int64_t position, const float *logits)>;

class Session {
public:
  /// Creates the executor for the artifact's target and allocates buffers.
  static std::unique_ptr<Session> create(std::shared_ptr<const Artifact> model,
                                         std::string *error);
  /// Artifact::open + create.
  static std::unique_ptr<Session> open(const std::string &path,
                                       std::string *error);
  ~Session();
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  const Artifact &artifact() const { return *model; }
  int64_t batch() const;
  /// Rows of the decode entry the last decode call ran: batch(), or N of
  /// the @decode_b<N> entry (kiln-compile --decode-batches) chosen because
  /// every sequence of the call was in its first N rows.
  int64_t lastDecodeRows() const { return lastDecodeBatch; }
  int64_t vocabSize() const;
  int64_t maxSeqLen() const;
  /// Tokens per batch row per prefill call.
  int64_t prefillChunk() const;

  /// Runs `tokens` on batch row 0 at positions startPos, startPos + 1, ...;
  /// the other rows idle. Afterwards logits(0) is the last token's row.
  bool prefill(const std::vector<int64_t> &tokens, int64_t startPos,
               std::string *error);
  /// One prompt per batch row (an empty prompt leaves its row idle).
  bool prefillBatch(const std::vector<std::vector<int64_t>> &prompts,
                    const std::vector<int64_t> &startPos, std::string *error);
  /// Feeds one token to batch row 0; the other rows idle.
  bool decode(int64_t token, int64_t position, std::string *error);
  /// One token per batch row; position -1 leaves a row idle.
  bool decodeBatch(const std::vector<int64_t> &tokens,
                   const std::vector<int64_t> &positions, std::string *error);

  /// f32 logits of the last real token of `row` in the last prefill/decode
  /// call; null when that call left the row idle, or when setKeepLogits(false)
  /// took effect. Valid until the next call.
  const float *logits(int64_t row = 0) const;
  /// True when the entries this session calls return the argmax of every
  /// logits row (the artifact's `argmax` output).
  bool hasArgmax() const;
  /// The largest logit's index (the first on ties) of the last real token of
  /// `row` in the last call, as the kernels computed it; -1 when that call
  /// left the row idle or !hasArgmax().
  int64_t argmax(int64_t row = 0) const;
  /// True when the entries draw the next token on the device (GPU artifacts
  /// with tfm.sample): argmax(row) is then the token drawn with the options
  /// of setSampling(row), greedy by default.
  bool samplesOnDevice() const;
  /// The sampling options of `row` for the following calls (entries that
  /// sample on the device; ignored otherwise). Draw n of the row after this
  /// call uses the key splitmix64(seed + n): the same options and tokens
  /// give the same draws.
  void setSampling(int64_t row, const SamplerOptions &options);
  /// The same, as if `draws` tokens had been drawn since (a sequence
  /// recomputed after preemption goes on with the draws it had).
  void setSampling(int64_t row, const SamplerOptions &options, uint64_t draws);
  /// Whether logits(row) must be valid after each call (default: yes).
  /// Turning it off takes effect only when hasArgmax(): then only argmax(row)
  /// is read back (a logits observer still sees every row's logits).
  void setKeepLogits(bool keep) { keepLogits = keep; }
  void setLogitsObserver(LogitsObserver observer);
  /// The best of `repeats` copies of `bytes` within the memory the entry
  /// points read (the GPU's, or the host's): bytes read + written per
  /// second. kiln-run --bench measures a decode step against it.
  bool measureCopyBandwidth(uint64_t bytes, int repeats, double *bytesPerSecond,
                            std::string *error);
  /// Where the entry points run ("host CPU", or the GPU's name and arch).
  std::string device() const;
  /// Tensor-parallel artifacts: the seconds rank 0 has spent in the
  /// collectives (summing or gathering, and waiting for the other ranks)
  /// since the session opened; 0 for one rank.
  double collectiveSeconds() const;

  /// Paged KV cache (kiln-compile --kv-block-size): each layer's cache is a
  /// pool of blocks of kvBlockSize() positions. A row takes blocks from the
  /// pool as its calls reach new positions (a call fails, naming the row,
  /// when the pool has too few) and keeps them until releaseRow.
  bool paged() const { return model->kvCache().paged(); }
  int64_t kvBlockSize() const { return model->kvCache().blockSize; }
  int64_t kvBlocks() const { return model->kvCache().numBlocks; }
  int64_t freeKvBlocks() const {
    return static_cast<int64_t>(freeBlocks.size());
  }
  /// Blocks `row` holds (positions [0, rowKvBlocks(row) * kvBlockSize()).
  int64_t rowKvBlocks(int64_t row) const;
  /// Blocks a sequence of `positions` positions needs.
  int64_t kvBlocksFor(int64_t positions) const;
  /// Gives `row`'s blocks back to the pool (its cache is gone: the next
  /// call on it starts at position 0). Nothing for an unpaged cache.
  void releaseRow(int64_t row);

  /// The KV buffer (layout in artifact().kvCache()).
  void *kvCache() const { return kv; }
  uint64_t kvBytes() const;
  /// Zeroes the KV cache (on the device too, for GPU targets).
  bool clearKvCache(std::string *error = nullptr);
  /// Fills positions [0, pastLen) of every layer's K and V from f32 data of
  /// shape [2 * layers, batch, kv_heads, pastLen, head_dim] (k0, v0, k1, ...),
  /// converting to the cache dtype. Later positions are left as they are.
  bool loadKvCache(const float *past, int64_t pastLen, std::string *error);

private:
  enum class Keep { None, Copy, Reference };

  Session() = default;
  bool prefillRows(std::string *error);
  /// Paged: gives `row` the blocks for positions [0, end), or fails.
  bool reserveBlocks(int64_t row, int64_t end, std::string *error);
  /// Paged: writes the first `rows` rows' block tables into `entry`'s.
  void writeBlockTable(const EntrySpec &entry);
  bool decodeRows(std::string *error);
  /// Whether the caller reads logits rows (not only argmax).
  bool logitsWanted() const { return keepLogits || !hasArgmax(); }
  /// Reads argmax[slot] of `entry` into rowArgmax[row], range-checked.
  bool takeArgmax(const EntrySpec &entry, int64_t row, int64_t slot,
                  std::string *error);
  void collectLogits(const EntrySpec &entry, int64_t row, int64_t slot,
                     int64_t position, Keep keep);

  std::shared_ptr<const Artifact> model;
  std::unique_ptr<Executor> executor;
  size_t prefillIndex = 0, decodeIndex = 0;
  /// The @decode_b<N> entries, by N (fewer rows than decodeIndex's).
  std::vector<size_t> smallerDecodes;
  int64_t lastDecodeBatch = 0;
  /// The prefill entry computing every row's logits (for a logits observer:
  /// perplexity, dumps): "prefill_all", or "prefill" when it does; -1: none
  /// (compiled with --prefill-logits=last).
  int64_t allRowsIndex = -1;
  void *kv = nullptr, *arena = nullptr, *io = nullptr;
  std::vector<float> lastLogits;        // [batch, vocab]
  std::vector<const float *> rowLogits; // per row, into io or lastLogits
  std::vector<int64_t> rowArgmax;       // per row; -1: none
  /// Per row: temperature, top_k, top_p, min_p; the seed; the tokens drawn
  /// since setSampling.
  std::vector<float> rowSampling;
  std::vector<uint64_t> rowSeed, rowDraws;
  /// Writes the sampling parameters and keys of `entry` (when it has them).
  /// A row's key is a hash of its seed and its own draw count, which only
  /// the rows that draw a token in the call (`draws(row)`) advance: what a
  /// sequence samples does not depend on the calls other rows make (a
  /// server's batch) nor on its prompt's chunks before the last.
  void writeSampling(const EntrySpec &entry,
                     const std::function<bool(int64_t)> &draws);
  bool keepLogits = true;
  std::vector<float> observerScratch; // [vocab]
  LogitsObserver observer;
  // Per-row arguments of the current call, sized once to the batch.
  std::vector<const int64_t *> rowTokens;
  std::vector<int64_t> rowLengths, rowStarts, stepTokens, stepPositions;
  bool batchedCall = false; // name the row in error messages
  /// Paged KV cache: each row's blocks in position order; the free ones.
  std::vector<std::vector<int32_t>> rowBlocks;
  std::vector<int32_t> freeBlocks;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_SESSION_H
