#!/usr/bin/env python3
"""Compares kiln-tokenize with the `tokenizers` package, line by line.

    check_tokenizers.py KILN_TOKENIZE CORPUS WORKDIR

For each tokenizer below (the real model's byte-level BPE, the trained
Llama-2-style BPE of sp-bpe/, and variants of both written to WORKDIR that
exercise other components) and every line of CORPUS:

  - encode: kiln-tokenize's ids == Tokenizer.encode(line).ids, with special
    tokens parsed and, separately, with encode_special_tokens (--no-special);
  - decode: kiln-tokenize's text of the reference ids == Tokenizer.decode,
    with and without skip_special_tokens;
  - stream: what each step of kiln-tokenize's streaming decoder emits ==
    what tokenizers.decoders.DecodeStream.step returns (None as ""), and all
    of it together == the full decode.

Prints one line per tokenizer with the number of lines compared, and exits
non-zero on the first tokenizer with a difference (after printing up to five).
"""

import copy
import json
import os
import subprocess
import sys

from tokenizers import Tokenizer
from tokenizers.decoders import DecodeStream

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def variants():
    """(name, tokenizer.json contents, directory of the config files or None)."""
    real_dir = os.path.join(ROOT, "examples", "realmodel")
    sp_dir = os.path.join(HERE, "sp-bpe")
    real = load(os.path.join(real_dir, "tokenizer.json"))
    sp = load(os.path.join(sp_dir, "tokenizer.json"))
    yield "realmodel", real, real_dir

    # Llama 3's layout: a Split regex then ByteLevel without its own regex,
    # ignore_merges, merges as "a b" strings, more added tokens (a special
    # one, one that strips the spaces around it, one matched only as a whole
    # word).
    llama3 = copy.deepcopy(real)
    llama3["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
         "use_regex": False}]}
    llama3["model"]["ignore_merges"] = True
    llama3["model"]["merges"] = [" ".join(m) for m in real["model"]["merges"]]
    llama3["added_tokens"] += [
        {"id": 8192, "content": "<|eot_id|>", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True},
        {"id": 8193, "content": "<tool>", "single_word": False, "lstrip": True,
         "rstrip": True, "normalized": False, "special": False},
        {"id": 8194, "content": "merges", "single_word": True, "lstrip": False,
         "rstrip": False, "normalized": False, "special": False}]
    yield "llama3-style", llama3, None

    # GPT-2's layout: ByteLevel adds a prefix space, no post-processor; an
    # added token matched after normalization.
    gpt2 = copy.deepcopy(real)
    gpt2["pre_tokenizer"]["add_prefix_space"] = True
    gpt2["post_processor"] = None
    gpt2["added_tokens"].append(
        {"id": 8192, "content": "tokens", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": True, "special": False})
    yield "gpt2-style", gpt2, None

    yield "sp-bpe", sp, sp_dir

    # The Metaspace pre-tokenizer instead of the normalizers (prepend only to
    # the start of the text), Metaspace in the decoder.
    metaspace = copy.deepcopy(sp)
    metaspace["normalizer"] = None
    metaspace["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁",
                                  "prepend_scheme": "first", "split": True}
    metaspace["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁",
                                   "prepend_scheme": "first", "split": True}]}
    yield "sp-metaspace", metaspace, None

    # No byte fallback: unknown characters become one fused <unk>; merges as
    # "a b" strings; ignore_merges; an added token matched in the normalized
    # text, as its normalized form ("▁tokens").
    unk = copy.deepcopy(sp)
    unk["added_tokens"].append(
        {"id": 3000, "content": "tokens", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": True, "special": False})
    unk["model"]["byte_fallback"] = False
    unk["model"]["ignore_merges"] = True
    unk["model"]["merges"] = [" ".join(m) for m in sp["model"]["merges"]]
    yield "sp-unk", unk, None


def kiln(tool, source, args, stdin):
    run = subprocess.run([tool, source] + args, input=stdin.encode("utf-8"),
                         capture_output=True, check=False)
    if run.returncode != 0:
        sys.exit(f"kiln-tokenize {' '.join(args)} failed: {run.stderr.decode()}")
    return [json.loads(l) for l in run.stdout.decode("utf-8").split("\n")[:-1]]


def check(tool, name, contents, config_dir, lines, workdir):
    path = os.path.join(workdir, name)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(contents, f, ensure_ascii=False)
    if config_dir:
        for config in ("tokenizer_config.json", "generation_config.json"):
            if os.path.exists(os.path.join(config_dir, config)):
                with open(os.path.join(config_dir, config), "rb") as src, \
                        open(os.path.join(path, config), "wb") as dst:
                    dst.write(src.read())
    ref = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
    text = "\n".join(lines) + "\n"

    ids = [ref.encode(line).ids for line in lines]
    ref.encode_special_tokens = True
    plain_ids = [ref.encode(line).ids for line in lines]
    ref.encode_special_tokens = False
    id_text = "\n".join(" ".join(map(str, i)) for i in ids) + "\n"

    got = {
        "encode": kiln(tool, path, ["encode", "--lines", "--json"], text),
        "encode --no-special": kiln(tool, path, ["encode", "--lines", "--json", "--no-special"], text),
        "decode": kiln(tool, path, ["decode", "--lines", "--json"], id_text),
        "decode --skip-special": kiln(tool, path, ["decode", "--lines", "--json", "--skip-special"], id_text),
        "stream": kiln(tool, path, ["decode", "--lines", "--json", "--stream"], id_text),
    }
    failures = []
    for n, line in enumerate(lines):
        full = ref.decode(ids[n], skip_special_tokens=False)
        stream = DecodeStream(skip_special_tokens=False)
        steps = [stream.step(ref, i) or "" for i in ids[n]]
        want = {
            "encode": ids[n],
            "encode --no-special": plain_ids[n],
            "decode": full,
            "decode --skip-special": ref.decode(ids[n], skip_special_tokens=True),
            "stream": steps + [full[len("".join(steps)):]],
        }
        for what in got:
            if len(got[what]) != len(lines) or got[what][n] != want[what]:
                failures.append(f"{name}: line {n + 1} {line!r}: {what}: "
                                f"kiln {got[what][n] if n < len(got[what]) else None!r} "
                                f"!= tokenizers {want[what]!r}")
        if "".join(got["stream"][n]) != got["decode"][n]:
            failures.append(f"{name}: line {n + 1}: the stream does not add up to the decode")
    for f in failures[:5]:
        print(f)
    if failures:
        sys.exit(f"{name}: {len(failures)} differences")
    tokens = sum(len(i) for i in ids)
    print(f"{name}: {len(lines)} lines ({tokens} tokens) identical: "
          f"{', '.join(got)}")
    return len(lines)


def main():
    tool, corpus, workdir = sys.argv[1:4]
    with open(corpus, encoding="utf-8") as f:
        lines = f.read().split("\n")[:-1]
    compared = [check(tool, name, contents, config_dir, lines, workdir)
                for name, contents, config_dir in variants()]
    assert min(compared) >= 2000, compared
    print(f"compared {sum(compared)} lines in {len(compared)} tokenizers")


if __name__ == "__main__":
    main()
