// RUN: kiln-opt %s --split-input-file --verify-diagnostics --kiln-lower-collectives-to-calls | FileCheck %s

// A rank's entry point gets the runtime's KilnHostCollectives as a fifth
// argument; each bufferized collective becomes a call through its slot
// (0: all_reduce, 1: all_gather) with the buffers' addresses (base + offset
// x element size), the element count and the element type's code (F32 0,
// F16 1).
// CHECK-LABEL: func.func @decode(
// CHECK-SAME: %{{.+}}: memref<64xi8>, %[[CTX:.+]]: !llvm.ptr)
// CHECK: %[[BASE:.+]] = memref.extract_aligned_pointer_as_index %[[R:.+]] : memref<1x1x4xf16> -> index
// CHECK: %[[AT:.+]] = arith.addi %[[BASE]], %{{.+}} : index
// CHECK: %[[I:.+]] = arith.index_cast %[[AT]] : index to i64
// CHECK: %[[P:.+]] = llvm.inttoptr %[[I]] : i64 to !llvm.ptr
// CHECK: %[[N:.+]] = llvm.mlir.constant(4 : i64) : i64
// CHECK: %[[T:.+]] = llvm.mlir.constant(1 : i32) : i32
// CHECK: %[[SLOT:.+]] = llvm.getelementptr %[[CTX]][0] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[FN:.+]] = llvm.load %[[SLOT]] : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.call %[[FN]](%[[CTX]], %[[P]], %[[N]], %[[T]]) : !llvm.ptr, (!llvm.ptr, !llvm.ptr, i64, i32) -> ()
// CHECK: llvm.mlir.constant(2 : i64) : i64
// CHECK: llvm.mlir.constant(0 : i32) : i32
// CHECK: %[[GSLOT:.+]] = llvm.getelementptr %[[CTX]][1] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[GFN:.+]] = llvm.load %[[GSLOT]]
// CHECK: llvm.call %[[GFN]](%[[CTX]], %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}) : !llvm.ptr, (!llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i32) -> ()
// CHECK-NOT: tfm.all_
func.func @decode(%arena: memref<64xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c32 = arith.constant 32 : index
  %r = memref.view %arena[%c0][] : memref<64xi8> to memref<1x1x4xf16>
  tfm.all_reduce %r {ranks = 2 : i64} : memref<1x1x4xf16>
  %in = memref.view %arena[%c0][] : memref<64xi8> to memref<1x1x1x2xf32>
  %out = memref.view %arena[%c32][] : memref<64xi8> to memref<2x1x1x2xf32>
  tfm.all_gather %in into %out {ranks = 2 : i64, axis = 0 : i64} : memref<1x1x1x2xf32>, memref<2x1x1x2xf32>
  return
}

// -----

// An entry point without collectives keeps its four buffers.
// CHECK-LABEL: func.func @prefill(
// CHECK-SAME: %{{.+}}: memref<64xi8>) attributes
func.func @prefill(%arena: memref<64xi8>) attributes {kiln.entry = "prefill"} {
  return
}

// -----

func.func @helper(%b: memref<4xf32>) {
  // expected-error @+1 {{a collective outside an entry point has no collectives argument to call through}}
  tfm.all_reduce %b {ranks = 2 : i64} : memref<4xf32>
  return
}

// -----

func.func @strided(%b: memref<4x4xf32>) attributes {kiln.entry = "decode"} {
  %s = memref.subview %b[0, 0] [4, 2] [1, 1] : memref<4x4xf32> to memref<4x2xf32, strided<[4, 1]>>
  // expected-error @+1 {{needs a contiguous static buffer}}
  tfm.all_reduce %s {ranks = 2 : i64} : memref<4x2xf32, strided<[4, 1]>>
  return
}
