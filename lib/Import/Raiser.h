//===- Raiser.h - Recognise Llama op patterns in an ONNX graph --*- C++ -*-===//
//
// The raiser walks the graph backwards from the logits output. Each ONNX value
// on the residual stream is raised on demand (and memoized) by matching the
// op pattern that produced it: embedding Gather, residual Add, RMSNorm,
// projection MatMul, SwiGLU, or the attention block ending in a head-merge
// Reshape. Shape bookkeeping (Shape/Gather/Concat chains), causal-mask
// subgraphs and position ranges are never raised: they are consumed by the
// patterns that use them. Whatever matches no pattern is an error naming the
// node.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_LIB_IMPORT_RAISER_H
#define KILN_LIB_IMPORT_RAISER_H

#include "OnnxModel.h"
#include "ShapeInference.h"

#include "dialects/Tfm/TfmOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"

#include <memory>
#include <optional>
#include <string>

namespace kiln {

/// The MLIR element type of an ONNX float data type (null if unsupported).
mlir::Type elementTypeFor(mlir::MLIRContext *ctx, int32_t dtype);

class Raiser {
public:
  Raiser(const OnnxModel &model, const ShapeInference &shapes,
         mlir::ModuleOp module);
  /// Builds `func.func @forward` in the module; returns an error naming the
  /// first node that could not be raised.
  llvm::Error run();

  //===--------------------------------------------------------------------===//
  // Graph queries shared by the pattern files.
  //===--------------------------------------------------------------------===//

  /// Follows float-to-float Casts and Identity nodes upwards.
  llvm::StringRef skipCasts(llvm::StringRef value) const;
  /// The producer of `value` (after skipCasts) if its op type is `opType`.
  const onnx::NodeProto *producerIs(llvm::StringRef value,
                                    llvm::StringRef opType) const;
  /// Value of a one-element float or integer constant (through Cast,
  /// Identity, Reshape, Unsqueeze, Expand, Squeeze).
  std::optional<double> scalarConstant(llvm::StringRef value) const;
  /// A constant tensor reached through ops that do not change its data
  /// (Cast, Identity, Reshape, Unsqueeze, Squeeze, Expand).
  const ConstTensor *constantThroughReshapes(llvm::StringRef value) const;
  /// True if `value` depends on any weight (a float initializer of rank >= 2):
  /// attention masks and position tables do not, scores do.
  bool dependsOnWeights(llvm::StringRef value);
  /// Known small integer values of `value`, all constant.
  std::optional<std::vector<int64_t>> constInts(llvm::StringRef value) const;

  /// Records `message` (prefixed by the node) as the import error; returns
  /// a null Value for convenience.
  mlir::Value fail(const onnx::NodeProto &node, const llvm::Twine &message);
  mlir::Value fail(const llvm::Twine &message);
  bool failed() const { return error_.has_value(); }

  //===--------------------------------------------------------------------===//
  // Raising.
  //===--------------------------------------------------------------------===//

  /// Raises a `[batch, seq, features]` activation.
  mlir::Value activation(llvm::StringRef value);
  /// `ml_program.global_load_const` of the initializer `name` (which `user`
  /// consumes), creating the global on first use.
  mlir::Value weight(llvm::StringRef name, const onnx::NodeProto &user);
  /// The load of a constant global `symbol` of `type` holding `bytes`
  /// (referenced in place when aligned to `align`, else copied), or of
  /// `blob`; created on first use.
  mlir::Value constantWeight(llvm::StringRef symbol,
                             mlir::RankedTensorType type,
                             llvm::ArrayRef<char> bytes, size_t align,
                             const onnx::NodeProto &user);
  mlir::Value constantWeight(llvm::StringRef symbol,
                             mlir::RankedTensorType type,
                             mlir::AsmResourceBlob blob,
                             const onnx::NodeProto &user);
  mlir::Value attentionBlock(const onnx::NodeProto &reshape);

  /// What every spelling of an attention block raises to: RoPE on q and k,
  /// one K and one V cache argument appended to, tfm.attention.
  struct AttentionParts {
    mlir::Value q, k, v; // token-major projections, before RoPE
    mlir::Value invFreq; // f32 [head_dim / 2]
    double qScaling = 1.0, kScaling = 1.0;
    const onnx::NodeProto *qRopeAt = nullptr, *kRopeAt = nullptr;
    int64_t heads = 0, kvHeads = 0, headDim = 0;
    double scale = 1.0;
    /// Graph input and output names of the layer's KV cache (empty without
    /// a cache signature).
    std::string pastK, pastV, presentK, presentV;
  };
  mlir::Value emitAttention(const onnx::NodeProto &at,
                            const AttentionParts &parts);
  /// The RoPE inverse frequencies, shared by every layer: created on first
  /// use, compared afterwards.
  mlir::Value setInvFreq(const onnx::NodeProto &at,
                         const std::vector<float> &data);
  /// inv_freq of the RoPE tables `cos` and `sin` ([max_pos, head_dim / 2]
  /// constants, cos(p * inv_freq) * scaling), checked against every row;
  /// `scaling` is set from row 0. Null (error recorded) if they are not.
  mlir::Value ropeFromCaches(const onnx::NodeProto &node, llvm::StringRef cos,
                             llvm::StringRef sin, int64_t headDim,
                             double &scaling);

  /// Fused ops of opset 23 and onnxruntime (RaiseFusedOps.cpp and
  /// RaiseAttention.cpp): RMSNormalization, SimplifiedLayerNormalization,
  /// com.microsoft::SkipSimplifiedLayerNormalization (`value` is its output
  /// 0, or 3: the residual sum), the ONNX Attention (3-D operands; the 4-D
  /// form is raised from its head merge by attentionBlock) and
  /// com.microsoft::GroupQueryAttention.
  mlir::Value fusedRmsNorm(const onnx::NodeProto &node, llvm::StringRef value);
  mlir::Value onnxAttention(const onnx::NodeProto &node,
                            const onnx::NodeProto *headMerge);
  mlir::Value groupQueryAttention(const onnx::NodeProto &node);

  mlir::MLIRContext *ctx;
  mlir::OpBuilder builder;
  mlir::Location loc(const onnx::NodeProto &node);
  mlir::RankedTensorType activationType(int64_t features) const;

private:
  mlir::Value raiseNode(const onnx::NodeProto &node, llvm::StringRef value);
  mlir::Value embedding(const onnx::NodeProto &gather);
  mlir::Value rmsNorm(const onnx::NodeProto &mul);
  mlir::Value swiglu(const onnx::NodeProto &mul);
  mlir::Value linear(const onnx::NodeProto &matmul, llvm::StringRef bias);
  mlir::Value logits(llvm::StringRef output);
  /// com.microsoft::MatMulNBits (RaiseQuantized.cpp): the projection, and
  /// its weight as a tfm.dequantize of the graph's packed codes ([N, K]).
  mlir::Value quantizedLinear(const onnx::NodeProto &node,
                              llvm::StringRef bias);
  /// Rows [row0, row0 + rows) of it (all when rows < 0).
  mlir::Value quantizedWeight(const onnx::NodeProto &node, int64_t row0 = 0,
                              int64_t rows = -1);
  /// The projections of a packed QKV (GroupQueryAttention's query input
  /// holding Q, K and V): `value`'s MatMul, MatMulNBits or Gemm split at
  /// compile time into one tfm.linear per width in `widths` (output
  /// features, in order). Empty (error recorded) if it is not one.
  llvm::SmallVector<mlir::Value>
  splitProjection(const onnx::NodeProto &user, llvm::StringRef value,
                  llvm::ArrayRef<int64_t> widths);
  /// tfm.linear of `node`'s input 0 by the [out, in] weight `makeWeight`
  /// raises (after the input), with the optional `bias`.
  mlir::Value outInProjection(const onnx::NodeProto &node,
                              llvm::function_ref<mlir::Value()> makeWeight,
                              llvm::StringRef bias);
  /// The 1-D initializer `bias` of `n` elements as a weight; null when
  /// `bias` is empty, or (with the error recorded) when it is not that.
  mlir::Value projectionBias(const onnx::NodeProto &node, llvm::StringRef bias,
                             int64_t n);
  /// MatMul(x, DequantizeLinear(W_q [K, N], scale, zero_point)): the
  /// projection, and the weight as a tfm.dequantize of W_q's codes
  /// re-packed [N, K] (codes are moved, never re-quantized).
  mlir::Value quantizedLinear(const onnx::NodeProto &dequantize,
                              const onnx::NodeProto &matmul,
                              llvm::StringRef bias);
  mlir::Value dequantizeLinearWeight(const onnx::NodeProto &dequantize);
  /// The [K, N] weight `x` dequantized by `scale` (one, one per column with
  /// axis 1, or blocks of `blockSize` along K) and `zp`: a tfm.dequantize of
  /// its codes moved to [N, K].
  mlir::Value dequantizeWeight(const onnx::NodeProto &at, const ConstTensor *x,
                               const ConstTensor *scale, const ConstTensor *zp,
                               int64_t axis, int64_t blockSize);
  /// Weight operand of a projection: (initializer, layout).
  std::optional<std::pair<const ConstTensor *, tfm::WeightLayout>>
  projectionWeight(const onnx::NodeProto &node);
  bool isTransposedCopy(const ConstTensor &a, const ConstTensor &b) const;

public:
  const OnnxModel &model;
  const ShapeInference &shapes;
  mlir::ModuleOp module;
  mlir::func::FuncOp func;
  mlir::Type elementType; // the model's activation type
  const ConstTensor *embeddingTable = nullptr;
  /// The embedding lookup: Gather(table, ids), Gather(Transpose(W), ids)
  /// (the builder's tied embedding), or com.microsoft::GatherBlockQuantized.
  const onnx::NodeProto *embeddingNode = nullptr;
  /// A table made at import (W transposed, or the quantized table
  /// dequantized to the scales' type), with the bytes it owns; null when
  /// the table is an initializer.
  std::unique_ptr<ConstTensor> madeTable;
  std::vector<char> madeTableBytes;
  /// Finds the embedding lookup of `ids` among its users and sets
  /// embeddingNode and embeddingTable; false when there is none, with the
  /// error recorded when one is malformed.
  bool findEmbedding(llvm::StringRef ids);
  bool makeDequantizedTable(const onnx::NodeProto &gatherBlockQuantized);
  bool makeDequantizeLinearTable(const onnx::NodeProto &dequantize,
                                 const ConstTensor &codes);
  /// onnxruntime's quantize_dynamic projection (RaiseQuantized.cpp):
  /// Mul(Cast(MatMulInteger(DynamicQuantizeLinear(x), W_q, x_zp, w_zp)),
  /// x_scale * w_scale), raised to tfm.linear of tfm.dynamic_quantize(x) by
  /// the dequantized W_q. Null without an error when `mul` is not one.
  mlir::Value integerLinear(const onnx::NodeProto &mul);
  mlir::Value tokens, positions; // function arguments
  /// Per layer (in raising order): the K and V cache arguments and results.
  llvm::SmallVector<mlir::Value> cacheArgs, cacheResults;
  /// Graph inputs holding past K/V and the outputs holding present K/V, in
  /// the same order as cacheArgs.
  llvm::SmallVector<std::string> pastInputs, presentOutputs;
  mlir::Value invFreq;
  std::vector<float> invFreqData;

private:
  std::optional<std::string> error_;
  llvm::StringMap<mlir::Value> memo_;
  llvm::StringMap<mlir::Value> weights_;
  llvm::StringMap<bool> weightDeps_;
  /// tfm.dynamic_quantize of each DynamicQuantizeLinear, by its codes' name.
  llvm::StringMap<mlir::Value> dynamicQuantized_;
};

} // namespace kiln

#endif // KILN_LIB_IMPORT_RAISER_H
