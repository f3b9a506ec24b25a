//===- OutlineLoopNests.cpp - One host function per planned loop nest -----===//
//
// The CPU target's entry points hold every loop nest of the model in one
// function; LLVM's machine passes (register allocation, scheduling) grow
// faster than linearly in a function's size, so a real model's @prefill took
// minutes to code-generate. This pass moves each top-level loop nest of an
// entry point into a private `noinline` function of its own, as the GPU
// target outlines each nest into a kernel:
//
//   %v = memref.view %arena[%c0][] : memref<N x i8> to memref<4x128xf32>
//   scf.for ... { ... %v ... }
//
// becomes
//
//   func.call @prefill_nest3(%arena) : (memref<N x i8>) -> ()
//   func.func private @prefill_nest3(%a: memref<N x i8>)
//       attributes {kiln.no_inline}
//   { %v = memref.view %a[%c0][] ...; scf.for ... }
//
// The side-effect-free ops a nest uses from the entry point (views, index
// constants) are cloned into the new function, so only the entry point's own
// arguments (identity-layout memrefs the bare-pointer calling convention
// accepts) cross the call.
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "kiln/Target/CpuTarget.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"

#define DEBUG_TYPE "kiln-outline-loop-nests"

namespace kiln {
#define GEN_PASS_DEF_OUTLINELOOPNESTS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// The values `nest` uses from outside it, and the pure ops producing them
/// (transitively, up to block arguments and impure results), in an order
/// that can be cloned: producers first.
struct Capture {
  llvm::SetVector<Value> arguments;
  llvm::SetVector<Operation *> cloned;
};

LogicalResult collect(Operation *nest, Capture &c) {
  llvm::SetVector<Value> above;
  for (Region &region : nest->getRegions())
    getUsedValuesDefinedAbove(region, above);
  for (Value v : nest->getOperands())
    above.insert(v);
  llvm::SmallVector<Value> work(above.begin(), above.end());
  llvm::SetVector<Operation *> seen;
  // Depth-first over producers; post-order insertion keeps producers first.
  std::function<LogicalResult(Value)> visit = [&](Value v) -> LogicalResult {
    Operation *def = v.getDefiningOp();
    if (!def || !isPure(def) || def->getNumRegions() != 0) {
      if (!isa<MemRefType, IndexType, IntegerType, FloatType>(v.getType()))
        return failure();
      c.arguments.insert(v);
      return success();
    }
    if (!seen.insert(def))
      return success();
    for (Value operand : def->getOperands())
      if (failed(visit(operand)))
        return failure();
    c.cloned.insert(def);
    return success();
  };
  for (Value v : work)
    if (failed(visit(v)))
      return failure();
  return success();
}

struct OutlineLoopNests : kiln::impl::OutlineLoopNestsBase<OutlineLoopNests> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<func::FuncOp> entries;
    for (auto f : module.getOps<func::FuncOp>())
      if (!f.isExternal() && !f.isPrivate())
        entries.push_back(f);
    for (func::FuncOp entry : entries) {
      SmallVector<Operation *> nests;
      for (Operation &op : entry.getBody().getOps())
        if (op.getNumRegions() != 0 && op.getNumResults() == 0)
          nests.push_back(&op);
      Operation *after = entry; // the new functions follow in nest order
      unsigned index = 0;
      for (Operation *nest : nests)
        if (failed(outline(entry, nest, index++, after, symbols)))
          return signalPassFailure();
      // The views and constants only the nests used are dead now.
      for (Operation &op :
           llvm::make_early_inc_range(llvm::reverse(entry.getBody().front())))
        if (op.use_empty() && isPure(&op) &&
            !op.hasTrait<OpTrait::IsTerminator>())
          op.erase();
    }
  }

  LogicalResult outline(func::FuncOp entry, Operation *nest, unsigned index,
                        Operation *&after, SymbolTable &symbols) {
    Capture c;
    if (failed(collect(nest, c)))
      return nest->emitOpError(
          "uses a value that cannot cross a call (not a memref or scalar)");
    OpBuilder b(entry);
    b.setInsertionPointAfter(after);
    SmallVector<Type> argTypes;
    for (Value v : c.arguments)
      argTypes.push_back(v.getType());
    auto fn = func::FuncOp::create(
        b, nest->getLoc(), (entry.getSymName() + "_nest" + Twine(index)).str(),
        b.getFunctionType(argTypes, {}));
    fn.setPrivate();
    // Keep the nest a function of its own through LLVM's inliner. func-to-llvm
    // drops func.func's attributes named like llvm.func's inherent ones, so
    // the marker travels as a discardable attribute and the CPU target turns
    // it into `no_inline` on the llvm.func (see CpuTarget.cpp).
    fn->setAttr(kiln::kNoInlineAttr, b.getUnitAttr());
    symbols.insert(fn); // already placed; renames on a clash
    after = fn;
    Block *body = fn.addEntryBlock();
    IRMapping map;
    for (auto [v, arg] : llvm::zip(c.arguments, body->getArguments()))
      map.map(v, arg);
    b.setInsertionPointToStart(body);
    for (Operation *op : c.cloned)
      b.clone(*op, map);
    b.clone(*nest, map);
    func::ReturnOp::create(b, nest->getLoc());

    b.setInsertionPoint(nest);
    func::CallOp::create(b, nest->getLoc(), fn, c.arguments.getArrayRef());
    nest->erase();
    return success();
  }
};

} // namespace
