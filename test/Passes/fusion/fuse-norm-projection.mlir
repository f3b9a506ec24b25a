// RUN: kiln-opt %s --split-input-file --kiln-fuse-norm-projection | FileCheck %s

// One norm, one projection ([out, in]): the linear reads the norm's input,
// its weight is W[n, k] * gain[k] (a new global, shared by the entry
// points; the old weight and gain, loaded by nothing now, are gone) and it
// carries the norm's epsilon. W = [[1, 2], [3, 4]], gain = [2, 3]:
// [[2, 6], [6, 12]].

// CHECK-NOT: ml_program.global private @w(
// CHECK-NOT: ml_program.global private @g(
// CHECK: ml_program.global private @w.g(dense_resource<w.g> : tensor<2x2xf32>)
// CHECK-NOT: ml_program.global

// CHECK-LABEL: func.func @prefill(%{{.+}}: tensor<1x3x2xf32>)
// CHECK-NOT: tfm.rms_norm
// CHECK: %[[W:.+]] = ml_program.global_load_const @w.g : tensor<2x2xf32>
// CHECK: %[[Y:.+]] = tfm.linear %arg0, %[[W]] layout = <out_in> rms_norm eps = 9.99999974E-6 : (tensor<1x3x2xf32>, tensor<2x2xf32>) -> tensor<1x3x2xf32>
// CHECK: return %[[Y]]
// CHECK-LABEL: func.func @decode
// CHECK-NOT: tfm.rms_norm
// CHECK: ml_program.global_load_const @w.g
// CHECK: tfm.linear %arg0, %{{.+}} layout = <out_in> rms_norm eps = 9.99999974E-6
// CHECK: w.g: "0x08000000000000400000C0400000C04000004041"

ml_program.global private @w(dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>) : tensor<2x2xf32>
ml_program.global private @g(dense<[2.0, 3.0]> : tensor<2xf32>) : tensor<2xf32>
func.func @prefill(%x: tensor<1x3x2xf32>) -> tensor<1x3x2xf32> {
  %w = ml_program.global_load_const @w : tensor<2x2xf32>
  %g = ml_program.global_load_const @g : tensor<2xf32>
  %n = tfm.rms_norm %x, %g {epsilon = 1.0e-05 : f32} : tensor<1x3x2xf32>, tensor<2xf32>
  %y = tfm.linear %n, %w layout = <out_in> : (tensor<1x3x2xf32>, tensor<2x2xf32>) -> tensor<1x3x2xf32>
  return %y : tensor<1x3x2xf32>
}
func.func @decode(%x: tensor<1x1x2xf32>) -> tensor<1x1x2xf32> {
  %w = ml_program.global_load_const @w : tensor<2x2xf32>
  %g = ml_program.global_load_const @g : tensor<2xf32>
  %n = tfm.rms_norm %x, %g {epsilon = 1.0e-05 : f32} : tensor<1x1x2xf32>, tensor<2xf32>
  %y = tfm.linear %n, %w layout = <out_in> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  return %y : tensor<1x1x2xf32>
}

// -----

// Two projections of one norm (q and k unfused), one of them [in, out]:
// both fold (the [in, out] weight scaled along its rows: [[2, 4], [9, 12]])
// and the norm is gone.

// CHECK: ml_program.global private @wq.g(dense_resource<wq.g> : tensor<2x2xf32>)
// CHECK: ml_program.global private @wk.g(dense_resource<wk.g> : tensor<2x2xf32>)
// CHECK-LABEL: func.func @two
// CHECK-NOT: tfm.rms_norm
// CHECK: tfm.linear %arg0, %{{.+}} layout = <in_out> rms_norm eps
// CHECK: tfm.linear %arg0, %{{.+}} layout = <out_in> rms_norm eps
// CHECK: wq.g: "0x0800000000000040000080400000104100004041"

ml_program.global private @wq(dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>) : tensor<2x2xf32>
ml_program.global private @wk(dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>) : tensor<2x2xf32>
ml_program.global private @g(dense<[2.0, 3.0]> : tensor<2xf32>) : tensor<2xf32>
func.func @two(%x: tensor<1x1x2xf32>) -> (tensor<1x1x2xf32>, tensor<1x1x2xf32>) {
  %wq = ml_program.global_load_const @wq : tensor<2x2xf32>
  %wk = ml_program.global_load_const @wk : tensor<2x2xf32>
  %g = ml_program.global_load_const @g : tensor<2xf32>
  %n = tfm.rms_norm %x, %g {epsilon = 1.0e-05 : f32} : tensor<1x1x2xf32>, tensor<2xf32>
  %q = tfm.linear %n, %wq layout = <in_out> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  %k = tfm.linear %n, %wk layout = <out_in> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  return %q, %k : tensor<1x1x2xf32>, tensor<1x1x2xf32>
}

// -----

// Must not fire: the norm's result is also returned, or also read by
// tfm.logits, or its gain is not a constant, or the weight is not a constant.

// CHECK-LABEL: func.func @returned
// CHECK: %[[N:.+]] = tfm.rms_norm
// CHECK: tfm.linear %[[N]], %{{.+}} layout = <out_in> :
// CHECK: return %{{.+}}, %[[N]]
// CHECK-LABEL: func.func @logits
// CHECK: %[[N:.+]] = tfm.rms_norm
// CHECK: tfm.linear %[[N]], %{{.+}} layout = <out_in> :
// CHECK: tfm.logits %[[N]]
// CHECK-LABEL: func.func @gain_argument
// CHECK: %[[N:.+]] = tfm.rms_norm
// CHECK: tfm.linear %[[N]], %{{.+}} layout = <out_in> :
// CHECK-LABEL: func.func @weight_argument
// CHECK: %[[N:.+]] = tfm.rms_norm
// CHECK: tfm.linear %[[N]], %arg1 layout = <out_in> :
// CHECK-NOT: rms_norm eps

ml_program.global private @w(dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>) : tensor<2x2xf32>
ml_program.global private @g(dense<[2.0, 3.0]> : tensor<2xf32>) : tensor<2xf32>
func.func @returned(%x: tensor<1x1x2xf32>) -> (tensor<1x1x2xf32>, tensor<1x1x2xf32>) {
  %w = ml_program.global_load_const @w : tensor<2x2xf32>
  %g = ml_program.global_load_const @g : tensor<2xf32>
  %n = tfm.rms_norm %x, %g {epsilon = 1.0e-05 : f32} : tensor<1x1x2xf32>, tensor<2xf32>
  %y = tfm.linear %n, %w layout = <out_in> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  return %y, %n : tensor<1x1x2xf32>, tensor<1x1x2xf32>
}
func.func @logits(%x: tensor<1x1x2xf32>) -> (tensor<1x1x2xf32>, tensor<1x1x2xf32>) {
  %w = ml_program.global_load_const @w : tensor<2x2xf32>
  %g = ml_program.global_load_const @g : tensor<2xf32>
  %n = tfm.rms_norm %x, %g {epsilon = 1.0e-05 : f32} : tensor<1x1x2xf32>, tensor<2xf32>
  %y = tfm.linear %n, %w layout = <out_in> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  %l = tfm.logits %n, %w layout = <out_in> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  return %y, %l : tensor<1x1x2xf32>, tensor<1x1x2xf32>
}
func.func @gain_argument(%x: tensor<1x1x2xf32>, %g: tensor<2xf32>) -> tensor<1x1x2xf32> {
  %w = ml_program.global_load_const @w : tensor<2x2xf32>
  %n = tfm.rms_norm %x, %g {epsilon = 1.0e-05 : f32} : tensor<1x1x2xf32>, tensor<2xf32>
  %y = tfm.linear %n, %w layout = <out_in> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  return %y : tensor<1x1x2xf32>
}
func.func @weight_argument(%x: tensor<1x1x2xf32>, %w: tensor<2x2xf32>) -> tensor<1x1x2xf32> {
  %g = ml_program.global_load_const @g : tensor<2xf32>
  %n = tfm.rms_norm %x, %g {epsilon = 1.0e-05 : f32} : tensor<1x1x2xf32>, tensor<2xf32>
  %y = tfm.linear %n, %w layout = <out_in> : (tensor<1x1x2xf32>, tensor<2x2xf32>) -> tensor<1x1x2xf32>
  return %y : tensor<1x1x2xf32>
}
