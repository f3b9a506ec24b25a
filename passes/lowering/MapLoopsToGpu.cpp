//===- MapLoopsToGpu.cpp - Planned loop nests to GPU kernels --------------===//
//
// Each top-level loop nest of an entry point becomes a kernel whose only
// parameters are the runtime's four buffers; the entry point becomes the
// launch schedule (a straight line of gpu.launch_func).
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "passes/Passes.h"
#include "passes/kernels/KernelBuilder.h"
#include "passes/kernels/KernelLibrary.h"
#include "passes/lowering/gpu/LoopNests.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/MathExtras.h"

#include <functional>

#define DEBUG_TYPE "kiln-map-loops-to-gpu"

namespace kiln {
#define GEN_PASS_DEF_MAPLOOPSTOGPU
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;
using namespace kiln::gpu_mapping;

namespace {

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
      if (!func->hasAttr(kEntryAttr))
        continue;
      if (!kernels) {
        builder.setInsertionPointToEnd(module.getBody());
        kernels =
            gpu::GPUModuleOp::create(builder, module.getLoc(), "kiln_kernels");
        if (clusterBlocks > 1)
          kernels->setAttr(kClusterBlocksAttr,
                           builder.getI64IntegerAttr(clusterBlocks));
      }
      if (failed(mapFunction(func, kernels)))
        return signalPassFailure();
    }
  }

  /// Whether `op` writes every element of `memref` exactly once from an
  /// initial value it can take as a constant instead of reading it.
  static bool absorbsFill(Operation *op, Value memref) {
    if (auto name = op->getAttrOfType<StringAttr>(kKernelAttr)) {
      const kernels::KernelRecipe *recipe = kernels::lookup(name.getValue());
      return recipe && recipe->fusableInit(op) == memref;
    }
    std::optional<ReductionNest> r = matchReductionNest(op);
    if (!r || r->reduction.store.getMemRef() != memref)
      return false;
    auto type = cast<MemRefType>(memref.getType());
    // One point per element: the store's indices are the nest's variables.
    return type.getNumElements() == r->points &&
           (!r->nest || llvm::all_of(r->nest->ivs, [&](Value iv) {
             return llvm::is_contained(r->reduction.store.getIndices(), iv);
           }));
  }

  LogicalResult mapFunction(func::FuncOp func, gpu::GPUModuleOp kernels) {
    Block &body = func.getBody().front();
    if (!llvm::hasSingleElement(func.getBody()))
      return func.emitError("expected a single-block entry point");
    SmallVector<Operation *> work;
    for (Operation &op : body.without_terminator())
      if (!isDefinition(&op) && !isMovableRead(&op))
        work.push_back(&op);
    // A fill of an accumulator right before the kernel that reduces into all
    // of it becomes that kernel's initial value: one launch fewer.
    // Ops tagged kFused are built into the kernel that computes them
    // (KernelRecipe::fusedOps) and get no launch of their own.
    struct ToBuild {
      Operation *op;
      TypedAttr init;
    };
    llvm::erase_if(work, [](Operation *op) {
      auto k = op->getAttrOfType<StringAttr>(kKernelAttr);
      return k && k.getValue() == kernels::kFused;
    });
    SmallVector<ToBuild> kernelsToBuild;
    for (size_t i = 0; i < work.size(); ++i) {
      std::optional<Fill> fill = matchFill(work[i]);
      if (fill && i + 1 < work.size() &&
          absorbsFill(work[i + 1], fill->memref)) {
        work[i]->erase();
        kernelsToBuild.push_back({work[++i], fill->value});
      } else {
        kernelsToBuild.push_back({work[i], TypedAttr()});
      }
    }
    for (auto [index, item] : llvm::enumerate(kernelsToBuild))
      if (failed(outline(func, item.op, kernels, index, item.init)))
        return failure();
    // A buffer the plan gave no bytes (kiln.scratch) must stay unused (views
    // of it rematerialised for a fused op's operands aside).
    std::function<bool(Value)> used = [&](Value v) {
      return llvm::any_of(v.getUsers(), [&](Operation *u) {
        return !isa<ViewLikeOpInterface>(u) || u->getNumResults() != 1 ||
               used(u->getResult(0));
      });
    };
    WalkResult scratch = kernels.walk([&](memref::ViewOp view) {
      if (!view->hasAttr(kScratchAttr) || !used(view))
        return WalkResult::advance();
      view->getParentOfType<gpu::GPUFuncOp>().emitError(
          "kernel uses a buffer the memory plan gave no bytes (a recipe's "
          "scratch): ")
          << view.getType();
      return WalkResult::interrupt();
    });
    if (scratch.wasInterrupted())
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

  /// Binds the nest's induction variables to `point` (row-major, the last
  /// dimension fastest) and clones the effect-free ops of the nest's body
  /// that precede the reduction loop.
  static void bindPoint(kernels::KernelBuilder &kb, ReductionNest &r,
                        IRMapping &map, Value point) {
    if (!r.nest)
      return;
    OpBuilder &b = kb.b;
    delinearize(
        b, kb.loc, *r.nest, point, [&](int64_t n) { return kb.index(n); }, map);
    for (Operation &inner : r.nest->body->without_terminator())
      if (&inner != r.reduction.loop.getOperation())
        b.clone(inner, map);
  }

  /// Folds iterations first, first + step, ... < end of the reduction loop
  /// into a register, starting from the combiner's identity.
  static Value foldIterations(kernels::KernelBuilder &kb, ReductionLoop &red,
                              IRMapping &map, Value first, Value end,
                              Value step) {
    OpBuilder &b = kb.b;
    Type type = red.store.getValue().getType();
    Value identity = arith::getIdentityValue(red.kind, type, b, kb.loc);
    auto loop = scf::ForOp::create(
        b, kb.loc, first, end, step, ValueRange{identity},
        [&](OpBuilder &nb, Location l, Value k, ValueRange acc) {
          map.map(red.loop.getInductionVar(), k);
          for (Operation &inner : red.loop.getBody()->without_terminator())
            if (&inner != red.load.getOperation() && &inner != red.combine &&
                &inner != red.store.getOperation())
              nb.clone(inner, map);
          Value next = arith::getReductionOp(red.kind, nb, l, acc[0],
                                             map.lookup(red.contribution));
          scf::YieldOp::create(nb, l, next);
        });
    return loop.getResult(0);
  }

  /// acc[I] = combine(acc[I] or the fused fill value, total).
  static void foldIntoAccumulator(kernels::KernelBuilder &kb,
                                  ReductionLoop &red, IRMapping &map,
                                  TypedAttr init, Value total) {
    OpBuilder &b = kb.b;
    Value acc = map.lookupOrDefault(red.store.getMemRef());
    SmallVector<Value> indices;
    for (Value i : red.store.getIndices())
      indices.push_back(map.lookupOrDefault(i));
    Value old =
        init ? arith::ConstantOp::create(b, kb.loc, init).getResult()
             : memref::LoadOp::create(b, kb.loc, acc, indices).getResult();
    memref::StoreOp::create(
        b, kb.loc, arith::getReductionOp(red.kind, b, kb.loc, old, total), acc,
        indices);
  }

  /// Non-contiguous reductions with too few outputs to fill the GPU a
  /// thread each (decode's p.v: heads x head_dim outputs over the whole
  /// context): a block holds 32 neighbouring outputs (coalesced loads) times
  /// 8 slices of the reduction; workgroup memory joins the slices.
  static constexpr int64_t kSplitBelow = 32768;
  std::string mapSplitReduction(OpBuilder &b, Location loc, ReductionNest &r,
                                IRMapping &map, gpu::GPUFuncOp kernel,
                                TypedAttr init, int64_t &blocks,
                                int64_t &threads) {
    ReductionLoop &red = r.reduction;
    constexpr int64_t kPoints = 32, kSlices = 8;
    threads = kPoints * kSlices;
    blocks = llvm::divideCeil(r.points, kPoints);
    kernels::KernelBuilder kb(b, loc, kernel);
    Value tid = kb.threadIdX();
    Value bid = kb.blockIdX();
    Value column = arith::RemUIOp::create(b, loc, tid, kb.index(kPoints));
    Value slice = arith::DivUIOp::create(b, loc, tid, kb.index(kPoints));
    Value point = arith::AddIOp::create(
        b, loc, arith::MulIOp::create(b, loc, bid, kb.index(kPoints)), column);
    // Every thread reaches the barrier; those past the last output fold
    // nothing and write nothing.
    Value inRange = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                          point, kb.index(r.points));
    bindPoint(kb, r, map,
              arith::SelectOp::create(b, loc, inRange, point, kb.index(0)));
    Value end = arith::SelectOp::create(b, loc, inRange,
                                        kb.index(red.tripCount), kb.index(0));
    Value partial = foldIterations(kb, red, map, slice, end, kb.index(kSlices));
    Type type = red.store.getValue().getType();
    Value smem = kb.workgroupBuffer({kSlices * kPoints}, type);
    memref::StoreOp::create(b, loc, partial, smem, ValueRange{tid});
    gpu::BarrierOp::create(b, loc);
    Value writes = arith::AndIOp::create(
        b, loc, inRange,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, slice,
                              kb.index(0)));
    auto write = scf::IfOp::create(b, loc, writes, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&write.getThenRegion().front());
    Value total = memref::LoadOp::create(b, loc, smem, ValueRange{column});
    for (int64_t sl = 1; sl < kSlices; ++sl)
      total = arith::getReductionOp(
          red.kind, b, loc, total,
          memref::LoadOp::create(b, loc, smem,
                                 ValueRange{arith::AddIOp::create(
                                     b, loc, column, kb.index(sl * kPoints))}));
    foldIntoAccumulator(kb, red, map, init, total);
    return "reduce-split";
  }

  /// L lanes cooperate on each point of a reduction nest: lane l folds
  /// iterations l, l + L, ... of the reduction loop in a register, a
  /// gpu.subgroup_reduce combines a warp's lanes and, when a whole block
  /// (L = 256) works on one point, workgroup memory combines its warps; one
  /// lane then folds the result into the accumulator. A warp per point
  /// (L = 32), or a block when there are few points and long rows (decode's
  /// RMSNorm and softmax); a thread per point (L = 1) when the rows are not
  /// contiguous, where neighbouring points read neighbouring elements instead
  /// (p.v, prefill's matrix products), split over slices when the points are
  /// few. Returns the mapping's name.
  std::string mapReduction(OpBuilder &b, Location loc, ReductionNest r,
                           IRMapping &map, gpu::GPUFuncOp kernel,
                           TypedAttr init, int64_t &blocks, int64_t &threads) {
    ReductionLoop &red = r.reduction;
    if (!red.contiguous && r.points < kSplitBelow)
      return mapSplitReduction(b, loc, r, map, kernel, init, blocks, threads);
    const int64_t lanes = !red.contiguous                             ? 1
                          : (r.points <= 256 && red.tripCount >= 512) ? 256
                                                                      : 32;
    threads = 256;
    const int64_t pointsPerBlock = threads / lanes;
    blocks = llvm::divideCeil(r.points, pointsPerBlock);
    kernels::KernelBuilder kb(b, loc, kernel);
    Value tid = kb.threadIdX();
    Value bid = kb.blockIdX();
    Value lane = arith::RemUIOp::create(b, loc, tid, kb.index(lanes));
    Value point = arith::AddIOp::create(
        b, loc, arith::MulIOp::create(b, loc, bid, kb.index(pointsPerBlock)),
        arith::DivUIOp::create(b, loc, tid, kb.index(lanes)));
    OpBuilder::InsertionGuard guard(b);
    if (r.points % pointsPerBlock) {
      // Whole warps drop out, so the shuffles below see full warps.
      Value inRange = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                            point, kb.index(r.points));
      auto ifOp = scf::IfOp::create(b, loc, inRange, /*withElseRegion=*/false);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    }
    bindPoint(kb, r, map, point);
    Value total = foldIterations(kb, red, map, lane, kb.index(red.tripCount),
                                 kb.index(lanes));
    if (lanes > 1)
      total = gpu::SubgroupReduceOp::create(b, loc, total, red.gpuKind,
                                            /*uniform=*/true);
    if (lanes > 32) {
      const int64_t warps = lanes / 32;
      Value smem = kb.workgroupBuffer({warps}, red.store.getValue().getType());
      Value first = arith::CmpIOp::create(
          b, loc, arith::CmpIPredicate::eq,
          arith::RemUIOp::create(b, loc, tid, kb.index(32)), kb.index(0));
      auto write = scf::IfOp::create(b, loc, first, /*withElseRegion=*/false);
      {
        OpBuilder::InsertionGuard inner(b);
        b.setInsertionPointToStart(&write.getThenRegion().front());
        memref::StoreOp::create(
            b, loc, total, smem,
            ValueRange{arith::DivUIOp::create(b, loc, tid, kb.index(32))});
      }
      gpu::BarrierOp::create(b, loc);
      total = memref::LoadOp::create(b, loc, smem, ValueRange{kb.index(0)});
      for (int64_t w = 1; w < warps; ++w)
        total = arith::getReductionOp(
            red.kind, b, loc, total,
            memref::LoadOp::create(b, loc, smem, ValueRange{kb.index(w)}));
    }
    Value leader = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lane,
                                         kb.index(0));
    auto write = scf::IfOp::create(b, loc, leader, /*withElseRegion=*/false);
    b.setInsertionPointToStart(&write.getThenRegion().front());
    foldIntoAccumulator(kb, red, map, init, total);
    return lanes == 1    ? "reduce-thread"
           : lanes == 32 ? "reduce-warp"
                         : "reduce-block";
  }

  /// `init`: when set, the accumulator's fill was fused into this kernel.
  LogicalResult outline(func::FuncOp func, Operation *op,
                        gpu::GPUModuleOp kernels, size_t index,
                        TypedAttr init) {
    SmallVector<Operation *> fused;
    if (auto name = op->getAttrOfType<StringAttr>(kKernelAttr))
      if (const kernels::KernelRecipe *recipe =
              kernels::lookup(name.getValue()))
        fused = recipe->fusedOps(op);
    MLIRContext *ctx = func.getContext();
    OpBuilder builder(ctx);
    Location loc = op->getLoc();
    Block &hostBody = func.getBody().front();

    // The kernel: same parameters as the entry point (the four buffers).
    builder.setInsertionPointToEnd(kernels.getBody());
    std::string name = (func.getSymName() + "_k" + std::to_string(index)).str();
    auto type = FunctionType::get(ctx, hostBody.getArgumentTypes(), {});
    auto kernel = gpu::GPUFuncOp::create(builder, loc, name, type);
    kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(),
                    builder.getUnitAttr());
    // The read-only weights stay marked (kiln-dependent-launch reads them
    // before waiting for the kernel before).
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      if (func.getArgAttr(i, kWeightsAttr))
        kernel.setArgAttr(i, kWeightsAttr, builder.getUnitAttr());
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
    SmallVector<Operation *> roots{op};
    roots.append(fused.begin(), fused.end());
    for (Operation *root : roots) {
      WalkResult walk = root->walk([&](Operation *inner) {
        for (Value operand : inner->getOperands()) {
          Operation *def = operand.getDefiningOp();
          Operation *owner =
              def ? def : operand.getParentRegion()->getParentOp();
          if (!root->isAncestor(owner) && failed(materialize(operand)))
            return WalkResult::interrupt();
        }
        return WalkResult::advance();
      });
      if (walk.wasInterrupted())
        return failure();
    }

    // Thread mapping: a hand-built kernel, a reduction, the generic
    // one-point-per-thread mapping, or a single thread.
    std::array<int64_t, 3> grid{1, 1, 1}, block{1, 1, 1}, cluster{1, 1, 1};
    int64_t &blocks = grid[0], &threads = block[0];
    int64_t total = 1;
    std::optional<ParallelNest> nest = parallelNest(op);
    // A nest under a uniform condition (kv_append writes the cache only for
    // valid positions): the threads test the condition themselves.
    scf::IfOp guardIf;
    SmallVector<Operation *> guardPrologue;
    if (auto ifOp = dyn_cast<scf::IfOp>(op); !nest && ifOp &&
                                             ifOp.getElseRegion().empty() &&
                                             ifOp.getNumResults() == 0) {
      Operation *inner = nullptr;
      bool single = true;
      for (Operation &o : ifOp.getThenRegion().front().without_terminator()) {
        if (isMemoryEffectFree(&o) && !o.getNumRegions()) {
          guardPrologue.push_back(&o);
          continue;
        }
        single = !inner;
        inner = &o;
      }
      if (single && inner && (nest = parallelNest(inner)))
        guardIf = ifOp;
    }
    std::optional<ReductionNest> reduction;
    std::string mapping;     // recorded on the launch as `kiln.mapping`
    std::string tiling;      // and `kiln.tiling`, when the recipe chose one
    int64_t sharedBytes = 0; // dynamic shared memory a block
    if (auto name = op->getAttrOfType<StringAttr>(kKernelAttr)) {
      mapping = name.getValue().str();
      const kernels::KernelRecipe *recipe = kernels::lookup(name.getValue());
      if (!recipe)
        return op->emitOpError("names an unknown kernel '")
               << name.getValue() << "'";
      Value initValue;
      if (init)
        initValue = arith::ConstantOp::create(builder, loc, init);
      FailureOr<kernels::LaunchShape> shape =
          recipe->build(builder, op, map, kernel, initValue, fused);
      if (failed(shape))
        return op->emitOpError("is not implemented by kernel '")
               << name.getValue() << "'";
      grid = shape->grid;
      block = shape->block;
      cluster = shape->cluster;
      tiling = shape->tiling;
      sharedBytes = shape->sharedBytes;
    } else if ((reduction = matchReductionNest(op))) {
      mapping = mapReduction(builder, loc, *reduction, map, kernel, init,
                             blocks, threads);
    } else if (nest) {
      mapping = "parallel";
      for (int64_t n : nest->tripCounts)
        total *= n;
      threads = std::min<int64_t>(
          threadsPerBlock, llvm::alignTo(std::max<int64_t>(total, 1), 32));
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
          builder, loc, arith::CmpIPredicate::ult, gid, index(total));
      auto guard = scf::IfOp::create(builder, loc, inRange,
                                     /*withElseRegion=*/false);
      builder.setInsertionPointToStart(&guard.getThenRegion().front());
      if (guardIf) {
        auto inner =
            scf::IfOp::create(builder, loc, map.lookup(guardIf.getCondition()),
                              /*withElseRegion=*/false);
        builder.setInsertionPointToStart(&inner.getThenRegion().front());
        for (Operation *o : guardPrologue)
          builder.clone(*o, map);
      }
      delinearize(builder, loc, *nest, gid, index, map);
      for (Operation &inner : nest->body->without_terminator())
        builder.clone(inner, map);
      builder.setInsertionPointAfter(guard);
    } else {
      mapping = "serial";
      builder.clone(*op, map);
    }
    gpu::ReturnOp::create(builder, loc);

    // The block size is fixed: ptxas allocates registers for it (reqntid).
    kernel.setKnownBlockSizeAttr(builder.getDenseI32ArrayAttr(
        {int32_t(block[0]), int32_t(block[1]), int32_t(block[2])}));
    // Thread-block clusters are fixed at compile time too (PTX
    // .reqnctapercluster): an ordinary launch groups the blocks.
    if (cluster != std::array<int64_t, 3>{1, 1, 1}) {
      for (int d = 0; d < 3; ++d)
        if (grid[d] % cluster[d] != 0)
          return op->emitOpError("has a grid that its clusters do not divide");
      kernel.setKnownClusterSizeAttr(builder.getDenseI32ArrayAttr(
          {int32_t(cluster[0]), int32_t(cluster[1]), int32_t(cluster[2])}));
    }

    // The kernel's name says how it was made (decode_k12_gemv_kn), so that
    // profiles and driver errors read without the IR at hand.
    std::string suffix = mapping + (tiling.empty() ? "" : "_" + tiling);
    llvm::replace(suffix, '-', '_');
    kernel.setName(builder.getStringAttr(name + "_" + suffix));

    // The launch replaces the op on the host.
    builder.setInsertionPoint(op);
    llvm::SmallDenseMap<int64_t, Value> dims;
    auto dim = [&](int64_t n) -> Value {
      Value &v = dims[n];
      if (!v)
        v = arith::ConstantIndexOp::create(builder, loc, n);
      return v;
    };
    auto launch = gpu::LaunchFuncOp::create(
        builder, loc, kernel,
        gpu::KernelDim3{dim(grid[0]), dim(grid[1]), dim(grid[2])},
        gpu::KernelDim3{dim(block[0]), dim(block[1]), dim(block[2])},
        sharedBytes ? arith::ConstantIntOp::create(
                          builder, loc, builder.getI32Type(), sharedBytes)
                          .getResult()
                    : Value(),
        hostBody.getArguments());
    launch->setAttr(kMappingAttr, builder.getStringAttr(mapping));
    if (!tiling.empty())
      launch->setAttr(kTilingAttr, builder.getStringAttr(tiling));
    op->erase();
    for (Operation *o : fused)
      o->erase();
    return success();
  }
};

} // namespace
