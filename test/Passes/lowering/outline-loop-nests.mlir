// RUN: kiln-opt %s --kiln-outline-loop-nests | FileCheck %s
// RUN: kiln-opt %s --kiln-cpu-to-llvm | FileCheck %s --check-prefix=LLVM

// Each top-level loop nest of an entry point becomes a call of a private
// function; the views and constants it uses are cloned into that function,
// so only the entry point's buffer arguments cross the call. Ops without
// regions (the view of the second nest) stay where they are.

// CHECK-LABEL: func.func @prefill(
// CHECK-SAME: %[[W:.+]]: memref<64xi8>, %[[A:.+]]: memref<32xi8>)
// CHECK-NOT: scf.for
// CHECK: call @prefill_nest0(%[[A]]) : (memref<32xi8>) -> ()
// CHECK-NOT: scf.for
// CHECK: call @prefill_nest1(%[[W]], %[[A]]) : (memref<64xi8>, memref<32xi8>) -> ()
// CHECK-NEXT: return

// CHECK: func.func private @prefill_nest0(%[[A0:.+]]: memref<32xi8>) attributes {kiln.no_inline}
// CHECK: %[[V:.+]] = memref.view %[[A0]]
// CHECK: scf.for
// CHECK: memref.store %{{.+}}, %[[V]]
// CHECK: return

// CHECK: func.func private @prefill_nest1(%[[W1:.+]]: memref<64xi8>, %[[A1:.+]]: memref<32xi8>) attributes {kiln.no_inline}
// CHECK-DAG: memref.view %[[W1]]
// CHECK-DAG: memref.view %[[A1]]
// CHECK: scf.for
// CHECK: arith.mulf
// CHECK: return

// The marker becomes an inlining barrier and internal linkage once the
// module is LLVM dialect (in emitCpuSharedObject); here it has crossed
// func-to-llvm as a discardable attribute.
// LLVM: llvm.func @prefill(
// LLVM: llvm.call @prefill_nest0
// LLVM: llvm.call @prefill_nest1
// LLVM: llvm.func @prefill_nest0({{.*}} attributes {kiln.no_inline
// LLVM: llvm.func @prefill_nest1({{.*}} attributes {kiln.no_inline

func.func @prefill(%w: memref<64xi8>, %arena: memref<32xi8>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c16 = arith.constant 16 : index
  %zero = arith.constant 0.0 : f32
  %v = memref.view %arena[%c0][] : memref<32xi8> to memref<4xf32>
  scf.for %i = %c0 to %c4 step %c1 {
    memref.store %zero, %v[%i] : memref<4xf32>
  }
  %x = memref.view %w[%c16][] : memref<64xi8> to memref<4xf32>
  scf.for %i = %c0 to %c4 step %c1 {
    %a = memref.load %x[%i] : memref<4xf32>
    %b = memref.load %v[%i] : memref<4xf32>
    %p = arith.mulf %a, %b : f32
    memref.store %p, %v[%i] : memref<4xf32>
  }
  return
}
