/*===- FakeKernels.c - A tiny CPU kernel image with the Kiln ABI --------===*\
|*                                                                          *|
|* extern "C" void entry(void *weights, void *kv, void *arena, void *io).   *|
|* For every slot (row b, index i) with token t and position p >= 0:        *|
|*   K[l][b][h][p][:] = t + 1 and V[l][b][h][p][:] = p + 1 in every layer;  *|
|*   c = K[0][b][0][0][0] (the first prompt token + 1, or a loaded past);   *|
|*   logits[v] = -((v - (t + c)) mod vocab) + bias[v], so the greedy next   *|
|*   token is (t + c) mod vocab.                                            *|
|* Padding slots (p < 0) write no KV and get FAKE_PADDING_LOGIT logits.     *|
|* Then argmax[slot] = (first index of the row's max + shift) mod vocab.    *|
|*                                                                          *|
\*===----------------------------------------------------------------------===*/

#include "FakeKernels.h"

#include <string.h>

static float *kvAt(void *kv, uint64_t blockOffset, int64_t b, int64_t h,
                   int64_t p) {
  float *block = (float *)((char *)kv + blockOffset);
  return block + ((b * FAKE_KV_HEADS + h) * FAKE_MAX_SEQ + p) * FAKE_HEAD_DIM;
}

void fakeStep(int64_t seq, const void *weights, void *kv, void *arena,
              void *io) {
  const float *bias = (const float *)((const char *)weights + FAKE_BIAS_OFFSET);
  const int64_t *tokens = (const int64_t *)((char *)io + fakeTokensOffset(seq));
  const int64_t *positions =
      (const int64_t *)((char *)io + fakePositionsOffset(seq));
  float *logits = (float *)((char *)io + fakeLogitsOffset(seq));
  memset(arena, 0xAB, FAKE_ARENA_SIZE); /* the arena must be that big */

  for (int64_t b = 0; b < FAKE_BATCH; ++b) {
    for (int64_t i = 0; i < seq; ++i) {
      int64_t t = tokens[b * seq + i], p = positions[b * seq + i];
      float *row = logits + (b * seq + i) * FAKE_VOCAB;
      if (p < 0) {
        for (int v = 0; v < FAKE_VOCAB; ++v)
          row[v] = FAKE_PADDING_LOGIT;
        continue;
      }
      for (int l = 0; l < FAKE_LAYERS; ++l)
        for (int h = 0; h < FAKE_KV_HEADS; ++h)
          for (int d = 0; d < FAKE_HEAD_DIM; ++d) {
            kvAt(kv, fakeKOffset(l), b, h, p)[d] = (float)(t + 1);
            kvAt(kv, fakeVOffset(l), b, h, p)[d] = (float)(p + 1);
          }
      int64_t c = (int64_t)kvAt(kv, fakeKOffset(0), b, 0, 0)[0];
      int64_t target = (t + c) % FAKE_VOCAB;
      for (int v = 0; v < FAKE_VOCAB; ++v)
        row[v] = -(float)((v - target + FAKE_VOCAB) % FAKE_VOCAB) + bias[v];
    }
  }
}

/* The argmax of the first `slots` logits rows. */
static void argmaxOfRows(int64_t seq, int64_t slots, const void *weights,
                         void *io) {
  int64_t shift = *(const int64_t *)((const char *)weights + FAKE_SHIFT_OFFSET);
  const float *logits = (const float *)((char *)io + fakeLogitsOffset(seq));
  int64_t *argmax = (int64_t *)((char *)io + fakeArgmaxOffset(seq));
  for (int64_t slot = 0; slot < slots; ++slot) {
    const float *row = logits + slot * FAKE_VOCAB;
    int64_t best = 0;
    for (int64_t v = 1; v < FAKE_VOCAB; ++v)
      if (row[v] > row[best])
        best = v;
    argmax[slot] = (best + shift) % FAKE_VOCAB;
  }
}

void fakeArgmax(int64_t seq, const void *weights, void *io) {
  argmaxOfRows(seq, FAKE_BATCH * seq, weights, io);
}

void fakeSample(int64_t seq, void *io) {
  const uint64_t *keys = (const uint64_t *)((char *)io + fakeSeedsOffset(seq));
  int64_t *argmax = (int64_t *)((char *)io + fakeArgmaxOffset(seq));
  for (int64_t slot = 0; slot < FAKE_BATCH * seq; ++slot)
    argmax[slot] = (int64_t)(keys[slot / seq] % FAKE_VOCAB);
}

void fakeKeepLastRows(int64_t seq, void *io) {
  float *logits = (float *)((char *)io + fakeLogitsOffset(seq));
  for (int64_t b = 0; b < FAKE_BATCH; ++b) /* row b <- slot b * seq + seq - 1 */
    memmove(logits + b * FAKE_VOCAB, logits + (b * seq + seq - 1) * FAKE_VOCAB,
            FAKE_VOCAB * sizeof(float));
}

void fake_prefill(void *weights, void *kv, void *arena, void *io) {
  fakeStep(FAKE_PREFILL_SEQ, weights, kv, arena, io);
  fakeArgmax(FAKE_PREFILL_SEQ, weights, io);
}

void fake_prefill_last(void *weights, void *kv, void *arena, void *io) {
  fakeStep(FAKE_PREFILL_SEQ, weights, kv, arena, io);
  fakeKeepLastRows(FAKE_PREFILL_SEQ, io);
  argmaxOfRows(FAKE_PREFILL_SEQ, FAKE_BATCH, weights, io);
}

void fake_decode(void *weights, void *kv, void *arena, void *io) {
  fakeStep(1, weights, kv, arena, io);
  fakeArgmax(1, weights, io);
}
