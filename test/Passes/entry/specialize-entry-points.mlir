// RUN: kiln-opt %s --kiln-specialize-entry-points="batch=2 prefill-chunk=4 max-seq-len=16 prefill-logits=all" --split-input-file \
// RUN:   | FileCheck %s --implicit-check-not=@forward
// RUN: kiln-opt %s --kiln-specialize-entry-points="batch=2 prefill-chunk=4 max-seq-len=16 prefill-logits=all" --split-input-file \
// RUN:   | FileCheck %s --check-prefix=STATIC
// The default (prefill-logits=both): @prefill returns each sequence's last
// logits row (a slice of row 3 of 4, the argmax of it), @prefill_all every
// row; with last, no @prefill_all.
// RUN: kiln-opt %s --kiln-specialize-entry-points="batch=2 prefill-chunk=4 max-seq-len=16" --split-input-file \
// RUN:   | FileCheck %s --check-prefix=BOTH
// RUN: kiln-opt %s --kiln-specialize-entry-points="batch=2 prefill-chunk=4 max-seq-len=16 prefill-logits=last" --split-input-file \
// RUN:   | FileCheck %s --check-prefix=LAST --implicit-check-not=@prefill_all
// RUN: not kiln-opt %s --kiln-specialize-entry-points="prefill-logits=some" --split-input-file 2>&1 \
// RUN:   | FileCheck %s --check-prefix=BAD
// BAD: error: prefill-logits must be last, all or both, not 'some'
// decode-batches adds decode entries for fewer sequences, by size: each
// takes the first N rows of every cache; a size not below batch is refused.
// RUN: kiln-opt %s --kiln-specialize-entry-points="batch=3 prefill-chunk=4 max-seq-len=16 decode-batches=2,1" --split-input-file \
// RUN:   | FileCheck %s --check-prefix=FEWER
// FEWER-LABEL: func.func @decode(%{{.+}}: tensor<3x1xi64>
// FEWER-SAME: tensor<3x1x16x4xf32>
// FEWER-LABEL: func.func @decode_b1(%{{.+}}: tensor<1x1xi64>
// FEWER-SAME: tensor<1x1x16x4xf32>
// FEWER-SAME: -> (tensor<1x1x16xf32>, tensor<1x1x16x4xf32>, tensor<1x1x16x4xf32>, tensor<1x1xi64>)
// FEWER-SAME: kiln.entry = "decode_b1"
// FEWER: tfm.argmax {{.+}} -> tensor<1x1xi64>
// FEWER-LABEL: func.func @decode_b2(%{{.+}}: tensor<2x1xi64>
// FEWER-SAME: kiln.entry = "decode_b2"
// RUN: not kiln-opt %s --kiln-specialize-entry-points="batch=3 decode-batches=3" --split-input-file 2>&1 \
// RUN:   | FileCheck %s --check-prefix=FEWERBAD
// FEWERBAD: error: decode-batches must be distinct batch sizes from 1 to 2 (below batch), got 3
// kv-block-size pages the caches: every entry's caches are the one pool of
// kv-blocks blocks [5, kv_heads, 8, head_dim], and a block table
// [batch, ceil(16 / 8)] i32 after the caches (before sampling's arguments)
// feeds every kv_append and attention; @decode_b1 takes a table of 1 row
// over the same pool. Bad sizes are refused.
// RUN: kiln-opt %s --kiln-specialize-entry-points="batch=2 prefill-chunk=4 max-seq-len=16 kv-block-size=8 kv-blocks=5 decode-batches=1 sampling=1" --split-input-file \
// RUN:   | FileCheck %s --check-prefix=PAGED
// PAGED-LABEL: func.func @prefill(
// PAGED-SAME: %[[KC:[a-z0-9]+]]: tensor<5x1x8x4xf32> {tfm.layer = 0 : i64, tfm.role = "key_cache"}, %{{.+}}: tensor<5x1x8x4xf32> {{.+}}, %[[T:.+]]: tensor<2x2xi32>, %{{.+}}: tensor<2x4xf32>, %{{.+}}: tensor<2xi64>)
// PAGED-SAME: -> (tensor<2x1x16xf32>, tensor<5x1x8x4xf32>, tensor<5x1x8x4xf32>, tensor<2x1xi64>)
// PAGED-SAME: kiln.block_table
// PAGED: %[[K:.+]] = tfm.kv_append %{{.+}} into %[[KC]] at %{{.+}} pages %[[T]] : tensor<2x4x4xf32>, tensor<5x1x8x4xf32>, tensor<2x4xi64>, tensor<2x2xi32>
// PAGED: tfm.attention %{{.+}}, %[[K]], %{{.+}}, %{{.+}} pages %[[T]] {{.+}} : tensor<2x4x8xf32>, tensor<5x1x8x4xf32>, tensor<2x4xi64>, tensor<2x2xi32>
// PAGED-LABEL: func.func @decode_b1(
// PAGED-SAME: tensor<5x1x8x4xf32> {{.+}}, %[[T1:.+]]: tensor<1x2xi32>, %{{.+}}: tensor<1x4xf32>, %{{.+}}: tensor<1xi64>)
// PAGED: tfm.kv_append {{.+}} pages %[[T1]] : tensor<1x1x4xf32>, tensor<5x1x8x4xf32>, tensor<1x1xi64>, tensor<1x2xi32>
// RUN: not kiln-opt %s --kiln-specialize-entry-points="prefill-chunk=4 max-seq-len=16 kv-block-size=32" --split-input-file 2>&1 \
// RUN:   | FileCheck %s --check-prefix=PAGEDBAD
// PAGEDBAD: error: kv-block-size must be in [0, max-seq-len = 16] and kv-blocks >= 0 only with it (got 32, 0)
// With sampling (GPU targets), every entry takes the sampling parameters
// [batch, 4] and keys [batch] after the caches and draws its next tokens
// with tfm.sample instead of tfm.argmax.
// RUN: kiln-opt %s --kiln-specialize-entry-points="batch=2 prefill-chunk=4 max-seq-len=16 sampling=1" --split-input-file \
// RUN:   | FileCheck %s --check-prefix=SAMPLE --implicit-check-not=tfm.argmax
// SAMPLE-LABEL: func.func @prefill(
// SAMPLE-SAME: %{{.+}}: tensor<2x1x16x4xf32> {{.+}}, %[[P:.+]]: tensor<2x4xf32>, %[[S:.+]]: tensor<2xi64>) -> (tensor<2x1x16xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32>, tensor<2x1xi64>)
// SAMPLE-SAME: kiln.sampling
// SAMPLE: %[[INIT:.+]] = tensor.empty() : tensor<2x1xi64>
// SAMPLE: %[[NEXT:.+]] = tfm.sample %{{.+}}, %[[P]], %[[S]] into %[[INIT]] : tensor<2x1x16xf32>, tensor<2x4xf32>, tensor<2xi64>, tensor<2x1xi64> -> tensor<2x1xi64>
// SAMPLE: return %{{.+}}, %{{.+}}, %{{.+}}, %[[NEXT]]
// SAMPLE-LABEL: func.func @prefill_all(
// SAMPLE: tfm.sample {{.+}} -> tensor<2x4xi64>
// SAMPLE-LABEL: func.func @decode(
// SAMPLE: tfm.sample {{.+}} -> tensor<2x1xi64>
// BOTH-LABEL: func.func @prefill(
// BOTH-SAME: -> (tensor<2x1x16xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32>, tensor<2x1xi64>)
// BOTH: %[[L:.+]] = tfm.logits %{{.+}} -> tensor<2x4x16xf32>
// BOTH: %[[ROW:.+]] = tensor.extract_slice %[[L]][0, 3, 0] [2, 1, 16] [1, 1, 1] : tensor<2x4x16xf32> to tensor<2x1x16xf32>
// BOTH: %[[NEXT:.+]] = tfm.argmax %[[ROW]] : tensor<2x1x16xf32> -> tensor<2x1xi64>
// BOTH: return %[[ROW]], %{{.+}}, %{{.+}}, %[[NEXT]]
// BOTH-LABEL: func.func @prefill_all(
// BOTH-SAME: -> (tensor<2x4x16xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32>, tensor<2x4xi64>)
// BOTH-SAME: attributes {kiln.entry = "prefill_all"}
// BOTH-LABEL: func.func @decode(
// LAST-LABEL: func.func @prefill(
// LAST-SAME: -> (tensor<2x1x16xf32>,
// LAST-LABEL: func.func @decode(

// One Llama layer as the importer emits it: weights are ml_program globals
// read with global_load_const, the RoPE table is a dense constant, hidden 8,
// 2 query heads and 1 KV head of head_dim 4, FFN 12, vocab 16 (tied).
// @forward becomes @prefill (tokens [2, 4]) and @decode (tokens [2, 1]), both
// with caches [2, 1, 16, 4], every tfm result type re-derived and the argmax
// of the logits as an extra, last result. @helper is not an entry point and
// keeps its dynamic types.

// CHECK: ml_program.global private @embed
// CHECK: ml_program.global private @wd

// CHECK-LABEL: func.func @prefill
// CHECK-SAME: (%[[IDS:.+]]: tensor<2x4xi64> {tfm.role = "tokens"},
// CHECK-SAME: %[[POS:.+]]: tensor<2x4xi64> {tfm.role = "positions"},
// CHECK-SAME: %[[KC:.+]]: tensor<2x1x16x4xf32> {tfm.layer = 0 : i64, tfm.role = "key_cache"},
// CHECK-SAME: %[[VC:.+]]: tensor<2x1x16x4xf32> {tfm.layer = 0 : i64, tfm.role = "value_cache"})
// CHECK-SAME: -> (tensor<2x4x16xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32>, tensor<2x4xi64>)
// CHECK-SAME: attributes {kiln.entry = "prefill"}
// CHECK: %[[FREQ:.+]] = arith.constant dense<[1.000000e+00, 0.00999999977]> : tensor<2xf32>
// CHECK: %[[EMBED:.+]] = ml_program.global_load_const @embed : tensor<16x8xf32>
// CHECK: %[[X:.+]] = tfm.embedding %[[EMBED]][%[[IDS]]] : tensor<16x8xf32>, tensor<2x4xi64> -> tensor<2x4x8xf32>
// CHECK: %[[N:.+]] = tfm.rms_norm %[[X]], %{{.+}} {epsilon = {{.+}}} : tensor<2x4x8xf32>, tensor<8xf32>
// CHECK: %[[Q:.+]] = tfm.linear %[[N]], %{{.+}} layout = <in_out> : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
// CHECK: %[[K:.+]] = tfm.linear %[[N]], %{{.+}} layout = <in_out> : (tensor<2x4x8xf32>, tensor<8x4xf32>) -> tensor<2x4x4xf32>
// CHECK: %[[V:.+]] = tfm.linear %[[N]], %{{.+}} layout = <in_out> : (tensor<2x4x8xf32>, tensor<8x4xf32>) -> tensor<2x4x4xf32>
// CHECK: %[[QR:.+]] = tfm.rope %[[Q]], %[[POS]], %[[FREQ]] {head_dim = 4 : i64} : tensor<2x4x8xf32>, tensor<2x4xi64>, tensor<2xf32>
// CHECK: %[[KR:.+]] = tfm.rope %[[K]], %[[POS]], %[[FREQ]] {head_dim = 4 : i64} : tensor<2x4x4xf32>, tensor<2x4xi64>, tensor<2xf32>
// CHECK: %[[KC2:.+]] = tfm.kv_append %[[KR]] into %[[KC]] at %[[POS]] : tensor<2x4x4xf32>, tensor<2x1x16x4xf32>, tensor<2x4xi64>
// CHECK: %[[VC2:.+]] = tfm.kv_append %[[V]] into %[[VC]] at %[[POS]] : tensor<2x4x4xf32>, tensor<2x1x16x4xf32>, tensor<2x4xi64>
// CHECK: %[[ATT:.+]] = tfm.attention %[[QR]], %[[KC2]], %[[VC2]], %[[POS]] {{{.+}}} : tensor<2x4x8xf32>, tensor<2x1x16x4xf32>, tensor<2x4xi64>
// CHECK: %[[O:.+]] = tfm.linear %[[ATT]], %{{.+}} layout = <in_out> : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
// CHECK: %[[H:.+]] = tfm.add %[[X]], %[[O]] : tensor<2x4x8xf32>
// CHECK: %[[HN:.+]] = tfm.rms_norm %[[H]], %{{.+}} : tensor<2x4x8xf32>, tensor<8xf32>
// CHECK: %[[G:.+]] = tfm.linear %[[HN]], %{{.+}} -> tensor<2x4x12xf32>
// CHECK: %[[U:.+]] = tfm.linear %[[HN]], %{{.+}} -> tensor<2x4x12xf32>
// CHECK: %[[S:.+]] = tfm.swiglu %[[G]], %[[U]] : tensor<2x4x12xf32>
// CHECK: %[[D:.+]] = tfm.linear %[[S]], %{{.+}} : (tensor<2x4x12xf32>, tensor<12x8xf32>) -> tensor<2x4x8xf32>
// CHECK: %[[OUT:.+]] = tfm.add %[[H]], %[[D]] : tensor<2x4x8xf32>
// CHECK: %[[F:.+]] = tfm.rms_norm %[[OUT]], %{{.+}} : tensor<2x4x8xf32>, tensor<8xf32>
// CHECK: %[[L:.+]] = tfm.logits %[[F]], %[[EMBED]] layout = <out_in> {tied} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
// CHECK: %[[NEXT:.+]] = tfm.argmax %[[L]] : tensor<2x4x16xf32> -> tensor<2x4xi64>
// CHECK: return %[[L]], %[[KC2]], %[[VC2]], %[[NEXT]] : tensor<2x4x16xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32>, tensor<2x4xi64>

// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%[[IDS:.+]]: tensor<2x1xi64> {tfm.role = "tokens"},
// CHECK-SAME: %[[POS:.+]]: tensor<2x1xi64> {tfm.role = "positions"},
// CHECK-SAME: %[[KC:.+]]: tensor<2x1x16x4xf32> {tfm.layer = 0 : i64, tfm.role = "key_cache"},
// CHECK-SAME: %[[VC:.+]]: tensor<2x1x16x4xf32> {tfm.layer = 0 : i64, tfm.role = "value_cache"})
// CHECK-SAME: -> (tensor<2x1x16xf32>, tensor<2x1x16x4xf32>, tensor<2x1x16x4xf32>, tensor<2x1xi64>)
// CHECK-SAME: attributes {kiln.entry = "decode"}
// CHECK: tfm.embedding %{{.+}}[%[[IDS]]] : tensor<16x8xf32>, tensor<2x1xi64> -> tensor<2x1x8xf32>
// CHECK: %[[KC2:.+]] = tfm.kv_append %{{.+}} into %[[KC]] at %[[POS]] : tensor<2x1x4xf32>, tensor<2x1x16x4xf32>, tensor<2x1xi64>
// CHECK: %[[VC2:.+]] = tfm.kv_append %{{.+}} into %[[VC]] at %[[POS]] : tensor<2x1x4xf32>, tensor<2x1x16x4xf32>, tensor<2x1xi64>
// CHECK: tfm.attention %{{.+}}, %[[KC2]], %[[VC2]], %[[POS]] {{{.+}}} : tensor<2x1x8xf32>, tensor<2x1x16x4xf32>, tensor<2x1xi64>
// CHECK: tfm.swiglu %{{.+}}, %{{.+}} : tensor<2x1x12xf32>
// CHECK: %[[L:.+]] = tfm.logits %{{.+}}, %{{.+}} layout = <out_in> {tied} : (tensor<2x1x8xf32>, tensor<16x8xf32>) -> tensor<2x1x16xf32>
// CHECK: %[[NEXT:.+]] = tfm.argmax %[[L]] : tensor<2x1x16xf32> -> tensor<2x1xi64>
// CHECK: return %[[L]], %[[KC2]], %[[VC2]], %[[NEXT]]

// CHECK-LABEL: func.func private @helper
// CHECK-SAME: (%[[A:.+]]: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
// CHECK-NEXT: %[[R:.+]] = tfm.add %[[A]], %[[A]] : tensor<?x?x8xf32>
// CHECK-NEXT: return %[[R]]

// Nothing dynamic is left in the entry points.
// STATIC-LABEL: func.func @prefill
// STATIC-NOT: ?
// STATIC-LABEL: func.func @decode
// STATIC-NOT: ?
// STATIC-LABEL: func.func private @helper

module {
  ml_program.global private @embed(dense<1.0> : tensor<16x8xf32>) : tensor<16x8xf32>
  ml_program.global private @norm0(dense<1.0> : tensor<8xf32>) : tensor<8xf32>
  ml_program.global private @wq(dense<0.5> : tensor<8x8xf32>) : tensor<8x8xf32>
  ml_program.global private @wk(dense<0.5> : tensor<8x4xf32>) : tensor<8x4xf32>
  ml_program.global private @wv(dense<0.5> : tensor<8x4xf32>) : tensor<8x4xf32>
  ml_program.global private @wo(dense<0.5> : tensor<8x8xf32>) : tensor<8x8xf32>
  ml_program.global private @norm1(dense<1.0> : tensor<8xf32>) : tensor<8xf32>
  ml_program.global private @wg(dense<0.5> : tensor<8x12xf32>) : tensor<8x12xf32>
  ml_program.global private @wu(dense<0.5> : tensor<8x12xf32>) : tensor<8x12xf32>
  ml_program.global private @wd(dense<0.5> : tensor<12x8xf32>) : tensor<12x8xf32>
  ml_program.global private @norm(dense<1.0> : tensor<8xf32>) : tensor<8xf32>
  func.func @forward(%ids: tensor<?x?xi64> {tfm.role = "tokens"}, %pos: tensor<?x?xi64> {tfm.role = "positions"},
                     %kc: tensor<?x1x?x4xf32> {tfm.layer = 0 : i64, tfm.role = "key_cache"},
                     %vc: tensor<?x1x?x4xf32> {tfm.layer = 0 : i64, tfm.role = "value_cache"})
      -> (tensor<?x?x16xf32>, tensor<?x1x?x4xf32>, tensor<?x1x?x4xf32>) {
    %freq = arith.constant dense<[1.0, 0.01]> : tensor<2xf32>
    %embed = ml_program.global_load_const @embed : tensor<16x8xf32>
    %norm0 = ml_program.global_load_const @norm0 : tensor<8xf32>
    %wq = ml_program.global_load_const @wq : tensor<8x8xf32>
    %wk = ml_program.global_load_const @wk : tensor<8x4xf32>
    %wv = ml_program.global_load_const @wv : tensor<8x4xf32>
    %wo = ml_program.global_load_const @wo : tensor<8x8xf32>
    %norm1 = ml_program.global_load_const @norm1 : tensor<8xf32>
    %wg = ml_program.global_load_const @wg : tensor<8x12xf32>
    %wu = ml_program.global_load_const @wu : tensor<8x12xf32>
    %wd = ml_program.global_load_const @wd : tensor<12x8xf32>
    %norm = ml_program.global_load_const @norm : tensor<8xf32>
    %x = tfm.embedding %embed[%ids] : tensor<16x8xf32>, tensor<?x?xi64> -> tensor<?x?x8xf32>
    %n = tfm.rms_norm %x, %norm0 {epsilon = 1.0e-05 : f32} : tensor<?x?x8xf32>, tensor<8xf32>
    %q = tfm.linear %n, %wq layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
    %k = tfm.linear %n, %wk layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x4xf32>) -> tensor<?x?x4xf32>
    %v = tfm.linear %n, %wv layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x4xf32>) -> tensor<?x?x4xf32>
    %qr = tfm.rope %q, %pos, %freq {head_dim = 4 : i64} : tensor<?x?x8xf32>, tensor<?x?xi64>, tensor<2xf32>
    %kr = tfm.rope %k, %pos, %freq {head_dim = 4 : i64} : tensor<?x?x4xf32>, tensor<?x?xi64>, tensor<2xf32>
    %kc2 = tfm.kv_append %kr into %kc at %pos : tensor<?x?x4xf32>, tensor<?x1x?x4xf32>, tensor<?x?xi64>
    %vc2 = tfm.kv_append %v into %vc at %pos : tensor<?x?x4xf32>, tensor<?x1x?x4xf32>, tensor<?x?xi64>
    %att = tfm.attention %qr, %kc2, %vc2, %pos {head_dim = 4 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64, scale = 0.5 : f32} : tensor<?x?x8xf32>, tensor<?x1x?x4xf32>, tensor<?x?xi64>
    %o = tfm.linear %att, %wo layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
    %h = tfm.add %x, %o : tensor<?x?x8xf32>
    %hn = tfm.rms_norm %h, %norm1 {epsilon = 1.0e-05 : f32} : tensor<?x?x8xf32>, tensor<8xf32>
    %g = tfm.linear %hn, %wg layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x12xf32>) -> tensor<?x?x12xf32>
    %u = tfm.linear %hn, %wu layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x12xf32>) -> tensor<?x?x12xf32>
    %s = tfm.swiglu %g, %u : tensor<?x?x12xf32>
    %d = tfm.linear %s, %wd layout = <in_out> : (tensor<?x?x12xf32>, tensor<12x8xf32>) -> tensor<?x?x8xf32>
    %out = tfm.add %h, %d : tensor<?x?x8xf32>
    %f = tfm.rms_norm %out, %norm {epsilon = 1.0e-05 : f32} : tensor<?x?x8xf32>, tensor<8xf32>
    %l = tfm.logits %f, %embed layout = <out_in> {tied} : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
    return %l, %kc2, %vc2 : tensor<?x?x16xf32>, tensor<?x1x?x4xf32>, tensor<?x1x?x4xf32>
  }
  func.func private @helper(%a: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
    %0 = tfm.add %a, %a : tensor<?x?x8xf32>
    return %0 : tensor<?x?x8xf32>
  }
}

// -----

// Element types are kept: f16 activations and caches, i32 token ids and
// positions; the argmax is i64 whatever the ids are.

// CHECK-LABEL: func.func @prefill
// CHECK-SAME: (%[[IDS:.+]]: tensor<2x4xi32>, %[[POS:.+]]: tensor<2x4xi32>, %{{.+}}: tensor<2x2x16x8xf16>, %{{.+}}: tensor<2x2x16x8xf16>)
// CHECK-SAME: -> (tensor<2x4x32xf16>, tensor<2x2x16x8xf16>, tensor<2x2x16x8xf16>, tensor<2x4xi64>)
// CHECK: tfm.embedding %{{.+}}[%[[IDS]]] : tensor<32x16xf16>, tensor<2x4xi32> -> tensor<2x4x16xf16>
// CHECK: tfm.kv_append %{{.+}} into %{{.+}} at %[[POS]] : tensor<2x4x16xf16>, tensor<2x2x16x8xf16>, tensor<2x4xi32>
// CHECK: tfm.logits {{.+}} -> tensor<2x4x32xf16>
// CHECK: tfm.argmax %{{.+}} : tensor<2x4x32xf16> -> tensor<2x4xi64>
// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%{{.+}}: tensor<2x1xi32>, %{{.+}}: tensor<2x1xi32>, %{{.+}}: tensor<2x2x16x8xf16>, %{{.+}}: tensor<2x2x16x8xf16>)
// CHECK-SAME: -> (tensor<2x1x32xf16>, tensor<2x2x16x8xf16>, tensor<2x2x16x8xf16>, tensor<2x1xi64>)

// STATIC-LABEL: func.func @prefill
// STATIC-NOT: ?
// STATIC-LABEL: func.func @decode
// STATIC-NOT: ?

ml_program.global private @embed(dense<1.0> : tensor<32x16xf16>) : tensor<32x16xf16>
func.func @forward(%ids: tensor<?x?xi32>, %pos: tensor<?x?xi32>, %kc: tensor<?x2x?x8xf16>, %vc: tensor<?x2x?x8xf16>)
    -> (tensor<?x?x32xf16>, tensor<?x2x?x8xf16>, tensor<?x2x?x8xf16>) {
  %embed = ml_program.global_load_const @embed : tensor<32x16xf16>
  %x = tfm.embedding %embed[%ids] : tensor<32x16xf16>, tensor<?x?xi32> -> tensor<?x?x16xf16>
  %kc2 = tfm.kv_append %x into %kc at %pos : tensor<?x?x16xf16>, tensor<?x2x?x8xf16>, tensor<?x?xi32>
  %l = tfm.logits %x, %embed layout = <out_in> {tied} : (tensor<?x?x16xf16>, tensor<32x16xf16>) -> tensor<?x?x32xf16>
  return %l, %kc2, %vc : tensor<?x?x32xf16>, tensor<?x2x?x8xf16>, tensor<?x2x?x8xf16>
}
