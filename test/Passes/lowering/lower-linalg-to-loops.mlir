// RUN: kiln-opt %s --kiln-lower-linalg-to-loops | FileCheck %s
// RUN: kiln-opt %s --kiln-lower-linalg-to-loops=parallel=false | FileCheck %s --check-prefix=SEQ

// Linalg ops on buffers become loop nests, except those --kiln-select-kernels
// gave a hand-built kernel: they stay whole for --kiln-map-loops-to-gpu.

// CHECK-LABEL: func.func @f
// The fill became a parallel loop (nothing of it is left before the loop);
// the kernel-tagged generic stays whole, and nothing follows it but return.
// CHECK-NOT: linalg.fill
// CHECK: scf.parallel
// CHECK: memref.store %{{.+}}, %{{.+}} : memref<1x1x32xf32>
// CHECK: linalg.generic
// CHECK-SAME: kiln.kernel = "gemv_kn"
// CHECK-NOT: scf.parallel
// CHECK: return
// SEQ-LABEL: func.func @f
// SEQ-NOT: scf.parallel
// SEQ: scf.for
// SEQ: linalg.generic
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d3, d2)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @f(%x: memref<1x1x64xf32>, %w: memref<64x32xf32>, %acc: memref<1x1x32xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x1x32xf32>)
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x1x64xf32>, memref<64x32xf32>) outs(%acc : memref<1x1x32xf32>) attrs = {kiln.kernel = "gemv_kn"} {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %2 = arith.mulf %a, %b : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  return
}
