//===- Tokenizer.h - Text to token ids and back ---------------------------===//
//
// A Hugging Face tokenizer (tokenizer.json) in C++, encoding and decoding
// exactly as the `tokenizers` package does for the BPE tokenizers of Llama-
// family models:
//
//   - byte-level BPE (GPT-2, Llama 3): `ByteLevel` and `Split` (regex)
//     pre-tokenizers, `ByteLevel` decoder;
//   - SentencePiece-style BPE (Llama 2): `Prepend`/`Replace` normalizers or a
//     `Metaspace` pre-tokenizer, byte fallback (<0xNN> tokens), unk token,
//     `Replace`/`ByteFallback`/`Fuse`/`Strip`/`Metaspace` decoders;
//   - added tokens matched in the raw text before the model (leftmost, then
//     longest), a `TemplateProcessing` post-processor for BOS/EOS.
//
// Anything else (WordPiece or Unigram models, Unicode normalization forms,
// other pre-tokenizers) is refused when loading, with the name of what is
// not supported. No method throws; failures are one-line messages.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_TOKENIZER_H
#define KILN_RUNTIME_TOKENIZER_H

#include "kiln/runtime/ArtifactTypes.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::runtime {

class Tokenizer {
public:
  /// Reads tokenizer.json from `directory`, and tokenizer_config.json and
  /// generation_config.json when they are there. Does not parse them.
  static bool readFiles(const std::string &directory, TokenizerFiles *files,
                        std::string *error);

  /// Parses and checks the files. Messages start with the file's name
  /// ("tokenizer.json: model.merges[3]: ...").
  static std::unique_ptr<Tokenizer> create(const TokenizerFiles &files,
                                           std::string *error);
  ~Tokenizer();
  Tokenizer(const Tokenizer &) = delete;
  Tokenizer &operator=(const Tokenizer &) = delete;

  struct EncodeOptions {
    /// Add what the post-processor adds (BOS, ...); tokenizer_config.json's
    /// add_bos_token / add_eos_token replace it when given there.
    bool addSpecialTokens = true;
    /// Match special added tokens ("<|begin_of_text|>") in the text; when
    /// false they are encoded as plain text.
    bool parseSpecialTokens = true;
  };

  /// Fails only on text that is not valid UTF-8 (or a regex engine limit).
  /// Safe to call from several threads at once.
  bool encode(std::string_view text, const EncodeOptions &options,
              std::vector<int64_t> *ids, std::string *error) const;

  /// The text of `ids`. Ids that name no token are skipped, as the
  /// `tokenizers` package does; invalid UTF-8 that the tokens spell becomes
  /// U+FFFD.
  std::string decode(const std::vector<int64_t> &ids,
                     bool skipSpecialTokens = false) const;

  /// One past the largest id of the vocabulary and the added tokens.
  int64_t vocabSize() const;
  std::optional<int64_t> tokenToId(std::string_view token) const;
  /// Null when `id` names no token.
  const std::string *idToToken(int64_t id) const;
  bool isSpecial(int64_t id) const;

  /// Ids that end a generation: generation_config.json's eos_token_id (one
  /// or a list) and tokenizer_config.json's eos_token, without duplicates.
  const std::vector<int64_t> &eosIds() const;
  /// tokenizer_config.json's bos_token / eos_token (empty when absent).
  const std::string &bosToken() const;
  const std::string &eosToken() const;
  /// tokenizer_config.json's chat_template (its "default" entry when it is a
  /// list); empty when absent. Stored for a later renderer.
  const std::string &chatTemplate() const;

  struct Impl;

private:
  Tokenizer();
  std::unique_ptr<Impl> impl;
};

/// Decodes ids one at a time as a model generates them, emitting text as
/// soon as it is final: a token that ends inside a UTF-8 character (or a
/// byte-fallback run) waits for the tokens that complete it. Text is decoded
/// in a short window after the last emitted text, like the `tokenizers`
/// package's DecodeStream, so rules that depend on the first token (the
/// leading space that SentencePiece tokenizers strip) apply once, at the
/// start. The concatenation of everything step() and finish() return equals
/// Tokenizer::decode of all the ids.
class StreamDecoder {
public:
  explicit StreamDecoder(const Tokenizer &tokenizer,
                         bool skipSpecialTokens = false);

  /// Appends the text that `id` completes to `*text` (often nothing).
  /// Fails, and should then be abandoned, only when the window's text does
  /// not extend what was already emitted.
  bool step(int64_t id, std::string *text, std::string *error);
  /// Appends what is still held back (an incomplete character decodes to
  /// U+FFFD, as in decode()) and starts over, as for a new sequence.
  void finish(std::string *text);

private:
  const Tokenizer &tokenizer;
  bool skipSpecial;
  std::vector<int64_t> ids; // the window: the prefix's ids, then newer
  std::string prefix;       // decode of ids[0, prefixIndex)
  size_t prefixIndex = 0;
};

/// Ends generated text at the first of some stop strings. Text that could
/// still become a stop string is held back until it is known not to, so the
/// stop string itself is never shown.
class StopStrings {
public:
  /// `stops` must not contain an empty string.
  explicit StopStrings(std::vector<std::string> stops);
  /// Adds newly generated text and appends to `*out` what is now known to
  /// come before any stop string. Returns true when a stop string appeared:
  /// `*out` then ends just before it.
  bool feed(std::string_view text, std::string *out);
  /// Appends the text held back, when the generation ends otherwise.
  void finish(std::string *out);

private:
  std::vector<std::string> stops;
  std::string pending;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_TOKENIZER_H
