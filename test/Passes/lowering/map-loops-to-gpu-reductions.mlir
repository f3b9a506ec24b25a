// RUN: kiln-opt %s --split-input-file --kiln-map-loops-to-gpu --cse | FileCheck %s

// How --kiln-map-loops-to-gpu maps reductions (a loop folding values into one
// accumulator element): a warp or a block per output with warp shuffles
// (gpu.subgroup_reduce) when the loads run along the reduction, a thread per
// output with the sum in a register otherwise (split over 8 slices when
// there are few outputs); an accumulator fill right
// before is fused. And a parallel nest under a uniform scf.if.

// CHECK-LABEL: func.func @warp
// The fill of the accumulator is fused: one launch, 8 rows per block.
// CHECK: gpu.launch_func @kiln_kernels::@warp_k0_reduce_warp blocks in (%c16, %c1, %c1) threads in (%c256, %c1, %c1) {{.*}} {kiln.mapping = "reduce-warp"}
// CHECK-NEXT: return
// CHECK: gpu.func @warp_k0_reduce_warp(
// CHECK: %[[TID:.+]] = gpu.thread_id x
// CHECK: %[[LANE:.+]] = arith.remui %[[TID]], %c32
// CHECK: %[[NINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK: %[[PART:.+]] = scf.for %[[K:.+]] = %[[LANE]] to %c64 step %c32 iter_args(%[[ACC:.+]] = %[[NINF]]) -> (f32)
// CHECK: %[[V:.+]] = memref.load %{{.+}}[%{{.+}}, %[[K]]]
// CHECK: arith.maximumf %[[ACC]], %[[V]]
// CHECK: %[[ALL:.+]] = gpu.subgroup_reduce maximumf %[[PART]] uniform : (f32) -> f32
// CHECK: scf.if
// CHECK-NOT: memref.load
// CHECK: %[[R:.+]] = arith.maximumf %[[NINF]], %[[ALL]]
// CHECK: memref.store %[[R]]

// Short contiguous rows, many of them: a warp per row.
func.func @warp(%w: memref<1024xi8>, %kv: memref<64xi8>, %arena: memref<65536xi8> {kiln.arena}, %io: memref<64xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c32768 = arith.constant 32768 : index
  %ninf = arith.constant 0xFF800000 : f32
  %x = memref.view %arena[%c0][] : memref<65536xi8> to memref<128x64xf32>
  %m = memref.view %arena[%c32768][] : memref<65536xi8> to memref<128xf32>
  %c128 = arith.constant 128 : index
  scf.parallel (%i) = (%c0) to (%c128) step (%c1) {
    memref.store %ninf, %m[%i] : memref<128xf32>
    scf.reduce
  }
  scf.parallel (%i) = (%c0) to (%c128) step (%c1) {
    scf.for %k = %c0 to %c64 step %c1 {
      // An index recomputed in the loop body from invariants (as the loop
      // lowering does for a GQA kv head) is still invariant.
      %row = arith.divui %i, %c1 : index
      %v = memref.load %x[%row, %k] : memref<128x64xf32>
      %a = memref.load %m[%i] : memref<128xf32>
      %r = arith.maximumf %a, %v : f32
      memref.store %r, %m[%i] : memref<128xf32>
    }
    scf.reduce
  }
  return
}

// -----

// CHECK-LABEL: func.func @block
// CHECK: gpu.launch_func @kiln_kernels::@block_k0_reduce_block blocks in (%c1, %c1, %c1) threads in (%c256, %c1, %c1) {{.*}} {kiln.mapping = "reduce-block"}
// CHECK: gpu.func @block_k0_reduce_block({{.*}}) workgroup(%[[SMEM:.+]] : memref<8xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: %[[PART:.+]] = scf.for %{{.+}} = %{{.+}} to %c2048 step %c256 iter_args
// CHECK: %[[WARP:.+]] = gpu.subgroup_reduce add %[[PART]] uniform : (f32) -> f32
// CHECK: scf.if
// CHECK: memref.store %[[WARP]], %[[SMEM]]
// CHECK: gpu.barrier
// CHECK-COUNT-8: memref.load %[[SMEM]]
// CHECK: scf.if
// CHECK: %[[OLD:.+]] = memref.load %{{.+}} : memref<1xf32>
// CHECK: arith.addf %[[OLD]]

// One long row (decode's RMSNorm): a block of 256 threads on it.
func.func @block(%w: memref<1024xi8>, %kv: memref<64xi8>, %arena: memref<16384xi8> {kiln.arena}, %io: memref<64xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2048 = arith.constant 2048 : index
  %c8192 = arith.constant 8192 : index
  %x = memref.view %arena[%c0][] : memref<16384xi8> to memref<1x2048xf32>
  %s = memref.view %arena[%c8192][] : memref<16384xi8> to memref<1xf32>
  scf.for %k = %c0 to %c2048 step %c1 {
    %v = memref.load %x[%c0, %k] : memref<1x2048xf32>
    %a = memref.load %s[%c0] : memref<1xf32>
    %sq = arith.mulf %v, %v : f32
    %r = arith.addf %a, %sq : f32
    memref.store %r, %s[%c0] : memref<1xf32>
  }
  return
}

// -----

// CHECK-LABEL: func.func @split
// CHECK: gpu.launch_func @kiln_kernels::@split_k0_reduce_split blocks in (%c1, %c1, %c1) threads in (%c256, %c1, %c1) {{.*}} {kiln.mapping = "reduce-split"}
// CHECK: gpu.func @split_k0_reduce_split({{.*}}) workgroup(%[[SMEM:.+]] : memref<256xf32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: %[[TID:.+]] = gpu.thread_id x
// CHECK: %[[COL:.+]] = arith.remui %[[TID]], %c32
// CHECK: %[[SLICE:.+]] = arith.divui %[[TID]], %c32
// CHECK: %[[IN:.+]] = arith.cmpi ult
// CHECK: %[[END:.+]] = arith.select %[[IN]], %c256, %c0
// CHECK: %[[PART:.+]] = scf.for %{{.+}} = %[[SLICE]] to %[[END]] step %c8 iter_args
// CHECK-NOT: gpu.subgroup_reduce
// CHECK: memref.store %[[PART]], %[[SMEM]][%[[TID]]]
// CHECK: gpu.barrier
// CHECK: scf.if
// CHECK-COUNT-8: memref.load %[[SMEM]]
// CHECK: memref.store
// CHECK: gpu.return
// Rows that are not contiguous along the reduction (attention's p.v), few
// outputs: 32 neighbouring outputs (coalesced) x 8 slices of the reduction
// per block, joined in workgroup memory.
func.func @split(%w: memref<1024xi8>, %kv: memref<64xi8>, %arena: memref<65536xi8> {kiln.arena}, %io: memref<64xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  %c256 = arith.constant 256 : index
  %c1024 = arith.constant 1024 : index
  %c33792 = arith.constant 33792 : index
  %p = memref.view %arena[%c0][] : memref<65536xi8> to memref<256xf32>
  %v = memref.view %arena[%c1024][] : memref<65536xi8> to memref<256x32xf32>
  %o = memref.view %arena[%c33792][] : memref<65536xi8> to memref<32xf32>
  scf.parallel (%d) = (%c0) to (%c32) step (%c1) {
    scf.for %t = %c0 to %c256 step %c1 {
      %a = memref.load %p[%t] : memref<256xf32>
      %b = memref.load %v[%t, %d] : memref<256x32xf32>
      %acc = memref.load %o[%d] : memref<32xf32>
      %prod = arith.mulf %a, %b : f32
      %r = arith.addf %acc, %prod : f32
      memref.store %r, %o[%d] : memref<32xf32>
    }
    scf.reduce
  }
  return
}

// -----

// CHECK-LABEL: func.func @thread
// CHECK: gpu.launch_func @kiln_kernels::@thread_k0_reduce_thread blocks in (%c256, %c1, %c1) threads in (%c256, %c1, %c1) {{.*}} {kiln.mapping = "reduce-thread"}
// CHECK: gpu.func @thread_k0_reduce_thread(
// CHECK-NOT: gpu.subgroup_reduce
// CHECK: scf.for %{{.+}} = %{{.+}} to %c64 step %c1 iter_args
// CHECK-NOT: memref.store
// CHECK: scf.yield
// CHECK-NOT: gpu.subgroup_reduce
// CHECK: memref.store
// CHECK: gpu.return
// Many outputs (a prefill matrix product over [in, out] weights): a thread
// per output, the sum in a register.
func.func @thread(%w: memref<1024xi8>, %kv: memref<64xi8>, %arena: memref<1048576xi8> {kiln.arena}, %io: memref<64xi8>) attributes {kiln.entry = "prefill"} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %c65536 = arith.constant 65536 : index
  %c131072 = arith.constant 131072 : index
  %x = memref.view %arena[%c0][] : memref<1048576xi8> to memref<256x64xf32>
  %wt = memref.view %arena[%c65536][] : memref<1048576xi8> to memref<64x256xf32>
  %o = memref.view %arena[%c131072][] : memref<1048576xi8> to memref<256x256xf32>
  %c64 = arith.constant 64 : index
  scf.parallel (%m, %n) = (%c0, %c0) to (%c256, %c256) step (%c1, %c1) {
    scf.for %k = %c0 to %c64 step %c1 {
      %a = memref.load %x[%m, %k] : memref<256x64xf32>
      %b = memref.load %wt[%k, %n] : memref<64x256xf32>
      %acc = memref.load %o[%m, %n] : memref<256x256xf32>
      %prod = arith.mulf %a, %b : f32
      %r = arith.addf %acc, %prod : f32
      memref.store %r, %o[%m, %n] : memref<256x256xf32>
    }
    scf.reduce
  }
  return
}

// -----

// CHECK-LABEL: func.func @guarded
// CHECK: gpu.launch_func @kiln_kernels::@guarded_k0_parallel blocks in (%c1, %c1, %c1) threads in (%c64, %c1, %c1) {{.*}} {kiln.mapping = "parallel"}
// CHECK: gpu.func @guarded_k0_parallel(
// CHECK: %[[OK:.+]] = arith.cmpi sge
// CHECK: scf.if %{{.+}} {
// CHECK-NEXT: scf.if %[[OK]] {
// CHECK: memref.store

// A nest under a uniform condition (kv_append): every thread tests it.
func.func @guarded(%w: memref<1024xi8>, %kv: memref<4096xi8>, %arena: memref<1024xi8> {kiln.arena}, %io: memref<64xi8>) attributes {kiln.entry = "decode"} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c0_i64 = arith.constant 0 : i64
  %pos = memref.view %io[%c0][] : memref<64xi8> to memref<1xi64>
  %src = memref.view %arena[%c0][] : memref<1024xi8> to memref<64xf32>
  %dst = memref.view %kv[%c0][] : memref<4096xi8> to memref<16x64xf32>
  %p = memref.load %pos[%c0] : memref<1xi64>
  %ok = arith.cmpi sge, %p, %c0_i64 : i64
  scf.if %ok {
    %row = arith.index_cast %p : i64 to index
    scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
      %x = memref.load %src[%j] : memref<64xf32>
      memref.store %x, %dst[%row, %j] : memref<16x64xf32>
      scf.reduce
    }
  }
  return
}
