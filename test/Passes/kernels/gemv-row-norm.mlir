// RUN: kiln-opt %s --split-input-file --kiln-select-kernels | FileCheck %s --check-prefix=SELECT
// RUN: kiln-opt %s --split-input-file --kiln-select-kernels --kiln-lower-linalg-to-loops --kiln-plan-memory --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s

#row = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#rows = affine_map<(d0, d1, d2) -> (d0, d1)>
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// What kiln-lower-tfm-to-linalg makes of a tfm.linear with rms_norm eps
// (kiln-fuse-norm-projection), bufferized: the row's sum of squares
// ("sum_squares"), the projection, and the finish that scales by the inverse
// RMS. gemv_nk takes all three: the sum and its fill are members (no
// launch), each lane adds x * x of the x it loads anyway, the warp of column
// 0 stores the sum, and the epilogue reads it from registers.
// SELECT-LABEL: func.func @decode
// SELECT: linalg.fill {{.*}}kiln.kernel = "fused"
// SELECT: linalg.generic {{.*}}kiln.kernel = "fused"
// SELECT: linalg.generic {{.*}}kiln.kernel = "gemv_nk"
// SELECT: linalg.generic {{.*}}kiln.kernel = "fused"

// CHECK-LABEL: func.func @decode
// CHECK: gpu.launch_func @kiln_kernels::@decode_k0_gemv_nk
// CHECK-NOT: gpu.launch_func
// CHECK: return
// CHECK: gpu.func @decode_k0_gemv_nk
// CHECK: scf.for
// CHECK: vector.fma %[[X:.+]], %[[X]], %{{.+}} : vector<8xf32>
// CHECK: scf.yield
// CHECK: gpu.subgroup_reduce add
// CHECK: %[[SQ:.+]] = gpu.subgroup_reduce add
// CHECK: memref.store %[[SQ]], %{{.+}} : memref<1x1xf32>
// CHECK: %[[MEAN:.+]] = arith.divf %[[SQ]], %{{.+}} : f32
// CHECK: math.sqrt
// CHECK: memref.store %{{.+}} : memref<1x1x32xf16>
// CHECK: gpu.return
func.func @decode(%x: memref<1x1x64xf16>, %w: memref<32x64xf16>,
                  %y: memref<1x1x32xf16>, %arena: memref<4096xi8> {kiln.arena}) attributes {kiln.entry = "decode"} {
  %zero = arith.constant 0.0 : f32
  %k = arith.constant 64.0 : f32
  %eps = arith.constant 1.0e-05 : f32
  %one = arith.constant 1.0 : f32
  %sq = memref.alloc() : memref<1x1xf32>
  linalg.fill ins(%zero : f32) outs(%sq : memref<1x1xf32>)
  linalg.generic {indexing_maps = [#row, #rows], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x : memref<1x1x64xf16>) outs(%sq : memref<1x1xf32>) attrs = {kiln.region = {op = "tfm.linear", step = "sum_squares"}} {
  ^bb0(%a: f16, %s: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.mulf %0, %0 : f32
    %2 = arith.addf %s, %1 : f32
    linalg.yield %2 : f32
  }
  %acc = memref.alloc() : memref<1x1x32xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x1x32xf32>)
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x1x64xf16>, memref<32x64xf16>) outs(%acc : memref<1x1x32xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#row, #rows, #row], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%acc, %sq : memref<1x1x32xf32>, memref<1x1xf32>) outs(%y : memref<1x1x32xf16>) {
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

#row = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#rows = affine_map<(d0, d1, d2) -> (d0, d1)>
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// Not a member when something else reads the sum of squares: it keeps its
// own launch, the GEMV's epilogue loads it (a [B, S] operand read through
// the projection (d0, d1, d2) -> (d0, d1)).
// SELECT-LABEL: func.func @other_reader
// SELECT: linalg.generic {{.*}}kiln.kernel = "gemv_nk"
// SELECT: linalg.generic {{.*}}kiln.kernel = "fused"
// SELECT-NOT: "fused"
// CHECK-LABEL: func.func @other_reader
// CHECK: gpu.launch_func @kiln_kernels::@other_reader_k0_reduce_warp
// CHECK: gpu.launch_func @kiln_kernels::@other_reader_k1_gemv_nk
// CHECK: gpu.func @other_reader_k1_gemv_nk
// CHECK-NOT: vector.fma %[[X:.+]], %[[X]]
// CHECK: memref.load %{{.+}} : memref<1x1xf32>
// CHECK: math.sqrt
func.func @other_reader(%x: memref<1x1x64xf16>, %w: memref<32x64xf16>,
                        %y: memref<1x1x32xf16>, %z: memref<1x1xf32>, %arena: memref<4096xi8> {kiln.arena}) attributes {kiln.entry = "decode"} {
  %zero = arith.constant 0.0 : f32
  %sq = memref.alloc() : memref<1x1xf32>
  linalg.fill ins(%zero : f32) outs(%sq : memref<1x1xf32>)
  linalg.generic {indexing_maps = [#row, #rows], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x : memref<1x1x64xf16>) outs(%sq : memref<1x1xf32>) attrs = {kiln.region = {op = "tfm.linear", step = "sum_squares"}} {
  ^bb0(%a: f16, %s: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.mulf %0, %0 : f32
    %2 = arith.addf %s, %1 : f32
    linalg.yield %2 : f32
  }
  %acc = memref.alloc() : memref<1x1x32xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x1x32xf32>)
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x1x64xf16>, memref<32x64xf16>) outs(%acc : memref<1x1x32xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#row, #rows, #row], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%acc, %sq : memref<1x1x32xf32>, memref<1x1xf32>) outs(%y : memref<1x1x32xf16>) {
  ^bb0(%a: f32, %s: f32, %o: f16):
    %2 = math.sqrt %s : f32
    %4 = arith.mulf %a, %2 : f32
    %5 = arith.truncf %4 : f32 to f16
    linalg.yield %5 : f16
  }
  memref.copy %sq, %z : memref<1x1xf32> to memref<1x1xf32>
  return
}
