#!/usr/bin/env python3
"""The Python package (`import kiln`, python/kiln.cpp over the C API) on an artifact with a
tokenizer, against kiln-run on the same artifact:

    python_api.py MODEL.kiln PROMPT N

  * generate(PROMPT, max_new_tokens=N) yields text whose concatenation is kiln-run --prompt's;
  * generate_ids equals kiln-run --prompt-ids of the tokenized prompt;
  * tokenize/detokenize round-trip the prompt;
  * a conversation continues: generating after an earlier generation equals one generation
    over everything fed so far; reset() starts over;
  * sampling with a seed is reproducible;
  * errors raise kiln.Error with the runtime's one-line message.
Prints one `ok:` line per check, or FAIL and exits 1.
"""
import subprocess
import sys

import kiln

ok = True


def check(cond, what):
    global ok
    print(f"{'ok' if cond else 'FAIL'}: {what}")
    ok &= bool(cond)


def kiln_run(*args):
    return subprocess.run(["kiln-run", *args], capture_output=True, text=True,
                          check=True).stdout


def main():
    path, prompt, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    m = kiln.load(path)
    check(m.has_tokenizer and m.vocab_size > 0 and m.context_length > 0 and m.position == 0,
          f"load: vocab {m.vocab_size}, context {m.context_length}, a tokenizer")

    pieces = list(m.generate(prompt, max_new_tokens=n))
    want = kiln_run(path, "--prompt", prompt, "--max-new-tokens", str(n))
    check("".join(pieces) + "\n" == want,
          f"generate: {len(pieces)} pieces, their text is kiln-run --prompt's ({len(want) - 1} chars)")

    ids = m.tokenize(prompt)
    check(m.detokenize(m.tokenize(prompt, add_special_tokens=False)) == prompt,
          f"tokenize/detokenize round-trip ({len(ids)} ids with the special tokens)")
    m.reset()
    got = list(m.generate_ids(ids, max_new_tokens=n))
    want_ids = kiln_run(path, "--prompt-ids", ",".join(map(str, ids)), "--max-new-tokens", str(n),
                        "--format", "ids").split()
    check(got == [int(t) for t in want_ids][:len(got)] and len(got) >= 1,
          f"generate_ids: {len(got)} ids, kiln-run --prompt-ids's")

    # A conversation: the second generation continues after the first.
    m.reset()
    first = list(m.generate_ids(ids, max_new_tokens=3))
    more = m.tokenize(" more", add_special_tokens=False)
    second = list(m.generate_ids(more, max_new_tokens=3))
    m.reset()
    whole = list(m.generate_ids(ids + first + more, max_new_tokens=3))
    check(second == whole and m.position == len(ids + first + more) + len(whole),
          f"a continued conversation equals one generation over all it was fed ({second})")

    m.reset()
    a = list(m.generate_ids(ids, max_new_tokens=n, temperature=0.8, top_k=5, seed=7))
    m.reset()
    b = list(m.generate_ids(ids, max_new_tokens=n, temperature=0.8, top_k=5, seed=7))
    check(a == b and len(a) > 0, f"sampling with seed 7 is reproducible ({len(a)} ids)")

    errors = [
        (lambda: kiln.load(path + ".missing"), "cannot open"),
        (lambda: m.generate_ids([m.vocab_size], max_new_tokens=1), "outside the vocabulary"),
        (lambda: m.generate(prompt, max_new_tokens=m.context_length + 1), "do not fit the context"),
        (lambda: m.generate(prompt, temperature=-1.0), "temperature"),
    ]
    for fn, text in errors:
        try:
            fn()
            check(False, f"error '{text}' raised")
        except kiln.Error as e:
            check(text in str(e) and "\n" not in str(e), f"kiln.Error: {e}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
