#!/usr/bin/env python3
"""A small fp32 Llama (make_llama.py) whose projections are com.microsoft::MatMulNBits, as
onnxruntime-genai's model builder and transformers.js's q4 files write them, and a check
of Kiln against onnxruntime on that graph.

  make_matmulnbits.py OUT_DIR --bits 4 --block 32 [--zero-points none|uint8|float]
                      [--flat-scales] [--lm-head] [--bad KIND]
  make_matmulnbits.py OUT_DIR ... --compare   # also: onnxruntime vs kiln-compile + kiln-run
  make_matmulnbits.py OUT_DIR --form dql --qtype int4|uint4|int8|uint8 --block B [...]

Every MatMul by a 2-D weight initializer (q/k/v/o/gate/up/down, and the lm_head with
--lm-head) becomes MatMulNBits(A, B, scales[, zero_points]) with accuracy_level=1: per
output row, blocks of `block` input features, 4-bit codes two per byte (the first in the
low bits). Zero points: none (the implicit 2^(bits-1)), uint8 packed like B, or floats.
--compare runs onnxruntime (the reference for the contrib op's semantics) and Kiln's CPU
target on 11 random ids and prints the logits' relative L2 error; it fails above 1e-3.
onnxruntime's CPU kernel computes only 4-bit MatMulNBits at accuracy_level 1 ("Only 4b
quantization is supported for unpacked compute"); for 8 bits the reference is onnxruntime
on the same graph with each MatMulNBits replaced by a MatMul of its weights dequantized
here by the contrib op's definition ((q - zero_point) * scale per block).
--bad writes a graph Kiln must refuse: bits3, block24, gidx, scales-shape (MatMulNBits),
dql-axis1 (blocks along the output features).

--form dql writes ONNX's own form instead (opset 21): MatMul(A, DequantizeLinear(W_q [K, N],
scale [K / B, N], zero_point)) with block_size B along axis 0 (B = 0: one scale per output
column, axis 1); W_q of --qtype, zero points with --zero-points uint8 (then of W_q's type).
onnxruntime runs it natively and is the reference.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_llama  # noqa: E402


def quantize(w, bits, block, zp_mode, rng):
    """w: [N, K] float32 -> (B [N, blocks, blob] uint8, scales [N, blocks], zps or None)."""
    n, k = w.shape
    blocks = k // block
    levels = 1 << bits
    v = w.reshape(n, blocks, block).astype(np.float64)
    if zp_mode == "none":
        scale = np.abs(v).max(axis=-1) / (levels // 2 - 1)
        scale[scale == 0] = 1
        zp = np.full((n, blocks), levels // 2, np.int64)
    else:
        lo, hi = np.minimum(v.min(axis=-1), 0), np.maximum(v.max(axis=-1), 0)
        scale = (hi - lo) / (levels - 1)
        scale[scale == 0] = 1
        zp = np.clip(np.round(-lo / scale), 0, levels - 1).astype(np.int64)
    scale = scale.astype(np.float32)
    q = np.clip(np.round(v / scale[..., None]) + zp[..., None], 0, levels - 1).astype(np.uint8)
    if bits == 4:
        q = q.reshape(n, blocks, block // 2, 2)
        q = (q[..., 0] | (q[..., 1] << 4)).astype(np.uint8)
    packed = q.reshape(n, blocks, block * bits // 8)
    if zp_mode == "none":
        zps = None
    elif zp_mode == "float":
        zps = zp.astype(np.float32)
    else:
        per_row = (blocks * bits + 7) // 8
        if bits == 8:
            zps = zp.astype(np.uint8)
        else:
            padded = np.zeros((n, per_row * 2), np.int64)
            padded[:, :blocks] = zp
            zps = (padded[:, 0::2] | (padded[:, 1::2] << 4)).astype(np.uint8)
        zps = zps.reshape(n * per_row)
    return packed, scale, zps


QTYPES = {"int4": (onnx.TensorProto.INT4, -8, 7), "uint4": (onnx.TensorProto.UINT4, 0, 15),
          "int8": (onnx.TensorProto.INT8, -128, 127), "uint8": (onnx.TensorProto.UINT8, 0, 255)}


def dql_weight(g, wt, base, args):
    """DequantizeLinear initializers and node for wt [K, N]; returns its output name."""
    k, n = wt.shape
    dtype, lo, hi = QTYPES[args.qtype]
    block = args.block or k
    v = wt.reshape(k // block, block, n).astype(np.float64)
    if args.zero_points == "none":
        scale = np.abs(v).max(axis=1) / max(-lo, hi)
        zp = np.zeros_like(scale, dtype=np.int64) if lo < 0 else None
        if zp is None:  # unsigned without a zero point: codes from 0 (weights shifted)
            zp = np.zeros_like(scale, dtype=np.int64)
    else:
        mn, mx = np.minimum(v.min(axis=1), 0), np.maximum(v.max(axis=1), 0)
        scale = (mx - mn) / (hi - lo)
        zp = np.clip(np.round(lo - mn / np.where(scale == 0, 1, scale)), lo, hi).astype(np.int64)
    scale[scale == 0] = 1
    q = np.clip(np.round(v / scale[:, None, :]) + zp[:, None, :], lo, hi).astype(np.int64)
    q = q.reshape(k, n)
    scale = scale.astype(np.float32)
    def tensor(name, values, dims):
        return helper.make_tensor(name, dtype, dims, values.reshape(-1).tolist())
    inits = [tensor(base + "_q", q, [k, n])]
    if args.block:
        inits.append(numpy_helper.from_array(scale, base + "_scale"))
        attrs = dict(axis=1 if args.bad == "dql-axis1" else 0, block_size=args.block)
    else:
        inits.append(numpy_helper.from_array(scale.reshape(n), base + "_scale"))
        attrs = dict(axis=1)
    inputs = [base + "_q", base + "_scale"]
    if args.zero_points != "none":
        inits.append(tensor(base + "_zp", zp, list(inits[1].dims)))
        inputs.append(base + "_zp")
    g.initializer.extend(inits)
    node = helper.make_node("DequantizeLinear", inputs, [base + "_dq"], name=base + "_DQ",
                            **attrs)
    return node, base + "_dq"


def build(args):
    cfg = make_llama.Config(layers=2, hidden=128, heads=4, kv_heads=2, head_dim=32, ffn=256,
                            vocab=96, weights="in_out", untied=True, seed=3).validate()
    model = make_llama.build_model(cfg)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    rng = np.random.default_rng(7)
    nodes = []
    for node in g.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        is_lm = node.output[0] == "logits"
        if w is None or len(w.dims) != 2 or (is_lm and not args.lm_head):
            nodes.append(node)
            continue
        wt = numpy_helper.to_array(w)  # [K, N]
        k, n = wt.shape
        if args.form == "dql":
            dq, out = dql_weight(g, wt, node.input[1], args)
            nodes += [dq, helper.make_node("MatMul", [node.input[0], out], list(node.output),
                                           name=node.name)]
            continue
        bits, block = args.bits, args.block
        if args.bad == "bits3":
            bits = 3
        if args.bad == "block24":
            block = 24
        base = node.input[1]
        packed, scale, zps = quantize(np.ascontiguousarray(wt.T), args.bits,
                                      args.block, args.zero_points, rng)
        if args.bad == "scales-shape":
            scale = scale[:, :-1] if scale.shape[1] > 1 else scale[:-1]
        if args.flat_scales:
            scale = scale.reshape(-1)
        new = [numpy_helper.from_array(packed, base + "_Q"),
               numpy_helper.from_array(scale, base + "_scales")]
        inputs = [node.input[0], base + "_Q", base + "_scales"]
        if zps is not None:
            new.append(numpy_helper.from_array(zps, base + "_zp"))
            inputs.append(base + "_zp")
        if args.bad == "gidx":
            if zps is None:
                inputs.append("")
            new.append(numpy_helper.from_array(
                (np.arange(k) // args.block).astype(np.int32), base + "_gidx"))
            inputs.append(base + "_gidx")
        g.initializer.extend(new)
        nodes.append(helper.make_node("MatMulNBits", inputs, list(node.output),
                                      name=node.name + "_Q", domain="com.microsoft",
                                      K=k, N=n, bits=bits, block_size=block,
                                      accuracy_level=1))
    del g.node[:]
    g.node.extend(nodes)
    used = {i for nd in g.node for i in nd.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    if args.form == "dql":
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = 21
    else:
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model, cfg


def dequantized_graph(model):
    """The model with each MatMulNBits a MatMul of its dequantized weight ([K, N])."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes = []
    for node in g.node:
        if node.op_type != "MatMulNBits":
            nodes.append(node)
            continue
        at = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        n, k, bits, block = at["N"], at["K"], at["bits"], at["block_size"]
        blocks = k // block
        q = inits[node.input[1]].reshape(n, blocks, -1).astype(np.int64)
        if bits == 4:
            q = np.stack([q & 15, q >> 4], axis=-1).reshape(n, blocks, block)
        scale = inits[node.input[2]].reshape(n, blocks).astype(np.float64)
        if len(node.input) > 3 and node.input[3]:
            z = inits[node.input[3]]
            if z.dtype == np.uint8:
                z = z.reshape(n, -1).astype(np.int64)
                if bits == 4:
                    z = np.stack([z & 15, z >> 4], axis=-1).reshape(n, -1)
                z = z[:, :blocks]
            z = z.reshape(n, blocks).astype(np.float64)
        else:
            z = np.full((n, blocks), 1 << (bits - 1), np.float64)
        w = ((q - z[..., None]) * scale[..., None]).reshape(n, k)
        name = node.input[1] + "_dequantized"
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w.T).astype(np.float32),
                                                     name))
        nodes.append(helper.make_node("MatMul", [node.input[0], name], list(node.output),
                                      name=node.name + "_dq"))
    del g.node[:]
    g.node.extend(nodes)
    return model


def compare(path, cfg, work, bits):
    import onnxruntime as ort
    ids = np.random.default_rng(11).integers(0, cfg.vocab, (1, 11), dtype=np.int64)
    def ort_logits(src):
        # No graph optimizations: onnxruntime would fuse DequantizeLinear + MatMul into
        # its own MatMulNBits, which quantizes the activations to int8 (accuracy level 4).
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"]).run(
            None, {"input_ids": ids})[0][0].astype(np.float64)
    if bits == 0:  # DequantizeLinear: onnxruntime runs the graph itself
        want = ort_logits(path)
    elif bits == 4:
        dq = ort_logits(dequantized_graph(onnx.load(path)).SerializeToString())
        # The dequantization here is the contrib op's: checked where onnxruntime runs it.
        want = ort_logits(path)
        rel = np.linalg.norm(dq - want) / np.linalg.norm(want)
        print(f"{'ok' if rel <= 1e-5 else 'FAIL'}: onnxruntime's MatMulNBits vs MatMul of "
              f"the weights dequantized here: rel L2 {rel:.2e} <= 1e-5")
        if rel > 1e-5:
            return False
    else:
        want = ort_logits(dequantized_graph(onnx.load(path)).SerializeToString())
    kiln = os.path.join(work, "model.kiln")
    npy = os.path.join(work, "logits.npy")
    for cmd in (["kiln-compile", path, "--max-seq-len", "32", "--prefill-chunk", "16",
                 "--quiet", "-o", kiln],
                ["kiln-run", kiln, "--prompt-ids", ",".join(map(str, ids[0])),
                 "--max-new-tokens", "0", "--dump-logits", npy]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"FAIL: {' '.join(cmd)}:\n{r.stderr}")
    got = np.load(npy).astype(np.float64)
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    ok = got.shape == want.shape and rel <= 1e-3
    print(f"{'ok' if ok else 'FAIL'}: logits vs onnxruntime: rel L2 {rel:.2e} <= 1e-3")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output directory (model.onnx)")
    ap.add_argument("--bits", type=int, choices=[4, 8], default=4)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--zero-points", choices=["none", "uint8", "float"], default="none")
    ap.add_argument("--flat-scales", action="store_true")
    ap.add_argument("--lm-head", action="store_true")
    ap.add_argument("--bad", choices=["bits3", "block24", "gidx", "scales-shape", "dql-axis1"])
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--form", choices=["nbits", "dql"], default="nbits")
    ap.add_argument("--qtype", choices=sorted(QTYPES), default="int4")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    model, cfg = build(args)
    path = os.path.join(args.out, "model.onnx")
    onnx.save_model(model, path)
    op = "DequantizeLinear" if args.form == "dql" else "MatMulNBits"
    n = sum(nd.op_type == op for nd in model.graph.node)
    what = args.qtype if args.form == "dql" else f"bits {args.bits}"
    print(f"make_matmulnbits: {n} {op} nodes, {what}, block {args.block}, "
          f"zero points {args.zero_points}")
    if args.compare:
        return 0 if compare(path, cfg, args.out, 0 if args.form == "dql" else args.bits) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
