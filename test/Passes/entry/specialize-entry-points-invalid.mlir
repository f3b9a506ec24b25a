// RUN: kiln-opt %s --kiln-specialize-entry-points --split-input-file --verify-diagnostics
// Option errors are reported before @forward is looked at (every case below
// has one, but the first): checked on the whole file.
// RUN: not kiln-opt %s --kiln-specialize-entry-points="prefill-chunk=32 max-seq-len=16" \
// RUN:   --split-input-file 2>&1 | FileCheck %s --check-prefix=CHUNK
// RUN: not kiln-opt %s --kiln-specialize-entry-points="batch=0" \
// RUN:   --split-input-file 2>&1 | FileCheck %s --check-prefix=BATCH

// CHUNK: error: --prefill-chunk must be in [1, --max-seq-len = 16] (got 32)
// BATCH: error: --batch must be in [1, 4096] (got 0)

// expected-error @+1 {{expected the importer's @forward function}}
module {
  func.func @main(%ids: tensor<?x?xi64>) -> tensor<?x?xi64> {
    return %ids : tensor<?x?xi64>
  }
}

// -----

// A weight argument would otherwise be reshaped to [batch, seq] like the
// token ids.
ml_program.global private @embed(dense<1.0> : tensor<16x8xf32>) : tensor<16x8xf32>
// expected-error @+1 {{argument #2 ('tensor<8xf32>') is neither token ids/positions (rank-2 integer tensor) nor a KV cache (rank-4 tensor); weights must be ml_program globals}}
func.func @forward(%ids: tensor<?x?xi64>, %pos: tensor<?x?xi64>, %norm: tensor<8xf32>) -> tensor<?x?x16xf32> {
  %embed = ml_program.global_load_const @embed : tensor<16x8xf32>
  %x = tfm.embedding %embed[%ids] : tensor<16x8xf32>, tensor<?x?xi64> -> tensor<?x?x8xf32>
  %n = tfm.rms_norm %x, %norm {epsilon = 1.0e-05 : f32} : tensor<?x?x8xf32>, tensor<8xf32>
  %l = tfm.logits %n, %embed layout = <out_in> {tied} : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
  return %l : tensor<?x?x16xf32>
}

// -----

// expected-error @+1 {{argument #2 ('tensor<16x8xf32>') is neither token ids/positions (rank-2 integer tensor) nor a KV cache (rank-4 tensor); weights must be ml_program globals}}
func.func @forward(%ids: tensor<?x?xi64>, %pos: tensor<?x?xi64>, %embed: tensor<16x8xf32>) -> tensor<?x?x16xf32> {
  %x = tfm.embedding %embed[%ids] : tensor<16x8xf32>, tensor<?x?xi64> -> tensor<?x?x8xf32>
  %l = tfm.logits %x, %embed layout = <out_in> {tied} : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
  return %l : tensor<?x?x16xf32>
}

// -----

// expected-error @+1 {{expected the logits (rank-3 tensor) as the first result}}
func.func @forward(%ids: tensor<?x?xi64>, %pos: tensor<?x?xi64>) {
  return
}

// -----

// expected-error @+1 {{@forward has no body}}
func.func private @forward(%ids: tensor<?x?xi64>, %pos: tensor<?x?xi64>) -> tensor<?x?x16xf32>

// -----

// The number of KV heads and head_dim come from the model, not the options.
// expected-error @+1 {{KV cache argument with dynamic heads or head_dim}}
func.func @forward(%ids: tensor<?x?xi64>, %pos: tensor<?x?xi64>, %kc: tensor<?x?x?x4xf32>) -> (tensor<?x?x16xf32>, tensor<?x?x?x4xf32>) {
  %l = arith.constant dense<0.0> : tensor<1x1x16xf32>
  %d = tensor.cast %l : tensor<1x1x16xf32> to tensor<?x?x16xf32>
  return %d, %kc : tensor<?x?x16xf32>, tensor<?x?x?x4xf32>
}
