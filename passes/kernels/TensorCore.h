//===- TensorCore.h - What the tensor-core projections share ----*- C++ -*-===//
//
// matmul_mma (MatmulMma.cpp, mma.sync) and matmul_wgmma (MatmulWgmma.cpp,
// wgmma) compute the same projection out[b, s, n] += x[b, s, k] * w[n, k] of
// many rows, with the same members and epilogues: a fused RMSNorm's sums of
// squares (from the x tiles they stage), which they publish for the block
// and for the kernels after them, and each output element stored through the
// elementwise epilogue. They differ in how the accumulators are held.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_KERNELS_TENSORCORE_H
#define KILN_PASSES_KERNELS_TENSORCORE_H

#include "passes/kernels/Gemv.h"

namespace kiln::kernels::gemv {

class TensorCoreRecipe : public GemvRecipe {
public:
  TensorCoreRecipe() : GemvRecipe(/*inOut=*/false) {}

  bool fusesRowNorm() const override { return true; }
  bool supportsColumnOffsets() const override { return true; }

  /// The projection, with more than `minRows` rows (batch * seq), K a
  /// multiple of `kMultiple`, x and w of one 16-bit float type and x
  /// contiguous.
  static std::optional<Projection>
  matchTensorCore(Operation *op, int64_t minRows, int64_t kMultiple) {
    std::optional<Projection> p = matchProjection(op, /*inOut=*/false);
    if (!p || p->batch * p->seq <= minRows || p->k % kMultiple ||
        p->inputType != p->weightType ||
        !(p->weightType.isF16() || p->weightType.isBF16()))
      return std::nullopt;
    auto x = cast<MemRefType>(
        cast<linalg::GenericOp>(op).getDpsInputs()[0].getType());
    if (!x.getLayout().isIdentity())
      return std::nullopt;
    return p;
  }

  /// An epilogue reading at most two column ranges (SwiGLU's gate and up).
  bool acceptsEpilogue(Operation *op, Operation *consumer) const override {
    if (!GemvRecipe::acceptsEpilogue(op, consumer))
      return false;
    Value out = cast<linalg::GenericOp>(op).getDpsInits()[0];
    return llvm::count_if(
               cast<linalg::GenericOp>(consumer).getDpsInputs(),
               [&](Value v) { return columnOffset(v, out).has_value(); }) <= 2;
  }

  /// The rows' sums of squares of a fused RMSNorm: each thread's partial
  /// sums (`partial`, a vector) of row tid / threadsPerRow are added across
  /// the row's threads (shuffles); the first stores the sum for the block
  /// (`rowSq`, workgroup memory, by row of the tile) and, in the blocks of
  /// the first column tile (`blockN` 0), for the kernels that read it
  /// (`squares`, [batch, seq]); then a barrier.
  static void publishRowSquares(OpBuilder &b, Location loc, KernelBuilder &kb,
                                Value partial, int64_t threadsPerRow, Value tid,
                                Value rowSq, Value squares, Value m0,
                                int64_t rows, int64_t seq, Value blockN) {
    auto idx = [&](int64_t v) { return kb.index(v); };
    Value sum =
        butterfly(b, loc,
                  vector::ReductionOp::create(
                      b, loc, vector::CombiningKind::ADD, partial),
                  static_cast<int32_t>(threadsPerRow), [&](Value x, Value y) {
                    return arith::AddFOp::create(b, loc, x, y).getResult();
                  });
    Value row = arith::DivUIOp::create(b, loc, tid, idx(threadsPerRow));
    Value first = arith::CmpIOp::create(
        b, loc, arith::CmpIPredicate::eq,
        arith::RemUIOp::create(b, loc, tid, idx(threadsPerRow)), idx(0));
    auto put = scf::IfOp::create(b, loc, first, /*withElseRegion=*/false);
    {
      OpBuilder::InsertionGuard inner(b);
      b.setInsertionPointToStart(&put.getThenRegion().front());
      memref::StoreOp::create(b, loc, sum, rowSq, ValueRange{row});
      Value r = arith::AddIOp::create(b, loc, m0, row);
      Value publish = arith::AndIOp::create(
          b, loc,
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, r,
                                idx(rows)),
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, blockN,
                                idx(0)));
      auto store = scf::IfOp::create(b, loc, publish, false);
      b.setInsertionPointToStart(&store.getThenRegion().front());
      memref::StoreOp::create(
          b, loc, sum, squares,
          ValueRange{arith::DivUIOp::create(b, loc, r, idx(seq)),
                     arith::RemUIOp::create(b, loc, r, idx(seq))});
    }
    gpu::BarrierOp::create(b, loc);
  }

  /// Stores output element (row r, column n) of the projection `op` through
  /// its epilogue, guarded when the tile may pass the last row or column:
  /// accOf(i) is the accumulator of column range i (built inside the
  /// guard), added to `init` (a fused fill) or to the output's element.
  static void storeElement(OpBuilder &b, Location loc, KernelBuilder &kb,
                           Operation *op, Operation *epilogue, IRMapping &map,
                           Value init, Value out, ArrayRef<int64_t> offsets,
                           function_ref<Value(int64_t)> accOf, Value r, Value n,
                           int64_t rows, int64_t width, int64_t seq,
                           bool rowsWhole, bool colsWhole,
                           const llvm::SmallDenseMap<Value, Value> &known) {
    OpBuilder::InsertionGuard inner(b);
    auto idx = [&](int64_t v) { return kb.index(v); };
    auto ult = [&](Value a, int64_t c) -> Value {
      return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, a,
                                   idx(c));
    };
    Value inRange;
    if (!rowsWhole)
      inRange = ult(r, rows);
    if (!colsWhole) {
      Value ok = ult(n, width);
      inRange = inRange ? arith::AndIOp::create(b, loc, inRange, ok) : ok;
    }
    if (inRange) {
      auto ifOp = scf::IfOp::create(b, loc, inRange, false);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    }
    SmallVector<Value, 3> at{arith::DivUIOp::create(b, loc, r, idx(seq)),
                             arith::RemUIOp::create(b, loc, r, idx(seq)), n};
    SmallVector<Value> values;
    for (auto [i, off] : llvm::enumerate(offsets)) {
      Value acc = accOf(static_cast<int64_t>(i));
      Value old = init;
      if (!old) {
        SmallVector<Value, 3> from = at;
        if (off)
          from[2] = arith::AddIOp::create(b, loc, n, idx(off));
        old = memref::LoadOp::create(b, loc, out, from);
      }
      values.push_back(arith::AddFOp::create(b, loc, old, acc));
    }
    storeResult(b, loc, op, epilogue, map, values, offsets, at, known);
  }
};

} // namespace kiln::kernels::gemv

#endif // KILN_PASSES_KERNELS_TENSORCORE_H
