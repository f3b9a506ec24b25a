//===- Perplexity.cpp - Perplexity of a token sequence --------------------===//

#include "kiln/runtime/Perplexity.h"
#include "kiln/runtime/Session.h"

#include <algorithm>
#include <cmath>

using namespace kiln::runtime;

bool kiln::runtime::evaluatePerplexity(Session &session,
                                       const std::vector<int64_t> &ids,
                                       int64_t window, PerplexityResult *result,
                                       std::string *error) {
  const int64_t vocab = session.vocabSize();
  const int64_t n = static_cast<int64_t>(ids.size());
  if (window < 2 || window > session.maxSeqLen()) {
    *error = "perplexity window of " + std::to_string(window) +
             " tokens: expected 2 to the context length (" +
             std::to_string(session.maxSeqLen()) + ")";
    return false;
  }
  if (n < window) {
    *error = std::to_string(n) + " tokens are fewer than one window of " +
             std::to_string(window);
    return false;
  }
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= vocab) {
      *error = "token " + std::to_string(i) + " (id " + std::to_string(ids[i]) +
               ") is outside the vocabulary of " + std::to_string(vocab);
      return false;
    }

  *result = PerplexityResult();
  const int64_t windows = n / window;
  double total = 0; // sum of -log p, in double
  int64_t base = 0; // the current window's first id
  session.setKeepLogits(false);
  session.setLogitsObserver(
      [&](int64_t row, int64_t position, const float *logits) {
        if (row != 0 || position >= window - 1)
          return;
        const int64_t target = ids[base + position + 1];
        const float *top = std::max_element(logits, logits + vocab);
        double sum = 0;
        for (int64_t v = 0; v < vocab; ++v)
          sum += std::exp(static_cast<double>(logits[v]) - *top);
        total -= static_cast<double>(logits[target]) - *top - std::log(sum);
        result->predictions.push_back(static_cast<int32_t>(top - logits));
      });
  bool ok = true;
  for (int64_t w = 0; w < windows && ok; ++w) {
    base = w * window;
    std::vector<int64_t> tokens(ids.begin() + base,
                                ids.begin() + base + window);
    // Positions restart at 0: a window's own tokens overwrite the cache
    // before attention reads them.
    ok = session.prefill(tokens, 0, error);
  }
  session.setLogitsObserver(nullptr);
  session.setKeepLogits(true);
  if (!ok)
    return false;
  result->windows = windows;
  result->scored = windows * (window - 1);
  result->nll = total / static_cast<double>(result->scored);
  result->perplexity = std::exp(result->nll);
  if (!std::isfinite(result->nll)) {
    *error = "the logits gave a non-finite log-likelihood";
    return false;
  }
  return true;
}
