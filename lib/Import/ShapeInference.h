//===- ShapeInference.h - Symbolic shapes for ONNX graphs -------*- C++ -*-===//
//
// Exporters compute reshape targets, slice bounds and expand shapes with
// Shape/Gather/Concat/... chains over dynamic batch and sequence sizes. To
// raise such graphs without hard-coding any dimension, the importer
// interprets those chains symbolically: every dimension is a polynomial over
// the graph's dynamic input dimensions (batch, seq, past, ...), and small
// integer tensors carry their (symbolic) values.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_IMPORT_SHAPEINFERENCE_H
#define KILN_LIB_IMPORT_SHAPEINFERENCE_H

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln {

class OnnxModel;

/// An integer polynomial over symbols (dynamic dimensions), e.g. `batch*seq`
/// or `past + seq`.
class Poly {
public:
  Poly() = default;
  static Poly constant(int64_t c);
  static Poly symbol(int id);

  bool isConstant() const;
  /// The constant term (the value, for a constant polynomial).
  int64_t constantValue() const;
  bool operator==(const Poly &o) const { return terms_ == o.terms_; }
  bool operator!=(const Poly &o) const { return !(*this == o); }

  Poly operator+(const Poly &o) const;
  Poly operator-(const Poly &o) const;
  Poly operator*(const Poly &o) const;
  /// Exact division by a single-term divisor; nullopt when not exact.
  std::optional<Poly> divExact(const Poly &o) const;
  std::string str(const std::vector<std::string> &names) const;

private:
  std::map<std::vector<int>, int64_t> terms_; // monomial -> coefficient
};

/// What is known about one ONNX value.
struct ValueFacts {
  int32_t dtype = 0;
  bool hasShape = false;
  llvm::SmallVector<Poly, 4> shape;
  /// Values of a small integer (or bool) tensor, row-major.
  std::optional<llvm::SmallVector<Poly, 4>> ints;
};

class ShapeInference {
public:
  explicit ShapeInference(const OnnxModel &model);
  /// Facts for `value`, or nullptr if nothing is known.
  const ValueFacts *get(llvm::StringRef value) const;
  /// Static size of dim `i` of `value`, if known and constant.
  std::optional<int64_t> staticDim(llvm::StringRef value, int i) const;
  /// Rank of `value`, if its shape is known.
  std::optional<size_t> rank(llvm::StringRef value) const;
  const std::vector<std::string> &symbolNames() const { return names_; }

private:
  void run();
  int symbolFor(const std::string &name);

  const OnnxModel &model_;
  llvm::StringMap<ValueFacts> facts_;
  std::vector<std::string> names_;
  llvm::StringMap<int> symbols_;
};

} // namespace kiln

#endif // KILN_LIB_IMPORT_SHAPEINFERENCE_H
