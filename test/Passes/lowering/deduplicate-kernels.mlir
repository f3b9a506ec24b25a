// RUN: kiln-opt %s --kiln-deduplicate-kernels | FileCheck %s
// RUN: kiln-opt %s --kiln-deduplicate-kernels | kiln-opt --kiln-deduplicate-kernels | FileCheck %s

// Two layers' kernels differ only in the byte offsets of the views they
// take of the buffers: each view becomes a parameter (the weights' view
// keeps kiln.weights; a buffer left unread is dropped), the second kernel is
// merged into the first, and each launch passes its own views made on the
// host. A view at a dynamic offset keeps its buffer as a parameter; a kernel
// that differs in its code (@other_code) stays a kernel of its own.
// CHECK-LABEL: func.func @entry
// CHECK-SAME: (%[[W:.+]]: memref<256xi8>, %[[A:.+]]: memref<128xi8>, %[[N:.+]]: index)
// CHECK: %[[C0:.+]] = arith.constant 0 : index
// CHECK: %[[W0:.+]] = memref.view %[[W]][%[[C0]]][] : memref<256xi8> to memref<16xf32>
// CHECK: %[[A0:.+]] = memref.view %[[A]][%[[C0]]][] : memref<128xi8> to memref<4xf32>
// CHECK: gpu.launch_func @kiln_kernels::@layer0 {{.*}} args(%[[W0]] : memref<16xf32>, %[[A0]] : memref<4xf32>)
// CHECK: %[[C64:.+]] = arith.constant 64 : index
// CHECK: %[[W1:.+]] = memref.view %[[W]][%[[C64]]][] : memref<256xi8> to memref<16xf32>
// CHECK: %[[C32:.+]] = arith.constant 32 : index
// CHECK: %[[A1:.+]] = memref.view %[[A]][%[[C32]]][] : memref<128xi8> to memref<4xf32>
// CHECK: gpu.launch_func @kiln_kernels::@layer0 {{.*}} args(%[[W1]] : memref<16xf32>, %[[A1]] : memref<4xf32>)
// CHECK: %[[A2:.+]] = memref.view %[[A]][%{{.+}}][] : memref<128xi8> to memref<4xf32>
// CHECK: gpu.launch_func @kiln_kernels::@other_code {{.*}} args(%[[A]] : memref<128xi8>, %[[N]] : index, %[[A2]] : memref<4xf32>)
// CHECK-LABEL: gpu.module @kiln_kernels
// CHECK: gpu.func @layer0(%[[PW:.+]]: memref<16xf32> {kiln.weights}, %[[PA:.+]]: memref<4xf32>) workgroup(%{{.+}} : memref<4xf32, #gpu.address_space<workgroup>>) kernel
// CHECK-NOT: memref.view
// CHECK: vector.load %[[PW]]
// CHECK: memref.store %{{.+}}, %[[PA]]
// CHECK-NOT: gpu.func @layer1
// CHECK: gpu.func @other_code(%{{.+}}: memref<128xi8>, %{{.+}}: index, %{{.+}}: memref<4xf32>) kernel
// CHECK: memref.view %{{.+}}[%{{.+}}][] : memref<128xi8> to memref<4xf32>
// CHECK: arith.mulf
// CHECK-NOT: gpu.func
module attributes {gpu.container_module} {
  func.func @entry(%w: memref<256xi8>, %a: memref<128xi8>, %n: index) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @kiln_kernels::@layer0 blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%w : memref<256xi8>, %a : memref<128xi8>)
    gpu.launch_func @kiln_kernels::@layer1 blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%w : memref<256xi8>, %a : memref<128xi8>)
    gpu.launch_func @kiln_kernels::@other_code blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%a : memref<128xi8>, %n : index)
    return
  }
  gpu.module @kiln_kernels {
    gpu.func @layer0(%w: memref<256xi8> {kiln.weights}, %a: memref<128xi8>) workgroup(%s : memref<4xf32, #gpu.address_space<workgroup>>) kernel {
      %c0 = arith.constant 0 : index
      %wv = memref.view %w[%c0][] : memref<256xi8> to memref<16xf32>
      %av = memref.view %a[%c0][] : memref<128xi8> to memref<4xf32>
      %x = vector.load %wv[%c0] : memref<16xf32>, vector<4xf32>
      %e = vector.extract %x[0] : f32 from vector<4xf32>
      memref.store %e, %s[%c0] : memref<4xf32, #gpu.address_space<workgroup>>
      %v = memref.load %s[%c0] : memref<4xf32, #gpu.address_space<workgroup>>
      memref.store %v, %av[%c0] : memref<4xf32>
      gpu.return
    }
    gpu.func @layer1(%w: memref<256xi8> {kiln.weights}, %a: memref<128xi8>) workgroup(%s : memref<4xf32, #gpu.address_space<workgroup>>) kernel {
      %c0 = arith.constant 0 : index
      %c64 = arith.constant 64 : index
      %c32 = arith.constant 32 : index
      %wv = memref.view %w[%c64][] : memref<256xi8> to memref<16xf32>
      %av = memref.view %a[%c32][] : memref<128xi8> to memref<4xf32>
      %x = vector.load %wv[%c0] : memref<16xf32>, vector<4xf32>
      %e = vector.extract %x[0] : f32 from vector<4xf32>
      memref.store %e, %s[%c0] : memref<4xf32, #gpu.address_space<workgroup>>
      %v = memref.load %s[%c0] : memref<4xf32, #gpu.address_space<workgroup>>
      memref.store %v, %av[%c0] : memref<4xf32>
      gpu.return
    }
    gpu.func @other_code(%a: memref<128xi8>, %n: index) kernel {
      %c0 = arith.constant 0 : index
      %c16 = arith.constant 16 : index
      %dyn = memref.view %a[%n][] : memref<128xi8> to memref<4xf32>
      %fix = memref.view %a[%c16][] : memref<128xi8> to memref<4xf32>
      %v = memref.load %fix[%c0] : memref<4xf32>
      %m = arith.mulf %v, %v : f32
      memref.store %m, %dyn[%c0] : memref<4xf32>
      gpu.return
    }
  }
}
