//===- Sampler.cpp - Picks the next token from a row of logits -----------===//

#include "kiln/runtime/Sampler.h"

#include "Format.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace kiln::runtime {

static float key(float logit) {
  return std::isnan(logit) ? -std::numeric_limits<float>::infinity() : logit;
}

bool Sampler::validate(const SamplerOptions &o, std::string *error,
                       std::string *field) {
  auto at = [&](const char *name) {
    if (field)
      *field = name;
  };
  if (!(o.temperature >= 0) || std::isinf(o.temperature)) {
    at("temperature");
    return detail::fail(error, "temperature must be a finite number >= 0, got ",
                        o.temperature);
  }
  if (o.topK < 0) {
    at("top_k");
    return detail::fail(error, "top-k must be >= 0, got ", o.topK);
  }
  if (!(o.topP > 0 && o.topP <= 1)) {
    at("top_p");
    return detail::fail(error, "top-p must be in (0, 1], got ", o.topP);
  }
  if (!(o.minP >= 0 && o.minP <= 1)) {
    at("min_p");
    return detail::fail(error, "min-p must be in [0, 1], got ", o.minP);
  }
  return true;
}

Sampler::Sampler(const SamplerOptions &options, int64_t vocabSize)
    : options(options), vocabSize(vocabSize), rng(options.seed) {
  if (!isGreedy()) {
    order.resize(vocabSize);
    weights.resize(vocabSize);
  }
}

bool Sampler::isGreedy() const { return options.greedy(); }

int64_t Sampler::sample(const float *logits) {
  if (isGreedy()) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocabSize; ++i)
      if (key(logits[i]) > key(logits[best]))
        best = i;
    return best;
  }

  // Candidates in descending logit order where top-k/top-p need an order;
  // ties broken by id so the result does not depend on the sort algorithm.
  std::iota(order.begin(), order.end(), 0);
  auto byLogit = [logits](int32_t a, int32_t b) {
    float ka = key(logits[a]), kb = key(logits[b]);
    return ka > kb || (ka == kb && a < b);
  };
  int64_t count = vocabSize;
  if (options.topK > 0 && options.topK < vocabSize) {
    count = options.topK;
    std::partial_sort(order.begin(), order.begin() + count, order.end(),
                      byLogit);
  } else if (options.topP < 1) {
    std::sort(order.begin(), order.end(), byLogit);
  }

  float maxLogit = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < count; ++i)
    maxLogit = std::max(maxLogit, key(logits[order[i]]));
  if (std::isinf(maxLogit)) // nothing finite to sample from
    return order[0];
  double total = 0;
  for (int64_t i = 0; i < count; ++i) {
    weights[i] =
        std::exp((static_cast<double>(key(logits[order[i]])) - maxLogit) /
                 options.temperature);
    total += weights[i];
  }
  if (options.topP < 1) {
    double kept = 0;
    int64_t keep = 0;
    while (keep < count && kept < options.topP * total)
      kept += weights[keep++];
    count = std::max<int64_t>(keep, 1);
    total = kept > 0 ? kept : weights[0];
  }

  // min-p: weights are relative to the largest (1), which always stays.
  if (options.minP > 0)
    for (int64_t i = 0; i < count; ++i)
      if (weights[i] < options.minP) {
        total -= weights[i];
        weights[i] = 0;
      }

  // 53 random bits: the same on every standard library, unlike
  // std::uniform_real_distribution.
  double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
  for (int64_t i = 0; i < count; ++i) {
    if (u < weights[i])
      return order[i];
    u -= weights[i];
  }
  return order[count - 1];
}

} // namespace kiln::runtime
