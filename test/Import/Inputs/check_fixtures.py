"""Checks Kiln's importer on the bundled real PyTorch exports.

For every export directory under the given root:
  * `kiln-compile model.onnx --emit=summary` must match the transformers config.json
    (which the compiler never reads: everything must come from the graph);
  * the raised module's tfm op sequence must consist of `num_layers` identical layers,
    and be the same for every export (dynamo, TorchScript, fp16, KV-cache signature).
Prints what it compared and exits non-zero on any mismatch.
"""
import json
import math
import os
import re
import subprocess
import sys


def run(*args):
    r = subprocess.run(["kiln-compile", *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"kiln-compile {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def expected_summary(cfg):
    dtype = cfg.get("dtype") or cfg.get("torch_dtype") or "float32"
    return {
        "num_layers": cfg["num_hidden_layers"],
        "hidden_size": cfg["hidden_size"],
        "num_heads": cfg["num_attention_heads"],
        "num_kv_heads": cfg["num_key_value_heads"],
        "head_dim": cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"]),
        "vocab_size": cfg["vocab_size"],
        "intermediate_size": cfg["intermediate_size"],
        "rms_norm_eps": cfg["rms_norm_eps"],
        "tied_embeddings": cfg["tie_word_embeddings"],
        "attention_bias": cfg.get("attention_bias", False),
        "dtype": dtype,
    }


def op_sequence(module_text):
    body = module_text[module_text.index("func.func @forward"):]
    return re.findall(r"= (tfm\.[a-z_]+)", body)


def main(root):
    failures = []
    sequences = {}
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.isfile(os.path.join(d, "model.onnx")):
            continue
        model = os.path.join(d, "model.onnx")
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        want = expected_summary(cfg)
        # The fp16 export's config says float32 (the model it came from);
        # its dtype is what the graph stores.
        io = json.load(open(os.path.join(d, "io.json")))
        if "float16" in io.get("dtype", ""):
            want["dtype"] = "float16"
        got = json.loads(run(model, "--emit=summary"))
        for key, value in want.items():
            ok = (math.isclose(got.get(key, math.nan), value, rel_tol=1e-6)
                  if isinstance(value, float) else got.get(key) == value)
            print(f"{name}: {key} = {got.get(key)!r} (config: {value!r}) {'ok' if ok else 'MISMATCH'}")
            if not ok:
                failures.append(f"{name}: {key}")
        ops = op_sequence(run(model, "--emit=tfm"))
        layers = want["num_layers"]
        if len(ops) < 3 or ops[0] != "tfm.embedding" or ops[-1] != "tfm.logits":
            failures.append(f"{name}: module is not embedding ... logits: {ops}")
            continue
        per_layer, rest = divmod(len(ops) - 3, layers)  # embedding, final norm, logits
        chunks = [ops[1 + i * per_layer: 1 + (i + 1) * per_layer] for i in range(layers)]
        if rest or any(c != chunks[0] for c in chunks) or ops[-2] != "tfm.rms_norm":
            failures.append(f"{name}: layers differ: {ops}")
        print(f"{name}: {layers} layers of: {' '.join(chunks[0])}")
        sequences[name] = ops
    if len(sequences) < 2:
        failures.append(f"expected several exports under {root}, found {list(sequences)}")
    first = next(iter(sequences.values()), None)
    for name, ops in sequences.items():
        if ops != first:
            failures.append(f"{name}: op sequence differs from the others")
    if failures:
        sys.exit("FAILED:\n  " + "\n  ".join(failures))
    print(f"all {len(sequences)} exports raise to the same {len(first)}-op sequence")


if __name__ == "__main__":
    main(sys.argv[1])
