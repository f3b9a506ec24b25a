// RUN: kiln-opt %s --pass-pipeline='builtin.module(gpu.module(kiln-lower-subgroup-reduce))' | FileCheck %s

// Whole-warp reductions become a butterfly of 5 xor shuffles; a clustered
// one (16 lanes, stride 2: the lanes of a warp that hold the same GEMV
// columns) starts at offset 2 and stops at 16.

// CHECK-LABEL: gpu.func @k
// CHECK-NOT: gpu.subgroup_reduce
// CHECK: %[[S2:.+]], %{{.+}} = gpu.shuffle xor %[[E:.+]], %c2_i32, %c32_i32 : f32
// CHECK: %[[A2:.+]] = arith.addf %[[E]], %[[S2]]
// CHECK: gpu.shuffle xor %[[A2]], %c4_i32, %c32_i32
// CHECK: gpu.shuffle xor %{{.+}}, %c8_i32, %c32_i32
// CHECK: gpu.shuffle xor %{{.+}}, %c16_i32, %c32_i32
// CHECK-NOT: gpu.shuffle xor %{{.+}}, %c1_i32
// CHECK: vector.broadcast
// CHECK: %[[M1:.+]], %{{.+}} = gpu.shuffle xor %[[B:.+]], %c1_i32, %c32_i32 : f32
// CHECK: arith.maximumf %[[B]], %[[M1]]
// CHECK-COUNT-4: gpu.shuffle xor
// CHECK-NOT: gpu.shuffle
// CHECK: gpu.return
gpu.module @m {
  gpu.func @k(%a: vector<8xf32>, %b: f32, %o: memref<8xf32>, %p: memref<1xf32>) kernel {
    %e = vector.extract %a[0] : f32 from vector<8xf32>
    %r0 = gpu.subgroup_reduce add %e uniform cluster(size = 16, stride = 2) : (f32) -> f32
    %r = vector.broadcast %r0 : f32 to vector<8xf32>
    %s = gpu.subgroup_reduce maximumf %b uniform : (f32) -> f32
    %c0 = arith.constant 0 : index
    vector.store %r, %o[%c0] : memref<8xf32>, vector<8xf32>
    memref.store %s, %p[%c0] : memref<1xf32>
    gpu.return
  }
}
