//===- AttentionGroup.cpp - The ops attention_decode computes -------------===//

#include "passes/kernels/AttentionGroup.h"
#include "dialects/Kiln/KilnDialect.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

#include <functional>

namespace kiln::kernels::attention {
namespace {

DictionaryAttr regionOf(Operation *op) {
  auto d = op->getAttrOfType<DictionaryAttr>(kRegionAttr);
  if (!d)
    return {};
  auto name = d.getAs<StringAttr>("op");
  return name && name.getValue() == "tfm.attention" ? d : DictionaryAttr();
}

int64_t dictInt(DictionaryAttr d, StringRef key) {
  auto a = d.getAs<IntegerAttr>(key);
  return a ? a.getInt() : -1;
}

/// The RoPE generic writing all of `buf` ([1, 1, F]) with head_dim `d`
/// from `positions`: its source ([1, 1, F], read in its body) and inverse
/// frequencies ([d / 2] f32), or nothing.
struct Rope {
  linalg::GenericOp op;
  Value src, freqs;
  double scaling = 1.0;
};
std::optional<Rope> ropeWriting(Value buf, int64_t d, Value positions) {
  for (Operation *user : buf.getUsers()) {
    auto g = dyn_cast<linalg::GenericOp>(user);
    auto region = g ? g->getAttrOfType<DictionaryAttr>(kRegionAttr) : nullptr;
    auto name = region ? region.getAs<StringAttr>("op") : nullptr;
    if (!name || name.getValue() != "tfm.rope" || g.getNumDpsInits() != 1 ||
        g.getDpsInits()[0] != buf || g.getNumDpsInputs() != 1 ||
        g.getDpsInputs()[0] != positions || dictInt(region, "head_dim") != d)
      continue;
    Rope r;
    r.op = g;
    if (auto scaling = region.getAs<FloatAttr>("attention_scaling"))
      r.scaling = scaling.getValueAsDouble();
    bool ok = true;
    g.getRegion().walk([&](memref::LoadOp load) {
      Value m = load.getMemRef();
      if (g->isAncestor(m.getParentRegion()->getParentOp()))
        return; // a view made inside the body
      auto t = cast<MemRefType>(m.getType());
      Value &slot = t.getRank() == 3 ? r.src : r.freqs;
      if ((slot && slot != m) || (t.getRank() != 3 && t.getRank() != 1))
        ok = false;
      slot = m;
    });
    auto ft = r.freqs ? dyn_cast<MemRefType>(r.freqs.getType()) : nullptr;
    if (ok && r.src && ft && ft.getElementType().isF32() &&
        ft.getShape() == ArrayRef<int64_t>{d / 2} &&
        cast<MemRefType>(r.src.getType()).getShape() ==
            cast<MemRefType>(buf.getType()).getShape())
      return r;
  }
  return std::nullopt;
}

/// The [1, 1, F] buffer that `v` ([1, G, 1, D], an expand_shape of a rank-1
/// subview of it at offset 0) views, or null.
Value rowSource(Value v) {
  auto expand = v.getDefiningOp<memref::ExpandShapeOp>();
  auto sv = expand ? expand.getSrc().getDefiningOp<memref::SubViewOp>()
                   : memref::SubViewOp();
  if (!sv || !sv.hasUnitStride() || sv.getType().getRank() != 1 ||
      llvm::any_of(sv.getStaticOffsets(), [](int64_t o) { return o != 0; }))
    return {};
  auto src = cast<MemRefType>(sv.getSource().getType());
  if (src.getRank() != 3 || src.getDimSize(0) != 1 || src.getDimSize(1) != 1 ||
      src.getDimSize(2) != sv.getType().getDimSize(0))
    return {};
  return sv.getSource();
}

/// Whether `rows` and `at` are tfm.kv_append's guarded write of one row:
/// rows = select(c, 1, 0) and at = select(c, position, 0).
bool isGuardedRow(Value rows, Value at) {
  auto r = rows.getDefiningOp<arith::SelectOp>();
  auto o = at.getDefiningOp<arith::SelectOp>();
  return r && o && r.getCondition() == o.getCondition() &&
         isConstantIntValue(r.getTrueValue(), 1) &&
         isConstantIntValue(r.getFalseValue(), 0) &&
         isConstantIntValue(o.getFalseValue(), 0);
}

/// The copy before `before` that writes one new row into `cache` ([1, G, T,
/// D]) at the position: tfm.kv_append of one token, whose 1 x 1 scf.forall
/// the canonicalizer has folded away, is a copy of a [1, G, rows, D] view of
/// the row into the cache at [0, 0, at, 0] (isGuardedRow), or (`paged`) into
/// the pool at [block, 0, at, 0] with block = select(c, id, 0) on the same
/// condition. Returns it and the [1, 1, G * D] buffer it copies from.
std::pair<Operation *, Value> appendInto(Value cache, Operation *before,
                                         bool paged) {
  auto ct = cast<MemRefType>(cache.getType());
  SmallVector<int64_t> rowSizes{1, ct.getDimSize(1), ShapedType::kDynamic,
                                ct.getDimSize(3)};
  for (Operation *o = before->getPrevNode(); o; o = o->getPrevNode()) {
    auto copy = dyn_cast<linalg::CopyOp>(o);
    if (!copy)
      continue;
    auto dst = copy.getOutputs()[0].getDefiningOp<memref::SubViewOp>();
    auto src = copy.getInputs()[0].getDefiningOp<memref::SubViewOp>();
    if (!dst || !src || dst.getSource() != cache ||
        dst.getStaticSizes() != ArrayRef<int64_t>(rowSizes) ||
        src.getStaticSizes() != ArrayRef<int64_t>(rowSizes) ||
        !dst.hasUnitStride() || !src.hasUnitStride() ||
        (paged ? !ShapedType::isDynamic(dst.getStaticOffsets()[0])
               : dst.getStaticOffsets()[0] != 0) ||
        dst.getStaticOffsets()[1] != 0 ||
        !ShapedType::isDynamic(dst.getStaticOffsets()[2]) ||
        dst.getStaticOffsets()[3] != 0 ||
        llvm::any_of(src.getStaticOffsets(), [](int64_t x) { return x != 0; }))
      continue;
    Value rows = dst.getSizes()[0];
    Value at = dst.getOffsets()[paged ? 1 : 0];
    if (src.getSizes()[0] != rows || !isGuardedRow(rows, at))
      continue;
    if (paged) {
      auto block = dst.getOffsets()[0].getDefiningOp<arith::SelectOp>();
      if (!block || block.getCondition() !=
                        at.getDefiningOp<arith::SelectOp>().getCondition())
        continue;
    }
    if (Value row = rowSource(src.getSource()))
      return {copy, row};
  }
  return {nullptr, Value()};
}

/// Whether every use of `buf`, through view ops, is in one of `readers`
/// (or frees it).
bool readOnlyBy(Value buf, ArrayRef<Operation *> readers) {
  return llvm::all_of(buf.getUsers(), [&](Operation *u) {
    if (isa<memref::DeallocOp>(u) ||
        llvm::any_of(readers, [&](Operation *r) { return r->isAncestor(u); }))
      return true;
    return isa<memref::ExpandShapeOp, memref::SubViewOp>(u) &&
           readOnlyBy(u->getResult(0), readers);
  });
}

/// The prologue of group `g` (led by `step0`), when everything between its
/// first op and `step0` is its members, views, allocations or reads.
std::optional<Prologue> prologueOf(Group &g, Operation *step0) {
  if (g.batch != 1 || g.seq != 1)
    return std::nullopt;
  auto step = cast<linalg::GenericOp>(step0);
  Value positions = g.steps[1].getDpsInputs()[1];
  auto qExpand = step.getDpsInputs()[0].getDefiningOp<memref::ExpandShapeOp>();
  if (!qExpand)
    return std::nullopt;
  Value qBuf = qExpand.getSrc();
  std::optional<Rope> q = ropeWriting(qBuf, g.headDim, positions);
  // Paged: the appends write the pools the gathers read.
  const bool paged = g.paging.has_value();
  auto [appendK, kBuf] = appendInto(
      paged ? g.paging->poolK : step.getDpsInputs()[1], step0, paged);
  auto [appendV, vSrc] = appendInto(
      paged ? g.paging->poolV : g.steps[5].getDpsInputs()[1], step0, paged);
  if (!q || !appendK || !appendV)
    return std::nullopt;
  std::optional<Rope> k = ropeWriting(kBuf, g.headDim, positions);
  if (!k || k->freqs != q->freqs || k->scaling != q->scaling)
    return std::nullopt;
  Prologue p;
  p.ropeQ = q->op;
  p.ropeK = k->op;
  p.appendK = appendK;
  p.appendV = appendV;
  p.qSrc = q->src;
  p.kSrc = k->src;
  p.vSrc = vSrc;
  p.freqs = q->freqs;
  p.scaling = q->scaling;
  // The roped q and k are read by nothing else (directly or through views).
  auto onlyBy = [](Value buf, ArrayRef<Operation *> readers) {
    return readOnlyBy(buf, readers);
  };
  SmallVector<Operation *> qReaders{p.ropeQ};
  for (linalg::GenericOp s : g.steps)
    qReaders.push_back(s);
  if (!onlyBy(qBuf, qReaders) || !onlyBy(kBuf, {p.ropeK, p.appendK}))
    return std::nullopt;
  // Nothing else with effects between the first of them and step 0.
  SmallVector<Operation *> members{p.ropeQ, p.ropeK, p.appendK, p.appendV};
  Operation *first = p.ropeQ;
  for (Operation *m : members) {
    if (m->getBlock() != step0->getBlock() || !m->isBeforeInBlock(step0))
      return std::nullopt;
    if (m->isBeforeInBlock(first))
      first = m;
  }
  if (paged)
    members.append({g.paging->gatherK, g.paging->gatherV});
  for (Operation *o = first; o != step0; o = o->getNextNode()) {
    if (llvm::is_contained(members, o) || isa<memref::AllocOp>(o) ||
        llvm::is_contained(g.fills, o))
      continue;
    // What bufferization leaves of the append's insert: a no-op.
    if (auto mc = dyn_cast<memref::CopyOp>(o);
        mc && mc.getSource() == mc.getTarget())
      continue;
    auto effects = dyn_cast<MemoryEffectOpInterface>(o);
    if (o->getNumRegions() == 0 && effects &&
        !effects.hasEffect<MemoryEffects::Write>())
      continue;
    return std::nullopt;
  }
  return p;
}

/// The paging of `g` from its gathers (steps 7 and 8): each writes all of
/// the buffer step 0 (K) or step 5 (V) reads, loading only from its pool
/// [num_blocks, kv_heads, block_size, head_dim] and the block table
/// [batch, max_blocks] i32, with max_seq = max_blocks * block_size.
std::optional<Paging> pagingOf(std::array<linalg::GenericOp, 2> gathers,
                               const Group &g) {
  Paging p;
  p.gatherK = gathers[0];
  p.gatherV = gathers[1];
  if (!p.gatherK || !p.gatherV || p.gatherK.getNumDpsInputs() != 0 ||
      p.gatherV.getNumDpsInputs() != 0 ||
      p.gatherK.getDpsInits()[0] !=
          linalg::GenericOp(g.steps[0]).getDpsInputs()[1] ||
      p.gatherV.getDpsInits()[0] !=
          linalg::GenericOp(g.steps[5]).getDpsInputs()[1])
    return std::nullopt;
  for (auto [gather, pool] :
       {std::pair{p.gatherK, &p.poolK}, std::pair{p.gatherV, &p.poolV}}) {
    bool ok = true;
    gather.getRegion().walk([&](memref::LoadOp load) {
      Value m = load.getMemRef();
      auto t = cast<MemRefType>(m.getType());
      Value &slot = t.getRank() == 4 ? *pool : p.table;
      if ((slot && slot != m) || (t.getRank() != 4 && t.getRank() != 2))
        ok = false;
      slot = m;
    });
    if (!ok || !*pool)
      return std::nullopt;
  }
  auto pool = cast<MemRefType>(p.poolK.getType());
  auto table = p.table ? dyn_cast<MemRefType>(p.table.getType()) : nullptr;
  if (!table || !table.getElementType().isInteger(32) ||
      !table.hasStaticShape() || pool != p.poolV.getType() ||
      !pool.hasStaticShape() || !pool.getLayout().isIdentity() ||
      pool.getDimSize(1) != g.kvHeads || pool.getDimSize(3) != g.headDim ||
      table.getDimSize(0) != g.batch ||
      table.getDimSize(1) * pool.getDimSize(2) != g.maxSeq)
    return std::nullopt;
  p.blockSize = pool.getDimSize(2);
  return p;
}

} // namespace

/// The group that `op` (step 0) leads, complete and bufferized, or nothing.
std::optional<Group> groupOf(Operation *op) {
  DictionaryAttr d = regionOf(op);
  if (!d || dictInt(d, "step") != 0 || !isa<linalg::GenericOp>(op))
    return std::nullopt;
  int64_t id = dictInt(d, "id");
  Group g;
  std::array<linalg::GenericOp, 2> gathers;
  for (Operation &o : *op->getBlock()) {
    DictionaryAttr od = regionOf(&o);
    if (!od || dictInt(od, "id") != id)
      continue;
    if (isa<linalg::FillOp>(o)) {
      g.fills.push_back(&o);
      continue;
    }
    int64_t step = dictInt(od, "step");
    auto generic = dyn_cast<linalg::GenericOp>(o);
    if (!generic || step < 0 || step > 8 || !generic.hasPureBufferSemantics())
      return std::nullopt;
    if (step >= 7) {
      linalg::GenericOp &gather = step == 7 ? gathers[0] : gathers[1];
      if (gather)
        return std::nullopt;
      gather = generic;
      continue;
    }
    if (g.steps[step])
      return std::nullopt;
    g.steps[step] = generic;
  }
  if (llvm::any_of(g.steps, [](linalg::GenericOp s) { return !s; }))
    return std::nullopt;
  if (g.steps[0].getNumDpsInputs() != 2 || g.steps[1].getNumDpsInputs() != 2 ||
      g.steps[5].getNumDpsInputs() != 2 || g.steps[6].getNumDpsInits() != 1)
    return std::nullopt;
  g.heads = dictInt(d, "num_heads");
  g.kvHeads = dictInt(d, "num_kv_heads");
  g.headDim = dictInt(d, "head_dim");
  auto scale = d.getAs<FloatAttr>("scale");
  if (!scale || g.heads <= 0 || g.kvHeads <= 0 || g.headDim <= 0 ||
      g.heads % g.kvHeads)
    return std::nullopt;
  g.scale = scale.getValueAsDouble();
  auto q = dyn_cast<MemRefType>(g.steps[0].getDpsInputs()[0].getType());
  auto k = dyn_cast<MemRefType>(g.steps[0].getDpsInputs()[1].getType());
  auto v = dyn_cast<MemRefType>(g.steps[5].getDpsInputs()[1].getType());
  auto pos = dyn_cast<MemRefType>(g.steps[1].getDpsInputs()[1].getType());
  auto out = dyn_cast<MemRefType>(g.steps[6].getDpsInits()[0].getType());
  if (!q || !k || !v || !pos || !out || q.getRank() != 4 || k.getRank() != 4 ||
      v != k || out.getRank() != 4 || pos.getRank() != 2 ||
      !q.hasStaticShape() || !k.hasStaticShape() || !out.hasStaticShape() ||
      !pos.getElementType().isInteger(64))
    return std::nullopt;
  g.batch = q.getDimSize(0);
  g.seq = q.getDimSize(1);
  g.maxSeq = k.getDimSize(2);
  if (q.getShape() != ArrayRef<int64_t>{g.batch, g.seq, g.heads, g.headDim} ||
      out.getShape() != q.getShape() ||
      k.getShape() !=
          ArrayRef<int64_t>{g.batch, g.kvHeads, g.maxSeq, g.headDim} ||
      pos.getShape() != ArrayRef<int64_t>{g.batch, g.seq})
    return std::nullopt;
  if (gathers[0] || gathers[1]) {
    std::optional<Paging> paging = pagingOf(gathers, g);
    if (!paging)
      return std::nullopt;
    g.paging = std::move(paging);
  }
  g.prologue = prologueOf(g, op); // after the paging: its appends use it
  return g;
}

Value kvBuffer(const Group &g, IRMapping &map, bool values) {
  if (g.paging)
    return map.lookup(values ? g.paging->poolV : g.paging->poolK);
  return map.lookup(
      linalg::GenericOp(g.steps[values ? 5 : 0]).getDpsInputs()[1]);
}

SmallVector<Value, 4> kvIndices(OpBuilder &b, Location loc, const Group &g,
                                IRMapping &map, Value bi, Value h, Value t,
                                Value d) {
  if (!g.paging)
    return {bi, h, t, d};
  const Paging &p = *g.paging;
  Value bs = arith::ConstantIndexOp::create(b, loc, p.blockSize);
  Value block = memref::LoadOp::create(
      b, loc, map.lookup(p.table),
      ValueRange{bi, arith::DivUIOp::create(b, loc, t, bs)});
  block = arith::MaxSIOp::create(
      b, loc, block, arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(0)));
  Value row = arith::IndexCastOp::create(b, loc, b.getIndexType(), block);
  return {row, h, arith::RemUIOp::create(b, loc, t, bs), d};
}

SmallVector<Value> scratchOf(const Group &g) {
  SmallVector<Operation *> group(g.fills.begin(), g.fills.end());
  for (linalg::GenericOp s : g.steps)
    group.push_back(s);
  SmallVector<linalg::GenericOp> writers(g.steps.begin(),
                                         std::prev(g.steps.end()));
  if (g.paging) {
    group.append({g.paging->gatherK, g.paging->gatherV});
    writers.append({g.paging->gatherK, g.paging->gatherV});
  }
  // Every use of `buf`, through views, is in the group (or frees it).
  std::function<bool(Value)> internal = [&](Value buf) {
    return llvm::all_of(buf.getUsers(), [&](Operation *u) {
      if (isa<memref::DeallocOp>(u) || llvm::is_contained(group, u))
        return true;
      return isa<ViewLikeOpInterface>(u) && u->getNumResults() == 1 &&
             internal(u->getResult(0));
    });
  };
  SmallVector<Value> out;
  for (linalg::GenericOp s : writers) {
    Value v = s.getDpsInits()[0];
    while (auto view = v.getDefiningOp<ViewLikeOpInterface>())
      v = view.getViewSource();
    if (v.getDefiningOp<memref::AllocOp>() && !llvm::is_contained(out, v) &&
        internal(v))
      out.push_back(v);
  }
  return out;
}

} // namespace kiln::kernels::attention
