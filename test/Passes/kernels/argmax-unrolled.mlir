// RUN: kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s

// argmax_rows over a vocabulary of 40000 f16 logits: each of the 1024 threads
// loads 16 elements (t, t + 1024, ..., t + 15 * 1024) before comparing any,
// over the first 32768 (two such rounds), then takes the other 7232 one at a
// time; the order of the comparisons stays ascending per thread.

// CHECK: gpu.func @decode_k2_argmax_rows(
// CHECK: scf.for %[[K:.+]] = %{{.+}} to %c32768 step %c16384 iter_args(%{{.+}} = %{{.+}}, %{{.+}} = %{{.+}}) -> (f32, i32)
// CHECK-COUNT-16: memref.load %{{.+}} : memref<1x1x40000xf16>
// CHECK-NOT: memref.load
// CHECK: arith.extf
// CHECK: arith.cmpf ogt
// CHECK: scf.yield
// CHECK: scf.for %{{.+}} = %{{.+}} to %c40000 step %c1024 iter_args(
// CHECK: memref.load %{{.+}} : memref<1x1x40000xf16>
// CHECK: arith.cmpf ogt
// CHECK-COUNT-5: gpu.shuffle xor %{{.+}} : f32
#row = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#red = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @decode(%w: memref<64xi8>, %kv: memref<64xi8>, %arena: memref<64xi8> {kiln.arena}, %io: memref<80128xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c80000 = arith.constant 80000 : index
  %c80064 = arith.constant 80064 : index
  %ninf = arith.constant 0xFF800000 : f32
  %zero = arith.constant 0 : i64
  %logits = memref.view %io[%c0][] : memref<80128xi8> to memref<1x1x40000xf16>
  %best = memref.view %io[%c80000][] : memref<80128xi8> to memref<1x1xf32>
  %index = memref.view %io[%c80064][] : memref<80128xi8> to memref<1x1xi64>
  linalg.fill ins(%ninf : f32) outs(%best : memref<1x1xf32>)
  linalg.fill ins(%zero : i64) outs(%index : memref<1x1xi64>)
  linalg.generic {indexing_maps = [#row, #red, #red], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%logits : memref<1x1x40000xf16>) outs(%best, %index : memref<1x1xf32>, memref<1x1xi64>) {
  ^bb0(%x: f16, %b: f32, %i: i64):
    %k = linalg.index 2 : index
    %k64 = arith.index_cast %k : index to i64
    %xf = arith.extf %x : f16 to f32
    %gt = arith.cmpf ogt, %xf, %b : f32
    %v = arith.select %gt, %xf, %b : f32
    %j = arith.select %gt, %k64, %i : i64
    linalg.yield %v, %j : f32, i64
  }
  return
}
