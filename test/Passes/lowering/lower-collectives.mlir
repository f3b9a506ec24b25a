// RUN: kiln-opt %s --split-input-file --kiln-lower-tfm-to-linalg | FileCheck %s --check-prefix=LINALG
// RUN: kiln-opt %s --split-input-file --kiln-lower-tfm-to-linalg --one-shot-bufferize | FileCheck %s --check-prefix=BUF

// A tensor-parallel rank's collectives through the lowering: both stay
// tfm ops on tensors, and bufferize. all_reduce sums in place; all_gather
// gathers along a new leading axis (the ranks' buffers one after another,
// what the collectives write), then moves the ranks next to the gathered
// axis.

// A decode step's logits (one row): the gathered buffer is already in the
// result's order, only reshapes follow.
// LINALG-LABEL: func.func @decode_logits
// LINALG: tfm.all_gather %{{.+}} {axis = 2 : i64, ranks = 2 : i64} : tensor<1x1x8xf32> -> tensor<1x1x16xf32>
// BUF-LABEL: func.func @decode_logits
// BUF: %[[E:.+]] = memref.expand_shape %{{.+}} {{\[\[}}0, 1], [2], [3]] output_shape [1, 1, 1, 8] : memref<1x1x8xf32> into memref<1x1x1x8xf32>
// BUF: %[[G:.+]] = memref.alloc() {{.+}} : memref<2x1x1x8xf32>
// BUF: tfm.all_gather %[[E]] into %[[G]] {axis = 0 : i64, ranks = 2 : i64} : memref<1x1x1x8xf32>, memref<2x1x1x8xf32>
// BUF: %[[C:.+]] = memref.collapse_shape %[[G]] {{\[\[}}0, 1, 2, 3]] : memref<2x1x1x8xf32> into memref<16xf32>
// BUF: %[[R:.+]] = memref.expand_shape %[[C]] {{\[\[}}0, 1, 2]] output_shape [1, 1, 16] : memref<16xf32> into memref<1x1x16xf32>
// BUF-NOT: linalg.transpose
// BUF: bufferization.to_tensor %[[R]]
func.func @decode_logits(%x: tensor<1x1x8xf32>) -> tensor<1x1x16xf32> {
  %y = tfm.add %x, %x : tensor<1x1x8xf32>
  %g = tfm.all_gather %y {ranks = 2 : i64, axis = 2 : i64} : tensor<1x1x8xf32> -> tensor<1x1x16xf32>
  return %g : tensor<1x1x16xf32>
}

// -----

// Three rows: gathered [2, 1, 3, 8], transposed to [1, 3, 2, 8] and joined
// to [1, 3, 16]: row r is rank 0's row r, then rank 1's. A strided operand
// (a function argument here) is copied to a contiguous buffer first.
// BUF-LABEL: func.func @prefill_logits
// BUF: %[[IN:.+]] = memref.alloc() {{.+}} : memref<1x3x8xf32>
// BUF: linalg.copy ins(%{{.+}} : memref<1x3x8xf32, strided<{{.+}}>>) outs(%[[IN]] : memref<1x3x8xf32>)
// BUF: %[[E:.+]] = memref.expand_shape %[[IN]]
// BUF: %[[G:.+]] = memref.alloc() {{.+}} : memref<2x1x3x8xf32>
// BUF: tfm.all_gather %[[E]] into %[[G]] {axis = 0 : i64, ranks = 2 : i64}
// BUF: %[[T:.+]] = memref.alloc() {{.+}} : memref<1x3x2x8xf32>
// BUF: linalg.transpose ins(%[[G]] : memref<2x1x3x8xf32>) outs(%[[T]] : memref<1x3x2x8xf32>) permutation = [1, 2, 0, 3]
// BUF: memref.collapse_shape %[[T]] {{\[\[}}0], [1], [2, 3]] : memref<1x3x2x8xf32> into memref<1x3x16xf32>
func.func @prefill_logits(%x: tensor<1x3x8xf32>) -> tensor<1x3x16xf32> {
  %g = tfm.all_gather %x {ranks = 2 : i64, axis = 2 : i64} : tensor<1x3x8xf32> -> tensor<1x3x16xf32>
  return %g : tensor<1x3x16xf32>
}

// -----

// The all-reduce sums in place: the buffer of the add it reads is its
// result, no copy...
// LINALG-LABEL: func.func @reduce
// LINALG: %[[S:.+]] = tfm.all_reduce %{{.+}} {ranks = 2 : i64} : tensor<1x1x4xf16>
// BUF-LABEL: func.func @reduce(
// BUF: %[[Y:.+]] = memref.alloc() {{.+}} : memref<1x1x4xf16>
// BUF: linalg.generic {{.+}} outs(%[[Y]] : memref<1x1x4xf16>)
// BUF-NOT: memref.alloc
// BUF-NOT: memref.copy
// BUF: tfm.all_reduce %[[Y]] {ranks = 2 : i64} : memref<1x1x4xf16>
// BUF: bufferization.to_tensor %[[Y]]
func.func @reduce(%x: tensor<1x1x4xf16>) -> tensor<1x1x4xf16> {
  %y = tfm.add %x, %x : tensor<1x1x4xf16>
  %s = tfm.all_reduce %y {ranks = 2 : i64} : tensor<1x1x4xf16>
  return %s : tensor<1x1x4xf16>
}

// -----

// ... unless the operand is read after it: then the sum goes to a copy.
// BUF-LABEL: func.func @reduce_read_after(
// BUF: %[[Y:.+]] = memref.alloc() {{.+}} : memref<1x1x4xf16>
// BUF: %[[C:.+]] = memref.alloc() {{.+}} : memref<1x1x4xf16>
// BUF: memref.copy %[[Y]], %[[C]]
// BUF: tfm.all_reduce %[[C]] {ranks = 2 : i64} : memref<1x1x4xf16>
// BUF: linalg.generic {{.+}} ins(%[[C]], %[[Y]] : memref<1x1x4xf16>, memref<1x1x4xf16>)
func.func @reduce_read_after(%x: tensor<1x1x4xf16>) -> tensor<1x1x4xf16> {
  %y = tfm.add %x, %x : tensor<1x1x4xf16>
  %s = tfm.all_reduce %y {ranks = 2 : i64} : tensor<1x1x4xf16>
  %z = tfm.add %s, %y : tensor<1x1x4xf16>
  return %z : tensor<1x1x4xf16>
}

// -----

// A rank's slice of a vocabulary-split table (4 rows from %first): an id
// reads row id - first when it lies in the slice, and zeros otherwise.
// LINALG-LABEL: func.func @embedding_slice
// LINALG: %[[F:.+]] = tensor.extract %{{.+}}[%c0] : tensor<1xi64>
// LINALG: %[[FIRST:.+]] = arith.index_cast %[[F]] : i64 to index
// LINALG: linalg.generic
// LINALG: %[[ROW:.+]] = arith.index_cast %{{.+}} : i64 to index
// LINALG: %[[LOCAL:.+]] = arith.subi %[[ROW]], %[[FIRST]] : index
// LINALG: %[[GE:.+]] = arith.cmpi sge, %[[LOCAL]], %c0 : index
// LINALG: %[[LT:.+]] = arith.cmpi slt, %[[LOCAL]], %c4 : index
// LINALG: %[[IN:.+]] = arith.andi %[[GE]], %[[LT]] : i1
// LINALG: %[[SAFE:.+]] = arith.select %[[IN]], %[[LOCAL]], %c0 : index
// LINALG: %[[V:.+]] = tensor.extract %{{.+}}[%[[SAFE]], %{{.+}}] : tensor<4x2xf32>
// LINALG: %[[OUT:.+]] = arith.select %[[IN]], %[[V]], %cst : f32
// LINALG: linalg.yield %[[OUT]] : f32
func.func @embedding_slice(%table: tensor<4x2xf32>, %ids: tensor<1x3xi64>, %first: tensor<1xi64>) -> tensor<1x3x2xf32> {
  %e = tfm.embedding %table[%ids] rows from %first : tensor<4x2xf32>, tensor<1x3xi64>, tensor<1xi64> -> tensor<1x3x2xf32>
  return %e : tensor<1x3x2xf32>
}
