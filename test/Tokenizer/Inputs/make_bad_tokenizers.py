#!/usr/bin/env python3
"""Writes one directory per broken or unusual tokenizer into OUT.

    make_bad_tokenizers.py OUT

Each is test/Runtime/Inputs/fake-tokenizer (a 16-token byte-level BPE) with
one thing changed; kiln-tokenize.test checks what kiln-tokenize and
kiln-compile say about it.
"""

import copy
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.path.join(HERE, "..", "..", "Runtime", "Inputs", "fake-tokenizer")


def main():
    out = sys.argv[1]
    with open(os.path.join(BASE, "tokenizer.json"), encoding="utf-8") as f:
        base = json.load(f)

    def write(name, tokenizer, config=None, raw=None):
        os.makedirs(os.path.join(out, name), exist_ok=True)
        with open(os.path.join(out, name, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(raw if raw is not None else json.dumps(tokenizer, ensure_ascii=False))
        if config is not None:
            with open(os.path.join(out, name, "tokenizer_config.json"), "w") as f:
                f.write(config if isinstance(config, str) else json.dumps(config))

    def changed(edit):
        t = copy.deepcopy(base)
        edit(t)
        return t

    write("wordpiece", changed(lambda t: t["model"].update(type="WordPiece")))
    write("unigram", changed(lambda t: t["model"].update(type="Unigram")))
    write("bad-regex", changed(lambda t: t.update(pre_tokenizer={
        "type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "(?i:'s|\\p{L}+"},
             "behavior": "Isolated", "invert": False}]})))
    write("bad-json", None, raw='{"model": {"type": "BPE",}')
    write("bad-merge", changed(lambda t: t["model"]["merges"].append(["Ġ", "q"])))
    write("bad-merge-string", changed(lambda t: t["model"]["merges"].append("Ġ o x")))
    write("nfc", changed(lambda t: t.update(normalizer={"type": "NFC"})))
    write("bad-id", changed(lambda t: t["model"]["vocab"].update(q="seven")))
    write("bad-config", base, config={"bos_token": "<bos>"})
    write("bad-config-json", base, config="[1, 2")
    # tokenizer_config.json's flags replace the post-processor; a chat
    # template list keeps its "default" entry.
    write("eos-config", base, config={
        "add_bos_token": False, "add_eos_token": True, "bos_token": "<s>",
        "eos_token": {"content": "</s>", "lstrip": False},
        "chat_template": [{"name": "tool_use", "template": "T"},
                          {"name": "default", "template": "D"}]})


if __name__ == "__main__":
    main()
