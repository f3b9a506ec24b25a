// RUN: kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s

// gemv_q's f16-pair form for int8 codes (a scale per output channel: one
// group of 64), f16 activations: each lane loads 16 codes as 4 words; bytes
// 0 and 2 of a word (mask 0x00FF00FF), then bytes 1 and 3 after a shift by
// 8, or'ed into the mantissa of 1024.0h (0x64006400) by one lop3 a word, are
// f16 pairs h = 1024 + q, and one f16 fma makes (q - 128) / 64 of both
// exactly (h / 64 - 18). x is staged in workgroup memory in the pairs' order
// (codes j and j + 2 of each word: pair j of 16-code chunk c at halves
// 256 j + 8 c), and the row's scale is multiplied by 64 once, before the
// loop (undoing the / 64 exactly).

// CHECK: gpu.func @decode_k0_gemv_q({{.*}} workgroup(%[[SX:.+]] : memref<512xf16, #gpu.address_space<workgroup>>
// The one scale of a row (a group as long as the row), loaded before the loop.
// CHECK: %[[S:.+]] = memref.load %{{.+}}[%{{.+}}, %{{.+}}] : memref<32x1xf16>
// CHECK: %[[SF:.+]] = arith.extf %[[S]] : f16 to f32
// CHECK: %[[SIXTYFOUR:.+]] = arith.constant 6.400000e+01 : f32
// CHECK: %[[S64:.+]] = arith.mulf %[[SF]], %[[SIXTYFOUR]] : f32
// CHECK: scf.for
// CHECK: %[[X:.+]] = vector.load %{{.+}} {alignment = 16 : i64} : memref<1x1x64xf16>, vector<16xf16>
// CHECK: %[[X0:.+]] = vector.shuffle %[[X]], %[[X]] [0, 2, 4, 6, 8, 10, 12, 14] : vector<16xf16>, vector<16xf16>
// CHECK: vector.store %[[X0]], %[[SX]]
// CHECK: %[[X1:.+]] = vector.shuffle %[[X]], %[[X]] [1, 3, 5, 7, 9, 11, 13, 15]
// CHECK: %[[AT1:.+]] = arith.addi %{{.+}}, %c256
// CHECK: vector.store %[[X1]], %[[SX]][%[[AT1]]]
// CHECK: gpu.barrier
// CHECK: scf.for
// CHECK: %[[W:.+]] = vector.bitcast %{{.+}} : vector<16xi8> to vector<4xi32>
// CHECK: %[[SV:.+]] = vector.broadcast %[[S64]] : f32 to vector<4xf32>
// CHECK: %[[XP0:.+]] = vector.load %[[SX]]
// CHECK: %[[XP1:.+]] = vector.load %[[SX]]
// CHECK: %[[W8:.+]] = arith.shrui %[[W]], %{{.+}} : vector<4xi32>
// CHECK: %[[E0:.+]] = vector.extract %[[W]][0]
// CHECK: llvm.inline_asm "lop3.b32 $0, $1, 0x00ff00ff, 0x64006400, 0xEA;", "=r,r" %[[E0]]
// CHECK: %[[M0:.+]] = vector.from_elements
// CHECK: %[[H0:.+]] = vector.bitcast %[[M0]] : vector<4xi32> to vector<8xf16>
// CHECK-DAG: %[[BIAS:.+]] = arith.constant dense<-1.800000e+01> : vector<8xf16>
// CHECK-DAG: %[[SCALE:.+]] = arith.constant dense<1.562500e-02> : vector<8xf16>
// CHECK: %[[Q0:.+]] = vector.fma %[[H0]], %[[SCALE]], %[[BIAS]] : vector<8xf16>
// CHECK: %[[E8:.+]] = vector.extract %[[W8]][0]
// CHECK: llvm.inline_asm "lop3.b32 $0, $1, 0x00ff00ff, 0x64006400, 0xEA;", "=r,r" %[[E8]]
// CHECK: %[[M1:.+]] = vector.from_elements
// CHECK: %[[H1:.+]] = vector.bitcast %[[M1]] : vector<4xi32> to vector<8xf16>
// CHECK: %[[Q1:.+]] = vector.fma %[[H1]], %[[SCALE]], %[[BIAS]] : vector<8xf16>
// CHECK: %[[P0:.+]] = arith.mulf %[[Q0]], %[[XP0]] : vector<8xf16>
// CHECK: %[[P1:.+]] = vector.fma %[[Q1]], %[[XP1]], %[[P0]] : vector<8xf16>
// CHECK: arith.extf %[[P1]] : vector<8xf16> to vector<8xf32>
// CHECK: vector.fma %{{.+}}, %[[SV]], %{{.+}} : vector<4xf32>
// CHECK-NOT: arith.mulf
// CHECK: gpu.subgroup_reduce add %{{.+}} uniform : (f32) -> f32
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#packed = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#group = affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 64)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @decode(%w: memref<4096xi8>, %kv: memref<64xi8>, %arena: memref<1024xi8> {kiln.arena}, %io: memref<64xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c256 = arith.constant 256 : index
  %c2048 = arith.constant 2048 : index
  %zero = arith.constant 0.0 : f32
  %x = memref.view %arena[%c0][] : memref<1024xi8> to memref<1x1x64xf16>
  %wp = memref.view %w[%c0][] : memref<4096xi8> to memref<32x64xi8>
  %ws = memref.view %w[%c2048][] : memref<4096xi8> to memref<32x1xf16>
  %acc = memref.view %arena[%c256][] : memref<1024xi8> to memref<1x1x32xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x1x32xf32>)
  linalg.generic {indexing_maps = [#x, #packed, #group, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %wp, %ws : memref<1x1x64xf16>, memref<32x64xi8>, memref<32x1xf16>) outs(%acc : memref<1x1x32xf32>)
      attrs = {kiln.region = {bits = 8 : i64, group_size = 64 : i64, op = "tfm.linear", zero_points = false}} {
  ^bb0(%a: f16, %b: i8, %s: f16, %c: f32):
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
    %af = arith.extf %a : f16 to f32
    %p = arith.mulf %af, %wv : f32
    %r = arith.addf %c, %p : f32
    linalg.yield %r : f32
  }
  return
}
