// RUN: kiln-opt %s --kiln-dependent-launch | FileCheck %s
// Twice: a kernel that waits already (the inline PTX) is left as it is.
// RUN: kiln-opt %s --kiln-dependent-launch --kiln-dependent-launch | FileCheck %s

// Every kernel waits for the grid before it, then lets its dependents
// launch, before it touches memory another kernel may write. Index
// arithmetic and loads of the weights (an argument marked kiln.weights, or a
// view of it) may come first: a GEMV's first weight loads overlap the kernel
// before. A kernel that already waits and a device function (not a kernel)
// are left alone. The launches of kernels that wait are marked
// kiln.waits_for_previous (the artifact records it per launch). Both are
// inline PTX with side effects and a memory clobber: LLVM's griddepcontrol
// intrinsics are IntrNoMem, and it moved loads across them.
// CHECK-LABEL: func.func @entry
// CHECK: gpu.launch_func @kiln_kernels::@k0 {{.*}} {kiln.waits_for_previous}
// CHECK: gpu.launch_func @kiln_kernels::@weights_first {{.*}} {kiln.waits_for_previous}
// CHECK: gpu.launch_func @kiln_kernels::@k1 {{.*}} {kiln.waits_for_previous}
// CHECK-LABEL: gpu.func @k0
// CHECK-NEXT: arith.constant 0
// CHECK-NEXT: llvm.inline_asm has_side_effects "griddepcontrol.wait;", "~{memory}"  : () -> ()
// CHECK-NEXT: llvm.inline_asm has_side_effects "griddepcontrol.launch_dependents;", "~{memory}"  : () -> ()
// CHECK-NEXT: memref.load
// CHECK-LABEL: gpu.func @weights_first
// CHECK-NEXT: arith.constant 0
// CHECK-NEXT: memref.view
// CHECK-NEXT: vector.load
// CHECK-NEXT: llvm.inline_asm has_side_effects "griddepcontrol.wait;"
// CHECK-NEXT: llvm.inline_asm has_side_effects "griddepcontrol.launch_dependents;"
// CHECK-NEXT: memref.load %arg1
// CHECK-LABEL: gpu.func @k1
// CHECK-NEXT: nvvm.griddepcontrol wait
// CHECK-NEXT: gpu.return
// CHECK-LABEL: gpu.func @helper
// CHECK-NOT: griddepcontrol
// CHECK: gpu.return
module attributes {gpu.container_module} {
  func.func @entry(%w: memref<64xi8>, %a: memref<4xf32>) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @kiln_kernels::@k0 blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%a : memref<4xf32>)
    gpu.launch_func @kiln_kernels::@weights_first blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%w : memref<64xi8>, %a : memref<4xf32>)
    gpu.launch_func @kiln_kernels::@k1 blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%a : memref<4xf32>)
    return
  }
  gpu.module @kiln_kernels {
    gpu.func @k0(%a: memref<4xf32>) kernel {
      %c0 = arith.constant 0 : index
      %v = memref.load %a[%c0] : memref<4xf32>
      memref.store %v, %a[%c0] : memref<4xf32>
      gpu.return
    }
    gpu.func @weights_first(%w: memref<64xi8> {kiln.weights}, %a: memref<4xf32>) kernel {
      %c0 = arith.constant 0 : index
      %wv = memref.view %w[%c0][] : memref<64xi8> to memref<16xf32>
      %x = vector.load %wv[%c0] : memref<16xf32>, vector<4xf32>
      %v = memref.load %a[%c0] : memref<4xf32>
      %e = vector.extract %x[0] : f32 from vector<4xf32>
      %s = arith.addf %v, %e : f32
      memref.store %s, %a[%c0] : memref<4xf32>
      gpu.return
    }
    gpu.func @k1(%a: memref<4xf32>) kernel {
      nvvm.griddepcontrol wait
      gpu.return
    }
    gpu.func @helper(%a: memref<4xf32>) {
      gpu.return
    }
  }
}
