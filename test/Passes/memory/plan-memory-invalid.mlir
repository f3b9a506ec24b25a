// RUN: kiln-opt %s --kiln-plan-memory --split-input-file --verify-diagnostics

func.func @dynamic_alloc(%arena: memref<0xi8> {kiln.arena}, %n: index) {
  // expected-error @+1 {{'memref.alloc' op has a dynamic shape 'memref<?xf32>'; static memory planning needs every buffer's size at compile time}}
  %a = memref.alloc(%n) : memref<?xf32>
  return
}

// -----

// expected-error @+1 {{arguments #0 and #1 are both marked 'kiln.arena'; expected exactly one arena}}
func.func @two_arenas(%a: memref<0xi8> {kiln.arena}, %b: memref<0xi8> {kiln.arena}) {
  return
}

// -----

// expected-error @+1 {{arena argument #1 must be a 1-D memref of i8 with identity layout, got 'memref<16xf32>'}}
func.func @arena_element_type(%x: memref<4xf32>, %arena: memref<16xf32> {kiln.arena}) {
  return
}

// -----

// expected-error @+1 {{arena argument #0 must be a 1-D memref of i8 with identity layout, got 'memref<4x4xi8>'}}
func.func @arena_rank(%arena: memref<4x4xi8> {kiln.arena}) {
  return
}

// -----

// expected-error @+1 {{arena argument #0 must be a 1-D memref of i8 with identity layout, got 'memref<16xi8, strided<[2]>>'}}
func.func @arena_layout(%arena: memref<16xi8, strided<[2]>> {kiln.arena}) {
  return
}

// -----

// expected-error @+1 {{arena argument #0 must be a 1-D memref of i8 with identity layout, got 'tensor<16xi8>'}}
func.func @arena_tensor(%arena: tensor<16xi8> {kiln.arena}) {
  return
}

// -----

// expected-error @+1 {{arena argument #0 is already used; memory was planned before}}
func.func @planned_twice(%arena: memref<64xi8> {kiln.arena}) {
  %c0 = arith.constant 0 : index
  %v = memref.view %arena[%c0][] : memref<64xi8> to memref<16xf32>
  return
}

// -----

// expected-error @+1 {{memory planning expects a single-block body}}
func.func @two_blocks(%arena: memref<0xi8> {kiln.arena}) {
  cf.br ^bb1
^bb1:
  return
}

// -----

func.func @alloc_layout(%arena: memref<0xi8> {kiln.arena}) {
  // expected-error @+1 {{'memref.alloc' op has a non-identity layout; an arena view can only produce identity layouts}}
  %a = memref.alloc() : memref<4xf32, strided<[2]>>
  return
}

// -----

func.func @alloc_memory_space(%arena: memref<0xi8> {kiln.arena}) {
  // expected-error @+1 {{'memref.alloc' op is in memory space 3 : i64, not the arena's}}
  %a = memref.alloc() : memref<4xf32, 3>
  return
}

// -----

func.func @alloc_alignment(%arena: memref<0xi8> {kiln.arena}) {
  // expected-error @+1 {{'memref.alloc' op asks for alignment 128, more than the arena's 64}}
  %a = memref.alloc() {alignment = 128} : memref<4xf32>
  return
}

// -----

func.func @escapes(%arena: memref<0xi8> {kiln.arena}) -> memref<4xf32> {
  // expected-error @+1 {{'memref.alloc' op escapes through a return; an arena buffer is reused after the call}}
  %a = memref.alloc() : memref<4xf32>
  %c = memref.cast %a : memref<4xf32> to memref<?xf32>
  %d = memref.cast %c : memref<?xf32> to memref<4xf32>
  return %d : memref<4xf32>
}
