// RUN: kiln-opt %s --split-input-file --kiln-select-kernels="warpgroup-mma=1" | FileCheck %s --check-prefix=SELECT
// RUN: kiln-opt %s --split-input-file --kiln-select-kernels | FileCheck %s --check-prefix=OFF
// RUN: kiln-opt %s --split-input-file --kiln-select-kernels="warpgroup-mma=1" --kiln-lower-linalg-to-loops --canonicalize --kiln-plan-memory --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s

#row = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#rows = affine_map<(d0, d1, d2) -> (d0, d1)>
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// A prefill projection (200 rows > 64) with an RMSNorm folded in: with
// warpgroup-mma (sm_90a), matmul_wgmma takes it, else matmul_mma. Few
// blocks at any tile: the tiling with the most, 64 x 64 (one warpgroup), 4
// stages of 64 k columns in dynamic shared memory (4 x 128 rows x 128 bytes
// + 1 KiB of alignment = 66560 bytes, given at the launch). 2 k tiles of 64,
// staged by cp.async at swizzled chunks (chunk ^ row % 8), rows past 200
// zero-filled, 2 tiles ahead; each k tile: wait (at most 1 copy group
// pending), proxy fence, barrier, prefetch, then 4 wgmma m64n64k16 on
// descriptors 32 bytes apart, committed; the previous tile's are waited for
// (1 in flight), the last after the loop.
// SELECT-LABEL: func.func @prefill
// SELECT: linalg.generic {{.*}}kiln.kernel = "fused"
// SELECT: linalg.generic {{.*}}kiln.kernel = "matmul_wgmma"
// SELECT: linalg.generic {{.*}}kiln.kernel = "fused"
// OFF-LABEL: func.func @prefill
// OFF: linalg.generic {{.*}}kiln.kernel = "matmul_mma"

// CHECK-LABEL: func.func @prefill
// CHECK: %[[SHARED:.+]] = arith.constant 66560 : i32
// CHECK: gpu.launch_func @kiln_kernels::@prefill_k0_matmul_wgmma_64x64x64s4f1 blocks in (%c4, %c2, %c1) threads in (%c128, %c1, %c1) dynamic_shared_memory_size %[[SHARED]]
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.func @prefill_k0_matmul_wgmma_64x64x64s4f1
// CHECK-SAME: workgroup(%[[SQ:.+]] : memref<64xf32, #gpu.address_space<workgroup>>
// CHECK: %[[DYN:.+]] = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// CHECK: %[[A:.+]] = memref.view %[[DYN]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4x64x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[B:.+]] = memref.view %[[DYN]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4x64x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[ROWOK:.+]] = arith.cmpi ult, %{{.+}}, %c200 : index
// CHECK: %[[SW:.+]] = arith.xori %{{.+}}, %{{.+}} : index
// CHECK: nvgpu.device_async_copy %{{.+}}, %[[A]][%{{.+}}, %{{.+}}, %{{.+}}], 8, %{{.+}} {bypassL1} : memref<1x200x128xf16> to memref<4x64x64xf16, #gpu.address_space<workgroup>>
// CHECK: nvgpu.device_async_copy %{{.+}}, %[[B]][%{{.+}}, %{{.+}}, %{{.+}}], 8, %{{.+}} {bypassL1} : memref<96x128xf16> to memref<4x64x64xf16, #gpu.address_space<workgroup>>
// CHECK: nvgpu.device_async_create_group
// CHECK: %[[G:.+]] = nvgpu.device_async_create_group
// CHECK-NOT: nvgpu.device_async_create_group
// CHECK: scf.for %{{.+}} = %c0 to %c2 step %c1 iter_args(%{{.+}} = %{{.+}}, %{{.+}} = %{{.+}}) -> (!llvm.struct<(f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32)>, vector<8xf32>)
// CHECK: nvgpu.device_async_wait %[[G]] {numGroups = 1 : i32}
// CHECK-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK-NEXT: gpu.barrier
// CHECK: nvgpu.device_async_create_group
// CHECK: nvvm.wgmma.fence.aligned
// CHECK: nvvm.wgmma.mma_async {{.+}}, <m = 64, n = 64, k = 16>, D[<f32>, <one>], A[<f16>, <one>, <row>], B[<f16>, <one>, <col>]
// CHECK: nvvm.wgmma.mma_async
// CHECK: nvvm.wgmma.mma_async
// CHECK: nvvm.wgmma.mma_async
// CHECK-NOT: nvvm.wgmma.mma_async
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: vector.fma %[[X:.+]], %[[X]], %{{.+}} : vector<8xf32>
// CHECK: scf.yield
// CHECK-NEXT: }
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: gpu.shuffle  xor
// CHECK: memref.store %{{.+}}, %[[SQ]][%{{.+}}] : memref<64xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK: %[[S:.+]] = memref.load %[[SQ]][%{{.+}}] : memref<64xf32, #gpu.address_space<workgroup>>
// CHECK: llvm.extractvalue %{{.+}}[0] : !llvm.struct
// CHECK: math.sqrt
// CHECK: memref.store %{{.+}} : memref<1x200x96xf16>
// CHECK: llvm.extractvalue %{{.+}}[31] : !llvm.struct
// CHECK: gpu.return
func.func @prefill(%x: memref<1x200x128xf16>, %w: memref<96x128xf16>,
                   %y: memref<1x200x96xf16>, %arena: memref<65536xi8> {kiln.arena}) attributes {kiln.entry = "prefill"} {
  %zero = arith.constant 0.0 : f32
  %k = arith.constant 128.0 : f32
  %eps = arith.constant 1.0e-05 : f32
  %one = arith.constant 1.0 : f32
  %sq = memref.alloc() : memref<1x200xf32>
  linalg.fill ins(%zero : f32) outs(%sq : memref<1x200xf32>)
  linalg.generic {indexing_maps = [#row, #rows], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x : memref<1x200x128xf16>) outs(%sq : memref<1x200xf32>) attrs = {kiln.region = {op = "tfm.linear", step = "sum_squares"}} {
  ^bb0(%a: f16, %s: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.mulf %0, %0 : f32
    %2 = arith.addf %s, %1 : f32
    linalg.yield %2 : f32
  }
  %acc = memref.alloc() : memref<1x200x96xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x200x96xf32>)
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x200x128xf16>, memref<96x128xf16>) outs(%acc : memref<1x200x96xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#row, #rows, #row], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%acc, %sq : memref<1x200x96xf32>, memref<1x200xf32>) outs(%y : memref<1x200x96xf16>) {
  ^bb0(%a: f32, %s: f32, %o: f16):
    %0 = arith.divf %s, %k : f32
    %1 = arith.addf %0, %eps : f32
    %2 = math.sqrt %1 : f32
    %3 = arith.divf %one, %2 : f32
    %4 = arith.mulf %a, %3 : f32
    %5 = arith.truncf %4 : f32 to f16
    linalg.yield %5 : f16
  }
  return
}

// -----

#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// SwiGLU in the epilogue (weights [gate; up], 2 x 64 rows), 128 rows: a
// 64 x 64 tile's first 32 weight rows are gate's columns n0 + q and the
// next 32 up's (64 further), so register r (gate) and r + 16 (up) of a
// thread are the same output column.
// SELECT-LABEL: func.func @swiglu
// SELECT: kiln.kernel = "matmul_wgmma"
// SELECT: kiln.kernel = "fused"
// CHECK-LABEL: func.func @swiglu
// CHECK: gpu.launch_func @kiln_kernels::@swiglu_k0_matmul_wgmma_64x64x64s4f1 blocks in (%c2, %c2, %c1) threads in (%c128, %c1, %c1)
// CHECK: gpu.func @swiglu_k0_matmul_wgmma_64x64x64s4f1
// CHECK: %[[GATE:.+]] = arith.cmpi ult, %{{.+}}, %c32 : index
// CHECK: %[[SHIFT:.+]] = arith.select %[[GATE]], %c0, %c64 : index
// CHECK: scf.for
// CHECK: nvvm.wgmma.mma_async
// CHECK: scf.yield
// CHECK: %[[G0:.+]] = llvm.extractvalue %{{.+}}[0] : !llvm.struct
// CHECK: %[[U0:.+]] = llvm.extractvalue %{{.+}}[16] : !llvm.struct
// CHECK: math.exp
// CHECK: memref.store %{{.+}} : memref<1x128x64xf16>
// CHECK: gpu.return
func.func @swiglu(%x: memref<1x128x64xf16>, %w: memref<128x64xf16>,
                  %y: memref<1x128x64xf16>, %arena: memref<65536xi8> {kiln.arena}) attributes {kiln.entry = "prefill"} {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %acc = memref.alloc() : memref<1x128x128xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x128x128xf32>)
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x128x64xf16>, memref<128x64xf16>) outs(%acc : memref<1x128x128xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  %gate = memref.subview %acc[0, 0, 0] [1, 128, 64] [1, 1, 1] : memref<1x128x128xf32> to memref<1x128x64xf32, strided<[16384, 128, 1]>>
  %up = memref.subview %acc[0, 0, 64] [1, 128, 64] [1, 1, 1] : memref<1x128x128xf32> to memref<1x128x64xf32, strided<[16384, 128, 1], offset: 64>>
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%gate, %up : memref<1x128x64xf32, strided<[16384, 128, 1]>>, memref<1x128x64xf32, strided<[16384, 128, 1], offset: 64>>) outs(%y : memref<1x128x64xf16>) {
  ^bb0(%g: f32, %u: f32, %o: f16):
    %0 = arith.negf %g : f32
    %1 = math.exp %0 : f32
    %2 = arith.addf %one, %1 : f32
    %3 = arith.divf %one, %2 : f32
    %4 = arith.mulf %g, %3 : f32
    %5 = arith.mulf %4, %u : f32
    %6 = arith.truncf %5 : f32 to f16
    linalg.yield %6 : f16
  }
  return
}

// -----

#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// Not for: K not a multiple of 64 (96: matmul_mma's). 16 rows (batched
// decode, short chunks) take it with one warpgroup: 64 x 32 tiles in 8
// stages (more blocks, more bytes in flight), rows past 16 zero-filled.
// SELECT-LABEL: func.func @not_wgmma
// SELECT-NOT: matmul_wgmma
// SELECT: matmul_mma
// SELECT: matmul_wgmma
// SELECT: return
// CHECK-LABEL: func.func @not_wgmma
// CHECK: gpu.launch_func @kiln_kernels::@not_wgmma_k0_matmul_mma_
// CHECK: gpu.launch_func @kiln_kernels::@not_wgmma_k1_matmul_wgmma_64x32x64s8f1 blocks in (%c1, %c2, %c1) threads in (%c128, %c1, %c1)
func.func @not_wgmma(%x: memref<1x128x96xf16>, %w: memref<64x96xf16>, %acc: memref<1x128x64xf32>,
                     %x2: memref<1x16x64xf16>, %w2: memref<64x64xf16>, %acc2: memref<1x16x64xf32>) attributes {kiln.entry = "prefill"} {
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x128x96xf16>, memref<64x96xf16>) outs(%acc : memref<1x128x64xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x2, %w2 : memref<1x16x64xf16>, memref<64x64xf16>) outs(%acc2 : memref<1x16x64xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  return
}
