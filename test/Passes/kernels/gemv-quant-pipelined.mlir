// RUN: kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s
// RUN: env KILN_TUNE_GEMV_Q_TAIL=0 kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s --check-prefix=NOTAIL

// gemv_q's software-pipelined loop along K, at the 8B shape's down
// projection (n 4096, k 14336 int4 in groups of 128: 7168 bytes a row).
// int4 keeps 64 blocks before split-K, so a warp takes 4 output columns;
// 2 warps share a column (split-K), each reading 3584 bytes (7 steps of a
// warp's 512) of its 4 rows. Every lane has the same 7 steps, an odd
// number: the loop is pipelined over 3 iterations of 2 steps and the 7th
// (the tail) follows it: the first iteration's codes are loaded before it
// (the first loads of the kernel), each iteration loads the next one's
// codes and then does the arithmetic of the one before on the codes it
// carries; after the loop the tail's codes are loaded, then the last
// iteration's arithmetic and the tail's. x (14336 f16, 28 KiB) is staged in
// workgroup memory between the first code loads and the loop. With
// KILN_TUNE_GEMV_Q_TAIL=0, one step an iteration (7 iterations).

// CHECK-LABEL: func.func @decode
// CHECK: gpu.launch_func @kiln_kernels::@decode_k0_gemv_q blocks in (%[[G:[^,]+]], {{.*}} {kiln.mapping = "gemv_q"}
// CHECK: gpu.func @decode_k0_gemv_q(
// CHECK: %[[SLICE:.+]] = arith.muli %{{.+}}, %c3584 : index
// CHECK: %[[FIRST:.+]] = arith.addi %[[SLICE]], %{{.+}} : index
// CHECK: %[[SECOND:.+]] = arith.addi %[[FIRST]], %c512 : index
// CHECK: %[[W0:.+]] = vector.load %{{.+}}[%[[N0:.+]], %[[FIRST]]] {alignment = 16 : i64} : memref<4096x7168xi8>, vector<16xi8>
// CHECK: %[[C0:.+]] = vector.bitcast %[[W0]] : vector<16xi8> to vector<4xi32>
// CHECK-COUNT-3: vector.load %{{.+}}[%{{.+}}, %[[FIRST]]] {alignment = 16 : i64} : memref<4096x7168xi8>, vector<16xi8>
// CHECK-COUNT-4: vector.load %{{.+}}[%{{.+}}, %[[SECOND]]] {alignment = 16 : i64} : memref<4096x7168xi8>, vector<16xi8>
// CHECK: scf.for %{{.+}} = %{{.+}} to %c448 step %c256 {
// CHECK: vector.load %{{.+}} : memref<1x1x14336xf16>, vector<32xf16>
// CHECK: gpu.barrier
// CHECK: %[[LAST:.+]] = arith.addi %[[FIRST]], %c2048 : index
// CHECK: %[[END:.+]] = arith.addi %[[LAST]], %c1024 : index
// CHECK: %[[START:.+]] = arith.addi %[[FIRST]], %c1024 : index
// CHECK: %[[LOOP:.+]]:12 = scf.for %[[K:.+]] = %[[START]] to %[[END]] step %c1024 iter_args(%{{[^ ]+}} = %[[C0]], {{.*}}) -> (vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>) {
// CHECK: %[[K1:.+]] = arith.addi %[[K]], %c512 : index
// CHECK-NEXT: vector.load %{{.+}}[%[[N0]], %[[K]]] {alignment = 16 : i64} : memref<4096x7168xi8>, vector<16xi8>
// CHECK-COUNT-3: vector.load %{{.+}}[%{{.+}}, %[[K]]]
// CHECK-COUNT-4: vector.load %{{.+}}[%{{.+}}, %[[K1]]]
// CHECK: %[[PREV:.+]] = arith.subi %[[K]], %c1024 : index
// CHECK: vector.fma %{{.+}} : vector<8xf16>
// CHECK: scf.yield
// CHECK-NEXT: }
// The tail step's codes, then the last iteration's arithmetic on the codes
// the loop loaded last, then the tail's.
// CHECK: %[[TAIL:.+]] = arith.addi %[[FIRST]], %c3072 : index
// CHECK-COUNT-4: vector.load %{{.+}}[%{{.+}}, %[[TAIL]]] {alignment = 16 : i64} : memref<4096x7168xi8>, vector<16xi8>
// CHECK: arith.muli %[[LAST]], %c2 : index
// CHECK: vector.extract %[[LOOP]]#0[0] : i32 from vector<4xi32>
// CHECK-NEXT: llvm.inline_asm "lop3.b32
// CHECK: arith.muli %[[TAIL]], %c2 : index
// CHECK: gpu.subgroup_reduce add %{{.+}} uniform : (f32) -> f32
// CHECK: gpu.barrier
// CHECK: gpu.return

// NOTAIL: %[[LOOP:.+]]:8 = scf.for %{{.+}} = %{{.+}} to %{{.+}} step %c512 iter_args
// NOTAIL-NOT: arith.addi %{{.+}}, %c3072 : index
// NOTAIL: gpu.return
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#packed = affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 2)>
#group = affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 128)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @decode(%w: memref<30277632xi8>, %kv: memref<64xi8>, %arena: memref<65536xi8> {kiln.arena}, %io: memref<64xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c32768 = arith.constant 32768 : index
  %cs = arith.constant 29360128 : index
  %zero = arith.constant 0.0 : f32
  %x = memref.view %arena[%c0][] : memref<65536xi8> to memref<1x1x14336xf16>
  %wp = memref.view %w[%c0][] : memref<30277632xi8> to memref<4096x7168xi8>
  %ws = memref.view %w[%cs][] : memref<30277632xi8> to memref<4096x112xf16>
  %acc = memref.view %arena[%c32768][] : memref<65536xi8> to memref<1x1x4096xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x1x4096xf32>)
  linalg.generic {indexing_maps = [#x, #packed, #group, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %wp, %ws : memref<1x1x14336xf16>, memref<4096x7168xi8>, memref<4096x112xf16>) outs(%acc : memref<1x1x4096xf32>)
      attrs = {kiln.region = {bits = 4 : i64, group_size = 128 : i64, op = "tfm.linear", zero_points = false}} {
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
