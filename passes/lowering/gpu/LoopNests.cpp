//===- LoopNests.cpp - The loop nests kiln-map-loops-to-gpu maps ----------===//

#include "passes/lowering/gpu/LoopNests.h"
#include "dialects/Kiln/KilnDialect.h"

#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/TypeSwitch.h"

namespace kiln::gpu_mapping {

std::optional<int64_t> constantIndex(Value v) {
  if (auto c = v.getDefiningOp<arith::ConstantIndexOp>())
    return c.value();
  return std::nullopt;
}

std::optional<ParallelNest> parallelNest(Operation *op) {
  ParallelNest nest;
  if (auto par = dyn_cast<scf::ParallelOp>(op)) {
    if (par.getNumResults() != 0)
      return std::nullopt;
    for (auto [lb, ub, step] :
         llvm::zip(par.getLowerBound(), par.getUpperBound(), par.getStep())) {
      if (constantIndex(lb) != 0 || constantIndex(step) != 1 ||
          !constantIndex(ub))
        return std::nullopt;
      nest.tripCounts.push_back(*constantIndex(ub));
    }
    // getInductionVars() returns a new range each call: take one.
    auto ivs = par.getInductionVars();
    nest.ivs.assign(ivs.begin(), ivs.end());
    nest.body = par.getBody();
    return nest;
  }
  return std::nullopt;
}

/// Binds the nest's induction variables to the digits of `linear` in the
/// nest's iteration space, row-major: the last dimension varies fastest, so
/// neighbouring threads touch neighbouring elements. `index` makes the
/// index constants.
void delinearize(OpBuilder &b, Location loc, const ParallelNest &nest,
                 Value linear, function_ref<Value(int64_t)> index,
                 IRMapping &map) {
  Value rest = linear;
  for (int i = nest.tripCounts.size() - 1; i >= 0; --i) {
    Value n = index(nest.tripCounts[i]);
    map.map(nest.ivs[i], arith::RemUIOp::create(b, loc, rest, n));
    rest = arith::DivUIOp::create(b, loc, rest, n);
  }
}

static std::optional<std::pair<arith::AtomicRMWKind, gpu::AllReduceOperation>>
reductionKind(Operation *op) {
  using K = arith::AtomicRMWKind;
  using G = gpu::AllReduceOperation;
  using R = std::optional<std::pair<K, G>>;
  return llvm::TypeSwitch<Operation *, R>(op)
      .Case([](arith::AddFOp) { return R({K::addf, G::ADD}); })
      .Case([](arith::MulFOp) { return R({K::mulf, G::MUL}); })
      .Case([](arith::MaximumFOp) { return R({K::maximumf, G::MAXIMUMF}); })
      .Case([](arith::MinimumFOp) { return R({K::minimumf, G::MINIMUMF}); })
      .Case([](arith::MaxNumFOp) { return R({K::maxnumf, G::MAXNUMF}); })
      .Case([](arith::MinNumFOp) { return R({K::minnumf, G::MINNUMF}); })
      .Case([](arith::AddIOp) { return R({K::addi, G::ADD}); })
      .Default([](Operation *) { return std::nullopt; });
}

/// Whether `v` has the same value in every iteration of `loop`: defined
/// outside it, or computed inside it by effect-free ops from such values
/// (the loop lowering recomputes index expressions like a GQA head's kv head
/// in the innermost body).
static bool isLoopInvariant(scf::ForOp loop, Value v) {
  if (loop.isDefinedOutsideOfLoop(v))
    return true;
  Operation *def = v.getDefiningOp();
  return def && def->getBlock() == loop.getBody() && isMemoryEffectFree(def) &&
         def->getNumRegions() == 0 &&
         llvm::all_of(def->getOperands(), [&](Value operand) {
           return isLoopInvariant(loop, operand);
         });
}

std::optional<ReductionLoop> matchReductionLoop(Operation *op) {
  auto loop = dyn_cast_or_null<scf::ForOp>(op);
  if (!loop || loop.getNumResults() != 0 ||
      constantIndex(loop.getLowerBound()) != 0 ||
      constantIndex(loop.getStep()) != 1 ||
      !constantIndex(loop.getUpperBound()))
    return std::nullopt;
  ReductionLoop r;
  r.loop = loop;
  r.tripCount = *constantIndex(loop.getUpperBound());
  Block *body = loop.getBody();
  for (Operation &inner : body->without_terminator()) {
    if (inner.getNumRegions())
      return std::nullopt;
    if (auto store = dyn_cast<memref::StoreOp>(inner)) {
      if (r.store)
        return std::nullopt;
      r.store = store;
    } else if (!isa<memref::LoadOp>(inner) && !isMemoryEffectFree(&inner)) {
      return std::nullopt;
    }
  }
  if (!r.store || !loop.isDefinedOutsideOfLoop(r.store.getMemRef()) ||
      !llvm::all_of(r.store.getIndices(),
                    [&](Value v) { return loop.isDefinedOutsideOfLoop(v); }))
    return std::nullopt;
  r.combine = r.store.getValue().getDefiningOp();
  if (!r.combine || r.combine->getBlock() != body ||
      r.combine->getNumOperands() != 2 || !r.combine->hasOneUse())
    return std::nullopt;
  auto kind = reductionKind(r.combine);
  if (!kind)
    return std::nullopt;
  std::tie(r.kind, r.gpuKind) = *kind;
  for (unsigned i = 0; i < 2 && !r.load; ++i) {
    auto load = r.combine->getOperand(i).getDefiningOp<memref::LoadOp>();
    if (load && load->hasOneUse() && load.getMemRef() == r.store.getMemRef() &&
        llvm::equal(load.getIndices(), r.store.getIndices())) {
      r.load = load;
      r.contribution = r.combine->getOperand(1 - i);
    }
  }
  if (!r.load)
    return std::nullopt;
  Value k = loop.getInductionVar();
  auto invariant = [&](Value v) { return isLoopInvariant(loop, v); };
  r.contiguous = llvm::all_of(body->getOps<memref::LoadOp>(), [&](auto load) {
    auto indices = load.getIndices();
    if (load == r.load || llvm::all_of(indices, invariant))
      return true;
    return !indices.empty() && indices.back() == k &&
           load.getMemRefType().isLastDimUnitStride() &&
           llvm::all_of(indices.drop_back(), invariant);
  });
  return r;
}

std::optional<ReductionNest> matchReductionNest(Operation *op) {
  ReductionNest r;
  if (std::optional<ReductionLoop> loop = matchReductionLoop(op)) {
    r.reduction = *loop;
    return r;
  }
  r.nest = parallelNest(op);
  if (!r.nest)
    return std::nullopt;
  Operation *found = nullptr;
  for (Operation &inner : r.nest->body->without_terminator()) {
    if (isMemoryEffectFree(&inner) && !inner.getNumRegions())
      continue;
    if (found)
      return std::nullopt;
    found = &inner;
  }
  std::optional<ReductionLoop> loop = matchReductionLoop(found);
  if (!loop)
    return std::nullopt;
  r.reduction = *loop;
  for (int64_t n : r.nest->tripCounts)
    r.points *= n;
  return r;
}

std::optional<Fill> matchFill(Operation *op) {
  memref::StoreOp store = dyn_cast<memref::StoreOp>(op);
  std::optional<ParallelNest> nest;
  if (!store) {
    nest = parallelNest(op);
    if (!nest || !isa<scf::ParallelOp>(op) ||
        !llvm::hasSingleElement(nest->body->without_terminator()))
      return std::nullopt;
    store = dyn_cast<memref::StoreOp>(nest->body->front());
  }
  if (!store)
    return std::nullopt;
  auto cst = store.getValue().getDefiningOp<arith::ConstantOp>();
  MemRefType type = store.getMemRefType();
  if (!cst || !type.hasStaticShape())
    return std::nullopt;
  // Every index is a distinct induction variable spanning its dimension, or
  // 0 in a dimension of size 1.
  SmallVector<bool> covered(nest ? nest->ivs.size() : 0, false);
  for (auto [index, size] : llvm::zip(store.getIndices(), type.getShape())) {
    if (constantIndex(index) == 0 && size == 1)
      continue;
    if (!nest)
      return std::nullopt;
    auto it = llvm::find(nest->ivs, index);
    if (it == nest->ivs.end())
      return std::nullopt;
    size_t dim = it - nest->ivs.begin();
    if (nest->tripCounts[dim] != size || covered[dim])
      return std::nullopt;
    covered[dim] = true;
  }
  if (!llvm::all_of(covered, [](bool c) { return c; }))
    return std::nullopt;
  return Fill{store.getMemRef(), cst.getValue()};
}

/// Ops that only compute addresses or constants; the host keeps none of
/// them once every kernel has rematerialised what it uses.
bool isDefinition(Operation *op) {
  return op->getNumRegions() == 0 && isMemoryEffectFree(op) &&
         !op->hasTrait<OpTrait::IsTerminator>();
}

/// A top-level read feeding a kernel (a decode step's position, read to
/// decide whether to write the KV cache). It moves into the kernel that uses
/// it; entry points only read inputs that no earlier kernel writes, so
/// reading later gives the same value.
bool isMovableRead(Operation *op) {
  auto effects = dyn_cast<MemoryEffectOpInterface>(op);
  return op->getNumRegions() == 0 && effects &&
         effects.onlyHasEffect<MemoryEffects::Read>();
}

} // namespace kiln::gpu_mapping
