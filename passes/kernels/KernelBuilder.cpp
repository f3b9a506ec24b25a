//===- KernelBuilder.cpp - Helpers for building GPU kernel bodies ---------===//

#include "passes/kernels/KernelBuilder.h"

#include "dialects/Kiln/KilnDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

namespace kiln::kernels {

KernelBuilder::KernelBuilder(OpBuilder &b, Location loc, gpu::GPUFuncOp kernel)
    : b(b), loc(loc), kernel(kernel),
      top(&kernel.getBody().front(), kernel.getBody().front().begin()) {}

Value KernelBuilder::index(int64_t value) {
  Value &c = indices[value];
  if (!c)
    c = arith::ConstantIndexOp::create(top, loc, value);
  return c;
}

Value KernelBuilder::threadIdX() {
  return gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
}

Value KernelBuilder::blockIdX() {
  return gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
}

Value KernelBuilder::workgroupBuffer(ArrayRef<int64_t> shape, Type element) {
  auto type = MemRefType::get(
      shape, element, AffineMap(),
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup));
  Value buffer = kernel.addWorkgroupAttribution(type, loc);
  // 16-byte aligned, stated: LLVM assumes a global of more than 16 bytes
  // without an alignment is 16-aligned (DataLayout's preferred alignment) and
  // vectorizes its accesses (ld.shared.v4, cp.async of 16 bytes), while the
  // NVPTX printer declares it with its element's alignment; ptxas may then
  // place it at any multiple of that (CUDA_ERROR_MISALIGNED_ADDRESS).
  kernel.setWorkgroupAttributionAttr(kernel.getNumWorkgroupAttributions() - 1,
                                     LLVM::LLVMDialect::getAlignAttrName(),
                                     b.getI64IntegerAttr(16));
  return buffer;
}

int64_t KernelBuilder::maxClusterBlocks() const {
  auto module = kernel->getParentOfType<gpu::GPUModuleOp>();
  auto blocks =
      module ? module->getAttrOfType<IntegerAttr>(kClusterBlocksAttr) : nullptr;
  return blocks ? std::max<int64_t>(blocks.getInt(), 1) : 1;
}

void KernelBuilder::clusterBarrier() {
  NVVM::ClusterArriveOp::create(b, loc, b.getUnitAttr());
  NVVM::ClusterWaitOp::create(b, loc, b.getUnitAttr());
}

Value KernelBuilder::clusterLoad(OpBuilder &nb, Value buffer, Value index,
                                 Value rank) {
  MLIRContext *ctx = nb.getContext();
  Type elt = cast<MemRefType>(buffer.getType()).getElementType();
  Type i64 = nb.getI64Type();
  auto shared = LLVM::LLVMPointerType::get(ctx, /*shared=*/3);
  auto sharedCluster = LLVM::LLVMPointerType::get(ctx, /*shared_cluster=*/7);
  Value base = arith::IndexCastOp::create(
      nb, loc, i64,
      memref::ExtractAlignedPointerAsIndexOp::create(nb, loc, buffer));
  Value ptr = LLVM::IntToPtrOp::create(nb, loc, shared, base);
  Value at = LLVM::GEPOp::create(
      nb, loc, shared, elt, ptr,
      ValueRange{arith::IndexCastOp::create(nb, loc, i64, index)});
  Value remote = NVVM::MapaOp::create(
      nb, loc, sharedCluster, at,
      arith::IndexCastOp::create(nb, loc, nb.getI32Type(), rank));
  return LLVM::LoadOp::create(nb, loc, elt, remote);
}

std::pair<Value, Value> KernelBuilder::blockArgmax(Value v, Value i,
                                                   int64_t warps) {
  auto better = [&](Value v, Value i, Value bv, Value bi) -> Value {
    Value gt = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, v, bv);
    Value eq = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, v, bv);
    Value lt = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, i, bi);
    return arith::OrIOp::create(b, loc, gt,
                                arith::AndIOp::create(b, loc, eq, lt));
  };
  auto take = [&](Value ov, Value oi) {
    Value better_ = better(ov, oi, v, i);
    v = arith::SelectOp::create(b, loc, better_, ov, v);
    i = arith::SelectOp::create(b, loc, better_, oi, i);
  };
  for (int32_t offset = 16; offset >= 1; offset /= 2)
    take(gpu::ShuffleOp::create(b, loc, v, offset, 32, gpu::ShuffleMode::XOR)
             .getShuffleResult(),
         gpu::ShuffleOp::create(b, loc, i, offset, 32, gpu::ShuffleMode::XOR)
             .getShuffleResult());
  Value smemV = workgroupBuffer({warps}, v.getType());
  Value smemI = workgroupBuffer({warps}, i.getType());
  Value tid = threadIdX();
  Value warp = arith::DivUIOp::create(b, loc, tid, index(32));
  Value first = arith::CmpIOp::create(
      b, loc, arith::CmpIPredicate::eq,
      arith::RemUIOp::create(b, loc, tid, index(32)), index(0));
  auto write = scf::IfOp::create(b, loc, first, /*withElseRegion=*/false);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&write.getThenRegion().front());
    memref::StoreOp::create(b, loc, v, smemV, ValueRange{warp});
    memref::StoreOp::create(b, loc, i, smemI, ValueRange{warp});
  }
  gpu::BarrierOp::create(b, loc);
  Value leader =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, tid, index(0));
  auto finish = scf::IfOp::create(b, loc, leader, /*withElseRegion=*/false);
  b.setInsertionPointToStart(&finish.getThenRegion().front());
  v = memref::LoadOp::create(b, loc, smemV, ValueRange{index(0)});
  i = memref::LoadOp::create(b, loc, smemI, ValueRange{index(0)});
  for (int64_t w = 1; w < warps; ++w)
    take(memref::LoadOp::create(b, loc, smemV, ValueRange{index(w)}),
         memref::LoadOp::create(b, loc, smemI, ValueRange{index(w)}));
  return {v, i};
}

Value KernelBuilder::add(Value a, Value c) {
  return arith::AddIOp::create(b, loc, a, c);
}
Value KernelBuilder::mul(Value a, int64_t n) {
  return arith::MulIOp::create(b, loc, a, index(n));
}
Value KernelBuilder::div(Value a, int64_t n) {
  return arith::DivUIOp::create(b, loc, a, index(n));
}
Value KernelBuilder::rem(Value a, int64_t n) {
  return arith::RemUIOp::create(b, loc, a, index(n));
}
Value KernelBuilder::ult(Value a, int64_t n) {
  return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, a, index(n));
}

Value KernelBuilder::extendTo(OpBuilder &builder, Value v, Type type) {
  return v.getType() == type ? v : arith::ExtFOp::create(builder, loc, type, v);
}

Value mmaOperandB(OpBuilder &b, Location loc, Value pair, int64_t h) {
  auto t = cast<VectorType>(pair.getType());
  auto half = VectorType::get({2, 2}, t.getElementType());
  Value frag = arith::ConstantOp::create(
      b, loc, half,
      DenseElementsAttr::get(half, b.getZeroAttr(t.getElementType())));
  for (int64_t r = 0; r < 2; ++r)
    frag = vector::InsertOp::create(
        b, loc,
        vector::ExtractOp::create(b, loc, pair, ArrayRef<int64_t>{2 * h + r}),
        frag, ArrayRef<int64_t>{r});
  return frag;
}

Value butterfly(OpBuilder &b, Location loc, Value v, int32_t lanes,
                function_ref<Value(Value, Value)> combine) {
  for (int32_t d = 1; d < lanes; d *= 2)
    v = combine(v, gpu::ShuffleOp::create(b, loc, v, d, /*width=*/32,
                                          gpu::ShuffleMode::XOR)
                       .getShuffleResult());
  return v;
}

Value withoutExt(Value v) {
  if (auto ext = v.getDefiningOp<arith::ExtFOp>())
    return ext.getIn();
  return v;
}

} // namespace kiln::kernels
