//===- RaiseAttention.cpp - Raise an exported attention block -------------===//
//
// Recognises, from the head-merge Reshape backwards:
//
//   Reshape(Transpose(MatMul(Softmax(mask(scale(MatMul(Q, K^T)))), V)))
//   Q = rope(split_heads(q_proj(x)))
//   K = repeat_kv(rope(split_heads(k_proj(x))))      or with a cache:
//   K = repeat_kv(Concat(past_key, rope(...), axis=2))
//   V = repeat_kv(split_heads(v_proj(x)))            (likewise)
//
// The mask operand (anything that does not depend on weights: the causal
// Range/Trilu/LessOrEqual/Where/GatherND subgraphs and attention_mask) is
// dropped: tfm.attention is causal by position. A mask must be there and
// have a causal part (a Trilu or a comparison of positions); a graph without
// one is bidirectional attention and is rejected. The scale may be a Mul or Div
// of the scores or Muls of Q and K^T by sqrt(scale).
//
//===----------------------------------------------------------------------===//

#include "OnnxAttrs.h"
#include "Raiser.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace kiln;
using namespace mlir;
using llvm::formatv;
using llvm::StringRef;

namespace {
/// A value in head-split layout [batch, heads, seq, head_dim] that came from
/// a token-major [batch, seq, heads * head_dim] projection.
struct HeadSplit {
  StringRef tokenMajor;
  int64_t heads = 0, headDim = 0;
};

/// rope(x) in head-split layout.
struct RopeMatch {
  StringRef input; // head-split input
  double scaling = 1.0;
};

bool permIs(const onnx::NodeProto &t, std::vector<int64_t> perm) {
  return attrInts(t, "perm") == perm;
}
} // namespace

namespace kiln {
/// Pattern helpers with access to the raiser's queries.
class AttentionMatcher {
public:
  AttentionMatcher(Raiser &r) : r(r), model(r.model), shapes(r.shapes) {}

  /// Transpose(Reshape(x, [B, S, N, D]), perm=[0,2,1,3]).
  std::optional<HeadSplit> headSplit(StringRef v) {
    const onnx::NodeProto *t = r.producerIs(v, "Transpose");
    if (!t || !permIs(*t, {0, 2, 1, 3}))
      return std::nullopt;
    const onnx::NodeProto *reshape = r.producerIs(t->input(0), "Reshape");
    if (!reshape)
      return std::nullopt;
    auto heads = shapes.staticDim(reshape->output(0), 2);
    auto dim = shapes.staticDim(reshape->output(0), 3);
    if (shapes.rank(reshape->output(0)) != 4u || !heads || !dim)
      return std::nullopt;
    return HeadSplit{reshape->input(0), *heads, *dim};
  }

  /// Softmax output guarded against fully masked rows, as torch's dynamo
  /// exporter writes it: Where(IsNaN(p), 0, p). Returns p; anything else is
  /// returned unchanged. The guard only changes rows with no unmasked key,
  /// which a causal mask never produces.
  StringRef stripNanGuard(StringRef v) {
    const onnx::NodeProto *w = r.producerIs(v, "Where");
    if (!w)
      return v;
    const onnx::NodeProto *isNan = r.producerIs(w->input(0), "IsNaN");
    auto zero = r.scalarConstant(w->input(1));
    if (!isNan || !zero || *zero != 0.0 ||
        r.skipCasts(isNan->input(0)) != r.skipCasts(w->input(2)))
      return v;
    return w->input(2);
  }

  /// K^T in head-split layout [B, H, D, T] -> K [B, H, T, D]: either
  /// Transpose(K, perm=[0,1,3,2]) or, as torch's dynamo exporter writes a
  /// batched matmul operand, Reshape(Transpose(Reshape(K, [-1, T, D]),
  /// perm=[0,2,1]), [B, H, D, T]). Returns an empty ref if neither.
  StringRef transposedKeys(StringRef kt) {
    if (const onnx::NodeProto *t = r.producerIs(kt, "Transpose"))
      return permIs(*t, {0, 1, 3, 2}) ? StringRef(t->input(0)) : StringRef();
    const onnx::NodeProto *outer = r.producerIs(kt, "Reshape");
    const onnx::NodeProto *t =
        outer ? r.producerIs(outer->input(0), "Transpose") : nullptr;
    const onnx::NodeProto *inner = t && permIs(*t, {0, 2, 1})
                                       ? r.producerIs(t->input(0), "Reshape")
                                       : nullptr;
    if (!inner || shapes.rank(inner->input(0)) != 4u ||
        shapes.rank(inner->output(0)) != 3u ||
        shapes.rank(outer->output(0)) != 4u)
      return {};
    // The flattening must keep the last two axes (T, D) and the unflattening
    // must restore the leading two: [B, H, T, D] -> [B*H, T, D] -> [B*H, D, T]
    // -> [B, H, D, T]. Compare the static sizes that are known.
    StringRef k = inner->input(0);
    for (int i = 0; i < 2; ++i) {
      auto a = shapes.staticDim(k, i),
           b = shapes.staticDim(outer->output(0), i);
      if (a && b && *a != *b)
        return {};
    }
    auto d = shapes.staticDim(k, 3),
         dOut = shapes.staticDim(outer->output(0), 2);
    if (!d || !dOut || *d != *dOut)
      return {};
    return k;
  }

  /// Reshape(Expand(Unsqueeze(x, 2), [B, KV, rep, T, D]), [B, KV*rep, T, D])
  /// or x itself (no grouping).
  StringRef stripRepeatKv(StringRef v) {
    const onnx::NodeProto *reshape = r.producerIs(v, "Reshape");
    if (!reshape)
      return v;
    const onnx::NodeProto *expand = r.producerIs(reshape->input(0), "Expand");
    if (!expand)
      return v;
    const onnx::NodeProto *unsq = r.producerIs(expand->input(0), "Unsqueeze");
    if (!unsq || shapes.rank(unsq->input(0)) != 4u)
      return v;
    return unsq->input(0);
  }

  /// Cos/Sin table feeding rope: Unsqueeze/Cast of [Mul(]Cos(emb)[, s)].
  /// Returns the Cos or Sin node and the scaling.
  std::optional<std::pair<const onnx::NodeProto *, double>> trig(StringRef v) {
    double scale = 1.0;
    while (true) {
      v = r.skipCasts(v);
      const onnx::NodeProto *n = model.producer(v);
      if (!n)
        return std::nullopt;
      if (n->op_type() == "Cos" || n->op_type() == "Sin")
        return std::make_pair(n, scale);
      if (n->op_type() == "Unsqueeze") {
        v = n->input(0);
        continue;
      }
      if (n->op_type() == "Mul") {
        for (int i = 0; i < 2; ++i)
          if (auto c = r.scalarConstant(n->input(i))) {
            scale *= *c;
            v = n->input(1 - i);
            break;
          }
        if (v != n->output(0))
          continue;
      }
      return std::nullopt;
    }
  }

  /// rotate_half(x) = Concat(Neg(Slice(x, D/2:)), Slice(x, :D/2), axis=-1).
  std::optional<StringRef> rotateHalf(StringRef v) {
    const onnx::NodeProto *cat = r.producerIs(v, "Concat");
    if (!cat || cat->input_size() != 2)
      return std::nullopt;
    const onnx::NodeProto *neg = r.producerIs(cat->input(0), "Neg");
    const onnx::NodeProto *lo = r.producerIs(cat->input(1), "Slice");
    const onnx::NodeProto *hi =
        neg ? r.producerIs(neg->input(0), "Slice") : nullptr;
    if (!hi || !lo || r.skipCasts(hi->input(0)) != r.skipCasts(lo->input(0)))
      return std::nullopt;
    StringRef x = r.skipCasts(lo->input(0));
    auto d = shapes.staticDim(x, -1);
    auto hiStart = r.constInts(hi->input(1));
    auto loStart = r.constInts(lo->input(1)), loEnd = r.constInts(lo->input(2));
    if (!d || !hiStart || !loStart || !loEnd || hiStart->size() != 1 ||
        (*hiStart)[0] != *d / 2 || (*loStart)[0] != 0 || (*loEnd)[0] != *d / 2)
      return std::nullopt;
    return x;
  }

  /// Add(Mul(x, cos), Mul(rotate_half(x), sin)), operands in any order.
  std::optional<RopeMatch> rope(StringRef v, const onnx::NodeProto *&cosNode) {
    const onnx::NodeProto *add = r.producerIs(v, "Add");
    if (!add)
      return std::nullopt;
    for (int i = 0; i < 2; ++i) {
      const onnx::NodeProto *mc = r.producerIs(add->input(i), "Mul");
      const onnx::NodeProto *ms = r.producerIs(add->input(1 - i), "Mul");
      if (!mc || !ms)
        continue;
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) {
          auto c = trig(mc->input(a)), s = trig(ms->input(b));
          if (!c || !s || c->first->op_type() != "Cos" ||
              s->first->op_type() != "Sin")
            continue;
          auto rotated = rotateHalf(ms->input(1 - b));
          StringRef x = r.skipCasts(mc->input(1 - a));
          if (!rotated || *rotated != x)
            continue;
          if (std::abs(c->second - s->second) > 1e-6 * std::abs(c->second))
            return std::nullopt;
          if (r.skipCasts(c->first->input(0)) !=
              r.skipCasts(s->first->input(0)))
            return std::nullopt;
          cosNode = c->first;
          return RopeMatch{x, c->second};
        }
    }
    return std::nullopt;
  }

  /// From Cos(emb): emb = Concat(f, f, axis=-1), f = [Transpose](MatMul(
  /// inv_freq, positions)). Reads inv_freq and checks the positions source.
  /// With `halfTable` (the [.., head_dim / 2] tables of RotaryEmbedding)
  /// the angle is f itself.
  Value invFreq(const onnx::NodeProto &cos, int64_t headDim,
                bool halfTable = false) {
    auto bad = [&](const llvm::Twine &what) {
      return r.fail(cos, llvm::Twine("expected the RoPE angle table ") +
                             (halfTable ? "f" : "Concat(f, f)") +
                             " with f = inv_freq x positions: " + what);
    };
    StringRef f = r.skipCasts(cos.input(0));
    if (!halfTable) {
      const onnx::NodeProto *cat = r.producerIs(cos.input(0), "Concat");
      if (!cat || cat->input_size() != 2 || cat->input(0) != cat->input(1))
        return bad("the angle is not Concat(f, f)");
      f = r.skipCasts(cat->input(0));
    }
    if (const onnx::NodeProto *t = r.producerIs(f, "Transpose"))
      f = r.skipCasts(t->input(0));
    const onnx::NodeProto *mm = r.producerIs(f, "MatMul");
    if (!mm)
      return bad("no MatMul of inv_freq by positions");
    const ConstTensor *freqs = nullptr;
    StringRef pos;
    for (int i = 0; i < 2 && !freqs; ++i)
      if ((freqs = r.constantThroughReshapes(mm->input(i))))
        pos = mm->input(1 - i);
    if (!freqs || freqs->numElements() != headDim / 2)
      return bad(formatv("no constant inv_freq of head_dim / 2 = {0} values",
                         headDim / 2));
    if (!positionsSource(pos))
      return bad("positions are neither position_ids nor a Range from 0");
    std::vector<float> data;
    for (int64_t i = 0; i < freqs->numElements(); ++i)
      data.push_back(static_cast<float>(freqs->asDouble(i)));
    return r.setInvFreq(*mm, data);
  }

  /// Positions are the graph's position_ids input or Range(0, seq) (plus an
  /// offset such as the past length): either way the token positions that
  /// tfm's explicit positions operand carries.
  bool positionsSource(StringRef v) {
    while (true) {
      v = r.skipCasts(v);
      if (model.graphInput(v))
        return true;
      const onnx::NodeProto *n = model.producer(v);
      if (!n)
        return false;
      const std::string &op = n->op_type();
      if (op == "Range") {
        auto start = r.constInts(n->input(0));
        return start && start->size() == 1 && (*start)[0] == 0;
      }
      if (op == "Add") {
        // Range + past_length.
        v = r.model.producer(r.skipCasts(n->input(0))) &&
                    r.model.producer(r.skipCasts(n->input(0)))->op_type() ==
                        "Range"
                ? StringRef(n->input(0))
                : StringRef(n->input(1));
        continue;
      }
      if (llvm::is_contained(
              {"Unsqueeze", "Expand", "Reshape", "Cast", "Identity", "Squeeze"},
              op)) {
        v = n->input(0);
        continue;
      }
      return false;
    }
  }

  /// True if a node satisfying `pred` computes `v` or any value it depends
  /// on.
  bool reaches(StringRef v,
               llvm::function_ref<bool(const onnx::NodeProto &)> pred) {
    llvm::SmallVector<StringRef> work{v};
    llvm::StringSet<> seen;
    while (!work.empty()) {
      StringRef x = work.pop_back_val();
      const onnx::NodeProto *n = model.producer(x);
      if (!n || !seen.insert(x).second)
        continue;
      if (pred(*n))
        return true;
      for (const std::string &in : n->input())
        if (!in.empty())
          work.push_back(in);
    }
    return false;
  }

  /// True if the mask `v` has a causal part: a Trilu, or an ordering
  /// comparison of two position ranges (key index <= query index). Only its
  /// presence is checked, not its direction.
  bool isCausalMask(StringRef v) {
    auto isRange = [](const onnx::NodeProto &n) {
      return n.op_type() == "Range";
    };
    return reaches(v, [&](const onnx::NodeProto &n) {
      if (n.op_type() == "Trilu")
        return true;
      return llvm::is_contained(
                 {"Less", "LessOrEqual", "Greater", "GreaterOrEqual"},
                 n.op_type()) &&
             n.input_size() == 2 && reaches(n.input(0), isRange) &&
             reaches(n.input(1), isRange);
    });
  }

  /// Concat(past, new, axis=2): returns (past graph input, new). A
  /// single-input Concat is an identity and is looked through.
  std::optional<std::pair<std::string, StringRef>> cacheConcat(StringRef v) {
    const onnx::NodeProto *cat = r.producerIs(v, "Concat");
    if (!cat || cat->input_size() != 2)
      return std::nullopt;
    int64_t axis = attrInt(*cat, "axis", 0);
    if (axis != 2 && axis != -2)
      return std::nullopt;
    StringRef past = r.skipCasts(cat->input(0));
    while (const onnx::NodeProto *id = r.producerIs(past, "Concat")) {
      if (id->input_size() != 1)
        break;
      past = r.skipCasts(id->input(0));
    }
    if (!model.graphInput(past))
      return std::nullopt;
    return std::make_pair(past.str(), StringRef(cat->input(1)));
  }

  /// One operand of a fused attention op (the ONNX Attention or
  /// com.microsoft::GroupQueryAttention): the token-major projection it
  /// comes from, its head count and size, and, when `roped`, the RoPE on
  /// it: a RotaryEmbedding node (ONNX or com.microsoft) or the rotate-half
  /// subgraph. `headMajor` operands are [B, heads, S, D] (split from the
  /// projection by Reshape + Transpose); others are [B, S, heads * D] with
  /// `heads` given by the op's attributes.
  struct Operand {
    StringRef tokenMajor;
    int64_t heads = 0, headDim = 0;
    Value invFreq;
    double scaling = 1.0;
    const onnx::NodeProto *ropeAt = nullptr;
  };
  std::optional<Operand> operand(const onnx::NodeProto &op, StringRef v,
                                 bool headMajor, int64_t heads, bool roped,
                                 StringRef what) {
    auto bad = [&](const llvm::Twine &msg) {
      r.fail(op, what + " " + msg);
      return std::nullopt;
    };
    Operand o;
    StringRef x = v;
    const onnx::NodeProto *rot =
        roped ? r.producerIs(v, "RotaryEmbedding") : nullptr;
    std::optional<RopeMatch> decomposed;
    const onnx::NodeProto *cosNode = nullptr;
    if (rot) {
      x = rot->input(0);
    } else if (roped && headMajor) {
      decomposed = rope(v, cosNode);
      if (!decomposed)
        return bad("is not rotated by a RotaryEmbedding or by rotate-half "
                   "RoPE (x * cos + rotate_half(x) * sin)");
      x = decomposed->input;
    } else if (roped) {
      return bad("is not rotated by a RotaryEmbedding");
    }
    if (headMajor) {
      auto hs = headSplit(x);
      if (!hs)
        return bad("is not split into heads by Reshape to [batch, seq, "
                   "heads, head_dim] and Transpose(perm=[0,2,1,3])");
      o.tokenMajor = hs->tokenMajor;
      o.heads = hs->heads;
      o.headDim = hs->headDim;
    } else {
      auto width = shapes.staticDim(x, -1);
      if (shapes.rank(x) != 3u || !width || heads <= 0 || *width % heads)
        return bad(formatv("is not [batch, seq, heads * head_dim] with {0} "
                           "heads",
                           heads));
      o.tokenMajor = x;
      o.heads = heads;
      o.headDim = *width / heads;
    }
    if (decomposed) {
      o.invFreq = invFreq(*cosNode, o.headDim);
      o.scaling = decomposed->scaling;
      o.ropeAt = cosNode;
    } else if (rot) {
      o.invFreq =
          rotaryEmbedding(*rot, headMajor ? 0 : o.heads, o.headDim, o.scaling);
      o.ropeAt = rot;
    }
    if (roped && !o.invFreq)
      return std::nullopt;
    return o;
  }

  /// The inverse frequencies of a RotaryEmbedding node (ONNX opset 23:
  /// X, cos_cache, sin_cache, position_ids; com.microsoft: input,
  /// position_ids, cos_cache, sin_cache), which must rotate the whole head
  /// in rotate-half form from [max_pos, head_dim / 2] tables.
  Value rotaryEmbedding(const onnx::NodeProto &rot, int64_t heads,
                        int64_t headDim, double &scaling) {
    bool ms = rot.domain() == "com.microsoft";
    if (attrInt(rot, "interleaved", 0))
      return r.fail(rot, "interleaved RoPE (interleaved=1) is not supported; "
                         "Kiln's RoPE is rotate-half");
    int64_t dim = attrInt(rot, "rotary_embedding_dim", 0);
    if (dim != 0 && dim != headDim)
      return r.fail(rot, formatv("partial RoPE (rotary_embedding_dim={0} of "
                                 "head_dim {1}) is not supported",
                                 dim, headDim));
    int64_t n = attrInt(rot, "num_heads", 0);
    if (heads && n && n != heads)
      return r.fail(rot, formatv("num_heads={0}, but the attention has {1} "
                                 "heads here",
                                 n, heads));
    if (ms && (attrFloat(rot, "scale", 1.0f) != 1.0f ||
               attrInt(rot, "is_packed_batching", 0)))
      return r.fail(rot, "scale != 1 and packed batching are not supported");
    StringRef pos =
        ms ? StringRef(rot.input(1))
           : (rot.input_size() > 3 ? StringRef(rot.input(3)) : StringRef());
    if (pos.empty()) {
      // Tables per token, [batch, seq, head_dim / 2], computed in the graph
      // (as torch.onnx.export writes them at opset 23): Cos and Sin of
      // inv_freq x positions.
      auto c = trig(rot.input(1)), s = trig(rot.input(2));
      if (!c || !s || c->first->op_type() != "Cos" ||
          s->first->op_type() != "Sin" ||
          r.skipCasts(c->first->input(0)) != r.skipCasts(s->first->input(0)) ||
          std::abs(c->second - s->second) > 1e-6 * std::abs(c->second))
        return r.fail(rot, "without position_ids, expected cos_cache and "
                           "sin_cache to be Cos and Sin of one angle table");
      scaling = c->second;
      return invFreq(*c->first, headDim, /*halfTable=*/true);
    }
    return r.ropeFromCaches(rot, rot.input(ms ? 2 : 1), rot.input(ms ? 3 : 2),
                            headDim, scaling);
  }

  Raiser &r;
  const OnnxModel &model;
  const ShapeInference &shapes;
};
} // namespace kiln

Value Raiser::attentionBlock(const onnx::NodeProto &reshape) {
  AttentionMatcher m(*this);
  auto bad = [&](const onnx::NodeProto &node, const llvm::Twine &what) {
    return fail(node, "expected an attention block: " + what);
  };
  const onnx::NodeProto *merge = producerIs(reshape.input(0), "Transpose");
  if (!merge || !permIs(*merge, {0, 2, 1, 3}))
    return bad(reshape, "the Reshape's input is not Transpose(perm=[0,2,1,3]) "
                        "of the attention output");
  if (const onnx::NodeProto *att = producerIs(merge->input(0), "Attention"))
    return onnxAttention(*att, &reshape);
  const onnx::NodeProto *pv = producerIs(merge->input(0), "MatMul");
  if (!pv)
    return bad(*merge, "no MatMul(probabilities, V) before the head merge");
  const onnx::NodeProto *softmax =
      producerIs(m.stripNanGuard(pv->input(0)), "Softmax");
  if (!softmax)
    return bad(*pv, "the probabilities are not a Softmax");
  int64_t axis = attrInt(*softmax, "axis", -1);
  if (axis != -1 && axis != 3)
    return bad(*softmax, "Softmax must be over the last axis");

  // Strip the mask: Add(scores, mask) or Where(cond, scores, fill).
  StringRef scores = skipCasts(softmax->input(0));
  SmallVector<StringRef> masks;
  while (const onnx::NodeProto *n = model.producer(scores)) {
    StringRef next;
    if (n->op_type() == "Add") {
      for (int i = 0; i < 2; ++i)
        if (dependsOnWeights(n->input(i)) &&
            !dependsOnWeights(n->input(1 - i))) {
          next = n->input(i);
          masks.push_back(n->input(1 - i));
        }
    } else if (n->op_type() == "Where") {
      bool d0 = dependsOnWeights(n->input(0)),
           d1 = dependsOnWeights(n->input(1)),
           d2 = dependsOnWeights(n->input(2));
      if (!d0 && d1 != d2) {
        next = d1 ? n->input(1) : n->input(2);
        masks.append({n->input(0), d1 ? n->input(2) : n->input(1)});
      }
    }
    if (next.empty())
      break;
    scores = skipCasts(next);
  }
  // tfm.attention is causal: dropping the mask is only right if it is causal.
  // Without one the graph is bidirectional attention, not a causal decoder.
  if (!llvm::any_of(masks, [&](StringRef v) { return m.isCausalMask(v); }))
    return bad(*softmax,
               formatv("{0}; tfm.attention is causal, so a graph with "
                       "bidirectional attention cannot be imported",
                       masks.empty()
                           ? "the scores have no mask (an Add or Where before "
                             "the Softmax)"
                           : "the mask has no causal part (a Trilu, or a "
                             "comparison of key and query positions)"));
  // Scale: Mul/Div of the scores by a scalar.
  double scale = 1.0;
  auto peelScale = [&](StringRef &v) {
    while (const onnx::NodeProto *n = model.producer(skipCasts(v))) {
      if (n->op_type() == "Mul") {
        bool found = false;
        for (int i = 0; i < 2 && !found; ++i)
          if (auto c = scalarConstant(n->input(i))) {
            scale *= *c;
            v = n->input(1 - i);
            found = true;
          }
        if (!found)
          return;
      } else if (n->op_type() == "Div") {
        auto c = scalarConstant(n->input(1));
        if (!c || *c == 0.0)
          return;
        scale /= *c;
        v = n->input(0);
      } else {
        return;
      }
    }
  };
  peelScale(scores);
  const onnx::NodeProto *qk = producerIs(scores, "MatMul");
  if (!qk)
    return bad(*softmax, "the scores are not (masked, scaled) MatMul(Q, K^T)");
  StringRef q4 = qk->input(0), kt = qk->input(1);
  peelScale(q4);
  peelScale(kt);
  StringRef k4 = m.transposedKeys(kt);
  if (k4.empty())
    return bad(*qk, "the keys are not transposed with perm=[0,1,3,2] (or "
                    "flattened to rank 3 and transposed with perm=[0,2,1])");
  peelScale(k4);
  StringRef kFull = k4; // K after repeat_kv: the cache Concat is below it
  k4 = m.stripRepeatKv(k4);
  StringRef v4 = m.stripRepeatKv(pv->input(1));

  // Caches: Concat(past, new) with a cache signature.
  std::string pastK, pastV;
  if (auto c = m.cacheConcat(k4)) {
    pastK = c->first;
    k4 = c->second;
  }
  if (auto c = m.cacheConcat(v4)) {
    pastV = c->first;
    v4 = c->second;
  }
  if (pastK.empty() != pastV.empty())
    return bad(*pv, "only one of K and V is concatenated with a past cache");

  const onnx::NodeProto *qCos = nullptr, *kCos = nullptr;
  auto qRope = m.rope(q4, qCos);
  auto kRope = m.rope(k4, kCos);
  if (!qRope || !kRope)
    return bad(*qk, formatv("{0} is not rotate-half RoPE "
                            "(x * cos + rotate_half(x) * sin)",
                            qRope ? "K" : "Q"));
  auto qs = m.headSplit(qRope->input), ks = m.headSplit(kRope->input),
       vs = m.headSplit(v4);
  if (!qs || !ks || !vs)
    return bad(*qk, formatv("{0} is not split into heads by Reshape to "
                            "[batch, seq, heads, head_dim] and Transpose("
                            "perm=[0,2,1,3])",
                            !qs   ? "Q"
                            : !ks ? "K"
                                  : "V"));
  if (qs->headDim != ks->headDim || ks->headDim != vs->headDim ||
      ks->heads != vs->heads)
    return bad(*qk, "Q, K and V head shapes disagree");
  if (qs->heads % ks->heads != 0)
    return bad(*qk, formatv("{0} query heads are not a multiple of {1} KV "
                            "heads",
                            qs->heads, ks->heads));
  auto merged = shapes.staticDim(reshape.output(0), -1);
  if (shapes.rank(reshape.output(0)) != 3u || !merged ||
      *merged != qs->heads * qs->headDim)
    return bad(reshape, "the head merge does not produce [batch, seq, "
                        "heads * head_dim]");

  int64_t headDim = qs->headDim;
  AttentionParts parts;
  parts.invFreq = m.invFreq(*qCos, headDim);
  if (!parts.invFreq || !m.invFreq(*kCos, headDim))
    return {};
  parts.q = activation(qs->tokenMajor);
  parts.k = activation(ks->tokenMajor);
  parts.v = activation(vs->tokenMajor);
  if (!parts.q || !parts.k || !parts.v)
    return {};
  parts.qScaling = qRope->scaling;
  parts.kScaling = kRope->scaling;
  parts.qRopeAt = qCos;
  parts.kRopeAt = kCos;
  parts.heads = qs->heads;
  parts.kvHeads = ks->heads;
  parts.headDim = headDim;
  parts.scale = scale;
  if (!pastK.empty()) {
    // The Concat outputs are the present.* graph outputs.
    auto presentOf = [&](StringRef full) -> std::string {
      const onnx::NodeProto *c = producerIs(full, "Concat");
      return c ? c->output(0) : std::string();
    };
    parts.pastK = pastK;
    parts.pastV = pastV;
    parts.presentK = presentOf(m.stripRepeatKv(kFull));
    parts.presentV = presentOf(m.stripRepeatKv(pv->input(1)));
  }
  return emitAttention(*qk, parts);
}

Value Raiser::setInvFreq(const onnx::NodeProto &at,
                         const std::vector<float> &data) {
  if (invFreq) {
    if (data != invFreqData)
      return fail(at, "layers use different RoPE frequency tables");
    return invFreq;
  }
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(&func.getBody().front());
  auto type = RankedTensorType::get({static_cast<int64_t>(data.size())},
                                    builder.getF32Type());
  invFreqData = data;
  invFreq = arith::ConstantOp::create(
      builder, loc(at),
      DenseElementsAttr::get(type, llvm::ArrayRef<float>(data)));
  return invFreq;
}

Value Raiser::emitAttention(const onnx::NodeProto &at,
                            const AttentionParts &p) {
  Location l = loc(at);
  auto ropeOp = [&](Value x, double scaling, const onnx::NodeProto &ropeAt) {
    auto op = tfm::RopeOp::create(
        builder, loc(ropeAt), x.getType(), x, positions, p.invFreq,
        builder.getI64IntegerAttr(p.headDim), builder.getF32FloatAttr(scaling));
    return op.getResult();
  };
  Value qr = ropeOp(p.q, p.qScaling, p.qRopeAt ? *p.qRopeAt : at);
  Value kr = ropeOp(p.k, p.kScaling, p.kRopeAt ? *p.kRopeAt : at);

  // One K and one V cache argument per attention block, in layer order.
  Block &body = func.getBody().front();
  auto cacheType = RankedTensorType::get(
      {ShapedType::kDynamic, p.kvHeads, ShapedType::kDynamic, p.headDim},
      elementType);
  Value kc = body.addArgument(cacheType, l);
  Value vc = body.addArgument(cacheType, l);
  Value kc1 = tfm::KvAppendOp::create(builder, l, cacheType, kr, kc, positions,
                                      /*block_table=*/Value());
  Value vc1 = tfm::KvAppendOp::create(builder, l, cacheType, p.v, vc, positions,
                                      /*block_table=*/Value());
  cacheArgs.append({kc, vc});
  cacheResults.append({kc1, vc1});
  if (!p.pastK.empty()) {
    pastInputs.append({p.pastK, p.pastV});
    presentOutputs.append({p.presentK, p.presentV});
  }
  auto width = [](Value x) {
    return cast<RankedTensorType>(x.getType()).getDimSize(2);
  };
  if (p.kvHeads * p.headDim != width(p.k) ||
      p.kvHeads * p.headDim != width(p.v))
    return fail(at, "expected an attention block: K and V projection sizes "
                    "are not kv_heads * head_dim");
  if (p.heads * p.headDim != width(p.q))
    return fail(at, "expected an attention block: the Q projection size is "
                    "not heads * head_dim");
  return tfm::AttentionOp::create(
      builder, l, p.q.getType(), qr, kc1, vc1, positions,
      /*block_table=*/Value(), builder.getI64IntegerAttr(p.heads),
      builder.getI64IntegerAttr(p.kvHeads),
      builder.getI64IntegerAttr(p.headDim),
      builder.getF32FloatAttr(static_cast<float>(p.scale)));
}

//===----------------------------------------------------------------------===//
// The fused forms: the ONNX Attention (opset 23) and onnxruntime's
// GroupQueryAttention.
//===----------------------------------------------------------------------===//

/// The RoPE of q and k (the inverse frequencies are q's: the layers share
/// one table).
static void setRope(Raiser::AttentionParts &parts,
                    const AttentionMatcher::Operand &q,
                    const AttentionMatcher::Operand &k) {
  parts.invFreq = q.invFreq;
  parts.qScaling = q.scaling;
  parts.kScaling = k.scaling;
  parts.qRopeAt = q.ropeAt;
  parts.kRopeAt = k.ropeAt;
}

static StringRef inputOf(const onnx::NodeProto &node, int i) {
  return i < node.input_size() ? StringRef(node.input(i)) : StringRef();
}

Value Raiser::onnxAttention(const onnx::NodeProto &node,
                            const onnx::NodeProto *headMerge) {
  AttentionMatcher m(*this);
  if (!node.domain().empty() && node.domain() != "ai.onnx")
    return fail(node, formatv("{0}::Attention is not supported (the ONNX "
                              "Attention of opset 23 is)",
                              node.domain()));
  if (attrFloat(node, "softcap", 0.0f) != 0.0f)
    return fail(node, "attention logit soft-capping (softcap) is not "
                      "supported");
  if (node.output_size() > 3 && !node.output(3).empty())
    return fail(node, "the qk_matmul_output output is not supported");
  bool headMajor = headMerge != nullptr;
  if (shapes.rank(node.input(0)) != (headMajor ? 4u : 3u))
    return fail(node, headMajor ? "expected 4-D [batch, heads, seq, "
                                  "head_dim] operands before the head merge"
                                : "expected 3-D [batch, seq, heads * "
                                  "head_dim] operands, or 4-D ones whose "
                                  "output is merged by Transpose and Reshape");

  // The cache: Concat(past, new) before the op, or its past_key/past_value
  // inputs and present_key/present_value outputs.
  StringRef kIn = inputOf(node, 1), vIn = inputOf(node, 2);
  std::string pastK, pastV, presentK, presentV;
  if (headMajor) {
    kIn = m.stripRepeatKv(kIn);
    vIn = m.stripRepeatKv(vIn);
    if (auto c = m.cacheConcat(kIn)) {
      pastK = c->first;
      presentK = producerIs(kIn, "Concat")->output(0);
      kIn = c->second;
    }
    if (auto c = m.cacheConcat(vIn)) {
      pastV = c->first;
      presentV = producerIs(vIn, "Concat")->output(0);
      vIn = c->second;
    }
  }
  StringRef pastKIn = inputOf(node, 4), pastVIn = inputOf(node, 5);
  if (!pastKIn.empty() || !pastVIn.empty()) {
    if (!pastK.empty() || !pastV.empty())
      return fail(node, "past keys both concatenated before the op and "
                        "passed as past_key");
    if (!model.graphInput(skipCasts(pastKIn)) ||
        !model.graphInput(skipCasts(pastVIn)) || node.output_size() < 3 ||
        node.output(1).empty() || node.output(2).empty())
      return fail(node, "past_key and past_value must be graph inputs, with "
                        "present_key and present_value outputs");
    if (attrInt(node, "is_causal", 0))
      return fail(node, "is_causal=1 with past_key: the ONNX Attention "
                        "aligns that mask to the upper left, not to the "
                        "cache's end; export the causal mask as attn_mask");
    pastK = skipCasts(pastKIn).str();
    pastV = skipCasts(pastVIn).str();
    presentK = node.output(1);
    presentV = node.output(2);
  }
  if (pastK.empty() != pastV.empty())
    return fail(node, "only one of K and V has a past cache");

  StringRef mask = inputOf(node, 3);
  if (!attrInt(node, "is_causal", 0)) {
    if (mask.empty() || dependsOnWeights(mask) || !m.isCausalMask(mask))
      return fail(node, "neither is_causal=1 nor a causal attn_mask (a Trilu, "
                        "or a comparison of key and query positions); "
                        "tfm.attention is causal, so a graph with "
                        "bidirectional attention cannot be imported");
  } else if (!mask.empty() && dependsOnWeights(mask)) {
    return fail(node, "attn_mask depends on the weights");
  }

  auto q = m.operand(node, inputOf(node, 0), headMajor,
                     attrInt(node, "q_num_heads", 0), true, "Q");
  auto k = q ? m.operand(node, kIn, headMajor, attrInt(node, "kv_num_heads", 0),
                         true, "K")
             : std::nullopt;
  auto v = k ? m.operand(node, vIn, headMajor, attrInt(node, "kv_num_heads", 0),
                         false, "V")
             : std::nullopt;
  if (!q || !k || !v)
    return {};
  if (q->headDim != k->headDim || k->headDim != v->headDim ||
      k->heads != v->heads || q->heads % k->heads)
    return fail(node, formatv("Q, K and V head shapes disagree ({0}x{1}, "
                              "{2}x{3}, {4}x{5})",
                              q->heads, q->headDim, k->heads, k->headDim,
                              v->heads, v->headDim));
  if (headMerge) {
    auto merged = shapes.staticDim(headMerge->output(0), -1);
    if (shapes.rank(headMerge->output(0)) != 3u || !merged ||
        *merged != q->heads * q->headDim)
      return fail(*headMerge, "expected an attention block: the head merge "
                              "does not produce [batch, seq, heads * "
                              "head_dim]");
  }
  AttentionParts parts;
  parts.q = activation(q->tokenMajor);
  parts.k = activation(k->tokenMajor);
  parts.v = activation(v->tokenMajor);
  if (!parts.q || !parts.k || !parts.v)
    return {};
  setRope(parts, *q, *k);
  parts.heads = q->heads;
  parts.kvHeads = k->heads;
  parts.headDim = q->headDim;
  parts.scale = hasAttr(node, "scale")
                    ? attrFloat(node, "scale", 0.0f)
                    : 1.0 / std::sqrt(static_cast<double>(q->headDim));
  parts.pastK = pastK;
  parts.pastV = pastV;
  parts.presentK = presentK;
  parts.presentV = presentV;
  return emitAttention(node, parts);
}

Value Raiser::groupQueryAttention(const onnx::NodeProto &node) {
  AttentionMatcher m(*this);
  if (node.domain() != "com.microsoft")
    return fail(node, "GroupQueryAttention is onnxruntime's (domain "
                      "com.microsoft)");
  int64_t heads = attrInt(node, "num_heads", 0);
  int64_t kvHeads = attrInt(node, "kv_num_heads", 0);
  if (heads <= 0 || kvHeads <= 0 || heads % kvHeads)
    return fail(node, formatv("num_heads={0} is not a positive multiple of "
                              "kv_num_heads={1}",
                              heads, kvHeads));
  int64_t window = attrInt(node, "local_window_size", -1);
  if (window != -1)
    return fail(node, formatv("sliding-window attention (local_window_size="
                              "{0}) is not supported",
                              window));
  if (attrFloat(node, "softcap", 0.0f) != 0.0f)
    return fail(node, "attention logit soft-capping (softcap) is not "
                      "supported");
  if (attrInt(node, "rotary_interleaved", 0))
    return fail(node, "interleaved RoPE (rotary_interleaved=1) is not "
                      "supported; Kiln's RoPE is rotate-half");
  if (attrInt(node, "smooth_softmax", 0))
    return fail(node, "smooth_softmax is not supported");
  if (attrInt(node, "qk_output", 0))
    return fail(node, "the qk output is not supported");
  if (!inputOf(node, 10).empty() || !inputOf(node, 11).empty())
    return fail(node, "attention_bias and head_sink inputs are not "
                      "supported");
  bool rotary = attrInt(node, "do_rotary", 0) != 0;
  bool packed = inputOf(node, 1).empty() && inputOf(node, 2).empty();
  using Operand = AttentionMatcher::Operand;
  std::optional<Operand> q, k, v;
  SmallVector<Value> qkv;
  if (packed) {
    // One projection computes Q, K and V: split its weight at compile time.
    if (!rotary)
      return fail(node, "packed QKV without do_rotary=1 (RoPE outside the op "
                        "on packed QKV) is not supported");
    auto width = shapes.staticDim(inputOf(node, 0), -1);
    if (!width || *width % (heads + 2 * kvHeads))
      return fail(node, formatv("packed QKV: the query input is not [batch, "
                                "seq, (num_heads + 2 * kv_num_heads) * "
                                "head_dim] with {0} + 2 * {1} heads",
                                heads, kvHeads));
    int64_t d = *width / (heads + 2 * kvHeads);
    q = Operand{StringRef(), heads, d};
    k = Operand{StringRef(), kvHeads, d};
    v = Operand{StringRef(), kvHeads, d};
    qkv = splitProjection(node, inputOf(node, 0),
                          {heads * d, kvHeads * d, kvHeads * d});
    if (qkv.empty())
      return {};
  } else {
    if (inputOf(node, 1).empty() || inputOf(node, 2).empty())
      return fail(node, "expected key and value inputs, or neither (packed "
                        "QKV)");
    q = m.operand(node, inputOf(node, 0), false, heads, !rotary, "query");
    k = q ? m.operand(node, inputOf(node, 1), false, kvHeads, !rotary, "key")
          : std::nullopt;
    v = k ? m.operand(node, inputOf(node, 2), false, kvHeads, false, "value")
          : std::nullopt;
    if (!q || !k || !v)
      return {};
  }
  if (q->headDim != k->headDim || k->headDim != v->headDim)
    return fail(node, "query, key and value head sizes disagree");
  if (rotary) {
    if (inputOf(node, 7).empty() || inputOf(node, 8).empty())
      return fail(node, "do_rotary=1 without cos_cache and sin_cache inputs");
    q->invFreq = ropeFromCaches(node, inputOf(node, 7), inputOf(node, 8),
                                q->headDim, q->scaling);
    if (!q->invFreq)
      return {};
    k->scaling = q->scaling;
  }

  AttentionParts parts;
  StringRef pastK = inputOf(node, 3), pastV = inputOf(node, 4);
  if (!pastK.empty() || !pastV.empty()) {
    if (!model.graphInput(skipCasts(pastK)) ||
        !model.graphInput(skipCasts(pastV)) || node.output_size() < 3 ||
        node.output(1).empty() || node.output(2).empty())
      return fail(node, "past_key and past_value must be graph inputs, with "
                        "present_key and present_value outputs");
    parts.pastK = skipCasts(pastK).str();
    parts.pastV = skipCasts(pastV).str();
    parts.presentK = node.output(1);
    parts.presentV = node.output(2);
  }
  if (packed) {
    parts.q = qkv[0];
    parts.k = qkv[1];
    parts.v = qkv[2];
  } else {
    parts.q = activation(q->tokenMajor);
    parts.k = activation(k->tokenMajor);
    parts.v = activation(v->tokenMajor);
  }
  if (!parts.q || !parts.k || !parts.v)
    return {};
  setRope(parts, *q, *k);
  parts.heads = heads;
  parts.kvHeads = kvHeads;
  parts.headDim = q->headDim;
  float scale = attrFloat(node, "scale", 0.0f);
  parts.scale =
      scale != 0.0f ? scale : 1.0 / std::sqrt(static_cast<double>(q->headDim));
  return emitAttention(node, parts);
}
