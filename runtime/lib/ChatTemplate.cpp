//===- ChatTemplate.cpp - The Jinja subset of chat templates --------------===//
//
// Three steps, as Jinja2 does them: the template is cut into text and tags
// (with trim_blocks, lstrip_blocks and the '-' whitespace controls applied
// to the text), the tags are parsed into a tree of statements and
// expressions, and the tree is evaluated over JSON values (nlohmann's
// ordered_json; a discarded value stands for Jinja's Undefined).
// Exceptions carry errors inside this file; the API catches them.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/ChatTemplate.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>

namespace kiln::runtime {
namespace {

using Json = nlohmann::ordered_json;

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Json undefined() { return Json(Json::value_t::discarded); }
bool isUndefined(const Json &v) { return v.is_discarded(); }

//===----------------------------------------------------------------------===//
// Lexing: text and tags, then the tokens of a tag.
//===----------------------------------------------------------------------===//

struct Piece {
  enum Kind { Text, Output, Statement } kind;
  std::string text; // the text, or the tag's inside
  size_t offset;    // in the template
};

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

std::vector<Piece> cut(std::string_view src) {
  // Jinja2's keep_trailing_newline=False: one final newline goes.
  if (!src.empty() && src.back() == '\n') {
    src.remove_suffix(1);
    if (!src.empty() && src.back() == '\r')
      src.remove_suffix(1);
  }
  std::vector<Piece> out;
  std::string text;
  size_t textStart = 0;
  bool trimNextNewline = false, stripNextLeading = false;
  size_t i = 0;
  auto flushText = [&] {
    if (!text.empty())
      out.push_back({Piece::Text, text, textStart});
    text.clear();
  };
  while (i < src.size()) {
    size_t open = src.find('{', i);
    while (open != std::string_view::npos && open + 1 < src.size() &&
           src[open + 1] != '{' && src[open + 1] != '%' && src[open + 1] != '#')
      open = src.find('{', open + 1);
    if (open == std::string_view::npos || open + 1 >= src.size())
      open = src.size();
    std::string chunk(src.substr(i, open - i));
    if (stripNextLeading) {
      size_t k = 0;
      while (k < chunk.size() && isSpace(chunk[k]))
        ++k;
      chunk.erase(0, k);
    } else if (trimNextNewline && !chunk.empty() && chunk[0] == '\n') {
      chunk.erase(0, 1);
    } else if (trimNextNewline && chunk.size() > 1 && chunk[0] == '\r' &&
               chunk[1] == '\n') {
      chunk.erase(0, 2);
    }
    if (text.empty())
      textStart = i;
    if (open == src.size()) {
      text += chunk;
      break;
    }
    char kind = src[open + 1];
    const char *close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    size_t end = src.find(close, open + 2);
    if (end == std::string_view::npos)
      throw Error("offset " + std::to_string(open) + ": unclosed '" +
                  std::string(src.substr(open, 2)) + "'");
    size_t innerStart = open + 2, innerEnd = end;
    bool stripBefore = false, keepBefore = false, stripAfter = false;
    if (innerStart < innerEnd && src[innerStart] == '-') {
      stripBefore = true;
      ++innerStart;
    } else if (innerStart < innerEnd && src[innerStart] == '+') {
      keepBefore = true;
      ++innerStart;
    }
    if (innerEnd > innerStart && src[innerEnd - 1] == '-') {
      stripAfter = true;
      --innerEnd;
    } else if (innerEnd > innerStart && src[innerEnd - 1] == '+') {
      --innerEnd; // '+%}': no trim_blocks for this tag
    }
    if (stripBefore) {
      while (!chunk.empty() && isSpace(chunk.back()))
        chunk.pop_back();
    } else if (kind != '{' && !keepBefore) {
      // lstrip_blocks: spaces and tabs between the line's start and a block
      // or comment tag go (judged on the source, before trim_blocks).
      std::string_view orig = src.substr(i, open - i);
      size_t k = orig.size();
      while (k > 0 && (orig[k - 1] == ' ' || orig[k - 1] == '\t'))
        --k;
      bool lineStart = k > 0 ? orig[k - 1] == '\n' : i == 0;
      if (lineStart)
        chunk.erase(chunk.size() - std::min(orig.size() - k, chunk.size()));
    }
    text += chunk;
    flushText();
    std::string inner(src.substr(innerStart, innerEnd - innerStart));
    if (kind == '{')
      out.push_back({Piece::Output, inner, open});
    else if (kind == '%')
      out.push_back({Piece::Statement, inner, open});
    stripNextLeading = stripAfter;
    trimNextNewline =
        !stripAfter && kind != '{' && !(end > 0 && src[end - 1] == '+');
    i = end + 2;
    textStart = i;
  }
  flushText();
  return out;
}

struct Token {
  enum Kind { Name, String, Int, Float, Op, End } kind;
  std::string text;
  int64_t i = 0;
  double f = 0;
};

std::vector<Token> tokenize(const std::string &s, size_t offset) {
  std::vector<Token> out;
  size_t i = 0;
  auto fail = [&](const std::string &what) {
    throw Error("offset " + std::to_string(offset) + ": " + what);
  };
  while (i < s.size()) {
    char c = s[i];
    if (isSpace(c)) {
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() &&
             (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_'))
        ++j;
      out.push_back({Token::Name, s.substr(i, j - i)});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      bool isFloat = false;
      while (j < s.size() &&
             (std::isdigit(static_cast<unsigned char>(s[j])) ||
              (s[j] == '.' && !isFloat && j + 1 < s.size() &&
               std::isdigit(static_cast<unsigned char>(s[j + 1]))))) {
        isFloat |= s[j] == '.';
        ++j;
      }
      Token t{isFloat ? Token::Float : Token::Int, s.substr(i, j - i)};
      if (isFloat)
        t.f = std::stod(t.text);
      else
        t.i = std::stoll(t.text);
      out.push_back(t);
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string v;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] != '\\' || j + 1 >= s.size()) {
          v += s[j];
          continue;
        }
        char e = s[++j];
        switch (e) {
        case 'n':
          v += '\n';
          break;
        case 't':
          v += '\t';
          break;
        case 'r':
          v += '\r';
          break;
        case '\\':
          v += '\\';
          break;
        case '\'':
          v += '\'';
          break;
        case '"':
          v += '"';
          break;
        default:
          v += '\\';
          v += e;
        }
      }
      if (j >= s.size())
        fail("unterminated string");
      out.push_back({Token::String, v});
      i = j + 1;
    } else {
      static const char *ops[] = {
          "//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
          ">",  "(",  ")",  "[",  "]",  "{",  "}", ".", ",", ":", "|", "="};
      bool found = false;
      for (const char *op : ops) {
        size_t n = std::strlen(op);
        if (s.compare(i, n, op) == 0) {
          out.push_back({Token::Op, op});
          i += n;
          found = true;
          break;
        }
      }
      if (!found)
        fail(std::string("unexpected character '") + c + "'");
    }
  }
  out.push_back({Token::End, ""});
  return out;
}

//===----------------------------------------------------------------------===//
// The tree.
//===----------------------------------------------------------------------===//

struct Expr;
using ExprPtr = std::shared_ptr<Expr>;
struct Expr {
  enum Kind {
    Literal,
    Name,
    Attr,
    Index,
    Slice,
    Call,
    Filter,
    Test,
    Binary,
    Unary,
    Cond,
    List,
    Dict
  } kind;
  Json value;                // Literal
  std::string name;          // Name, Attr, Call (function or method), Filter,
                             // Test, Binary/Unary operator
  std::vector<ExprPtr> args; // operands
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negate = false; // Test: 'is not'
};

struct Node;
using NodePtr = std::shared_ptr<Node>;
struct Node {
  enum Kind { Text, Output, If, For, Set } kind;
  std::string text; // Text
  ExprPtr expr;     // Output, For, Set
  std::vector<std::pair<ExprPtr, std::vector<NodePtr>>> branches; // If
  std::vector<NodePtr> body, elseBody;                            // For
  std::vector<std::string> targets;                               // For, Set
  std::string attr;                                               // Set ns.attr
};

class ExprParser {
public:
  ExprParser(std::vector<Token> tokens, size_t offset)
      : t(std::move(tokens)), offset(offset) {}

  [[noreturn]] void fail(const std::string &what) const {
    throw Error("offset " + std::to_string(offset) + ": " + what +
                (peek().kind == Token::End ? " at the end of the tag"
                                           : " at '" + peek().text + "'"));
  }
  const Token &peek(size_t k = 0) const {
    return t[std::min(pos + k, t.size() - 1)];
  }
  bool isOp(const char *op, size_t k = 0) const {
    return peek(k).kind == Token::Op && peek(k).text == op;
  }
  bool isName(const char *n, size_t k = 0) const {
    return peek(k).kind == Token::Name && peek(k).text == n;
  }
  bool accept(const char *op) {
    if (!isOp(op))
      return false;
    ++pos;
    return true;
  }
  bool acceptName(const char *n) {
    if (!isName(n))
      return false;
    ++pos;
    return true;
  }
  void expect(const char *op) {
    if (!accept(op))
      fail(std::string("expected '") + op + "'");
  }
  std::string name() {
    if (peek().kind != Token::Name)
      fail("expected a name");
    return t[pos++].text;
  }
  bool atEnd() const { return peek().kind == Token::End; }

  static ExprPtr make(Expr::Kind k, std::string name = {},
                      std::vector<ExprPtr> args = {}) {
    auto e = std::make_shared<Expr>();
    e->kind = k;
    e->name = std::move(name);
    e->args = std::move(args);
    return e;
  }

  ExprPtr expr() {
    // Deeply nested input would exhaust the stack: templates nest a few levels.
    if (++depth > kMaxDepth)
      fail("expressions nest too deeply");
    ExprPtr e = orExpr();
    --depth;
    if (acceptName("if")) {
      ExprPtr cond = orExpr();
      ExprPtr other = acceptName("else") ? expr() : nullptr;
      auto c = make(Expr::Cond, "", {cond, e});
      if (other)
        c->args.push_back(other);
      return c;
    }
    return e;
  }
  ExprPtr orExpr() {
    ExprPtr e = andExpr();
    while (acceptName("or"))
      e = make(Expr::Binary, "or", {e, andExpr()});
    return e;
  }
  ExprPtr andExpr() {
    ExprPtr e = notExpr();
    while (acceptName("and"))
      e = make(Expr::Binary, "and", {e, notExpr()});
    return e;
  }
  ExprPtr notExpr() {
    if (acceptName("not")) {
      if (++depth > kMaxDepth)
        fail("expressions nest too deeply");
      return make(Expr::Unary, "not", {notExpr()});
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr e = math1();
    while (true) {
      std::string op;
      if (peek().kind == Token::Op &&
          (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
           peek().text == ">" || peek().text == "<=" || peek().text == ">="))
        op = t[pos++].text;
      else if (acceptName("in"))
        op = "in";
      else if (isName("not") && isName("in", 1)) {
        pos += 2;
        op = "not in";
      } else
        return e;
      e = make(Expr::Binary, op, {e, math1()});
    }
  }
  ExprPtr math1() {
    ExprPtr e = concat();
    while (isOp("+") || isOp("-")) {
      std::string op = t[pos++].text;
      e = make(Expr::Binary, op, {e, concat()});
    }
    return e;
  }
  ExprPtr concat() {
    ExprPtr e = math2();
    while (accept("~"))
      e = make(Expr::Binary, "~", {e, math2()});
    return e;
  }
  ExprPtr math2() {
    ExprPtr e = unary();
    while (isOp("*") || isOp("/") || isOp("//") || isOp("%")) {
      std::string op = t[pos++].text;
      e = make(Expr::Binary, op, {e, unary()});
    }
    return e;
  }
  ExprPtr unary() {
    if (isOp("-") || isOp("+") || isName("not")) {
      if (++depth > kMaxDepth)
        fail("expressions nest too deeply");
    }
    if (accept("-"))
      return make(Expr::Unary, "-", {unary()});
    if (accept("+"))
      return unary();
    return postfix(primary());
  }
  void callArgs(ExprPtr call) {
    if (accept(")"))
      return;
    do {
      if (peek().kind == Token::Name && isOp("=", 1)) {
        std::string key = name();
        expect("=");
        call->kwargs.push_back({key, expr()});
      } else {
        call->args.push_back(expr());
      }
    } while (accept(","));
    expect(")");
  }
  ExprPtr postfix(ExprPtr e) {
    while (true) {
      if (accept(".")) {
        std::string n = name();
        if (accept("(")) {
          auto call = make(Expr::Call, n, {e});
          call->value = true; // a method: args[0] is the object
          callArgs(call);
          e = call;
        } else {
          e = make(Expr::Attr, n, {e});
        }
      } else if (accept("[")) {
        ExprPtr a = isOp(":") ? nullptr : expr();
        if (accept(":")) {
          ExprPtr b = isOp("]") || isOp(":") ? nullptr : expr();
          ExprPtr c = accept(":") && !isOp("]") ? expr() : nullptr;
          auto s = make(Expr::Slice, "", {e, a, b, c});
          e = s;
        } else {
          e = make(Expr::Index, "", {e, a});
        }
        expect("]");
      } else if (accept("(")) {
        if (e->kind != Expr::Name)
          fail("only named functions can be called");
        auto call = make(Expr::Call, e->name);
        callArgs(call);
        e = call;
      } else if (accept("|")) {
        auto f = make(Expr::Filter, name(), {e});
        if (accept("("))
          callArgs(f);
        e = f;
      } else if (acceptName("is")) {
        bool negate = acceptName("not");
        std::string test = name();
        auto tst = make(Expr::Test, test, {e});
        tst->negate = negate;
        if (test == "equalto" || test == "sameas")
          tst->args.push_back(primary());
        e = tst;
      } else {
        return e;
      }
    }
  }
  ExprPtr primary() {
    const Token &tok = peek();
    if (tok.kind == Token::String) {
      std::string v;
      while (peek().kind == Token::String)
        v += t[pos++].text;
      auto e = make(Expr::Literal);
      e->value = v;
      return e;
    }
    if (tok.kind == Token::Int || tok.kind == Token::Float) {
      ++pos;
      auto e = make(Expr::Literal);
      e->value = tok.kind == Token::Int ? Json(tok.i) : Json(tok.f);
      return e;
    }
    if (tok.kind == Token::Name) {
      ++pos;
      auto e = make(Expr::Literal);
      if (tok.text == "true" || tok.text == "True")
        e->value = true;
      else if (tok.text == "false" || tok.text == "False")
        e->value = false;
      else if (tok.text == "none" || tok.text == "None")
        e->value = nullptr;
      else
        return make(Expr::Name, tok.text);
      return e;
    }
    if (accept("(")) {
      ExprPtr e = expr();
      expect(")");
      return e;
    }
    if (accept("[")) {
      auto l = make(Expr::List);
      if (!accept("]")) {
        do
          l->args.push_back(expr());
        while (accept(",") && !isOp("]"));
        expect("]");
      }
      return l;
    }
    if (accept("{")) {
      auto d = make(Expr::Dict);
      if (!accept("}")) {
        do {
          d->args.push_back(expr());
          expect(":");
          d->args.push_back(expr());
        } while (accept(",") && !isOp("}"));
        expect("}");
      }
      return d;
    }
    fail("expected an expression");
  }

  static constexpr int kMaxDepth = 200;
  std::vector<Token> t;
  size_t pos = 0;
  size_t offset;
  int depth = 0;
};

class Parser {
public:
  explicit Parser(std::vector<Piece> pieces) : p(std::move(pieces)) {}

  std::vector<NodePtr> parse() {
    std::string stop;
    std::vector<NodePtr> body = block({}, &stop);
    return body;
  }

private:
  /// Parses nodes until a statement whose first word is in `ends` (returned
  /// in *stop, with its parser positioned after the word in *rest).
  std::vector<NodePtr> block(const std::vector<std::string> &ends,
                             std::string *stop) {
    if (++depth > 200)
      throw Error("blocks nest too deeply");
    struct Leave {
      int &d;
      ~Leave() { --d; }
    } leave{depth};
    std::vector<NodePtr> nodes;
    while (i < p.size()) {
      const Piece &piece = p[i];
      if (piece.kind == Piece::Text) {
        auto n = std::make_shared<Node>();
        n->kind = Node::Text;
        n->text = piece.text;
        nodes.push_back(n);
        ++i;
        continue;
      }
      ExprParser ep(tokenize(piece.text, piece.offset), piece.offset);
      if (piece.kind == Piece::Output) {
        auto n = std::make_shared<Node>();
        n->kind = Node::Output;
        n->expr = ep.expr();
        if (!ep.atEnd())
          ep.fail("unexpected token");
        nodes.push_back(n);
        ++i;
        continue;
      }
      std::string word = ep.name();
      if (std::find(ends.begin(), ends.end(), word) != ends.end()) {
        *stop = word;
        rest = std::make_unique<ExprParser>(std::move(ep));
        ++i;
        return nodes;
      }
      ++i;
      if (word == "if") {
        nodes.push_back(ifNode(ep));
      } else if (word == "for") {
        nodes.push_back(forNode(ep));
      } else if (word == "set") {
        auto n = std::make_shared<Node>();
        n->kind = Node::Set;
        n->targets.push_back(ep.name());
        if (ep.accept("."))
          n->attr = ep.name();
        if (!ep.isOp("="))
          ep.fail("block {% set %} is not supported; expected '='");
        ep.expect("=");
        n->expr = ep.expr();
        if (!ep.atEnd())
          ep.fail("unexpected token");
        nodes.push_back(n);
      } else if (word == "generation") {
        // transformers' AssistantTracker: its body renders as it is.
        std::string s;
        std::vector<NodePtr> inner = block({"endgeneration"}, &s);
        if (s.empty())
          throw Error("offset " + std::to_string(piece.offset) +
                      ": {% generation %} without {% endgeneration %}");
        nodes.insert(nodes.end(), inner.begin(), inner.end());
      } else if (word == "else" || word == "elif" ||
                 word.rfind("end", 0) == 0) {
        throw Error("offset " + std::to_string(piece.offset) +
                    ": unexpected {% " + word + " %}");
      } else {
        throw Error("offset " + std::to_string(piece.offset) + ": {% " + word +
                    " %} is not supported");
      }
    }
    if (!ends.empty())
      throw Error("the template ends inside a block: expected {% " +
                  ends.back() + " %}");
    return nodes;
  }

  NodePtr ifNode(ExprParser &ep) {
    auto n = std::make_shared<Node>();
    n->kind = Node::If;
    ExprPtr cond = ep.expr();
    if (!ep.atEnd())
      ep.fail("unexpected token");
    while (true) {
      std::string stop;
      std::vector<NodePtr> body = block({"elif", "else", "endif"}, &stop);
      n->branches.push_back({cond, body});
      if (stop == "endif")
        return n;
      if (stop == "else") {
        std::string s2;
        std::vector<NodePtr> other = block({"endif"}, &s2);
        n->branches.push_back({nullptr, other});
        return n;
      }
      cond = rest->expr();
      if (!rest->atEnd())
        rest->fail("unexpected token");
    }
  }

  NodePtr forNode(ExprParser &ep) {
    auto n = std::make_shared<Node>();
    n->kind = Node::For;
    n->targets.push_back(ep.name());
    while (ep.accept(","))
      n->targets.push_back(ep.name());
    if (!ep.acceptName("in"))
      ep.fail("expected 'in'");
    n->expr = ep.expr();
    if (ep.isName("recursive"))
      ep.fail("recursive loops are not supported");
    if (!ep.atEnd())
      ep.fail("unexpected token (loop filters are not supported)");
    std::string stop;
    n->body = block({"else", "endfor"}, &stop);
    if (stop == "else") {
      std::string s2;
      n->elseBody = block({"endfor"}, &s2);
    }
    return n;
  }

  std::vector<Piece> p;
  size_t i = 0;
  std::unique_ptr<ExprParser> rest;
  int depth = 0;
};

//===----------------------------------------------------------------------===//
// Evaluation.
//===----------------------------------------------------------------------===//

bool truthy(const Json &v) {
  if (isUndefined(v) || v.is_null())
    return false;
  if (v.is_boolean())
    return v.get<bool>();
  if (v.is_number_integer())
    return v.get<int64_t>() != 0;
  if (v.is_number())
    return v.get<double>() != 0.0;
  if (v.is_string())
    return !v.get_ref<const std::string &>().empty();
  if (v.is_array() || v.is_object())
    return !v.empty();
  return true;
}

/// The code points of UTF-8 text as the byte offsets where they start (and
/// the end): Python indexes, slices and measures strings by code point.
std::vector<size_t> codePoints(const std::string &s) {
  std::vector<size_t> at;
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80)
      at.push_back(i);
  at.push_back(s.size());
  return at;
}

std::string pyRepr(const Json &v);

/// What Python's str() gives, as Jinja renders values.
std::string str(const Json &v) {
  if (isUndefined(v))
    return "";
  if (v.is_string())
    return v.get<std::string>();
  if (v.is_boolean())
    return v.get<bool>() ? "True" : "False";
  if (v.is_null())
    return "None";
  if (v.is_number_integer())
    return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    double d = v.get<double>();
    if (std::floor(d) == d && std::abs(d) < 1e16) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.1f", d);
      return buf;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", d);
    return buf;
  }
  return pyRepr(v);
}

/// A list "[a, b]" or a mapping "{k: v}" with Python's separators, each
/// key and item written by `item` (repr or JSON).
std::string joinContainer(const Json &v, std::string (*item)(const Json &)) {
  std::string out = v.is_array() ? "[" : "{";
  bool first = true;
  for (auto it = v.begin(); it != v.end(); ++it) {
    out += first ? "" : ", ";
    if (v.is_object())
      out += item(Json(it.key())) + ": ";
    out += item(it.value());
    first = false;
  }
  return out + (v.is_array() ? "]" : "}");
}

std::string pyRepr(const Json &v) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    char q =
        s.find('\'') != std::string::npos && s.find('"') == std::string::npos
            ? '"'
            : '\'';
    std::string out(1, q);
    for (char c : s) {
      if (c == q || c == '\\')
        out += '\\';
      if (c == '\n')
        out += "\\n";
      else
        out += c;
    }
    return out + q;
  }
  if (v.is_array() || v.is_object())
    return joinContainer(v, pyRepr);
  return str(v);
}

/// Python's json.dumps(v, ensure_ascii=False) (transformers' tojson).
std::string pyJson(const Json &v) {
  if (v.is_string()) {
    std::string out = "\"";
    for (unsigned char c : v.get<std::string>()) {
      switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
      }
    }
    return out + "\"";
  }
  if (v.is_array() || v.is_object())
    return joinContainer(v, pyJson);
  if (v.is_boolean())
    return v.get<bool>() ? "true" : "false";
  if (v.is_null())
    return "null";
  return str(v);
}

std::string stripChars(const std::string &s, const std::string &chars,
                       bool left, bool right) {
  auto in = [&](char c) {
    return chars.empty() ? isSpace(c) : chars.find(c) != std::string::npos;
  };
  size_t b = 0, e = s.size();
  while (left && b < e && in(s[b]))
    ++b;
  while (right && e > b && in(s[e - 1]))
    --e;
  return s.substr(b, e - b);
}

struct Scope {
  std::vector<std::map<std::string, Json>> frames;
  Json lookup(const std::string &n) const {
    for (auto it = frames.rbegin(); it != frames.rend(); ++it) {
      auto f = it->find(n);
      if (f != it->end())
        return f->second;
    }
    return undefined();
  }
  Json *find(const std::string &n) {
    for (auto it = frames.rbegin(); it != frames.rend(); ++it) {
      auto f = it->find(n);
      if (f != it->end())
        return &f->second;
    }
    return nullptr;
  }
};

class Evaluator {
public:
  explicit Evaluator(Scope scope) : s(std::move(scope)) {}

  /// Bounds on the work and the text: a template that loops over huge
  /// ranges or builds huge strings fails instead of hanging.
  static constexpr int64_t kMaxSteps = 250'000;
  static constexpr size_t kMaxText = 16 << 20;
  void step(const std::string &out) {
    if (++steps > kMaxSteps)
      throw Error("the template runs too long (over 250,000 steps)");
    if (out.size() > kMaxText)
      throw Error("the template's output exceeds 16 MiB");
  }

  void run(const std::vector<NodePtr> &nodes, std::string &out) {
    for (const NodePtr &n : nodes) {
      step(out);
      switch (n->kind) {
      case Node::Text:
        out += n->text;
        break;
      case Node::Output:
        out += str(eval(*n->expr));
        break;
      case Node::If:
        for (auto &[cond, body] : n->branches)
          if (!cond || truthy(eval(*cond))) {
            run(body, out);
            break;
          }
        break;
      case Node::Set: {
        Json v = eval(*n->expr);
        if (!n->attr.empty()) {
          Json *ns = s.find(n->targets[0]);
          if (!ns || !ns->is_object())
            throw Error("set " + n->targets[0] + "." + n->attr +
                        ": not a namespace");
          (*ns)[n->attr] = v;
        } else {
          s.frames.back()[n->targets[0]] = v;
        }
        break;
      }
      case Node::For:
        loop(*n, out);
        break;
      }
    }
  }

private:
  void loop(const Node &n, std::string &out) {
    Json seq = eval(*n.expr);
    std::vector<Json> items;
    if (seq.is_array()) {
      items.assign(seq.begin(), seq.end());
    } else if (seq.is_object()) {
      for (auto it = seq.begin(); it != seq.end(); ++it)
        items.push_back(it.key());
    } else if (seq.is_string()) {
      for (char c : seq.get<std::string>())
        items.push_back(std::string(1, c));
    } else if (!isUndefined(seq) && !seq.is_null()) {
      throw Error("for: " + pyRepr(seq) + " is not iterable");
    }
    if (items.empty()) {
      run(n.elseBody, out);
      return;
    }
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < len; ++k) {
      s.frames.emplace_back();
      auto &f = s.frames.back();
      if (n.targets.size() == 1) {
        f[n.targets[0]] = items[k];
      } else {
        if (!items[k].is_array() || items[k].size() != n.targets.size())
          throw Error("for: cannot unpack " + pyRepr(items[k]) + " into " +
                      std::to_string(n.targets.size()) + " names");
        for (size_t j = 0; j < n.targets.size(); ++j)
          f[n.targets[j]] = items[k][j];
      }
      Json loopVar = Json::object();
      loopVar["index"] = k + 1;
      loopVar["index0"] = k;
      loopVar["revindex"] = len - k;
      loopVar["revindex0"] = len - k - 1;
      loopVar["first"] = k == 0;
      loopVar["last"] = k == len - 1;
      loopVar["length"] = len;
      loopVar["previtem"] = k > 0 ? items[k - 1] : undefined();
      loopVar["nextitem"] = k + 1 < len ? items[k + 1] : undefined();
      f["loop"] = loopVar;
      run(n.body, out);
      s.frames.pop_back();
    }
  }

  static int64_t asInt(const Json &v, const char *what) {
    if (v.is_number_integer())
      return v.get<int64_t>();
    if (v.is_boolean())
      return v.get<bool>();
    throw Error(std::string(what) + ": expected an integer, got " + pyRepr(v));
  }

  Json item(const Json &obj, const Json &key) {
    if (isUndefined(obj))
      throw Error("subscript of an undefined value");
    if (obj.is_object()) {
      std::string k = key.is_string() ? key.get<std::string>() : str(key);
      auto it = obj.find(k);
      return it == obj.end() ? undefined() : *it;
    }
    if (obj.is_array() || obj.is_string()) {
      std::vector<size_t> cp = obj.is_string()
                                   ? codePoints(obj.get<std::string>())
                                   : std::vector<size_t>();
      int64_t n =
          static_cast<int64_t>(obj.is_array() ? obj.size() : cp.size() - 1);
      int64_t i = asInt(key, "index");
      if (i < 0)
        i += n;
      if (i < 0 || i >= n)
        return undefined();
      return obj.is_array() ? obj[i]
                            : Json(obj.get<std::string>().substr(
                                  cp[i], cp[i + 1] - cp[i]));
    }
    return undefined();
  }

  Json attr(const Json &obj, const std::string &name) {
    if (isUndefined(obj))
      throw Error("'" + name + "' of an undefined value");
    if (obj.is_object()) {
      auto it = obj.find(name);
      return it == obj.end() ? undefined() : *it;
    }
    return undefined();
  }

  Json slice(const Json &obj, const ExprPtr &a, const ExprPtr &b,
             const ExprPtr &c) {
    if (!obj.is_array() && !obj.is_string())
      throw Error("slice of " + pyRepr(obj));
    std::vector<size_t> cp = obj.is_string()
                                 ? codePoints(obj.get<std::string>())
                                 : std::vector<size_t>();
    int64_t n =
        static_cast<int64_t>(obj.is_array() ? obj.size() : cp.size() - 1);
    int64_t step = c ? asInt(eval(*c), "slice step") : 1;
    if (step == 0)
      throw Error("slice step cannot be zero");
    auto bound = [&](const ExprPtr &e, int64_t dflt) {
      if (!e)
        return dflt;
      Json v = eval(*e);
      if (v.is_null())
        return dflt;
      int64_t x = asInt(v, "slice");
      if (x < 0)
        x += n;
      return step > 0 ? std::clamp<int64_t>(x, 0, n)
                      : std::clamp<int64_t>(x, -1, n - 1);
    };
    int64_t from = bound(a, step > 0 ? 0 : n - 1);
    int64_t to = bound(b, step > 0 ? n : -1);
    Json out = obj.is_array() ? Json::array() : Json("");
    std::string text;
    for (int64_t i = from; step > 0 ? i < to : i > to; i += step) {
      if (obj.is_array())
        out.push_back(obj[i]);
      else
        text += obj.get<std::string>().substr(cp[i], cp[i + 1] - cp[i]);
    }
    return obj.is_array() ? out : Json(text);
  }

  static bool equal(const Json &a, const Json &b) {
    if (isUndefined(a) || isUndefined(b))
      return isUndefined(a) && isUndefined(b);
    if (a.is_number() && b.is_number())
      return a.get<double>() == b.get<double>();
    if (a.is_boolean() && b.is_number())
      return (a.get<bool>() ? 1.0 : 0.0) == b.get<double>();
    if (b.is_boolean() && a.is_number())
      return equal(b, a);
    return a == b;
  }

  Json binary(const std::string &op, const Expr &e) {
    if (op == "and") {
      Json l = eval(*e.args[0]);
      return truthy(l) ? eval(*e.args[1]) : l;
    }
    if (op == "or") {
      Json l = eval(*e.args[0]);
      return truthy(l) ? l : eval(*e.args[1]);
    }
    Json l = eval(*e.args[0]), r = eval(*e.args[1]);
    if (op == "~")
      return str(l) + str(r);
    if (op == "==")
      return equal(l, r);
    if (op == "!=")
      return !equal(l, r);
    if (op == "in" || op == "not in") {
      bool found = false;
      if (r.is_string())
        found = l.is_string() && r.get<std::string>().find(
                                     l.get<std::string>()) != std::string::npos;
      else if (r.is_array())
        found = std::any_of(r.begin(), r.end(),
                            [&](const Json &x) { return equal(x, l); });
      else if (r.is_object())
        found = l.is_string() && r.contains(l.get<std::string>());
      else
        throw Error("'in' needs a string, list or mapping, got " + pyRepr(r));
      return op == "in" ? found : !found;
    }
    if (op == "+") {
      if (l.is_string() && r.is_string())
        return l.get<std::string>() + r.get<std::string>();
      if (l.is_array() && r.is_array()) {
        Json out = l;
        for (const Json &x : r)
          out.push_back(x);
        return out;
      }
    }
    if (l.is_number() && r.is_number()) {
      bool ints = l.is_number_integer() && r.is_number_integer();
      double a = l.get<double>(), b = r.get<double>();
      if (op == "<")
        return a < b;
      if (op == ">")
        return a > b;
      if (op == "<=")
        return a <= b;
      if (op == ">=")
        return a >= b;
      if (op == "+")
        return ints ? Json(l.get<int64_t>() + r.get<int64_t>()) : Json(a + b);
      if (op == "-")
        return ints ? Json(l.get<int64_t>() - r.get<int64_t>()) : Json(a - b);
      if (op == "*")
        return ints ? Json(l.get<int64_t>() * r.get<int64_t>()) : Json(a * b);
      if (b == 0 && (op == "/" || op == "//" || op == "%"))
        throw Error("division by zero");
      if (op == "/")
        return a / b;
      if (op == "//")
        return ints ? Json(static_cast<int64_t>(std::floor(a / b)))
                    : Json(std::floor(a / b));
      if (op == "%") {
        if (ints) {
          int64_t x = l.get<int64_t>(), y = r.get<int64_t>(), m = x % y;
          return m != 0 && ((m < 0) != (y < 0)) ? m + y : m;
        }
        double m = std::fmod(a, b);
        return m != 0 && ((m < 0) != (b < 0)) ? m + b : m;
      }
    }
    if (l.is_string() && r.is_string()) {
      const std::string &a = l.get_ref<const std::string &>(),
                        &b = r.get_ref<const std::string &>();
      if (op == "<")
        return a < b;
      if (op == ">")
        return a > b;
      if (op == "<=")
        return a <= b;
      if (op == ">=")
        return a >= b;
    }
    if (op == "*" && l.is_string() && r.is_number_integer()) {
      std::string out;
      for (int64_t k = 0; k < r.get<int64_t>(); ++k) {
        out += l.get<std::string>();
        if (out.size() > kMaxText)
          throw Error("a string of over 16 MiB");
      }
      return out;
    }
    throw Error("unsupported operands for '" + op + "': " + pyRepr(l) +
                " and " + pyRepr(r));
  }

  Json call(const Expr &e) {
    std::vector<Json> a;
    for (size_t k = e.value.is_boolean() ? 1 : 0; k < e.args.size(); ++k)
      a.push_back(eval(*e.args[k]));
    if (e.value.is_boolean()) { // a method
      Json obj = eval(*e.args[0]);
      const std::string &m = e.name;
      auto argStr = [&](size_t k) {
        if (k >= a.size() || !a[k].is_string())
          throw Error(m + "(): expected a string argument");
        return a[k].get<std::string>();
      };
      if (obj.is_string()) {
        std::string s = obj.get<std::string>();
        std::string chars = a.empty() || a[0].is_null() ? "" : argStr(0);
        if (m == "strip")
          return stripChars(s, chars, true, true);
        if (m == "lstrip")
          return stripChars(s, chars, true, false);
        if (m == "rstrip")
          return stripChars(s, chars, false, true);
        if (m == "upper" || m == "lower") {
          for (char &c : s)
            c = static_cast<char>(m == "upper" ? std::toupper(c)
                                               : std::tolower(c));
          return s;
        }
        if (m == "startswith")
          return s.rfind(argStr(0), 0) == 0;
        if (m == "endswith") {
          std::string x = argStr(0);
          return s.size() >= x.size() &&
                 s.compare(s.size() - x.size(), x.size(), x) == 0;
        }
        if (m == "replace") {
          std::string from = argStr(0), to = argStr(1), out;
          if (from.empty())
            throw Error("replace(): empty pattern");
          size_t p = 0, q;
          while ((q = s.find(from, p)) != std::string::npos) {
            out += s.substr(p, q - p) + to;
            p = q + from.size();
          }
          return out + s.substr(p);
        }
        if (m == "split") {
          Json out = Json::array();
          if (a.empty() || a[0].is_null()) {
            size_t p = 0;
            while (p < s.size()) {
              while (p < s.size() && isSpace(s[p]))
                ++p;
              size_t q = p;
              while (q < s.size() && !isSpace(s[q]))
                ++q;
              if (q > p)
                out.push_back(s.substr(p, q - p));
              p = q;
            }
            return out;
          }
          std::string sep = argStr(0);
          if (sep.empty())
            throw Error("split(): empty separator");
          size_t p = 0, q;
          while ((q = s.find(sep, p)) != std::string::npos) {
            out.push_back(s.substr(p, q - p));
            p = q + sep.size();
          }
          out.push_back(s.substr(p));
          return out;
        }
        if (m == "title" || m == "capitalize") {
          bool start = true;
          for (char &c : s) {
            bool alpha = std::isalpha(static_cast<unsigned char>(c));
            c = static_cast<char>(start && alpha ? std::toupper(c)
                                                 : std::tolower(c));
            if (m == "title")
              start = !alpha;
            else if (alpha)
              start = false;
          }
          return s;
        }
      }
      if (obj.is_object()) {
        if (m == "items" || m == "keys" || m == "values") {
          Json out = Json::array();
          for (auto it = obj.begin(); it != obj.end(); ++it)
            out.push_back(m == "items"  ? Json::array({it.key(), it.value()})
                          : m == "keys" ? Json(it.key())
                                        : it.value());
          return out;
        }
        if (m == "get") {
          Json v = item(obj, a.empty() ? Json() : a[0]);
          return isUndefined(v) ? (a.size() > 1 ? a[1] : Json()) : v;
        }
      }
      throw Error("method " + m + "() of " + pyRepr(obj) + " is not supported");
    }
    if (e.name == "raise_exception")
      throw Error(a.empty() ? "raise_exception" : str(a[0]));
    if (e.name == "range") {
      if (a.empty() || a.size() > 3)
        throw Error("range() takes 1 to 3 arguments");
      int64_t from = a.size() > 1 ? asInt(a[0], "range") : 0;
      int64_t to = asInt(a.size() > 1 ? a[1] : a[0], "range");
      int64_t step = a.size() > 2 ? asInt(a[2], "range") : 1;
      if (step == 0)
        throw Error("range() step cannot be zero");
      Json out = Json::array();
      for (int64_t i = from; step > 0 ? i < to : i > to; i += step) {
        if (out.size() >= 1'000'000)
          throw Error("range() of more than 1,000,000 numbers");
        out.push_back(i);
      }
      return out;
    }
    if (e.name == "namespace") {
      Json ns = Json::object();
      for (auto &[k, v] : e.kwargs)
        ns[k] = eval(*v);
      return ns;
    }
    throw Error("function " + e.name + "() is not supported");
  }

  Json filter(const Expr &e) {
    Json v = eval(*e.args[0]);
    std::vector<Json> a;
    for (size_t k = 1; k < e.args.size(); ++k)
      a.push_back(eval(*e.args[k]));
    const std::string &f = e.name;
    if (f == "trim")
      return stripChars(str(v), "", true, true);
    if (f == "length" || f == "count") {
      if (v.is_string())
        return static_cast<int64_t>(codePoints(v.get<std::string>()).size() -
                                    1);
      if (v.is_array() || v.is_object())
        return static_cast<int64_t>(v.size());
      throw Error("length of " + pyRepr(v));
    }
    if (f == "upper" || f == "lower") {
      std::string s = str(v);
      for (char &c : s)
        c = static_cast<char>(f == "upper" ? std::toupper(c) : std::tolower(c));
      return s;
    }
    if (f == "string")
      return str(v);
    if (f == "default" || f == "d") {
      bool boolean = a.size() > 1 && truthy(a[1]);
      if (isUndefined(v) || (boolean && !truthy(v)))
        return a.empty() ? Json("") : a[0];
      return v;
    }
    if (f == "tojson") {
      if (isUndefined(v))
        throw Error("tojson of an undefined value");
      return pyJson(v);
    }
    if (f == "first" && v.is_array())
      return v.empty() ? undefined() : v.front();
    if (f == "last" && v.is_array())
      return v.empty() ? undefined() : v.back();
    throw Error("filter '" + f + "' is not supported");
  }

  bool test(const Expr &e) {
    Json v = eval(*e.args[0]);
    const std::string &t = e.name;
    bool r;
    if (t == "defined")
      r = !isUndefined(v);
    else if (t == "undefined")
      r = isUndefined(v);
    else if (t == "none")
      r = v.is_null();
    else if (t == "string")
      r = v.is_string();
    else if (t == "number")
      r = v.is_number();
    else if (t == "integer")
      r = v.is_number_integer();
    else if (t == "boolean")
      r = v.is_boolean();
    else if (t == "mapping")
      r = v.is_object();
    else if (t == "sequence" || t == "iterable")
      r = v.is_array() || v.is_string() || v.is_object();
    else if (t == "true")
      r = v.is_boolean() && v.get<bool>();
    else if (t == "false")
      r = v.is_boolean() && !v.get<bool>();
    else if (t == "even" || t == "odd")
      r = (asInt(v, t.c_str()) % 2 == 0) == (t == "even");
    else if (t == "equalto" || t == "sameas")
      r = equal(v, eval(*e.args[1]));
    else
      throw Error("test '" + t + "' is not supported");
    return e.negate ? !r : r;
  }

public:
  Json eval(const Expr &e) {
    step(none);
    switch (e.kind) {
    case Expr::Literal:
      return e.value;
    case Expr::Name:
      return s.lookup(e.name);
    case Expr::Attr:
      return attr(eval(*e.args[0]), e.name);
    case Expr::Index:
      return item(eval(*e.args[0]), eval(*e.args[1]));
    case Expr::Slice:
      return slice(eval(*e.args[0]), e.args[1], e.args[2], e.args[3]);
    case Expr::Call:
      return call(e);
    case Expr::Filter:
      return filter(e);
    case Expr::Test:
      return test(e);
    case Expr::Binary:
      return binary(e.name, e);
    case Expr::Unary: {
      Json v = eval(*e.args[0]);
      if (e.name == "not")
        return !truthy(v);
      if (v.is_number_integer())
        return -v.get<int64_t>();
      if (v.is_number())
        return -v.get<double>();
      throw Error("unary '-' of " + pyRepr(v));
    }
    case Expr::Cond:
      if (truthy(eval(*e.args[0])))
        return eval(*e.args[1]);
      return e.args.size() > 2 ? eval(*e.args[2]) : undefined();
    case Expr::List: {
      Json out = Json::array();
      for (const ExprPtr &x : e.args)
        out.push_back(eval(*x));
      return out;
    }
    case Expr::Dict: {
      Json out = Json::object();
      for (size_t k = 0; k + 1 < e.args.size(); k += 2)
        out[str(eval(*e.args[k]))] = eval(*e.args[k + 1]);
      return out;
    }
    }
    return undefined();
  }

private:
  Scope s;
  int64_t steps = 0;
  std::string none;
};

} // namespace

struct ChatTemplate::Impl {
  std::vector<NodePtr> nodes;
};

ChatTemplate::ChatTemplate() : impl(std::make_unique<Impl>()) {}
ChatTemplate::~ChatTemplate() = default;

std::unique_ptr<ChatTemplate> ChatTemplate::parse(std::string_view source,
                                                  std::string *error) {
  try {
    std::unique_ptr<ChatTemplate> t(new ChatTemplate());
    t->impl->nodes = Parser(cut(source)).parse();
    return t;
  } catch (const std::exception &e) {
    *error = std::string("chat_template: ") + e.what();
    return nullptr;
  }
}

static bool renderContext(const std::vector<NodePtr> &nodes, const Json &ctx,
                          std::string *out, std::string *error) {
  try {
    if (!ctx.is_object())
      throw Error("the context is not an object");
    Scope scope;
    scope.frames.emplace_back();
    for (auto it = ctx.begin(); it != ctx.end(); ++it)
      scope.frames.back()[it.key()] = it.value();
    std::string text;
    Evaluator(std::move(scope)).run(nodes, text);
    *out = std::move(text);
    return true;
  } catch (const std::exception &e) {
    *error = std::string("chat_template: ") + e.what();
    return false;
  }
}

bool ChatTemplate::render(const std::vector<ChatMessage> &messages,
                          bool addGenerationPrompt, const std::string &bosToken,
                          const std::string &eosToken, std::string *out,
                          std::string *error) const {
  Json ctx = Json::object();
  Json list = Json::array();
  for (const ChatMessage &m : messages)
    list.push_back(Json{{"role", m.role}, {"content", m.content}});
  ctx["messages"] = list;
  ctx["add_generation_prompt"] = addGenerationPrompt;
  ctx["bos_token"] = bosToken;
  ctx["eos_token"] = eosToken;
  return renderContext(impl->nodes, ctx, out, error);
}

bool ChatTemplate::renderJson(std::string_view contextJson, std::string *out,
                              std::string *error) const {
  Json ctx = Json::parse(contextJson, nullptr, /*allow_exceptions=*/false);
  if (ctx.is_discarded()) {
    *error = "chat_template: the context is not valid JSON";
    return false;
  }
  return renderContext(impl->nodes, ctx, out, error);
}

} // namespace kiln::runtime
