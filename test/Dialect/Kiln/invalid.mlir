// RUN: kiln-opt %s --split-input-file --verify-diagnostics

// expected-error @+1 {{unknown kiln attribute 'kiln.arena_bytes'}}
func.func @f() attributes {kiln.arena_bytes = 64 : i64} {
  return
}

// -----

// expected-error @+1 {{'kiln.entry' must be "prefill", "prefill_all", "decode" or "decode_b<N>", got "forward"}}
func.func @f() attributes {kiln.entry = "forward"} {
  return
}

// -----

// decode_b<N> needs a number of rows N > 0.
// expected-error @+1 {{'kiln.entry' must be "prefill", "prefill_all", "decode" or "decode_b<N>", got "decode_b0"}}
func.func @f() attributes {kiln.entry = "decode_b0"} {
  return
}

// -----

// expected-error @+1 {{'kiln.entry' must be "prefill", "prefill_all", "decode" or "decode_b<N>", got "decode_bx"}}
func.func @f() attributes {kiln.entry = "decode_bx"} {
  return
}

// -----

// expected-error @+1 {{'kiln.arena_size' must be an i64 >= 0, got -64 : i64}}
func.func @f() attributes {kiln.arena_size = -64 : i64} {
  return
}

// -----

// expected-error @+1 {{'kiln.memory_plan' must be an array of #kiln.buffer}}
func.func @f() attributes {kiln.memory_plan = [{offset = 0 : i64, size = 64 : i64}]} {
  return
}

// -----

// expected-error @+1 {{#kiln.buffer live range [3, 1] is not 0 <= start <= end}}
func.func @f() attributes {kiln.memory_plan = [#kiln.buffer<offset = 0, size = 64, start = 3, end = 1>]} {
  return
}

// -----

// expected-error @+1 {{'kiln.region' must be a dictionary with a string 'op'}}
func.func @f() attributes {kiln.region = {step = 1 : i64}} {
  return
}

// -----

// expected-error @+1 {{'kiln.weights' belongs on a function argument}}
func.func @f() attributes {kiln.weights} {
  return
}

// -----

// expected-error @+1 {{'kiln.entry' on argument #0 belongs on an operation}}
func.func @f(%a: memref<8xi8> {kiln.entry = "decode"}) {
  return
}

// -----

// expected-error @+1 {{'kiln.io' must be a dictionary of i64 >= 0}}
func.func @f() attributes {kiln.io = {tokens = "zero"}} {
  return
}

// -----

// expected-error @+1 {{'kiln.waits_for_previous' must be a unit attribute, got true}}
func.func @f() attributes {kiln.waits_for_previous = true} {
  return
}

// -----

// Loops that may run in parallel are scf.forall/scf.parallel, not a marker.
func.func @f() {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  // expected-error @+1 {{unknown kiln attribute 'kiln.independent'}}
  scf.for %i = %c0 to %c1 step %c1 {
  } {kiln.independent}
  return
}
