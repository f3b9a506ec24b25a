//===- kiln-tokenize.cpp - Encodes and decodes text with a tokenizer -----===//
//
//   kiln-tokenize SOURCE encode [--no-special] [--no-add-special]
//                 [--lines] [--json] [TEXT | --file F]      (else stdin)
//   kiln-tokenize SOURCE decode [--skip-special] [--stream]
//                 [--lines] [--json] [IDS | --file F]       (else stdin)
//   kiln-tokenize SOURCE info
//   kiln-tokenize SOURCE chat [--template F] [--add-generation-prompt]
//                 [CONTEXT | --file F]                       (else stdin)
//
// SOURCE is a tokenizer.json (tokenizer_config.json and
// generation_config.json are read from beside it when there), a directory
// holding one, or a model.kiln that carries one.
//
// encode prints the ids on one line; --lines encodes every line of the input
// on its own (one line of ids per line), --json prints JSON arrays. decode
// reads ids separated by commas or blanks and prints the text; --stream
// feeds them one at a time to the streaming decoder (with --json: the list of
// what each step emitted, then what finishing emitted). chat renders the
// chat template (tokenizer_config.json's, or --template's) with a JSON
// context: a list of messages ({"role", "content"}) or an object of
// variables (messages, add_generation_prompt, ...); bos_token and eos_token
// default to the tokenizer's.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/ChatTemplate.h"
#include "kiln/runtime/Tokenizer.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <sys/stat.h>

using namespace kiln::runtime;
using Json = nlohmann::json;

namespace {

struct Options {
  std::string source;
  std::string text;
  std::string file;
  bool noSpecial = false, noAddSpecial = false, skipSpecial = false;
  bool stream = false, lines = false, json = false;
  std::string templateFile;
  bool addGenerationPrompt = false;
};

int fail(const std::string &message) {
  std::fprintf(stderr, "kiln-tokenize: error: %s\n", message.c_str());
  return 1;
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

/// The tokenizer of a directory, a tokenizer.json or an artifact.
std::unique_ptr<Tokenizer> loadTokenizer(const std::string &source,
                                         std::string *error) {
  struct stat st;
  if (::stat(source.c_str(), &st) != 0) {
    *error = source + ": " + std::strerror(errno);
    return nullptr;
  }
  TokenizerFiles files;
  std::string where = source;
  if (S_ISDIR(st.st_mode)) {
    if (!Tokenizer::readFiles(source, &files, error))
      return nullptr;
    where = source + "/";
  } else {
    std::string head;
    if (std::ifstream in{source, std::ios::binary}) {
      head.resize(8);
      in.read(head.data(), 8);
      head.resize(in.gcount());
    }
    if (head == std::string("KILNART\0", 8)) {
      // The metadata checksum covers the tokenizer; the weights are not
      // needed here.
      Artifact::OpenOptions open;
      open.verifyWeights = false;
      auto artifact = Artifact::open(source, open, error);
      if (!artifact)
        return nullptr;
      files = artifact->contents().tokenizer;
      if (files.empty()) {
        *error = source + ": the artifact has no tokenizer";
        return nullptr;
      }
      where = source + ": ";
    } else {
      if (!readFile(source, &files.tokenizerJson, error))
        return nullptr;
      size_t slash = source.rfind('/');
      std::string dir =
          slash == std::string::npos ? "." : source.substr(0, slash);
      for (auto [name, out] :
           {std::pair{"tokenizer_config.json", &files.tokenizerConfigJson},
            {"generation_config.json", &files.generationConfigJson}})
        if (::stat((dir + "/" + name).c_str(), &st) == 0 &&
            !readFile(dir + "/" + name, out, error))
          return nullptr;
      where = dir + "/";
    }
  }
  auto tokenizer = Tokenizer::create(files, error);
  if (!tokenizer)
    *error = where + *error;
  return tokenizer;
}

bool parseIds(const std::string &text, std::vector<int64_t> *ids,
              std::string *error) {
  std::string spaced = text;
  std::replace(spaced.begin(), spaced.end(), ',', ' ');
  std::istringstream in(spaced);
  ids->clear();
  for (std::string token; in >> token;) {
    char *stop = nullptr;
    errno = 0;
    long long id = std::strtoll(token.c_str(), &stop, 10);
    if (*stop || errno) {
      *error = "'" + token + "' is not a token id";
      return false;
    }
    ids->push_back(id);
  }
  return true;
}

std::string dumpJson(const Json &j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

/// Encodes or decodes one input (a line with --lines) and prints the result.
bool process(const Tokenizer &tokenizer, const Options &o, bool encode,
             const std::string &input, std::string *error) {
  if (encode) {
    Tokenizer::EncodeOptions options;
    options.parseSpecialTokens = !o.noSpecial;
    options.addSpecialTokens = !o.noAddSpecial;
    std::vector<int64_t> ids;
    if (!tokenizer.encode(input, options, &ids, error))
      return false;
    if (o.json) {
      std::printf("%s\n", dumpJson(ids).c_str());
    } else {
      std::string line;
      for (size_t i = 0; i < ids.size(); ++i)
        line += (i ? " " : "") + std::to_string(ids[i]);
      std::printf("%s\n", line.c_str());
    }
    return true;
  }
  std::vector<int64_t> ids;
  if (!parseIds(input, &ids, error))
    return false;
  if (!o.stream) {
    std::string text = tokenizer.decode(ids, o.skipSpecial);
    std::printf("%s\n", o.json ? dumpJson(text).c_str() : text.c_str());
    return true;
  }
  StreamDecoder decoder(tokenizer, o.skipSpecial);
  Json chunks = Json::array();
  for (int64_t id : ids) {
    std::string text;
    if (!decoder.step(id, &text, error))
      return false;
    if (o.json) {
      chunks.push_back(text);
    } else {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    }
  }
  std::string rest;
  decoder.finish(&rest);
  if (o.json) {
    chunks.push_back(rest);
    std::printf("%s\n", dumpJson(chunks).c_str());
  } else {
    std::printf("%s\n", rest.c_str());
  }
  return true;
}

/// The command's input: its argument, --file's contents, or stdin.
bool readInput(const Options &o, const char *what, std::string *input,
               std::string *error) {
  *input = o.text;
  if (!o.text.empty() && !o.file.empty()) {
    *error = std::string("give the ") + what +
             " as an argument or with --file, not both";
    return false;
  }
  if (!o.file.empty())
    return readFile(o.file, input, error);
  if (o.text.empty()) {
    std::ostringstream in;
    in << std::cin.rdbuf();
    *input = in.str();
  }
  return true;
}

int renderChat(const Tokenizer &tokenizer, const Options &o) {
  std::string error, source = tokenizer.chatTemplate(), input;
  if (!o.templateFile.empty() && !readFile(o.templateFile, &source, &error))
    return fail(error);
  if (source.empty())
    return fail("the tokenizer has no chat_template (tokenizer_config.json); "
                "give one with --template");
  if (!readInput(o, "context", &input, &error))
    return fail(error);
  // Ordered: a template that prints a mapping shows its keys as given.
  nlohmann::ordered_json ctx =
      nlohmann::ordered_json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (ctx.is_discarded() || !(ctx.is_array() || ctx.is_object()))
    return fail("the context is not a JSON list of messages or an object");
  if (ctx.is_array())
    ctx = nlohmann::ordered_json{{"messages", ctx}};
  if (!ctx.contains("add_generation_prompt"))
    ctx["add_generation_prompt"] = o.addGenerationPrompt;
  if (!ctx.contains("bos_token"))
    ctx["bos_token"] = tokenizer.bosToken();
  if (!ctx.contains("eos_token"))
    ctx["eos_token"] = tokenizer.eosToken();
  auto chat = ChatTemplate::parse(source, &error);
  std::string out;
  if (!chat || !chat->renderJson(ctx.dump(), &out, &error))
    return fail(error);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int run(const Options &o, const std::string &command) {
  std::string error;
  auto tokenizer = loadTokenizer(o.source, &error);
  if (!tokenizer)
    return fail(error);
  if (command == "info") {
    Json info = {{"vocab_size", tokenizer->vocabSize()},
                 {"bos_token", tokenizer->bosToken()},
                 {"eos_token", tokenizer->eosToken()},
                 {"eos_ids", tokenizer->eosIds()},
                 {"chat_template", !tokenizer->chatTemplate().empty()}};
    std::printf("%s\n", dumpJson(info).c_str());
    return 0;
  }
  if (command == "chat")
    return renderChat(*tokenizer, o);
  std::string input;
  if (!readInput(o, "input", &input, &error))
    return fail(error);
  bool encode = command == "encode";
  if (!o.lines)
    return process(*tokenizer, o, encode, input, &error) ? 0 : fail(error);
  std::istringstream in(input);
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number)
    if (!process(*tokenizer, o, encode, line, &error))
      return fail("line " + std::to_string(number) + ": " + error);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  CLI::App app{"Encodes text to token ids and decodes ids to text with a "
               "Hugging Face tokenizer.json (or the one in a model.kiln)."};
  app.require_subcommand(1);
  app.add_option("source", o.source,
                 "tokenizer.json, a directory holding one, or model.kiln")
      ->required();
  CLI::App *encode = app.add_subcommand("encode", "Text to ids");
  encode->add_option("text", o.text, "The text (else --file, else stdin)");
  encode->add_option("--file", o.file, "Read the text from a file");
  encode->add_flag("--no-special", o.noSpecial,
                   "Encode special tokens' text as plain text");
  encode->add_flag("--no-add-special", o.noAddSpecial,
                   "Add no BOS/EOS (the post-processor's tokens)");
  CLI::App *decode = app.add_subcommand("decode", "Ids to text");
  decode->add_option("ids", o.text, "Ids separated by commas or blanks");
  decode->add_option("--file", o.file, "Read the ids from a file");
  decode->add_flag("--skip-special", o.skipSpecial, "Leave special tokens out");
  decode->add_flag("--stream", o.stream,
                   "Decode with the streaming decoder, one id at a time");
  for (CLI::App *sub : {encode, decode}) {
    sub->add_flag("--lines", o.lines, "Process every input line on its own");
    sub->add_flag("--json", o.json, "Print JSON");
  }
  app.add_subcommand("info", "Vocabulary size, BOS/EOS, chat template");
  CLI::App *chat = app.add_subcommand(
      "chat", "Render the chat template with a JSON context (messages)");
  chat->add_option("context", o.text,
                   "JSON: a list of messages or an object of variables");
  chat->add_option("--file", o.file, "Read the context from a file");
  chat->add_option("--template", o.templateFile,
                   "The template (default: the tokenizer's chat_template)");
  chat->add_flag("--add-generation-prompt", o.addGenerationPrompt,
                 "Set add_generation_prompt (unless the context sets it)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == 0) // --help
      return app.exit(e);
    std::fprintf(stderr,
                 "kiln-tokenize: error: %s\nRun with --help for usage.\n",
                 e.what());
    return 2;
  }
  return run(o, app.get_subcommands()[0]->get_name());
}
