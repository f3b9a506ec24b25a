#!/usr/bin/env python3
"""A tokenizer.json of a given vocabulary size for random-weight models (make_llama.py shapes),
so that kiln-serve, which serves text, can run them:

  make_tokenizer.py VOCAB DIR   -> DIR/tokenizer.json (+ tokenizer_config.json)

A byte-level BPE in the layout of Llama-3's (ByteLevel pre-tokenizer and decoder): id 0
<|begin_of_text|> and id 1 <|end_of_text|> (special), the 256 byte symbols, then merges of two
ASCII-letter tokens up to VOCAB ids in all, drawn with a fixed seed. Every id decodes to text,
almost all of them to ASCII letters, so a random model's streamed tokens are text at once.
Made with the `tokenizers` package (the device host has it with transformers).
"""
import json
import os
import random
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    vocab_size, out = int(sys.argv[1]), sys.argv[2]
    if vocab_size < 300:
        sys.exit("make_tokenizer.py: VOCAB must be at least 300")
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<|begin_of_text|>": 0, "<|end_of_text|>": 1}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    letters = [t for t in vocab if len(t) == 1 and t.isascii() and t.isalpha()]
    pool = list(letters)
    merges = []
    rng = random.Random(0)
    while len(vocab) < vocab_size:
        a, b = rng.choice(pool), rng.choice(pool)
        if len(a) + len(b) > 8 or a + b in vocab:
            continue
        vocab[a + b] = len(vocab)
        merges.append((a, b))
        pool.append(a + b)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken
    tok.add_special_tokens([AddedToken("<|begin_of_text|>", special=True),
                            AddedToken("<|end_of_text|>", special=True)])
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
                   "add_bos_token": True}, f)
    print(f"make_tokenizer.py: {len(vocab)} ids, {len(merges)} merges -> {out}/tokenizer.json")


if __name__ == "__main__":
    main()
