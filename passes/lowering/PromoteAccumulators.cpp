//===- PromoteAccumulators.cpp - Reductions carried in registers (CPU) ----===//
//
// linalg's loops keep a reduction's accumulator in memory: the innermost
// loop of a projection loads acc[b, s, n], adds x * w and stores it back on
// every k. LLVM cannot keep it in a register (it cannot prove that the
// loads of x and w, views of the same arena, do not alias it) nor vectorize
// the sum (floating-point adds may not be reordered), so the CPU target ran
// a projection as one scalar dependency chain of adds.
//
// This pass proves the disjointness MLIR knows and LLVM does not: every
// buffer is a view at a static byte offset of one of the entry point's
// arguments (distinct runtime buffers), so two views alias only when their
// byte ranges overlap. A loop that loads and stores one loop-invariant
// element, and touches nothing that may alias it, carries that element as an
// iter_arg instead:
//
//   scf.for %k { %a = load %acc[%i]; %s = arith.addf %a, %p; store %s, %acc[%i]
//   }
//
// becomes
//
//   %a0 = load %acc[%i]
//   %r = scf.for %k iter_args(%a = %a0) { %s = arith.addf %a, %p
//   fastmath<reassoc, contract>; yield %s } store %r, %acc[%i]
//
// The add that combines the carried value is marked reassociable (and its
// product contractable into an FMA), which lets LLVM vectorize the sum: the
// result then depends on the reduction's length only, never on how a prompt
// was split into calls.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Builders.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <limits>

#define DEBUG_TYPE "kiln-promote-accumulators"

namespace kiln {
#define GEN_PASS_DEF_PROMOTEACCUMULATORS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// The bytes of a function argument's buffer a memref may touch.
struct Extent {
  Value root; // the function argument; null when unknown
  int64_t begin = 0, end = std::numeric_limits<int64_t>::max();
};

Extent extentOf(Value m) {
  if (auto arg = dyn_cast<BlockArgument>(m))
    return isa<FunctionOpInterface>(arg.getOwner()->getParentOp()) ? Extent{m}
                                                                   : Extent{};
  Operation *def = m.getDefiningOp();
  if (auto view = dyn_cast_or_null<memref::ViewOp>(def)) {
    Extent base = extentOf(view.getSource());
    std::optional<int64_t> shift = getConstantIntValue(view.getByteShift());
    auto type = view.getType();
    if (!base.root || !shift || !type.hasStaticShape() ||
        !type.getElementType().isIntOrFloat())
      return base.root ? Extent{base.root, base.begin, base.end} : Extent{};
    int64_t bytes = type.getNumElements() *
                    llvm::divideCeil(type.getElementTypeBitWidth(), 8);
    return Extent{base.root, base.begin + *shift, base.begin + *shift + bytes};
  }
  // Views of a view stay inside it.
  if (isa_and_nonnull<memref::SubViewOp, memref::ExpandShapeOp,
                      memref::CollapseShapeOp, memref::ReinterpretCastOp,
                      memref::CastOp>(def))
    return extentOf(def->getOperand(0));
  return Extent{};
}

bool mayAlias(Value a, Value b) {
  if (a == b)
    return true;
  Extent x = extentOf(a), y = extentOf(b);
  if (!x.root || !y.root)
    return true;
  if (x.root != y.root)
    return false; // distinct runtime buffers
  return x.begin < y.end && y.begin < x.end;
}

/// The load/store pair of `loop`'s body that can be carried, if any.
std::pair<memref::LoadOp, memref::StoreOp> findCandidate(scf::ForOp loop) {
  SmallVector<Operation *> accesses;
  bool opaque = false;
  loop.getBody()->walk([&](Operation *op) {
    if (isa<memref::LoadOp, memref::StoreOp>(op))
      accesses.push_back(op);
    else if (!isMemoryEffectFree(op) &&
             !op->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
      opaque = true;
  });
  if (opaque)
    return {};
  auto invariant = [&](ValueRange indices) {
    return llvm::all_of(indices, [&](Value v) {
      return !loop.getBodyRegion().isAncestor(v.getParentRegion());
    });
  };
  for (auto store : loop.getBody()->getOps<memref::StoreOp>()) {
    if (!invariant(store.getIndices()))
      continue;
    memref::LoadOp load;
    bool ok = true;
    for (Operation *op : accesses) {
      if (op == store)
        continue;
      auto l = dyn_cast<memref::LoadOp>(op);
      Value m = l ? l.getMemref() : cast<memref::StoreOp>(op).getMemref();
      if (!mayAlias(m, store.getMemref()))
        continue;
      // The one load of the element, in the body itself, before the store.
      if (!l || load || l.getMemref() != store.getMemref() ||
          l.getIndices() != store.getIndices() ||
          l->getBlock() != loop.getBody() || !l->isBeforeInBlock(store)) {
        ok = false;
        break;
      }
      load = l;
    }
    if (ok && load)
      return {load, store};
  }
  return {};
}

/// Marks the add that combines the carried value `acc` into `next`
/// reassociable, and a product it adds contractable.
void allowReordering(Value acc, Value next) {
  auto add = next.getDefiningOp<arith::AddFOp>();
  if (!add || (add.getLhs() != acc && add.getRhs() != acc))
    return;
  auto flags = arith::FastMathFlags::reassoc | arith::FastMathFlags::contract;
  add.setFastmath(add.getFastmath() | flags);
  Value other = add.getLhs() == acc ? add.getRhs() : add.getLhs();
  if (auto mul = other.getDefiningOp<arith::MulFOp>())
    mul.setFastmath(mul.getFastmath() | arith::FastMathFlags::contract);
}

bool promote(scf::ForOp loop) {
  auto [load, store] = findCandidate(loop);
  if (!load)
    return false;
  OpBuilder b(loop);
  Location loc = load.getLoc();
  Value init =
      memref::LoadOp::create(b, loc, load.getMemref(), load.getIndices());
  Value stored = store.getValueToStore();
  IRRewriter rewriter(loop.getContext());
  FailureOr<LoopLikeOpInterface> grown =
      cast<LoopLikeOpInterface>(loop.getOperation())
          .replaceWithAdditionalYields(
              rewriter, ValueRange{init},
              /*replaceInitOperandUsesInLoop=*/false,
              [&](OpBuilder &, Location, ArrayRef<BlockArgument>) {
                return SmallVector<Value>{stored};
              });
  if (failed(grown))
    return false;
  auto newLoop = cast<scf::ForOp>(grown->getOperation());
  BlockArgument acc = newLoop.getRegionIterArgs().back();
  load.getResult().replaceAllUsesWith(acc);
  allowReordering(acc, stored);
  b.setInsertionPointAfter(newLoop);
  memref::StoreOp::create(b, loc, newLoop.getResults().back(),
                          store.getMemref(), store.getIndices());
  store.erase();
  load.erase();
  return true;
}

struct PromoteAccumulators
    : kiln::impl::PromoteAccumulatorsBase<PromoteAccumulators> {
  void runOnOperation() override {
    // One element at a time, innermost loops first (post-order), until no
    // loop carries anything more: promoting replaces the loop.
    bool changed = true;
    while (changed) {
      changed = false;
      getOperation().walk([&](scf::ForOp loop) {
        if (!promote(loop))
          return WalkResult::advance();
        changed = true;
        return WalkResult::interrupt();
      });
    }
  }
};

} // namespace
