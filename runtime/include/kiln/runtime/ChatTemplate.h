//===- ChatTemplate.h - Hugging Face chat templates ----------*- C++ -*-===//
//
// Renders the chat template of tokenizer_config.json as transformers'
// apply_chat_template does: Jinja2 with trim_blocks and lstrip_blocks, over
// `messages` (role, content), `add_generation_prompt`, `bos_token` and
// `eos_token`. Debian has no Jinja library for C++, so this is the subset
// chat templates use:
//
//   {{ expr }}, {% if %}/{% elif %}/{% else %}, {% for x in xs %} (with
//   loop.index, index0, first, last, length, revindex; {% else %}),
//   {% set name = expr %}, comments, whitespace control ({%- -%}), and
//   expressions: literals (strings, numbers, true/false/none, lists), names,
//   x.attr, x[i], x[a:b], + - * / // % ~, comparisons, in / not in, and / or
//   / not, a if c else b, is [not] defined/none/string/number, the filters
//   trim, length, upper, lower, string, default, tojson, and the string
//   methods strip, lstrip, rstrip, upper, lower, startswith, endswith,
//   split, title; raise_exception(message) and range(n).
//
// What is outside it fails to parse with a message naming the construct and
// its offset in the template.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_CHATTEMPLATE_H
#define KILN_RUNTIME_CHATTEMPLATE_H

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::runtime {

struct ChatMessage {
  std::string role, content;
};

class ChatTemplate {
public:
  /// Parses `source`; null with `*error` ("chat_template: offset N: ...")
  /// when it uses what the engine does not support or is malformed.
  static std::unique_ptr<ChatTemplate> parse(std::string_view source,
                                             std::string *error);
  ~ChatTemplate();
  ChatTemplate(const ChatTemplate &) = delete;
  ChatTemplate &operator=(const ChatTemplate &) = delete;

  /// Renders the conversation. Fails with the template's own message when it
  /// calls raise_exception (roles out of order, ...).
  bool render(const std::vector<ChatMessage> &messages,
              bool addGenerationPrompt, const std::string &bosToken,
              const std::string &eosToken, std::string *out,
              std::string *error) const;
  /// The same with every variable given as JSON (an object): `messages`
  /// and anything else the template reads.
  bool renderJson(std::string_view contextJson, std::string *out,
                  std::string *error) const;

  struct Impl;

private:
  ChatTemplate();
  std::unique_ptr<Impl> impl;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_CHATTEMPLATE_H
