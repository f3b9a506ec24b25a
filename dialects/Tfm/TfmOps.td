//===- TfmOps.td - Transformer dialect ops -----------------*- tablegen -*-===//

#ifndef KILN_TFM_OPS_TD
#define KILN_TFM_OPS_TD

include "TfmBase.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"

//===----------------------------------------------------------------------===//
// EmbeddingOp
//===----------------------------------------------------------------------===//

def Tfm_EmbeddingOp : Tfm_Op<"embedding", [Pure, InferTypeOpAdaptorWithIsCompatible]> {
  let summary = "Token embedding lookup";
  let description = [{
    Gathers rows of `table` (`[vocab, hidden]`) for each token id in `ids`
    (`[batch, seq]`), giving `[batch, seq, hidden]`. An id outside
    `[0, vocab)` is a runtime error, checked by the runtime before launch.

    With `rows from %first` (`tensor<1xi64>`), the table is rows
    `[first, first + rows)` of the whole vocabulary's (a tensor-parallel
    rank's slice: see `kiln-shard-tensor-parallel`): id `t` reads row
    `t - first`, and an id outside the slice gives a row of zeros, so that
    the `tfm.all_reduce` of the ranks' results is the whole table's lookup.
    `first` is an operand (a weight), not an attribute, so that every rank
    runs the same program on its own weights.

    Example:

    ```mlir
    %h = tfm.embedding %table[%ids]
        : tensor<1024x128xf32>, tensor<?x?xi64> -> tensor<?x?x128xf32>
    %part = tfm.embedding %half[%ids] rows from %first
        : tensor<512x128xf32>, tensor<?x?xi64>, tensor<1xi64>
          -> tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins Tfm_Matrix:$table, Tfm_TokenIds:$ids,
                       Optional<RankedTensorOf<[I64], [HasAnyRankOfPred<[1]>]>>:$first_row);
  let results = (outs Tfm_Activation:$result);
  let assemblyFormat = [{
    $table `[` $ids `]` (`rows` `from` $first_row^)? attr-dict `:` type($table)
    `,` type($ids) (`,` type($first_row)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// RmsNormOp
//===----------------------------------------------------------------------===//

def Tfm_RmsNormOp : Tfm_Op<"rms_norm", [Pure,
    InferTypeOpAdaptorWithIsCompatible]> {
  let summary = "Root-mean-square normalization over the last dimension";
  let description = [{
    `result = input * rsqrt(mean(input^2, axis=-1) + epsilon) * weight`,
    computed in f32 and rounded to the input's element type once, at the end.
    `weight` has the size of the last dimension. Its element type may differ
    from the input's (some exports keep norm weights in f32 for an f16
    model); it is read and applied in f32.

    Example:

    ```mlir
    %n = tfm.rms_norm %x, %w {epsilon = 1.0e-05 : f32}
        : tensor<?x?x128xf32>, tensor<128xf32>
    ```
  }];
  let arguments = (ins Tfm_Activation:$input, Tfm_Vector:$weight,
                       F32Attr:$epsilon);
  let results = (outs Tfm_Activation:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// DequantizeOp
//===----------------------------------------------------------------------===//

def Tfm_DequantizeOp : Tfm_Op<"dequantize", [Pure,
    InferTypeOpAdaptorWithIsCompatible]> {
  let summary = "A weight matrix from packed integers and per-group scales";
  let description = [{
    The quantized form of a `[rows, cols]` weight (for a projection, `rows`
    are the output features and `cols` the input features, `layout =
    <out_in>`): `cols` is cut into groups of `group_size` consecutive
    elements, each with its own scale and zero point, and

    ```
    result[r, c] = (q[r, c] - zero[r, c / group_size]) * scale[r, c / group_size]
    ```

    where `q` is an unsigned `bits`-bit integer read from `packed`
    (`[rows, cols * bits / 8]`, i8 storage): with `bits = 8` byte `c` of row
    `r`; with `bits = 4` the low four bits of byte `c / 2` for an even `c`
    and the high four bits for an odd one (onnxruntime's `MatMulNBits`
    layout). `scales` is `[rows, cols / group_size]` in the result's element
    type; `zero_points`, when present, has the same shape and type (small
    integers, exactly representable); without it every zero point is
    `2^(bits - 1)` (symmetric quantization). A `group_size` equal to `cols`
    is one scale per row (per output channel).

    A projection fed by this op reads the packed bytes and dequantizes in
    registers: lowering never materializes `result` for it.

    Example (int4, groups of 32):

    ```mlir
    %w = tfm.dequantize %packed, %scales {bits = 4 : i64, group_size = 32 : i64}
        : tensor<64x64xi8>, tensor<64x4xf16> -> tensor<64x128xf16>
    ```
  }];
  let arguments = (ins RankedTensorOf<[I8], [HasAnyRankOfPred<[2]>]>:$packed,
                       Tfm_Matrix:$scales, Optional<Tfm_Matrix>:$zero_points,
                       ConfinedAttr<I64Attr, [IntIsOneOf<[4, 8]>]>:$bits,
                       ConfinedAttr<I64Attr, [IntPositive]>:$group_size);
  let results = (outs Tfm_Matrix:$result);
  let assemblyFormat = [{
    $packed `,` $scales (`zero_points` $zero_points^)? attr-dict
    `:` type($packed) `,` type($scales) (`,` type($zero_points)^)?
    `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

def Tfm_LinearOp : Tfm_Op<"linear", [Pure, InferTypeOpAdaptorWithIsCompatible]> {
  let summary = "Projection by a weight matrix with an optional bias";
  let description = [{
    `result[..., n] = sum_k input[..., k] * W[n, k] + bias[n]`, where `W` is
    `weight` read in the layout `layout` names (`out_in`: `[N, K]`,
    `in_out`: `[K, N]`). Accumulation is in f32.

    With `rms_norm_epsilon`, the input is RMS-normalised first (without a
    gain: `kiln-fuse-norm-projection` folds an RMSNorm's weight into `W`):
    `result[..., n] = r * sum_k input[..., k] * W[n, k] + bias[n]` with
    `r = 1 / sqrt(mean_k(input[..., k]^2) + rms_norm_epsilon)`, so a kernel
    can take the norm's one reduction over the row it reads anyway.

    With `swiglu`, the projection `y` (N features, N even) is not the result:
    `result[..., n] = silu(y[..., n]) * y[..., n + N/2]` (N/2 features), the
    gated MLP's activation of its joined gate/up projection, computed where
    `y` is (`kiln-fuse-swiglu`).

    The weight is an ordinary operand so that quantization can replace it
    (and this op) with a quantized weight and its scales; the layout is
    explicit so that the importer never has to copy or transpose weights.

    Example:

    ```mlir
    %q = tfm.linear %x, %wq layout = <in_out>
        : (tensor<?x?x128xf32>, tensor<128x128xf32>) -> tensor<?x?x128xf32>
    %k = tfm.linear %x, %wk bias %bk layout = <out_in>
        : (tensor<?x?x128xf32>, tensor<64x128xf32>, tensor<64xf32>)
        -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins Tfm_Activation:$input, Tfm_Matrix:$weight,
                       Optional<Tfm_Vector>:$bias,
                       Tfm_WeightLayoutAttr:$layout,
                       OptionalAttr<F32Attr>:$rms_norm_epsilon,
                       UnitAttr:$swiglu);
  let results = (outs Tfm_Activation:$result);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)? `layout` `=` $layout
    (`rms_norm` `eps` `=` $rms_norm_epsilon^)? (`swiglu` $swiglu^)? attr-dict
    `:` functional-type(operands, results)
  }];
  let extraClassDeclaration = [{
    /// Number of input features (K) and output features (N) of the weight
    /// (N is the result's features, or twice them with `swiglu`).
    int64_t getInFeatures();
    int64_t getOutFeatures();
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// RopeOp
//===----------------------------------------------------------------------===//

def Tfm_RopeOp : Tfm_Op<"rope", [Pure,
    InferTypeOpAdaptorWithIsCompatible]> {
  let summary = "Rotary position embedding (rotate-half form) per head";
  let description = [{
    Applies rotary position embedding to each `head_dim`-sized head of
    `input` (`[batch, seq, num_heads * head_dim]`). For the token at
    position `p = positions[b, s]` and `i < head_dim / 2`:

    ```
    theta_i = p * inv_freq[i]
    c = cos(theta_i) * attention_scaling, s = sin(theta_i) * attention_scaling
    out[i]              = x[i] * c - x[i + head_dim/2] * s
    out[i + head_dim/2] = x[i + head_dim/2] * c + x[i] * s
    ```

    `inv_freq` (`[head_dim / 2]`, f32) is taken from the graph, so any
    frequency scaling the exporter baked in (Llama 3's, linear, NTK) is
    already in it; `attention_scaling` is the factor some scalings (YaRN)
    apply to cos and sin. The angle is computed in f32.

    Example:

    ```mlir
    %r = tfm.rope %q, %pos, %inv_freq {head_dim = 32 : i64}
        : tensor<?x?x128xf32>, tensor<?x?xi64>, tensor<16xf32>
    ```
  }];
  let arguments = (ins Tfm_Activation:$input, Tfm_Positions:$positions,
                       Tfm_InvFreq:$inv_freq,
                       ConfinedAttr<I64Attr, [IntPositive]>:$head_dim,
                       DefaultValuedAttr<F32Attr, "1.0f">:$attention_scaling);
  let results = (outs Tfm_Activation:$result);
  let assemblyFormat = [{
    $input `,` $positions `,` $inv_freq attr-dict
    `:` type($input) `,` type($positions) `,` type($inv_freq)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// KvAppendOp
//===----------------------------------------------------------------------===//

def Tfm_KvAppendOp : Tfm_Op<"kv_append", [Pure,
    InferTypeOpAdaptorWithIsCompatible]> {
  let summary = "Write new keys or values into a KV cache at their positions";
  let description = [{
    `cache` is `[batch, num_kv_heads, max_seq, head_dim]` and `value` is
    `[batch, seq, num_kv_heads * head_dim]` (token-major, as projections
    produce it). The result is `cache` with
    `result[b, h, positions[b, s], :] = value[b, s, h * head_dim : (h + 1) * head_dim]`
    for every `b, s`; all other entries are unchanged. A position at or past
    `max_seq` is a runtime error the runtime checks before launch.

    The op is in destination-passing style: after bufferization it becomes
    an in-place write into the runtime-owned cache buffer.

    Paged: with a `block_table` (`[batch, max_blocks]` i32) the cache is a
    pool of blocks `[num_blocks, num_kv_heads, block_size, head_dim]` and
    position `p` of row `b` lives in block `block_table[b, p / block_size]`
    at slot `p % block_size`; a position at or past
    `max_blocks * block_size`, or whose block id is outside the pool, is
    not written (the runtime checks the tables before launch).

    Example:

    ```mlir
    %kc1 = tfm.kv_append %k into %kc0 at %pos
        : tensor<?x?x64xf32>, tensor<?x2x?x32xf32>, tensor<?x?xi64>
    %kp1 = tfm.kv_append %k into %kp0 at %pos pages %table
        : tensor<2x1x64xf32>, tensor<16x2x8x32xf32>, tensor<2x1xi64>,
          tensor<2x4xi32>
    ```
  }];
  let arguments = (ins Tfm_Activation:$value, Tfm_Cache:$cache,
                       Tfm_Positions:$positions,
                       Optional<Tfm_BlockTable>:$block_table);
  let results = (outs Tfm_Cache:$result);
  let assemblyFormat = [{
    $value `into` $cache `at` $positions (`pages` $block_table^)? attr-dict
    `:` type($value) `,` type($cache) `,` type($positions)
    (`,` type($block_table)^)?
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

def Tfm_AttentionOp : Tfm_Op<"attention", [Pure,
    InferTypeOpAdaptorWithIsCompatible,
    AllTypesMatch<["key_cache", "value_cache"]>]> {
  let summary = "Grouped-query causal attention over a KV cache";
  let description = [{
    `query` is `[batch, seq, num_heads * head_dim]` (after RoPE); the caches
    are `[batch, num_kv_heads, max_seq, head_dim]` and already hold this
    step's keys and values (see `tfm.kv_append`). Query head `h` reads KV
    head `h / (num_heads / num_kv_heads)`. The query at position
    `p = positions[b, s]` attends to cache slots `0..p` inclusive:

    ```
    out[b, s, h] = softmax_t(scale * q[b, s, h] . K[b, h', t]) . V[b, h', t],  t <= p
    ```

    Causality comes from positions, so the same op serves a prefill of any
    length starting at any offset and a decode step. Scores and softmax are
    computed in f32.

    Paged: with a `block_table` (`[batch, max_blocks]` i32) the caches are
    pools `[num_blocks, num_kv_heads, block_size, head_dim]` and slot `t` of
    row `b` is slot `t % block_size` of block `block_table[b, t / block_size]`
    (see `tfm.kv_append`); `max_seq` is `max_blocks * block_size`.

    Example:

    ```mlir
    %a = tfm.attention %q, %kc, %vc, %pos
        {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 32 : i64,
         scale = 0.176776695 : f32}
        : tensor<?x?x128xf32>, tensor<?x2x?x32xf32>, tensor<?x?xi64>
    ```
  }];
  let arguments = (ins Tfm_Activation:$query, Tfm_Cache:$key_cache,
                       Tfm_Cache:$value_cache, Tfm_Positions:$positions,
                       Optional<Tfm_BlockTable>:$block_table,
                       ConfinedAttr<I64Attr, [IntPositive]>:$num_heads,
                       ConfinedAttr<I64Attr, [IntPositive]>:$num_kv_heads,
                       ConfinedAttr<I64Attr, [IntPositive]>:$head_dim,
                       F32Attr:$scale);
  let results = (outs Tfm_Activation:$result);
  let assemblyFormat = [{
    $query `,` $key_cache `,` $value_cache `,` $positions
    (`pages` $block_table^)? attr-dict
    `:` type($query) `,` type($key_cache) `,` type($positions)
    (`,` type($block_table)^)?
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// SwiGluOp
//===----------------------------------------------------------------------===//

def Tfm_SwiGluOp : Tfm_Op<"swiglu", [Pure,
    SameOperandsAndResultType, InferTypeOpInterface]> {
  let summary = "SwiGLU gating: silu(gate) * up";
  let description = [{
    `result = gate * sigmoid(gate) * up`, elementwise, computed in f32.

    Example:

    ```mlir
    %m = tfm.swiglu %gate, %up : tensor<?x?x352xf32>
    ```
  }];
  let arguments = (ins Tfm_FloatTensor:$gate, Tfm_FloatTensor:$up);
  let results = (outs Tfm_FloatTensor:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
}

//===----------------------------------------------------------------------===//
// DynamicQuantizeOp
//===----------------------------------------------------------------------===//

def Tfm_DynamicQuantizeOp : Tfm_Op<"dynamic_quantize", [Pure,
    SameOperandsAndResultType, InferTypeOpInterface]> {
  let summary = "Per-tensor uint8 activation quantization at run time, "
                "dequantized back";
  let description = [{
    The activation as ONNX's `DynamicQuantizeLinear` quantizes it (what
    onnxruntime's `quantize_dynamic` puts before each `MatMulInteger`), then
    dequantized: over the whole tensor, in f32,

    ```
    lo = min(0, min(x)), hi = max(0, max(x)), s = (hi - lo) / 255
    z  = clamp(round_even(-lo / s), 0, 255)
    q  = clamp(round_even(x / s) + z, 0, 255)
    result = (q - z) * s                     (0 where s = 0)
    ```

    A projection of the result by a dequantized int8 weight equals the
    graph's integer `MatMulInteger` scaled by both scales, up to f32
    rounding. The statistics span every row of the tensor (every token of
    a prefill chunk), as onnxruntime's do for the tokens of one run.

    Example:

    ```mlir
    %q = tfm.dynamic_quantize %x : tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins Tfm_Activation:$input);
  let results = (outs Tfm_Activation:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

//===----------------------------------------------------------------------===//
// AddOp
//===----------------------------------------------------------------------===//

def Tfm_AddOp : Tfm_Op<"add", [Pure, Commutative,
    SameOperandsAndResultType, InferTypeOpInterface]> {
  let summary = "Residual add";
  let description = [{
    Elementwise `lhs + rhs` of two activations of the same type: the
    residual connections of a decoder layer. Kept as its own op (rather than
    `arith.addf` on tensors) so that fusion can fold it into the producer's
    epilogue or the next RMSNorm's prologue.

    Example:

    ```mlir
    %h1 = tfm.add %h0, %attn : tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins Tfm_FloatTensor:$lhs, Tfm_FloatTensor:$rhs);
  let results = (outs Tfm_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

//===----------------------------------------------------------------------===//
// LogitsOp
//===----------------------------------------------------------------------===//

def Tfm_LogitsOp : Tfm_Op<"logits", [Pure, InferTypeOpAdaptorWithIsCompatible]> {
  let summary = "Final projection from hidden states to vocabulary logits";
  let description = [{
    Like `tfm.linear` without bias: `result[..., v] = sum_k input[..., k] *
    W[v, k]`, with `W` read in `layout`. `tied` records that the weight is
    the token-embedding table (tied input/output embeddings), so that the
    artifact stores it once. It is a separate op because it is the one
    projection whose output is usually only needed at some positions (the
    last prompt token in prefill), and the one whose output the runtime
    samples from.

    Example:

    ```mlir
    %l = tfm.logits %h, %table layout = <out_in> {tied}
        : (tensor<?x?x128xf32>, tensor<1024x128xf32>) -> tensor<?x?x1024xf32>
    ```
  }];
  let arguments = (ins Tfm_Activation:$input, Tfm_Matrix:$weight,
                       Tfm_WeightLayoutAttr:$layout, UnitAttr:$tied);
  let results = (outs Tfm_Activation:$result);
  let assemblyFormat = [{
    $input `,` $weight `layout` `=` $layout attr-dict
    `:` functional-type(operands, results)
  }];
  let extraClassDeclaration = [{
    int64_t getVocabSize();
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// ArgmaxOp
//===----------------------------------------------------------------------===//

def Tfm_ArgmaxOp : Tfm_Op<"argmax", [Pure, InferTypeOpAdaptorWithIsCompatible]> {
  let summary = "Index of the largest logit of each row (greedy sampling)";
  let description = [{
    For logits `[batch, seq, vocab]`, returns `[batch, seq]` int64 token ids:
    the index of each row's largest value, the first one on ties (as
    `torch.argmax`). Entry points return it next to the logits so that
    greedy decoding reads one id per sequence instead of a whole row of
    logits, and the work stays on the device.

    Example:

    ```mlir
    %next = tfm.argmax %logits : tensor<1x1x1024xf32> -> tensor<1x1xi64>
    ```
  }];
  let arguments = (ins Tfm_Activation:$logits);
  let results = (outs RankedTensorOf<[I64], [HasAnyRankOfPred<[2]>],
                                     "2-D [batch, seq] tensor">:$result);
  let assemblyFormat = [{
    $logits attr-dict `:` type($logits) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// SampleOp
//===----------------------------------------------------------------------===//

def Tfm_SampleOp : Tfm_Op<"sample", [DestinationStyleOpInterface,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "The next token of each row: greedy, or sampled at a "
                "temperature with top-k, top-p and min-p (on the device)";
  let description = [{
    For logits `[batch, seq, vocab]`, per-row parameters `params
    [batch, 4]` f32 = (temperature, top_k, top_p, min_p) and a 64-bit key per
    sequence `seeds [batch]`, writes `[batch, seq]` int64 token ids into
    `init`:

    - temperature <= 0 or top_k = 1: the first index of the largest logit
      (exactly `tfm.argmax`);
    - otherwise a draw from softmax(logits / temperature) restricted, in this
      order, to the top_k largest (0: all), then the smallest set of largest
      whose probability reaches top_p of what remains (1: all), then those
      with probability >= min_p times the largest (0: all); tokens tied with
      the last one kept are kept too. NaN logits are never drawn.

    The draw is a Gumbel-max over a counter-based hash of (key, seq index,
    token id): the same key gives the same token. Entry points of GPU
    targets end with it (kiln-specialize-entry-points `sampling`), so that
    sampling, like greedy decoding, returns one id per sequence; the CPU
    runtime samples on the host instead. It has no linalg lowering: after
    bufferization (destination style, memref operands) the kernel library's
    `sample_rows` implements it.

    ```mlir
    %next = tfm.sample %logits, %params, %seeds into %init
        : tensor<1x1x1024xf32>, tensor<1x4xf32>, tensor<1xi64>,
          tensor<1x1xi64> -> tensor<1x1xi64>
    ```
  }];
  let arguments = (ins AnyTypeOf<[AnyRankedTensor, AnyMemRef]>:$logits,
                       AnyTypeOf<[AnyRankedTensor, AnyMemRef]>:$params,
                       AnyTypeOf<[AnyRankedTensor, AnyMemRef]>:$seeds,
                       AnyTypeOf<[AnyRankedTensor, AnyMemRef]>:$init);
  let results = (outs Variadic<AnyRankedTensor>:$result);
  let assemblyFormat = [{
    $logits `,` $params `,` $seeds `into` $init attr-dict `:` type($logits)
    `,` type($params) `,` type($seeds) `,` type($init)
    (`->` type($result)^)?
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return getInitMutable();
    }
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Collectives (tensor parallelism)
//===----------------------------------------------------------------------===//

def Tfm_AllReduceOp : Tfm_Op<"all_reduce", [
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>,
    InferTypeOpAdaptorWithIsCompatible]> {
  let summary = "Sum of a tensor over the ranks of a tensor-parallel group";
  let description = [{
    In a module that `kiln-shard-tensor-parallel` made for `ranks` ranks,
    each rank runs the same program on its own shard of the weights. A
    projection split by its input features (o_proj, down) leaves each rank a
    partial sum of the full projection; `tfm.all_reduce` returns on every
    rank the elementwise sum of the operand over all ranks (accumulated in
    f32 in rank order, then rounded to the element type once), so that what
    follows sees the full projection.

    Every rank executes the same collectives in the same order (the program
    is the same), so the tensor form has no side effects: folding or
    erasing one happens on all ranks alike. Bufferized, the op sums in place
    into its operand's buffer (the memref form, no result), which the
    target lowers to a call of its collectives (the host's on the CPU, NCCL
    on a GPU).

    ```mlir
    %full = tfm.all_reduce %partial {ranks = 2 : i64} : tensor<?x?x4096xf16>
    tfm.all_reduce %buffer {ranks = 2 : i64} : memref<1x1x4096xf16>
    ```
  }];
  let arguments = (ins AnyTypeOf<[Tfm_FloatTensor, Tfm_FloatMemRef]>:$input,
                       ConfinedAttr<I64Attr, [IntMinValue<2>]>:$ranks);
  let results = (outs Variadic<Tfm_FloatTensor>:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def Tfm_AllGatherOp : Tfm_Op<"all_gather", [
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>,
    InferTypeOpAdaptorWithIsCompatible]> {
  let summary = "Rank-ordered concatenation of a tensor along one dimension";
  let description = [{
    Every rank's operand joined along `axis` in rank order (rank 0's slice
    first): the result's `axis` dimension is `ranks` times the operand's.
    `kiln-shard-tensor-parallel` gathers the logits of an lm_head split by
    vocabulary, so that every rank holds the whole row to sample from.

    `kiln-lower-tfm-to-linalg` leaves only gathers along axis 0, the ranks'
    buffers one after another (what NCCL's all-gather writes), with a
    transpose after it for another axis; bufferized, the op writes into the
    buffer `init` (the memref form, no result).

    ```mlir
    %logits = tfm.all_gather %part {ranks = 2 : i64, axis = 2 : i64}
        : tensor<?x?x64128xf32> -> tensor<?x?x128256xf32>
    tfm.all_gather %in into %out {ranks = 2 : i64, axis = 0 : i64}
        : memref<1x1x64128xf32>, memref<2x1x64128xf32>
    ```
  }];
  let arguments = (ins AnyTypeOf<[Tfm_FloatTensor, Tfm_FloatMemRef]>:$input,
                       Optional<Tfm_FloatMemRef>:$init,
                       ConfinedAttr<I64Attr, [IntMinValue<2>]>:$ranks,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$axis);
  let results = (outs Variadic<Tfm_FloatTensor>:$result);
  let assemblyFormat = [{
    $input (`into` $init^)? attr-dict `:` type($input) (`,` type($init)^)?
    (`->` type($result)^)?
  }];
  let hasVerifier = 1;
}

#endif // KILN_TFM_OPS_TD
