#!/usr/bin/env python3
"""The transformers.js / Optimum-style variants of a plain export, made the way those projects
make them with onnxruntime's own Python tools, imported by Kiln and checked against
onnxruntime's run of the same file (issue 11):

  * fp16 with fp32 inputs/outputs and Casts at the edges
    (onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)):
    logits within 2e-2 relative L2, top-1 identical;
  * q4 (onnxruntime.quantization.matmul_nbits_quantizer, MatMulNBits, block 32, symmetric):
    within 1e-3, top-1 identical;
  * int8 dynamic quantization (quantize_dynamic: DynamicQuantizeLinear + MatMulInteger, and
    a uint8 embedding table behind DequantizeLinear, tied to the lm_head): within 1e-3, top-1
    identical, activations quantized per tensor at run time as onnxruntime does. The reference
    runs a copy of the file whose MatMulInteger nodes are int32 MatMuls of the zero-point-
    shifted operands (exact_matmul_integer): onnxruntime's own uint8 x int8 kernel adds pairs of
    products in saturating 16-bit lanes (vpmaddubsw) on x86 CPUs without VNNI, so it is not
    exact there (on an AVX2-only AMD EPYC it put the logits 1.2e-2 away from the exact ones).

The variants are made from the bundled fp32 export at test time (nothing large is stored).
Prints one `ok:` line per check, or FAIL and exits 1.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort

IDS = [5, 17, 3, 99, 42, 7, 1, 300, 12, 64, 8]


def run(cmd, expect_ok=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r


def exact_matmul_integer(path, out):
    """Writes `path` with every MatMulInteger(A, B[, a_zero, b_zero]) replaced by
    MatMul(int32(A) - int32(a_zero), int32(B) - int32(b_zero)): the operator's definition,
    computed exactly by onnxruntime on any CPU."""
    from onnx import TensorProto, helper
    m = onnx.load(path)
    nodes = []
    for n in m.graph.node:
        if n.op_type != "MatMulInteger":
            nodes.append(n)
            continue
        ins = list(n.input) + [""] * (4 - len(n.input))
        wide = []
        for k, (x, zero) in enumerate(((ins[0], ins[2]), (ins[1], ins[3]))):
            v = f"{n.output[0]}__exact{k}"
            nodes.append(helper.make_node("Cast", [x], [v], to=TensorProto.INT32))
            if zero:
                nodes.append(helper.make_node("Cast", [zero], [v + "_zero"], to=TensorProto.INT32))
                nodes.append(helper.make_node("Sub", [v, v + "_zero"], [v + "_shifted"]))
                v += "_shifted"
            wide.append(v)
        nodes.append(helper.make_node("MatMul", wide, [n.output[0]], name=n.name))
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    onnx.save(m, out)


def make(src, work):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    from onnxruntime.transformers.float16 import convert_float_to_float16
    paths = {}
    m = onnx.load(src)
    paths["fp16"] = os.path.join(work, "fp16.onnx")
    onnx.save(convert_float_to_float16(m, keep_io_types=True), paths["fp16"])
    q = MatMulNBitsQuantizer(onnx.load(src), block_size=32, is_symmetric=True)
    q.process()
    paths["q4"] = os.path.join(work, "q4.onnx")
    q.model.save_model_to_file(paths["q4"], use_external_data_format=False)
    paths["int8"] = os.path.join(work, "int8.onnx")
    quantize_dynamic(src, paths["int8"], weight_type=QuantType.QInt8)
    exact_matmul_integer(paths["int8"], os.path.join(work, "int8-reference.onnx"))
    return paths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", help="a bundled fp32 export's model.onnx")
    ap.add_argument("work", help="scratch directory")
    ap.add_argument("--target", default="cpu",
                    help="kiln-compile --target of the numerics runs (cpu, sm_90, ...)")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    import logging
    logging.disable(logging.INFO)
    paths = make(args.model, args.work)

    ok = True

    def check(cond, msg):
        nonlocal ok
        print(("ok: " if cond else "FAIL: ") + msg, flush=True)
        ok = ok and cond

    ids = np.array([IDS], dtype=np.int64)
    for name, tol in (("fp16", 2e-2), ("q4", 1e-3), ("int8", 1e-3)):
        reference = paths[name]
        if name == "int8":
            reference = os.path.join(args.work, "int8-reference.onnx")
        sess = ort.InferenceSession(reference, providers=["CPUExecutionProvider"])
        ref = sess.run(None, {sess.get_inputs()[0].name: ids})[0][0].astype(np.float64)
        kiln = os.path.join(args.work, name + ".kiln")
        run(["kiln-compile", paths[name], "--target", args.target, "--max-seq-len", "64",
             "--prefill-chunk", "16", "--quiet", "-o", kiln])
        dump = os.path.join(args.work, name + ".npy")
        run(["kiln-run", kiln, "--prompt-ids", ",".join(map(str, IDS)), "--max-new-tokens",
             "0", "--format", "ids", "--dump-logits", dump])
        got = np.load(dump).astype(np.float64)
        err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        check(got.shape == ref.shape and err <= tol,
              f"{name}: logits vs onnxruntime's run of the same file: rel L2 {err:.2e} <= {tol}")
        check(bool((got.argmax(-1) == ref.argmax(-1)).all()), f"{name}: top-1 identical")

    # quantize_dynamic's tensors: each DynamicQuantizeLinear becomes one tfm.dynamic_quantize
    # shared by the projections it feeds; the 8-bit embedding table (shared with the tied
    # lm_head) is dequantized once, at import.
    tfm = run(["kiln-compile", paths["int8"], "--emit=tfm"]).stdout
    m = onnx.load(paths["int8"], load_external_data=False)
    dql = sum(n.op_type == "DynamicQuantizeLinear" for n in m.graph.node)
    got_dq = tfm.count("tfm.dynamic_quantize %")
    check(got_dq == dql, f"int8: {got_dq} tfm.dynamic_quantize for {dql} DynamicQuantizeLinear")
    check("{tied}" in tfm and ".dequantized[" in tfm,
          "int8: the embedding is the dequantized 8-bit table, tied to the lm_head")
    # Each imported quantized form compiles for the GPU too (its kernels run in
    # scripts/gpu/check.sh): projections by imported dequantized weights stay unfused, and
    # the attention kernel takes their RoPE without any projection claiming it.
    for name in ("q4", "int8"):
        r = run(["kiln-compile", paths[name], "--target", "sm_90", "--max-seq-len", "64",
                 "--prefill-chunk", "16", "--emit=ptx", "-o",
                 os.path.join(args.work, name + ".ptx")], expect_ok=False)
        ptx = open(os.path.join(args.work, name + ".ptx")).read() if r.returncode == 0 else ""
        check(r.returncode == 0 and "attention_decode" in ptx and "gemv_q" in ptx,
              f"{name}: compiles for sm_90 (attention_decode and gemv_q kernels)"
              + ("" if r.returncode == 0 else f": {r.stderr.strip().splitlines()[-1]}"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
