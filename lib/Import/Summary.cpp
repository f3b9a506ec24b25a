//===- Summary.cpp - Model hyper-parameters from a tfm module -------------===//
//
// `kiln-compile --emit=summary` reads the model's configuration back from the
// raised IR, so the summary shows what the compiler will build, not what a
// side file claims.
//
//===----------------------------------------------------------------------===//

#include "dialects/Tfm/TfmOps.h"
#include "kiln/Import/OnnxImporter.h"

#include "mlir/IR/BuiltinTypes.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

using namespace mlir;
using namespace kiln;

namespace {
llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

std::string dtypeName(Type t) {
  if (t.isF32())
    return "float32";
  if (t.isF16())
    return "float16";
  if (t.isBF16())
    return "bfloat16";
  std::string s;
  llvm::raw_string_ostream os(s);
  t.print(os);
  return s;
}

/// Rounds an f32 attribute to the decimal the exporter most likely wrote
/// (1e-05 rather than 9.99999974e-06).
double shortest(float f) { return std::stod(llvm::formatv("{0:e6}", f).str()); }
} // namespace

llvm::Expected<ModelSummary> kiln::summarizeModel(ModuleOp module) {
  tfm::EmbeddingOp embedding;
  tfm::LogitsOp logits;
  SmallVector<tfm::AttentionOp> attentions;
  SmallVector<tfm::RmsNormOp> norms;
  SmallVector<tfm::SwiGluOp> mlps;
  bool attentionBias = false;
  module.walk([&](Operation *op) {
    if (auto e = dyn_cast<tfm::EmbeddingOp>(op))
      embedding = e;
    else if (auto l = dyn_cast<tfm::LogitsOp>(op))
      logits = l;
    else if (auto a = dyn_cast<tfm::AttentionOp>(op))
      attentions.push_back(a);
    else if (auto n = dyn_cast<tfm::RmsNormOp>(op))
      norms.push_back(n);
    else if (auto s = dyn_cast<tfm::SwiGluOp>(op))
      mlps.push_back(s);
    else if (auto lin = dyn_cast<tfm::LinearOp>(op))
      attentionBias |= static_cast<bool>(lin.getBias());
  });
  if (!embedding || !logits || attentions.empty() || norms.empty() ||
      mlps.empty())
    return fail("the module is not a complete decoder (needs tfm.embedding, "
                "tfm.attention, tfm.rms_norm, tfm.swiglu and tfm.logits)");
  tfm::AttentionOp first = attentions.front();
  for (tfm::AttentionOp a : attentions)
    if (a.getNumHeads() != first.getNumHeads() ||
        a.getNumKvHeads() != first.getNumKvHeads() ||
        a.getHeadDim() != first.getHeadDim())
      return fail("layers differ in head counts or head_dim");
  auto table = embedding.getTable().getType();
  ModelSummary m;
  m.numLayers = static_cast<int64_t>(attentions.size());
  m.hiddenSize = table.getDimSize(1);
  m.numHeads = first.getNumHeads();
  m.numKvHeads = first.getNumKvHeads();
  m.headDim = first.getHeadDim();
  m.vocabSize = logits.getVocabSize();
  m.intermediateSize = mlps.front().getType().getDimSize(2);
  m.rmsNormEps = shortest(norms.front().getEpsilon().convertToFloat());
  m.tiedEmbeddings = logits.getTied();
  m.dtype = dtypeName(table.getElementType());
  m.attentionBias = attentionBias;
  m.attentionScale = static_cast<double>(first.getScale().convertToFloat());
  return m;
}

std::string ModelSummary::toJson() const {
  llvm::json::Object o{
      {"num_layers", numLayers},
      {"hidden_size", hiddenSize},
      {"num_heads", numHeads},
      {"num_kv_heads", numKvHeads},
      {"head_dim", headDim},
      {"vocab_size", vocabSize},
      {"intermediate_size", intermediateSize},
      {"rms_norm_eps", rmsNormEps},
      {"tied_embeddings", tiedEmbeddings},
      {"dtype", dtype},
      {"attention_bias", attentionBias},
      {"attention_scale", attentionScale},
  };
  std::string s;
  llvm::raw_string_ostream os(s);
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(o)));
  return s;
}
