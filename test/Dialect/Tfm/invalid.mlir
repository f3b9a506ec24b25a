// RUN: kiln-opt %s --split-input-file --verify-diagnostics

//===----------------------------------------------------------------------===//
// tfm.embedding
//===----------------------------------------------------------------------===//

func.func @embedding_element_type(%table: tensor<1024x128xf16>, %ids: tensor<?x?xi64>) {
  // expected-error @+1 {{result element type must match the table's}}
  %0 = tfm.embedding %table[%ids] : tensor<1024x128xf16>, tensor<?x?xi64> -> tensor<?x?x128xf32>
  return
}

// -----

func.func @embedding_hidden_size(%table: tensor<1024x128xf32>, %ids: tensor<?x?xi64>) {
  // expected-error @+1 {{result hidden size (64) does not match the table's (128)}}
  %0 = tfm.embedding %table[%ids] : tensor<1024x128xf32>, tensor<?x?xi64> -> tensor<?x?x64xf32>
  return
}

// -----

func.func @embedding_ids_dims(%table: tensor<1024x128xf32>, %ids: tensor<2x7xi64>) {
  // expected-error @+1 {{ids dim 1 (7) does not match result dim 1 (8)}}
  %0 = tfm.embedding %table[%ids] : tensor<1024x128xf32>, tensor<2x7xi64> -> tensor<2x8x128xf32>
  return
}

// -----

func.func @embedding_float_ids(%table: tensor<1024x128xf32>, %ids: tensor<?x?xf32>) {
  // expected-error @+1 {{operand #1 must be 2-D [batch, seq] tensor of 32-bit signless integer or 64-bit signless integer values, but got 'tensor<?x?xf32>'}}
  %0 = tfm.embedding %table[%ids] : tensor<1024x128xf32>, tensor<?x?xf32> -> tensor<?x?x128xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tfm.rms_norm
//===----------------------------------------------------------------------===//

func.func @rms_norm_weight_size(%x: tensor<?x?x128xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{weight size (64) does not match the normalized dimension (128)}}
  %0 = tfm.rms_norm %x, %w {epsilon = 1.0e-05 : f32} : tensor<?x?x128xf32>, tensor<64xf32>
  return
}

// -----

func.func @rms_norm_zero_epsilon(%x: tensor<?x?x128xf32>, %w: tensor<128xf32>) {
  // expected-error @+1 {{epsilon must be positive}}
  %0 = tfm.rms_norm %x, %w {epsilon = 0.0 : f32} : tensor<?x?x128xf32>, tensor<128xf32>
  return
}

// -----

// The rank is in the type constraint's predicate but not in its summary, so
// the message says "ranked tensor" whatever the rank.
func.func @rms_norm_rank(%x: tensor<?x128xf32>, %w: tensor<128xf32>) {
  // expected-error @+1 {{operand #0 must be 3-D [batch, seq, features] tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<?x128xf32>'}}
  %0 = tfm.rms_norm %x, %w {epsilon = 1.0e-05 : f32} : tensor<?x128xf32>, tensor<128xf32>
  return
}

// -----

func.func @rms_norm_missing_epsilon(%x: tensor<?x?x128xf32>, %w: tensor<128xf32>) {
  // expected-error @+1 {{requires attribute 'epsilon'}}
  %0 = tfm.rms_norm %x, %w : tensor<?x?x128xf32>, tensor<128xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tfm.linear
//===----------------------------------------------------------------------===//

func.func @linear_element_type(%x: tensor<?x?x128xf16>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{input, weight and result must have the same element type}}
  %0 = tfm.linear %x, %w layout = <in_out> : (tensor<?x?x128xf16>, tensor<128x64xf32>) -> tensor<?x?x64xf16>
  return
}

// -----

// A [64, 128] weight read as in_out has 64 input features.
func.func @linear_input_features(%x: tensor<?x?x128xf32>, %w: tensor<64x128xf32>) {
  // expected-error @+1 {{input features (128) do not match the weight's input features (64) for layout in_out}}
  %0 = tfm.linear %x, %w layout = <in_out> : (tensor<?x?x128xf32>, tensor<64x128xf32>) -> tensor<?x?x128xf32>
  return
}

// -----

func.func @linear_output_features(%x: tensor<?x?x128xf32>, %w: tensor<64x128xf32>) {
  // expected-error @+1 {{result features (128) do not match the weight's output features (64) for layout out_in}}
  %0 = tfm.linear %x, %w layout = <out_in> : (tensor<?x?x128xf32>, tensor<64x128xf32>) -> tensor<?x?x128xf32>
  return
}

// -----

func.func @linear_result_dims(%x: tensor<2x7x128xf32>, %w: tensor<64x128xf32>) {
  // expected-error @+1 {{result dim 0 (3) does not match input dim 0 (2)}}
  %0 = tfm.linear %x, %w layout = <out_in> : (tensor<2x7x128xf32>, tensor<64x128xf32>) -> tensor<3x7x64xf32>
  return
}

// -----

// With swiglu the result has half the weight's output features.
func.func @linear_swiglu_features(%x: tensor<2x7x128xf32>, %w: tensor<64x128xf32>) {
  // expected-error @+1 {{result features (64) do not match the weight's output features (32) for layout out_in}}
  %0 = tfm.linear %x, %w layout = <out_in> swiglu : (tensor<2x7x128xf32>, tensor<64x128xf32>) -> tensor<2x7x64xf32>
  return
}

// -----

func.func @linear_swiglu_odd(%x: tensor<2x7x128xf32>, %w: tensor<63x128xf32>) {
  // expected-error @+1 {{swiglu needs an even number of output features, the weight has 63}}
  %0 = tfm.linear %x, %w layout = <out_in> swiglu : (tensor<2x7x128xf32>, tensor<63x128xf32>) -> tensor<2x7x31xf32>
  return
}

// -----

func.func @linear_bias_element_type(%x: tensor<?x?x128xf32>, %w: tensor<64x128xf32>, %b: tensor<64xf16>) {
  // expected-error @+1 {{bias element type must match the result's}}
  %0 = tfm.linear %x, %w bias %b layout = <out_in> : (tensor<?x?x128xf32>, tensor<64x128xf32>, tensor<64xf16>) -> tensor<?x?x64xf32>
  return
}

// -----

func.func @linear_bias_size(%x: tensor<?x?x128xf32>, %w: tensor<128x64xf32>, %b: tensor<128xf32>) {
  // expected-error @+1 {{bias size (128) does not match the output features (64)}}
  %0 = tfm.linear %x, %w bias %b layout = <in_out> : (tensor<?x?x128xf32>, tensor<128x64xf32>, tensor<128xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

func.func @linear_bad_layout(%x: tensor<?x?x128xf32>, %w: tensor<64x128xf32>) {
  // expected-error @+2 {{expected ::kiln::tfm::WeightLayout to be one of: out_in, in_out}}
  // expected-error @+1 {{failed to parse Tfm_WeightLayoutAttr parameter 'value'}}
  %0 = tfm.linear %x, %w layout = <row_major> : (tensor<?x?x128xf32>, tensor<64x128xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

func.func @linear_weight_rank(%x: tensor<?x?x128xf32>, %w: tensor<128xf32>) {
  // expected-error @+1 {{operand #1 must be 2-D tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<128xf32>'}}
  %0 = tfm.linear %x, %w layout = <in_out> : (tensor<?x?x128xf32>, tensor<128xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tfm.rope
//===----------------------------------------------------------------------===//

func.func @rope_odd_head_dim(%x: tensor<?x?x128xf32>, %pos: tensor<?x?xi64>, %f: tensor<16xf32>) {
  // expected-error @+1 {{head_dim (31) must be even}}
  %0 = tfm.rope %x, %pos, %f {head_dim = 31 : i64} : tensor<?x?x128xf32>, tensor<?x?xi64>, tensor<16xf32>
  return
}

// -----

func.func @rope_features(%x: tensor<?x?x96xf32>, %pos: tensor<?x?xi64>, %f: tensor<32xf32>) {
  // expected-error @+1 {{feature size (96) is not a multiple of head_dim (64)}}
  %0 = tfm.rope %x, %pos, %f {head_dim = 64 : i64} : tensor<?x?x96xf32>, tensor<?x?xi64>, tensor<32xf32>
  return
}

// -----

func.func @rope_inv_freq_size(%x: tensor<?x?x128xf32>, %pos: tensor<?x?xi64>, %f: tensor<32xf32>) {
  // expected-error @+1 {{inv_freq has 32 entries, expected head_dim / 2 = 16}}
  %0 = tfm.rope %x, %pos, %f {head_dim = 32 : i64} : tensor<?x?x128xf32>, tensor<?x?xi64>, tensor<32xf32>
  return
}

// -----

func.func @rope_positions_dims(%x: tensor<2x?x128xf32>, %pos: tensor<4x?xi64>, %f: tensor<16xf32>) {
  // expected-error @+1 {{positions dim 0 (4) does not match input dim 0 (2)}}
  %0 = tfm.rope %x, %pos, %f {head_dim = 32 : i64} : tensor<2x?x128xf32>, tensor<4x?xi64>, tensor<16xf32>
  return
}

// -----

func.func @rope_zero_head_dim(%x: tensor<?x?x128xf32>, %pos: tensor<?x?xi64>, %f: tensor<16xf32>) {
  // expected-error @+1 {{attribute 'head_dim' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %0 = tfm.rope %x, %pos, %f {head_dim = 0 : i64} : tensor<?x?x128xf32>, tensor<?x?xi64>, tensor<16xf32>
  return
}

// -----

func.func @rope_f16_inv_freq(%x: tensor<?x?x128xf16>, %pos: tensor<?x?xi64>, %f: tensor<16xf16>) {
  // expected-error @+1 {{operand #2 must be 1-D tensor of 32-bit float values, but got 'tensor<16xf16>'}}
  %0 = tfm.rope %x, %pos, %f {head_dim = 32 : i64} : tensor<?x?x128xf16>, tensor<?x?xi64>, tensor<16xf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tfm.kv_append
//===----------------------------------------------------------------------===//

func.func @kv_append_element_type(%v: tensor<?x?x64xf16>, %cache: tensor<?x2x?x32xf32>, %pos: tensor<?x?xi64>) {
  // expected-error @+1 {{value and cache must have the same element type}}
  %0 = tfm.kv_append %v into %cache at %pos : tensor<?x?x64xf16>, tensor<?x2x?x32xf32>, tensor<?x?xi64>
  return
}

// -----

func.func @kv_append_features(%v: tensor<?x?x128xf32>, %cache: tensor<?x2x?x32xf32>, %pos: tensor<?x?xi64>) {
  // expected-error @+1 {{value features (128) must be num_kv_heads * head_dim = 2 * 32}}
  %0 = tfm.kv_append %v into %cache at %pos : tensor<?x?x128xf32>, tensor<?x2x?x32xf32>, tensor<?x?xi64>
  return
}

// -----

func.func @kv_append_batch(%v: tensor<2x?x64xf32>, %cache: tensor<1x2x?x32xf32>, %pos: tensor<?x?xi64>) {
  // expected-error @+1 {{value batch does not match the cache batch}}
  %0 = tfm.kv_append %v into %cache at %pos : tensor<2x?x64xf32>, tensor<1x2x?x32xf32>, tensor<?x?xi64>
  return
}

// -----

func.func @kv_append_positions_dims(%v: tensor<?x7x64xf32>, %cache: tensor<?x2x?x32xf32>, %pos: tensor<?x1xi64>) {
  // expected-error @+1 {{positions dim 1 (1) does not match value dim 1 (7)}}
  %0 = tfm.kv_append %v into %cache at %pos : tensor<?x7x64xf32>, tensor<?x2x?x32xf32>, tensor<?x1xi64>
  return
}

// -----

func.func @kv_append_cache_rank(%v: tensor<?x?x64xf32>, %cache: tensor<?x?x64xf32>, %pos: tensor<?x?xi64>) {
  // expected-error @+1 {{operand #1 must be 4-D [batch, kv_heads, max_seq, head_dim] tensor (paged: [num_blocks, kv_heads, block_size, head_dim]) of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<?x?x64xf32>'}}
  %0 = tfm.kv_append %v into %cache at %pos : tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?xi64>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tfm.attention
//===----------------------------------------------------------------------===//

func.func @attention_head_groups(%q: tensor<?x?x96xf32>, %kc: tensor<?x2x?x32xf32>, %vc: tensor<?x2x?x32xf32>, %pos: tensor<?x?xi64>) {
  // expected-error @+1 {{num_heads (3) must be a multiple of num_kv_heads (2)}}
  %0 = tfm.attention %q, %kc, %vc, %pos {num_heads = 3 : i64, num_kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.176776695 : f32} : tensor<?x?x96xf32>, tensor<?x2x?x32xf32>, tensor<?x?xi64>
  return
}

// -----

func.func @attention_element_type(%q: tensor<?x?x128xbf16>, %kc: tensor<?x2x?x32xf32>, %vc: tensor<?x2x?x32xf32>, %pos: tensor<?x?xi64>) {
  // expected-error @+1 {{query and caches must have the same element type}}
  %0 = tfm.attention %q, %kc, %vc, %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.176776695 : f32} : tensor<?x?x128xbf16>, tensor<?x2x?x32xf32>, tensor<?x?xi64>
  return
}

// -----

func.func @attention_query_features(%q: tensor<?x?x64xf32>, %kc: tensor<?x2x?x32xf32>, %vc: tensor<?x2x?x32xf32>, %pos: tensor<?x?xi64>) {
  // expected-error @+1 {{query features (64) must be num_heads * head_dim = 4 * 32}}
  %0 = tfm.attention %q, %kc, %vc, %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.176776695 : f32} : tensor<?x?x64xf32>, tensor<?x2x?x32xf32>, tensor<?x?xi64>
  return
}

// -----

func.func @attention_kv_heads(%q: tensor<?x?x128xf32>, %kc: tensor<?x4x?x32xf32>, %vc: tensor<?x4x?x32xf32>, %pos: tensor<?x?xi64>) {
  // expected-error @+1 {{cache has 4 KV heads, expected num_kv_heads = 2}}
  %0 = tfm.attention %q, %kc, %vc, %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.176776695 : f32} : tensor<?x?x128xf32>, tensor<?x4x?x32xf32>, tensor<?x?xi64>
  return
}

// -----

func.func @attention_cache_head_size(%q: tensor<?x?x128xf32>, %kc: tensor<?x2x?x64xf32>, %vc: tensor<?x2x?x64xf32>, %pos: tensor<?x?xi64>) {
  // expected-error @+1 {{cache head size (64) does not match head_dim (32)}}
  %0 = tfm.attention %q, %kc, %vc, %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.176776695 : f32} : tensor<?x?x128xf32>, tensor<?x2x?x64xf32>, tensor<?x?xi64>
  return
}

// -----

func.func @attention_batch(%q: tensor<1x?x128xf32>, %kc: tensor<2x2x?x32xf32>, %vc: tensor<2x2x?x32xf32>, %pos: tensor<?x?xi64>) {
  // expected-error @+1 {{cache batch does not match the query batch}}
  %0 = tfm.attention %q, %kc, %vc, %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.176776695 : f32} : tensor<1x?x128xf32>, tensor<2x2x?x32xf32>, tensor<?x?xi64>
  return
}

// -----

func.func @attention_negative_scale(%q: tensor<?x?x128xf32>, %kc: tensor<?x2x?x32xf32>, %vc: tensor<?x2x?x32xf32>, %pos: tensor<?x?xi64>) {
  // expected-error @+1 {{scale must be positive}}
  %0 = tfm.attention %q, %kc, %vc, %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 32 : i64, scale = -1.0 : f32} : tensor<?x?x128xf32>, tensor<?x2x?x32xf32>, tensor<?x?xi64>
  return
}

// -----

func.func @attention_positions_dims(%q: tensor<?x16x128xf32>, %kc: tensor<?x2x?x32xf32>, %vc: tensor<?x2x?x32xf32>, %pos: tensor<?x8xi64>) {
  // expected-error @+1 {{positions dim 1 (8) does not match query dim 1 (16)}}
  %0 = tfm.attention %q, %kc, %vc, %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.176776695 : f32} : tensor<?x16x128xf32>, tensor<?x2x?x32xf32>, tensor<?x8xi64>
  return
}

// -----

func.func @attention_zero_kv_heads(%q: tensor<?x?x128xf32>, %kc: tensor<?x2x?x32xf32>, %vc: tensor<?x2x?x32xf32>, %pos: tensor<?x?xi64>) {
  // expected-error @+1 {{attribute 'num_kv_heads' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %0 = tfm.attention %q, %kc, %vc, %pos {num_heads = 4 : i64, num_kv_heads = 0 : i64, head_dim = 32 : i64, scale = 0.176776695 : f32} : tensor<?x?x128xf32>, tensor<?x2x?x32xf32>, tensor<?x?xi64>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tfm.swiglu
//===----------------------------------------------------------------------===//

func.func @swiglu_integer(%gate: tensor<?x?x352xi32>, %up: tensor<?x?x352xi32>) {
  // expected-error @+1 {{operand #0 must be ranked tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<?x?x352xi32>'}}
  %0 = tfm.swiglu %gate, %up : tensor<?x?x352xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tfm.add
//===----------------------------------------------------------------------===//

func.func @add_integer(%a: tensor<?x?x128xi32>, %b: tensor<?x?x128xi32>) {
  // expected-error @+1 {{operand #0 must be ranked tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<?x?x128xi32>'}}
  %0 = tfm.add %a, %b : tensor<?x?x128xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tfm.logits
//===----------------------------------------------------------------------===//

func.func @logits_element_type(%h: tensor<?x?x128xf32>, %table: tensor<1024x128xf32>) {
  // expected-error @+1 {{input, weight and result must have the same element type}}
  %0 = tfm.logits %h, %table layout = <out_in> {tied} : (tensor<?x?x128xf32>, tensor<1024x128xf32>) -> tensor<?x?x1024xf16>
  return
}

// -----

func.func @logits_input_features(%h: tensor<?x?x128xf32>, %table: tensor<1024x128xf32>) {
  // expected-error @+1 {{input features (128) do not match the weight's input features (1024) for layout in_out}}
  %0 = tfm.logits %h, %table layout = <in_out> : (tensor<?x?x128xf32>, tensor<1024x128xf32>) -> tensor<?x?x128xf32>
  return
}

// -----

func.func @logits_vocab(%h: tensor<?x?x128xf32>, %table: tensor<1024x128xf32>) {
  // expected-error @+1 {{result features (1000) do not match the weight's output features (1024) for layout out_in}}
  %0 = tfm.logits %h, %table layout = <out_in> {tied} : (tensor<?x?x128xf32>, tensor<1024x128xf32>) -> tensor<?x?x1000xf32>
  return
}

// -----

func.func @logits_result_dims(%h: tensor<1x7x128xf32>, %table: tensor<1024x128xf32>) {
  // expected-error @+1 {{result dim 1 (1) does not match input dim 1 (7)}}
  %0 = tfm.logits %h, %table layout = <out_in> : (tensor<1x7x128xf32>, tensor<1024x128xf32>) -> tensor<1x1x1024xf32>
  return
}

// -----

func.func @attention_heads_overflow(%q: tensor<?x?x128xf32>, %kc: tensor<?x2x?x4xf32>, %pos: tensor<?x?xi64>) {
  // expected-error @+1 {{num_heads * head_dim overflows}}
  %0 = tfm.attention %q, %kc, %kc, %pos {num_heads = 2305843009213693952 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : tensor<?x?x128xf32>, tensor<?x2x?x4xf32>, tensor<?x?xi64>
  return
}

// -----

func.func @sample_params(%l: tensor<2x1x64xf32>, %p: tensor<2x3xf32>, %s: tensor<2xi64>, %i: tensor<2x1xi64>) {
  // expected-error @+1 {{params must be [batch, 4] f32 (temperature, top_k, top_p, min_p), got 'tensor<2x3xf32>'}}
  %0 = tfm.sample %l, %p, %s into %i : tensor<2x1x64xf32>, tensor<2x3xf32>, tensor<2xi64>, tensor<2x1xi64> -> tensor<2x1xi64>
  return
}

// -----

func.func @sample_batch(%l: tensor<2x1x64xf32>, %p: tensor<2x4xf32>, %s: tensor<3xi64>, %i: tensor<2x1xi64>) {
  // expected-error @+1 {{batch and seq of logits 'tensor<2x1x64xf32>' must match params, seeds and init 'tensor<2x1xi64>'}}
  %0 = tfm.sample %l, %p, %s into %i : tensor<2x1x64xf32>, tensor<2x4xf32>, tensor<3xi64>, tensor<2x1xi64> -> tensor<2x1xi64>
  return
}

// -----

func.func @sample_mixed(%l: tensor<2x1x64xf32>, %p: tensor<2x4xf32>, %s: tensor<2xi64>, %o: memref<2x1xi64>) {
  // expected-error @+1 {{operands must be all tensors or all memrefs}}
  tfm.sample %l, %p, %s into %o : tensor<2x1x64xf32>, tensor<2x4xf32>, tensor<2xi64>, memref<2x1xi64>
  return
}

// -----

func.func @sample_no_result(%l: tensor<2x1x64xf32>, %p: tensor<2x4xf32>, %s: tensor<2xi64>, %i: tensor<2x1xi64>) {
  // expected-error @+1 {{on tensors has one result, the type of init}}
  tfm.sample %l, %p, %s into %i : tensor<2x1x64xf32>, tensor<2x4xf32>, tensor<2xi64>, tensor<2x1xi64>
  return
}

// -----

func.func @argmax_rows(%l: tensor<2x3x1024xf32>) {
  // expected-error @+1 {{result dim 1 (4) does not match logits dim 1 (3)}}
  %0 = tfm.argmax %l : tensor<2x3x1024xf32> -> tensor<2x4xi64>
  return
}

// -----

func.func @argmax_type(%l: tensor<2x3x1024xf32>) {
  // expected-error @+1 {{result #0 must be 2-D [batch, seq] tensor of 64-bit signless integer values, but got 'tensor<2x3xi32>'}}
  %0 = tfm.argmax %l : tensor<2x3x1024xf32> -> tensor<2x3xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tfm.dequantize
//===----------------------------------------------------------------------===//

func.func @dequantize_packed_shape(%p: tensor<4x16xi8>, %s: tensor<4x2xf16>) {
  // expected-error @+1 {{packed must be [4, 32] for 4-bit values of a 4x64 weight, got [4, 16]}}
  %0 = tfm.dequantize %p, %s {bits = 4 : i64, group_size = 32 : i64} : tensor<4x16xi8>, tensor<4x2xf16> -> tensor<4x64xf16>
  return
}

// -----

func.func @dequantize_scales_shape(%p: tensor<4x32xi8>, %s: tensor<4x4xf16>) {
  // expected-error @+1 {{scales must be [4, 2] (one per group of 32), got [4, 4]}}
  %0 = tfm.dequantize %p, %s {bits = 4 : i64, group_size = 32 : i64} : tensor<4x32xi8>, tensor<4x4xf16> -> tensor<4x64xf16>
  return
}

// -----

func.func @dequantize_group(%p: tensor<4x48xi8>, %s: tensor<4x1xf16>) {
  // expected-error @+1 {{group_size 32 does not divide the 48 columns}}
  %0 = tfm.dequantize %p, %s {bits = 8 : i64, group_size = 32 : i64} : tensor<4x48xi8>, tensor<4x1xf16> -> tensor<4x48xf16>
  return
}

// -----

func.func @dequantize_bits(%p: tensor<4x24xi8>, %s: tensor<4x2xf16>) {
  // expected-error @+1 {{attribute 'bits' failed to satisfy constraint}}
  %0 = tfm.dequantize %p, %s {bits = 3 : i64, group_size = 32 : i64} : tensor<4x24xi8>, tensor<4x2xf16> -> tensor<4x64xf16>
  return
}

// -----

func.func @dequantize_scale_type(%p: tensor<4x32xi8>, %s: tensor<4x2xf32>) {
  // expected-error @+1 {{scales must have the result's element type}}
  %0 = tfm.dequantize %p, %s {bits = 4 : i64, group_size = 32 : i64} : tensor<4x32xi8>, tensor<4x2xf32> -> tensor<4x64xf16>
  return
}

// -----

func.func @dequantize_zero_points(%p: tensor<4x32xi8>, %s: tensor<4x2xf16>, %z: tensor<4x1xf16>) {
  // expected-error @+1 {{zero_points must be [4, 2] (one per group of 32), got [4, 1]}}
  %0 = tfm.dequantize %p, %s zero_points %z {bits = 4 : i64, group_size = 32 : i64} : tensor<4x32xi8>, tensor<4x2xf16>, tensor<4x1xf16> -> tensor<4x64xf16>
  return
}

// -----

// Ops whose result is an operand's type say so (InferTypeOpInterface infers it).
func.func @rms_norm_result_type(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{result type 'tensor<1x4x64xf16>' must equal the input's 'tensor<1x4x64xf32>'}}
  %0 = "tfm.rms_norm"(%x, %w) {epsilon = 1.0e-5 : f32} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf16>
  return
}

// -----

// A paged op's block table has one row per batch row.
func.func @kv_append_block_table_rows(%v: tensor<2x1x64xf32>, %pool: tensor<16x2x8x32xf32>, %pos: tensor<2x1xi64>, %table: tensor<3x4xi32>) {
  // expected-error @+1 {{block table has 3 rows, expected one per batch row (2)}}
  %0 = tfm.kv_append %v into %pool at %pos pages %table : tensor<2x1x64xf32>, tensor<16x2x8x32xf32>, tensor<2x1xi64>, tensor<3x4xi32>
  return
}

// -----

func.func @attention_block_table_rows(%q: tensor<2x1x128xf32>, %kc: tensor<16x2x8x32xf32>, %vc: tensor<16x2x8x32xf32>, %pos: tensor<2x1xi64>, %table: tensor<1x4xi32>) {
  // expected-error @+1 {{block table has 1 rows, expected one per batch row (2)}}
  %0 = tfm.attention %q, %kc, %vc, %pos pages %table {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.176776695 : f32} : tensor<2x1x128xf32>, tensor<16x2x8x32xf32>, tensor<2x1xi64>, tensor<1x4xi32>
  return
}

// -----

func.func @attention_block_table_type(%q: tensor<2x1x128xf32>, %kc: tensor<16x2x8x32xf32>, %vc: tensor<16x2x8x32xf32>, %pos: tensor<2x1xi64>, %table: tensor<2x4xi64>) {
  // expected-error @+1 {{operand #4 must be 2-D [batch, max_blocks] i32 tensor of 32-bit signless integer values, but got 'tensor<2x4xi64>'}}
  %0 = tfm.attention %q, %kc, %vc, %pos pages %table {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 32 : i64, scale = 0.176776695 : f32} : tensor<2x1x128xf32>, tensor<16x2x8x32xf32>, tensor<2x1xi64>, tensor<2x4xi64>
  return
}

//===----------------------------------------------------------------------===//
// tfm.all_reduce, tfm.all_gather
//===----------------------------------------------------------------------===//

// -----

func.func @all_reduce_one_rank(%x: tensor<1x1x64xf16>) {
  // expected-error @+1 {{attribute 'ranks' failed to satisfy constraint: 64-bit signless integer attribute whose minimum value is 2}}
  %0 = tfm.all_reduce %x {ranks = 1 : i64} : tensor<1x1x64xf16>
  return
}

// -----

func.func @all_gather_axis(%x: tensor<1x1x64xf16>) {
  // expected-error @+1 {{axis 3 is not a dimension of a rank-3 operand}}
  %0 = tfm.all_gather %x {ranks = 2 : i64, axis = 3 : i64} : tensor<1x1x64xf16> -> tensor<1x1x128xf16>
  return
}

// -----

func.func @all_gather_size(%x: tensor<1x1x64xf16>) {
  // expected-error @+1 {{result dim 2 (64) must be ranks x the operand's (128)}}
  %0 = tfm.all_gather %x {ranks = 2 : i64, axis = 2 : i64} : tensor<1x1x64xf16> -> tensor<1x1x64xf16>
  return
}

// -----

func.func @all_gather_other_dim(%x: tensor<1x1x64xf16>) {
  // expected-error @+1 {{result dim 1 (2) must be the operand's (1)}}
  %0 = tfm.all_gather %x {ranks = 2 : i64, axis = 2 : i64} : tensor<1x1x64xf16> -> tensor<1x2x128xf16>
  return
}
