// RUN: kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s

// gemv_q: the projection by an int4 weight (groups of 32) that
// kiln-lower-tfm-to-linalg fused with its dequantization, known by its
// kiln.region. A warp per output column; each lane loads 16 packed bytes
// (32 codes) of the row as 4 words, takes code j of every word with a
// shift and mask, or's it into the mantissa of 2^23 (0x4B000000) and
// subtracts 2^23 + 8 (the implicit zero point): (q - 8) exactly, without an
// integer-to-float conversion. x is shuffled to match (elements 8 w + j),
// the group's dot product is scaled once, then the warp adds its lanes.
// This is the form for f32 activations (and for codes with zero points);
// gemv-quant.mlir has the f16-pair form of f16 activations.

// CHECK-LABEL: func.func @decode
// CHECK: gpu.launch_func @kiln_kernels::@decode_k0_gemv_q blocks in (%{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}) threads in (%[[C256:[^,)]+]], {{.*}} {kiln.mapping = "gemv_q"}
// CHECK-NEXT: return

// CHECK: gpu.func @decode_k0_gemv_q(
// CHECK: %[[RAW:.+]] = vector.load %{{.+}}[%{{.+}}, %{{.+}}] {alignment = 16 : i64} : memref<32x32xi8>, vector<16xi8>
// CHECK: %[[W:.+]] = vector.bitcast %[[RAW]] : vector<16xi8> to vector<4xi32>
// CHECK: %[[S:.+]] = memref.load %{{.+}}[%{{.+}}, %{{.+}}] : memref<32x2xf16>
// CHECK: %[[SF:.+]] = arith.extf %[[S]] : f16 to f32
// CHECK: %[[SV:.+]] = vector.broadcast %[[SF]] : f32 to vector<4xf32>
// CHECK: %[[X:.+]] = vector.load %{{.+}} {alignment = 16 : i64} : memref<1x1x64xf32>, vector<32xf32>
// CHECK: vector.shuffle %[[X]], %[[X]] [0, 8, 16, 24] : vector<32xf32>, vector<32xf32>
// CHECK: %[[MASK:.+]] = arith.constant dense<15> : vector<4xi32>
// CHECK: %[[C0:.+]] = arith.andi %[[W]], %[[MASK]] : vector<4xi32>
// CHECK: %[[MAGIC:.+]] = arith.constant dense<1258291200> : vector<4xi32>
// CHECK: %[[M0:.+]] = arith.ori %[[C0]], %[[MAGIC]] : vector<4xi32>
// CHECK: %[[F0:.+]] = vector.bitcast %[[M0]] : vector<4xi32> to vector<4xf32>
// CHECK: %[[BIAS:.+]] = arith.constant dense<0x4B000008> : vector<4xf32>
// CHECK: arith.subf %[[F0]], %[[BIAS]] : vector<4xf32>
// CHECK: arith.shrui %[[W]], %{{.+}} : vector<4xi32>
// CHECK: vector.fma
// CHECK: vector.fma %{{.+}}, %[[SV]], %{{.+}} : vector<4xf32>
// CHECK: gpu.subgroup_reduce add %{{.+}} uniform : (f32) -> f32
// CHECK: gpu.return
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#packed = affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 2)>
#group = affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 32)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @decode(%w: memref<2048xi8>, %kv: memref<64xi8>, %arena: memref<1024xi8> {kiln.arena}, %io: memref<64xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c256 = arith.constant 256 : index
  %c1024 = arith.constant 1024 : index
  %zero = arith.constant 0.0 : f32
  %x = memref.view %arena[%c0][] : memref<1024xi8> to memref<1x1x64xf32>
  %wp = memref.view %w[%c0][] : memref<2048xi8> to memref<32x32xi8>
  %ws = memref.view %w[%c1024][] : memref<2048xi8> to memref<32x2xf16>
  %acc = memref.view %arena[%c256][] : memref<1024xi8> to memref<1x1x32xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x1x32xf32>)
  linalg.generic {indexing_maps = [#x, #packed, #group, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %wp, %ws : memref<1x1x64xf32>, memref<32x32xi8>, memref<32x2xf16>) outs(%acc : memref<1x1x32xf32>)
      attrs = {kiln.region = {bits = 4 : i64, group_size = 32 : i64, op = "tfm.linear", zero_points = false}} {
  ^bb0(%a: f32, %b: i8, %s: f16, %c: f32):
    %k = linalg.index 3 : index
    %byte = arith.extui %b : i8 to i32
    %ki = arith.index_cast %k : index to i32
    %c1 = arith.constant 1 : i32
    %c2 = arith.constant 2 : i32
    %c15 = arith.constant 15 : i32
    %odd = arith.andi %ki, %c1 : i32
    %sh = arith.shli %odd, %c2 : i32
    %hi = arith.shrui %byte, %sh : i32
    %q = arith.andi %hi, %c15 : i32
    %qf = arith.uitofp %q : i32 to f32
    %sf = arith.extf %s : f16 to f32
    %c8 = arith.constant 8.0 : f32
    %d = arith.subf %qf, %c8 : f32
    %wv = arith.mulf %d, %sf : f32
    %p = arith.mulf %a, %wv : f32
    %r = arith.addf %c, %p : f32
    linalg.yield %r : f32
  }
  return
}
