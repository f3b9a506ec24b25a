//===- compile-options.cpp - Fuzzes kiln-compile's option rules -----------===//
//
// The rules kiln-compile checks its flags with before any work: --quantize's
// value (PipelineOptions::parseQuantize), --no-fuse's names (disableFusion),
// the options together (verify: the entry shapes' bounds, the quantization
// flags) and --target's name (the runtime's parseGpuTarget and supported
// list). The input is NUL-separated fields: target, quantize, batch,
// prefill chunk, max seq len, flags byte, then --no-fuse names. Any value may
// be refused with a message; an accepted one must obey the rules.
//
//===----------------------------------------------------------------------===//

#include "kiln/Pipelines/Pipelines.h"
#include "kiln/runtime/Target.h"

#include <cstdlib>
#include <string>
#include <vector>

using namespace kiln;

namespace {
/// A refusal must say why.
void expectMessage(llvm::Error err) {
  if (err && llvm::toString(std::move(err)).empty())
    __builtin_trap();
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  std::vector<std::string> fields;
  for (size_t start = 0; start <= text.size() && fields.size() < 24;) {
    size_t end = text.find('\0', start);
    if (end == std::string::npos)
      end = text.size();
    fields.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  fields.resize(std::max<size_t>(fields.size(), 6));

  // --target.
  runtime::GpuArch arch;
  bool parsed = runtime::parseGpuTarget(fields[0], &arch);
  bool supported = runtime::isSupportedGpuTarget(fields[0]);
  int major = runtime::gpuTargetMajor(fields[0]);
  if ((supported && (!parsed || major != arch.major || major < 8)) ||
      (!supported && major != 0))
    __builtin_trap(); // the supported list is a subset of what parses
  if (parsed &&
      (arch.major < 1 || arch.minor < 0 || arch.minor > 9 ||
       (arch.suffix != 0 && arch.suffix != 'a' && arch.suffix != 'f')))
    __builtin_trap();

  PipelineOptions opts;
  if (llvm::Error err = opts.parseQuantize(fields[1])) {
    expectMessage(std::move(err));
  } else if ((opts.quantize != "int8" && opts.quantize != "int4") ||
             (opts.quantizeGroupSize != 0 && opts.quantizeGroupSize != 32 &&
              opts.quantizeGroupSize != 64 && opts.quantizeGroupSize != 128) ||
             (opts.quantize == "int4" && opts.quantizeGroupSize == 0)) {
    __builtin_trap();
  }
  auto number = [](const std::string &s) {
    return static_cast<int64_t>(std::strtoll(s.c_str(), nullptr, 10));
  };
  opts.batch = number(fields[2]);
  opts.prefillChunk = number(fields[3]);
  opts.maxSeqLen = number(fields[4]);
  unsigned flags = fields[5].empty() ? 0 : uint8_t(fields[5][0]);
  opts.quantizeAsymmetric = flags & 1;
  opts.quantizeLmHead = flags & 2;
  for (size_t i = 6; i < fields.size(); ++i)
    expectMessage(opts.disableFusion(fields[i]));
  if (llvm::Error err = opts.verify()) {
    expectMessage(std::move(err));
  } else if (opts.batch < 1 || opts.batch > kMaxBatchLimit ||
             opts.maxSeqLen < 1 || opts.maxSeqLen > kMaxSeqLenLimit ||
             opts.prefillChunk < 1 || opts.prefillChunk > opts.maxSeqLen ||
             (opts.quantize.empty() &&
              (opts.quantizeAsymmetric || opts.quantizeLmHead))) {
    __builtin_trap(); // verify accepted what the rules refuse
  }
  return 0;
}
