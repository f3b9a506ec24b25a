// RUN: kiln-opt %s --split-input-file --kiln-fuse-projections | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-fuse-projections=transpose-in-out=true | FileCheck %s --check-prefix=TRANS

// With transpose-in-out, the joined [in, out] weights are stored [out, in]
// in the same copy: row n of @wq.fused is column n of wq, wk, then wv.
// TRANS: ml_program.global private @wq.fused(dense_resource<wq.fused> : tensor<5x2xf32>)
// TRANS: tfm.linear %{{.+}}, %{{.+}} layout = <out_in> : (tensor<1x3x2xf32>, tensor<5x2xf32>) -> tensor<1x3x5xf32>
// TRANS: wq.fused: "0x080000000000803F0000404000000040000080400000A0400000E0400000C040000000410000104100002041"

// q/k/v of one activation, weights [in, out]: one projection over the
// weights joined column-wise (each row of @wq.fused is a row of wq, then
// wk, then wv), and three slices of its result. The entry points share the
// fused global; the parts, loaded by nothing now, are gone.

// CHECK-NOT: ml_program.global private @wq(
// CHECK-NOT: ml_program.global private @wk(
// CHECK-NOT: ml_program.global private @wv(
// CHECK: ml_program.global private @wq.fused(dense_resource<wq.fused> : tensor<2x5xf32>)
// CHECK-NOT: ml_program.global

// CHECK-LABEL: func.func @prefill(%{{.+}}: tensor<1x3x2xf32>)
// CHECK: %[[W:.+]] = ml_program.global_load_const @wq.fused : tensor<2x5xf32>
// CHECK: %[[F:.+]] = tfm.linear %{{.+}}, %[[W]] layout = <in_out> : (tensor<1x3x2xf32>, tensor<2x5xf32>) -> tensor<1x3x5xf32>
// CHECK-NEXT: %[[Q:.+]] = tensor.extract_slice %[[F]][0, 0, 0] [1, 3, 2] [1, 1, 1] : tensor<1x3x5xf32> to tensor<1x3x2xf32>
// CHECK-NEXT: %[[K:.+]] = tensor.extract_slice %[[F]][0, 0, 2] [1, 3, 2] [1, 1, 1]
// CHECK-NEXT: %[[V:.+]] = tensor.extract_slice %[[F]][0, 0, 4] [1, 3, 1] [1, 1, 1] : tensor<1x3x5xf32> to tensor<1x3x1xf32>
// CHECK-NOT: tfm.linear
// CHECK: return %[[Q]], %[[K]], %[[V]]

// CHECK-LABEL: func.func @decode
// CHECK: ml_program.global_load_const @wq.fused
// CHECK-COUNT-1: tfm.linear
// CHECK-NOT: tfm.linear

// The joined bytes, row by row: wq row 0 (1, 2), wk row 0 (5, 6), wv row 0
// (9), then row 1 of each.
// CHECK: wq.fused: "0x080000000000803F000000400000A0400000C0400000104100004040000080400000E0400000004100002041"

ml_program.global private @wq(dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>) : tensor<2x2xf32>
ml_program.global private @wk(dense<[[5.0, 6.0], [7.0, 8.0]]> : tensor<2x2xf32>) : tensor<2x2xf32>
ml_program.global private @wv(dense<[[9.0], [10.0]]> : tensor<2x1xf32>) : tensor<2x1xf32>
func.func @prefill(%x: tensor<1x3x2xf32>) -> (tensor<1x3x2xf32>, tensor<1x3x2xf32>, tensor<1x3x1xf32>) {
  %wq = ml_program.global_load_const @wq : tensor<2x2xf32>
  %wk = ml_program.global_load_const @wk : tensor<2x2xf32>
  %wv = ml_program.global_load_const @wv : tensor<2x1xf32>
  %q = tfm.linear %x, %wq layout = <in_out> : (tensor<1x3x2xf32>, tensor<2x2xf32>) -> tensor<1x3x2xf32>
  %k = tfm.linear %x, %wk layout = <in_out> : (tensor<1x3x2xf32>, tensor<2x2xf32>) -> tensor<1x3x2xf32>
  %v = tfm.linear %x, %wv layout = <in_out> : (tensor<1x3x2xf32>, tensor<2x1xf32>) -> tensor<1x3x1xf32>
  return %q, %k, %v : tensor<1x3x2xf32>, tensor<1x3x2xf32>, tensor<1x3x1xf32>
}
func.func @decode(%x: tensor<1x1x2xf32>) -> (tensor<1x1x2xf32>, tensor<1x1x2xf32>, tensor<1x1x1xf32>) {
  %wq = ml_program.global_load_const @wq : tensor<2x2xf32>
  %wk = ml_program.global_load_const @wk : tensor<2x2xf32>
  %wv = ml_program.global_load_const @wv : tensor<2x1xf32>
  %q = tfm.linear %x, %wq layout = <in_out> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  %k = tfm.linear %x, %wk layout = <in_out> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  %v = tfm.linear %x, %wv layout = <in_out> : (tensor<1x1x2xf32>, tensor<2x1xf32>) -> tensor<1x1x1xf32>
  return %q, %k, %v : tensor<1x1x2xf32>, tensor<1x1x2xf32>, tensor<1x1x1xf32>
}

// -----

// [out, in] weights with biases: rows appended, biases appended.
// CHECK-LABEL: ml_program.global private @wg.fused(dense_resource<wg.fused> : tensor<5x2xf32>)
// CHECK: ml_program.global private @bg.fused(dense_resource<bg.fused> : tensor<5xf32>)
// CHECK-LABEL: func.func @prefill
// CHECK: tfm.linear %{{.+}}, %{{.+}} bias %{{.+}} layout = <out_in> : (tensor<1x1x2xf32>, tensor<5x2xf32>, tensor<5xf32>) -> tensor<1x1x5xf32>
// CHECK: bg.fused: "0x08000000{{0000803F0000004000004040000080400000A040}}"
ml_program.global private @wg(dense<1.0> : tensor<3x2xf32>) : tensor<3x2xf32>
ml_program.global private @wu(dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>) : tensor<2x2xf32>
ml_program.global private @bg(dense<[1.0, 2.0, 3.0]> : tensor<3xf32>) : tensor<3xf32>
ml_program.global private @bu(dense<[4.0, 5.0]> : tensor<2xf32>) : tensor<2xf32>
func.func @prefill(%x: tensor<1x1x2xf32>) -> (tensor<1x1x3xf32>, tensor<1x1x2xf32>) {
  %wg = ml_program.global_load_const @wg : tensor<3x2xf32>
  %wu = ml_program.global_load_const @wu : tensor<2x2xf32>
  %bg = ml_program.global_load_const @bg : tensor<3xf32>
  %bu = ml_program.global_load_const @bu : tensor<2xf32>
  %g = tfm.linear %x, %wg bias %bg layout = <out_in> : (tensor<1x1x2xf32>, tensor<3x2xf32>, tensor<3xf32>) -> tensor<1x1x3xf32>
  %u = tfm.linear %x, %wu bias %bu layout = <out_in> : (tensor<1x1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x1x2xf32>
  return %g, %u : tensor<1x1x3xf32>, tensor<1x1x2xf32>
}

// -----

// Where it must not fire: projections of different activations; a weight
// that is not a constant (a function argument); layouts that differ; one
// with a bias and one without; a single projection. Nothing changes.
// CHECK-LABEL: func.func @no_fusion
// CHECK-NOT: fused
// CHECK-NOT: tensor.extract_slice
// CHECK-COUNT-7: tfm.linear
ml_program.global private @w1(dense<1.0> : tensor<2x2xf32>) : tensor<2x2xf32>
ml_program.global private @w2(dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>) : tensor<2x2xf32>
ml_program.global private @b1(dense<[1.0, 2.0]> : tensor<2xf32>) : tensor<2xf32>
func.func @no_fusion(%x: tensor<1x1x2xf32>, %y: tensor<1x1x2xf32>, %warg: tensor<2x2xf32>)
    -> (tensor<1x1x2xf32>, tensor<1x1x2xf32>, tensor<1x1x2xf32>, tensor<1x1x2xf32>,
        tensor<1x1x2xf32>, tensor<1x1x2xf32>, tensor<1x1x2xf32>) {
  %w1 = ml_program.global_load_const @w1 : tensor<2x2xf32>
  %w2 = ml_program.global_load_const @w2 : tensor<2x2xf32>
  %b1 = ml_program.global_load_const @b1 : tensor<2xf32>
  // different inputs
  %a = tfm.linear %x, %w1 layout = <in_out> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  %b = tfm.linear %y, %w2 layout = <in_out> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  // a non-constant weight beside %a's input
  %c = tfm.linear %x, %warg layout = <in_out> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  // %y: layouts differ
  %d = tfm.linear %y, %w1 layout = <out_in> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  // %z = %a: bias and no bias
  %e = tfm.linear %a, %w1 layout = <in_out> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  %f = tfm.linear %a, %w2 bias %b1 layout = <in_out> : (tensor<1x1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x1x2xf32>
  // a single projection
  %g = tfm.linear %b, %w2 layout = <in_out> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  return %a, %b, %c, %d, %e, %f, %g : tensor<1x1x2xf32>, tensor<1x1x2xf32>, tensor<1x1x2xf32>,
      tensor<1x1x2xf32>, tensor<1x1x2xf32>, tensor<1x1x2xf32>, tensor<1x1x2xf32>
}
