/*===- FakeKernels.h - Shape of the fake CPU kernel image ---------------===*\
|*                                                                          *|
|* Shared by FakeKernels.c (the kernel image, C) and the C++ tests that     *|
|* pack it into an artifact, so both agree on every size and offset.        *|
|*                                                                          *|
\*===----------------------------------------------------------------------===*/

#ifndef KILN_TEST_FAKEKERNELS_H
#define KILN_TEST_FAKEKERNELS_H

#include <stdint.h>

#define FAKE_VOCAB 16
#define FAKE_LAYERS 2
#define FAKE_BATCH 2
#define FAKE_KV_HEADS 2
#define FAKE_HEAD_DIM 4
#define FAKE_MAX_SEQ 32
#define FAKE_PREFILL_SEQ 4
#define FAKE_ARENA_SIZE 256
/* Logits of padding slots: far above any real logit, so a runtime that
   read them would pick the wrong token. */
#define FAKE_PADDING_LOGIT 1000.0f

static inline uint64_t fakeAlign64(uint64_t x) { return (x + 63) / 64 * 64; }

/* One K or V block: [batch, kv_heads, max_seq, head_dim] f32. Blocks are
   laid out k0, v0, k1, v1, ... (KvCacheSpec::layoutContiguous). */
static inline uint64_t fakeBlockBytes(void) {
  return (uint64_t)FAKE_BATCH * FAKE_KV_HEADS * FAKE_MAX_SEQ * FAKE_HEAD_DIM *
         4;
}
static inline uint64_t fakeKOffset(int layer) {
  return 2 * (uint64_t)layer * fakeAlign64(fakeBlockBytes());
}
static inline uint64_t fakeVOffset(int layer) {
  return fakeKOffset(layer) + fakeAlign64(fakeBlockBytes());
}

/* io buffer of an entry with `seq` tokens per row: tokens, positions, logits
   (f32), argmax (i64), each 64-byte aligned. */
static inline uint64_t fakeTokensOffset(int64_t seq) { return 0; }
static inline uint64_t fakePositionsOffset(int64_t seq) {
  return fakeAlign64((uint64_t)FAKE_BATCH * seq * 8);
}
static inline uint64_t fakeLogitsOffset(int64_t seq) {
  return fakePositionsOffset(seq) + fakeAlign64((uint64_t)FAKE_BATCH * seq * 8);
}
static inline uint64_t fakeArgmaxOffset(int64_t seq) {
  return fakeLogitsOffset(seq) +
         fakeAlign64((uint64_t)FAKE_BATCH * seq * FAKE_VOCAB * 4);
}
static inline uint64_t fakeIoSize(int64_t seq) {
  return fakeArgmaxOffset(seq) + (uint64_t)FAKE_BATCH * seq * 8;
}
/* With sampling on the device (FakeOptions::withSampling), after those: the
   sampling parameters f32 [batch, 4] and the keys i64 [batch]. */
static inline uint64_t fakeSamplingOffset(int64_t seq) {
  return fakeAlign64(fakeIoSize(seq));
}
static inline uint64_t fakeSeedsOffset(int64_t seq) {
  return fakeSamplingOffset(seq) + fakeAlign64((uint64_t)FAKE_BATCH * 16);
}
static inline uint64_t fakeSampledIoSize(int64_t seq) {
  return fakeSeedsOffset(seq) + (uint64_t)FAKE_BATCH * 8;
}

/* The weights: "bias" f32 [vocab] at offset 0 (added to every logits row),
   then "odd" f32 [3] (checks the 64-byte alignment of what follows), then
   "shift" i64 [1]: the argmax kernel reports (argmax + shift) mod vocab, so
   tests can tell the kernels' argmax from one taken of the logits. */
#define FAKE_BIAS_OFFSET 0
#define FAKE_SHIFT_OFFSET 128

#ifdef __cplusplus
extern "C" {
#endif
/* The two halves of an entry, as separate kernels of the fake GPU driver
   (FakeCuda.cpp); the CPU entries fake_prefill/fake_decode run both. */
void fakeStep(int64_t seq, const void *weights, void *kv, void *arena,
              void *io);
void fakeArgmax(int64_t seq, const void *weights, void *io);
/* The fake sampler: every slot of batch row b draws token key[b] mod vocab,
   so a test reads the keys the runtime wrote through the tokens. */
void fakeSample(int64_t seq, void *io);
/* fake_prefill_last (CPU): fake_prefill's step, then only the chunk's last
   row of each sequence: logits [batch, 1, vocab] and argmax [batch, 1] at
   fake_prefill's offsets (kiln-compile --prefill-logits). */
void fakeKeepLastRows(int64_t seq, void *io);
#ifdef __cplusplus
}
#endif

#endif /* KILN_TEST_FAKEKERNELS_H */
