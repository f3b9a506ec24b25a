/*===- kiln.h - The C API of Kiln's runtime --------------------*- C -*-===//
 *
 * Load a compiled artifact (model.kiln), tokenize, and generate text token
 * by token, from C or any language with a C FFI (the Python package is built
 * on it). Plain C99; no exception or C++ type crosses it.
 *
 *   kiln_model *m;
 *   if (kiln_load("model.kiln", &m) != KILN_OK) {
 *     fprintf(stderr, "%s\n", kiln_last_error());
 *     return 1;
 *   }
 *   kiln_generate_options o;
 *   kiln_default_options(&o);
 *   o.max_new_tokens = 64;
 *   kiln_generate(m, "def fibonacci(n):", &o, print_piece, NULL);
 *   kiln_free(m);
 *
 * Errors: every call returns a kiln_status; KILN_ERROR comes with a one-line
 * message from kiln_last_error() (per thread, valid until the next failing
 * call on that thread). A model is not thread-safe: one thread uses it at a
 * time. Different models are independent.
 *
 * Conversation state: a model keeps its KV cache between generations, so the
 * next prompt continues where the last generation ended (a multi-turn chat);
 * kiln_reset() starts over at position 0.
 *
 *===----------------------------------------------------------------------===*/

#ifndef KILN_KILN_H
#define KILN_KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kiln_status {
  KILN_OK = 0,
  /* The call failed; kiln_last_error() says why. */
  KILN_ERROR = 1,
  /* kiln_next(): the generation has ended (end-of-sequence token,
   * max_new_tokens, or the callback asked to stop). */
  KILN_DONE = 2
} kiln_status;

typedef struct kiln_model kiln_model;

/* The runtime's version, "MAJOR.MINOR.PATCH". */
const char *kiln_version(void);

/* The message of the last call that returned KILN_ERROR on this thread
 * ("" if none). */
const char *kiln_last_error(void);

/* Opens the artifact at `path` (weights verified) and prepares it to run on
 * its target (the CPU, or the GPU it was compiled for). On error *model is
 * set to NULL. */
kiln_status kiln_load(const char *path, kiln_model **model);

/* Frees the model and everything it holds. NULL is allowed. */
void kiln_free(kiln_model *model);

/* The vocabulary size and the context length (max_seq_len). */
int64_t kiln_vocab_size(const kiln_model *model);
int64_t kiln_context_length(const kiln_model *model);
/* Positions of the context already used by this conversation. */
int64_t kiln_position(const kiln_model *model);
/* 1 if the artifact embeds a tokenizer (text prompts work), else 0. */
int kiln_has_tokenizer(const kiln_model *model);

/* Encodes `text` (UTF-8, NUL-terminated) with the artifact's tokenizer,
 * adding its special tokens (BOS) if `add_special_tokens`. Writes at most
 * `capacity` ids to `ids` and the count needed to *count: a too small
 * buffer is an error whose *count says how many are needed. */
kiln_status kiln_tokenize(kiln_model *model, const char *text,
                          int add_special_tokens, int64_t *ids, size_t capacity,
                          size_t *count);

/* Decodes `ids` to UTF-8 text, special tokens skipped, NUL-terminated in
 * `text` (at most `capacity` bytes, the NUL included); *length gets the
 * text's length without the NUL (needed size - 1 when too small: an error). */
kiln_status kiln_detokenize(kiln_model *model, const int64_t *ids, size_t count,
                            char *text, size_t capacity, size_t *length);

typedef struct kiln_generate_options {
  /* Tokens to generate at most (default 64). */
  int32_t max_new_tokens;
  /* 0 samples greedily (the default); otherwise softmax(logits / t). */
  float temperature;
  /* Keep the k most likely tokens; 0 (default) keeps all. */
  int32_t top_k;
  /* Keep the most likely tokens whose probability reaches p; 1 (default)
   * keeps all. */
  float top_p;
  /* Sampling seed: the same seed, prompt and options give the same tokens. */
  uint64_t seed;
  /* Keep the tokens at least min_p times as likely as the most likely one
   * (after top_k and top_p); 0 (default) keeps all. GPU artifacts draw the
   * token on the device; the CPU target samples on the host. */
  float min_p;
} kiln_generate_options;

void kiln_default_options(kiln_generate_options *options);

/* Step by step: kiln_begin() runs the prompt (text, with BOS; or ids) after
 * what the conversation already holds; each kiln_next() then produces one
 * token and the text it completes (UTF-8, possibly empty: a character can
 * span tokens), valid until the next call on the model. kiln_next() returns
 * KILN_DONE at the end, with *token = -1 and any text still held back. The
 * end-of-sequence token ends the generation and is not returned. */
kiln_status kiln_begin(kiln_model *model, const char *prompt,
                       const kiln_generate_options *options);
kiln_status kiln_begin_ids(kiln_model *model, const int64_t *prompt,
                           size_t count, const kiln_generate_options *options);
kiln_status kiln_next(kiln_model *model, int64_t *token, const char **text,
                      size_t *length);

/* One message of a conversation: role ("system", "user", "assistant") and
 * content, UTF-8. */
typedef struct kiln_message {
  const char *role;
  const char *content;
} kiln_message;

/* Chat: renders the whole conversation `messages` with the artifact's chat
 * template (tokenizer_config.json's chat_template), the assistant's turn
 * opened, and begins the reply (then kiln_next). Only the tokens after the
 * longest prefix the KV cache already holds are run, so passing the
 * conversation again with the last reply and a new message continues it. */
kiln_status kiln_begin_chat(kiln_model *model, const kiln_message *messages,
                            size_t count, const kiln_generate_options *options);

/* Called for each generated token with the text it completes (token -1 for
 * the text held back at the end); a non-zero return stops the generation. */
typedef int (*kiln_token_callback)(void *user, int64_t token, const char *text,
                                   size_t length);

/* kiln_begin, then kiln_next until KILN_DONE, calling `callback` (if not
 * NULL) with each result. */
kiln_status kiln_generate(kiln_model *model, const char *prompt,
                          const kiln_generate_options *options,
                          kiln_token_callback callback, void *user);

/* Empties the KV cache: the next prompt starts a new conversation. */
kiln_status kiln_reset(kiln_model *model);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KILN_KILN_H */
