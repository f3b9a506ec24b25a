#!/usr/bin/env python3
"""Generate tiny Llama-style decoder ONNX models for Kiln's importer lit tests.

Kiln's importer raises the op patterns that PyTorch's two ONNX exporters emit for
a Llama decoder (``torch.onnx.export(dynamo=True)`` and the TorchScript exporter,
``dynamo=False``).  The real exports in ``/work/shared/fixtures`` are large and mix
every pattern at once; this script builds *small* models (a few KiB) in which
each pattern variant can be switched on or off separately, so that a lit test can
exercise exactly one of them.

Every model computes exactly what ``transformers.LlamaForCausalLM`` computes:
token embedding, per layer ``x + attn(rms(x))`` and ``x + mlp(rms(x))`` with
causal multi-head attention (grouped-query via ``repeat_kv``), rotate-half RoPE
and a SwiGLU MLP, then a final RMSNorm and the lm_head.  Weights are seeded random
numbers; everything the importer needs (dims, eps, theta via ``inv_freq``) is in
the graph, there is no side config.

Usage::

    make_llama.py OUT.onnx [options]          # write the model
    make_llama.py --check OUT.onnx [options]  # write it, then run onnxruntime on
                                              # random inputs and compare with the
                                              # numpy reference in this file

``--check`` prints ``max_abs_err=... rel_l2=...`` per output and exits 1 when the
relative L2 error exceeds 1e-5 (float32) or 2e-2 (float16).

Default model: 1 layer, hidden 16, 2 query heads, 1 KV head, head_dim 8, SwiGLU
24, vocab 32, eps 1e-5, theta 10000, tied embeddings, float32, opset 18,
``input_ids[batch, seq] (int64) -> logits[batch, seq, vocab]``.

Pattern options (all independent and combinable; defaults first):

  --rms {reciprocal,div}        Reciprocal(Sqrt(mean+eps)) (dynamo) or
                                Div(1, Sqrt(mean+eps)) (TorchScript).
  --rms-mul-order {weight_first,weight_last}
                                Mul(weight, x_normed) or Mul(x_normed, weight).
  --rms-casts                   wrap the norm body in Cast(to FLOAT) ... Cast(back to
                                the model dtype), as TorchScript and fp16 exports do.
                                In float32 the residual Add then reads the Cast
                                output, as the TorchScript fixture does.
  --scale {mul,div,sqrt_both}   Mul(scores, 1/sqrt(D)), Div(scores, sqrt(D)), or
                                Mul(q, D**-0.25) and Mul(k^T, D**-0.25) before MatMul.
  --mask {add,where,none}       Add(scores, float mask of 0 / dtype-min), or
                                Where(allowed, scores, -inf), or no mask at all
                                (bidirectional attention: equals HF only for seq 1).
  --mask-style {lessorequal,trilu,none}
                                causal part as LessOrEqual(kv_pos, q_pos) over Range
                                outputs (both exporters) or as Trilu of a
                                ConstantOfShape (with --mask add and no padding mask:
                                the classic Trilu(full(min), k=1+past, upper=1)).
                                none: no causal part, the padding mask alone
                                (bidirectional attention; needs a --pad-mask).
  --pad-mask {none,broadcast,flatten_gather,gathernd}
                                padding part of the mask, And-ed with the causal
                                part: Unsqueeze(mask,[1,2]) broadcast, the TorchScript
                                Flatten+Gather(batch*T+kv) trick, or the dynamo
                                Max/Expand/Concat+GatherND trick.  Without --cache
                                the padding mask is all ones, made from
                                Shape(input_ids) as both exporters do.  Default: none,
                                or broadcast with --cache.
  --shape-style {dynamo,torchscript}
                                dynamo: Shape(x, start, end) slices, shared constant
                                initializers, Reshape(allowzero=1), constant
                                rotate_half split.  torchscript: Shape->Gather->
                                Unsqueeze->Concat chains, Constant nodes,
                                Where(Equal(shape,-1),1,shape) guards in front of
                                Expand, rotate_half split from Shape/Div, RoPE cos/sin
                                scaled by 1.0 and Cast, Cast after Softmax, ir 8.
  --weights {in_out,out_in}     MatMul(x, W[K,N]) or MatMul(x, Transpose(W[N,K])).
  --bias                        q/k/v projections get Add(bias) (Qwen2 style).
  --untied                      separate lm_head weight (default: tied to embedding).
  --lm-head-transpose           lm_head as MatMul(h, Transpose(W[V,H])) (with tied
                                weights: the embedding table itself, dynamo style);
                                default a pre-transposed [H,V] initializer.
  --dtype {float32,float16}     fp16: weights/activations fp16, RoPE in fp32 then Cast.
  --external-data               every weight (however small) in OUT.onnx.data (ONNX
                                external data, one file); shape constants stay inline,
                                as in the real dynamo export.
  --external-data-all           onnx.save_model(save_as_external_data=True,
                                size_threshold=0): every initializer external, int64
                                axes/shape constants included (onnxruntime refuses to
                                load such a file directly with --shape-style dynamo).
  --cache                       Optimum KV-cache signature: inputs input_ids,
                                attention_mask[batch,total], position_ids[batch,seq],
                                past_key_values.{i}.key/value[batch,kv,past,D];
                                outputs logits, present.{i}.key/value.
  --cache-axis {-2,2}           Concat axis for present = Concat(past, new).

Fused-op options (newer op sets and onnxruntime's contrib ops, as opset-23 exports
and onnxruntime-genai's model builder write them; all dynamo shape style):

  --norm-op {decomposed,rmsnormalization,simplified,skip}
                                RMSNorm as the Pow/ReduceMean/Sqrt subgraph, as one
                                RMSNormalization (opset 23), as onnxruntime's
                                SimplifiedLayerNormalization, or as the builder writes
                                it: SimplifiedLayerNormalization for the first norm and
                                com.microsoft::SkipSimplifiedLayerNormalization (input,
                                skip, weight; output 3 the residual sum) for the rest.
  --attention-op {decomposed,onnx,gqa}
                                the attention subgraph, the ONNX Attention of opset 23
                                (4-D head-split Q/K/V; is_causal=1 without a cache, the
                                causal attn_mask and past_key/past_value inputs with
                                one), or com.microsoft::GroupQueryAttention (needs
                                --cache; 3-D projections, BNSH past/present, seqlens_k
                                and total_sequence_length from attention_mask).
  --rope-op {decomposed,onnx,ms}
                                RoPE as the rotate-half subgraph (with --attention-op
                                gqa: GroupQueryAttention's do_rotary=1 and cos/sin
                                tables), as the ONNX RotaryEmbedding of opset 23 on the
                                head-split Q and K (needs --attention-op onnx), or as
                                com.microsoft::RotaryEmbedding on the 3-D projections
                                (needs --attention-op gqa).  The tables are
                                [--max-pos, head_dim / 2] initializers, computed in
                                float32 as transformers does.
  --max-pos N                   rows of the cos/sin tables (default 64).

Size options: --layers --hidden --heads --kv-heads --head-dim --ffn --vocab --eps
--theta --seed.

The module is also importable: ``Config``, ``make_weights``, ``build_model``,
``save_model`` and ``reference`` are used by ``make_bad.py``.
"""

import argparse
import dataclasses
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, external_data_helper, helper, numpy_helper

OPSET = 18
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min

NP_DTYPE = {"float32": np.float32, "float16": np.float16}
ONNX_DTYPE = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}


@dataclasses.dataclass
class Config:
    layers: int = 1
    hidden: int = 16
    heads: int = 2
    kv_heads: int = 1
    head_dim: int = 8
    ffn: int = 24
    vocab: int = 32
    eps: float = 1e-5
    theta: float = 10000.0
    rms: str = "reciprocal"
    rms_mul_order: str = "weight_first"
    rms_casts: bool = False
    scale: str = "mul"
    mask: str = "add"
    mask_style: str = "lessorequal"
    pad_mask: str = None  # resolved by validate(): "none", or "broadcast" with cache
    shape_style: str = "dynamo"
    weights: str = "in_out"
    bias: bool = False
    untied: bool = False
    lm_head_transpose: bool = False
    dtype: str = "float32"
    external_data: str = None  # None, "weights" or "all"
    cache: bool = False
    cache_axis: int = -2
    kt_style: str = "transpose"
    softmax_guard: bool = False
    norm_op: str = "decomposed"
    attention_op: str = "decomposed"
    rope_op: str = "decomposed"
    max_pos: int = 64
    seed: int = 0
    tiled_weights: bool = False  # repeat a random block (huge shapes, fast)

    def validate(self):
        if self.heads % self.kv_heads:
            raise ValueError("--heads must be a multiple of --kv-heads")
        if self.head_dim % 2:
            raise ValueError("--head-dim must be even (rotate_half)")
        if self.pad_mask is None:
            self.pad_mask = "broadcast" if self.cache else "none"
        if self.mask_style == "none" and (self.mask == "none" or self.pad_mask == "none"):
            raise ValueError("--mask-style none needs --mask add or where and a --pad-mask")
        fused = (self.norm_op, self.attention_op, self.rope_op) != ("decomposed",) * 3
        if fused and self.ts:
            raise ValueError("the fused ops are written in the dynamo shape style")
        if self.attention_op == "gqa" and not self.cache:
            raise ValueError("--attention-op gqa needs --cache")
        if self.rope_op == "onnx" and self.attention_op != "onnx":
            raise ValueError("--rope-op onnx needs --attention-op onnx")
        if self.rope_op == "ms" and self.attention_op != "gqa":
            raise ValueError("--rope-op ms needs --attention-op gqa")
        return self

    @property
    def opset(self):
        return 23 if "onnx" in (self.attention_op, self.rope_op) or \
            self.norm_op == "rmsnormalization" else OPSET

    @property
    def contrib(self):
        return self.attention_op == "gqa" or self.norm_op == "skip"

    @property
    def np_dtype(self):
        return NP_DTYPE[self.dtype]

    @property
    def onnx_dtype(self):
        return ONNX_DTYPE[self.dtype]

    @property
    def ts(self):
        return self.shape_style == "torchscript"


# ----------------------------------------------------------------------------
# Weights (HF layout: Linear weights are [out, in]).


def inv_freq(cfg):
    """RoPE inverse frequencies, float32, as HF's default rope init computes them."""
    d = cfg.head_dim
    return (1.0 / (cfg.theta ** (np.arange(0, d, 2, dtype=np.int64).astype(np.float32) / d))).astype(
        np.float32)


def make_weights(cfg):
    """Seeded random weights in the model dtype, keyed by HF parameter names."""
    rng = np.random.default_rng(cfg.seed)
    dt = cfg.np_dtype
    H, A, K, D, F, V = cfg.hidden, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.ffn, cfg.vocab
    normal = rng.standard_normal
    if cfg.tiled_weights:
        # A 1M-value random block, rotated differently for each tensor and repeated:
        # multi-GB shapes in seconds, for compile-time, memory and speed measurements.
        block = rng.standard_normal(1 << 20).astype(np.float32)
        made = [0]

        def normal(shape, scale=1.0):
            # Scaled and cast on the block, so the big array is written once.
            made[0] += 1
            n = int(np.prod(shape))
            small = (np.roll(block, made[0] * 7919) * scale).astype(dt)
            return np.resize(small, n).reshape(shape)

    def lin(out, inp):
        if cfg.tiled_weights:
            # [out, in] as the transposed view of a contiguous [in, out]: the
            # exporter's [in, out] initializer is then that array, no transpose.
            return normal((inp, out), 1 / np.sqrt(inp)).T
        return (normal((out, inp)) / np.sqrt(inp)).astype(dt)

    def norm():
        return (1.0 + 0.1 * normal(H)).astype(dt)

    w = {"model.embed_tokens.weight": normal((V, H)).astype(dt)}
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm()
        w[p + "self_attn.q_proj.weight"] = lin(A * D, H)
        w[p + "self_attn.k_proj.weight"] = lin(K * D, H)
        w[p + "self_attn.v_proj.weight"] = lin(K * D, H)
        if cfg.bias:
            w[p + "self_attn.q_proj.bias"] = (0.1 * normal(A * D)).astype(dt)
            w[p + "self_attn.k_proj.bias"] = (0.1 * normal(K * D)).astype(dt)
            w[p + "self_attn.v_proj.bias"] = (0.1 * normal(K * D)).astype(dt)
        w[p + "self_attn.o_proj.weight"] = lin(H, A * D)
        w[p + "post_attention_layernorm.weight"] = norm()
        w[p + "mlp.gate_proj.weight"] = lin(F, H)
        w[p + "mlp.up_proj.weight"] = lin(F, H)
        w[p + "mlp.down_proj.weight"] = lin(H, F)
    w["model.norm.weight"] = norm()
    w["lm_head.weight"] = lin(V, H) if cfg.untied else w["model.embed_tokens.weight"]
    return w


# ----------------------------------------------------------------------------
# Graph construction.


class GraphBuilder:
    """Accumulates nodes and initializers; knows the two exporters' constant and
    shape idioms (``cfg.shape_style``)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.nodes = []
        self.initializers = []
        self._used = set()
        self._const_cache = {}

    def fresh(self, base):
        base = base.replace("/", "_")
        name, n = base, 0
        while name in self._used:
            n += 1
            name = f"{base}_{n}"
        self._used.add(name)
        return name

    def op(self, op_type, inputs, base=None, **attrs):
        out = self.fresh(base or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name="n_" + out, **attrs))
        return out

    def op_multi(self, op_type, inputs, outs, domain=None, **attrs):
        """Node with several outputs (None: a fresh name; "": absent); returns their names."""
        names = [self.fresh(op_type.lower()) if o is None else o for o in outs]
        self._used.update(n for n in names if n)
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name="n_" + names[0],
                                           domain=domain, **attrs))
        return names

    def op_to(self, op_type, inputs, out, **attrs):
        """Node with a fixed output name (graph outputs)."""
        self._used.add(out)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name="n_" + out, **attrs))
        return out

    def init(self, name, array):
        self._used.add(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def const(self, value, dtype=np.int64, base="const"):
        """A constant: a shared initializer (dynamo) or a fresh Constant node (TorchScript)."""
        arr = np.asarray(value, dtype=dtype)
        if self.cfg.ts:
            out = self.fresh(base)
            self.nodes.append(helper.make_node(
                "Constant", [], [out], name="n_" + out, value=numpy_helper.from_array(arr, out)))
            return out
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._const_cache:
            self._const_cache[key] = self.init(self.fresh("val_" + base), arr)
        return self._const_cache[key]

    # -- shape idioms ---------------------------------------------------------

    def dim1(self, x, i):
        """Dim i of x as a 1-D int64 tensor of one element."""
        if self.cfg.ts:
            return self.op("Unsqueeze", [self.dim0(x, i), self.const([0])], "unsqueeze")
        return self.op("Shape", [x], "shape", start=i, end=i + 1)

    def dim0(self, x, i):
        """Dim i of x as an int64 scalar."""
        if self.cfg.ts:
            shape = self.op("Shape", [x], "shape")
            return self.op("Gather", [shape, self.const(i)], "gather", axis=0)
        return self.op("Squeeze", [self.op("Shape", [x], "shape", start=i, end=i + 1)], "sym_size")

    def shape_vec(self, parts):
        """Concat of 1-D dims and python ints (as constants) into a shape vector."""
        ins = [self.const([p]) if isinstance(p, (int, np.integer)) else p for p in parts]
        return self.op("Concat", ins, "shape_vec", axis=0)

    def unsqueeze_1d(self, scalar):
        return self.op("Unsqueeze", [scalar, self.const([0])], "unsqueeze")

    def reshape(self, x, shape, base="view"):
        return self.op("Reshape", [x, shape], base, allowzero=0 if self.cfg.ts else 1)

    def expand_shape(self, shape):
        """TorchScript guards Expand's shape: Where(Equal(s, -1), 1, s)."""
        if not self.cfg.ts:
            return shape
        s = self.op("Reshape", [shape, self.const([-1])], "reshape", allowzero=0)
        ones = self.op("ConstantOfShape", [self.op("Shape", [s], "shape")], "ones",
                       value=numpy_helper.from_array(np.array([1], np.int64)))
        neg = self.op("Mul", [ones, self.const(-1)], "mul")
        return self.op("Where", [self.op("Equal", [s, neg], "equal"), ones, s], "where")


class LlamaGraph:
    def __init__(self, cfg, weights):
        self.cfg = cfg
        self.w = weights
        self.g = GraphBuilder(cfg)
        self.dt = cfg.np_dtype
        self.odt = cfg.onnx_dtype

    # -- building blocks ------------------------------------------------------

    def linear(self, x, name, base):
        cfg, g = self.cfg, self.g
        w = self.w[name + ".weight"]  # [out, in]
        if cfg.weights == "in_out":
            wt = g.init(name + ".weight_t", np.ascontiguousarray(w.T))
        else:
            wt = g.op("Transpose", [g.init(name + ".weight", w)], base + "_wT", perm=[1, 0])
        y = g.op("MatMul", [x, wt], base)
        if name + ".bias" in self.w:
            y = g.op("Add", [y, g.init(name + ".bias", self.w[name + ".bias"])], base + "_bias")
        return y

    def rms_norm(self, x, wname, base):
        """Returns (normed, residual_source)."""
        cfg, g = self.cfg, self.g
        if cfg.norm_op in ("rmsnormalization", "simplified", "skip"):
            op = "RMSNormalization" if cfg.norm_op == "rmsnormalization" else \
                "SimplifiedLayerNormalization"
            return g.op(op, [x, g.init(wname, self.w[wname])], base, axis=-1,
                        epsilon=cfg.eps), x
        cast = cfg.rms_casts
        cdt = np.float32 if cast else self.dt
        xf = g.op("Cast", [x], base + "_cast_in", to=TensorProto.FLOAT) if cast else x
        p = g.op("Pow", [xf, g.const(2.0, cdt, "two")], base + "_pow")
        m = g.op("ReduceMean", [p, g.const([-1])], base + "_mean", keepdims=1)
        a = g.op("Add", [m, g.const(cfg.eps, cdt, "eps")], base + "_add_eps")
        s = g.op("Sqrt", [a], base + "_sqrt")
        if cfg.rms == "reciprocal":
            r = g.op("Reciprocal", [s], base + "_rsqrt")
        else:
            r = g.op("Div", [g.const(1.0, cdt, "one"), s], base + "_rsqrt")
        n = g.op("Mul", [xf, r], base + "_mul")
        if cast:
            n = g.op("Cast", [n], base + "_cast_out", to=self.odt)
        w = g.init(wname, self.w[wname])
        ins = [w, n] if cfg.rms_mul_order == "weight_first" else [n, w]
        out = g.op("Mul", ins, base)
        # TorchScript, float32: the residual Add reads the (identity) Cast's output.
        residual = xf if (cast and cfg.dtype == "float32") else x
        return out, residual

    def rotary(self, pos_source):
        """cos, sin of shape [B|1, S, D] in the model dtype.

        pos_source: "range" (0..seq-1, no cache) or the position_ids input."""
        cfg, g = self.cfg, self.g
        inv = g.init("rope.inv_freq", inv_freq(cfg).reshape(1, -1, 1))
        if pos_source == "range":
            seq = g.dim0("input_ids", 1)
            pos = g.op("Range", [g.const(0), seq, g.const(1)], "arange")
            pos2 = g.op("Unsqueeze", [pos, g.const([0])], "position_ids")  # [1, S]
        else:
            pos2 = pos_source  # [B, S]
        if cfg.ts:
            # inv_freq[None, :, None].expand(B, -1, 1)
            b = g.unsqueeze_1d(g.dim0(pos2, 0))
            shape = g.expand_shape(g.shape_vec([b, -1, 1]))
            inv = g.op("Cast", [g.op("Expand", [inv, shape], "inv_expand")], "inv_cast",
                       to=TensorProto.FLOAT)
        pf = g.op("Cast", [g.op("Unsqueeze", [pos2, g.const([1])], "pos_unsq")], "pos_f",
                  to=TensorProto.FLOAT)  # [B|1, 1, S]
        freqs = g.op("MatMul", [inv, pf], "freqs")  # [B|1, D/2, S]
        t = g.op("Transpose", [freqs], "freqs_t", perm=[0, 2, 1])
        emb = g.op("Concat", [t, t], "emb", axis=-1)
        cos = g.op("Cos", [emb], "cos")
        sin = g.op("Sin", [emb], "sin")
        if cfg.ts:
            cos = g.op("Mul", [cos, g.const(1.0, np.float32, "attn_scaling")], "cos_scaled")
            sin = g.op("Mul", [sin, g.const(1.0, np.float32, "attn_scaling")], "sin_scaled")
        if cfg.ts or cfg.dtype != "float32":
            cos = g.op("Cast", [cos], "cos_cast", to=self.odt)
            sin = g.op("Cast", [sin], "sin_cast", to=self.odt)
        return cos, sin

    def unsqueeze_cs(self, cos, sin):
        g = self.g
        return (g.op("Unsqueeze", [cos, g.const([1])], "cos_4d"),
                g.op("Unsqueeze", [sin, g.const([1])], "sin_4d"))

    def apply_rope(self, x, cos, sin, base):
        cfg, g = self.cfg, self.g
        a = g.op("Mul", [x, cos], base + "_cos")
        if cfg.ts:
            half = g.op("Div", [g.dim0(x, 3), g.const(2)], "div")
            half = g.op("Cast", [g.op("Cast", [half], "cast", to=TensorProto.INT64)], "cast",
                        to=TensorProto.INT64)
            half = g.unsqueeze_1d(half)
        else:
            half = g.const([cfg.head_dim // 2])
        x1 = g.op("Slice", [x, g.const([0]), half, g.const([3]), g.const([1])], base + "_x1")
        x2 = g.op("Slice", [x, half, g.const([INT64_MAX]), g.const([3]), g.const([1])], base + "_x2")
        rot = g.op("Concat", [g.op("Neg", [x2], base + "_neg"), x1], base + "_rot", axis=-1)
        b = g.op("Mul", [rot, sin], base + "_sin")
        return g.op("Add", [a, b], base + "_rope")

    def repeat_kv(self, x, base):
        """[B, K, T, D] -> [B, K*n_rep, T, D] via Unsqueeze/Expand/Reshape."""
        cfg, g = self.cfg, self.g
        n_rep = cfg.heads // cfg.kv_heads
        if n_rep == 1:
            return x
        u = g.op("Unsqueeze", [x, g.const([2])], base + "_unsq")
        if cfg.ts:
            b, k, t, d = (g.dim0(x, i) for i in range(4))
            shape = g.shape_vec([g.unsqueeze_1d(b), g.unsqueeze_1d(k), n_rep,
                                 g.unsqueeze_1d(t), g.unsqueeze_1d(d)])
            e = g.op("Expand", [u, g.expand_shape(shape)], base + "_expand")
            heads = g.op("Mul", [k, g.const(n_rep)], "mul")
            target = g.shape_vec([g.unsqueeze_1d(b), g.unsqueeze_1d(heads),
                                  g.unsqueeze_1d(t), g.unsqueeze_1d(d)])
        else:
            b = self.B1
            t = g.dim1(x, 2) if cfg.cache else self.S1
            e = g.op("Expand", [u, g.shape_vec([b, cfg.kv_heads, n_rep, t, cfg.head_dim])],
                     base + "_expand")
            target = g.shape_vec([b, cfg.heads, t, cfg.head_dim])
        return g.reshape(e, target, base + "_rep")

    def gqa_attention(self, x, i):
        """com.microsoft::GroupQueryAttention on the 3-D projections."""
        cfg, g = self.cfg, self.g
        p = f"model.layers.{i}.self_attn."
        base = f"l{i}"
        q = self.linear(x, p + "q_proj", f"{base}_q_proj")
        k = self.linear(x, p + "k_proj", f"{base}_k_proj")
        v = self.linear(x, p + "v_proj", f"{base}_v_proj")
        attrs = dict(num_heads=cfg.heads, kv_num_heads=cfg.kv_heads)
        tables = []
        if cfg.rope_op == "ms":
            q, k = (g.op_multi("RotaryEmbedding", [y, "position_ids", self.cos_cache,
                                                   self.sin_cache], [f"{base}_{nm}_rope"],
                               domain="com.microsoft", num_heads=heads)[0]
                    for y, nm, heads in ((q, "q", cfg.heads), (k, "k", cfg.kv_heads)))
        else:
            attrs["do_rotary"] = 1
            tables = [self.cos_cache, self.sin_cache]
        ins = [q, k, v, f"past_key_values.{i}.key", f"past_key_values.{i}.value",
               self.seqlens_k, self.total_len] + tables
        y = g.op_multi("GroupQueryAttention", ins,
                       [f"{base}_attn", f"present.{i}.key", f"present.{i}.value"],
                       domain="com.microsoft", **attrs)[0]
        return self.linear(y, p + "o_proj", f"{base}_o_proj")

    def onnx_attention(self, q, k, v, i, b, s):
        """The ONNX Attention (opset 23) on 4-D head-split Q, K, V; returns the
        merged [B, S, heads * D] output."""
        cfg, g = self.cfg, self.g
        base = f"l{i}"
        ins, outs, attrs = [q, k, v], [f"{base}_attn"], {}
        if cfg.cache:
            mask = self.float_mask if cfg.mask == "add" else self.bool_mask
            ins += [mask, f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
            outs += [f"present.{i}.key", f"present.{i}.value"]
        elif cfg.mask == "none":
            attrs["is_causal"] = 1
        else:
            ins.append(self.float_mask if cfg.mask == "add" else self.bool_mask)
        y = g.op_multi("Attention", ins, outs, **attrs)[0]
        o = g.op("Transpose", [y], f"{base}_attn_t", perm=[0, 2, 1, 3])
        return g.reshape(o, g.shape_vec([b, s, -1]), f"{base}_attn_merge")

    def attention(self, x, i, cos, sin):
        cfg, g = self.cfg, self.g
        if cfg.attention_op == "gqa":
            return self.gqa_attention(x, i)
        D = cfg.head_dim
        p = f"model.layers.{i}.self_attn."
        base = f"l{i}"
        if cfg.ts:
            b = g.unsqueeze_1d(g.dim0(x, 0))
            s = g.unsqueeze_1d(g.dim0(x, 1))
            cos, sin = self.unsqueeze_cs(cos, sin)
        else:
            b, s = self.B1, self.S1

        def heads(y, nm):
            shape = g.shape_vec([b, s, -1, D])
            return g.op("Transpose", [g.reshape(y, shape, f"{base}_{nm}_view")],
                        f"{base}_{nm}_t", perm=[0, 2, 1, 3])

        q = heads(self.linear(x, p + "q_proj", f"{base}_q_proj"), "q")
        k = heads(self.linear(x, p + "k_proj", f"{base}_k_proj"), "k")
        v = heads(self.linear(x, p + "v_proj", f"{base}_v_proj"), "v")
        if cfg.rope_op == "onnx":
            q, k = (g.op("RotaryEmbedding", [y, self.cos_cache, self.sin_cache, self.pos_ids],
                         f"{base}_{nm}_rope") for y, nm in ((q, "q"), (k, "k")))
        else:
            q = self.apply_rope(q, cos, sin, f"{base}_q")
            k = self.apply_rope(k, cos, sin, f"{base}_k")
        if cfg.attention_op == "onnx":
            return self.linear(self.onnx_attention(q, k, v, i, b, s), p + "o_proj",
                               f"{base}_o_proj")
        if cfg.cache:
            past_k = self.past_key0 if i == 0 else f"past_key_values.{i}.key"
            k = g.op_to("Concat", [past_k, k], f"present.{i}.key", axis=cfg.cache_axis)
            v = g.op_to("Concat", [f"past_key_values.{i}.value", v], f"present.{i}.value",
                        axis=cfg.cache_axis)
        k = self.repeat_kv(k, f"{base}_k")
        v = self.repeat_kv(v, f"{base}_v")
        if cfg.kt_style == "flatten":
            # torch.onnx.export(dynamo=True) of a batched matmul's transposed
            # operand: flatten to rank 3, Transpose(perm=[0,2,1]), unflatten.
            shape = g.op("Shape", [k], f"{base}_k_shape")
            lead = g.op("Slice", [shape, g.const([INT64_MIN]), g.const([-2])], f"{base}_k_lead")
            t = g.op("Slice", [shape, g.const([-2]), g.const([-1])], f"{base}_k_t")
            d = g.op("Slice", [shape, g.const([-1]), g.const([INT64_MAX])], f"{base}_k_d")
            flat = g.op("Reshape", [k, g.op("Concat", [g.const([-1]), t, d], f"{base}_k_flat_shape",
                                             axis=0)], f"{base}_k_flat", allowzero=0)
            flat_t = g.op("Transpose", [flat], f"{base}_k_flat_t", perm=[0, 2, 1])
            kt = g.op("Reshape", [flat_t, g.op("Concat", [lead, d, t], f"{base}_kT_shape", axis=0)],
                      f"{base}_kT", allowzero=0)
        else:
            kt = g.op("Transpose", [k], f"{base}_kT", perm=[0, 1, 3, 2])
        if cfg.scale == "sqrt_both":
            c = g.const(D ** -0.25, self.dt, "scale")
            q = g.op("Mul", [q, c], f"{base}_q_scaled")
            kt = g.op("Mul", [kt, c], f"{base}_kT_scaled")
        scores = g.op("MatMul", [q, kt], f"{base}_scores")
        if cfg.scale == "mul":
            scores = g.op("Mul", [scores, g.const(1.0 / np.sqrt(D), self.dt, "scale")],
                          f"{base}_scaled")
        elif cfg.scale == "div":
            scores = g.op("Div", [scores, g.const(np.sqrt(D), self.dt, "scale")],
                          f"{base}_scaled")
        if cfg.mask == "add":
            scores = g.op("Add", [scores, self.float_mask], f"{base}_masked")
        elif cfg.mask == "where":
            scores = g.op("Where", [self.bool_mask, scores,
                                    g.const(-np.inf, self.dt, "neg_inf")], f"{base}_masked")
        probs = g.op("Softmax", [scores], f"{base}_probs", axis=-1)
        if cfg.softmax_guard:
            # torch's dynamo exporter: rows with every key masked give 0, not NaN.
            nan = g.op("IsNaN", [probs], f"{base}_probs_isnan")
            probs = g.op("Where", [nan, g.const(0.0, self.dt, "zero"), probs], f"{base}_probs_guarded")
        if cfg.ts:
            probs = g.op("Cast", [probs], f"{base}_probs_cast", to=self.odt)
        o = g.op("MatMul", [probs, v], f"{base}_attn")
        o = g.op("Transpose", [o], f"{base}_attn_t", perm=[0, 2, 1, 3])
        o = g.reshape(o, g.shape_vec([b, s, -1]), f"{base}_attn_merge")
        return self.linear(o, p + "o_proj", f"{base}_o_proj")

    def mlp(self, x, i):
        g = self.g
        p = f"model.layers.{i}.mlp."
        gate = self.linear(x, p + "gate_proj", f"l{i}_gate_proj")
        act = g.op("Mul", [gate, g.op("Sigmoid", [gate], f"l{i}_sigmoid")], f"l{i}_silu")
        up = self.linear(x, p + "up_proj", f"l{i}_up_proj")
        return self.linear(g.op("Mul", [act, up], f"l{i}_swiglu"), p + "down_proj",
                           f"l{i}_down_proj")

    # -- mask ---------------------------------------------------------------------

    def build_mask(self):
        """Sets self.float_mask ([.., S, T] additive, model dtype) or self.bool_mask."""
        cfg, g = self.cfg, self.g
        if cfg.mask == "none":
            return
        seq = g.dim0("input_ids", 1)
        if cfg.cache:
            past = g.dim0(self.past_key0, 2)
            total = g.op("Add", [past, seq], "total")
        else:
            past, total = None, seq

        use_pad = cfg.pad_mask != "none"
        if cfg.mask_style == "none":
            causal = None
        elif cfg.mask_style == "trilu":
            st = g.shape_vec([g.unsqueeze_1d(seq), g.unsqueeze_1d(total)])
            if cfg.mask == "add" and not use_pad:
                # torch.full((S, T), min).triu(1 + past)
                k = g.op("Add", [past, g.const(1)], "diag") if cfg.cache else g.const(1)
                full = g.op("ConstantOfShape", [st], "full_min", value=numpy_helper.from_array(
                    np.array([np.finfo(self.dt).min], self.dt)))
                tri = g.op("Trilu", [full, k], "causal_min", upper=1)
                self.float_mask = g.op("Unsqueeze", [tri, g.const([0, 1])], "mask")
                return
            # ones((S, T), bool).tril(past)
            ones = g.op("ConstantOfShape", [st], "ones_bool",
                        value=numpy_helper.from_array(np.array([True])))
            k = past if cfg.cache else g.const(0)
            tri = g.op("Trilu", [ones, k], "tril", upper=0)
            causal = g.op("Unsqueeze", [tri, g.const([0, 1])], "causal")
        else:
            if cfg.cache and cfg.ts:
                q_pos = g.op("Add", [g.op("Range", [g.const(0), seq, g.const(1)], "arange"),
                                     past], "cache_position")
            elif cfg.cache:
                q_pos = g.op("Range", [past, total, g.const(1)], "cache_position")
            else:
                q_pos = g.op("Range", [g.const(0), seq, g.const(1)], "cache_position")
            kv_pos = g.op("Range", [g.const(0), total, g.const(1)], "kv_idx")
            q4 = self.unsqueeze_axes(q_pos, [0, 1, 3])  # [1, 1, S, 1]
            kv4 = self.unsqueeze_axes(kv_pos, [0, 1, 2])  # [1, 1, 1, T]
            causal = g.op("LessOrEqual", [kv4, q4], "causal")
        allowed = causal
        if use_pad:
            pad = self.padding_mask()
            allowed = pad if causal is None else g.op("And", [causal, pad], "allowed")
        if cfg.mask == "where":
            self.bool_mask = allowed
        else:
            self.float_mask = g.op("Where", [allowed, g.const(0.0, self.dt, "zero"),
                                             g.const(np.finfo(self.dt).min, self.dt, "min")], "mask")

    def unsqueeze_axes(self, x, axes):
        g = self.g
        if not self.cfg.ts:
            return g.op("Unsqueeze", [x, g.const(axes)], "unsqueeze")
        for a in axes:
            x = g.op("Unsqueeze", [x, g.const([a])], "unsqueeze")
        return x

    def padding_mask(self):
        """[B, 1, 1, T] bool from attention_mask (cache) or all-ones (no cache)."""
        cfg, g = self.cfg, self.g
        if cfg.cache:
            m2 = "attention_mask"
        elif cfg.ts:
            m2 = g.op("ConstantOfShape", [g.op("Shape", ["input_ids"], "shape")], "ones_like",
                      value=numpy_helper.from_array(np.array([1], np.int64)))
        else:
            m2 = g.op("Expand", [g.const(1), g.op("Shape", ["input_ids"], "shape", start=0)],
                      "ones_like")
        mb = g.op("Cast", [m2], "pad_bool", to=TensorProto.BOOL)
        if cfg.pad_mask == "broadcast":
            return g.op("Unsqueeze", [mb, g.const([1, 2])], "pad_4d")
        batch = g.dim0("input_ids", 0)
        b_idx = self.unsqueeze_axes(g.op("Range", [g.const(0), batch, g.const(1)], "batch_arange"),
                                    [1, 2, 3])  # [B, 1, 1, 1]
        t = g.dim0(mb, 1)
        kv_idx = self.unsqueeze_axes(g.op("Range", [g.const(0), t, g.const(1)], "pad_kv_idx"),
                                     [0, 1, 2])  # [1, 1, 1, T]
        if cfg.pad_mask == "flatten_gather":
            flat = g.op("Flatten", [mb], "pad_flat", axis=2)  # [B*T, 1]
            idx = g.op("Add", [kv_idx, g.op("Mul", [b_idx, t], "mul")], "pad_idx")
            gathered = g.op("Gather", [flat, idx], "pad_gather", axis=0)  # [B, 1, 1, T, 1]
            r = g.op("Reshape", [gathered, g.const([-1])], "reshape", allowzero=0)
            r = g.op("Reshape", [r, g.op("Concat", [g.op("Shape", [idx], "shape")], "concat",
                                         axis=0)], "reshape", allowzero=0)
            return g.op("Cast", [r], "pad_4d", to=TensorProto.BOOL)
        # gathernd
        shp = g.op("Shape", [g.op("Max", [b_idx, kv_idx], "max")], "shape", start=0)
        eb = g.op("Unsqueeze", [g.op("Expand", [b_idx, shp], "expand"), g.const([-1])], "unsqueeze")
        ek = g.op("Unsqueeze", [g.op("Expand", [kv_idx, shp], "expand"), g.const([-1])], "unsqueeze")
        idx = g.op("Concat", [eb, ek], "pad_idx", axis=-1)  # [B, 1, 1, T, 2]
        return g.op("GatherND", [mb, idx], "pad_4d", batch_dims=0)

    # -- whole model ----------------------------------------------------------

    def build(self):
        cfg, g = self.cfg, self.g
        H, K, D, V = cfg.hidden, cfg.kv_heads, cfg.head_dim, cfg.vocab
        inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])]
        outputs = [helper.make_tensor_value_info("logits", self.odt, ["batch", "seq", V])]
        if cfg.cache:
            inputs += [
                helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"]),
                helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"])]
            for i in range(cfg.layers):
                for kv in ("key", "value"):
                    inputs.append(helper.make_tensor_value_info(
                        f"past_key_values.{i}.{kv}", self.odt, ["batch", K, "past", D]))
                    outputs.append(helper.make_tensor_value_info(
                        f"present.{i}.{kv}", self.odt, ["batch", K, "total", D]))
            # The TorchScript cache export reads layer 0's past through a one-input Concat.
            self.past_key0 = (g.op("Concat", ["past_key_values.0.key"], "past_key0", axis=-2)
                              if cfg.ts else "past_key_values.0.key")

        emb_w = g.init("model.embed_tokens.weight", self.w["model.embed_tokens.weight"])
        x = g.op("Gather", [emb_w, "input_ids"], "embedding", axis=0)
        if not cfg.ts:
            self.B1 = g.dim1("input_ids", 0)
            self.S1 = g.dim1("input_ids", 1)
        cos = sin = None
        if cfg.attention_op != "gqa":
            self.build_mask()
        if cfg.attention_op == "gqa" or cfg.rope_op != "decomposed":
            # [max_pos, D/2] tables, float32 products and cos/sin as transformers computes them.
            ang = np.outer(np.arange(cfg.max_pos, dtype=np.float32), inv_freq(cfg))
            self.cos_cache = g.init("cos_cache", np.cos(ang.astype(np.float32)).astype(self.dt))
            self.sin_cache = g.init("sin_cache", np.sin(ang.astype(np.float32)).astype(self.dt))
        else:
            cos, sin = self.rotary("position_ids" if cfg.cache else "range")
            if not cfg.ts:
                cos, sin = self.unsqueeze_cs(cos, sin)
        if cfg.rope_op == "onnx":
            if cfg.cache:
                self.pos_ids = "position_ids"
            else:
                seq = g.dim0("input_ids", 1)
                pos = g.op("Range", [g.const(0), seq, g.const(1)], "arange")
                self.pos_ids = g.op("Expand", [pos, g.op("Shape", ["input_ids"], "ids_shape")],
                                    "position_ids")
        if cfg.attention_op == "gqa":
            # As the model builder computes them from attention_mask.
            total = g.op("ReduceSum", ["attention_mask", g.const([1])], "mask_sum", keepdims=0)
            self.seqlens_k = g.op("Cast", [g.op("Sub", [total, g.const(1)], "seqlens")],
                                  "seqlens_k", to=TensorProto.INT32)
            width = g.op("Squeeze", [g.op("Shape", ["attention_mask"], "mask_shape", start=1,
                                          end=2)], "mask_width")
            self.total_len = g.op("Cast", [width], "total_sequence_length", to=TensorProto.INT32)

        def norm(x, pending, wname, base, sum_out=True):
            """(normed, residual): the residual sum x + pending is folded into
            SkipSimplifiedLayerNormalization with --norm-op skip."""
            if pending is None:
                return self.rms_norm(x, wname, base)
            if cfg.norm_op != "skip":
                x = g.op("Add", [x, pending], base + "_residual")
                return self.rms_norm(x, wname, base)
            outs = [base, "", "", base + "_sum"] if sum_out else [base]
            h, *rest = g.op_multi("SkipSimplifiedLayerNormalization",
                                  [x, pending, g.init(wname, self.w[wname])], outs,
                                  domain="com.microsoft", epsilon=cfg.eps)
            return h, rest[-1] if sum_out else None

        pending = None
        for i in range(cfg.layers):
            p = f"model.layers.{i}."
            h, x = norm(x, pending, p + "input_layernorm.weight", f"l{i}_input_norm")
            if cfg.norm_op == "skip":
                pending = self.attention(h, i, cos, sin)
                h, x = norm(x, pending, p + "post_attention_layernorm.weight", f"l{i}_post_norm")
                pending = self.mlp(h, i)
            else:
                x = g.op("Add", [x, self.attention(h, i, cos, sin)], f"l{i}_residual_attn")
                h, res = self.rms_norm(x, p + "post_attention_layernorm.weight", f"l{i}_post_norm")
                x = g.op("Add", [res, self.mlp(h, i)], f"l{i}_residual_mlp")
        h, _ = norm(x, pending, "model.norm.weight", "final_norm", sum_out=False)

        lm = self.w["lm_head.weight"]  # [V, H]
        if cfg.lm_head_transpose:
            src = emb_w if not cfg.untied else g.init("lm_head.weight", lm)
            wt = g.op("Transpose", [src], "lm_head_wT", perm=[1, 0])
        else:
            wt = g.init("lm_head.weight_t", np.ascontiguousarray(lm.T))
        g.op_to("MatMul", [h, wt], "logits")

        graph = helper.make_graph(g.nodes, "tiny_llama", inputs, outputs, g.initializers)
        opsets = [helper.make_opsetid("", cfg.opset)]
        if cfg.contrib:
            opsets.append(helper.make_opsetid("com.microsoft", 1))
        model = helper.make_model(graph, opset_imports=opsets, producer_name="kiln-make_llama")
        model.ir_version = 8 if cfg.ts else 10
        return model


def build_model(cfg, weights=None):
    cfg.validate()
    if weights is None:
        weights = make_weights(cfg)
    return LlamaGraph(cfg, weights).build()


def is_weight(name):
    return name.startswith(("model.", "lm_head."))


def save_model(model, path, external_data=None):
    """Save; external_data None (all inline), "weights" or "all".

    "weights": every model weight, however small, goes to ``basename(path).data``;
    the small shape/axes constants stay inline, as in the real dynamo export
    (onnxruntime and onnx shape inference need those inline).
    "all": onnx.save_model(save_as_external_data=True, size_threshold=0), i.e. every
    initializer, int64 axes constants included, goes external."""
    location = os.path.basename(path) + ".data"
    data_path = os.path.join(os.path.dirname(path), location)
    if external_data and os.path.exists(data_path):
        os.remove(data_path)  # onnx appends to an existing data file
    if external_data == "all":
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=location, size_threshold=0)
        return
    if external_data == "weights":
        for t in model.graph.initializer:
            if is_weight(t.name):
                external_data_helper.set_external_data(t, location)
    elif external_data is not None:
        raise ValueError(external_data)
    onnx.save_model(model, path)  # writes tensors marked external next to path


# ----------------------------------------------------------------------------
# Numpy reference (float64), mirroring transformers' LlamaForCausalLM.


def reference(cfg, w, input_ids, attention_mask=None, position_ids=None, past=None):
    """Returns [logits, present.0.key, present.0.value, ...] (presents only with past)."""
    f = lambda a: np.asarray(a, np.float64)
    A, K, D = cfg.heads, cfg.kv_heads, cfg.head_dim
    n_rep = A // K
    B, S = input_ids.shape
    P = past[0].shape[2] if past is not None else 0
    T = P + S
    if position_ids is None:
        position_ids = np.broadcast_to(np.arange(S), (B, S))
    if attention_mask is None:
        attention_mask = np.ones((B, T), np.int64)

    def rms(x, wt):
        return f(wt) * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + cfg.eps))

    def lin(x, name):
        y = x @ f(w[name + ".weight"]).T
        if name + ".bias" in w:
            y = y + f(w[name + ".bias"])
        return y

    freqs = position_ids[..., None].astype(np.float64) * f(inv_freq(cfg))  # [B, S, D/2]
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb)[:, None], np.sin(emb)[:, None]  # [B, 1, S, D]

    def rope(x):
        x1, x2 = x[..., :D // 2], x[..., D // 2:]
        return x * cos + np.concatenate([-x2, x1], axis=-1) * sin

    if cfg.mask == "none" and cfg.attention_op == "decomposed":
        allowed = np.ones((B, 1, S, T), bool)
    else:
        causal = np.arange(T)[None, :] <= (np.arange(S) + P)[:, None]
        if cfg.mask_style == "none":
            causal = np.ones_like(causal)
        allowed = causal[None, None] & (attention_mask[:, None, None, :] != 0)

    x = f(w["model.embed_tokens.weight"])[input_ids]
    presents = []
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        h = rms(x, w[p + "input_layernorm.weight"])
        q = lin(h, p + "self_attn.q_proj").reshape(B, S, A, D).transpose(0, 2, 1, 3)
        k = lin(h, p + "self_attn.k_proj").reshape(B, S, K, D).transpose(0, 2, 1, 3)
        v = lin(h, p + "self_attn.v_proj").reshape(B, S, K, D).transpose(0, 2, 1, 3)
        q, k = rope(q), rope(k)
        if past is not None:
            k = np.concatenate([f(past[2 * i]), k], axis=2)
            v = np.concatenate([f(past[2 * i + 1]), v], axis=2)
            presents += [k, v]
        kr, vr = np.repeat(k, n_rep, axis=1), np.repeat(v, n_rep, axis=1)
        s = q @ kr.transpose(0, 1, 3, 2) / np.sqrt(D)
        s = np.where(allowed, s, -np.inf)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        o = (s @ vr).transpose(0, 2, 1, 3).reshape(B, S, A * D)
        x = x + lin(o, p + "self_attn.o_proj")
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        g = lin(h, p + "mlp.gate_proj")
        x = x + lin(g / (1 + np.exp(-g)) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms(x, w["model.norm.weight"])
    return [x @ f(w["lm_head.weight"]).T] + presents


def check(cfg, weights, path):
    """Run onnxruntime on the saved model and compare with reference(); returns ok."""
    import onnxruntime as ort

    # Checked in memory with external data loaded: onnx's shape inference cannot read
    # constant inputs (Unsqueeze axes, ...) from external data on its own.
    if cfg.opset > 22:
        raise SystemExit("--check: onnxruntime 1.22 runs opsets up to 22; this model is opset "
                         f"{cfg.opset} (its oracle is the numpy reference, through Kiln)")
    # onnx's checker does not know onnxruntime's SimplifiedLayerNormalization, which
    # onnxruntime registers in the default domain.
    if cfg.norm_op not in ("simplified", "skip"):
        onnx.checker.check_model(onnx.load(path), full_check=True)
    rng = np.random.default_rng(1234)
    # onnxruntime's GroupQueryAttention takes one sequence when a prompt follows a past.
    B, S, P = (1 if cfg.attention_op == "gqa" else 2), 5, 3
    feeds = {"input_ids": rng.integers(0, cfg.vocab, (B, S), dtype=np.int64)}
    kw = {}
    if cfg.cache:
        mask = np.ones((B, P + S), np.int64)
        if cfg.attention_op != "gqa":  # GroupQueryAttention has no left padding
            mask[1, 0] = 0  # one left-padded past slot in the second batch row
        pos = np.broadcast_to(np.arange(P, P + S, dtype=np.int64), (B, S)).copy()
        past = [rng.standard_normal((B, cfg.kv_heads, P, cfg.head_dim)).astype(cfg.np_dtype)
                for _ in range(2 * cfg.layers)]
        feeds["attention_mask"], feeds["position_ids"] = mask, pos
        for i in range(cfg.layers):
            feeds[f"past_key_values.{i}.key"] = past[2 * i]
            feeds[f"past_key_values.{i}.value"] = past[2 * i + 1]
        kw = dict(attention_mask=mask, position_ids=pos, past=past)
    # With every initializer external onnxruntime cannot load the file itself (its load-time
    # shape inference needs the axes constants inline); give it the loaded model instead.
    src = onnx.load(path).SerializeToString() if cfg.external_data == "all" else path
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    got = sess.run(None, feeds)
    want = reference(cfg, weights, feeds["input_ids"], **kw)
    tol = 1e-5 if cfg.dtype == "float32" else 2e-2
    ok = True
    for name, g, r in zip(names, got, want):
        g = g.astype(np.float64)
        if g.shape != r.shape:
            print(f"{name}: shape {g.shape} != reference {r.shape}")
            ok = False
            continue
        err = np.abs(g - r).max()
        rel = np.linalg.norm(g - r) / max(np.linalg.norm(r), 1e-30)
        good = bool(np.isfinite(rel) and rel <= tol)
        ok &= good
        print(f"{name}: max_abs_err={err:.3e} rel_l2={rel:.3e} {'ok' if good else 'FAIL'}")
    return ok


# ----------------------------------------------------------------------------
# Command line.


def add_model_args(ap):
    a = ap.add_argument
    a("--layers", type=int, default=1)
    a("--hidden", type=int, default=16)
    a("--heads", type=int, default=2)
    a("--kv-heads", type=int, default=1)
    a("--head-dim", type=int, default=8)
    a("--ffn", type=int, default=24)
    a("--vocab", type=int, default=32)
    a("--eps", type=float, default=1e-5)
    a("--theta", type=float, default=10000.0)
    a("--seed", type=int, default=0)
    a("--rms", choices=["reciprocal", "div"], default="reciprocal")
    a("--rms-mul-order", choices=["weight_first", "weight_last"], default="weight_first")
    a("--rms-casts", action="store_true")
    a("--scale", choices=["mul", "div", "sqrt_both"], default="mul")
    a("--mask", choices=["add", "where", "none"], default="add")
    a("--mask-style", choices=["lessorequal", "trilu", "none"], default="lessorequal")
    a("--pad-mask", choices=["none", "broadcast", "flatten_gather", "gathernd"], default=None)
    a("--shape-style", choices=["dynamo", "torchscript"], default="dynamo")
    a("--weights", choices=["in_out", "out_in"], default="in_out")
    a("--bias", action="store_true")
    a("--untied", action="store_true")
    a("--lm-head-transpose", action="store_true")
    a("--dtype", choices=list(NP_DTYPE), default="float32")
    a("--external-data", dest="external_data", action="store_const", const="weights")
    a("--external-data-all", dest="external_data", action="store_const", const="all")
    a("--cache", action="store_true")
    a("--cache-axis", type=int, choices=[-2, 2], default=-2)
    a("--kt-style", choices=["transpose", "flatten"], default="transpose",
      help="K^T as Transpose(perm=[0,1,3,2]), or flattened to rank 3 (torch dynamo, torch 2.11)")
    a("--norm-op", choices=["decomposed", "rmsnormalization", "simplified", "skip"],
      default="decomposed")
    a("--attention-op", choices=["decomposed", "onnx", "gqa"], default="decomposed")
    a("--rope-op", choices=["decomposed", "onnx", "ms"], default="decomposed")
    a("--max-pos", type=int, default=64)
    a("--tiled-weights", action="store_true",
      help="weights repeat a rotated 1M-value random block: multi-GB shapes in seconds "
           "(compile time, memory, speed; not for numerics against onnxruntime)")
    a("--softmax-guard", action="store_true",
      help="Where(IsNaN(softmax), 0, softmax) as torch 2.11's dynamo exporter writes it")


def config_from_args(args):
    names = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in vars(args).items() if k in names}).validate()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output .onnx path")
    ap.add_argument("--check", action="store_true",
                    help="after saving, compare onnxruntime against the numpy reference")
    add_model_args(ap)
    args = ap.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        ap.error(str(e))
    weights = make_weights(cfg)
    save_model(build_model(cfg, weights), args.out, cfg.external_data)
    if args.check:
        return 0 if check(cfg, weights, args.out) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
