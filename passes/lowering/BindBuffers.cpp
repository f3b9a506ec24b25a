//===- BindBuffers.cpp - Bind entry points to the runtime's buffers -------===//
//
// The runtime calls every entry point as f(weights, kv, arena, io), four byte
// buffers it allocates once at load time. This pass gives each tensor a home
// in one of them: weights (ml_program.global) and KV caches at fixed offsets,
// token ids, positions and logits in the I/O buffer. Offsets are aligned to
// the runtime's kBufferAlignment and recorded as attributes for the artifact
// writer.
//
//===----------------------------------------------------------------------===//

#include "dialects/Kiln/KilnDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MLProgram/IR/MLProgram.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/Support/MathExtras.h"

#include <algorithm>

#define DEBUG_TYPE "kiln-bind-buffers"

namespace kiln {
#define GEN_PASS_DEF_BINDBUFFERS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

constexpr int64_t kAlign = static_cast<int64_t>(runtime::kBufferAlignment);

int64_t byteSize(ShapedType type) {
  return type.getNumElements() *
         static_cast<int64_t>(llvm::divideCeil(
             type.getElementType().getIntOrFloatBitWidth(), 8));
}

/// Lays out buffers one after another, each aligned.
struct Layout {
  int64_t add(int64_t bytes) {
    int64_t offset = llvm::alignTo(size, kAlign);
    size = offset + bytes;
    return offset;
  }
  int64_t total() const { return llvm::alignTo(size, kAlign); }
  int64_t size = 0;
};

struct BindBuffers : kiln::impl::BindBuffersBase<BindBuffers> {
  /// Sequences the KV cache holds: the largest batch of the entries' caches.
  int64_t kvBatch = 0;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    OpBuilder builder(module.getContext());

    // Dense tensor constants (the RoPE table) become weights too, so kernels
    // never read host globals: on a GPU those would not be addressable.
    if (failed(constantsToGlobals(module)))
      return signalPassFailure();

    // Weights section: every global in module order.
    Layout weights;
    llvm::StringMap<int64_t> weightOffsets;
    for (auto global : module.getOps<ml_program::GlobalOp>()) {
      auto type = dyn_cast<RankedTensorType>(global.getType());
      if (!type || !type.hasStaticShape()) {
        global.emitOpError("weights must be statically shaped tensors");
        return signalPassFailure();
      }
      int64_t offset = weights.add(byteSize(type));
      global->setAttr(kOffsetAttr, builder.getI64IntegerAttr(offset));
      weightOffsets[global.getSymName()] = offset;
    }
    module->setAttr(kWeightsSizeAttr,
                    builder.getI64IntegerAttr(weights.total()));

    // The KV cache holds the largest batch of any entry; an entry for fewer
    // sequences (@decode_b<N>) views the first rows of each layer's block,
    // at the same offsets ([batch, ...] puts the sequences outermost).
    kvBatch = 0;
    for (auto func : module.getOps<func::FuncOp>())
      if (func->hasAttr(kEntryAttr) && func.getNumArguments() > 2)
        if (auto t = dyn_cast<RankedTensorType>(func.getArgument(2).getType());
            t && t.getRank() == 4 && t.hasStaticShape())
          kvBatch = std::max(kvBatch, t.getDimSize(0));
    std::optional<int64_t> kvSize;
    for (auto func : module.getOps<func::FuncOp>()) {
      if (!func->hasAttr(kEntryAttr))
        continue;
      FailureOr<int64_t> size = bind(func, weights.total(), weightOffsets);
      if (failed(size))
        return signalPassFailure();
      if (kvSize && *kvSize != *size) {
        func.emitError("entry points disagree on the KV-cache layout");
        return signalPassFailure();
      }
      kvSize = *size;
    }
    module->setAttr(kKvSizeAttr, builder.getI64IntegerAttr(kvSize.value_or(0)));
  }

  LogicalResult constantsToGlobals(ModuleOp module) {
    OpBuilder builder(module.getContext());
    SymbolTable symbols(module);
    int counter = 0;
    // Only entry points run on the device; other functions stay as they are.
    SmallVector<arith::ConstantOp> constants;
    for (auto func : module.getOps<func::FuncOp>())
      if (func->hasAttr(kEntryAttr))
        func.walk([&](arith::ConstantOp op) {
          if (isa<RankedTensorType>(op.getType()))
            constants.push_back(op);
        });
    // One global per distinct value: the entry points share it (each entry
    // has its own copy of, say, the RoPE table).
    llvm::DenseMap<Attribute, ml_program::GlobalOp> globals;
    for (arith::ConstantOp op : constants) {
      auto value = dyn_cast<DenseElementsAttr>(op.getValue());
      auto type = cast<RankedTensorType>(op.getType());
      if (!value || !type.hasStaticShape())
        return op.emitOpError("tensor constant must be dense and static to "
                              "be placed in the weights section");
      ml_program::GlobalOp &global = globals[value];
      if (!global) {
        builder.setInsertionPointToStart(module.getBody());
        global = ml_program::GlobalOp::create(
            builder, op.getLoc(), "kiln.constant." + std::to_string(counter++),
            type, /*is_mutable=*/false, value,
            builder.getStringAttr("private"));
        symbols.insert(global);
      }
      builder.setInsertionPoint(op);
      op.replaceAllUsesWith(ml_program::GlobalLoadConstOp::create(
                                builder, op.getLoc(), type,
                                FlatSymbolRefAttr::get(global.getSymNameAttr()))
                                .getResult());
      op.erase();
    }
    return success();
  }

  FailureOr<int64_t> bind(func::FuncOp func, int64_t weightsSize,
                          const llvm::StringMap<int64_t> &weightOffsets) {
    MLIRContext *ctx = func.getContext();
    OpBuilder builder(ctx);
    Block &body = func.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    unsigned numOld = body.getNumArguments();
    // With kiln.sampling the last two arguments are tfm.sample's parameters
    // and keys; the others are tokens, positions and caches.
    // With kiln.block_table the argument after the caches is the block
    // table.
    const bool sampling = func->hasAttr(kSamplingAttr);
    const bool paged = func->hasAttr(kBlockTableAttr);
    const unsigned numExtra = (sampling ? 2 : 0) + (paged ? 1 : 0);
    const unsigned numInputs = numOld - numExtra;
    if (numOld < 2 + numExtra || ret.getNumOperands() != numInputs) {
      func.emitError("expected (tokens, positions, caches...) -> (logits, "
                     "caches..., argmax)");
      return failure();
    }
    SmallVector<Type> types(body.getArgumentTypes());
    llvm::append_range(types, ret.getOperandTypes());
    for (Type type : types)
      if (auto tensor = dyn_cast<RankedTensorType>(type);
          !tensor || !tensor.hasStaticShape())
        return func.emitError()
               << "entry point arguments and results must be statically "
                  "shaped tensors, got "
               << type << " (run --kiln-specialize-entry-points first)";
    Value argmax = ret.getOperands().back();
    auto argmaxType = cast<RankedTensorType>(argmax.getType());

    // Byte layouts of the KV and I/O buffers.
    Layout kv, io;
    SmallVector<int64_t> kvOffsets;
    for (unsigned i = 2; i < numInputs; ++i) {
      auto cache = cast<ShapedType>(body.getArgument(i).getType());
      int64_t rows = cache.getRank() == 4 ? cache.getDimSize(0) : 0;
      kvOffsets.push_back(kv.add(rows > 0 && kvBatch > rows
                                     ? byteSize(cache) / rows * kvBatch
                                     : byteSize(cache)));
    }
    auto logitsType = cast<RankedTensorType>(ret.getOperand(0).getType());
    int64_t tokensAt =
        io.add(byteSize(cast<ShapedType>(body.getArgument(0).getType())));
    int64_t positionsAt =
        io.add(byteSize(cast<ShapedType>(body.getArgument(1).getType())));
    int64_t logitsAt = io.add(byteSize(logitsType));
    int64_t argmaxAt = io.add(byteSize(argmaxType));
    int64_t paramsAt = -1, seedsAt = -1, tableAt = -1;
    const unsigned samplingArg = numInputs + (paged ? 1 : 0);
    if (paged)
      tableAt = io.add(
          byteSize(cast<ShapedType>(body.getArgument(numInputs).getType())));
    if (sampling) {
      paramsAt = io.add(
          byteSize(cast<ShapedType>(body.getArgument(samplingArg).getType())));
      seedsAt = io.add(byteSize(
          cast<ShapedType>(body.getArgument(samplingArg + 1).getType())));
    }

    auto bytes = [&](int64_t n) {
      return MemRefType::get({n}, builder.getI8Type());
    };
    Location loc = func.getLoc();
    Value weightsArg = body.addArgument(bytes(weightsSize), loc);
    Value kvArg = body.addArgument(bytes(kv.total()), loc);
    body.addArgument(bytes(0), loc); // arena, sized by --kiln-plan-memory
    Value ioArg = body.addArgument(bytes(io.total()), loc);

    builder.setInsertionPointToStart(&body);
    auto view = [&](Value buffer, int64_t offset, ShapedType type) -> Value {
      Value shift = arith::ConstantIndexOp::create(builder, loc, offset);
      auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
      return memref::ViewOp::create(builder, loc, memrefType, buffer, shift,
                                    ValueRange{});
    };
    auto tensorOf = [&](Value memref, Type tensorType, bool writable) -> Value {
      return bufferization::ToTensorOp::create(builder, loc, tensorType, memref,
                                               /*restrict=*/true, writable);
    };

    // The tensor types the artifact writer describes the buffers with.
    func->setAttr(kTokensTypeAttr,
                  TypeAttr::get(body.getArgument(0).getType()));
    func->setAttr(kLogitsTypeAttr, TypeAttr::get(logitsType));
    if (numInputs > 2)
      func->setAttr(kCacheTypeAttr,
                    TypeAttr::get(body.getArgument(2).getType()));

    // Old arguments: tokens, positions, then K/V caches.
    SmallVector<Value> cacheViews;
    for (unsigned i = 0; i < numOld; ++i) {
      BlockArgument arg = body.getArgument(i);
      auto type = cast<RankedTensorType>(arg.getType());
      bool cache = i >= 2 && i < numInputs;
      Value memref = i == 0   ? view(ioArg, tokensAt, type)
                     : i == 1 ? view(ioArg, positionsAt, type)
                     : cache  ? view(kvArg, kvOffsets[i - 2], type)
                     : paged && i == numInputs ? view(ioArg, tableAt, type)
                     : i == samplingArg        ? view(ioArg, paramsAt, type)
                                               : view(ioArg, seedsAt, type);
      if (cache)
        cacheViews.push_back(memref);
      arg.replaceAllUsesWith(tensorOf(memref, type, /*writable=*/cache));
    }

    // Weights: views of the weights section.
    SmallVector<ml_program::GlobalLoadConstOp> loads;
    func.walk([&](ml_program::GlobalLoadConstOp op) { loads.push_back(op); });
    for (auto load : loads) {
      auto it = weightOffsets.find(load.getGlobal().getLeafReference());
      if (it == weightOffsets.end()) {
        load.emitOpError("loads an unknown global");
        return failure();
      }
      builder.setInsertionPoint(load);
      auto type = cast<RankedTensorType>(load.getType());
      load.replaceAllUsesWith(
          tensorOf(view(weightsArg, it->second, type), type, false));
      load.erase();
    }

    // Results: logits into the I/O buffer; updated caches in place.
    builder.setInsertionPoint(ret);
    Value logitsView = view(ioArg, logitsAt, logitsType);
    bufferization::MaterializeInDestinationOp::create(
        builder, loc, TypeRange{}, ret.getOperand(0), logitsView,
        /*restrict=*/true, /*writable=*/true);
    bufferization::MaterializeInDestinationOp::create(
        builder, loc, TypeRange{}, argmax, view(ioArg, argmaxAt, argmaxType),
        /*restrict=*/true, /*writable=*/true);
    for (auto [i, cache] :
         llvm::enumerate(ret.getOperands().drop_front().drop_back()))
      bufferization::MaterializeInDestinationOp::create(
          builder, loc, TypeRange{}, cache, cacheViews[i], /*restrict=*/false,
          /*writable=*/true);
    func::ReturnOp::create(builder, ret.getLoc());
    ret.erase();
    body.eraseArguments(0, numOld);

    func.setType(builder.getFunctionType(body.getArgumentTypes(), {}));
    func.setAllArgAttrs(
        SmallVector<DictionaryAttr>(4, DictionaryAttr::get(ctx)));
    func.setArgAttr(0, kWeightsAttr, builder.getUnitAttr());
    func.setArgAttr(2, kArenaAttr, builder.getUnitAttr());
    func->setAttr(kKvOffsetsAttr, builder.getI64ArrayAttr(kvOffsets));
    func->setAttr(
        kIoAttr, builder.getDictionaryAttr(
                     {builder.getNamedAttr("tokens",
                                           builder.getI64IntegerAttr(tokensAt)),
                      builder.getNamedAttr(
                          "positions", builder.getI64IntegerAttr(positionsAt)),
                      builder.getNamedAttr("logits",
                                           builder.getI64IntegerAttr(logitsAt)),
                      builder.getNamedAttr("argmax",
                                           builder.getI64IntegerAttr(argmaxAt)),
                      builder.getNamedAttr(
                          "size", builder.getI64IntegerAttr(io.total()))}));
    if (sampling || paged) {
      SmallVector<NamedAttribute> entries(
          func->getAttrOfType<DictionaryAttr>(kIoAttr).getValue());
      if (sampling) {
        entries.push_back(builder.getNamedAttr(
            "sampling", builder.getI64IntegerAttr(paramsAt)));
        entries.push_back(
            builder.getNamedAttr("seeds", builder.getI64IntegerAttr(seedsAt)));
      }
      if (paged)
        entries.push_back(builder.getNamedAttr(
            "block_table", builder.getI64IntegerAttr(tableAt)));
      func->setAttr(kIoAttr, builder.getDictionaryAttr(entries));
    }
    func.setResAttrsAttr(nullptr);
    return kv.total();
  }
};

} // namespace
