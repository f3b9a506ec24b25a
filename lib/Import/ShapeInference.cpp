//===- ShapeInference.cpp - Symbolic shapes for ONNX graphs ---------------===//

#include "ShapeInference.h"
#include "OnnxAttrs.h"
#include "OnnxModel.h"

#include "onnx.pb.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSwitch.h"

#include <algorithm>

using namespace kiln;
using Shape = llvm::SmallVector<Poly, 4>;

//===----------------------------------------------------------------------===//
// Poly
//===----------------------------------------------------------------------===//

Poly Poly::constant(int64_t c) {
  Poly p;
  if (c != 0)
    p.terms_[{}] = c;
  return p;
}

Poly Poly::symbol(int id) {
  Poly p;
  p.terms_[{id}] = 1;
  return p;
}

bool Poly::isConstant() const {
  return terms_.empty() ||
         (terms_.size() == 1 && terms_.begin()->first.empty());
}

int64_t Poly::constantValue() const {
  auto it = terms_.find({});
  return it == terms_.end() ? 0 : it->second;
}

Poly Poly::operator+(const Poly &o) const {
  Poly r = *this;
  for (const auto &[m, c] : o.terms_)
    if ((r.terms_[m] += c) == 0)
      r.terms_.erase(m);
  return r;
}

Poly Poly::operator-(const Poly &o) const { return *this + o * constant(-1); }

Poly Poly::operator*(const Poly &o) const {
  Poly r;
  for (const auto &[m1, c1] : terms_)
    for (const auto &[m2, c2] : o.terms_) {
      std::vector<int> m = m1;
      m.insert(m.end(), m2.begin(), m2.end());
      std::sort(m.begin(), m.end());
      if ((r.terms_[m] += c1 * c2) == 0)
        r.terms_.erase(m);
    }
  return r;
}

std::optional<Poly> Poly::divExact(const Poly &o) const {
  if (o.terms_.size() != 1)
    return std::nullopt;
  const auto &[dm, dc] = *o.terms_.begin();
  if (dc == 0)
    return std::nullopt;
  Poly r;
  for (const auto &[m, c] : terms_) {
    if (c % dc != 0)
      return std::nullopt;
    std::vector<int> rest = m;
    for (int s : dm) {
      auto it = std::find(rest.begin(), rest.end(), s);
      if (it == rest.end())
        return std::nullopt;
      rest.erase(it);
    }
    r.terms_[rest] = c / dc;
  }
  return r;
}

std::string Poly::str(const std::vector<std::string> &names) const {
  if (terms_.empty())
    return "0";
  std::string s;
  for (const auto &[m, c] : terms_) {
    if (!s.empty())
      s += c < 0 ? " - " : " + ";
    else if (c < 0)
      s += "-";
    int64_t a = c < 0 ? -c : c;
    std::string mono;
    for (int id : m)
      mono += (mono.empty() ? "" : "*") + names[id];
    if (mono.empty())
      s += std::to_string(a);
    else
      s += (a == 1 ? "" : std::to_string(a) + "*") + mono;
  }
  return s;
}

//===----------------------------------------------------------------------===//
// Transfer functions
//===----------------------------------------------------------------------===//

namespace {
std::optional<Shape> broadcast(const Shape &a, const Shape &b) {
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

int64_t normAxis(int64_t axis, size_t rank) {
  return axis < 0 ? axis + static_cast<int64_t>(rank) : axis;
}

Poly product(llvm::ArrayRef<Poly> dims) {
  Poly p = Poly::constant(1);
  for (const Poly &d : dims)
    p = p * d;
  return p;
}
} // namespace

ShapeInference::ShapeInference(const OnnxModel &model) : model_(model) {
  run();
}

const ValueFacts *ShapeInference::get(llvm::StringRef value) const {
  auto it = facts_.find(value);
  return it == facts_.end() ? nullptr : &it->second;
}

std::optional<int64_t> ShapeInference::staticDim(llvm::StringRef value,
                                                 int i) const {
  const ValueFacts *f = get(value);
  if (!f || !f->hasShape)
    return std::nullopt;
  int64_t axis = normAxis(i, f->shape.size());
  if (axis < 0 || axis >= static_cast<int64_t>(f->shape.size()) ||
      !f->shape[axis].isConstant())
    return std::nullopt;
  return f->shape[axis].constantValue();
}

std::optional<size_t> ShapeInference::rank(llvm::StringRef value) const {
  const ValueFacts *f = get(value);
  if (!f || !f->hasShape)
    return std::nullopt;
  return f->shape.size();
}

int ShapeInference::symbolFor(const std::string &name) {
  auto it = symbols_.find(name);
  if (it != symbols_.end())
    return it->second;
  int id = static_cast<int>(names_.size());
  names_.push_back(name);
  symbols_[name] = id;
  return id;
}

void ShapeInference::run() {
  const onnx::GraphProto &g = model_.graph();
  auto constantFacts = [&](llvm::StringRef name) -> const ValueFacts * {
    const ConstTensor *c = model_.constant(name);
    if (!c)
      return nullptr;
    ValueFacts f;
    f.dtype = c->dtype;
    f.hasShape = true;
    for (int64_t d : c->dims)
      f.shape.push_back(Poly::constant(d));
    if (c->numElements() <= 64 && onnxTypeSize(c->dtype) != 0) {
      bool integral = c->dtype != onnx::TensorProto::FLOAT &&
                      c->dtype != onnx::TensorProto::FLOAT16 &&
                      c->dtype != onnx::TensorProto::BFLOAT16 &&
                      c->dtype != onnx::TensorProto::DOUBLE;
      if (integral) {
        Shape vals;
        for (int64_t i = 0; i < c->numElements(); ++i)
          vals.push_back(Poly::constant(c->asInt(i)));
        f.ints = vals;
      }
    }
    return &(facts_[name] = std::move(f));
  };

  int anonymous = 0;
  for (const onnx::ValueInfoProto &in : g.input()) {
    if (model_.constant(in.name()))
      continue;
    ValueFacts f;
    const auto &tt = in.type().tensor_type();
    f.dtype = tt.elem_type();
    if (tt.has_shape()) {
      f.hasShape = true;
      for (const auto &d : tt.shape().dim()) {
        if (d.has_dim_value())
          f.shape.push_back(Poly::constant(d.dim_value()));
        else if (d.has_dim_param() && !d.dim_param().empty())
          f.shape.push_back(Poly::symbol(symbolFor(d.dim_param())));
        else
          f.shape.push_back(
              Poly::symbol(symbolFor("d" + std::to_string(anonymous++))));
      }
    }
    facts_[in.name()] = std::move(f);
  }

  auto facts = [&](const std::string &name) -> const ValueFacts * {
    if (name.empty())
      return nullptr;
    auto it = facts_.find(name);
    if (it != facts_.end())
      return &it->second;
    return constantFacts(name);
  };
  auto freshDim = [&]() {
    return Poly::symbol(symbolFor("u" + std::to_string(anonymous++)));
  };

  for (const onnx::NodeProto *node : model_.nodes()) {
    const std::string &op = node->op_type();
    auto in = [&](int i) -> const ValueFacts * {
      return i < node->input_size() ? facts(node->input(i)) : nullptr;
    };
    auto inInts = [&](int i) -> std::optional<Shape> {
      const ValueFacts *f = in(i);
      if (f && f->ints)
        return *f->ints;
      return std::nullopt;
    };
    if (op == "Constant") {
      constantFacts(node->output(0));
      continue;
    }
    ValueFacts out;
    const ValueFacts *a = in(0);
    bool aShape = a && a->hasShape;
    if (a)
      out.dtype = a->dtype;
    auto setShape = [&](Shape s) {
      out.hasShape = true;
      out.shape = std::move(s);
    };
    // Elementwise integer arithmetic on known small values.
    auto intBinary = [&](auto fn) {
      auto x = inInts(0), y = inInts(1);
      if (!x || !y)
        return;
      size_t n = std::max(x->size(), y->size());
      if ((x->size() != n && x->size() != 1) ||
          (y->size() != n && y->size() != 1))
        return;
      Shape r;
      for (size_t i = 0; i < n; ++i) {
        auto v = fn((*x)[x->size() == 1 ? 0 : i], (*y)[y->size() == 1 ? 0 : i]);
        if (!v)
          return;
        r.push_back(*v);
      }
      out.ints = r;
    };

    if (llvm::is_contained({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min",
                            "And", "Or", "Equal", "Less", "LessOrEqual",
                            "Greater", "GreaterOrEqual", "Mod"},
                           op)) {
      const ValueFacts *b = in(1);
      if (aShape && b && b->hasShape) {
        if (auto s = broadcast(a->shape, b->shape))
          setShape(*s);
      } else if (aShape || (b && b->hasShape)) {
        // One side unknown (a mask built by an op we do not model): masks
        // broadcast to the scores, so take the known side's shape.
        setShape(aShape ? a->shape : b->shape);
      }
      if (!a && b)
        out.dtype = b->dtype;
      if (llvm::is_contained({"Equal", "Less", "LessOrEqual", "Greater",
                              "GreaterOrEqual", "And", "Or"},
                             op))
        out.dtype = onnx::TensorProto::BOOL;
      using OP = std::optional<Poly>;
      if (op == "Add")
        intBinary([](const Poly &x, const Poly &y) -> OP { return x + y; });
      else if (op == "Sub")
        intBinary([](const Poly &x, const Poly &y) -> OP { return x - y; });
      else if (op == "Mul")
        intBinary([](const Poly &x, const Poly &y) -> OP { return x * y; });
      else if (op == "Div")
        intBinary([](const Poly &x, const Poly &y) -> OP {
          if (x.isConstant() && y.isConstant() && y.constantValue() != 0)
            return Poly::constant(x.constantValue() / y.constantValue());
          return x.divExact(y);
        });
      else if (op == "Equal")
        // Dimensions are never negative: `dim == -1` (a reshape wildcard
        // test in TorchScript exports) is false.
        intBinary([](const Poly &x, const Poly &y) -> OP {
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
        intBinary([&](const Poly &x, const Poly &y) -> OP {
          if (x == y)
            return x;
          if (x.isConstant() && y.isConstant())
            return Poly::constant(
                op == "Max" ? std::max(x.constantValue(), y.constantValue())
                            : std::min(x.constantValue(), y.constantValue()));
          return std::nullopt;
        });
    } else if (op == "Where") {
      const ValueFacts *c = in(0), *x = in(1), *y = in(2);
      if (x)
        out.dtype = x->dtype;
      if (c && c->hasShape && x && x->hasShape && y && y->hasShape)
        if (auto s1 = broadcast(c->shape, x->shape))
          if (auto s2 = broadcast(*s1, y->shape))
            setShape(*s2);
      auto cv = inInts(0), xv = inInts(1), yv = inInts(2);
      if (cv && xv && yv && xv->size() == cv->size() &&
          yv->size() == cv->size()) {
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
    } else if (llvm::is_contained({"Cast",    "Neg",      "Sqrt",  "Reciprocal",
                                   "Sigmoid", "Cos",      "Sin",   "Softmax",
                                   "Not",     "Identity", "Erf",   "Relu",
                                   "Tanh",    "Exp",      "Log",   "Abs",
                                   "Trilu",   "IsNaN",    "IsInf", "Floor",
                                   "Ceil",    "CastLike"},
                                  op)) {
      if (aShape)
        setShape(a->shape);
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
    } else if (op == "Shape") {
      out.dtype = onnx::TensorProto::INT64;
      if (aShape) {
        int64_t r = a->shape.size();
        int64_t start = normAxis(attrInt(*node, "start", 0), r);
        int64_t end = normAxis(attrInt(*node, "end", r), r);
        start = std::clamp<int64_t>(start, 0, r);
        end = std::clamp<int64_t>(end, start, r);
        Shape vals(a->shape.begin() + start, a->shape.begin() + end);
        setShape({Poly::constant(end - start)});
        out.ints = vals;
      }
    } else if (op == "Size") {
      out.dtype = onnx::TensorProto::INT64;
      setShape({});
      if (aShape)
        out.ints = Shape{product(a->shape)};
    } else if (op == "Gather") {
      const ValueFacts *idx = in(1);
      if (aShape && idx && idx->hasShape) {
        int64_t axis = normAxis(attrInt(*node, "axis", 0), a->shape.size());
        Shape s(a->shape.begin(), a->shape.begin() + axis);
        s.append(idx->shape.begin(), idx->shape.end());
        s.append(a->shape.begin() + axis + 1, a->shape.end());
        setShape(s);
        auto iv = inInts(1);
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
    } else if (op == "GatherND") {
      const ValueFacts *idx = in(1);
      int64_t batchDims = attrInt(*node, "batch_dims", 0);
      if (aShape && idx && idx->hasShape && !idx->shape.empty() &&
          idx->shape.back().isConstant()) {
        int64_t k = idx->shape.back().constantValue();
        if (batchDims + k <= static_cast<int64_t>(a->shape.size())) {
          Shape s(idx->shape.begin(), idx->shape.end() - 1);
          s.append(a->shape.begin() + batchDims + k, a->shape.end());
          setShape(s);
        }
      }
    } else if (op == "Unsqueeze" || op == "Squeeze") {
      std::optional<std::vector<int64_t>> axes;
      if (node->input_size() > 1) {
        if (auto v = inInts(1)) {
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
        setShape(s);
      }
      if (a && a->ints)
        out.ints = a->ints;
    } else if (op == "Concat") {
      bool all = true, allInts = true;
      int64_t axis = attrInt(*node, "axis", 0);
      Shape s, vals;
      for (int i = 0; i < node->input_size(); ++i) {
        const ValueFacts *f = in(i);
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
        setShape(s);
      if (allInts && all)
        out.ints = vals;
    } else if (op == "Slice") {
      auto starts = inInts(1), ends = inInts(2);
      std::optional<Shape> axes =
          node->input_size() > 3 ? inInts(3) : std::nullopt;
      std::optional<Shape> steps =
          node->input_size() > 4 ? inInts(4) : std::nullopt;
      if (aShape && starts && ends && starts->size() == ends->size()) {
        Shape s = a->shape;
        bool ok = true;
        for (size_t i = 0; i < starts->size() && ok; ++i) {
          int64_t ax =
              axes ? ((*axes)[i].isConstant() ? (*axes)[i].constantValue()
                                              : INT64_MIN)
                   : static_cast<int64_t>(i);
          int64_t step = steps && (*steps)[i].isConstant()
                             ? (*steps)[i].constantValue()
                             : 1;
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
              return Poly::constant(
                  std::max<int64_t>(0, dim.constantValue() + v));
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
          setShape(s);
      }
    } else if (op == "Reshape") {
      auto target = inInts(1);
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
          s[wildcard] = w ? *w : freshDim();
        }
        setShape(s);
      }
      if (a && a->ints)
        out.ints = a->ints;
    } else if (op == "Transpose") {
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
          setShape(s);
      }
    } else if (op == "MatMul") {
      const ValueFacts *b = in(1);
      if (aShape && b && b->hasShape && a->shape.size() >= 2 &&
          b->shape.size() >= 2) {
        Shape ba(a->shape.begin(), a->shape.end() - 2);
        Shape bb(b->shape.begin(), b->shape.end() - 2);
        if (auto s = broadcast(ba, bb)) {
          s->push_back(a->shape[a->shape.size() - 2]);
          s->push_back(b->shape.back());
          setShape(*s);
        }
      } else if (aShape && b && b->hasShape && b->shape.size() == 1 &&
                 !a->shape.empty()) {
        setShape(Shape(a->shape.begin(), a->shape.end() - 1));
      }
    } else if (op == "DequantizeLinear") {
      if (aShape)
        setShape(a->shape);
    } else if (op == "MatMulNBits") { // com.microsoft: A[..., K] -> [..., N]
      if (aShape && !a->shape.empty()) {
        Shape s(a->shape.begin(), a->shape.end() - 1);
        s.push_back(Poly::constant(attrInt(*node, "N", 0)));
        setShape(s);
      }
    } else if (op == "Gemm") {
      const ValueFacts *b = in(1);
      if (aShape && b && b->hasShape && a->shape.size() == 2 &&
          b->shape.size() == 2)
        setShape({a->shape[attrInt(*node, "transA", 0) ? 1 : 0],
                  b->shape[attrInt(*node, "transB", 0) ? 0 : 1]});
    } else if (op == "Expand") {
      auto target = inInts(1);
      if (aShape && target)
        if (auto s = broadcast(a->shape, *target))
          setShape(*s);
    } else if (op == "ConstantOfShape") {
      auto target = inInts(0);
      out.dtype = onnx::TensorProto::FLOAT;
      std::optional<int64_t> fill;
      for (const auto &at : node->attribute())
        if (at.name() == "value") {
          out.dtype = at.t().data_type();
          if (at.t().int64_data_size() == 1)
            fill = at.t().int64_data(0);
          else if (at.t().int32_data_size() == 1)
            fill = at.t().int32_data(0);
          else if (at.t().has_raw_data() &&
                   out.dtype == onnx::TensorProto::INT64 &&
                   at.t().raw_data().size() == 8) {
            int64_t v;
            std::memcpy(&v, at.t().raw_data().data(), 8);
            fill = v;
          } else if (at.t().has_raw_data() && at.t().raw_data().size() == 1) {
            fill = static_cast<uint8_t>(at.t().raw_data()[0]);
          }
        }
      if (target) {
        setShape(*target);
        if (fill && target->size() == 1 && (*target)[0].isConstant() &&
            (*target)[0].constantValue() <= 64)
          out.ints = Shape((*target)[0].constantValue(), Poly::constant(*fill));
      }
    } else if (op == "Range") {
      auto s = inInts(0), l = inInts(1), d = inInts(2);
      if (s && l && d && d->size() == 1 && (*d)[0].isConstant() &&
          (*d)[0].constantValue() == 1)
        setShape({(*l)[0] - (*s)[0]});
      else
        setShape({freshDim()});
    } else if (llvm::is_contained({"ReduceMean", "ReduceSum", "ReduceMax",
                                   "ReduceMin", "ReduceProd"},
                                  op)) {
      if (aShape) {
        std::vector<int64_t> axes = attrInts(*node, "axes");
        if (node->input_size() > 1)
          if (auto v = inInts(1))
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
        setShape(s);
      }
    } else if (op == "Flatten") {
      if (aShape) {
        int64_t axis = normAxis(attrInt(*node, "axis", 1), a->shape.size());
        llvm::ArrayRef<Poly> dims(a->shape);
        setShape(
            {product(dims.take_front(axis)), product(dims.drop_front(axis))});
      }
    }
    // Unknown ops leave their outputs without facts; the raiser reports them
    // if it needs them.
    for (int i = 0; i < node->output_size(); ++i)
      if (!node->output(i).empty())
        facts_[node->output(i)] = i == 0 ? out : ValueFacts();
  }
}
