#!/usr/bin/env python3
"""Kiln on the fused-op spellings of a Llama graph (issue 11): the ONNX Attention,
RMSNormalization and RotaryEmbedding of opset 23, and onnxruntime's
SimplifiedLayerNormalization, com.microsoft::SkipSimplifiedLayerNormalization,
GroupQueryAttention and RotaryEmbedding, as make_llama.py writes them.

For each variant (same seeded weights as the decomposed graph), compiles it for the
CPU, runs the prompt with kiln-run --dump-logits and compares the logits with
make_llama.py's numpy reference of transformers' Llama (float64): relative L2
<= 1e-4 (fp32) or 2e-2 (fp16), top-1 identical. Prints one `ok:` line per
variant, or FAIL and exits 1.
"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Import", "Inputs"))
import make_llama  # noqa: E402

IDS = [5, 17, 3, 29, 12, 7, 1, 30, 12, 6, 8]
BASE = ["--layers", "2", "--hidden", "32", "--heads", "4", "--kv-heads", "2",
        "--head-dim", "16", "--ffn", "64", "--vocab", "48", "--theta", "500000"]
VARIANTS = {
    "rmsnormalization": ["--norm-op", "rmsnormalization"],
    "simplified": ["--norm-op", "simplified"],
    "onnx-attention-causal": ["--attention-op", "onnx", "--mask", "none"],
    "onnx-attention-mask": ["--attention-op", "onnx"],
    "onnx-attention-cache": ["--attention-op", "onnx", "--cache", "--mask", "where"],
    "opset23-all": ["--attention-op", "onnx", "--rope-op", "onnx", "--norm-op",
                    "rmsnormalization", "--mask", "none"],
    "genai-gqa": ["--attention-op", "gqa", "--cache", "--norm-op", "skip"],
    "genai-gqa-ms-rope": ["--attention-op", "gqa", "--rope-op", "ms", "--cache",
                          "--norm-op", "skip"],
    "genai-gqa-fp16": ["--attention-op", "gqa", "--cache", "--norm-op", "skip", "--dtype",
                       "float16", "--max-pos", "256"],
}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: {' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
        sys.exit(1)
    return r


def main():
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    ok = True
    for name, extra in VARIANTS.items():
        ap = make_llama.argparse.ArgumentParser()
        make_llama.add_model_args(ap)
        cfg = make_llama.config_from_args(ap.parse_args(BASE + extra))
        weights = make_llama.make_weights(cfg)
        path = os.path.join(work, name + ".onnx")
        make_llama.save_model(make_llama.build_model(cfg, weights), path)
        art = os.path.join(work, name + ".kiln")
        run(["kiln-compile", path, "--target", "cpu", "--max-seq-len", "32", "--prefill-chunk",
             "16", "-o", art])
        out = os.path.join(work, name + ".npy")
        run(["kiln-run", art, "--prompt-ids", ",".join(map(str, IDS)), "--max-new-tokens", "0",
             "--format", "ids", "--dump-logits", out])
        got = np.load(out).astype(np.float64).reshape(len(IDS), -1)
        want = make_llama.reference(cfg, weights, np.array([IDS]))[0][0]
        rel = float(np.linalg.norm(got - want) / np.linalg.norm(want))
        tol = 1e-4 if cfg.dtype == "float32" else 2e-2
        top1 = bool((got.argmax(-1) == want.argmax(-1)).all())
        good = rel <= tol and top1
        ok &= good
        print(f"{'ok' if good else 'FAIL'}: {name}: logits vs the numpy reference: rel L2 "
              f"{rel:.2e} <= {tol:g}, top-1 {'identical' if top1 else 'DIFFERS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
