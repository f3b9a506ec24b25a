//===- TokenizerPipeline.cpp - Normalizers, pre-tokenizers, decoders -----===//
//
// The stages of tokenizer.json around the model, each one the `tokenizers`
// package's behaviour for the components Llama-family tokenizers use. A
// "Sequence" of any stage is flattened into its steps: applying the steps in
// order is what the Sequence does.
//
//===----------------------------------------------------------------------===//

#include "TokenizerInternal.h"

#include <cctype>

namespace kiln::runtime::tok {

namespace {
const std::string kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)|\\s+";
} // namespace

struct Pipeline::Step {
  enum class Kind {
    Prepend,      // normalizer
    Replace,      // normalizer, decoder
    Strip,        // normalizer, decoder
    ByteLevel,    // pre-tokenizer, decoder
    Split,        // pre-tokenizer
    Metaspace,    // pre-tokenizer, decoder
    ByteFallback, // decoder
    Fuse,         // decoder
    Template,     // post-processor
  };
  enum class Prepend { Always, First, Never };

  Kind kind;
  std::string text; // Prepend: the prefix; Replace: the content;
                    // Metaspace: the replacement; Strip decoder: the content
  std::shared_ptr<Pattern> pattern; // Replace, Split
  std::shared_ptr<Regex> regex;     // ByteLevel with use_regex
  bool addPrefixSpace = false;      // ByteLevel
  bool invert = false;              // Split
  bool split = true;                // Metaspace
  bool left = false, right = false; // Strip normalizer
  size_t start = 0, stop = 0;       // Strip decoder
  SplitBehavior behavior = SplitBehavior::Isolated;
  Prepend prepend = Prepend::Always;
  // Template: runs of fixed ids, and the sequence itself where `isSequence`.
  std::vector<std::pair<bool, std::vector<int64_t>>> parts;
};

namespace {

using Step = Pipeline::Step;
using Kind = Step::Kind;
using Steps = std::vector<std::shared_ptr<Step>>;

/// One character, as Metaspace's replacement and Strip's content are.
std::string getChar(const Json &value, const std::string &path) {
  std::string s = getString(value, path);
  size_t i = 0;
  if (s.empty() || findInvalidUtf8(s) != std::string::npos ||
      (nextChar(s, &i), i != s.size()))
    raise(path + ": expected one character");
  return s;
}

size_t getCount(const Json &value, const std::string &path) {
  if (!value.is_number_unsigned())
    raise(path + ": expected a count");
  return value.get<size_t>();
}

Step::Prepend metaspacePrepend(const Json &obj, const std::string &path) {
  const Json &scheme = field(obj, "prepend_scheme");
  if (scheme.is_null())
    return getBool(field(obj, "add_prefix_space"),
                   fieldPath(path, "add_prefix_space"), true)
               ? Step::Prepend::Always
               : Step::Prepend::Never;
  std::string name = getString(scheme, fieldPath(path, "prepend_scheme"));
  if (name == "always")
    return Step::Prepend::Always;
  if (name == "first")
    return Step::Prepend::First;
  if (name == "never")
    return Step::Prepend::Never;
  raise(fieldPath(path, "prepend_scheme") + ": unknown scheme '" + name + "'");
}

/// Parses one stage (`what`: "normalizer", ...) into `steps`.
void parseStage(const Json &obj, const std::string &path, const char *what,
                Steps *steps) {
  if (obj.is_null())
    return;
  std::string type = typeOf(obj, path);
  const std::string stage = what;
  if (type == "Sequence") {
    const char *key = stage == "normalizer"      ? "normalizers"
                      : stage == "pre_tokenizer" ? "pretokenizers"
                      : stage == "decoder"       ? "decoders"
                                                 : "processors";
    const Json &list = field(obj, key);
    if (!list.is_array())
      raise(fieldPath(path, key) + ": expected an array");
    for (size_t i = 0; i < list.size(); ++i)
      parseStage(list[i], fieldPath(path, key) + "[" + std::to_string(i) + "]",
                 what, steps);
    return;
  }
  auto step = std::make_shared<Step>();
  auto pattern = [&]() {
    return std::make_shared<Pattern>(field(obj, "pattern"),
                                     fieldPath(path, "pattern"));
  };
  if (stage == "normalizer" && type == "Prepend") {
    step->kind = Kind::Prepend;
    step->text = getString(field(obj, "prepend"), fieldPath(path, "prepend"));
  } else if ((stage == "normalizer" || stage == "decoder") &&
             type == "Replace") {
    step->kind = Kind::Replace;
    step->pattern = pattern();
    step->text = getString(field(obj, "content"), fieldPath(path, "content"));
  } else if (stage == "normalizer" && type == "Strip") {
    step->kind = Kind::Strip;
    step->left =
        getBool(field(obj, "strip_left"), fieldPath(path, "strip_left"), true);
    step->right = getBool(field(obj, "strip_right"),
                          fieldPath(path, "strip_right"), true);
  } else if ((stage == "pre_tokenizer" || stage == "decoder") &&
             type == "ByteLevel") {
    step->kind = Kind::ByteLevel;
    step->addPrefixSpace = getBool(field(obj, "add_prefix_space"),
                                   fieldPath(path, "add_prefix_space"), true);
    if (stage == "pre_tokenizer" &&
        getBool(field(obj, "use_regex"), fieldPath(path, "use_regex"), true)) {
      static const auto gpt2 = std::make_shared<Regex>(kGpt2Pattern);
      step->regex = gpt2;
    }
  } else if (stage == "pre_tokenizer" && type == "Split") {
    step->kind = Kind::Split;
    step->pattern = pattern();
    step->behavior =
        parseSplitBehavior(field(obj, "behavior"), fieldPath(path, "behavior"));
    step->invert =
        getBool(field(obj, "invert"), fieldPath(path, "invert"), false);
  } else if ((stage == "pre_tokenizer" || stage == "decoder") &&
             type == "Metaspace") {
    step->kind = Kind::Metaspace;
    step->text =
        getChar(field(obj, "replacement"), fieldPath(path, "replacement"));
    step->prepend = metaspacePrepend(obj, path);
    step->split = getBool(field(obj, "split"), fieldPath(path, "split"), true);
  } else if (stage == "decoder" && type == "ByteFallback") {
    step->kind = Kind::ByteFallback;
  } else if (stage == "decoder" && type == "Fuse") {
    step->kind = Kind::Fuse;
  } else if (stage == "decoder" && type == "Strip") {
    step->kind = Kind::Strip;
    step->text = getChar(field(obj, "content"), fieldPath(path, "content"));
    step->start = getCount(field(obj, "start"), fieldPath(path, "start"));
    step->stop = getCount(field(obj, "stop"), fieldPath(path, "stop"));
  } else if (stage == "post_processor" && type == "ByteLevel") {
    return; // it only trims offsets
  } else if (stage == "post_processor" && type == "TemplateProcessing") {
    step->kind = Kind::Template;
    const Json &single = field(obj, "single");
    const Json &special = field(obj, "special_tokens");
    if (!single.is_array())
      raise(fieldPath(path, "single") + ": expected an array");
    for (size_t i = 0; i < single.size(); ++i) {
      std::string where =
          fieldPath(path, "single") + "[" + std::to_string(i) + "]";
      const Json &token = field(single[i], "SpecialToken");
      if (field(single[i], "Sequence").is_object()) {
        step->parts.push_back({true, {}});
      } else if (token.is_object()) {
        std::string name =
            getString(field(token, "id"), where + ".SpecialToken.id");
        const Json &ids = field(field(special, name.c_str()), "ids");
        if (!ids.is_array())
          raise(where + ": special token '" + name +
                "' has no ids in special_tokens");
        std::vector<int64_t> values;
        for (const Json &id : ids)
          values.push_back(getInt(id, where + ".ids"));
        step->parts.push_back({false, values});
      } else {
        raise(where + ": expected {\"SpecialToken\": ...} or "
                      "{\"Sequence\": ...}");
      }
    }
  } else {
    raise(path + ": " + stage + " '" + type + "' is not supported");
  }
  steps->push_back(step);
}

void stripWhitespace(std::string *text, bool left, bool right) {
  size_t begin = 0, end = text->size();
  if (left)
    for (size_t i = 0; i < text->size() && isWhitespace(nextChar(*text, &i));)
      begin = i;
  if (right) {
    // Walk back over the trailing characters (continuation bytes first).
    while (end > begin) {
      size_t at = end - 1;
      while (at > begin && (static_cast<uint8_t>((*text)[at]) & 0xC0) == 0x80)
        --at;
      size_t i = at;
      if (!isWhitespace(nextChar(*text, &i)))
        break;
      end = at;
    }
  }
  *text = text->substr(begin, end - begin);
}

/// Splits each piece of `pieces` at the ranges `split` gives for it.
template <typename Fn> void splitPieces(std::vector<Piece> *pieces, Fn split) {
  std::vector<Piece> out;
  for (Piece &piece : *pieces) {
    std::vector<Range> ranges = split(&piece);
    for (const Range &r : ranges)
      out.push_back({piece.text.substr(r.first, r.second - r.first),
                     piece.atStart && r.first == 0});
  }
  *pieces = std::move(out);
}

std::vector<Range> whole(const std::string &text) {
  return text.empty() ? std::vector<Range>()
                      : std::vector<Range>{{0, text.size()}};
}

} // namespace

Pipeline::Pipeline(const Json &root) {
  parseStage(field(root, "normalizer"), "normalizer", "normalizer",
             &normalizers);
  parseStage(field(root, "pre_tokenizer"), "pre_tokenizer", "pre_tokenizer",
             &preTokenizers);
  parseStage(field(root, "decoder"), "decoder", "decoder", &decoders);
  parseStage(field(root, "post_processor"), "post_processor", "post_processor",
             &processors);
  hasDecoder = !field(root, "decoder").is_null();
}

void Pipeline::normalize(std::string *text) const {
  for (const auto &step : normalizers) {
    switch (step->kind) {
    case Kind::Prepend:
      if (!text->empty())
        *text = step->text + *text;
      break;
    case Kind::Replace:
      *text = replaceAll(*text, *step->pattern, step->text);
      break;
    case Kind::Strip:
      stripWhitespace(text, step->left, step->right);
      break;
    default:
      break;
    }
  }
}

void Pipeline::preTokenize(std::vector<Piece> *pieces) const {
  for (const auto &step : preTokenizers) {
    const Step &s = *step;
    if (s.kind == Kind::ByteLevel) {
      splitPieces(pieces, [&](Piece *piece) {
        if (s.addPrefixSpace && piece->text[0] != ' ')
          piece->text.insert(0, " ");
        if (!s.regex)
          return whole(piece->text);
        std::vector<Range> matches;
        s.regex->findAll(piece->text, &matches);
        return splitRanges(piece->text.size(), matches, SplitBehavior::Isolated,
                           false);
      });
      for (Piece &piece : *pieces) {
        std::string mapped;
        for (char c : piece.text)
          mapped += byteLevelChar(static_cast<uint8_t>(c));
        piece.text = std::move(mapped);
      }
    } else if (s.kind == Kind::Split) {
      splitPieces(pieces, [&](Piece *piece) {
        std::vector<Range> matches;
        s.pattern->findAll(piece->text, &matches);
        return splitRanges(piece->text.size(), matches, s.behavior, s.invert);
      });
    } else if (s.kind == Kind::Metaspace) {
      Pattern space(" "), replacement(s.text);
      splitPieces(pieces, [&](Piece *piece) {
        piece->text = replaceAll(piece->text, space, s.text);
        bool starts = piece->text.compare(0, s.text.size(), s.text) == 0;
        if (!starts && (s.prepend == Step::Prepend::Always ||
                        (s.prepend == Step::Prepend::First && piece->atStart)))
          piece->text.insert(0, s.text);
        if (!s.split)
          return whole(piece->text);
        std::vector<Range> matches;
        replacement.findAll(piece->text, &matches);
        return splitRanges(piece->text.size(), matches,
                           SplitBehavior::MergedWithNext, false);
      });
    }
  }
}

std::string Pipeline::decode(std::vector<std::string> tokens) const {
  if (!hasDecoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i)
      out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const auto &step : decoders) {
    const Step &s = *step;
    switch (s.kind) {
    case Kind::ByteLevel: {
      // A token whose characters are all byte-level ones stands for those
      // bytes; any other token (an added token) for its own UTF-8.
      std::string bytes;
      for (const std::string &token : tokens) {
        std::string mapped;
        bool all = true;
        for (size_t i = 0; i < token.size() && all;) {
          int b = byteLevelByte(nextChar(token, &i));
          all = b >= 0;
          mapped.push_back(static_cast<char>(b));
        }
        bytes += all ? mapped : token;
      }
      std::string text;
      appendLossy(bytes, &text);
      tokens.assign(1, std::move(text));
      break;
    }
    case Kind::Metaspace:
      // Every replacement character becomes a space, except in the first
      // token, where it is dropped (it marked the prepended space).
      for (size_t t = 0; t < tokens.size(); ++t) {
        bool drop = t == 0 && s.prepend != Step::Prepend::Never;
        tokens[t] = replaceAll(tokens[t], Pattern(s.text), drop ? "" : " ");
      }
      break;
    case Kind::Replace:
      for (std::string &token : tokens)
        token = replaceAll(token, *s.pattern, s.text);
      break;
    case Kind::ByteFallback: {
      // Runs of <0xNN> tokens become their bytes when those are valid UTF-8,
      // else one U+FFFD per byte.
      std::vector<std::string> out;
      std::string run;
      size_t runTokens = 0;
      auto flush = [&]() {
        if (!runTokens)
          return;
        if (findInvalidUtf8(run) == std::string::npos)
          out.push_back(run);
        else
          out.insert(out.end(), runTokens, "\xEF\xBF\xBD");
        run.clear();
        runTokens = 0;
      };
      for (std::string &token : tokens) {
        if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 &&
            token[5] == '>' && std::isxdigit(static_cast<uint8_t>(token[3])) &&
            std::isxdigit(static_cast<uint8_t>(token[4]))) {
          run.push_back(
              static_cast<char>(std::stoi(token.substr(3, 2), nullptr, 16)));
          ++runTokens;
          continue;
        }
        flush();
        out.push_back(std::move(token));
      }
      flush();
      tokens = std::move(out);
      break;
    }
    case Kind::Fuse: {
      std::string all;
      for (const std::string &token : tokens)
        all += token;
      tokens.assign(1, std::move(all));
      break;
    }
    case Kind::Strip:
      // Up to `start` leading and `stop` trailing copies of the content.
      for (std::string &token : tokens) {
        size_t begin = 0, end = token.size(), n = s.text.size();
        for (size_t k = 0; k < s.start && token.compare(begin, n, s.text) == 0;
             ++k)
          begin += n;
        for (size_t k = 0; k < s.stop && end >= begin + n &&
                           token.compare(end - n, n, s.text) == 0;
             ++k)
          end -= n;
        token = token.substr(begin, end - begin);
      }
      break;
    default:
      break;
    }
  }
  std::string out;
  for (const std::string &token : tokens)
    out += token;
  return out;
}

void Pipeline::postProcess(std::vector<int64_t> *ids) const {
  for (const auto &step : processors) {
    std::vector<int64_t> out;
    for (const auto &[isSequence, values] : step->parts)
      out.insert(out.end(), isSequence ? ids->begin() : values.begin(),
                 isSequence ? ids->end() : values.end());
    *ids = std::move(out);
  }
}

} // namespace kiln::runtime::tok
