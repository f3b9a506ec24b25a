//===- SessionTest.cpp - Session end to end on the fake kernel image -----===//

#include "FakeArtifact.h"
#include "FakeKernels.h"
#include "TestUtil.h"

#include "kiln/runtime/Numeric.h"
#include "kiln/runtime/Sampler.h"
#include "kiln/runtime/Session.h"

#include <dlfcn.h>

using namespace kiln::runtime;
using namespace kiln::test;

namespace {

std::unique_ptr<Session> openFake(const FakeOptions &options,
                                  std::string *error) {
  static int counter = 0;
  TempPath path("." + std::to_string(counter++) + ".kiln");
  if (!writeFakeArtifact(path, options, error))
    return nullptr;
  // The session keeps the mapping; the file can go.
  return Session::open(path, error);
}

std::unique_ptr<Session> openFake(const FakeOptions &options = {}) {
  std::string error;
  std::unique_ptr<Session> s = openFake(options, &error);
  EXPECT_TRUE(s) << error;
  return s;
}

int64_t argmax(const float *logits) {
  return std::max_element(logits, logits + FAKE_VOCAB) - logits;
}

/// The fake model's greedy next token after `token` in a prompt that began
/// with `first`.
int64_t expectedNext(int64_t token, int64_t first) {
  return (token + first + 1) % FAKE_VOCAB;
}

float kvValue(const Session &s, bool v, int layer, int64_t b, int64_t h,
              int64_t p, int64_t d = 0) {
  uint64_t offset = v ? fakeVOffset(layer) : fakeKOffset(layer);
  const float *block = reinterpret_cast<const float *>(
      static_cast<const uint8_t *>(s.kvCache()) + offset);
  return block[((b * FAKE_KV_HEADS + h) * FAKE_MAX_SEQ + p) * FAKE_HEAD_DIM +
               d];
}

struct Observed {
  int64_t row, position, argmax;
  bool operator==(const Observed &o) const {
    return row == o.row && position == o.position && argmax == o.argmax;
  }
};

TEST(SessionTest, Shape) {
  auto s = openFake();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->batch(), FAKE_BATCH);
  EXPECT_EQ(s->vocabSize(), FAKE_VOCAB);
  EXPECT_EQ(s->maxSeqLen(), FAKE_MAX_SEQ);
  EXPECT_EQ(s->prefillChunk(), FAKE_PREFILL_SEQ);
  EXPECT_EQ(s->kvBytes(), 4 * fakeBlockBytes());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(s->kvCache()) % 64, 0u);
}

TEST(SessionTest, PrefillChunksAndPadsWithMinusOne) {
  auto s = openFake();
  ASSERT_TRUE(s);
  std::vector<Observed> seen;
  s->setLogitsObserver([&](int64_t row, int64_t pos, const float *logits) {
    seen.push_back({row, pos, argmax(logits)});
  });
  // 6 tokens in chunks of 4: the second chunk has 2 padding slots.
  std::vector<int64_t> prompt = {3, 5, 7, 9, 11, 2};
  std::string error;
  ASSERT_TRUE(s->prefill(prompt, 0, &error)) << error;

  ASSERT_EQ(seen.size(), prompt.size()); // no padding slot observed
  for (size_t i = 0; i < prompt.size(); ++i)
    EXPECT_EQ(seen[i], (Observed{0, int64_t(i), expectedNext(prompt[i], 3)}));
  ASSERT_TRUE(s->logits(0));
  EXPECT_EQ(argmax(s->logits(0)), expectedNext(2, 3));
  EXPECT_FALSE(s->logits(1)); // row 1 idled

  for (int layer = 0; layer < FAKE_LAYERS; ++layer)
    for (int64_t p = 0; p < FAKE_MAX_SEQ; ++p) {
      bool written = p < int64_t(prompt.size());
      EXPECT_EQ(kvValue(*s, false, layer, 0, 1, p, 3),
                written ? prompt[p] + 1 : 0.0f)
          << layer << " " << p;
      EXPECT_EQ(kvValue(*s, true, layer, 0, 0, p), written ? p + 1 : 0.0f);
      EXPECT_EQ(kvValue(*s, false, layer, 1, 0, p), 0.0f); // idle row
    }
}

TEST(SessionTest, PrefillAtStartPosition) {
  auto s = openFake();
  ASSERT_TRUE(s);
  std::string error;
  ASSERT_TRUE(s->prefill({4, 6}, 0, &error)) << error;
  ASSERT_TRUE(s->prefill({1, 2, 3, 8, 10}, 2, &error)) << error;
  for (int64_t p = 0; p < 7; ++p)
    EXPECT_EQ(kvValue(*s, true, 1, 0, 1, p), p + 1);
  EXPECT_EQ(kvValue(*s, true, 1, 0, 1, 7), 0.0f);
  // Position 0 still holds the first prompt's token.
  EXPECT_EQ(argmax(s->logits(0)), expectedNext(10, 4));
}

TEST(SessionTest, GreedyDecode) {
  auto s = openFake();
  ASSERT_TRUE(s);
  std::string error;
  std::vector<int64_t> prompt = {1, 4, 9};
  ASSERT_TRUE(s->prefill(prompt, 0, &error)) << error;
  Sampler greedy(SamplerOptions(), FAKE_VOCAB);
  int64_t token = greedy.sample(s->logits(0));
  int64_t expected = expectedNext(9, 1);
  for (int64_t pos = 3; pos < 12; ++pos) {
    EXPECT_EQ(token, expected);
    ASSERT_TRUE(s->decode(token, pos, &error)) << error;
    EXPECT_EQ(kvValue(*s, false, 0, 0, 0, pos), token + 1);
    EXPECT_EQ(kvValue(*s, true, 1, 0, 1, pos), pos + 1);
    expected = expectedNext(token, 1);
    token = greedy.sample(s->logits(0));
  }
  EXPECT_EQ(kvValue(*s, true, 0, 0, 0, 12), 0.0f);
}

TEST(SessionTest, BatchedPrefillRowsOfDifferentLengths) {
  auto s = openFake();
  ASSERT_TRUE(s);
  std::string error;
  // Row 1's last token is in the first chunk; the second chunk pads it.
  ASSERT_TRUE(s->prefillBatch({{2, 3, 4, 5, 6}, {7, 8}}, {0, 5}, &error))
      << error;
  EXPECT_EQ(argmax(s->logits(0)), expectedNext(6, 2));
  // Row 1 starts at 5: position 0 of its cache is empty, so c = 0.
  EXPECT_EQ(argmax(s->logits(1)), 8 % FAKE_VOCAB);
  EXPECT_EQ(kvValue(*s, false, 0, 1, 0, 5), 8.0f);
  EXPECT_EQ(kvValue(*s, false, 0, 1, 0, 6), 9.0f);
  EXPECT_EQ(kvValue(*s, false, 0, 1, 0, 7), 0.0f);
  EXPECT_EQ(kvValue(*s, false, 0, 1, 0, 4), 0.0f);

  ASSERT_TRUE(s->decodeBatch({1, 2}, {5, -1}, &error)) << error;
  EXPECT_EQ(argmax(s->logits(0)), expectedNext(1, 2));
  EXPECT_FALSE(s->logits(1));
  EXPECT_EQ(kvValue(*s, false, 0, 1, 0, 7), 0.0f);
}

TEST(SessionTest, LastRowPrefillRightAlignsEachRow) {
  FakeOptions options;
  options.lastRowPrefill = true;
  auto s = openFake(options);
  ASSERT_TRUE(s);
  std::string error;
  // Chunks of 4: row 0 (5 tokens) leads with 3 padding slots, row 1 (2
  // tokens) with 6; both last tokens land in the last slot of chunk 2,
  // the one row @prefill computes.
  ASSERT_TRUE(s->prefillBatch({{2, 3, 4, 5, 6}, {7, 8}}, {0, 5}, &error))
      << error;
  ASSERT_TRUE(s->logits(0) && s->logits(1));
  EXPECT_EQ(argmax(s->logits(0)), expectedNext(6, 2));
  EXPECT_EQ(argmax(s->logits(1)), 8 % FAKE_VOCAB);
  EXPECT_EQ(s->argmax(0), expectedNext(6, 2));
  EXPECT_EQ(s->argmax(1), 8 % FAKE_VOCAB);
  // The KV cache holds every real token at its position, nothing else.
  for (int64_t p = 0; p < 5; ++p)
    EXPECT_EQ(kvValue(*s, false, 0, 0, 0, p), float(2 + p + 1)) << p;
  EXPECT_EQ(kvValue(*s, false, 0, 0, 0, 5), 0.0f);
  EXPECT_EQ(kvValue(*s, false, 0, 1, 0, 4), 0.0f);
  EXPECT_EQ(kvValue(*s, false, 0, 1, 0, 5), 8.0f);
  EXPECT_EQ(kvValue(*s, false, 0, 1, 0, 6), 9.0f);
  EXPECT_EQ(kvValue(*s, false, 0, 1, 0, 7), 0.0f);

  // A logits observer gets every position's row: from @prefill_all.
  ASSERT_TRUE(s->clearKvCache(&error)) << error;
  std::vector<Observed> seen;
  s->setLogitsObserver([&](int64_t row, int64_t pos, const float *logits) {
    seen.push_back({row, pos, argmax(logits)});
  });
  std::vector<int64_t> prompt = {3, 5, 7, 9, 11, 2};
  ASSERT_TRUE(s->prefill(prompt, 0, &error)) << error;
  ASSERT_EQ(seen.size(), prompt.size());
  for (size_t i = 0; i < prompt.size(); ++i)
    EXPECT_EQ(seen[i], (Observed{0, int64_t(i), expectedNext(prompt[i], 3)}));
}

TEST(SessionTest, LastRowPrefillWithoutAllRowsRefusesAnObserver) {
  FakeOptions options;
  options.lastRowPrefill = true;
  options.withPrefillAll = false;
  auto s = openFake(options);
  ASSERT_TRUE(s);
  std::string error;
  ASSERT_TRUE(s->prefill({1, 4, 9}, 0, &error)) << error;
  EXPECT_EQ(argmax(s->logits(0)), expectedNext(9, 1));
  s->setLogitsObserver([](int64_t, int64_t, const float *) {});
  EXPECT_FALSE(s->prefill({1, 4, 9}, 0, &error));
  EXPECT_HAS_SUBSTR(error, "--prefill-logits=last");
}

TEST(SessionTest, DecodeOnlyArtifactPrefillsTokenByToken) {
  FakeOptions options;
  options.withPrefill = false;
  auto s = openFake(options);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->prefillChunk(), 1);
  std::string error;
  ASSERT_TRUE(s->prefill({5, 6, 7}, 0, &error)) << error;
  EXPECT_EQ(argmax(s->logits(0)), expectedNext(7, 5));
}

TEST(SessionTest, PrefillOnlyArtifactDecodesWithPadding) {
  FakeOptions options;
  options.withDecode = false;
  auto s = openFake(options);
  ASSERT_TRUE(s);
  std::string error;
  ASSERT_TRUE(s->prefill({5, 6}, 0, &error)) << error;
  ASSERT_TRUE(s->decode(3, 2, &error)) << error;
  EXPECT_EQ(argmax(s->logits(0)), expectedNext(3, 5));
  EXPECT_EQ(kvValue(*s, true, 0, 0, 0, 3), 0.0f); // padding wrote nothing
}

TEST(SessionTest, WeightsReachTheKernels) {
  FakeOptions options;
  options.bias.assign(FAKE_VOCAB, 0.0f);
  options.bias[13] = 100.0f;
  auto s = openFake(options);
  ASSERT_TRUE(s);
  std::string error;
  ASSERT_TRUE(s->prefill({1}, 0, &error)) << error;
  EXPECT_EQ(argmax(s->logits(0)), 13);
}

TEST(SessionTest, InputErrors) {
  auto s = openFake();
  ASSERT_TRUE(s);
  std::string error;
  EXPECT_FALSE(s->prefill({}, 0, &error));
  EXPECT_EQ(error, "empty prompt");
  EXPECT_FALSE(s->prefill({1, FAKE_VOCAB}, 0, &error));
  EXPECT_EQ(error, "token id 16 at prompt index 1 is outside the vocabulary "
                   "[0, 16)");
  EXPECT_FALSE(s->prefill({-1}, 0, &error));
  EXPECT_HAS_SUBSTR(error, "token id -1 at prompt index 0");
  EXPECT_FALSE(
      s->prefill(std::vector<int64_t>(FAKE_MAX_SEQ + 1, 1), 0, &error));
  EXPECT_EQ(error, "prompt of 33 tokens starting at position 0 does not fit "
                   "the context of 32 tokens");
  EXPECT_FALSE(s->prefill({1, 2, 3}, 30, &error));
  EXPECT_EQ(error, "prompt of 3 tokens starting at position 30 does not fit "
                   "the context of 32 tokens");
  EXPECT_FALSE(s->prefill({1}, -2, &error));
  EXPECT_HAS_SUBSTR(error, "start position -2 is negative");
  EXPECT_TRUE(s->prefill(std::vector<int64_t>(FAKE_MAX_SEQ, 1), 0, &error));
  EXPECT_FALSE(s->decode(1, FAKE_MAX_SEQ, &error));
  EXPECT_EQ(error, "position 32 is outside the context of 32 tokens");
  EXPECT_FALSE(s->decode(99, 3, &error));
  EXPECT_EQ(error, "token id 99 is outside the vocabulary [0, 16)");
  EXPECT_FALSE(s->prefillBatch({{1}}, {0}, &error));
  EXPECT_HAS_SUBSTR(error, "one prompt and start position per batch row (2)");
  EXPECT_FALSE(s->decodeBatch({1, 2}, {0, 40}, &error));
  EXPECT_EQ(error, "position 40 (row 1) is outside the context of 32 tokens");
}

TEST(SessionTest, LoadKvCacheF32) {
  auto s = openFake();
  ASSERT_TRUE(s);
  const int64_t past = 3;
  std::vector<float> data(2 * FAKE_LAYERS * FAKE_BATCH * FAKE_KV_HEADS * past *
                          FAKE_HEAD_DIM);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = float(i);
  std::string error;
  ASSERT_TRUE(s->loadKvCache(data.data(), past, &error)) << error;
  // [2*layers, batch, kv_heads, past, head_dim], k0 v0 k1 v1.
  auto at = [&](int kv, int layer, int b, int h, int p, int d) {
    return data[((((2 * layer + kv) * FAKE_BATCH + b) * FAKE_KV_HEADS + h) *
                     past +
                 p) *
                    FAKE_HEAD_DIM +
                d];
  };
  for (int layer = 0; layer < FAKE_LAYERS; ++layer)
    for (int kv = 0; kv < 2; ++kv)
      for (int b = 0; b < FAKE_BATCH; ++b)
        for (int h = 0; h < FAKE_KV_HEADS; ++h)
          for (int p = 0; p < past; ++p)
            for (int d = 0; d < FAKE_HEAD_DIM; ++d)
              ASSERT_EQ(kvValue(*s, kv, layer, b, h, p, d),
                        at(kv, layer, b, h, p, d));
  EXPECT_EQ(kvValue(*s, false, 0, 0, 0, past), 0.0f);

  // The fake reads K[0][b][0][0][0] = 0 as its context term.
  ASSERT_TRUE(s->prefill({5}, past, &error)) << error;
  EXPECT_EQ(argmax(s->logits(0)), 5);
  EXPECT_FALSE(s->loadKvCache(data.data(), FAKE_MAX_SEQ + 1, &error));
  EXPECT_EQ(error, "past length 33 is outside the context of 32 tokens");
  s->clearKvCache();
  EXPECT_EQ(kvValue(*s, false, 1, 1, 1, 1, 1), 0.0f);
}

TEST(SessionTest, LoadKvCacheConvertsToF16) {
  FakeOptions options;
  options.kvDtype = DType::F16; // the fake kernels are not run
  auto s = openFake(options);
  ASSERT_TRUE(s);
  const int64_t past = 2;
  std::vector<float> data(2 * FAKE_LAYERS * FAKE_BATCH * FAKE_KV_HEADS * past *
                              FAKE_HEAD_DIM,
                          0.0f);
  data[0] = 1.5f;                 // k0 [0,0,0,0]
  data[data.size() - 1] = -2.25f; // v1 [1,1,1,3]
  std::string error;
  ASSERT_TRUE(s->loadKvCache(data.data(), past, &error)) << error;
  const auto *kv = static_cast<const uint16_t *>(s->kvCache());
  EXPECT_EQ(halfToFloat(kv[0]), 1.5f);
  uint64_t blockHalves = fakeBlockBytes() / 4; // f32 layout size / 2 / 2
  uint64_t last = (3 * blockHalves) +
                  ((1 * FAKE_KV_HEADS + 1) * FAKE_MAX_SEQ + 1) * FAKE_HEAD_DIM +
                  3;
  EXPECT_EQ(halfToFloat(kv[last]), -2.25f);
}

TEST(SessionTest, MissingSymbol) {
  FakeOptions options;
  options.decodeSymbol = "nope";
  std::string error;
  EXPECT_FALSE(openFake(options, &error));
  EXPECT_EQ(error, "no kernel image defines symbol 'nope' of entry 'decode'");
}

TEST(SessionTest, ImageNotElf) {
  FakeOptions options;
  options.image.assign(100, 'x');
  std::string error;
  EXPECT_FALSE(openFake(options, &error));
  EXPECT_EQ(error, "kernel image 'kernels' is not an ELF shared object");
}

TEST(SessionTest, GpuTargetWithoutDriver) {
  FakeOptions options;
  options.target = "sm_90";
  std::string error;
  EXPECT_FALSE(openFake(options, &error));
  if (void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    // With a driver the fake PTX gets as far as the module load, which
    // rejects it (or there is no device).
    dlclose(driver);
    EXPECT_TRUE(error.find("cuModuleLoadDataEx failed") != std::string::npos ||
                error.find("no CUDA driver or GPU found") != std::string::npos)
        << error;
  } else {
    EXPECT_HAS_SUBSTR(error, "no CUDA driver or GPU found (cannot load "
                             "libcuda.so.1");
  }
}

TEST(SessionTest, UnknownTarget) {
  FakeOptions options;
  options.target = "tpu";
  std::string error;
  EXPECT_FALSE(openFake(options, &error));
  EXPECT_EQ(error, "unsupported target 'tpu' (this runtime runs 'cpu' and "
                   "'sm_*' artifacts)");
}

TEST(SessionTest, TwoSessionsAtOnce) {
  FakeOptions biased;
  biased.bias.assign(FAKE_VOCAB, 0.0f);
  biased.bias[2] = 50.0f;
  auto a = openFake();
  auto b = openFake(biased);
  ASSERT_TRUE(a && b);
  std::string error;
  ASSERT_TRUE(a->prefill({7}, 0, &error)) << error;
  ASSERT_TRUE(b->prefill({7}, 0, &error)) << error;
  EXPECT_EQ(argmax(a->logits(0)), expectedNext(7, 7));
  EXPECT_EQ(argmax(b->logits(0)), 2);
}

} // namespace
