//===- GpuExecutorTest.cpp - The GPU executor on the fake CUDA driver ----===//
//
// Runs with LD_LIBRARY_PATH naming the fake libcuda.so.1 of FakeCuda.cpp,
// which runs the fake model's kernels on the host: the GPU executor's whole
// flow (image choice, kernels, buffers, graphs, copies, errors, cleanup)
// without a GPU, checked against the CPU target on the same fake model.
//
//===----------------------------------------------------------------------===//

#include "FakeArtifact.h"
#include "FakeCuda.h"
#include "FakeKernels.h"
#include "TestUtil.h"

#include "kiln/runtime/Session.h"

#include <dlfcn.h>
#include <set>

#include <cstdlib>
#include <cstring>
#include <thread>

using namespace kiln::runtime;
using namespace kiln::test;

namespace {

/// The fake model's greedy next token after `token` in a prompt that began
/// with `first`.
int64_t expectedNextForTest(int64_t token, int64_t first) {
  return (token + first + 1) % FAKE_VOCAB;
}

/// The fake driver's controls (the same library the executor loads).
struct FakeDriver {
  void (*reset)() = nullptr;
  const KilnFakeCudaStats *(*stats)() = nullptr;
  void (*destroyGraphs)() = nullptr;

  static const FakeDriver &get() {
    static FakeDriver driver = [] {
      FakeDriver d;
      void *handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
      if (handle) {
        d.reset =
            reinterpret_cast<void (*)()>(dlsym(handle, "kilnFakeCudaReset"));
        d.stats = reinterpret_cast<const KilnFakeCudaStats *(*)()>(
            dlsym(handle, "kilnFakeCudaStats"));
        d.destroyGraphs = reinterpret_cast<void (*)()>(
            dlsym(handle, "kilnFakeCudaDestroyGraphs"));
      }
      return d;
    }();
    return driver;
  }
};

const char *const kEnvironment[] = {"KILN_FAKE_CUDA_ARCH",
                                    "KILN_FAKE_CUDA_DEVICES",
                                    "KILN_FAKE_CUDA_MAX_THREADS",
                                    "KILN_FAKE_CUDA_FAIL",
                                    "KILN_CUDA_SYNC",
                                    "KILN_CUDA_GRAPHS",
                                    "KILN_CUDA_PDL",
                                    "KILN_PROFILE"};

class GpuExecutorTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_TRUE(FakeDriver::get().reset && FakeDriver::get().stats &&
                FakeDriver::get().destroyGraphs)
        << "libcuda.so.1 is not the fake driver: run with LD_LIBRARY_PATH "
           "naming build/test/fake-cuda";
    for (const char *name : kEnvironment)
      unsetenv(name);
    reset();
  }
  void TearDown() override {
    for (const char *name : kEnvironment)
      unsetenv(name);
  }

  /// Sets an environment variable of the fake driver or the executor.
  void set(const char *name, const std::string &value) {
    setenv(name, value.c_str(), 1);
    reset();
  }
  void reset() { FakeDriver::get().reset(); }
  const KilnFakeCudaStats &stats() { return *FakeDriver::get().stats(); }
  std::string log() { return stats().log; }

  std::unique_ptr<Session> open(const FakeOptions &options,
                                std::string *error) {
    TempPath path("." + std::to_string(counter++) + ".kiln");
    if (!writeFakeArtifact(path, options, error))
      return nullptr;
    return Session::open(path, error);
  }
  std::unique_ptr<Session> open(const FakeOptions &options) {
    std::string error;
    std::unique_ptr<Session> s = open(options, &error);
    EXPECT_TRUE(s) << error;
    return s;
  }
  /// The error of opening `options`, which must fail.
  std::string openError(const FakeOptions &options) {
    std::string error;
    EXPECT_FALSE(open(options, &error));
    return error;
  }

  /// Nothing the executor created is left in the driver.
  void expectAllReleased() {
    const KilnFakeCudaStats &s = stats();
    EXPECT_EQ(s.allocations, 0);
    EXPECT_EQ(s.modules, 0);
    EXPECT_EQ(s.streams, 0);
    EXPECT_EQ(s.graphs, 0);
    EXPECT_EQ(s.graphExecs, 0);
    EXPECT_EQ(s.hostRegistered, 0);
    EXPECT_EQ(s.primaryContextRefs, 0);
  }

  int counter = 0;
};

FakeOptions gpu(const std::string &target = "sm_90") {
  FakeOptions options;
  options.target = target;
  return options;
}

/// Prefill `prompt` on row 0, then `steps` greedy decode steps; the tokens,
/// taken from argmax() when `useArgmax`, else from the logits.
std::vector<int64_t> generate(Session &s, const std::vector<int64_t> &prompt,
                              int steps, bool useArgmax) {
  std::string error;
  std::vector<int64_t> out;
  s.setKeepLogits(!useArgmax);
  auto next = [&] {
    if (useArgmax)
      return s.argmax(0);
    const float *logits = s.logits(0);
    EXPECT_TRUE(logits);
    return logits ? std::max_element(logits, logits + FAKE_VOCAB) - logits
                  : int64_t(-1);
  };
  EXPECT_TRUE(s.prefill(prompt, 0, &error)) << error;
  out.push_back(next());
  for (int i = 0; i < steps; ++i) {
    EXPECT_TRUE(s.decode(out.back(), int64_t(prompt.size()) + i, &error))
        << error;
    out.push_back(next());
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Results match the CPU target
//===----------------------------------------------------------------------===//

TEST_F(GpuExecutorTest, GreedyTokensMatchTheCpu) {
  const std::vector<int64_t> prompt = {3, 1, 4, 1, 5, 9}; // two chunks
  for (bool useArgmax : {true, false}) {
    auto cpu = open(FakeOptions());
    auto gpu = open(::gpu());
    ASSERT_TRUE(cpu && gpu);
    EXPECT_EQ(gpu->device(),
              "Kiln Fake GPU (sm_90; PTX, JIT-compiled; CUDA graphs)");
    EXPECT_EQ(generate(*gpu, prompt, 8, useArgmax),
              generate(*cpu, prompt, 8, useArgmax));
  }
  EXPECT_EQ(stats().nullStreamOps, 0);
}

TEST_F(GpuExecutorTest, GreedyUsesTheKernelsArgmax) {
  // The argmax kernel reports (argmax + 5) mod vocab: only a runtime that
  // reads argmax, not the logits, sees it.
  FakeOptions options = gpu();
  options.argmaxShift = 5;
  auto s = open(options);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->hasArgmax());
  std::string error;
  ASSERT_TRUE(s->prefill({2, 7}, 0, &error)) << error;
  EXPECT_EQ(s->argmax(0), (expectedNextForTest(7, 2) + 5) % FAKE_VOCAB);
  EXPECT_EQ(s->argmax(1), -1); // idle row
}

TEST_F(GpuExecutorTest, LogitsMatchTheCpu) {
  auto collect = [](Session &s) {
    std::vector<float> all;
    s.setLogitsObserver([&](int64_t row, int64_t, const float *logits) {
      EXPECT_EQ(row, 0);
      all.insert(all.end(), logits, logits + FAKE_VOCAB);
    });
    generate(s, {1, 2, 3, 4, 5}, 3, /*useArgmax=*/true);
    return all;
  };
  auto cpu = open(FakeOptions());
  auto gpu = open(::gpu());
  ASSERT_TRUE(cpu && gpu);
  std::vector<float> expected = collect(*cpu);
  EXPECT_EQ(expected.size(), 8u * FAKE_VOCAB);
  EXPECT_EQ(collect(*gpu), expected);
}

TEST_F(GpuExecutorTest, BatchedRows) {
  auto cpu = open(FakeOptions());
  auto gpu = open(::gpu());
  ASSERT_TRUE(cpu && gpu);
  std::string error;
  for (Session *s : {cpu.get(), gpu.get()}) {
    ASSERT_TRUE(s->prefillBatch({{1, 2, 3, 4, 5}, {6, 7}}, {0, 0}, &error))
        << error;
    EXPECT_EQ(s->argmax(0), expectedNextForTest(5, 1));
    EXPECT_EQ(s->argmax(1), expectedNextForTest(7, 6));
    reset();
    ASSERT_TRUE(s->decodeBatch({9, 10}, {5, 2}, &error)) << error;
    EXPECT_EQ(s->argmax(0), expectedNextForTest(9, 1));
    EXPECT_EQ(s->argmax(1), expectedNextForTest(10, 6));
  }
  // Both rows' argmax in one copy; their logits rows in another.
  EXPECT_EQ(stats().dtohCalls, 2);
  EXPECT_EQ(stats().dtohBytes, 2 * 8 + 2 * FAKE_VOCAB * 4);
}

// Sampling on the device: a row's keys (hence its tokens) follow its seed
// and its own draws only. Calls in which it draws nothing (another row's
// prompt or decode step, as a server's batch makes them) leave them where
// they were (they advanced on every call once).
TEST_F(GpuExecutorTest, SampledTokensIgnoreOtherRowsCalls) {
  FakeOptions options = gpu();
  options.withSampling = true;
  SamplerOptions sampler;
  sampler.temperature = 1.0f;
  sampler.seed = 1234;
  const std::vector<int64_t> prompt{3, 1, 4, 1, 5, 9}; // two prefill chunks
  auto draws = [&](bool interleave) {
    std::vector<int64_t> out;
    std::unique_ptr<Session> s = open(options);
    if (!s)
      return out;
    std::string error;
    s->setSampling(1, sampler);
    EXPECT_TRUE(s->prefillBatch({{}, prompt}, {0, 0}, &error)) << error;
    out.push_back(s->argmax(1));
    for (int64_t i = 0; i < 8; ++i) {
      if (interleave) { // row 0 alone: a prompt, then a decode step
        EXPECT_TRUE(s->prefillBatch({{7, 7}, {}}, {0, 0}, &error)) << error;
        EXPECT_TRUE(s->decodeBatch({2, 0}, {2, -1}, &error)) << error;
      }
      EXPECT_TRUE(s->decodeBatch({0, out.back()},
                                 {-1, static_cast<int64_t>(prompt.size()) + i},
                                 &error))
          << error;
      out.push_back(s->argmax(1));
    }
    return out;
  };
  const std::vector<int64_t> alone = draws(false);
  ASSERT_EQ(alone.size(), 9u);
  EXPECT_EQ(draws(true), alone);
  // The keys differ from draw to draw (the fake sampler's token is key mod
  // vocab).
  EXPECT_GT(std::set<int64_t>(alone.begin(), alone.end()).size(), 2u);
}

TEST_F(GpuExecutorTest, KvCachePreloadAndClear) {
  // A past of 3 positions whose first K is 10: the next token after t is
  // (t + 10) mod vocab.
  const KvCacheSpec kv = [] {
    KvCacheSpec k;
    k.numLayers = FAKE_LAYERS;
    k.batch = FAKE_BATCH;
    k.numKvHeads = FAKE_KV_HEADS;
    k.headDim = FAKE_HEAD_DIM;
    return k;
  }();
  const int64_t pastLen = 3;
  std::vector<float> past(2 * kv.numLayers * kv.batch * kv.numKvHeads *
                              pastLen * kv.headDim,
                          10.0f);
  std::string error;
  for (FakeOptions options : {FakeOptions(), gpu()}) {
    auto s = open(options);
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->loadKvCache(past.data(), pastLen, &error)) << error;
    ASSERT_TRUE(s->decode(4, pastLen, &error)) << error;
    EXPECT_EQ(s->argmax(0), (4 + 10) % FAKE_VOCAB) << options.target;
    ASSERT_TRUE(s->clearKvCache(&error)) << error;
    ASSERT_TRUE(s->decode(4, 0, &error)) << error;
    EXPECT_EQ(s->argmax(0), expectedNextForTest(4, 4)) << options.target;
  }
}

TEST_F(GpuExecutorTest, SessionUsedFromAnotherThread) {
  auto s = open(gpu());
  ASSERT_TRUE(s);
  std::vector<int64_t> tokens;
  std::thread worker([&] { tokens = generate(*s, {4, 4}, 2, true); });
  worker.join();
  EXPECT_EQ(tokens, (std::vector<int64_t>{expectedNextForTest(4, 4),
                                          expectedNextForTest(9, 4),
                                          expectedNextForTest(14, 4)}));
}

TEST_F(GpuExecutorTest, TwoSessionsAtOnce) {
  auto a = open(gpu());
  FakeOptions biased = gpu();
  biased.bias.assign(FAKE_VOCAB, 0.0f);
  biased.bias[2] = 50.0f;
  auto b = open(biased);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(stats().primaryContextRefs, 2);
  std::string error;
  ASSERT_TRUE(a->prefill({7}, 0, &error)) << error;
  ASSERT_TRUE(b->prefill({7}, 0, &error)) << error;
  EXPECT_EQ(a->argmax(0), expectedNextForTest(7, 7));
  EXPECT_EQ(b->argmax(0), 2);
}

//===----------------------------------------------------------------------===//
// What a call does on the device
//===----------------------------------------------------------------------===//

TEST_F(GpuExecutorTest, LoadAllocatesOnceAndCapturesEachEntry) {
  auto s = open(gpu());
  ASSERT_TRUE(s);
  const KilnFakeCudaStats &st = stats();
  EXPECT_EQ(st.allocations, 4); // weights, kv, arena, io
  EXPECT_EQ(st.modules, 1);
  EXPECT_EQ(st.ptxLoads, 1);
  EXPECT_EQ(st.streams, 1);
  EXPECT_EQ(st.captures, 2);
  EXPECT_EQ(st.graphExecs, 2);
  EXPECT_EQ(st.graphs, 0);         // destroyed once instantiated
  EXPECT_EQ(st.kernelsRun, 0);     // capture runs nothing
  EXPECT_EQ(st.hostRegistered, 1); // the Session's io buffer
  EXPECT_EQ(st.memsetCalls, 3);    // kv, arena, io zeroed
  EXPECT_EQ(st.primaryContextRefs, 1);
  EXPECT_NE(log().find("cuStreamCreate(1)"), std::string::npos) << log();
  EXPECT_EQ(st.nullStreamOps, 0);
}

TEST_F(GpuExecutorTest, GreedyDecodeStepCopiesOnlyTheArgmax) {
  auto s = open(gpu());
  ASSERT_TRUE(s);
  s->setKeepLogits(false);
  std::string error;
  ASSERT_TRUE(s->prefill({1, 2, 3, 4, 5}, 0, &error)) << error;
  reset();
  ASSERT_TRUE(s->decode(6, 5, &error)) << error;
  EXPECT_EQ(s->argmax(0), expectedNextForTest(6, 1));
  EXPECT_FALSE(s->logits(0));
  // Tokens and positions in one copy ([0, 80): 16 bytes of tokens, padding,
  // 16 of positions), the graph, the 8 bytes of row 0's argmax, one sync.
  EXPECT_EQ(log(), "cuCtxSetCurrent\n"
                   "cuMemcpyHtoDAsync_v2(80)\n"
                   "cuGraphLaunch\n"
                   "cuMemcpyDtoHAsync_v2(8)\n"
                   "cuStreamSynchronize\n");
  EXPECT_EQ(stats().kernelsRun, 2);
  EXPECT_EQ(stats().allocCalls, 0);

  // Keeping logits adds row 0's logits (16 f32), and only that row.
  s->setKeepLogits(true);
  reset();
  ASSERT_TRUE(s->decode(7, 6, &error)) << error;
  EXPECT_EQ(stats().dtohBytes, 8 + FAKE_VOCAB * 4);
  ASSERT_TRUE(s->logits(0));
  EXPECT_EQ(std::max_element(s->logits(0), s->logits(0) + FAKE_VOCAB) -
                s->logits(0),
            expectedNextForTest(7, 1));
}

TEST_F(GpuExecutorTest, PrefillReadsBackTheLastTokenOnly) {
  auto s = open(gpu());
  ASSERT_TRUE(s);
  s->setKeepLogits(false);
  std::string error;
  ASSERT_TRUE(s->prefill({1, 2, 3, 4, 5, 6}, 0, &error)) << error;
  // Two chunks; the last token (index 5) is in the second, slot 1.
  EXPECT_EQ(stats().graphLaunches, 2);
  EXPECT_EQ(stats().dtohCalls, 1);
  EXPECT_EQ(stats().dtohBytes, 8);
  EXPECT_EQ(s->argmax(0), expectedNextForTest(6, 1));
}

TEST_F(GpuExecutorTest, WithoutGraphs) {
  set("KILN_CUDA_GRAPHS", "0");
  auto s = open(gpu());
  ASSERT_TRUE(s);
  EXPECT_EQ(
      s->device(),
      "Kiln Fake GPU (sm_90; PTX, JIT-compiled; launches without graphs)");
  auto cpu = open(FakeOptions());
  EXPECT_EQ(generate(*s, {5, 3}, 3, true), generate(*cpu, {5, 3}, 3, true));
  EXPECT_EQ(stats().captures, 0);
  EXPECT_EQ(stats().graphLaunches, 0);
  EXPECT_EQ(stats().kernelLaunches, 4 * 2);
}

// sm_90+: each launch of an entry after its first is a programmatic
// dependent launch (cuLaunchKernelEx); not on sm_80, not with
// KILN_CUDA_PDL=0. The results are the same.
TEST_F(GpuExecutorTest, DependentLaunches) {
  set("KILN_CUDA_GRAPHS", "0");
  auto cpu = open(FakeOptions());
  auto expected = generate(*cpu, {5, 3}, 3, true);
  {
    auto s = open(gpu());
    ASSERT_TRUE(s);
    EXPECT_EQ(generate(*s, {5, 3}, 3, true), expected);
    // Four calls (a prefill, three decode steps) of 2 launches: the second
    // of each is dependent.
    EXPECT_EQ(stats().kernelLaunches, 4 * 2);
    EXPECT_EQ(stats().dependentLaunches, 4);
    EXPECT_NE(log().find("cuLaunchKernelEx"), std::string::npos);
  }
  set("KILN_CUDA_PDL", "0");
  {
    auto s = open(gpu());
    ASSERT_TRUE(s);
    EXPECT_EQ(generate(*s, {5, 3}, 3, true), expected);
    EXPECT_EQ(stats().dependentLaunches, 0);
    EXPECT_EQ(log().find("cuLaunchKernelEx"), std::string::npos);
  }
  unsetenv("KILN_CUDA_PDL");
  // Kernels that do not wait for the one before them (an artifact from
  // before kiln-dependent-launch) are never launched early.
  {
    FakeOptions options = gpu();
    options.waitingKernels = false;
    auto s = open(options);
    ASSERT_TRUE(s);
    EXPECT_EQ(generate(*s, {5, 3}, 3, true), expected);
    EXPECT_EQ(stats().dependentLaunches, 0);
  }
  set("KILN_FAKE_CUDA_ARCH", "80");
  {
    auto s = open(gpu("sm_80"));
    ASSERT_TRUE(s);
    EXPECT_EQ(generate(*s, {5, 3}, 3, true), expected);
    EXPECT_EQ(stats().dependentLaunches, 0);
  }
}

// Captured into graphs, too.
TEST_F(GpuExecutorTest, DependentLaunchesCaptured) {
  auto s = open(gpu());
  ASSERT_TRUE(s);
  auto cpu = open(FakeOptions());
  EXPECT_EQ(generate(*s, {5, 3}, 3, true), generate(*cpu, {5, 3}, 3, true));
  EXPECT_GT(stats().graphLaunches, 0);
  // Each entry (2 launches) captured once: its second launch is dependent.
  EXPECT_EQ(stats().dependentLaunches, 2);
}

TEST_F(GpuExecutorTest, ProfileTimesEveryKernel) {
  set("KILN_PROFILE", "1");
  testing::internal::CaptureStderr();
  {
    auto s = open(gpu());
    ASSERT_TRUE(s);
    EXPECT_EQ(s->device(), "Kiln Fake GPU (sm_90; PTX, JIT-compiled; "
                           "launches timed one by one (KILN_PROFILE))");
    auto cpu = open(FakeOptions());
    EXPECT_EQ(generate(*s, {5, 3}, 3, true), generate(*cpu, {5, 3}, 3, true));
    EXPECT_EQ(stats().captures, 0);
  }
  // One prefill and three decode calls, two kernels each, 0.25 ms apiece.
  std::string report = testing::internal::GetCapturedStderr();
  EXPECT_HAS_SUBSTR(report, "kiln profile: GPU time 2.000 ms in 4 kernels");
  EXPECT_HAS_SUBSTR(report, "0.750 ms  37.5%        3 calls    250.00 us/call  "
                            "fake_decode_step");
  EXPECT_HAS_SUBSTR(report, "0.250 ms  12.5%        1 calls    250.00 us/call  "
                            "fake_prefill_argmax");
}

TEST_F(GpuExecutorTest, ArtifactWithoutArgmax) {
  FakeOptions options = gpu();
  options.withArgmax = false;
  auto s = open(options);
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->hasArgmax());
  // Without argmax the logits come back whatever the caller asked.
  std::vector<int64_t> tokens = generate(*s, {3, 3}, 2, /*useArgmax=*/false);
  EXPECT_EQ(tokens, (std::vector<int64_t>{expectedNextForTest(3, 3),
                                          expectedNextForTest(7, 3),
                                          expectedNextForTest(11, 3)}));
  s->setKeepLogits(false);
  std::string error;
  ASSERT_TRUE(s->decode(1, 5, &error)) << error;
  EXPECT_TRUE(s->logits(0));
  EXPECT_EQ(s->argmax(0), -1);
}

TEST_F(GpuExecutorTest, SharedMemoryAbove48KiBIsOptedIn) {
  FakeOptions options = gpu();
  options.sharedBytes = 64 * 1024;
  auto s = open(options);
  ASSERT_TRUE(s);
  EXPECT_EQ(stats().funcSetAttributeCalls, 2); // the two step kernels
  std::string error;
  EXPECT_TRUE(s->prefill({1}, 0, &error)) << error;

  options.sharedBytes = 300000;
  EXPECT_HAS_SUBSTR(openError(options),
                    "entry 'prefill' launch 0, kernel 'fake_prefill_step' "
                    "needs 300000 bytes of dynamic shared memory besides 0 "
                    "static; Kiln Fake GPU (sm_90) has 232448 per block");
}

//===----------------------------------------------------------------------===//
// Kernel images: cubin or PTX
//===----------------------------------------------------------------------===//

struct ImageCase {
  std::string target;
  bool cubin, ptx;
  int deviceArch;
  std::string expect; // the image used, or the error
};

TEST_F(GpuExecutorTest, ImageChoice) {
  const ImageCase cases[] = {
      {"sm_90", true, true, 90, "cubin"},
      {"sm_80", true, true, 89, "cubin"}, // same major, newer minor
      {"sm_80", true, true, 90, "PTX, JIT-compiled"},
      {"sm_80", false, true, 120, "PTX, JIT-compiled"},
      {"sm_90a", true, true, 90, "cubin"},
      {"sm_90", true, false, 90, "cubin"},
      {"sm_90a", true, true, 100,
       "this artifact was compiled for sm_90a (cubin and PTX) and cannot run "
       "on Kiln Fake GPU (sm_100); compile it with --target sm_100"},
      {"sm_90", false, true, 80,
       "this artifact was compiled for sm_90 (PTX) and cannot run on Kiln "
       "Fake GPU (sm_80); compile it with --target sm_80"},
      {"sm_86", true, false, 90,
       "this artifact was compiled for sm_86 (cubin) and cannot run on Kiln "
       "Fake GPU (sm_90); compile it with --target sm_90"},
  };
  for (const ImageCase &c : cases) {
    set("KILN_FAKE_CUDA_ARCH", std::to_string(c.deviceArch));
    FakeOptions options = gpu(c.target);
    options.withCubin = c.cubin;
    options.withPtx = c.ptx;
    std::string error;
    auto s = open(options, &error);
    std::string what = c.target + " on sm_" + std::to_string(c.deviceArch);
    if (c.expect.rfind("this artifact", 0) == 0) {
      EXPECT_FALSE(s) << what;
      EXPECT_EQ(error, c.expect) << what;
      continue;
    }
    ASSERT_TRUE(s) << what << ": " << error;
    EXPECT_HAS_SUBSTR(s->device(), "; " + c.expect + "; CUDA graphs)");
    EXPECT_EQ(generate(*s, {2, 2}, 1, true),
              (std::vector<int64_t>{expectedNextForTest(2, 2),
                                    expectedNextForTest(5, 2)}))
        << what;
  }
}

TEST_F(GpuExecutorTest, CubinFailsThenPtx) {
  set("KILN_FAKE_CUDA_FAIL", "cuModuleLoadDataEx:1:209");
  FakeOptions options = gpu();
  options.withCubin = true;
  auto s = open(options);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->device(), "Kiln Fake GPU (sm_90; PTX, JIT-compiled after the "
                         "cubin failed; CUDA graphs)");

  set("KILN_FAKE_CUDA_FAIL", "cuModuleLoadDataEx:1:209");
  options.withPtx = false;
  EXPECT_EQ(openError(options),
            "cuModuleLoadDataEx failed (the cubin of sm_90 on Kiln Fake GPU "
            "(sm_90)): CUDA_ERROR_NO_BINARY_FOR_GPU (209): no kernel image is "
            "available for execution on the device");
}

TEST_F(GpuExecutorTest, PtxJitErrorLog) {
  FakeOptions options = gpu();
  options.ptxExtra = "// fake-jit-error\n";
  EXPECT_EQ(openError(options),
            "cuModuleLoadDataEx failed (the PTX of sm_90 on Kiln Fake GPU "
            "(sm_90)): CUDA_ERROR_INVALID_PTX (218): a PTX JIT compilation "
            "failed; JIT error log: ptxas application ptx input, line 9; "
            "error   : fake-jit-error");
  expectAllReleased();
}

//===----------------------------------------------------------------------===//
// Kernels and schedules
//===----------------------------------------------------------------------===//

TEST_F(GpuExecutorTest, MissingKernel) {
  FakeOptions options = gpu();
  options.decodeSymbol = "nope";
  EXPECT_EQ(openError(options),
            "kernel 'nope_step' (entry 'decode' launch 0, kernel 'nope_step') "
            "is not in the module: cuModuleGetFunction failed: "
            "CUDA_ERROR_NOT_FOUND (500): named symbol not found");
  expectAllReleased();
}

TEST_F(GpuExecutorTest, ParameterCountMismatch) {
  TempPath path(".kiln");
  std::string error;
  ArtifactWriter writer;
  FakeOptions options = gpu();
  options.withDecode = false;
  ASSERT_TRUE(describeFake(writer, options, &error)) << error;
  EntrySpec decode = fakeEntry("decode", "fake_decode", 1);
  LaunchSpec step, argmax;
  step.kernel = "fake_decode_step";
  step.args = {0, 1, 2, 3};
  argmax.kernel = "fake_decode_argmax";
  argmax.args = {3}; // the kernel takes weights and io
  decode.launches = {step, argmax};
  writer.addEntry(decode);
  ASSERT_TRUE(writer.write(path, &error)) << error;
  EXPECT_FALSE(Session::open(path, &error));
  EXPECT_EQ(error, "entry 'decode' launch 1, kernel 'fake_decode_argmax' "
                   "passes 1 buffers, but the kernel takes 2 parameters");
  expectAllReleased();
}

TEST_F(GpuExecutorTest, TooManyThreadsForTheKernel) {
  set("KILN_FAKE_CUDA_MAX_THREADS", "64");
  EXPECT_EQ(openError(gpu()),
            "entry 'prefill' launch 1, kernel 'fake_prefill_argmax' has 128 "
            "threads per block; the compiled kernel allows at most 64");
  expectAllReleased();
}

//===----------------------------------------------------------------------===//
// Driver errors
//===----------------------------------------------------------------------===//

TEST_F(GpuExecutorTest, NoDevice) {
  set("KILN_FAKE_CUDA_DEVICES", "0");
  EXPECT_EQ(openError(gpu()),
            "no CUDA driver or GPU found (cuInit: CUDA_ERROR_NO_DEVICE (100): "
            "no CUDA-capable device is detected)");
}

TEST_F(GpuExecutorTest, EveryFailingLoadCallIsNamedAndCleanedUp) {
  // driver function[:call], the text the error must contain.
  const std::pair<const char *, const char *> cases[] = {
      {"cuInit", "no CUDA driver or GPU found (cuInit: CUDA_ERROR_UNKNOWN "
                 "(999): unknown error)"},
      {"cuDeviceGetCount", "no CUDA driver or GPU found (cuDeviceGetCount: "},
      {"cuDeviceGet", "cuDeviceGet failed (device 0): CUDA_ERROR_UNKNOWN"},
      {"cuDeviceGetAttribute", "cuDeviceGetAttribute failed (compute "
                               "capability)"},
      {"cuDeviceGetName", "cuDeviceGetName failed"},
      {"cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRetain failed (Kiln "
                                   "Fake GPU (sm_90)): CUDA_ERROR_UNKNOWN "
                                   "(999): unknown error"},
      {"cuCtxSetCurrent", "cuCtxSetCurrent failed"},
      {"cuStreamCreate", "cuStreamCreate failed"},
      {"cuModuleLoadDataEx", "cuModuleLoadDataEx failed (the PTX of sm_90"},
      {"cuModuleGetFunction", "kernel 'fake_prefill_step' (entry 'prefill' "
                              "launch 0, kernel 'fake_prefill_step') is not "
                              "in the module: cuModuleGetFunction failed: "
                              "CUDA_ERROR_UNKNOWN"},
      {"cuFuncGetAttribute", "cuFuncGetAttribute failed (entry 'prefill' "
                             "launch 0, kernel 'fake_prefill_step')"},
      {"cuMemAlloc_v2:2", "cuMemAlloc failed (KV cache, 8192 bytes on Kiln "
                          "Fake GPU (sm_90)): CUDA_ERROR_UNKNOWN"},
      {"cuMemcpyHtoDAsync_v2", "cuMemcpyHtoDAsync failed (weights, 136 "
                               "bytes)"},
      {"cuMemsetD8Async:3", "cuMemsetD8Async failed (io buffer)"},
      {"cuStreamSynchronize", "cuStreamSynchronize failed (uploading the "
                              "weights)"},
      {"cuStreamBeginCapture_v2", "cuStreamBeginCapture failed (entry "
                                  "'prefill')"},
      {"cuLaunchKernel:2",
       "capturing entry 'decode' into a CUDA graph: cuLaunchKernel failed "
       "(entry 'decode' launch 0 of 2, kernel 'fake_decode_step', grid "
       "[1, 1, 1], block [32, 1, 1], 0 bytes of shared memory): "
       "CUDA_ERROR_UNKNOWN (999): unknown error"},
      // sm_90: launches after an entry's first are dependent launches.
      {"cuLaunchKernelEx",
       "capturing entry 'prefill' into a CUDA graph: cuLaunchKernelEx failed "
       "(entry 'prefill' launch 1 of 2, kernel 'fake_prefill_argmax', grid "
       "[2, 1, 1], block [128, 1, 1], 0 bytes of shared memory): "
       "CUDA_ERROR_UNKNOWN (999): unknown error"},
      {"cuStreamEndCapture:2", "cuStreamEndCapture failed (entry 'decode')"},
      {"cuGraphInstantiateWithFlags", "cuGraphInstantiate failed (entry "
                                      "'prefill'): CUDA_ERROR_UNKNOWN"},
      {"cuGraphDestroy", "cuGraphDestroy failed (entry 'prefill')"},
  };
  for (const auto &[call, expected] : cases) {
    set("KILN_FAKE_CUDA_FAIL", call);
    std::string error = openError(gpu());
    EXPECT_HAS_SUBSTR(error, expected);
    if (std::string(call) != "cuGraphDestroy") // that graph stays
      expectAllReleased();
  }
  // The one graph whose destruction failed, and nothing else, stays; gone,
  // it leaves the driver as clean as the other cases did (and as the next
  // test in this process expects it).
  EXPECT_EQ(stats().graphs, 1);
  FakeDriver::get().destroyGraphs();
  expectAllReleased();
}

TEST_F(GpuExecutorTest, FaultsWhileRunningNameTheEntry) {
  // The first cuStreamSynchronize is the load's; the second the prefill's.
  set("KILN_FAKE_CUDA_FAIL", "cuStreamSynchronize:2:700");
  auto s = open(gpu());
  ASSERT_TRUE(s);
  std::string error;
  EXPECT_FALSE(s->prefill({1, 2}, 0, &error));
  EXPECT_EQ(error, "cuStreamSynchronize failed (after entry 'prefill'; "
                   "KILN_CUDA_SYNC=1 names the failing kernel): "
                   "CUDA_ERROR_ILLEGAL_ADDRESS (700): an illegal memory "
                   "access was encountered");

  set("KILN_FAKE_CUDA_FAIL", "cuGraphLaunch:2:719");
  s = open(gpu());
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->prefill({1, 2}, 0, &error)) << error;
  EXPECT_FALSE(s->decode(3, 2, &error));
  EXPECT_EQ(error, "cuGraphLaunch failed (entry 'decode'): "
                   "CUDA_ERROR_LAUNCH_FAILED (719): unspecified launch "
                   "failure");

  set("KILN_FAKE_CUDA_FAIL", "cuMemcpyDtoHAsync_v2");
  s = open(gpu());
  ASSERT_TRUE(s);
  s->setKeepLogits(false);
  EXPECT_FALSE(s->prefill({1, 2}, 0, &error));
  EXPECT_EQ(error, "cuMemcpyDtoHAsync failed (argmax, 8 bytes): "
                   "CUDA_ERROR_UNKNOWN (999): unknown error");

  set("KILN_FAKE_CUDA_FAIL", "cuMemcpyHtoDAsync_v2:2");
  s = open(gpu());
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->prefill({1, 2}, 0, &error));
  EXPECT_EQ(error, "cuMemcpyHtoDAsync failed (tokens and positions of entry "
                   "'prefill'): CUDA_ERROR_UNKNOWN (999): unknown error");
  s.reset();
  expectAllReleased();
}

TEST_F(GpuExecutorTest, SynchronisedLaunchesNameTheKernel) {
  setenv("KILN_CUDA_SYNC", "1", 1);
  // Load: one sync. Prefill: launch 0 (sync 2), launch 1 (sync 3).
  set("KILN_FAKE_CUDA_FAIL", "cuStreamSynchronize:3:700");
  auto s = open(gpu());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->device(), "Kiln Fake GPU (sm_90; PTX, JIT-compiled; launches "
                         "synchronised one by one)");
  std::string error;
  EXPECT_FALSE(s->prefill({1, 2}, 0, &error));
  EXPECT_EQ(error, "cuStreamSynchronize failed (entry 'prefill' launch 1 of "
                   "2, kernel 'fake_prefill_argmax', grid [2, 1, 1], block "
                   "[128, 1, 1], 0 bytes of shared memory): "
                   "CUDA_ERROR_ILLEGAL_ADDRESS (700): an illegal memory "
                   "access was encountered");
}

TEST_F(GpuExecutorTest, KernelArgmaxOutsideTheVocabulary) {
  FakeOptions options = gpu();
  options.argmaxShift = -100; // (best - 100) % 16 is negative in C
  auto s = open(options);
  ASSERT_TRUE(s);
  std::string error;
  EXPECT_FALSE(s->prefill({1}, 0, &error));
  EXPECT_HAS_SUBSTR(error, "entry 'prefill' returned argmax -");
  EXPECT_HAS_SUBSTR(error, ", outside the vocabulary [0, 16)");
}

TEST_F(GpuExecutorTest, CleanShutdown) {
  {
    auto s = open(gpu());
    ASSERT_TRUE(s);
    generate(*s, {1, 2, 3}, 4, true);
  }
  expectAllReleased();
  EXPECT_EQ(stats().nullStreamOps, 0);
}

} // namespace
