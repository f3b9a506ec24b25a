//===- Sampler.h - Picks the next token from a row of logits -------------===//
//
// Greedy (temperature 0), or softmax sampling at a temperature restricted to
// the top-k tokens, then the top-p probability mass, then the tokens at
// least min-p times as likely as the most likely. Sampling draws from a
// std::mt19937_64 seeded with `seed`, so a given seed and logits sequence
// always gives the same tokens. Scratch space is allocated once, in the
// constructor.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_SAMPLER_H
#define KILN_RUNTIME_SAMPLER_H

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace kiln::runtime {

struct SamplerOptions {
  /// 0 means greedy (argmax; the lowest id wins a tie).
  float temperature = 0.0f;
  /// Keep only the k most likely tokens; 0 keeps all.
  int64_t topK = 0;
  /// Keep the smallest set of most likely tokens whose probability reaches
  /// topP; 1 keeps all.
  float topP = 1.0f;
  /// Keep only tokens at least minP times as likely as the most likely one
  /// (after top-k and top-p); 0 keeps all.
  float minP = 0.0f;
  uint64_t seed = 0;

  /// Whether these options pick the most likely token (the argmax).
  bool greedy() const { return temperature == 0 || topK == 1; }
};

class Sampler {
public:
  /// Checks temperature >= 0, topK >= 0, 0 < topP <= 1, 0 <= minP <= 1.
  /// On failure `*field` (when given) names the option at fault as the
  /// OpenAI API spells it: temperature, top_k, top_p or min_p.
  static bool validate(const SamplerOptions &options, std::string *error,
                       std::string *field = nullptr);

  Sampler(const SamplerOptions &options, int64_t vocabSize);

  bool isGreedy() const;
  /// Returns a token id in [0, vocabSize). NaN logits never win.
  int64_t sample(const float *logits);

private:
  SamplerOptions options;
  int64_t vocabSize;
  std::mt19937_64 rng;
  std::vector<int32_t> order;
  std::vector<double> weights;
};

} // namespace kiln::runtime

#endif // KILN_RUNTIME_SAMPLER_H
