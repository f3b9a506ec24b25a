//===- ShapeRules.cpp - Shape rules of computing ops, and the table -------===//
//
// The rules of ops that compute (elementwise arithmetic, casts, matrix
// products, reductions), the helpers every rule shares, and the op-type ->
// rule table that ShapeInference consults (the layout ops' rules are added
// from ShapeLayoutRules.cpp).
//
//===----------------------------------------------------------------------===//

#include "ShapeRules.h"
#include "OnnxAttrs.h"

#include "onnx.pb.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"

#include <algorithm>
#include <cstring>

using namespace kiln;

std::optional<Shape> kiln::broadcast(const Shape &a, const Shape &b) {
  size_t n = std::max(a.size(), b.size());
  Shape r(n);
  auto isOne = [](const Poly &p) {
    return p.isConstant() && p.constantValue() == 1;
  };
  for (size_t i = 0; i < n; ++i) {
    const Poly *da = i + a.size() >= n ? &a[i + a.size() - n] : nullptr;
    const Poly *db = i + b.size() >= n ? &b[i + b.size() - n] : nullptr;
    if (!da || (db && isOne(*da)))
      r[i] = *db;
    else if (!db || isOne(*db))
      r[i] = *da;
    else if (!da->isConstant())
      r[i] = db->isConstant() ? *db : *da; // a static size wins
    else
      r[i] = *da;
  }
  return r;
}

int64_t kiln::normAxis(int64_t axis, size_t rank) {
  return axis < 0 ? axis + static_cast<int64_t>(rank) : axis;
}

Poly kiln::product(llvm::ArrayRef<Poly> dims) {
  Poly p = Poly::constant(1);
  for (const Poly &d : dims)
    p = p * d;
  return p;
}

std::optional<Shape> NodeShapes::inInts(int i) const {
  const ValueFacts *f = in(i);
  if (f && f->ints)
    return *f->ints;
  return std::nullopt;
}

namespace {

/// Elementwise integer arithmetic on known small values, broadcast.
template <typename Fn>
void intBinary(const NodeShapes &n, ValueFacts &out, Fn fn) {
  auto x = n.inInts(0), y = n.inInts(1);
  if (!x || !y)
    return;
  size_t size = std::max(x->size(), y->size());
  if ((x->size() != size && x->size() != 1) ||
      (y->size() != size && y->size() != 1))
    return;
  Shape r;
  for (size_t i = 0; i < size; ++i) {
    auto v = fn((*x)[x->size() == 1 ? 0 : i], (*y)[y->size() == 1 ? 0 : i]);
    if (!v)
      return;
    r.push_back(*v);
  }
  out.ints = r;
}

void inferElementwise(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  const std::string &op = n.node.op_type();
  const ValueFacts *b = n.in(1);
  if (aShape && b && b->hasShape) {
    if (auto s = broadcast(a->shape, b->shape))
      n.setShape(out, *s);
  } else if (aShape || (b && b->hasShape)) {
    // One side unknown (a mask built by an op we do not model): masks
    // broadcast to the scores, so take the known side's shape.
    n.setShape(out, aShape ? a->shape : b->shape);
  }
  if (!a && b)
    out.dtype = b->dtype;
  if (llvm::is_contained({"Equal", "Less", "LessOrEqual", "Greater",
                          "GreaterOrEqual", "And", "Or"},
                         op))
    out.dtype = onnx::TensorProto::BOOL;
  using OP = std::optional<Poly>;
  if (op == "Add")
    intBinary(n, out, [](const Poly &x, const Poly &y) -> OP { return x + y; });
  else if (op == "Sub")
    intBinary(n, out, [](const Poly &x, const Poly &y) -> OP { return x - y; });
  else if (op == "Mul")
    intBinary(n, out, [](const Poly &x, const Poly &y) -> OP { return x * y; });
  else if (op == "Div")
    intBinary(n, out, [](const Poly &x, const Poly &y) -> OP {
      if (x.isConstant() && y.isConstant() && y.constantValue() != 0 &&
          y.constantValue() != -1)
        return Poly::constant(x.constantValue() / y.constantValue());
      return x.divExact(y);
    });
  else if (op == "Equal")
    // Dimensions are never negative: `dim == -1` (a reshape wildcard
    // test in TorchScript exports) is false.
    intBinary(n, out, [](const Poly &x, const Poly &y) -> OP {
      if (x.isConstant() && y.isConstant())
        return Poly::constant(x.constantValue() == y.constantValue());
      const Poly &c = x.isConstant() ? x : y;
      if (c.isConstant() && c.constantValue() < 0)
        return Poly::constant(0);
      if (x == y)
        return Poly::constant(1);
      return std::nullopt;
    });
  else if (op == "Max" || op == "Min")
    intBinary(n, out, [&](const Poly &x, const Poly &y) -> OP {
      if (x == y)
        return x;
      if (x.isConstant() && y.isConstant())
        return Poly::constant(
            op == "Max" ? std::max(x.constantValue(), y.constantValue())
                        : std::min(x.constantValue(), y.constantValue()));
      return std::nullopt;
    });
}

void inferWhere(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *c = n.in(0), *x = n.in(1), *y = n.in(2);
  if (x)
    out.dtype = x->dtype;
  if (c && c->hasShape && x && x->hasShape && y && y->hasShape)
    if (auto s1 = broadcast(c->shape, x->shape))
      if (auto s2 = broadcast(*s1, y->shape))
        n.setShape(out, *s2);
  auto cv = n.inInts(0), xv = n.inInts(1), yv = n.inInts(2);
  if (cv && xv && yv && xv->size() == cv->size() && yv->size() == cv->size()) {
    Shape r;
    for (size_t i = 0; i < cv->size(); ++i) {
      if (!(*cv)[i].isConstant()) {
        r.clear();
        break;
      }
      r.push_back((*cv)[i].constantValue() ? (*xv)[i] : (*yv)[i]);
    }
    if (r.size() == cv->size())
      out.ints = r;
  }
}

void inferUnary(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  const onnx::NodeProto *node = &n.node;
  const std::string &op = n.node.op_type();
  if (aShape)
    n.setShape(out, a->shape);
  if (op == "Cast") {
    out.dtype = static_cast<int32_t>(attrInt(*node, "to", 0));
    if (a && a->ints)
      out.ints = a->ints;
  } else if (op == "Identity") {
    if (a)
      out.ints = a->ints;
  } else if (op == "Neg") {
    if (a && a->ints) {
      Shape r;
      for (const Poly &p : *a->ints)
        r.push_back(Poly::constant(0) - p);
      out.ints = r;
    }
  } else if (op == "Not" || llvm::is_contained({"IsNaN", "IsInf"}, op)) {
    out.dtype = onnx::TensorProto::BOOL;
  }
}

void inferMatMul(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  const ValueFacts *b = n.in(1);
  if (aShape && b && b->hasShape && a->shape.size() >= 2 &&
      b->shape.size() >= 2) {
    Shape ba(a->shape.begin(), a->shape.end() - 2);
    Shape bb(b->shape.begin(), b->shape.end() - 2);
    if (auto s = broadcast(ba, bb)) {
      s->push_back(a->shape[a->shape.size() - 2]);
      s->push_back(b->shape.back());
      n.setShape(out, *s);
    }
  } else if (aShape && b && b->hasShape && b->shape.size() == 1 &&
             !a->shape.empty()) {
    n.setShape(out, Shape(a->shape.begin(), a->shape.end() - 1));
  }
}

void inferDequantizeLinear(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  if (aShape)
    n.setShape(out, a->shape);
}

/// com.microsoft: A[..., K] -> [..., N].
void inferMatMulNBits(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  if (n.aShape() && !a->shape.empty()) {
    Shape s(a->shape.begin(), a->shape.end() - 1);
    s.push_back(Poly::constant(attrInt(n.node, "N", 0)));
    n.setShape(out, s);
  }
}

void inferGemm(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  const onnx::NodeProto *node = &n.node;
  const ValueFacts *b = n.in(1);
  if (aShape && b && b->hasShape && a->shape.size() == 2 &&
      b->shape.size() == 2)
    n.setShape(out, {a->shape[attrInt(*node, "transA", 0) ? 1 : 0],
                     b->shape[attrInt(*node, "transB", 0) ? 0 : 1]});
}

void inferReduce(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  const onnx::NodeProto *node = &n.node;
  if (aShape) {
    std::vector<int64_t> axes = attrInts(*node, "axes");
    if (node->input_size() > 1)
      if (auto v = n.inInts(1))
        for (const Poly &p : *v)
          axes.push_back(p.constantValue());
    bool keep = attrInt(*node, "keepdims", 1) != 0;
    Shape s;
    for (size_t i = 0; i < a->shape.size(); ++i) {
      bool reduced =
          axes.empty() || llvm::any_of(axes, [&](int64_t x) {
            return normAxis(x, a->shape.size()) == static_cast<int64_t>(i);
          });
      if (!reduced)
        s.push_back(a->shape[i]);
      else if (keep)
        s.push_back(Poly::constant(1));
    }
    n.setShape(out, s);
  }
}

/// com.microsoft::GroupQueryAttention: [B, S, num_heads * D]; with packed
/// QKV (no key input) the query is [B, S, (num_heads + 2 * kv_num_heads) * D].
void inferGroupQueryAttention(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  if (!n.aShape() || a->shape.size() != 3)
    return;
  bool packed = n.node.input_size() < 2 || n.node.input(1).empty();
  if (!packed) {
    n.setShape(out, a->shape);
    return;
  }
  int64_t heads = attrInt(n.node, "num_heads", 0);
  int64_t kvHeads = attrInt(n.node, "kv_num_heads", 0);
  const Poly &width = a->shape[2];
  if (heads <= 0 || kvHeads <= 0 || !width.isConstant() ||
      width.constantValue() % (heads + 2 * kvHeads) != 0)
    return;
  Shape s = a->shape;
  s[2] = Poly::constant(width.constantValue() / (heads + 2 * kvHeads) * heads);
  n.setShape(out, s);
}

/// com.microsoft::GatherBlockQuantized (gather_axis 0, quantize_axis 1):
/// indices [...] -> [..., hidden] in the scales' type, hidden = the data's
/// row bytes * 8 / bits.
void inferGatherBlockQuantized(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *data = n.a, *ids = n.in(1), *scales = n.in(2);
  int64_t bits = attrInt(n.node, "bits", 4);
  if (scales)
    out.dtype = scales->dtype;
  if (!n.aShape() || data->shape.size() != 2 || !ids || !ids->hasShape ||
      !data->shape[1].isConstant() || (bits != 4 && bits != 8))
    return;
  Shape s = ids->shape;
  s.push_back(Poly::constant(data->shape[1].constantValue() * 8 / bits));
  n.setShape(out, s);
}

void inferDynamicQuantizeLinear(const NodeShapes &n, ValueFacts &out) {
  if (n.aShape())
    n.setShape(out, n.a->shape);
  out.dtype = onnx::TensorProto::UINT8;
}

void inferMatMulInteger(const NodeShapes &n, ValueFacts &out) {
  inferMatMul(n, out);
  out.dtype = onnx::TensorProto::INT32;
}

} // namespace

ShapeRule kiln::shapeRule(llvm::StringRef opType) {
  static const llvm::StringMap<ShapeRule> rules = [] {
    llvm::StringMap<ShapeRule> r = {
        {"Add", inferElementwise},
        {"Sub", inferElementwise},
        {"Mul", inferElementwise},
        {"Div", inferElementwise},
        {"Pow", inferElementwise},
        {"Max", inferElementwise},
        {"Min", inferElementwise},
        {"And", inferElementwise},
        {"Or", inferElementwise},
        {"Equal", inferElementwise},
        {"Less", inferElementwise},
        {"LessOrEqual", inferElementwise},
        {"Greater", inferElementwise},
        {"GreaterOrEqual", inferElementwise},
        {"Mod", inferElementwise},
        {"Where", inferWhere},
        {"Cast", inferUnary},
        {"Neg", inferUnary},
        {"Sqrt", inferUnary},
        {"Reciprocal", inferUnary},
        {"Sigmoid", inferUnary},
        {"Cos", inferUnary},
        {"Sin", inferUnary},
        {"Softmax", inferUnary},
        {"Not", inferUnary},
        {"Identity", inferUnary},
        {"Erf", inferUnary},
        {"Relu", inferUnary},
        {"Tanh", inferUnary},
        {"Exp", inferUnary},
        {"Log", inferUnary},
        {"Abs", inferUnary},
        {"Trilu", inferUnary},
        {"IsNaN", inferUnary},
        {"IsInf", inferUnary},
        {"Floor", inferUnary},
        {"Ceil", inferUnary},
        {"CastLike", inferUnary},
        {"MatMul", inferMatMul},
        {"DequantizeLinear", inferDequantizeLinear},
        {"MatMulNBits", inferMatMulNBits},
        {"Gemm", inferGemm},
        {"ReduceMean", inferReduce},
        {"ReduceSum", inferReduce},
        {"ReduceMax", inferReduce},
        {"ReduceMin", inferReduce},
        {"ReduceProd", inferReduce},
        // Fused ops of opset 23 and onnxruntime's contrib domain: their
        // first output has the shape of their first input (Attention's Y
        // when V's head size is Q's, as in every Llama).
        {"RMSNormalization", inferUnary},
        {"SimplifiedLayerNormalization", inferUnary},
        {"SkipSimplifiedLayerNormalization", inferUnary},
        {"RotaryEmbedding", inferUnary},
        {"Attention", inferUnary},
        {"GroupQueryAttention", inferGroupQueryAttention},
        {"GatherBlockQuantized", inferGatherBlockQuantized},
        // onnxruntime's quantize_dynamic: uint8 codes of x's shape, and an
        // int32 MatMul.
        {"DynamicQuantizeLinear", inferDynamicQuantizeLinear},
        {"MatMulInteger", inferMatMulInteger},
    };
    addLayoutRules(r);
    return r;
  }();
  return rules.lookup(opType);
}
