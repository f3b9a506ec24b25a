//===- Options.h - kiln-run's command line ----------------------*- C++ -*-===//
//
// The options of kiln-run's modes (generation from token ids or a text
// prompt, perplexity, --bench), their definitions with CLI11, and the checks
// that need no artifact.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILN_RUN_OPTIONS_H
#define KILN_TOOLS_KILN_RUN_OPTIONS_H

#include "Bench.h"

#include "kiln/runtime/Sampler.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::tools {

struct Options {
  std::string model;
  std::string promptIds;
  int64_t maxNewTokens = 16;
  /// Independent generations of the prompt, seeds seed, seed + 1, ...
  int64_t numSequences = 1;
  /// Sample on the host from the logits even where the artifact draws on
  /// the device (to measure what device sampling saves).
  bool sampleOnHost = false;
  std::string format = "pretty";
  std::string dumpLogits;
  runtime::SamplerOptions sampler;
  std::string past;
  int64_t pastLen = -1;
  bool dumpLogitsGiven = false;
  bool noVerifyWeights = false;
  std::string perplexityIds;
  std::string perplexityText;   // --perplexity FILE (text)
  int64_t perplexityWindow = 0; // 0: the context length
  std::string predictions;
  // A text prompt: --prompt, or the contents of --prompt-file.
  bool textPrompt = false;
  std::string prompt, promptFile;
  // --chat MESSAGE [--system S]: the prompt is the chat template's rendering.
  bool chatGiven = false;
  std::string chat, system;
  // --interactive: a multi-turn chat over stdin.
  bool interactive = false;
  std::vector<std::string> stops;
  // --bench: measure with benchOptions instead.
  bool bench = false;
  BenchOptions benchOptions;
};

/// Parses and checks the command line into `*options`. Returns the exit
/// status when kiln-run ends here (--help, or an error printed to stderr),
/// nothing when it goes on.
std::optional<int> parseCommandLine(int argc, char **argv, Options *options);

/// --prompt-ids: comma-separated token ids.
bool parseIds(const std::string &text, std::vector<int64_t> *ids,
              std::string *error);

} // namespace kiln::tools

#endif // KILN_TOOLS_KILN_RUN_OPTIONS_H
