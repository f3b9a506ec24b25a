/*===- generate.c - Text generation through Kiln's C API ----------------===//
 *
 * kiln-generate-c MODEL.kiln PROMPT [MAX_NEW_TOKENS]
 *
 * Streams the greedy continuation of PROMPT to stdout, as kiln-run --prompt
 * does, through runtime/include/kiln/kiln.h only (plain C99).
 *
 *===----------------------------------------------------------------------===*/

#include "kiln/kiln.h"

#include <stdio.h>
#include <stdlib.h>

static int print_piece(void *user, int64_t token, const char *text,
                       size_t length) {
  (void)user;
  (void)token;
  fwrite(text, 1, length, stdout);
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: %s MODEL.kiln PROMPT [MAX_NEW_TOKENS]\n", argv[0]);
    return 2;
  }
  kiln_model *model;
  if (kiln_load(argv[1], &model) != KILN_OK) {
    fprintf(stderr, "kiln-generate-c: %s\n", kiln_last_error());
    return 1;
  }
  kiln_generate_options options;
  kiln_default_options(&options);
  if (argc == 4)
    options.max_new_tokens = atoi(argv[3]);
  if (kiln_generate(model, argv[2], &options, print_piece, NULL) != KILN_OK) {
    fprintf(stderr, "kiln-generate-c: %s\n", kiln_last_error());
    kiln_free(model);
    return 1;
  }
  printf("\n");
  kiln_free(model);
  return 0;
}
