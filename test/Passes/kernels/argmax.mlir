// RUN: kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s

// argmax_rows: a block of 1024 threads per row; each thread keeps its first maximum
// (strict >), warps trade (value, index) pairs by xor shuffles preferring the
// larger value and then the smaller index, workgroup memory joins the warps,
// and thread 0 replaces the outputs only with a strictly larger value, as
// the sequential scan from their fills would.

// CHECK-LABEL: func.func @decode
// CHECK: kiln.mapping = "parallel"
// CHECK: kiln.mapping = "parallel"
// CHECK: gpu.launch_func @kiln_kernels::@decode_k2_argmax_rows blocks in (%c4, %c1, %c1) threads in (%c1024, %c1, %c1) {{.*}} {kiln.mapping = "argmax_rows"}
// CHECK: gpu.func @decode_k2_argmax_rows({{.*}}) workgroup(%[[SV:.+]] : memref<32xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[SI:.+]] : memref<32xi32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: scf.for %{{.+}} = %{{.+}} to %c1000 step %c1024 iter_args(%{{.+}} = %cst, %{{.+}} = %c2147483647_i32) -> (f32, i32)
// CHECK: arith.cmpf ogt
// CHECK-COUNT-5: gpu.shuffle xor %{{.+}} : f32
// CHECK: memref.store %{{.+}}, %[[SV]]
// CHECK: gpu.barrier
// CHECK: %[[OLD:.+]] = memref.load %{{.+}} : memref<1x4xf32>
// CHECK: %[[WINS:.+]] = arith.cmpf ogt, %{{.+}}, %[[OLD]] : f32
// CHECK: scf.if %[[WINS]] {
// CHECK: arith.extsi %{{.+}} : i32 to i64
// CHECK: memref.store %{{.+}} : memref<1x4xi64>
#row = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#red = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @decode(%w: memref<64xi8>, %kv: memref<64xi8>, %arena: memref<64xi8> {kiln.arena}, %io: memref<16192xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c16000 = arith.constant 16000 : index
  %c16128 = arith.constant 16128 : index
  %ninf = arith.constant 0xFF800000 : f32
  %zero = arith.constant 0 : i64
  %logits = memref.view %io[%c0][] : memref<16192xi8> to memref<1x4x1000xf32>
  %best = memref.view %io[%c16000][] : memref<16192xi8> to memref<1x4xf32>
  %index = memref.view %io[%c16128][] : memref<16192xi8> to memref<1x4xi64>
  linalg.fill ins(%ninf : f32) outs(%best : memref<1x4xf32>)
  linalg.fill ins(%zero : i64) outs(%index : memref<1x4xi64>)
  linalg.generic {indexing_maps = [#row, #red, #red], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%logits : memref<1x4x1000xf32>) outs(%best, %index : memref<1x4xf32>, memref<1x4xi64>) {
  ^bb0(%x: f32, %b: f32, %i: i64):
    %k = linalg.index 2 : index
    %k64 = arith.index_cast %k : index to i64
    %gt = arith.cmpf ogt, %x, %b : f32
    %v = arith.select %gt, %x, %b : f32
    %j = arith.select %gt, %k64, %i : i64
    linalg.yield %v, %j : f32, i64
  }
  return
}
