#!/usr/bin/env python3
"""Weight-only quantization of the real trained model, measured where random weights cannot.

For examples/realmodel (fp16, tied embeddings): the first WINDOWS windows of 512 tokens of
its held-out text (eval_dev.txt) are scored by onnxruntime (the oracle: the ONNX graph on
the CPU) and by kiln-run --perplexity on kiln-compile's fp16, --quantize=int8 and
--quantize=int4:32 artifacts, with the same transformers-style rule (non-overlapping
windows, no BOS, every token after a window's first scored by the logits before it).
Checks: Kiln's fp16 perplexity equals onnxruntime's within 0.2%; int8 within 0.5% of
Kiln's fp16 and int4:32 within 5%; the quantized models' top-1 predictions agree with
fp16's on >= 97% (int8) and >= 85% (int4:32) of the scored tokens (the issue's bounds).
Prints one `ok:` line per check, or FAIL and exits 1.
"""
import argparse
import math
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort

WINDOW = 512


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r.stdout


def onnxruntime_perplexity(model, ids, windows):
    sess = ort.InferenceSession(os.path.join(model, "model.onnx"),
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    nll, count, preds = 0.0, 0, []
    for w in range(windows):
        x = np.array([ids[w * WINDOW:(w + 1) * WINDOW]], dtype=np.int64)
        logits = sess.run(None, {name: x})[0][0].astype(np.float64)
        top = logits.max(axis=-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
        nll -= logp[np.arange(WINDOW - 1), x[0, 1:]].sum()
        count += WINDOW - 1
        preds += list(logits[:-1].argmax(axis=-1))
    return math.exp(nll / count), preds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", help="examples/realmodel")
    ap.add_argument("work", help="scratch directory")
    ap.add_argument("--windows", type=int, default=4)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)

    # The text of the first windows (whole lines), tokenized as kiln-run will.
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    lines = open(os.path.join(args.model, "eval_dev.txt"), encoding="utf-8").read().split("\n")
    text, n = "", 0
    while n < args.windows * WINDOW + 1:
        text += lines.pop(0) + "\n"
        n = len(tok.encode(text, add_special_tokens=False).ids)
    path = os.path.join(args.work, "eval.txt")
    open(path, "w", encoding="utf-8").write(text)
    ids = tok.encode(text, add_special_tokens=False).ids

    ref_ppl, ref_preds = onnxruntime_perplexity(args.model, ids, args.windows)
    print(f"onnxruntime: perplexity {ref_ppl:.4f} over {args.windows} windows of {WINDOW}")

    results = {}
    for scheme in ("fp16", "int8", "int4:32"):
        kiln = os.path.join(args.work, scheme.replace(":", "_") + ".kiln")
        quant = [] if scheme == "fp16" else ["--quantize=" + scheme]
        run(["kiln-compile", os.path.join(args.model, "model.onnx"), "--target", "cpu",
                      "--max-seq-len", str(WINDOW), "--prefill-chunk", "128", "-o", kiln] + quant)
        preds = os.path.join(args.work, scheme.replace(":", "_") + ".pred")
        out = run(["kiln-run", kiln, "--perplexity", path, "--predictions", preds])
        fields = out.split()
        ppl, scored = float(fields[1]), int(fields[fields.index("scored") + 1])
        if scored != args.windows * (WINDOW - 1):
            sys.exit(f"FAIL: {scheme}: scored {scored} tokens, expected "
                     f"{args.windows * (WINDOW - 1)}")
        results[scheme] = (ppl, [int(v) for v in open(preds).read().split()])
        print(f"{scheme}: perplexity {ppl:.4f}")

    ok = True

    def check(cond, msg):
        nonlocal ok
        print(("ok: " if cond else "FAIL: ") + msg)
        ok = ok and cond

    fp16, fp16_preds = results["fp16"]
    check(abs(fp16 / ref_ppl - 1) <= 0.002,
          f"fp16 perplexity within 0.2% of onnxruntime's ({fp16:.4f} vs {ref_ppl:.4f})")
    agree_ref = np.mean(np.array(fp16_preds) == np.array(ref_preds))
    check(agree_ref >= 0.99, f"fp16 top-1 agrees with onnxruntime's on >= 99% ({agree_ref:.2%})")
    for scheme, ppl_bound, agree_bound in (("int8", 0.005, 0.97), ("int4:32", 0.05, 0.85)):
        ppl, preds = results[scheme]
        agree = np.mean(np.array(preds) == np.array(fp16_preds))
        check(ppl / fp16 - 1 <= ppl_bound,
              f"{scheme} perplexity within {ppl_bound:.1%} of fp16 ({ppl / fp16 - 1:+.2%})")
        check(agree >= agree_bound,
              f"{scheme} top-1 agrees with fp16 on >= {agree_bound:.0%} ({agree:.2%})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
