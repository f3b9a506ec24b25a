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
  bool withDecode = true;
  std::string decodeSymbol = "fake_decode";
  /// Kernel image bytes; empty: the built fake image.
  std::vector<uint8_t> image;
  /// Added to every logits row; empty: zeros.
  std::vector<float> bias;
};

/// The io tensors and plan of an entry of the fake image with `seq` tokens.
runtime::EntrySpec fakeEntry(const std::string &name, const std::string &symbol,
                             int64_t seq);

/// Describes the whole fake artifact to `writer` (weights "bias" f32
/// [vocab] and "odd" f32 [3], owned by the writer).
bool describeFake(runtime::ArtifactWriter &writer, const FakeOptions &options,
                  std::string *error);

/// describeFake + write.
bool writeFakeArtifact(const std::string &path, const FakeOptions &options,
                       std::string *error);

} // namespace kiln::test

#endif // KILN_TEST_FAKEARTIFACT_H
