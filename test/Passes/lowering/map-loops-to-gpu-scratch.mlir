// RUN: kiln-opt %s --kiln-map-loops-to-gpu --split-input-file --verify-diagnostics

// A buffer the memory plan gave no bytes (kiln.scratch: a recipe keeps it in
// registers) that a launched kernel reads or writes would alias other data:
// an error, never a kernel.
func.func @decode(%w: memref<1024xi8>, %kv: memref<64xi8>, %arena: memref<512xi8> {kiln.arena}, %io: memref<64xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %cst = arith.constant 0.0 : f32
  %scratch = memref.view %arena[%c0][] {kiln.scratch} : memref<512xi8> to memref<4096xf32>
  // expected-error @+1 {{kernel uses a buffer the memory plan gave no bytes (a recipe's scratch): 'memref<4096xf32>'}}
  scf.parallel (%i) = (%c0) to (%c64) step (%c1) {
    memref.store %cst, %scratch[%i] : memref<4096xf32>
    scf.reduce
  }
  return
}
