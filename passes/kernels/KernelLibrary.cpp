//===- KernelLibrary.cpp - Hand-built GPU kernels -------------------------===//
//
// The recipes' registry and the defaults of KernelRecipe; one file per
// recipe: GemvKN.cpp, GemvNK.cpp, GemvQuant.cpp, MatmulMma.cpp (sharing
// Gemv.h), ArgmaxRows.cpp, AttentionDecode.cpp, AttentionPrefill.cpp.
//
//===----------------------------------------------------------------------===//

#include "passes/kernels/KernelLibrary.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Operation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

using namespace mlir;

namespace kiln::kernels {

KernelRecipe::~KernelRecipe() = default;

Value KernelRecipe::fusableInit(Operation *) const { return {}; }
bool KernelRecipe::acceptsEpilogue(Operation *, Operation *) const {
  return false;
}
SmallVector<Operation *> KernelRecipe::members(Operation *) const { return {}; }
SmallVector<Value> KernelRecipe::scratch(Operation *) const { return {}; }
Operation *nextWithEffects(Operation *op) {
  Operation *next = op->getNextNode();
  while (next && (isa<memref::AllocOp>(next) ||
                  (isMemoryEffectFree(next) && next->getNumRegions() == 0)))
    next = next->getNextNode();
  return next;
}

/// Whether `consumer` reads `buf`, directly or through views of it.
static bool readsFrom(Operation *consumer, Value buf) {
  return llvm::any_of(consumer->getOperands(), [&](Value v) {
    while (v != buf) {
      auto view = v.getDefiningOp<ViewLikeOpInterface>();
      if (!view || isa<memref::ViewOp>(view))
        return false;
      v = view.getViewSource();
    }
    return true;
  });
}

SmallVector<Operation *> KernelRecipe::fusedOps(Operation *op) const {
  SmallVector<Operation *> ops = members(op);
  Operation *next = nextWithEffects(op);
  auto tag = next ? next->getAttrOfType<StringAttr>(kKernelAttr) : StringAttr();
  // The next op is this kernel's epilogue only if it consumes the result:
  // a kFused op after it may be another group's member (an attention
  // reading the q projection's RoPE after the v projection).
  auto linalgOp = dyn_cast<linalg::LinalgOp>(op);
  bool consumes = linalgOp && linalgOp.getNumDpsInits() == 1 && next &&
                  readsFrom(next, linalgOp.getDpsInits()[0]);
  if (tag && tag.getValue() == kFused && !llvm::is_contained(ops, next) &&
      consumes)
    ops.push_back(next);
  return ops;
}

ArrayRef<const KernelRecipe *> recipes() {
  static const KernelRecipe *const all[] = {
      &gemvKN(),      &gemvNK(),          &gemvQuant(),
      &matmulWgmma(), &matmulMma(),       &argmaxRows(),
      &sampleRows(),  &attentionDecode(), &attentionPrefill()};
  return all;
}

const KernelRecipe *lookup(StringRef name) {
  for (const KernelRecipe *recipe : recipes())
    if (recipe->name() == name)
      return recipe;
  return nullptr;
}

} // namespace kiln::kernels
