"""End-to-end numerics of a target against reference logits (PyTorch's for the bundled
exports, onnxruntime's for the GPU check's synthetic models: ref_logits.npy either way).

For one bundled export (examples/llama32_tiny/<variant>), compiles it with kiln-compile and
runs it with kiln-run, as a user would, then checks:

  * logits for the 11 `input_ids` (prefill in one call) against `ref_logits.npy`:
    relative L2 <= 1e-4 (fp32) or <= 2e-2 with top-1 agreement wherever the reference's
    top-2 margin exceeds 4x the observed error (fp16);
  * fp32: greedy generation after `prompt` reproduces `greedy_continuation` exactly;
  * chunked prefill (4 tokens per call over 11 tokens) gives the logits of one call;
  * decode after prefill gives the logits of a prefill over the whole sequence;
  * the KV-cache export, fed `past.npy` (positions 0-3) and the next 3 ids, gives
    `ref_logits[:, 4:7]`.

Prints every figure it compares and exits non-zero on the first failure.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r


TARGET = "cpu"


MAX_SEQ = 64


def compile_model(model, out, chunk, max_seq=None):
    max_seq = max_seq or MAX_SEQ
    r = run(["kiln-compile", model, "--target", TARGET, "--max-seq-len", str(max_seq),
             "--prefill-chunk", str(chunk), "-o", out])
    for line in r.stderr.splitlines():
        if line.startswith("memory:") or "wrote" in line:
            print(f"  {line}")
    return out


def logits(artifact, ids, out, new_tokens=0, extra=()):
    run(["kiln-run", artifact, "--prompt-ids", ",".join(map(str, ids)),
         "--max-new-tokens", str(new_tokens), "--format", "ids", "--dump-logits", out,
         *extra])
    return np.load(out)


def generate(artifact, ids, n):
    r = run(["kiln-run", artifact, "--prompt-ids", ",".join(map(str, ids)),
             "--max-new-tokens", str(n), "--format", "ids"])
    return [int(t) for t in r.stdout.split()]


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check(cond, what):
    print(f"  {'ok' if cond else 'FAIL'}: {what}")
    if not cond:
        sys.exit(f"FAILED: {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("workdir")
    ap.add_argument("--target", default="cpu", help="kiln-compile --target (cpu, sm_90, ...)")
    ap.add_argument("--reference-logits",
                    help="logits .npy of the same 11 input_ids from another target "
                         "(the GPU check compares with the CPU target's)")
    ap.add_argument("--max-seq-len", type=int, default=64,
                    help="kiln-compile --max-seq-len (the KV-cache context)")
    a = ap.parse_args()
    global TARGET, MAX_SEQ
    TARGET = a.target
    MAX_SEQ = a.max_seq_len
    os.makedirs(a.workdir, exist_ok=True)
    name = os.path.basename(os.path.normpath(a.export_dir))
    model = os.path.join(a.export_dir, "model.onnx")
    io = json.load(open(os.path.join(a.export_dir, "io.json")))
    ref = np.load(os.path.join(a.export_dir, "ref_logits.npy"))[0]
    config = os.path.join(a.export_dir, "config.json")
    dtype = io.get("dtype") or (json.load(open(config)).get("dtype", "")
                                if os.path.exists(config) else "")
    fp16 = "float16" in dtype
    tol = 2e-2 if fp16 else 1e-4
    ids, prompt = io["input_ids"], io["prompt"]
    w = lambda f: os.path.join(a.workdir, f)

    print(f"{name}: compile for {TARGET} (prefill chunk 16, then chunk 4)")
    one = compile_model(model, w("one.kiln"), chunk=16)
    chunked = compile_model(model, w("chunk4.kiln"), chunk=4)

    if "past_len" in io:  # the KV-cache signature export
        past = os.path.join(a.export_dir, "past.npy")
        p = io["past_len"]
        got = logits(one, ids[p:p + io["new_tokens"]], w("past.npy"),
                     extra=["--past", past])
        err = rel_l2(got, ref[p:p + io["new_tokens"]])
        check(err <= tol, f"{name}: past.npy + ids[{p}:{p + io['new_tokens']}] vs "
                          f"ref_logits[:, {p}:{p + io['new_tokens']}]: rel L2 {err:.2e} <= {tol}")

    full = logits(one, ids, w("full.npy"))
    err = rel_l2(full, ref)
    check(full.shape == ref.shape, f"{name}: logits shape {full.shape}")
    check(err <= tol, f"{name}: prefill logits vs the reference: rel L2 {err:.2e} <= {tol}")
    if a.reference_logits:
        other = np.load(a.reference_logits)
        err2 = rel_l2(full, other)
        check(err2 <= (1e-2 if fp16 else 1e-4),
              f"{name}: {TARGET} logits vs {os.path.basename(a.reference_logits)}: rel L2 "
              f"{err2:.2e}")
    if fp16:
        margin = np.sort(ref, -1)[:, -1] - np.sort(ref, -1)[:, -2]
        clear = margin > 4 * err * np.abs(ref).max()
        agree = full.argmax(-1) == ref.argmax(-1)
        check(bool(clear.any()) and bool(agree[clear].all()),
              f"{name}: top-1 agrees on all {int(clear.sum())} positions with a clear margin")
        if "greedy_continuation" in io and io.get("fp16_gpu_greedy_matches_fp32"):
            # The producer saw an fp16 run reproduce the fp32 continuation this
            # far (its top-2 margins are wide enough): so must Kiln.
            n = int(io["fp16_gpu_greedy_matches_fp32"])
            gen = generate(one, prompt, n)
            check(gen == io["greedy_continuation"][:n],
                  f"{name}: fp16 greedy continuation of {n} tokens matches transformers' fp32")
    else:
        gen = generate(one, prompt, len(io["greedy_continuation"]))
        check(gen == io["greedy_continuation"],
              f"{name}: greedy continuation of {len(gen)} tokens matches transformers")

    # The same model run two ways. GPU targets give calls of at most 8 rows
    # the GEMV kernels, which add in another order than the generic mapping;
    # an fp16 model rounds every activation to half precision (eps 9.8e-4),
    # so its results differ by about one rounding.
    same = 2e-3 if fp16 else 1e-5
    four = logits(chunked, ids, w("chunk4.npy"))
    err = rel_l2(four, full)
    calls = -(-len(ids) // 4)
    check(err <= same, f"{name}: chunked prefill (4 x {calls} calls) vs one call: "
                       f"rel L2 {err:.2e} <= {same}")

    # Decode after prefill == prefill over the whole sequence.
    n = 8
    dec = logits(one, prompt, w("decode.npy"), new_tokens=n)
    gen = generate(one, prompt, n)
    whole = logits(one, prompt + gen[:-1], w("whole.npy"))
    err = rel_l2(dec, whole)
    check(dec.shape == whole.shape and err <= same,
          f"{name}: {n - 1} decode steps vs prefill over the whole sequence: rel L2 {err:.2e} <= {same}")


if __name__ == "__main__":
    main()
