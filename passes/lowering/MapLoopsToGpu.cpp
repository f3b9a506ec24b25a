//===- MapLoopsToGpu.cpp - Planned loop nests to GPU kernels --------------===//
//
// Each top-level loop nest of an entry point becomes a kernel whose only
// parameters are the runtime's four buffers; the entry point becomes the
// launch schedule (a straight line of gpu.launch_func).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/Support/MathExtras.h"

#define DEBUG_TYPE "kiln-map-loops-to-gpu"

namespace kiln {
#define GEN_PASS_DEF_MAPLOOPSTOGPU
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

/// A loop nest whose iterations are independent: its static trip counts
/// (lower bound 0, step 1), induction variables and innermost body.
struct ParallelNest {
  SmallVector<int64_t> tripCounts;
  SmallVector<Value> ivs;
  Block *body = nullptr;
};

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
    for (auto [lb, ub, step] : llvm::zip(par.getLowerBound(),
                                         par.getUpperBound(), par.getStep())) {
      if (constantIndex(lb) != 0 || constantIndex(step) != 1 ||
          !constantIndex(ub))
        return std::nullopt;
      nest.tripCounts.push_back(*constantIndex(ub));
    }
    nest.ivs.assign(par.getInductionVars().begin(),
                    par.getInductionVars().end());
    nest.body = par.getBody();
    return nest;
  }
  // A perfect nest of scf.for marked independent (kv_append's row loops).
  auto loop = dyn_cast<scf::ForOp>(op);
  while (loop && loop->hasAttr("kiln.independent") &&
         loop.getNumResults() == 0 && constantIndex(loop.getLowerBound()) == 0 &&
         constantIndex(loop.getStep()) == 1 &&
         constantIndex(loop.getUpperBound())) {
    nest.tripCounts.push_back(*constantIndex(loop.getUpperBound()));
    nest.ivs.push_back(loop.getInductionVar());
    nest.body = loop.getBody();
    auto inner = dyn_cast<scf::ForOp>(&nest.body->front());
    if (!inner || &nest.body->front() != nest.body->getTerminator()->getPrevNode())
      break;
    loop = inner;
  }
  if (nest.tripCounts.empty())
    return std::nullopt;
  return nest;
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
  return op->getNumRegions() == 0 && effects && effects.onlyHasEffect<MemoryEffects::Read>();
}

struct MapLoopsToGpu : kiln::impl::MapLoopsToGpuBase<MapLoopsToGpu> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    OpBuilder builder(module.getContext());
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    builder.getUnitAttr());
    builder.setInsertionPointToEnd(module.getBody());
    gpu::GPUModuleOp kernels;
    for (auto func : llvm::to_vector(module.getOps<func::FuncOp>())) {
      if (!func->hasAttr("kiln.entry"))
        continue;
      if (!kernels) {
        builder.setInsertionPointToEnd(module.getBody());
        kernels = gpu::GPUModuleOp::create(builder, module.getLoc(),
                                           "kiln_kernels");
      }
      if (failed(mapFunction(func, kernels)))
        return signalPassFailure();
    }
  }

  LogicalResult mapFunction(func::FuncOp func, gpu::GPUModuleOp kernels) {
    Block &body = func.getBody().front();
    if (!llvm::hasSingleElement(func.getBody()))
      return func.emitError("expected a single-block entry point");
    SmallVector<Operation *> work;
    for (Operation &op : body.without_terminator())
      if (!isDefinition(&op) && !isMovableRead(&op))
        work.push_back(&op);
    for (auto [index, op] : llvm::enumerate(work))
      if (failed(outline(func, op, kernels, index)))
        return failure();
    // The host keeps only the launches.
    SmallVector<Operation *> ops;
    for (Operation &op : body.without_terminator())
      ops.push_back(&op);
    for (Operation *op : llvm::reverse(ops))
      if ((isDefinition(op) || isMovableRead(op)) && op->use_empty())
        op->erase();
    return success();
  }

  LogicalResult outline(func::FuncOp func, Operation *op,
                        gpu::GPUModuleOp kernels, size_t index) {
    MLIRContext *ctx = func.getContext();
    OpBuilder builder(ctx);
    Location loc = op->getLoc();
    Block &hostBody = func.getBody().front();

    // The kernel: same parameters as the entry point (the four buffers).
    builder.setInsertionPointToEnd(kernels.getBody());
    std::string name =
        (func.getSymName() + "_k" + std::to_string(index)).str();
    auto type = FunctionType::get(ctx, hostBody.getArgumentTypes(), {});
    auto kernel = gpu::GPUFuncOp::create(builder, loc, name, type);
    kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(),
                    builder.getUnitAttr());
    Block &entry = kernel.getBody().front();
    builder.setInsertionPointToStart(&entry);
    IRMapping map;
    for (auto [host, dev] :
         llvm::zip(hostBody.getArguments(), entry.getArguments()))
      map.map(host, dev);

    // Rematerialise every outside value the op uses (views, constants).
    std::function<LogicalResult(Value)> materialize =
        [&](Value v) -> LogicalResult {
      if (map.contains(v))
        return success();
      Operation *def = v.getDefiningOp();
      if (!def || (!isDefinition(def) && !isMovableRead(def)))
        return op->emitOpError("uses a value the GPU kernel cannot "
                               "recompute");
      for (Value operand : def->getOperands())
        if (failed(materialize(operand)))
          return failure();
      builder.clone(*def, map);
      return success();
    };
    WalkResult walk = op->walk([&](Operation *inner) {
      for (Value operand : inner->getOperands()) {
        Operation *def = operand.getDefiningOp();
        Operation *owner = def ? def : operand.getParentRegion()->getParentOp();
        if (!op->isAncestor(owner) && failed(materialize(operand)))
          return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();

    // Thread mapping.
    int64_t total = 1, threads = 1, blocks = 1;
    std::optional<ParallelNest> nest = parallelNest(op);
    if (nest) {
      for (int64_t n : nest->tripCounts)
        total *= n;
      threads = std::min<int64_t>(threadsPerBlock,
                                  llvm::alignTo(std::max<int64_t>(total, 1), 32));
      blocks = llvm::divideCeil(total, threads);
      Value bid = gpu::BlockIdOp::create(builder, loc, gpu::Dimension::x);
      Value tid = gpu::ThreadIdOp::create(builder, loc, gpu::Dimension::x);
      llvm::SmallDenseMap<int64_t, Value> consts;
      auto index = [&](int64_t n) -> Value {
        Value &v = consts[n];
        if (!v)
          v = arith::ConstantIndexOp::create(builder, loc, n);
        return v;
      };
      Value width = index(threads);
      Value gid = arith::AddIOp::create(
          builder, loc, arith::MulIOp::create(builder, loc, bid, width), tid);
      Value inRange = arith::CmpIOp::create(
          builder, loc, arith::CmpIPredicate::ult, gid,
          index(total));
      auto guard = scf::IfOp::create(builder, loc, inRange,
                                     /*withElseRegion=*/false);
      builder.setInsertionPointToStart(&guard.getThenRegion().front());
      // Row-major delinearisation: the last dimension varies fastest, so
      // neighbouring threads touch neighbouring elements.
      Value rest = gid;
      for (int i = nest->tripCounts.size() - 1; i >= 0; --i) {
        Value n = index(nest->tripCounts[i]);
        map.map(nest->ivs[i], arith::RemUIOp::create(builder, loc, rest, n));
        rest = arith::DivUIOp::create(builder, loc, rest, n);
      }
      for (Operation &inner : nest->body->without_terminator())
        builder.clone(inner, map);
      builder.setInsertionPointAfter(guard);
    } else {
      builder.clone(*op, map);
    }
    gpu::ReturnOp::create(builder, loc);

    // The launch replaces the op on the host.
    builder.setInsertionPoint(op);
    llvm::SmallDenseMap<int64_t, Value> dims;
    auto dim = [&](int64_t n) -> Value {
      Value &v = dims[n];
      if (!v)
        v = arith::ConstantIndexOp::create(builder, loc, n);
      return v;
    };
    gpu::LaunchFuncOp::create(builder, loc, kernel,
                              gpu::KernelDim3{dim(blocks), dim(1), dim(1)},
                              gpu::KernelDim3{dim(threads), dim(1), dim(1)},
                              Value(), hostBody.getArguments());
    op->erase();
    return success();
  }
};

} // namespace
