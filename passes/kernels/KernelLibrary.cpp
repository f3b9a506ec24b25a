//===- KernelLibrary.cpp - Hand-built GPU kernels -------------------------===//
//
// The recipes' registry and the defaults of KernelRecipe; one file per
// recipe: GemvKN.cpp, GemvNK.cpp, GemvQuant.cpp, MatmulMma.cpp (sharing
// Gemv.h), ArgmaxRows.cpp, AttentionDecode.cpp, AttentionPrefill.cpp.
//
//===----------------------------------------------------------------------===//

#include "passes/kernels/KernelLibrary.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Operation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

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

SmallVector<Operation *> KernelRecipe::fusedOps(Operation *op) const {
  SmallVector<Operation *> ops = members(op);
  Operation *next = nextWithEffects(op);
  auto tag = next ? next->getAttrOfType<StringAttr>(kKernelAttr) : StringAttr();
  if (tag && tag.getValue() == kFused && !llvm::is_contained(ops, next))
    ops.push_back(next);
  return ops;
}

ArrayRef<const KernelRecipe *> recipes() {
  static const KernelRecipe *const all[] = {
      &gemvKN(),     &gemvNK(),          &gemvQuant(),       &matmulMma(),
      &argmaxRows(), &attentionDecode(), &attentionPrefill()};
  return all;
}

const KernelRecipe *lookup(StringRef name) {
  for (const KernelRecipe *recipe : recipes())
    if (recipe->name() == name)
      return recipe;
  return nullptr;
}

} // namespace kiln::kernels
