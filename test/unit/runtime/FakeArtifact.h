//===- FakeArtifact.h - Packs the fake kernel image into an artifact -----===//

#ifndef KILN_TEST_FAKEARTIFACT_H
#define KILN_TEST_FAKEARTIFACT_H

#include "kiln/runtime/ArtifactWriter.h"

#include <string>
#include <vector>

namespace kiln::test {

struct FakeOptions {
  std::string target = "cpu";
  runtime::DType kvDtype = runtime::DType::F32;
  bool withPrefill = true;
  /// The prefill entries as kiln-compile's default --prefill-logits=both
  /// makes them: "prefill" returns each sequence's last row only
  /// (fake_prefill_last), "prefill_all" every row (unless !withPrefillAll).
  /// CPU target only.
  bool lastRowPrefill = false;
  bool withPrefillAll = true;
  bool withDecode = true;
  std::string decodeSymbol = "fake_decode";
  /// Kernel image bytes; empty: the built fake image.
  std::vector<uint8_t> image;
  /// Added to every logits row; empty: zeros.
  std::vector<float> bias;
  /// Entries return argmax (computed by the kernels, plus argmaxShift).
  bool withArgmax = true;
  int64_t argmaxShift = 0;
  /// GPU targets: entries sample on the device (sampling and seeds tensors);
  /// the fake sampler draws token key mod vocab for each row (fakeSample).
  bool withSampling = false;
  /// GPU targets (sm_*): which images to include (the fake driver of
  /// FakeCuda.cpp runs them), text appended to the PTX, and the dynamic
  /// shared memory of the step kernels' launches.
  bool withPtx = true;
  bool withCubin = false;
  std::string ptxExtra;
  uint32_t sharedBytes = 0;
  /// The argmax kernels wait for the step kernel before them
  /// (LaunchSpec::waitsForPrevious), as Kiln's sm_90+ kernels do.
  bool waitingKernels = true;
  /// Stored as the artifact's tokenizer when not empty.
  runtime::TokenizerFiles tokenizer;
};

/// The fake "PTX" of the GPU kernels for `target` (FakeCuda.cpp parses its
/// .target and .entry lines); the fake cubin is "\x7fELF" plus the same text.
std::string fakePtx(const std::string &target);

/// The io tensors (argmax included) and plan of an entry of the fake image
/// with `seq` tokens.
runtime::EntrySpec fakeEntry(const std::string &name, const std::string &symbol,
                             int64_t seq);

/// The fake artifact's KV cache, laid out contiguously (layoutContiguous).
runtime::KvCacheSpec fakeKvCache(runtime::DType dtype = runtime::DType::F32);
/// Describes the whole fake artifact to `writer` (weights "bias" f32
/// [vocab] and "odd" f32 [3], owned by the writer).
bool describeFake(runtime::ArtifactWriter &writer, const FakeOptions &options,
                  std::string *error);

/// describeFake + write.
bool writeFakeArtifact(const std::string &path, const FakeOptions &options,
                       std::string *error);

} // namespace kiln::test

#endif // KILN_TEST_FAKEARTIFACT_H
