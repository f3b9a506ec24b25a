// RUN: kiln-opt %s --kiln-lower-tfm-to-linalg --split-input-file --verify-diagnostics

// The reference lowering needs static shapes: it runs after
// --kiln-specialize-entry-points. The first op left over is reported.

func.func @dynamic_linear(%x: tensor<?x?x8xf32>, %w: tensor<8x4xf32>) -> tensor<?x?x4xf32> {
  // expected-error @+1 {{'tfm.linear' op was not lowered (it needs static shapes: run --kiln-specialize-entry-points first)}}
  %0 = tfm.linear %x, %w layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x4xf32>) -> tensor<?x?x4xf32>
  return %0 : tensor<?x?x4xf32>
}

// -----

// A dynamic cache length is as bad as a dynamic batch.
func.func @dynamic_cache(%k: tensor<1x1x4xf32>, %cache: tensor<1x1x?x4xf32>, %pos: tensor<1x1xi64>) -> tensor<1x1x?x4xf32> {
  // expected-error @+1 {{'tfm.kv_append' op was not lowered (it needs static shapes: run --kiln-specialize-entry-points first)}}
  %0 = tfm.kv_append %k into %cache at %pos : tensor<1x1x4xf32>, tensor<1x1x?x4xf32>, tensor<1x1xi64>
  return %0 : tensor<1x1x?x4xf32>
}

// -----

// Static ops around a dynamic one are still lowered; only the dynamic one is
// reported.
func.func @mixed(%a: tensor<1x2x8xf32>, %b: tensor<?x2x8xf32>) -> (tensor<1x2x8xf32>, tensor<?x2x8xf32>) {
  %0 = tfm.add %a, %a : tensor<1x2x8xf32>
  // expected-error @+1 {{'tfm.swiglu' op was not lowered (it needs static shapes: run --kiln-specialize-entry-points first)}}
  %1 = tfm.swiglu %b, %b : tensor<?x2x8xf32>
  return %0, %1 : tensor<1x2x8xf32>, tensor<?x2x8xf32>
}
