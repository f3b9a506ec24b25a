//===- Bench.h - kiln-run --bench ------------------------------*- C++ -*-===//
//
// A llama-bench-like measurement of an artifact on its device: prefill
// tok/s for a prompt of N generated ids, decode tok/s for M greedy steps
// after it (median of several repetitions after one warm-up), the bytes a
// decode step reads, the copy bandwidth measured on the same device, and the
// fraction of the bandwidth limit that decode reaches.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILN_RUN_BENCH_H
#define KILN_TOOLS_KILN_RUN_BENCH_H

#include <cstdint>
#include <string>

namespace kiln::tools {

struct BenchOptions {
  std::string model;
  int64_t promptTokens = 512;
  int64_t generateTokens = 128;
  int64_t repetitions = 5;
  bool json = false;
  bool verifyWeights = true;
};

/// Runs the benchmark and prints its report (stdout); errors go to stderr
/// as one line. Returns the exit status.
int runBench(const BenchOptions &options);

} // namespace kiln::tools

#endif // KILN_TOOLS_KILN_RUN_BENCH_H
