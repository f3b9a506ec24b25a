//===- ArenaPlanTest.cpp - Unit tests of the arena packing and its check --===//
//
// The check must be able to catch a placement bug, so it is tested on
// hand-made bad plans, not only on planArena's output.
//
//===----------------------------------------------------------------------===//

#include "passes/memory/ArenaPlan.h"

#include <gtest/gtest.h>

#include <vector>

using kiln::checkArenaPlan;
using kiln::planArena;
using kiln::PlannedBuffer;

namespace {

PlannedBuffer buffer(int64_t size, int64_t start, int64_t end) {
  PlannedBuffer b;
  b.size = size;
  b.start = start;
  b.end = end;
  return b;
}

TEST(PlanArena, EmptyPlanHasEmptyArena) {
  std::vector<PlannedBuffer> buffers;
  EXPECT_EQ(planArena(buffers, 64), 0);
  EXPECT_TRUE(succeeded(checkArenaPlan(buffers, 64, 0)));
}

TEST(PlanArena, DisjointLifetimesShareMemory) {
  std::vector<PlannedBuffer> buffers = {buffer(64, 0, 2), buffer(64, 3, 4)};
  EXPECT_EQ(planArena(buffers, 64), 64);
  EXPECT_EQ(buffers[0].offset, 0);
  EXPECT_EQ(buffers[1].offset, 0);
}

TEST(PlanArena, TouchingLifetimesDoNotShare) {
  // Intervals are inclusive: the op at index 2 reads one and writes the other.
  std::vector<PlannedBuffer> buffers = {buffer(64, 0, 2), buffer(64, 2, 4)};
  EXPECT_EQ(planArena(buffers, 64), 128);
  EXPECT_NE(buffers[0].offset, buffers[1].offset);
}

TEST(PlanArena, LargestFirstAndGapsReused) {
  // The large buffer goes to 0; the two small ones, never live together,
  // share the bytes after it.
  std::vector<PlannedBuffer> buffers = {buffer(64, 0, 2), buffer(256, 0, 5),
                                        buffer(64, 3, 5)};
  EXPECT_EQ(planArena(buffers, 64), 320);
  EXPECT_EQ(buffers[1].offset, 0);
  EXPECT_EQ(buffers[0].offset, 256);
  EXPECT_EQ(buffers[2].offset, 256);
}

TEST(PlanArena, FillsAGapBetweenPlacedBuffers) {
  // X [0,128), Y [128,256) and Z [256,384) are live together at first; W,
  // born after Y dies, fits in Y's hole between X and Z.
  std::vector<PlannedBuffer> buffers = {buffer(128, 0, 9), buffer(128, 0, 1),
                                        buffer(128, 0, 9), buffer(64, 2, 9)};
  int64_t size = planArena(buffers, 64);
  EXPECT_EQ(buffers[0].offset, 0);
  EXPECT_EQ(buffers[1].offset, 128);
  EXPECT_EQ(buffers[2].offset, 256);
  EXPECT_EQ(buffers[3].offset, 128);
  EXPECT_EQ(size, 384);
  EXPECT_TRUE(succeeded(checkArenaPlan(buffers, 64, size)));
}

TEST(PlanArena, ResultPassesTheCheck) {
  // A deterministic pseudo-random workload: every plan must check.
  std::vector<PlannedBuffer> buffers;
  uint64_t state = 12345;
  auto next = [&](int64_t bound) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<int64_t>((state >> 33) % bound);
  };
  for (int i = 0; i < 300; ++i) {
    int64_t start = next(100);
    buffers.push_back(buffer(64 * (1 + next(16)), start, start + next(20)));
  }
  int64_t size = planArena(buffers, 64);
  std::string why;
  EXPECT_TRUE(succeeded(checkArenaPlan(buffers, 64, size, &why))) << why;
}

TEST(CheckArenaPlan, CatchesOverlapOfLiveBuffers) {
  std::vector<PlannedBuffer> buffers = {buffer(128, 0, 3), buffer(64, 2, 5)};
  buffers[1].offset = 64;
  std::string why;
  EXPECT_TRUE(failed(checkArenaPlan(buffers, 64, 192, &why)));
  EXPECT_EQ(why, "buffers #0 and #1 are live together over [2, 3] but share "
                 "bytes [64, 128)");
}

TEST(CheckArenaPlan, AllowsOverlapOfDeadBuffers) {
  std::vector<PlannedBuffer> buffers = {buffer(128, 0, 1), buffer(64, 2, 5)};
  buffers[1].offset = 64;
  EXPECT_TRUE(succeeded(checkArenaPlan(buffers, 64, 128)));
}

TEST(CheckArenaPlan, AllowsAdjacentBuffers) {
  std::vector<PlannedBuffer> buffers = {buffer(64, 0, 5), buffer(64, 0, 5)};
  buffers[1].offset = 64;
  EXPECT_TRUE(succeeded(checkArenaPlan(buffers, 64, 128)));
}

TEST(CheckArenaPlan, CatchesMisalignment) {
  std::vector<PlannedBuffer> buffers = {buffer(64, 0, 1)};
  buffers[0].offset = 32;
  std::string why;
  EXPECT_TRUE(failed(checkArenaPlan(buffers, 64, 128, &why)));
  EXPECT_EQ(why, "buffer #0 at offset 32 is not aligned to 64");
}

TEST(CheckArenaPlan, CatchesBufferPastArenaEnd) {
  std::vector<PlannedBuffer> buffers = {buffer(128, 0, 1)};
  std::string why;
  EXPECT_TRUE(failed(checkArenaPlan(buffers, 64, 64, &why)));
  EXPECT_EQ(why, "buffer #0 ends at 128, past the arena size 64");
}

TEST(CheckArenaPlan, CatchesMalformedBuffer) {
  std::vector<PlannedBuffer> buffers = {buffer(64, 3, 1)};
  EXPECT_TRUE(failed(checkArenaPlan(buffers, 64, 64)));
}

} // namespace
