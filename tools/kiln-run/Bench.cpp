//===- Bench.cpp - kiln-run --bench ---------------------------------------===//

#include "Bench.h"

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/Session.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

using namespace kiln::runtime;

namespace kiln::tools {
namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "kiln-run: error: %s\n", message.c_str());
  return 1;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// The next greedy token of row 0: the kernels' argmax, or the logits'.
int64_t nextToken(const Session &s) {
  if (s.hasArgmax())
    return s.argmax(0);
  const float *logits = s.logits(0);
  return std::max_element(logits, logits + s.vocabSize()) - logits;
}

/// `text` as the contents of a JSON string.
std::string jsonEscape(const std::string &text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20)
      out += c;
  }
  return out;
}

} // namespace

int runBench(const BenchOptions &o) {
  std::string error;
  Artifact::OpenOptions open;
  open.verifyWeights = o.verifyWeights;
  std::shared_ptr<const Artifact> artifact =
      Artifact::open(o.model, open, &error);
  if (!artifact)
    return fail(error);
  std::unique_ptr<Session> s = Session::create(artifact, &error);
  if (!s)
    return fail(error);
  const int64_t P = o.promptTokens, G = o.generateTokens;
  if (P < 1 || G < 1 || o.repetitions < 1)
    return fail("--bench-prompt, --bench-generate and --bench-repetitions "
                "must be at least 1");
  if (P + G > s->maxSeqLen())
    return fail("--bench-prompt " + std::to_string(P) + " + --bench-generate " +
                std::to_string(G) +
                " tokens exceed the artifact's context of " +
                std::to_string(s->maxSeqLen()) +
                " (compile with a larger --max-seq-len)");
  s->setKeepLogits(!s->hasArgmax());

  // Generated ids (no prompt needed): a fixed linear congruential sequence
  // over the vocabulary.
  std::vector<int64_t> prompt(P);
  uint64_t x = 12345;
  for (int64_t &id : prompt) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    id = static_cast<int64_t>((x >> 33) % uint64_t(s->vocabSize()));
  }
  // The copy bandwidth of the device, on a buffer as large as the weights
  // (at most 1 GiB); first, so that its buffers are gone while decode runs
  // (scripts/long-run.sh samples memory then).
  const uint64_t testBytes = std::min<uint64_t>(
      uint64_t(1) << 30,
      std::max<uint64_t>(artifact->rankWeightsSize(), 64 << 20));
  double bandwidth = 0;
  if (!s->measureCopyBandwidth(testBytes, 10, &bandwidth, &error))
    return fail(error);
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  std::vector<double> prefillRates, decodeRates;
  // Tensor parallelism: rank 0's seconds in collectives during the counted
  // decode steps.
  double decodeCollectives = 0, decodeSeconds = 0;
  // Repetition 0 warms up (module load, clocks, caches) and is not counted.
  for (int64_t rep = 0; rep <= o.repetitions; ++rep) {
    auto t0 = Clock::now();
    if (!s->prefill(prompt, 0, &error))
      return fail(error);
    auto t1 = Clock::now();
    const double collectivesBefore = s->collectiveSeconds();
    int64_t token = nextToken(*s);
    for (int64_t i = 0; i < G; ++i) {
      if (!s->decode(token, P + i, &error))
        return fail(error);
      token = nextToken(*s);
    }
    auto t2 = Clock::now();
    if (rep > 0) {
      prefillRates.push_back(double(P) / seconds(t0, t1));
      decodeRates.push_back(double(G) / seconds(t1, t2));
      decodeCollectives += s->collectiveSeconds() - collectivesBefore;
      decodeSeconds += seconds(t1, t2);
    }
  }
  const double prefill = median(prefillRates), decode = median(decodeRates);
  const int64_t ranks = artifact->tensorParallel();
  const double steps = double(G) * double(o.repetitions);
  const double collectiveMs = 1e3 * decodeCollectives / steps;
  const double collectiveShare =
      decodeSeconds > 0 ? decodeCollectives / decodeSeconds : 0;

  // What a decode step reads: the weights (an untied embedding table only
  // one row of it) and, on average, (P + G / 2) positions of K and V.
  const ModelInfo &m = artifact->model();
  const KvCacheSpec &kv = artifact->kvCache();
  const uint64_t eltBytes = dtypeSize(kv.dtype);
  uint64_t weights = artifact->rankWeightsSize();
  if (!m.tiedEmbeddings &&
      weights > uint64_t(m.vocabSize * m.hiddenSize) * eltBytes)
    weights -= uint64_t(m.vocabSize * m.hiddenSize) * eltBytes;
  const uint64_t kvRead = uint64_t(P + G / 2) * uint64_t(kv.numLayers) * 2 *
                          uint64_t(kv.numKvHeads * kv.headDim) * eltBytes;
  const uint64_t stepBytes = weights + kvRead;
  const double limit = bandwidth / double(stepBytes);

  // The useful work of the prompt: every layer's projections for each of its
  // P tokens, causal attention (token i attends to i + 1 positions: q.k and
  // p.v), and the logits of the last token (the one sampled).
  const double hidden = double(m.hiddenSize),
               q = double(m.numHeads * m.headDim),
               kvw = double(m.numKvHeads * m.headDim);
  const double layerParams = hidden * q + 2 * hidden * kvw + q * hidden +
                             3 * hidden * double(m.intermediateSize);
  const double prefillFlops =
      2 * double(P) * double(m.numLayers) * layerParams +
      4 * q * double(m.numLayers) * double(P) * double(P + 1) / 2 +
      2 * hidden * double(m.vocabSize);
  const double tflops = prefillFlops * prefill / double(P) / 1e12;

  if (o.json) {
    std::printf(
        "{\"model\": \"%s\", \"device\": \"%s\", \"prompt_tokens\": %lld, "
        "\"generate_tokens\": %lld, \"repetitions\": %lld, "
        "\"prefill_tok_s\": %.2f, \"prefill_tflops\": %.4g, "
        "\"decode_tok_s\": %.2f, "
        "\"decode_step_bytes\": %llu, \"weights_read_bytes\": %llu, "
        "\"kv_read_bytes\": %llu, \"copy_bandwidth_bytes_s\": %.4g, "
        "\"decode_limit_tok_s\": %.2f, \"decode_fraction_of_limit\": %.4f, "
        "\"ranks\": %lld, \"decode_ms_per_token\": %.4f, "
        "\"collective_ms_per_token\": %.4f}\n",
        jsonEscape(o.model).c_str(), jsonEscape(s->device()).c_str(),
        (long long)P, (long long)G, (long long)o.repetitions, prefill, tflops,
        decode, (unsigned long long)stepBytes, (unsigned long long)weights,
        (unsigned long long)kvRead, bandwidth, limit, decode / limit,
        (long long)ranks, 1e3 / decode, collectiveMs);
    return 0;
  }
  std::printf("kiln-run --bench: %s on %s\n", o.model.c_str(),
              s->device().c_str());
  std::printf("  prefill  %6lld tokens  %10.1f tok/s  (median of %lld); "
              "%.1f TFLOP/s of useful work (%.4g FLOP: projections, causal "
              "attention, last-token logits)\n",
              (long long)P, prefill, (long long)o.repetitions, tflops,
              prefillFlops);
  std::printf("  decode   %6lld tokens  %10.1f tok/s  (median of %lld)\n",
              (long long)G, decode, (long long)o.repetitions);
  if (ranks > 1)
    std::printf("  tensor parallel over %lld ranks: %.3f ms a token, of which "
                "%.3f ms in collectives (%.1f%% of the decode time)\n",
                (long long)ranks, 1e3 / decode, collectiveMs,
                100.0 * collectiveShare);
  std::printf("  decode step reads %.3f GB (weights %.3f GB, KV %.1f MB at "
              "%lld positions on average)\n",
              stepBytes / 1e9, weights / 1e9, kvRead / 1e6,
              (long long)(P + G / 2));
  std::printf("  copy bandwidth %.2f TB/s (bytes read + written, measured "
              "now) -> limit %.1f tok/s; decode at %.1f%% of it\n",
              bandwidth / 1e12, limit, 100.0 * decode / limit);
  return 0;
}

} // namespace kiln::tools
