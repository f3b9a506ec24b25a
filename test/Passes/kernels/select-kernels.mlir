// RUN: kiln-opt %s --kiln-select-kernels --split-input-file | FileCheck %s
// RUN: kiln-opt %s --kiln-select-kernels=disable=gemv_kn --split-input-file | FileCheck %s --check-prefix=DISABLED
// RUN: not kiln-opt %s --kiln-select-kernels=disable=nope --split-input-file 2>&1 | FileCheck %s --check-prefix=UNKNOWN

// UNKNOWN: error: --kiln-select-kernels: no kernel recipe named 'nope'

#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w_in_out = affine_map<(d0, d1, d2, d3) -> (d3, d2)>
#w_out_in = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// Decode-sized projections get the GEMV kernels: [in, out] weights gemv_kn,
// [out, in] weights (tied logits) gemv_nk, whatever the element types.
// CHECK-LABEL: func.func @decode
// CHECK: linalg.generic
// CHECK-SAME: kiln.kernel = "gemv_kn"
// CHECK: linalg.generic
// CHECK-SAME: kiln.kernel = "gemv_nk"
// DISABLED-LABEL: func.func @decode
// DISABLED-NOT: gemv_kn
// DISABLED: kiln.kernel = "gemv_nk"
func.func @decode(%x: memref<1x1x64xf16>, %w: memref<64x32xf16>, %e: memref<32x64xf16>, %acc: memref<1x1x32xf32>) attributes {kiln.entry = "decode"} {
  linalg.generic {indexing_maps = [#x, #w_in_out, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x1x64xf16>, memref<64x32xf16>) outs(%acc : memref<1x1x32xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#x, #w_out_in, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %e : memref<1x1x64xf16>, memref<32x64xf16>) outs(%acc : memref<1x1x32xf32>) {
  ^bb0(%a: f16, %b: f16, %c: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %2, %c : f32
    linalg.yield %3 : f32
  }
  return
}

// -----

#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w_in_out = affine_map<(d0, d1, d2, d3) -> (d3, d2)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// Left to the generic mapping: more than 8 rows (a prefill chunk), a column
// count that 16-byte loads do not tile (f32: 8 columns per block), a body
// that is not a product, and functions that are not entry points.
// CHECK-LABEL: func.func @prefill
// CHECK-NOT: kiln.kernel
// CHECK: return
func.func @prefill(%x: memref<1x16x64xf32>, %w: memref<64x32xf32>, %acc: memref<1x16x32xf32>,
                   %x1: memref<1x1x64xf32>, %w12: memref<64x12xf32>, %acc12: memref<1x1x12xf32>,
                   %wn: memref<64x32xf32>, %accn: memref<1x1x32xf32>) attributes {kiln.entry = "prefill"} {
  linalg.generic {indexing_maps = [#x, #w_in_out, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x16x64xf32>, memref<64x32xf32>) outs(%acc : memref<1x16x32xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %2 = arith.mulf %a, %b : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#x, #w_in_out, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x1, %w12 : memref<1x1x64xf32>, memref<64x12xf32>) outs(%acc12 : memref<1x1x12xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %2 = arith.mulf %a, %b : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  linalg.generic {indexing_maps = [#x, #w_in_out, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x1, %wn : memref<1x1x64xf32>, memref<64x32xf32>) outs(%accn : memref<1x1x32xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %2 = arith.mulf %a, %b : f32
    %3 = arith.maximumf %c, %2 : f32
    linalg.yield %3 : f32
  }
  return
}

// CHECK-LABEL: func.func @helper
// CHECK-NOT: kiln.kernel
func.func @helper(%x: memref<1x1x64xf32>, %w: memref<64x32xf32>, %acc: memref<1x1x32xf32>) {
  linalg.generic {indexing_maps = [#x, #w_in_out, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<1x1x64xf32>, memref<64x32xf32>) outs(%acc : memref<1x1x32xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %2 = arith.mulf %a, %b : f32
    %3 = arith.addf %c, %2 : f32
    linalg.yield %3 : f32
  }
  return
}

// -----

#row = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#red = affine_map<(d0, d1, d2) -> (d0, d1)>

// tfm.argmax's reduction gets a block per row.
// CHECK-LABEL: func.func @argmax
// CHECK: linalg.generic
// CHECK-SAME: kiln.kernel = "argmax_rows"
func.func @argmax(%logits: memref<1x4x1000xf32>, %best: memref<1x4xf32>, %index: memref<1x4xi64>) attributes {kiln.entry = "decode"} {
  linalg.generic {indexing_maps = [#row, #red, #red], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%logits : memref<1x4x1000xf32>) outs(%best, %index : memref<1x4xf32>, memref<1x4xi64>) {
  ^bb0(%x: f32, %b: f32, %i: i64):
    %k = linalg.index 2 : index
    %k64 = arith.index_cast %k : index to i64
    %gt = arith.cmpf ogt, %x, %b : f32
    %v = arith.select %gt, %x, %b : f32
    %j = arith.select %gt, %k64, %i : i64
    linalg.yield %v, %j : f32, i64
  }
  return
}
