#!/usr/bin/env python3
"""Tensor parallelism on the CPU target (issue 16): each model compiled whole and split over
two ranks (kiln-compile --tensor-parallel 2: q/k/v and gate/up by output columns, o_proj and
down by input rows + all-reduce, the lm_head by vocabulary + all-gather), both run by kiln-run
on the same prompt (longer than a prefill chunk, so prefill takes several calls) and 15 decode
steps with --dump-logits:

  * the logits of every position (prefill and decode) within 1e-5 relative L2 for fp32
    exports and 2e-2 for fp16 ones (a split only reorders the f32 sums);
  * the same greedy tokens (all exports; the issue asks it of the fp32 ones).

Prints one `ok:` line per check, or FAIL and exits 1.
"""
import argparse
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
IDS = [1, 17, 3, 99, 42, 7, 5, 300, 12, 64, 8]
CASES = [
    # name, model, tolerance, more kiln-compile flags
    ("tiny-fp32", "examples/llama32_tiny/nocache_dynamo/model.onnx", 1e-5, []),
    ("tiny-cache-fp32", "examples/llama32_tiny/cache_torchscript/model.onnx", 1e-5, []),
    ("tiny-fp16", "examples/llama32_tiny/nocache_dynamo_fp16/model.onnx", 2e-2, []),
    ("realmodel-fp16", "examples/realmodel/model.onnx", 2e-2, []),
    # Two batch rows over a paged KV cache (each rank's pool holds its KV heads).
    ("tiny-fp32-paged", "examples/llama32_tiny/nocache_dynamo/model.onnx", 1e-5,
     ["--batch", "2", "--kv-block-size", "4"]),
]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    for name, model, tol, flags in CASES:
        logits, tokens = {}, {}
        for ranks in (1, 2):
            art = os.path.join(a.workdir, f"{name}-tp{ranks}.kiln")
            run(["kiln-compile", os.path.join(ROOT, model), "--target", "cpu", "--quiet",
                 "--max-seq-len", "64", "--prefill-chunk", "4",
                 "--tensor-parallel", str(ranks), "-o", art] + flags)
            dump = os.path.join(a.workdir, f"{name}-tp{ranks}.npy")
            r = run(["kiln-run", art, "--prompt-ids", ",".join(map(str, IDS)),
                     "--max-new-tokens", "16", "--format", "ids", "--dump-logits", dump])
            tokens[ranks] = r.stdout.split()
            logits[ranks] = np.load(dump).astype(np.float64)
        ref, got = logits[1], logits[2]
        if ref.shape != got.shape:
            sys.exit(f"FAIL: {name}: logits shapes {ref.shape} and {got.shape}")
        rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        if not rel <= tol:
            sys.exit(f"FAIL: {name}: TP=2 logits vs TP=1: rel L2 {rel:.2e} > {tol}")
        print(f"ok: {name}: TP=2 logits vs TP=1 over {ref.shape[0]} positions: "
              f"rel L2 {rel:.2e} <= {tol}")
        if tokens[1] != tokens[2] or len(tokens[1]) != 16:
            sys.exit(f"FAIL: {name}: greedy tokens differ:\n  TP=1 {tokens[1]}\n  TP=2 {tokens[2]}")
        print(f"ok: {name}: the same 16 greedy tokens")


if __name__ == "__main__":
    main()
