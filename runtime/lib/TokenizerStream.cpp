//===- TokenizerStream.cpp - Text as a model generates it ----------------===//

#include "kiln/runtime/Tokenizer.h"

#include <algorithm>

namespace kiln::runtime {

namespace {
bool endsWithReplacement(const std::string &s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}
} // namespace

StreamDecoder::StreamDecoder(const Tokenizer &tokenizer, bool skipSpecialTokens)
    : tokenizer(tokenizer), skipSpecial(skipSpecialTokens) {}

bool StreamDecoder::step(int64_t id, std::string *text, std::string *error) {
  // The `tokenizers` DecodeStream: the window's text is compared with the
  // text of its first prefixIndex ids, which was emitted already.
  if (prefix.empty() && !ids.empty()) {
    std::string newPrefix = tokenizer.decode(ids, skipSpecial);
    if (!endsWithReplacement(newPrefix)) {
      prefix = std::move(newPrefix);
      prefixIndex = ids.size();
    }
  }
  ids.push_back(id);
  std::string all = tokenizer.decode(ids, skipSpecial);
  if (all.size() <= prefix.size() || endsWithReplacement(all))
    return true; // nothing new, or an incomplete character at the end
  if (all.compare(0, prefix.size(), prefix) != 0) {
    *error = "streaming decode: the text of token " + std::to_string(id) +
             " changes text already emitted";
    return false;
  }
  text->append(all, prefix.size(), std::string::npos);
  ids.erase(ids.begin(), ids.begin() + prefixIndex);
  prefixIndex = ids.size();
  prefix = tokenizer.decode(ids, skipSpecial);
  return true;
}

void StreamDecoder::finish(std::string *text) {
  std::string all = tokenizer.decode(ids, skipSpecial);
  if (all.size() > prefix.size() && all.compare(0, prefix.size(), prefix) == 0)
    text->append(all, prefix.size(), std::string::npos);
  ids.clear();
  prefix.clear();
  prefixIndex = 0;
}

StopStrings::StopStrings(std::vector<std::string> stops)
    : stops(std::move(stops)) {}

bool StopStrings::feed(std::string_view text, std::string *out) {
  pending += text;
  size_t first = std::string::npos;
  for (const std::string &stop : stops)
    first = std::min(first, pending.find(stop));
  if (first != std::string::npos) {
    out->append(pending, 0, first);
    pending.clear();
    return true;
  }
  // Hold back the longest end of the text that begins a stop string.
  size_t hold = 0;
  for (const std::string &stop : stops)
    for (size_t k = std::min(stop.size() - 1, pending.size()); k > hold; --k)
      if (pending.compare(pending.size() - k, k, stop, 0, k) == 0) {
        hold = k;
        break;
      }
  out->append(pending, 0, pending.size() - hold);
  pending.erase(0, pending.size() - hold);
  return false;
}

void StopStrings::finish(std::string *out) {
  *out += pending;
  pending.clear();
}

} // namespace kiln::runtime
