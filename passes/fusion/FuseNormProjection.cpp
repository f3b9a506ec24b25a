//===- FuseNormProjection.cpp - RMSNorm into the projections it feeds -----===//
//
// Vertical fusion of a decoder layer's RMSNorm with the projection(s) that
// read its result (q/k/v, gate/up; once kiln-fuse-projections ran, one each):
//
//   %n = tfm.rms_norm %h, %gain {epsilon = e}
//   %y = tfm.linear %n, %w layout = <out_in>
//   ->
//   %y = tfm.linear %h, %w.gain layout = <out_in> rms_norm eps = e
//
// with w.gain[n, k] = w[n, k] * gain[k] made at compile time. Since
// linear(x * r) = r * linear(x) for the row's scalar r = rsqrt(mean(x^2) +
// e), the norm costs the projection's kernel one more sum over the row it
// reads anyway: the normalised activation never goes to memory and the
// norm's two launches (a reduction, an elementwise scale) disappear.
//
// Fires only when every user of the norm is such a linear (constant float
// weight, no norm of its own) and the gain is a constant: a norm whose result
// is also returned, added or fed to tfm.logits stays.
//
//===----------------------------------------------------------------------===//

#include "dialects/Tfm/TfmOps.h"
#include "kiln/runtime/Numeric.h"
#include "passes/Passes.h"
#include "passes/fusion/ConstantWeights.h"

#include "mlir/IR/Threading.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MLProgram/IR/MLProgram.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/StringMap.h"

#include <string>
#include <vector>

#define DEBUG_TYPE "kiln-fuse-norm-projection"

namespace kiln {
#define GEN_PASS_DEF_FUSENORMPROJECTION
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;
namespace rt = kiln::runtime;

namespace {

/// The global's elements as f32, or nothing when it has no float data.
std::optional<std::vector<float>> floatsOf(ml_program::GlobalOp g) {
  auto type = cast<RankedTensorType>(g.getType());
  std::optional<rt::DType> dtype = floatDType(type.getElementType());
  if (!dtype)
    return std::nullopt;
  WeightRef source = globalWeight(g);
  if (!source)
    return std::nullopt;
  std::vector<char> storage;
  ArrayRef<char> bytes = bytesOf(*source, storage);
  std::vector<float> out(type.getNumElements());
  if (bytes.size() !=
      out.size() * (type.getElementType().getIntOrFloatBitWidth() / 8))
    return std::nullopt;
  rt::convertToFloat(bytes.data(), *dtype, out.size(), out.data());
  return out;
}

struct FuseNormProjection
    : kiln::impl::FuseNormProjectionBase<FuseNormProjection> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<std::string> originals;
    SmallVector<tfm::RmsNormOp> norms;
    module.walk([&](tfm::RmsNormOp op) { norms.push_back(op); });
    for (tfm::RmsNormOp norm : norms)
      fold(norm, symbols, originals);
    eraseUnusedGlobals(module, symbols, originals);
  }

  /// Whether `user` is a linear that can take the norm: it reads the norm's
  /// result as its input, has a constant float weight of the norm's element
  /// type and no norm of its own.
  static bool takesNorm(Operation *user, tfm::RmsNormOp norm,
                        SymbolTable &symbols) {
    auto linear = dyn_cast<tfm::LinearOp>(user);
    if (!linear || linear.getInput() != norm.getResult() ||
        linear.getRmsNormEpsilonAttr())
      return false;
    ml_program::GlobalOp w = constantGlobal(linear.getWeight(), symbols);
    if (!w)
      return false;
    auto type = cast<RankedTensorType>(w.getType());
    return type.getRank() == 2 &&
           type.getElementType() == norm.getType().getElementType() &&
           floatDType(type.getElementType()).has_value();
  }

  void fold(tfm::RmsNormOp norm, SymbolTable &symbols,
            SmallVector<std::string> &originals) {
    if (norm->use_empty() ||
        !llvm::all_of(norm->getUsers(), [&](Operation *user) {
          return takesNorm(user, norm, symbols);
        }))
      return;
    ml_program::GlobalOp gainGlobal = constantGlobal(norm.getWeight(), symbols);
    if (!gainGlobal)
      return;
    std::optional<std::vector<float>> gain = floatsOf(gainGlobal);
    if (!gain)
      return;
    auto eps = FloatAttr::get(Float32Type::get(norm.getContext()),
                              norm.getEpsilon().convertToDouble());
    for (Operation *user : llvm::to_vector(norm->getUsers())) {
      auto linear = cast<tfm::LinearOp>(user);
      Value w = scaled(linear, gainGlobal, *gain, symbols, originals);
      if (!w)
        continue; // it keeps the norm's result
      linear.getInputMutable().assign(norm.getInput());
      linear.getWeightMutable().assign(w);
      linear.setRmsNormEpsilonAttr(eps);
    }
    if (norm->use_empty())
      norm->erase();
  }

  /// A load of `linear`'s weight with each input feature k scaled by
  /// gain[k], made once per (weight, gain) pair; null when the weight's data
  /// cannot be read or its input features are not the gain's.
  Value scaled(tfm::LinearOp linear, ml_program::GlobalOp gainGlobal,
               ArrayRef<float> gain, SymbolTable &symbols,
               SmallVector<std::string> &originals) {
    ml_program::GlobalOp g = constantGlobal(linear.getWeight(), symbols);
    auto type = cast<RankedTensorType>(g.getType());
    const bool inOut = linear.getLayout() == tfm::WeightLayout::in_out;
    const int64_t rows = type.getDimSize(0), cols = type.getDimSize(1);
    const int64_t k = inOut ? rows : cols;
    if (k != static_cast<int64_t>(gain.size()))
      return {};
    std::string key = (g.getSymName() + "." + gainGlobal.getSymName()).str();
    ml_program::GlobalOp folded = copies.lookup(key);
    if (!folded) {
      std::optional<rt::DType> dtype = floatDType(type.getElementType());
      WeightRef source = dtype ? globalWeight(g) : nullptr;
      const size_t es = type.getElementType().getIntOrFloatBitWidth() / 8;
      if (!source || source->rows() != static_cast<uint64_t>(rows) ||
          source->rowBytes() != cols * es)
        return {};
      // Row by row (in parallel when read): to f32, scaled, back to the
      // weight's type. Each row is independent, so the bytes do not depend
      // on the thread count.
      folded = createWeightGlobal(
          symbols, g, key, type,
          mapRows(source, cols * es,
                  [dtype = *dtype, cols, inOut,
                   gain = std::vector<float>(gain.begin(), gain.end())](
                      uint64_t r, const char *in, char *out) {
                    std::vector<float> row(cols);
                    rt::convertToFloat(in, dtype, cols, row.data());
                    for (int64_t c = 0; c < cols; ++c)
                      row[c] *= gain[inOut ? r : c];
                    rt::convertFromFloat(row.data(), dtype, cols, out);
                  }));
      copies[key] = folded;
      originals.push_back(g.getSymName().str());
      originals.push_back(gainGlobal.getSymName().str());
    }
    return loadAtStart(
        linear->getParentOfType<func::FuncOp>().getBody().front(), folded);
  }

  /// Folded weights by "<weight>.<gain>" (shared by the entry points).
  llvm::StringMap<ml_program::GlobalOp> copies;
};

} // namespace
