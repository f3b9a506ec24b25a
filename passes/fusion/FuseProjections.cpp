//===- FuseProjections.cpp - One projection for Q/K/V and gate/up ---------===//
//
// Horizontal fusion of tfm.linear ops that read the same activation: a
// decoder layer's q/k/v projections, and gate/up of its MLP. Their weights
// (and biases) are concatenated at compile time into one global, the
// projections become one tfm.linear, and each original result is a slice of
// the fused one along the output dimension:
//
//   %q = tfm.linear %x, %wq layout = <in_out>   // [in, 128]
//   %k = tfm.linear %x, %wk layout = <in_out>   // [in, 64]
//   ->
//   %qk = tfm.linear %x, %wqk layout = <in_out> // [in, 192]
//   %q  = tensor.extract_slice %qk[0, 0, 0] [b, s, 128] [1, 1, 1]
//   %k  = tensor.extract_slice %qk[0, 0, 128] [b, s, 64] [1, 1, 1]
//
// Batch-1 decode reads each weight once per token either way; fusing turns
// three small GEMVs (each too few blocks to fill the GPU) into one and saves
// their launches and the re-reads of the activation.
//
// Runs on the static-shaped entry points (after specialize-entry-points);
// weights fused for @prefill are reused by @decode. Fires only when every
// projection's weight is a constant global (ml_program.global_load_const),
// all share a layout and element type, and all or none have a bias.
//
//===----------------------------------------------------------------------===//

#include "dialects/Tfm/TfmOps.h"
#include "passes/Passes.h"
#include "passes/fusion/ConstantWeights.h"

#include "mlir/Dialect/MLProgram/IR/MLProgram.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/MapVector.h"

#include <algorithm>
#include <string>

#define DEBUG_TYPE "kiln-fuse-projections"

namespace kiln {
#define GEN_PASS_DEF_FUSEPROJECTIONS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln;

namespace {

struct FuseProjections : kiln::impl::FuseProjectionsBase<FuseProjections> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    for (auto func : llvm::to_vector(module.getOps<func::FuncOp>())) {
      if (func.isExternal())
        continue;
      // Group the linears by input, in program order.
      llvm::MapVector<Value, SmallVector<tfm::LinearOp>> byInput;
      func.walk(
          [&](tfm::LinearOp op) { byInput[op.getInput()].push_back(op); });
      for (auto &[input, group] : byInput) {
        SmallVector<tfm::LinearOp> fusable = compatible(group, symbols);
        if (fusable.size() >= 2 && failed(fuse(fusable, symbols, module)))
          return signalPassFailure();
      }
    }
    // The parts' loads are dead now; a global nothing loads any more is
    // dropped, so the artifact holds each weight once.
    SmallVector<std::string> names;
    for (auto &entry : parts)
      names.append(entry.second.begin(), entry.second.end());
    eraseUnusedGlobals(module, symbols, names);
  }

  static bool hasBytes(Value v, SymbolTable &symbols) {
    ml_program::GlobalOp g = constantGlobal(v, symbols);
    return g && globalWeight(g);
  }

  /// The members of `group` that can share one projection with the first
  /// fusable one: constant weights, same layout, types and bias presence.
  SmallVector<tfm::LinearOp> compatible(ArrayRef<tfm::LinearOp> group,
                                        SymbolTable &symbols) {
    SmallVector<tfm::LinearOp> out;
    for (tfm::LinearOp op : group) {
      if (!hasBytes(op.getWeight(), symbols) ||
          (op.getBias() && !hasBytes(op.getBias(), symbols)))
        continue;
      if (!out.empty()) {
        tfm::LinearOp first = out.front();
        auto wt = cast<RankedTensorType>(op.getWeight().getType());
        auto ft = cast<RankedTensorType>(first.getWeight().getType());
        if (op.getLayout() != first.getLayout() ||
            wt.getElementType() != ft.getElementType() ||
            op.getType().getElementType() != first.getType().getElementType() ||
            bool(op.getBias()) != bool(first.getBias()) ||
            op.getRmsNormEpsilonAttr() != first.getRmsNormEpsilonAttr() ||
            op.getSwiglu() || first.getSwiglu())
          continue;
      }
      out.push_back(op);
    }
    return out;
  }

  /// A global holding the concatenation of `parts` (each [rows, cols_i] row
  /// major) along `axis` (0: append; 1: interleave rows), or with `axis` 2
  /// the parts transposed and appended ([sum cols_i, rows]: [in, out]
  /// weights joined and stored [out, in] in one copy). Reused when the same
  /// parts were fused before (prefill and decode share weights).
  ml_program::GlobalOp concat(MutableArrayRef<ml_program::GlobalOp> parts,
                              int axis, SymbolTable &symbols, ModuleOp module) {
    std::string key;
    for (ml_program::GlobalOp g : parts)
      key += (key.empty() ? "" : "+") + g.getSymName().str();
    key += "/" + std::to_string(axis);
    if (auto it = fused.find(key); it != fused.end())
      return it->second;

    auto t0 = cast<RankedTensorType>(parts.front().getType());
    Type elt = t0.getElementType();
    size_t eltBytes = elt.getIntOrFloatBitWidth() / 8;
    SmallVector<int64_t> shape(t0.getShape());
    const int concatAxis = axis == 2 ? 1 : axis;
    for (ml_program::GlobalOp g : parts.drop_front())
      shape[concatAxis] +=
          cast<RankedTensorType>(g.getType()).getDimSize(concatAxis);
    if (axis == 2)
      shape = {shape[1], shape[0]};
    std::vector<WeightRef> sources;
    for (ml_program::GlobalOp g : parts)
      sources.push_back(globalWeight(g));
    // axis 2: each [K, N_i] part transposed to [N_i, K], one after the
    // other; axis 1: row r of the result is row r of each part, side by
    // side; axis 0 (and rank-1 parts): appended.
    WeightRef joined =
        axis == 2 ? transposedWeights(std::move(sources), eltBytes)
                  : concatWeights(std::move(sources),
                                  concatAxis == 0 || t0.getRank() == 1 ? 0 : 1);
    ml_program::GlobalOp global = createWeightGlobal(
        symbols, parts.front(), parts.front().getSymName().str() + ".fused",
        RankedTensorType::get(shape, elt), std::move(joined));
    fused[key] = global;
    for (ml_program::GlobalOp g : parts)
      this->parts[key].push_back(g.getSymName().str());
    return global;
  }

  LogicalResult fuse(ArrayRef<tfm::LinearOp> ops, SymbolTable &symbols,
                     ModuleOp module) {
    tfm::LinearOp first = ops.front();
    bool inOut = first.getLayout() == tfm::WeightLayout::in_out;
    // [in, out] weights are joined column-wise, or (transposeInOut) joined
    // and stored [out, in] at once, as kiln-transpose-weights would.
    int outAxis = !inOut ? 0 : transposeInOut ? 2 : 1;
    auto layout = inOut && transposeInOut
                      ? tfm::WeightLayoutAttr::get(first.getContext(),
                                                   tfm::WeightLayout::out_in)
                      : first.getLayoutAttr();
    SmallVector<ml_program::GlobalOp> weights, biases;
    for (tfm::LinearOp op : ops) {
      weights.push_back(constantGlobal(op.getWeight(), symbols));
      if (op.getBias())
        biases.push_back(constantGlobal(op.getBias(), symbols));
    }
    ml_program::GlobalOp w = concat(weights, outAxis, symbols, module);
    ml_program::GlobalOp bias = biases.empty()
                                    ? ml_program::GlobalOp()
                                    : concat(biases, 0, symbols, module);

    // The fused projection goes where the last projection was, so that every
    // operand dominates it; the loads go at the top of the function.
    tfm::LinearOp last = ops.front();
    for (tfm::LinearOp op : ops)
      if (last->isBeforeInBlock(op))
        last = op;
    Block &entry = first->getParentOfType<func::FuncOp>().getBody().front();
    Value wv = loadAtStart(entry, w);
    Value bv = bias ? loadAtStart(entry, bias) : Value();
    OpBuilder b(first);

    auto t0 = first.getType();
    int64_t total = 0;
    for (tfm::LinearOp op : ops)
      total += op.getType().getShape().back();
    SmallVector<int64_t> shape(t0.getShape());
    shape.back() = total;
    if (llvm::any_of(shape, ShapedType::isDynamic))
      return first.emitOpError("kiln-fuse-projections needs static shapes "
                               "(run it after kiln-specialize-entry-points)");
    auto fusedType = RankedTensorType::get(shape, t0.getElementType());
    b.setInsertionPointAfter(last);
    auto fusedOp =
        tfm::LinearOp::create(b, first.getLoc(), fusedType, first.getInput(),
                              wv, bv, layout, first.getRmsNormEpsilonAttr(),
                              /*swiglu=*/nullptr);
    int64_t offset = 0;
    for (tfm::LinearOp op : ops) {
      auto type = op.getType();
      SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
      offsets.back() = b.getIndexAttr(offset);
      SmallVector<OpFoldResult> sizes,
          strides(type.getRank(), b.getIndexAttr(1));
      for (int64_t d : type.getShape())
        sizes.push_back(b.getIndexAttr(d));
      Value slice = tensor::ExtractSliceOp::create(
          b, op.getLoc(), type, fusedOp.getResult(), offsets, sizes, strides);
      op.getResult().replaceAllUsesWith(slice);
      offset += type.getShape().back();
    }
    for (tfm::LinearOp op : ops)
      op.erase();
    return success();
  }

  /// Fused globals by their parts (shared by the entry points), and the
  /// names of those parts.
  llvm::StringMap<ml_program::GlobalOp> fused;
  llvm::StringMap<SmallVector<std::string>> parts;
};

} // namespace
