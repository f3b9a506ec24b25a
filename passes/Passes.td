//===- Passes.td - Kiln pass declarations ------------------*- tablegen -*-===//
//
// Every Kiln pass. File, flag (--kiln-<name>), DEBUG_TYPE and lit test share
// one name: passes/<family>/<Name>.cpp <-> --kiln-<name> <->
// test/Passes/<family>/<name>.mlir.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_TD
#define KILN_PASSES_TD

include "mlir/Pass/PassBase.td"

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

def SpecializeEntryPoints : Pass<"kiln-specialize-entry-points", "mlir::ModuleOp"> {
  let summary = "Clone the raised @forward into static-shaped @prefill and @decode";
  let description = [{
    The importer produces one `@forward` with dynamic batch, sequence and
    cache length. This pass clones it into the runtime's entry points with
    every shape static, so that memory can be planned ahead of time:

    * `@prefill`: tokens and positions `[batch, prefill-chunk]`; its logits
      `[batch, 1, vocab]`, the chunk's last row (the runtime places each
      sequence's last token there), with `prefill-logits=both` (default) or
      `last`, `[batch, prefill-chunk, vocab]` with `all`;
    * `@prefill_all` (with `both`): the same with every row's logits;
    * `@decode`: tokens and positions `[batch, 1]`;
    * `@decode_b<N>` for each N of `decode-batches` (each below `batch`):
      the same for N sequences, the first N rows of the caches, so that a
      server with few sequences running pays for those rows only;
    * KV caches `[batch, kv_heads, max-seq-len, head_dim]` in all (`[N, ...]`
      in `@decode_b<N>`); with `kv-block-size` B, paged: each cache is a pool
      `[kv-blocks, kv_heads, B, head_dim]` shared by all entries, and every
      entry takes a block table `[batch, ceil(max-seq-len / B)]` i32 after
      the caches (marked `kiln.block_table`) that every `tfm.kv_append` and
      `tfm.attention` reads through.

    Result types of the tfm ops are re-derived from the new operand types
    through their `InferTypeOpInterface`. Each entry returns, after the
    logits and caches, the next token of every logits row: `tfm.argmax`
    (greedy), or with `sampling` (GPU targets) `tfm.sample` of two more
    arguments, the per-sequence parameters `[batch, 4]` f32 (temperature,
    top_k, top_p, min_p; temperature 0 is greedy) and keys `[batch]` i64, so
    that sampling too returns one id per sequence and no logits row leaves
    the device (the entry is marked `kiln.sampling`).
    `@forward` is erased. Before:

    ```mlir
    func.func @forward(%ids: tensor<?x?xi64>, %pos: tensor<?x?xi64>,
                       %k0: tensor<?x2x?x32xf32>, ...) -> (...)
    ```

    The options' defaults and their check (`checkEntryShape`, the same one
    kiln-compile runs on its flags) are in `passes/EntryShape.h`.

    After (`prefill-chunk=4 max-seq-len=16`):

    ```mlir
    func.func @prefill(%ids: tensor<1x4xi64>, %pos: tensor<1x4xi64>,
                       %k0: tensor<1x2x16x32xf32>, ...) -> (...)
    func.func @decode(%ids: tensor<1x1xi64>, %pos: tensor<1x1xi64>,
                      %k0: tensor<1x2x16x32xf32>, ...) -> (...)
    ```
  }];
  let options = [
    Option<"batch", "batch", "int64_t", "::kiln::kDefaultBatch",
           "Sequences per call">,
    Option<"prefillChunk", "prefill-chunk", "int64_t",
           "::kiln::kDefaultPrefillChunk",
           "Tokens per prefill call (the runtime pads the last chunk)">,
    Option<"maxSeqLen", "max-seq-len", "int64_t", "::kiln::kDefaultMaxSeqLen",
           "Context length the KV cache holds">,
    Option<"prefillLogits", "prefill-logits", "std::string", "\"both\"",
           "Logits of the prefill chunk: last (@prefill returns each "
           "sequence's last row only, the one sampled), all (every row), or "
           "both (@prefill with the last row and @prefill_all with every "
           "row, for perplexity and logit dumps)">,
    Option<"sampling", "sampling", "bool", "false",
           "Entries take sampling parameters and keys and end with "
           "tfm.sample instead of tfm.argmax (GPU targets)">,
    ListOption<"decodeBatches", "decode-batches", "int64_t",
               "More decode entries, for fewer sequences than `batch`: "
               "@decode_b<N> over the first N rows of the KV cache "
               "(kiln-bind-buffers lays every entry's caches out at the "
               "largest batch's offsets)">,
    Option<"kvBlockSize", "kv-block-size", "int64_t", "0",
           "Paged KV cache: positions per block (0: one contiguous "
           "[batch, kv_heads, max-seq-len, head_dim] cache per layer)">,
    Option<"kvBlocks", "kv-blocks", "int64_t", "0",
           "Paged KV cache: blocks in each layer's pool (0: enough for every "
           "row at max-seq-len, batch * ceil(max-seq-len / kv-block-size))">,
  ];
  let dependentDialects = ["mlir::func::FuncDialect", "kiln::KilnDialect",
                           "mlir::tensor::TensorDialect"];
}

def NarrowLogits : Pass<"kiln-narrow-logits", "mlir::func::FuncOp"> {
  let summary = "Compute only the logits rows an entry point returns";
  let description = [{
    Runs after `--kiln-lower-tfm-to-linalg`. An entry point whose logits are
    a `tensor.extract_slice` of the model's (`@prefill` with
    `prefill-logits=last`: each sequence's last row) computes only those
    rows: upstream's bubble-up patterns move the slice above each producer
    that only the slice uses (the logits projection, its f16 epilogue, the
    final RMSNorm), and above fills (`linalg.fill` of a slice), one producer
    at a time, starting from the slices the entry returns and rewriting only
    the ops they create. For a 2048-token chunk of a 128k-word vocabulary this
    removes a [2048 x 128256] projection and its f32 accumulator.

    ```mlir
    %acc = linalg.generic ... ins(%x, %w : tensor<1x64x384xf16>, ...) -> tensor<1x64x8192xf32>
    %l = tensor.extract_slice %acc[0, 63, 0] [1, 1, 8192] [1, 1, 1]
    ```
    becomes
    ```mlir
    %xs = tensor.extract_slice %x[0, 63, 0] [1, 1, 384] [1, 1, 1]
    %l = linalg.generic ... ins(%xs, %w : tensor<1x1x384xf16>, ...) -> tensor<1x1x8192xf32>
    ```
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect",
                           "mlir::tensor::TensorDialect"];
}

//===----------------------------------------------------------------------===//
// Tensor parallelism (tfm -> tfm)
//===----------------------------------------------------------------------===//

def ShardTensorParallel : Pass<"kiln-shard-tensor-parallel", "mlir::ModuleOp"> {
  let summary = "One rank's program of a model split over `ranks` GPUs "
                "(Megatron-style tensor parallelism)";
  let description = [{
    Splits each decoder layer as Megatron-LM does, so that every rank reads
    `1/ranks` of the layer's weights and two all-reduces join the ranks:

    - the q/k/v projections by output columns, whole heads: rank `r` keeps
      query heads `[r H/N, (r+1) H/N)` and KV heads `[r KV/N, (r+1) KV/N)`
      (each GQA group stays on one rank); `tfm.attention` gets the local
      head counts and its KV caches (function arguments) `KV/N` heads;
    - o_proj by input rows, followed by `tfm.all_reduce`;
    - gate/up by output columns (SwiGLU works on the local columns), down
      by input rows, followed by `tfm.all_reduce`;
    - the lm_head (`tfm.logits`) by vocabulary, followed by
      `tfm.all_gather` of the logits along the vocabulary;
    - the embedding table by vocabulary (`tfm.embedding ... rows from`
      `@<table>.first_row`, a weight holding the slice's first row: ids
      outside the rank's rows look up zeros), followed by `tfm.all_reduce`;
      a tied table's slice is the lm_head's global.

    A vocabulary that `ranks` does not divide keeps the whole lm_head and
    table on every rank (so does a table that is not a constant). Norms stay
    whole. The program is the same
    on every rank (SPMD): only the weights differ. Each split weight is a
    new global `@<name>.shard` holding rank `rank`'s block, so the pass runs
    once per rank on a copy of the imported module and each rank's weights
    are stored once. A row-split projection's bias is kept by rank 0 (the
    others add zeros) so that the all-reduce adds it once. The module gets
    `tfm.tensor_parallel = ranks` and `tfm.rank = rank`.

    ```mlir
    %q = tfm.linear %x, %wq layout = <in_out> : (tensor<?x?x128xf32>, tensor<128x128xf32>) -> tensor<?x?x128xf32>
    ...
    %o = tfm.linear %a, %wo layout = <in_out> : (tensor<?x?x128xf32>, tensor<128x128xf32>) -> tensor<?x?x128xf32>
    ```

    becomes, for `ranks=2`, `tfm.linear %x, %wq.shard` over
    `tensor<128x64xf32>`, attention over half the heads, and
    `tfm.all_reduce` of `tfm.linear %a, %wo.shard` over `tensor<64x128xf32>`.

    Runs on the imported module, before `kiln-specialize-entry-points` and
    every fusion; a layer it cannot split (head counts or features not
    multiples of `ranks`, a quantized or computed weight, a projection with
    other users) is an error naming the op. `ranks=1` changes nothing.
    `kiln-compile --tensor-parallel N`.
  }];
  let options = [
    Option<"ranks", "ranks", "int64_t", "1", "Ranks the model is split over">,
    Option<"rank", "rank", "int64_t", "0", "The rank whose program and "
           "weights to make">,
  ];
  let dependentDialects = ["mlir::ml_program::MLProgramDialect"];
}

//===----------------------------------------------------------------------===//
// Fusion (tfm -> tfm)
//===----------------------------------------------------------------------===//

def FuseProjections : Pass<"kiln-fuse-projections", "mlir::ModuleOp"> {
  let summary = "One projection for the tfm.linear ops that share an input "
                "(q/k/v, gate/up), over weights concatenated at compile time";
  let description = [{
    Horizontal fusion: the `tfm.linear` ops of a function that read the same
    activation, have constant weights (`ml_program.global_load_const`) of one
    layout and element type, and all or none a bias, become one `tfm.linear`
    over a new global holding their weights side by side along the output
    dimension (rows appended for `out_in`, each row's columns joined for
    `in_out`). Each old result is a `tensor.extract_slice` of the fused one.

    ```mlir
    %q = tfm.linear %x, %wq layout = <in_out> : (tensor<1x1x16xf32>, tensor<16x16xf32>) -> tensor<1x1x16xf32>
    %k = tfm.linear %x, %wk layout = <in_out> : (tensor<1x1x16xf32>, tensor<16x8xf32>) -> tensor<1x1x8xf32>
    ```

    becomes a `tfm.linear` by `@wq.fused : tensor<16x24xf32>` and two slices.
    Globals that are no longer loaded are erased. Needs static shapes: runs
    after `kiln-specialize-entry-points`; the entry points share fused
    weights. `kiln-compile --no-fuse=projections` turns it off.

    With `transpose-in-out`, `[in, out]` weights are joined and stored
    `[out, in]` in one copy (the fused projection gets `layout = <out_in>`),
    so that `kiln-transpose-weights` after it does not copy them again.
  }];
  let options = [
    Option<"transposeInOut", "transpose-in-out", "bool", "false",
           "Store joined [in, out] weights [out, in]">,
  ];
  let dependentDialects = ["mlir::tensor::TensorDialect",
                           "mlir::ml_program::MLProgramDialect"];
}

def FuseSwiGlu : Pass<"kiln-fuse-swiglu", "mlir::func::FuncOp"> {
  let summary = "Compute SwiGLU in the gate/up projection";
  let description = [{
    `tfm.swiglu` of the two halves (`tensor.extract_slice`, gate first) of
    one `tfm.linear` (the gate/up projection `kiln-fuse-projections` joined)
    becomes that linear with `swiglu`: its result is
    `silu(y[..., n]) * y[..., n + N/2]`, so the N-wide projection is never
    stored and the activation needs no launch of its own (a GEMV kernel
    computes columns n and n + N/2 together).

    ```mlir
    %gu = tfm.linear %x, %w layout = <out_in> : (tensor<1x1x64xf16>, tensor<256x64xf16>) -> tensor<1x1x256xf16>
    %g = tensor.extract_slice %gu[0, 0, 0] [1, 1, 128] [1, 1, 1] : tensor<1x1x256xf16> to tensor<1x1x128xf16>
    %u = tensor.extract_slice %gu[0, 0, 128] [1, 1, 128] [1, 1, 1] : tensor<1x1x256xf16> to tensor<1x1x128xf16>
    %y = tfm.swiglu %g, %u : tensor<1x1x128xf16>
    ```

    becomes `%y = tfm.linear %x, %w layout = <out_in> swiglu : (...) ->
    tensor<1x1x128xf16>`. Does not fire when the projection or a half has
    another user, or the halves are not [0, N/2) as gate and [N/2, N) as up.
    Runs after `kiln-fuse-projections`; `kiln-compile --no-fuse=swiglu`
    turns it off.
  }];
  let dependentDialects = ["mlir::tensor::TensorDialect"];
}

def FuseNormProjection : Pass<"kiln-fuse-norm-projection", "mlir::ModuleOp"> {
  let summary = "Fold each RMSNorm into the projections that consume it";
  let description = [{
    A `tfm.rms_norm` whose every user is a `tfm.linear` with a constant
    weight (`ml_program.global_load_const`) and no `rms_norm_epsilon` of its
    own disappears: each such linear reads the norm's input instead, its
    weight becomes `W[n, k] * gain[k]` (a new global made at compile time,
    `@<weight>.<gain>`, shared by the entry points) and it gets
    `rms_norm eps = <epsilon>`, so that the projection's kernel computes the
    row's inverse RMS from the activation it reads anyway:

    ```mlir
    %n = tfm.rms_norm %h, %gain {epsilon = 1.0e-05 : f32} : tensor<1x1x64xf16>, tensor<64xf16>
    %y = tfm.linear %n, %w layout = <out_in> : (tensor<1x1x64xf16>, tensor<96x64xf16>) -> tensor<1x1x96xf16>
    ```

    becomes `tfm.linear %h, %w.gain layout = <out_in> rms_norm eps = 1.0e-05`.
    It does not fire when the norm's result has any other user (a residual,
    a returned value, a `tfm.logits`) or the gain is not a constant.
    Runs after `kiln-fuse-projections` (one fold per fused q/k/v and gate/up
    weight) and before `kiln-transpose-weights` and quantization, which take
    the folded weights. `kiln-compile --no-fuse=norm` turns it off.
  }];
  let dependentDialects = ["mlir::ml_program::MLProgramDialect"];
}

def TransposeWeights : Pass<"kiln-transpose-weights", "mlir::ModuleOp"> {
  let summary = "Store constant [in, out] projection weights [out, in]";
  let description = [{
    Every `tfm.linear` and `tfm.logits` with `layout = <in_out>` and a
    constant weight (`ml_program.global_load_const`) gets `layout = <out_in>`
    and a transposed copy of its weight, made at compile time
    (`@<name>.t`, shared by the entry points). Each output's weights are then
    one contiguous row: the GPU's `gemv_nk` reads them with coalesced
    16-byte loads, a warp per output. Originals nothing else reads are
    erased. Runs after `kiln-fuse-projections{transpose-in-out}`, which
    stores the joined q/k/v and gate/up weights `[out, in]` itself, so each
    weight is copied once. `kiln-compile --no-fuse=transpose-weights` keeps
    the exported layout.
  }];
  let dependentDialects = ["mlir::ml_program::MLProgramDialect"];
}

//===----------------------------------------------------------------------===//
// Quantization (tfm -> tfm)
//===----------------------------------------------------------------------===//

def QuantizeWeights : Pass<"kiln-quantize-weights", "mlir::ModuleOp"> {
  let summary = "Weight-only int8/int4 quantization of the projections";
  let description = [{
    Replaces the constant weight of every `tfm.linear` (and of `tfm.logits`
    with `lm-head`) by a `tfm.dequantize` of packed unsigned codes and
    per-group scales computed at compile time, the weight read `[out, in]`
    whatever its layout was. Groups run along the input features:
    `group-size` of them (0: one group per row, int8 only). Symmetric by
    default (the element of largest magnitude takes code 0, the zero point
    is implicit); `asymmetric` adds a zero point per group. Embeddings keep
    their float type. A weight whose input features are not a multiple of
    the group size stays float, with a warning.

    ```mlir
    %y = tfm.linear %x, %w layout = <out_in>
        : (tensor<1x1x64xf16>, tensor<32x64xf16>) -> tensor<1x1x32xf16>
    ```

    becomes, with `scheme=int4 group-size=32`,

    ```mlir
    %p = ml_program.global_load_const @w.int4g32.packed : tensor<32x32xi8>
    %s = ml_program.global_load_const @w.int4g32.scales : tensor<32x2xf16>
    %d = tfm.dequantize %p, %s {bits = 4 : i64, group_size = 32 : i64}
        : tensor<32x32xi8>, tensor<32x2xf16> -> tensor<32x64xf16>
    %y = tfm.linear %x, %d layout = <out_in> : ...
    ```
  }];
  let options = [
    Option<"scheme", "scheme", "std::string", "\"int8\"",
           "int8 or int4">,
    Option<"groupSize", "group-size", "int64_t", "0",
           "Input features per scale (a power of two; 0: one per row, int8 only)">,
    Option<"asymmetric", "asymmetric", "bool", "false",
           "A zero point per group (else symmetric)">,
    Option<"lmHead", "lm-head", "bool", "false",
           "Quantize the logits projection too">,
  ];
  let dependentDialects = ["kiln::tfm::TfmDialect",
                           "mlir::ml_program::MLProgramDialect"];
}

def FuseElementwise : Pass<"kiln-fuse-elementwise", "mlir::func::FuncOp"> {
  let summary = "Fuse single-use elementwise linalg.generic producers into "
                "their consumers (upstream elementwise fusion, on tensors)";
  let description = [{
    Runs upstream's `populateElementwiseOpsFusionPatterns` after
    `kiln-lower-tfm-to-linalg`, before bufferization, limited to producers
    whose result has one user (a multi-use producer would be recomputed in
    each consumer) and to consumers without reduction loops (matrix products,
    norms and softmax sums keep plain operands for the kernel library and the
    reduction mappings). The producer's body is inlined into the consumer's; its
    result never reaches memory, and on GPU targets it needs no launch of
    its own. `kiln-compile --no-fuse=elementwise` turns it off.
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect"];
}

//===----------------------------------------------------------------------===//
// Lowering
//===----------------------------------------------------------------------===//

def LowerTfmToLinalg : Pass<"kiln-lower-tfm-to-linalg", "mlir::func::FuncOp"> {
  let summary = "Reference lowering of every tfm op to linalg on tensors";
  let description = [{
    Rewrites each `tfm` op into target-neutral `linalg.generic`s (and
    `scf.for` + `tensor.insert_slice` for the KV-cache scatter) on static
    shapes, accumulating in f32. This is the reference path that runs on the
    CPU target and that the GPU target maps onto blocks and threads; tuned
    kernels replace individual ops later. A row whose position is negative is
    padding: `tfm.kv_append` skips it and its attention output is zero.

    It runs as a dialect conversion with `tfm` illegal (one pattern base for
    every op, `lowering/tfm/LowerTfm.h`: static shapes required, one result
    replaced; the patterns in `lowering/tfm/`), except that a
    `tfm.dequantize` read only by projections lowers fused into them (one
    reduction over the packed codes, tagged `kiln.region`) and then goes.

    ```mlir
    %y = tfm.swiglu %g, %u : tensor<1x4x352xf32>
    ```
    becomes
    ```mlir
    %e = tensor.empty() : tensor<1x4x352xf32>
    %y = linalg.generic {...} ins(%g, %u : ...) outs(%e : ...) {
      // g * sigmoid(g) * u in f32
    }
    ```
  }];
  let dependentDialects = [
    "mlir::arith::ArithDialect", "mlir::linalg::LinalgDialect",
    "mlir::math::MathDialect", "mlir::scf::SCFDialect",
    "mlir::tensor::TensorDialect", "mlir::affine::AffineDialect"
  ];
}

def BindBuffers : Pass<"kiln-bind-buffers", "mlir::ModuleOp"> {
  let summary = "Bind weights, KV cache and I/O to the runtime's byte buffers";
  let description = [{
    Rewrites each entry point to the runtime ABI
    `(weights, kv, arena, io : memref<Nxi8>) -> ()`:

    * every `ml_program.global` gets a 64-byte aligned `kiln.offset` in the
      weights section, and its loads become views of the weights buffer;
    * each layer's K and V cache becomes a view of the KV buffer at its
      `kiln.offset`, updated in place (`materialize_in_destination`);
    * token ids, positions and logits become views of the I/O buffer;
    * the arena argument is left empty for `--kiln-plan-memory`.

    The byte layout is recorded as attributes (`kiln.kv_offsets`,
    `kiln.io`, ...) that the artifact writer reads.
  }];
  let dependentDialects = [
    "mlir::bufferization::BufferizationDialect", "mlir::memref::MemRefDialect",
    "mlir::arith::ArithDialect", "mlir::ml_program::MLProgramDialect"
  ];
}

def LowerLinalgToLoops : Pass<"kiln-lower-linalg-to-loops", "mlir::func::FuncOp"> {
  let summary = "Bufferized linalg ops to loop nests, except those given a hand-built kernel";
  let description = [{
    `convert-linalg-to-parallel-loops` (or `-loops` with `parallel=false`)
    for every linalg op on buffers that carries no `kiln.kernel` attribute;
    ops tagged by `--kiln-select-kernels` stay whole so that
    `--kiln-map-loops-to-gpu` can hand them to their kernel recipe. When the
    outer loop's bound is `select(c, n, 0)` with n constant (the KV append's
    guarded write of one row), the loop goes under `scf.if c` with bound n.
  }];
  let options = [
    Option<"parallel", "parallel", "bool", "true",
           "Parallel dimensions become scf.parallel (else scf.for)">,
  ];
  let dependentDialects = ["mlir::scf::SCFDialect", "mlir::memref::MemRefDialect",
                           "mlir::affine::AffineDialect", "mlir::arith::ArithDialect"];
}

def OutlineLoopNests : Pass<"kiln-outline-loop-nests", "mlir::ModuleOp"> {
  let summary = "Move each top-level loop nest of an entry point into a "
                "noinline function of its own (CPU target)";
  let description = [{
    LLVM's machine passes grow faster than linearly in a function's size, and
    the CPU target's entry points hold every loop nest of the model: a real
    model's `@prefill` took minutes to code-generate. Each top-level op with
    regions (a loop nest) of a public function becomes a call of a private
    `no_inline` function `@<entry>_nest<N>`. The pure ops that produce its
    operands (views of the entry point's buffers, constants) are cloned into
    it, so only the entry point's arguments cross the call.

    ```mlir
    %v = memref.view %arena[%c0][] : memref<64xi8> to memref<4xf32>
    scf.for %i = %c0 to %c4 step %c1 { memref.store %f, %v[%i] : memref<4xf32> }
    ```

    becomes `func.call @prefill_nest0(%arena)` and a function holding the view
    and the loop.
  }];
  let dependentDialects = ["mlir::func::FuncDialect"];
}

def PromoteAccumulators : Pass<"kiln-promote-accumulators", "mlir::func::FuncOp"> {
  let summary = "Carry a loop's loop-invariant accumulator element in a "
                "register, its sum reassociable (CPU target)";
  let description = [{
    A reduction lowered from linalg loads, updates and stores its accumulator
    on every iteration. When the loop loads and stores one element at
    loop-invariant indices and touches no buffer that may overlap it (views
    of the entry point's distinct buffer arguments at static byte offsets
    overlap only when their ranges do), the element becomes an `iter_args`
    value loaded before and stored after the loop, and the `arith.addf`
    that combines it gets `fastmath<reassoc, contract>` so that LLVM can
    vectorize the sum.

    ```mlir
    scf.for %k = %c0 to %c64 step %c1 {
      %a = memref.load %acc[%i] : memref<4xf32>
      %x = memref.load %in[%k] : memref<64xf32>
      %s = arith.addf %a, %x : f32
      memref.store %s, %acc[%i] : memref<4xf32>
    }
    ```

    becomes a load of `%acc[%i]`, an `scf.for ... iter_args` yielding the
    sum, and one store after it.
  }];
  let dependentDialects = ["mlir::scf::SCFDialect", "mlir::memref::MemRefDialect"];
}

def LowerCollectivesToCalls : Pass<"kiln-lower-collectives-to-calls", "mlir::ModuleOp"> {
  let summary = "Bufferized collectives to calls of the runtime's host "
                "collectives (CPU target)";
  let description = [{
    Each entry point with a bufferized `tfm.all_reduce` or `tfm.all_gather`
    gets a fifth argument, `!llvm.ptr` to the runtime's `KilnHostCollectives`
    of the rank running it (`kiln/runtime/Collectives.h`), and each
    collective becomes an indirect `llvm.call` through the function pointer
    of its slot, with the buffers' addresses, the element count and the
    element type's code:

    ```mlir
    tfm.all_reduce %buf {ranks = 2 : i64} : memref<1x1x4xf32>
    ```

    becomes a load of slot 0 of the new argument and
    `llvm.call %fn(%ctx, %p, 4, 0)`. The buffers must be contiguous
    (bound views of the runtime's buffers are). The first pass of the CPU's
    lowering to LLVM.
  }];
  let dependentDialects = ["mlir::LLVM::LLVMDialect",
                           "mlir::arith::ArithDialect",
                           "mlir::memref::MemRefDialect"];
}

def LowerSubgroupReduce : Pass<"kiln-lower-subgroup-reduce", "mlir::gpu::GPUModuleOp"> {
  let summary = "gpu.subgroup_reduce to warp shuffles (butterfly, 32 lanes)";
  let description = [{
    Applies upstream's subgroup-reduce lowerings: vectors and wide types are
    broken into 32-bit pieces, then every `gpu.subgroup_reduce` (clustered or
    not) becomes a butterfly of `gpu.shuffle xor`, which
    `convert-gpu-to-nvvm` turns into `shfl.sync.bfly`.
  }];
  let options = [
    Option<"subgroupSize", "subgroup-size", "unsigned", "32",
           "Lanes in a subgroup (a warp)">,
  ];
  let dependentDialects = ["mlir::gpu::GPUDialect", "mlir::arith::ArithDialect",
                           "mlir::vector::VectorDialect"];
}

def DeduplicateKernels : Pass<"kiln-deduplicate-kernels", "mlir::ModuleOp"> {
  let summary = "Generate each distinct kernel once: the layers share kernels "
                "that differ only in the tensors they touch";
  let description = [{
    Runs after `--kiln-map-loops-to-gpu` (and `--kiln-dependent-launch`).
    A kernel addresses every tensor as a `memref.view` of one of the four
    runtime buffers at a constant byte offset, so the same layer at another
    depth is the same kernel up to those constants. Each such view becomes a
    parameter of the kernel of the view's type; the launch passes the view,
    made on the host, which the artifact records as (buffer, offset, bytes).
    Kernels whose bodies are then identical (same code, block size and
    signature) are merged into the first: its launches serve every layer.

    ```mlir
    // before: one kernel per layer
    gpu.func @decode_k3(%w: memref<Nxi8>, ...) kernel {
      %c = arith.constant 4096 : index
      %v = memref.view %w[%c][] : memref<Nxi8> to memref<64xf32>
      ...
    // after: one kernel; each launch passes its layer's view
    gpu.func @decode_k3(%w: memref<Nxi8>, ..., %v: memref<64xf32>) kernel {
    ```

    The compile report counts the distinct kernels. `kiln-compile
    --no-fuse=dedup-kernels` leaves one kernel per launch (to measure the
    effect).
  }];
}

def DependentLaunch : Pass<"kiln-dependent-launch", "mlir::ModuleOp"> {
  let summary = "Let each kernel launch while the one before it finishes "
                "(programmatic dependent launch, sm_90+)";
  let description = [{
    Every kernel of the module starts with

    ```mlir
    llvm.inline_asm has_side_effects "griddepcontrol.wait;", "~{memory}"
    llvm.inline_asm has_side_effects "griddepcontrol.launch_dependents;", "~{memory}"
    ```

    (inline PTX that LLVM may not move loads across, unlike the
    `llvm.nvvm.griddepcontrol.*` intrinsics, which are `IntrNoMem`)

    so that the runtime can launch an entry's kernels as programmatic
    dependent launches (`cuLaunchKernelEx` with programmatic stream
    serialization): the next kernel's blocks are scheduled while this one
    runs and wait, before touching memory, until it has finished and its
    writes are visible. A decode step is ~90 launches of a few microseconds
    each; this hides the gap between them. Index arithmetic and loads of the
    weights (an argument marked `kiln.weights`) may come before the wait, so
    a GEMV's first weight loads overlap the kernel before. Each
    `gpu.launch_func` of such a kernel gets `kiln.waits_for_previous`, which
    the artifact records per launch: the runtime launches only those as
    dependent launches. Only for sm_90 and later (`griddepcontrol` needs PTX
    ISA 7.8 on sm_90); the runtime never asks for it on older devices.
  }];
  let dependentDialects = ["mlir::LLVM::LLVMDialect",
                           "mlir::NVVM::NVVMDialect"];
}

def MapLoopsToGpu : Pass<"kiln-map-loops-to-gpu", "mlir::ModuleOp"> {
  let summary = "Turn each planned loop nest of an entry point into a GPU kernel";
  let description = [{
    Runs after bufferization, `convert-linalg-to-parallel-loops` and
    `--kiln-plan-memory`. Every top-level loop nest (or other op that writes
    memory) of an entry point becomes one `gpu.func` in `gpu.module
    @kiln_kernels`, taking the four runtime buffers (weights, kv, arena, io)
    as its only parameters: the views it reads are rematerialised inside the
    kernel, so kernels address everything from the four base pointers. The
    entry point becomes its launch schedule: a sequence of
    `gpu.launch_func`s with static grid and block sizes.

    Mapping, in order of preference:
    - an op tagged `kiln.kernel` by `--kiln-select-kernels` gets its recipe's
      hand-built kernel (passes/kernels/KernelLibrary.h);
    - a reduction (a loop folding values into one accumulator element, alone
      or under a parallel nest: RMSNorm, softmax, q.k, p.v, matrix products)
      keeps its partial sums in registers: a warp per output, or a block for
      few long rows, combining lanes with `gpu.subgroup_reduce` and warps
      through workgroup memory, when its loads run along the reduction; a
      thread per output otherwise;
    - the iteration space of a top-level `scf.parallel` (also under a uniform
      `scf.if`) is flattened onto `threads-per-block`-wide blocks, one point
      per thread;
    - anything else runs on a single thread.
    A constant fill of an accumulator right before the kernel that reduces
    into all of it is fused into that kernel. Each launch records its mapping
    as `kiln.mapping` (kiln-compile reports the counts).

    ```mlir
    func.func @decode(%w: memref<Nxi8>, %kv: ..., %arena: ..., %io: ...) {
      scf.parallel (%i) = (%c0) to (%c128) step (%c1) { ... }
    ```
    becomes
    ```mlir
    gpu.module @kiln_kernels {
      gpu.func @decode_k0(%w: memref<Nxi8>, ...) kernel { ... gpu.return }
    }
    func.func @decode(...) {
      gpu.launch_func @kiln_kernels::@decode_k0 blocks in (%c1, %c1, %c1)
          threads in (%c128, %c1, %c1) args(%w : ..., %kv : ..., ...)
    ```
  }];
  let options = [
    Option<"threadsPerBlock", "threads-per-block", "int64_t", "256",
           "Threads per block for the generic mapping">,
    Option<"clusterBlocks", "cluster-blocks", "int64_t", "1",
           "Most blocks a hand-built kernel may group into a thread-block "
           "cluster (sm_90 and later; 1: no clusters). Recorded on the "
           "gpu.module as kiln.cluster_blocks">,
  ];
  let dependentDialects = ["mlir::gpu::GPUDialect", "mlir::scf::SCFDialect",
                           "mlir::arith::ArithDialect", "mlir::memref::MemRefDialect",
                           "mlir::vector::VectorDialect", "mlir::nvgpu::NVGPUDialect",
                           "mlir::NVVM::NVVMDialect", "mlir::LLVM::LLVMDialect"];
}

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

def SelectKernels : Pass<"kiln-select-kernels", "mlir::ModuleOp"> {
  let summary = "Give ops a hand-built GPU kernel where the kernel library has one";
  let description = [{
    Runs on bufferized entry points, before their linalg ops become loops.
    Asks every recipe of the kernel library (passes/kernels/KernelLibrary.h)
    whether it implements a linalg op of an entry point and tags the op with
    the first that does: `kiln.kernel = "<recipe>"`. Tagged ops skip the loop
    lowering and the generic thread mapping; `--kiln-map-loops-to-gpu` has the
    recipe build their kernel. `disable` names recipes not to use.

    ```mlir
    linalg.generic {...} ins(%x, %w : memref<1x1x2048xf16>, memref<2048x8192xf16>)
        outs(%acc : memref<1x1x8192xf32>) {...}
    ```
    becomes the same op with `{kiln.kernel = "gemv_kn"}`.

    Epilogue fusion (`epilogues`, on by default): an elementwise
    `linalg.generic` right after a tagged op that reads the tagged op's output
    buffer (a `memref.alloc` nothing else uses) and that the recipe accepts
    (the GEMVs take any with identity maps: the f16 conversion of the f32
    accumulator, a residual add) is tagged `kiln.kernel = "epilogue"`: the
    kernel computes it in its final store, and it needs no launch. The arena
    planner gives the pair one live point, so the epilogue's output never
    shares bytes with the kernel's operands.
  }];
  let options = [
    ListOption<"disable", "disable", "std::string",
               "Recipes not to select (by name)">,
    Option<"epilogues", "epilogues", "bool", "true",
           "Fuse elementwise consumers into the kernels' final stores">,
    Option<"warpgroupMma", "warpgroup-mma", "bool", "false",
           "Also select recipes that need sm_90a's warpgroup MMA (wgmma): "
           "matmul_wgmma">,
  ];
  let dependentDialects = ["mlir::linalg::LinalgDialect"];
}

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

def PlanMemory : Pass<"kiln-plan-memory", "mlir::func::FuncOp"> {
  let summary = "Place every intermediate buffer at a static offset in one arena";
  let description = [{
    After bufferization, assigns each `memref.alloc` of static shape an
    offset in the function's arena argument (the argument marked
    `kiln.arena`) by liveness: buffers whose lifetimes do not overlap share
    memory; every offset respects `alignment`. Lifetimes are measured on the
    function's top-level ops: a buffer allocated or used inside a loop is live
    for the whole loop. Allocations become `memref.view`s of the arena, their
    deallocations are erased, the arena argument's type becomes
    `memref<SIZExi8>` and the function gets `kiln.arena_size` and a
    `kiln.memory_plan`: one `#kiln.buffer<offset, size, start, end>` per
    buffer (dialects/Kiln, verified). The default alignment is the runtime's
    `kBufferAlignment`. Finally the plan is checked: two buffers live at the same time
    never overlap in bytes; a violation is a compile error.

    ```mlir
    func.func @f(%arena: memref<0xi8> {kiln.arena}) {
      %a = memref.alloc() : memref<16xf32>   // live [0, 2]
      %b = memref.alloc() : memref<16xf32>   // live [3, 4]
    ```
    becomes
    ```mlir
    func.func @f(%arena: memref<64xi8> {kiln.arena})
        attributes {kiln.arena_size = 64 : i64, kiln.memory_plan = [
          #kiln.buffer<offset = 0, size = 64, start = 0, end = 2>,
          #kiln.buffer<offset = 0, size = 64, start = 3, end = 4>]} {
      %a = memref.view %arena[%c0][] : memref<64xi8> to memref<16xf32>
      %b = memref.view %arena[%c0][] : memref<64xi8> to memref<16xf32>
    ```
  }];
  let options = [
    Option<"alignment", "alignment", "int64_t",
           "static_cast<int64_t>(::kiln::runtime::kBufferAlignment)",
           "Byte alignment of every buffer">,
  ];
  let dependentDialects = ["kiln::KilnDialect", "mlir::memref::MemRefDialect",
                           "mlir::arith::ArithDialect"];
}

#endif // KILN_PASSES_TD
