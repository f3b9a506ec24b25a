#!/usr/bin/env python3
"""Generate malformed ONNX inputs for the error-path lit tests of Kiln's importer.

Usage::

    make_bad.py OUT KIND

Each KIND starts from the default tiny Llama of ``make_llama.py`` (imported as a
module; a few KiB) and breaks exactly one thing:

  truncated          the first half of a valid model's bytes.
  missing-external   model whose weights are external data in OUT.data, but that
                     file is not written.
  short-external     external data file shorter than the last tensors'
                     offset + length (cut to half its size).
  external-outside   a tensor's external-data location is ``../<basename(OUT)>.data``,
                     escaping the model's directory.  The file *is* written there
                     (with the right bytes), so only a path check can reject it.
  size-mismatch      inline initializer ``model.norm.weight`` whose raw_data holds one
                     element fewer than its dims say.
  bad-opset          default-domain opset_import version 6.
  bad-dtype          q_proj weight of layer 0 stored as DOUBLE, consumed by a MatMul.
  bad-dtype-complex  the same weight as COMPLEX64.
  bad-dtype-float8   the same weight as FLOAT8E4M3FN (raw bytes), a type the
                     loader cannot even size.
  unknown-op         an extra node of made-up op type ``FancyNorm`` (default domain)
                     on layer 0's residual path, so the decoder cannot be raised.
  unknown-op-in-norm layer 0's input RMSNorm computes its reciprocal square root with a
                     made-up op type ``FancyRsqrt``: the Mul that consumes it cannot be
                     raised, and the error names the unknown op.
  not-onnx           a few lines of random text.
  external-bad-key   external data whose 'offset' key is damaged to 'ofset' (read from 0
                     otherwise: a wrong model).
  external-checksum  external data with a wrong SHA-1 'checksum' key on one tensor.
  external-checksum-ok  the same with the right checksum (imports).
  external-symlink   the data file is a symbolic link to a file outside the model's
                     directory (its location itself is a plain relative name).
  nan-guard-fill     torch's softmax NaN guard Where(IsNaN(p), c, p) with c = 1, not 0:
                     it changes rows the mask leaves alone, so it is no guard.
  kt-flatten-swap    K^T flattened to rank 3, but unflattened to [B, H, T, D]
                     (no transpose in effect): the scores are not Q.K^T.
  hostile-shape-ops  a valid model plus dead shape arithmetic with out-of-range axes and
                     values (Gather axis 7, Flatten axis 9, GatherND batch_dims -5, Range
                     of empty tensors, ConstantOfShape of -3, INT64_MIN / -1, an
                     overflowing Mul): the symbolic shape inference must neither read
                     out of bounds nor overflow (a fuzzer found the Gather).
  short-node         layer 0's norm eps Add with one input (the fuzzer found the raiser
                     reading the missing second one).
"""

import os
import sys

import numpy as np
import onnx
from onnx import external_data_helper, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_llama  # noqa: E402

KINDS = ["truncated", "missing-external", "short-external", "external-outside",
         "size-mismatch", "bad-opset", "bad-dtype", "bad-dtype-complex", "bad-dtype-float8",
         "unknown-op", "unknown-op-in-norm",
         "not-onnx", "nan-guard-fill", "kt-flatten-swap", "external-bad-key",
         "external-checksum", "external-checksum-ok", "external-symlink", "hostile-shape-ops",
         "short-node"]


def default_model():
    return make_llama.build_model(make_llama.Config())


def initializer(model, name):
    for t in model.graph.initializer:
        if t.name == name:
            return t
    raise KeyError(name)


def make(out, kind):
    data = out + ".data"
    if kind == "truncated":
        raw = default_model().SerializeToString()
        with open(out, "wb") as f:
            f.write(raw[:len(raw) // 2])
    elif kind in ("missing-external", "short-external"):
        make_llama.save_model(default_model(), out, external_data="weights")
        if kind == "missing-external":
            os.remove(data)
        else:
            with open(data, "r+b") as f:
                f.truncate(os.path.getsize(data) // 2)
    elif kind == "external-outside":
        model = default_model()
        t = initializer(model, "model.embed_tokens.weight")
        raw = t.raw_data
        location = "../" + os.path.basename(out) + ".data"
        external_data_helper.set_external_data(t, location, offset=0, length=len(raw))
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        with open(os.path.join(os.path.dirname(os.path.abspath(out)), location), "wb") as f:
            f.write(raw)
        onnx.save_model(model, out)
    elif kind == "size-mismatch":
        model = default_model()
        t = initializer(model, "model.norm.weight")
        t.raw_data = t.raw_data[:-np.dtype(np.float32).itemsize]
        onnx.save_model(model, out)
    elif kind == "bad-opset":
        model = default_model()
        del model.opset_import[:]
        model.opset_import.append(helper.make_opsetid("", 6))
        onnx.save_model(model, out)
    elif kind in ("bad-dtype", "bad-dtype-complex"):
        model = default_model()
        name = "model.layers.0.self_attn.q_proj.weight_t"
        t = initializer(model, name)
        arr = numpy_helper.to_array(t).astype(
            np.float64 if kind == "bad-dtype" else np.complex64)
        t.CopyFrom(numpy_helper.from_array(arr, name))
        onnx.save_model(model, out)
    elif kind == "bad-dtype-float8":
        model = default_model()
        name = "model.layers.0.self_attn.q_proj.weight_t"
        t = initializer(model, name)
        dims = list(t.dims)
        t.CopyFrom(helper.make_tensor(name, onnx.TensorProto.FLOAT8E4M3FN, dims,
                                      bytes(int(np.prod(dims))), raw=True))
        onnx.save_model(model, out)
    elif kind == "unknown-op":
        model = default_model()
        nodes = model.graph.node
        target = "l0_residual_attn"
        idx = next(i for i, n in enumerate(nodes) if n.output[0] == target)
        nodes[idx].output[0] = target + "_pre"
        nodes.insert(idx + 1, helper.make_node("FancyNorm", [target + "_pre"], [target],
                                               name="n_fancy_norm"))
        onnx.save_model(model, out)
    elif kind == "unknown-op-in-norm":
        model = default_model()
        node = next(n for n in model.graph.node if n.name == "n_l0_input_norm_rsqrt")
        node.op_type = "FancyRsqrt"
        onnx.save_model(model, out)
    elif kind in ("external-bad-key", "external-checksum", "external-checksum-ok"):
        import hashlib
        make_llama.save_model(default_model(), out, external_data="weights")
        model = onnx.load(out, load_external_data=False)
        t = next(t for t in model.graph.initializer
                 if t.data_location == onnx.TensorProto.EXTERNAL and
                 any(e.key == "offset" and e.value != "0" for e in t.external_data))
        if kind == "external-bad-key":
            next(e for e in t.external_data if e.key == "offset").key = "ofset"
        else:
            info = {e.key: e.value for e in t.external_data}
            with open(data, "rb") as f:
                f.seek(int(info.get("offset", 0)))
                digest = hashlib.sha1(f.read(int(info["length"]))).hexdigest()
            if kind == "external-checksum":
                digest = digest[::-1]
            entry = t.external_data.add()
            entry.key, entry.value = "checksum", digest
        onnx.save_model(model, out)
    elif kind == "external-symlink":
        here = os.path.dirname(os.path.abspath(out))
        elsewhere = os.path.join(os.path.dirname(here), "elsewhere")
        os.makedirs(elsewhere, exist_ok=True)
        make_llama.save_model(default_model(), out, external_data="weights")
        target = os.path.join(elsewhere, os.path.basename(data))
        os.replace(data, target)
        os.symlink(target, data)
    elif kind == "nan-guard-fill":
        model = make_llama.build_model(make_llama.Config(softmax_guard=True))
        where = next(n for n in model.graph.node if n.output[0].endswith("_probs_guarded"))
        zero = initializer(model, where.input[1])
        zero.CopyFrom(numpy_helper.from_array(np.array(1.0, np.float32), zero.name))
        onnx.save_model(model, out)
    elif kind == "kt-flatten-swap":
        model = make_llama.build_model(make_llama.Config(kt_style="flatten"))
        cat = next(n for n in model.graph.node if n.output[0] == "l0_kT_shape")
        cat.input[1], cat.input[2] = cat.input[2], cat.input[1]
        onnx.save_model(model, out)
    elif kind == "short-node":
        model = default_model()
        node = next(n for n in model.graph.node if n.name == "n_l0_input_norm_add_eps")
        del node.input[1]
        onnx.save_model(model, out)
    elif kind == "hostile-shape-ops":
        model = default_model()
        ids = model.graph.input[0].name
        i64 = lambda name, vals, dims=None: model.graph.initializer.append(
            numpy_helper.from_array(np.array(vals, np.int64).reshape(
                dims if dims is not None else [len(vals)]), name))
        i64("h_zero", [0], [])
        i64("h_empty", [], [0])
        i64("h_one", [1])
        i64("h_neg3", [-3])
        i64("h_min", [np.iinfo(np.int64).min])
        i64("h_minus1", [-1])
        i64("h_big", [1 << 62])
        i64("h_four", [4])
        i64("h_idx", [0], [1, 1])
        mk = helper.make_node
        model.graph.node.extend([
            mk("Shape", [ids], ["h_shape"], name="h_shape_node", start=-100, end=100),
            mk("Gather", ["h_shape", "h_zero"], ["h_g"], name="h_gather", axis=7),
            mk("Flatten", [ids], ["h_f"], name="h_flatten", axis=9),
            mk("GatherND", ["h_shape", "h_idx"], ["h_gnd"], name="h_gathernd", batch_dims=-5),
            mk("Range", ["h_empty", "h_empty", "h_one"], ["h_r"], name="h_range"),
            mk("ConstantOfShape", ["h_neg3"], ["h_c"], name="h_cos",
               value=numpy_helper.from_array(np.array([7], np.int64))),
            mk("Div", ["h_min", "h_minus1"], ["h_d"], name="h_div"),
            mk("Mul", ["h_big", "h_four"], ["h_m"], name="h_mul"),
            mk("Reshape", [ids, "h_m"], ["h_rs"], name="h_reshape"),
        ])
        onnx.save_model(model, out)
    elif kind == "not-onnx":
        rng = np.random.default_rng(0)
        words = ["".join(chr(c) for c in rng.integers(97, 123, rng.integers(2, 9)))
                 for _ in range(60)]
        with open(out, "w") as f:
            for i in range(0, len(words), 12):
                f.write(" ".join(words[i:i + 12]) + "\n")
    else:
        raise ValueError(kind)


def main(argv):
    if len(argv) != 3 or argv[2] not in KINDS:
        sys.stderr.write(__doc__)
        sys.stderr.write("\nKIND must be one of: " + ", ".join(KINDS) + "\n")
        return 2
    make(argv[1], argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
