//===- SpecializeEntryPoints.cpp - Static-shaped prefill and decode -------===//
//
// Clones the importer's dynamic-shaped @forward into @prefill (and
// @prefill_all) and @decode with every dimension fixed, re-deriving tfm result
// types from the new operands; @prefill may return the chunk's last logits
// row only.
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "dialects/Tfm/TfmOps.h"
#include "passes/EntryShape.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/Support/MathExtras.h"

#include <limits>

#define DEBUG_TYPE "kiln-specialize-entry-points"

namespace kiln {
#define GEN_PASS_DEF_SPECIALIZEENTRYPOINTS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

/// The importer's contract: arguments are token ids and positions (rank-2
/// integer) and KV caches (rank 4); the first result is the logits (rank 3).
/// Weights are ml_program globals: a weight argument would otherwise be
/// silently reshaped to [batch, seq] like the token ids.
LogicalResult checkForward(func::FuncOp forward) {
  if (forward.isExternal())
    return forward.emitError("@forward has no body");
  for (auto [i, type] : llvm::enumerate(forward.getArgumentTypes())) {
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (tensor &&
        (tensor.getRank() == 4 ||
         (tensor.getRank() == 2 && isa<IntegerType>(tensor.getElementType()))))
      continue;
    return forward.emitError()
           << "argument #" << i << " (" << type
           << ") is neither token ids/positions (rank-2 integer tensor) nor "
              "a KV cache (rank-4 tensor); weights must be ml_program globals";
  }
  auto results = forward.getResultTypes();
  if (results.empty() || !isa<RankedTensorType>(results[0]) ||
      cast<RankedTensorType>(results[0]).getRank() != 3)
    return forward.emitError("expected the logits (rank-3 tensor) as the "
                             "first result");
  return success();
}

struct SpecializeEntryPoints
    : kiln::impl::SpecializeEntryPointsBase<SpecializeEntryPoints> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>("forward");
    if (!forward) {
      module.emitError("expected the importer's @forward function");
      return signalPassFailure();
    }
    // The options are cl::opt objects: pass their values, not them.
    std::string problem = checkEntryShape(
        batch.getValue(), prefillChunk.getValue(), maxSeqLen.getValue());
    if (!problem.empty()) {
      module.emitError(problem);
      return signalPassFailure();
    }
    if (failed(checkForward(forward)))
      return signalPassFailure();
    if (kvBlockSize < 0 || kvBlockSize > maxSeqLen || kvBlocks < 0 ||
        (kvBlocks > 0 && kvBlockSize == 0)) {
      module.emitError("kv-block-size must be in [0, max-seq-len = ")
          << maxSeqLen.getValue() << "] and kv-blocks >= 0 only with it (got "
          << kvBlockSize.getValue() << ", " << kvBlocks.getValue() << ")";
      return signalPassFailure();
    }
    if (kvBlockSize > 0) {
      maxBlocks =
          llvm::divideCeil(maxSeqLen.getValue(), kvBlockSize.getValue());
      poolBlocks = kvBlocks > 0 ? kvBlocks.getValue() : batch * maxBlocks;
      if (poolBlocks > std::numeric_limits<int32_t>::max()) {
        module.emitError("kv-blocks (")
            << poolBlocks << ") must fit the block table's i32 ids";
        return signalPassFailure();
      }
    }
    const std::string logits = prefillLogits;
    if (logits != "last" && logits != "all" && logits != "both") {
      module.emitError("prefill-logits must be last, all or both, not '")
          << logits << "'";
      return signalPassFailure();
    }
    struct Entry {
      std::string name;
      int64_t batch, seq;
      bool lastRow;
    };
    SmallVector<Entry> entries{
        {"prefill", batch, prefillChunk, logits != "all"}};
    if (logits == "both")
      entries.push_back({"prefill_all", batch, prefillChunk, false});
    entries.push_back({"decode", batch, 1, false});
    SmallVector<int64_t> smaller(decodeBatches.begin(), decodeBatches.end());
    llvm::sort(smaller);
    for (auto [i, n] : llvm::enumerate(smaller)) {
      if (n < 1 || n >= batch || (i && smaller[i - 1] == n)) {
        module.emitError("decode-batches must be distinct batch sizes from 1 "
                         "to ")
            << batch.getValue() - 1 << " (below batch), got " << n;
        return signalPassFailure();
      }
      entries.push_back({"decode_b" + std::to_string(n), n, 1, false});
    }
    for (const Entry &e : entries)
      if (failed(specialize(forward, e.name, e.batch, e.seq, e.lastRow)))
        return signalPassFailure();
    forward.erase();
  }

  /// Paged KV cache: blocks per row's table and in each pool.
  int64_t maxBlocks = 0, poolBlocks = 0;

  /// `lastRow`: the entry returns the logits of the chunk's last row only
  /// ([batch, 1, vocab]); kiln-narrow-logits then computes only that row.
  LogicalResult specialize(func::FuncOp forward, StringRef name, int64_t batch,
                           int64_t seq, bool lastRow) {
    OpBuilder builder(forward);
    auto entry = cast<func::FuncOp>(builder.clone(*forward));
    SymbolTable(getOperation()).insert(entry);
    entry.setSymName(name);
    entry->setAttr(kEntryAttr, builder.getStringAttr(name));

    // Arguments: tokens and positions [batch, seq]; caches
    // [batch, kv_heads, max_seq, head_dim].
    Block &body = entry.getBody().front();
    for (BlockArgument arg : body.getArguments()) {
      auto type = cast<RankedTensorType>(arg.getType());
      SmallVector<int64_t> shape(type.getShape());
      if (type.getRank() == 2) {
        shape = {batch, seq};
      } else if (type.getRank() == 4) {
        // Paged: one pool of blocks, the same in every entry.
        shape[0] = kvBlockSize > 0 ? poolBlocks : batch;
        shape[2] =
            kvBlockSize > 0 ? kvBlockSize.getValue() : maxSeqLen.getValue();
        if (ShapedType::isDynamic(shape[1]) || ShapedType::isDynamic(shape[3]))
          return entry.emitError("KV cache argument with dynamic heads or "
                                 "head_dim");
      } else {
        return entry.emitError("unexpected argument of rank ")
               << type.getRank();
      }
      arg.setType(RankedTensorType::get(shape, type.getElementType()));
    }
    // Paged: the block table, after the caches, feeds every cache access.
    if (kvBlockSize > 0) {
      Value table = body.addArgument(
          RankedTensorType::get({batch, maxBlocks}, builder.getI32Type()),
          entry.getLoc());
      entry.walk([&](Operation *op) {
        if (auto append = dyn_cast<tfm::KvAppendOp>(op))
          append.getBlockTableMutable().assign(table);
        else if (auto attention = dyn_cast<tfm::AttentionOp>(op))
          attention.getBlockTableMutable().assign(table);
      });
      entry->setAttr(kBlockTableAttr, builder.getUnitAttr());
    }
    // Results: re-derived in program order by each tfm op's
    // InferTypeOpInterface from its (now static) operands.
    WalkResult walk = entry.walk([&](Operation *op) {
      if (!op->getDialect() || !isa<tfm::TfmDialect>(op->getDialect()))
        return WalkResult::advance();
      auto infer = dyn_cast<InferTypeOpInterface>(op);
      SmallVector<Type> types;
      if (!infer ||
          failed(infer.inferReturnTypes(
              op->getContext(), op->getLoc(), op->getOperands(),
              op->getRawDictionaryAttrs(), op->getPropertiesStorage(),
              op->getRegions(), types)) ||
          types.size() != op->getNumResults() ||
          !llvm::all_of(types, [](Type t) {
            return cast<ShapedType>(t).hasStaticShape();
          })) {
        op->emitOpError("could not derive a static result type");
        return WalkResult::interrupt();
      }
      for (auto [result, type] : llvm::zip(op->getResults(), types))
        result.setType(type);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();
    // Greedy sampling on the device: the argmax of every logits row is an
    // extra, last result.
    Operation *ret = body.getTerminator();
    Value logits = ret->getOperand(0);
    auto logitsType = cast<RankedTensorType>(logits.getType());
    builder.setInsertionPoint(ret);
    if (lastRow && seq > 1) {
      SmallVector<int64_t> size(logitsType.getShape());
      size[1] = 1;
      logits = tensor::ExtractSliceOp::create(
          builder, ret->getLoc(),
          RankedTensorType::get(size, logitsType.getElementType()), logits,
          ValueRange{}, ValueRange{}, ValueRange{},
          builder.getDenseI64ArrayAttr({0, seq - 1, 0}),
          builder.getDenseI64ArrayAttr(size),
          builder.getDenseI64ArrayAttr({1, 1, 1}));
      ret->setOperand(0, logits);
      logitsType = cast<RankedTensorType>(logits.getType());
    }
    auto nextType = RankedTensorType::get(logitsType.getShape().take_front(2),
                                          builder.getI64Type());
    Value next;
    if (sampling) {
      // Sampling on the device: parameters and keys per sequence, two more
      // arguments after the caches.
      Location loc = ret->getLoc();
      Value params = body.addArgument(
          RankedTensorType::get({batch, 4}, builder.getF32Type()), loc);
      Value seeds = body.addArgument(
          RankedTensorType::get({batch}, builder.getI64Type()), loc);
      Value init = tensor::EmptyOp::create(builder, loc, nextType.getShape(),
                                           builder.getI64Type());
      next = tfm::SampleOp::create(builder, loc, TypeRange{nextType}, logits,
                                   params, seeds, init)
                 .getResult()
                 .front();
      entry->setAttr(kSamplingAttr, builder.getUnitAttr());
    } else {
      next = tfm::ArgmaxOp::create(builder, ret->getLoc(), nextType, logits);
    }
    ret->insertOperands(ret->getNumOperands(), next);
    entry.setType(builder.getFunctionType(body.getArgumentTypes(),
                                          ret->getOperandTypes()));
    return success();
  }
};

} // namespace
