//===- Options.cpp - kiln-run's command line ------------------------------===//
//
// The CLI11 definitions of kiln-run's options and the checks made before an
// artifact is opened: options that exclude each other, --bench-* without
// --bench, a missing input, the seed. Usage errors exit with status 2,
// rejected values with 1, each as one line on stderr.
//
//===----------------------------------------------------------------------===//

#include "Options.h"

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace kiln::tools {
namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "kiln-run: error: %s\n", message.c_str());
  return 1;
}

/// A seed: decimal digits that fit in 64 bits (no sign, no wrap-around).
bool parseSeed(const std::string &text, uint64_t *seed, std::string *error) {
  errno = 0;
  char *stop = nullptr;
  unsigned long long v = std::strtoull(text.c_str(), &stop, 10);
  if (text.empty() ||
      text.find_first_not_of("0123456789") != std::string::npos || *stop ||
      errno == ERANGE) {
    *error = "--seed: '" + text + "' is not a number in [0, 2^64)";
    return false;
  }
  *seed = v;
  return true;
}

} // namespace

bool parseIds(const std::string &text, std::vector<int64_t> *ids,
              std::string *error) {
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t begin = item.find_first_not_of(" \t");
    size_t end = item.find_last_not_of(" \t");
    std::string token =
        begin == std::string::npos ? "" : item.substr(begin, end - begin + 1);
    char *stop = nullptr;
    errno = 0;
    long long id = std::strtoll(token.c_str(), &stop, 10);
    if (token.empty() || *stop || errno) {
      *error = "--prompt-ids: '" + token + "' is not a token id";
      return false;
    }
    ids->push_back(id);
  }
  if (ids->empty()) {
    *error = "--prompt-ids: empty prompt";
    return false;
  }
  size_t last = text.find_last_not_of(" \t");
  if (last != std::string::npos && text[last] == ',') {
    *error = "--prompt-ids: '' is not a token id (after the last ',')";
    return false;
  }
  return true;
}

std::optional<int> parseCommandLine(int argc, char **argv, Options *options) {
  Options &o = *options;
  CLI::App app{"Runs a Kiln artifact: a prompt (token ids, or text with the "
               "artifact's tokenizer) in, generated tokens out."};
  app.add_option("model", o.model, "Artifact (model.kiln)")->required();
  auto *promptIds =
      app.add_option("--prompt-ids", o.promptIds, "Comma-separated token ids");
  auto *perplexity = app.add_option(
      "--perplexity-ids", o.perplexityIds,
      "Score the token ids in this file (separated by whitespace or commas) "
      "over non-overlapping windows and print the perplexity");
  auto *perplexityText = app.add_option(
      "--perplexity", o.perplexityText,
      "Score the text in this file (its tokens by the artifact's tokenizer, "
      "without BOS) over non-overlapping windows and print the perplexity");
  auto *promptText = app.add_option(
      "--prompt", o.prompt,
      "Text prompt, encoded with the artifact's tokenizer; the generated "
      "text is printed as it is made");
  auto *promptFile = app.add_option("--prompt-file", o.promptFile,
                                    "Text prompt read from a file");
  auto *chat = app.add_option(
      "--chat", o.chat,
      "A user message, put in the artifact's chat template (tokenizer_config"
      ".json's chat_template) with the assistant's turn opened; the reply is "
      "printed as it is made");
  auto *interactive = app.add_flag(
      "--interactive", o.interactive,
      "A multi-turn chat: one user message per line of stdin, each reply "
      "printed as it is made; the KV cache is kept between turns");
  app.add_option("--system", o.system,
                 "With --chat or --interactive: a system message first");
  BenchOptions &bench = o.benchOptions;
  auto *benchFlag = app.add_flag(
      "--bench",
      "Measure instead of generating: prefill tok/s for a prompt of "
      "generated ids, decode tok/s after it (median of repetitions), the "
      "bytes a decode step reads and the device's copy bandwidth (like "
      "llama-bench)");
  app.add_option("--bench-prompt", bench.promptTokens,
                 "With --bench: prompt tokens")
      ->capture_default_str();
  app.add_option("--bench-generate", bench.generateTokens,
                 "With --bench: tokens decoded after the prompt")
      ->capture_default_str();
  app.add_option("--bench-repetitions", bench.repetitions,
                 "With --bench: timed repetitions (after one warm-up)")
      ->capture_default_str();
  app.add_flag("--json", bench.json, "With --bench: one JSON object");
  std::vector<CLI::Option *> inputs{promptIds,  perplexity, perplexityText,
                                    promptText, promptFile, benchFlag,
                                    chat,       interactive};
  for (CLI::Option *a : inputs)
    for (CLI::Option *b : inputs)
      if (a != b)
        a->excludes(b);
  app.add_option("--stop", o.stops,
                 "With a text prompt: end the generation where this text "
                 "appears (not printed); repeatable")
      ->allow_extra_args(false);
  auto nonNegative = [](const std::string &v) -> std::string {
    return !v.empty() && v[0] == '-' ? "must not be negative (got " + v + ")"
                                     : std::string();
  };
  app.add_option("--max-new-tokens", o.maxNewTokens, "Tokens to generate")
      ->check(nonNegative)
      ->capture_default_str();
  app.add_option("--format", o.format,
                 "ids: the generated ids on one line; pretty: for people "
                 "(with a text prompt: the generated text)")
      ->check(CLI::IsMember({"ids", "pretty"}))
      ->capture_default_str();
  app.add_option("--dump-logits", o.dumpLogits,
                 "Write float32 [prompt + max(new - 1, 0), vocab] logits "
                 "(.npy)");
  app.add_option("--temperature", o.sampler.temperature, "0 samples greedily")
      ->capture_default_str();
  app.add_option("--top-k", o.sampler.topK, "0 keeps every token")
      ->capture_default_str();
  app.add_option("--top-p", o.sampler.topP, "1 keeps every token")
      ->capture_default_str();
  app.add_option("--min-p", o.sampler.minP,
                 "Keep tokens at least this times as likely as the most "
                 "likely; 0 keeps every token")
      ->capture_default_str();
  app.add_option("--num-return-sequences", o.numSequences,
                 "Generate this many sequences from the prompt, independently "
                 "(seeds --seed, --seed + 1, ...), one line each")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
      ->capture_default_str();
  app.add_flag("--sample-on-host", o.sampleOnHost,
               "Sample from the logits on the host even where the artifact "
               "draws on the device (GPU artifacts), to compare the two");
  std::string seed = "0";
  app.add_option("--seed", seed, "Sampling seed, in [0, 2^64)")
      ->capture_default_str();
  app.add_option("--past", o.past,
                 "float32 .npy [2*layers, batch, kv_heads, past_len, "
                 "head_dim] (k0, v0, k1, ...) preloaded into the KV cache");
  app.add_option("--past-len", o.pastLen,
                 "Expected past_len of --past (checked)")
      ->check(nonNegative);
  app.add_option("--perplexity-window", o.perplexityWindow,
                 "Tokens per window of --perplexity(-ids) (default: the "
                 "artifact's context length)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 40));
  app.add_option("--predictions", o.predictions,
                 "With --perplexity(-ids), write the top-1 prediction for each "
                 "scored token (ids separated by spaces)");
  app.add_flag("--no-verify-weights", o.noVerifyWeights,
               "Skip the check of the weights section against its checksums "
               "(it reads every byte once when the artifact is opened)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == 0) // --help
      return app.exit(e);
    std::fprintf(stderr, "kiln-run: error: %s\nRun with --help for usage.\n",
                 e.what());
    return 2;
  }
  std::string error;
  if (app.count("--bench")) {
    bench.model = o.model;
    bench.verifyWeights = !o.noVerifyWeights;
    o.bench = true;
    return std::nullopt;
  }
  for (const char *flag :
       {"--bench-prompt", "--bench-generate", "--bench-repetitions", "--json"})
    if (app.count(flag))
      return fail(std::string(flag) + " needs --bench");
  if (!app.count("--prompt-ids") && !app.count("--perplexity-ids") &&
      !app.count("--perplexity") && !app.count("--prompt") &&
      !app.count("--prompt-file") && !app.count("--chat") &&
      !app.count("--interactive"))
    return fail("give --prompt, --prompt-file, --chat, --interactive, "
                "--prompt-ids, --perplexity, --perplexity-ids or --bench");
  if (app.count("--system") && !app.count("--chat") &&
      !app.count("--interactive"))
    return fail("--system needs --chat or --interactive");
  if (app.count("--interactive"))
    for (const char *flag : {"--dump-logits", "--past", "--past-len"})
      if (app.count(flag))
        return fail(std::string(flag) + " does not work with --interactive");
  o.chatGiven = app.count("--chat") > 0;
  o.textPrompt =
      app.count("--prompt") || app.count("--prompt-file") || o.chatGiven;
  if (!parseSeed(seed, &o.sampler.seed, &error))
    return fail(error);
  o.dumpLogitsGiven = app.count("--dump-logits") > 0;
  return std::nullopt;
}

} // namespace kiln::tools
