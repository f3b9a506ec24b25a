// RUN: kiln-opt %s | FileCheck %s
// RUN: kiln-opt %s | kiln-opt | FileCheck %s

// The kiln.* attributes that the passes hand on, each of the kind the kiln
// dialect checks; they round-trip through the printer.

// CHECK: module attributes {kiln.kv_size = 4096 : i64, kiln.weights_size = 128 : i64}
module attributes {kiln.kv_size = 4096 : i64, kiln.weights_size = 128 : i64} {
  // CHECK: func.func @decode(%{{.*}}: memref<128xi8> {kiln.weights}, %{{.*}}: memref<64xi8> {kiln.arena})
  // CHECK-SAME: kiln.arena_size = 64 : i64
  // CHECK-SAME: kiln.entry = "decode"
  // CHECK-SAME: kiln.io = {logits = 64 : i64, size = 192 : i64, tokens = 0 : i64}
  // CHECK-SAME: kiln.kv_offsets = [0, 2048]
  // CHECK-SAME: kiln.memory_plan = [#kiln.buffer<offset = 0, size = 64, start = 1, end = 3>]
  // CHECK-SAME: kiln.tokens_type = tensor<1x1xi64>
  func.func @decode(%w: memref<128xi8> {kiln.weights}, %arena: memref<64xi8> {kiln.arena})
      attributes {kiln.entry = "decode", kiln.arena_size = 64 : i64,
                  kiln.io = {tokens = 0 : i64, logits = 64 : i64, size = 192 : i64},
                  kiln.kv_offsets = [0, 2048],
                  kiln.memory_plan = [#kiln.buffer<offset = 0, size = 64, start = 1, end = 3>],
                  kiln.tokens_type = tensor<1x1xi64>} {
    // CHECK: kiln.kernel = "gemv_nk", kiln.region = {op = "tfm.linear", step = "sum_squares"}
    %c0 = arith.constant {kiln.kernel = "gemv_nk", kiln.region = {op = "tfm.linear", step = "sum_squares"}} 0 : index
    return
  }
}
