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
  e.plan = {{"scratch", 0, 128}, {"more", 128, FAKE_ARENA_SIZE - 128}};
  return e;
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

  KvCacheSpec kv;
  kv.numLayers = FAKE_LAYERS;
  kv.batch = FAKE_BATCH;
  kv.numKvHeads = FAKE_KV_HEADS;
  kv.maxSeqLen = FAKE_MAX_SEQ;
  kv.headDim = FAKE_HEAD_DIM;
  kv.dtype = options.kvDtype;
  kv.layoutContiguous();
  writer.setKvCache(kv);

  // GPU targets carry PTX and a launch schedule per entry (one kernel taking
  // the four buffers); the fake PTX is never loaded without a GPU.
  bool gpu = options.target.rfind("sm_", 0) == 0;
  if (gpu) {
    std::string ptx = ".version 7.8\n.target " + options.target + "\n";
    writer.addKernelImage("kernels.ptx", ImageKind::Ptx,
                          std::vector<uint8_t>(ptx.begin(), ptx.end()));
  } else {
    writer.addKernelImage("kernels", ImageKind::SharedObject, std::move(image));
  }
  auto entry = [&](const char *name, const std::string &symbol, int64_t seq) {
    EntrySpec e = fakeEntry(name, symbol, seq);
    if (gpu) {
      LaunchSpec launch;
      launch.kernel = symbol;
      launch.args = {0, 1, 2, 3};
      e.launches.push_back(launch);
    }
    return e;
  };
  if (options.withPrefill)
    writer.addEntry(entry("prefill", "fake_prefill", FAKE_PREFILL_SEQ));
  if (options.withDecode)
    writer.addEntry(entry("decode", options.decodeSymbol, 1));

  std::vector<float> bias = options.bias;
  bias.resize(FAKE_VOCAB, 0.0f);
  std::vector<uint8_t> biasBytes(bias.size() * sizeof(float));
  std::memcpy(biasBytes.data(), bias.data(), biasBytes.size());
  writer.addWeight("bias", DType::F32, {FAKE_VOCAB}, std::move(biasBytes));
  std::vector<uint8_t> odd(12, 0x11);
  writer.addWeight("odd", DType::F32, {3}, std::move(odd));
  return true;
}

bool writeFakeArtifact(const std::string &path, const FakeOptions &options,
                       std::string *error) {
  ArtifactWriter writer;
  return describeFake(writer, options, error) && writer.write(path, error);
}

} // namespace kiln::test
