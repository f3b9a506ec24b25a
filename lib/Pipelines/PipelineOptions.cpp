//===- PipelineOptions.cpp - The compile options' rules -------------------===//
//
// kiln-compile's --quantize and --no-fuse values, and the checks of the
// options together: plain functions of the options (LLVM Support only), so
// that the tool, the library and the option fuzzer (fuzz/compile-options.cpp)
// share them.
//
//===----------------------------------------------------------------------===//

#include "kiln/Pipelines/Pipelines.h"

#include "llvm/ADT/STLExtras.h"

#include <limits>

llvm::Error kiln::PipelineOptions::parseQuantize(llvm::StringRef text) {
  auto [scheme, group] = text.split(':');
  if (scheme != "int8" && scheme != "int4")
    return llvm::createStringError("--quantize=" + text + ": unknown scheme '" +
                                   scheme + "' (int8, int8:G, int4, int4:G)");
  int64_t size = scheme == "int4" ? 32 : 0;
  if (text.contains(':') && (group.getAsInteger(10, size) ||
                             (size != 32 && size != 64 && size != 128)))
    return llvm::createStringError("--quantize=" + text + ": group size '" +
                                   group + "' is not 32, 64 or 128");
  quantize = scheme.str();
  quantizeGroupSize = size;
  return llvm::Error::success();
}

llvm::Error kiln::PipelineOptions::disableFusion(llvm::StringRef name) {
  bool all = name == "all";
  bool *flags[] = {
      &fuseProjections,  &fuseNorm,      &fuseSwiglu,    &fuseElementwise,
      &transposeWeights, &fuseEpilogues, &fuseAttention, &tensorCores,
      &dedupKernels,     &splitKv,       &wgmma};
  const char *names[] = {
      "projections",       "norm",      "swiglu",    "elementwise",
      "transpose-weights", "epilogues", "attention", "tensor-cores",
      "dedup-kernels",     "split-kv",  "wgmma"};
  bool found = all;
  for (auto [flag, flagName] : llvm::zip_equal(flags, names))
    if (all || name == flagName) {
      *flag = false;
      found = true;
    }
  if (!found)
    return llvm::createStringError(
        "--no-fuse=" + name +
        " names no pass (projections, norm, swiglu, elementwise, "
        "transpose-weights, epilogues, attention, tensor-cores, "
        "dedup-kernels, split-kv, wgmma, all)");
  return llvm::Error::success();
}

llvm::Error kiln::PipelineOptions::verify() const {
  if (quantize.empty() && (quantizeAsymmetric || quantizeLmHead))
    return llvm::createStringError(
        llvm::Twine("--quantize-") +
        (quantizeAsymmetric ? "asymmetric" : "lm-head") + " needs --quantize");
  if (prefillLogits != "both" && prefillLogits != "last" &&
      prefillLogits != "all")
    return llvm::createStringError("--prefill-logits=" + prefillLogits +
                                   " must be both, last or all");
  std::string problem = checkEntryShape(batch, prefillChunk, maxSeqLen);
  if (!problem.empty())
    return llvm::createStringError(problem);
  for (size_t i = 0; i < decodeBatches.size(); ++i) {
    int64_t n = decodeBatches[i];
    if (n < 1 || n >= batch)
      return llvm::createStringError(
          "--decode-batches: " + std::to_string(n) +
          " is not a batch size from 1 to " + std::to_string(batch - 1) +
          " (below --batch " + std::to_string(batch) + ")");
    for (size_t j = 0; j < i; ++j)
      if (decodeBatches[j] == n)
        return llvm::createStringError(
            "--decode-batches: " + std::to_string(n) + " is given twice");
  }
  if (kvBlockSize < 0 || kvBlockSize > maxSeqLen)
    return llvm::createStringError(
        "--kv-block-size must be in [0 (contiguous), --max-seq-len = " +
        std::to_string(maxSeqLen) + "] (got " + std::to_string(kvBlockSize) +
        ")");
  if (tensorParallel < 1 || tensorParallel > kMaxTensorParallel)
    return llvm::createStringError("--tensor-parallel must be in [1, " +
                                   std::to_string(kMaxTensorParallel) +
                                   "] (got " + std::to_string(tensorParallel) +
                                   ")");
  if (rank < 0 || rank >= tensorParallel)
    return llvm::createStringError(
        "--rank " + std::to_string(rank) + " is not one of the " +
        std::to_string(tensorParallel) + " ranks of --tensor-parallel");
  if (kvBlocks != 0 && kvBlockSize == 0)
    return llvm::createStringError("--kv-blocks needs --kv-block-size");
  if (kvBlocks < 0 || kvBlocks > std::numeric_limits<int32_t>::max())
    return llvm::createStringError(
        "--kv-blocks must be in [1, 2147483647] (got " +
        std::to_string(kvBlocks) + ")");
  return llvm::Error::success();
}
