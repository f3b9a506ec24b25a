//===- chat-template.cpp - Fuzzes ChatTemplate::parse and render ----------===//
//
// The input is a chat template (tokenizer_config.json's chat_template);
// when it parses, it is rendered for a fixed conversation, with and without
// the generation prompt. Errors are fine (with a message); crashes, hangs and
// sanitizer reports are not.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/ChatTemplate.h"

#include <string_view>

using namespace kiln;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view source(reinterpret_cast<const char *>(data), size);
  std::string error;
  auto chat = runtime::ChatTemplate::parse(source, &error);
  if (!chat) {
    if (error.empty())
      __builtin_trap(); // a refusal must say why
    return 0;
  }
  std::vector<runtime::ChatMessage> messages{
      {"system", "Be brief."},
      {"user", "H\xc3\xa9llo \xf0\x9f\x8e\x89\n'quoted' \"x\""},
      {"assistant", "  ok  "},
      {"user", "again"}};
  for (bool prompt : {false, true}) {
    std::string out;
    error.clear();
    if (!chat->render(messages, prompt, "<s>", "</s>", &out, &error) &&
        error.empty())
      __builtin_trap();
  }
  return 0;
}
