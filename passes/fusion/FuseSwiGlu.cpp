//===- FuseSwiGlu.cpp - SwiGLU into the gate/up projection ----------------===//
//
// The gated MLP's activation, computed where its joined gate/up projection
// is (kiln-fuse-projections made that one tfm.linear):
//
//   %gu = tfm.linear %x, %w_gate_up ...            // [B, S, 2F]
//   %g  = tensor.extract_slice %gu[0, 0, 0] [B, S, F] [1, 1, 1]
//   %u  = tensor.extract_slice %gu[0, 0, F] [B, S, F] [1, 1, 1]
//   %y  = tfm.swiglu %g, %u                        // [B, S, F]
//   ->
//   %y  = tfm.linear %x, %w_gate_up ... swiglu     // [B, S, F]
//
// The 2F projection never goes to memory: a GEMV kernel computes columns n
// and n + F in the same warp and stores silu(gate) * up (one launch, not
// two, and no round trip through the 2F buffer).
//
// Fires only when the linear's result has exactly these two users (the
// halves, in gate-then-up order, static shapes) and each half only the
// swiglu.
//
//===----------------------------------------------------------------------===//

#include "dialects/Tfm/TfmOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Matchers.h"

#define DEBUG_TYPE "kiln-fuse-swiglu"

namespace kiln {
#define GEN_PASS_DEF_FUSESWIGLU
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

/// Whether `v` is `tensor.extract_slice %of[0, 0, offset] [b, s, width]
/// [1, 1, 1]` with static sizes, used only by `user`.
bool isHalf(Value v, Value of, int64_t offset, int64_t width, Operation *user) {
  auto slice = v.getDefiningOp<tensor::ExtractSliceOp>();
  if (!slice || slice.getSource() != of || !v.hasOneUse() ||
      *v.getUsers().begin() != user || !slice.hasUnitStride() ||
      slice.getSourceType().getRank() != 3)
    return false;
  ArrayRef<int64_t> offsets = slice.getStaticOffsets();
  ArrayRef<int64_t> sizes = slice.getStaticSizes();
  auto source = slice.getSourceType();
  return offsets == ArrayRef<int64_t>{0, 0, offset} &&
         sizes == ArrayRef<int64_t>{source.getDimSize(0), source.getDimSize(1),
                                    width};
}

struct FuseSwiGlu : kiln::impl::FuseSwiGluBase<FuseSwiGlu> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<tfm::SwiGluOp> ops;
    getOperation().walk([&](tfm::SwiGluOp op) { ops.push_back(op); });
    for (tfm::SwiGluOp op : ops)
      fuse(op);
  }

  static void fuse(tfm::SwiGluOp op) {
    auto gate = op.getGate().getDefiningOp<tensor::ExtractSliceOp>();
    if (!gate)
      return;
    Value joined = gate.getSource();
    auto linear = joined.getDefiningOp<tfm::LinearOp>();
    auto type = dyn_cast<RankedTensorType>(joined.getType());
    if (!linear || linear.getSwiglu() || !type || !type.hasStaticShape() ||
        type.getRank() != 3 || type.getDimSize(2) % 2 != 0 ||
        !llvm::hasNItems(joined.getUses(), 2))
      return;
    const int64_t half = type.getDimSize(2) / 2;
    if (!isHalf(op.getGate(), joined, 0, half, op) ||
        !isHalf(op.getUp(), joined, half, half, op) ||
        op.getType() != RankedTensorType::get(
                            {type.getDimSize(0), type.getDimSize(1), half},
                            type.getElementType()))
      return;
    OpBuilder b(op);
    auto fused = tfm::LinearOp::create(
        b, linear.getLoc(), op.getType(), linear.getInput(), linear.getWeight(),
        linear.getBias(), linear.getLayoutAttr(),
        linear.getRmsNormEpsilonAttr(), b.getUnitAttr());
    op.getResult().replaceAllUsesWith(fused.getResult());
    Operation *up = op.getUp().getDefiningOp();
    op.erase();
    gate.erase();
    up->erase();
    linear.erase();
  }
};

} // namespace
