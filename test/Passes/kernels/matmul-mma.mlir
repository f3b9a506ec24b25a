// RUN: kiln-opt %s --split-input-file --kiln-select-kernels | FileCheck %s --check-prefix=SELECT
// RUN: kiln-opt %s --split-input-file --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-plan-memory --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s

#row = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#rows = affine_map<(d0, d1, d2) -> (d0, d1)>
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// A prefill projection (48 rows > 8: not a GEMV) with an RMSNorm folded in
// (kiln-fuse-norm-projection), bufferized: matmul_mma takes the sum of
// squares (a member), the projection and the finish (its epilogue). One
// 64 x 64 tile (the small tiling, named in the kernel: 4 warps, 4 stages):
// 3 k tiles of 32 staged by cp.async (16-byte copies, rows past 48
// zero-filled), read by ldmatrix
// into m16n8k16 MMAs; the block sums x^2 of the rows it stages, stores the
// sums once (the blocks of column tile 0) and scales each result by them.
// The f32 accumulator gets no bytes of the arena (scratch): the arena holds
// the 48 sums (192 bytes) only.
// SELECT-LABEL: func.func @prefill
// SELECT: linalg.fill {{.*}}kiln.kernel = "fused"
// SELECT: linalg.generic {{.*}}kiln.kernel = "fused"
// SELECT: linalg.generic {{.*}}kiln.kernel = "matmul_mma"
// SELECT: linalg.generic {{.*}}kiln.kernel = "fused"

// CHECK-LABEL: func.func @prefill
// CHECK-SAME: kiln.arena_size = 192 : i64, kiln.entry = "prefill", kiln.memory_plan = [#kiln.buffer<offset = 0, size = 192,
// CHECK: gpu.launch_func @kiln_kernels::@prefill_k0_matmul_mma_64x64x32s4 blocks in (%c1, %c1, %c1) threads in (%c128, %c1, %c1)
// CHECK-NOT: gpu.launch_func
// CHECK: return
// CHECK: gpu.func @prefill_k0_matmul_mma_64x64x32s4
// CHECK-SAME: workgroup(%[[A:.+]] : memref<4x64x40xf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[B:.+]] : memref<4x64x40xf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[SQ:.+]] : memref<64xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64})
// CHECK: %[[ROWOK:.+]] = arith.cmpi ult, %{{.+}}, %c48 : index
// CHECK: %[[N:.+]] = arith.select %{{.+}}, %c8, %c0 : index
// CHECK: nvgpu.device_async_copy %{{.+}}, %[[A]][%{{.+}}, %{{.+}}, %{{.+}}], 8, %[[N]] {bypassL1} : memref<1x48x96xf16> to memref<4x64x40xf16, #gpu.address_space<workgroup>>
// CHECK: nvgpu.device_async_copy %{{.+}}, %[[B]][%{{.+}}, %{{.+}}, %{{.+}}], 8, %{{.+}} {bypassL1} : memref<64x96xf16> to memref<4x64x40xf16, #gpu.address_space<workgroup>>
// The ring's first 3 stages, then the loop: wait until at most 2 groups are
// pending (k tile kt has arrived), prefetch k tile kt + 3, multiply kt.
// CHECK: nvgpu.device_async_create_group
// CHECK: nvgpu.device_async_create_group
// CHECK: %[[G:.+]] = nvgpu.device_async_create_group
// CHECK: scf.for %{{.+}} = %c0 to %c3 step %c1 iter_args(
// CHECK: nvgpu.device_async_wait %[[G]] {numGroups = 2 : i32}
// CHECK-NEXT: gpu.barrier
// CHECK: nvgpu.device_async_create_group
// CHECK: nvgpu.ldmatrix %[[A]][{{.+}}] {numTiles = 4 : i32, transpose = false} : memref<4x64x40xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// CHECK: nvgpu.ldmatrix %[[B]][{{.+}}] {numTiles = 4 : i32, transpose = false} : memref<4x64x40xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// CHECK: nvgpu.mma.sync({{.+}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// CHECK: vector.fma %[[X:.+]], %[[X]], %{{.+}} : vector<8xf32>
// CHECK: scf.yield
// CHECK: gpu.shuffle  xor
// CHECK: memref.store %{{.+}}, %[[SQ]][%{{.+}}] : memref<64xf32, #gpu.address_space<workgroup>>
// CHECK: memref.store %{{.+}} : memref<1x48xf32>
// CHECK: gpu.barrier
// CHECK: %[[S:.+]] = memref.load %[[SQ]][%{{.+}}] : memref<64xf32, #gpu.address_space<workgroup>>
// CHECK: vector.extract %{{.+}}[0, 0] : f32 from vector<2x2xf32>
// CHECK: arith.divf %[[S]], %{{.+}} : f32
// CHECK: math.sqrt
// CHECK: memref.store %{{.+}} : memref<1x48x64xf16>
// CHECK: gpu.return
func.func @prefill(%x: memref<1x48x96xf16>, %w: memref<64x96xf16>,
                   %y: memref<1x48x64xf16>, %arena: memref<65536xi8> {kiln.arena}) attributes {kiln.entry = "prefill"} {
  %zero = arith.constant 0.0 : f32
  %k = arith.constant 96.0 : f32
  %eps = arith.constant 1.0e-05 : f32
  %one = arith.constant 1.0 : f32
  %sq = memref.alloc() : memref<1x48xf32>
  linalg.fill ins(%zero : f32) outs(%sq : memref<1x48xf32>)
  linalg.generic {indexing_maps = [#row, #rows], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x : memref<1x48x96xf16>) outs(%sq : memref<1x48xf32>) attrs = {kiln.region = {op = "tfm.linear", step = "sum_squares"}} {
  ^bb0(%a: f16, %s: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.mulf %0, %0 : f32
    %2 = arith.addf %s, %1 : f32
    linalg.yield %2 : f32
  }
  %acc = memref.alloc() : memref<1x48x64xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x48x64xf32>)
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x48x96xf16>, memref<64x96xf16>) outs(%acc : memref<1x48x64xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#row, #rows, #row], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%acc, %sq : memref<1x48x64xf32>, memref<1x48xf32>) outs(%y : memref<1x48x64xf16>) {
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

// SwiGLU in the epilogue (kiln-fuse-swiglu: weights [gate; up], 2 x 64
// rows; at most 64 rows: the 64 x 128 tiling, 4 warps side by side): each
// warp's 32 staged weight rows interleave 16 gate rows (q < 16) and the 16
// up rows 64 further, so every thread holds gate and up of its output
// columns; the block writes all 64 output columns.
// SELECT-LABEL: func.func @swiglu
// SELECT: kiln.kernel = "matmul_mma"
// SELECT: kiln.kernel = "fused"
// CHECK-LABEL: func.func @swiglu
// CHECK: gpu.launch_func @kiln_kernels::@swiglu_k0_matmul_mma_64x128x32s3 blocks in (%c1, %c1, %c1) threads in (%c128, %c1, %c1)
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.func @swiglu_k0_matmul_mma_64x128x32s3
// CHECK: %[[GATE:.+]] = arith.cmpi ult, %{{.+}}, %c16 : index
// CHECK: %[[OFF:.+]] = arith.select %[[GATE]], %c0, %c64 : index
// CHECK: scf.for
// CHECK: nvgpu.mma.sync
// CHECK: scf.yield
// CHECK: math.exp
// CHECK: memref.store %{{.+}} : memref<1x32x64xf16>
// CHECK: gpu.return
func.func @swiglu(%x: memref<1x32x64xf16>, %w: memref<128x64xf16>,
                  %y: memref<1x32x64xf16>, %arena: memref<65536xi8> {kiln.arena}) attributes {kiln.entry = "prefill"} {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %acc = memref.alloc() : memref<1x32x128xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x32x128xf32>)
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x32x64xf16>, memref<128x64xf16>) outs(%acc : memref<1x32x128xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  %gate = memref.subview %acc[0, 0, 0] [1, 32, 64] [1, 1, 1] : memref<1x32x128xf32> to memref<1x32x64xf32, strided<[4096, 128, 1]>>
  %up = memref.subview %acc[0, 0, 64] [1, 32, 64] [1, 1, 1] : memref<1x32x128xf32> to memref<1x32x64xf32, strided<[4096, 128, 1], offset: 64>>
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%gate, %up : memref<1x32x64xf32, strided<[4096, 128, 1]>>, memref<1x32x64xf32, strided<[4096, 128, 1], offset: 64>>) outs(%y : memref<1x32x64xf16>) {
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

// Not for: K not a multiple of 32, mixed operand types, 4 rows or fewer
// (gemv_nk's).
// SELECT-LABEL: func.func @not_mma
// SELECT-NOT: matmul_mma
// SELECT: return
func.func @not_mma(%x: memref<1x32x48xf16>, %w: memref<64x48xf16>, %x2: memref<1x32x64xf32>,
                   %w2: memref<64x64xf16>, %x3: memref<1x4x64xf16>,
                   %acc: memref<1x32x64xf32>, %acc3: memref<1x4x64xf32>) attributes {kiln.entry = "prefill"} {
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x32x48xf16>, memref<64x48xf16>) outs(%acc : memref<1x32x64xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x2, %w2 : memref<1x32x64xf32>, memref<64x64xf16>) outs(%acc : memref<1x32x64xf32>) {
  ^bb0(%a: f32, %b: f16, %c: f32):
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %a, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x3, %w2 : memref<1x4x64xf16>, memref<64x64xf16>) outs(%acc3 : memref<1x4x64xf32>) {
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

// Batched decode: 8 sequences of one token each are more rows than a GEMV
// keeps in registers (kMaxRowsBeforeMma = 4), so the tensor cores take them;
// 4 sequences stay gemv_nk's.
// SELECT-LABEL: func.func @batched_decode
// SELECT: ins(%{{.+}}, %{{.+}} : memref<8x1x64xf16>, memref<64x64xf16>) {{.*}}kiln.kernel = "matmul_mma"
// SELECT: ins(%{{.+}}, %{{.+}} : memref<4x1x64xf16>, memref<64x64xf16>) {{.*}}kiln.kernel = "gemv_nk"
func.func @batched_decode(%x8: memref<8x1x64xf16>, %x4: memref<4x1x64xf16>, %w: memref<64x64xf16>,
                          %acc8: memref<8x1x64xf32>, %acc4: memref<4x1x64xf32>) attributes {kiln.entry = "decode"} {
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x8, %w : memref<8x1x64xf16>, memref<64x64xf16>) outs(%acc8 : memref<8x1x64xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x4, %w : memref<4x1x64xf16>, memref<64x64xf16>) outs(%acc4 : memref<4x1x64xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  return
}
