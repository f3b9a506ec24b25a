// RUN: kiln-opt %s --split-input-file --verify-diagnostics --kiln-quantize-weights="scheme=int4 group-size=2 asymmetric=true lm-head=true" | FileCheck %s

// int4 in groups of 2 with zero points, from an [in, out] weight, and the
// logits quantized too (lm-head). Rows of the [out, in] weight: (0, 15,
// -8, 7) -> groups (0, 15): scale 1, zero 0, codes (0, 15); (-8, 7): scale 1,
// zero 8, codes (0, 15). (3, 7.5, -15, -5) -> (3, 7.5): the range includes 0,
// scale 0.5, zero 0, codes (6, 15); (-15, -5): scale 1, zero 15, codes
// (0, 10). Two codes per byte, the first in the low four bits.
// CHECK-LABEL: func.func @prefill
// CHECK: %[[D:.+]] = tfm.dequantize %{{.+}}, %{{.+}} zero_points %{{.+}} {bits = 4 : i64, group_size = 2 : i64} : tensor<2x2xi8>, tensor<2x2xf32>, tensor<2x2xf32> -> tensor<2x4xf32>
// CHECK: tfm.linear %{{.+}}, %[[D]] layout = <out_in>
// CHECK: %[[L:.+]] = tfm.dequantize %{{.+}}, %{{.+}} zero_points %{{.+}} {bits = 4 : i64, group_size = 2 : i64} : tensor<3x2xi8>, tensor<3x2xf32>, tensor<3x2xf32> -> tensor<3x4xf32>
// CHECK: tfm.logits %{{.+}}, %[[L]] layout = <out_in>
// CHECK: w.t.int4g2.packed: "0x08000000F0F0F6A0"
// CHECK: w.t.int4g2.scales: "0x080000000000803F0000803F0000003F0000803F"
// CHECK: w.t.int4g2.zero_points: "0x0800000000000000000000410000000000007041"
ml_program.global private @w(dense<[[0.0, 3.0], [15.0, 7.5], [-8.0, -15.0], [7.0, -5.0]]> : tensor<4x2xf32>) : tensor<4x2xf32>
ml_program.global private @lm(dense<1.0> : tensor<3x4xf32>) : tensor<3x4xf32>
func.func @prefill(%x: tensor<1x1x4xf32>) -> (tensor<1x1x2xf32>, tensor<1x1x3xf32>) {
  %w = ml_program.global_load_const @w : tensor<4x2xf32>
  %y = tfm.linear %x, %w layout = <in_out> : (tensor<1x1x4xf32>, tensor<4x2xf32>) -> tensor<1x1x2xf32>
  %lm = ml_program.global_load_const @lm : tensor<3x4xf32>
  %l = tfm.logits %x, %lm layout = <out_in> : (tensor<1x1x4xf32>, tensor<3x4xf32>) -> tensor<1x1x3xf32>
  return %y, %l : tensor<1x1x2xf32>, tensor<1x1x3xf32>
}

// -----

// Not quantized: a weight whose 3 input features do not split into groups
// of 2 (a warning says so).
// CHECK-LABEL: func.func @left_alone
// CHECK-NOT: tfm.dequantize
ml_program.global private @odd(dense<1.0> : tensor<2x3xf32>) : tensor<2x3xf32>
func.func @left_alone(%x3: tensor<1x1x3xf32>) -> tensor<1x1x2xf32> {
  %odd = ml_program.global_load_const @odd : tensor<2x3xf32>
  // expected-warning @+1 {{kept in 'f32': its 3 input features are not a multiple of the group size 2}}
  %b = tfm.linear %x3, %odd layout = <out_in> : (tensor<1x1x3xf32>, tensor<2x3xf32>) -> tensor<1x1x2xf32>
  return %b : tensor<1x1x2xf32>
}
