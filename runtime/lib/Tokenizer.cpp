//===- Tokenizer.cpp - Loading, added tokens, encode and decode ----------===//
//
// encode() follows the `tokenizers` package's Tokenizer::encode:
//   1. added tokens with normalized=false (all special tokens) are found in
//      the raw text, leftmost then longest; the text between them is
//   2. normalized, and added tokens with normalized=true are found in it;
//   3. the rest is pre-tokenized into words, and each word goes through BPE;
//   4. the post-processor (or tokenizer_config.json's add_bos_token and
//      add_eos_token) adds BOS/EOS.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/Tokenizer.h"

#include "TokenizerInternal.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/stat.h>

namespace kiln::runtime {
using namespace tok;

namespace {

struct AddedToken {
  std::string content;
  /// What the id decodes as: the content, normalized when it is matched in
  /// normalized text (as `tokenizers` stores it).
  std::string text;
  int64_t id = 0;
  bool special = false, lstrip = false, rstrip = false, singleWord = false,
       normalized = false;
};

/// Byte trie of added tokens' patterns, for leftmost-longest matching.
class TokenTrie {
public:
  TokenTrie() : nodes(1) {}
  void add(const std::string &pattern, size_t token) {
    if (pattern.empty())
      return;
    size_t node = 0;
    for (unsigned char c : pattern) {
      auto [it, inserted] = nodes[node].next.emplace(c, nodes.size());
      if (inserted)
        nodes.emplace_back();
      node = it->second;
    }
    nodes[node].token = static_cast<int64_t>(token);
  }
  bool empty() const { return nodes.size() == 1; }
  /// Non-overlapping matches (begin, end, token index), leftmost first and
  /// the longest of those that start there.
  std::vector<std::tuple<size_t, size_t, size_t>>
  find(std::string_view text) const {
    std::vector<std::tuple<size_t, size_t, size_t>> out;
    for (size_t pos = 0; pos < text.size();) {
      size_t node = 0, bestEnd = 0;
      int64_t best = -1;
      for (size_t i = pos; i < text.size(); ++i) {
        auto it = nodes[node].next.find(static_cast<unsigned char>(text[i]));
        if (it == nodes[node].next.end())
          break;
        node = it->second;
        if (nodes[node].token >= 0) {
          best = nodes[node].token;
          bestEnd = i + 1;
        }
      }
      if (best < 0) {
        ++pos;
        continue;
      }
      out.emplace_back(pos, bestEnd, static_cast<size_t>(best));
      pos = bestEnd;
    }
    return out;
  }

private:
  struct Node {
    std::map<unsigned char, size_t> next;
    int64_t token = -1;
  };
  std::vector<Node> nodes;
};

/// A piece of the input: text for the model, or an added token's id.
struct Segment {
  std::string text;
  int64_t id = -1;
  bool atStart = false;
};

std::string jsonMessage(const std::exception &e) {
  // nlohmann's "[json.exception.parse_error.101] parse error at ..."
  std::string what = e.what();
  size_t bracket = what.find("] ");
  return what.rfind("[json.exception.", 0) == 0 && bracket != what.npos
             ? what.substr(bracket + 2)
             : what;
}

/// A special-token value of tokenizer_config.json: "text" or
/// {"content": "text", ...}.
std::string configToken(const Json &value, const std::string &path) {
  if (value.is_null())
    return "";
  if (value.is_object())
    return getString(field(value, "content"), path + ".content");
  return getString(value, path);
}

bool readFile(const std::string &path, std::string *out, std::string *error) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  if (in)
    buffer << in.rdbuf();
  if (!in || in.bad()) {
    *error = path + ": cannot read: " + std::strerror(errno);
    return false;
  }
  *out = buffer.str();
  return true;
}

} // namespace

struct Tokenizer::Impl {
  std::unique_ptr<Bpe> model;
  std::unique_ptr<Pipeline> pipeline;
  std::vector<AddedToken> added;
  std::unordered_map<std::string, int64_t> addedIds;
  std::unordered_map<int64_t, size_t> addedById;
  TokenTrie rawTrie, normalizedTrie;
  std::unique_ptr<Regex> wordChar; // single_word tokens only

  std::optional<bool> addBos, addEos; // from tokenizer_config.json
  std::string bosToken, eosToken, chatTemplate;
  std::vector<int64_t> eosIds;

  void loadTokenizer(const Json &root);
  void loadConfig(const Json &config);
  void loadGenerationConfig(const Json &config);
  std::vector<Segment> splitAdded(const std::string &text,
                                  const TokenTrie &trie, bool atStart,
                                  bool parseSpecial) const;
  void encode(std::string_view text, const EncodeOptions &options,
              std::vector<int64_t> *ids) const;
};

void Tokenizer::Impl::loadTokenizer(const Json &root) {
  if (!root.is_object())
    raise("expected a JSON object");
  model = std::make_unique<Bpe>(field(root, "model"));
  pipeline = std::make_unique<Pipeline>(root);
  const Json &list = field(root, "added_tokens");
  if (!list.is_null() && !list.is_array())
    raise("added_tokens: expected an array");
  for (size_t i = 0; i < list.size(); ++i) {
    std::string path = "added_tokens[" + std::to_string(i) + "]";
    const Json &t = list[i];
    AddedToken token;
    token.id = getInt(field(t, "id"), path + ".id");
    token.content = getString(field(t, "content"), path + ".content");
    token.special = getBool(field(t, "special"), path + ".special", false);
    token.lstrip = getBool(field(t, "lstrip"), path + ".lstrip", false);
    token.rstrip = getBool(field(t, "rstrip"), path + ".rstrip", false);
    token.singleWord =
        getBool(field(t, "single_word"), path + ".single_word", false);
    token.normalized =
        getBool(field(t, "normalized"), path + ".normalized", !token.special);
    if (findInvalidUtf8(token.content) != std::string::npos)
      raise(path + ".content: not valid UTF-8");
    // A token the vocabulary has keeps the vocabulary's id, whatever the
    // file says (`tokenizers` only warns about the difference).
    if (std::optional<int64_t> id = model->id(token.content))
      token.id = *id;
    addedIds[token.content] = token.id;
    addedById[token.id] = added.size();
    added.push_back(std::move(token));
  }
  for (size_t i = 0; i < added.size(); ++i) {
    AddedToken &t = added[i];
    t.text = t.content;
    if (t.singleWord && !wordChar)
      wordChar = std::make_unique<Regex>("\\w");
    if (!t.normalized) {
      rawTrie.add(t.content, i);
    } else {
      // Found in normalized text, so matched in its normalized form.
      pipeline->normalize(&t.text);
      normalizedTrie.add(t.text, i);
    }
  }
}

void Tokenizer::Impl::loadConfig(const Json &config) {
  if (!config.is_object())
    raise("expected a JSON object");
  auto flag = [&](const char *key, std::optional<bool> *out) {
    if (!field(config, key).is_null())
      *out = getBool(field(config, key), key, false);
  };
  flag("add_bos_token", &addBos);
  flag("add_eos_token", &addEos);
  bosToken = configToken(field(config, "bos_token"), "bos_token");
  eosToken = configToken(field(config, "eos_token"), "eos_token");
  const Json &chat = field(config, "chat_template");
  if (chat.is_string()) {
    chatTemplate = chat.get<std::string>();
  } else if (chat.is_array()) {
    for (size_t i = 0; i < chat.size(); ++i) {
      std::string path = "chat_template[" + std::to_string(i) + "]";
      if (getString(field(chat[i], "name"), path + ".name") == "default")
        chatTemplate =
            getString(field(chat[i], "template"), path + ".template");
    }
  } else if (!chat.is_null()) {
    raise("chat_template: expected a string or a list of named templates");
  }
  for (const auto &[name, token] :
       {std::pair{"bos_token", bosToken}, {"eos_token", eosToken}})
    if (!token.empty() && !addedIds.count(token) && !model->id(token))
      raise(std::string(name) + ": '" + token + "' is not a token");
  if (addBos.value_or(false) && bosToken.empty())
    raise("add_bos_token is true but there is no bos_token");
  if (addEos.value_or(false) && eosToken.empty())
    raise("add_eos_token is true but there is no eos_token");
}

void Tokenizer::Impl::loadGenerationConfig(const Json &config) {
  const Json &eos = field(config, "eos_token_id");
  if (eos.is_array()) {
    for (size_t i = 0; i < eos.size(); ++i)
      eosIds.push_back(
          getInt(eos[i], "eos_token_id[" + std::to_string(i) + "]"));
  } else if (!eos.is_null()) {
    eosIds.push_back(getInt(eos, "eos_token_id"));
  }
}

std::vector<Segment> Tokenizer::Impl::splitAdded(const std::string &text,
                                                 const TokenTrie &trie,
                                                 bool atStart,
                                                 bool parseSpecial) const {
  auto isWordAt = [&](size_t at) {
    return at < text.size() && wordChar->matchesAt(text, at);
  };
  std::vector<Segment> out;
  size_t done = 0; // text before this is in `out`
  for (auto [begin, end, index] : trie.find(text)) {
    const AddedToken &token = added[index];
    if (token.special && !parseSpecial)
      continue;
    if (token.singleWord) {
      size_t before = begin;
      while (before > 0 &&
             (static_cast<uint8_t>(text[--before]) & 0xC0) == 0x80) {
      }
      if ((begin > 0 && isWordAt(before)) || isWordAt(end))
        continue;
    }
    if (token.lstrip) {
      size_t newBegin = begin;
      while (newBegin > 0) {
        size_t at = newBegin - 1;
        while (at > 0 && (static_cast<uint8_t>(text[at]) & 0xC0) == 0x80)
          --at;
        size_t i = at;
        if (!isWhitespace(nextChar(text, &i)))
          break;
        newBegin = at;
      }
      begin = std::max(newBegin, done);
    }
    if (token.rstrip)
      for (size_t i = end; i < text.size() && isWhitespace(nextChar(text, &i));)
        end = i;
    if (done < begin)
      out.push_back(
          {text.substr(done, begin - done), -1, atStart && done == 0});
    out.push_back({"", token.id, false});
    done = end;
  }
  if (done < text.size())
    out.push_back({text.substr(done), -1, atStart && done == 0});
  return out;
}

void Tokenizer::Impl::encode(std::string_view text,
                             const EncodeOptions &options,
                             std::vector<int64_t> *ids) const {
  size_t bad = findInvalidUtf8(text);
  if (bad != std::string_view::npos)
    raise("text is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  std::vector<int64_t> out;
  for (Segment &segment : splitAdded(std::string(text), rawTrie, true,
                                     options.parseSpecialTokens)) {
    if (segment.id >= 0) {
      out.push_back(segment.id);
      continue;
    }
    pipeline->normalize(&segment.text);
    for (Segment &part :
         splitAdded(segment.text, normalizedTrie, segment.atStart,
                    options.parseSpecialTokens)) {
      if (part.id >= 0) {
        out.push_back(part.id);
        continue;
      }
      std::vector<Piece> words{{std::move(part.text), part.atStart}};
      pipeline->preTokenize(&words);
      for (const Piece &word : words)
        model->encodeWord(word.text, &out);
    }
  }
  if (options.addSpecialTokens) {
    if (addBos || addEos) {
      auto id = [&](const std::string &token) {
        auto it = addedIds.find(token);
        return it != addedIds.end() ? it->second : *model->id(token);
      };
      if (addBos.value_or(false))
        out.insert(out.begin(), id(bosToken));
      if (addEos.value_or(false))
        out.push_back(id(eosToken));
    } else {
      pipeline->postProcess(&out);
    }
  }
  *ids = std::move(out);
}

Tokenizer::Tokenizer() : impl(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

bool Tokenizer::readFiles(const std::string &directory, TokenizerFiles *files,
                          std::string *error) {
  auto path = [&](const char *name) { return directory + "/" + name; };
  if (!readFile(path("tokenizer.json"), &files->tokenizerJson, error))
    return false;
  struct stat st;
  for (auto [name, out] :
       {std::pair{"tokenizer_config.json", &files->tokenizerConfigJson},
        {"generation_config.json", &files->generationConfigJson}})
    if (::stat(path(name).c_str(), &st) == 0 &&
        !readFile(path(name), out, error))
      return false;
  return true;
}

std::unique_ptr<Tokenizer> Tokenizer::create(const TokenizerFiles &files,
                                             std::string *error) {
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  Impl &impl = *tokenizer->impl;
  // Each file in turn, so that a message names the file it is about.
  auto load = [&](const char *name, const std::string &text, auto parse) {
    if (text.empty() && std::strcmp(name, "tokenizer.json") != 0)
      return true;
    try {
      parse(Json::parse(text));
      return true;
    } catch (const Error &e) {
      *error = std::string(name) + ": " + e.what();
    } catch (const std::exception &e) {
      *error = std::string(name) + ": " + jsonMessage(e);
    }
    return false;
  };
  if (!load("tokenizer.json", files.tokenizerJson,
            [&](const Json &j) { impl.loadTokenizer(j); }) ||
      !load("tokenizer_config.json", files.tokenizerConfigJson,
            [&](const Json &j) { impl.loadConfig(j); }) ||
      !load("generation_config.json", files.generationConfigJson,
            [&](const Json &j) { impl.loadGenerationConfig(j); }))
    return nullptr;
  if (!impl.eosToken.empty()) {
    int64_t eos = *tokenizer->tokenToId(impl.eosToken);
    if (std::find(impl.eosIds.begin(), impl.eosIds.end(), eos) ==
        impl.eosIds.end())
      impl.eosIds.push_back(eos);
  }
  return tokenizer;
}

bool Tokenizer::encode(std::string_view text, const EncodeOptions &options,
                       std::vector<int64_t> *ids, std::string *error) const {
  try {
    impl->encode(text, options, ids);
    return true;
  } catch (const std::exception &e) {
    *error = e.what();
    return false;
  }
}

std::string Tokenizer::decode(const std::vector<int64_t> &ids,
                              bool skipSpecialTokens) const {
  std::vector<std::string> tokens;
  for (int64_t id : ids) {
    const std::string *token = idToToken(id);
    if (token && !(skipSpecialTokens && isSpecial(id)))
      tokens.push_back(*token);
  }
  try {
    return impl->pipeline->decode(std::move(tokens));
  } catch (const std::exception &) {
    // Only a regex Replace decoder past PCRE2's match limits gets here.
    return "\xEF\xBF\xBD";
  }
}

int64_t Tokenizer::vocabSize() const {
  int64_t size = impl->model->size();
  for (const AddedToken &t : impl->added)
    size = std::max(size, t.id + 1);
  return size;
}

std::optional<int64_t> Tokenizer::tokenToId(std::string_view token) const {
  auto it = impl->addedIds.find(std::string(token));
  if (it != impl->addedIds.end())
    return it->second;
  return impl->model->id(token);
}

const std::string *Tokenizer::idToToken(int64_t id) const {
  auto it = impl->addedById.find(id);
  if (it != impl->addedById.end())
    return &impl->added[it->second].text;
  return impl->model->token(id);
}

bool Tokenizer::isSpecial(int64_t id) const {
  auto it = impl->addedById.find(id);
  return it != impl->addedById.end() && impl->added[it->second].special;
}

const std::vector<int64_t> &Tokenizer::eosIds() const { return impl->eosIds; }
const std::string &Tokenizer::bosToken() const { return impl->bosToken; }
const std::string &Tokenizer::eosToken() const { return impl->eosToken; }
const std::string &Tokenizer::chatTemplate() const {
  return impl->chatTemplate;
}

} // namespace kiln::runtime
