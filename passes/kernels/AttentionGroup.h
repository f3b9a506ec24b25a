//===- AttentionGroup.h - The ops attention_decode computes -----*- C++ -*-===//
//
// The group of bufferized ops that one lowered tfm.attention is (its seven
// steps, marked `kiln.region` {op = "tfm.attention", id, step}; see
// kRegionAttr in dialects/Kiln/KilnDialect.h) and, for one sequence and one new
// token, what feeds it that the kernel can compute too (RoPE of q and k, the
// KV-cache appends): found from the IR, never re-derived from loops.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_KERNELS_ATTENTIONGROUP_H
#define KILN_PASSES_KERNELS_ATTENTIONGROUP_H

#include "dialects/Kiln/KilnDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/IRMapping.h"
#include "passes/kernels/KernelLibrary.h"
#include "llvm/ADT/SmallVector.h"

#include <array>
#include <optional>

namespace kiln::kernels::attention {

using namespace mlir;

/// What feeds a decode attention and its kernel can compute instead (one
/// sequence, one new token): RoPE of q and of the new k (tfm.rope's
/// generics, tagged kRegionAttr {op = "tfm.rope"}) and the appends of the
/// new k and v to the caches (tfm.kv_append: an scf.if around a linalg.copy
/// into the cache row at the position).
struct Prologue {
  linalg::GenericOp ropeQ, ropeK;
  Operation *appendK = nullptr, *appendV = nullptr;
  Value qSrc, kSrc, vSrc; // [1, 1, heads * D], [1, 1, kv_heads * D] x 2
  Value freqs;            // [D / 2] f32
  double scaling = 1.0;
};

/// A paged KV cache (steps 7 and 8 gather K and V from the pools through
/// the block table into the [batch, kv_heads, max_seq, head_dim] buffers
/// steps 0 and 5 read): a kernel reads the pools through the table instead.
struct Paging {
  linalg::GenericOp gatherK, gatherV;
  Value poolK, poolV;    // [num_blocks, kv_heads, block_size, head_dim]
  Value table;           // [batch, max_blocks] i32
  int64_t blockSize = 0; // max_seq = max_blocks * block_size
};

/// The steps of one lowered tfm.attention and its parameters.
struct Group {
  std::array<linalg::GenericOp, 7> steps;
  SmallVector<Operation *> fills;
  int64_t heads = 0, kvHeads = 0, headDim = 0;
  double scale = 1.0;
  int64_t batch = 0, seq = 0, maxSeq = 0;
  std::optional<Prologue> prologue;
  std::optional<Paging> paging;
};

/// The kernel's buffer of the keys (or `values`): the cache, or (paged) the
/// pool. `map` maps the group's buffers to the kernel's.
Value kvBuffer(const Group &g, IRMapping &map, bool values);
/// The indices in kvBuffer (keys and values alike) of element `d` of KV
/// head `h` at slot `t` of sequence `b`: [b, h, t, d], or (paged)
/// [table[b, t / block_size], h, t % block_size, d], a negative block id
/// read as block 0.
SmallVector<Value, 4> kvIndices(OpBuilder &b, Location loc, const Group &g,
                                IRMapping &map, Value bi, Value h, Value t,
                                Value d);

/// The group that `op` (step 0) leads, complete and bufferized, with its
/// prologue when there is one; nothing otherwise.
std::optional<Group> groupOf(Operation *op);

/// The buffers the steps of `g` write for each other (scores, row maxima and
/// sums, probabilities, unnormalised output): allocations that no op outside
/// the group uses. A kernel computing the whole group keeps them in
/// registers (KernelRecipe::scratch).
SmallVector<Value> scratchOf(const Group &g);

/// What the attention kernels share: the group's steps after the first, and
/// their fills, are members; the buffers between the steps are scratch.
class AttentionRecipe : public KernelRecipe {
public:
  SmallVector<Value> scratch(Operation *op) const override {
    std::optional<Group> g = groupOf(op);
    return g ? scratchOf(*g) : SmallVector<Value>();
  }
  SmallVector<Operation *> members(Operation *op) const override {
    std::optional<Group> g = groupOf(op);
    if (!g)
      return {};
    SmallVector<Operation *> ops(g->fills.begin(), g->fills.end());
    for (linalg::GenericOp s : llvm::drop_begin(g->steps))
      ops.push_back(s);
    if (g->paging)
      ops.append({g->paging->gatherK, g->paging->gatherV});
    return ops;
  }
};

} // namespace kiln::kernels::attention

#endif // KILN_PASSES_KERNELS_ATTENTIONGROUP_H
