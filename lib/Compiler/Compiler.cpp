//===- Compiler.cpp - From a raised tfm module to model.kiln --------------===//

#include "kiln/Compiler/Compiler.h"
#include "dialects/Kiln/KilnDialect.h"
#include "kiln/Target/CpuTarget.h"
#include "kiln/Target/GpuTarget.h"
#include "passes/fusion/ConstantWeights.h"

#include "kiln/runtime/ArtifactWriter.h"
#include "kiln/runtime/Target.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MLProgram/IR/MLProgram.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FormatVariadic.h"

#include <set>

using namespace mlir;
using namespace kiln;
namespace rt = kiln::runtime;
using llvm::formatv;

namespace {
llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

FailureOr<rt::DType> dtypeOf(Type t) {
  if (std::optional<rt::DType> f = floatDType(t))
    return *f;
  if (t.isInteger(64))
    return rt::DType::I64;
  if (t.isInteger(32))
    return rt::DType::I32;
  if (t.isInteger(8)) // packed quantized weights
    return rt::DType::I8;
  return failure();
}

std::vector<int64_t> vec(ArrayRef<int64_t> shape) {
  return std::vector<int64_t>(shape.begin(), shape.end());
}

int64_t attrInt(Operation *op, StringRef name) {
  auto a = op->getAttrOfType<IntegerAttr>(name);
  return a ? a.getInt() : -1;
}

int64_t dictInt(DictionaryAttr d, StringRef name) {
  auto a = d ? d.getAs<IntegerAttr>(name) : IntegerAttr();
  return a ? a.getInt() : -1;
}
} // namespace

llvm::Expected<std::string> kiln::emitGpuAssembly(ModuleOp module,
                                                  const CompileOptions &opts) {
  if (!isGpuTarget(opts.target))
    return fail("--emit=ptx needs a GPU --target (sm_80, sm_90, ...)");
  for (auto global :
       llvm::make_early_inc_range(module.getOps<ml_program::GlobalOp>()))
    global->erase();
  auto code =
      generateGpuCode(module, opts.target, /*assemble=*/false,
                      opts.pipeline.dedupKernels, opts.pipeline.splitKv);
  if (!code)
    return code.takeError();
  return code->ptx;
}

bool kiln::isGpuTarget(StringRef target) {
  return rt::isSupportedGpuTarget(
      std::string_view(target.data(), target.size()));
}

llvm::Error kiln::CompileOptions::verify() const {
  if (target != "cpu" && !isGpuTarget(target))
    return fail("--target " + target + " is not supported (targets: cpu, " +
                rt::supportedGpuTargets() + ")");
  return pipeline.verify();
}

llvm::Error kiln::lowerToLoops(ModuleOp module, const CompileOptions &opts,
                               const StageRunner &stage) {
  if (llvm::Error err = opts.verify())
    return err;
  DialectRegistry registry;
  registerPipelineInterfaces(registry);
  module.getContext()->appendDialectRegistry(registry);
  return stage("lower to loops", [&] {
    return runPipeline(module, "lowering to loop nests",
                       [&](OpPassManager &pm) {
                         PipelineOptions pipeline = opts.pipeline;
                         pipeline.parallelLoops = isGpuTarget(opts.target);
                         pipeline.deviceSampling = isGpuTarget(opts.target);
                         pipeline.targetWgmma = hasWarpgroupMma(opts.target);
                         buildLoopsPipeline(pm, pipeline);
                       });
  });
}

void kiln::printMemoryPlan(ModuleOp module, llvm::raw_ostream &os) {
  for (auto func : module.getOps<func::FuncOp>()) {
    auto plan = func->getAttrOfType<ArrayAttr>(kMemoryPlanAttr);
    if (!plan)
      continue;
    int64_t arena = attrInt(func, kArenaSizeAttr);
    int64_t total = 0;
    for (auto buffer : plan.getAsRange<BufferPlacementAttr>())
      total += buffer.getSize();
    os << formatv("entry @{0}: arena {1} bytes for {2} buffers totalling {3} "
                  "bytes (reuse saves {4:P})\n",
                  func.getSymName(), arena, plan.size(), total,
                  total ? 1.0 - double(arena) / double(total) : 0.0);
    os << "  buffer      offset        size   live\n";
    for (auto [i, buffer] :
         llvm::enumerate(plan.getAsRange<BufferPlacementAttr>())) {
      os << formatv("  {0,6} {1,11} {2,11}   [{3}, {4}]\n", i,
                    buffer.getOffset(), buffer.getSize(), buffer.getStart(),
                    buffer.getEnd());
    }
  }
}

void MemoryReport::print(llvm::raw_ostream &os) const {
  auto mib = [](uint64_t b) { return double(b) / (1024.0 * 1024.0); };
  if (ranks > 1)
    os << formatv("memory: split over {0} ranks (tensor parallelism); each "
                  "rank's memory:\n",
                  ranks);
  os << formatv("memory: weights {0} bytes ({1:F2} MiB)\n", weightsBytes,
                mib(weightsBytes));
  if (kvBlockSize > 0) {
    // Paged: what one block costs, so that a pool can be sized from the
    // device's free memory.
    const uint64_t perBlock =
        uint64_t(layers) * 2 * kvHeads * headDim * kvBlockSize * kvElementBytes;
    os << formatv("memory: KV cache (paged) = layers x 2 x kv_heads x "
                  "head_dim x block_size x blocks x bytes = {0} x 2 x {1} x "
                  "{2} x {3} x {4} x {5} = {6} bytes ({7:F2} MiB); {8} bytes "
                  "a block: --kv-blocks = free bytes / {8} fills the memory "
                  "left; each of the {9} sequences takes up to {10} blocks\n",
                  layers, kvHeads, headDim, kvBlockSize, kvBlocks,
                  kvElementBytes, kvBytes, mib(kvBytes), perBlock, batch,
                  maxSeqLen / kvBlockSize);
  } else {
    os << formatv("memory: KV cache = layers x 2 x kv_heads x head_dim x "
                  "max_seq_len x batch x bytes = {0} x 2 x {1} x {2} x {3} x "
                  "{4} x {5} = {6} bytes ({7:F2} MiB)\n",
                  layers, kvHeads, headDim, maxSeqLen, batch, kvElementBytes,
                  kvBytes, mib(kvBytes));
  }
  os << formatv("memory: activation arena {0} bytes ({1:F2} MiB, {2:P} of "
                "weights); io buffer {3} bytes\n",
                arenaBytes, mib(arenaBytes),
                weightsBytes ? double(arenaBytes) / double(weightsBytes) : 0.0,
                ioBytes);
  if (gpuKernels) {
    os << formatv("kernels: {0} launches in the schedules of {1} distinct "
                  "kernels, {2} bytes of PTX",
                  gpuKernels, distinctKernels, ptxBytes);
    if (waitingLaunches)
      os << formatv("; {0} wait for the kernel before them (programmatic "
                    "dependent launch)",
                    waitingLaunches);
    os << "\n";
    os << "kernels:";
    for (auto [i, entry] : llvm::enumerate(launchesByEntry))
      os << (i ? ", " : " ") << entry.first << " " << entry.second
         << " launches"
         << formatv(" ({0} / {1} layers = {2:F1})", entry.second, layers,
                    layers ? double(entry.second) / double(layers) : 0.0);
    os << "\n";
    os << "kernels: by mapping:";
    for (const auto &[mapping, count] : launchesByMapping)
      os << " " << mapping << " " << count;
    os << "\n";
    if (!launchesByTiling.empty()) {
      os << "kernels: tiles chosen:";
      for (auto [i, entry] : llvm::enumerate(launchesByTiling))
        os << (i ? ", " : " ") << entry.first << " x" << entry.second;
      os << "\n";
    }
  }
}

kiln::StreamedWeights::StreamedWeights(
    MLIRContext *context,
    std::function<void(llvm::ArrayRef<char>)> releasePages)
    : store(std::make_unique<WeightStore>(context)) {
  store->releasePages = std::move(releasePages);
}

kiln::StreamedWeights::~StreamedWeights() = default;

namespace {
/// The entry points of `module` as text: what must be the same on every
/// rank of a tensor-parallel model (the weights aside).
std::string programText(ModuleOp module) {
  std::string text;
  llvm::raw_string_ostream os(text);
  for (auto func : module.getOps<func::FuncOp>())
    func.print(os);
  for (auto global : module.getOps<ml_program::GlobalOp>())
    os << global.getSymName() << " " << global.getType() << " "
       << attrInt(global, kOffsetAttr) << "\n";
  return text;
}
} // namespace

llvm::Expected<MemoryReport>
kiln::emitArtifact(ModuleOp module, const ModelSummary &summary,
                   const CompileOptions &opts, const StageRunner &stage,
                   ArrayRef<ModuleOp> rankModules) {
  rt::ArtifactWriter writer;
  writer.setTarget(opts.target);
  MemoryReport report;

  // Model description, from the summary of the raised module.
  rt::ModelInfo model;
  model.numLayers = summary.numLayers;
  model.hiddenSize = summary.hiddenSize;
  model.numHeads = summary.numHeads;
  model.numKvHeads = summary.numKvHeads;
  model.headDim = summary.headDim;
  model.vocabSize = summary.vocabSize;
  model.intermediateSize = summary.intermediateSize;
  model.rmsNormEps = summary.rmsNormEps;
  model.tiedEmbeddings = summary.tiedEmbeddings;
  model.dtype = summary.dtype;
  if (!opts.pipeline.quantize.empty())
    model.dtype += ", " + opts.pipeline.quantize +
                   (opts.pipeline.quantizeGroupSize
                        ? ":" + std::to_string(opts.pipeline.quantizeGroupSize)
                        : std::string()) +
                   " weights";
  writer.setModel(model);
  if (!opts.tokenizer.empty())
    writer.setTokenizer(opts.tokenizer);

  // Tensor parallelism: every rank runs rank 0's code on its own weights.
  const int64_t ranks = static_cast<int64_t>(rankModules.size()) + 1;
  if (ranks > 1) {
    writer.setTensorParallel(ranks);
    std::string program = programText(module);
    for (auto [r, other] : llvm::enumerate(rankModules))
      if (programText(other) != program)
        return fail(formatv("internal error: rank {0}'s program differs from "
                            "rank 0's (tensor parallelism needs one program)",
                            r + 1));
  }

  // Weights, in the order --kiln-bind-buffers laid them out.
  SmallVector<ml_program::GlobalOp> globals(
      module.getOps<ml_program::GlobalOp>());
  for (auto global : globals) {
    auto type = cast<RankedTensorType>(global.getType());
    FailureOr<rt::DType> dtype = dtypeOf(type.getElementType());
    // A view of the data, or (kiln-compile's StreamedWeights) what makes it
    // while the writer writes it.
    WeightRef source = globalWeight(global);
    if (failed(dtype) || !source ||
        source->rows() * source->rowBytes() !=
            static_cast<size_t>(type.getNumElements()) * rt::dtypeSize(*dtype))
      return fail("weight @" + global.getSymName() +
                  " has no data or an unsupported type");
    uint64_t offset = writer.addWeight(global.getSymName().str(), *dtype,
                                       vec(type.getShape()), source);
    if (static_cast<int64_t>(offset) != attrInt(global, kOffsetAttr))
      return fail(formatv("internal error: weight @{0} is at {1} in the "
                          "artifact but the code reads it at {2}",
                          global.getSymName(), offset,
                          attrInt(global, kOffsetAttr)));
    for (auto [r, other] : llvm::enumerate(rankModules)) {
      auto mine = SymbolTable::lookupSymbolIn(other, global.getSymNameAttr());
      auto rankGlobal = dyn_cast_or_null<ml_program::GlobalOp>(mine);
      WeightRef rankSource = rankGlobal ? globalWeight(rankGlobal) : nullptr;
      if (!rankSource ||
          !writer.addRankWeight(static_cast<int64_t>(r) + 1,
                                global.getSymName().str(), rankSource))
        return fail(formatv("internal error: rank {0} has no weight @{1} "
                            "of rank 0's type",
                            r + 1, global.getSymName()));
    }
  }
  report.weightsBytes = writer.weightsSize();
  report.ranks = ranks;

  // Entry points and the KV cache.
  bool haveKv = false;
  std::vector<std::pair<rt::EntrySpec, func::FuncOp>> entries;
  for (auto func : module.getOps<func::FuncOp>()) {
    auto entryName = func->getAttrOfType<StringAttr>(kEntryAttr);
    if (!entryName)
      continue;
    auto io = func->getAttrOfType<DictionaryAttr>(kIoAttr);
    auto kvOffsets = func->getAttrOfType<ArrayAttr>(kKvOffsetsAttr);
    auto tokensType = func->getAttrOfType<TypeAttr>(kTokensTypeAttr);
    auto logitsType = func->getAttrOfType<TypeAttr>(kLogitsTypeAttr);
    auto cacheType = func->getAttrOfType<TypeAttr>(kCacheTypeAttr);
    if (!io || !kvOffsets || !tokensType || !logitsType || !cacheType)
      return fail("internal error: entry @" + func.getSymName() +
                  " lacks its buffer layout");
    auto tokens = cast<RankedTensorType>(tokensType.getValue());
    auto logits = cast<RankedTensorType>(logitsType.getValue());
    auto cache = cast<RankedTensorType>(cacheType.getValue());
    rt::EntrySpec entry;
    entry.name = entryName.str();
    entry.symbol = func.getSymName().str();
    entry.batch = tokens.getDimSize(0);
    entry.seq = tokens.getDimSize(1);
    entry.ioSize = dictInt(io, "size");
    entry.arenaSize = std::max<int64_t>(attrInt(func, kArenaSizeAttr), 0);
    auto tensor = [&](StringRef name, rt::DType dtype,
                      ArrayRef<int64_t> shape) {
      rt::TensorSpec t;
      t.name = name.str();
      t.dtype = dtype;
      t.shape = vec(shape);
      t.offset = static_cast<uint64_t>(dictInt(io, name));
      return t;
    };
    entry.tokens = tensor("tokens", rt::DType::I64, tokens.getShape());
    entry.positions = tensor("positions", rt::DType::I64, tokens.getShape());
    entry.logits =
        tensor("logits", *dtypeOf(logits.getElementType()), logits.getShape());
    // One argmax per logits row: [batch, seq], or [batch, 1] for a
    // last-row entry.
    entry.argmax =
        tensor("argmax", rt::DType::I64, logits.getShape().take_front(2));
    if (func->hasAttr(kSamplingAttr)) {
      entry.sampling = tensor("sampling", rt::DType::F32, {entry.batch, 4});
      entry.seeds = tensor("seeds", rt::DType::I64, {entry.batch});
    }
    // Paged: the block table [batch, max_blocks] i32.
    const bool paged = func->hasAttr(kBlockTableAttr);
    const int64_t maxBlocks =
        paged ? llvm::divideCeil(opts.pipeline.maxSeqLen, cache.getDimSize(2))
              : 0;
    if (paged)
      entry.blockTable =
          tensor("block_table", rt::DType::I32, {entry.batch, maxBlocks});
    if (auto plan = func->getAttrOfType<ArrayAttr>(kMemoryPlanAttr))
      for (auto [i, buffer] :
           llvm::enumerate(plan.getAsRange<BufferPlacementAttr>()))
        entry.plan.push_back({"buffer" + std::to_string(i),
                              static_cast<uint64_t>(buffer.getOffset()),
                              static_cast<uint64_t>(buffer.getSize())});
    report.arenaBytes = std::max<uint64_t>(report.arenaBytes, entry.arenaSize);
    report.ioBytes = std::max<uint64_t>(report.ioBytes, entry.ioSize);
    entries.emplace_back(std::move(entry), func);

    // The cache of the largest batch (a @decode_b<N> entry views its first
    // N rows).
    // Paged: the pool is the same in every entry; the sequences are the
    // largest entry batch.
    const int64_t rows = paged ? tokens.getDimSize(0) : cache.getDimSize(0);
    if (!haveKv || rows > report.batch) {
      haveKv = true;
      rt::KvCacheSpec kv;
      kv.numLayers = kvOffsets.size() / 2;
      kv.batch = rows;
      kv.numKvHeads = cache.getDimSize(1);
      kv.maxSeqLen =
          paged ? maxBlocks * cache.getDimSize(2) : cache.getDimSize(2);
      if (paged) {
        kv.blockSize = cache.getDimSize(2);
        kv.numBlocks = cache.getDimSize(0);
      }
      kv.headDim = cache.getDimSize(3);
      kv.dtype = *dtypeOf(cache.getElementType());
      for (auto [i, off] : llvm::enumerate(kvOffsets))
        (i % 2 ? kv.vOffsets : kv.kOffsets)
            .push_back(cast<IntegerAttr>(off).getInt());
      kv.kvBytes = attrInt(module, kKvSizeAttr);
      writer.setKvCache(kv);
      report.kvBytes = kv.kvBytes;
      report.layers = kv.numLayers;
      report.kvHeads = kv.numKvHeads;
      report.headDim = kv.headDim;
      report.maxSeqLen = kv.maxSeqLen;
      report.batch = kv.batch;
      report.kvBlockSize = kv.blockSize;
      report.kvBlocks = kv.numBlocks;
      report.kvElementBytes = rt::dtypeSize(kv.dtype);
    }
  }

  // The weights are bound to the runtime's buffer now: drop the globals
  // (their data stays alive in the importer's file mapping until write()).
  for (auto global : globals)
    global->remove();
  llvm::scope_exit restore([&] {
    for (auto global : globals)
      global->destroy();
  });

  bool gpu = isGpuTarget(opts.target);
  if (llvm::Error err = stage("codegen", [&]() -> llvm::Error {
        if (gpu) {
          auto code = generateGpuCode(module, opts.target, /*assemble=*/true,
                                      opts.pipeline.dedupKernels,
                                      opts.pipeline.splitKv);
          if (!code)
            return code.takeError();
          std::vector<uint8_t> ptx(code->ptx.begin(), code->ptx.end());
          writer.addKernelImage("kernels.ptx", rt::ImageKind::Ptx,
                                std::move(ptx));
          if (!code->cubin.empty())
            writer.addKernelImage("kernels.cubin", rt::ImageKind::Cubin,
                                  std::move(code->cubin));
          report.gpuKernels = 0;
          report.waitingLaunches = 0;
          report.launchesByMapping.clear();
          report.launchesByTiling.clear();
          report.launchesByEntry.clear();
          std::set<std::string> distinct;
          for (auto &[entry, func] : entries) {
            auto launches = launchSchedule(func, &report.launchesByMapping,
                                           &report.launchesByTiling);
            if (!launches)
              return launches.takeError();
            report.gpuKernels += launches->size();
            for (const rt::LaunchSpec &l : *launches) {
              report.waitingLaunches += l.waitsForPrevious;
              distinct.insert(l.kernel);
            }
            report.launchesByEntry.emplace_back(entry.name, launches->size());
            entry.launches = std::move(*launches);
          }
          report.distinctKernels = distinct.size();
          report.ptxBytes = code->ptx.size();
          return llvm::Error::success();
        }
        if (llvm::Error e =
                runPipeline(module, "lowering to LLVM", [&](OpPassManager &pm) {
                  buildCpuToLLVMPipeline(pm);
                }))
          return e;
        auto so = emitCpuSharedObject(module);
        if (!so)
          return so.takeError();
        writer.addKernelImage("kernels", rt::ImageKind::SharedObject,
                              std::move(*so));
        return llvm::Error::success();
      }))
    return std::move(err);
  for (auto &entry : entries)
    writer.addEntry(entry.first);

  writer.setProgress(opts.writeProgress);
  if (llvm::Error err = stage("write", [&]() -> llvm::Error {
        std::string error;
        if (!writer.write(opts.output, &error))
          return fail("cannot write '" + opts.output + "': " + error);
        return llvm::Error::success();
      }))
    return std::move(err);
  return report;
}
