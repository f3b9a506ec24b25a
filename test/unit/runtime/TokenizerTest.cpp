//===- TokenizerTest.cpp - Streaming decoder, stop strings, errors -------===//
//
// The comparison with the `tokenizers` package over a corpus is the lit test
// test/Tokenizer/tokenizers-compat.test; these are the cases it cannot
// reach: text held back and flushed by the streaming decoder, StopStrings,
// and every refusal of a tokenizer or a text.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "kiln/runtime/Tokenizer.h"

using namespace kiln::runtime;

namespace {

// Byte-level: 0 <s>, 1 </s> (special), then H i Ġ Ã © ! (Ã © are the bytes
// of "é"), and "Ġi" from the merge of Ġ and i.
const char *kByteLevel = R"({
  "added_tokens": [
    {"id": 0, "content": "<s>", "special": true, "normalized": false},
    {"id": 1, "content": "</s>", "special": true, "normalized": false}],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
               {"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}},
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "vocab": {"<s>": 0, "</s>": 1, "H": 2, "i": 3,
    "Ġ": 4, "Ã": 5, "©": 6, "!": 7, "Ġi": 8}, "merges": ["Ġ i"]}
})";

// SentencePiece-style (Llama 2): <unk> <s> </s>, byte tokens for the bytes
// of "你" (E4 BD A0) and "é" (C3 A9), whole words with "▁", byte fallback,
// the Replace · ByteFallback · Fuse · Strip decoder.
const char *kSentencePiece = R"({
  "added_tokens": [
    {"id": 0, "content": "<unk>", "special": true, "normalized": false},
    {"id": 1, "content": "<s>", "special": true, "normalized": false},
    {"id": 2, "content": "</s>", "special": true, "normalized": false}],
  "normalizer": {"type": "Sequence", "normalizers": [
    {"type": "Prepend", "prepend": "▁"},
    {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
  "pre_tokenizer": null,
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
               {"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
  "decoder": {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true,
    "fuse_unk": true, "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2,
      "<0xE4>": 3, "<0xBD>": 4, "<0xA0>": 5, "<0xC3>": 6, "<0xA9>": 7,
      "▁Hello": 8, "▁world": 9, "▁": 10, "H": 11, "e": 12, "l": 13, "o": 14,
      "▁H": 15, "▁He": 16, "▁Hel": 17, "▁Hell": 18},
    "merges": [["▁", "H"], ["▁H", "e"], ["▁He", "l"], ["▁Hel", "l"],
               ["▁Hell", "o"]]}
})";

std::unique_ptr<Tokenizer> load(const std::string &json,
                                const std::string &config = "") {
  TokenizerFiles files;
  files.tokenizerJson = json;
  files.tokenizerConfigJson = config;
  std::string error;
  auto tokenizer = Tokenizer::create(files, &error);
  EXPECT_TRUE(tokenizer) << error;
  return tokenizer;
}

/// What each step emits, then what finish() emits.
std::vector<std::string> stream(const Tokenizer &tokenizer,
                                const std::vector<int64_t> &ids,
                                bool skipSpecial = false) {
  StreamDecoder decoder(tokenizer, skipSpecial);
  std::vector<std::string> out;
  for (int64_t id : ids) {
    std::string text, error;
    EXPECT_TRUE(decoder.step(id, &text, &error)) << error;
    out.push_back(text);
  }
  std::string rest;
  decoder.finish(&rest);
  out.push_back(rest);
  return out;
}

std::string loadError(const std::string &json, const std::string &config = "") {
  TokenizerFiles files;
  files.tokenizerJson = json;
  files.tokenizerConfigJson = config;
  std::string error;
  EXPECT_FALSE(Tokenizer::create(files, &error));
  return error;
}

/// kByteLevel with `from` replaced by `to` (once).
std::string byteLevelWith(const std::string &from, const std::string &to) {
  std::string json = kByteLevel;
  size_t at = json.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return json.replace(at, from.size(), to);
}

TEST(TokenizerTest, EncodesAndDecodes) {
  auto byteLevel = load(kByteLevel);
  std::vector<int64_t> ids;
  std::string error;
  ASSERT_TRUE(byteLevel->encode("Hi é! i</s>", {}, &ids, &error)) << error;
  EXPECT_EQ(ids, (std::vector<int64_t>{0, 2, 3, 4, 5, 6, 7, 8, 1}));
  EXPECT_EQ(byteLevel->decode(ids), "<s>Hi é! i</s>");
  EXPECT_EQ(byteLevel->decode(ids, /*skipSpecialTokens=*/true), "Hi é! i");

  auto sp = load(kSentencePiece);
  ASSERT_TRUE(sp->encode("Hello 你é", {}, &ids, &error)) << error;
  EXPECT_EQ(ids, (std::vector<int64_t>{1, 8, 10, 3, 4, 5, 6, 7}));
  EXPECT_EQ(sp->decode(ids), "<s> Hello 你é");
  EXPECT_EQ(sp->decode(ids, true), "Hello 你é");
  // Characters without a byte token become one (fused) <unk>.
  ASSERT_TRUE(sp->encode("Hello ab", {false, true}, &ids, &error)) << error;
  EXPECT_EQ(ids, (std::vector<int64_t>{8, 10, 0}));
}

TEST(TokenizerTest, DecodeSkipsUnknownIdsAndReplacesInvalidUtf8) {
  auto byteLevel = load(kByteLevel);
  EXPECT_EQ(byteLevel->decode({2, -1, 99, 3}), "Hi");
  // "Ã" alone is the byte C3: an incomplete character.
  EXPECT_EQ(byteLevel->decode({5, 2}), "\xEF\xBF\xBDH");
  // Byte fallback: an invalid run is one U+FFFD per byte.
  auto sp = load(kSentencePiece);
  EXPECT_EQ(sp->decode({3, 4, 8}), "\xEF\xBF\xBD\xEF\xBF\xBD Hello");
}

TEST(StreamDecoderTest, WaitsForWholeCharacters) {
  auto byteLevel = load(kByteLevel);
  EXPECT_EQ(stream(*byteLevel, {2, 4, 5, 6, 7}),
            (std::vector<std::string>{"H", " ", "", "é", "!", ""}));
  // Ending inside a character: finish() gives what decode() gives.
  EXPECT_EQ(stream(*byteLevel, {2, 5}),
            (std::vector<std::string>{"H", "", "\xEF\xBF\xBD"}));
  auto sp = load(kSentencePiece);
  EXPECT_EQ(stream(*sp, {3, 4, 5, 6, 7}),
            (std::vector<std::string>{"", "", "你", "", "é", ""}));
}

TEST(StreamDecoderTest, StripsTheLeadingSpaceOnce) {
  auto sp = load(kSentencePiece);
  EXPECT_EQ(stream(*sp, {8, 9, 9}),
            (std::vector<std::string>{"Hello", " world", " world", ""}));
  EXPECT_EQ(stream(*sp, {1, 8, 9}, /*skipSpecial=*/true),
            (std::vector<std::string>{"", "Hello", " world", ""}));
  EXPECT_EQ(stream(*sp, {1, 8}),
            (std::vector<std::string>{"<s>", " Hello", ""}));

  // After finish() a new sequence starts: its first space goes again.
  StreamDecoder decoder(*sp);
  std::string text, error;
  ASSERT_TRUE(decoder.step(8, &text, &error));
  decoder.finish(&text);
  ASSERT_TRUE(decoder.step(9, &text, &error));
  EXPECT_EQ(text, "Helloworld");
}

TEST(StopStringsTest, HoldsBackWhatMayStartAStopString) {
  StopStrings stops({"\n\n", "END"});
  std::string out;
  EXPECT_FALSE(stops.feed("one\n", &out));
  EXPECT_EQ(out, "one");
  EXPECT_FALSE(stops.feed("two E", &out));
  EXPECT_EQ(out, "one\ntwo ");
  EXPECT_FALSE(stops.feed("Nx", &out));
  EXPECT_EQ(out, "one\ntwo ENx");
  EXPECT_TRUE(stops.feed("\nthree\n\nfour", &out));
  EXPECT_EQ(out, "one\ntwo ENx\nthree");

  StopStrings never({"zz"});
  out.clear();
  EXPECT_FALSE(never.feed("abz", &out));
  EXPECT_EQ(out, "ab");
  never.finish(&out);
  EXPECT_EQ(out, "abz");
}

TEST(TokenizerTest, RefusesInvalidUtf8) {
  auto byteLevel = load(kByteLevel);
  std::vector<int64_t> ids;
  const std::pair<const char *, const char *> cases[] = {
      {"H\x80", "byte 1"},              // a lone continuation byte
      {"Hi\xC0\x80", "byte 2"},         // an overlong NUL
      {"\xED\xA0\x80", "byte 0"},       // a surrogate
      {"ok\xF4\x90\x80\x80", "byte 2"}, // past U+10FFFF
      {"H\xE4\xBD", "byte 1"},          // cut short
      {"\xFF", "byte 0"}};
  for (auto [text, where] : cases) {
    std::string error;
    EXPECT_FALSE(byteLevel->encode(text, {}, &ids, &error)) << text;
    EXPECT_EQ(error, std::string("text is not valid UTF-8 (") + where + ")");
  }
}

TEST(TokenizerTest, RefusesWhatItDoesNotSupport) {
  EXPECT_EQ(
      loadError(byteLevelWith(R"("type": "BPE")", R"("type": "WordPiece")")),
      "tokenizer.json: model type 'WordPiece' is not supported (only BPE)");
  EXPECT_EQ(
      loadError(byteLevelWith(R"("type": "BPE")", R"("type": "Unigram")")),
      "tokenizer.json: model type 'Unigram' is not supported (only BPE)");
  EXPECT_EQ(loadError(byteLevelWith(R"("normalizer": null)",
                                    R"("normalizer": {"type": "NFKC"})")),
            "tokenizer.json: normalizer: normalizer 'NFKC' is not supported");
  EXPECT_EQ(loadError(byteLevelWith(
                R"({"type": "ByteLevel", "add_prefix_space": false})",
                R"({"type": "Split", "pattern": {"Regex": "a[b"},
                    "behavior": "Isolated"})")),
            "tokenizer.json: pre_tokenizer.pattern.Regex: bad regex 'a[b': "
            "missing terminating ] for character class at offset 3");
  EXPECT_EQ(loadError(byteLevelWith(R"("decoder": {"type": "ByteLevel"})",
                                    R"("decoder": {"type": "WordPiece"})")),
            "tokenizer.json: decoder: decoder 'WordPiece' is not supported");
  EXPECT_EQ(loadError(byteLevelWith(R"("merges": ["Ġ i"])",
                                    R"("merges": ["Ġ i", ["i", "H"]])")),
            "tokenizer.json: model.merges[1]: 'iH' is not in the vocabulary");
  EXPECT_EQ(loadError(byteLevelWith(R"("type": "BPE",)",
                                    R"("type": "BPE", "dropout": 0.1,)")),
            "tokenizer.json: model.dropout is not supported (BPE dropout is "
            "for training)");
}

TEST(TokenizerTest, MalformedFilesNeverCrash) {
  // Wrong types anywhere: one message, no exception, no abort.
  const char *variants[][2] = {
      {R"("vocab": {)", R"("vocab": [], "x": {)"},
      {R"("merges": ["Ġ i"])", R"("merges": "Ġ i")"},
      {R"("merges": ["Ġ i"])", R"("merges": [["Ġ"]])"},
      {R"("added_tokens": [)", R"("added_tokens": 3, "y": [)"},
      {R"({"id": 0, "content": "<s>")", R"({"id": "zero", "content": "<s>")"},
      {R"("ids": [0])", R"("ids": ["0"])"},
      {R"("single": [)", R"("single": [7, )"},
      {R"({"type": "ByteLevel"})", R"({"type": 5})"},
      {R"("<s>": 0, "</s>": 1,)", R"("<s>": 0, "</s>": -1,)"},
      {R"("<s>": 0, "</s>": 1,)", R"("<s>": 0, "</s>": 99999999999,)"},
  };
  for (auto &[from, to] : variants)
    EXPECT_FALSE(loadError(byteLevelWith(from, to)).empty()) << to;
  EXPECT_HAS_SUBSTR(loadError("{\"model\": "), "tokenizer.json: parse error");
  EXPECT_EQ(loadError("[]"), "tokenizer.json: expected a JSON object");
  EXPECT_EQ(loadError(""), "tokenizer.json: parse error at line 1, column 1: "
                           "syntax error while parsing value - unexpected "
                           "end of input; expected '[', '{', or a literal");
}

TEST(TokenizerTest, ReadsTokenizerConfig) {
  auto tokenizer =
      load(kSentencePiece, R"({"add_bos_token": true, "add_eos_token": true,
        "bos_token": "<s>", "eos_token": {"content": "</s>"},
        "chat_template": "{{ messages }}"})");
  std::vector<int64_t> ids;
  std::string error;
  ASSERT_TRUE(tokenizer->encode("Hello", {}, &ids, &error)) << error;
  EXPECT_EQ(ids, (std::vector<int64_t>{1, 8, 2}));
  EXPECT_EQ(tokenizer->eosIds(), (std::vector<int64_t>{2}));
  EXPECT_EQ(tokenizer->chatTemplate(), "{{ messages }}");
  EXPECT_EQ(loadError(kSentencePiece, R"({"add_eos_token": true})"),
            "tokenizer_config.json: add_eos_token is true but there is no "
            "eos_token");
  EXPECT_EQ(loadError(kSentencePiece, R"({"add_bos_token": "yes"})"),
            "tokenizer_config.json: add_bos_token: expected true or false");
}

} // namespace
