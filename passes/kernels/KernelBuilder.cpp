//===- KernelBuilder.cpp - Helpers for building GPU kernel bodies ---------===//

#include "passes/kernels/KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
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
  return kernel.addWorkgroupAttribution(type, loc);
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
