//===- ConstantWeights.h - Reading and making weight globals ----*- C++ -*-===//
//
// What the weight rewrites (kiln-fuse-projections, kiln-transpose-weights,
// kiln-fuse-norm-projection, kiln-quantize-weights) share: the bytes of a
// constant `ml_program.global`, the global a `global_load_const` reads, and a
// new private global made from other weights' bytes.
//
// A new weight is described by a runtime::WeightSource (rows of bytes made on
// request: a view, a concatenation, a transpose, a row map, a quantization).
// Without a WeightStore the source is read at once into the global's
// dense_resource (kiln-opt and the passes' lit tests see every byte). While
// kiln-compile holds a WeightStore for the context, the global's
// dense_resource has no blob; its source is kept in the store and read by the
// artifact writer, piece by piece, as it writes the file: a model's weights
// never have to be in memory at once (issue 15).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_FUSION_CONSTANTWEIGHTS_H
#define KILN_PASSES_FUSION_CONSTANTWEIGHTS_H

#include "kiln/runtime/ArtifactTypes.h"
#include "kiln/runtime/ArtifactWriter.h"

#include "mlir/Dialect/MLProgram/IR/MLProgram.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringMap.h"

#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace kiln {

/// A weight's bytes, made when they are read.
using WeightRef = std::shared_ptr<runtime::WeightSource>;

/// While alive, the weight passes of its context record the weights they make
/// as sources that the artifact writer reads, instead of computing them.
class WeightStore {
public:
  explicit WeightStore(mlir::MLIRContext *context);
  ~WeightStore();
  WeightStore(const WeightStore &) = delete;
  WeightStore &operator=(const WeightStore &) = delete;
  /// The store of `context`, or null.
  static WeightStore *get(mlir::MLIRContext *context);

  void add(llvm::StringRef key, WeightRef source);
  WeightRef lookup(llvm::StringRef key) const;

  /// Drops the resident pages of `bytes` when they lie in a mapped file
  /// (kiln-compile: the ONNX model's external data); called when a view of
  /// them has been written.
  std::function<void(llvm::ArrayRef<char>)> releasePages;

private:
  mlir::MLIRContext *context;
  llvm::StringMap<WeightRef> sources;
};

/// The runtime's element type of a float weight type (f32, f16, bf16), or
/// nothing.
std::optional<runtime::DType> floatDType(mlir::Type t);

/// The source of a constant global's bytes (a view of its dense_resource or
/// dense data, or the store's source of a weight made by a pass), or null.
WeightRef globalWeight(mlir::ml_program::GlobalOp g);

/// Every byte of `w`.
std::vector<char> readAll(runtime::WeightSource &w);

/// The bytes of a weight that lie in memory: its view, or all of it read
/// into `storage`.
llvm::ArrayRef<char> bytesOf(runtime::WeightSource &w,
                             std::vector<char> &storage);

/// Rows x rowBytes of a tensor type (rank <= 1: one row).
std::pair<uint64_t, uint64_t> rowGeometry(mlir::RankedTensorType type);

/// A view of `bytes` as `rows` rows (the caller keeps them alive); its
/// release() hands them to the context's WeightStore::releasePages.
WeightRef viewWeight(mlir::MLIRContext *context, llvm::ArrayRef<char> bytes,
                     uint64_t rows);

/// Rows [firstRow, firstRow + rows) of `source`, each cut to its bytes
/// [firstByte, firstByte + bytes): a block of a row-major matrix.
WeightRef sliceWeight(WeightRef source, uint64_t firstRow, uint64_t rows,
                      uint64_t firstByte, uint64_t bytes);

/// `parts` joined: axis 0 appends their rows (rank-1 parts: their elements);
/// axis 1 puts row r of each part side by side (their rows must agree).
WeightRef concatWeights(std::vector<WeightRef> parts, int axis);

/// The [K, N_i] (row major, `elementBytes` each) `parts` transposed to
/// [N_i, K] and appended: [sum N_i, K]. Each part is read whole (its view,
/// or a copy kept until release()), the result row by row.
WeightRef transposedWeights(std::vector<WeightRef> parts, size_t elementBytes);

/// Rows of `source` mapped one by one: `map(row, in, out)` writes output row
/// `row` (`outRowBytes`) from input row `row`.
WeightRef mapRows(WeightRef source, uint64_t outRowBytes,
                  std::function<void(uint64_t, const char *, char *)> map);

/// Writes the transpose of the row-major rows x cols matrix `in` (elements
/// of `elementBytes` bytes) to `out` (cols x rows), in cache-sized tiles.
void transposeInto(llvm::ArrayRef<char> in, char *out, int64_t rows,
                   int64_t cols, size_t elementBytes);

/// The immutable global with data that `v` loads, or null.
mlir::ml_program::GlobalOp constantGlobal(mlir::Value v,
                                          mlir::SymbolTable &symbols);

/// A new private immutable global `name` (renamed on a clash) of `type`, a
/// dense_resource with the bytes of `source` (rows x rowBytes of `type`):
/// read now, or at write time while a WeightStore is alive.
mlir::ml_program::GlobalOp createWeightGlobal(mlir::SymbolTable &symbols,
                                              mlir::Operation *before,
                                              llvm::StringRef name,
                                              mlir::RankedTensorType type,
                                              WeightRef source);

/// A global_load_const of `g` at the start of `block`.
mlir::Value loadAtStart(mlir::Block &block, mlir::ml_program::GlobalOp g);

/// Erases dead global_load_const ops of `module`, then those of `names`
/// that nothing loads any more.
void eraseUnusedGlobals(mlir::ModuleOp module, mlir::SymbolTable &symbols,
                        llvm::ArrayRef<std::string> names);

} // namespace kiln

#endif // KILN_PASSES_FUSION_CONSTANTWEIGHTS_H
