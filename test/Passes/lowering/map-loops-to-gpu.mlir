// RUN: kiln-opt %s --kiln-map-loops-to-gpu --split-input-file | FileCheck %s

// A parallel loop nest becomes one kernel taking the four runtime buffers; its
// 2x64 iteration space is flattened onto 128-thread blocks, the last dimension
// fastest, and the views it reads are recomputed inside the kernel. The entry
// point keeps only the launch.

// CHECK: module attributes {gpu.container_module}
// CHECK-LABEL: func.func @decode(
// CHECK-SAME: %[[W:[^:]+]]: memref<1024xi8>, %[[KV:[^:]+]]: memref<64xi8>, %[[A:[^:]+]]: memref<512xi8> {kiln.arena}, %[[IO:[^:]+]]: memref<64xi8>)
// CHECK-DAG: %[[C1:.+]] = arith.constant 1 : index
// CHECK-DAG: %[[C128:.+]] = arith.constant 128 : index
// CHECK: gpu.launch_func @kiln_kernels::@decode_k0_parallel blocks in (%[[C1]], %[[C1]], %[[C1]]) threads in (%[[C128]], %[[C1]], %[[C1]]) args(%[[W]] : memref<1024xi8>, %[[KV]] : memref<64xi8>, %[[A]] : memref<512xi8>, %[[IO]] : memref<64xi8>)
// CHECK-NOT: memref.view
// CHECK: return
// CHECK: gpu.module @kiln_kernels
// CHECK: gpu.func @decode_k0_parallel(%[[KW:[^:]+]]: memref<1024xi8>, %{{.+}}: memref<64xi8>, %[[KA:[^:]+]]: memref<512xi8>, %{{.+}}: memref<64xi8>) kernel
// CHECK-DAG: %[[SRC:.+]] = memref.view %[[KW]]
// CHECK-DAG: %[[DST:.+]] = memref.view %[[KA]]
// CHECK: %[[BID:.+]] = gpu.block_id x
// CHECK: %[[TID:.+]] = gpu.thread_id x
// CHECK: %[[GID:.+]] = arith.addi %{{.+}}, %[[TID]]
// CHECK: scf.if %{{.+}} {
// CHECK: %[[J:.+]] = arith.remui %[[GID]], %{{.+}}
// CHECK: %[[R:.+]] = arith.divui %[[GID]], %{{.+}}
// CHECK: %[[I:.+]] = arith.remui %[[R]], %{{.+}}
// CHECK: %[[V:.+]] = memref.load %[[SRC]][%[[I]], %[[J]]]
// CHECK: memref.store %[[V]], %[[DST]][%[[I]], %[[J]]]
// CHECK: gpu.return
func.func @decode(%w: memref<1024xi8>, %kv: memref<64xi8>, %arena: memref<512xi8> {kiln.arena}, %io: memref<64xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c64 = arith.constant 64 : index
  %src = memref.view %w[%c0][] : memref<1024xi8> to memref<2x64xf32>
  %dst = memref.view %arena[%c0][] : memref<512xi8> to memref<2x64xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%c2, %c64) step (%c1, %c1) {
    %v = memref.load %src[%i, %j] : memref<2x64xf32>
    memref.store %v, %dst[%i, %j] : memref<2x64xf32>
    scf.reduce
  }
  return
}

// -----

// A 2-D scf.parallel (the KV-cache row writes, from kv_append's scf.forall)
// is flattened onto one block; a sequential loop runs on one thread. A top-level read that decides what a
// kernel does (a position) moves into that kernel.

// CHECK-LABEL: func.func @prefill(
// CHECK: gpu.launch_func @kiln_kernels::@prefill_k0_parallel blocks in (%[[C1:.+]], %[[C1]], %[[C1]]) threads in (%[[C32:.+]], %[[C1]], %[[C1]])
// CHECK: gpu.launch_func @kiln_kernels::@prefill_k1_serial blocks in (%[[O:.+]], %[[O]], %[[O]]) threads in (%[[O]], %[[O]], %[[O]])
// CHECK-NOT: memref.load
// CHECK: gpu.func @prefill_k0_parallel
// CHECK: gpu.thread_id x
// CHECK: scf.if
// CHECK-NOT: scf.for
// CHECK: gpu.return
// CHECK: gpu.func @prefill_k1_serial
// CHECK: %[[P:.+]] = memref.load
// CHECK: scf.for
// CHECK: gpu.return
func.func @prefill(%w: memref<64xi8>, %kv: memref<64xi8>, %arena: memref<64xi8> {kiln.arena}, %io: memref<64xi8>) attributes {kiln.entry = "prefill"} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c2 = arith.constant 2 : index
  %f = arith.constant 1.0 : f32
  %buf = memref.view %kv[%c0][] : memref<64xi8> to memref<2x4xf32>
  %pos = memref.view %io[%c0][] : memref<64xi8> to memref<2xindex>
  scf.parallel (%b, %s) = (%c0, %c0) to (%c2, %c4) step (%c1, %c1) {
    memref.store %f, %buf[%b, %s] : memref<2x4xf32>
  }
  %p = memref.load %pos[%c0] : memref<2xindex>
  scf.for %t = %c0 to %p step %c1 {
    memref.store %f, %buf[%c0, %t] : memref<2x4xf32>
  }
  return
}

// -----

// Functions that are not entry points are left alone.
// CHECK-LABEL: func.func @helper
// CHECK: scf.parallel
// CHECK-NOT: gpu.launch_func
func.func @helper(%m: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%c4) step (%c1) {
    memref.store %f, %m[%i] : memref<4xf32>
    scf.reduce
  }
  return
}
