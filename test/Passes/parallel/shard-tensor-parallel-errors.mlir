// RUN: kiln-opt %s --split-input-file --verify-diagnostics --kiln-shard-tensor-parallel="ranks=2 rank=0" | FileCheck %s

// What the pass cannot split is an error naming the op; a vocabulary that
// the ranks do not divide keeps the whole lm_head on every rank.

ml_program.global private @wq(dense<1.0> : tensor<4x4xf32>) : tensor<4x4xf32>
ml_program.global private @wk(dense<1.0> : tensor<4x4xf32>) : tensor<4x4xf32>
ml_program.global private @wv(dense<1.0> : tensor<4x4xf32>) : tensor<4x4xf32>
func.func @query_with_two_users(%x: tensor<1x1x4xf32>, %pos: tensor<1x1xi64>, %kc: tensor<1x2x8x2xf32>, %vc: tensor<1x2x8x2xf32>) -> (tensor<1x1x4xf32>, tensor<1x1x4xf32>) {
  %wq = ml_program.global_load_const @wq : tensor<4x4xf32>
  %wk = ml_program.global_load_const @wk : tensor<4x4xf32>
  %wv = ml_program.global_load_const @wv : tensor<4x4xf32>
  %q = tfm.linear %x, %wq layout = <in_out> : (tensor<1x1x4xf32>, tensor<4x4xf32>) -> tensor<1x1x4xf32>
  %k = tfm.linear %x, %wk layout = <in_out> : (tensor<1x1x4xf32>, tensor<4x4xf32>) -> tensor<1x1x4xf32>
  %v = tfm.linear %x, %wv layout = <in_out> : (tensor<1x1x4xf32>, tensor<4x4xf32>) -> tensor<1x1x4xf32>
  %kc1 = tfm.kv_append %k into %kc at %pos : tensor<1x1x4xf32>, tensor<1x2x8x2xf32>, tensor<1x1xi64>
  %vc1 = tfm.kv_append %v into %vc at %pos : tensor<1x1x4xf32>, tensor<1x2x8x2xf32>, tensor<1x1xi64>
  // The query projection is also returned: its rank's half is not the value.
  // expected-error @+1 {{cannot split the query projection over ranks: it is not a projection used only by this attention}}
  %a = tfm.attention %q, %kc1, %vc1, %pos {head_dim = 2 : i64, num_heads = 2 : i64, num_kv_heads = 2 : i64, scale = 0.7 : f32} : tensor<1x1x4xf32>, tensor<1x2x8x2xf32>, tensor<1x1xi64>
  return %a, %q : tensor<1x1x4xf32>, tensor<1x1x4xf32>
}

// -----

ml_program.global private @wg(dense<1.0> : tensor<5x4xf32>) : tensor<5x4xf32>
ml_program.global private @wd(dense<1.0> : tensor<4x5xf32>) : tensor<4x5xf32>
func.func @ffn_odd(%x: tensor<1x1x4xf32>) -> tensor<1x1x4xf32> {
  %wg = ml_program.global_load_const @wg : tensor<5x4xf32>
  %wd = ml_program.global_load_const @wd : tensor<4x5xf32>
  // expected-error @+1 {{cannot split the gate projection over 2 ranks: dimension 0 has 5 elements, not a multiple of 2}}
  %g = tfm.linear %x, %wg layout = <out_in> : (tensor<1x1x4xf32>, tensor<5x4xf32>) -> tensor<1x1x5xf32>
  %u = tfm.linear %x, %wg layout = <out_in> : (tensor<1x1x4xf32>, tensor<5x4xf32>) -> tensor<1x1x5xf32>
  %m = tfm.swiglu %g, %u : tensor<1x1x5xf32>
  %d = tfm.linear %m, %wd layout = <out_in> : (tensor<1x1x5xf32>, tensor<4x5xf32>) -> tensor<1x1x4xf32>
  return %d : tensor<1x1x4xf32>
}

// -----

func.func @quantized_gate(%x: tensor<1x1x64xf16>, %p: tensor<8x32xi8>, %s: tensor<8x2xf16>, %wd: tensor<8x64xf16>) -> tensor<1x1x64xf16> {
  %w = tfm.dequantize %p, %s {bits = 4 : i64, group_size = 32 : i64} : tensor<8x32xi8>, tensor<8x2xf16> -> tensor<8x64xf16>
  // expected-error @+1 {{cannot split the gate projection over ranks: it is not a constant weight (a quantized or computed weight cannot be split yet)}}
  %g = tfm.linear %x, %w layout = <out_in> : (tensor<1x1x64xf16>, tensor<8x64xf16>) -> tensor<1x1x8xf16>
  %u = tfm.linear %x, %w layout = <out_in> : (tensor<1x1x64xf16>, tensor<8x64xf16>) -> tensor<1x1x8xf16>
  %m = tfm.swiglu %g, %u : tensor<1x1x8xf16>
  %d = tfm.linear %m, %wd layout = <in_out> : (tensor<1x1x8xf16>, tensor<8x64xf16>) -> tensor<1x1x64xf16>
  return %d : tensor<1x1x64xf16>
}

// -----

ml_program.global private @w(dense<1.0> : tensor<8x4xf32>) : tensor<8x4xf32>
func.func @fused_first(%x: tensor<1x1x4xf32>) -> tensor<1x1x4xf32> {
  %w = ml_program.global_load_const @w : tensor<8x4xf32>
  // expected-error @+1 {{kiln-shard-tensor-parallel runs on unfused projections; run it before the fusion passes}}
  %gu = tfm.linear %x, %w layout = <out_in> swiglu : (tensor<1x1x4xf32>, tensor<8x4xf32>) -> tensor<1x1x4xf32>
  %m = tfm.swiglu %gu, %gu : tensor<1x1x4xf32>
  return %m : tensor<1x1x4xf32>
}

// -----

// A vocabulary of 7 does not split in two: every rank computes all the
// logits, nothing is gathered, the lm_head stays the tied table.
// CHECK-LABEL: func.func @odd_vocabulary
// CHECK: tfm.logits %{{.+}}, %{{.+}} layout = <out_in> {tied} : (tensor<1x1x4xf32>, tensor<7x4xf32>) -> tensor<1x1x7xf32>
// CHECK-NOT: tfm.all_gather
ml_program.global private @table(dense<1.0> : tensor<7x4xf32>) : tensor<7x4xf32>
func.func @odd_vocabulary(%h: tensor<1x1x4xf32>) -> tensor<1x1x7xf32> {
  %t = ml_program.global_load_const @table : tensor<7x4xf32>
  %l = tfm.logits %h, %t layout = <out_in> {tied} : (tensor<1x1x4xf32>, tensor<7x4xf32>) -> tensor<1x1x7xf32>
  return %l : tensor<1x1x7xf32>
}
