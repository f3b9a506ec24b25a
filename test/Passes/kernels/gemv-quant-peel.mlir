// RUN: kiln-opt %s --kiln-select-kernels --kiln-lower-linalg-to-loops --canonicalize --kiln-map-loops-to-gpu --cse --kiln-dependent-launch | FileCheck %s

// gemv_q with rows long enough that every lane has a whole iteration (4096
// int4 codes: 2048 bytes a row): the first iteration is peeled, so its code
// loads and its scales come first in the kernel and kiln-dependent-launch
// puts the wait after them (they overlap the end of the kernel before); x is
// read only after the wait, when the block stages it in workgroup memory
// (a loop of the block's threads over its 32-code chunks, then a barrier);
// the peeled step's arithmetic reads the staged pairs, then the loop.

// CHECK: gpu.func @decode_k0_gemv_q(
// CHECK-NOT: griddepcontrol.wait
// CHECK: vector.load %{{.+}} : memref<32x2048xi8>, vector<16xi8>
// CHECK-NOT: vector.load %{{.+}} : memref<1x1x4096xf16>
// CHECK: memref.load %{{.+}} : memref<32x128xf16>
// CHECK-NOT: vector.load %{{.+}} : memref<1x1x4096xf16>
// CHECK: llvm.inline_asm has_side_effects "griddepcontrol.wait;", "~{memory}"
// CHECK-NEXT: llvm.inline_asm has_side_effects "griddepcontrol.launch_dependents;", "~{memory}"
// CHECK-NEXT: scf.for %{{.+}} = %{{.+}} to %c128 step %c256 {
// CHECK: vector.load %{{.+}} : memref<1x1x4096xf16>, vector<32xf16>
// CHECK: gpu.barrier
// CHECK-NOT: scf.for
// CHECK: vector.load %{{.+}} : memref<4096xf16, #gpu.address_space<workgroup>>, vector<8xf16>
// CHECK: scf.for
// CHECK: vector.load %{{.+}} : memref<32x2048xi8>, vector<16xi8>
// CHECK: gpu.return
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#packed = affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 2)>
#group = affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 32)>
#out = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @decode(%w: memref<81920xi8> {kiln.weights}, %kv: memref<64xi8>, %arena: memref<16384xi8> {kiln.arena}, %io: memref<64xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c256 = arith.constant 8192 : index
  %c1024 = arith.constant 65536 : index
  %zero = arith.constant 0.0 : f32
  %x = memref.view %arena[%c0][] : memref<16384xi8> to memref<1x1x4096xf16>
  %wp = memref.view %w[%c0][] : memref<81920xi8> to memref<32x2048xi8>
  %ws = memref.view %w[%c1024][] : memref<81920xi8> to memref<32x128xf16>
  %acc = memref.view %arena[%c256][] : memref<16384xi8> to memref<1x1x32xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<1x1x32xf32>)
  linalg.generic {indexing_maps = [#x, #packed, #group, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %wp, %ws : memref<1x1x4096xf16>, memref<32x2048xi8>, memref<32x128xf16>) outs(%acc : memref<1x1x32xf32>)
      attrs = {kiln.region = {bits = 4 : i64, group_size = 32 : i64, op = "tfm.linear", zero_points = false}} {
  ^bb0(%a: f16, %b: i8, %s: f16, %c: f32):
    %k = linalg.index 3 : index
    %byte = arith.extui %b : i8 to i32
    %ki = arith.index_cast %k : index to i32
    %c1 = arith.constant 1 : i32
    %c2 = arith.constant 2 : i32
    %c15 = arith.constant 15 : i32
    %odd = arith.andi %ki, %c1 : i32
    %sh = arith.shli %odd, %c2 : i32
    %hi = arith.shrui %byte, %sh : i32
    %q = arith.andi %hi, %c15 : i32
    %qf = arith.uitofp %q : i32 to f32
    %sf = arith.extf %s : f16 to f32
    %c8 = arith.constant 8.0 : f32
    %d = arith.subf %qf, %c8 : f32
    %wv = arith.mulf %d, %sf : f32
    %af = arith.extf %a : f16 to f32
    %p = arith.mulf %af, %wv : f32
    %r = arith.addf %c, %p : f32
    linalg.yield %r : f32
  }
  return
}
