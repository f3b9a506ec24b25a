// RUN: kiln-opt %s --kiln-quantize-weights="scheme=int8" | FileCheck %s

// int8, one scale per row (symmetric): the element of largest magnitude
// takes code -128. Row 0: m = 4, scale = 4 / -128 = -0.03125, codes of
// (1, -2, 0.5, 4) = (-32, 64, -16, -128) + 128 = 0x60 0xC0 0x70 0x00. Row 1:
// m = -3, scale = 0.0234375, codes (-128, 64, 0, 32) + 128 = 0x00 0xC0 0x80
// 0xA0. tfm.logits keeps its weight unless lm-head is set; a weight that is
// no constant stays as it is.
// CHECK-LABEL: func.func @prefill
// CHECK-DAG: %[[S:.+]] = ml_program.global_load_const @w.int8g4.scales : tensor<2x1xf32>
// CHECK-DAG: %[[P:.+]] = ml_program.global_load_const @w.int8g4.packed : tensor<2x4xi8>
// CHECK: %[[D:.+]] = tfm.dequantize %[[P]], %[[S]] {bits = 8 : i64, group_size = 4 : i64} : tensor<2x4xi8>, tensor<2x1xf32> -> tensor<2x4xf32>
// CHECK: tfm.linear %{{.+}}, %[[D]] layout = <out_in>
// CHECK: %[[LM:.+]] = ml_program.global_load_const @lm : tensor<3x4xf32>
// CHECK: tfm.logits %{{.+}}, %[[LM]] layout = <out_in>
// CHECK: tfm.linear %{{.+}}, %arg1 layout = <out_in>
// CHECK: w.int8g4.packed: "0x0800000060C0700000C080A0"
// CHECK: w.int8g4.scales: "0x08000000000000BD0000C03C"
ml_program.global private @w(dense<[[1.0, -2.0, 0.5, 4.0], [-3.0, 1.5, 0.0, 0.75]]> : tensor<2x4xf32>) : tensor<2x4xf32>
ml_program.global private @lm(dense<1.0> : tensor<3x4xf32>) : tensor<3x4xf32>
func.func @prefill(%x: tensor<1x1x4xf32>, %warg: tensor<2x4xf32>) -> (tensor<1x1x2xf32>, tensor<1x1x3xf32>, tensor<1x1x2xf32>) {
  %w = ml_program.global_load_const @w : tensor<2x4xf32>
  %y = tfm.linear %x, %w layout = <out_in> : (tensor<1x1x4xf32>, tensor<2x4xf32>) -> tensor<1x1x2xf32>
  %lm = ml_program.global_load_const @lm : tensor<3x4xf32>
  %l = tfm.logits %x, %lm layout = <out_in> : (tensor<1x1x4xf32>, tensor<3x4xf32>) -> tensor<1x1x3xf32>
  %a = tfm.linear %x, %warg layout = <out_in> : (tensor<1x1x4xf32>, tensor<2x4xf32>) -> tensor<1x1x2xf32>
  return %y, %l, %a : tensor<1x1x2xf32>, tensor<1x1x3xf32>, tensor<1x1x2xf32>
}
