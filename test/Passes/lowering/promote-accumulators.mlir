// RUN: kiln-opt %s --split-input-file --kiln-promote-accumulators | FileCheck %s

// A projection's reduction: acc, x and w are views of the arena and the
// weights at disjoint byte ranges, so acc[i] is carried through the k loop
// and its add becomes reassociable (the product contractable).

// CHECK-LABEL: func.func @projection(
// CHECK: scf.for %[[I:.+]] = %{{.+}} to %{{.+}} step %{{.+}} {
// CHECK:   %[[INIT:.+]] = memref.load %[[ACC:.+]][%[[I]]] : memref<4xf32>
// CHECK:   %[[R:.+]] = scf.for %{{.+}} = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[A:.+]] = %[[INIT]]) -> (f32) {
// CHECK-NOT: memref.load %[[ACC]][
// CHECK:     %[[P:.+]] = arith.mulf %{{.+}}, %{{.+}} fastmath<contract> : f32
// CHECK:     %[[S:.+]] = arith.addf %[[A]], %[[P]] fastmath<reassoc,contract> : f32
// CHECK-NOT: memref.store
// CHECK:     scf.yield %[[S]] : f32
// CHECK:   }
// CHECK:   memref.store %[[R]], %[[ACC]][%[[I]]] : memref<4xf32>
func.func @projection(%weights: memref<512xi8>, %arena: memref<128xi8>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c32 = arith.constant 32 : index
  %c64 = arith.constant 64 : index
  %acc = memref.view %arena[%c0][] : memref<128xi8> to memref<4xf32>
  %x = memref.view %arena[%c64][] : memref<128xi8> to memref<32xf16>
  %w = memref.view %weights[%c0][] : memref<512xi8> to memref<4x32xf32>
  scf.for %i = %c0 to %c4 step %c1 {
    scf.for %k = %c0 to %c32 step %c1 {
      %a = memref.load %acc[%i] : memref<4xf32>
      %xv = memref.load %x[%k] : memref<32xf16>
      %xf = arith.extf %xv : f16 to f32
      %wv = memref.load %w[%i, %k] : memref<4x32xf32>
      %p = arith.mulf %xf, %wv : f32
      %s = arith.addf %a, %p : f32
      memref.store %s, %acc[%i] : memref<4xf32>
    }
  }
  return
}

// -----

// x overlaps acc's bytes (the arena at offset 8): nothing is carried.

// CHECK-LABEL: func.func @overlapping(
// CHECK-NOT: iter_args
// CHECK: memref.load
// CHECK: memref.store
func.func @overlapping(%arena: memref<128xi8>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  %acc = memref.view %arena[%c0][] : memref<128xi8> to memref<4xf32>
  %x = memref.view %arena[%c8][] : memref<128xi8> to memref<16xf32>
  %i = arith.constant 1 : index
  scf.for %k = %c0 to %c16 step %c1 {
    %a = memref.load %acc[%i] : memref<4xf32>
    %xv = memref.load %x[%k] : memref<16xf32>
    %s = arith.addf %a, %xv : f32
    memref.store %s, %acc[%i] : memref<4xf32>
  }
  return
}

// -----

// The stored element moves with the loop (a store at %k): not invariant.

// CHECK-LABEL: func.func @not_invariant(
// CHECK-NOT: iter_args
func.func @not_invariant(%arena: memref<128xi8>, %in: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %out = memref.view %arena[%c0][] : memref<128xi8> to memref<16xf32>
  scf.for %k = %c0 to %c16 step %c1 {
    %a = memref.load %out[%k] : memref<16xf32>
    %xv = memref.load %in[%k] : memref<16xf32>
    %s = arith.addf %a, %xv : f32
    memref.store %s, %out[%k] : memref<16xf32>
  }
  return
}

// -----

// A second, aliasing store in the loop (the same element written twice)
// keeps the loop as it is.

// CHECK-LABEL: func.func @second_store(
// CHECK-NOT: iter_args
func.func @second_store(%arena: memref<128xi8>, %in: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %cst = arith.constant 0.0 : f32
  %acc = memref.view %arena[%c0][] : memref<128xi8> to memref<4xf32>
  %i = arith.constant 2 : index
  scf.for %k = %c0 to %c16 step %c1 {
    %a = memref.load %acc[%i] : memref<4xf32>
    %xv = memref.load %in[%k] : memref<16xf32>
    %s = arith.addf %a, %xv : f32
    memref.store %s, %acc[%i] : memref<4xf32>
    memref.store %cst, %acc[%c0] : memref<4xf32>
  }
  return
}
