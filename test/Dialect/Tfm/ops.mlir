// RUN: kiln-opt %s --split-input-file | FileCheck %s
// Check that the printed form parses back and prints the same.
// RUN: kiln-opt %s --split-input-file | kiln-opt --split-input-file | FileCheck %s

// CHECK-LABEL: func.func @embedding_dynamic
// CHECK-SAME: (%[[TABLE:.+]]: tensor<1024x128xf32>, %[[IDS:.+]]: tensor<?x?xi64>)
// CHECK: %[[R:.+]] = tfm.embedding %[[TABLE]][%[[IDS]]] : tensor<1024x128xf32>, tensor<?x?xi64> -> tensor<?x?x128xf32>
// CHECK: return %[[R]]
func.func @embedding_dynamic(%table: tensor<1024x128xf32>, %ids: tensor<?x?xi64>) -> tensor<?x?x128xf32> {
  %0 = tfm.embedding %table[%ids] : tensor<1024x128xf32>, tensor<?x?xi64> -> tensor<?x?x128xf32>
  return %0 : tensor<?x?x128xf32>
}

// -----

// CHECK-LABEL: func.func @embedding_static_f16
// CHECK-SAME: (%[[TABLE:.+]]: tensor<1024x128xf16>, %[[IDS:.+]]: tensor<2x7xi32>)
// CHECK: tfm.embedding %[[TABLE]][%[[IDS]]] : tensor<1024x128xf16>, tensor<2x7xi32> -> tensor<2x7x128xf16>
func.func @embedding_static_f16(%table: tensor<1024x128xf16>, %ids: tensor<2x7xi32>) -> tensor<2x7x128xf16> {
  %0 = tfm.embedding %table[%ids] : tensor<1024x128xf16>, tensor<2x7xi32> -> tensor<2x7x128xf16>
  return %0 : tensor<2x7x128xf16>
}

// -----

// CHECK-LABEL: func.func @rms_norm
// CHECK-SAME: (%[[X:.+]]: tensor<?x?x128xf32>, %[[W:.+]]: tensor<128xf32>)
// CHECK: %[[R:.+]] = tfm.rms_norm %[[X]], %[[W]] {epsilon = 9.99999974E-6 : f32} : tensor<?x?x128xf32>, tensor<128xf32>
// CHECK: return %[[R]]
func.func @rms_norm(%x: tensor<?x?x128xf32>, %w: tensor<128xf32>) -> tensor<?x?x128xf32> {
  %0 = tfm.rms_norm %x, %w {epsilon = 1.0e-05 : f32} : tensor<?x?x128xf32>, tensor<128xf32>
  return %0 : tensor<?x?x128xf32>
}

// -----

// CHECK-LABEL: func.func @rms_norm_static_bf16
// CHECK-SAME: (%[[X:.+]]: tensor<1x16x64xbf16>, %[[W:.+]]: tensor<64xbf16>)
// CHECK: tfm.rms_norm %[[X]], %[[W]] {epsilon = 9.99999997E-7 : f32} : tensor<1x16x64xbf16>, tensor<64xbf16>
func.func @rms_norm_static_bf16(%x: tensor<1x16x64xbf16>, %w: tensor<64xbf16>) -> tensor<1x16x64xbf16> {
  %0 = tfm.rms_norm %x, %w {epsilon = 1.0e-06 : f32} : tensor<1x16x64xbf16>, tensor<64xbf16>
  return %0 : tensor<1x16x64xbf16>
}

// -----

// CHECK-LABEL: func.func @linear_in_out
// CHECK-SAME: (%[[X:.+]]: tensor<?x?x128xf32>, %[[W:.+]]: tensor<128x64xf32>)
// CHECK: %[[R:.+]] = tfm.linear %[[X]], %[[W]] layout = <in_out> : (tensor<?x?x128xf32>, tensor<128x64xf32>) -> tensor<?x?x64xf32>
// CHECK: return %[[R]]
func.func @linear_in_out(%x: tensor<?x?x128xf32>, %w: tensor<128x64xf32>) -> tensor<?x?x64xf32> {
  %0 = tfm.linear %x, %w layout = <in_out> : (tensor<?x?x128xf32>, tensor<128x64xf32>) -> tensor<?x?x64xf32>
  return %0 : tensor<?x?x64xf32>
}

// -----

// CHECK-LABEL: func.func @linear_out_in
// CHECK-SAME: (%[[X:.+]]: tensor<?x?x128xf32>, %[[W:.+]]: tensor<64x128xf32>)
// CHECK: tfm.linear %[[X]], %[[W]] layout = <out_in> : (tensor<?x?x128xf32>, tensor<64x128xf32>) -> tensor<?x?x64xf32>
func.func @linear_out_in(%x: tensor<?x?x128xf32>, %w: tensor<64x128xf32>) -> tensor<?x?x64xf32> {
  %0 = tfm.linear %x, %w layout = <out_in> : (tensor<?x?x128xf32>, tensor<64x128xf32>) -> tensor<?x?x64xf32>
  return %0 : tensor<?x?x64xf32>
}

// -----

// The fused forms: an RMS-normalised input (kiln-fuse-norm-projection) and
// the SwiGLU of the two halves (kiln-fuse-swiglu: 64 -> 32 features).
// CHECK-LABEL: func.func @linear_fused
// CHECK: tfm.linear %{{.+}}, %{{.+}} layout = <out_in> rms_norm eps = 9.99999974E-6 swiglu : (tensor<?x?x128xf16>, tensor<64x128xf16>) -> tensor<?x?x32xf16>
func.func @linear_fused(%x: tensor<?x?x128xf16>, %w: tensor<64x128xf16>) -> tensor<?x?x32xf16> {
  %0 = tfm.linear %x, %w layout = <out_in> rms_norm eps = 1.0e-05 swiglu : (tensor<?x?x128xf16>, tensor<64x128xf16>) -> tensor<?x?x32xf16>
  return %0 : tensor<?x?x32xf16>
}

// -----

// CHECK-LABEL: func.func @linear_bias_in_out
// CHECK-SAME: (%[[X:.+]]: tensor<?x?x128xf32>, %[[W:.+]]: tensor<128x64xf32>, %[[B:.+]]: tensor<64xf32>)
// CHECK: tfm.linear %[[X]], %[[W]] bias %[[B]] layout = <in_out> : (tensor<?x?x128xf32>, tensor<128x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
func.func @linear_bias_in_out(%x: tensor<?x?x128xf32>, %w: tensor<128x64xf32>, %b: tensor<64xf32>) -> tensor<?x?x64xf32> {
  %0 = tfm.linear %x, %w bias %b layout = <in_out> : (tensor<?x?x128xf32>, tensor<128x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
  return %0 : tensor<?x?x64xf32>
}

// -----

// CHECK-LABEL: func.func @linear_bias_out_in_static_f16
// CHECK-SAME: (%[[X:.+]]: tensor<2x7x128xf16>, %[[W:.+]]: tensor<64x128xf16>, %[[B:.+]]: tensor<64xf16>)
// CHECK: tfm.linear %[[X]], %[[W]] bias %[[B]] layout = <out_in> : (tensor<2x7x128xf16>, tensor<64x128xf16>, tensor<64xf16>) -> tensor<2x7x64xf16>
func.func @linear_bias_out_in_static_f16(%x: tensor<2x7x128xf16>, %w: tensor<64x128xf16>, %b: tensor<64xf16>) -> tensor<2x7x64xf16> {
  %0 = tfm.linear %x, %w bias %b layout = <out_in> : (tensor<2x7x128xf16>, tensor<64x128xf16>, tensor<64xf16>) -> tensor<2x7x64xf16>
  return %0 : tensor<2x7x64xf16>
}

// -----

// Dynamic feature sizes are compatible with any weight.
// CHECK-LABEL: func.func @linear_dynamic_features
// CHECK-SAME: (%[[X:.+]]: tensor<?x?x?xbf16>, %[[W:.+]]: tensor<?x?xbf16>)
// CHECK: tfm.linear %[[X]], %[[W]] layout = <out_in> : (tensor<?x?x?xbf16>, tensor<?x?xbf16>) -> tensor<?x?x?xbf16>
func.func @linear_dynamic_features(%x: tensor<?x?x?xbf16>, %w: tensor<?x?xbf16>) -> tensor<?x?x?xbf16> {
  %0 = tfm.linear %x, %w layout = <out_in> : (tensor<?x?x?xbf16>, tensor<?x?xbf16>) -> tensor<?x?x?xbf16>
  return %0 : tensor<?x?x?xbf16>
}

// -----

// The default attention_scaling (1.0) is elided, whether given or not.
// CHECK-LABEL: func.func @rope_default_scaling
// CHECK-SAME: (%[[X:.+]]: tensor<?x?x128xf32>, %[[POS:.+]]: tensor<?x?xi64>, %[[F:.+]]: tensor<16xf32>)
// CHECK: tfm.rope %[[X]], %[[POS]], %[[F]] {head_dim = 32 : i64} : tensor<?x?x128xf32>, tensor<?x?xi64>, tensor<16xf32>
// CHECK: tfm.rope %[[X]], %[[POS]], %[[F]] {head_dim = 32 : i64} : tensor<?x?x128xf32>, tensor<?x?xi64>, tensor<16xf32>
func.func @rope_default_scaling(%x: tensor<?x?x128xf32>, %pos: tensor<?x?xi64>, %f: tensor<16xf32>) -> (tensor<?x?x128xf32>, tensor<?x?x128xf32>) {
  %0 = tfm.rope %x, %pos, %f {head_dim = 32 : i64} : tensor<?x?x128xf32>, tensor<?x?xi64>, tensor<16xf32>
  %1 = tfm.rope %x, %pos, %f {attention_scaling = 1.0 : f32, head_dim = 32 : i64} : tensor<?x?x128xf32>, tensor<?x?xi64>, tensor<16xf32>
  return %0, %1 : tensor<?x?x128xf32>, tensor<?x?x128xf32>
}

// -----

// CHECK-LABEL: func.func @rope_scaling_static_bf16
// CHECK-SAME: (%[[X:.+]]: tensor<1x1x64xbf16>, %[[POS:.+]]: tensor<1x1xi32>, %[[F:.+]]: tensor<8xf32>)
// CHECK: tfm.rope %[[X]], %[[POS]], %[[F]] {attention_scaling = 1.250000e+00 : f32, head_dim = 16 : i64} : tensor<1x1x64xbf16>, tensor<1x1xi32>, tensor<8xf32>
func.func @rope_scaling_static_bf16(%x: tensor<1x1x64xbf16>, %pos: tensor<1x1xi32>, %f: tensor<8xf32>) -> tensor<1x1x64xbf16> {
  %0 = tfm.rope %x, %pos, %f {head_dim = 16 : i64, attention_scaling = 1.25 : f32} : tensor<1x1x64xbf16>, tensor<1x1xi32>, tensor<8xf32>
  return %0 : tensor<1x1x64xbf16>
}

// -----

// CHECK-LABEL: func.func @kv_append
// CHECK-SAME: (%[[K:.+]]: tensor<?x?x64xf32>, %[[CACHE:.+]]: tensor<?x2x?x32xf32>, %[[POS:.+]]: tensor<?x?xi64>)
// CHECK: %[[R:.+]] = tfm.kv_append %[[K]] into %[[CACHE]] at %[[POS]] : tensor<?x?x64xf32>, tensor<?x2x?x32xf32>, tensor<?x?xi64>
// CHECK: return %[[R]]
func.func @kv_append(%k: tensor<?x?x64xf32>, %cache: tensor<?x2x?x32xf32>, %pos: tensor<?x?xi64>) -> tensor<?x2x?x32xf32> {
  %0 = tfm.kv_append %k into %cache at %pos : tensor<?x?x64xf32>, tensor<?x2x?x32xf32>, tensor<?x?xi64>
  return %0 : tensor<?x2x?x32xf32>
}

// -----

// CHECK-LABEL: func.func @kv_append_static_f16
// CHECK-SAME: (%[[V:.+]]: tensor<1x1x64xf16>, %[[CACHE:.+]]: tensor<1x2x256x32xf16>, %[[POS:.+]]: tensor<1x1xi32>)
// CHECK: tfm.kv_append %[[V]] into %[[CACHE]] at %[[POS]] : tensor<1x1x64xf16>, tensor<1x2x256x32xf16>, tensor<1x1xi32>
func.func @kv_append_static_f16(%v: tensor<1x1x64xf16>, %cache: tensor<1x2x256x32xf16>, %pos: tensor<1x1xi32>) -> tensor<1x2x256x32xf16> {
  %0 = tfm.kv_append %v into %cache at %pos : tensor<1x1x64xf16>, tensor<1x2x256x32xf16>, tensor<1x1xi32>
  return %0 : tensor<1x2x256x32xf16>
}

// -----

// Paged: the cache is a pool of blocks and a block table maps positions.
// CHECK-LABEL: func.func @paged
// CHECK-SAME: (%[[K:.+]]: tensor<2x1x64xf16>, %[[POOL:.+]]: tensor<16x2x8x32xf16>, %[[Q:.+]]: tensor<2x1x128xf16>, %[[POS:.+]]: tensor<2x1xi64>, %[[T:.+]]: tensor<2x4xi32>)
// CHECK: %[[P:.+]] = tfm.kv_append %[[K]] into %[[POOL]] at %[[POS]] pages %[[T]] : tensor<2x1x64xf16>, tensor<16x2x8x32xf16>, tensor<2x1xi64>, tensor<2x4xi32>
// CHECK: tfm.attention %[[Q]], %[[P]], %[[P]], %[[POS]] pages %[[T]]
// CHECK-SAME: : tensor<2x1x128xf16>, tensor<16x2x8x32xf16>, tensor<2x1xi64>, tensor<2x4xi32>
func.func @paged(%k: tensor<2x1x64xf16>, %pool: tensor<16x2x8x32xf16>, %q: tensor<2x1x128xf16>, %pos: tensor<2x1xi64>, %table: tensor<2x4xi32>) -> tensor<2x1x128xf16> {
  %0 = tfm.kv_append %k into %pool at %pos pages %table : tensor<2x1x64xf16>, tensor<16x2x8x32xf16>, tensor<2x1xi64>, tensor<2x4xi32>
  %1 = tfm.attention %q, %0, %0, %pos pages %table {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.176776695 : f32} : tensor<2x1x128xf16>, tensor<16x2x8x32xf16>, tensor<2x1xi64>, tensor<2x4xi32>
  return %1 : tensor<2x1x128xf16>
}

// -----

// CHECK-LABEL: func.func @attention
// CHECK-SAME: (%[[Q:.+]]: tensor<?x?x128xf32>, %[[KC:.+]]: tensor<?x2x?x32xf32>, %[[VC:.+]]: tensor<?x2x?x32xf32>, %[[POS:.+]]: tensor<?x?xi64>)
// CHECK: %[[R:.+]] = tfm.attention %[[Q]], %[[KC]], %[[VC]], %[[POS]]
// CHECK-SAME: {head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 0.176776692 : f32}
// CHECK-SAME: : tensor<?x?x128xf32>, tensor<?x2x?x32xf32>, tensor<?x?xi64>
// CHECK: return %[[R]]
func.func @attention(%q: tensor<?x?x128xf32>, %kc: tensor<?x2x?x32xf32>, %vc: tensor<?x2x?x32xf32>, %pos: tensor<?x?xi64>) -> tensor<?x?x128xf32> {
  %0 = tfm.attention %q, %kc, %vc, %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.176776695 : f32} : tensor<?x?x128xf32>, tensor<?x2x?x32xf32>, tensor<?x?xi64>
  return %0 : tensor<?x?x128xf32>
}

// -----

// CHECK-LABEL: func.func @attention_static_bf16
// CHECK-SAME: (%[[Q:.+]]: tensor<1x1x128xbf16>, %[[KC:.+]]: tensor<1x4x512x32xbf16>, %[[VC:.+]]: tensor<1x4x512x32xbf16>, %[[POS:.+]]: tensor<1x1xi32>)
// CHECK: tfm.attention %[[Q]], %[[KC]], %[[VC]], %[[POS]]
// CHECK-SAME: {head_dim = 32 : i64, num_heads = 4 : i64, num_kv_heads = 4 : i64, scale = 1.250000e-01 : f32}
// CHECK-SAME: : tensor<1x1x128xbf16>, tensor<1x4x512x32xbf16>, tensor<1x1xi32>
func.func @attention_static_bf16(%q: tensor<1x1x128xbf16>, %kc: tensor<1x4x512x32xbf16>, %vc: tensor<1x4x512x32xbf16>, %pos: tensor<1x1xi32>) -> tensor<1x1x128xbf16> {
  %0 = tfm.attention %q, %kc, %vc, %pos {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 32 : i64, scale = 0.125 : f32} : tensor<1x1x128xbf16>, tensor<1x4x512x32xbf16>, tensor<1x1xi32>
  return %0 : tensor<1x1x128xbf16>
}

// -----

// CHECK-LABEL: func.func @swiglu
// CHECK-SAME: (%[[G:.+]]: tensor<?x?x352xf32>, %[[U:.+]]: tensor<?x?x352xf32>)
// CHECK: %[[R:.+]] = tfm.swiglu %[[G]], %[[U]] : tensor<?x?x352xf32>
// CHECK: return %[[R]]
func.func @swiglu(%gate: tensor<?x?x352xf32>, %up: tensor<?x?x352xf32>) -> tensor<?x?x352xf32> {
  %0 = tfm.swiglu %gate, %up : tensor<?x?x352xf32>
  return %0 : tensor<?x?x352xf32>
}

// -----

// CHECK-LABEL: func.func @swiglu_static_f16
// CHECK-SAME: (%[[G:.+]]: tensor<2x7x352xf16>, %[[U:.+]]: tensor<2x7x352xf16>)
// CHECK: tfm.swiglu %[[G]], %[[U]] : tensor<2x7x352xf16>
func.func @swiglu_static_f16(%gate: tensor<2x7x352xf16>, %up: tensor<2x7x352xf16>) -> tensor<2x7x352xf16> {
  %0 = tfm.swiglu %gate, %up : tensor<2x7x352xf16>
  return %0 : tensor<2x7x352xf16>
}

// -----

// CHECK-LABEL: func.func @dynamic_quantize
// CHECK-SAME: (%[[X:.+]]: tensor<?x?x128xf32>)
// CHECK: %[[R:.+]] = tfm.dynamic_quantize %[[X]] : tensor<?x?x128xf32>
// CHECK: return %[[R]]
func.func @dynamic_quantize(%x: tensor<?x?x128xf32>) -> tensor<?x?x128xf32> {
  %0 = tfm.dynamic_quantize %x : tensor<?x?x128xf32>
  return %0 : tensor<?x?x128xf32>
}

// -----

// CHECK-LABEL: func.func @add
// CHECK-SAME: (%[[A:.+]]: tensor<?x?x128xf32>, %[[B:.+]]: tensor<?x?x128xf32>)
// CHECK: %[[R:.+]] = tfm.add %[[A]], %[[B]] : tensor<?x?x128xf32>
// CHECK: return %[[R]]
func.func @add(%a: tensor<?x?x128xf32>, %b: tensor<?x?x128xf32>) -> tensor<?x?x128xf32> {
  %0 = tfm.add %a, %b : tensor<?x?x128xf32>
  return %0 : tensor<?x?x128xf32>
}

// -----

// CHECK-LABEL: func.func @add_static_bf16
// CHECK-SAME: (%[[A:.+]]: tensor<1x16x128xbf16>, %[[B:.+]]: tensor<1x16x128xbf16>)
// CHECK: tfm.add %[[A]], %[[B]] : tensor<1x16x128xbf16>
func.func @add_static_bf16(%a: tensor<1x16x128xbf16>, %b: tensor<1x16x128xbf16>) -> tensor<1x16x128xbf16> {
  %0 = tfm.add %a, %b : tensor<1x16x128xbf16>
  return %0 : tensor<1x16x128xbf16>
}

// -----

// CHECK-LABEL: func.func @logits_tied
// CHECK-SAME: (%[[H:.+]]: tensor<?x?x128xf32>, %[[TABLE:.+]]: tensor<1024x128xf32>)
// CHECK: %[[R:.+]] = tfm.logits %[[H]], %[[TABLE]] layout = <out_in> {tied} : (tensor<?x?x128xf32>, tensor<1024x128xf32>) -> tensor<?x?x1024xf32>
// CHECK: return %[[R]]
func.func @logits_tied(%h: tensor<?x?x128xf32>, %table: tensor<1024x128xf32>) -> tensor<?x?x1024xf32> {
  %0 = tfm.logits %h, %table layout = <out_in> {tied} : (tensor<?x?x128xf32>, tensor<1024x128xf32>) -> tensor<?x?x1024xf32>
  return %0 : tensor<?x?x1024xf32>
}

// -----

// CHECK-LABEL: func.func @logits_untied_in_out_f16
// CHECK-SAME: (%[[H:.+]]: tensor<1x1x128xf16>, %[[W:.+]]: tensor<128x1024xf16>)
// CHECK: tfm.logits %[[H]], %[[W]] layout = <in_out> : (tensor<1x1x128xf16>, tensor<128x1024xf16>) -> tensor<1x1x1024xf16>
// CHECK-NOT: tied
func.func @logits_untied_in_out_f16(%h: tensor<1x1x128xf16>, %w: tensor<128x1024xf16>) -> tensor<1x1x1024xf16> {
  %0 = tfm.logits %h, %w layout = <in_out> : (tensor<1x1x128xf16>, tensor<128x1024xf16>) -> tensor<1x1x1024xf16>
  return %0 : tensor<1x1x1024xf16>
}

// -----

// tfm.sample: on tensors (one result, the type of init) and, after
// bufferization, on memrefs (no result).
// CHECK-LABEL: func.func @sample
func.func @sample(%l: tensor<2x1x1024xf16>, %p: tensor<2x4xf32>, %s: tensor<2xi64>, %i: tensor<2x1xi64>) -> tensor<2x1xi64> {
  // CHECK: tfm.sample %{{.+}}, %{{.+}}, %{{.+}} into %{{.+}} : tensor<2x1x1024xf16>, tensor<2x4xf32>, tensor<2xi64>, tensor<2x1xi64> -> tensor<2x1xi64>
  %0 = tfm.sample %l, %p, %s into %i : tensor<2x1x1024xf16>, tensor<2x4xf32>, tensor<2xi64>, tensor<2x1xi64> -> tensor<2x1xi64>
  return %0 : tensor<2x1xi64>
}
// CHECK-LABEL: func.func @sample_buffers
func.func @sample_buffers(%l: memref<1x3x64xf32>, %p: memref<1x4xf32>, %s: memref<1xi64>, %o: memref<1x3xi64>) {
  // CHECK: tfm.sample %{{.+}}, %{{.+}}, %{{.+}} into %{{.+}} : memref<1x3x64xf32>, memref<1x4xf32>, memref<1xi64>, memref<1x3xi64>{{$}}
  tfm.sample %l, %p, %s into %o : memref<1x3x64xf32>, memref<1x4xf32>, memref<1xi64>, memref<1x3xi64>
  return
}

// CHECK-LABEL: func.func @argmax
func.func @argmax(%l: tensor<2x3x1024xf16>) -> tensor<2x3xi64> {
  // CHECK: tfm.argmax %{{.+}} : tensor<2x3x1024xf16> -> tensor<2x3xi64>
  %0 = tfm.argmax %l : tensor<2x3x1024xf16> -> tensor<2x3xi64>
  return %0 : tensor<2x3xi64>
}

// -----

// CHECK-LABEL: func.func @dequantize
// CHECK: %[[W:.+]] = tfm.dequantize %{{.+}}, %{{.+}} {bits = 4 : i64, group_size = 32 : i64} : tensor<8x32xi8>, tensor<8x2xf16> -> tensor<8x64xf16>
// CHECK: tfm.linear %{{.+}}, %[[W]] layout = <out_in>
// CHECK: tfm.dequantize %{{.+}}, %{{.+}} zero_points %{{.+}} {bits = 8 : i64, group_size = 64 : i64} : tensor<8x64xi8>, tensor<8x1xf32>, tensor<8x1xf32> -> tensor<8x64xf32>
func.func @dequantize(%x: tensor<1x1x64xf16>, %p4: tensor<8x32xi8>, %s4: tensor<8x2xf16>,
                      %p8: tensor<8x64xi8>, %s8: tensor<8x1xf32>, %z8: tensor<8x1xf32>)
    -> (tensor<1x1x8xf16>, tensor<8x64xf32>) {
  %w = tfm.dequantize %p4, %s4 {bits = 4 : i64, group_size = 32 : i64} : tensor<8x32xi8>, tensor<8x2xf16> -> tensor<8x64xf16>
  %y = tfm.linear %x, %w layout = <out_in> : (tensor<1x1x64xf16>, tensor<8x64xf16>) -> tensor<1x1x8xf16>
  %w8 = tfm.dequantize %p8, %s8 zero_points %z8 {bits = 8 : i64, group_size = 64 : i64} : tensor<8x64xi8>, tensor<8x1xf32>, tensor<8x1xf32> -> tensor<8x64xf32>
  return %y, %w8 : tensor<1x1x8xf16>, tensor<8x64xf32>
}

// -----

// Collectives of a tensor-parallel rank's program: the all-reduce keeps the
// type; the all-gather multiplies the gathered dimension by the ranks.
// CHECK-LABEL: func.func @collectives
// CHECK: %[[S:.+]] = tfm.all_reduce %{{.+}} {ranks = 2 : i64} : tensor<?x?x64xf16>
// CHECK: tfm.all_gather %{{.+}} {axis = 2 : i64, ranks = 4 : i64} : tensor<1x3x16xf32> -> tensor<1x3x64xf32>
// CHECK: tfm.all_gather %{{.+}} {axis = 1 : i64, ranks = 2 : i64} : tensor<1x?x16xf32> -> tensor<1x?x16xf32>
func.func @collectives(%x: tensor<?x?x64xf16>, %l: tensor<1x3x16xf32>, %d: tensor<1x?x16xf32>)
    -> (tensor<?x?x64xf16>, tensor<1x3x64xf32>, tensor<1x?x16xf32>) {
  %s = tfm.all_reduce %x {ranks = 2 : i64} : tensor<?x?x64xf16>
  %g = tfm.all_gather %l {ranks = 4 : i64, axis = 2 : i64} : tensor<1x3x16xf32> -> tensor<1x3x64xf32>
  %h = tfm.all_gather %d {ranks = 2 : i64, axis = 1 : i64} : tensor<1x?x16xf32> -> tensor<1x?x16xf32>
  return %s, %g, %h : tensor<?x?x64xf16>, tensor<1x3x64xf32>, tensor<1x?x16xf32>
}

// -----

// A rank's slice of a vocabulary-split table: its first row is an operand.
// CHECK-LABEL: func.func @embedding_rows_from
// CHECK: tfm.embedding %{{.+}}[%{{.+}}] rows from %{{.+}} : tensor<512x64xf16>, tensor<1x4xi64>, tensor<1xi64> -> tensor<1x4x64xf16>
func.func @embedding_rows_from(%t: tensor<512x64xf16>, %ids: tensor<1x4xi64>, %first: tensor<1xi64>) -> tensor<1x4x64xf16> {
  %e = tfm.embedding %t[%ids] rows from %first : tensor<512x64xf16>, tensor<1x4xi64>, tensor<1xi64> -> tensor<1x4x64xf16>
  return %e : tensor<1x4x64xf16>
}
