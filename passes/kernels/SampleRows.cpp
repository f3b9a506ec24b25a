//===- SampleRows.cpp - The sample_rows kernel ----------------------------===//
//
// The sample_rows recipe of the kernel library (KernelLibrary.h): tfm.sample
// on the device, a block of 1024 threads per logits row.
//
//===----------------------------------------------------------------------===//

#include "dialects/Tfm/TfmOps.h"
#include "passes/kernels/KernelBuilder.h"
#include "passes/kernels/KernelLibrary.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"

#include <functional>
#include <limits>

namespace kiln::kernels {
using namespace mlir;

namespace {

/// sample_rows: the next token of each row of tfm.sample's logits, a block
/// of 1024 threads per row (batch x seq blocks). Greedy rows (temperature
/// <= 0 or top_k = 1) take one pass: the argmax, ties to the lowest id, NaN
/// never chosen (as argmax_rows). Sampled rows:
///
///  1. m = the row's largest logit (one pass, block reduction);
///  2. the thresholds, as order-preserving 32-bit keys of the logit
///     (negative floats bit-flipped, others sign-flipped): top-k's k-th
///     largest key and top-p's boundary are each a radix select, four passes
///     of 8 bits from the top: every element whose key matches the digits
///     chosen so far adds 1 (top-k) or its weight exp((x - m) / T) (top-p,
///     among those top-k keeps) to a workgroup histogram of its next digit
///     (one copy per lane, 257 floats apart, so that the lanes of a warp
///     never meet on one address nor, for one bin, on one bank), the copies
///     are summed, and warp 0 scans the 256 bins from
///     the top (8 per lane, a shuffle prefix sum) for the bin where the
///     running total reaches what is left of the target (k, or top_p times
///     the first pass's total); min-p's is the key of m + T ln(min_p);
///  3. a Gumbel-max draw over the kept elements (key >= the largest
///     threshold): the argmax of (x - m) / T - ln(-ln U), U from a hash of
///     (key, seq index, token id), is a draw from their softmax.
///
/// Elements are loaded kUnroll at a time per thread (coalesced), as
/// argmax_rows does.
class SampleRows final : public KernelRecipe {
public:
  static constexpr int64_t kThreads = 1024;
  static constexpr int64_t kWarps = kThreads / 32;
  static constexpr int64_t kUnroll = 16;
  static constexpr int64_t kCopies = 32;
  static constexpr int64_t kStride = 257; // 256 bins + 1 against bank conflicts

  StringRef name() const override { return "sample_rows"; }

  bool matches(Operation *op) const override {
    auto sample = dyn_cast<tfm::SampleOp>(op);
    if (!sample || !sample.hasPureBufferSemantics())
      return false;
    auto logits = cast<MemRefType>(sample.getLogits().getType());
    return logits.hasStaticShape() && logits.getLayout().isIdentity() &&
           logits.getDimSize(2) < (int64_t(1) << 24) &&
           cast<MemRefType>(sample.getParams().getType()).hasStaticShape();
  }

  FailureOr<LaunchShape> build(OpBuilder &b, Operation *op, IRMapping &map,
                               gpu::GPUFuncOp kernel, Value init,
                               ArrayRef<Operation *> fused) const override {
    auto sample = cast<tfm::SampleOp>(op);
    auto logitsType = cast<MemRefType>(sample.getLogits().getType());
    const int64_t batch = logitsType.getDimSize(0);
    const int64_t seq = logitsType.getDimSize(1);
    const int64_t vocab = logitsType.getDimSize(2);
    Location loc = op->getLoc();
    Value logits = map.lookup(sample.getLogits());
    Value params = map.lookup(sample.getParams());
    Value seeds = map.lookup(sample.getSeeds());
    Value out = map.lookup(sample.getInit());
    Type f32 = b.getF32Type(), i32 = b.getI32Type(), i64 = b.getI64Type();
    KernelBuilder kb(b, loc, kernel);
    auto idx = [&](int64_t v) { return kb.index(v); };
    auto cf = [&](OpBuilder &nb, double v) -> Value {
      return arith::ConstantOp::create(nb, loc, nb.getF32FloatAttr(v));
    };
    auto ci = [&](OpBuilder &nb, int64_t v) -> Value {
      return arith::ConstantOp::create(nb, loc, nb.getI32IntegerAttr(v));
    };
    const double inf = std::numeric_limits<double>::infinity();

    Value tid = kb.threadIdX();
    Value rowId = kb.blockIdX();
    Value bi = arith::DivUIOp::create(b, loc, rowId, idx(seq));
    Value si = arith::RemUIOp::create(b, loc, rowId, idx(seq));
    Value lane = arith::RemUIOp::create(b, loc, tid, idx(32));
    Value warp = arith::DivUIOp::create(b, loc, tid, idx(32));
    Value laneIsFirst =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lane, idx(0));
    auto param = [&](int64_t c) -> Value {
      return memref::LoadOp::create(b, loc, params, ValueRange{bi, idx(c)});
    };
    Value temperature = param(0), topK = param(1), topP = param(2),
          minP = param(3);
    Value seed = memref::LoadOp::create(b, loc, seeds, ValueRange{bi});

    Value smemReduce = kb.workgroupBuffer({kWarps}, f32);
    Value hist = kb.workgroupBuffer({kCopies * kStride}, f32);
    Value bins = kb.workgroupBuffer({256}, f32);
    Value chosen = kb.workgroupBuffer({2}, f32);

    // The element as f32, NaN as -inf.
    auto value = [&](OpBuilder &nb, Location l, Value x) -> Value {
      if (x.getType() != f32)
        x = arith::ExtFOp::create(nb, l, f32, x);
      Value nan = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::UNO, x, x);
      return arith::SelectOp::create(nb, l, nan, cf(nb, -inf), x);
    };
    // Order-preserving unsigned key of a (non-NaN) f32.
    auto keyOf = [&](OpBuilder &nb, Location l, Value x) -> Value {
      Value bits = arith::BitcastOp::create(nb, l, i32, x);
      Value sign = arith::ShRSIOp::create(nb, l, bits, ci(nb, 31));
      Value flip = arith::OrIOp::create(
          nb, l, sign, ci(nb, static_cast<int32_t>(0x80000000u)));
      return arith::XOrIOp::create(nb, l, bits, flip);
    };
    auto uge = [&](OpBuilder &nb, Location l, Value a, Value c) -> Value {
      return arith::CmpIOp::create(nb, l, arith::CmpIPredicate::uge, a, c);
    };

    // body(k, x, acc) for this thread's elements k = tid, tid + 1024, ...,
    // kUnroll loads issued before any is used.
    using Body = std::function<SmallVector<Value>(OpBuilder &, Location, Value,
                                                  Value, ValueRange)>;
    auto scanRow = [&](ValueRange inits, const Body &body) {
      const int64_t step = kThreads * kUnroll;
      const int64_t full = vocab / step * step;
      SmallVector<Value> acc(inits.begin(), inits.end());
      if (full > 0) {
        auto main = scf::ForOp::create(
            b, loc, tid, idx(full), idx(step), acc,
            [&](OpBuilder &nb, Location l, Value k, ValueRange args) {
              SmallVector<Value> ks, xs;
              for (int64_t u = 0; u < kUnroll; ++u) {
                ks.push_back(
                    u ? arith::AddIOp::create(nb, l, k, idx(u * kThreads))
                            .getResult()
                      : k);
                xs.push_back(memref::LoadOp::create(nb, l, logits,
                                                    ValueRange{bi, si, ks[u]}));
              }
              SmallVector<Value> a(args.begin(), args.end());
              for (int64_t u = 0; u < kUnroll; ++u)
                a = body(nb, l, ks[u], value(nb, l, xs[u]), a);
              scf::YieldOp::create(nb, l, a);
            });
        acc.assign(main.getResults().begin(), main.getResults().end());
      }
      Value tailStart =
          full ? arith::AddIOp::create(b, loc, tid, idx(full)).getResult()
               : tid;
      auto tail = scf::ForOp::create(
          b, loc, tailStart, idx(vocab), idx(kThreads), acc,
          [&](OpBuilder &nb, Location l, Value k, ValueRange args) {
            Value x =
                memref::LoadOp::create(nb, l, logits, ValueRange{bi, si, k});
            scf::YieldOp::create(nb, l, body(nb, l, k, value(nb, l, x), args));
          });
      return SmallVector<Value>(tail.getResults().begin(),
                                tail.getResults().end());
    };
    // A value of every thread combined over the block; every thread gets it.
    auto blockReduce = [&](Value v,
                           function_ref<Value(Value, Value)> combine) -> Value {
      v = butterfly(b, loc, v, 32, combine);
      auto write =
          scf::IfOp::create(b, loc, laneIsFirst, /*withElseRegion=*/false);
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(&write.getThenRegion().front());
        memref::StoreOp::create(b, loc, v, smemReduce, ValueRange{warp});
      }
      gpu::BarrierOp::create(b, loc);
      Value total =
          memref::LoadOp::create(b, loc, smemReduce, ValueRange{idx(0)});
      for (int64_t w = 1; w < kWarps; ++w)
        total = combine(total, memref::LoadOp::create(b, loc, smemReduce,
                                                      ValueRange{idx(w)}));
      gpu::BarrierOp::create(b, loc);
      return total;
    };

    Value greedy = arith::OrIOp::create(
        b, loc,
        arith::CmpFOp::create(b, loc, arith::CmpFPredicate::ULE, temperature,
                              cf(b, 0.0)),
        arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, topK,
                              cf(b, 1.0)));

    // Sampled rows: (max logit, 1 / T, threshold key); greedy rows keep
    // every element (key 0) and score by the logit itself.
    auto prep = scf::IfOp::create(b, loc, TypeRange{f32, f32, i32}, greedy,
                                  /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&prep.getThenRegion().front());
      scf::YieldOp::create(b, loc,
                           ValueRange{cf(b, 0.0), cf(b, 1.0), ci(b, 0)});
      b.setInsertionPointToStart(&prep.getElseRegion().front());
      Value localMax =
          scanRow(ValueRange{cf(b, -inf)}, [&](OpBuilder &nb, Location l, Value,
                                               Value x, ValueRange acc) {
            return SmallVector<Value>{
                arith::MaximumFOp::create(nb, l, acc[0], x)};
          })[0];
      Value m = blockReduce(localMax, [&](Value x, Value y) -> Value {
        return arith::MaximumFOp::create(b, loc, x, y);
      });
      Value invT = arith::DivFOp::create(b, loc, cf(b, 1.0), temperature);

      // Radix select: the key of the element where, counting from the
      // largest, the running sum of `weight` over elements with key >=
      // `floor` reaches `target` (or `fraction` of the whole sum).
      auto radixSelect = [&](bool mass, Value target, Value fraction,
                             Value floor) -> Value {
        Value prefix = ci(b, 0), prefixMask = ci(b, 0), remaining = target;
        for (int pass = 0; pass < 4; ++pass) {
          const int shift = 24 - 8 * pass;
          // Clear the histograms.
          scf::ForOp::create(
              b, loc, tid, idx(kCopies * kStride), idx(kThreads), ValueRange{},
              [&](OpBuilder &nb, Location l, Value k, ValueRange) {
                memref::StoreOp::create(nb, l, cf(nb, 0.0), hist,
                                        ValueRange{k});
                scf::YieldOp::create(nb, l);
              });
          gpu::BarrierOp::create(b, loc);
          // Lane l adds to copy l: the lanes of a warp never meet on one
          // address, and (257 = 1 mod 32) one bin of the 32 copies lies in
          // 32 different banks.
          Value base = arith::MulIOp::create(b, loc, lane, idx(kStride));
          scanRow(ValueRange{}, [&](OpBuilder &nb, Location l, Value, Value x,
                                    ValueRange) {
            Value key = keyOf(nb, l, x);
            Value match = arith::AndIOp::create(
                nb, l,
                arith::CmpIOp::create(
                    nb, l, arith::CmpIPredicate::eq,
                    arith::AndIOp::create(nb, l, key, prefixMask), prefix),
                uge(nb, l, key, floor));
            auto add = scf::IfOp::create(nb, l, match, false);
            OpBuilder ib =
                OpBuilder::atBlockBegin(&add.getThenRegion().front());
            Value digit = arith::AndIOp::create(
                ib, l, arith::ShRUIOp::create(ib, l, key, ci(ib, shift)),
                ci(ib, 255));
            Value w = cf(ib, 1.0);
            if (mass)
              w = math::ExpOp::create(
                  ib, l,
                  arith::MulFOp::create(
                      ib, l, arith::SubFOp::create(ib, l, x, m), invT));
            Value at = arith::AddIOp::create(
                ib, l, base,
                arith::IndexCastUIOp::create(ib, l, ib.getIndexType(), digit));
            memref::AtomicRMWOp::create(ib, l, arith::AtomicRMWKind::addf, w,
                                        hist, ValueRange{at});
            return SmallVector<Value>{};
          });
          gpu::BarrierOp::create(b, loc);
          // Bin totals over the copies.
          Value binThread = arith::CmpIOp::create(
              b, loc, arith::CmpIPredicate::ult, tid, idx(256));
          auto sum =
              scf::IfOp::create(b, loc, binThread, /*withElseRegion=*/false);
          {
            OpBuilder::InsertionGuard g2(b);
            b.setInsertionPointToStart(&sum.getThenRegion().front());
            Value total = cf(b, 0.0);
            for (int64_t c = 0; c < kCopies; ++c)
              total = arith::AddFOp::create(
                  b, loc, total,
                  memref::LoadOp::create(b, loc, hist,
                                         ValueRange{arith::AddIOp::create(
                                             b, loc, tid, idx(c * kStride))}));
            memref::StoreOp::create(b, loc, total, bins, ValueRange{tid});
          }
          gpu::BarrierOp::create(b, loc);
          // Warp 0 finds the bin: lane l holds bins 255 - 8 l down to
          // 248 - 8 l.
          Value warp0 = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                              warp, idx(0));
          auto scan = scf::IfOp::create(b, loc, warp0, false);
          {
            OpBuilder::InsertionGuard g2(b);
            b.setInsertionPointToStart(&scan.getThenRegion().front());
            Value hi = arith::SubIOp::create(
                b, loc, idx(255), arith::MulIOp::create(b, loc, lane, idx(8)));
            SmallVector<Value> v;
            Value own = cf(b, 0.0);
            for (int64_t j = 0; j < 8; ++j) {
              v.push_back(memref::LoadOp::create(
                  b, loc, bins,
                  ValueRange{arith::SubIOp::create(b, loc, hi, idx(j))}));
              own = arith::AddFOp::create(b, loc, own, v.back());
            }
            Value lane32 = arith::IndexCastUIOp::create(b, loc, i32, lane);
            Value incl = own;
            for (int32_t d = 1; d < 32; d *= 2) {
              Value up = gpu::ShuffleOp::create(b, loc, incl, d, 32,
                                                gpu::ShuffleMode::UP)
                             .getShuffleResult();
              Value take = arith::CmpIOp::create(
                  b, loc, arith::CmpIPredicate::sge, lane32, ci(b, d));
              incl = arith::SelectOp::create(
                  b, loc, take, arith::AddFOp::create(b, loc, incl, up), incl);
            }
            Value total = gpu::ShuffleOp::create(b, loc, incl, 31, 32,
                                                 gpu::ShuffleMode::IDX)
                              .getShuffleResult();
            Value tgt = remaining;
            if (pass == 0 && fraction)
              tgt = arith::MulFOp::create(b, loc, fraction, total);
            tgt = arith::MinimumFOp::create(b, loc, tgt, total);
            Value before = arith::SubFOp::create(b, loc, incl, own);
            Value found = arith::AndIOp::create(
                b, loc,
                arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLT, before,
                                      tgt),
                arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGE, incl,
                                      tgt));
            // Within the lane's 8 bins, from the top.
            Value acc = before, digit = ci(b, -1), left = cf(b, -inf);
            Value done =
                arith::ConstantOp::create(b, loc, b.getBoolAttr(false));
            Value hi32 = arith::IndexCastUIOp::create(b, loc, i32, hi);
            for (int64_t j = 0; j < 8; ++j) {
              Value next = arith::AddFOp::create(b, loc, acc, v[j]);
              Value here = arith::AndIOp::create(
                  b, loc, found,
                  arith::AndIOp::create(
                      b, loc,
                      arith::XOrIOp::create(b, loc, done,
                                            arith::ConstantOp::create(
                                                b, loc, b.getBoolAttr(true))),
                      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGE,
                                            next, tgt)));
              digit = arith::SelectOp::create(
                  b, loc, here, arith::SubIOp::create(b, loc, hi32, ci(b, j)),
                  digit);
              left = arith::SelectOp::create(
                  b, loc, here, arith::SubFOp::create(b, loc, tgt, acc), left);
              done = arith::OrIOp::create(b, loc, done, here);
              acc = next;
            }
            digit = butterfly(b, loc, digit, 32, [&](Value x, Value y) {
              return arith::MaxSIOp::create(b, loc, x, y).getResult();
            });
            left = butterfly(b, loc, left, 32, [&](Value x, Value y) {
              return arith::MaximumFOp::create(b, loc, x, y).getResult();
            });
            // Nothing found (weights that underflowed to 0): the lowest
            // digit, which keeps the whole bin range below.
            Value none = arith::CmpIOp::create(
                b, loc, arith::CmpIPredicate::slt, digit, ci(b, 0));
            digit = arith::SelectOp::create(b, loc, none, ci(b, 0), digit);
            left = arith::SelectOp::create(b, loc, none, tgt, left);
            auto store = scf::IfOp::create(b, loc, laneIsFirst, false);
            b.setInsertionPointToStart(&store.getThenRegion().front());
            memref::StoreOp::create(b, loc,
                                    arith::UIToFPOp::create(b, loc, f32, digit),
                                    chosen, ValueRange{idx(0)});
            memref::StoreOp::create(b, loc, left, chosen, ValueRange{idx(1)});
          }
          gpu::BarrierOp::create(b, loc);
          Value digit = arith::FPToUIOp::create(
              b, loc, i32,
              memref::LoadOp::create(b, loc, chosen, ValueRange{idx(0)}));
          remaining =
              memref::LoadOp::create(b, loc, chosen, ValueRange{idx(1)});
          prefix = arith::OrIOp::create(
              b, loc, prefix,
              arith::ShLIOp::create(b, loc, digit, ci(b, shift)));
          prefixMask = arith::OrIOp::create(
              b, loc, prefixMask, ci(b, static_cast<int32_t>(255u << shift)));
          gpu::BarrierOp::create(b, loc);
        }
        return prefix;
      };

      auto maxKey = [&](Value x, Value y) -> Value {
        return arith::MaxUIOp::create(b, loc, x, y);
      };
      // top-k (0 < k < vocab).
      Value useK = arith::AndIOp::create(
          b, loc,
          arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, topK,
                                cf(b, 0.0)),
          arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLT, topK,
                                cf(b, static_cast<double>(vocab))));
      auto kIf = scf::IfOp::create(b, loc, TypeRange{i32}, useK, true);
      {
        OpBuilder::InsertionGuard g2(b);
        b.setInsertionPointToStart(&kIf.getThenRegion().front());
        scf::YieldOp::create(b, loc,
                             radixSelect(false, topK, Value(), ci(b, 0)));
        b.setInsertionPointToStart(&kIf.getElseRegion().front());
        scf::YieldOp::create(b, loc, ci(b, 0));
      }
      Value floorK = kIf.getResult(0);
      // top-p (< 1) over what top-k keeps.
      Value useP = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLT,
                                         topP, cf(b, 1.0));
      auto pIf = scf::IfOp::create(b, loc, TypeRange{i32}, useP, true);
      {
        OpBuilder::InsertionGuard g2(b);
        b.setInsertionPointToStart(&pIf.getThenRegion().front());
        scf::YieldOp::create(b, loc,
                             radixSelect(true, cf(b, 0.0), topP, floorK));
        b.setInsertionPointToStart(&pIf.getElseRegion().front());
        scf::YieldOp::create(b, loc, floorK);
      }
      Value floor = maxKey(floorK, pIf.getResult(0));
      // min-p (> 0): p >= min_p p_max, i.e. x >= m + T ln(min_p).
      Value useMin = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT,
                                           minP, cf(b, 0.0));
      Value minX = arith::AddFOp::create(
          b, loc, m,
          arith::MulFOp::create(b, loc, temperature,
                                math::LogOp::create(b, loc, minP)));
      Value minKey = arith::SelectOp::create(b, loc, useMin,
                                             keyOf(b, loc, minX), ci(b, 0));
      floor = maxKey(floor, minKey);
      scf::YieldOp::create(b, loc, ValueRange{m, invT, floor});
    }
    Value m = prep.getResult(0), invT = prep.getResult(1),
          floor = prep.getResult(2);

    // The draw: the argmax of the kept elements' scores, ties to the lowest
    // id.
    Value seedLo = arith::TruncIOp::create(b, loc, i32, seed);
    Value seedHi = arith::TruncIOp::create(
        b, loc, i32,
        arith::ShRUIOp::create(
            b, loc, seed,
            arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(32))));
    Value si32 = arith::IndexCastUIOp::create(b, loc, i32, si);
    Value stream = arith::XOrIOp::create(
        b, loc, seedHi,
        arith::MulIOp::create(b, loc, si32,
                              ci(b, static_cast<int32_t>(0x85EBCA6Bu))));
    auto fmix = [&](OpBuilder &nb, Location l, Value h) -> Value {
      h = arith::XOrIOp::create(nb, l, h,
                                arith::ShRUIOp::create(nb, l, h, ci(nb, 16)));
      h = arith::MulIOp::create(nb, l, h,
                                ci(nb, static_cast<int32_t>(0x85EBCA6Bu)));
      h = arith::XOrIOp::create(nb, l, h,
                                arith::ShRUIOp::create(nb, l, h, ci(nb, 13)));
      h = arith::MulIOp::create(nb, l, h,
                                ci(nb, static_cast<int32_t>(0xC2B2AE35u)));
      return arith::XOrIOp::create(
          nb, l, h, arith::ShRUIOp::create(nb, l, h, ci(nb, 16)));
    };
    Value noIndex = ci(b, std::numeric_limits<int32_t>::max());
    // Greedy rows: the argmax of the logits. Sampled rows: of the kept
    // elements' perturbed scores (the noise computed for kept ones only).
    auto pick = scf::IfOp::create(b, loc, TypeRange{f32, i32}, greedy,
                                  /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&pick.getThenRegion().front());
      SmallVector<Value> top = scanRow(
          ValueRange{cf(b, -inf), noIndex},
          [&](OpBuilder &nb, Location l, Value k, Value x, ValueRange acc) {
            Value gt = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT,
                                             x, acc[0]);
            Value k32 = arith::IndexCastUIOp::create(nb, l, i32, k);
            return SmallVector<Value>{
                arith::SelectOp::create(nb, l, gt, x, acc[0]),
                arith::SelectOp::create(nb, l, gt, k32, acc[1])};
          });
      scf::YieldOp::create(b, loc, top);
      b.setInsertionPointToStart(&pick.getElseRegion().front());
      SmallVector<Value> drawn = scanRow(
          ValueRange{cf(b, -inf), noIndex},
          [&](OpBuilder &nb, Location l, Value k, Value x, ValueRange acc) {
            Value k32 = arith::IndexCastUIOp::create(nb, l, i32, k);
            Value kept = uge(nb, l, keyOf(nb, l, x), floor);
            auto ifKept = scf::IfOp::create(nb, l, TypeRange{f32}, kept,
                                            /*withElseRegion=*/true);
            OpBuilder tb =
                OpBuilder::atBlockBegin(&ifKept.getThenRegion().front());
            Value h = arith::AddIOp::create(
                tb, l,
                arith::MulIOp::create(
                    tb, l, k32, ci(tb, static_cast<int32_t>(0x9E3779B1u))),
                seedLo);
            h = fmix(tb, l, arith::XOrIOp::create(tb, l, h, stream));
            h = fmix(tb, l, arith::XOrIOp::create(tb, l, h, seedLo));
            Value u = arith::MulFOp::create(
                tb, l,
                arith::AddFOp::create(
                    tb, l,
                    arith::UIToFPOp::create(
                        tb, l, f32,
                        arith::ShRUIOp::create(tb, l, h, ci(tb, 8))),
                    cf(tb, 0.5)),
                cf(tb, 1.0 / 16777216.0));
            Value gumbel = arith::NegFOp::create(
                tb, l,
                math::LogOp::create(tb, l,
                                    arith::NegFOp::create(
                                        tb, l, math::LogOp::create(tb, l, u))));
            scf::YieldOp::create(
                tb, l,
                ValueRange{arith::AddFOp::create(
                    tb, l,
                    arith::MulFOp::create(
                        tb, l, arith::SubFOp::create(tb, l, x, m), invT),
                    gumbel)});
            OpBuilder eb =
                OpBuilder::atBlockBegin(&ifKept.getElseRegion().front());
            scf::YieldOp::create(eb, l, ValueRange{cf(eb, -inf)});
            Value score = ifKept.getResult(0);
            Value gt = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT,
                                             score, acc[0]);
            return SmallVector<Value>{
                arith::SelectOp::create(nb, l, gt, score, acc[0]),
                arith::SelectOp::create(nb, l, gt, k32, acc[1])};
          });
      scf::YieldOp::create(b, loc, drawn);
    }
    OpBuilder::InsertionGuard guard(b);
    auto [bv, bx] =
        kb.blockArgmax(pick.getResult(0), pick.getResult(1), kWarps);
    // No finite score at all (every logit NaN or -inf): token 0, as
    // argmax's initial index.
    Value none =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, bx, noIndex);
    bx = arith::SelectOp::create(b, loc, none, ci(b, 0), bx);
    memref::StoreOp::create(b, loc, arith::ExtUIOp::create(b, loc, i64, bx),
                            out, ValueRange{bi, si});

    LaunchShape launch;
    launch.grid[0] = batch * seq;
    launch.block[0] = kThreads;
    return launch;
  }
};

} // namespace

const KernelRecipe &sampleRows() {
  static const SampleRows recipe;
  return recipe;
}

} // namespace kiln::kernels
