//===- kiln-fake-artifact.cpp - Writes the fake artifact for lit tests ---===//
//
//   kiln-fake-artifact OUT [--target T] [--no-prefill] [--no-decode]
//                      [--tokenizer DIR]
//
// The fake model (FakeKernels.c): vocab 16, 2 layers, batch 2, 2 KV heads,
// head_dim 4, context 32, prefill chunks of 4; greedy next token after t in
// a prompt starting with t0 is (t + t0 + 1) mod 16.
//
//===----------------------------------------------------------------------===//

#include "FakeArtifact.h"

#include "kiln/runtime/Tokenizer.h"

#include <cstdio>
#include <cstring>

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: %s OUT [--target T] [--no-prefill] "
                 "[--no-decode] [--tokenizer DIR]\n",
                 argv[0]);
    return 2;
  }
  kiln::test::FakeOptions options;
  std::string error;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--target") && i + 1 < argc)
      options.target = argv[++i];
    else if (!std::strcmp(argv[i], "--no-prefill"))
      options.withPrefill = false;
    else if (!std::strcmp(argv[i], "--no-decode"))
      options.withDecode = false;
    else if (!std::strcmp(argv[i], "--tokenizer") && i + 1 < argc) {
      if (!kiln::runtime::Tokenizer::readFiles(argv[++i], &options.tokenizer,
                                               &error)) {
        std::fprintf(stderr, "kiln-fake-artifact: %s\n", error.c_str());
        return 1;
      }
    } else {
      std::fprintf(stderr, "kiln-fake-artifact: unknown argument '%s'\n",
                   argv[i]);
      return 2;
    }
  }
  if (!kiln::test::writeFakeArtifact(argv[1], options, &error)) {
    std::fprintf(stderr, "kiln-fake-artifact: %s\n", error.c_str());
    return 1;
  }
  return 0;
}
