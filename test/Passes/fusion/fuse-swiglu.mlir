// RUN: kiln-opt %s --split-input-file --kiln-fuse-swiglu | FileCheck %s

// The joined gate/up projection's halves feed tfm.swiglu: the linear
// computes the activation itself (swiglu, half the features), keeping its
// bias and rms_norm eps; the slices and the swiglu are gone.
// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%[[X:.+]]: tensor<1x1x8xf16>, %[[W:.+]]: tensor<12x8xf16>, %[[B:.+]]: tensor<12xf16>)
// CHECK-NEXT: %[[Y:.+]] = tfm.linear %[[X]], %[[W]] bias %[[B]] layout = <out_in> rms_norm eps = 9.99999974E-6 swiglu : (tensor<1x1x8xf16>, tensor<12x8xf16>, tensor<12xf16>) -> tensor<1x1x6xf16>
// CHECK-NEXT: return %[[Y]]
func.func @decode(%x: tensor<1x1x8xf16>, %w: tensor<12x8xf16>, %b: tensor<12xf16>) -> tensor<1x1x6xf16> {
  %gu = tfm.linear %x, %w bias %b layout = <out_in> rms_norm eps = 1.0e-05 : (tensor<1x1x8xf16>, tensor<12x8xf16>, tensor<12xf16>) -> tensor<1x1x12xf16>
  %g = tensor.extract_slice %gu[0, 0, 0] [1, 1, 6] [1, 1, 1] : tensor<1x1x12xf16> to tensor<1x1x6xf16>
  %u = tensor.extract_slice %gu[0, 0, 6] [1, 1, 6] [1, 1, 1] : tensor<1x1x12xf16> to tensor<1x1x6xf16>
  %y = tfm.swiglu %g, %u : tensor<1x1x6xf16>
  return %y : tensor<1x1x6xf16>
}

// -----

// Must not fire: the joined result is also returned (@shared), the halves
// are swapped (@swapped: up first), a half has another user (@half_used),
// the halves do not meet in the middle (@not_halves).
// CHECK-LABEL: func.func @shared
// CHECK: tfm.swiglu
// CHECK-LABEL: func.func @swapped
// CHECK: tfm.swiglu
// CHECK-LABEL: func.func @half_used
// CHECK: tfm.swiglu
// CHECK-LABEL: func.func @not_halves
// CHECK: tfm.swiglu
// CHECK-NOT: swiglu :
func.func @shared(%x: tensor<1x1x8xf16>, %w: tensor<12x8xf16>) -> (tensor<1x1x6xf16>, tensor<1x1x12xf16>) {
  %gu = tfm.linear %x, %w layout = <out_in> : (tensor<1x1x8xf16>, tensor<12x8xf16>) -> tensor<1x1x12xf16>
  %g = tensor.extract_slice %gu[0, 0, 0] [1, 1, 6] [1, 1, 1] : tensor<1x1x12xf16> to tensor<1x1x6xf16>
  %u = tensor.extract_slice %gu[0, 0, 6] [1, 1, 6] [1, 1, 1] : tensor<1x1x12xf16> to tensor<1x1x6xf16>
  %y = tfm.swiglu %g, %u : tensor<1x1x6xf16>
  return %y, %gu : tensor<1x1x6xf16>, tensor<1x1x12xf16>
}
func.func @swapped(%x: tensor<1x1x8xf16>, %w: tensor<12x8xf16>) -> tensor<1x1x6xf16> {
  %gu = tfm.linear %x, %w layout = <out_in> : (tensor<1x1x8xf16>, tensor<12x8xf16>) -> tensor<1x1x12xf16>
  %u = tensor.extract_slice %gu[0, 0, 0] [1, 1, 6] [1, 1, 1] : tensor<1x1x12xf16> to tensor<1x1x6xf16>
  %g = tensor.extract_slice %gu[0, 0, 6] [1, 1, 6] [1, 1, 1] : tensor<1x1x12xf16> to tensor<1x1x6xf16>
  %y = tfm.swiglu %g, %u : tensor<1x1x6xf16>
  return %y : tensor<1x1x6xf16>
}
func.func @half_used(%x: tensor<1x1x8xf16>, %w: tensor<12x8xf16>) -> (tensor<1x1x6xf16>, tensor<1x1x6xf16>) {
  %gu = tfm.linear %x, %w layout = <out_in> : (tensor<1x1x8xf16>, tensor<12x8xf16>) -> tensor<1x1x12xf16>
  %g = tensor.extract_slice %gu[0, 0, 0] [1, 1, 6] [1, 1, 1] : tensor<1x1x12xf16> to tensor<1x1x6xf16>
  %u = tensor.extract_slice %gu[0, 0, 6] [1, 1, 6] [1, 1, 1] : tensor<1x1x12xf16> to tensor<1x1x6xf16>
  %y = tfm.swiglu %g, %u : tensor<1x1x6xf16>
  return %y, %g : tensor<1x1x6xf16>, tensor<1x1x6xf16>
}
func.func @not_halves(%x: tensor<1x1x8xf16>, %w: tensor<14x8xf16>) -> tensor<1x1x6xf16> {
  %gu = tfm.linear %x, %w layout = <out_in> : (tensor<1x1x8xf16>, tensor<14x8xf16>) -> tensor<1x1x14xf16>
  %g = tensor.extract_slice %gu[0, 0, 0] [1, 1, 6] [1, 1, 1] : tensor<1x1x14xf16> to tensor<1x1x6xf16>
  %u = tensor.extract_slice %gu[0, 0, 8] [1, 1, 6] [1, 1, 1] : tensor<1x1x14xf16> to tensor<1x1x6xf16>
  %y = tfm.swiglu %g, %u : tensor<1x1x6xf16>
  return %y : tensor<1x1x6xf16>
}
