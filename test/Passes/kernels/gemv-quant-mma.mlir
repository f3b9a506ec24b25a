// RUN: env KILN_TUNE_GEMV_Q_MMA=8 kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s
// RUN: env KILN_TUNE_GEMV_Q_MMA=3 kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s --check-prefix=CUDA
// RUN: kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s --check-prefix=CUDA

// gemv_q's tensor-core form (KILN_TUNE_GEMV_Q_MMA=<slices>, a measurement
// path, not the default), at the 8B shape's down projection (n 4096, k 14336
// int4 in groups of 128). A warp computes 16 output columns by mma.sync
// m16n8k16; 8 warps share a tile (split-K), so the grid is 4096 / 16 = 256
// blocks. Lane (g, c) loads 16 bytes of rows g and g + 8 of the tile at
// byte 16 c of each 64-byte stretch of its slice (896 bytes: 14 stretches,
// 2 a loop iteration), dequantizes them exactly to q - 8 in f16 pairs
// (nibble masks 0x000F000F and 0x00F000F0 or'ed into 1024.0h, then
// h - 1032 or h / 16 - 72), and feeds A fragments from them and B fragments
// from x at the same codes; each stretch's sums are scaled by the row's
// scale into the running accumulators. Without the variable, or with a
// slice count that is not a power of two, the CUDA-core form is kept.

// CHECK-LABEL: func.func @decode
// CHECK: gpu.launch_func @kiln_kernels::@decode_k0_gemv_q_mma8 blocks in (%c256, {{.*}} {kiln.mapping = "gemv_q", kiln.tiling = "mma8"}
// CHECK: gpu.func @decode_k0_gemv_q_mma8(
// CHECK: %[[SLICE:.+]] = arith.muli %{{.+}}, %c896 : index
// CHECK: vector.load %{{.+}}[%{{.+}}, %{{.+}}] {alignment = 16 : i64} : memref<4096x7168xi8>, vector<16xi8>
// CHECK: arith.andi %{{.+}}, %c983055_i32 : i32
// CHECK: arith.ori %{{.+}}, %c1677747200_i32 : i32
// CHECK: vector.fma %{{.+}} : vector<2xf16>
// CHECK: arith.andi %{{.+}}, %c15728880_i32 : i32
// CHECK: nvgpu.mma.sync(%{{.+}}, %{{.+}}, %{{.+}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// CHECK: memref.load %{{.+}}[%{{.+}}, %{{.+}}] : memref<4096x112xf16>
// CHECK: vector.fma %{{.+}} : vector<2xf32>
// CHECK: scf.for
// CHECK: nvgpu.mma.sync
// CHECK: gpu.subgroup_reduce add %{{.+}} uniform : (f32) -> f32
// CHECK: gpu.barrier
// CHECK: gpu.return

// CUDA: gpu.launch_func @kiln_kernels::@decode_k0_gemv_q blocks
// CUDA-NOT: nvgpu.mma.sync
// CUDA: gpu.return
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
