//===- TransposeWeights.cpp - Projection weights stored [out, in] ---------===//
//
// The compiler owns the weights' layout in the artifact. torch's exporters
// store a Linear's weight [in, out] (MatMul(x, W^T) with W^T folded); a
// batch-1 projection then reads each output's weights as a strided column.
// Stored [out, in], each output is one contiguous row: a warp reads it with
// 16-byte coalesced loads and reduces it alone (gemv_nk), and the CPU's
// inner loop walks memory in order. This pass rewrites every tfm.linear and
// tfm.logits with `layout = <in_out>` and a constant weight to
// `layout = <out_in>` over a transposed copy of the weight made at compile
// time; the copy is shared by the entry points and the original is dropped
// when nothing else reads it (a tied embedding table keeps it).
//
//===----------------------------------------------------------------------===//

#include "dialects/Tfm/TfmOps.h"
#include "passes/Passes.h"
#include "passes/fusion/ConstantWeights.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringMap.h"

#define DEBUG_TYPE "kiln-transpose-weights"

namespace kiln {
#define GEN_PASS_DEF_TRANSPOSEWEIGHTS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

struct TransposeWeights : kiln::impl::TransposeWeightsBase<TransposeWeights> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<std::string> originals;
    // tfm.linear and tfm.logits name their weight and layout alike.
    auto rewrite = [&](auto op) {
      if (op.getLayout() != tfm::WeightLayout::in_out)
        return;
      if (Value w = transposed(op.getWeight(), op, symbols, originals)) {
        op.getWeightMutable().assign(w);
        op.setLayout(tfm::WeightLayout::out_in);
      }
    };
    module.walk([&](Operation *op) {
      if (auto linear = dyn_cast<tfm::LinearOp>(op))
        rewrite(linear);
      else if (auto logits = dyn_cast<tfm::LogitsOp>(op))
        rewrite(logits);
    });
    eraseUnusedGlobals(module, symbols, originals);
  }

  /// A load of the [out, in] copy of the [in, out] constant `weight`, or
  /// null when `weight` is not a constant global with data.
  Value transposed(Value weight, Operation *user, SymbolTable &symbols,
                   SmallVector<std::string> &originals) {
    ml_program::GlobalOp g = constantGlobal(weight, symbols);
    if (!g)
      return {};
    auto type = cast<RankedTensorType>(g.getType());
    if (type.getRank() != 2 || !type.getElementType().isIntOrFloat() ||
        type.getElementType().getIntOrFloatBitWidth() % 8 != 0)
      return {};
    ml_program::GlobalOp t = copies.lookup(g.getSymName());
    if (!t) {
      WeightRef source = globalWeight(g);
      if (!source)
        return {};
      int64_t rows = type.getDimSize(0), cols = type.getDimSize(1);
      size_t elt = type.getElementType().getIntOrFloatBitWidth() / 8;
      auto ttype = RankedTensorType::get({cols, rows}, type.getElementType());
      t = createWeightGlobal(symbols, g, g.getSymName().str() + ".t", ttype,
                             transposedWeights({source}, elt));
      copies[g.getSymName()] = t;
      originals.push_back(g.getSymName().str());
    }
    return loadAtStart(user->getParentOfType<func::FuncOp>().getBody().front(),
                       t);
  }

  /// [out, in] copies by the original's name (shared by the entry points).
  llvm::StringMap<ml_program::GlobalOp> copies;
};

} // namespace
