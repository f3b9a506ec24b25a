//===- kiln-compile.cpp - Kiln's ahead-of-time compiler driver ------------===//
//
//   kiln-compile model.onnx [--target cpu] [--max-seq-len N]
//                [--prefill-chunk N] [--prefill-logits both|last|all]
//                [--batch N] [--tokenizer DIR]
//                -o model.kiln
//   kiln-compile model.onnx --emit=tfm|summary|shapes|memory-plan|loops|ptx
//
// The artifact carries the tokenizer (tokenizer.json, and
// tokenizer_config.json and generation_config.json when there) found beside
// model.onnx, or in --tokenizer DIR; kiln-run then takes text prompts.
//
//===----------------------------------------------------------------------===//

#include "kiln/Compiler/Compiler.h"
#include "kiln/Import/OnnxImporter.h"
#include "kiln/runtime/Target.h"
#include "kiln/runtime/Tokenizer.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Parallel.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

#include <chrono>
#include <sys/resource.h>
#include <sys/stat.h>

using namespace llvm;

namespace {
enum class Emit {
  Artifact,
  Tfm,
  TfmOpt,
  Summary,
  Shapes,
  MemoryPlan,
  Loops,
  Ptx
};

cl::OptionCategory category("kiln-compile options");
cl::opt<std::string> inputPath(cl::Positional, cl::desc("<model.onnx>"),
                               cl::Required, cl::cat(category));
cl::opt<Emit> emit(
    "emit", cl::desc("What to produce (default: the artifact)"),
    cl::values(clEnumValN(Emit::Artifact, "artifact",
                          "model.kiln for kiln-run"),
               clEnumValN(Emit::Tfm, "tfm", "the raised tfm-dialect module"),
               clEnumValN(Emit::TfmOpt, "tfm-opt",
                          "the tfm module after entry-point specialization, "
                          "fusion, weight layout and quantization"),
               clEnumValN(Emit::Summary, "summary",
                          "the model's hyper-parameters as JSON"),
               clEnumValN(Emit::Shapes, "shapes",
                          "the ONNX graph's inferred symbolic shapes (for "
                          "diagnosing imports)"),
               clEnumValN(Emit::MemoryPlan, "memory-plan",
                          "each entry point's static arena plan"),
               clEnumValN(Emit::Loops, "loops",
                          "the module after lowering to planned loop nests"),
               clEnumValN(Emit::Ptx, "ptx", "the kernels' PTX (GPU targets)")),
    cl::init(Emit::Artifact), cl::cat(category));
cl::opt<std::string> outputPath("o",
                                cl::desc("Output file (default: model.kiln "
                                         "for the artifact, else stdout)"),
                                cl::value_desc("file"), cl::cat(category));
cl::opt<std::string> target("target",
                            cl::desc("Code generation target: cpu, or an "
                                     "NVIDIA architecture (sm_80, sm_90, ...)"),
                            cl::init("cpu"), cl::cat(category));
cl::opt<int64_t> maxSeqLen("max-seq-len",
                           cl::desc("Context length the KV cache holds"),
                           cl::init(kiln::kDefaultMaxSeqLen),
                           cl::cat(category));
cl::opt<int64_t> prefillChunk(
    "prefill-chunk",
    cl::desc("Most tokens per prefill call; the runtime splits longer "
             "prompts and pads the last chunk"),
    cl::init(kiln::kDefaultPrefillChunk), cl::cat(category));
cl::opt<std::string> prefillLogits(
    "prefill-logits",
    cl::desc("Logits of a prefill chunk: both (default: @prefill computes "
             "each sequence's last row, the one sampled, and @prefill_all "
             "every row, for --perplexity and --dump-logits), last (no "
             "@prefill_all) or all (@prefill computes every row)"),
    cl::init("both"), cl::cat(category));
cl::opt<int64_t> batch("batch", cl::desc("Sequences per call"),
                       cl::init(kiln::kDefaultBatch), cl::cat(category));
cl::list<int64_t> decodeBatches(
    "decode-batches",
    cl::desc("More decode entries for fewer sequences (e.g. 1,8): @decode_b<N> "
             "runs the first N rows of the KV cache; the runtime calls the "
             "smallest that holds every running sequence"),
    cl::CommaSeparated, cl::value_desc("N,..."), cl::cat(category));
cl::opt<int64_t> kvBlockSize(
    "kv-block-size",
    cl::desc("Paged KV cache: positions per block (e.g. 16). Each layer's "
             "cache becomes a pool of blocks shared by all sequences, each "
             "with a block table the runtime fills (0, the default: one "
             "contiguous [batch, max-seq-len] cache per layer)"),
    cl::init(0), cl::cat(category));
cl::opt<int64_t> kvBlocks(
    "kv-blocks",
    cl::desc("Paged KV cache: blocks in each layer's pool (default: enough for "
             "every sequence at --max-seq-len; fewer let a server admit "
             "sequences while blocks remain and preempt when they run out)"),
    cl::init(0), cl::cat(category));
cl::opt<bool> printWeights(
    "print-weights",
    cl::desc("With --emit=tfm, print weight data (hex) so the output can be "
             "parsed back; elided by default"),
    cl::init(false), cl::cat(category));
cl::opt<unsigned> threads(
    "jobs",
    cl::desc("Worker threads of the compile (MLIR's passes, weight "
             "rewrites); 0, the default, uses every core. The artifact is "
             "byte-identical whatever the count"),
    cl::init(0), cl::cat(category));
cl::list<std::string> noFuse(
    "no-fuse",
    cl::desc(
        "Turn optimizing passes off to measure their effect: "
        "projections (kiln-fuse-projections), norm "
        "(kiln-fuse-norm-projection), swiglu (kiln-fuse-swiglu), elementwise "
        "(kiln-fuse-elementwise), transpose-weights "
        "(kiln-transpose-weights), epilogues (elementwise consumers "
        "in the GPU kernels' stores), attention (one GPU kernel per "
        "attention), tensor-cores (prefill on the tensor cores: "
        "matmul_mma, matmul_wgmma, attention_prefill), dedup-kernels "
        "(kiln-deduplicate-kernels: one kernel per launch), split-kv "
        "(decode attention split over a thread-block cluster, sm_90+), "
        "wgmma (prefill's projections on sm_90's warpgroup MMA: "
        "matmul_wgmma; without it matmul_mma), or all"),
    cl::CommaSeparated, cl::value_desc("pass,..."), cl::cat(category));
cl::opt<std::string> quantize(
    "quantize",
    cl::desc("Weight-only quantization of the projections: int8 (one scale "
             "per output channel), int8:G, or int4[:G] (a scale per G input "
             "features; G = 32, 64 or 128, default 32)"),
    cl::value_desc("scheme[:G]"), cl::cat(category));
cl::opt<bool> quantizeAsymmetric(
    "quantize-asymmetric",
    cl::desc("With --quantize, a zero point per group (default: symmetric)"),
    cl::init(false), cl::cat(category));
cl::opt<bool> quantizeLmHead(
    "quantize-lm-head",
    cl::desc("With --quantize, quantize the logits projection too "
             "(embeddings always keep their float type)"),
    cl::init(false), cl::cat(category));
cl::opt<int64_t> tensorParallel(
    "tensor-parallel",
    cl::desc("Split the model over N GPUs, Megatron-style "
             "(kiln-shard-tensor-parallel): q/k/v and gate/up by output "
             "columns, o_proj and down by input rows with an all-reduce, the "
             "lm_head by vocabulary with an all-gather, the embedding by "
             "vocabulary with an all-reduce; --emit=tfm shows a "
             "rank's program. The cpu target runs the ranks as threads; GPU "
             "targets are not supported yet"),
    cl::init(1), cl::value_desc("N"), cl::cat(category));
cl::opt<int64_t> rankOpt(
    "rank",
    cl::desc("With --tensor-parallel, the rank whose program and weights "
             "--emit shows (default 0)"),
    cl::init(0), cl::value_desc("R"), cl::cat(category));
cl::opt<bool> streamWeights(
    "stream-weights",
    cl::desc("Make the fused, transposed and quantized weights while the "
             "artifact is written, piece by piece, and release the input's "
             "pages once copied, so peak memory does not grow with the model "
             "(default on; --stream-weights=false computes every weight "
             "during the passes, the same bytes)"),
    cl::init(true), cl::cat(category));
cl::opt<bool> quiet("quiet", cl::desc("Print no progress, timing or report"),
                    cl::init(false), cl::cat(category));
cl::opt<std::string> tokenizerDir(
    "tokenizer",
    cl::desc("Directory of the tokenizer.json (and tokenizer_config.json, "
             "generation_config.json) to store in the artifact (default: "
             "the model's directory, when it holds one)"),
    cl::value_desc("dir"), cl::cat(category));

int error(const Twine &message) {
  WithColor::error(errs(), "kiln-compile") << message << "\n";
  return 1;
}

/// Runs and times one stage.
Error stage(StringRef name, const std::function<Error()> &fn) {
  auto start = std::chrono::steady_clock::now();
  Error err = fn();
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (!quiet && !err)
    errs() << formatv("kiln-compile: {0,-16} {1,8:F3} s\n", name, seconds);
  return err;
}

/// The options of the flags, checked before any work: their rules are the
/// library's (CompileOptions::verify, PipelineOptions), not repeated here.
Expected<kiln::CompileOptions> compileOptions() {
  kiln::CompileOptions opts;
  opts.pipeline.batch = batch;
  opts.pipeline.prefillChunk = prefillChunk;
  opts.pipeline.maxSeqLen = maxSeqLen;
  opts.pipeline.prefillLogits = prefillLogits;
  opts.pipeline.decodeBatches.assign(decodeBatches.begin(),
                                     decodeBatches.end());
  opts.pipeline.kvBlockSize = kvBlockSize;
  opts.pipeline.kvBlocks = kvBlocks;
  if (!quantize.empty())
    if (Error err = opts.pipeline.parseQuantize(quantize))
      return std::move(err);
  opts.pipeline.quantizeAsymmetric = quantizeAsymmetric;
  opts.pipeline.quantizeLmHead = quantizeLmHead;
  for (const std::string &name : noFuse)
    if (Error err = opts.pipeline.disableFusion(name))
      return std::move(err);
  opts.pipeline.stopAfterTfm = emit == Emit::TfmOpt;
  opts.pipeline.tensorParallel = tensorParallel;
  opts.pipeline.rank = rankOpt;
  // The GPU's collectives (NCCL) are not implemented yet (issue 16).
  if (tensorParallel > 1 && target != "cpu" &&
      (emit == Emit::Artifact || emit == Emit::Ptx))
    return createStringError("--tensor-parallel " +
                             std::to_string(tensorParallel) + " --target " +
                             target +
                             ": split models run on the cpu target only so "
                             "far (the GPU's collectives are not implemented)");
  opts.target = target;
  if (Error err = opts.verify())
    return std::move(err);
  // An existing output must be a regular file: writing would otherwise
  // replace a FIFO or a device node (as root, even /dev/full).
  if (!outputPath.empty() && outputPath != "-") {
    struct stat st;
    if (::stat(outputPath.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      return createStringError("-o " + outputPath +
                               ": exists and is not a regular file");
  }
  return opts;
}

/// The directory whose tokenizer goes into the artifact: --tokenizer, else
/// the model's when it holds a tokenizer.json; empty for none.
std::string tokenizerDirectory() {
  if (!tokenizerDir.empty())
    return tokenizerDir;
  SmallString<256> dir(inputPath.getValue());
  sys::path::remove_filename(dir);
  std::string found = dir.empty() ? "." : std::string(dir);
  return sys::fs::exists(found + "/tokenizer.json") ? found : "";
}

/// Reads and checks the tokenizer of `dir`.
Error loadTokenizer(const std::string &dir,
                    kiln::runtime::TokenizerFiles *files,
                    int64_t *tokenizerVocab) {
  std::string message;
  if (!kiln::runtime::Tokenizer::readFiles(dir, files, &message))
    return createStringError(message);
  auto tokenizer = kiln::runtime::Tokenizer::create(*files, &message);
  if (!tokenizer)
    return createStringError(dir + "/" + message);
  *tokenizerVocab = tokenizer->vocabSize();
  return Error::success();
}
} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv,
                              "Kiln: ahead-of-time compiler for Llama-family "
                              "models\n");
  auto checked = compileOptions();
  if (!checked)
    return error(toString(checked.takeError()));
  kiln::CompileOptions opts = std::move(*checked);
  // Checked before the long compile; an unusable tokenizer fails it.
  kiln::runtime::TokenizerFiles tokenizer;
  int64_t tokenizerVocab = 0;
  std::string dir = emit == Emit::Artifact ? tokenizerDirectory() : "";
  if (!dir.empty())
    if (Error err = stage("tokenizer", [&]() {
          return loadTokenizer(dir, &tokenizer, &tokenizerVocab);
        }))
      return error(toString(std::move(err)));
  if (emit == Emit::Shapes) {
    auto shapes = kiln::describeOnnxShapes(inputPath);
    if (!shapes)
      return error(toString(shapes.takeError()));
    outs() << *shapes;
    return 0;
  }

  // --jobs: MLIR's passes run on a pool of that many threads (one: no
  // threading), and so do llvm::parallelFor's weight rewrites.
  llvm::parallel::strategy = llvm::hardware_concurrency(threads);
  mlir::MLIRContext context(threads == 0
                                ? mlir::MLIRContext::Threading::ENABLED
                                : mlir::MLIRContext::Threading::DISABLED);
  std::optional<llvm::DefaultThreadPool> pool;
  if (threads > 1) {
    pool.emplace(llvm::hardware_concurrency(threads));
    context.setThreadPool(*pool);
  }
  context.printOpOnDiagnostic(false);
  auto start = std::chrono::steady_clock::now();
  std::optional<kiln::ImportedModel> imported;
  if (Error err = stage("import", [&]() -> Error {
        auto m = kiln::importOnnxModel(inputPath, context);
        if (!m)
          return m.takeError();
        imported.emplace(std::move(*m));
        return Error::success();
      }))
    return error(toString(std::move(err)));
  mlir::ModuleOp module = *imported->module;
  auto summary = kiln::summarizeModel(module);
  if (!summary)
    return error(toString(summary.takeError()));
  if (!tokenizer.empty() && tokenizerVocab > summary->vocabSize)
    return error(formatv("the tokenizer has {0} tokens but the model's "
                         "vocabulary only {1}",
                         tokenizerVocab, summary->vocabSize));

  std::string outName = outputPath;
  if (outName.empty())
    outName = emit == Emit::Artifact ? "model.kiln" : "-";
  std::string errorMessage;
  std::unique_ptr<ToolOutputFile> output;
  if (emit != Emit::Artifact) {
    output = mlir::openOutputFile(outName, &errorMessage);
    if (!output)
      return error(errorMessage);
  }
  if (emit == Emit::Tfm && opts.pipeline.tensorParallel > 1)
    if (Error err = kiln::runPipeline(
            module, "the tensor-parallel split", [&](mlir::OpPassManager &pm) {
              kiln::buildTensorParallelSplit(pm, opts.pipeline);
            }))
      return error(toString(std::move(err)));
  if (emit == Emit::Tfm || emit == Emit::Summary) {
    if (emit == Emit::Summary) {
      output->os() << summary->toJson() << "\n";
    } else {
      mlir::OpPrintingFlags flags;
      if (!printWeights)
        flags.elideLargeResourceString(0);
      module.print(output->os(), flags);
      output->os() << "\n";
    }
    output->keep();
    return 0;
  }

  opts.output = outName;
  opts.tokenizer = std::move(tokenizer);
  // On a terminal, the weights' progress while they are written (each made
  // on the way: the longest stage of a large model), on one line that the
  // stage's timing line then replaces.
  if (!quiet && errs().is_displayed())
    opts.writeProgress = [shown = uint64_t(0)](uint64_t done,
                                               uint64_t total) mutable {
      constexpr uint64_t kStep = uint64_t(256) << 20;
      if (done != total && done < shown + kStep)
        return;
      shown = done;
      errs() << formatv("\rkiln-compile: write  weights {0,6:F2} of {1:F2} "
                        "GiB ({2,3}%)",
                        done / double(1 << 30), total / double(1 << 30),
                        total ? done * 100 / total : 100);
      if (done == total)
        errs() << "\r" << std::string(60, ' ') << "\r";
      errs().flush();
    };
  std::optional<kiln::StreamedWeights> streamed;
  if (emit == Emit::Artifact && streamWeights)
    streamed.emplace(&context, [&](llvm::ArrayRef<char> bytes) {
      imported->releasePages(bytes);
    });
  // Tensor parallelism: ranks 1.. are lowered from copies of the imported
  // module, for their weights (the code is rank 0's, the same for all).
  std::vector<mlir::OwningOpRef<mlir::ModuleOp>> rankModules;
  if (emit == Emit::Artifact)
    for (int64_t r = 1; r < opts.pipeline.tensorParallel; ++r)
      rankModules.emplace_back(module.clone());
  if (Error err = kiln::lowerToLoops(module, opts, stage))
    return error(toString(std::move(err)));
  std::vector<mlir::ModuleOp> ranks;
  for (auto [r, rankModule] : llvm::enumerate(rankModules)) {
    kiln::CompileOptions rankOpts = opts;
    rankOpts.pipeline.rank = static_cast<int64_t>(r) + 1;
    if (Error err = kiln::lowerToLoops(*rankModule, rankOpts, stage))
      return error(toString(std::move(err)));
    ranks.push_back(*rankModule);
  }
  if (emit == Emit::Ptx) {
    auto ptx = kiln::emitGpuAssembly(module, opts);
    if (!ptx)
      return error(toString(ptx.takeError()));
    output->os() << *ptx;
    output->keep();
    return 0;
  }
  if (emit == Emit::MemoryPlan || emit == Emit::Loops || emit == Emit::TfmOpt) {
    if (emit == Emit::MemoryPlan) {
      kiln::printMemoryPlan(module, output->os());
    } else {
      mlir::OpPrintingFlags flags;
      flags.elideLargeResourceString(0);
      module.print(output->os(), flags);
    }
    output->keep();
    return 0;
  }
  auto report = kiln::emitArtifact(module, *summary, opts, stage, ranks);
  if (!report)
    return error(toString(report.takeError()));
  if (!quiet) {
    report->print(errs());
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    errs() << formatv(
        "kiln-compile: wrote {0} in {1:F3} s, peak memory "
        "{2:F1} MiB\n",
        outName,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count(),
        usage.ru_maxrss / 1024.0);
  }
  return 0;
}
