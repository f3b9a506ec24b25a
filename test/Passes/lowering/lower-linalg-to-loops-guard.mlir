// RUN: kiln-opt %s --split-input-file --kiln-lower-linalg-to-loops | FileCheck %s

// A loop bound of select(c, n, 0) (tfm.kv_append's write of `valid ? 1 : 0`
// rows) becomes `scf.if c` around the loop to the constant n, so that the
// GPU mapping sees a static loop under a uniform condition.

// CHECK-LABEL: func.func @guarded
// CHECK-SAME: (%[[SRC:.+]]: memref<2x1x8xf16>, %[[DST:.+]]: memref<2x16x8xf16>, %[[C:.+]]: i1, %[[AT:.+]]: index)
// CHECK-DAG: %[[C1:.+]] = arith.constant 1 : index
// CHECK: scf.if %[[C]] {
// CHECK-NEXT: scf.parallel (%{{.+}}, %{{.+}}, %{{.+}}) = (%{{.+}}, %{{.+}}, %{{.+}}) to (%{{.+}}, %[[C1]], %{{.+}})
// CHECK: memref.store
// CHECK: }
// CHECK-NEXT: }
// CHECK-NEXT: return
func.func @guarded(%src: memref<2x1x8xf16>, %dst: memref<2x16x8xf16>, %c: i1, %at: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %rows = arith.select %c, %c1, %c0 : index
  %s = memref.subview %src[0, 0, 0] [2, %rows, 8] [1, 1, 1] : memref<2x1x8xf16> to memref<2x?x8xf16, strided<[8, 8, 1]>>
  %d = memref.subview %dst[0, %at, 0] [2, %rows, 8] [1, 1, 1] : memref<2x16x8xf16> to memref<2x?x8xf16, strided<[128, 8, 1], offset: ?>>
  linalg.copy ins(%s : memref<2x?x8xf16, strided<[8, 8, 1]>>) outs(%d : memref<2x?x8xf16, strided<[128, 8, 1], offset: ?>>)
  return
}

// -----

// Not when the other value is not 0: the bound stays as it is.

// CHECK-LABEL: func.func @unguarded
// CHECK-NOT: scf.if
// CHECK: %[[N:.+]] = arith.select
// CHECK: scf.parallel (%{{.+}}, %{{.+}}, %{{.+}}) = (%{{.+}}, %{{.+}}, %{{.+}}) to (%{{.+}}, %[[N]], %{{.+}})
func.func @unguarded(%src: memref<2x2x8xf16>, %dst: memref<2x16x8xf16>, %c: i1, %at: index) {
  %c2 = arith.constant 2 : index
  %c1 = arith.constant 1 : index
  %rows = arith.select %c, %c2, %c1 : index
  %s = memref.subview %src[0, 0, 0] [2, %rows, 8] [1, 1, 1] : memref<2x2x8xf16> to memref<2x?x8xf16, strided<[16, 8, 1]>>
  %d = memref.subview %dst[0, %at, 0] [2, %rows, 8] [1, 1, 1] : memref<2x16x8xf16> to memref<2x?x8xf16, strided<[128, 8, 1], offset: ?>>
  linalg.copy ins(%s : memref<2x?x8xf16, strided<[16, 8, 1]>>) outs(%d : memref<2x?x8xf16, strided<[128, 8, 1], offset: ?>>)
  return
}
