// RUN: kiln-opt %s --split-input-file --kiln-select-kernels | FileCheck %s --check-prefix=SELECT
// RUN: kiln-opt %s --split-input-file --kiln-select-kernels --kiln-lower-linalg-to-loops --kiln-plan-memory --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s
// RUN: env KILN_TUNE_GEMV_NK=1024 kiln-opt %s --split-input-file --kiln-select-kernels --kiln-lower-linalg-to-loops --kiln-plan-memory --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s --check-prefix=OLD

#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// What kiln-lower-tfm-to-linalg makes of a tfm.linear with swiglu,
// bufferized: the 32-column projection, then silu(acc[.., n]) * acc[.., n +
// 16] over the two halves (subviews of the accumulator). gemv_nk takes the
// activation as its epilogue: each warp computes columns n and n + 16 (two
// weight rows), and the output has 16 columns: 16 / 8 warps = 2 blocks.
// SELECT-LABEL: func.func @decode
// SELECT: linalg.generic {{.*}}kiln.kernel = "gemv_nk"
// SELECT: linalg.generic {{.*}}kiln.kernel = "fused"

// CHECK-LABEL: func.func @decode
// CHECK: gpu.launch_func @kiln_kernels::@decode_k0_gemv_nk blocks in (%c2, %c1, %c1)
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.func @decode_k0_gemv_nk
// CHECK: %[[N:.+]] = arith.muli %{{.+}}, %c1 : index
// CHECK: %[[UP:.+]] = arith.addi %[[N]], %c16 : index
// CHECK: scf.for
// CHECK-DAG: vector.load %{{.+}}[%[[N]], %{{.+}}] {{.*}} : memref<32x64xf16>, vector<8xf16>
// CHECK-DAG: vector.load %{{.+}}[%[[UP]], %{{.+}}] {{.*}} : memref<32x64xf16>, vector<8xf16>
// CHECK: scf.yield
// CHECK: math.exp
// CHECK: %[[Y:.+]] = arith.truncf %{{.+}} : f32 to f16
// CHECK: memref.store %[[Y]], %{{.+}}[%c0, %c0, %[[N]]] : memref<1x1x16xf16>
// CHECK-NOT: memref.store
// CHECK: gpu.return
func.func @decode(%x: memref<1x1x64xf16>, %w: memref<32x64xf16>,
                  %y: memref<1x1x16xf16>, %arena: memref<4096xi8> {kiln.arena}) attributes {kiln.entry = "decode"} {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
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
  %gate = memref.subview %acc[0, 0, 0] [1, 1, 16] [1, 1, 1] : memref<1x1x32xf32> to memref<1x1x16xf32, strided<[32, 32, 1]>>
  %up = memref.subview %acc[0, 0, 16] [1, 1, 16] [1, 1, 1] : memref<1x1x32xf32> to memref<1x1x16xf32, strided<[32, 32, 1], offset: 16>>
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%gate, %up : memref<1x1x16xf32, strided<[32, 32, 1]>>, memref<1x1x16xf32, strided<[32, 32, 1], offset: 16>>) outs(%y : memref<1x1x16xf16>) {
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

#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// gemv_kn ([in, out] weights, its columns a block's) takes no column ranges:
// the activation keeps its own launch.
// SELECT-LABEL: func.func @in_out
// SELECT: kiln.kernel = "gemv_kn"
// SELECT-NOT: "fused"
// CHECK-LABEL: func.func @in_out
// CHECK: gpu.launch_func @kiln_kernels::@in_out_k0_gemv_kn
// CHECK: gpu.launch_func @kiln_kernels::@in_out_k1_parallel
func.func @in_out(%x: memref<1x1x64xf16>, %w: memref<64x32xf16>,
                  %y: memref<1x1x16xf16>, %arena: memref<4096xi8> {kiln.arena}) attributes {kiln.entry = "decode"} {
  %zero = arith.constant 0.0 : f32
  %acc = memref.alloc() : memref<1x1x32xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x1x32xf32>)
  linalg.generic {indexing_maps = [#x, affine_map<(d0, d1, d2, d3) -> (d3, d2)>, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x1x64xf16>, memref<64x32xf16>) outs(%acc : memref<1x1x32xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  %gate = memref.subview %acc[0, 0, 0] [1, 1, 16] [1, 1, 1] : memref<1x1x32xf32> to memref<1x1x16xf32, strided<[32, 32, 1]>>
  %up = memref.subview %acc[0, 0, 16] [1, 1, 16] [1, 1, 1] : memref<1x1x32xf32> to memref<1x1x16xf32, strided<[32, 32, 1], offset: 16>>
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%gate, %up : memref<1x1x16xf32, strided<[32, 32, 1]>>, memref<1x1x16xf32, strided<[32, 32, 1], offset: 16>>) outs(%y : memref<1x1x16xf16>) {
  ^bb0(%g: f32, %u: f32, %o: f16):
    %5 = arith.mulf %g, %u : f32
    %6 = arith.truncf %5 : f32 to f16
    linalg.yield %6 : f16
  }
  return
}

// -----

#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// The Llama-3.2-1B shape's gate/up (8192 outputs from 2048): 8192 / 4
// columns still fill 256 blocks of 8 warps (GemvNK::columnsPerWarp), so a
// warp takes four output columns, split-K gives each of 4 warps a quarter
// of the rows (1024 blocks), and a warp reads the 8 weight rows n .. n + 3
// and n + 8192 .. n + 8195, one 16-byte step of each an iteration (8 x 16
// bytes a lane in flight): the first step peeled, the second in the loop.
// With KILN_TUNE_GEMV_NK=1024 (the rule before: 1024 blocks before split-K)
// a warp takes one column (2 rows) over the whole row, 4 steps an iteration.
// SELECT-LABEL: func.func @gate_up_1b
// SELECT: kiln.kernel = "gemv_nk"
// SELECT: kiln.kernel = "fused"
// CHECK-LABEL: func.func @gate_up_1b
// CHECK: gpu.launch_func @kiln_kernels::@gate_up_1b_k0_gemv_nk blocks in (%c1024, %c1, %c1) threads in (%c256, %c1, %c1)
// CHECK: gpu.func @gate_up_1b_k0_gemv_nk
// CHECK-COUNT-8: vector.load %{{.+}} : memref<16384x2048xf16>, vector<8xf16>
// CHECK-NOT: vector.load %{{.+}} : memref<16384x2048xf16>
// CHECK: scf.for {{.*}} step %c256
// CHECK-COUNT-8: vector.load %{{.+}} : memref<16384x2048xf16>, vector<8xf16>
// CHECK-NOT: vector.load %{{.+}} : memref<16384x2048xf16>
// CHECK: scf.yield
// OLD-LABEL: func.func @gate_up_1b
// OLD: gpu.launch_func @kiln_kernels::@gate_up_1b_k0_gemv_nk blocks in (%c1024, %c1, %c1)
// OLD: gpu.func @gate_up_1b_k0_gemv_nk
// OLD-COUNT-8: vector.load %{{.+}} : memref<16384x2048xf16>, vector<8xf16>
// OLD-NOT: vector.load %{{.+}} : memref<16384x2048xf16>
// OLD: scf.for {{.*}} step %c1024
// OLD-COUNT-8: vector.load %{{.+}} : memref<16384x2048xf16>, vector<8xf16>
// OLD-NOT: vector.load %{{.+}} : memref<16384x2048xf16>
// OLD: scf.yield
func.func @gate_up_1b(%x: memref<1x1x2048xf16>, %w: memref<16384x2048xf16>,
                      %y: memref<1x1x8192xf16>, %arena: memref<131072xi8> {kiln.arena}) attributes {kiln.entry = "decode"} {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %acc = memref.alloc() : memref<1x1x16384xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x1x16384xf32>)
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x1x2048xf16>, memref<16384x2048xf16>) outs(%acc : memref<1x1x16384xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  %gate = memref.subview %acc[0, 0, 0] [1, 1, 8192] [1, 1, 1] : memref<1x1x16384xf32> to memref<1x1x8192xf32, strided<[16384, 16384, 1]>>
  %up = memref.subview %acc[0, 0, 8192] [1, 1, 8192] [1, 1, 1] : memref<1x1x16384xf32> to memref<1x1x8192xf32, strided<[16384, 16384, 1], offset: 8192>>
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%gate, %up : memref<1x1x8192xf32, strided<[16384, 16384, 1]>>, memref<1x1x8192xf32, strided<[16384, 16384, 1], offset: 8192>>) outs(%y : memref<1x1x8192xf16>) {
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
