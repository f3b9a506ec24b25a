//===- ArtifactTest.cpp - Writer/loader round trip and load errors -------===//

#include "FakeArtifact.h"
#include "FakeKernels.h"
#include "TestUtil.h"

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/ArtifactWriter.h"

#include <cstring>
#include <memory>

using namespace kiln::runtime;
using namespace kiln::test;

namespace {

// Header field offsets (runtime/lib/FileHeader.h).
constexpr size_t kVersionAt = 8, kMetaOffsetAt = 16, kWeightsOffsetAt = 32,
                 kWeightsSizeAt = 40, kFileSizeAt = 48;

class ArtifactTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(writeFakeArtifact(path, FakeOptions(), &error)) << error;
    bytes = readBytes(path);
  }

  /// Writes `bytes` back and returns the load error ("" if it loaded).
  std::string loadError() {
    writeBytes(path, bytes);
    std::string error;
    std::unique_ptr<Artifact> artifact = Artifact::open(path, &error);
    EXPECT_EQ(artifact == nullptr, !error.empty());
    return error;
  }

  TempPath path{".kiln"};
  std::vector<uint8_t> bytes;
};

TEST_F(ArtifactTest, RoundTrip) {
  std::string error;
  std::unique_ptr<Artifact> a = Artifact::open(path, &error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->formatVersion(), kFormatVersion);
  EXPECT_EQ(a->target(), "cpu");
  EXPECT_EQ(a->fileSize(), bytes.size());

  const ModelInfo &m = a->model();
  EXPECT_EQ(m.numLayers, FAKE_LAYERS);
  EXPECT_EQ(m.hiddenSize, 8);
  EXPECT_EQ(m.numHeads, 4);
  EXPECT_EQ(m.numKvHeads, FAKE_KV_HEADS);
  EXPECT_EQ(m.headDim, FAKE_HEAD_DIM);
  EXPECT_EQ(m.vocabSize, FAKE_VOCAB);
  EXPECT_EQ(m.intermediateSize, 16);
  EXPECT_DOUBLE_EQ(m.rmsNormEps, 1e-5);
  EXPECT_TRUE(m.tiedEmbeddings);
  EXPECT_EQ(m.dtype, "float32");

  const KvCacheSpec &kv = a->kvCache();
  EXPECT_EQ(kv.batch, FAKE_BATCH);
  EXPECT_EQ(kv.maxSeqLen, FAKE_MAX_SEQ);
  EXPECT_EQ(kv.dtype, DType::F32);
  EXPECT_EQ(kv.kOffsets,
            (std::vector<uint64_t>{fakeKOffset(0), fakeKOffset(1)}));
  EXPECT_EQ(kv.vOffsets,
            (std::vector<uint64_t>{fakeVOffset(0), fakeVOffset(1)}));
  EXPECT_EQ(kv.kvBytes, 4 * fakeBlockBytes());

  ASSERT_EQ(a->images().size(), 1u);
  EXPECT_EQ(a->images()[0].name, "kernels");
  EXPECT_EQ(a->images()[0].kind, ImageKind::SharedObject);
  EXPECT_GT(a->images()[0].size, 64u);

  ASSERT_EQ(a->entries().size(), 2u);
  const EntrySpec *prefill = a->findEntry("prefill");
  ASSERT_TRUE(prefill);
  EXPECT_EQ(prefill->symbol, "fake_prefill");
  EXPECT_EQ(prefill->seq, FAKE_PREFILL_SEQ);
  EXPECT_EQ(prefill->ioSize, fakeIoSize(FAKE_PREFILL_SEQ));
  EXPECT_EQ(prefill->arenaSize, uint64_t(FAKE_ARENA_SIZE));
  EXPECT_EQ(prefill->logits.shape,
            (std::vector<int64_t>{FAKE_BATCH, FAKE_PREFILL_SEQ, FAKE_VOCAB}));
  EXPECT_EQ(prefill->positions.offset, fakePositionsOffset(FAKE_PREFILL_SEQ));
  ASSERT_EQ(prefill->plan.size(), 2u);
  EXPECT_EQ(prefill->plan[1].name, "more");
  EXPECT_EQ(prefill->plan[1].offset, 128u);
  EXPECT_FALSE(a->findEntry("nope"));

  ASSERT_EQ(a->weights().size(), 3u);
  EXPECT_EQ(a->weights()[0].name, "bias");
  EXPECT_EQ(a->weights()[0].offset, 0u);
  EXPECT_EQ(a->weights()[1].name, "odd");
  EXPECT_EQ(a->weights()[1].offset, 64u);
  EXPECT_EQ(a->weights()[1].size, 12u);
  EXPECT_EQ(a->weights()[2].name, "shift");
  EXPECT_EQ(a->weights()[2].offset, uint64_t(FAKE_SHIFT_OFFSET));
  EXPECT_EQ(a->weightsSize(), uint64_t(FAKE_SHIFT_OFFSET) + 8);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a->weightsData()) % 4096, 0u);
  EXPECT_EQ(a->weightsData()[64], 0x11);
}

TEST_F(ArtifactTest, HeaderLayout) {
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(bytes.data())),
            "KILNART");
  EXPECT_EQ(loadLE<uint32_t>(bytes, 12), 64u);
  EXPECT_EQ(loadLE<uint64_t>(bytes, kMetaOffsetAt), 64u);
  EXPECT_EQ(loadLE<uint64_t>(bytes, kWeightsOffsetAt) % 4096, 0u);
  EXPECT_EQ(loadLE<uint64_t>(bytes, kFileSizeAt), bytes.size());
  EXPECT_EQ(loadLE<uint32_t>(bytes, 60), 0u);
}

TEST_F(ArtifactTest, WriterIsDeterministic) {
  TempPath other(".again");
  std::string error;
  ASSERT_TRUE(writeFakeArtifact(other, FakeOptions(), &error)) << error;
  EXPECT_EQ(readBytes(other), bytes);
}

TEST_F(ArtifactTest, Truncated) {
  size_t full = bytes.size();
  bytes.resize(full - 10);
  EXPECT_HAS_SUBSTR(loadError(),
                    "truncated: header says " + std::to_string(full) +
                        " bytes, file has " + std::to_string(full - 10));
}

TEST_F(ArtifactTest, ShorterThanHeader) {
  bytes.resize(20);
  EXPECT_HAS_SUBSTR(loadError(), "shorter than the 64-byte header");
}

TEST_F(ArtifactTest, TrailingData) {
  bytes.push_back(0);
  EXPECT_HAS_SUBSTR(loadError(), "trailing data");
}

TEST_F(ArtifactTest, CorruptedMetadataByte) {
  bytes[64 + 40] ^= 0x5A;
  EXPECT_HAS_SUBSTR(loadError(), "metadata checksum mismatch");
}

TEST_F(ArtifactTest, WrongMagic) {
  bytes[0] = 'X';
  EXPECT_HAS_SUBSTR(loadError(), "not a Kiln artifact (bad magic)");
}

TEST_F(ArtifactTest, WrongVersion) {
  storeLE<uint32_t>(bytes, kVersionAt, 7);
  EXPECT_HAS_SUBSTR(loadError(),
                    "unsupported artifact format version 7 (this runtime "
                    "supports versions 2 and 3)");
}

TEST_F(ArtifactTest, WrongHeaderSize) {
  storeLE<uint32_t>(bytes, 12, 80);
  EXPECT_HAS_SUBSTR(loadError(), "bad header size 80 (expected 64)");
}

TEST_F(ArtifactTest, MetadataOutsideFile) {
  storeLE<uint64_t>(bytes, 24, bytes.size());
  EXPECT_HAS_SUBSTR(loadError(), "metadata section");
}

TEST_F(ArtifactTest, MisalignedWeightsSection) {
  storeLE<uint64_t>(bytes, kWeightsOffsetAt,
                    loadLE<uint64_t>(bytes, kWeightsOffsetAt) + 8);
  EXPECT_HAS_SUBSTR(loadError(), "weights section");
}

TEST_F(ArtifactTest, WeightOutOfBounds) {
  // Shrink the weights section so the last weight ("odd", 12 bytes at 64)
  // sticks out of it; the metadata and its checksum stay valid.
  bytes.resize(bytes.size() - 8);
  storeLE<uint64_t>(bytes, kWeightsSizeAt, 68);
  storeLE<uint64_t>(bytes, kFileSizeAt, bytes.size());
  EXPECT_HAS_SUBSTR(loadError(),
                    "weight 'odd' [offset 64, size 12] lies outside the "
                    "weights section (68 bytes)");
}

TEST_F(ArtifactTest, NotAFlatBuffer) {
  // A valid checksum over garbage metadata: the verifier must catch it.
  uint64_t metaSize = loadLE<uint64_t>(bytes, 24);
  for (uint64_t i = 0; i < metaSize; ++i)
    bytes[64 + i] = static_cast<uint8_t>(i * 7);
  // Recompute the CRC the way the writer does (zlib's CRC-32).
  uint32_t c = 0xFFFFFFFFu;
  for (uint64_t i = 0; i < metaSize; ++i) {
    c ^= bytes[64 + i];
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  storeLE<uint32_t>(bytes, 56, c ^ 0xFFFFFFFFu);
  EXPECT_HAS_SUBSTR(loadError(), "metadata is not a valid Kiln FlatBuffer");
}

TEST_F(ArtifactTest, MissingFile) {
  std::string error;
  EXPECT_FALSE(Artifact::open(path.str() + ".missing", &error));
  EXPECT_HAS_SUBSTR(error, "cannot open: No such file or directory");
}

TEST_F(ArtifactTest, EveryTruncationFailsCleanly) {
  // No prefix of a valid artifact loads, and none crashes.
  std::vector<uint8_t> full = bytes;
  for (size_t size = 0; size < full.size(); size += 97) {
    bytes.assign(full.begin(), full.begin() + size);
    EXPECT_FALSE(loadError().empty()) << size;
  }
}

TEST_F(ArtifactTest, EveryMetadataByteFlipFailsCleanly) {
  std::vector<uint8_t> full = bytes;
  uint64_t metaSize = loadLE<uint64_t>(full, 24);
  for (uint64_t i = 0; i < metaSize; i += 13) {
    bytes = full;
    bytes[64 + i] ^= 0xFF;
    EXPECT_HAS_SUBSTR(loadError(), "metadata checksum mismatch") << i;
  }
}

//===----------------------------------------------------------------------===//
// The writer refuses inconsistent descriptions with the loader's messages.
//===----------------------------------------------------------------------===//

std::string writeError(const std::function<void(ArtifactWriter &)> &edit,
                       const FakeOptions &options = FakeOptions()) {
  ArtifactWriter writer;
  std::string error;
  EXPECT_TRUE(describeFake(writer, options, &error)) << error;
  edit(writer);
  TempPath path(".bad");
  EXPECT_FALSE(writer.write(path, &error));
  EXPECT_NE(access(path.str().c_str(), F_OK), 0) << "partial file left";
  return error;
}

TEST(ArtifactWriterTest, WeightSizeMismatch) {
  EXPECT_HAS_SUBSTR(writeError([](ArtifactWriter &w) {
                      w.addWeight("w", DType::F16, {2, 3},
                                  std::vector<uint8_t>(10));
                    }),
                    "weight 'w' is 10 bytes, but f16 [2, 3] needs 12");
}

TEST(ArtifactWriterTest, DuplicateWeight) {
  EXPECT_HAS_SUBSTR(writeError([](ArtifactWriter &w) {
                      w.addWeight("bias", DType::U8, {1},
                                  std::vector<uint8_t>(1));
                    }),
                    "duplicate weight 'bias'");
}

TEST(ArtifactWriterTest, BadLogitsShape) {
  EXPECT_HAS_SUBSTR(writeError([](ArtifactWriter &w) {
                      EntrySpec e = fakeEntry("other", "fake_decode", 1);
                      e.logits.shape = {FAKE_BATCH, 1, FAKE_VOCAB + 1};
                      w.addEntry(e);
                    }),
                    "entry 'other' logits tensor has shape [2, 1, 17], "
                    "expected [2, 1, 16]");
}

TEST(ArtifactWriterTest, IoTensorOutsideIoBuffer) {
  EXPECT_HAS_SUBSTR(writeError([](ArtifactWriter &w) {
                      EntrySpec e = fakeEntry("other", "fake_decode", 1);
                      e.argmax = {};
                      e.ioSize = fakeArgmaxOffset(1) - 4;
                      w.addEntry(e);
                    }),
                    "entry 'other' logits tensor");
}

TEST(ArtifactWriterTest, KvBlockOutsideKvBuffer) {
  EXPECT_HAS_SUBSTR(writeError([](ArtifactWriter &w) {
                      KvCacheSpec kv = fakeKvCache();
                      kv.kvBytes -= 64;
                      w.setKvCache(kv);
                    }),
                    "KV cache V block of layer 1");
}

/// The fake artifact's cache, paged: blocks of `blockSize` positions.
KvCacheSpec pagedFakeKv(int64_t blockSize, int64_t numBlocks) {
  KvCacheSpec kv = fakeKvCache();
  kv.blockSize = blockSize;
  kv.numBlocks = numBlocks;
  kv.layoutContiguous();
  return kv;
}

TEST(ArtifactWriterTest, PagedCacheNeedsBlockTables) {
  // A paged cache's entries must each take a block table, and max_seq_len
  // must be whole blocks.
  EXPECT_HAS_SUBSTR(writeError([](ArtifactWriter &w) {
                      w.setKvCache(pagedFakeKv(FAKE_MAX_SEQ / 2, 4));
                    }),
                    "has no block_table tensor for the paged KV cache");
  EXPECT_HAS_SUBSTR(writeError([](ArtifactWriter &w) {
                      w.setKvCache(pagedFakeKv(FAKE_MAX_SEQ - 1, 4));
                    }),
                    "a multiple of block_size");
  EXPECT_HAS_SUBSTR(
      writeError([](ArtifactWriter &w) { w.setKvCache(pagedFakeKv(2, 0)); }),
      "must both be positive (or both 0)");
  // And a flat cache's entries take none.
  EXPECT_HAS_SUBSTR(writeError([](ArtifactWriter &w) {
                      EntrySpec e = fakeEntry("other", "fake_decode", 1);
                      e.blockTable = e.tokens;
                      e.blockTable.name = "block_table";
                      w.addEntry(e);
                    }),
                    "entry 'other' has a block_table tensor but the KV cache "
                    "is not paged");
}

TEST(ArtifactWriterTest, EntryBatchMismatch) {
  EXPECT_HAS_SUBSTR(writeError([](ArtifactWriter &w) {
                      EntrySpec e = fakeEntry("other", "fake_decode", 1);
                      e.batch = 1;
                      w.addEntry(e);
                    }),
                    "entry 'other' batch 1 does not match the KV cache "
                    "batch 2");
}

TEST(ArtifactWriterTest, FewerRowsEntryMustBeBelowTheKvBatch) {
  // A decode_b<N> entry runs the KV cache's first N rows: N must be below
  // the cache's batch (2 here), and at least 1.
  EXPECT_HAS_SUBSTR(writeError([](ArtifactWriter &w) {
                      EntrySpec e = fakeEntry("decode_b2", "fake_decode", 1);
                      e.batch = 2;
                      w.addEntry(e);
                    }),
                    "entry 'decode_b2' batch 2 is not below the KV cache "
                    "batch 2");
}

TEST(ArtifactWriterTest, UnknownImage) {
  EXPECT_HAS_SUBSTR(writeError([](ArtifactWriter &w) {
                      EntrySpec e = fakeEntry("other", "fake_decode", 1);
                      e.image = "gpu";
                      w.addEntry(e);
                    }),
                    "names kernel image 'gpu'");
}

TEST(ArtifactWriterTest, EmptyImage) {
  EXPECT_HAS_SUBSTR(writeError([](ArtifactWriter &w) {
                      w.addKernelImage("empty", ImageKind::Ptx, {});
                    }),
                    "kernel image 'empty' is empty");
}

TEST(ArtifactWriterTest, WeightOffsetsAreKnownUpFront) {
  ArtifactWriter w;
  EXPECT_EQ(w.addWeight("a", DType::F32, {3}, std::vector<uint8_t>(12)), 0u);
  EXPECT_EQ(w.addWeight("b", DType::I8, {65}, std::vector<uint8_t>(65)), 64u);
  EXPECT_EQ(w.addWeight("c", DType::BF16, {1}, std::vector<uint8_t>(2)), 192u);
  EXPECT_EQ(w.weightsSize(), 194u);
}

//===----------------------------------------------------------------------===//
// Tensor parallelism: one weight set per rank
//===----------------------------------------------------------------------===//

/// `count` bytes of `value`.
class FillSource : public WeightSource {
public:
  FillSource(uint64_t count, uint8_t value) : count(count), value(value) {}
  uint64_t rows() const override { return 1; }
  uint64_t rowBytes() const override { return count; }
  void readRows(uint64_t, uint64_t n, char *out) override {
    std::memset(out, value, n * count);
  }

private:
  uint64_t count;
  uint8_t value;
};

/// The fake artifact split over two ranks: the model has twice the heads
/// of each rank's KV cache; rank 1's weights are bytes 0x22.
bool describeSplit(ArtifactWriter &w, bool rankOneOdd, std::string *error) {
  if (!describeFake(w, FakeOptions(), error))
    return false;
  ModelInfo model;
  model.numLayers = FAKE_LAYERS;
  model.hiddenSize = 8;
  model.numHeads = 8;
  model.numKvHeads = 2 * FAKE_KV_HEADS;
  model.headDim = FAKE_HEAD_DIM;
  model.vocabSize = FAKE_VOCAB;
  model.intermediateSize = 16;
  model.rmsNormEps = 1e-5;
  model.tiedEmbeddings = true;
  model.dtype = "float32";
  w.setModel(model);
  w.setTensorParallel(2);
  bool ok = w.addRankWeight(1, "bias",
                            std::make_shared<FillSource>(FAKE_VOCAB * 4, 0x22));
  ok = ok && w.addRankWeight(1, "shift", std::make_shared<FillSource>(8, 0));
  if (rankOneOdd)
    ok =
        ok && w.addRankWeight(1, "odd", std::make_shared<FillSource>(12, 0x22));
  if (!ok)
    *error = "addRankWeight refused a weight";
  return ok;
}

TEST(ArtifactTensorParallelTest, RoundTrip) {
  TempPath path(".kiln");
  ArtifactWriter w;
  std::string error;
  ASSERT_TRUE(describeSplit(w, true, &error)) << error;
  ASSERT_TRUE(w.write(path, &error)) << error;
  std::unique_ptr<Artifact> a = Artifact::open(path, &error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->formatVersion(), kTensorParallelFormatVersion);
  EXPECT_EQ(a->tensorParallel(), 2);
  EXPECT_EQ(a->rankWeightsSize() % kBufferAlignment, 0u);
  EXPECT_EQ(a->weightsSize(), 2 * a->rankWeightsSize());
  EXPECT_EQ(a->rankWeights(1), a->weightsData() + a->rankWeightsSize());
  // The same layout in each set, each rank's own bytes.
  const WeightInfo *odd = nullptr;
  for (const WeightInfo &wi : a->weights())
    if (wi.name == "odd")
      odd = &wi;
  ASSERT_TRUE(odd);
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(a->rankWeights(0)[odd->offset + i], 0x11);
    EXPECT_EQ(a->rankWeights(1)[odd->offset + i], 0x22);
  }
  EXPECT_EQ(a->kvCache().numKvHeads * 2, a->model().numKvHeads);
}

TEST(ArtifactTensorParallelTest, OneRankKeepsTheFormat) {
  TempPath path(".kiln");
  std::string error;
  ASSERT_TRUE(writeFakeArtifact(path, FakeOptions(), &error)) << error;
  std::unique_ptr<Artifact> a = Artifact::open(path, &error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->formatVersion(), kFormatVersion);
  EXPECT_EQ(a->tensorParallel(), 1);
  EXPECT_EQ(a->rankWeightsSize(), a->weightsSize());
}

TEST(ArtifactTensorParallelTest, EveryRankNeedsEveryWeight) {
  TempPath path(".kiln");
  ArtifactWriter w;
  std::string error;
  ASSERT_TRUE(describeSplit(w, false, &error)) << error;
  EXPECT_FALSE(w.write(path, &error));
  EXPECT_NE(error.find("weight 'odd' has no data for rank 1"),
            std::string::npos)
      << error;
}

TEST(ArtifactTensorParallelTest, RankWeightsAreChecked) {
  ArtifactWriter w;
  std::string error;
  ASSERT_TRUE(describeFake(w, FakeOptions(), &error)) << error;
  w.setTensorParallel(2);
  // Unknown name, wrong size, a rank the artifact does not have.
  EXPECT_FALSE(w.addRankWeight(1, "nope", std::make_shared<FillSource>(12, 0)));
  EXPECT_FALSE(w.addRankWeight(1, "odd", std::make_shared<FillSource>(8, 0)));
  EXPECT_FALSE(w.addRankWeight(2, "odd", std::make_shared<FillSource>(12, 0)));
  EXPECT_TRUE(w.addRankWeight(1, "odd", std::make_shared<FillSource>(12, 0)));
}

TEST(ArtifactTensorParallelTest, VersionMustMatchTheRanks) {
  TempPath path(".kiln");
  ArtifactWriter w;
  std::string error;
  ASSERT_TRUE(describeSplit(w, true, &error)) << error;
  ASSERT_TRUE(w.write(path, &error)) << error;
  std::vector<uint8_t> split = readBytes(path);
  // A split artifact labelled with the one-rank version (an old runtime's
  // would run rank 0 alone) ...
  split[kVersionAt] = static_cast<uint8_t>(kFormatVersion);
  writeBytes(path, split);
  EXPECT_FALSE(Artifact::open(path, &error));
  EXPECT_NE(error.find("format version 2 cannot hold a tensor-parallel "
                       "artifact"),
            std::string::npos)
      << error;
  // ... and a one-rank artifact labelled as split.
  ASSERT_TRUE(writeFakeArtifact(path, FakeOptions(), &error)) << error;
  std::vector<uint8_t> whole = readBytes(path);
  whole[kVersionAt] = static_cast<uint8_t>(kTensorParallelFormatVersion);
  writeBytes(path, whole);
  EXPECT_FALSE(Artifact::open(path, &error));
  EXPECT_NE(error.find("is for tensor-parallel artifacts"), std::string::npos)
      << error;
}

} // namespace

//===----------------------------------------------------------------------===//
// GPU launch schedules and the argmax output
//===----------------------------------------------------------------------===//

namespace {
/// A decode entry with a two-kernel schedule and an argmax tensor placed
/// after the logits.
EntrySpec scheduledEntry() {
  EntrySpec e = fakeEntry("sched", "fake_decode", 1);
  LaunchSpec a;
  a.kernel = "k0";
  a.grid[0] = 4;
  a.block[0] = 256;
  a.args = {0, 1, 2, 3};
  LaunchSpec b = a;
  b.kernel = "k1";
  b.grid[1] = 2;
  b.sharedBytes = 128;
  b.waitsForPrevious = true;
  b.args = {3, 2};
  e.launches = {a, b};
  return e;
}

/// Describes the fake artifact with `options`, applies `edit`, writes it.
bool writeEdited(const std::string &path, const FakeOptions &options,
                 const std::function<void(ArtifactWriter &)> &edit,
                 std::string *error) {
  ArtifactWriter writer;
  if (!describeFake(writer, options, error))
    return false;
  edit(writer);
  return writer.write(path, error);
}

FakeOptions sm90() {
  FakeOptions options;
  options.target = "sm_90";
  return options;
}
} // namespace

TEST(ArtifactScheduleTest, RoundTrip) {
  TempPath path(".kiln");
  std::string error;
  ASSERT_TRUE(writeEdited(
      path, sm90(), [](ArtifactWriter &w) { w.addEntry(scheduledEntry()); },
      &error))
      << error;
  std::unique_ptr<Artifact> a = Artifact::open(path, &error);
  ASSERT_TRUE(a) << error;
  const EntrySpec *e = a->findEntry("sched");
  ASSERT_TRUE(e);
  ASSERT_EQ(e->launches.size(), 2u);
  EXPECT_EQ(e->launches[0].kernel, "k0");
  EXPECT_EQ(e->launches[0].grid[0], 4u);
  EXPECT_EQ(e->launches[0].block[0], 256u);
  EXPECT_EQ(e->launches[0].args, (std::vector<uint8_t>{0, 1, 2, 3}));
  EXPECT_EQ(e->launches[1].kernel, "k1");
  EXPECT_EQ(e->launches[1].grid[1], 2u);
  EXPECT_EQ(e->launches[1].sharedBytes, 128u);
  EXPECT_FALSE(e->launches[0].waitsForPrevious);
  EXPECT_TRUE(e->launches[1].waitsForPrevious);
  EXPECT_EQ(e->launches[1].args, (std::vector<uint8_t>{3, 2}));
  EXPECT_EQ(e->argmax.name, "argmax");
  EXPECT_EQ(e->argmax.dtype, DType::I64);
  EXPECT_EQ(e->argmax.offset, fakeArgmaxOffset(1));
  EXPECT_EQ(a->findEntry("prefill")->launches.size(), 2u);
  EXPECT_EQ(a->findEntry("prefill")->argmax.offset,
            fakeArgmaxOffset(FAKE_PREFILL_SEQ));
}

TEST(ArtifactScheduleTest, BadBufferId) {
  EXPECT_HAS_SUBSTR(writeError(
                        [](ArtifactWriter &w) {
                          EntrySpec e = scheduledEntry();
                          e.launches[1].args = {0, 4};
                          w.addEntry(e);
                        },
                        sm90()),
                    "entry 'sched' launch 1 ('k1') takes buffer id 4 (0 "
                    "weights, 1 kv, 2 arena, 3 io)");
}

// Launch arguments that point into their buffer (kiln-deduplicate-kernels:
// a kernel the layers share takes each layer's tensors): kept through a
// round trip, and refused when they leave the buffer or do not match the
// arguments one to one.
TEST(ArtifactScheduleTest, ArgumentOffsets) {
  TempPath path(".kiln");
  std::string error;
  EntrySpec sched = scheduledEntry();
  sched.launches[1].argOffsets = {256, 0};
  sched.launches[1].argBytes = {sched.ioSize - 256, 0};
  ASSERT_TRUE(writeEdited(
      path, sm90(), [&](ArtifactWriter &w) { w.addEntry(sched); }, &error))
      << error;
  std::unique_ptr<Artifact> a = Artifact::open(path, &error);
  ASSERT_TRUE(a) << error;
  const EntrySpec *e = a->findEntry("sched");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->launches[0].argOffsets.empty());
  EXPECT_EQ(e->launches[1].argOffsets, (std::vector<uint64_t>{256, 0}));
  EXPECT_EQ(e->launches[1].argBytes,
            (std::vector<uint64_t>{sched.ioSize - 256, 0}));
}

TEST(ArtifactScheduleTest, ArgumentOutsideItsBuffer) {
  EXPECT_HAS_SUBSTR(writeError(
                        [](ArtifactWriter &w) {
                          EntrySpec e = scheduledEntry();
                          e.launches[1].argOffsets = {e.ioSize - 8, 0};
                          e.launches[1].argBytes = {16, 0};
                          w.addEntry(e);
                        },
                        sm90()),
                    "entry 'sched' launch 1 ('k1') argument 0 [offset ");
  EXPECT_HAS_SUBSTR(writeError(
                        [](ArtifactWriter &w) {
                          EntrySpec e = scheduledEntry();
                          e.launches[1].argOffsets = {0};
                          w.addEntry(e);
                        },
                        sm90()),
                    "entry 'sched' launch 1 ('k1') has 2 arguments but 1 "
                    "offsets and 0 sizes");
}

/// `e` with the sampling parameters and keys of device sampling placed in
/// a grown io buffer after everything else.
EntrySpec withSampling(EntrySpec e) {
  const uint64_t end = fakeAlign64(e.ioSize);
  e.sampling = {"sampling", DType::F32, {e.batch, 4}, end};
  e.seeds = {"seeds", DType::I64, {e.batch}, end + 64};
  e.ioSize = end + 128;
  return e;
}

// Device sampling's inputs (tfm.sample): kept through a round trip, and
// refused alone, with the wrong dtype or shape, or outside the io buffer.
TEST(ArtifactScheduleTest, SamplingInputs) {
  TempPath path(".kiln");
  std::string error;
  EntrySpec sched = withSampling(scheduledEntry());
  ASSERT_TRUE(writeEdited(
      path, sm90(), [&](ArtifactWriter &w) { w.addEntry(sched); }, &error))
      << error;
  std::unique_ptr<Artifact> a = Artifact::open(path, &error);
  ASSERT_TRUE(a) << error;
  const EntrySpec *e = a->findEntry("sched");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->samplesOnDevice());
  EXPECT_EQ(e->sampling.offset, sched.sampling.offset);
  EXPECT_EQ(e->sampling.shape, (std::vector<int64_t>{sched.batch, 4}));
  EXPECT_EQ(e->seeds.dtype, DType::I64);
  EXPECT_FALSE(a->findEntry("prefill")->samplesOnDevice());
}

TEST(ArtifactScheduleTest, BadSamplingInputs) {
  auto edit = [](std::function<void(EntrySpec &)> change) {
    return [change](ArtifactWriter &w) {
      EntrySpec e = withSampling(scheduledEntry());
      change(e);
      w.addEntry(e);
    };
  };
  EXPECT_HAS_SUBSTR(
      writeError(edit([](EntrySpec &e) { e.seeds = TensorSpec(); }), sm90()),
      "entry 'sched' must have the sampling and seeds tensors together");
  EXPECT_HAS_SUBSTR(
      writeError(edit([](EntrySpec &e) { e.sampling.dtype = DType::F16; }),
                 sm90()),
      "entry 'sched' sampling tensor has dtype f16, expected f32");
  EXPECT_HAS_SUBSTR(
      writeError(edit([](EntrySpec &e) { e.seeds.shape = {e.batch, 1}; }),
                 sm90()),
      "entry 'sched' seeds tensor has shape");
  EXPECT_HAS_SUBSTR(
      writeError(edit([](EntrySpec &e) { e.seeds.offset = e.ioSize; }), sm90()),
      "lies outside io_size");
}

TEST(ArtifactScheduleTest, BlockTooLarge) {
  EXPECT_HAS_SUBSTR(writeError(
                        [](ArtifactWriter &w) {
                          EntrySpec e = scheduledEntry();
                          e.launches[0].block[0] = 2048;
                          w.addEntry(e);
                        },
                        sm90()),
                    "entry 'sched' launch 0 ('k0') has a block of [2048, 1, "
                    "1] = 2048 threads (1 to 1024, z at most 64)");
}

TEST(ArtifactScheduleTest, UnnamedKernel) {
  EXPECT_HAS_SUBSTR(writeError(
                        [](ArtifactWriter &w) {
                          EntrySpec e = scheduledEntry();
                          e.launches[0].kernel.clear();
                          w.addEntry(e);
                        },
                        sm90()),
                    "entry 'sched' launch 0 has no kernel name");
}

TEST(ArtifactScheduleTest, ArgmaxOverlapsLogits) {
  EXPECT_HAS_SUBSTR(writeError(
                        [](ArtifactWriter &w) {
                          EntrySpec e = scheduledEntry();
                          e.argmax.offset = e.logits.offset;
                          w.addEntry(e);
                        },
                        sm90()),
                    "io buffer of entry 'sched'");
}

TEST(ArtifactScheduleTest, GpuTargetNeedsSchedules) {
  TempPath path(".kiln");
  std::string error;
  FakeOptions options;
  options.target = "sm_90";
  EXPECT_FALSE(writeEdited(
      path, options,
      [](ArtifactWriter &w) {
        w.addEntry(fakeEntry("unscheduled", "fake_decode", 1));
      },
      &error));
  EXPECT_HAS_SUBSTR(error, "entry 'unscheduled' of GPU target 'sm_90' has no "
                           "launch schedule");
}

TEST(ArtifactScheduleTest, CpuTargetHasNoSchedules) {
  EXPECT_HAS_SUBSTR(
      writeError([](ArtifactWriter &w) { w.addEntry(scheduledEntry()); }),
      "entry 'sched' of target 'cpu' has a launch schedule "
      "(only GPU targets launch kernels)");
}

TEST(ArtifactScheduleTest, GridTooLarge) {
  EXPECT_HAS_SUBSTR(writeError(
                        [](ArtifactWriter &w) {
                          EntrySpec e = scheduledEntry();
                          e.launches[1].grid[1] = 70000;
                          w.addEntry(e);
                        },
                        sm90()),
                    "entry 'sched' launch 1 ('k1') has a grid of [4, 70000, "
                    "1]");
}

TEST(ArtifactScheduleTest, GpuTargetNeedsKernelImage) {
  FakeOptions options = sm90();
  options.withPtx = false;
  EXPECT_HAS_SUBSTR(writeError(
                        [](ArtifactWriter &w) {
                          w.addKernelImage("kernels", ImageKind::SharedObject,
                                           std::vector<uint8_t>(16, 1));
                        },
                        options),
                    "GPU target 'sm_90' has no Ptx or Cubin kernel image");
}

TEST(ArtifactScheduleTest, MalformedGpuTarget) {
  FakeOptions options;
  options.target = "sm_x9";
  EXPECT_HAS_SUBSTR(writeError([](ArtifactWriter &) {}, options),
                    "GPU target 'sm_x9' is not sm_<version>[a|f]");
}

//===----------------------------------------------------------------------===//
// Weights pulled from a WeightSource while the file is written
//===----------------------------------------------------------------------===//

namespace {
/// Rows of a deterministic pattern; counts its reads and its release.
class PatternSource : public WeightSource {
public:
  PatternSource(uint64_t rows, uint64_t rowBytes)
      : rowCount(rows), width(rowBytes) {}
  static char byteAt(uint64_t i) {
    return static_cast<char>((i * 2654435761u) >> 13);
  }
  uint64_t rows() const override { return rowCount; }
  uint64_t rowBytes() const override { return width; }
  void readRows(uint64_t first, uint64_t count, char *out) override {
    EXPECT_LE(first + count, rowCount);
    for (uint64_t i = 0; i < count * width; ++i)
      out[i] = byteAt(first * width + i);
    ++reads;
  }
  void release() override { ++releases; }
  uint64_t rowCount, width;
  int reads = 0, releases = 0;
};

std::string fileBytes(const std::string &path) {
  std::FILE *f = std::fopen(path.c_str(), "rb");
  std::string bytes;
  if (!f)
    return bytes;
  char buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;)
    bytes.append(buf, n);
  std::fclose(f);
  return bytes;
}
} // namespace

// A weight of 2 x 35 MiB rows + a small one, pulled in pieces (two 64 MiB
// hash chunks, three reads), gives the same file, byte for byte, as the same
// bytes handed over at once; the file opens with its hashes verified, and
// each source is released once.
TEST(ArtifactWriterTest, StreamedWeightsMatchInMemoryOnes) {
  const uint64_t rowBytes = uint64_t(35) << 20;
  auto big = std::make_shared<PatternSource>(2, rowBytes);
  auto small = std::make_shared<PatternSource>(3, 10);
  std::vector<uint8_t> bigBytes(2 * rowBytes), smallBytes(30);
  for (size_t i = 0; i < bigBytes.size(); ++i)
    bigBytes[i] = static_cast<uint8_t>(PatternSource::byteAt(i));
  for (size_t i = 0; i < smallBytes.size(); ++i)
    smallBytes[i] = static_cast<uint8_t>(PatternSource::byteAt(i));

  TempPath streamed(".kiln"), inMemory(".kiln");
  std::string error;
  ASSERT_TRUE(writeEdited(
      streamed, FakeOptions(),
      [&](ArtifactWriter &w) {
        w.addWeight("big", DType::U8, {2, int64_t(rowBytes)}, big);
        w.addWeight("small", DType::U8, {3, 10}, small);
      },
      &error))
      << error;
  ASSERT_TRUE(writeEdited(
      inMemory, FakeOptions(),
      [&](ArtifactWriter &w) {
        w.addWeight("big", DType::U8, {2, int64_t(rowBytes)}, bigBytes);
        w.addWeight("small", DType::U8, {3, 10}, smallBytes);
      },
      &error))
      << error;
  EXPECT_EQ(big->reads, 2); // one row per 64 MiB piece
  EXPECT_EQ(small->reads, 1);
  EXPECT_EQ(big->releases, 1);
  EXPECT_EQ(small->releases, 1);
  std::string a = fileBytes(streamed), b = fileBytes(inMemory);
  EXPECT_GT(a.size(), bigBytes.size());
  EXPECT_TRUE(a == b) << "streamed and in-memory artifacts differ";
  std::unique_ptr<Artifact> opened = Artifact::open(streamed, &error);
  ASSERT_TRUE(opened) << error;
}
