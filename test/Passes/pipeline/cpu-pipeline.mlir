// RUN: kiln-opt %s --kiln-loops-pipeline \
// RUN:   | FileCheck %s --implicit-check-not=tfm. --implicit-check-not=memref.alloc \
// RUN:       --implicit-check-not=memref.dealloc --implicit-check-not=memref.copy
// The driver drops the ml_program globals (their bytes go to the artifact)
// before the LLVM lowering, which does not handle them; after
// --kiln-bind-buffers nothing loads them, so --symbol-dce does the same here.
// RUN: kiln-opt %s --kiln-loops-pipeline --symbol-dce | kiln-opt --kiln-cpu-to-llvm \
// RUN:   | FileCheck %s --check-prefix=LLVM --implicit-check-not=memrefCopy \
// RUN:       --implicit-check-not=malloc \
// RUN:       --implicit-check-not='llvm.call @{{[^pd]}}' \
// RUN:       --implicit-check-not=memref --implicit-check-not=ml_program

// The one-layer model of test/Passes/entry/specialize-entry-points.mlir
// through the default CPU pipeline (batch 1, prefill chunk 64, 2048 cache
// slots). Every tfm op is lowered; every buffer lives in one of the four
// runtime buffers: weights, KV (two 1x1x2048x4 f32 caches), I/O, and the
// planned arena. The caches and the logits are written in place: no
// allocation and no copy is left. @prefill computes the last row's logits
// only ([1, 1, 16] f32: 64 bytes of I/O), @prefill_all every row's
// ([1, 64, 16]: 4096 bytes).

// CHECK: module attributes {kiln.kv_size = 65536 : i64, kiln.weights_size = [[$WSIZE:[1-9][0-9]*]] : i64}
// CHECK: ml_program.global private @embed({{.+}}) : tensor<16x8xf32> {kiln.offset = {{[0-9]+}} : i64}

// CHECK-LABEL: func.func @prefill
// CHECK-SAME: (%[[W:.+]]: memref<[[$WSIZE]]xi8> {kiln.weights}, %[[KV:.+]]: memref<65536xi8>, %[[ARENA:.+]]: memref<[[SIZE:[1-9][0-9]*]]xi8> {kiln.arena}, %[[IO:.+]]: memref<1152xi8>)
// CHECK-SAME: kiln.arena_size = [[SIZE]] : i64
// CHECK-SAME: kiln.entry = "prefill"
// CHECK-SAME: kiln.io = {argmax = 1088 : i64, logits = 1024 : i64, positions = 512 : i64, size = 1152 : i64, tokens = 0 : i64}
// CHECK-SAME: kiln.kv_offsets = [0, 32768]
// CHECK-SAME: kiln.logits_type = tensor<1x1x16xf32>
// CHECK-SAME: kiln.memory_plan = [#kiln.buffer<offset = 
// CHECK-DAG: memref.view %[[W]]
// CHECK-DAG: memref.view %[[KV]]
// CHECK-DAG: memref.view %[[IO]]
// CHECK-DAG: memref.view %[[ARENA]]
// CHECK: scf.for
// CHECK: return

// CHECK-LABEL: func.func @prefill_all
// CHECK-SAME: %{{.+}}: memref<5632xi8>)
// CHECK-SAME: kiln.entry = "prefill_all"
// CHECK-SAME: kiln.io = {argmax = 5120 : i64, logits = 1024 : i64, positions = 512 : i64, size = 5632 : i64, tokens = 0 : i64}
// CHECK-SAME: kiln.logits_type = tensor<1x64x16xf32>
// CHECK: return

// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%{{.+}}: memref<[[$WSIZE]]xi8> {kiln.weights}, %{{.+}}: memref<65536xi8>, %[[ARENA:.+]]: memref<[[SIZE:[1-9][0-9]*]]xi8> {kiln.arena}, %{{.+}}: memref<256xi8>)
// CHECK-SAME: kiln.arena_size = [[SIZE]] : i64
// CHECK-SAME: kiln.entry = "decode"
// CHECK-SAME: kiln.kv_offsets = [0, 32768]
// CHECK: memref.view %[[ARENA]]
// CHECK: return

// Bare-pointer entry points (the runtime ABI) calling no runtime function:
// no malloc, no memrefCopy.
// Each loop nest is a function of its own (kiln-outline-loop-nests); the
// entry points only call them, and nothing else is called.
// LLVM-LABEL: llvm.func @prefill(%{{.*}}: !llvm.ptr {kiln.weights}, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr {kiln.arena}, %{{.*}}: !llvm.ptr)
// LLVM-SAME: kiln.entry = "prefill"
// LLVM: llvm.call @prefill_nest0(
// LLVM: llvm.return
// LLVM: llvm.func @prefill_nest0({{.*}} attributes {kiln.no_inline
// LLVM: llvm.return
// LLVM-LABEL: llvm.func @decode(%{{.*}}: !llvm.ptr {kiln.weights}, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr {kiln.arena}, %{{.*}}: !llvm.ptr)
// LLVM-SAME: kiln.entry = "decode"
// LLVM: llvm.call @decode_nest0(
// LLVM: llvm.return
// LLVM: llvm.func @decode_nest0({{.*}} attributes {kiln.no_inline
// LLVM: llvm.return

module {
  ml_program.global private @embed(dense<1.0> : tensor<16x8xf32>) : tensor<16x8xf32>
  ml_program.global private @norm0(dense<1.0> : tensor<8xf32>) : tensor<8xf32>
  ml_program.global private @wq(dense<0.5> : tensor<8x8xf32>) : tensor<8x8xf32>
  ml_program.global private @wk(dense<0.5> : tensor<8x4xf32>) : tensor<8x4xf32>
  ml_program.global private @wv(dense<0.5> : tensor<8x4xf32>) : tensor<8x4xf32>
  ml_program.global private @wo(dense<0.5> : tensor<8x8xf32>) : tensor<8x8xf32>
  ml_program.global private @norm1(dense<1.0> : tensor<8xf32>) : tensor<8xf32>
  ml_program.global private @wg(dense<0.5> : tensor<8x12xf32>) : tensor<8x12xf32>
  ml_program.global private @wu(dense<0.5> : tensor<8x12xf32>) : tensor<8x12xf32>
  ml_program.global private @wd(dense<0.5> : tensor<12x8xf32>) : tensor<12x8xf32>
  ml_program.global private @norm(dense<1.0> : tensor<8xf32>) : tensor<8xf32>
  func.func @forward(%ids: tensor<?x?xi64> {tfm.role = "tokens"}, %pos: tensor<?x?xi64> {tfm.role = "positions"},
                     %kc: tensor<?x1x?x4xf32> {tfm.layer = 0 : i64, tfm.role = "key_cache"},
                     %vc: tensor<?x1x?x4xf32> {tfm.layer = 0 : i64, tfm.role = "value_cache"})
      -> (tensor<?x?x16xf32>, tensor<?x1x?x4xf32>, tensor<?x1x?x4xf32>) {
    %freq = arith.constant dense<[1.0, 0.01]> : tensor<2xf32>
    %embed = ml_program.global_load_const @embed : tensor<16x8xf32>
    %norm0 = ml_program.global_load_const @norm0 : tensor<8xf32>
    %wq = ml_program.global_load_const @wq : tensor<8x8xf32>
    %wk = ml_program.global_load_const @wk : tensor<8x4xf32>
    %wv = ml_program.global_load_const @wv : tensor<8x4xf32>
    %wo = ml_program.global_load_const @wo : tensor<8x8xf32>
    %norm1 = ml_program.global_load_const @norm1 : tensor<8xf32>
    %wg = ml_program.global_load_const @wg : tensor<8x12xf32>
    %wu = ml_program.global_load_const @wu : tensor<8x12xf32>
    %wd = ml_program.global_load_const @wd : tensor<12x8xf32>
    %norm = ml_program.global_load_const @norm : tensor<8xf32>
    %x = tfm.embedding %embed[%ids] : tensor<16x8xf32>, tensor<?x?xi64> -> tensor<?x?x8xf32>
    %n = tfm.rms_norm %x, %norm0 {epsilon = 1.0e-05 : f32} : tensor<?x?x8xf32>, tensor<8xf32>
    %q = tfm.linear %n, %wq layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
    %k = tfm.linear %n, %wk layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x4xf32>) -> tensor<?x?x4xf32>
    %v = tfm.linear %n, %wv layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x4xf32>) -> tensor<?x?x4xf32>
    %qr = tfm.rope %q, %pos, %freq {head_dim = 4 : i64} : tensor<?x?x8xf32>, tensor<?x?xi64>, tensor<2xf32>
    %kr = tfm.rope %k, %pos, %freq {head_dim = 4 : i64} : tensor<?x?x4xf32>, tensor<?x?xi64>, tensor<2xf32>
    %kc2 = tfm.kv_append %kr into %kc at %pos : tensor<?x?x4xf32>, tensor<?x1x?x4xf32>, tensor<?x?xi64>
    %vc2 = tfm.kv_append %v into %vc at %pos : tensor<?x?x4xf32>, tensor<?x1x?x4xf32>, tensor<?x?xi64>
    %att = tfm.attention %qr, %kc2, %vc2, %pos {head_dim = 4 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64, scale = 0.5 : f32} : tensor<?x?x8xf32>, tensor<?x1x?x4xf32>, tensor<?x?xi64>
    %o = tfm.linear %att, %wo layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
    %h = tfm.add %x, %o : tensor<?x?x8xf32>
    %hn = tfm.rms_norm %h, %norm1 {epsilon = 1.0e-05 : f32} : tensor<?x?x8xf32>, tensor<8xf32>
    %g = tfm.linear %hn, %wg layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x12xf32>) -> tensor<?x?x12xf32>
    %u = tfm.linear %hn, %wu layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x12xf32>) -> tensor<?x?x12xf32>
    %s = tfm.swiglu %g, %u : tensor<?x?x12xf32>
    %d = tfm.linear %s, %wd layout = <in_out> : (tensor<?x?x12xf32>, tensor<12x8xf32>) -> tensor<?x?x8xf32>
    %out = tfm.add %h, %d : tensor<?x?x8xf32>
    %f = tfm.rms_norm %out, %norm {epsilon = 1.0e-05 : f32} : tensor<?x?x8xf32>, tensor<8xf32>
    %l = tfm.logits %f, %embed layout = <out_in> {tied} : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
    return %l, %kc2, %vc2 : tensor<?x?x16xf32>, tensor<?x1x?x4xf32>, tensor<?x1x?x4xf32>
  }
}

