// RUN: kiln-opt %s --kiln-lower-tfm-to-linalg --split-input-file | FileCheck %s --implicit-check-not='= tfm.'

// Paged tfm.kv_append (pool of 6 blocks of 4 positions, 3 blocks a row):
// position p of row b goes to block table[b, p / 4], slot p % 4. Positions
// reach max_blocks * block_size = 12; a block id outside [0, 6) is not
// written (rows = 0), like a padding position.

// CHECK-LABEL: func.func @kv_append_paged
// CHECK-SAME: (%[[V:.+]]: tensor<2x1x8xf32>, %[[POOL:.+]]: tensor<6x2x4x4xf32>, %[[POS:.+]]: tensor<2x1xi64>, %[[T:.+]]: tensor<2x3xi32>)
// CHECK-DAG: %[[C0:.+]] = arith.constant 0 : index
// CHECK-DAG: %[[C1:.+]] = arith.constant 1 : index
// CHECK-DAG: %[[C4:.+]] = arith.constant 4 : index
// CHECK-DAG: %[[BLOCKS:.+]] = arith.constant 6 : i32
// CHECK-DAG: %[[MAX:.+]] = arith.constant 12 : i64
// CHECK: scf.forall (%[[B:.+]], %[[S:.+]], %[[G:.+]], %[[D:.+]]) in (2, 1, 2, 4) shared_outs(%[[OUT:.+]] = %[[POOL]])
// CHECK: %[[P:.+]] = tensor.extract %[[POS]][%[[B]], %[[S]]]
// CHECK: arith.cmpi slt, %[[P]], %[[MAX]] : i64
// CHECK: %[[PV:.+]] = arith.select %{{.+}}, %{{.+}}, %[[C0]] : index
// CHECK: %[[J:.+]] = arith.divui %[[PV]], %[[C4]] : index
// CHECK: %[[BLOCK:.+]] = tensor.extract %[[T]][%[[B]], %[[J]]] : tensor<2x3xi32>
// CHECK-DAG: %[[BELOW:.+]] = arith.cmpi slt, %[[BLOCK]], %[[BLOCKS]] : i32
// CHECK-DAG: %[[NONNEG:.+]] = arith.cmpi sge, %[[BLOCK]], %{{.+}} : i32
// CHECK: %[[INPOOL:.+]] = arith.andi %[[NONNEG]], %[[BELOW]] : i1
// CHECK: %[[VALID:.+]] = arith.andi %{{.+}}, %[[INPOOL]] : i1
// CHECK: %[[BI:.+]] = arith.index_cast %[[BLOCK]] : i32 to index
// CHECK: %[[ROW:.+]] = arith.select %[[VALID]], %[[BI]], %[[C0]] : index
// CHECK: %[[SLOT:.+]] = arith.remui %[[PV]], %[[C4]] : index
// CHECK: %[[ROWS:.+]] = arith.select %[[VALID]], %[[C1]], %[[C0]] : index
// CHECK: %[[AT:.+]] = arith.select %[[VALID]], %[[SLOT]], %[[C0]] : index
// CHECK: tensor.parallel_insert_slice %{{.+}} into %[[OUT]][%[[ROW]], %[[G]], %[[AT]], %[[D]]] [1, 1, %[[ROWS]], 1]
func.func @kv_append_paged(%v: tensor<2x1x8xf32>, %pool: tensor<6x2x4x4xf32>, %pos: tensor<2x1xi64>, %table: tensor<2x3xi32>) -> tensor<6x2x4x4xf32> {
  %0 = tfm.kv_append %v into %pool at %pos pages %table : tensor<2x1x8xf32>, tensor<6x2x4x4xf32>, tensor<2x1xi64>, tensor<2x3xi32>
  return %0 : tensor<6x2x4x4xf32>
}

// -----

// Paged tfm.attention: K and V are first gathered through the table into
// each row's [kv_heads, 12, head_dim] view (slot t of row b is slot t % 4
// of block table[b, t / 4]); the seven steps then read them as an unpaged
// cache of 12 slots.

// CHECK-LABEL: func.func @attention_paged
// CHECK-SAME: (%[[Q:.+]]: tensor<2x1x16xf32>, %[[KC:.+]]: tensor<6x2x4x4xf32>, %[[VC:.+]]: tensor<6x2x4x4xf32>, %[[POS:.+]]: tensor<2x1xi64>, %[[T:.+]]: tensor<2x3xi32>)
// CHECK: %[[K:.+]] = linalg.generic {{.+}} outs(%{{.+}} : tensor<2x2x12x4xf32>)
// CHECK: %[[B:.+]] = linalg.index 0 : index
// CHECK: %[[H:.+]] = linalg.index 1 : index
// CHECK: %[[TI:.+]] = linalg.index 2 : index
// CHECK: %[[D:.+]] = linalg.index 3 : index
// CHECK: %[[J:.+]] = arith.divui %[[TI]], %{{.+}} : index
// CHECK: %[[BLOCK:.+]] = tensor.extract %[[T]][%[[B]], %[[J]]] : tensor<2x3xi32>
// CHECK: %[[ROW:.+]] = arith.select
// CHECK: %[[SLOT:.+]] = arith.remui %[[TI]], %{{.+}} : index
// CHECK: tensor.extract %[[KC]][%[[ROW]], %[[H]], %[[SLOT]], %[[D]]] : tensor<6x2x4x4xf32>
// CHECK: %[[VV:.+]] = linalg.generic {{.+}} outs(%{{.+}} : tensor<2x2x12x4xf32>)
// CHECK: tensor.extract %[[VC]]
// CHECK: linalg.generic {{.+}} ins(%{{.+}}, %[[K]] : tensor<2x1x4x4xf32>, tensor<2x2x12x4xf32>) outs(%{{.+}} : tensor<2x4x1x12xf32>) attrs = {kiln.region = {{{.+}}step = 0 : i64}}
// CHECK: linalg.generic {{.+}} ins(%{{.+}}, %[[VV]] : tensor<2x4x1x12xf32>, tensor<2x2x12x4xf32>) {{.+}} attrs = {kiln.region = {{{.+}}step = 5 : i64}}
func.func @attention_paged(%q: tensor<2x1x16xf32>, %kc: tensor<6x2x4x4xf32>, %vc: tensor<6x2x4x4xf32>, %pos: tensor<2x1xi64>, %table: tensor<2x3xi32>) -> tensor<2x1x16xf32> {
  %0 = tfm.attention %q, %kc, %vc, %pos pages %table {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : tensor<2x1x16xf32>, tensor<6x2x4x4xf32>, tensor<2x1xi64>, tensor<2x3xi32>
  return %0 : tensor<2x1x16xf32>
}
