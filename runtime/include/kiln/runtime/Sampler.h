//===- Sampler.h - Picks the next token from a row of logits -------------===//
//
// Greedy (temperature 0), or softmax sampling at a temperature restricted to
// the top-k tokens and/or the top-p probability mass. Sampling draws from a
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
  uint64_t seed = 0;
};

class Sampler {
public:
  /// Checks temperature >= 0, topK >= 0, 0 < topP <= 1.
  static bool validate(const SamplerOptions &options, std::string *error);

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
