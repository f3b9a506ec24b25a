// RUN: kiln-opt %s --kiln-bind-buffers --split-input-file | FileCheck %s

// A decode entry point (batch 2, one layer, 2 KV heads of head_dim 4, 16
// cache slots) becomes f(weights, kv, arena, io) over byte buffers, with every
// offset a multiple of 64:
//   weights: the RoPE table (hoisted to @kiln.constant.0, 8 B) at 0, @small
//            (6 B) at 64, @embed (512 B) at 128, @norm (32 B) at 640 -> 704;
//   kv:      K at 0 and V at 1024 (2*2*16*4 f32 each) -> 2048;
//   io:      tokens at 0, positions at 64, logits (128 B) at 128, argmax at
//            256 -> 320.
// @helper is not an entry point: its tensor constant and its load stay.

// CHECK-LABEL: module attributes {kiln.kv_size = 2048 : i64, kiln.weights_size = 704 : i64}
// CHECK: ml_program.global private @kiln.constant.0(dense<[1.000000e+00, 0.00999999977]> : tensor<2xf32>) : tensor<2xf32> {kiln.offset = 0 : i64}
// CHECK: ml_program.global private @small({{.+}}) : tensor<3xf16> {kiln.offset = 64 : i64}
// CHECK: ml_program.global private @embed({{.+}}) : tensor<16x8xf32> {kiln.offset = 128 : i64}
// CHECK: ml_program.global private @norm({{.+}}) : tensor<8xf32> {kiln.offset = 640 : i64}
// CHECK-NOT: ml_program.global

// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%[[W:.+]]: memref<704xi8> {kiln.weights}, %[[KV:.+]]: memref<2048xi8>, %[[ARENA:.+]]: memref<0xi8> {kiln.arena}, %[[IO:.+]]: memref<320xi8>) attributes {
// CHECK-SAME: kiln.cache_type = tensor<2x2x16x4xf32>, kiln.entry = "decode",
// CHECK-SAME: kiln.io = {argmax = 256 : i64, logits = 128 : i64, positions = 64 : i64, size = 320 : i64, tokens = 0 : i64},
// CHECK-SAME: kiln.kv_offsets = [0, 1024], kiln.logits_type = tensor<2x1x16xf32>, kiln.tokens_type = tensor<2x1xi64>} {
//
// Inputs: tokens and positions from the I/O buffer, caches (writable) from
// the KV buffer.
// CHECK: %[[C0:.+]] = arith.constant 0 : index
// CHECK: %[[TOKV:.+]] = memref.view %[[IO]][%[[C0]]][] : memref<320xi8> to memref<2x1xi64>
// CHECK: %[[TOK:.+]] = bufferization.to_tensor %[[TOKV]] restrict : memref<2x1xi64> to tensor<2x1xi64>
// CHECK: %[[C64:.+]] = arith.constant 64 : index
// CHECK: %[[POSV:.+]] = memref.view %[[IO]][%[[C64]]][] : memref<320xi8> to memref<2x1xi64>
// CHECK: %[[POS:.+]] = bufferization.to_tensor %[[POSV]] restrict : memref<2x1xi64> to tensor<2x1xi64>
// CHECK: %[[C0K:.+]] = arith.constant 0 : index
// CHECK: %[[KCV:.+]] = memref.view %[[KV]][%[[C0K]]][] : memref<2048xi8> to memref<2x2x16x4xf32>
// CHECK: %[[KC:.+]] = bufferization.to_tensor %[[KCV]] restrict writable : memref<2x2x16x4xf32> to tensor<2x2x16x4xf32>
// CHECK: %[[C1024:.+]] = arith.constant 1024 : index
// CHECK: %[[VCV:.+]] = memref.view %[[KV]][%[[C1024]]][] : memref<2048xi8> to memref<2x2x16x4xf32>
// CHECK: %[[VC:.+]] = bufferization.to_tensor %[[VCV]] restrict writable : memref<2x2x16x4xf32> to tensor<2x2x16x4xf32>
//
// Weights (and the hoisted constant): read-only views of the weights buffer.
// CHECK: %[[C0W:.+]] = arith.constant 0 : index
// CHECK: %[[FREQV:.+]] = memref.view %[[W]][%[[C0W]]][] : memref<704xi8> to memref<2xf32>
// CHECK: %[[FREQ:.+]] = bufferization.to_tensor %[[FREQV]] restrict : memref<2xf32> to tensor<2xf32>
// CHECK: %[[C128:.+]] = arith.constant 128 : index
// CHECK: %[[EMBV:.+]] = memref.view %[[W]][%[[C128]]][] : memref<704xi8> to memref<16x8xf32>
// CHECK: %[[EMB:.+]] = bufferization.to_tensor %[[EMBV]] restrict : memref<16x8xf32> to tensor<16x8xf32>
// CHECK: %[[C640:.+]] = arith.constant 640 : index
// CHECK: %[[NORMV:.+]] = memref.view %[[W]][%[[C640]]][] : memref<704xi8> to memref<8xf32>
// CHECK: %[[NORM:.+]] = bufferization.to_tensor %[[NORMV]] restrict : memref<8xf32> to tensor<8xf32>
// CHECK-NOT: ml_program.global_load_const
// CHECK: %[[X:.+]] = tfm.embedding %[[EMB]][%[[TOK]]]
// CHECK: %[[N:.+]] = tfm.rms_norm %[[X]], %[[NORM]]
// CHECK: %[[K:.+]] = tfm.rope %[[N]], %[[POS]], %[[FREQ]]
// CHECK: %[[KC2:.+]] = tfm.kv_append %[[K]] into %[[KC]] at %[[POS]]
// CHECK: %[[VC2:.+]] = tfm.kv_append %[[N]] into %[[VC]] at %[[POS]]
// CHECK: %[[L:.+]] = tfm.logits %[[N]], %[[EMB]]
// CHECK: %[[NEXT:.+]] = tfm.argmax %[[L]]
//
// Outputs: logits and argmax into the I/O buffer; the caches updated in place
// (their own views, not restrict: they alias the inputs).
// CHECK: %[[C128IO:.+]] = arith.constant 128 : index
// CHECK: %[[LV:.+]] = memref.view %[[IO]][%[[C128IO]]][] : memref<320xi8> to memref<2x1x16xf32>
// CHECK: bufferization.materialize_in_destination %[[L]] in restrict writable %[[LV]] : (tensor<2x1x16xf32>, memref<2x1x16xf32>) -> ()
// CHECK: %[[C256:.+]] = arith.constant 256 : index
// CHECK: %[[NV:.+]] = memref.view %[[IO]][%[[C256]]][] : memref<320xi8> to memref<2x1xi64>
// CHECK: bufferization.materialize_in_destination %[[NEXT]] in restrict writable %[[NV]] : (tensor<2x1xi64>, memref<2x1xi64>) -> ()
// CHECK: bufferization.materialize_in_destination %[[KC2]] in writable %[[KCV]] : (tensor<2x2x16x4xf32>, memref<2x2x16x4xf32>) -> ()
// CHECK: bufferization.materialize_in_destination %[[VC2]] in writable %[[VCV]] : (tensor<2x2x16x4xf32>, memref<2x2x16x4xf32>) -> ()
// CHECK-NEXT: return{{$}}

// CHECK-LABEL: func.func private @helper
// CHECK-SAME: (%[[X:.+]]: tensor<16x8xf32>) -> tensor<16x8xf32> {
// CHECK-NEXT: %[[C:.+]] = arith.constant dense<2.000000e+00> : tensor<16x8xf32>
// CHECK-NEXT: %[[E:.+]] = ml_program.global_load_const @embed : tensor<16x8xf32>
// CHECK-NEXT: %[[A:.+]] = tfm.add %[[X]], %[[E]]
// CHECK-NEXT: %[[B:.+]] = tfm.add %[[A]], %[[C]]
// CHECK-NEXT: return %[[B]] : tensor<16x8xf32>
ml_program.global private @small(dense<1.0> : tensor<3xf16>) : tensor<3xf16>
ml_program.global private @embed(dense<1.0> : tensor<16x8xf32>) : tensor<16x8xf32>
ml_program.global private @norm(dense<1.0> : tensor<8xf32>) : tensor<8xf32>
func.func @decode(%ids: tensor<2x1xi64> {tfm.role = "tokens"}, %pos: tensor<2x1xi64> {tfm.role = "positions"},
                  %kc: tensor<2x2x16x4xf32> {tfm.layer = 0 : i64, tfm.role = "key_cache"},
                  %vc: tensor<2x2x16x4xf32> {tfm.layer = 0 : i64, tfm.role = "value_cache"})
    -> (tensor<2x1x16xf32>, tensor<2x2x16x4xf32>, tensor<2x2x16x4xf32>, tensor<2x1xi64>) attributes {kiln.entry = "decode"} {
  %freq = arith.constant dense<[1.0, 0.01]> : tensor<2xf32>
  %embed = ml_program.global_load_const @embed : tensor<16x8xf32>
  %norm = ml_program.global_load_const @norm : tensor<8xf32>
  %x = tfm.embedding %embed[%ids] : tensor<16x8xf32>, tensor<2x1xi64> -> tensor<2x1x8xf32>
  %n = tfm.rms_norm %x, %norm {epsilon = 1.0e-05 : f32} : tensor<2x1x8xf32>, tensor<8xf32>
  %k = tfm.rope %n, %pos, %freq {head_dim = 4 : i64} : tensor<2x1x8xf32>, tensor<2x1xi64>, tensor<2xf32>
  %kc2 = tfm.kv_append %k into %kc at %pos : tensor<2x1x8xf32>, tensor<2x2x16x4xf32>, tensor<2x1xi64>
  %vc2 = tfm.kv_append %n into %vc at %pos : tensor<2x1x8xf32>, tensor<2x2x16x4xf32>, tensor<2x1xi64>
  %l = tfm.logits %n, %embed layout = <out_in> {tied} : (tensor<2x1x8xf32>, tensor<16x8xf32>) -> tensor<2x1x16xf32>
  %next = tfm.argmax %l : tensor<2x1x16xf32> -> tensor<2x1xi64>
  return %l, %kc2, %vc2, %next : tensor<2x1x16xf32>, tensor<2x2x16x4xf32>, tensor<2x2x16x4xf32>, tensor<2x1xi64>
}
func.func private @helper(%x: tensor<16x8xf32>) -> tensor<16x8xf32> {
  %c = arith.constant dense<2.0> : tensor<16x8xf32>
  %embed = ml_program.global_load_const @embed : tensor<16x8xf32>
  %0 = tfm.add %x, %embed : tensor<16x8xf32>
  %1 = tfm.add %0, %c : tensor<16x8xf32>
  return %1 : tensor<16x8xf32>
}

// -----

// Prefill and decode (i32 ids, f16 caches [1, 1, 8, 4] = 64 B) share one
// weights section: both read @freq at its offset 0, and both get the same KV
// layout. The I/O layout is per entry point (prefill: 4 tokens, logits
// [1, 4, 16] f16).

// CHECK-LABEL: module attributes {kiln.kv_size = 128 : i64, kiln.weights_size = 64 : i64}
// CHECK: ml_program.global private @freq({{.+}}) : tensor<2xf32> {kiln.offset = 0 : i64}
// CHECK-NOT: ml_program.global
// CHECK-LABEL: func.func @prefill
// CHECK-SAME: (%[[W:.+]]: memref<64xi8> {kiln.weights}, %[[KV:.+]]: memref<128xi8>, %{{.+}}: memref<0xi8> {kiln.arena}, %[[IO:.+]]: memref<320xi8>)
// CHECK-SAME: kiln.io = {argmax = 256 : i64, logits = 128 : i64, positions = 64 : i64, size = 320 : i64, tokens = 0 : i64}
// CHECK-SAME: kiln.kv_offsets = [0, 64]
// CHECK: memref.view %[[IO]][%{{.+}}][] : memref<320xi8> to memref<1x4xi32>
// CHECK: memref.view %[[KV]][%{{.+}}][] : memref<128xi8> to memref<1x1x8x4xf16>
// CHECK: %[[C0W:.+]] = arith.constant 0 : index
// CHECK-NEXT: memref.view %[[W]][%[[C0W]]][] : memref<64xi8> to memref<2xf32>
// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%[[W:.+]]: memref<64xi8> {kiln.weights}, %[[KV:.+]]: memref<128xi8>, %{{.+}}: memref<0xi8> {kiln.arena}, %[[IO:.+]]: memref<256xi8>)
// CHECK-SAME: kiln.io = {argmax = 192 : i64, logits = 128 : i64, positions = 64 : i64, size = 256 : i64, tokens = 0 : i64}
// CHECK-SAME: kiln.kv_offsets = [0, 64]
// CHECK: memref.view %[[KV]][%{{.+}}][] : memref<128xi8> to memref<1x1x8x4xf16>
// CHECK: %[[C0W:.+]] = arith.constant 0 : index
// CHECK-NEXT: memref.view %[[W]][%[[C0W]]][] : memref<64xi8> to memref<2xf32>
ml_program.global private @freq(dense<[1.0, 0.01]> : tensor<2xf32>) : tensor<2xf32>
func.func @prefill(%ids: tensor<1x4xi32>, %pos: tensor<1x4xi32>, %kc: tensor<1x1x8x4xf16>, %vc: tensor<1x1x8x4xf16>)
    -> (tensor<1x4x16xf16>, tensor<1x1x8x4xf16>, tensor<1x1x8x4xf16>, tensor<1x4xi64>) attributes {kiln.entry = "prefill"} {
  %freq = ml_program.global_load_const @freq : tensor<2xf32>
  %x = tensor.empty() : tensor<1x4x4xf16>
  %r = tfm.rope %x, %pos, %freq {head_dim = 4 : i64} : tensor<1x4x4xf16>, tensor<1x4xi32>, tensor<2xf32>
  %kc2 = tfm.kv_append %r into %kc at %pos : tensor<1x4x4xf16>, tensor<1x1x8x4xf16>, tensor<1x4xi32>
  %l = tensor.empty() : tensor<1x4x16xf16>
  %next = tfm.argmax %l : tensor<1x4x16xf16> -> tensor<1x4xi64>
  return %l, %kc2, %vc, %next : tensor<1x4x16xf16>, tensor<1x1x8x4xf16>, tensor<1x1x8x4xf16>, tensor<1x4xi64>
}
func.func @decode(%ids: tensor<1x1xi32>, %pos: tensor<1x1xi32>, %kc: tensor<1x1x8x4xf16>, %vc: tensor<1x1x8x4xf16>)
    -> (tensor<1x1x16xf16>, tensor<1x1x8x4xf16>, tensor<1x1x8x4xf16>, tensor<1x1xi64>) attributes {kiln.entry = "decode"} {
  %freq = ml_program.global_load_const @freq : tensor<2xf32>
  %x = tensor.empty() : tensor<1x1x4xf16>
  %r = tfm.rope %x, %pos, %freq {head_dim = 4 : i64} : tensor<1x1x4xf16>, tensor<1x1xi32>, tensor<2xf32>
  %kc2 = tfm.kv_append %r into %kc at %pos : tensor<1x1x4xf16>, tensor<1x1x8x4xf16>, tensor<1x1xi32>
  %l = tensor.empty() : tensor<1x1x16xf16>
  %next = tfm.argmax %l : tensor<1x1x16xf16> -> tensor<1x1xi64>
  return %l, %kc2, %vc, %next : tensor<1x1x16xf16>, tensor<1x1x8x4xf16>, tensor<1x1x8x4xf16>, tensor<1x1xi64>
}

// -----

// No entry point: globals still get their offsets and the module its sizes
// (no KV cache), but the function keeps its signature and body.

// CHECK-LABEL: module attributes {kiln.kv_size = 0 : i64, kiln.weights_size = 128 : i64}
// CHECK: ml_program.global private @a({{.+}}) : tensor<5xf32> {kiln.offset = 0 : i64}
// CHECK: ml_program.global private @b({{.+}}) : tensor<2x2xbf16> {kiln.offset = 64 : i64}
// CHECK-LABEL: func.func @forward
// CHECK-SAME: (%[[X:.+]]: tensor<?x?xi64>) -> tensor<5xf32> {
// CHECK-NEXT: %[[A:.+]] = ml_program.global_load_const @a : tensor<5xf32>
// CHECK-NEXT: return %[[A]] : tensor<5xf32>
ml_program.global private @a(dense<1.0> : tensor<5xf32>) : tensor<5xf32>
ml_program.global private @b(dense<1.0> : tensor<2x2xbf16>) : tensor<2x2xbf16>
func.func @forward(%x: tensor<?x?xi64>) -> tensor<5xf32> {
  %a = ml_program.global_load_const @a : tensor<5xf32>
  return %a : tensor<5xf32>
}

// -----

// An entry that samples on the device (kiln.sampling): its last two
// arguments, the sampling parameters [1, 4] f32 and keys [1] i64, are
// read-only views of the I/O buffer after the argmax (io: tokens 0,
// positions 64, logits 128, argmax 192, sampling 256, seeds 320 -> 384); the
// caches are the arguments before them.
// CHECK-LABEL: func.func @decode
// CHECK-SAME: %[[IO:[^:]+]]: memref<384xi8>)
// CHECK-SAME: kiln.io = {argmax = 192 : i64, logits = 128 : i64, positions = 64 : i64, sampling = 256 : i64, seeds = 320 : i64, size = 384 : i64, tokens = 0 : i64}
// CHECK-SAME: kiln.kv_offsets = [0, 64]
// CHECK-SAME: kiln.sampling
// CHECK: %[[CP:.+]] = arith.constant 256 : index
// CHECK: %[[PV:.+]] = memref.view %[[IO]][%[[CP]]][] : memref<384xi8> to memref<1x4xf32>
// CHECK: %[[P:.+]] = bufferization.to_tensor %[[PV]] restrict : memref<1x4xf32> to tensor<1x4xf32>
// CHECK: %[[CS:.+]] = arith.constant 320 : index
// CHECK: %[[SV:.+]] = memref.view %[[IO]][%[[CS]]][] : memref<384xi8> to memref<1xi64>
// CHECK: %[[S:.+]] = bufferization.to_tensor %[[SV]] restrict : memref<1xi64> to tensor<1xi64>
// CHECK: tfm.sample %{{.+}}, %[[P]], %[[S]] into
func.func @decode(%ids: tensor<1x1xi64>, %pos: tensor<1x1xi64>, %kc: tensor<1x1x8x4xf16>, %vc: tensor<1x1x8x4xf16>, %params: tensor<1x4xf32>, %seeds: tensor<1xi64>)
    -> (tensor<1x1x16xf32>, tensor<1x1x8x4xf16>, tensor<1x1x8x4xf16>, tensor<1x1xi64>) attributes {kiln.entry = "decode", kiln.sampling} {
  %l = tensor.empty() : tensor<1x1x16xf32>
  %init = tensor.empty() : tensor<1x1xi64>
  %next = tfm.sample %l, %params, %seeds into %init : tensor<1x1x16xf32>, tensor<1x4xf32>, tensor<1xi64>, tensor<1x1xi64> -> tensor<1x1xi64>
  return %l, %kc, %vc, %next : tensor<1x1x16xf32>, tensor<1x1x8x4xf16>, tensor<1x1x8x4xf16>, tensor<1x1xi64>
}

// -----

// A decode entry for fewer sequences (@decode_b1, kiln-compile
// --decode-batches) views the first row of each layer's cache block at the
// offsets of the largest batch's layout (K at 0 and V at 512: 2*1*8*8 f32
// each), not at its own (256 bytes a block): every entry shares one KV
// buffer of the largest batch.

// CHECK-LABEL: module attributes {kiln.kv_size = 1024 : i64
// CHECK-LABEL: func.func @decode(
// CHECK-SAME: kiln.kv_offsets = [0, 512]
// CHECK-LABEL: func.func @decode_b1(
// CHECK-SAME: memref<1024xi8>
// CHECK-SAME: kiln.cache_type = tensor<1x1x8x8xf32>, kiln.entry = "decode_b1"
// CHECK-SAME: kiln.kv_offsets = [0, 512]
func.func @decode(%tok: tensor<2x1xi64>, %pos: tensor<2x1xi64>,
                  %k: tensor<2x1x8x8xf32>, %v: tensor<2x1x8x8xf32>)
    -> (tensor<2x1x4xf32>, tensor<2x1x8x8xf32>, tensor<2x1x8x8xf32>, tensor<2x1xi64>)
    attributes {kiln.entry = "decode"} {
  %l = arith.constant dense<0.0> : tensor<2x1x4xf32>
  %a = tfm.argmax %l : tensor<2x1x4xf32> -> tensor<2x1xi64>
  return %l, %k, %v, %a : tensor<2x1x4xf32>, tensor<2x1x8x8xf32>, tensor<2x1x8x8xf32>, tensor<2x1xi64>
}
func.func @decode_b1(%tok: tensor<1x1xi64>, %pos: tensor<1x1xi64>,
                     %k: tensor<1x1x8x8xf32>, %v: tensor<1x1x8x8xf32>)
    -> (tensor<1x1x4xf32>, tensor<1x1x8x8xf32>, tensor<1x1x8x8xf32>, tensor<1x1xi64>)
    attributes {kiln.entry = "decode_b1"} {
  %l = arith.constant dense<0.0> : tensor<1x1x4xf32>
  %a = tfm.argmax %l : tensor<1x1x4xf32> -> tensor<1x1xi64>
  return %l, %k, %v, %a : tensor<1x1x4xf32>, tensor<1x1x8x8xf32>, tensor<1x1x8x8xf32>, tensor<1x1xi64>
}

// -----

// A paged entry (kiln.block_table): the argument after the caches, the block
// table [2, 3] i32, is a read-only view of the I/O buffer after the argmax,
// before the sampling arguments (io: tokens 0, positions 64, logits 128,
// argmax 256, block_table 320, sampling 384, seeds 448 -> 512); the caches
// are pools [6, 1, 4, 4] f16 (192 bytes each).
// CHECK-LABEL: func.func @decode
// CHECK-SAME: %{{[^:]+}}: memref<384xi8>, %{{[^:]+}}: memref<0xi8> {kiln.arena}, %[[IO:[^:]+]]: memref<512xi8>)
// CHECK-SAME: kiln.block_table
// CHECK-SAME: kiln.io = {argmax = 256 : i64, block_table = 320 : i64, logits = 128 : i64, positions = 64 : i64, sampling = 384 : i64, seeds = 448 : i64, size = 512 : i64, tokens = 0 : i64}
// CHECK-SAME: kiln.kv_offsets = [0, 192]
// CHECK: %[[CT:.+]] = arith.constant 320 : index
// CHECK: %[[TV:.+]] = memref.view %[[IO]][%[[CT]]][] : memref<512xi8> to memref<2x3xi32>
// CHECK: %[[T:.+]] = bufferization.to_tensor %[[TV]] restrict : memref<2x3xi32> to tensor<2x3xi32>
// CHECK: tfm.kv_append %{{.+}} into %{{.+}} at %{{.+}} pages %[[T]]
func.func @decode(%ids: tensor<2x1xi64>, %pos: tensor<2x1xi64>, %kc: tensor<6x1x4x4xf16>, %vc: tensor<6x1x4x4xf16>, %table: tensor<2x3xi32>, %params: tensor<2x4xf32>, %seeds: tensor<2xi64>)
    -> (tensor<2x1x16xf32>, tensor<6x1x4x4xf16>, tensor<6x1x4x4xf16>, tensor<2x1xi64>) attributes {kiln.entry = "decode", kiln.block_table, kiln.sampling} {
  %k = tensor.empty() : tensor<2x1x4xf16>
  %kc1 = tfm.kv_append %k into %kc at %pos pages %table : tensor<2x1x4xf16>, tensor<6x1x4x4xf16>, tensor<2x1xi64>, tensor<2x3xi32>
  %l = tensor.empty() : tensor<2x1x16xf32>
  %init = tensor.empty() : tensor<2x1xi64>
  %next = tfm.sample %l, %params, %seeds into %init : tensor<2x1x16xf32>, tensor<2x4xf32>, tensor<2xi64>, tensor<2x1xi64> -> tensor<2x1xi64>
  return %l, %kc1, %vc, %next : tensor<2x1x16xf32>, tensor<6x1x4x4xf16>, tensor<6x1x4x4xf16>, tensor<2x1xi64>
}
