//===- PlanMemory.cpp - Static placement of buffers in the arena ----------===//
//
// Replaces every static memref.alloc of an entry point with a view of the
// arena argument at an offset chosen by liveness, so that the runtime
// allocates nothing per call. Lifetimes are counted in top-level ops: coarse
// (a loop nest is one step) but safe without any analysis of loop bodies.
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "passes/Passes.h"
#include "passes/kernels/KernelLibrary.h"
#include "passes/memory/ArenaPlan.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Interfaces/DataLayoutInterfaces.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/Debug.h"
#include "llvm/Support/MathExtras.h"

#define DEBUG_TYPE "kiln-plan-memory"

namespace kiln {
#define GEN_PASS_DEF_PLANMEMORY
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

/// One alloc to place, with what the rewrite needs besides its plan entry.
struct Allocation {
  memref::AllocOp alloc;
  PlannedBuffer plan;
};

/// Whether a result of an op that takes an alias of a buffer is itself taken
/// to alias it. Conservative: any memref or tensor result is, which covers
/// views, casts, to_tensor and loops carrying the buffer without a list.
bool mayAlias(Type type) { return isa<BaseMemRefType, TensorType>(type); }

/// The arena argument's index, or std::nullopt when the function has none.
/// Fails (with a diagnostic) when the marking is ambiguous or mistyped.
FailureOr<std::optional<unsigned>> findArena(func::FuncOp func) {
  std::optional<unsigned> arena;
  for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i) {
    if (!func.getArgAttr(i, kArenaAttr))
      continue;
    if (arena)
      return func.emitError()
             << "arguments #" << *arena << " and #" << i << " are both marked '"
             << kArenaAttr << "'; expected exactly one arena";
    arena = i;
  }
  if (!arena)
    return std::optional<unsigned>();
  auto type = dyn_cast<MemRefType>(func.getArgument(*arena).getType());
  if (!type || type.getRank() != 1 || !type.getElementType().isInteger(8) ||
      !type.getLayout().isIdentity())
    return func.emitError()
           << "arena argument #" << *arena
           << " must be a 1-D memref of i8 with identity layout, got "
           << func.getArgument(*arena).getType();
  return arena;
}

/// Bytes that `alloc` needs, rounded up to `alignment`.
FailureOr<int64_t> allocationSize(memref::AllocOp alloc, int64_t alignment,
                                  const DataLayout &layout) {
  MemRefType type = alloc.getType();
  if (!type.hasStaticShape())
    return alloc.emitOpError()
           << "has a dynamic shape " << type
           << "; static memory planning needs every buffer's size at compile "
              "time";
  if (!type.getLayout().isIdentity())
    return alloc.emitOpError()
           << "has a non-identity layout; an arena view can only produce "
              "identity layouts";
  if (std::optional<uint64_t> wanted = alloc.getAlignment();
      wanted && static_cast<int64_t>(*wanted) > alignment)
    return alloc.emitOpError() << "asks for alignment " << *wanted
                               << ", more than the arena's " << alignment;
  Type elementType = type.getElementType();
  if (!isa<IntegerType, FloatType, IndexType, VectorType, ComplexType>(
          elementType))
    return alloc.emitOpError()
           << "has element type " << elementType
           << " whose size in bytes the memory planner does not know";
  // i1 and other sub-byte types take one byte each, as in the LLVM lowering.
  auto elementBytes = static_cast<int64_t>(layout.getTypeSize(elementType));
  std::optional<int64_t> bytes =
      llvm::checkedMul(type.getNumElements(), elementBytes);
  if (!bytes || *bytes > std::numeric_limits<int64_t>::max() - alignment)
    return alloc.emitOpError() << "is too large to place in the arena";
  return static_cast<int64_t>(llvm::alignTo(*bytes, alignment));
}

struct PlanMemory : public kiln::impl::PlanMemoryBase<PlanMemory> {
  using PlanMemoryBase::PlanMemoryBase;

  void runOnOperation() override;

private:
  /// Sets the live range of `allocation` and collects deallocs of it.
  LogicalResult computeLiveness(Allocation &allocation, Block &body,
                                const DenseMap<Operation *, int64_t> &index,
                                llvm::SetVector<Operation *> &deallocs);
};

LogicalResult
PlanMemory::computeLiveness(Allocation &allocation, Block &body,
                            const DenseMap<Operation *, int64_t> &index,
                            llvm::SetVector<Operation *> &deallocs) {
  auto topLevelIndex = [&](Operation *op) {
    return index.lookup(body.findAncestorOpInBlock(*op));
  };
  int64_t start = topLevelIndex(allocation.alloc);
  int64_t end = start;
  SmallVector<Value> worklist = {allocation.alloc.getResult()};
  DenseSet<Value> seen(worklist.begin(), worklist.end());
  auto push = [&](ValueRange values) {
    for (Value v : values)
      if (mayAlias(v.getType()) && seen.insert(v).second)
        worklist.push_back(v);
  };
  while (!worklist.empty()) {
    Value value = worklist.pop_back_val();
    for (Operation *user : value.getUsers()) {
      // Freeing is not a use of the contents, and the dealloc goes away.
      if (isa<memref::DeallocOp>(user)) {
        deallocs.insert(user);
        continue;
      }
      if (isa<func::ReturnOp>(user))
        return allocation.alloc.emitOpError()
               << "escapes through a return; an arena buffer is reused "
                  "after the call";
      end = std::max(end, topLevelIndex(user));
      push(user->getResults());
      if (user->hasTrait<OpTrait::IsTerminator>())
        if (Operation *parent = user->getParentOp())
          push(parent->getResults());
    }
  }
  allocation.plan.start = start;
  allocation.plan.end = end;
  return success();
}

void PlanMemory::runOnOperation() {
  func::FuncOp func = getOperation();
  if (func.isExternal())
    return;
  FailureOr<std::optional<unsigned>> arenaIndex = findArena(func);
  if (failed(arenaIndex))
    return signalPassFailure();
  if (!*arenaIndex)
    return;
  if (alignment <= 0 || !llvm::isPowerOf2_64(alignment)) {
    func.emitError() << "alignment must be a positive power of two, got "
                     << alignment;
    return signalPassFailure();
  }
  BlockArgument arena = func.getArgument(**arenaIndex);
  auto arenaType = cast<MemRefType>(arena.getType());
  if (!arena.use_empty()) {
    func.emitError() << "arena argument #" << **arenaIndex
                     << " is already used; memory was planned before";
    return signalPassFailure();
  }
  if (!func.getBody().hasOneBlock()) {
    func.emitError() << "memory planning expects a single-block body";
    return signalPassFailure();
  }
  Block &body = func.getBody().front();
  DenseMap<Operation *, int64_t> index;
  for (auto [i, op] : llvm::enumerate(body))
    index[&op] = static_cast<int64_t>(i);
  // A kernel that computes other ops too (an epilogue, an attention's
  // steps: KernelRecipe::fusedOps) runs them at one point in time: the ops
  // from the first to the last of the group share an index, so the buffers
  // the group writes never share bytes with those it reads.
  for (Operation &op : body) {
    auto name = op.getAttrOfType<StringAttr>(kKernelAttr);
    const kernels::KernelRecipe *recipe =
        name ? kernels::lookup(name.getValue()) : nullptr;
    if (!recipe)
      continue;
    SmallVector<Operation *> group = recipe->fusedOps(&op);
    if (group.empty())
      continue;
    group.push_back(&op);
    Operation *first = group.front(), *last = group.front();
    for (Operation *o : group) {
      if (o->isBeforeInBlock(first))
        first = o;
      if (last->isBeforeInBlock(o))
        last = o;
    }
    int64_t at = index[first];
    for (Operation *o = first; o != last->getNextNode(); o = o->getNextNode())
      index[o] = at;
  }

  // Buffers a kernel keeps in registers (KernelRecipe::scratch) get no
  // bytes: their ops are a group's members, which emit no code.
  llvm::SmallPtrSet<Operation *, 8> scratch;
  for (Operation &op : body) {
    auto name = op.getAttrOfType<StringAttr>(kKernelAttr);
    if (const kernels::KernelRecipe *recipe =
            name ? kernels::lookup(name.getValue()) : nullptr)
      for (Value v : recipe->scratch(&op))
        scratch.insert(v.getDefiningOp());
  }

  // Collect and measure; report every bad alloc before giving up.
  DataLayout layout = DataLayout::closest(func);
  SmallVector<Allocation> allocations;
  llvm::SetVector<Operation *> deallocs;
  bool ok = true;
  SmallVector<memref::AllocOp> unplanned;
  func.walk([&](memref::AllocOp alloc) {
    if (scratch.contains(alloc)) {
      unplanned.push_back(alloc);
      return;
    }
    if (alloc.getType().getMemorySpace() != arenaType.getMemorySpace()) {
      alloc.emitOpError() << "is in memory space "
                          << alloc.getType().getMemorySpace()
                          << ", not the arena's";
      ok = false;
      return;
    }
    FailureOr<int64_t> size = allocationSize(alloc, alignment, layout);
    if (failed(size)) {
      ok = false;
      return;
    }
    Allocation allocation{alloc, PlannedBuffer{}};
    allocation.plan.size = *size;
    if (failed(computeLiveness(allocation, body, index, deallocs))) {
      ok = false;
      return;
    }
    allocations.push_back(allocation);
  });
  if (!ok)
    return signalPassFailure();

  SmallVector<PlannedBuffer> plan = llvm::map_to_vector(
      allocations, [](const Allocation &a) { return a.plan; });
  int64_t arenaSize = planArena(plan, alignment);
  std::string why;
  if (failed(checkArenaPlan(plan, alignment, arenaSize, &why))) {
    func.emitError() << "invalid memory plan: " << why;
    return signalPassFailure();
  }
  LLVM_DEBUG(llvm::dbgs() << "[" DEBUG_TYPE "] @" << func.getSymName() << ": "
                          << plan.size() << " buffers in " << arenaSize
                          << " bytes\n");

  // The views need the arena's final static type as their source.
  auto newArenaType =
      MemRefType::get({arenaSize}, arenaType.getElementType(),
                      MemRefLayoutAttrInterface(), arenaType.getMemorySpace());
  arena.setType(newArenaType);
  SmallVector<Type> inputs(func.getArgumentTypes());
  inputs[**arenaIndex] = newArenaType;
  func.setFunctionType(
      FunctionType::get(&getContext(), inputs, func.getResultTypes()));

  for (Operation *dealloc : deallocs)
    dealloc->erase();
  OpBuilder builder(&getContext());
  Builder attrs(&getContext());
  SmallVector<Attribute> entries;
  for (auto [allocation, placed] : llvm::zip_equal(allocations, plan)) {
    memref::AllocOp alloc = allocation.alloc;
    builder.setInsertionPoint(alloc);
    Value offset =
        arith::ConstantIndexOp::create(builder, alloc.getLoc(), placed.offset);
    Value view = memref::ViewOp::create(
        builder, alloc.getLoc(), alloc.getType(), arena, offset, ValueRange());
    alloc.replaceAllUsesWith(view);
    alloc.erase();
    entries.push_back(BufferPlacementAttr::get(
        &getContext(), placed.offset, placed.size, placed.start, placed.end));
  }
  // Scratch buffers: a view at offset 0 keeps the members' IR valid; no
  // kernel reads or writes it.
  for (memref::AllocOp alloc : unplanned) {
    for (Operation *user : llvm::make_early_inc_range(alloc->getUsers()))
      if (isa<memref::DeallocOp>(user))
        user->erase();
    builder.setInsertionPoint(alloc);
    Value offset = arith::ConstantIndexOp::create(builder, alloc.getLoc(), 0);
    auto view = memref::ViewOp::create(builder, alloc.getLoc(), alloc.getType(),
                                       arena, offset, ValueRange());
    view->setAttr(kScratchAttr, builder.getUnitAttr());
    alloc.replaceAllUsesWith(view.getResult());
    alloc.erase();
  }
  func->setAttr(kArenaSizeAttr, attrs.getI64IntegerAttr(arenaSize));
  func->setAttr(kMemoryPlanAttr, attrs.getArrayAttr(entries));
}

} // namespace
