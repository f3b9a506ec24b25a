//===- SamplerTest.cpp - Greedy, temperature, top-k, top-p, seeds --------===//

#include "TestUtil.h"

#include "kiln/runtime/Sampler.h"

#include <cmath>
#include <map>
#include <set>

using namespace kiln::runtime;

namespace {

// Token i has logit -i/2: 0 is the most likely, 9 the least.
std::vector<float> ramp(int64_t vocab = 10) {
  std::vector<float> logits(vocab);
  for (int64_t i = 0; i < vocab; ++i)
    logits[i] = -0.5f * float(i);
  return logits;
}

std::vector<int64_t> draw(const SamplerOptions &options, int count,
                          const std::vector<float> &logits = ramp()) {
  Sampler sampler(options, int64_t(logits.size()));
  std::vector<int64_t> out;
  for (int i = 0; i < count; ++i)
    out.push_back(sampler.sample(logits.data()));
  return out;
}

TEST(SamplerTest, GreedyPicksArgmaxLowestIdOnTies) {
  std::vector<float> logits = {0.0f, 3.0f, -1.0f, 3.0f, NAN};
  Sampler greedy(SamplerOptions(), 5);
  EXPECT_TRUE(greedy.isGreedy());
  EXPECT_EQ(greedy.sample(logits.data()), 1);
  logits[4] = 9.0f;
  EXPECT_EQ(greedy.sample(logits.data()), 4);
}

TEST(SamplerTest, TopKOneIsGreedy) {
  SamplerOptions options;
  options.temperature = 5.0f;
  options.topK = 1;
  EXPECT_EQ(draw(options, 20), std::vector<int64_t>(20, 0));
}

TEST(SamplerTest, SameSeedSameTokens) {
  SamplerOptions options;
  options.temperature = 1.0f;
  options.seed = 42;
  std::vector<int64_t> first = draw(options, 200);
  EXPECT_EQ(draw(options, 200), first);
  options.seed = 43;
  EXPECT_NE(draw(options, 200), first);
  // Sampling actually samples: more than one distinct token.
  EXPECT_GT(std::set<int64_t>(first.begin(), first.end()).size(), 3u);
}

TEST(SamplerTest, TopKRestrictsCandidates) {
  SamplerOptions options;
  options.temperature = 100.0f; // nearly uniform over what is left
  options.topK = 3;
  options.seed = 7;
  std::map<int64_t, int> counts;
  for (int64_t token : draw(options, 3000))
    ++counts[token];
  ASSERT_EQ(counts.size(), 3u);
  for (int64_t token = 0; token < 3; ++token)
    EXPECT_GT(counts[token], 800) << token;
}

TEST(SamplerTest, TopPRestrictsToTheNucleus) {
  // Probabilities at T=1: softmax of the ramp, p0 ~ 0.39, p0+p1 ~ 0.63.
  SamplerOptions options;
  options.temperature = 1.0f;
  options.topP = 0.5f;
  options.seed = 3;
  std::set<int64_t> seen;
  for (int64_t token : draw(options, 1000))
    seen.insert(token);
  EXPECT_EQ(seen, (std::set<int64_t>{0, 1}));
  options.topP = 0.1f;
  EXPECT_EQ(draw(options, 50), std::vector<int64_t>(50, 0));
}

TEST(SamplerTest, FrequenciesFollowTheSoftmax) {
  SamplerOptions options;
  options.temperature = 2.0f;
  options.seed = 11;
  const int n = 20000;
  std::vector<int> counts(10);
  for (int64_t token : draw(options, n))
    ++counts[token];
  double total = 0;
  for (int i = 0; i < 10; ++i)
    total += std::exp(-0.25 * i);
  for (int i = 0; i < 3; ++i)
    EXPECT_NEAR(counts[i] / double(n), std::exp(-0.25 * i) / total, 0.02);
}

TEST(SamplerTest, Validate) {
  std::string error;
  EXPECT_TRUE(Sampler::validate(SamplerOptions(), &error));
  SamplerOptions bad;
  bad.temperature = -1;
  EXPECT_FALSE(Sampler::validate(bad, &error));
  EXPECT_HAS_SUBSTR(error, "temperature must be");
  bad = SamplerOptions();
  bad.topK = -2;
  EXPECT_FALSE(Sampler::validate(bad, &error));
  EXPECT_HAS_SUBSTR(error, "top-k must be >= 0");
  bad = SamplerOptions();
  bad.topP = 0;
  EXPECT_FALSE(Sampler::validate(bad, &error));
  EXPECT_HAS_SUBSTR(error, "top-p must be in (0, 1]");
}

} // namespace
