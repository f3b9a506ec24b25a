//===- ShapeRules.h - Per-op transfer functions of ShapeInference -*- C++
//-*-===//
//
// ShapeInference walks the graph and asks, for each node, the rule of its
// op type: a function from what is known about the node's inputs (shapes as
// polynomials, values of small integer tensors) to what is known about its
// first output. Ops without a rule leave their outputs unknown.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_IMPORT_SHAPERULES_H
#define KILN_LIB_IMPORT_SHAPERULES_H

#include "ShapeInference.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"

#include <optional>

namespace onnx {
class NodeProto;
} // namespace onnx

namespace kiln {

using Shape = llvm::SmallVector<Poly, 4>;

/// What a rule sees of one node.
struct NodeShapes {
  const onnx::NodeProto &node;
  /// Input 0's facts (nullptr when unknown); the output's dtype defaults to
  /// its dtype.
  const ValueFacts *a;
  /// Input i's facts; nullptr when absent or unknown.
  llvm::function_ref<const ValueFacts *(int)> in;
  /// A new symbol, for a dimension the rule cannot express.
  llvm::function_ref<Poly()> freshDim;

  bool aShape() const { return a && a->hasShape; }
  /// Input i's values, when it is a small integer tensor of known values.
  std::optional<Shape> inInts(int i) const;
  /// A shape with a negative constant dimension (hostile shape arithmetic)
  /// stays unknown.
  static void setShape(ValueFacts &out, Shape s) {
    for (const Poly &d : s)
      if (d.isConstant() && d.constantValue() < 0)
        return;
    out.hasShape = true;
    out.shape = std::move(s);
  }
};

/// Computes the facts of the node's first output into `out`.
using ShapeRule = void (*)(const NodeShapes &, ValueFacts &out);

/// The rule for `opType`, or nullptr when there is none.
ShapeRule shapeRule(llvm::StringRef opType);
/// Adds the rules of layout and index ops (ShapeLayoutRules.cpp).
void addLayoutRules(llvm::StringMap<ShapeRule> &rules);

/// Numpy-style broadcast of two shapes.
std::optional<Shape> broadcast(const Shape &a, const Shape &b);
/// `axis` with a negative value counted from `rank`.
int64_t normAxis(int64_t axis, size_t rank);
/// The product of `dims`.
Poly product(llvm::ArrayRef<Poly> dims);

} // namespace kiln

#endif // KILN_LIB_IMPORT_SHAPERULES_H
