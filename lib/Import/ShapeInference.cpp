//===- ShapeInference.cpp - Symbolic shapes for ONNX graphs ---------------===//

#include "ShapeInference.h"
#include "OnnxModel.h"
#include "ShapeRules.h"

#include "onnx.pb.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSwitch.h"

#include <algorithm>

using namespace kiln;

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

// Coefficients wrap on overflow (two's complement) rather than being
// undefined: a fuzzed or hostile graph can ask for any product, and the
// raiser checks every dimension it uses.
static int64_t wrapAdd(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) +
                              static_cast<uint64_t>(b));
}
static int64_t wrapMul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) *
                              static_cast<uint64_t>(b));
}

Poly Poly::operator+(const Poly &o) const {
  Poly r = *this;
  for (const auto &[m, c] : o.terms_)
    if ((r.terms_[m] = wrapAdd(r.terms_[m], c)) == 0)
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
      if ((r.terms_[m] = wrapAdd(r.terms_[m], wrapMul(c1, c2))) == 0)
        r.terms_.erase(m);
    }
  return r;
}

std::optional<Poly> Poly::divExact(const Poly &o) const {
  if (o.terms_.size() != 1)
    return std::nullopt;
  const auto &[dm, dc] = *o.terms_.begin();
  if (dc == 0 || dc == -1) // -1: INT64_MIN / -1 overflows
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
    uint64_t a = c < 0 ? 0 - static_cast<uint64_t>(c) : c; // INT64_MIN too
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
    if (op == "Constant") {
      constantFacts(node->output(0));
      continue;
    }
    ValueFacts out;
    NodeShapes n{*node, in(0), in, freshDim};
    if (n.a)
      out.dtype = n.a->dtype;
    if (ShapeRule rule = shapeRule(op))
      rule(n, out);
    // Unknown ops leave their outputs without facts; the raiser reports them
    // if it needs them.
    // SkipSimplifiedLayerNormalization's 4th output, the residual sum, has
    // the shape of its first.
    auto sameAsFirst = [&](int i) {
      return i == 0 || (i == 3 && op == "SkipSimplifiedLayerNormalization");
    };
    for (int i = 0; i < node->output_size(); ++i)
      if (!node->output(i).empty())
        facts_[node->output(i)] = sameAsFirst(i) ? out : ValueFacts();
  }
}
