//===- ShapeLayoutRules.cpp - Shape rules of layout and index ops ---------===//
//
// The rules of ops that move, index or describe data rather than compute on
// it (Shape, Gather, Slice, Reshape, Concat, ...): the chains exporters build
// reshape targets and slice bounds with.
//
//===----------------------------------------------------------------------===//

#include "OnnxAttrs.h"
#include "ShapeRules.h"

#include "onnx.pb.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"

#include <algorithm>
#include <cstring>

using namespace kiln;

namespace {

void inferShape(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  const onnx::NodeProto *node = &n.node;
  out.dtype = onnx::TensorProto::INT64;
  if (aShape) {
    int64_t r = a->shape.size();
    int64_t start = normAxis(attrInt(*node, "start", 0), r);
    int64_t end = normAxis(attrInt(*node, "end", r), r);
    start = std::clamp<int64_t>(start, 0, r);
    end = std::clamp<int64_t>(end, start, r);
    Shape vals(a->shape.begin() + start, a->shape.begin() + end);
    n.setShape(out, {Poly::constant(end - start)});
    out.ints = vals;
  }
}

void inferSize(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  out.dtype = onnx::TensorProto::INT64;
  n.setShape(out, {});
  if (aShape)
    out.ints = Shape{product(a->shape)};
}

void inferGather(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  const onnx::NodeProto *node = &n.node;
  const ValueFacts *idx = n.in(1);
  if (aShape && idx && idx->hasShape) {
    int64_t axis = normAxis(attrInt(*node, "axis", 0), a->shape.size());
    if (axis < 0 || axis >= static_cast<int64_t>(a->shape.size()))
      return; // the raiser reports the bad axis
    Shape s(a->shape.begin(), a->shape.begin() + axis);
    s.append(idx->shape.begin(), idx->shape.end());
    s.append(a->shape.begin() + axis + 1, a->shape.end());
    n.setShape(out, s);
    auto iv = n.inInts(1);
    if (a->ints && iv && a->shape.size() == 1) {
      Shape r;
      int64_t n = a->ints->size();
      for (const Poly &p : *iv) {
        if (!p.isConstant())
          break;
        int64_t k = p.constantValue();
        if (k < 0)
          k += n;
        if (k < 0 || k >= n)
          break;
        r.push_back((*a->ints)[k]);
      }
      if (r.size() == iv->size())
        out.ints = r;
    }
  }
}

void inferGatherND(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  const onnx::NodeProto *node = &n.node;
  const ValueFacts *idx = n.in(1);
  int64_t batchDims = attrInt(*node, "batch_dims", 0);
  if (aShape && idx && idx->hasShape && !idx->shape.empty() &&
      idx->shape.back().isConstant()) {
    int64_t k = idx->shape.back().constantValue();
    if (batchDims >= 0 && k >= 0 &&
        batchDims + k <= static_cast<int64_t>(a->shape.size())) {
      Shape s(idx->shape.begin(), idx->shape.end() - 1);
      s.append(a->shape.begin() + batchDims + k, a->shape.end());
      n.setShape(out, s);
    }
  }
}

void inferSqueeze(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  const onnx::NodeProto *node = &n.node;
  const std::string &op = n.node.op_type();
  std::optional<std::vector<int64_t>> axes;
  if (node->input_size() > 1) {
    if (auto v = n.inInts(1)) {
      std::vector<int64_t> ax;
      for (const Poly &p : *v)
        if (p.isConstant())
          ax.push_back(p.constantValue());
      if (ax.size() == v->size())
        axes = ax;
    }
  } else if (hasAttr(*node, "axes")) {
    axes = attrInts(*node, "axes");
  } else if (op == "Squeeze") {
    axes = std::vector<int64_t>{};
  }
  if (aShape && axes) {
    Shape s = a->shape;
    if (op == "Unsqueeze") {
      int64_t r = s.size() + axes->size();
      std::vector<int64_t> ax;
      for (int64_t x : *axes)
        ax.push_back(normAxis(x, r));
      std::sort(ax.begin(), ax.end());
      for (int64_t x : ax)
        if (x >= 0 && x <= static_cast<int64_t>(s.size()))
          s.insert(s.begin() + x, Poly::constant(1));
    } else if (axes->empty()) {
      llvm::erase_if(s, [](const Poly &p) {
        return p.isConstant() && p.constantValue() == 1;
      });
    } else {
      std::vector<int64_t> ax;
      for (int64_t x : *axes)
        ax.push_back(normAxis(x, s.size()));
      std::sort(ax.rbegin(), ax.rend());
      for (int64_t x : ax)
        if (x >= 0 && x < static_cast<int64_t>(s.size()))
          s.erase(s.begin() + x);
    }
    n.setShape(out, s);
  }
  if (a && a->ints)
    out.ints = a->ints;
}

void inferConcat(const NodeShapes &n, ValueFacts &out) {
  const onnx::NodeProto *node = &n.node;
  bool all = true, allInts = true;
  int64_t axis = attrInt(*node, "axis", 0);
  Shape s, vals;
  for (int i = 0; i < node->input_size(); ++i) {
    const ValueFacts *f = n.in(i);
    if (!f || !f->hasShape) {
      all = allInts = false;
      break;
    }
    int64_t ax = normAxis(axis, f->shape.size());
    if (s.empty())
      s = f->shape;
    else if (ax >= 0 && ax < static_cast<int64_t>(s.size()))
      s[ax] = s[ax] + f->shape[ax];
    if (f->ints)
      vals.append(f->ints->begin(), f->ints->end());
    else
      allInts = false;
  }
  if (all)
    n.setShape(out, s);
  if (allInts && all)
    out.ints = vals;
}

void inferSlice(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  const onnx::NodeProto *node = &n.node;
  auto starts = n.inInts(1), ends = n.inInts(2);
  std::optional<Shape> axes =
      node->input_size() > 3 ? n.inInts(3) : std::nullopt;
  std::optional<Shape> steps =
      node->input_size() > 4 ? n.inInts(4) : std::nullopt;
  if (aShape && starts && ends && starts->size() == ends->size()) {
    Shape s = a->shape;
    bool ok = true;
    for (size_t i = 0; i < starts->size() && ok; ++i) {
      int64_t ax = axes ? ((*axes)[i].isConstant() ? (*axes)[i].constantValue()
                                                   : INT64_MIN)
                        : static_cast<int64_t>(i);
      int64_t step =
          steps && (*steps)[i].isConstant() ? (*steps)[i].constantValue() : 1;
      if (ax == INT64_MIN || step != 1) {
        ok = false;
        break;
      }
      ax = normAxis(ax, s.size());
      if (ax < 0 || ax >= static_cast<int64_t>(s.size())) {
        ok = false;
        break;
      }
      const Poly &dim = s[ax];
      const Poly &st = (*starts)[i], &en = (*ends)[i];
      // Resolve start/end against the (possibly symbolic) dimension.
      auto resolve = [&](const Poly &p) -> std::optional<Poly> {
        if (!p.isConstant())
          return p;
        int64_t v = p.constantValue();
        // ONNX clamps starts/ends into [0, dim]: INT64_MAX means "to
        // the end", INT64_MIN (or any v <= -dim) "from the start".
        if (v >= (int64_t(1) << 40))
          return dim;
        if (v <= -(int64_t(1) << 40))
          return Poly::constant(0);
        if (v < 0 && dim.isConstant())
          return Poly::constant(std::max<int64_t>(0, dim.constantValue() + v));
        if (v < 0)
          return dim + Poly::constant(v);
        if (dim.isConstant())
          return Poly::constant(std::min(v, dim.constantValue()));
        return Poly::constant(v);
      };
      auto rs = resolve(st), re = resolve(en);
      if (!rs || !re) {
        ok = false;
        break;
      }
      s[ax] = *re - *rs;
      if (a->ints && a->shape.size() == 1 && rs->isConstant() &&
          re->isConstant()) {
        int64_t b = rs->constantValue(), e = re->constantValue();
        if (b >= 0 && e <= static_cast<int64_t>(a->ints->size()) && b <= e)
          out.ints = Shape(a->ints->begin() + b, a->ints->begin() + e);
      }
    }
    if (ok)
      n.setShape(out, s);
  }
}

void inferReshape(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  const onnx::NodeProto *node = &n.node;
  auto target = n.inInts(1);
  if (target) {
    Shape s = *target;
    bool allowZero = attrInt(*node, "allowzero", 0) != 0;
    int wildcard = -1;
    for (size_t i = 0; i < s.size(); ++i) {
      if (!s[i].isConstant())
        continue;
      int64_t v = s[i].constantValue();
      if (v == 0 && !allowZero && aShape && i < a->shape.size())
        s[i] = a->shape[i];
      else if (v == -1)
        wildcard = static_cast<int>(i);
    }
    if (wildcard >= 0) {
      std::optional<Poly> w;
      if (aShape) {
        Shape others;
        for (size_t i = 0; i < s.size(); ++i)
          if (static_cast<int>(i) != wildcard)
            others.push_back(s[i]);
        w = product(a->shape).divExact(product(others));
      }
      s[wildcard] = w ? *w : n.freshDim();
    }
    n.setShape(out, s);
  }
  if (a && a->ints)
    out.ints = a->ints;
}

void inferTranspose(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  const onnx::NodeProto *node = &n.node;
  if (aShape) {
    std::vector<int64_t> perm = attrInts(*node, "perm");
    if (perm.empty())
      for (int64_t i = a->shape.size() - 1; i >= 0; --i)
        perm.push_back(i);
    Shape s;
    for (int64_t p : perm)
      if (p >= 0 && p < static_cast<int64_t>(a->shape.size()))
        s.push_back(a->shape[p]);
    if (s.size() == a->shape.size())
      n.setShape(out, s);
  }
}

void inferExpand(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  auto target = n.inInts(1);
  if (aShape && target)
    if (auto s = broadcast(a->shape, *target))
      n.setShape(out, *s);
}

void inferConstantOfShape(const NodeShapes &n, ValueFacts &out) {
  const onnx::NodeProto *node = &n.node;
  auto target = n.inInts(0);
  out.dtype = onnx::TensorProto::FLOAT;
  std::optional<int64_t> fill;
  for (const auto &at : node->attribute())
    if (at.name() == "value") {
      out.dtype = at.t().data_type();
      if (at.t().int64_data_size() == 1)
        fill = at.t().int64_data(0);
      else if (at.t().int32_data_size() == 1)
        fill = at.t().int32_data(0);
      else if (at.t().has_raw_data() && out.dtype == onnx::TensorProto::INT64 &&
               at.t().raw_data().size() == 8) {
        int64_t v;
        std::memcpy(&v, at.t().raw_data().data(), 8);
        fill = v;
      } else if (at.t().has_raw_data() && at.t().raw_data().size() == 1) {
        fill = static_cast<uint8_t>(at.t().raw_data()[0]);
      }
    }
  if (target) {
    n.setShape(out, *target);
    if (fill && target->size() == 1 && (*target)[0].isConstant() &&
        (*target)[0].constantValue() >= 0 && (*target)[0].constantValue() <= 64)
      out.ints = Shape((*target)[0].constantValue(), Poly::constant(*fill));
  }
}

void inferRange(const NodeShapes &n, ValueFacts &out) {
  auto s = n.inInts(0), l = n.inInts(1), d = n.inInts(2);
  if (s && l && d && s->size() == 1 && l->size() == 1 && d->size() == 1 &&
      (*d)[0].isConstant() && (*d)[0].constantValue() == 1)
    n.setShape(out, {(*l)[0] - (*s)[0]});
  else
    n.setShape(out, {n.freshDim()});
}

void inferFlatten(const NodeShapes &n, ValueFacts &out) {
  const ValueFacts *a = n.a;
  bool aShape = n.aShape();
  const onnx::NodeProto *node = &n.node;
  if (aShape) {
    int64_t axis = normAxis(attrInt(*node, "axis", 1), a->shape.size());
    if (axis < 0 || axis > static_cast<int64_t>(a->shape.size()))
      return;
    llvm::ArrayRef<Poly> dims(a->shape);
    n.setShape(
        out, {product(dims.take_front(axis)), product(dims.drop_front(axis))});
  }
}

} // namespace

void kiln::addLayoutRules(llvm::StringMap<ShapeRule> &rules) {
  rules["Shape"] = inferShape;
  rules["Size"] = inferSize;
  rules["Gather"] = inferGather;
  rules["GatherND"] = inferGatherND;
  rules["Unsqueeze"] = inferSqueeze;
  rules["Squeeze"] = inferSqueeze;
  rules["Concat"] = inferConcat;
  rules["Slice"] = inferSlice;
  rules["Reshape"] = inferReshape;
  rules["Transpose"] = inferTranspose;
  rules["Expand"] = inferExpand;
  rules["ConstantOfShape"] = inferConstantOfShape;
  rules["Range"] = inferRange;
  rules["Flatten"] = inferFlatten;
}
