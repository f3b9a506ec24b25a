//===- Perplexity.h - Perplexity of a token sequence --------------*- C++
//-*-===//
//
// How `transformers` users measure a causal LM on a text: the ids are cut
// into non-overlapping windows of `window` tokens (a shorter tail is
// dropped), each window runs from position 0 with no state from the one
// before, and every token after a window's first is scored by the logits
// of the token before it:
//
//   nll = -mean(log softmax(logits[p])[ids[p + 1]]),  perplexity = exp(nll)
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_PERPLEXITY_H
#define KILN_RUNTIME_PERPLEXITY_H

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::runtime {
class Session;

struct PerplexityResult {
  double nll = 0;        // mean negative log-likelihood (nats per token)
  double perplexity = 0; // exp(nll)
  int64_t windows = 0;
  int64_t scored = 0; // tokens scored: windows * (window - 1)
  /// The model's top-1 prediction for each scored token, in order (the
  /// first largest logit), for comparing two compilations of a model.
  std::vector<int32_t> predictions;
};

/// Scores `ids` with `session` (batch row 0) in windows of `window` tokens
/// (2 <= window <= the context). Fails on an id outside the vocabulary, on
/// fewer than `window` ids, and on a run error.
bool evaluatePerplexity(Session &session, const std::vector<int64_t> &ids,
                        int64_t window, PerplexityResult *result,
                        std::string *error);

} // namespace kiln::runtime

#endif // KILN_RUNTIME_PERPLEXITY_H
