//===- TokenizerInternal.h - The parts of the tokenizer ------------------===//
//
// Shared by Tokenizer.cpp (loading, added tokens, encode/decode),
// TokenizerText.cpp (UTF-8, the byte-level alphabet, PCRE2 regexes and the
// `tokenizers` split behaviours), TokenizerBpe.cpp (the BPE model) and
// TokenizerPipeline.cpp (normalizers, pre-tokenizers, decoders,
// post-processor). Inside these files errors are thrown as tok::Error; the
// public API catches them and returns one-line messages.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_LIB_TOKENIZERINTERNAL_H
#define KILN_RUNTIME_LIB_TOKENIZERINTERNAL_H

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kiln::runtime::tok {

using Json = nlohmann::json;

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void raise(const std::string &message);

//===-- JSON access with the path of the value in messages ---------------===//

/// obj[key]; a missing key (or obj not an object) reads as null.
const Json &field(const Json &obj, const char *key);
/// The path of obj[key] in messages, from obj's ("pre_tokenizer.pattern").
std::string fieldPath(const std::string &path, const char *key);
std::string getString(const Json &value, const std::string &path);
bool getBool(const Json &value, const std::string &path, bool fallback);
int64_t getInt(const Json &value, const std::string &path);
/// A string-valued "type" field.
std::string typeOf(const Json &obj, const std::string &path);

//===-- UTF-8 -------------------------------------------------------------===//

/// Byte offset of the first byte that is not part of valid UTF-8 (no
/// overlong forms, surrogates or code points past U+10FFFF); npos if none.
size_t findInvalidUtf8(std::string_view text);
/// Appends `bytes` with every maximal invalid subsequence replaced by one
/// U+FFFD, as Rust's String::from_utf8_lossy does.
void appendLossy(std::string_view bytes, std::string *out);
/// Decodes the character at `*i` of valid UTF-8 and advances past it.
uint32_t nextChar(std::string_view text, size_t *i);
void appendChar(uint32_t codePoint, std::string *out);
/// Unicode White_Space (Rust's char::is_whitespace).
bool isWhitespace(uint32_t codePoint);

//===-- The byte-level alphabet (GPT-2) -----------------------------------===//

/// The UTF-8 of the printable character that stands for `byte`.
const std::string &byteLevelChar(uint8_t byte);
/// The byte a byte-level character stands for; -1 if it is none.
int byteLevelByte(uint32_t codePoint);

//===-- Patterns and splitting --------------------------------------------===//

using Range = std::pair<size_t, size_t>; // [begin, end) in bytes

/// A PCRE2 regex (UTF, UCP: \s, \w and \d are Unicode-aware like the
/// Oniguruma regexes of the `tokenizers` package), JIT-compiled when the
/// platform allows.
class Regex {
public:
  /// Throws Error with PCRE2's message and the offset in the pattern.
  explicit Regex(const std::string &pattern);
  ~Regex();
  Regex(const Regex &) = delete;
  Regex &operator=(const Regex &) = delete;
  /// Non-overlapping matches, left to right; after an empty match the search
  /// moves on one character. `text` must be valid UTF-8.
  void findAll(std::string_view text, std::vector<Range> *matches) const;
  /// Whether the pattern matches the character that starts at `at`.
  bool matchesAt(std::string_view text, size_t at) const;

private:
  struct Code;
  std::unique_ptr<Code> code;
};

/// A `tokenizers` pattern: {"String": "..."} (a literal) or {"Regex": ...}.
class Pattern {
public:
  Pattern(const Json &value, const std::string &path);
  explicit Pattern(std::string literal) : literal(std::move(literal)) {}
  void findAll(std::string_view text, std::vector<Range> *matches) const;

private:
  std::string literal;
  std::shared_ptr<Regex> regex;
};

/// Replaces every match of `pattern` in `text` with `content`.
std::string replaceAll(const std::string &text, const Pattern &pattern,
                       const std::string &content);

/// SplitDelimiterBehavior: what becomes of the matches when splitting.
enum class SplitBehavior {
  Removed,
  Isolated,
  MergedWithPrevious,
  MergedWithNext,
  Contiguous
};
SplitBehavior parseSplitBehavior(const Json &value, const std::string &path);
/// The pieces of a text of `length` bytes split at `matches` (sorted,
/// non-overlapping); `invert` swaps matches and the text between them.
/// Empty pieces are dropped.
std::vector<Range> splitRanges(size_t length, const std::vector<Range> &matches,
                               SplitBehavior behavior, bool invert);

//===-- The BPE model -----------------------------------------------------===//

class Bpe {
public:
  /// Reads the "model" object of tokenizer.json; throws Error.
  explicit Bpe(const Json &model);
  /// Appends the ids of one pre-tokenized word.
  void encodeWord(std::string_view word, std::vector<int64_t> *ids) const;
  /// Null when `id` is not in the vocabulary.
  const std::string *token(int64_t id) const;
  std::optional<int64_t> id(std::string_view token) const;
  /// One past the largest id.
  int64_t size() const { return static_cast<int64_t>(tokens.size()); }

private:
  void mergeWord(std::string_view word, std::vector<int64_t> *ids) const;

  std::unordered_map<std::string, int64_t> vocab;
  std::vector<std::string> tokens; // by id; holes are empty
  std::vector<bool> present;
  struct Merge {
    uint32_t rank;
    int64_t result;
  };
  std::unordered_map<uint64_t, Merge> merges; // (left << 32 | right)
  std::optional<int64_t> unk;
  bool fuseUnk = false;
  bool byteFallback = false;
  bool ignoreMerges = false;
  int64_t byteIds[256];

  // Words seen before, with their ids: most words of a text repeat.
  mutable std::mutex cacheMutex;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache;
};

//===-- Normalizers, pre-tokenizers, decoders, post-processor
//--------------===//

/// A piece of text on its way to the model. `atStart`: it begins at the
/// first byte of the input (Metaspace's prepend_scheme "first").
struct Piece {
  std::string text;
  bool atStart = false;
};

class Pipeline {
public:
  /// Reads "normalizer", "pre_tokenizer", "decoder" and "post_processor"
  /// of tokenizer.json; throws Error.
  explicit Pipeline(const Json &root);

  bool hasNormalizer() const { return !normalizers.empty(); }
  void normalize(std::string *text) const;
  /// Splits `pieces` into words for the model (byte-level mapped when a
  /// ByteLevel pre-tokenizer says so).
  void preTokenize(std::vector<Piece> *pieces) const;
  /// The decoder chain over the tokens' strings, concatenated; without a
  /// decoder the tokens joined by spaces.
  std::string decode(std::vector<std::string> tokens) const;
  /// The post-processor around the ids of one sequence.
  void postProcess(std::vector<int64_t> *ids) const;

  struct Step;

private:
  std::vector<std::shared_ptr<Step>> normalizers, preTokenizers, decoders,
      processors;
  bool hasDecoder = false;
};

} // namespace kiln::runtime::tok

#endif // KILN_RUNTIME_LIB_TOKENIZERINTERNAL_H
