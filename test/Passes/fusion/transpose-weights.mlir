// RUN: kiln-opt %s --split-input-file --kiln-transpose-weights | FileCheck %s

// [in, out] weights of tfm.linear and tfm.logits become [out, in] copies
// made at compile time, shared by both functions; the originals go.
// CHECK-NOT: ml_program.global private @w(
// CHECK: ml_program.global private @w.t(dense_resource<w.t> : tensor<3x2xf32>)
// CHECK-NOT: ml_program.global private @w(
// CHECK-LABEL: func.func @prefill
// CHECK: %[[T:.+]] = ml_program.global_load_const @w.t : tensor<3x2xf32>
// CHECK: tfm.linear %{{.+}}, %[[T]] layout = <out_in> : (tensor<1x1x2xf32>, tensor<3x2xf32>) -> tensor<1x1x3xf32>
// CHECK-LABEL: func.func @decode
// CHECK: %[[T2:.+]] = ml_program.global_load_const @w.t : tensor<3x2xf32>
// CHECK: tfm.logits %{{.+}}, %[[T2]] layout = <out_in>
// Column c of w is row c of w.t: (1, 4), (2, 5), (3, 6).
// CHECK: w.t: "0x080000000000803F00008040000000400000A040000040400000C040"
ml_program.global private @w(dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>) : tensor<2x3xf32>
func.func @prefill(%x: tensor<1x1x2xf32>) -> tensor<1x1x3xf32> {
  %w = ml_program.global_load_const @w : tensor<2x3xf32>
  %y = tfm.linear %x, %w layout = <in_out> : (tensor<1x1x2xf32>, tensor<2x3xf32>) -> tensor<1x1x3xf32>
  return %y : tensor<1x1x3xf32>
}
func.func @decode(%x: tensor<1x1x2xf32>) -> tensor<1x1x3xf32> {
  %w = ml_program.global_load_const @w : tensor<2x3xf32>
  %y = tfm.logits %x, %w layout = <in_out> : (tensor<1x1x2xf32>, tensor<2x3xf32>) -> tensor<1x1x3xf32>
  return %y : tensor<1x1x3xf32>
}

// -----

// Left alone: a weight already [out, in]; a weight that is no constant. A
// global that something else still reads (here an embedding table) stays
// beside its copy.
// CHECK-LABEL: ml_program.global private @table.t(dense_resource<table.t> : tensor<2x4xf32>)
// CHECK: ml_program.global private @table(
// CHECK: ml_program.global private @oi(
// CHECK-LABEL: func.func @f
// CHECK: tfm.embedding %{{.+}}[
// CHECK: tfm.linear %{{.+}}, %{{.+}} layout = <out_in> : (tensor<1x1x2xf32>, tensor<3x2xf32>)
// CHECK: tfm.linear %{{.+}}, %arg2 layout = <in_out>
// CHECK: tfm.linear %{{.+}}, %{{.+}} layout = <out_in> : (tensor<1x1x4xf32>, tensor<2x4xf32>)
ml_program.global private @table(dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]> : tensor<4x2xf32>) : tensor<4x2xf32>
ml_program.global private @oi(dense<1.0> : tensor<3x2xf32>) : tensor<3x2xf32>
func.func @f(%ids: tensor<1x1xi64>, %x: tensor<1x1x2xf32>, %warg: tensor<2x3xf32>, %x4: tensor<1x1x4xf32>)
    -> (tensor<1x1x2xf32>, tensor<1x1x3xf32>, tensor<1x1x3xf32>, tensor<1x1x2xf32>) {
  %t = ml_program.global_load_const @table : tensor<4x2xf32>
  %oi = ml_program.global_load_const @oi : tensor<3x2xf32>
  %e = tfm.embedding %t[%ids] : tensor<4x2xf32>, tensor<1x1xi64> -> tensor<1x1x2xf32>
  %a = tfm.linear %x, %oi layout = <out_in> : (tensor<1x1x2xf32>, tensor<3x2xf32>) -> tensor<1x1x3xf32>
  %b = tfm.linear %x, %warg layout = <in_out> : (tensor<1x1x2xf32>, tensor<2x3xf32>) -> tensor<1x1x3xf32>
  %l = tfm.linear %x4, %t layout = <in_out> : (tensor<1x1x4xf32>, tensor<4x2xf32>) -> tensor<1x1x2xf32>
  return %e, %a, %b, %l : tensor<1x1x2xf32>, tensor<1x1x3xf32>, tensor<1x1x3xf32>, tensor<1x1x2xf32>
}
