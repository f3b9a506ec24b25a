#!/usr/bin/env python3
"""Trains the small Llama-2-style tokenizer in sp-bpe/ with the `tokenizers` package.

    .venv/bin/python test/Tokenizer/Inputs/train_sentencepiece_bpe.py

A SentencePiece-style BPE laid out as Hugging Face converts Llama 2's: the
normalizer prepends "▁" and turns spaces into "▁" (no pre-tokenizer),
byte_fallback with the 256 <0xNN> tokens at ids 3-258 after <unk>, <s>,
</s>, fuse_unk, "<s> $A" as the post-processor, and the decoder
Replace("▁", " ") · ByteFallback · Fuse · Strip(" ", 1, 0). Trained on the
even lines of corpus.txt with a 3,000-token vocabulary and at most 160
initial characters, so that rarer scripts fall back to bytes. Training
splits words at "▁" (a Metaspace pre-tokenizer) as SentencePiece does.
"""

import json
import os

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
SPECIAL = ["<unk>", "<s>", "</s>"]
BYTES = [f"<0x{b:02X}>" for b in range(256)]


def main():
    with open(os.path.join(HERE, "corpus.txt"), encoding="utf-8") as f:
        lines = f.read().split("\n")[:-1][::2]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=3000 - len(BYTES), special_tokens=SPECIAL,
                                  limit_alphabet=160, show_progress=False)
    tok.train_from_iterator(lines, trainer)
    trained = json.loads(tok.to_str())

    # Byte tokens after the special ones, as in Llama 2; the learnt tokens
    # move up by 256.
    vocab = {t: i for i, t in enumerate(SPECIAL + BYTES)}
    for token, i in sorted(trained["model"]["vocab"].items(), key=lambda kv: kv[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    model = dict(trained["model"], vocab=vocab)
    out = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": False, "special": True}
            for i, t in enumerate(SPECIAL)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": model,
    }
    text = json.dumps(out, ensure_ascii=False, indent=None)
    Tokenizer.from_str(text)  # loads
    os.makedirs(os.path.join(HERE, "sp-bpe"), exist_ok=True)
    with open(os.path.join(HERE, "sp-bpe", "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": {"__type": "AddedToken", "content": "</s>", "lstrip": False,
                      "normalized": False, "rstrip": False, "single_word": False},
        "unk_token": "<unk>",
        "chat_template": "{% for message in messages %}[INST] {{ message['content'] }} "
                         "[/INST]{% endfor %}",
        "tokenizer_class": "LlamaTokenizer",
    }
    with open(os.path.join(HERE, "sp-bpe", "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
