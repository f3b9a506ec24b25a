//===- ConstantWeights.cpp - Reading and making weight globals ------------===//

#include "passes/fusion/ConstantWeights.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/Support/Parallel.h"

#include <cstring>

using namespace mlir;

std::optional<kiln::runtime::DType> kiln::floatDType(Type t) {
  if (t.isF32())
    return runtime::DType::F32;
  if (t.isF16())
    return runtime::DType::F16;
  if (t.isBF16())
    return runtime::DType::BF16;
  return std::nullopt;
}

std::optional<ArrayRef<char>> kiln::globalBytes(ml_program::GlobalOp g,
                                                std::vector<char> &storage) {
  if (auto res =
          dyn_cast_or_null<DenseResourceElementsAttr>(g.getValueAttr())) {
    if (AsmResourceBlob *blob = res.getRawHandle().getBlob())
      return blob->getData();
    return std::nullopt;
  }
  auto dense = dyn_cast_or_null<DenseElementsAttr>(g.getValueAttr());
  if (!dense || !dense.getElementType().isIntOrFloat() ||
      dense.getElementType().getIntOrFloatBitWidth() % 8 != 0)
    return std::nullopt;
  ArrayRef<char> raw = dense.getRawData();
  if (!dense.isSplat())
    return raw;
  storage.clear();
  storage.reserve(raw.size() * dense.getNumElements());
  for (int64_t i = 0, e = dense.getNumElements(); i < e; ++i)
    storage.insert(storage.end(), raw.begin(), raw.end());
  return ArrayRef<char>(storage);
}

namespace {
template <typename T>
void transposeTiles(const char *inBytes, char *outBytes, int64_t rows,
                    int64_t cols) {
  constexpr int64_t kTile = 64;
  const T *in = reinterpret_cast<const T *>(inBytes);
  T *out = reinterpret_cast<T *>(outBytes);
  // Bands of kTile input rows in parallel: each writes its own columns of
  // every output row, so the result does not depend on the thread count.
  llvm::parallelFor(0, (rows + kTile - 1) / kTile, [&](size_t band) {
    int64_t r0 = static_cast<int64_t>(band) * kTile;
    int64_t r1 = std::min(rows, r0 + kTile);
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      int64_t c1 = std::min(cols, c0 + kTile);
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c)
          out[c * rows + r] = in[r * cols + c];
    }
  });
}
} // namespace

void kiln::transposeInto(ArrayRef<char> in, char *out, int64_t rows,
                         int64_t cols, size_t elementBytes) {
  switch (elementBytes) {
  case 1:
    return transposeTiles<uint8_t>(in.data(), out, rows, cols);
  case 2:
    return transposeTiles<uint16_t>(in.data(), out, rows, cols);
  case 4:
    return transposeTiles<uint32_t>(in.data(), out, rows, cols);
  case 8:
    return transposeTiles<uint64_t>(in.data(), out, rows, cols);
  default:
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        std::memcpy(out + (c * rows + r) * elementBytes,
                    in.data() + (r * cols + c) * elementBytes, elementBytes);
  }
}

ml_program::GlobalOp kiln::constantGlobal(Value v, SymbolTable &symbols) {
  auto load = v.getDefiningOp<ml_program::GlobalLoadConstOp>();
  if (!load)
    return {};
  auto g =
      symbols.lookup<ml_program::GlobalOp>(load.getGlobal().getRootReference());
  if (!g || g.getIsMutable() || !g.getValueAttr())
    return {};
  if (!isa<DenseResourceElementsAttr, DenseElementsAttr>(g.getValueAttr()))
    return {};
  return g;
}

ml_program::GlobalOp
kiln::createWeightGlobal(SymbolTable &symbols, Operation *before,
                         StringRef name, RankedTensorType type,
                         function_ref<void(MutableArrayRef<char>)> fill) {
  size_t bytes = type.getNumElements() *
                 (type.getElementType().getIntOrFloatBitWidth() / 8);
  AsmResourceBlob blob = HeapAsmResourceBlob::allocate(bytes, alignof(uint64_t),
                                                       /*dataIsMutable=*/true);
  fill(blob.getMutableData());
  auto value = DenseResourceElementsAttr::get(type, name, std::move(blob));
  OpBuilder b(before);
  auto global = ml_program::GlobalOp::create(b, before->getLoc(), name, type,
                                             /*is_mutable=*/false, value,
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
      if (SymbolTable::symbolKnownUseEmpty(g, module)) {
        // The resource manager keeps a blob after its last attribute is
        // gone; free the bytes now (a model's worth for the weight passes).
        if (auto res =
                dyn_cast_or_null<DenseResourceElementsAttr>(g.getValueAttr()))
          if (auto *entry = res.getRawHandle().getResource())
            entry->setBlob(AsmResourceBlob());
        symbols.erase(g);
      }
}
