// RUN: kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s
// RUN: env KILN_TUNE_GEMV_Q_STAGE=0 KILN_TUNE_GEMV_Q_LOP3=0 kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s --check-prefix=OLD

// gemv_q: the projection by an int4 weight (groups of 32) that
// kiln-lower-tfm-to-linalg fused with its dequantization, known by its
// kiln.region. A warp per output column; each lane loads 16 packed bytes
// (32 codes) of the row as 4 words. With f16 activations and symmetric codes
// (the implicit zero point 8) they are dequantized in f16 pairs: nibble j of
// both 16-bit halves of a word (mask 0x000F000F, or 0x00F000F0 for an odd
// nibble, after a shift by 8 for nibbles 2 and 3), or'ed into the mantissa of
// 1024.0h (0x64006400) by one lop3 a word (inline PTX: ptxas leaves an and
// and an or as two LOP3s), and one f16 fma makes (q - 8) / 4 of both
// exactly: h / 4 - 258, or h / 64 - 18 for an odd nibble (h = 1024 + 16 q).
// x is staged once per block in workgroup memory in the pairs' order (the
// block's threads, one 32-code chunk each: pair j of chunk c at halves
// 256 j + 8 c for the first 32 chunks), then a barrier; a lane reads its
// four pairs (codes j and j + 4 of each word) with 16-byte loads. The four
// pair products of a word are summed in f16, widened, the two halves added
// and accumulated in f32 with the group's scale times 4 (undoing the / 4,
// exactly, once a scale). (gemv-quant-f32.mlir: the f32 form, with f32
// activations; KILN_TUNE_GEMV_Q_STAGE=0 / KILN_TUNE_GEMV_Q_LOP3=0 keep the
// per-warp x and the and/or, checked below too.)

// CHECK-LABEL: func.func @decode
// CHECK: gpu.launch_func @kiln_kernels::@decode_k0_gemv_q blocks in (%{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}) threads in (%[[C256:[^,)]+]], {{.*}} {kiln.mapping = "gemv_q"}
// CHECK-NEXT: return

// CHECK: gpu.func @decode_k0_gemv_q({{.*}} workgroup(%[[SX:.+]] : memref<1024xf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64})
// CHECK: %[[TID:.+]] = gpu.thread_id x
// CHECK: scf.for %[[C:.+]] = %[[TID]] to %c2 step %c256 {
// CHECK: %[[XC:.+]] = vector.load %{{.+}} {alignment = 16 : i64} : memref<1x1x64xf16>, vector<32xf16>
// CHECK: %[[XS0:.+]] = vector.shuffle %[[XC]], %[[XC]] [0, 4, 8, 12, 16, 20, 24, 28]
// CHECK: vector.store %[[XS0]], %[[SX]][%{{.+}}] {alignment = 16 : i64}
// CHECK: vector.shuffle %[[XC]], %[[XC]] [1, 5, 9, 13, 17, 21, 25, 29]
// CHECK: %[[AT1:.+]] = arith.addi %{{.+}}, %c256
// CHECK: vector.store %{{.+}}, %[[SX]][%[[AT1]]]
// CHECK: vector.shuffle %[[XC]], %[[XC]] [2, 6, 10, 14, 18, 22, 26, 30]
// CHECK: vector.shuffle %[[XC]], %[[XC]] [3, 7, 11, 15, 19, 23, 27, 31]
// CHECK: %[[AT3:.+]] = arith.addi %{{.+}}, %c768
// CHECK: vector.store %{{.+}}, %[[SX]][%[[AT3]]] {{.*}}vector<8xf16>
// CHECK-NEXT: }
// CHECK-NEXT: gpu.barrier
// CHECK: scf.for
// CHECK: %[[RAW:.+]] = vector.load %{{.+}}[%{{.+}}, %{{.+}}] {alignment = 16 : i64} : memref<32x32xi8>, vector<16xi8>
// CHECK: %[[W:.+]] = vector.bitcast %[[RAW]] : vector<16xi8> to vector<4xi32>
// CHECK: %[[S:.+]] = memref.load %{{.+}}[%{{.+}}, %{{.+}}] : memref<32x2xf16>
// CHECK: %[[SF:.+]] = arith.extf %[[S]] : f16 to f32
// CHECK: %[[FOUR:.+]] = arith.constant 4.000000e+00 : f32
// CHECK: %[[S4:.+]] = arith.mulf %[[SF]], %[[FOUR]] : f32
// CHECK: %[[SV:.+]] = vector.broadcast %[[S4]] : f32 to vector<4xf32>
// CHECK: %[[X0:.+]] = vector.load %[[SX]][%{{.+}}] {alignment = 16 : i64} : memref<1024xf16, #gpu.address_space<workgroup>>, vector<8xf16>
// CHECK: %[[X1:.+]] = vector.load %[[SX]]
// CHECK: %[[X2:.+]] = vector.load %[[SX]]
// CHECK: %[[X3:.+]] = vector.load %[[SX]]
// CHECK: %[[W8:.+]] = arith.shrui %[[W]], %{{.+}} : vector<4xi32>
// CHECK: %[[E0:.+]] = vector.extract %[[W]][0] : i32 from vector<4xi32>
// CHECK: llvm.inline_asm "lop3.b32 $0, $1, 0x000f000f, 0x64006400, 0xEA;", "=r,r" %[[E0]] : (i32) -> i32
// CHECK-COUNT-3: llvm.inline_asm "lop3.b32 $0, $1, 0x000f000f, 0x64006400, 0xEA;"
// CHECK: %[[M0:.+]] = vector.from_elements
// CHECK: %[[H0:.+]] = vector.bitcast %[[M0]] : vector<4xi32> to vector<8xf16>
// CHECK-DAG: %[[B0:.+]] = arith.constant dense<-2.580000e+02> : vector<8xf16>
// CHECK-DAG: %[[QUARTER:.+]] = arith.constant dense<2.500000e-01> : vector<8xf16>
// CHECK: %[[Q0:.+]] = vector.fma %[[H0]], %[[QUARTER]], %[[B0]] : vector<8xf16>
// CHECK: llvm.inline_asm "lop3.b32 $0, $1, 0x00f000f0, 0x64006400, 0xEA;", "=r,r" %[[E0]]
// CHECK: %[[M1:.+]] = vector.from_elements
// CHECK: %[[H1:.+]] = vector.bitcast %[[M1]] : vector<4xi32> to vector<8xf16>
// CHECK-DAG: %[[B1:.+]] = arith.constant dense<-1.800000e+01> : vector<8xf16>
// CHECK-DAG: %[[SIXTEENTH:.+]] = arith.constant dense<1.562500e-02> : vector<8xf16>
// CHECK: %[[Q1:.+]] = vector.fma %[[H1]], %[[SIXTEENTH]], %[[B1]] : vector<8xf16>
// CHECK: vector.extract %[[W8]][0]
// CHECK: %[[Q2:.+]] = vector.fma %{{.+}}, %[[QUARTER]], %[[B0]] : vector<8xf16>
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
// CHECK-NEXT: }
// CHECK-NEXT: %[[LANE:.+]] = vector.reduction <add>, %{{.+}} : vector<4xf32> into f32
// CHECK: gpu.subgroup_reduce add %[[LANE]] uniform : (f32) -> f32
// CHECK: gpu.return

// The measurement switches: x loaded and shuffled by every warp, no
// workgroup memory; the and and the or.
// OLD: gpu.func @decode_k0_gemv_q(
// OLD-NOT: workgroup
// OLD-NOT: gpu.barrier
// OLD: %[[X:.+]] = vector.load %{{.+}} {alignment = 16 : i64} : memref<1x1x64xf16>, vector<32xf16>
// OLD: vector.shuffle %[[X]], %[[X]] [0, 4, 8, 12, 16, 20, 24, 28] : vector<32xf16>, vector<32xf16>
// OLD: %[[LO:.+]] = arith.constant dense<983055> : vector<4xi32>
// OLD: %[[C0:.+]] = arith.andi %{{.+}}, %[[LO]] : vector<4xi32>
// OLD: %[[MAGIC:.+]] = arith.constant dense<1677747200> : vector<4xi32>
// OLD: arith.ori %[[C0]], %[[MAGIC]] : vector<4xi32>
// OLD-NOT: llvm.inline_asm
// OLD: gpu.return
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
