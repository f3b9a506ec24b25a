// RUN: kiln-opt %s --kiln-lower-tfm-to-linalg --split-input-file | FileCheck %s --implicit-check-not='= tfm.'

// Embedding: one parallel generic over [b, s, hidden] reading the ids by
// (b, s) and gathering the table row with tensor.extract.

// CHECK-DAG: #[[$IDS:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[$ID3:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @embedding
// CHECK-SAME: (%[[TABLE:.+]]: tensor<16x8xf32>, %[[TOKENS:.+]]: tensor<1x2xi64>)
// CHECK: %[[INIT:.+]] = tensor.empty() : tensor<1x2x8xf32>
// CHECK: %[[R:.+]] = linalg.generic {indexing_maps = [#[[$IDS]], #[[$ID3]]], iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[TOKENS]] : tensor<1x2xi64>) outs(%[[INIT]] : tensor<1x2x8xf32>)
// CHECK: ^bb0(%[[ID:.+]]: i64, %{{.+}}: f32):
// CHECK: %[[ROW:.+]] = arith.index_cast %[[ID]] : i64 to index
// CHECK: %[[COL:.+]] = linalg.index 2 : index
// CHECK: %[[E:.+]] = tensor.extract %[[TABLE]][%[[ROW]], %[[COL]]] : tensor<16x8xf32>
// CHECK: linalg.yield %[[E]] : f32
// CHECK: return %[[R]]
func.func @embedding(%table: tensor<16x8xf32>, %ids: tensor<1x2xi64>) -> tensor<1x2x8xf32> {
  %0 = tfm.embedding %table[%ids] : tensor<16x8xf32>, tensor<1x2xi64> -> tensor<1x2x8xf32>
  return %0 : tensor<1x2x8xf32>
}

// -----

// RMSNorm in f16: the sum of squares is a reduction into an f32 [b, s]
// accumulator; the normalisation extends every f16 input to f32 and rounds
// once at the end.

// CHECK-DAG: #[[$ID3:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[$ROWS:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[$FEAT:.+]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-LABEL: func.func @rms_norm_f16
// CHECK-SAME: (%[[X:.+]]: tensor<1x2x8xf16>, %[[W:.+]]: tensor<8xf16>)
// CHECK-DAG: %[[ONE:.+]] = arith.constant 1.000000e+00 : f32
// CHECK-DAG: %[[EPS:.+]] = arith.constant 9.99999974E-6 : f32
// CHECK-DAG: %[[N:.+]] = arith.constant 8.000000e+00 : f32
// CHECK-DAG: %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[ACC0:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.+}} : tensor<1x2xf32>)
// CHECK: %[[SUMSQ:.+]] = linalg.generic {indexing_maps = [#[[$ID3]], #[[$ROWS]]], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[X]] : tensor<1x2x8xf16>) outs(%[[ACC0]] : tensor<1x2xf32>)
// CHECK: ^bb0(%[[IN:.+]]: f16, %[[ACC:.+]]: f32):
// CHECK: %[[XF:.+]] = arith.extf %[[IN]] : f16 to f32
// CHECK: %[[SQ:.+]] = arith.mulf %[[XF]], %[[XF]] : f32
// CHECK: %[[SUM:.+]] = arith.addf %[[ACC]], %[[SQ]] : f32
// CHECK: linalg.yield %[[SUM]] : f32
// CHECK: %[[R:.+]] = linalg.generic {indexing_maps = [#[[$ID3]], #[[$ROWS]], #[[$FEAT]], #[[$ID3]]], iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[X]], %[[SUMSQ]], %[[W]] : tensor<1x2x8xf16>, tensor<1x2xf32>, tensor<8xf16>) outs(%{{.+}} : tensor<1x2x8xf16>)
// CHECK: ^bb0(%[[XI:.+]]: f16, %[[S:.+]]: f32, %[[WI:.+]]: f16, %{{.+}}: f16):
// CHECK: %[[MEAN:.+]] = arith.divf %[[S]], %[[N]] : f32
// CHECK: %[[VAR:.+]] = arith.addf %[[MEAN]], %[[EPS]] : f32
// CHECK: %[[RMS:.+]] = math.sqrt %[[VAR]] : f32
// CHECK: %[[INV:.+]] = arith.divf %[[ONE]], %[[RMS]] : f32
// CHECK: %[[XF:.+]] = arith.extf %[[XI]] : f16 to f32
// CHECK: %[[XN:.+]] = arith.mulf %[[XF]], %[[INV]] : f32
// CHECK: %[[WF:.+]] = arith.extf %[[WI]] : f16 to f32
// CHECK: %[[Y:.+]] = arith.mulf %[[XN]], %[[WF]] : f32
// CHECK: %[[YH:.+]] = arith.truncf %[[Y]] : f32 to f16
// CHECK: linalg.yield %[[YH]] : f16
// CHECK: return %[[R]]
func.func @rms_norm_f16(%x: tensor<1x2x8xf16>, %w: tensor<8xf16>) -> tensor<1x2x8xf16> {
  %0 = tfm.rms_norm %x, %w {epsilon = 1.0e-05 : f32} : tensor<1x2x8xf16>, tensor<8xf16>
  return %0 : tensor<1x2x8xf16>
}

// -----

// Linear, <in_out> weight [in, out] read as (k, n), f32 without bias: one
// contraction over d3 into a zero-filled accumulator, nothing after it.

// CHECK-DAG: #[[$XMAP:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[$WMAP:.+]] = affine_map<(d0, d1, d2, d3) -> (d3, d2)>
// CHECK-DAG: #[[$OMAP:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @linear_in_out
// CHECK-SAME: (%[[X:.+]]: tensor<1x2x8xf32>, %[[W:.+]]: tensor<8x4xf32>)
// CHECK: %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[ACC0:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.+}} : tensor<1x2x4xf32>)
// CHECK: %[[R:.+]] = linalg.generic {indexing_maps = [#[[$XMAP]], #[[$WMAP]], #[[$OMAP]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[X]], %[[W]] : tensor<1x2x8xf32>, tensor<8x4xf32>) outs(%[[ACC0]] : tensor<1x2x4xf32>)
// CHECK: ^bb0(%[[A:.+]]: f32, %[[B:.+]]: f32, %[[ACC:.+]]: f32):
// CHECK: %[[P:.+]] = arith.mulf %[[A]], %[[B]] : f32
// CHECK: %[[S:.+]] = arith.addf %[[ACC]], %[[P]] : f32
// CHECK: linalg.yield %[[S]] : f32
// CHECK-NOT: linalg.generic
// CHECK: return %[[R]]
func.func @linear_in_out(%x: tensor<1x2x8xf32>, %w: tensor<8x4xf32>) -> tensor<1x2x4xf32> {
  %0 = tfm.linear %x, %w layout = <in_out> : (tensor<1x2x8xf32>, tensor<8x4xf32>) -> tensor<1x2x4xf32>
  return %0 : tensor<1x2x4xf32>
}

// -----

// Linear, <out_in> weight [out, in] read as (n, k), f16 with bias: the
// contraction accumulates in f32, a second parallel generic adds the bias
// (broadcast over d2) and rounds to f16.

// CHECK-DAG: #[[$XMAP:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[$WMAP:.+]] = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
// CHECK-DAG: #[[$OMAP:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-DAG: #[[$ID3:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[$BMAP:.+]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-LABEL: func.func @linear_out_in_bias_f16
// CHECK-SAME: (%[[X:.+]]: tensor<1x2x8xf16>, %[[W:.+]]: tensor<4x8xf16>, %[[BIAS:.+]]: tensor<4xf16>)
// CHECK: %[[ACC:.+]] = linalg.generic {indexing_maps = [#[[$XMAP]], #[[$WMAP]], #[[$OMAP]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[X]], %[[W]] : tensor<1x2x8xf16>, tensor<4x8xf16>) outs(%{{.+}} : tensor<1x2x4xf32>)
// CHECK: ^bb0(%[[A:.+]]: f16, %[[B:.+]]: f16, %[[SUM:.+]]: f32):
// CHECK-DAG: %[[BF:.+]] = arith.extf %[[B]] : f16 to f32
// CHECK-DAG: %[[AF:.+]] = arith.extf %[[A]] : f16 to f32
// CHECK: %[[P:.+]] = arith.mulf %[[AF]], %[[BF]] : f32
// CHECK: arith.addf %[[SUM]], %[[P]] : f32
// CHECK: } -> tensor<1x2x4xf32>
// CHECK: %[[R:.+]] = linalg.generic {indexing_maps = [#[[$ID3]], #[[$BMAP]], #[[$ID3]]], iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[ACC]], %[[BIAS]] : tensor<1x2x4xf32>, tensor<4xf16>) outs(%{{.+}} : tensor<1x2x4xf16>)
// CHECK: ^bb0(%[[V:.+]]: f32, %[[BI:.+]]: f16, %{{.+}}: f16):
// CHECK: %[[BIF:.+]] = arith.extf %[[BI]] : f16 to f32
// CHECK: %[[Y:.+]] = arith.addf %[[V]], %[[BIF]] : f32
// CHECK: %[[YH:.+]] = arith.truncf %[[Y]] : f32 to f16
// CHECK: linalg.yield %[[YH]] : f16
// CHECK: return %[[R]]
func.func @linear_out_in_bias_f16(%x: tensor<1x2x8xf16>, %w: tensor<4x8xf16>, %b: tensor<4xf16>) -> tensor<1x2x4xf16> {
  %0 = tfm.linear %x, %w bias %b layout = <out_in> : (tensor<1x2x8xf16>, tensor<4x8xf16>, tensor<4xf16>) -> tensor<1x2x4xf16>
  return %0 : tensor<1x2x4xf16>
}

// -----

// A linear with rms_norm eps (kiln-fuse-norm-projection folded the gain
// into its weight): the row's sum of squares first (tagged "sum_squares", a
// GEMV kernel takes it), the projection of the raw input, then the finish
// scales by 1 / sqrt(sum / K + eps) before the bias.
// CHECK-DAG: #[[$ROW:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[$ROWS:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[$BIAS:.+]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-LABEL: func.func @linear_rms_norm
// CHECK-SAME: (%[[X:.+]]: tensor<1x2x8xf16>, %[[W:.+]]: tensor<4x8xf16>, %[[B:.+]]: tensor<4xf16>)
// CHECK: %[[SQ:.+]] = linalg.generic {indexing_maps = [#[[$ROW]], #[[$ROWS]]], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[X]] : tensor<1x2x8xf16>) outs(%{{.+}} : tensor<1x2xf32>)
// CHECK-SAME: kiln.region = {op = "tfm.linear", step = "sum_squares"}
// CHECK: %[[XF:.+]] = arith.extf
// CHECK: %[[XX:.+]] = arith.mulf %[[XF]], %[[XF]] : f32
// CHECK: arith.addf %{{.+}}, %[[XX]] : f32
// CHECK: %[[ACC:.+]] = linalg.generic
// CHECK-SAME: ins(%[[X]], %[[W]] : tensor<1x2x8xf16>, tensor<4x8xf16>)
// CHECK: %[[R:.+]] = linalg.generic {indexing_maps = [#[[$ROW]], #[[$ROWS]], #[[$BIAS]], #[[$ROW]]]
// CHECK-SAME: ins(%[[ACC]], %[[SQ]], %[[B]] : tensor<1x2x4xf32>, tensor<1x2xf32>, tensor<4xf16>)
// CHECK: ^bb0(%[[V:.+]]: f32, %[[S:.+]]: f32, %[[BI:.+]]: f16, %{{.+}}: f16):
// CHECK: %[[MEAN:.+]] = arith.divf %[[S]], %{{.+}} : f32
// CHECK: %[[E:.+]] = arith.addf %[[MEAN]], %{{.+}} : f32
// CHECK: %[[RMS:.+]] = math.sqrt %[[E]] : f32
// CHECK: %[[INV:.+]] = arith.divf %{{.+}}, %[[RMS]] : f32
// CHECK: %[[SCALED:.+]] = arith.mulf %[[V]], %[[INV]] : f32
// CHECK: %[[BIF:.+]] = arith.extf %[[BI]] : f16 to f32
// CHECK: arith.addf %[[SCALED]], %[[BIF]] : f32
// CHECK: return %[[R]]
func.func @linear_rms_norm(%x: tensor<1x2x8xf16>, %w: tensor<4x8xf16>, %b: tensor<4xf16>) -> tensor<1x2x4xf16> {
  %0 = tfm.linear %x, %w bias %b layout = <out_in> rms_norm eps = 1.0e-05 : (tensor<1x2x8xf16>, tensor<4x8xf16>, tensor<4xf16>) -> tensor<1x2x4xf16>
  return %0 : tensor<1x2x4xf16>
}

// -----

// A linear with swiglu (kiln-fuse-swiglu): the 8-column projection, then one
// elementwise op over 4 columns reading the accumulator's halves (and the
// bias's) as slices: silu(gate + bias[n]) * (up + bias[n + 4]).
// CHECK-DAG: #[[$ID:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[$B:.+]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-LABEL: func.func @linear_swiglu
// CHECK-SAME: (%[[X:.+]]: tensor<1x1x8xf16>, %[[W:.+]]: tensor<8x8xf16>, %[[BIAS:.+]]: tensor<8xf16>)
// CHECK: %[[ACC:.+]] = linalg.generic
// CHECK-SAME: ins(%[[X]], %[[W]] : tensor<1x1x8xf16>, tensor<8x8xf16>) outs(%{{.+}} : tensor<1x1x8xf32>)
// CHECK-DAG: %[[G:.+]] = tensor.extract_slice %[[ACC]][0, 0, 0] [1, 1, 4] [1, 1, 1] : tensor<1x1x8xf32> to tensor<1x1x4xf32>
// CHECK-DAG: %[[U:.+]] = tensor.extract_slice %[[ACC]][0, 0, 4] [1, 1, 4] [1, 1, 1] : tensor<1x1x8xf32> to tensor<1x1x4xf32>
// CHECK-DAG: %[[BG:.+]] = tensor.extract_slice %[[BIAS]][0] [4] [1] : tensor<8xf16> to tensor<4xf16>
// CHECK-DAG: %[[BU:.+]] = tensor.extract_slice %[[BIAS]][4] [4] [1] : tensor<8xf16> to tensor<4xf16>
// CHECK: %[[R:.+]] = linalg.generic {indexing_maps = [#[[$ID]], #[[$ID]], #[[$B]], #[[$B]], #[[$ID]]]
// CHECK-SAME: ins(%[[G]], %[[U]], %[[BG]], %[[BU]] : tensor<1x1x4xf32>, tensor<1x1x4xf32>, tensor<4xf16>, tensor<4xf16>) outs(%{{.+}} : tensor<1x1x4xf16>)
// CHECK: ^bb0(%[[VG:.+]]: f32, %[[VU:.+]]: f32, %[[VBG:.+]]: f16, %[[VBU:.+]]: f16, %{{.+}}: f16):
// CHECK: %[[GB:.+]] = arith.addf %[[VG]], %{{.+}} : f32
// CHECK: %[[UB:.+]] = arith.addf %[[VU]], %{{.+}} : f32
// CHECK: %[[NEG:.+]] = arith.negf %[[GB]] : f32
// CHECK: %[[E:.+]] = math.exp %[[NEG]] : f32
// CHECK: %[[SIG:.+]] = arith.divf %{{.+}}, %{{.+}} : f32
// CHECK: %[[SILU:.+]] = arith.mulf %[[GB]], %[[SIG]] : f32
// CHECK: %[[Y:.+]] = arith.mulf %[[SILU]], %[[UB]] : f32
// CHECK: arith.truncf %[[Y]] : f32 to f16
// CHECK: return %[[R]] : tensor<1x1x4xf16>
func.func @linear_swiglu(%x: tensor<1x1x8xf16>, %w: tensor<8x8xf16>, %b: tensor<8xf16>) -> tensor<1x1x4xf16> {
  %0 = tfm.linear %x, %w bias %b layout = <out_in> swiglu : (tensor<1x1x8xf16>, tensor<8x8xf16>, tensor<8xf16>) -> tensor<1x1x4xf16>
  return %0 : tensor<1x1x4xf16>
}

// -----

// Logits with the tied embedding table ([vocab, hidden], <out_in>): the same
// contraction as linear, over the vocabulary.

// CHECK-DAG: #[[$XMAP:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[$WMAP:.+]] = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
// CHECK-DAG: #[[$OMAP:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @logits_tied
// CHECK-SAME: (%[[H:.+]]: tensor<1x2x8xf32>, %[[TABLE:.+]]: tensor<16x8xf32>)
// CHECK: %[[R:.+]] = linalg.generic {indexing_maps = [#[[$XMAP]], #[[$WMAP]], #[[$OMAP]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[H]], %[[TABLE]] : tensor<1x2x8xf32>, tensor<16x8xf32>) outs(%{{.+}} : tensor<1x2x16xf32>)
// CHECK-NOT: linalg.generic
// CHECK: return %[[R]]
func.func @logits_tied(%h: tensor<1x2x8xf32>, %table: tensor<16x8xf32>) -> tensor<1x2x16xf32> {
  %0 = tfm.logits %h, %table layout = <out_in> {tied} : (tensor<1x2x8xf32>, tensor<16x8xf32>) -> tensor<1x2x16xf32>
  return %0 : tensor<1x2x16xf32>
}

// -----

// Logits with an untied <in_out> head ([hidden, vocab]) in bf16: the weight
// is read as (k, n) and the f32 accumulator is rounded by a second generic.

// CHECK-DAG: #[[$WMAP:.+]] = affine_map<(d0, d1, d2, d3) -> (d3, d2)>
// CHECK-LABEL: func.func @logits_in_out_bf16
// CHECK: %[[ACC:.+]] = linalg.generic {indexing_maps = [#{{.+}}, #[[$WMAP]], #{{.+}}], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: outs(%{{.+}} : tensor<1x2x16xf32>)
// CHECK: linalg.generic {{.+}} ins(%[[ACC]] : tensor<1x2x16xf32>) outs(%{{.+}} : tensor<1x2x16xbf16>)
// CHECK: arith.truncf %{{.+}} : f32 to bf16
func.func @logits_in_out_bf16(%h: tensor<1x2x8xbf16>, %w: tensor<8x16xbf16>) -> tensor<1x2x16xbf16> {
  %0 = tfm.logits %h, %w layout = <in_out> : (tensor<1x2x8xbf16>, tensor<8x16xbf16>) -> tensor<1x2x16xbf16>
  return %0 : tensor<1x2x16xbf16>
}

// -----

// RoPE (head_dim 4, half 2): each channel c pairs with c +/- 2 inside its
// head, the angle is position * inv_freq[c mod 4 mod 2], cos and sin are
// scaled by attention_scaling; the first half subtracts, the second adds.

// CHECK-LABEL: func.func @rope
// CHECK-SAME: (%[[X:.+]]: tensor<1x2x8xf32>, %[[POS:.+]]: tensor<1x2xi64>, %[[F:.+]]: tensor<2xf32>)
// CHECK-DAG: %[[HD:.+]] = arith.constant 4 : index
// CHECK-DAG: %[[HALF:.+]] = arith.constant 2 : index
// CHECK-DAG: %[[SCALE:.+]] = arith.constant 1.500000e+00 : f32
// CHECK: %[[R:.+]] = linalg.generic {{{.+}}, iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[POS]] : tensor<1x2xi64>) outs(%{{.+}} : tensor<1x2x8xf32>)
// CHECK: ^bb0(%[[P:.+]]: i64, %{{.+}}: f32):
// CHECK: %[[C:.+]] = linalg.index 2 : index
// CHECK: %[[I:.+]] = arith.remui %[[C]], %[[HD]] : index
// CHECK: %[[FIRST:.+]] = arith.cmpi ult, %[[I]], %[[HALF]] : index
// CHECK: %[[XV:.+]] = tensor.extract %[[X]][%{{.+}}, %{{.+}}, %[[C]]] : tensor<1x2x8xf32>
// CHECK: %[[XP:.+]] = tensor.extract %[[X]]
// CHECK: %[[PF:.+]] = arith.sitofp %[[P]] : i64 to f32
// CHECK: %[[FJ:.+]] = tensor.extract %[[F]][%{{.+}}] : tensor<2xf32>
// CHECK: %[[TH:.+]] = arith.mulf %[[PF]], %[[FJ]] : f32
// CHECK: %[[COS:.+]] = math.cos %[[TH]] : f32
// CHECK: %[[CS:.+]] = arith.mulf %[[COS]], %[[SCALE]] : f32
// CHECK: %[[SIN:.+]] = math.sin %[[TH]] : f32
// CHECK: %[[SN:.+]] = arith.mulf %[[SIN]], %[[SCALE]] : f32
// CHECK: %[[XC:.+]] = arith.mulf %[[XV]], %[[CS]] : f32
// CHECK: %[[PS:.+]] = arith.mulf %[[XP]], %[[SN]] : f32
// CHECK-DAG: %[[ADD:.+]] = arith.addf %[[XC]], %[[PS]] : f32
// CHECK-DAG: %[[SUB:.+]] = arith.subf %[[XC]], %[[PS]] : f32
// CHECK: %[[OUT:.+]] = arith.select %[[FIRST]], %[[SUB]], %[[ADD]] : f32
// CHECK: linalg.yield %[[OUT]] : f32
// CHECK: return %[[R]]
func.func @rope(%x: tensor<1x2x8xf32>, %pos: tensor<1x2xi64>, %f: tensor<2xf32>) -> tensor<1x2x8xf32> {
  %0 = tfm.rope %x, %pos, %f {head_dim = 4 : i64, attention_scaling = 1.5 : f32} : tensor<1x2x8xf32>, tensor<1x2xi64>, tensor<2xf32>
  return %0 : tensor<1x2x8xf32>
}

// -----

// SwiGLU in f16: g * sigmoid(g) * u computed in f32, one rounding.

// CHECK-DAG: #[[$ID3:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @swiglu_f16
// CHECK-SAME: (%[[G:.+]]: tensor<1x2x12xf16>, %[[U:.+]]: tensor<1x2x12xf16>)
// CHECK: %[[ONE:.+]] = arith.constant 1.000000e+00 : f32
// CHECK: %[[R:.+]] = linalg.generic {indexing_maps = [#[[$ID3]], #[[$ID3]], #[[$ID3]]], iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[G]], %[[U]] : tensor<1x2x12xf16>, tensor<1x2x12xf16>) outs(%{{.+}} : tensor<1x2x12xf16>)
// CHECK: ^bb0(%[[GI:.+]]: f16, %[[UI:.+]]: f16, %{{.+}}: f16):
// CHECK: %[[GF:.+]] = arith.extf %[[GI]] : f16 to f32
// CHECK: %[[UF:.+]] = arith.extf %[[UI]] : f16 to f32
// CHECK: %[[NEG:.+]] = arith.negf %[[GF]] : f32
// CHECK: %[[E:.+]] = math.exp %[[NEG]] : f32
// CHECK: %[[DEN:.+]] = arith.addf %[[E]], %[[ONE]] : f32
// CHECK: %[[SIG:.+]] = arith.divf %[[ONE]], %[[DEN]] : f32
// CHECK: %[[SILU:.+]] = arith.mulf %[[GF]], %[[SIG]] : f32
// CHECK: %[[Y:.+]] = arith.mulf %[[SILU]], %[[UF]] : f32
// CHECK: %[[YH:.+]] = arith.truncf %[[Y]] : f32 to f16
// CHECK: linalg.yield %[[YH]] : f16
// CHECK: return %[[R]]
func.func @swiglu_f16(%g: tensor<1x2x12xf16>, %u: tensor<1x2x12xf16>) -> tensor<1x2x12xf16> {
  %0 = tfm.swiglu %g, %u : tensor<1x2x12xf16>
  return %0 : tensor<1x2x12xf16>
}

// -----

// Add in f32: no conversions at all.

// CHECK-DAG: #[[$ID3:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @add
// CHECK-SAME: (%[[A:.+]]: tensor<1x2x8xf32>, %[[B:.+]]: tensor<1x2x8xf32>)
// CHECK: %[[R:.+]] = linalg.generic {indexing_maps = [#[[$ID3]], #[[$ID3]], #[[$ID3]]], iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[A]], %[[B]] : tensor<1x2x8xf32>, tensor<1x2x8xf32>)
// CHECK-NEXT: ^bb0(%[[X:.+]]: f32, %[[Y:.+]]: f32, %{{.+}}: f32):
// CHECK-NEXT: %[[S:.+]] = arith.addf %[[X]], %[[Y]] : f32
// CHECK-NEXT: linalg.yield %[[S]] : f32
// CHECK: return %[[R]]
func.func @add(%a: tensor<1x2x8xf32>, %b: tensor<1x2x8xf32>) -> tensor<1x2x8xf32> {
  %0 = tfm.add %a, %b : tensor<1x2x8xf32>
  return %0 : tensor<1x2x8xf32>
}

// -----

// tfm.add and tfm.swiglu accept any rank: a 2-D add is lowered with a 2-D
// identity map, not rejected.

// CHECK-DAG: #[[$ID2:.+]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @add_rank2_bf16
// CHECK: linalg.generic {indexing_maps = [#[[$ID2]], #[[$ID2]], #[[$ID2]]], iterator_types = ["parallel", "parallel"]}
// CHECK: arith.extf %{{.+}} : bf16 to f32
// CHECK: arith.truncf %{{.+}} : f32 to bf16
func.func @add_rank2_bf16(%a: tensor<2x8xbf16>, %b: tensor<2x8xbf16>) -> tensor<2x8xbf16> {
  %0 = tfm.add %a, %b : tensor<2x8xbf16>
  return %0 : tensor<2x8xbf16>
}

// -----

// KV append of a chunk (2 tokens): an scf.forall over (b, s, kv head, d)
// sharing the cache (its iterations write distinct elements); an element is
// written only when 0 <= p < max_seq (16): the copy into the cache's own
// [1, 1, rows, 1] slice and its parallel insert have rows = valid ? 1 : 0
// (an in-place update after bufferization, nothing written for padding).

// CHECK-LABEL: func.func @kv_append
// CHECK-SAME: (%[[V:.+]]: tensor<1x2x8xf32>, %[[CACHE:.+]]: tensor<1x2x16x4xf32>, %[[POS:.+]]: tensor<1x2xi64>)
// CHECK-DAG: %[[C0:.+]] = arith.constant 0 : index
// CHECK-DAG: %[[C1:.+]] = arith.constant 1 : index
// CHECK-DAG: %[[C4:.+]] = arith.constant 4 : index
// CHECK-DAG: %[[ZERO:.+]] = arith.constant 0 : i64
// CHECK-DAG: %[[MAX:.+]] = arith.constant 16 : i64
// CHECK: %[[R:.+]] = scf.forall (%[[B:.+]], %[[S:.+]], %[[G:.+]], %[[D:.+]]) in (1, 2, 2, 4) shared_outs(%[[OUT:.+]] = %[[CACHE]]) -> (tensor<1x2x16x4xf32>) {
// CHECK: %[[P:.+]] = tensor.extract %[[POS]][%[[B]], %[[S]]] : tensor<1x2xi64>
// CHECK-DAG: %[[BELOW:.+]] = arith.cmpi slt, %[[P]], %[[MAX]] : i64
// CHECK-DAG: %[[NONNEG:.+]] = arith.cmpi sge, %[[P]], %[[ZERO]] : i64
// CHECK: %[[VALID:.+]] = arith.andi %[[NONNEG]], %[[BELOW]] : i1
// CHECK: %[[ROWS:.+]] = arith.select %[[VALID]], %[[C1]], %[[C0]] : index
// CHECK: %[[PI:.+]] = arith.index_cast %[[P]] : i64 to index
// CHECK: %[[AT:.+]] = arith.select %[[VALID]], %[[PI]], %[[C0]] : index
// CHECK: %[[GD:.+]] = arith.muli %[[G]], %[[C4]] : index
// CHECK: %[[COL:.+]] = arith.addi %[[GD]], %[[D]] : index
// CHECK: %[[ROW:.+]] = tensor.extract_slice %[[V]][%[[B]], %[[S]], %[[COL]]] [1, 1, 1] [1, 1, 1] : tensor<1x2x8xf32> to tensor<1xf32>
// CHECK: %[[HEADS:.+]] = tensor.expand_shape %[[ROW]] {{\[}}[0, 1, 2, 3]] output_shape [1, 1, 1, 1] : tensor<1xf32> into tensor<1x1x1x1xf32>
// CHECK: %[[NEW:.+]] = tensor.extract_slice %[[HEADS]][0, 0, 0, 0] [1, 1, %[[ROWS]], 1] [1, 1, 1, 1] : tensor<1x1x1x1xf32> to tensor<1x1x?x1xf32>
// CHECK: %[[SLOT:.+]] = tensor.extract_slice %[[OUT]][%[[B]], %[[G]], %[[AT]], %[[D]]] [1, 1, %[[ROWS]], 1] [1, 1, 1, 1] : tensor<1x2x16x4xf32> to tensor<1x1x?x1xf32>
// CHECK: %[[W:.+]] = linalg.copy ins(%[[NEW]] : tensor<1x1x?x1xf32>) outs(%[[SLOT]] : tensor<1x1x?x1xf32>)
// CHECK: scf.forall.in_parallel {
// CHECK: tensor.parallel_insert_slice %[[W]] into %[[OUT]][%[[B]], %[[G]], %[[AT]], %[[D]]] [1, 1, %[[ROWS]], 1] [1, 1, 1, 1] : tensor<1x1x?x1xf32> into tensor<1x2x16x4xf32>
// CHECK: }
// CHECK: }
// CHECK: return %[[R]]
func.func @kv_append(%v: tensor<1x2x8xf32>, %cache: tensor<1x2x16x4xf32>, %pos: tensor<1x2xi64>) -> tensor<1x2x16x4xf32> {
  %0 = tfm.kv_append %v into %cache at %pos : tensor<1x2x8xf32>, tensor<1x2x16x4xf32>, tensor<1x2xi64>
  return %0 : tensor<1x2x16x4xf32>
}

// -----

// One token of one sequence (decode) with i32 positions: an scf.forall over
// (b, s) writing whole [1, heads, rows, head_dim] rows (the form
// attention_decode takes); the bounds are i32 constants.

// CHECK-LABEL: func.func @kv_append_i32_positions
// CHECK-DAG: %[[ZERO:.+]] = arith.constant 0 : i32
// CHECK-DAG: %[[MAX:.+]] = arith.constant 8 : i32
// CHECK: scf.forall (%{{.+}}, %{{.+}}) in (1, 1) shared_outs
// CHECK: %[[P:.+]] = tensor.extract %{{.+}} : tensor<1x1xi32>
// CHECK-DAG: arith.cmpi slt, %[[P]], %[[MAX]] : i32
// CHECK-DAG: arith.cmpi sge, %[[P]], %[[ZERO]] : i32
// CHECK: linalg.copy ins(%{{.+}} : tensor<1x1x?x4xf16>)
func.func @kv_append_i32_positions(%v: tensor<1x1x4xf16>, %cache: tensor<1x1x8x4xf16>, %pos: tensor<1x1xi32>) -> tensor<1x1x8x4xf16> {
  %0 = tfm.kv_append %v into %cache at %pos : tensor<1x1x4xf16>, tensor<1x1x8x4xf16>, tensor<1x1xi32>
  return %0 : tensor<1x1x8x4xf16>
}

// -----

// One token of each of 2 sequences (batched decode): an element per
// iteration, as for a chunk of tokens (a GPU thread per element, not per
// sequence).

// CHECK-LABEL: func.func @kv_append_batched_decode
// CHECK: scf.forall (%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}) in (2, 1, 1, 4) shared_outs
// CHECK: linalg.copy ins(%{{.+}} : tensor<1x1x?x1xf16>)
func.func @kv_append_batched_decode(%v: tensor<2x1x4xf16>, %cache: tensor<2x1x8x4xf16>, %pos: tensor<2x1xi32>) -> tensor<2x1x8x4xf16> {
  %0 = tfm.kv_append %v into %cache at %pos : tensor<2x1x4xf16>, tensor<2x1x8x4xf16>, tensor<2x1xi32>
  return %0 : tensor<2x1x8x4xf16>
}

// -----

// Attention with GQA (4 query heads share 2 KV heads: kv head = h floordiv 2)
// over the whole cache of 16 slots, dims (b, h, s, t[, d]):
//   dots (reduction over d) -> scale + causal mask t <= p[b, s] -> row max ->
//   exp (0 for fully masked rows) -> row sum -> probs . V (reduction over t)
//   -> normalise (0 where the sum is 0) back to [b, s, h, d] -> collapse.

// CHECK-DAG: #[[$Q:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d2, d1, d4)>
// CHECK-DAG: #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1 floordiv 2, d3, d4)>
// CHECK-DAG: #[[$SC:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>
// CHECK-DAG: #[[$ID4:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG: #[[$PMAP:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d2)>
// CHECK-DAG: #[[$ROW:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-DAG: #[[$PR:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d4)>
// CHECK-DAG: #[[$V:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1 floordiv 2, d4, d3)>
// CHECK-DAG: #[[$OUT:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d2, d1, d3)>
// CHECK-DAG: #[[$SUMMAP:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d2, d1)>
// CHECK-LABEL: func.func @attention_gqa
// CHECK-SAME: (%[[QUERY:.+]]: tensor<1x2x16xf32>, %[[KC:.+]]: tensor<1x2x16x4xf32>, %[[VC:.+]]: tensor<1x2x16x4xf32>, %[[POS:.+]]: tensor<1x2xi64>)
// CHECK-DAG: %[[NEGINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK-DAG: %[[SCALE:.+]] = arith.constant 5.000000e-01 : f32
// CHECK-DAG: %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[Q4:.+]] = tensor.expand_shape %[[QUERY]] {{\[}}[0], [1], [2, 3]] output_shape [1, 2, 4, 4] : tensor<1x2x16xf32> into tensor<1x2x4x4xf32>
// CHECK: %[[DOTS:.+]] = linalg.generic {indexing_maps = [#[[$Q]], #[[$K]], #[[$SC]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[Q4]], %[[KC]] : tensor<1x2x4x4xf32>, tensor<1x2x16x4xf32>) outs(%{{.+}} : tensor<1x4x2x16xf32>)
// Each op of the lowering says which attention and which step it is (for
// kernel formation: attention_decode takes the group as one kernel).
// CHECK-SAME: attrs = {kiln.region = {head_dim = 4 : i64, id = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, op = "tfm.attention", scale = 5.000000e-01 : f32, step = 0 : i64}}
// CHECK: %[[MASKED:.+]] = linalg.generic {indexing_maps = [#[[$ID4]], #[[$PMAP]], #[[$ID4]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[DOTS]], %[[POS]] : tensor<1x4x2x16xf32>, tensor<1x2xi64>)
// CHECK: ^bb0(%[[D:.+]]: f32, %[[P:.+]]: i64, %{{.+}}: f32):
// CHECK: %[[T:.+]] = linalg.index 3 : index
// CHECK: %[[TI:.+]] = arith.index_cast %[[T]] : index to i64
// CHECK: %[[VIS:.+]] = arith.cmpi sle, %[[TI]], %[[P]] : i64
// CHECK: %[[SD:.+]] = arith.mulf %[[D]], %[[SCALE]] : f32
// CHECK: %[[M:.+]] = arith.select %[[VIS]], %[[SD]], %[[NEGINF]] : f32
// CHECK: linalg.yield %[[M]] : f32
// CHECK: %[[MAXINIT:.+]] = linalg.fill {kiln.region = {{{.*}}step = 2 : i64}} ins(%[[NEGINF]] : f32) outs(%{{.+}} : tensor<1x4x2xf32>)
// CHECK: %[[MAX:.+]] = linalg.generic {indexing_maps = [#[[$ID4]], #[[$ROW]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[MASKED]] : tensor<1x4x2x16xf32>) outs(%[[MAXINIT]] : tensor<1x4x2xf32>)
// CHECK: arith.maximumf
// CHECK: %[[PROBS:.+]] = linalg.generic {indexing_maps = [#[[$ID4]], #[[$ROW]], #[[$ID4]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[MASKED]], %[[MAX]] : tensor<1x4x2x16xf32>, tensor<1x4x2xf32>)
// CHECK: ^bb0(%[[S:.+]]: f32, %[[RM:.+]]: f32, %{{.+}}: f32):
// CHECK: %[[SUB:.+]] = arith.subf %[[S]], %[[RM]] : f32
// CHECK: %[[E:.+]] = math.exp %[[SUB]] : f32
// CHECK: %[[EMPTY:.+]] = arith.cmpf oeq, %[[RM]], %[[NEGINF]] : f32
// CHECK: arith.select %[[EMPTY]], %[[ZERO]], %[[E]] : f32
// CHECK: %[[SUM:.+]] = linalg.generic {indexing_maps = [#[[$ID4]], #[[$ROW]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[PROBS]] : tensor<1x4x2x16xf32>)
// CHECK: arith.addf
// CHECK: %[[WEIGHTED:.+]] = linalg.generic {indexing_maps = [#[[$PR]], #[[$V]], #[[$SC]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[PROBS]], %[[VC]] : tensor<1x4x2x16xf32>, tensor<1x2x16x4xf32>) outs(%{{.+}} : tensor<1x4x2x4xf32>)
// CHECK: %[[O4:.+]] = linalg.generic {indexing_maps = [#[[$OUT]], #[[$SUMMAP]], #[[$ID4]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[WEIGHTED]], %[[SUM]] : tensor<1x4x2x4xf32>, tensor<1x4x2xf32>) outs(%{{.+}} : tensor<1x2x4x4xf32>)
// CHECK-SAME: step = 6 : i64}}
// CHECK: ^bb0(%[[W:.+]]: f32, %[[L:.+]]: f32, %{{.+}}: f32):
// CHECK: %[[POSITIVE:.+]] = arith.cmpf ogt, %[[L]], %[[ZERO]] : f32
// CHECK: %[[DIV:.+]] = arith.divf %[[W]], %[[L]] : f32
// CHECK: arith.select %[[POSITIVE]], %[[DIV]], %[[ZERO]] : f32
// CHECK: %[[R:.+]] = tensor.collapse_shape %[[O4]] {{\[}}[0], [1], [2, 3]] : tensor<1x2x4x4xf32> into tensor<1x2x16xf32>
// CHECK: return %[[R]]
func.func @attention_gqa(%q: tensor<1x2x16xf32>, %kc: tensor<1x2x16x4xf32>, %vc: tensor<1x2x16x4xf32>, %pos: tensor<1x2xi64>) -> tensor<1x2x16xf32> {
  %0 = tfm.attention %q, %kc, %vc, %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : tensor<1x2x16xf32>, tensor<1x2x16x4xf32>, tensor<1x2xi64>
  return %0 : tensor<1x2x16xf32>
}

// -----

// Attention in f16 without GQA (kv head = h): q and K/V are extended to f32
// in the two contractions; only the final normalisation rounds to f16.

// CHECK-DAG: #[[$K:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3, d4)>
// CHECK-LABEL: func.func @attention_mha_f16
// CHECK-SAME: (%{{.+}}: tensor<1x1x8xf16>, %[[KC:.+]]: tensor<1x2x8x4xf16>, %[[VC:.+]]: tensor<1x2x8x4xf16>, %{{.+}}: tensor<1x1xi64>)
// CHECK: linalg.generic {indexing_maps = [#{{.+}}, #[[$K]], #{{.+}}]
// CHECK-SAME: ins(%{{.+}}, %[[KC]] : tensor<1x1x2x4xf16>, tensor<1x2x8x4xf16>) outs(%{{.+}} : tensor<1x2x1x8xf32>)
// CHECK-DAG: arith.extf %{{.+}} : f16 to f32
// CHECK-DAG: arith.extf %{{.+}} : f16 to f32
// CHECK: linalg.generic {{.+}} ins(%{{.+}}, %[[VC]] : tensor<1x2x1x8xf32>, tensor<1x2x8x4xf16>) outs(%{{.+}} : tensor<1x2x1x4xf32>)
// CHECK: arith.extf %{{.+}} : f16 to f32
// CHECK: linalg.generic {{.+}} outs(%{{.+}} : tensor<1x1x2x4xf16>)
// CHECK: arith.truncf %{{.+}} : f32 to f16
// CHECK: tensor.collapse_shape %{{.+}} : tensor<1x1x2x4xf16> into tensor<1x1x8xf16>
func.func @attention_mha_f16(%q: tensor<1x1x8xf16>, %kc: tensor<1x2x8x4xf16>, %vc: tensor<1x2x8x4xf16>, %pos: tensor<1x1xi64>) -> tensor<1x1x8xf16> {
  %0 = tfm.attention %q, %kc, %vc, %pos {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : tensor<1x1x8xf16>, tensor<1x2x8x4xf16>, tensor<1x1xi64>
  return %0 : tensor<1x1x8xf16>
}

// -----

// Argmax in f16: one reduction with two results (running max in f32, index
// in i64), strict ogt so the first index wins ties; the index is returned.

// CHECK-DAG: #[[$ID3:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[$ROWS:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @argmax_f16
// CHECK-SAME: (%[[L:.+]]: tensor<1x2x16xf16>)
// CHECK-DAG: %[[Z:.+]] = arith.constant 0 : i64
// CHECK-DAG: %[[NEGINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK: %[[MAX0:.+]] = linalg.fill ins(%[[NEGINF]] : f32) outs(%{{.+}} : tensor<1x2xf32>)
// CHECK: %[[IDX0:.+]] = linalg.fill ins(%[[Z]] : i64) outs(%{{.+}} : tensor<1x2xi64>)
// CHECK: %[[R:.+]]:2 = linalg.generic {indexing_maps = [#[[$ID3]], #[[$ROWS]], #[[$ROWS]]], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[L]] : tensor<1x2x16xf16>) outs(%[[MAX0]], %[[IDX0]] : tensor<1x2xf32>, tensor<1x2xi64>)
// CHECK: ^bb0(%[[X:.+]]: f16, %[[BEST:.+]]: f32, %[[BESTI:.+]]: i64):
// CHECK: %[[XF:.+]] = arith.extf %[[X]] : f16 to f32
// CHECK: %[[I:.+]] = linalg.index 2 : index
// CHECK: %[[II:.+]] = arith.index_cast %[[I]] : index to i64
// CHECK: %[[GT:.+]] = arith.cmpf ogt, %[[XF]], %[[BEST]] : f32
// CHECK: %[[NV:.+]] = arith.select %[[GT]], %[[XF]], %[[BEST]] : f32
// CHECK: %[[NI:.+]] = arith.select %[[GT]], %[[II]], %[[BESTI]] : i64
// CHECK: linalg.yield %[[NV]], %[[NI]] : f32, i64
// CHECK: return %[[R]]#1 : tensor<1x2xi64>
func.func @argmax_f16(%l: tensor<1x2x16xf16>) -> tensor<1x2xi64> {
  %0 = tfm.argmax %l : tensor<1x2x16xf16> -> tensor<1x2xi64>
  return %0 : tensor<1x2xi64>
}

// -----

// Ops of other dialects are left alone.

// CHECK-LABEL: func.func @no_tfm
// CHECK-NEXT: %[[C:.+]] = arith.constant dense<1.000000e+00> : tensor<2xf32>
// CHECK-NEXT: return %[[C]]
func.func @no_tfm() -> tensor<2xf32> {
  %c = arith.constant dense<1.0> : tensor<2xf32>
  return %c : tensor<2xf32>
}

// -----

// A projection by a dequantized weight is one reduction over the packed
// codes: column k reads byte k / 2 and its low (even k) or high (odd k)
// four bits, the scale of group k / 32, and (q - 8) * scale in f32. The
// dequantized matrix is never made; kiln.region names what the loop is.
// CHECK-DAG: = affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 2)>
// CHECK-DAG: = affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 32)>
// CHECK-LABEL: func.func @linear_int4
// CHECK: linalg.generic {indexing_maps = [#{{.+}}, #{{.+}}, #{{.+}}, #{{.+}}], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%{{.+}}, %{{.+}}, %{{.+}} : tensor<1x2x64xf16>, tensor<8x32xi8>, tensor<8x2xf16>)
// CHECK-SAME: kiln.region = {bits = 4 : i64, group_size = 32 : i64, op = "tfm.linear", zero_points = false}
// CHECK: ^bb0(%[[IN:.+]]: f16, %[[B:.+]]: i8, %[[SC:.+]]: f16, %[[ACC:.+]]: f32):
// CHECK:   %[[K:.+]] = linalg.index 3 : index
// CHECK:   %[[BYTE:.+]] = arith.extui %[[B]] : i8 to i32
// CHECK:   %[[KI:.+]] = arith.index_cast %[[K]] : index to i32
// CHECK:   %[[ODD:.+]] = arith.andi %[[KI]], %{{.+}} : i32
// CHECK:   %[[SH:.+]] = arith.shli %[[ODD]], %{{.+}} : i32
// CHECK:   %[[HI:.+]] = arith.shrui %[[BYTE]], %[[SH]] : i32
// CHECK:   %[[Q:.+]] = arith.andi %[[HI]], %{{.+}} : i32
// CHECK:   %[[QF:.+]] = arith.uitofp %[[Q]] : i32 to f32
// CHECK:   %[[SF:.+]] = arith.extf %[[SC]] : f16 to f32
// CHECK:   %[[C:.+]] = arith.subf %[[QF]], %{{.+}} : f32
// CHECK:   %[[W:.+]] = arith.mulf %[[C]], %[[SF]] : f32
// CHECK:   %[[XF:.+]] = arith.extf %[[IN]] : f16 to f32
// CHECK:   %[[PR:.+]] = arith.mulf %[[XF]], %[[W]] : f32
// CHECK:   arith.addf %[[ACC]], %[[PR]] : f32
// CHECK: arith.truncf %{{.+}} : f32 to f16
func.func @linear_int4(%x: tensor<1x2x64xf16>, %p: tensor<8x32xi8>, %s: tensor<8x2xf16>) -> tensor<1x2x8xf16> {
  %w = tfm.dequantize %p, %s {bits = 4 : i64, group_size = 32 : i64} : tensor<8x32xi8>, tensor<8x2xf16> -> tensor<8x64xf16>
  %y = tfm.linear %x, %w layout = <out_in> : (tensor<1x2x64xf16>, tensor<8x64xf16>) -> tensor<1x2x8xf16>
  return %y : tensor<1x2x8xf16>
}

// -----

// A dequantize no projection absorbs becomes the float matrix; with zero
// points, (q - zero) * scale.
// CHECK-LABEL: func.func @dequantize_int8
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]
// CHECK-SAME: ins(%{{.+}}, %{{.+}}, %{{.+}} : tensor<8x64xi8>, tensor<8x1xf32>, tensor<8x1xf32>)
// CHECK: ^bb0(%[[B:.+]]: i8, %[[SC:.+]]: f32, %[[Z:.+]]: f32, %{{.+}}: f32):
// CHECK:   %[[BYTE:.+]] = arith.extui %[[B]] : i8 to i32
// CHECK:   %[[QF:.+]] = arith.uitofp %[[BYTE]] : i32 to f32
// CHECK:   %[[C:.+]] = arith.subf %[[QF]], %[[Z]] : f32
// CHECK:   %[[W:.+]] = arith.mulf %[[C]], %[[SC]] : f32
// CHECK:   linalg.yield %[[W]] : f32
func.func @dequantize_int8(%p: tensor<8x64xi8>, %s: tensor<8x1xf32>, %z: tensor<8x1xf32>) -> tensor<8x64xf32> {
  %w = tfm.dequantize %p, %s zero_points %z {bits = 8 : i64, group_size = 64 : i64} : tensor<8x64xi8>, tensor<8x1xf32>, tensor<8x1xf32> -> tensor<8x64xf32>
  return %w : tensor<8x64xf32>
}

// -----

// With more rows than a decode step's (16 > 8: prefill), the weight is
// dequantized once into its float type and the projection is the float one:
// decoding in the reduction would decode every code once per row.
// CHECK-LABEL: func.func @linear_int4_prefill
// CHECK: %[[W:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]} ins(%{{.+}}, %{{.+}} : tensor<8x32xi8>, tensor<8x2xf16>) outs(%{{.+}} : tensor<8x64xf16>)
// CHECK: arith.truncf %{{.+}} : f32 to f16
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%{{.+}}, %[[W]] : tensor<1x16x64xf16>, tensor<8x64xf16>)
// CHECK-NOT: kiln.region
func.func @linear_int4_prefill(%x: tensor<1x16x64xf16>, %p: tensor<8x32xi8>, %s: tensor<8x2xf16>) -> tensor<1x16x8xf16> {
  %w = tfm.dequantize %p, %s {bits = 4 : i64, group_size = 32 : i64} : tensor<8x32xi8>, tensor<8x2xf16> -> tensor<8x64xf16>
  %y = tfm.linear %x, %w layout = <out_in> : (tensor<1x16x64xf16>, tensor<8x64xf16>) -> tensor<1x16x8xf16>
  return %y : tensor<1x16x8xf16>
}

// -----

// Dynamic quantization (onnxruntime's DynamicQuantizeLinear, dequantized): one
// reduction of the whole tensor into two f32 scalars started at 0 (so lo =
// min(0, min x) and hi = max(0, max x)), then per element in f32: the scale
// (hi - lo) / 255, the zero point round_even(-lo / s) clamped to [0, 255], the
// code round_even(x / s) + z clamped alike, and (q - z) * s; 0 where s = 0.

// CHECK-DAG: #[[$ID3:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[$ALL:.+]] = affine_map<(d0, d1, d2) -> ()>
// CHECK-LABEL: func.func @dynamic_quantize
// CHECK-SAME: (%[[X:.+]]: tensor<1x2x8xf16>)
// CHECK-DAG: %[[LEVELS:.+]] = arith.constant 2.550000e+02 : f32
// CHECK-DAG: %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[LO0:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.+}} : tensor<f32>) -> tensor<f32>
// CHECK: %[[HI0:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.+}} : tensor<f32>) -> tensor<f32>
// CHECK: %[[STATS:.+]]:2 = linalg.generic {indexing_maps = [#[[$ID3]], #[[$ALL]], #[[$ALL]]], iterator_types = ["reduction", "reduction", "reduction"]}
// CHECK-SAME: ins(%[[X]] : tensor<1x2x8xf16>) outs(%[[LO0]], %[[HI0]] : tensor<f32>, tensor<f32>)
// CHECK: arith.minimumf
// CHECK: arith.maximumf
// CHECK: %[[R:.+]] = linalg.generic {indexing_maps = [#[[$ID3]], #[[$ALL]], #[[$ALL]], #[[$ID3]]], iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[X]], %[[STATS]]#0, %[[STATS]]#1 : tensor<1x2x8xf16>, tensor<f32>, tensor<f32>)
// CHECK-NEXT: ^bb0(%{{.+}}: f16, %[[LO:.+]]: f32, %[[HI:.+]]: f32, %{{.+}}: f16):
// CHECK-NEXT: %[[RANGE:.+]] = arith.subf %[[HI]], %[[LO]] : f32
// CHECK-NEXT: %[[S:.+]] = arith.divf %[[RANGE]], %[[LEVELS]] : f32
// CHECK: math.roundeven
// CHECK: math.roundeven
// CHECK: %[[FLAT:.+]] = arith.cmpf oeq, %[[S]], %[[ZERO]] : f32
// CHECK: arith.truncf {{.+}} : f32 to f16
// CHECK: return %[[R]]
func.func @dynamic_quantize(%x: tensor<1x2x8xf16>) -> tensor<1x2x8xf16> {
  %0 = tfm.dynamic_quantize %x : tensor<1x2x8xf16>
  return %0 : tensor<1x2x8xf16>
}
