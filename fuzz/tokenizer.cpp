//===- tokenizer.cpp - Fuzzes Tokenizer::create, encode and decode --------===//
//
// The input is a tokenizer.json; when it is accepted, a fixed text and the
// input itself are encoded, and the ids decoded (also as a stream). Errors
// are fine (with a message); crashes, hangs and sanitizer reports are not.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/Tokenizer.h"

#include <string_view>

using namespace kiln;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  runtime::TokenizerFiles files;
  files.tokenizerJson.assign(reinterpret_cast<const char *>(data), size);
  std::string error;
  std::unique_ptr<runtime::Tokenizer> tokenizer =
      runtime::Tokenizer::create(files, &error);
  if (!tokenizer) {
    if (error.empty())
      __builtin_trap(); // a refusal must say why
    return 0;
  }
  runtime::Tokenizer::EncodeOptions options;
  for (std::string_view text :
       {std::string_view("def main():\n    return 1  # ünïcode ✓ 🙂"),
        std::string_view(files.tokenizerJson).substr(0, 512)}) {
    std::vector<int64_t> ids;
    if (tokenizer->encode(text, options, &ids, &error)) {
      (void)tokenizer->decode(ids);
      (void)tokenizer->decode(ids, /*skipSpecialTokens=*/true);
    }
  }
  // Ids that name no token are skipped.
  (void)tokenizer->decode({-1, 0, 1, 2, 1 << 30});
  return 0;
}
