// RUN: kiln-opt %s --kiln-plan-memory --split-input-file --allow-unregistered-dialect | FileCheck %s
// RUN: kiln-opt %s --kiln-plan-memory=alignment=256 --split-input-file \
// RUN:   --allow-unregistered-dialect | FileCheck %s --check-prefix=A256

// Lifetimes [1, 3] and [4, 6] are disjoint: both buffers sit at offset 0, the
// allocs become views of the arena and the arena gets its final size.

// CHECK-LABEL: func.func @reuse
// CHECK-SAME: (%[[ARENA:.+]]: memref<64xi8> {kiln.arena}, %{{.+}}: memref<16xf32>)
// CHECK-SAME: kiln.arena_size = 64 : i64
// CHECK-SAME: kiln.memory_plan = [#kiln.buffer<offset = 0, size = 64, start = 1, end = 3>, #kiln.buffer<offset = 0, size = 64, start = 4, end = 6>]
// CHECK-NOT: memref.alloc
// CHECK: %[[OFF_A:.+]] = arith.constant 0 : index
// CHECK: %[[A:.+]] = memref.view %[[ARENA]][%[[OFF_A]]][] : memref<64xi8> to memref<16xf32>
// CHECK: linalg.fill ins(%{{.+}} : f32) outs(%[[A]] : memref<16xf32>)
// CHECK: %[[OFF_B:.+]] = arith.constant 0 : index
// CHECK: %[[B:.+]] = memref.view %[[ARENA]][%[[OFF_B]]][] : memref<64xi8> to memref<16xf32>
// CHECK: linalg.fill ins(%{{.+}} : f32) outs(%[[B]] : memref<16xf32>)
func.func @reuse(%arena: memref<0xi8> {kiln.arena}, %out: memref<16xf32>) {
  %cst = arith.constant 1.0 : f32
  %a = memref.alloc() : memref<16xf32>
  linalg.fill ins(%cst : f32) outs(%a : memref<16xf32>)
  memref.copy %a, %out : memref<16xf32> to memref<16xf32>
  %b = memref.alloc() : memref<16xf32>
  linalg.fill ins(%cst : f32) outs(%b : memref<16xf32>)
  memref.copy %b, %out : memref<16xf32> to memref<16xf32>
  return
}

// -----

// %a is read while %b is written: their bytes must be disjoint.

// CHECK-LABEL: func.func @overlap
// CHECK-SAME: (%[[ARENA:.+]]: memref<128xi8> {kiln.arena}
// CHECK-SAME: kiln.arena_size = 128 : i64
// CHECK-SAME: kiln.memory_plan = [#kiln.buffer<offset = 0, size = 64, start = 1, end = 4>, #kiln.buffer<offset = 64, size = 64, start = 2, end = 5>]
// CHECK: %[[OFF_A:.+]] = arith.constant 0 : index
// CHECK: memref.view %[[ARENA]][%[[OFF_A]]][] : memref<128xi8> to memref<16xf32>
// CHECK: %[[OFF_B:.+]] = arith.constant 64 : index
// CHECK: memref.view %[[ARENA]][%[[OFF_B]]][] : memref<128xi8> to memref<16xf32>
func.func @overlap(%arena: memref<0xi8> {kiln.arena}, %out: memref<16xf32>) {
  %cst = arith.constant 1.0 : f32
  %a = memref.alloc() : memref<16xf32>
  %b = memref.alloc() : memref<16xf32>
  linalg.fill ins(%cst : f32) outs(%a : memref<16xf32>)
  memref.copy %a, %b : memref<16xf32> to memref<16xf32>
  memref.copy %b, %out : memref<16xf32> to memref<16xf32>
  return
}

// -----

// Sizes round up to the alignment (10 -> 64, 100 -> 128; 256 for both with
// alignment=256); the larger buffer is placed first, at offset 0.

// CHECK-LABEL: func.func @alignment
// CHECK-SAME: memref<192xi8> {kiln.arena}
// CHECK-SAME: kiln.arena_size = 192 : i64
// CHECK-SAME: kiln.memory_plan = [#kiln.buffer<offset = 128, size = 64, start = 0, end = 2>, #kiln.buffer<offset = 0, size = 128, start = 1, end = 2>]
// CHECK: arith.constant 128 : index
// CHECK: memref.view {{.+}} : memref<192xi8> to memref<10xi8>
// CHECK: arith.constant 0 : index
// CHECK: memref.view {{.+}} : memref<192xi8> to memref<25xf32>

// A256-LABEL: func.func @alignment
// A256-SAME: memref<512xi8> {kiln.arena}
// A256-SAME: kiln.arena_size = 512 : i64
// A256-SAME: kiln.memory_plan = [#kiln.buffer<offset = 0, size = 256, start = 0, end = 2>, #kiln.buffer<offset = 256, size = 256, start = 1, end = 2>]
func.func @alignment(%arena: memref<?xi8> {kiln.arena}) {
  %a = memref.alloc() : memref<10xi8>
  %b = memref.alloc() : memref<25xf32>
  "test.use"(%a, %b) : (memref<10xi8>, memref<25xf32>) -> ()
  return
}

// -----

// Element sizes: i1 takes a byte (64 -> 64), index eight (72 -> 128).

// CHECK-LABEL: func.func @element_types
// CHECK-SAME: kiln.memory_plan = [#kiln.buffer<offset = 128, size = 64, start = 0, end = 2>, #kiln.buffer<offset = 0, size = 128, start = 1, end = 2>]
func.func @element_types(%arena: memref<0xi8> {kiln.arena}) {
  %a = memref.alloc() : memref<64xi1>
  %b = memref.alloc() : memref<9xindex>
  "test.use"(%a, %b) : (memref<64xi1>, memref<9xindex>) -> ()
  return
}

// -----

// %acc, allocated before the loop and read in it, stays live across the whole
// loop, so %tmp (allocated in the loop) does not reuse its bytes. Deallocs go.

// CHECK-LABEL: func.func @live_across_loop
// CHECK-SAME: (%[[ARENA:.+]]: memref<128xi8> {kiln.arena}
// CHECK-SAME: kiln.memory_plan = [#kiln.buffer<offset = 0, size = 64, start = 3, end = 5>, #kiln.buffer<offset = 64, size = 64, start = 4, end = 4>]
// CHECK: arith.constant 4 : index
// CHECK-NEXT: %[[OFF_ACC:.+]] = arith.constant 0 : index
// CHECK-NEXT: %[[ACC:.+]] = memref.view %[[ARENA]][%[[OFF_ACC]]][] : memref<128xi8> to memref<4xf32>
// CHECK: scf.for
// CHECK:   %[[OFF_TMP:.+]] = arith.constant 64 : index
// CHECK:   %[[TMP:.+]] = memref.view %[[ARENA]][%[[OFF_TMP]]][] : memref<128xi8> to memref<4xf32>
// CHECK:   memref.load %[[ACC]]
// CHECK:   memref.store %{{.+}}, %[[TMP]]
// CHECK-NOT: memref.dealloc
// CHECK: memref.copy %[[ACC]]
// CHECK-NOT: memref.dealloc
// CHECK: return
func.func @live_across_loop(%arena: memref<0xi8> {kiln.arena}, %out: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %acc = memref.alloc() : memref<4xf32>
  scf.for %i = %c0 to %c4 step %c1 {
    %tmp = memref.alloc() : memref<4xf32>
    %v = memref.load %acc[%i] : memref<4xf32>
    memref.store %v, %tmp[%i] : memref<4xf32>
    memref.dealloc %tmp : memref<4xf32>
  }
  memref.copy %acc, %out : memref<4xf32> to memref<4xf32>
  memref.dealloc %acc : memref<4xf32>
  return
}

// -----

// Buffers of one loop nest are all live for the whole nest; a later loop
// reuses their memory.

// CHECK-LABEL: func.func @nested_loops
// CHECK-SAME: kiln.arena_size = 128 : i64
// CHECK-SAME: kiln.memory_plan = [#kiln.buffer<offset = 0, size = 64, start = 3, end = 3>, #kiln.buffer<offset = 64, size = 64, start = 3, end = 3>, #kiln.buffer<offset = 0, size = 64, start = 4, end = 4>]
// CHECK: scf.for
// CHECK:   scf.for
// CHECK:     memref.view
// CHECK:     memref.view
// CHECK: scf.for
// CHECK:   memref.view
func.func @nested_loops(%arena: memref<0xi8> {kiln.arena}) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  scf.for %i = %c0 to %c4 step %c1 {
    scf.for %j = %c0 to %c4 step %c1 {
      %t1 = memref.alloc() : memref<4xf32>
      %t2 = memref.alloc() : memref<4xf32>
      memref.copy %t1, %t2 : memref<4xf32> to memref<4xf32>
    }
  }
  scf.for %i = %c0 to %c4 step %c1 {
    %t3 = memref.alloc() : memref<4xf32>
    "test.use"(%t3) : (memref<4xf32>) -> ()
  }
  return
}

// -----

// Uses through views (expand_shape, subview, cast) extend the lifetime of
// the underlying buffer: %a is live until op 5, so %b cannot reuse it. A
// dealloc of an alias goes too.

// CHECK-LABEL: func.func @aliases
// CHECK-SAME: kiln.memory_plan = [#kiln.buffer<offset = 0, size = 64, start = 0, end = 5>, #kiln.buffer<offset = 64, size = 64, start = 3, end = 4>]
// CHECK: %[[A:.+]] = memref.view
// CHECK: %[[E:.+]] = memref.expand_shape %[[A]]
// CHECK: memref.subview %[[E]]
// CHECK-NOT: memref.dealloc
// CHECK: return
func.func @aliases(%arena: memref<0xi8> {kiln.arena}) {
  %a = memref.alloc() : memref<16xf32>
  %e = memref.expand_shape %a [[0, 1]] output_shape [4, 4] : memref<16xf32> into memref<4x4xf32>
  %s = memref.subview %e[1, 0] [1, 4] [1, 1] : memref<4x4xf32> to memref<4xf32, strided<[1], offset: 4>>
  %b = memref.alloc() : memref<16xf32>
  "test.use"(%b) : (memref<16xf32>) -> ()
  %c = memref.cast %s : memref<4xf32, strided<[1], offset: 4>> to memref<4xf32, strided<[?], offset: ?>>
  memref.dealloc %c : memref<4xf32, strided<[?], offset: ?>>
  return
}

// -----

// A buffer yielded out of a region lives as long as the region op's result.

// CHECK-LABEL: func.func @yielded
// CHECK-SAME: kiln.memory_plan = [#kiln.buffer<offset = 0, size = 64, start = 0, end = 3>, #kiln.buffer<offset = 64, size = 64, start = 1, end = 2>]
func.func @yielded(%arena: memref<0xi8> {kiln.arena}, %cond: i1, %x: memref<16xf32>) {
  %r = scf.if %cond -> memref<16xf32> {
    %a = memref.alloc() : memref<16xf32>
    scf.yield %a : memref<16xf32>
  } else {
    scf.yield %x : memref<16xf32>
  }
  %b = memref.alloc() : memref<16xf32>
  "test.use"(%b) : (memref<16xf32>) -> ()
  "test.use"(%r) : (memref<16xf32>) -> ()
  return
}

// -----

// Without allocs the arena is empty.

// CHECK-LABEL: func.func @no_allocs
// CHECK-SAME: memref<0xi8> {kiln.arena}
// CHECK-SAME: attributes {kiln.arena_size = 0 : i64, kiln.memory_plan = []}
func.func @no_allocs(%arena: memref<?xi8> {kiln.arena}) {
  return
}

// -----

// A function without an arena is left alone.

// CHECK-LABEL: func.func @no_arena
// CHECK-SAME: (%{{.+}}: memref<0xi8>) {
// CHECK: memref.alloc() : memref<16xf32>
// CHECK: memref.dealloc
func.func @no_arena(%arg: memref<0xi8>) {
  %a = memref.alloc() : memref<16xf32>
  memref.dealloc %a : memref<16xf32>
  return
}
