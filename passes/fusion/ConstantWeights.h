//===- ConstantWeights.h - Reading and making weight globals ----*- C++ -*-===//
//
// What the tfm -> tfm weight rewrites (kiln-fuse-projections,
// kiln-transpose-weights) share: the bytes of a constant
// `ml_program.global`, the global a `global_load_const` reads, and a new
// private global holding given bytes.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_FUSION_CONSTANTWEIGHTS_H
#define KILN_PASSES_FUSION_CONSTANTWEIGHTS_H

#include "kiln/runtime/ArtifactTypes.h"

#include "mlir/Dialect/MLProgram/IR/MLProgram.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <optional>
#include <vector>

namespace kiln {

/// The runtime's element type of a float weight type (f32, f16, bf16), or
/// nothing.
std::optional<runtime::DType> floatDType(mlir::Type t);

/// The bytes of a constant global's value (dense_resource, or dense with a
/// whole-byte element type), row major: a view of the attribute's data, or
/// of `storage` when a splat had to be expanded. Nothing if it has none.
std::optional<llvm::ArrayRef<char>> globalBytes(mlir::ml_program::GlobalOp g,
                                                std::vector<char> &storage);

/// Writes the transpose of the row-major rows x cols matrix `in` (elements
/// of `elementBytes` bytes) to `out` (cols x rows), in cache-sized tiles.
void transposeInto(llvm::ArrayRef<char> in, char *out, int64_t rows,
                   int64_t cols, size_t elementBytes);

/// The immutable global with data that `v` loads, or null.
mlir::ml_program::GlobalOp constantGlobal(mlir::Value v,
                                          mlir::SymbolTable &symbols);

/// A new private immutable global `name` (renamed on a clash) of `type`, a
/// dense_resource whose bytes `fill` writes in place (row major, every byte):
/// the weight passes build each new weight without an intermediate copy.
mlir::ml_program::GlobalOp
createWeightGlobal(mlir::SymbolTable &symbols, mlir::Operation *before,
                   llvm::StringRef name, mlir::RankedTensorType type,
                   llvm::function_ref<void(llvm::MutableArrayRef<char>)> fill);

/// A global_load_const of `g` at the start of `block`.
mlir::Value loadAtStart(mlir::Block &block, mlir::ml_program::GlobalOp g);

/// Erases dead global_load_const ops of `module`, then those of `names`
/// that nothing loads any more.
void eraseUnusedGlobals(mlir::ModuleOp module, mlir::SymbolTable &symbols,
                        llvm::ArrayRef<std::string> names);

} // namespace kiln

#endif // KILN_PASSES_FUSION_CONSTANTWEIGHTS_H
