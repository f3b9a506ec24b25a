#!/usr/bin/env python3
"""A mid-sized random Llama in the layout of examples/llama32_tiny/<variant>, for the GPU check.

The bundled exports are tiny (hidden 128): too small for the shapes at which the GPU
backend changes strategy (GEMV loop unrolling at K >= 512, block reductions for rows of
512 and more, split reductions). This writes, into OUT_DIR, a model made by
test/Import/Inputs/make_llama.py with the given options plus what
test/E2E/Inputs/check_numerics.py reads: io.json (11 input_ids, a 6-token prompt and,
for float32, the greedy continuation of 16 tokens) and ref_logits.npy [1, 11, vocab],
both computed with onnxruntime on the CPU.

  make_synthetic.py OUT_DIR [make_llama.py options...]
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort

here = os.path.dirname(os.path.abspath(__file__))
make_llama = os.path.join(here, "..", "..", "test", "Import", "Inputs", "make_llama.py")


def main():
    out, options = sys.argv[1], sys.argv[2:]
    os.makedirs(out, exist_ok=True)
    model = os.path.join(out, "model.onnx")
    subprocess.run([sys.executable, make_llama, model, *options], check=True)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    vocab = session.get_outputs()[0].shape[-1]
    fp16 = "float16" in options

    def run(ids):
        logits = session.run(None, {"input_ids": np.array([ids], dtype=np.int64)})[0]
        return logits.astype(np.float32)

    rng = np.random.default_rng(7)
    ids = [int(t) for t in rng.integers(0, vocab, size=11)]
    ref = run(ids)
    prompt = ids[:6]
    io = {"input_ids": ids, "prompt": prompt, "dtype": "float16" if fp16 else "float32"}
    if not fp16:
        seq = list(prompt)
        for _ in range(16):
            seq.append(int(run(seq)[0, -1].argmax()))
        io["greedy_continuation"] = seq[len(prompt):]
    np.save(os.path.join(out, "ref_logits.npy"), ref)
    with open(os.path.join(out, "io.json"), "w") as f:
        json.dump(io, f)
    print(f"make_synthetic: {out}: vocab {vocab}, options {' '.join(options)}")


if __name__ == "__main__":
    main()
