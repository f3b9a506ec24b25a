//===- ConstantWeights.cpp - Reading and making weight globals ------------===//

#include "passes/fusion/ConstantWeights.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/Support/Parallel.h"

#include <cstring>
#include <mutex>

using namespace mlir;
using namespace kiln;

std::optional<kiln::runtime::DType> kiln::floatDType(Type t) {
  if (t.isF32())
    return runtime::DType::F32;
  if (t.isF16())
    return runtime::DType::F16;
  if (t.isBF16())
    return runtime::DType::BF16;
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// WeightStore
//===----------------------------------------------------------------------===//

namespace {
std::mutex storesMutex;
llvm::DenseMap<MLIRContext *, WeightStore *> &stores() {
  static llvm::DenseMap<MLIRContext *, WeightStore *> map;
  return map;
}
} // namespace

kiln::WeightStore::WeightStore(MLIRContext *context) : context(context) {
  std::lock_guard<std::mutex> lock(storesMutex);
  stores()[context] = this;
}

kiln::WeightStore::~WeightStore() {
  std::lock_guard<std::mutex> lock(storesMutex);
  stores().erase(context);
}

WeightStore *kiln::WeightStore::get(MLIRContext *context) {
  std::lock_guard<std::mutex> lock(storesMutex);
  return stores().lookup(context);
}

void kiln::WeightStore::add(StringRef key, WeightRef source) {
  sources[key] = std::move(source);
}

WeightRef kiln::WeightStore::lookup(StringRef key) const {
  return sources.lookup(key);
}

//===----------------------------------------------------------------------===//
// Weight sources
//===----------------------------------------------------------------------===//

std::pair<uint64_t, uint64_t> kiln::rowGeometry(RankedTensorType type) {
  uint64_t bytes = type.getNumElements() *
                   (type.getElementType().getIntOrFloatBitWidth() / 8);
  uint64_t rows = 1;
  if (type.getRank() >= 2)
    for (int64_t d : type.getShape().drop_back())
      rows *= d;
  return {rows, rows ? bytes / rows : 0};
}

std::vector<char> kiln::readAll(runtime::WeightSource &w) {
  std::vector<char> out(w.rows() * w.rowBytes());
  if (const char *v = w.view())
    std::memcpy(out.data(), v, out.size());
  else
    w.readRows(0, w.rows(), out.data());
  return out;
}

ArrayRef<char> kiln::bytesOf(runtime::WeightSource &w,
                             std::vector<char> &storage) {
  if (const char *v = w.view())
    return ArrayRef<char>(v, w.rows() * w.rowBytes());
  storage = readAll(w);
  return storage;
}

namespace {
/// Bytes that lie in memory (a blob, a dense attribute, the importer's
/// mapping of external data), or that this source owns (a splat expanded).
class ViewSource : public runtime::WeightSource {
public:
  ViewSource(ArrayRef<char> bytes, uint64_t rows,
             std::function<void(ArrayRef<char>)> releasePages)
      : bytes(bytes), rowCount(rows), releasePages(std::move(releasePages)) {}
  ViewSource(std::vector<char> owned, uint64_t rows)
      : owned(std::move(owned)), bytes(this->owned), rowCount(rows) {}
  uint64_t rows() const override { return rowCount; }
  uint64_t rowBytes() const override {
    return rowCount ? bytes.size() / rowCount : 0;
  }
  void readRows(uint64_t first, uint64_t count, char *out) override {
    std::memcpy(out, bytes.data() + first * rowBytes(), count * rowBytes());
  }
  const char *view() const override { return bytes.data(); }
  void released(uint64_t offset, uint64_t size) override {
    if (releasePages)
      releasePages(bytes.slice(offset, size));
  }
  void release() override {
    if (releasePages)
      releasePages(bytes);
  }

private:
  std::vector<char> owned; // before `bytes`, which may view it
  ArrayRef<char> bytes;
  uint64_t rowCount;
  std::function<void(ArrayRef<char>)> releasePages;
};

class ConcatSource : public runtime::WeightSource {
public:
  ConcatSource(std::vector<WeightRef> parts, int axis)
      : parts(std::move(parts)), axis(axis) {
    for (const WeightRef &p : this->parts) {
      if (axis == 0)
        rowCount += p->rows();
      else
        width += p->rowBytes();
    }
    if (axis == 0) {
      width = this->parts.front()->rowBytes();
      // Rank-1 parts (one row each) of different lengths join into one row.
      if (rowCount == this->parts.size() &&
          llvm::any_of(this->parts, [&](const WeightRef &p) {
            return p->rowBytes() != width;
          })) {
        rowCount = 1;
        width = 0;
        for (const WeightRef &p : this->parts)
          width += p->rowBytes();
        flat = true;
      }
    } else {
      rowCount = this->parts.front()->rows();
    }
  }
  uint64_t rows() const override { return rowCount; }
  uint64_t rowBytes() const override { return width; }
  void readRows(uint64_t first, uint64_t count, char *out) override {
    if (flat) {
      for (const WeightRef &p : parts) {
        p->readRows(0, 1, out);
        p->released(0, p->rowBytes());
        out += p->rowBytes();
      }
      return;
    }
    if (axis == 0) {
      uint64_t base = 0;
      for (const WeightRef &p : parts) {
        uint64_t lo = std::max(first, base);
        uint64_t hi = std::min(first + count, base + p->rows());
        if (lo < hi) {
          p->readRows(lo - base, hi - lo, out);
          p->released((lo - base) * width, (hi - lo) * width);
          out += (hi - lo) * width;
        }
        base += p->rows();
      }
      return;
    }
    // Row r: row r of each part, side by side.
    uint64_t at = 0;
    std::vector<char> piece;
    for (const WeightRef &p : parts) {
      uint64_t w = p->rowBytes();
      piece.resize(count * w);
      p->readRows(first, count, piece.data());
      p->released(first * w, count * w);
      for (uint64_t r = 0; r < count; ++r)
        std::memcpy(out + r * width + at, piece.data() + r * w, w);
      at += w;
    }
  }
  void release() override {
    for (const WeightRef &p : parts)
      p->release();
  }

private:
  std::vector<WeightRef> parts;
  int axis;
  uint64_t rowCount = 0, width = 0;
  bool flat = false;
};

template <typename T>
void transposeBlock(const char *inBytes, char *outBytes, int64_t rows,
                    int64_t cols, int64_t colBegin, int64_t colEnd) {
  constexpr int64_t kTile = 64;
  const T *in = reinterpret_cast<const T *>(inBytes);
  T *out = reinterpret_cast<T *>(outBytes);
  // Output row c - colBegin is input column c. Bands of kTile input rows in
  // parallel: each writes its own columns of the output rows.
  llvm::parallelFor(0, (rows + kTile - 1) / kTile, [&](size_t band) {
    int64_t r0 = static_cast<int64_t>(band) * kTile;
    int64_t r1 = std::min(rows, r0 + kTile);
    for (int64_t c0 = colBegin; c0 < colEnd; c0 += kTile) {
      int64_t c1 = std::min(colEnd, c0 + kTile);
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c)
          out[(c - colBegin) * rows + r] = in[r * cols + c];
    }
  });
}

void transposeColumns(const char *in, char *out, int64_t rows, int64_t cols,
                      int64_t colBegin, int64_t colEnd, size_t elementBytes) {
  switch (elementBytes) {
  case 1:
    return transposeBlock<uint8_t>(in, out, rows, cols, colBegin, colEnd);
  case 2:
    return transposeBlock<uint16_t>(in, out, rows, cols, colBegin, colEnd);
  case 4:
    return transposeBlock<uint32_t>(in, out, rows, cols, colBegin, colEnd);
  case 8:
    return transposeBlock<uint64_t>(in, out, rows, cols, colBegin, colEnd);
  default:
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = colBegin; c < colEnd; ++c)
        std::memcpy(out + ((c - colBegin) * rows + r) * elementBytes,
                    in + (r * cols + c) * elementBytes, elementBytes);
  }
}

class TransposeSource : public runtime::WeightSource {
public:
  TransposeSource(std::vector<WeightRef> parts, size_t elementBytes)
      : parts(std::move(parts)), elementBytes(elementBytes),
        cache(this->parts.size()) {
    k = this->parts.front()->rows();
    for (const WeightRef &p : this->parts)
      rowCount += p->rowBytes() / elementBytes;
  }
  uint64_t rows() const override { return rowCount; }
  uint64_t rowBytes() const override { return k * elementBytes; }
  void readRows(uint64_t first, uint64_t count, char *out) override {
    uint64_t base = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      uint64_t n = parts[i]->rowBytes() / elementBytes;
      uint64_t lo = std::max(first, base),
               hi = std::min(first + count, base + n);
      if (lo < hi) {
        const char *in = parts[i]->view();
        bool view = in != nullptr;
        if (!view) {
          if (cache[i].empty())
            cache[i] = readAll(*parts[i]);
          in = cache[i].data();
        }
        transposeColumns(in, out, k, n, lo - base, hi - base, elementBytes);
        // These columns are done: a mapped part's pages can go.
        if (view)
          for (uint64_t r = 0; r < k; ++r)
            parts[i]->released((r * n + lo - base) * elementBytes,
                               (hi - lo) * elementBytes);
        out += (hi - lo) * rowBytes();
      }
      base += n;
    }
  }
  void release() override {
    for (auto [p, c] : llvm::zip(parts, cache)) {
      std::vector<char>().swap(c);
      p->release();
    }
  }

private:
  std::vector<WeightRef> parts;
  size_t elementBytes;
  std::vector<std::vector<char>> cache;
  uint64_t k = 0, rowCount = 0;
};

class MapRowsSource : public runtime::WeightSource {
public:
  MapRowsSource(WeightRef source, uint64_t outRowBytes,
                std::function<void(uint64_t, const char *, char *)> map)
      : source(std::move(source)), width(outRowBytes), map(std::move(map)) {}
  uint64_t rows() const override { return source->rows(); }
  uint64_t rowBytes() const override { return width; }
  void readRows(uint64_t first, uint64_t count, char *out) override {
    uint64_t inWidth = source->rowBytes();
    const char *in;
    std::vector<char> piece;
    if (const char *v = source->view()) {
      in = v + first * inWidth;
    } else {
      piece.resize(count * inWidth);
      source->readRows(first, count, piece.data());
      in = piece.data();
    }
    // Each row is independent: the bytes do not depend on the thread count.
    llvm::parallelFor(0, count, [&](size_t r) {
      map(first + r, in + r * inWidth, out + r * width);
    });
    if (piece.empty())
      source->released(first * inWidth, count * inWidth);
  }
  void release() override { source->release(); }

private:
  WeightRef source;
  uint64_t width;
  std::function<void(uint64_t, const char *, char *)> map;
};

/// Rows [first, first + count) of a source, and of each row the bytes
/// [byte, byte + width).
class SliceSource : public runtime::WeightSource {
public:
  SliceSource(WeightRef source, uint64_t first, uint64_t count, uint64_t byte,
              uint64_t width)
      : source(std::move(source)), first(first), count(count), byte(byte),
        width(width) {}
  uint64_t rows() const override { return count; }
  uint64_t rowBytes() const override { return width; }
  bool wholeRows() const { return width == source->rowBytes(); }
  void readRows(uint64_t row, uint64_t n, char *out) override {
    if (wholeRows()) {
      source->readRows(first + row, n, out);
      return;
    }
    uint64_t inWidth = source->rowBytes();
    std::vector<char> piece(n * inWidth);
    source->readRows(first + row, n, piece.data());
    for (uint64_t r = 0; r < n; ++r)
      std::memcpy(out + r * width, piece.data() + r * inWidth + byte, width);
  }
  const char *view() const override {
    const char *v = wholeRows() ? source->view() : nullptr;
    return v ? v + first * width : nullptr;
  }
  void released(uint64_t offset, uint64_t size) override {
    if (wholeRows())
      source->released(first * width + offset, size);
  }
  void release() override { source->release(); }

private:
  WeightRef source;
  uint64_t first, count, byte, width;
};
} // namespace

WeightRef kiln::viewWeight(MLIRContext *context, ArrayRef<char> bytes,
                           uint64_t rows) {
  WeightStore *store = WeightStore::get(context);
  return std::make_shared<ViewSource>(
      bytes, rows,
      store ? store->releasePages : std::function<void(ArrayRef<char>)>());
}

WeightRef kiln::concatWeights(std::vector<WeightRef> parts, int axis) {
  return std::make_shared<ConcatSource>(std::move(parts), axis);
}

WeightRef kiln::transposedWeights(std::vector<WeightRef> parts,
                                  size_t elementBytes) {
  return std::make_shared<TransposeSource>(std::move(parts), elementBytes);
}

WeightRef
kiln::mapRows(WeightRef source, uint64_t outRowBytes,
              std::function<void(uint64_t, const char *, char *)> map) {
  return std::make_shared<MapRowsSource>(std::move(source), outRowBytes,
                                         std::move(map));
}

WeightRef kiln::sliceWeight(WeightRef source, uint64_t firstRow, uint64_t rows,
                            uint64_t firstByte, uint64_t bytes) {
  assert(firstRow + rows <= source->rows() &&
         firstByte + bytes <= source->rowBytes() && "slice out of bounds");
  return std::make_shared<SliceSource>(std::move(source), firstRow, rows,
                                       firstByte, bytes);
}

WeightRef kiln::globalWeight(ml_program::GlobalOp g) {
  auto type = dyn_cast<RankedTensorType>(g.getType());
  if (!type || !type.getElementType().isIntOrFloat() ||
      type.getElementType().getIntOrFloatBitWidth() % 8 != 0)
    return nullptr;
  auto [rows, rowBytes] = rowGeometry(type);
  size_t size = rows * rowBytes;
  if (auto res =
          dyn_cast_or_null<DenseResourceElementsAttr>(g.getValueAttr())) {
    AsmResourceBlob *blob = res.getRawHandle().getBlob();
    if (blob && (!blob->getData().empty() || size == 0))
      return blob->getData().size() == size
                 ? viewWeight(g.getContext(), blob->getData(), rows)
                 : nullptr;
    if (WeightStore *store = WeightStore::get(g.getContext()))
      return store->lookup(res.getRawHandle().getKey());
    return nullptr;
  }
  auto dense = dyn_cast_or_null<DenseElementsAttr>(g.getValueAttr());
  if (!dense)
    return nullptr;
  ArrayRef<char> raw = dense.getRawData();
  if (!dense.isSplat())
    return raw.size() == size ? viewWeight(g.getContext(), raw, rows) : nullptr;
  std::vector<char> expanded;
  expanded.reserve(size);
  for (int64_t i = 0, e = dense.getNumElements(); i < e; ++i)
    expanded.insert(expanded.end(), raw.begin(), raw.end());
  return std::make_shared<ViewSource>(std::move(expanded), rows);
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

ml_program::GlobalOp kiln::createWeightGlobal(SymbolTable &symbols,
                                              Operation *before, StringRef name,
                                              RankedTensorType type,
                                              WeightRef source) {
  size_t bytes = type.getNumElements() *
                 (type.getElementType().getIntOrFloatBitWidth() / 8);
  assert(source && source->rows() * source->rowBytes() == bytes &&
         "a weight's source must have the bytes of its type");
  (void)bytes;
  MLIRContext *context = before->getContext();
  WeightStore *store = WeightStore::get(context);
  DenseResourceElementsAttr value;
  if (store) {
    // No blob: the store's source makes the bytes when they are written.
    value = DenseResourceElementsAttr::get(type, name, AsmResourceBlob());
    store->add(value.getRawHandle().getKey(), std::move(source));
  } else {
    AsmResourceBlob blob = HeapAsmResourceBlob::allocate(
        bytes, alignof(uint64_t), /*dataIsMutable=*/true);
    MutableArrayRef<char> out = blob.getMutableData();
    source->readRows(0, source->rows(), out.data());
    source->release();
    value = DenseResourceElementsAttr::get(type, name, std::move(blob));
  }
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
        // gone; free the bytes now (a model's worth for the weight passes),
        // unless a WeightStore's sources may still read them.
        if (auto res =
                dyn_cast_or_null<DenseResourceElementsAttr>(g.getValueAttr()))
          if (auto *entry = res.getRawHandle().getResource())
            if (!WeightStore::get(module.getContext()))
              entry->setBlob(AsmResourceBlob());
        symbols.erase(g);
      }
}
