#!/usr/bin/env python3
"""onnxruntime-genai model-builder graphs (test/Import/Inputs/genai, made by
scripts/gpu/make_importer_fixtures.py with onnxruntime-genai 0.18's builder) through Kiln, as a
user would run them: kiln-compile, then kiln-run.

For every graph folder given:
  * `kiln-compile --emit=summary` matches the checkpoint's config.json (which the compiler
    never reads);
  * the logits of io.json's 11 input_ids against onnxruntime's run of the same file
    (ort_logits.npy, onnxruntime 1.30): relative L2 <= 1e-4 (fp32), 2e-2 (fp16) or 1e-3
    (int4, int8: MatMulNBits with accuracy_level=1, fp32 activations), top-1 identical;
  * the greedy continuation of io.json's prompt (8 tokens) against onnxruntime's, driven
    through the graph's own KV cache (ort_greedy.json): identical for fp32, reported for the
    others.
Prints one `ok:` line per check, or FAIL lines, and exits 1 on any failure.
"""
import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Import", "Inputs"))
from check_fixtures import expected_summary  # noqa: E402

TOL = {"fp32": 1e-4, "fp16": 2e-2, "int4": 1e-3, "int8": 1e-3}
failed = False


def check(cond, what):
    global failed
    print(f"{'ok' if cond else 'FAIL'}: {what}")
    failed |= not cond


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: {' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
        sys.exit(1)
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("graphs", nargs="+", help="builder graph folders")
    ap.add_argument("--work", required=True)
    ap.add_argument("--target", default="cpu")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    for d in a.graphs:
        name = os.path.basename(os.path.normpath(d))
        precision = name.rsplit("-", 1)[1]
        model = os.path.join(d, "model.onnx")
        io = json.load(open(os.path.join(d, "io.json")))
        cfg = json.load(open(os.path.join(d, "config.json")))
        want = expected_summary(cfg)
        # The builder writes the precision it was asked for; int4/int8 keep fp32 activations.
        want["dtype"] = "float16" if precision == "fp16" else "float32"
        # For a tied checkpoint, the int8 builder stores an fp32 embedding table beside the
        # int8 lm_head: two tensors, not tied in the graph (its int4 embedding gathers from
        # the lm_head's codes: tied).
        if precision == "int8":
            want["tied_embeddings"] = False
        got = json.loads(run(["kiln-compile", model, "--emit=summary"]))
        bad = [k for k, v in want.items()
               if not (math.isclose(got.get(k, math.nan), v, rel_tol=1e-6)
                       if isinstance(v, float) else got.get(k) == v)]
        check(not bad, f"{name}: --emit=summary matches config.json"
              + (f" (differs: {', '.join(f'{k}={got.get(k)!r} vs {want[k]!r}' for k in bad)})"
                 if bad else ""))
        art = os.path.join(a.work, name + ".kiln")
        run(["kiln-compile", model, "--target", a.target, "--max-seq-len", "64",
             "--prefill-chunk", "16", "-o", art])
        out = os.path.join(a.work, name + ".npy")
        ids = io["input_ids"]
        run(["kiln-run", art, "--prompt-ids", ",".join(map(str, ids)), "--max-new-tokens", "0",
             "--format", "ids", "--dump-logits", out])
        got_l = np.load(out).astype(np.float64).reshape(len(ids), -1)
        ref = np.load(os.path.join(d, "ort_logits.npy")).astype(np.float64).reshape(len(ids), -1)
        rel = float(np.linalg.norm(got_l - ref) / np.linalg.norm(ref))
        top1 = bool((got_l.argmax(-1) == ref.argmax(-1)).all())
        check(rel <= TOL[precision] and top1,
              f"{name}: logits vs onnxruntime's run of the same file: rel L2 {rel:.2e} <= "
              f"{TOL[precision]:g}, top-1 {'identical' if top1 else 'DIFFERS'}")
        want_ids = json.load(open(os.path.join(d, "ort_greedy.json")))
        if isinstance(want_ids, dict):
            want_ids = want_ids.get("ids") or want_ids.get("greedy")
        toks = run(["kiln-run", art, "--prompt-ids", ",".join(map(str, io["prompt"])),
                    "--max-new-tokens", str(len(want_ids)), "--format", "ids"]).split()
        same = [int(t) for t in toks] == list(want_ids)
        if precision == "fp32":
            check(same, f"{name}: greedy continuation of {len(want_ids)} tokens equals "
                        f"onnxruntime's")
        else:
            print(f"ok: {name}: greedy continuation {'equals' if same else 'differs from'} "
                  f"onnxruntime's (reported, not required)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
