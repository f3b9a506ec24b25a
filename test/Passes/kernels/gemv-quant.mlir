// RUN: kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s

// gemv_q: the projection by an int4 weight (groups of 32) that
// kiln-lower-tfm-to-linalg fused with its dequantization, known by its
// kiln.region. A warp per output column; each lane loads 16 packed bytes
// (32 codes) of the row as 4 words. With f16 activations and symmetric codes
// (the implicit zero point 8) they are dequantized in f16 pairs: nibble j of
// both 16-bit halves of a word (mask 0x000F000F = 983055, or 0x00F000F0 =
// 15728880 for an odd nibble, after a shift by 8 for nibbles 2 and 3), or'ed
// into the mantissa of 1024.0h (0x64006400 = 1677747200), and one f16 fma
// makes (q - 8) / 4 of both exactly: h / 4 - 258, or h / 64 - 18 for an odd
// nibble (h = 1024 + 16 q). x's pairs are shuffled to match (codes j and
// j + 4 of each word), the four pair products of a word summed in f16, then
// widened, the two halves added and accumulated in f32 with the group's
// scale; the 4 is multiplied back before the warp adds its lanes.
// (gemv-quant-f32.mlir: the f32 form, with f32 activations.)

// CHECK-LABEL: func.func @decode
// CHECK: gpu.launch_func @kiln_kernels::@decode_k0_gemv_q blocks in (%{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}) threads in (%[[C256:[^,)]+]], {{.*}} {kiln.mapping = "gemv_q"}
// CHECK-NEXT: return

// CHECK: gpu.func @decode_k0_gemv_q(
// CHECK: %[[RAW:.+]] = vector.load %{{.+}}[%{{.+}}, %{{.+}}] {alignment = 16 : i64} : memref<32x32xi8>, vector<16xi8>
// CHECK: %[[W:.+]] = vector.bitcast %[[RAW]] : vector<16xi8> to vector<4xi32>
// CHECK: %[[S:.+]] = memref.load %{{.+}}[%{{.+}}, %{{.+}}] : memref<32x2xf16>
// CHECK: %[[SF:.+]] = arith.extf %[[S]] : f16 to f32
// CHECK: %[[SV:.+]] = vector.broadcast %[[SF]] : f32 to vector<4xf32>
// CHECK: %[[X:.+]] = vector.load %{{.+}} {alignment = 16 : i64} : memref<1x1x64xf16>, vector<32xf16>
// CHECK: %[[X0:.+]] = vector.shuffle %[[X]], %[[X]] [0, 4, 8, 12, 16, 20, 24, 28] : vector<32xf16>, vector<32xf16>
// CHECK: %[[X1:.+]] = vector.shuffle %[[X]], %[[X]] [1, 5, 9, 13, 17, 21, 25, 29]
// CHECK: %[[X2:.+]] = vector.shuffle %[[X]], %[[X]] [2, 6, 10, 14, 18, 22, 26, 30]
// CHECK: %[[X3:.+]] = vector.shuffle %[[X]], %[[X]] [3, 7, 11, 15, 19, 23, 27, 31]
// CHECK: %[[W8:.+]] = arith.shrui %[[W]], %{{.+}} : vector<4xi32>
// CHECK: %[[LO:.+]] = arith.constant dense<983055> : vector<4xi32>
// CHECK: %[[C0:.+]] = arith.andi %[[W]], %[[LO]] : vector<4xi32>
// CHECK: %[[MAGIC:.+]] = arith.constant dense<1677747200> : vector<4xi32>
// CHECK: %[[M0:.+]] = arith.ori %[[C0]], %[[MAGIC]] : vector<4xi32>
// CHECK: %[[H0:.+]] = vector.bitcast %[[M0]] : vector<4xi32> to vector<8xf16>
// CHECK-DAG: %[[B0:.+]] = arith.constant dense<-2.580000e+02> : vector<8xf16>
// CHECK-DAG: %[[QUARTER:.+]] = arith.constant dense<2.500000e-01> : vector<8xf16>
// CHECK: %[[Q0:.+]] = vector.fma %[[H0]], %[[QUARTER]], %[[B0]] : vector<8xf16>
// CHECK: %[[HI:.+]] = arith.constant dense<15728880> : vector<4xi32>
// CHECK: %[[C1:.+]] = arith.andi %[[W]], %[[HI]] : vector<4xi32>
// CHECK: %[[M1:.+]] = arith.ori %[[C1]], %[[MAGIC]] : vector<4xi32>
// CHECK: %[[H1:.+]] = vector.bitcast %[[M1]] : vector<4xi32> to vector<8xf16>
// CHECK-DAG: %[[B1:.+]] = arith.constant dense<-1.800000e+01> : vector<8xf16>
// CHECK-DAG: %[[SIXTEENTH:.+]] = arith.constant dense<1.562500e-02> : vector<8xf16>
// CHECK: %[[Q1:.+]] = vector.fma %[[H1]], %[[SIXTEENTH]], %[[B1]] : vector<8xf16>
// CHECK: arith.andi %[[W8]], %[[LO]] : vector<4xi32>
// CHECK: %[[Q2:.+]] = vector.fma %{{.+}}, %[[QUARTER]], %[[B0]] : vector<8xf16>
// CHECK: arith.andi %[[W8]], %[[HI]] : vector<4xi32>
// CHECK: %[[Q3:.+]] = vector.fma %{{.+}}, %[[SIXTEENTH]], %[[B1]] : vector<8xf16>
// CHECK: %[[P0:.+]] = arith.mulf %[[Q0]], %[[X0]] : vector<8xf16>
// CHECK: %[[P1:.+]] = vector.fma %[[Q1]], %[[X1]], %[[P0]] : vector<8xf16>
// CHECK: %[[P2:.+]] = vector.fma %[[Q2]], %[[X2]], %[[P1]] : vector<8xf16>
// CHECK: %[[P3:.+]] = vector.fma %[[Q3]], %[[X3]], %[[P2]] : vector<8xf16>
// CHECK: %[[WIDE:.+]] = arith.extf %[[P3]] : vector<8xf16> to vector<8xf32>
// CHECK-DAG: %[[ODD:.+]] = vector.shuffle %[[WIDE]], %[[WIDE]] [1, 3, 5, 7]
// CHECK-DAG: %[[EVEN:.+]] = vector.shuffle %[[WIDE]], %[[WIDE]] [0, 2, 4, 6]
// CHECK: %[[SUM:.+]] = arith.addf %[[EVEN]], %[[ODD]] : vector<4xf32>
// CHECK: %[[ACC:.+]] = vector.fma %[[SUM]], %[[SV]], %{{.+}} : vector<4xf32>
// CHECK: scf.yield %[[ACC]]
// CHECK: %[[FOUR:.+]] = arith.constant dense<4.000000e+00> : vector<4xf32>
// CHECK: %[[SCALED:.+]] = arith.mulf %{{.+}}, %[[FOUR]] : vector<4xf32>
// CHECK: %[[LANE:.+]] = vector.reduction <add>, %[[SCALED]] : vector<4xf32> into f32
// CHECK: gpu.subgroup_reduce add %[[LANE]] uniform : (f32) -> f32
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
  %x = memref.view %arena[%c0][] : memref<1024xi8> to memref<1x1x64xf16>
  %wp = memref.view %w[%c0][] : memref<2048xi8> to memref<32x32xi8>
  %ws = memref.view %w[%c1024][] : memref<2048xi8> to memref<32x2xf16>
  %acc = memref.view %arena[%c256][] : memref<1024xi8> to memref<1x1x32xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x1x32xf32>)
  linalg.generic {indexing_maps = [#x, #packed, #group, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %wp, %ws : memref<1x1x64xf16>, memref<32x32xi8>, memref<32x2xf16>) outs(%acc : memref<1x1x32xf32>)
      attrs = {kiln.region = {bits = 4 : i64, group_size = 32 : i64, op = "tfm.linear", zero_points = false}} {
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
