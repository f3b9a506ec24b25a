#!/usr/bin/env python3
"""Importer fixtures made by onnxruntime-genai's model builder, plus one opset-23 PyTorch export.

Runs on the GPU host (PyTorch, transformers, onnx, onnx_ir and onnxruntime installed; no
network).  Everything lands in one folder, OUT:

  OUT/genai/<model>-<precision>/   one folder per builder graph (model: gqa, mha;
                                   precision: fp32 (cpu), fp16 (cuda), int4 (cpu), int8 (cpu)):
      model.onnx, model.onnx.data  the builder's graph (tokenizer copies it makes are dropped)
      genai_config.json            the builder's runtime config
      config.json                  the Hugging Face config of the checkpoint it was built from
      ort_logits.npy               float32 [1, 11, 512]: onnxruntime's logits of IDS with an
                                   empty KV cache and an all-ones attention mask
      ort_greedy.json              8 ids onnxruntime picks greedily after IDS[:7], feeding the
                                   graph's present.* back as past_key_values.*
      hf_logits.npy                (fp32 graphs) PyTorch fp32 logits of IDS
      io.json                      ids, prompt, greedy ids, builder command, op histogram,
                                   graph inputs/outputs, sanity numbers
  OUT/hf/<model>/                  the random checkpoints (safetensors + WordLevel tokenizer)
  OUT/opset23/                     examples/llama32_tiny/nocache_dynamo's weights exported again
                                   with torch.onnx.export(dynamo=True, opset_version=23):
                                   model.onnx(+.data), config.json, io.json, ref_logits.npy,
                                   ort_logits.npy
  OUT/manifest.json, OUT/README.md what was made, with which versions and command lines

The builder is onnxruntime-genai's `onnxruntime_genai/models/builder.py`, run as a script by
path from an unpacked wheel (--genai-src, or --genai-wheel which is unzipped first), so the
package's native library is never imported.  Each step runs in its own try/except: a failure
is logged with its traceback and recorded in the manifest, and the other steps go on.

The GPU host has no network: fetch the builder on the build machine first (an 11 MB wheel;
only its Python files are used) and carry `.fixture-wheels` in the device call:

  pip download onnxruntime-genai==0.18.0 --no-deps --only-binary=:all: \
      --platform manylinux_2_28_x86_64 --python-version 3.12 -d .fixture-wheels
  python3 scripts/gpu/make_importer_fixtures.py --out /tmp/fx     # on the GPU host
"""
import argparse
import collections
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback
import zipfile

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

IDS = [5, 17, 3, 99, 42, 7, 1, 300, 12, 64, 8]
PROMPT_LEN = 7
NEW_TOKENS = 8
# Checkpoint seeds, picked (on the CPU, same torch/transformers) so that the greedy
# continuation is not one token repeated and its top-2 margins are not tiny.
SEEDS = {"gqa": 1251, "mha": 1334}

VOCAB = 512
# Two tiny checkpoints: Llama-3.2 style (GQA, llama3 RoPE scaling, tied embeddings) and
# Llama-2 style (MHA, plain RoPE, untied lm_head).
MODELS = {
    "gqa": dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=32, rms_norm_eps=1e-5,
                max_position_embeddings=256, tie_word_embeddings=True, rope_theta=500000.0,
                rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                  high_freq_factor=4.0, original_max_position_embeddings=64)),
    "mha": dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
                max_position_embeddings=256, tie_word_embeddings=False, rope_theta=10000.0,
                rope_scaling=None),
}
# (folder suffix, builder precision, builder execution provider, extra options)
BUILDS = [
    ("fp32", "fp32", "cpu", []),
    ("fp16", "fp16", "cuda", []),
    ("int4", "int4", "cpu", ["accuracy_level=1"]),
    ("int8", "int8", "cpu", ["accuracy_level=1"]),
]
KEEP = ("model.onnx", "model.onnx.data", "genai_config.json")

MANIFEST = {"steps": {}, "errors": {}}


def log(*a):
    print(*a, flush=True)


def step(name):
    """Run the decorated function at once, logging and recording any failure."""
    def run(fn):
        t = time.time()
        log(f"\n===== {name} =====")
        try:
            fn()
            MANIFEST["steps"][name] = f"ok ({time.time() - t:.1f}s)"
        except BaseException as e:  # noqa: BLE001 - keep going whatever broke
            if isinstance(e, KeyboardInterrupt):
                raise
            tb = traceback.format_exc()
            log(tb)
            MANIFEST["steps"][name] = f"FAILED ({time.time() - t:.1f}s): {type(e).__name__}: {e}"
            MANIFEST["errors"][name] = tb
        return fn
    return run


def rel_l2(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


# ----------------------------------------------------------------------------- environment

def versions():
    v = {"python": platform.python_version()}
    for mod in ("torch", "transformers", "tokenizers", "safetensors", "onnx", "onnxruntime",
                "onnx_ir", "onnxscript", "numpy", "ml_dtypes"):
        try:
            v[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001
            v[mod] = f"missing ({type(e).__name__}: {e})"
    try:
        import torch
        v["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except Exception:  # noqa: BLE001
        v["cuda"] = "none"
    try:
        import onnxruntime as ort
        v["onnxruntime_providers"] = ort.get_available_providers()
    except Exception:  # noqa: BLE001
        pass
    return v


def find_builder(args):
    """Path of builder.py in an unpacked onnxruntime-genai wheel, and the package version."""
    src = args.genai_src
    if not os.path.isfile(os.path.join(src, "onnxruntime_genai", "models", "builder.py")):
        wheels = sorted(glob.glob(os.path.join(args.genai_wheel, "onnxruntime_genai-*.whl")))
        if not wheels:
            raise FileNotFoundError(f"no builder.py under {src} and no wheel in {args.genai_wheel}")
        src = os.path.join(args.work, "genai-src")
        with zipfile.ZipFile(wheels[-1]) as z:  # Python files only: no native library needed
            z.extractall(src, [n for n in z.namelist()
                               if n.startswith("onnxruntime_genai/") and n.endswith(".py")])
    builder = os.path.join(src, "onnxruntime_genai", "models", "builder.py")
    init = open(os.path.join(src, "onnxruntime_genai", "__init__.py")).read()
    m = re.search(r'__version__\s*=\s*"([^"]+)"', init)
    c = re.search(r'__commit__\s*=\s*"([^"]+)"', init)
    return builder, (m.group(1) if m else "?"), (c.group(1) if c else "?")


# ----------------------------------------------------------------------------- checkpoints

def make_tokenizer(out_dir, max_len):
    """A WordLevel tokenizer over the whole vocabulary: <unk>, <s>, </s>, then t3..t511."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"t{i}": i for i in range(3, VOCAB)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", model_max_length=max_len)
    fast.save_pretrained(out_dir)


def llama_config(spec):
    import transformers
    from transformers import LlamaConfig
    spec = dict(spec)
    theta, scaling = spec.pop("rope_theta"), spec.pop("rope_scaling")
    common = dict(bos_token_id=1, eos_token_id=2, pad_token_id=None, attention_bias=False,
                  mlp_bias=False, hidden_act="silu", architectures=["LlamaForCausalLM"])
    if int(transformers.__version__.split(".")[0]) >= 5:  # rope settings live in rope_parameters
        rope = dict(scaling or {"rope_type": "default"}, rope_theta=theta)
        return LlamaConfig(**spec, **common, rope_parameters=rope)
    return LlamaConfig(**spec, **common, rope_theta=theta, rope_scaling=scaling)


def make_checkpoint(name, out_dir, seed):
    """A random LlamaForCausalLM whose logits are far from uniform, saved with save_pretrained."""
    import torch
    from transformers import LlamaForCausalLM
    cfg = llama_config(MODELS[name])
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).float().eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() == 1:  # RMSNorm weights around 1
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in pname or "lm_head" in pname:  # logits of std ~3
                p.copy_(0.4 * torch.randn(p.shape, generator=g))
            else:  # N(0, 1/fan_in): activations stay O(1)
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    make_tokenizer(out_dir, cfg.max_position_embeddings)
    return model


def hf_logits_and_greedy(model, ids, prompt, steps):
    import torch
    with torch.no_grad():
        logits = model(torch.tensor([ids]), use_cache=False).logits[0].float().numpy()[None]
        seq, margins = list(prompt), []
        for _ in range(steps):
            last = model(torch.tensor([seq]), use_cache=False).logits[0, -1].float().numpy()
            top2 = np.sort(last)[-2:]
            margins.append(float(top2[1] - top2[0]))
            seq.append(int(last.argmax()))
    return logits, seq[len(prompt):], min(margins)


# ----------------------------------------------------------------------------- graph facts

DTYPE_NAMES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool",
               10: "float16", 16: "bfloat16", 21: "uint4", 22: "int4"}


def value_info(v):
    t = v.type.tensor_type
    dims = [d.dim_param if d.HasField("dim_param") else
            (d.dim_value if d.HasField("dim_value") else "?") for d in t.shape.dim]
    return {"name": v.name, "dtype": DTYPE_NAMES.get(t.elem_type, str(t.elem_type)), "shape": dims}


def attr_value(a):
    import onnx
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, (list, tuple)):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    if isinstance(v, (int, float, str)):
        return v
    return f"<{type(v).__name__}>"


def graph_facts(path):
    """Opsets, op histogram (domain::op), attributes of non-default-domain ops, inputs/outputs."""
    import onnx
    m = onnx.load(path, load_external_data=False)
    hist = collections.Counter()
    attrs = collections.defaultdict(list)
    nodes = list(m.graph.node)
    for f in m.functions:
        nodes += list(f.node)
    for n in nodes:
        key = f"{n.domain or 'ai.onnx'}::{n.op_type}"
        hist[key] += 1
        if n.domain not in ("", "ai.onnx") or n.op_type in ("Attention", "RMSNormalization",
                                                            "RotaryEmbedding"):
            d = {a.name: attr_value(a) for a in n.attribute}
            if d not in attrs[key]:
                attrs[key].append(d)
    init_count = collections.Counter()
    for t in m.graph.initializer:
        init_count[DTYPE_NAMES.get(t.data_type, str(t.data_type))] += 1
    return {
        "opset_import": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
        "ir_version": m.ir_version,
        "producer": f"{m.producer_name} {m.producer_version}",
        "ops": dict(sorted(hist.items())),
        "custom_op_attributes": dict(attrs),
        "initializers_by_dtype": dict(init_count),
        "functions": [f"{f.domain}::{f.name}" for f in m.functions],
        "inputs": [value_info(v) for v in m.graph.input],
        "outputs": [value_info(v) for v in m.graph.output],
    }


# ----------------------------------------------------------------------------- onnxruntime

NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
            "tensor(int64)": np.int64, "tensor(int32)": np.int32}


class OrtRunner:
    """Feeds a builder graph: input_ids, attention_mask, optional position_ids, past KV."""

    def __init__(self, path, providers):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(path, so, providers=providers)
        self.provider = self.sess.get_providers()[0]
        self.inputs = {i.name: i for i in self.sess.get_inputs()}
        self.outputs = [o.name for o in self.sess.get_outputs()]
        cfg = os.path.join(os.path.dirname(path), "genai_config.json")
        self.genai = json.load(open(cfg))["model"]["decoder"] if os.path.exists(cfg) else {}

    def empty_past(self):
        """Length-0 past KV, [1, kv_heads, 0, head_size]; symbolic sizes from genai_config.json."""
        past = {}
        for name, i in self.inputs.items():
            if name.startswith("past_key_values."):
                _, kvh, _, hd = i.shape
                kvh = kvh if isinstance(kvh, int) else self.genai["num_key_value_heads"]
                hd = hd if isinstance(hd, int) else self.genai["head_size"]
                past[name] = np.zeros((1, kvh, 0, hd), NP_TYPES[i.type])
        return past

    def __call__(self, ids, past, past_len):
        total = past_len + len(ids)
        feeds = dict(past)
        for name, i in self.inputs.items():
            dt = NP_TYPES.get(i.type, np.int64)
            if name == "input_ids":
                feeds[name] = np.array([ids], dt)
            elif name == "attention_mask":
                feeds[name] = np.ones((1, total), dt)
            elif name == "position_ids":
                feeds[name] = np.arange(past_len, total, dtype=dt)[None]
            elif name not in feeds:
                raise ValueError(f"don't know how to feed graph input {name}: {i}")
        outs = dict(zip(self.outputs, self.sess.run(None, feeds)))
        present = {n.replace("present.", "past_key_values.", 1): v
                   for n, v in outs.items() if n.startswith("present.")}
        return outs["logits"].astype(np.float32), present


def ort_references(path, cuda_fallback):
    """Logits of IDS (empty cache) and the greedy continuation, on the CPU EP if it can."""
    import onnxruntime as ort
    errors = []
    tries = [["CPUExecutionProvider"]]
    if cuda_fallback and "CUDAExecutionProvider" in ort.get_available_providers():
        tries.append(["CUDAExecutionProvider", "CPUExecutionProvider"])
    for providers in tries:
        try:
            r = OrtRunner(path, providers)
            logits, _ = r(IDS, r.empty_past(), 0)
            seq, past, past_len = list(IDS[:PROMPT_LEN]), r.empty_past(), 0
            step_ids, rows = list(seq), []
            for _ in range(NEW_TOKENS):
                lg, past = r(step_ids, past, past_len)
                past_len += len(step_ids)
                rows.append(lg[0, -1])
                nxt = int(lg[0, -1].argmax())
                seq.append(nxt)
                step_ids = [nxt]
            # the cached decode gives the logits of a recompute of the whole prefix
            full, _ = r(seq[:-1], r.empty_past(), 0)
            cache_err = rel_l2(np.stack(rows), full[0, PROMPT_LEN - 1:])
            return logits, seq[PROMPT_LEN:], r.provider, errors, cache_err
        except Exception as e:  # noqa: BLE001
            errors.append(f"{providers[0]}: {type(e).__name__}: {str(e)[:2000]}")
            log(f"  onnxruntime with {providers[0]} failed: {errors[-1]}")
    raise RuntimeError("; ".join(errors))


def cuda_check(path, cpu_logits):
    """The same logits on the CUDA EP, where there is one (a cross-check, not the reference)."""
    import onnxruntime as ort
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "no CUDAExecutionProvider"
    try:
        r = OrtRunner(path, ["CUDAExecutionProvider"])
        lg, _ = r(IDS, r.empty_past(), 0)
        res = {"provider": r.provider, "rel_l2_cuda_vs_cpu": rel_l2(lg, cpu_logits),
               "argmax_agreement": float((lg.argmax(-1) == cpu_logits.argmax(-1)).mean())}
    except Exception as e:  # noqa: BLE001
        res = f"{type(e).__name__}: {str(e)[:1000]}"
    log(f"  CUDA EP cross-check: {res}")
    return res


# ----------------------------------------------------------------------------- steps

def build_graph(builder, hf_dir, out_dir, cache, precision, ep, extra, args):
    cmd = [sys.executable, builder, "-i", hf_dir, "-o", out_dir, "-p", precision, "-e", ep,
           "-c", cache]
    if extra:
        cmd += ["--extra_options", *extra]
    # as it would be typed from OUT, with the scratch folder called WORK
    shown = " ".join(["python3", "builder.py", *cmd[2:]]).replace(args.work, "WORK")
    shown = shown.replace(args.out + "/", "")
    log("  $ " + shown)
    t = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=240, cwd=os.path.dirname(out_dir))
    tail = "\n".join(r.stdout.splitlines()[-25:])
    log("  " + tail.replace("\n", "\n  "))
    if r.returncode != 0:
        raise RuntimeError(f"builder exited {r.returncode}:\n{tail}")
    for f in os.listdir(out_dir):  # drop the tokenizer copies and anything else
        if f not in KEEP:
            p = os.path.join(out_dir, f)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    return shown, round(time.time() - t, 1)


def genai_steps(args, builder, genai_version):
    import torch
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    hf = {}
    for name in MODELS:
        @step(f"checkpoint {name}")
        def _():
            d = os.path.join(args.out, "hf", name)
            model = make_checkpoint(name, d, SEEDS[name])
            logits, greedy, margin = hf_logits_and_greedy(model, IDS, IDS[:PROMPT_LEN], NEW_TOKENS)
            hf[name] = dict(dir=d, logits=logits, greedy=greedy, margin=margin)
            top2 = np.sort(logits[0], -1)[:, -2:]
            ids_margin = float((top2[:, 1] - top2[:, 0]).min())
            log(f"  {name}: logits std {logits.std():.3f}, HF greedy {greedy}, min top-2 margin "
                f"{margin:.4f} (greedy steps), {ids_margin:.4f} (rows of IDS)")
            MANIFEST["checkpoints"][name] = {
                "dir": f"hf/{name}", "seed": SEEDS[name], "hf_greedy": greedy,
                "hf_greedy_min_top2_margin": margin, "ids_min_top2_margin": ids_margin,
                "logits_std": float(logits.std()), "files": sorted(os.listdir(d))}

        for suffix, precision, ep, extra in BUILDS:
            gname = f"{name}-{suffix}"

            @step(f"build {gname}")
            def _():
                if name not in hf:
                    raise RuntimeError(f"no checkpoint {name}")
                out = os.path.join(args.out, "genai", gname)
                os.makedirs(out, exist_ok=True)
                cache = os.path.join(args.work, "cache", gname)
                cmd, secs = build_graph(builder, hf[name]["dir"], out, cache, precision, ep, extra,
                                        args)
                shutil.copy(os.path.join(hf[name]["dir"], "config.json"), out)
                entry = MANIFEST["graphs"].setdefault(gname, {})
                entry.update(dir=f"genai/{gname}", builder_command=cmd, build_seconds=secs,
                             precision=precision, execution_provider=ep,
                             graph=graph_facts(os.path.join(out, "model.onnx")))
                ops = entry["graph"]["ops"]
                log(f"  ops: {ops}")
                for op, a in entry["graph"]["custom_op_attributes"].items():
                    log(f"  {op}: {a}")

            @step(f"reference {gname}")
            def _():
                out = os.path.join(args.out, "genai", gname)
                entry = MANIFEST["graphs"].get(gname)
                if entry is None or "graph" not in entry:
                    raise RuntimeError(f"no graph {gname}")
                logits, greedy, provider, errs, cache_err = ort_references(
                    os.path.join(out, "model.onnx"), cuda_fallback=True)
                np.save(os.path.join(out, "ort_logits.npy"), logits)
                write_json(os.path.join(out, "ort_greedy.json"), greedy)
                ref = hf[name]["logits"]
                sanity = {
                    "ort_provider": provider,
                    "ort_provider_errors": errs,
                    "ort_logits_shape": list(logits.shape),
                    "rel_l2_ort_vs_hf_fp32": rel_l2(logits, ref),
                    "max_abs_ort_vs_hf_fp32": float(np.abs(logits - ref).max()),
                    "argmax_agreement_vs_hf": float((logits.argmax(-1) == ref.argmax(-1)).mean()),
                    "ort_greedy": greedy,
                    "hf_greedy": hf[name]["greedy"],
                    "greedy_matches_hf": greedy == hf[name]["greedy"],
                    # the greedy steps' logits (KV cache) vs. one pass over the same ids
                    "rel_l2_cached_decode_vs_recompute": cache_err,
                }
                if precision == "fp32":
                    np.save(os.path.join(out, "hf_logits.npy"), ref)
                if precision == "fp16" and provider == "CPUExecutionProvider":
                    sanity["cuda_ep_check"] = cuda_check(os.path.join(out, "model.onnx"), logits)
                entry["sanity"] = sanity
                log(f"  {gname}: provider {provider}, rel L2 ORT vs HF fp32 "
                    f"{sanity['rel_l2_ort_vs_hf_fp32']:.3e}, argmax agreement "
                    f"{sanity['argmax_agreement_vs_hf']:.3f}, cached vs recompute "
                    f"{cache_err:.3e}, ORT greedy {greedy} "
                    f"(HF {hf[name]['greedy']})")
                io = {"model": name, "graph_dir": gname, "made_by": "onnxruntime-genai model builder "
                      + genai_version, "builder_command": entry["builder_command"],
                      "input_ids": IDS, "prompt": IDS[:PROMPT_LEN], "ort_greedy": greedy,
                      "hf_greedy": hf[name]["greedy"],
                      "hf_greedy_min_top2_margin": hf[name]["margin"],
                      "attention_mask": "all ones", "past_key_values": "empty (length 0)",
                      "sanity": sanity, "graph": entry["graph"]}
                write_json(os.path.join(out, "io.json"), io)


def load_weights_from_onnx(model, onnx_path):
    """Copy a dynamo export's initializers into `model`, by name or by the MatMul's name scope."""
    import onnx
    import torch
    from onnx import numpy_helper
    m = onnx.load(onnx_path)  # with external data
    inits = {t.name: t for t in m.graph.initializer}
    params = dict(model.named_parameters())  # tied weights appear once, by their first name
    canonical = {}  # every name (lm_head.weight when tied, too) -> the name in params
    by_id = {id(p): n for n, p in params.items()}
    for n, p in model.named_parameters(remove_duplicate=False):
        canonical[n] = by_id[id(p)]
    loaded = {}

    def strip(n):
        for prefix in ("m.", "model.m.", ""):  # "m.": the NoCache wrapper of examples/export
            if n.startswith(prefix) and n[len(prefix):] in canonical:
                return canonical[n[len(prefix):]]
        return n

    for n, t in inits.items():
        pn = strip(n)
        if pn in params and tuple(t.dims) == tuple(params[pn].shape):
            loaded[pn] = (numpy_helper.to_array(t), n)
    for node in m.graph.node:  # Linear layers: a MatMul by W^T, named by its module scope
        if node.op_type != "MatMul":
            continue
        w = [i for i in node.input if i in inits]
        scopes = {p.key: p.value for p in node.metadata_props}.get("pkg.torch.onnx.name_scopes")
        if len(w) != 1 or not scopes:
            continue
        scope = [s for s in eval(scopes) if s]  # a Python list literal of module paths
        mod = scope[-2] if len(scope) >= 2 else ""
        pn = strip(mod + ".weight")
        arr = numpy_helper.to_array(inits[w[0]])
        if pn in params and pn not in loaded and tuple(arr.T.shape) == tuple(params[pn].shape):
            loaded[pn] = (np.ascontiguousarray(arr.T), w[0])
    missing = sorted(set(params) - set(loaded))
    if missing:
        raise RuntimeError(f"parameters not found in {onnx_path}: {missing}")
    with torch.no_grad():
        for pn, (arr, _) in loaded.items():
            params[pn].copy_(torch.from_numpy(arr.copy()))
    return {pn: src for pn, (_, src) in loaded.items()}


def opset23_step(args):
    import torch
    from transformers import AutoConfig, LlamaForCausalLM
    src = args.tiny_src
    out = os.path.join(args.out, "opset23")
    os.makedirs(out, exist_ok=True)
    io = json.load(open(os.path.join(src, "io.json")))
    ref = np.load(os.path.join(src, "ref_logits.npy"))
    cfg = AutoConfig.from_pretrained(src)
    entry = MANIFEST["opset23"]
    entry["attn_implementation_requested"] = args.attn
    model = LlamaForCausalLM._from_config(cfg, attn_implementation=args.attn).float().eval()
    entry["attn_implementation"] = model.config._attn_implementation
    sources = load_weights_from_onnx(model, os.path.join(src, "model.onnx"))
    tied = model.lm_head.weight is model.model.embed_tokens.weight
    entry["weights_loaded"] = len(sources)
    entry["lm_head_tied_to_embed_tokens"] = bool(tied)
    log(f"  loaded {len(sources)} parameters (lm_head tied: {tied}): "
        + ", ".join(f"{k}<-{v}" for k, v in sorted(sources.items())[:6]) + ", ...")
    ids = torch.tensor([io["input_ids"]])
    with torch.no_grad():
        hf = model(ids, use_cache=False).logits.float().numpy()
    entry["rel_l2_hf_vs_ref_logits"] = rel_l2(hf, ref)
    log(f"  HF fp32 logits vs ref_logits.npy: rel L2 {entry['rel_l2_hf_vs_ref_logits']:.3e}")

    class NoCache(torch.nn.Module):  # as examples/export/export_llama.py wraps the model
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):
            mask = torch.ones_like(input_ids)
            return self.m(input_ids=input_ids, attention_mask=mask, use_cache=False).logits

    # batch 2 in the example input, so that neither dimension is specialized to 1
    example = torch.tensor([io["input_ids"], io["input_ids"][::-1]])
    A = torch.export.Dim.AUTO
    path = os.path.join(out, "model.onnx")
    cmd = ("torch.onnx.export(NoCache(model), (input_ids[2, 11],), 'model.onnx', dynamo=True, "
           "opset_version=23, input_names=['input_ids'], output_names=['logits'], "
           "dynamic_shapes=({0: Dim.AUTO, 1: Dim.AUTO},), external_data=True)")
    entry["export_call"] = cmd
    try:
        torch.onnx.export(NoCache(model).eval(), (example,), path, dynamo=True, opset_version=23,
                          input_names=["input_ids"], output_names=["logits"],
                          dynamic_shapes=({0: A, 1: A},), external_data=True)
    except Exception as e:
        entry["export_error"] = f"{type(e).__name__}: {e}"
        raise
    for f in os.listdir(out):
        if f not in ("model.onnx", "model.onnx.data"):
            os.remove(os.path.join(out, f))
    facts = graph_facts(path)
    entry["graph"] = facts
    special = {k: v for k, v in facts["ops"].items()
               if k.split("::")[1] in ("Attention", "RMSNormalization", "RotaryEmbedding")}
    entry["onnx_23_ops_present"] = special
    log(f"  opset {facts['opset_import']}, ops {facts['ops']}")
    log(f"  Attention/RMSNormalization/RotaryEmbedding: {special or 'none'}")
    for f in ("config.json", "ref_logits.npy"):
        shutil.copy(os.path.join(src, f), out)

    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    lg = sess.run(None, {"input_ids": np.array([io["input_ids"]], np.int64)})[0].astype(np.float32)
    np.save(os.path.join(out, "ort_logits.npy"), lg)
    entry["rel_l2_ort_vs_ref_logits"] = rel_l2(lg, ref)
    # the graph's own greedy continuation, recomputing the whole prefix each step
    seq = list(io["prompt"])
    for _ in range(len(io["greedy_continuation"])):
        last = sess.run(None, {"input_ids": np.array([seq], np.int64)})[0][0, -1]
        seq.append(int(last.argmax()))
    greedy = seq[len(io["prompt"]):]
    entry["ort_greedy_matches_io_json"] = greedy == io["greedy_continuation"]
    entry["ort_greedy"] = greedy
    log(f"  onnxruntime CPU logits vs ref_logits.npy: rel L2 {entry['rel_l2_ort_vs_ref_logits']:.3e}"
        f"; greedy matches io.json: {entry['ort_greedy_matches_io_json']}")
    try:  # batch 2 (the export's example input): row 0 is io.json's ids
        b2 = sess.run(None, {"input_ids": example.numpy()})[0]
        entry["ort_batch2_row0_rel_l2_vs_batch1"] = rel_l2(b2[:1], lg)
    except Exception as e:  # noqa: BLE001
        entry["ort_batch2_error"] = f"{type(e).__name__}: {e}"
    log(f"  onnxruntime batch 2: {entry.get('ort_batch2_row0_rel_l2_vs_batch1', entry.get('ort_batch2_error'))}")
    new_io = dict(io)
    new_io.update(variant="nocache_dynamo_opset23", exporter="dynamo", opset=23,
                  torch=torch.__version__, transformers=MANIFEST["versions"]["transformers"],
                  attn_implementation=entry["attn_implementation"],
                  ort_rel_err=entry["rel_l2_ort_vs_ref_logits"],
                  hf_rel_err_vs_ref=entry["rel_l2_hf_vs_ref_logits"],
                  export_call=cmd,
                  weights_from="examples/llama32_tiny/nocache_dynamo/model.onnx(.data)",
                  graph={"opset": [[d, v] for d, v in facts["opset_import"].items()],
                         "ops": {k.split("::")[1] if k.startswith("ai.onnx::") else k: v
                                 for k, v in facts["ops"].items()},
                         "functions": facts["functions"],
                         "inputs": [i["name"] for i in facts["inputs"]],
                         "outputs": [o["name"] for o in facts["outputs"]]})
    write_json(os.path.join(out, "io.json"), new_io)


# ----------------------------------------------------------------------------- README

def sizes(root):
    rows = []
    for dp, _, fs in sorted(os.walk(root)):
        for f in sorted(fs):
            p = os.path.join(dp, f)
            rows.append((os.path.relpath(p, root), os.path.getsize(p)))
    return rows


def write_readme(args):
    v = MANIFEST["versions"]
    L = ["# Importer fixtures: onnxruntime-genai model builder graphs and an opset-23 export", "",
         "Made by `scripts/gpu/make_importer_fixtures.py` on the GPU host "
         f"({v.get('cuda')}), {time.strftime('%Y-%m-%d')}.", "",
         "In the repository, `genai/<graph>/` is `test/Import/Inputs/genai/<graph>/` (with this "
         "README and manifest.json beside them) and `opset23/` is "
         "`examples/llama32_tiny/nocache_dynamo_opset23/`; the checkpoints under `hf/` are not "
         "kept (the script makes them again, bit for bit).", "",
         "## Versions", ""]
    for k in ("python", "torch", "transformers", "tokenizers", "onnx", "onnxruntime", "onnx_ir",
              "onnxscript", "numpy"):
        L.append(f"- {k}: {v.get(k)}")
    L.append(f"- onnxruntime-genai (model builder, run as a script from the unpacked wheel): "
             f"{MANIFEST.get('genai_version')} (commit {MANIFEST.get('genai_commit')})")
    L += ["", "## Inputs", "",
          f"- `input_ids` = {IDS} (batch 1), `attention_mask` all ones, every "
          "`past_key_values.*` empty (sequence length 0, BNSH, the graph's dtype) -> "
          "`ort_logits.npy` float32 [1, 11, 512] (onnxruntime).",
          f"- greedy: prompt = the first {PROMPT_LEN} ids, {NEW_TOKENS} new tokens, feeding the "
          "graph's `present.*` back as `past_key_values.*` and growing the mask -> "
          "`ort_greedy.json`.",
          "- `hf_logits.npy` (fp32 graphs): transformers' fp32 logits of the same ids.", "",
          "## Checkpoints", "",
          "Random `LlamaForCausalLM`s (seeded; RMSNorm weights 1 + 0.1 N(0,1), embeddings and "
          "lm_head 0.4 N(0,1), other matrices N(0, 1/fan_in)), saved with `save_pretrained` "
          "(safetensors) with a WordLevel tokenizer (`<unk>`, `<s>`, `</s>`, `t3`..`t511`).", ""]
    for name, spec in MODELS.items():
        c = MANIFEST["checkpoints"].get(name, {})
        L.append(f"- `{name}` (seed {SEEDS[name]}): {json.dumps(spec)}; HF greedy "
                 f"{c.get('hf_greedy')}, min top-2 margins {c.get('hf_greedy_min_top2_margin')} "
                 f"(greedy steps), {c.get('ids_min_top2_margin')} (rows of input_ids)")
    L += ["", "## Builder graphs", ""]
    L.append("| graph | builder command | ORT EP | rel L2 vs HF fp32 | argmax agree | ORT greedy | "
             "= HF greedy |")
    L.append("| --- | --- | --- | --- | --- | --- | --- |")
    for g, e in MANIFEST["graphs"].items():
        s = e.get("sanity", {})
        r = s.get("rel_l2_ort_vs_hf_fp32")
        L.append(f"| {g} | `{e.get('builder_command', '-')}` | {s.get('ort_provider', '-')} | "
                 f"{'-' if r is None else f'{r:.3e}'} | {s.get('argmax_agreement_vs_hf', '-')} | "
                 f"{s.get('ort_greedy', '-')} | {s.get('greedy_matches_hf', '-')} |")
    L += ["", "### Op histograms", ""]
    for g, e in MANIFEST["graphs"].items():
        if "graph" not in e:
            continue
        L.append(f"- **{g}** (opsets {e['graph']['opset_import']}): "
                 + ", ".join(f"{k} {n}" for k, n in e["graph"]["ops"].items()))
        for op, a in e["graph"]["custom_op_attributes"].items():
            L.append(f"  - {op} attributes: {json.dumps(a)}")
    first = next((e for e in MANIFEST["graphs"].values() if "graph" in e), None)
    if first:
        L += ["", f"### Inputs and outputs ({first['dir']})", "", "```"]
        for kind in ("inputs", "outputs"):
            for i in first["graph"][kind]:
                L.append(f"{kind[:-1]:6} {i['name']:28} {i['dtype']:8} {i['shape']}")
        L.append("```")
    o = MANIFEST["opset23"]
    L += ["", "## opset23", "",
          "examples/llama32_tiny/nocache_dynamo's weights (read back from its initializers into "
          "`LlamaForCausalLM(config.json)`), exported again:", "",
          f"    {o.get('export_call')}", "",
          f"- attention implementation: {o.get('attn_implementation')}",
          f"- parameters loaded: {o.get('weights_loaded')}, lm_head tied: "
          f"{o.get('lm_head_tied_to_embed_tokens')}",
          f"- HF fp32 logits vs ref_logits.npy: rel L2 {o.get('rel_l2_hf_vs_ref_logits')}",
          f"- onnxruntime CPU logits vs ref_logits.npy: rel L2 {o.get('rel_l2_ort_vs_ref_logits')}",
          f"- onnxruntime greedy (recomputing the prefix) matches io.json's "
          f"greedy_continuation: {o.get('ort_greedy_matches_io_json')}",
          f"- onnxruntime on the batch-2 example input: "
          f"{o.get('ort_batch2_error') or o.get('ort_batch2_row0_rel_l2_vs_batch1')}",
          f"- ONNX Attention / RMSNormalization / RotaryEmbedding: "
          f"{o.get('onnx_23_ops_present') or 'none'}",
          f"- ops: {o.get('graph', {}).get('ops')}"]
    if "export_error" in o:
        L.append(f"- export error: `{o['export_error']}`")
    L += ["", "## Steps", ""]
    L += [f"- {k}: {v}" for k, v in MANIFEST["steps"].items()]
    L += ["", "## Files", "", "| file | bytes |", "| --- | --- |"]
    L += [f"| {p} | {n} |" for p, n in sizes(args.out) if not p.startswith("README")]
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write("\n".join(L) + "\n")


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (made; emptied first)")
    ap.add_argument("--work", default=None, help="scratch folder (default: OUT + '_work')")
    ap.add_argument("--genai-src", default=os.path.join(REPO, ".fixture-wheels", "src"),
                    help="folder holding an unpacked onnxruntime_genai package")
    ap.add_argument("--genai-wheel", default=os.path.join(REPO, ".fixture-wheels"),
                    help="folder with an onnxruntime_genai wheel, used if --genai-src has none")
    ap.add_argument("--tiny-src", default=os.path.join(REPO, "examples", "llama32_tiny",
                                                       "nocache_dynamo"))
    ap.add_argument("--attn", default="sdpa", help="attention implementation of the opset-23 "
                    "export (transformers' default is sdpa)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["genai", "opset23"])
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)
    args.work = os.path.abspath(args.work or args.out + "_work")
    for d in (args.out, args.work):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    t0 = time.time()
    MANIFEST.update(versions=versions(), ids=IDS, prompt_len=PROMPT_LEN, new_tokens=NEW_TOKENS,
                    checkpoints={}, graphs={}, opset23={})
    log(json.dumps(MANIFEST["versions"], indent=1))
    try:
        builder, gv, gc = find_builder(args)
        MANIFEST.update(genai_version=gv, genai_commit=gc, builder=os.path.relpath(builder, REPO))
        log(f"builder: {builder} (onnxruntime-genai {gv}, commit {gc})")
    except Exception as e:  # noqa: BLE001
        log(traceback.format_exc())
        MANIFEST["errors"]["find builder"] = f"{type(e).__name__}: {e}"
        builder, gv = None, None
    if "genai" not in args.skip and builder:
        genai_steps(args, builder, gv)
    if "opset23" not in args.skip:
        step("opset23 export")(lambda: opset23_step(args))
    MANIFEST["seconds"] = round(time.time() - t0, 1)
    write_json(os.path.join(args.out, "manifest.json"), MANIFEST)
    write_readme(args)
    log("\n===== summary =====")
    for k, v in MANIFEST["steps"].items():
        log(f"{k}: {v}")
    total = sum(n for _, n in sizes(args.out))
    log(f"{total} bytes in {args.out}; {MANIFEST['seconds']}s")
    return 1 if MANIFEST["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
