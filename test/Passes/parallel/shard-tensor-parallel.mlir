// RUN: kiln-opt %s --kiln-shard-tensor-parallel="ranks=2 rank=1" | FileCheck %s --check-prefix=R1
// RUN: kiln-opt %s --kiln-shard-tensor-parallel="ranks=2 rank=0" | FileCheck %s --check-prefix=R0
// RUN: kiln-opt %s --kiln-shard-tensor-parallel="ranks=1" | FileCheck %s --check-prefix=ONE
// RUN: not kiln-opt %s --kiln-shard-tensor-parallel="ranks=4" 2>&1 | FileCheck %s --check-prefix=FOUR
// RUN: not kiln-opt %s --kiln-shard-tensor-parallel="ranks=2 rank=2" 2>&1 | FileCheck %s --check-prefix=RANK

// One decoder layer (hidden 4, 4 query heads and 2 KV heads of 2, FFN 6,
// vocabulary 8, tied lm_head) split over two ranks. The weights are
// numbered so that each shard's bytes show which block it took:
// wq[k, n] = 8k + n, wk = 100 + 4k + n, wo[k, n] = 300 + 4k + n,
// wg[n, k] = 400 + 4n + k, wd[n, k] = 600 + 6n + k, head = 700 + 4v + k.

// Rank 1: query heads 2-3 (columns 4-7 of the [in, out] wq), KV head 1
// (columns 2-3 of wk and wv), o_proj rows 4-7 with a zero bias (rank 0 adds
// the bias), gate/up rows 3-5 of the [out, in] weights, down columns 3-5,
// lm_head rows 4-7, and the embedding the same rows of the tied table (one
// global for both), ids outside them looking up zeros (`rows from` a weight
// holding 4, 0 on rank 0: the program is the same) and an all-reduce after
// it; the norm stays whole.
// R1: module attributes {tfm.rank = 1 : i64, tfm.tensor_parallel = 2 : i64}
// R1-DAG: ml_program.global private @wq.shard(dense_resource<wq.shard> : tensor<4x4xf32>)
// R1-DAG: ml_program.global private @wk.shard(dense_resource<wk.shard> : tensor<4x2xf32>)
// R1-DAG: ml_program.global private @wv.shard(dense_resource<wv.shard> : tensor<4x2xf32>)
// R1-DAG: ml_program.global private @wo.shard(dense_resource<wo.shard> : tensor<4x4xf32>)
// R1-DAG: ml_program.global private @bo.shard(dense<0.000000e+00> : tensor<4xf32>)
// R1-DAG: ml_program.global private @wg.shard(dense_resource<wg.shard> : tensor<3x4xf32>)
// R1-DAG: ml_program.global private @wu.shard(dense_resource<wu.shard> : tensor<3x4xf32>)
// R1-DAG: ml_program.global private @wd.shard(dense_resource<wd.shard> : tensor<4x3xf32>)
// R1-DAG: ml_program.global private @head.shard(dense_resource<head.shard> : tensor<4x4xf32>)
// R1-DAG: ml_program.global private @norm(
// R1-DAG: ml_program.global private @head.first_row(dense<4> : tensor<1xi64>)
// The originals of the split weights are gone.
// R1-NOT: ml_program.global private @wq(
// R1-NOT: ml_program.global private @wo(
// R1-NOT: ml_program.global private @bo(
// R1-NOT: ml_program.global private @head(
// R1-NOT: ml_program.global private @head.shard_0(
// The KV caches hold one KV head a rank.
// R1-LABEL: func.func @forward(
// R1-SAME: %[[KC:[^:]+]]: tensor<?x1x?x2xf32> {tfm.layer = 0 : i64, tfm.role = "key_cache"}, %[[VC:[^:]+]]: tensor<?x1x?x2xf32> {tfm.layer = 0 : i64, tfm.role = "value_cache"})
// R1-SAME: -> (tensor<?x?x8xf32>, tensor<?x1x?x2xf32>, tensor<?x1x?x2xf32>)
// R1: %[[E:.+]] = tfm.embedding %head.shard[%{{.+}}] rows from %head.first_row : tensor<4x4xf32>, tensor<?x?xi64>, tensor<1xi64> -> tensor<?x?x4xf32>
// R1-NEXT: %[[H0:.+]] = tfm.all_reduce %[[E]] {ranks = 2 : i64} : tensor<?x?x4xf32>
// R1: %[[Q:.+]] = tfm.linear %{{.+}}, %wq.shard layout = <in_out> : (tensor<?x?x4xf32>, tensor<4x4xf32>) -> tensor<?x?x4xf32>
// R1: %[[K:.+]] = tfm.linear %{{.+}}, %wk.shard layout = <in_out> : (tensor<?x?x4xf32>, tensor<4x2xf32>) -> tensor<?x?x2xf32>
// R1: %[[V:.+]] = tfm.linear %{{.+}}, %wv.shard layout = <in_out> : (tensor<?x?x4xf32>, tensor<4x2xf32>) -> tensor<?x?x2xf32>
// R1: %[[QR:.+]] = tfm.rope %[[Q]], {{.+}} : tensor<?x?x4xf32>,
// R1: %[[KR:.+]] = tfm.rope %[[K]], {{.+}} : tensor<?x?x2xf32>,
// R1: %[[KC1:.+]] = tfm.kv_append %[[KR]] into %[[KC]] {{.+}} : tensor<?x?x2xf32>, tensor<?x1x?x2xf32>
// R1: %[[VC1:.+]] = tfm.kv_append %[[V]] into %[[VC]] {{.+}} : tensor<?x?x2xf32>, tensor<?x1x?x2xf32>
// R1: %[[A:.+]] = tfm.attention %[[QR]], %[[KC1]], %[[VC1]], %{{.+}} {head_dim = 2 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64, {{.+}}} : tensor<?x?x4xf32>, tensor<?x1x?x2xf32>
// R1: %[[O:.+]] = tfm.linear %[[A]], %wo.shard bias %bo.shard layout = <in_out> : (tensor<?x?x4xf32>, tensor<4x4xf32>, tensor<4xf32>) -> tensor<?x?x4xf32>
// R1-NEXT: %[[OS:.+]] = tfm.all_reduce %[[O]] {ranks = 2 : i64} : tensor<?x?x4xf32>
// R1-NEXT: %[[H1:.+]] = tfm.add %[[H0]], %[[OS]]
// R1: %[[G:.+]] = tfm.linear %{{.+}}, %wg.shard layout = <out_in> : (tensor<?x?x4xf32>, tensor<3x4xf32>) -> tensor<?x?x3xf32>
// R1: %[[U:.+]] = tfm.linear %{{.+}}, %wu.shard layout = <out_in> : (tensor<?x?x4xf32>, tensor<3x4xf32>) -> tensor<?x?x3xf32>
// R1: %[[M:.+]] = tfm.swiglu %[[G]], %[[U]] : tensor<?x?x3xf32>
// R1: %[[D:.+]] = tfm.linear %[[M]], %wd.shard layout = <out_in> : (tensor<?x?x3xf32>, tensor<4x3xf32>) -> tensor<?x?x4xf32>
// R1-NEXT: %[[DS:.+]] = tfm.all_reduce %[[D]] {ranks = 2 : i64}
// R1-NEXT: %[[H2:.+]] = tfm.add %[[H1]], %[[DS]]
// The lm_head slice is no longer the whole embedding table: not tied (it is
// the embedding's slice: one global, loaded twice).
// R1: %[[L:.+]] = tfm.logits %[[H2]], %head.shard_0 layout = <out_in> : (tensor<?x?x4xf32>, tensor<4x4xf32>) -> tensor<?x?x4xf32>
// R1-NEXT: %[[LS:.+]] = tfm.all_gather %[[L]] {axis = 2 : i64, ranks = 2 : i64} : tensor<?x?x4xf32> -> tensor<?x?x8xf32>
// R1-NEXT: return %[[LS]], %[[KC1]], %[[VC1]]
// The blocks, as the numbering above gives them: wq columns 4-7 of each row
// (4, 5, 6, 7, 12, ...), wk columns 2-3 (102, 103, 106, ...), wo rows 4-7
// (316, 317, ...), wg rows 3-5 (412, ...), wd columns 3-5 of each row (603,
// 604, 605, 609, ...), head rows 4-7 (716, ...).
// R1-DAG: wq.shard: "0x08000000000080400000A0400000C0400000E040000040410000504100006041000070410000A0410000A8410000B0410000B8410000E0410000E8410000F0410000F841"
// R1-DAG: wk.shard: "0x080000000000CC420000CE420000D4420000D6420000DC420000DE420000E4420000E642"
// R1-DAG: wo.shard: "0x0800000000009E4300809E4300009F4300809F430000A0430080A0430000A1430080A1430000A2430080A2430000A3430080A3430000A4430080A4430000A5430080A543"
// R1-DAG: wg.shard: "0x080000000000CE430080CE430000CF430080CF430000D0430080D0430000D1430080D1430000D2430080D2430000D3430080D343"
// R1-DAG: wd.shard: "0x0800000000C016440000174400401744004018440080184400C0184400C0194400001A4400401A4400401B4400801B4400C01B44"
// R1-DAG: head.shard: "0x0800000000003344004033440080334400C0334400003444004034440080344400C0344400003544004035440080354400C0354400003644004036440080364400C03644"

// Rank 0: the same program; the first blocks, and the o_proj bias itself.
// R0: module attributes {tfm.rank = 0 : i64, tfm.tensor_parallel = 2 : i64}
// R0-DAG: ml_program.global private @bo.shard(dense_resource<bo.shard> : tensor<4xf32>)
// R0-DAG: ml_program.global private @wq.shard(dense_resource<wq.shard> : tensor<4x4xf32>)
// R0-DAG: ml_program.global private @head.first_row(dense<0> : tensor<1xi64>)
// R0: tfm.embedding %head.shard[%{{.+}}] rows from %head.first_row
// R0: tfm.attention {{.+}} {head_dim = 2 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64,
// R0-COUNT-2: tfm.all_reduce
// R0: tfm.all_gather
// R0-DAG: wq.shard: "0x08000000000000000000803F000000400000404000000041000010410000204100003041000080410000884100009041000098410000C0410000C8410000D0410000D841"
// R0-DAG: bo.shard: "0x080000000000803F000000400000404000008040"

// One rank: nothing changes.
// ONE-NOT: tensor_parallel
// ONE-NOT: .shard
// ONE-NOT: tfm.all_
// ONE: tfm.attention {{.+}} num_heads = 4 : i64, num_kv_heads = 2 : i64

// Two KV heads do not split four ways.
// FOUR: error: cannot split attention over 4 ranks: its 4 query heads and 2 key/value heads must both be multiples of 4
// RANK: error: kiln-shard-tensor-parallel: rank 2 is not one of 2 ranks

ml_program.global private @wq(dense<[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0], [16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0], [24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0]]> : tensor<4x8xf32>) : tensor<4x8xf32>
ml_program.global private @wk(dense<[[100.0, 101.0, 102.0, 103.0], [104.0, 105.0, 106.0, 107.0], [108.0, 109.0, 110.0, 111.0], [112.0, 113.0, 114.0, 115.0]]> : tensor<4x4xf32>) : tensor<4x4xf32>
ml_program.global private @wv(dense<[[200.0, 201.0, 202.0, 203.0], [204.0, 205.0, 206.0, 207.0], [208.0, 209.0, 210.0, 211.0], [212.0, 213.0, 214.0, 215.0]]> : tensor<4x4xf32>) : tensor<4x4xf32>
ml_program.global private @wo(dense<[[300.0, 301.0, 302.0, 303.0], [304.0, 305.0, 306.0, 307.0], [308.0, 309.0, 310.0, 311.0], [312.0, 313.0, 314.0, 315.0], [316.0, 317.0, 318.0, 319.0], [320.0, 321.0, 322.0, 323.0], [324.0, 325.0, 326.0, 327.0], [328.0, 329.0, 330.0, 331.0]]> : tensor<8x4xf32>) : tensor<8x4xf32>
ml_program.global private @bo(dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>) : tensor<4xf32>
ml_program.global private @norm(dense<[1.0, 1.0, 1.0, 1.0]> : tensor<4xf32>) : tensor<4xf32>
ml_program.global private @wg(dense<[[400.0, 401.0, 402.0, 403.0], [404.0, 405.0, 406.0, 407.0], [408.0, 409.0, 410.0, 411.0], [412.0, 413.0, 414.0, 415.0], [416.0, 417.0, 418.0, 419.0], [420.0, 421.0, 422.0, 423.0]]> : tensor<6x4xf32>) : tensor<6x4xf32>
ml_program.global private @wu(dense<[[500.0, 501.0, 502.0, 503.0], [504.0, 505.0, 506.0, 507.0], [508.0, 509.0, 510.0, 511.0], [512.0, 513.0, 514.0, 515.0], [516.0, 517.0, 518.0, 519.0], [520.0, 521.0, 522.0, 523.0]]> : tensor<6x4xf32>) : tensor<6x4xf32>
ml_program.global private @wd(dense<[[600.0, 601.0, 602.0, 603.0, 604.0, 605.0], [606.0, 607.0, 608.0, 609.0, 610.0, 611.0], [612.0, 613.0, 614.0, 615.0, 616.0, 617.0], [618.0, 619.0, 620.0, 621.0, 622.0, 623.0]]> : tensor<4x6xf32>) : tensor<4x6xf32>
ml_program.global private @head(dense<[[700.0, 701.0, 702.0, 703.0], [704.0, 705.0, 706.0, 707.0], [708.0, 709.0, 710.0, 711.0], [712.0, 713.0, 714.0, 715.0], [716.0, 717.0, 718.0, 719.0], [720.0, 721.0, 722.0, 723.0], [724.0, 725.0, 726.0, 727.0], [728.0, 729.0, 730.0, 731.0]]> : tensor<8x4xf32>) : tensor<8x4xf32>
func.func @forward(%ids: tensor<?x?xi64> {tfm.role = "tokens"}, %pos: tensor<?x?xi64> {tfm.role = "positions"}, %kc: tensor<?x2x?x2xf32> {tfm.layer = 0 : i64, tfm.role = "key_cache"}, %vc: tensor<?x2x?x2xf32> {tfm.layer = 0 : i64, tfm.role = "value_cache"}) -> (tensor<?x?x8xf32>, tensor<?x2x?x2xf32>, tensor<?x2x?x2xf32>) {
  %freq = arith.constant dense<[1.0]> : tensor<1xf32>
  %wq = ml_program.global_load_const @wq : tensor<4x8xf32>
  %wk = ml_program.global_load_const @wk : tensor<4x4xf32>
  %wv = ml_program.global_load_const @wv : tensor<4x4xf32>
  %wo = ml_program.global_load_const @wo : tensor<8x4xf32>
  %bo = ml_program.global_load_const @bo : tensor<4xf32>
  %norm = ml_program.global_load_const @norm : tensor<4xf32>
  %wg = ml_program.global_load_const @wg : tensor<6x4xf32>
  %wu = ml_program.global_load_const @wu : tensor<6x4xf32>
  %wd = ml_program.global_load_const @wd : tensor<4x6xf32>
  %head = ml_program.global_load_const @head : tensor<8x4xf32>
  %h0 = tfm.embedding %head[%ids] : tensor<8x4xf32>, tensor<?x?xi64> -> tensor<?x?x4xf32>
  %n0 = tfm.rms_norm %h0, %norm {epsilon = 1.0e-05 : f32} : tensor<?x?x4xf32>, tensor<4xf32>
  %q = tfm.linear %n0, %wq layout = <in_out> : (tensor<?x?x4xf32>, tensor<4x8xf32>) -> tensor<?x?x8xf32>
  %k = tfm.linear %n0, %wk layout = <in_out> : (tensor<?x?x4xf32>, tensor<4x4xf32>) -> tensor<?x?x4xf32>
  %v = tfm.linear %n0, %wv layout = <in_out> : (tensor<?x?x4xf32>, tensor<4x4xf32>) -> tensor<?x?x4xf32>
  %qr = tfm.rope %q, %pos, %freq {head_dim = 2 : i64} : tensor<?x?x8xf32>, tensor<?x?xi64>, tensor<1xf32>
  %kr = tfm.rope %k, %pos, %freq {head_dim = 2 : i64} : tensor<?x?x4xf32>, tensor<?x?xi64>, tensor<1xf32>
  %kc1 = tfm.kv_append %kr into %kc at %pos : tensor<?x?x4xf32>, tensor<?x2x?x2xf32>, tensor<?x?xi64>
  %vc1 = tfm.kv_append %v into %vc at %pos : tensor<?x?x4xf32>, tensor<?x2x?x2xf32>, tensor<?x?xi64>
  %a = tfm.attention %qr, %kc1, %vc1, %pos {head_dim = 2 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 0.707106769 : f32} : tensor<?x?x8xf32>, tensor<?x2x?x2xf32>, tensor<?x?xi64>
  %o = tfm.linear %a, %wo bias %bo layout = <in_out> : (tensor<?x?x8xf32>, tensor<8x4xf32>, tensor<4xf32>) -> tensor<?x?x4xf32>
  %h1 = tfm.add %h0, %o : tensor<?x?x4xf32>
  %n1 = tfm.rms_norm %h1, %norm {epsilon = 1.0e-05 : f32} : tensor<?x?x4xf32>, tensor<4xf32>
  %g = tfm.linear %n1, %wg layout = <out_in> : (tensor<?x?x4xf32>, tensor<6x4xf32>) -> tensor<?x?x6xf32>
  %u = tfm.linear %n1, %wu layout = <out_in> : (tensor<?x?x4xf32>, tensor<6x4xf32>) -> tensor<?x?x6xf32>
  %m = tfm.swiglu %g, %u : tensor<?x?x6xf32>
  %d = tfm.linear %m, %wd layout = <out_in> : (tensor<?x?x6xf32>, tensor<4x6xf32>) -> tensor<?x?x4xf32>
  %h2 = tfm.add %h1, %d : tensor<?x?x4xf32>
  %l = tfm.logits %h2, %head layout = <out_in> {tied} : (tensor<?x?x4xf32>, tensor<8x4xf32>) -> tensor<?x?x8xf32>
  return %l, %kc1, %vc1 : tensor<?x?x8xf32>, tensor<?x2x?x2xf32>, tensor<?x2x?x2xf32>
}
