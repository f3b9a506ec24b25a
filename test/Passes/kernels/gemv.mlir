// RUN: kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s

// The decode GEMVs of the kernel library, built by --kiln-map-loops-to-gpu
// for the ops --kiln-select-kernels tagged. The fill of the first
// accumulator is fused into its kernel (no launch of its own).

// CHECK-LABEL: func.func @decode
// CHECK: gpu.launch_func @kiln_kernels::@decode_k0_gemv_kn blocks in (%[[C2:[^,)]+]], %[[C1:[^,)]+]], %[[C1]]) threads in (%[[C1024:[^,)]+]], %[[C1]], %[[C1]]) {{.*}} {kiln.mapping = "gemv_kn"}
// CHECK: gpu.launch_func @kiln_kernels::@decode_k1_gemv_nk blocks in (%{{[^,]+}}, %[[C1]], %[[C1]]) threads in (%[[C256:[^,)]+]], %[[C1]], %[[C1]]) {{.*}} {kiln.mapping = "gemv_nk"}
// CHECK-NEXT: return

// gemv_kn: w[64, 32] f16 is read 8 columns (16 bytes) per lane and row, two
// lanes per row: 16 columns per block, so 2 blocks (of 1024 threads, as
// there are few); the 16 lanes of a warp that share columns add up with a
// clustered subgroup reduction, the 32 warps through workgroup memory
// (32 warps x 2 rows x 16 columns).
// CHECK: gpu.func @decode_k0_gemv_kn({{.*}}) workgroup(%[[SMEM:.+]] : memref<1024xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK: scf.for %[[K:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>)
// CHECK: vector.load %{{.+}}[%[[K]], %{{.+}}] {alignment = 16 : i64} : memref<64x32xf16>, vector<8xf16>
// CHECK: vector.fma
// CHECK: gpu.subgroup_reduce add %{{.+}} uniform cluster(size = 16, stride = 2) : (f32) -> f32
// CHECK: memref.store %{{.+}}, %[[SMEM]]
// CHECK: gpu.barrier
// CHECK: memref.load %[[SMEM]]
// The fused fill: the sum is added to the fill value, the output is not read.
// CHECK-NOT: memref.load %{{.+}} : memref<1x2x32xf32>
// CHECK: %[[SUM:.+]] = arith.addf %[[ZERO]], %{{.+}} : f32
// CHECK: memref.store %[[SUM]], %{{.+}} : memref<1x2x32xf32>
// CHECK: gpu.return

// gemv_nk: a warp per output column, lanes along k with 16-byte loads of
// the weight row and of x; vector.reduction then a whole-warp reduction.
// CHECK: gpu.func @decode_k1_gemv_nk({{.*}}) kernel
// CHECK: scf.for
// CHECK: vector.load %{{.+}} {alignment = 16 : i64} : memref<32x64xf16>, vector<8xf16>
// CHECK: vector.reduction <add>
// CHECK: gpu.subgroup_reduce add %{{.+}} uniform : (f32) -> f32
// CHECK: scf.if
// CHECK: memref.load %{{.+}} : memref<1x2x32xf32>
// CHECK: gpu.return
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w_in_out = affine_map<(d0, d1, d2, d3) -> (d3, d2)>
#w_out_in = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @decode(%w: memref<16384xi8>, %kv: memref<64xi8>, %arena: memref<1024xi8> {kiln.arena}, %io: memref<64xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c256 = arith.constant 256 : index
  %c512 = arith.constant 512 : index
  %c8192 = arith.constant 8192 : index
  %zero = arith.constant 0.0 : f32
  %x = memref.view %arena[%c0][] : memref<1024xi8> to memref<1x2x64xf16>
  %wk = memref.view %w[%c0][] : memref<16384xi8> to memref<64x32xf16>
  %wn = memref.view %w[%c8192][] : memref<16384xi8> to memref<32x64xf16>
  %acc = memref.view %arena[%c256][] : memref<1024xi8> to memref<1x2x32xf32>
  %acc2 = memref.view %arena[%c512][] : memref<1024xi8> to memref<1x2x32xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x2x32xf32>)
  linalg.generic {indexing_maps = [#x, #w_in_out, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %wk : memref<1x2x64xf16>, memref<64x32xf16>) outs(%acc : memref<1x2x32xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#x, #w_out_in, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %wn : memref<1x2x64xf16>, memref<32x64xf16>) outs(%acc2 : memref<1x2x32xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  return
}
