//===- EntryShape.h - Defaults and limits of the entry shapes ---*- C++ -*-===//
//
// One place for the options that shape the entry points (batch, prefill
// chunk, context length): their defaults (read by kiln-compile's flags,
// PipelineOptions and the pass options of Passes.td) and their check (run by
// kiln-compile before any work and by kiln-specialize-entry-points).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_ENTRYSHAPE_H
#define KILN_PASSES_ENTRYSHAPE_H

#include <cstdint>
#include <string>

namespace kiln {

inline constexpr int64_t kDefaultBatch = 1;
inline constexpr int64_t kDefaultPrefillChunk = 64;
inline constexpr int64_t kDefaultMaxSeqLen = 2048;

/// Bounds that keep every size the planner derives from the options (KV
/// cache, score matrices, arena offsets) inside 64 bits.
inline constexpr int64_t kMaxSeqLenLimit = int64_t(1) << 22;
inline constexpr int64_t kMaxBatchLimit = int64_t(1) << 12;

/// What is wrong with these values, in one line that names the flag
/// ("--prefill-chunk must be in [1, --max-seq-len = 16] (got 32)"); empty
/// when they are valid.
inline std::string checkEntryShape(int64_t batch, int64_t prefillChunk,
                                   int64_t maxSeqLen) {
  auto range = [](const char *flag, const std::string &upper, int64_t got) {
    return std::string(flag) + " must be in [1, " + upper + "] (got " +
           std::to_string(got) + ")";
  };
  if (maxSeqLen < 1 || maxSeqLen > kMaxSeqLenLimit)
    return range("--max-seq-len", std::to_string(kMaxSeqLenLimit), maxSeqLen);
  if (prefillChunk < 1 || prefillChunk > maxSeqLen)
    return range("--prefill-chunk",
                 "--max-seq-len = " + std::to_string(maxSeqLen), prefillChunk);
  if (batch < 1 || batch > kMaxBatchLimit)
    return range("--batch", std::to_string(kMaxBatchLimit), batch);
  return "";
}

} // namespace kiln

#endif // KILN_PASSES_ENTRYSHAPE_H
