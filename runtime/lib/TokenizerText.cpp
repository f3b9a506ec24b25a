//===- TokenizerText.cpp - UTF-8, byte-level alphabet, regexes, splits ---===//

#include "TokenizerInternal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>

namespace kiln::runtime::tok {

void raise(const std::string &message) { throw Error(message); }

//===-- JSON access -------------------------------------------------------===//

const Json &field(const Json &obj, const char *key) {
  static const Json null;
  if (!obj.is_object())
    return null;
  auto it = obj.find(key);
  return it == obj.end() ? null : *it;
}

std::string fieldPath(const std::string &path, const char *key) {
  return path.empty() ? key : path + "." + key;
}

std::string getString(const Json &value, const std::string &path) {
  if (!value.is_string())
    raise(path + ": expected a string");
  return value.get<std::string>();
}

bool getBool(const Json &value, const std::string &path, bool fallback) {
  if (value.is_null())
    return fallback;
  if (!value.is_boolean())
    raise(path + ": expected true or false");
  return value.get<bool>();
}

int64_t getInt(const Json &value, const std::string &path) {
  if (!value.is_number_integer() ||
      (value.is_number_unsigned() &&
       value.get<uint64_t>() > uint64_t(INT32_MAX)) ||
      (!value.is_number_unsigned() && value.get<int64_t>() < 0))
    raise(path + ": expected a token id (an integer in [0, 2^31))");
  return value.get<int64_t>();
}

std::string typeOf(const Json &obj, const std::string &path) {
  if (!obj.is_object())
    raise(path + ": expected an object");
  return getString(field(obj, "type"), fieldPath(path, "type"));
}

//===-- UTF-8 -------------------------------------------------------------===//

namespace {

/// The length of the well-formed character at `p` (`avail` bytes left), or 0
/// with `*bad` set to the length of the maximal invalid subsequence there.
size_t charAt(const uint8_t *p, size_t avail, size_t *bad) {
  uint8_t b = p[0];
  if (b < 0x80)
    return 1;
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF; // the range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    need = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 3;
    if (b == 0xE0)
      lo = 0xA0;
    if (b == 0xED)
      hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 4;
    if (b == 0xF0)
      lo = 0x90;
    if (b == 0xF4)
      hi = 0x8F;
  } else {
    *bad = 1;
    return 0;
  }
  for (size_t k = 1; k < need; ++k) {
    uint8_t c = k < avail ? p[k] : 0;
    bool ok =
        k < avail && (k == 1 ? c >= lo && c <= hi : c >= 0x80 && c <= 0xBF);
    if (!ok) {
      *bad = k;
      return 0;
    }
  }
  return need;
}

} // namespace

size_t findInvalidUtf8(std::string_view text) {
  const auto *p = reinterpret_cast<const uint8_t *>(text.data());
  for (size_t i = 0, bad; i < text.size();) {
    size_t n = charAt(p + i, text.size() - i, &bad);
    if (!n)
      return i;
    i += n;
  }
  return std::string_view::npos;
}

void appendLossy(std::string_view bytes, std::string *out) {
  const auto *p = reinterpret_cast<const uint8_t *>(bytes.data());
  for (size_t i = 0, bad; i < bytes.size();) {
    size_t n = charAt(p + i, bytes.size() - i, &bad);
    if (n) {
      out->append(bytes.data() + i, n);
      i += n;
    } else {
      out->append("\xEF\xBF\xBD");
      i += bad;
    }
  }
}

uint32_t nextChar(std::string_view text, size_t *i) {
  auto b = static_cast<uint8_t>(text[*i]);
  size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  uint32_t cp = n == 1 ? b : b & (0x7F >> n);
  for (size_t k = 1; k < n && *i + k < text.size(); ++k)
    cp = (cp << 6) | (static_cast<uint8_t>(text[*i + k]) & 0x3F);
  *i += n;
  return cp;
}

void appendChar(uint32_t cp, std::string *out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool isWhitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

//===-- The byte-level alphabet -------------------------------------------===//

namespace {

/// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
/// the others (controls, space, ...) for U+0100 onwards, in byte order.
struct ByteLevelAlphabet {
  std::string chars[256];
  int bytes[0x144];
  ByteLevelAlphabet() {
    std::fill(std::begin(bytes), std::end(bytes), -1);
    uint32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
                       (b >= 0xAE && b <= 0xFF);
      uint32_t cp = printable ? b : next++;
      appendChar(cp, &chars[b]);
      bytes[cp] = b;
    }
  }
};

const ByteLevelAlphabet &alphabet() {
  static const ByteLevelAlphabet table;
  return table;
}

} // namespace

const std::string &byteLevelChar(uint8_t byte) {
  return alphabet().chars[byte];
}

int byteLevelByte(uint32_t cp) {
  return cp < 0x144 ? alphabet().bytes[cp] : -1;
}

//===-- Regex -------------------------------------------------------------===//

struct Regex::Code {
  pcre2_code *code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

namespace {

std::string pcre2Message(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof(buffer)) < 0)
    return "PCRE2 error " + std::to_string(code);
  return reinterpret_cast<char *>(buffer);
}

/// A JIT stack and match context per thread: JIT-compiled patterns with
/// nested groups over long inputs outgrow PCRE2's default 32 KiB stack.
struct MatchResources {
  pcre2_jit_stack *stack;
  pcre2_match_context *context;
  MatchResources() {
    stack = pcre2_jit_stack_create(32 << 10, 8 << 20, nullptr);
    context = pcre2_match_context_create(nullptr);
    if (stack && context)
      pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchResources() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
  }
};

pcre2_match_context *matchContext() {
  thread_local MatchResources resources;
  return resources.context;
}

/// pcre2_match_data freed at scope exit.
struct MatchData {
  pcre2_match_data *data;
  explicit MatchData(const pcre2_code *code)
      : data(pcre2_match_data_create_from_pattern(code, nullptr)) {
    if (!data)
      throw std::bad_alloc();
  }
  ~MatchData() { pcre2_match_data_free(data); }
};

} // namespace

Regex::Regex(const std::string &pattern) : code(std::make_unique<Code>()) {
  int status;
  PCRE2_SIZE offset;
  code->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()),
                             pattern.size(), PCRE2_UTF | PCRE2_UCP, &status,
                             &offset, nullptr);
  if (!code->code)
    raise("bad regex '" + pattern + "': " + pcre2Message(status) +
          " at offset " + std::to_string(offset));
  // Without JIT support the interpreter matches the same, only slower.
  pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() = default;

void Regex::findAll(std::string_view text, std::vector<Range> *matches) const {
  MatchData match(code->code);
  const auto *subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  for (size_t start = 0; start <= text.size();) {
    int rc = pcre2_match(code->code, subject, text.size(), start,
                         PCRE2_NO_UTF_CHECK, match.data, matchContext());
    if (rc == PCRE2_ERROR_NOMATCH)
      return;
    if (rc < 0)
      raise("regex match failed: " + pcre2Message(rc));
    PCRE2_SIZE *ovector = pcre2_get_ovector_pointer(match.data);
    matches->push_back({ovector[0], ovector[1]});
    start = ovector[1];
    if (ovector[1] == ovector[0]) {
      if (start == text.size())
        return;
      nextChar(text, &start);
    }
  }
}

bool Regex::matchesAt(std::string_view text, size_t at) const {
  MatchData match(code->code);
  int rc = pcre2_match(code->code, reinterpret_cast<PCRE2_SPTR>(text.data()),
                       text.size(), at, PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED,
                       match.data, matchContext());
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
    raise("regex match failed: " + pcre2Message(rc));
  return rc >= 0;
}

//===-- Patterns and splitting --------------------------------------------===//

Pattern::Pattern(const Json &value, const std::string &path) {
  const Json &literalValue = field(value, "String");
  const Json &regexValue = field(value, "Regex");
  if (literalValue.is_string()) {
    literal = literalValue.get<std::string>();
    return;
  }
  if (!regexValue.is_string())
    raise(path + ": expected {\"String\": ...} or {\"Regex\": ...}");
  try {
    regex = std::make_shared<Regex>(regexValue.get<std::string>());
  } catch (const Error &e) {
    raise(fieldPath(path, "Regex") + ": " + e.what());
  }
}

void Pattern::findAll(std::string_view text,
                      std::vector<Range> *matches) const {
  if (regex) {
    regex->findAll(text, matches);
    return;
  }
  // An empty literal matches nothing, as in `tokenizers`.
  if (literal.empty())
    return;
  for (size_t at = text.find(literal); at != std::string_view::npos;
       at = text.find(literal, at + literal.size()))
    matches->push_back({at, at + literal.size()});
}

std::string replaceAll(const std::string &text, const Pattern &pattern,
                       const std::string &content) {
  std::vector<Range> matches;
  pattern.findAll(text, &matches);
  if (matches.empty())
    return text;
  std::string out;
  size_t last = 0;
  for (const Range &m : matches) {
    out.append(text, last, m.first - last);
    out += content;
    last = m.second;
  }
  out.append(text, last, std::string::npos);
  return out;
}

SplitBehavior parseSplitBehavior(const Json &value, const std::string &path) {
  std::string name = getString(value, path);
  if (name == "Removed")
    return SplitBehavior::Removed;
  if (name == "Isolated")
    return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious")
    return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext")
    return SplitBehavior::MergedWithNext;
  if (name == "Contiguous")
    return SplitBehavior::Contiguous;
  raise(path + ": unknown split behavior '" + name + "'");
}

std::vector<Range> splitRanges(size_t length, const std::vector<Range> &matches,
                               SplitBehavior behavior, bool invert) {
  // The whole text as alternating (range, is-match) parts.
  std::vector<std::pair<Range, bool>> parts;
  size_t last = 0;
  for (const Range &m : matches) {
    if (last != m.first)
      parts.push_back({{last, m.first}, invert});
    parts.push_back({m, !invert});
    last = m.second;
  }
  if (last != length)
    parts.push_back({{last, length}, invert});

  std::vector<std::pair<Range, bool>> merged;
  bool previousMatch = false;
  switch (behavior) {
  case SplitBehavior::Isolated:
    merged = parts;
    break;
  case SplitBehavior::Removed:
    for (const auto &p : parts)
      if (!p.second)
        merged.push_back(p);
    break;
  case SplitBehavior::MergedWithPrevious:
    for (const auto &p : parts) {
      if (p.second && !previousMatch && !merged.empty())
        merged.back().first.second = p.first.second;
      else
        merged.push_back(p);
      previousMatch = p.second;
    }
    break;
  case SplitBehavior::MergedWithNext:
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
      if (it->second && !previousMatch && !merged.empty())
        merged.back().first.first = it->first.first;
      else
        merged.push_back(*it);
      previousMatch = it->second;
    }
    std::reverse(merged.begin(), merged.end());
    break;
  case SplitBehavior::Contiguous:
    for (const auto &p : parts) {
      if (p.second == previousMatch && !merged.empty())
        merged.back().first.second = p.first.second;
      else
        merged.push_back(p);
      previousMatch = p.second;
    }
    break;
  }
  std::vector<Range> out;
  for (const auto &p : merged)
    if (p.first.first != p.first.second)
      out.push_back(p.first);
  return out;
}

} // namespace kiln::runtime::tok
