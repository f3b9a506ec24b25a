//===- LowerCollectivesToCalls.cpp - Host collectives for the CPU target --===//
//
// A tensor-parallel rank's entry point gets a fifth argument, the runtime's
// KilnHostCollectives of the rank running it (kiln/runtime/Collectives.h),
// and each bufferized tfm.all_reduce / tfm.all_gather becomes an indirect
// call through it:
//
//   tfm.all_reduce %buf {ranks = 2} : memref<1x1x128xf32>
//   ->
//   %p  = <address of %buf's first element>            : !llvm.ptr
//   %fn = llvm.load (getelementptr %ctx[kAllReduceSlot]) : !llvm.ptr
//   llvm.call %fn(%ctx, %p, 128, F32)
//
// The kernel library so needs no symbol of the runtime: the calls go through
// the pointers the runtime hands each call.
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "dialects/Tfm/TfmOps.h"
#include "passes/Passes.h"

#include "kiln/runtime/ArtifactTypes.h"
#include "kiln/runtime/Collectives.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"

#define DEBUG_TYPE "kiln-lower-collectives-to-calls"

namespace kiln {
#define GEN_PASS_DEF_LOWERCOLLECTIVESTOCALLS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

/// The runtime's element type code of a collective's float element type.
std::optional<int32_t> dtypeCode(Type t) {
  if (t.isF32())
    return static_cast<int32_t>(runtime::DType::F32);
  if (t.isF16())
    return static_cast<int32_t>(runtime::DType::F16);
  if (t.isBF16())
    return static_cast<int32_t>(runtime::DType::BF16);
  return std::nullopt;
}

struct LowerCollectivesToCalls
    : kiln::impl::LowerCollectivesToCallsBase<LowerCollectivesToCalls> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      SmallVector<Operation *> collectives;
      func.walk([&](Operation *op) {
        if (isa<tfm::AllReduceOp, tfm::AllGatherOp>(op))
          collectives.push_back(op);
      });
      if (collectives.empty())
        continue;
      if (!func->hasAttr(kEntryAttr)) {
        collectives.front()->emitError(
            "a collective outside an entry point has no collectives "
            "argument to call through");
        return signalPassFailure();
      }
      auto ptrType = LLVM::LLVMPointerType::get(&getContext());
      if (failed(func.insertArgument(func.getNumArguments(), ptrType, {},
                                     func.getLoc())))
        return signalPassFailure();
      Value context = func.getArguments().back();
      for (Operation *op : collectives)
        if (failed(lower(op, context)))
          return signalPassFailure();
    }
  }

  /// The address of `buffer`'s first element, which must be contiguous.
  FailureOr<Value> address(OpBuilder &b, Location loc, Value buffer,
                           Operation *op) {
    auto type = cast<MemRefType>(buffer.getType());
    if (!type.hasStaticShape() ||
        !type.areTrailingDimsContiguous(type.getRank()))
      return op->emitOpError("needs a contiguous static buffer, got ") << type;
    auto meta = memref::ExtractStridedMetadataOp::create(b, loc, buffer);
    Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, buffer);
    int64_t bytes = type.getElementTypeBitWidth() / 8;
    Value offset =
        arith::MulIOp::create(b, loc, meta.getOffset(),
                              arith::ConstantIndexOp::create(b, loc, bytes));
    Value at = arith::AddIOp::create(b, loc, base, offset);
    Value i64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), at);
    return LLVM::IntToPtrOp::create(
               b, loc, LLVM::LLVMPointerType::get(b.getContext()), i64)
        .getResult();
  }

  LogicalResult lower(Operation *op, Value context) {
    OpBuilder b(op);
    Location loc = op->getLoc();
    auto ptrType = LLVM::LLVMPointerType::get(b.getContext());
    auto input = cast<MemRefType>(op->getOperand(0).getType());
    std::optional<int32_t> dtype = dtypeCode(input.getElementType());
    if (!dtype)
      return op->emitOpError("has no host collective for ")
             << input.getElementType();
    FailureOr<Value> in = address(b, loc, op->getOperand(0), op);
    if (failed(in))
      return failure();
    SmallVector<Value> args{context, *in};
    int64_t slot = runtime::kAllReduceSlot;
    if (auto gather = dyn_cast<tfm::AllGatherOp>(op)) {
      if (gather.getAxis() != 0)
        return op->emitOpError("gathers along axis 0 only on the host");
      FailureOr<Value> out = address(b, loc, gather.getInit(), op);
      if (failed(out))
        return failure();
      args.push_back(*out);
      slot = runtime::kAllGatherSlot;
    }
    args.push_back(LLVM::ConstantOp::create(b, loc, b.getI64Type(),
                                            input.getNumElements()));
    args.push_back(LLVM::ConstantOp::create(b, loc, b.getI32Type(), *dtype));
    Value slotPtr =
        LLVM::GEPOp::create(b, loc, ptrType, ptrType, context,
                            ArrayRef<LLVM::GEPArg>{static_cast<int32_t>(slot)});
    Value fn = LLVM::LoadOp::create(b, loc, ptrType, slotPtr);
    SmallVector<Type> params;
    for (Value a : args)
      params.push_back(a.getType());
    auto fnType = LLVM::LLVMFunctionType::get(
        LLVM::LLVMVoidType::get(b.getContext()), params);
    SmallVector<Value> operands{fn};
    operands.append(args);
    LLVM::CallOp::create(b, loc, fnType, operands);
    op->erase();
    return success();
  }
};

} // namespace
