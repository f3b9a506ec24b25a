//===- artifact.cpp - Fuzzes Artifact::open -------------------------------===//
//
// Any bytes as a model.kiln: the loader must refuse them with an error or
// accept a file that validates; never crash, hang or read out of bounds.
// Only the loader runs: a CPU artifact's host code is never executed.
//
//===----------------------------------------------------------------------===//

#include "Support.h"

#include "kiln/runtime/Artifact.h"

using namespace kiln;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::MemoryFile file(data, size);
  std::string error;
  runtime::Artifact::OpenOptions options;
  options.verifyWeights = true;
  std::unique_ptr<runtime::Artifact> artifact =
      runtime::Artifact::open(file.path(), options, &error);
  if (!artifact && error.empty())
    __builtin_trap(); // a refusal must say why
  if (artifact) {
    // What a Session reads of an accepted artifact.
    (void)artifact->model().numLayers;
    for (const runtime::EntrySpec &entry : artifact->entries())
      (void)artifact->findEntry(entry.name);
    for (const runtime::KernelImage &image : artifact->images())
      (void)artifact->findImage(image.name);
  }
  return 0;
}
