// RUN: kiln-opt %s --split-input-file --kiln-select-kernels --kiln-lower-linalg-to-loops --kiln-plan-memory --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s

#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// Few columns (64) and a long row (1024): one warp per column would leave
// the GPU with too few loads in flight, so 4 warps share each column
// (split-K), each reading 256 of its 1024 elements (the rows 16-byte
// vectors, 32 lanes x 8 halves = one step of 256): 2 columns a block of 8
// warps, 32 blocks. Slices 1-3 leave their sums in workgroup memory, then
// slice 0 adds them and stores.
// CHECK-LABEL: func.func @decode
// CHECK: gpu.launch_func @kiln_kernels::@decode_k0_gemv_nk blocks in (%c32, %c1, %c1) threads in (%c256, %c1, %c1)
// CHECK: gpu.func @decode_k0_gemv_nk
// CHECK-SAME: workgroup(%[[SMEM:.+]] : memref<8xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64})
// CHECK: %[[WARP:.+]] = arith.divui %{{.+}}, %c32 : index
// CHECK: %[[SLICE:.+]] = arith.remui %[[WARP]], %c4 : index
// CHECK: %[[K0:.+]] = arith.muli %[[SLICE]], %c256 : index
// CHECK: %[[FIRST:.+]] = arith.addi %[[K0]], %{{.+}} : index
// CHECK: %[[END:.+]] = arith.addi %[[K0]], %c256 : index
// The first iteration is peeled, its weight load first (before anything a
// kernel writes: see kiln-dependent-launch); the loop does the rest.
// CHECK: vector.load %{{.+}}[%{{.+}}, %[[FIRST]]] {{.*}} : memref<64x1024xf16>, vector<8xf16>
// CHECK-NEXT: vector.load %{{.+}}[%c0, %c0, %[[FIRST]]] {{.*}} : memref<1x1x1024xf16>, vector<8xf16>
// CHECK: %[[SECOND:.+]] = arith.addi %[[FIRST]], %c256 : index
// CHECK: scf.for %{{.+}} = %[[SECOND]] to %[[END]] step %c256
// CHECK: gpu.subgroup_reduce add
// CHECK: scf.if
// CHECK: memref.store %{{.+}}, %[[SMEM]]
// CHECK: gpu.barrier
// CHECK-COUNT-3: memref.load %[[SMEM]]
// CHECK: memref.store %{{.+}} : memref<1x1x64xf32>
// CHECK: gpu.return
func.func @decode(%x: memref<1x1x1024xf16>, %w: memref<64x1024xf16>,
                  %y: memref<1x1x64xf32>, %arena: memref<4096xi8> {kiln.arena}) attributes {kiln.entry = "decode"} {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<1x1x64xf32>)
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x1x1024xf16>, memref<64x1024xf16>) outs(%y : memref<1x1x64xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  return
}

// -----

#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// A row shorter than one warp step (64 < 32 lanes x 8): lanes 8-31 have no
// iteration at all, so none is peeled; the loop starts at the lane's first
// element and the weights are read only inside it.
// CHECK-LABEL: func.func @short_row
// CHECK: gpu.func @short_row_k0_gemv_nk
// CHECK-NOT: vector.load
// CHECK: scf.for %{{.+}} = %{{.+}} to %c64 step %c256
// CHECK-NEXT: vector.load %{{.+}} : memref<32x64xf16>, vector<8xf16>
func.func @short_row(%x: memref<1x1x64xf16>, %w: memref<32x64xf16>,
                     %y: memref<1x1x32xf32>, %arena: memref<4096xi8> {kiln.arena}) attributes {kiln.entry = "decode"} {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<1x1x32xf32>)
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x1x64xf16>, memref<32x64xf16>) outs(%y : memref<1x1x32xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  return
}
