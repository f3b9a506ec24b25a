// RUN: kiln-opt %s --split-input-file --kiln-select-kernels | FileCheck %s --check-prefix=SELECT
// RUN: kiln-opt %s --split-input-file --kiln-select-kernels=epilogues=false | FileCheck %s --check-prefix=OFF
// RUN: kiln-opt %s --split-input-file --kiln-select-kernels --kiln-lower-linalg-to-loops --kiln-plan-memory --canonicalize --kiln-map-loops-to-gpu --cse | FileCheck %s

#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>

// A projection's f32 accumulator, converted to f16 and added to the residual
// by the next op: the GEMV computes that in its final store. One launch, no
// read of the accumulator; the consumer is tagged, not lowered to loops.
// SELECT-LABEL: func.func @decode
// SELECT: linalg.generic {{.*}}kiln.kernel = "gemv_nk"
// SELECT: linalg.generic {{.*}}kiln.kernel = "fused"
// OFF-LABEL: func.func @decode
// OFF-NOT: fused

// CHECK-LABEL: func.func @decode
// CHECK: gpu.launch_func @kiln_kernels::@decode_k0_gemv_nk
// CHECK-NOT: gpu.launch_func
// CHECK: return
// CHECK: gpu.func @decode_k0_gemv_nk
// CHECK: gpu.subgroup_reduce add
// CHECK: %[[ACC:.+]] = arith.addf %{{.+}}, %{{.+}} : f32
// CHECK-NEXT: %[[R:.+]] = memref.load %{{.+}} : memref<1x1x32xf16>
// CHECK-NEXT: %[[H:.+]] = arith.truncf %[[ACC]] : f32 to f16
// CHECK-NEXT: %[[RE:.+]] = arith.extf %[[R]] : f16 to f32
// CHECK-NEXT: %[[HE:.+]] = arith.extf %[[H]] : f16 to f32
// CHECK-NEXT: %[[S:.+]] = arith.addf %[[RE]], %[[HE]] : f32
// CHECK-NEXT: %[[SH:.+]] = arith.truncf %[[S]] : f32 to f16
// CHECK-NEXT: memref.store %[[SH]], %{{.+}} : memref<1x1x32xf16>
// CHECK-NOT: memref.store
// CHECK: gpu.return
func.func @decode(%x: memref<1x1x64xf16>, %w: memref<32x64xf16>, %res: memref<1x1x32xf16>,
                  %y: memref<1x1x32xf16>, %arena: memref<4096xi8> {kiln.arena}) attributes {kiln.entry = "decode"} {
  %zero = arith.constant 0.0 : f32
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
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%res, %acc : memref<1x1x32xf16>, memref<1x1x32xf32>) outs(%y : memref<1x1x32xf16>) {
  ^bb0(%r: f16, %a: f32, %o: f16):
    %0 = arith.truncf %a : f32 to f16
    %1 = arith.extf %r : f16 to f32
    %2 = arith.extf %0 : f16 to f32
    %3 = arith.addf %1, %2 : f32
    %4 = arith.truncf %3 : f32 to f16
    linalg.yield %4 : f16
  }
  return
}

// -----

#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#t = affine_map<(d0, d1, d2) -> (d0, d2, d1)>

// Not fused: an accumulator that a later op reads again (@two_readers); a
// consumer that reads it transposed (@not_identity); an accumulator that is
// an argument, not a buffer of the projection's own (@not_alloc).
// SELECT-LABEL: func.func @two_readers
// SELECT-NOT: "fused"
// SELECT-LABEL: func.func @not_identity
// SELECT-NOT: "fused"
// SELECT-LABEL: func.func @not_alloc
// SELECT-NOT: "fused"
// The consumers keep launches of their own.
// CHECK-LABEL: func.func @two_readers
// CHECK: gpu.launch_func @kiln_kernels::@two_readers_k0_gemv_nk
// CHECK: gpu.launch_func @kiln_kernels::@two_readers_k1_parallel
// CHECK-LABEL: func.func @not_identity
// CHECK: gpu.launch_func @kiln_kernels::@not_identity_k0_gemv_nk
// CHECK: gpu.launch_func @kiln_kernels::@not_identity_k1_parallel
// CHECK-LABEL: func.func @not_alloc
// CHECK: gpu.launch_func @kiln_kernels::@not_alloc_k0_gemv_nk
// CHECK: gpu.launch_func @kiln_kernels::@not_alloc_k1_parallel
func.func @two_readers(%x: memref<1x1x64xf16>, %w: memref<32x64xf16>, %y: memref<1x1x32xf16>,
                       %z: memref<1x1x32xf32>, %arena: memref<4096xi8> {kiln.arena}) attributes {kiln.entry = "decode"} {
  %acc = memref.alloc() : memref<1x1x32xf32>
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x1x64xf16>, memref<32x64xf16>) outs(%acc : memref<1x1x32xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%acc : memref<1x1x32xf32>) outs(%y : memref<1x1x32xf16>) {
  ^bb0(%a: f32, %o: f16):
    %0 = arith.truncf %a : f32 to f16
    linalg.yield %0 : f16
  }
  memref.copy %acc, %z : memref<1x1x32xf32> to memref<1x1x32xf32>
  return
}
func.func @not_identity(%x: memref<1x1x64xf16>, %w: memref<32x64xf16>, %y: memref<1x32x1xf16>,
                        %arena: memref<4096xi8> {kiln.arena}) attributes {kiln.entry = "decode"} {
  %acc = memref.alloc() : memref<1x1x32xf32>
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x1x64xf16>, memref<32x64xf16>) outs(%acc : memref<1x1x32xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#t, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%acc : memref<1x1x32xf32>) outs(%y : memref<1x32x1xf16>) {
  ^bb0(%a: f32, %o: f16):
    %0 = arith.truncf %a : f32 to f16
    linalg.yield %0 : f16
  }
  return
}
func.func @not_alloc(%x: memref<1x1x64xf16>, %w: memref<32x64xf16>, %acc: memref<1x1x32xf32>,
                     %y: memref<1x1x32xf16>, %arena: memref<4096xi8> {kiln.arena}) attributes {kiln.entry = "decode"} {
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x1x64xf16>, memref<32x64xf16>) outs(%acc : memref<1x1x32xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%acc : memref<1x1x32xf32>) outs(%y : memref<1x1x32xf16>) {
  ^bb0(%a: f32, %o: f16):
    %0 = arith.truncf %a : f32 to f16
    linalg.yield %0 : f16
  }
  return
}

// -----

#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d3, d2)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>

// gemv_kn ([in, out] weights) takes epilogues too, and an epilogue body may
// use a value from the function (a constant): the kernel gets its own copy.
// SELECT-LABEL: func.func @captures
// SELECT: kiln.kernel = "gemv_kn"
// SELECT: kiln.kernel = "fused"
// CHECK-LABEL: func.func @captures
// CHECK: gpu.launch_func @kiln_kernels::@captures_k0_gemv_kn
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.func @captures_k0_gemv_kn
// CHECK-DAG: %[[HALF:.+]] = arith.constant 5.000000e-01 : f32
// CHECK: gpu.barrier
// CHECK: %[[SCALED:.+]] = arith.mulf %{{.+}}, %[[HALF]] : f32
// CHECK: memref.store %[[SCALED]], %{{.+}} : memref<1x1x32xf32>
func.func @captures(%x: memref<1x1x64xf16>, %w: memref<64x32xf16>, %y: memref<1x1x32xf32>,
                    %arena: memref<4096xi8> {kiln.arena}) attributes {kiln.entry = "decode"} {
  %zero = arith.constant 0.0 : f32
  %half = arith.constant 0.5 : f32
  %acc = memref.alloc() : memref<1x1x32xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x1x32xf32>)
  linalg.generic {indexing_maps = [#x, #w, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x1x64xf16>, memref<64x32xf16>) outs(%acc : memref<1x1x32xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%acc : memref<1x1x32xf32>) outs(%y : memref<1x1x32xf32>) {
  ^bb0(%a: f32, %o: f32):
    %0 = arith.mulf %a, %half : f32
    linalg.yield %0 : f32
  }
  return
}
