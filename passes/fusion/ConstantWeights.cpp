//===- ConstantWeights.cpp - Reading and making weight globals ------------===//

#include "passes/fusion/ConstantWeights.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectResourceBlobManager.h"

using namespace mlir;

std::optional<std::vector<char>> kiln::globalBytes(ml_program::GlobalOp g) {
  if (auto res = dyn_cast_or_null<DenseResourceElementsAttr>(g.getValueAttr()))
    if (AsmResourceBlob *blob = res.getRawHandle().getBlob())
      return std::vector<char>(blob->getData().begin(), blob->getData().end());
  auto dense = dyn_cast_or_null<DenseElementsAttr>(g.getValueAttr());
  if (!dense || !dense.getElementType().isIntOrFloat() ||
      dense.getElementType().getIntOrFloatBitWidth() % 8 != 0)
    return std::nullopt;
  ArrayRef<char> raw = dense.getRawData();
  if (!dense.isSplat())
    return std::vector<char>(raw.begin(), raw.end());
  std::vector<char> out;
  out.reserve(raw.size() * dense.getNumElements());
  for (int64_t i = 0, e = dense.getNumElements(); i < e; ++i)
    out.insert(out.end(), raw.begin(), raw.end());
  return out;
}

ml_program::GlobalOp kiln::constantGlobal(Value v, SymbolTable &symbols) {
  auto load = v.getDefiningOp<ml_program::GlobalLoadConstOp>();
  if (!load)
    return {};
  auto g = symbols.lookup<ml_program::GlobalOp>(
      load.getGlobal().getRootReference());
  if (!g || g.getIsMutable() || !g.getValueAttr())
    return {};
  if (!isa<DenseResourceElementsAttr, DenseElementsAttr>(g.getValueAttr()))
    return {};
  return g;
}

ml_program::GlobalOp kiln::createWeightGlobal(SymbolTable &symbols,
                                              Operation *before, StringRef name,
                                              RankedTensorType type,
                                              ArrayRef<char> bytes) {
  auto blob = HeapAsmResourceBlob::allocateAndCopyWithAlign(bytes,
                                                            alignof(uint64_t));
  auto value = DenseResourceElementsAttr::get(type, name, std::move(blob));
  OpBuilder b(before);
  auto global = ml_program::GlobalOp::create(
      b, before->getLoc(), name, type, /*is_mutable=*/false, value,
      b.getStringAttr("private"));
  symbols.insert(global); // already placed; renamed on a clash
  return global;
}

Value kiln::loadAtStart(Block &block, ml_program::GlobalOp g) {
  OpBuilder b = OpBuilder::atBlockBegin(&block);
  return ml_program::GlobalLoadConstOp::create(
      b, g.getLoc(), g.getType(), FlatSymbolRefAttr::get(g.getSymNameAttr()));
}

void kiln::eraseUnusedGlobals(ModuleOp module, SymbolTable &symbols,
                              ArrayRef<std::string> names) {
  module.walk([](ml_program::GlobalLoadConstOp load) {
    if (load->use_empty())
      load->erase();
  });
  for (const std::string &name : names)
    if (auto g = symbols.lookup<ml_program::GlobalOp>(name))
      if (SymbolTable::symbolKnownUseEmpty(g, module))
        symbols.erase(g);
}
