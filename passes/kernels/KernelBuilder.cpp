//===- KernelBuilder.cpp - Helpers for building GPU kernel bodies ---------===//

#include "passes/kernels/KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

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
  return kernel.addWorkgroupAttribution(type, loc);
}

Value KernelBuilder::extendTo(OpBuilder &builder, Value v, Type type) {
  return v.getType() == type ? v : arith::ExtFOp::create(builder, loc, type, v);
}

Value withoutExt(Value v) {
  if (auto ext = v.getDefiningOp<arith::ExtFOp>())
    return ext.getIn();
  return v;
}

} // namespace kiln::kernels
