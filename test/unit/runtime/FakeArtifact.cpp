//===- FakeArtifact.cpp - Packs the fake kernel image into an artifact ---===//

#include "FakeArtifact.h"

#include "FakeKernels.h"

#include <cstring>
#include <fstream>
#include <iterator>

#ifndef KILN_FAKE_KERNELS_PATH
#error "KILN_FAKE_KERNELS_PATH must name the built fake kernel image"
#endif

namespace kiln::test {
using namespace kiln::runtime;

EntrySpec fakeEntry(const std::string &name, const std::string &symbol,
                    int64_t seq) {
  EntrySpec e;
  e.name = name;
  e.symbol = symbol;
  e.batch = FAKE_BATCH;
  e.seq = seq;
  e.ioSize = fakeIoSize(seq);
  e.arenaSize = FAKE_ARENA_SIZE;
  e.tokens = {"tokens", DType::I64, {FAKE_BATCH, seq}, fakeTokensOffset(seq)};
  e.positions = {
      "positions", DType::I64, {FAKE_BATCH, seq}, fakePositionsOffset(seq)};
  e.logits = {"logits",
              DType::F32,
              {FAKE_BATCH, seq, FAKE_VOCAB},
              fakeLogitsOffset(seq)};
  e.argmax = {"argmax", DType::I64, {FAKE_BATCH, seq}, fakeArgmaxOffset(seq)};
  e.plan = {{"scratch", 0, 128}, {"more", 128, FAKE_ARENA_SIZE - 128}};
  return e;
}

std::string fakePtx(const std::string &target) {
  std::string ptx = "// Fake PTX of the Kiln runtime tests (FakeCuda.cpp)\n"
                    ".version 8.0\n.target " +
                    target + "\n.address_size 64\n";
  for (const char *entry : {"fake_prefill", "fake_decode"}) {
    ptx += std::string(".visible .entry ") + entry +
           "_step(.param .u64 w, .param .u64 kv, .param .u64 arena, "
           ".param .u64 io) { ret; }\n";
    ptx += std::string(".visible .entry ") + entry +
           "_argmax(.param .u64 w, .param .u64 io) { ret; }\n";
    ptx += std::string(".visible .entry ") + entry +
           "_sample(.param .u64 w, .param .u64 io) { ret; }\n";
  }
  return ptx;
}

KvCacheSpec fakeKvCache(DType dtype) {
  KvCacheSpec kv;
  kv.numLayers = FAKE_LAYERS;
  kv.batch = FAKE_BATCH;
  kv.numKvHeads = FAKE_KV_HEADS;
  kv.maxSeqLen = FAKE_MAX_SEQ;
  kv.headDim = FAKE_HEAD_DIM;
  kv.dtype = dtype;
  kv.layoutContiguous();
  return kv;
}

bool describeFake(ArtifactWriter &writer, const FakeOptions &options,
                  std::string *error) {
  std::vector<uint8_t> image = options.image;
  if (image.empty()) {
    std::ifstream in(KILN_FAKE_KERNELS_PATH, std::ios::binary);
    image.assign(std::istreambuf_iterator<char>(in), {});
    if (image.empty()) {
      *error = "cannot read " KILN_FAKE_KERNELS_PATH;
      return false;
    }
  }
  writer.setTarget(options.target);
  ModelInfo model;
  model.numLayers = FAKE_LAYERS;
  model.hiddenSize = 8;
  model.numHeads = 4;
  model.numKvHeads = FAKE_KV_HEADS;
  model.headDim = FAKE_HEAD_DIM;
  model.vocabSize = FAKE_VOCAB;
  model.intermediateSize = 16;
  model.rmsNormEps = 1e-5;
  model.tiedEmbeddings = true;
  model.dtype = "float32";
  writer.setModel(model);
  if (!options.tokenizer.empty())
    writer.setTokenizer(options.tokenizer);

  writer.setKvCache(fakeKvCache(options.kvDtype));

  // GPU targets carry fake PTX and/or a fake cubin and a schedule of two
  // launches per entry: the step kernel (all four buffers), then the argmax
  // kernel (weights and io), for the fake driver of FakeCuda.cpp.
  bool gpu = options.target.rfind("sm_", 0) == 0;
  if (gpu) {
    std::string ptx = fakePtx(options.target) + options.ptxExtra;
    if (options.withPtx)
      writer.addKernelImage("kernels.ptx", ImageKind::Ptx,
                            std::vector<uint8_t>(ptx.begin(), ptx.end()));
    if (options.withCubin) {
      std::string cubin = "\x7f"
                          "ELF" +
                          fakePtx(options.target);
      writer.addKernelImage("kernels.cubin", ImageKind::Cubin,
                            std::vector<uint8_t>(cubin.begin(), cubin.end()));
    }
  } else {
    writer.addKernelImage("kernels", ImageKind::SharedObject, std::move(image));
  }
  auto entry = [&](const char *name, const std::string &symbol, int64_t seq) {
    EntrySpec e = fakeEntry(name, symbol, seq);
    if (!options.withArgmax)
      e.argmax = {};
    if (options.withSampling) {
      e.sampling = {
          "sampling", DType::F32, {FAKE_BATCH, 4}, fakeSamplingOffset(seq)};
      e.seeds = {"seeds", DType::I64, {FAKE_BATCH}, fakeSeedsOffset(seq)};
      e.ioSize = fakeSampledIoSize(seq);
    }
    if (gpu) {
      LaunchSpec step;
      step.kernel = symbol + "_step";
      step.block[0] = 32;
      step.sharedBytes = options.sharedBytes;
      step.args = {0, 1, 2, 3};
      LaunchSpec argmax;
      argmax.kernel = symbol + (options.withSampling ? "_sample" : "_argmax");
      argmax.grid[0] = FAKE_BATCH;
      argmax.block[0] = 128;
      argmax.args = {0, 3};
      argmax.waitsForPrevious = options.waitingKernels;
      e.launches = {step, argmax};
    }
    return e;
  };
  if (options.withPrefill && options.lastRowPrefill) {
    EntrySpec last = entry("prefill", "fake_prefill_last", FAKE_PREFILL_SEQ);
    last.logits.shape = {FAKE_BATCH, 1, FAKE_VOCAB};
    if (!last.argmax.name.empty())
      last.argmax.shape = {FAKE_BATCH, 1};
    writer.addEntry(last);
    if (options.withPrefillAll)
      writer.addEntry(entry("prefill_all", "fake_prefill", FAKE_PREFILL_SEQ));
  } else if (options.withPrefill) {
    writer.addEntry(entry("prefill", "fake_prefill", FAKE_PREFILL_SEQ));
  }
  if (options.withDecode)
    writer.addEntry(entry("decode", options.decodeSymbol, 1));

  std::vector<float> bias = options.bias;
  bias.resize(FAKE_VOCAB, 0.0f);
  std::vector<uint8_t> biasBytes(bias.size() * sizeof(float));
  std::memcpy(biasBytes.data(), bias.data(), biasBytes.size());
  writer.addWeight("bias", DType::F32, {FAKE_VOCAB}, std::move(biasBytes));
  std::vector<uint8_t> odd(12, 0x11);
  writer.addWeight("odd", DType::F32, {3}, std::move(odd));
  std::vector<uint8_t> shift(8);
  std::memcpy(shift.data(), &options.argmaxShift, 8);
  if (writer.addWeight("shift", DType::I64, {1}, std::move(shift)) !=
      FAKE_SHIFT_OFFSET) {
    *error = "weight 'shift' is not at FAKE_SHIFT_OFFSET";
    return false;
  }
  return true;
}

bool writeFakeArtifact(const std::string &path, const FakeOptions &options,
                       std::string *error) {
  ArtifactWriter writer;
  return describeFake(writer, options, error) && writer.write(path, error);
}

} // namespace kiln::test
