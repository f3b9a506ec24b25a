//===- TfmBase.td - Transformer dialect definition ---------*- tablegen -*-===//
//
// The `tfm` dialect: the high-level form of a Llama-family decoder that every
// Kiln pass works on. Ops are on tensors and carry the model's structure
// (heads, head_dim, epsilon, weight layout) as attributes, so that later passes
// can fuse, quantize and lower them without re-discovering it.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TFM_BASE_TD
#define KILN_TFM_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Tfm_Dialect : Dialect {
  let name = "tfm";
  let cppNamespace = "::kiln::tfm";
  let summary = "Transformer-level ops for Llama-family decoders";
  let description = [{
    The `tfm` dialect is what the ONNX importer raises a Llama graph into.
    Each op is one semantic step of a decoder layer (embedding lookup,
    RMSNorm, linear projection, rotary embedding, KV-cache append,
    grouped-query causal attention, SwiGLU, residual add, logits).

    Conventions shared by all ops:
    * Activations are token-major, `[batch, seq, features]`. Heads are not
      split into a separate dimension: ops that work per head carry
      `head_dim` (and head counts) as attributes and see the feature
      dimension as `num_heads x head_dim`.
    * Positions are explicit `[batch, seq]` integer operands, so a prefill
      can start at any offset and each sequence of a decode batch can be at
      its own position.
    * The KV cache is an explicit tensor per layer and per K/V, laid out
      `[batch, num_kv_heads, max_seq, head_dim]`. `tfm.kv_append` returns the
      updated cache (destination-passing style), so bufferization turns it
      into an in-place write into the runtime's cache buffer.
    * Element types are `f32`, `f16` or `bf16`. Reductions (RMSNorm, softmax,
      dot products) accumulate in f32 whatever the storage type.
    * Weights are plain tensor operands (the importer loads them from
      `ml_program.global` constants), so a quantization pass can swap a
      weight and its op for a quantized form without touching the rest.
  }];
  let useDefaultAttributePrinterParser = 1;
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Tfm_WeightLayout_OutIn : I32EnumAttrCase<"out_in", 0>;
def Tfm_WeightLayout_InOut : I32EnumAttrCase<"in_out", 1>;

def Tfm_WeightLayoutEnum : I32EnumAttr<"WeightLayout",
    "memory layout of a projection weight",
    [Tfm_WeightLayout_OutIn, Tfm_WeightLayout_InOut]> {
  let cppNamespace = "::kiln::tfm";
  let genSpecializedAttr = 0;
}

def Tfm_WeightLayoutAttr : EnumAttr<Tfm_Dialect, Tfm_WeightLayoutEnum,
                                    "weight_layout"> {
  let summary = "Layout of a projection weight: out_in ([N, K]) or in_out ([K, N])";
  let description = [{
    `out_in` is PyTorch's `nn.Linear.weight` layout, `[out_features,
    in_features]`, where each output feature's weights are contiguous (the
    layout a decode GEMV wants). `in_out` is ONNX `MatMul`'s right-hand side,
    `[in_features, out_features]`. The importer records whichever layout the
    graph stores so that weights are never copied at import; a layout pass
    may transpose them later.
  }];
  let assemblyFormat = "`<` $value `>`";
}

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

def Tfm_FloatElement : AnyTypeOf<[F32, F16, BF16]>;
def Tfm_FloatTensor : RankedTensorOf<[F32, F16, BF16]>;
def Tfm_FloatMemRef : MemRefOf<[F32, F16, BF16]>;
def Tfm_Vector : RankedTensorOf<[F32, F16, BF16], [HasAnyRankOfPred<[1]>],
                                "1-D tensor">;
def Tfm_Matrix : RankedTensorOf<[F32, F16, BF16], [HasAnyRankOfPred<[2]>],
                                "2-D tensor">;
def Tfm_Activation : RankedTensorOf<[F32, F16, BF16], [HasAnyRankOfPred<[3]>],
                                    "3-D [batch, seq, features] tensor">;
def Tfm_Cache : RankedTensorOf<[F32, F16, BF16], [HasAnyRankOfPred<[4]>],
    "4-D [batch, kv_heads, max_seq, head_dim] tensor (paged: [num_blocks, "
    "kv_heads, block_size, head_dim])">;
def Tfm_BlockTable : RankedTensorOf<[I32], [HasAnyRankOfPred<[2]>],
    "2-D [batch, max_blocks] i32 tensor">;
def Tfm_TokenIds : RankedTensorOf<[I32, I64], [HasAnyRankOfPred<[2]>],
                                  "2-D [batch, seq] tensor">;
def Tfm_Positions : RankedTensorOf<[I32, I64], [HasAnyRankOfPred<[2]>],
                                   "2-D [batch, seq] tensor">;
def Tfm_InvFreq : RankedTensorOf<[F32], [HasAnyRankOfPred<[1]>],
                                 "1-D tensor">;

class Tfm_Op<string mnemonic, list<Trait> traits = []>
    : Op<Tfm_Dialect, mnemonic, traits>;

#endif // KILN_TFM_BASE_TD
