// RUN: kiln-opt %s --kiln-bind-buffers --split-input-file --verify-diagnostics

// Buffer sizes are fixed at compile time: an entry point must be specialized.
// expected-error @+1 {{entry point arguments and results must be statically shaped tensors, got 'tensor<?x1xi64>' (run --kiln-specialize-entry-points first)}}
func.func @decode(%ids: tensor<?x1xi64>, %pos: tensor<?x1xi64>) -> (tensor<?x1x16xf32>, tensor<?x1xi64>) attributes {kiln.entry = "decode"} {
  %l = tensor.empty() : tensor<1x1x16xf32>
  %d = tensor.cast %l : tensor<1x1x16xf32> to tensor<?x1x16xf32>
  %a = tfm.argmax %l : tensor<1x1x16xf32> -> tensor<1x1xi64>
  %b = tensor.cast %a : tensor<1x1xi64> to tensor<?x1xi64>
  return %d, %b : tensor<?x1x16xf32>, tensor<?x1xi64>
}

// -----

// Every cache argument must come back as a result (and the argmax last).
// expected-error @+1 {{expected (tokens, positions, caches...) -> (logits, caches..., argmax)}}
func.func @decode(%ids: tensor<1x1xi64>, %pos: tensor<1x1xi64>, %kc: tensor<1x1x8x4xf32>) -> (tensor<1x1x16xf32>, tensor<1x1xi64>) attributes {kiln.entry = "decode"} {
  %l = tensor.empty() : tensor<1x1x16xf32>
  %a = tfm.argmax %l : tensor<1x1x16xf32> -> tensor<1x1xi64>
  return %l, %a : tensor<1x1x16xf32>, tensor<1x1xi64>
}

// -----

// expected-error @+1 {{'ml_program.global' op weights must be statically shaped tensors}}
ml_program.global private mutable @w : tensor<?xf32>

// -----

// The runtime allocates one KV buffer for all entry points.
func.func @prefill(%ids: tensor<1x4xi64>, %pos: tensor<1x4xi64>, %kc: tensor<1x1x8x4xf32>) -> (tensor<1x4x16xf32>, tensor<1x1x8x4xf32>, tensor<1x4xi64>) attributes {kiln.entry = "prefill"} {
  %l = tensor.empty() : tensor<1x4x16xf32>
  %a = tfm.argmax %l : tensor<1x4x16xf32> -> tensor<1x4xi64>
  return %l, %kc, %a : tensor<1x4x16xf32>, tensor<1x1x8x4xf32>, tensor<1x4xi64>
}
// expected-error @+1 {{entry points disagree on the KV-cache layout}}
func.func @decode(%ids: tensor<1x1xi64>, %pos: tensor<1x1xi64>, %kc: tensor<1x1x16x4xf32>) -> (tensor<1x1x16xf32>, tensor<1x1x16x4xf32>, tensor<1x1xi64>) attributes {kiln.entry = "decode"} {
  %l = tensor.empty() : tensor<1x1x16xf32>
  %a = tfm.argmax %l : tensor<1x1x16xf32> -> tensor<1x1xi64>
  return %l, %kc, %a : tensor<1x1x16xf32>, tensor<1x1x16x4xf32>, tensor<1x1xi64>
}
