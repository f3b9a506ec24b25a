// RUN: kiln-opt %s --split-input-file --pass-pipeline="builtin.module(func.func(kiln-narrow-logits))" | FileCheck %s

// A tensor-parallel rank's @prefill returns the last row of the gathered
// logits: the slice moves above the gather (it keeps the whole vocabulary
// axis) and on into the op that makes the logits, so each rank computes one
// row of its vocabulary slice and gathers only that row.
// CHECK-LABEL: func.func @prefill
// CHECK: %[[A:.+]] = tensor.extract_slice %{{.+}}[0, 3, 0] [1, 1, 8] [1, 1, 1] : tensor<1x4x8xf32> to tensor<1x1x8xf32>
// CHECK: %[[L:.+]] = linalg.generic {{.+}} ins(%[[A]], %{{.+}} : tensor<1x1x8xf32>, tensor<1x1x8xf32>)
// CHECK: %[[G:.+]] = tfm.all_gather %[[L]] {axis = 2 : i64, ranks = 2 : i64} : tensor<1x1x8xf32> -> tensor<1x1x16xf32>
// CHECK: return %[[G]]
#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @prefill(%a: tensor<1x4x8xf32>, %b: tensor<1x4x8xf32>) -> tensor<1x1x16xf32> attributes {kiln.entry = "prefill"} {
  %e = tensor.empty() : tensor<1x4x8xf32>
  %l = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%a, %b : tensor<1x4x8xf32>, tensor<1x4x8xf32>) outs(%e : tensor<1x4x8xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %s = arith.addf %x, %y : f32
    linalg.yield %s : f32
  } -> tensor<1x4x8xf32>
  %g = tfm.all_gather %l {ranks = 2 : i64, axis = 2 : i64} : tensor<1x4x8xf32> -> tensor<1x4x16xf32>
  %last = tensor.extract_slice %g[0, 3, 0] [1, 1, 16] [1, 1, 1] : tensor<1x4x16xf32> to tensor<1x1x16xf32>
  return %last : tensor<1x1x16xf32>
}

// -----

// A slice of part of the gathered axis is not one rank's: it stays below.
// CHECK-LABEL: func.func @part_of_vocabulary
// CHECK: %[[G:.+]] = tfm.all_gather %{{.+}} : tensor<1x4x8xf32> -> tensor<1x4x16xf32>
// CHECK: tensor.extract_slice %[[G]][0, 3, 4] [1, 1, 8] [1, 1, 1]
func.func @part_of_vocabulary(%l: tensor<1x4x8xf32>) -> tensor<1x1x8xf32> attributes {kiln.entry = "prefill"} {
  %g = tfm.all_gather %l {ranks = 2 : i64, axis = 2 : i64} : tensor<1x4x8xf32> -> tensor<1x4x16xf32>
  %s = tensor.extract_slice %g[0, 3, 4] [1, 1, 8] [1, 1, 1] : tensor<1x4x16xf32> to tensor<1x1x8xf32>
  return %s : tensor<1x1x8xf32>
}
