//===- TokenizerBpe.cpp - The BPE model of tokenizer.json ----------------===//
//
// Merges exactly as the `tokenizers` package does: a word starts as its
// characters (byte-fallback tokens or the unk token for characters not in
// the vocabulary), then the pair of adjacent symbols with the lowest merge
// rank (leftmost among equals) is merged until no pair has a merge. A heap
// of candidate merges, checked against the current symbols when popped,
// makes that O(n log n) per word; a cache of words seen makes most words
// one lookup.
//
//===----------------------------------------------------------------------===//

#include "TokenizerInternal.h"

#include <cstdio>
#include <queue>

namespace kiln::runtime::tok {

namespace {

/// Ids above this are refused: the id -> token table is dense.
constexpr int64_t kMaxTokenId = int64_t(1) << 24;
/// The cache is dropped when it grows past this many words.
constexpr size_t kCacheWords = 1 << 16;

uint64_t pairKey(int64_t left, int64_t right) {
  return (static_cast<uint64_t>(left) << 32) | static_cast<uint64_t>(right);
}

} // namespace

Bpe::Bpe(const Json &model) {
  const std::string path = "model";
  std::string type =
      field(model, "type").is_null() ? std::string("BPE") : typeOf(model, path);
  if (type != "BPE")
    raise("model type '" + type + "' is not supported (only BPE)");

  const Json &vocabJson = field(model, "vocab");
  if (!vocabJson.is_object())
    raise("model.vocab: expected an object of token: id");
  int64_t maxId = -1;
  for (auto it = vocabJson.begin(); it != vocabJson.end(); ++it) {
    int64_t id = getInt(it.value(), "model.vocab[\"" + it.key() + "\"]");
    if (id >= kMaxTokenId)
      raise("model.vocab[\"" + it.key() + "\"]: id " + std::to_string(id) +
            " is too large");
    vocab.emplace(it.key(), id);
    maxId = std::max(maxId, id);
  }
  tokens.resize(maxId + 1);
  present.resize(maxId + 1);
  for (const auto &[token, id] : vocab)
    if (!present[id]) {
      tokens[id] = token;
      present[id] = true;
    }

  for (const char *key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const Json &v = field(model, key);
    if (!v.is_null() && !(v.is_string() && v.get<std::string>().empty()))
      raise(std::string("model.") + key + " is not supported");
  }
  const Json &dropout = field(model, "dropout");
  if (!dropout.is_null() &&
      !(dropout.is_number() && dropout.get<double>() == 0))
    raise("model.dropout is not supported (BPE dropout is for training)");
  fuseUnk = getBool(field(model, "fuse_unk"), "model.fuse_unk", false);
  byteFallback =
      getBool(field(model, "byte_fallback"), "model.byte_fallback", false);
  ignoreMerges =
      getBool(field(model, "ignore_merges"), "model.ignore_merges", false);
  const Json &unkJson = field(model, "unk_token");
  if (!unkJson.is_null()) {
    std::string name = getString(unkJson, "model.unk_token");
    unk = id(name);
    if (!unk)
      raise("model.unk_token: '" + name + "' is not in the vocabulary");
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byteIds[b] = id(name).value_or(-1);
  }

  const Json &mergesJson = field(model, "merges");
  if (!mergesJson.is_array())
    raise("model.merges: expected an array");
  merges.reserve(mergesJson.size());
  for (size_t rank = 0; rank < mergesJson.size(); ++rank) {
    const Json &m = mergesJson[rank];
    std::string where = "model.merges[" + std::to_string(rank) + "]";
    std::string left, right;
    if (m.is_string()) {
      // "a b": exactly one space, as `tokenizers` requires.
      std::string s = m.get<std::string>();
      size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != s.npos)
        raise(where + ": expected \"left right\" with one space");
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() &&
               m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      raise(where + ": expected \"left right\" or [\"left\", \"right\"]");
    }
    auto leftId = id(left), rightId = id(right), result = id(left + right);
    for (const auto &[part, partId] :
         {std::pair{left, leftId}, {right, rightId}, {left + right, result}})
      if (!partId)
        raise(where + ": '" + part + "' is not in the vocabulary");
    // A repeated pair keeps its last rank, as in `tokenizers`.
    merges[pairKey(*leftId, *rightId)] = {static_cast<uint32_t>(rank), *result};
  }
}

const std::string *Bpe::token(int64_t id) const {
  if (id < 0 || id >= size() || !present[id])
    return nullptr;
  return &tokens[id];
}

std::optional<int64_t> Bpe::id(std::string_view token) const {
  auto it = vocab.find(std::string(token));
  if (it == vocab.end())
    return std::nullopt;
  return it->second;
}

void Bpe::encodeWord(std::string_view word, std::vector<int64_t> *ids) const {
  if (word.empty())
    return;
  std::string key(word);
  if (ignoreMerges) {
    auto it = vocab.find(key);
    if (it != vocab.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(cacheMutex);
    auto it = cache.find(key);
    if (it != cache.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int64_t> result;
  mergeWord(word, &result);
  ids->insert(ids->end(), result.begin(), result.end());
  std::lock_guard<std::mutex> lock(cacheMutex);
  if (cache.size() >= kCacheWords)
    cache.clear();
  cache.emplace(std::move(key), std::move(result));
}

void Bpe::mergeWord(std::string_view word, std::vector<int64_t> *ids) const {
  struct Symbol {
    int64_t id;
    int64_t prev, next; // indices; -1 at the ends
    size_t length;      // bytes of the word; 0 once merged away
  };
  std::vector<Symbol> symbols;
  auto add = [&](int64_t id, size_t length) {
    int64_t index = static_cast<int64_t>(symbols.size());
    if (!symbols.empty())
      symbols.back().next = index;
    symbols.push_back({id, index - 1, -1, length});
  };

  // Characters to symbols. An unknown character becomes its bytes' tokens
  // (byte fallback), else the unk token (consecutive ones fused into one
  // when fuse_unk), else nothing.
  bool pendingUnk = false; // an unk token of unkLength bytes, not yet added
  size_t unkLength = 0;
  for (size_t i = 0; i < word.size();) {
    size_t begin = i;
    nextChar(word, &i);
    std::string_view ch = word.substr(begin, i - begin);
    if (auto it = vocab.find(std::string(ch)); it != vocab.end()) {
      if (pendingUnk)
        add(*unk, unkLength);
      pendingUnk = false;
      add(it->second, ch.size());
      continue;
    }
    if (byteFallback) {
      bool all = true;
      for (char c : ch)
        all = all && byteIds[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        // `tokenizers` leaves a pending unk token after these bytes.
        for (char c : ch)
          add(byteIds[static_cast<uint8_t>(c)], 1);
        continue;
      }
    }
    if (!unk)
      continue;
    if (pendingUnk && fuseUnk) {
      unkLength += ch.size();
      continue;
    }
    if (pendingUnk)
      add(*unk, unkLength);
    pendingUnk = true;
    unkLength = ch.size();
  }
  if (pendingUnk)
    add(*unk, unkLength);

  struct Candidate {
    uint32_t rank;
    int64_t pos;
    int64_t result;
    bool operator>(const Candidate &o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int64_t pos) {
    int64_t next = symbols[pos].next;
    if (next < 0)
      return;
    auto it = merges.find(pairKey(symbols[pos].id, symbols[next].id));
    if (it != merges.end())
      queue.push({it->second.rank, pos, it->second.result});
  };
  for (int64_t pos = 0; pos + 1 < static_cast<int64_t>(symbols.size()); ++pos)
    consider(pos);

  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol &left = symbols[top.pos];
    if (left.length == 0 || left.next < 0)
      continue;
    Symbol &right = symbols[left.next];
    // Skip candidates made stale by an earlier merge.
    auto it = merges.find(pairKey(left.id, right.id));
    if (it == merges.end() || it->second.result != top.result)
      continue;
    left.id = top.result;
    left.length += right.length;
    left.next = right.next;
    right.length = 0;
    if (left.next >= 0)
      symbols[left.next].prev = top.pos;
    if (left.prev >= 0)
      consider(left.prev);
    consider(top.pos);
  }
  for (const Symbol &s : symbols)
    if (s.length)
      ids->push_back(s.id);
}

} // namespace kiln::runtime::tok
