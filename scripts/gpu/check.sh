#!/usr/bin/env bash
# The whole GPU check, in one call on the GPU host (the device tool; carry `.gpu`, made by
# scripts/gpu/build-bundle.sh on a build machine):
#
#   scripts/gpu/check.sh numerics   # every bundled export on the GPU vs PyTorch and vs the CPU target
#   scripts/gpu/check.sh 1b         # Llama-3.2-1B shape, fp16, int8 and int4:128: decode/prefill tok/s vs PyTorch
#   scripts/gpu/check.sh quant      # the real model quantized (perplexity, top-1 agreement vs fp16)
#                                   # and 1b fp16/int8/int4:128 decode, without the fp16 extras
#   scripts/gpu/check.sh all        # numerics, quant and 1b
#   scripts/gpu/check.sh 8b         # Llama-3-8B shape, fp16 and int4:128 (export ~6 min): its own
#                                   # call; KILN_8B_PREFILL=2048 adds fp16 prefill of that many
#                                   # tokens beside PyTorch eager's
#                                   # call; KILN_8B_SCHEMES picks the schemes (see below)
#   scripts/gpu/check.sh checksum   # what verifying the weights costs at load (1b artifact)
#   scripts/gpu/check.sh sampling   # sampling on the device: the tiny fp16 export's numerics and
#                                   # draw statistics (check_sampling.py), the real model's greedy
#                                   # and sampled text, the 1b shape's decode greedy vs sampled
#   scripts/gpu/check.sh compile    # compile time and peak RSS on 2 cores (taskset -c 0,1) with
#                                   # and without --no-fuse=dedup-kernels, the two artifacts'
#                                   # tokens and decode speed, and (8b) the cost of verifying the
#                                   # weights at load; KILN_COMPILE_SHAPES (default "1b 8b"; the
#                                   # 8b needs /tmp/kiln-8b-model from an "8b" call just before)
#   scripts/gpu/check.sh stream     # issue 15: the 8b and 1b shapes (make_llama.py --tiled-weights)
#                                   # compiled on 2 cores with streamed weights (time, peak RSS),
#                                   # cmp against --stream-weights=false, decode of the result
#   scripts/gpu/check.sh gemvq      # the real model's quantized perplexity, then the 1b and 8b
#                                   # shapes (make_llama.py) in the variants of KILN_GEMVQ_1B and
#                                   # KILN_GEMVQ_8B: decode tok/s, --bench, decode kernels
#                                   # (KILN_GEMVQ_RM: the real model's variants, default all)
#   scripts/gpu/check.sh serve      # kiln-serve on the GPU: check_serve.py with the real model
#                                   # (4 batch rows, fp16 and int4:32), serve-bench.py at 1 and 4
#   scripts/gpu/check.sh throughput # kiln-serve's decode throughput at 1/8/32/64 concurrent requests
#                                   # (1b and 8b shapes, fp16) next to PyTorch's batched generate
#   scripts/gpu/check.sh loadtest   # 1000 requests (a tenth cancelled) through kiln-serve on the
#                                   # GPU: leaks, RSS, device memory; then check_serve.py
#   scripts/gpu/check.sh paged      # issue 17's paged KV cache: check_serve.py --paged (real model,
#                                   # a pool that runs out), the 1b shape flat vs paged (kiln-run
#                                   # --bench, greedy tokens, kiln-serve at 64 at once), the load
#                                   # test over a paged pool (blocks back at the end)
#   scripts/gpu/check.sh splitkv    # the 8b shape (make_llama.py --tiled-weights): split-KV decode
#                                   # attention vs --no-fuse=split-kv, tokens, tok/s, profiles
#   scripts/gpu/check.sh prefill    # the fast loop for prefill work: the bundled exports' and the
#                                   # real model's numerics, then the 1b shape's prefill at 512
#                                   # and 2048 tokens (kiln-run --bench, KILN_PROFILE) beside
#                                   # PyTorch eager's in the same call
#   scripts/gpu/check.sh wgmma      # prefill's projections on wgmma vs mma.sync (--no-fuse=wgmma):
#                                   # real-model perplexity, 1b/8b shapes' logits, tokens, tok/s
#   scripts/gpu/check.sh decode     # the fast loop for decode work: the real and mid-sized models'
#                                   # numerics, then the 1b shape's decode (fp16, int4:128) with
#                                   # per-kernel profiles; KILN_VARIANTS="name:VAR=value,... ..."
#                                   # adds fp16 builds compiled and run with those settings
#
# Logs and JSON go to $OUT (default /tmp/kiln-gpu-out); a summary table is printed last.
set -uo pipefail
cd "$(dirname "$0")/../.."
what=${1:-all}
OUT=${OUT:-/tmp/kiln-gpu-out}
W=/tmp/kiln-gpu
PY=${PYTHON:-python3}
mkdir -p "$OUT"
rm -rf "$W" && mkdir -p "$W"
tar -C "$W" -xJf .gpu/bundle.tar.xz || { echo "check: cannot unpack .gpu/bundle.tar.xz"; exit 1; }
export PATH="$W/bundle/bin:$PATH"
summary="$OUT/summary.txt"
: > "$summary"

gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader | head -1)
cap=$(echo "$gpu" | awk -F', ' '{print $4}' | tr -d .)
arch="sm_${cap}"
echo "device: $gpu -> --target $arch" | tee -a "$summary"
command -v ptxas >/dev/null || export PATH="/usr/local/cuda/bin:$PATH"

fail=0
# N token ids of the Llama-3 vocabulary from a fixed seed: random_ids SEED N.
random_ids() {
  "$PY" -c "import random; random.seed($1); print(','.join(str(random.randrange(128256)) for _ in range($2)))"
}
# Puts the outcome of a numerics log ($OUT/numerics-NAME.log) in the summary;
# the exit status of what wrote it is the second argument.
record() { # name status
  if [ "$2" = 0 ]; then
    grep -E "ok:|FAIL" "$OUT/numerics-$1.log" | sed "s/^/  /" >> "$summary"
  else
    fail=1
    echo "  FAILED: $1 (see numerics-$1.log):" >> "$summary"
    tail -5 "$OUT/numerics-$1.log" | sed "s/^/    /" >> "$summary"
  fi
}

# Decode of the model $2 (shape name $1) compiled as each variant of $4: a variant is
# "name:setting,..." whose settings are VAR=value environment for kiln-compile or its --flags;
# $5 (optional) are flags every variant gets. Per variant: the greedy tokens of the prompt $3
# (ids) + 256 new, decode tok/s, kiln-run --bench, the decode kernels' profile, and after the
# first how many greedy tokens agree with the first's. Logs stay in $W.
decode_variants() {
  local shape=$1 m=$2 prompt=$3 v tag first="" k a
  local -a envs flags settings common
  read -ra common <<< "${5:-}"
  for v in $4; do
    tag=${v%%:*}; envs=(); flags=("${common[@]}")
    IFS=, read -ra settings <<< "${v#*:}"
    for a in "${settings[@]}"; do case $a in --*) flags+=("$a") ;; *=*) envs+=("$a") ;; esac; done
    k="$W/$shape-$tag.kiln"
    env "${envs[@]}" kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len 1024 --prefill-chunk 512 \
      --stream-weights=false "${flags[@]}" -o "$k" > "$W/compile-$shape-$tag.log" 2>&1 || fail=1
    echo "$shape $tag:${envs[*]:+ ${envs[*]}}${flags[*]:+ ${flags[*]}}" >> "$summary"
    grep -E "memory: weights|error" "$W/compile-$shape-$tag.log" | sed "s/^/  /" >> "$summary"
    [ -f "$k" ] || continue
    kiln-run "$k" --prompt-ids "$prompt" --max-new-tokens 256 --format ids \
      > "$W/$shape-$tag.ids" 2> "$W/run-$shape-$tag.log" || fail=1
    grep -E "decode:|error" "$W/run-$shape-$tag.log" | sed "s/^/  /" >> "$summary"
    kiln-run "$k" --bench 2>&1 | grep -E "decode|error" | sed "s/^/  /" >> "$summary"
    KILN_PROFILE=1 KILN_PROFILE_TOP=decode kiln-run "$k" --prompt-ids "$prompt" \
      --max-new-tokens 33 --format ids > "$W/profile-$shape-$tag.log" 2>&1 || fail=1
    grep -E "kiln profile: (GPU time|.*decode_k[0-9]+_)|error" "$W/profile-$shape-$tag.log" \
      | head -14 | sed -E "s/^kiln profile: +/  /" >> "$summary"
    [ -n "${KILN_NCU-}" ] && ncu_decode "$shape-$tag" "$k" "$prompt"
    rm -f "$k"
    if [ -z "$first" ]; then first=$tag; continue; fi
    "$PY" - "$W/$shape-$first.ids" "$W/$shape-$tag.ids" "$first" >> "$summary" <<'PYEOF' || true
import sys
a, b = (open(f).read().split() for f in sys.argv[1:3])
same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
print(f"  greedy tokens vs {sys.argv[3]}: the first {same} of {len(a)} agree")
PYEOF
  done
}
# KILN_NCU=1: Nsight Compute's counters for the launches of one decode step (the second),
# when ncu is on the host: time, DRAM bytes and throughput, issue activity, occupancy and the
# main stall reasons per kernel, as CSV in $OUT/ncu-NAME.csv. ncu_decode NAME ARTIFACT PROMPT
# (the compile log $W/compile-NAME.log says how many launches a decode step makes).
ncu_decode() {
  local n ncu
  n=$(grep -oE "decode [0-9]+ launches" "$W/compile-$1.log" | head -1 | grep -oE "[0-9]+")
  [ -n "$n" ] || { echo "  ncu: no decode launch count in compile-$1.log" >> "$summary"; return; }
  ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  [ -n "$ncu" ] || { echo "  ncu: not on this host" >> "$summary"; return; }
  KILN_CUDA_GRAPHS=0 timeout 120 "$ncu" --csv --page raw --kernel-name regex:decode_k \
    --launch-skip "$n" --launch-count "$n" --metrics \
gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,\
sm__throughput.avg.pct_of_peak_sustained_elapsed,smsp__issue_active.avg.pct_of_peak_sustained_active,\
sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__grid_size,\
launch__occupancy_limit_registers,smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio,\
smsp__average_warps_issue_stalled_lg_throttle_per_issue_active.ratio,\
smsp__average_warps_issue_stalled_wait_per_issue_active.ratio,\
smsp__average_warps_issue_stalled_math_pipe_throttle_per_issue_active.ratio,\
smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio,\
smsp__average_warps_issue_stalled_short_scoreboard_per_issue_active.ratio \
    "$W/bundle/bin/kiln-run" "$2" --prompt-ids "$3" --max-new-tokens 3 --format ids \
    > "$OUT/ncu-$1.csv" 2> "$W/ncu-$1.log"
  echo "  ncu ($ncu): exit $?, $(grep -c '"decode_k' "$OUT/ncu-$1.csv") kernels in ncu-$1.csv; $(grep -m1 -iE 'ERR|error' "$W/ncu-$1.log" "$OUT/ncu-$1.csv" | head -c 200)" >> "$summary"
}
# make_llama.py's dimensions of a Llama shape: shape_dims 1b|8b (nothing for another name).
shape_dims() {
  case $1 in
    8b) echo "--layers 32 --hidden 4096 --heads 32 --kv-heads 8 --head-dim 128 --ffn 14336 --untied" ;;
    1b) echo "--layers 16 --hidden 2048 --heads 32 --kv-heads 8 --head-dim 64 --ffn 8192" ;;
  esac
}
# The real model compiled for the GPU ($W/rm-fp16.kiln): its greedy text equals the CPU
# target's (ids made by build-bundle.sh).
realmodel_greedy() {
  kiln-compile examples/realmodel/model.onnx --target "$arch" --max-seq-len 512 --quiet \
    -o "$W/rm-fp16.kiln" > "$OUT/compile-rm-fp16.log" 2>&1 || fail=1
  kiln-run "$W/rm-fp16.kiln" --prompt 'def fibonacci(n):' --max-new-tokens 64 --format ids \
    > "$W/rm-fibonacci.ids" 2> "$OUT/text-rm.log" || fail=1
  if cmp -s "$W/rm-fibonacci.ids" "$W/bundle/cpu/realmodel-fibonacci.ids"; then
    echo "realmodel --prompt 'def fibonacci(n):' (64 new, greedy): GPU ids equal the CPU's" >> "$summary"
  else
    fail=1
    echo "FAIL: realmodel greedy text differs from the CPU's" >> "$summary"
  fi
}

if [ "$what" = numerics ] || [ "$what" = all ] || [ "$what" = decode ] || [ "$what" = prefill ]; then
  exports="nocache_dynamo nocache_torchscript nocache_dynamo_fp16 cache_torchscript nocache_dynamo_opset23"
  [ "$what" = decode ] && exports="nocache_dynamo_fp16 cache_torchscript"
  for v in $exports; do
    PYTHONUNBUFFERED=1 "$PY" test/E2E/Inputs/check_numerics.py "examples/llama32_tiny/$v" "$W/$v" \
      --target "$arch" --reference-logits "$W/bundle/cpu/$v.npy" > "$OUT/numerics-$v.log" 2>&1
    record "$v" $?
  done
  # onnxruntime-genai model-builder graphs (fp32, fp16, int4, int8; GQA and MHA) vs
  # onnxruntime's run of the same files.
  if [ "$what" != decode ]; then
    PYTHONUNBUFFERED=1 "$PY" test/E2E/Inputs/check_genai.py test/Import/Inputs/genai/*-* \
      --work "$W/genai" --target "$arch" > "$OUT/numerics-genai.log" 2>&1
    record genai $?
    # transformers.js-style variants (fp16 with fp32 edges, q4, int8 quantize_dynamic) vs
    # onnxruntime's run of the same files.
    PYTHONUNBUFFERED=1 "$PY" test/E2E/Inputs/check_variants.py \
      examples/llama32_tiny/nocache_dynamo/model.onnx "$W/variants" --target "$arch" \
      > "$OUT/numerics-variants.log" 2>&1
    record variants $?
  fi
  # The real trained model (fp16, torch 2.11 dynamo export) vs transformers' logits.
  PYTHONUNBUFFERED=1 "$PY" test/E2E/Inputs/check_numerics.py examples/realmodel "$W/realmodel" \
    --target "$arch" > "$OUT/numerics-realmodel.log" 2>&1
  record realmodel $?
  # Mid-sized random models (references from onnxruntime), at the shapes where the
  # backend changes strategy: unrolled GEMVs (K >= 512), block reductions (rows >= 512),
  # [out, in] weights (gemv_nk for every projection), a 1024-token context.
  mid="--layers 2 --hidden 512 --heads 8 --kv-heads 2 --head-dim 64 --ffn 2048 --vocab 2048"
  # mid_fp16_wide: GEMVs wide enough (gate/up 16384, logits 32768) for gemv_nk to
  # give a warp several output columns.
  for v in "mid_fp32_in_out:" "mid_fp16_out_in:--dtype float16 --weights out_in --untied" \
           "mid_fp16_wide:--dtype float16 --ffn 8192 --vocab 32768"; do
    name=${v%%:*}
    # shellcheck disable=SC2086
    "$PY" scripts/gpu/make_synthetic.py "$W/$name" $mid ${v#*:} > "$OUT/numerics-$name.log" 2>&1 &&
      PYTHONUNBUFFERED=1 "$PY" test/E2E/Inputs/check_numerics.py "$W/$name" "$W/$name-work" \
        --target "$arch" --max-seq-len 1024 >> "$OUT/numerics-$name.log" 2>&1
    record "$name" $?
  done
fi

if [ "$what" = decode ]; then
  # The real model's greedy text on the GPU equals the CPU target's (bundle).
  realmodel_greedy
  m="$W/llama1b"
  ( time "$PY" examples/export/export_llama.py --shape 1b --dtype fp16 --out "$m" ) > "$OUT/export-1b.log" 2>&1
  prompt128=$(random_ids 1 128)
  # name:VAR=value,VAR=value (fp16 builds) and the int4:128 build.
  # KILN_DECODE_BASE (default "fp16: int4g128:") replaces the two base builds.
  # shellcheck disable=SC2206
  builds=(${KILN_DECODE_BASE-fp16: int4g128:} ${KILN_VARIANTS:-})
  for v in "${builds[@]}"; do
    q=${v%%:*}; envs=${v#*:}
    flags=""; [ "$q" = int4g128 ] && flags="--quantize=int4:128"
    # shellcheck disable=SC2086
    env ${envs//,/ } kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len 1024 \
      --prefill-chunk 512 $flags -o "$W/1b-$q.kiln" > "$OUT/compile-1b-$q.log" 2>&1 || fail=1
    # shellcheck disable=SC2086
    env ${envs//,/ } kiln-run "$W/1b-$q.kiln" --prompt-ids "$prompt128" --max-new-tokens 256 \
      --format ids > "$W/1b-$q-decode.ids" 2> "$OUT/run-1b-$q-decode.log" || fail=1
    # shellcheck disable=SC2086
    env ${envs//,/ } KILN_PROFILE=1 KILN_PROFILE_TOP=decode kiln-run "$W/1b-$q.kiln" \
      --prompt-ids "$prompt128" --max-new-tokens 33 --format ids > "$OUT/profile-1b-$q.log" 2>&1 || fail=1
    # kiln-run --bench: 512-token prompt, 128 decoded, median of 5 (llama-bench style).
    # shellcheck disable=SC2086
    env ${envs//,/ } kiln-run "$W/1b-$q.kiln" --bench > "$OUT/bench-1b-$q.txt" 2>&1 || fail=1
    echo "1b $q ${envs:+($envs) }decode (128 prompt, 256 new):" >> "$summary"
    sed "s/^/  /" "$OUT/bench-1b-$q.txt" >> "$summary"
    grep -E "memory: weights|kernels: (decode|prefill)|error" "$OUT/compile-1b-$q.log" | sed "s/^/  /" >> "$summary"
    grep -E "tok/s|error" "$OUT/run-1b-$q-decode.log" | sed "s/^/  /" >> "$summary"
    grep -E "kiln profile:.*(by mapping|decode )|error" "$OUT/profile-1b-$q.log" | head -12 \
      | sed "s/^/  /" >> "$summary"
    grep -E "decode_k" "$OUT/profile-1b-$q.log" | sed -n '1,12p' | sed "s/^/  /" >> "$summary"
    if [ "$q" != fp16 ] && [ "$q" != int4g128 ]; then
      "$PY" - "$W/1b-fp16-decode.ids" "$W/1b-$q-decode.ids" >> "$summary" <<'PYEOF'
import sys
a, b = (open(f).read().split() for f in sys.argv[1:3])
same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
print(f"  greedy tokens vs the default fp16 build: the first {same} of {len(a)} agree")
PYEOF
    fi
  done
  OUT="$OUT" "$PY" examples/export/pytorch_baselines.py bw > "$OUT/baselines-bw.log" 2>&1 || fail=1
  grep bandwidth "$OUT/baselines-bw.log" | sed "s/^/  /" >> "$summary"
  weights=$(du -b "$m/model.onnx.data" 2>/dev/null | cut -f1)
  "$PY" - "$OUT" "${weights:-0}" >> "$summary" <<'PYEOF'
import json, os, re, sys
out, weights = sys.argv[1], int(sys.argv[2])
try:
    bw = json.load(open(f"{out}/baselines.json"))["read_TBps"]
    limit = bw * 1e12 / weights
    tps = float(re.search(r"decode: .*?\(([\d.]+) tok/s\)", open(f"{out}/run-1b-fp16-decode.log").read()).group(1))
    print(f"1b decode fp16: {tps:.1f} tok/s; limit {limit:.0f} tok/s ({weights/1e9:.2f} GB at {bw:.2f} TB/s) -> {tps/limit:.1%}")
except Exception as e:
    print(f"(could not compute the bandwidth fraction: {e})")
PYEOF
fi

if [ "$what" = quant ] || [ "$what" = all ] ||
   { [ "$what" = gemvq ] && [ "${KILN_GEMVQ_REALMODEL-1}" = 1 ]; }; then
  # (KILN_GEMVQ_REALMODEL=0 leaves this out of a gemvq call.)
  # The real model's perplexity on its held-out text (kiln-run --perplexity: Kiln's tokenizer,
  # 512-token windows, as transformers measured it in metrics.json), fp16 and quantized, and
  # how often the quantized model's top-1 prediction agrees with fp16's.
  rm=examples/realmodel
  # (+f32: gemv_q's f32 form, KILN_TUNE_GEMV_Q_F32=1, against the default f16 pairs.)
  # KILN_GEMVQ_RM lists the variants (default all of them; fp16 must be among them).
  rmq=${KILN_GEMVQ_RM-fp16 int8 int4:32 int4:64 int4:128 int4:128+lm int8+f32 int4:32+f32}
  for q in $rmq; do
    base=${q%+*}
    flag=""; [ "$q" = fp16 ] || flag="--quantize=$base"
    [ "${q%+lm}" = "$q" ] || flag="$flag --quantize-lm-head"
    f32=""; [ "${q%+f32}" = "$q" ] || f32=KILN_TUNE_GEMV_Q_F32=1
    # shellcheck disable=SC2086
    env $f32 kiln-compile "$rm/model.onnx" --target "$arch" --max-seq-len 512 --prefill-chunk 512 $flag \
      -o "$W/rm-$q.kiln" > "$OUT/compile-rm-$q.log" 2>&1 || fail=1
    kiln-run "$W/rm-$q.kiln" --perplexity "$rm/eval_dev.txt" --predictions "$W/pred-$q.txt" \
      > "$OUT/ppl-rm-$q.log" 2>&1 || { fail=1; tail -3 "$OUT/ppl-rm-$q.log" >> "$summary"; }
  done
  # Text in, text out on the GPU: the same greedy tokens as the CPU target's (bundle).
  kiln-run "$W/rm-fp16.kiln" --prompt 'def fibonacci(n):' --max-new-tokens 64 --format ids \
    > "$W/rm-fibonacci.ids" 2> "$OUT/text-rm.log" || fail=1
  kiln-run "$W/rm-fp16.kiln" --prompt 'def fibonacci(n):' --max-new-tokens 64 \
    > "$OUT/text-rm.txt" 2>> "$OUT/text-rm.log" || fail=1
  if cmp -s "$W/rm-fibonacci.ids" "$W/bundle/cpu/realmodel-fibonacci.ids"; then
    echo "realmodel --prompt 'def fibonacci(n):' (64 new, greedy): GPU ids equal the CPU's:" >> "$summary"
  else
    fail=1
    echo "FAIL: realmodel greedy text differs from the CPU's:" >> "$summary"
    echo "  GPU $(cat "$W/rm-fibonacci.ids")" >> "$summary"
    echo "  CPU $(cat "$W/bundle/cpu/realmodel-fibonacci.ids")" >> "$summary"
  fi
  head -c 400 "$OUT/text-rm.txt" | sed "s/^/  | /" >> "$summary"
  echo "realmodel perplexity on eval_dev.txt ($arch; transformers fp16: 7.8249):" >> "$summary"
  "$PY" - "$W" "$OUT" $rmq >> "$summary" <<'PYEOF'
import re, sys
w, out = sys.argv[1:3]
def ppl(q):
    m = re.search(r"perplexity ([\d.]+) .*scored (\d+)", open(f"{out}/ppl-rm-{q}.log").read())
    return float(m.group(1)), int(m.group(2))
base, n = ppl("fp16")
ref = open(f"{w}/pred-fp16.txt").read().split()
for q in sys.argv[3:]:
    try:
        p, _ = ppl(q)
        pred = open(f"{w}/pred-{q}.txt").read().split()
        agree = sum(a == b for a, b in zip(ref, pred)) / len(ref)
        wb = re.search(r"memory: weights (\d+) bytes", open(f"{out}/compile-rm-{q}.log").read())
        print(f"  {q:9s} ppl {p:.4f} ({p / base - 1:+.2%} vs fp16), top-1 agreement {agree:.2%} "
              f"over {n} tokens, weights {int(wb.group(1)) / 1e6:.1f} MB")
    except Exception as e:
        print(f"  {q}: FAILED ({e})")
PYEOF
fi

if [ "$what" = 1b ] || [ "$what" = all ] || [ "$what" = quant ]; then
  extras=1; [ "$what" = quant ] && extras=0
  m="$W/llama1b"
  ( time "$PY" examples/export/export_llama.py --shape 1b --dtype fp16 --out "$m" ) > "$OUT/export-1b.log" 2>&1
  echo "1b export: $(tail -4 "$OUT/export-1b.log" | tr '\n' ' ')" >> "$summary"
  ( /usr/bin/time -v kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len 1024 \
      --prefill-chunk 512 -o "$W/1b.kiln" ) > "$OUT/compile-1b.log" 2>&1 || fail=1
  grep -E "kiln-compile:|memory:|kernels:|Maximum resident|error" "$OUT/compile-1b.log" | sed "s/^/  /" >> "$summary"
  # The same model with the optimizing passes off (--no-fuse=all), for their effect.
  if [ $extras = 1 ]; then
    kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len 1024 --prefill-chunk 512 \
      --no-fuse=all -o "$W/1b-nofuse.kiln" > "$OUT/compile-1b-nofuse.log" 2>&1 || fail=1
    echo "1b with --no-fuse=all:" >> "$summary"
    grep -E "kernels:|error" "$OUT/compile-1b-nofuse.log" | sed "s/^/  /" >> "$summary"
  fi
  # Weight-only quantized variants (name:flags).
  # (quant: also gemv_q's f32 form, KILN_TUNE_GEMV_Q_F32=1, beside the default f16 pairs.)
  variants=("int8:--quantize=int8" "int4g128:--quantize=int4:128"
            "int4g128lm:--quantize=int4:128 --quantize-lm-head")
  [ "$what" = quant ] && variants+=("int8f32:KILN_TUNE_GEMV_Q_F32=1 --quantize=int8"
                                    "int4g128f32:KILN_TUNE_GEMV_Q_F32=1 --quantize=int4:128")
  for v in "${variants[@]}"; do
    q=${v%%:*}; envs=(); flags=()
    for a in ${v#*:}; do case $a in --*) flags+=("$a") ;; *=*) envs+=("$a") ;; esac; done
    env "${envs[@]}" kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len 1024 --prefill-chunk 512 \
      "${flags[@]}" -o "$W/1b-$q.kiln" > "$OUT/compile-1b-$q.log" 2>&1 || fail=1
  done
  if [ -f "$W/1b.kiln" ]; then
    prompt128=$(random_ids 1 128)
    prompt512=$(random_ids 2 512)
    kiln-run "$W/1b.kiln" --prompt-ids "$prompt128" --max-new-tokens 256 --format ids \
      > "$W/1b-decode.ids" 2> "$OUT/run-1b-decode.log" || fail=1
    kiln-run "$W/1b.kiln" --prompt-ids "$prompt512" --max-new-tokens 1 --format ids \
      > "$OUT/run-1b-prefill.log" 2>&1 || fail=1
    echo "1b decode (128-token prompt, 256 new):" >> "$summary"
    grep -E "tok/s|error|device" "$OUT/run-1b-decode.log" | sed "s/^/  /" >> "$summary"
    echo "1b prefill (512-token prompt):" >> "$summary"
    grep -E "prefill|error" "$OUT/run-1b-prefill.log" | sed "s/^/  /" >> "$summary"
    if [ $extras = 1 ] && [ -f "$W/1b-nofuse.kiln" ]; then
      kiln-run "$W/1b-nofuse.kiln" --prompt-ids "$prompt128" --max-new-tokens 256 --format ids \
        > "$W/1b-nofuse-decode.ids" 2> "$OUT/run-1b-nofuse-decode.log" || fail=1
      kiln-run "$W/1b-nofuse.kiln" --prompt-ids "$prompt512" --max-new-tokens 1 --format ids \
        > "$OUT/run-1b-nofuse-prefill.log" 2>&1 || fail=1
      echo "1b --no-fuse=all decode, prefill:" >> "$summary"
      grep -E "tok/s|error" "$OUT/run-1b-nofuse-decode.log" "$OUT/run-1b-nofuse-prefill.log" \
        | sed "s/^/  /" >> "$summary"
      # Fused and unfused pipelines: the same greedy tokens (fp16: reported, not required).
      "$PY" - "$W/1b-decode.ids" "$W/1b-nofuse-decode.ids" >> "$summary" <<'PYEOF'
import sys
a, b = (open(f).read().split() for f in sys.argv[1:3])
same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
print(f"  greedy tokens, fused vs --no-fuse=all: the first {same} of {len(a)} agree")
PYEOF
    fi
    for v in "${variants[@]}"; do
      q=${v%%:*}
      [ -f "$W/1b-$q.kiln" ] || continue
      kiln-run "$W/1b-$q.kiln" --prompt-ids "$prompt128" --max-new-tokens 256 --format ids \
        > "$W/1b-$q-decode.ids" 2> "$OUT/run-1b-$q-decode.log" || fail=1
      kiln-run "$W/1b-$q.kiln" --prompt-ids "$prompt512" --max-new-tokens 1 --format ids \
        > "$OUT/run-1b-$q-prefill.log" 2>&1 || fail=1
      echo "1b $q (${v#*:}) decode, prefill:" >> "$summary"
      grep -E "memory: weights|kernels: by|error" "$OUT/compile-1b-$q.log" | sed "s/^/  /" >> "$summary"
      grep -E "tok/s|error" "$OUT/run-1b-$q-decode.log" "$OUT/run-1b-$q-prefill.log" \
        | sed "s/^/  /" >> "$summary"
    done
    # The decode step kernel by kernel (layer 0, the last layer and the head).
    for q in fp16 int4g128lm; do
      k="$W/1b-$q.kiln"; [ $q = fp16 ] && k="$W/1b.kiln"
      KILN_PROFILE=1 KILN_PROFILE_TOP=decode kiln-run "$k" --prompt-ids "$prompt128" \
        --max-new-tokens 33 --format ids > "$OUT/profile-1b-$q.log" 2>&1 || fail=1
      echo "1b $q decode kernels (KILN_PROFILE, 32 steps):" >> "$summary"
      grep -E "kiln profile:.*(by mapping|decode )|error" "$OUT/profile-1b-$q.log" | head -12 \
        | sed "s/^/  /" >> "$summary"
      grep -E "decode_k" "$OUT/profile-1b-$q.log" | sed -n '1,16p;$p' | sed "s/^/  /" >> "$summary"
      grep -E "decode_k" "$OUT/profile-1b-$q.log" | tail -6 | sed "s/^/  /" >> "$summary"
    done
    # Where the time goes: every launch timed with CUDA events (no graphs).
    if [ $extras = 1 ]; then
      KILN_PROFILE=1 kiln-run "$W/1b.kiln" --prompt-ids "$prompt128" --max-new-tokens 64 \
        --format ids > "$OUT/profile-1b.log" 2>&1 || fail=1
      echo "1b profile (KILN_PROFILE=1; 128-token prefill, 63 decode steps):" >> "$summary"
      grep -E "kiln profile|error" "$OUT/profile-1b.log" | head -28 | sed "s/^/  /" >> "$summary"
    fi
  fi
  # quant: the read bandwidth only (no PyTorch model runs).
  baseline=1b; [ $extras = 1 ] || baseline=bw
  OUT="$OUT" "$PY" examples/export/pytorch_baselines.py $baseline > "$OUT/baselines.log" 2>&1 || fail=1
  echo "pytorch baselines (same card, same run):" >> "$summary"
  tail -12 "$OUT/baselines.log" | sed "s/^/  /" >> "$summary"
  weights=$(du -b "$m/model.onnx.data" 2>/dev/null | cut -f1)
  "$PY" - "$OUT" "${weights:-0}" >> "$summary" <<'PYEOF'
import json, os, re, sys
out, weights = sys.argv[1], int(sys.argv[2])
try:
    base = json.load(open(f"{out}/baselines.json"))
    bw = base.get("read_TBps")
    text = open(f"{out}/run-1b-decode.log").read()
    m = re.search(r"decode: .*?\(([\d.]+) tok/s\)", text)
    if bw and m and weights:
        limit = bw * 1e12 / weights
        tps = float(m.group(1))
        print(f"1b decode: {tps:.1f} tok/s; bandwidth limit {limit:.0f} tok/s "
              f"({weights/1e9:.2f} GB weights / {bw:.2f} TB/s read) -> {tps/limit:.1%} of the limit")
        # Quantized: the bytes read per step are the artifact's weights (the tied embedding
        # table is read whole by the logits projection).
        for q in ("int8", "int4g128", "int4g128lm", "int8f32", "int4g128f32"):
            if not os.path.exists(f"{out}/compile-1b-{q}.log"):
                continue
            try:
                qb = int(re.search(r"memory: weights (\d+) bytes",
                                   open(f"{out}/compile-1b-{q}.log").read()).group(1))
                qt = float(re.search(r"decode: .*?\(([\d.]+) tok/s\)",
                                     open(f"{out}/run-1b-{q}-decode.log").read()).group(1))
                ql = bw * 1e12 / qb
                print(f"1b decode {q}: {qt:.1f} tok/s = {qt / tps:.2f}x fp16; limit "
                      f"{ql:.0f} tok/s ({qb / 1e9:.3f} GB) -> {qt / ql:.1%} of its limit")
            except Exception as e:
                print(f"  (1b {q}: {e})")
except Exception as e:
    print(f"(could not compute the bandwidth fraction: {e})")
PYEOF
fi
if [ "$what" = checksum ]; then
  # What verifying the weights' checksums costs when an artifact is opened (issue 14): the
  # 1B shape (2.47 GB of weights) in the page cache, a one-token run with and without
  # --no-verify-weights, three times each; the difference is the verification.
  m="$W/llama1b"
  "$PY" examples/export/export_llama.py --shape 1b --dtype fp16 --out "$m" > "$OUT/export-1b.log" 2>&1
  kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len 1024 --prefill-chunk 512 \
    -o "$W/1b.kiln" > "$OUT/compile-1b.log" 2>&1 || fail=1
  cat "$W/1b.kiln" > /dev/null
  echo "weights verification, 1b artifact ($(stat -c %s "$W/1b.kiln") bytes, $(nproc) cores):" >> "$summary"
  for i in 1 2 3; do
    for flag in "" --no-verify-weights; do
      /usr/bin/time -f "%e s wall, %U s user" -o "$OUT/time.txt" kiln-run "$W/1b.kiln" --prompt-ids 1 \
        --max-new-tokens 1 --format ids $flag > /dev/null 2>&1 || fail=1
      echo "  run $i ${flag:-(verifying)}: $(cat "$OUT/time.txt")" >> "$summary"
    done
  done
fi
if [ "$what" = sampling ]; then
  v=nocache_dynamo_fp16
  PYTHONUNBUFFERED=1 "$PY" test/E2E/Inputs/check_numerics.py "examples/llama32_tiny/$v" "$W/$v" \
    --target "$arch" --reference-logits "$W/bundle/cpu/$v.npy" > "$OUT/numerics-$v.log" 2>&1
  record "$v" $?
  # Draw statistics of sample_rows on the device (4000 draws per configuration).
  kiln-compile "examples/llama32_tiny/$v/model.onnx" --target "$arch" --max-seq-len 16 \
    --prefill-chunk 4 --quiet -o "$W/tiny-sample.kiln" > "$OUT/compile-tiny-sample.log" 2>&1 || fail=1
  echo "sampling statistics (tiny fp16 export, on the device):" >> "$summary"
  PYTHONUNBUFFERED=1 "$PY" test/E2E/Inputs/check_sampling.py "$W/tiny-sample.kiln" --samples 4000 \
    --boundary-tol 0.02 --work "$W/sampling" > "$OUT/numerics-sampling.log" 2>&1
  record sampling $?
  # The real model: greedy text equal to the CPU's; sampled text reproducible per seed.
  realmodel_greedy
  for seed in 1 1 2; do
    kiln-run "$W/rm-fp16.kiln" --prompt 'def fibonacci(n):' --max-new-tokens 64 --temperature 0.8 \
      --top-p 0.95 --min-p 0.02 --seed $seed > "$OUT/rm-sampled-$seed.txt" 2>> "$OUT/text-rm.log" || fail=1
  done
  cmp -s "$OUT/rm-sampled-1.txt" <(kiln-run "$W/rm-fp16.kiln" --prompt 'def fibonacci(n):' \
    --max-new-tokens 64 --temperature 0.8 --top-p 0.95 --min-p 0.02 --seed 1 2>/dev/null) \
    && same=identical || same=DIFFERENT
  echo "realmodel sampled (T 0.8, top-p 0.95, min-p 0.02): seed 1 twice $same; seed 1:" >> "$summary"
  head -c 600 "$OUT/rm-sampled-1.txt" | sed "s/^/  | /" >> "$summary"; echo >> "$summary"
  echo "realmodel sampled, seed 2:" >> "$summary"
  head -c 600 "$OUT/rm-sampled-2.txt" | sed "s/^/  | /" >> "$summary"; echo >> "$summary"
  # The 1b shape: decode greedy vs sampled, and the draw's kernel time.
  m="$W/llama1b"
  "$PY" examples/export/export_llama.py --shape 1b --dtype fp16 --out "$m" > "$OUT/export-1b.log" 2>&1
  kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len 1024 --prefill-chunk 512 \
    -o "$W/1b.kiln" > "$OUT/compile-1b.log" 2>&1 || fail=1
  prompt128=$(random_ids 1 128)
  for mode in greedy "t0.8-topk50" "t0.8-topp0.9" "t0.8-topk50-topp0.9-minp0.05" \
      "t0.8-topk50-host" "t0.8-topp0.9-host"; do
    case $mode in
      greedy) flags="";;
      t0.8-topk50) flags="--temperature 0.8 --top-k 50";;
      t0.8-topp0.9) flags="--temperature 0.8 --top-p 0.9";;
      t0.8-topk50-host) flags="--temperature 0.8 --top-k 50 --sample-on-host";;
      t0.8-topp0.9-host) flags="--temperature 0.8 --top-p 0.9 --sample-on-host";;
      *) flags="--temperature 0.8 --top-k 50 --top-p 0.9 --min-p 0.05";;
    esac
    # shellcheck disable=SC2086
    kiln-run "$W/1b.kiln" --prompt-ids "$prompt128" --max-new-tokens 256 --format ids $flags \
      > /dev/null 2> "$OUT/run-1b-$mode.log" || fail=1
    # shellcheck disable=SC2086
    KILN_PROFILE=1 KILN_PROFILE_TOP=decode kiln-run "$W/1b.kiln" --prompt-ids "$prompt128" \
      --max-new-tokens 33 --format ids $flags > "$OUT/profile-1b-$mode.log" 2>&1 || fail=1
    echo "1b fp16 decode, $mode (128 prompt, 256 new):" >> "$summary"
    grep -E "decode:.*tok/s|error" "$OUT/run-1b-$mode.log" | sed "s/^/  /" >> "$summary"
    grep -E "sample_rows|error" "$OUT/profile-1b-$mode.log" | head -3 | sed "s/^/  /" >> "$summary"
  done
fi
if [ "$what" = compile ]; then
  prompt128=$(random_ids 1 128)
  for shape in ${KILN_COMPILE_SHAPES-1b 8b}; do
    if [ "$shape" = 8b ]; then
      m=/tmp/kiln-8b-model
      [ -f "$m/model.onnx.data" ] || { echo "compile: no 8b export in $m (run the 8b mode first)" >> "$summary"; fail=1; continue; }
    else
      m="$W/llama$shape"
      "$PY" examples/export/export_llama.py --shape "$shape" --dtype fp16 --out "$m" > "$OUT/export-$shape.log" 2>&1 || fail=1
    fi
    for mode in dedup one-per-launch; do
      flags=""; [ "$mode" = dedup ] || flags="--no-fuse=dedup-kernels"
      cores=(taskset -c 0,1); [ "$mode" = dedup ] || cores=() # the slow one on every core
      # shellcheck disable=SC2086
      ( /usr/bin/time -v "${cores[@]}" kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len 1024 \
          --prefill-chunk 512 $flags -o "$W/$shape-$mode.kiln" ) > "$OUT/compile-$shape-$mode.log" 2>&1 || fail=1
      echo "$shape fp16 compile, $mode ${cores[*]:+(${cores[*]})}:" >> "$summary"
      grep -E "kiln-compile:|kernels: [0-9]|Maximum resident|Elapsed|Percent of CPU|error" \
        "$OUT/compile-$shape-$mode.log" | sed "s/^/  /" >> "$summary"
      kiln-run "$W/$shape-$mode.kiln" --prompt-ids "$prompt128" --max-new-tokens 256 --format ids \
        > "$OUT/tokens-$shape-$mode.txt" 2> "$OUT/run-$shape-$mode.log" || fail=1
      grep -E "tok/s|error" "$OUT/run-$shape-$mode.log" | sed "s/^/  /" >> "$summary"
      echo "  artifact: $(stat -c %s "$W/$shape-$mode.kiln") bytes" >> "$summary"
    done
    if cmp -s "$OUT/tokens-$shape-dedup.txt" "$OUT/tokens-$shape-one-per-launch.txt"; then
      echo "$shape: the 256 greedy tokens are identical" >> "$summary"
    else
      echo "$shape: TOKENS DIFFER" >> "$summary"; fail=1
    fi
    if [ "$shape" = 8b ]; then
      # Issue 14: what verifying the weights' checksums costs on the 8b artifact (in the
      # page cache), a one-token run with and without --no-verify-weights, twice each.
      cat "$W/8b-dedup.kiln" > /dev/null
      echo "weights verification, 8b artifact ($(stat -c %s "$W/8b-dedup.kiln") bytes, $(nproc) cores):" >> "$summary"
      for i in 1 2; do
        for flag in "" --no-verify-weights; do
          /usr/bin/time -f "%e s wall, %U s user" -o "$OUT/time.txt" kiln-run "$W/8b-dedup.kiln" --prompt-ids 1 \
            --max-new-tokens 1 --format ids $flag > /dev/null 2>&1 || fail=1
          echo "  run $i ${flag:-(verifying)}: $(cat "$OUT/time.txt")" >> "$summary"
        done
      done
    fi
    rm -f "$W/$shape-dedup.kiln" "$W/$shape-one-per-launch.kiln"
  done
fi
if [ "$what" = stream ]; then
  # Issue 15: weights streamed into the artifact. Each shape of KILN_STREAM_SHAPES (default
  # "8b 1b") is made by make_llama.py --tiled-weights (the Llama-3 graph of the dynamo
  # exporter, [in, out] weights, fp16 external data; the 8b untied, the 1b tied), compiled
  # on 2 cores (taskset -c 0,1) with the default --stream-weights under /usr/bin/time -v,
  # then on every core with --stream-weights=false (every weight computed in the passes,
  # as before); the two artifacts must be identical (cmp), and the streamed one runs the
  # 128-token prompt + 256 new tokens.
  prompt128=$(random_ids 1 128)
  for shape in ${KILN_STREAM_SHAPES-8b 1b}; do
    dims=$(shape_dims "$shape")
    [ -n "$dims" ] || { echo "stream: unknown shape $shape" >> "$summary"; fail=1; continue; }
    m="$W/gen-$shape"; mkdir -p "$m"
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$PY" test/Import/Inputs/make_llama.py "$m/model.onnx" $dims --vocab 128256 --dtype float16 \
      --external-data --cache --tiled-weights > "$OUT/gen-$shape.log" 2>&1 || fail=1
    echo "$shape shape made by make_llama.py --tiled-weights in $(( $(date +%s) - start )) s:" \
      "$(stat -c %s "$m/model.onnx.data") bytes of external data" >> "$summary"
    sync
    ( /usr/bin/time -v taskset -c 0,1 kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len 1024 \
        --prefill-chunk 512 -o "$W/$shape-streamed.kiln" ) > "$OUT/compile-$shape-streamed.log" 2>&1 || fail=1
    echo "$shape fp16 compile, streamed (taskset -c 0,1):" >> "$summary"
    grep -E "kiln-compile:|kernels: [0-9]|Maximum resident|Elapsed|Percent of CPU|error" \
      "$OUT/compile-$shape-streamed.log" | sed "s/^/  /" >> "$summary"
    kiln-run "$W/$shape-streamed.kiln" --prompt-ids "$prompt128" --max-new-tokens 256 --format ids \
      > "$OUT/tokens-$shape-streamed.txt" 2> "$OUT/run-$shape-streamed.log" || fail=1
    grep -E "tok/s|error" "$OUT/run-$shape-streamed.log" | sed "s/^/  /" >> "$summary"
    ( /usr/bin/time -v kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len 1024 \
        --prefill-chunk 512 --stream-weights=false -o "$W/$shape-passes.kiln" ) \
      > "$OUT/compile-$shape-passes.log" 2>&1 || fail=1
    echo "$shape fp16 compile, --stream-weights=false ($(nproc) cores):" >> "$summary"
    grep -E "kiln-compile: (lower|write|wrote)|Maximum resident|Elapsed|error" \
      "$OUT/compile-$shape-passes.log" | sed "s/^/  /" >> "$summary"
    if cmp -s "$W/$shape-streamed.kiln" "$W/$shape-passes.kiln"; then
      echo "$shape: the streamed artifact is identical to the unstreamed one ($(stat -c %s "$W/$shape-streamed.kiln") bytes)" >> "$summary"
    else
      echo "$shape: ARTIFACTS DIFFER" >> "$summary"; fail=1
    fi
    rm -rf "$m" "$W/$shape-streamed.kiln" "$W/$shape-passes.kiln"
  done
fi
if [ "$what" = splitkv ]; then
  # The decode attention split over a thread-block cluster (split-KV, sm_90+) against
  # --no-fuse=split-kv (a block per query head), on the 8B shape (make_llama.py
  # --tiled-weights: the Llama-3 graph, [in, out] fp16 weights, untied): the same greedy
  # tokens for a 128-token prompt + 256 new, each one's decode tok/s, kiln-run --bench
  # and the attention kernel's time (KILN_PROFILE).
  prompt128=$(random_ids 1 128)
  m="$W/gen-8b"; mkdir -p "$m"
  "$PY" test/Import/Inputs/make_llama.py "$m/model.onnx" --layers 32 --hidden 4096 --heads 32 \
    --kv-heads 8 --head-dim 128 --ffn 14336 --untied --vocab 128256 --dtype float16 \
    --external-data --cache --tiled-weights > "$OUT/gen-8b.log" 2>&1 || fail=1
  for v in split-kv:--no-fuse=none one-block-per-head:--no-fuse=split-kv; do
    tag=${v%%:*}; flag=${v#*:}; [ "$flag" = --no-fuse=none ] && flag=""
    # shellcheck disable=SC2086
    kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len 1024 --prefill-chunk 512 $flag --stream-weights=false \
      -o "$W/8b-$tag.kiln" > "$OUT/compile-8b-$tag.log" 2>&1 || fail=1
    kiln-run "$W/8b-$tag.kiln" --prompt-ids "$prompt128" --max-new-tokens 256 --format ids \
      > "$W/8b-$tag.ids" 2> "$OUT/run-8b-$tag.log" || fail=1
    echo "8b fp16 ($tag${flag:+, $flag}):" >> "$summary"
    grep -E "tiles chosen|kernels: (prefill|decode)|error" "$OUT/compile-8b-$tag.log" | sed "s/^/  /" >> "$summary"
    grep -E "tok/s|error" "$OUT/run-8b-$tag.log" | sed "s/^/  /" >> "$summary"
    kiln-run "$W/8b-$tag.kiln" --bench > "$OUT/bench-8b-$tag.txt" 2>&1 || fail=1
    sed "s/^/  /" "$OUT/bench-8b-$tag.txt" >> "$summary"
    KILN_PROFILE=1 KILN_PROFILE_TOP=decode kiln-run "$W/8b-$tag.kiln" --prompt-ids "$prompt128" \
      --max-new-tokens 33 --format ids > "$OUT/profile-8b-$tag.log" 2>&1 || fail=1
    grep -E "kiln profile:.*decode (gemv|attention)|error" "$OUT/profile-8b-$tag.log" | sed "s/^/  /" >> "$summary"
    rm -f "$W/8b-$tag.kiln"
  done
  "$PY" - "$W/8b-split-kv.ids" "$W/8b-one-block-per-head.ids" >> "$summary" <<'PYEOF'
import sys
a, b = (open(f).read().split() for f in sys.argv[1:3])
same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
print(f"8b greedy tokens, split-KV vs one block per head: the first {same} of {len(a)} agree")
PYEOF
  # int4:128 of the same model: the default gemv_q and KILN_SPLITKV_Q's variants (see
  # decode_variants; default: more output columns per warp, KILN_TUNE_GEMV_Q=64).
  decode_variants 8b "$m" "$prompt128" "int4: ${KILN_SPLITKV_Q-int4-cpw:KILN_TUNE_GEMV_Q=64}" \
    --quantize=int4:128
  rm -rf "$m"
fi
if [ "$what" = gemvq ]; then
  # The fast loop for gemv_q work (after the real model's quantized perplexity above): the
  # 1b and 8b shapes made by make_llama.py --tiled-weights (random weights; no export), each
  # compiled as each of its variants and decoded (128-token prompt + 256 new) with
  # kiln-run --bench and the decode kernels' profile. A variant is "name:setting,..."
  # (settings are VAR=value environment or --flags of kiln-compile); KILN_GEMVQ_1B and
  # KILN_GEMVQ_8B list them.
  prompt128=$(random_ids 1 128)
  for shape in 1b 8b; do
    dims=$(shape_dims "$shape")
    case $shape in
      8b) variants=${KILN_GEMVQ_8B-"int4:--quantize=int4:128"} ;;
      1b) variants=${KILN_GEMVQ_1B-"fp16: int4:--quantize=int4:128"} ;;
    esac
    [ -n "$variants" ] || continue
    m="$W/gen-$shape"; mkdir -p "$m"
    # shellcheck disable=SC2086
    "$PY" test/Import/Inputs/make_llama.py "$m/model.onnx" $dims --vocab 128256 --dtype float16 \
      --external-data --cache --tiled-weights > "$W/gen-$shape.log" 2>&1 || fail=1
    decode_variants "$shape" "$m" "$prompt128" "$variants"
    rm -rf "$m"
  done
fi
if [ "$what" = serve ]; then
  # kiln-serve on the GPU. The real model compiled with 4 batch rows, fp16 and int4:32 (whose
  # batched decode runs gemv_q on several rows), through test/E2E/Inputs/check_serve.py: greedy
  # completions equal kiln-run's alone and all at once, streamed or not, seeded sampling alone
  # and in a batch, bad requests, dropped streams, a 48-request load with a quarter dropped,
  # --max-queue, SIGTERM. Then scripts/serve-bench.py against the int4 server at concurrency
  # 1 and 4 (a small model: what the server and batching cost, not a large model's speed).
  export LD_LIBRARY_PATH="$W/bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  for q in fp16 int4:32; do
    flags=(); [ $q = fp16 ] || flags=(--quantize=$q)
    tag=${q//:/-}
    kiln-compile examples/realmodel/model.onnx --target "$arch" --batch 4 --max-seq-len 256 \
      --prefill-chunk 4 "${flags[@]}" -o "$W/serve-$tag.kiln" > "$W/compile-serve-$tag.log" 2>&1 || fail=1
    echo "kiln-serve, real model $q, --batch 4 ($arch):" >> "$summary"
    ( time "$PY" test/E2E/Inputs/check_serve.py "$W/serve-$tag.kiln" ) > "$W/check-serve-$tag.log" 2>&1 || fail=1
    grep -E "^ok|FAIL|rror|^real" "$W/check-serve-$tag.log" | sed "s/^/  /" >> "$summary"
  done
  kiln-serve "$W/serve-int4-32.kiln" --port 0 2> "$W/serve-bench-server.log" & server=$!
  sleep 2
  port=$(grep -o "127.0.0.1:[0-9]*" "$W/serve-bench-server.log" | head -1 | cut -d: -f2)
  for c in 1 4; do
    echo "serve-bench.py, int4:32 server, concurrency $c (48 requests, prompts 16-128, 64 new):" >> "$summary"
    "$PY" scripts/serve-bench.py --url "http://127.0.0.1:${port:-0}" --requests 48 --concurrency $c \
      --prompt-min 16 --prompt-max 128 --gen 64 --vocab 8192 --server-pid $server --max-time 120 \
      > "$W/serve-bench-$c.log" 2>&1 || fail=1
    sed "s/^/  /" "$W/serve-bench-$c.log" | tail -14 >> "$summary"
  done
  kill $server; wait $server
fi
if [ "$what" = throughput ]; then
  # Issue 17: total decode throughput through kiln-serve at several numbers of concurrent
  # requests, next to PyTorch's batched generate on the same card. Each shape of
  # KILN_THROUGHPUT_SHAPES (default "1b 8b") is made by make_llama.py (random fp16 weights) with
  # a tokenizer of its vocabulary (make_tokenizer.py: kiln-serve serves text) and compiled once
  # per level of KILN_THROUGHPUT_LEVELS (default "1 8 32 64") with --batch equal to the level
  # (prefill chunks of max(16, 512 / level) tokens, context 800); serve-bench.py then sends
  # 2 x level requests (at least 4), level at once, prompts of 128-512 random ids, 256 new
  # tokens each, greedy with EOS ignored. One artifact at a time (an 8b one is 16 GB).
  # KILN_THROUGHPUT_SHARED=1 serves every level from one artifact instead: --batch the largest
  # level, --decode-batches the others. KILN_THROUGHPUT_VARIANTS="flat paged" compiles each level
  # twice, the second with a paged KV cache (--kv-block-size 16).
  export LD_LIBRARY_PATH="$W/bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  for shape in ${KILN_THROUGHPUT_SHAPES-1b 8b}; do
    dims=$(shape_dims "$shape")
    [ -n "$dims" ] || { echo "throughput: unknown shape $shape" >> "$summary"; fail=1; continue; }
    m="$W/gen-$shape"; mkdir -p "$m"
    # shellcheck disable=SC2086
    "$PY" test/Import/Inputs/make_llama.py "$m/model.onnx" $dims --vocab 128256 --dtype float16 \
      --external-data --cache --tiled-weights > "$W/gen-$shape.log" 2>&1 || fail=1
    "$PY" scripts/gpu/make_tokenizer.py 128256 "$m" >> "$W/gen-$shape.log" 2>&1 || fail=1
    levels=${KILN_THROUGHPUT_LEVELS-1 8 32 64}
    shared=""
    if [ "${KILN_THROUGHPUT_SHARED-0}" = 1 ]; then
      # One artifact for every level: --batch the largest, --decode-batches the others.
      top=0; for c in $levels; do [ "$c" -gt "$top" ] && top=$c; done
      fewer=$(for c in $levels; do [ "$c" -lt "$top" ] && echo "$c"; done | paste -sd, -)
      chunk=$(( 512 / top > 16 ? 512 / top : 16 ))
      shared="$W/$shape-shared.kiln"
      kiln-compile "$m/model.onnx" --target "$arch" --batch $top ${fewer:+--decode-batches $fewer} \
        --max-seq-len 800 --prefill-chunk $chunk --prefill-logits last --tokenizer "$m" -o "$shared" \
        > "$W/compile-$shape-shared.log" 2>&1 || fail=1
      echo "$shape fp16, one artifact: --batch $top${fewer:+ --decode-batches $fewer} (--prefill-chunk $chunk):" >> "$summary"
      grep -E "kiln-compile: wrote|memory: (KV|activation)|kernels: (prefill|decode)|error" \
        "$W/compile-$shape-shared.log" | sed "s/^/  /" >> "$summary"
    fi
    for c in $levels; do
     for variant in ${KILN_THROUGHPUT_VARIANTS-flat}; do
      chunk=$(( 512 / c > 16 ? 512 / c : 16 )); n=$(( 2 * c > 4 ? 2 * c : 4 ))
      k="$W/$shape-b$c.kiln"
      vflags=""; [ "$variant" = paged ] && vflags="--kv-block-size 16"
      if [ -n "$shared" ]; then
        k=$shared
        echo "$shape fp16, the one artifact, $n requests, $c at once, prompts 128-512, 256 new:" >> "$summary"
      else
        # shellcheck disable=SC2086
        kiln-compile "$m/model.onnx" --target "$arch" --batch $c --max-seq-len 800 --prefill-chunk $chunk \
          --prefill-logits last --tokenizer "$m" $vflags -o "$k" > "$W/compile-$shape-b$c.log" 2>&1 || fail=1
        echo "$shape fp16 $variant, kiln-serve --batch $c (--prefill-chunk $chunk${vflags:+ $vflags}), $n requests, $c at once, prompts 128-512, 256 new:" >> "$summary"
        grep -E "kiln-compile: wrote|memory: (KV|activation)|error" "$W/compile-$shape-b$c.log" | sed "s/^/  /" >> "$summary"
      fi
      [ -f "$k" ] || continue
      kiln-serve "$k" --port 0 2> "$W/server-$shape-b$c.log" & server=$!
      for _ in $(seq 60); do grep -q "127.0.0.1:[0-9]" "$W/server-$shape-b$c.log" && break; sleep 0.5; done
      port=$(grep -o "127.0.0.1:[0-9]*" "$W/server-$shape-b$c.log" | head -1 | cut -d: -f2)
      "$PY" scripts/serve-bench.py --url "http://127.0.0.1:${port:-0}" --requests $n --concurrency $c \
        --prompt-min 128 --prompt-max 512 --gen 256 --vocab 128256 --server-pid $server --max-time 240 \
        > "$W/serve-bench-$shape-b$c.log" 2>&1 || fail=1
      sed "s/^/  /" "$W/serve-bench-$shape-b$c.log" | tail -6 >> "$summary"
      kill $server; wait $server
      # One batch row's decode through the same artifact (the other rows idle): the step time
      # of --batch $c and where it goes.
      KILN_PROFILE=1 KILN_PROFILE_TOP=decode kiln-run "$k" --prompt-ids "$(random_ids 1 128)" \
        --max-new-tokens 33 --format ids > "$W/profile-$shape-b$c.log" 2>&1 || fail=1
      grep -E "kiln-run: decode|kiln profile: .*decode_k[0-9]+_|error" "$W/profile-$shape-b$c.log" \
        | head -12 | sed -E "s/^kiln profile: +/  /; s/^kiln-run/  kiln-run/" >> "$summary"
      # The same load (c requests, 64 new each) through a server with KILN_PROFILE=1: where the
      # GPU time of the decode calls goes with every row busy (printed when SIGTERM stops it).
      if [ "${KILN_THROUGHPUT_SERVE_PROFILE-1}" = 1 ]; then
        KILN_PROFILE=1 KILN_PROFILE_TOP=decode kiln-serve "$k" --port 0 2> "$W/server-prof-$shape-b$c.log" & server=$!
        for _ in $(seq 60); do grep -q "127.0.0.1:[0-9]" "$W/server-prof-$shape-b$c.log" && break; sleep 0.5; done
        port=$(grep -o "127.0.0.1:[0-9]*" "$W/server-prof-$shape-b$c.log" | head -1 | cut -d: -f2)
        "$PY" scripts/serve-bench.py --url "http://127.0.0.1:${port:-0}" --requests $c --concurrency $c \
          --prompt-min 128 --prompt-max 512 --gen 64 --vocab 128256 --max-time 120 \
          > "$W/serve-bench-prof-$shape-b$c.log" 2>&1 || fail=1
        kill $server; wait $server
        echo "  the same artifact under load ($c requests at once, 64 new each), KILN_PROFILE=1:" >> "$summary"
        grep -E "kiln profile: (GPU time|.*  (decode|prefill) |.*decode_k([0-9]|1[0-9])_)|error" \
          "$W/server-prof-$shape-b$c.log" | head -32 | sed -E "s/^kiln profile: +/    /" >> "$summary"
      fi
      [ -n "$shared" ] || rm -f "$k"
     done
    done
    rm -rf "$m" ${shared:+"$shared"}
  done
  if [ "${KILN_THROUGHPUT_TORCH-1}" = 1 ]; then
    gens=""; for shape in ${KILN_THROUGHPUT_SHAPES-1b 8b}; do gens="$gens generate-$shape"; done
    # shellcheck disable=SC2086
    KILN_GEN_BATCHES="${KILN_THROUGHPUT_LEVELS-1 8 32 64}" OUT="$OUT" "$PY" \
      examples/export/pytorch_baselines.py $gens > "$W/baselines-generate.log" 2>&1 || fail=1
    echo "PyTorch batched generate (eager, dynamic cache, bf16; same card, same run):" >> "$summary"
    grep -E "generate|rror" "$W/baselines-generate.log" | sed "s/^/  /" >> "$summary"
  fi
fi
if [ "$what" = paged ]; then
  # Issue 17's paged KV cache on the GPU. (1) The real model fp16 with 4 rows over a pool of
  # 20 blocks of 8 (check_serve.py --paged: 8 prompts at once, twice; preemptions; texts equal
  # kiln-run's; the pool full again). (2) The 1b shape (make_llama.py, random fp16 weights)
  # compiled flat and paged (--kv-block-size 16; --batch 64 --decode-batches 1, context 800,
  # chunks of 16): the greedy tokens of a 128-token prompt + 64 new, kiln-run --bench (512 + 128)
  # on one row, then serve-bench.py at 64 at once (128 requests, prompts 128-512, 256 new) for
  # each; for the paged one agreement.py then compares 64 sequences' greedy tokens batched (64
  # at once) and alone. (3) The load test's 1000 requests (32 at once, a tenth cancelled) over the real model
  # paged with --batch 32 and a pool of 256 blocks of 16 (under 32 full contexts of 512):
  # preemptions, every block back at the end.
  export LD_LIBRARY_PATH="$W/bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  kiln-compile examples/realmodel/model.onnx --target "$arch" --batch 4 --max-seq-len 256 \
    --prefill-chunk 4 --kv-block-size 8 --kv-blocks 20 -o "$W/paged-rm.kiln" > "$W/compile-paged-rm.log" 2>&1 || fail=1
  echo "check_serve.py --paged, real model fp16, --batch 4, 20 blocks of 8 ($arch):" >> "$summary"
  "$PY" test/E2E/Inputs/check_serve.py --paged "$W/paged-rm.kiln" 20 8 > "$W/check-paged.log" 2>&1 || fail=1
  grep -E "^ok|FAIL|rror" "$W/check-paged.log" | sed "s/^/  /" >> "$summary"
  m="$W/gen-1b"; mkdir -p "$m"
  # shellcheck disable=SC2086
  "$PY" test/Import/Inputs/make_llama.py "$m/model.onnx" $(shape_dims 1b) --vocab 128256 --dtype float16 \
    --external-data --cache --tiled-weights > "$W/gen-1b.log" 2>&1 || fail=1
  "$PY" scripts/gpu/make_tokenizer.py 128256 "$m" >> "$W/gen-1b.log" 2>&1 || fail=1
  prompt=$(random_ids 7 128)
  for v in flat paged; do
    extra=""; [ $v = paged ] && extra="--kv-block-size 16"
    # shellcheck disable=SC2086
    kiln-compile "$m/model.onnx" --target "$arch" --batch 64 --decode-batches 1 --max-seq-len 800 \
      --prefill-chunk 16 --tokenizer "$m" $extra -o "$W/1b-$v.kiln" \
      > "$W/compile-1b-$v.log" 2>&1 || fail=1
    echo "1b fp16 $v (--batch 64 --decode-batches 1 $extra):" >> "$summary"
    grep -E "kiln-compile: wrote|memory: KV|kernels: (by|decode)|error" "$W/compile-1b-$v.log" | sed "s/^/  /" >> "$summary"
    kiln-run "$W/1b-$v.kiln" --prompt-ids "$prompt" --max-new-tokens 64 --format ids \
      > "$W/tokens-1b-$v.txt" 2> "$W/run-1b-$v.log" || fail=1
    kiln-run "$W/1b-$v.kiln" --bench --bench-prompt 512 --bench-generate 128 > "$W/bench-1b-$v.log" 2>&1 || fail=1
    grep -E "decode|prefill|error" "$W/bench-1b-$v.log" | head -6 | sed "s/^/  /" >> "$summary"
    kiln-serve "$W/1b-$v.kiln" --port 0 2> "$W/server-1b-$v.log" & server=$!
    for _ in $(seq 60); do grep -q "127.0.0.1:[0-9]" "$W/server-1b-$v.log" && break; sleep 0.5; done
    port=$(grep -o "127.0.0.1:[0-9]*" "$W/server-1b-$v.log" | head -1 | cut -d: -f2)
    "$PY" scripts/serve-bench.py --url "http://127.0.0.1:${port:-0}" --requests 128 --concurrency 64 \
      --prompt-min 128 --prompt-max 512 --gen 256 --vocab 128256 --server-pid $server --max-time 200 \
      > "$W/serve-bench-1b-$v.log" 2>&1 || fail=1
    sed "s/^/  /" "$W/serve-bench-1b-$v.log" | tail -5 >> "$summary"
    if [ $v = paged ]; then
      # Issue 17: each of 64 sequences' greedy tokens batched (64 at once) vs alone.
      "$PY" scripts/gpu/agreement.py --url "http://127.0.0.1:${port:-0}" --artifact "$W/1b-$v.kiln" \
        --n 64 --gen 256 > "$W/agreement-1b.log" 2>&1 || fail=1
      sed "s/^/  /" "$W/agreement-1b.log" | tail -12 >> "$summary"
    fi
    kill $server; wait $server
  done
  if cmp -s "$W/tokens-1b-flat.txt" "$W/tokens-1b-paged.txt"; then
    echo "  1b: the 64 greedy tokens after a 128-token prompt are the same flat and paged" >> "$summary"
  else
    echo "  1b: greedy tokens DIFFER flat vs paged:" >> "$summary"; fail=1
    tail -1 "$W/tokens-1b-flat.txt" "$W/tokens-1b-paged.txt" | cut -c1-200 | sed "s/^/    /" >> "$summary"
  fi
  rm -rf "$m" "$W"/1b-*.kiln
  kiln-compile examples/realmodel/model.onnx --target "$arch" --batch 32 --max-seq-len 512 \
    --prefill-chunk 16 --kv-block-size 16 --kv-blocks 256 -o "$W/load-paged.kiln" > "$W/compile-load-paged.log" 2>&1 || fail=1
  kiln-serve "$W/load-paged.kiln" --port 0 2> "$W/server-load-paged.log" & server=$!
  for _ in $(seq 60); do grep -q "127.0.0.1:[0-9]" "$W/server-load-paged.log" && break; sleep 0.5; done
  port=$(grep -o "127.0.0.1:[0-9]*" "$W/server-load-paged.log" | head -1 | cut -d: -f2)
  "$PY" scripts/serve-bench.py --url "http://127.0.0.1:${port:-0}" --requests ${KILN_LOAD_REQUESTS-1000} --concurrency 32 \
    --prompt-min 8 --prompt-max 200 --gen 128 --gen-min 1 --vocab 8192 --cancel-fraction 0.1 \
    --server-pid $server --max-time 200 > "$W/load-paged.log" 2>&1 || fail=1
  echo "load test over a paged pool: real model fp16 --batch 32, 256 blocks of 16, ${KILN_LOAD_REQUESTS-1000} requests, 32 at once, a tenth cancelled:" >> "$summary"
  sed "s/^/  /" "$W/load-paged.log" | tail -6 >> "$summary"
  kill $server; wait $server
fi
if [ "$what" = mmatune ]; then
  # matmul_mma at 64 rows (the 8B shape's batched decode, --batch 64): per-kernel decode times
  # (KILN_PROFILE, one row decoding through the 64-row entry, which computes every row) for the
  # tilings of KILN_MMA_VARIANTS (KILN_TUNE_MATMUL_MMA values; "auto" is the compiler's choice).
  export LD_LIBRARY_PATH="$W/bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  m="$W/gen-8b"; mkdir -p "$m"
  # shellcheck disable=SC2086
  "$PY" test/Import/Inputs/make_llama.py "$m/model.onnx" $(shape_dims 8b) --vocab 128256 --dtype float16 \
    --external-data --cache --tiled-weights > "$W/gen-8b.log" 2>&1 || fail=1
  prompt=$(random_ids 3 128)
  for v in ${KILN_MMA_VARIANTS-auto 64x64s4w2x2 64x32s6w2x2 64x128s3w1x4 64x64s4w1x4 64x32s6w1x2}; do
    tune=""; [ "$v" = auto ] || tune="KILN_TUNE_MATMUL_MMA=$v"
    env $tune kiln-compile "$m/model.onnx" --target "$arch" --batch 64 --max-seq-len 800 --prefill-chunk 16 \
      --prefill-logits last -o "$W/8b-mma.kiln" > "$W/compile-mma-$v.log" 2>&1 || fail=1
    echo "8b fp16 --batch 64, matmul_mma $v:" >> "$summary"
    grep -E "tiles chosen|error" "$W/compile-mma-$v.log" | sed "s/^/  /" >> "$summary"
    KILN_PROFILE=1 KILN_PROFILE_TOP=decode kiln-run "$W/8b-mma.kiln" --no-verify-weights --prompt-ids "$prompt" \
      --max-new-tokens 33 --format ids > "$W/profile-mma-$v.log" 2>&1 || fail=1
    grep -E "kiln-run: decode|kiln profile: .*decode_k[0-9]+_(matmul|attention)|error" "$W/profile-mma-$v.log" \
      | head -6 | sed -E "s/^kiln profile: +/  /; s/^kiln-run/  kiln-run/" >> "$summary"
    # Every output element sums over K in the same order whatever the tiling: the same tokens.
    grep -v "^kiln" "$W/profile-mma-$v.log" > "$W/ids-mma-$v.txt"
    if [ "$v" != auto ]; then
      cmp -s "$W/ids-mma-auto.txt" "$W/ids-mma-$v.txt" && echo "  the same 33 greedy tokens as auto" >> "$summary" \
        || { echo "  greedy tokens DIFFER from auto's" >> "$summary"; fail=1; }
    fi
    rm -f "$W/8b-mma.kiln"
  done
  rm -rf "$m"
fi
if [ "$what" = loadtest ]; then
  # Issue 17's load test on the GPU: the real model (--batch 16, 16-token chunks) behind
  # kiln-serve, 1000 streamed requests, 32 at once (so some wait in the queue), prompts of 8-200
  # ids, 1-128 new tokens, a tenth cancelled by their client after 1-8 chunks. serve-bench.py
  # reports completions, failures, the rows in use once it settles and the server's RSS at
  # 10%, 50% and the end; the server's device memory is sampled every second throughout.
  # Then check_serve.py on the fp16 real model with 4 rows (greedy and seeded sampling alone
  # and batched, bad requests, drops, --max-queue, SIGTERM).
  export LD_LIBRARY_PATH="$W/bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  kiln-compile examples/realmodel/model.onnx --target "$arch" --batch 16 --max-seq-len 512 \
    --prefill-chunk 16 -o "$W/load.kiln" > "$W/compile-load.log" 2>&1 || fail=1
  kiln-serve "$W/load.kiln" --port 0 2> "$W/server-load.log" & server=$!
  for _ in $(seq 60); do grep -q "127.0.0.1:[0-9]" "$W/server-load.log" && break; sleep 0.5; done
  port=$(grep -o "127.0.0.1:[0-9]*" "$W/server-load.log" | head -1 | cut -d: -f2)
  ( while kill -0 $server 2>/dev/null; do
      nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null \
        | awk -F', ' -v p=$server '$1 == p {print $2}'
      sleep 1
    done ) > "$W/load-devmem.txt" & sampler=$!
  "$PY" scripts/serve-bench.py --url "http://127.0.0.1:${port:-0}" --requests ${KILN_LOAD_REQUESTS-1000} --concurrency 32 \
    --prompt-min 8 --prompt-max 200 --gen 128 --gen-min 1 --vocab 8192 --cancel-fraction 0.1 \
    --server-pid $server --max-time 400 > "$W/load.log" 2>&1 || fail=1
  echo "load test: real model fp16 --batch 16 behind kiln-serve, ${KILN_LOAD_REQUESTS-1000} requests, 32 at once, a tenth cancelled:" >> "$summary"
  sed "s/^/  /" "$W/load.log" | tail -8 >> "$summary"
  kill $server; wait $server; kill $sampler 2>/dev/null; wait $sampler 2>/dev/null
  "$PY" - "$W/load-devmem.txt" >> "$summary" <<'PYEOF'
import sys
v = [int(x) for x in open(sys.argv[1]).read().split() if x.strip().isdigit()]
if v:
    n = len(v)
    print(f"  server device memory (MiB, sampled each second, {n} samples): first {v[0]}, "
          f"at 10% {v[n // 10]}, middle {v[n // 2]}, last {v[-1]}, min {min(v)}, max {max(v)}")
else:
    print("  server device memory: no samples (nvidia-smi listed no process)")
PYEOF
  kiln-compile examples/realmodel/model.onnx --target "$arch" --batch 4 --max-seq-len 256 \
    --prefill-chunk 4 -o "$W/serve-fp16.kiln" > "$W/compile-serve-fp16.log" 2>&1 || fail=1
  echo "check_serve.py, real model fp16, --batch 4 ($arch):" >> "$summary"
  ( time "$PY" test/E2E/Inputs/check_serve.py "$W/serve-fp16.kiln" ) > "$W/check-serve-fp16.log" 2>&1 || fail=1
  grep -E "^ok|FAIL|rror|^real" "$W/check-serve-fp16.log" | sed "s/^/  /" >> "$summary"
fi
if [ "$what" = 8b ]; then
  # Llama-3-8B shape: export (~6 min), compile and run each scheme of KILN_8B_SCHEMES
  # (default "fp16 int4:128") with kiln-run --bench and the 128+256 decode, then the read
  # bandwidth (pytorch_baselines.py bw) in the same call. The export is kept in
  # /tmp/kiln-8b-model, so a second call right after the first (the machine still warm)
  # skips it: "KILN_8B_SCHEMES= ... 8b" (export only) then "... 8b" in the next call.
  m=/tmp/kiln-8b-model
  if [ ! -f "$m/model.onnx.data" ]; then
    rm -rf "$m"
    ( time "$PY" examples/export/export_llama.py --shape 8b --dtype fp16 --out "$m" ) > "$OUT/export-8b.log" 2>&1
    echo "8b export: $(tail -4 "$OUT/export-8b.log" | tr '\n' ' ')" >> "$summary"
  else
    echo "8b export: reused $m from an earlier call" >> "$summary"
  fi
  OUT="$OUT" "$PY" examples/export/pytorch_baselines.py bw > "$OUT/baselines-bw.log" 2>&1 || fail=1
  grep bandwidth "$OUT/baselines-bw.log" | sed "s/^/  /" >> "$summary"
  for q in ${KILN_8B_SCHEMES-fp16 int4:128}; do
    flags=""; [ "$q" = fp16 ] || flags="--quantize=$q"
    tag=${q//:/-}
    # shellcheck disable=SC2086
    ( /usr/bin/time -v kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len 1024 \
        --prefill-chunk 512 $flags -o "$W/8b-$tag.kiln" ) > "$OUT/compile-8b-$tag.log" 2>&1 || fail=1
    echo "8b $q compile:" >> "$summary"
    grep -E "kiln-compile:|memory:|kernels:|Maximum resident|Elapsed|error" "$OUT/compile-8b-$tag.log" | sed "s/^/  /" >> "$summary"
    [ -f "$W/8b-$tag.kiln" ] || continue
    prompt128=$(random_ids 1 128)
    kiln-run "$W/8b-$tag.kiln" --prompt-ids "$prompt128" --max-new-tokens 256 --format ids \
      > /dev/null 2> "$OUT/run-8b-$tag-decode.log" || fail=1
    echo "8b $q decode (128-token prompt, 256 new):" >> "$summary"
    grep -E "tok/s|error" "$OUT/run-8b-$tag-decode.log" | sed "s/^/  /" >> "$summary"
    kiln-run "$W/8b-$tag.kiln" --bench > "$OUT/bench-8b-$tag.txt" 2>&1 || fail=1
    echo "8b $q kiln-run --bench:" >> "$summary"
    sed "s/^/  /" "$OUT/bench-8b-$tag.txt" >> "$summary"
    KILN_PROFILE=1 KILN_PROFILE_TOP=decode kiln-run "$W/8b-$tag.kiln" --prompt-ids "$prompt128" \
      --max-new-tokens 32 --format ids > /dev/null 2> "$OUT/profile-8b-$tag.log" || true
    rm -f "$W/8b-$tag.kiln"
  done
  if [ -n "${KILN_8B_PREFILL:-}" ]; then
    # fp16 prefill of a KILN_8B_PREFILL-token prompt in one chunk (e.g. 2048), with
    # PyTorch eager's (pytorch_baselines.py prefill-8b) in the same call.
    L=$KILN_8B_PREFILL
    ( /usr/bin/time -v kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len $((L + 64)) \
        --prefill-chunk "$L" -o "$W/8b-p$L.kiln" ) > "$OUT/compile-8b-p$L.log" 2>&1 || fail=1
    echo "8b fp16 prefill, $L-token prompt (--prefill-chunk $L):" >> "$summary"
    grep -E "kiln-compile:|memory: activation|kernels: (tiles|by)|Maximum resident|Elapsed|error" \
      "$OUT/compile-8b-p$L.log" | sed "s/^/  /" >> "$summary"
    kiln-run "$W/8b-p$L.kiln" --bench --bench-prompt "$L" --bench-generate 16 \
      > "$OUT/bench-8b-p$L.txt" 2>&1 || fail=1
    sed "s/^/  /" "$OUT/bench-8b-p$L.txt" >> "$summary"
    KILN_PROFILE=1 KILN_PROFILE_TOP=prefill kiln-run "$W/8b-p$L.kiln" --prompt-ids "$(random_ids 3 "$L")" \
      --max-new-tokens 1 --format ids > "$OUT/profile-8b-p$L.log" 2>&1 || fail=1
    grep -E "kiln profile:.*(by mapping|prefill )|error" "$OUT/profile-8b-p$L.log" | head -14 \
      | sed "s/^/  /" >> "$summary"
    grep -E "prefill_k" "$OUT/profile-8b-p$L.log" | sed -n '1,12p' | sed "s/^/  /" >> "$summary"
    rm -f "$W/8b-p$L.kiln"
    mkdir -p "$OUT/pt8bp"; OUT="$OUT/pt8bp" "$PY" examples/export/pytorch_baselines.py prefill-8b \
      > "$OUT/baselines-prefill-8b.log" 2>&1 || fail=1
    echo "8b PyTorch eager prefill (same card, same run):" >> "$summary"
    grep "prefill" "$OUT/baselines-prefill-8b.log" | tail -2 | cut -c1-400 | sed "s/^/  /" >> "$summary"
  fi
  if [ "${KILN_8B_BASELINE:-0}" = 1 ]; then # PyTorch eager/compiled on the same card (~2 min)
    mkdir -p "$OUT/pt8b"; OUT="$OUT/pt8b" "$PY" examples/export/pytorch_baselines.py 8b > "$OUT/baselines-8b.log" 2>&1 || fail=1
    echo "8b PyTorch baselines:" >> "$summary"
    grep -v "^bandwidth" "$OUT/baselines-8b.log" | tail -4 | cut -c1-600 | sed "s/^/  /" >> "$summary"
  fi
  "$PY" - "$OUT" "$m" "${KILN_8B_SCHEMES-fp16 int4:128}" >> "$summary" <<'PYEOF'
import json, os, re, sys
out, m, schemes = sys.argv[1], sys.argv[2], sys.argv[3].split()
try:
    bw = json.load(open(f"{out}/baselines.json"))["read_TBps"]
    cfg = json.load(open(f"{m}/config.json"))
    emb = cfg["vocab_size"] * cfg["hidden_size"] * 2  # the embedding table: one row is read
    for q in schemes:
        tag = q.replace(":", "-")
        log = open(f"{out}/compile-8b-{tag}.log").read()
        b = int(re.search(r"memory: weights (\d+) bytes", log).group(1)) - emb
        tps = float(re.search(r"decode: .*?\(([\d.]+) tok/s\)",
                              open(f"{out}/run-8b-{tag}-decode.log").read()).group(1))
        limit = bw * 1e12 / b
        print(f"8b {q} decode: {tps:.1f} tok/s; limit {limit:.0f} tok/s ({b/1e9:.2f} GB read per "
              f"step: the weights but the embedding table, at {bw:.2f} TB/s read) -> {tps/limit:.1%}")
except Exception as e:
    print(f"(could not compute the 8b bandwidth fraction: {e})")
PYEOF
fi

if [ "$what" = prefill ]; then
  # Prefill of the 1b shape (fp16): one chunk of 512 and one of 2048 tokens, each compiled
  # for its chunk; --bench times the prompt (median of 5) and reports TFLOP/s.
  m="$W/llama1b"
  ( time "$PY" examples/export/export_llama.py --shape 1b --dtype fp16 --out "$m" ) > "$OUT/export-1b.log" 2>&1
  for L in 512 2048; do
    ( /usr/bin/time -v kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len $((L + 64)) \
        --prefill-chunk $L ${KILN_PREFILL_FLAGS:-} -o "$W/1b-p$L.kiln" ) > "$OUT/compile-1b-p$L.log" 2>&1 || fail=1
    kiln-run "$W/1b-p$L.kiln" --bench --bench-prompt $L --bench-generate 16 \
      > "$OUT/bench-1b-p$L.txt" 2>&1 || fail=1
    echo "1b fp16 prefill, $L-token prompt (--prefill-chunk $L):" >> "$summary"
    grep -E "memory: activation|kernels: (prefill|by)|Maximum resident|error" "$OUT/compile-1b-p$L.log" \
      | sed "s/^/  /" >> "$summary"
    sed "s/^/  /" "$OUT/bench-1b-p$L.txt" >> "$summary"
    KILN_PROFILE=1 KILN_PROFILE_TOP=prefill kiln-run "$W/1b-p$L.kiln" --prompt-ids "$(random_ids 3 $L)" \
      --max-new-tokens 1 --format ids > "$OUT/profile-1b-p$L.log" 2>&1 || fail=1
    grep -E "kiln profile:.*(by mapping|prefill )|error" "$OUT/profile-1b-p$L.log" | head -14 \
      | sed "s/^/  /" >> "$summary"
    grep -E "prefill_k" "$OUT/profile-1b-p$L.log" | sed -n '1,20p' | sed "s/^/  /" >> "$summary"
  done
  # The tensor-core kernels' effect: the 512 build without them.
  kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len 576 --prefill-chunk 512 \
    --no-fuse=tensor-cores -o "$W/1b-p512-notc.kiln" > "$OUT/compile-1b-p512-notc.log" 2>&1 || fail=1
  kiln-run "$W/1b-p512-notc.kiln" --bench --bench-prompt 512 --bench-generate 16 \
    > "$OUT/bench-1b-p512-notc.txt" 2>&1 || fail=1
  echo "1b fp16 prefill, 512-token prompt, --no-fuse=tensor-cores:" >> "$summary"
  grep -E "memory: activation|error" "$OUT/compile-1b-p512-notc.log" | sed "s/^/  /" >> "$summary"
  grep -E "prefill|error" "$OUT/bench-1b-p512-notc.txt" | sed "s/^/  /" >> "$summary"
  OUT="$OUT" "$PY" examples/export/pytorch_baselines.py prefill-1b > "$OUT/baselines.log" 2>&1 || fail=1
  echo "pytorch baselines (same card, same run):" >> "$summary"
  tail -4 "$OUT/baselines.log" | sed "s/^/  /" >> "$summary"
fi

if [ "$what" = wgmma ]; then
  # matmul_wgmma (sm_90a warpgroup MMA) against matmul_mma (--no-fuse=wgmma), both ways in
  # the same call: the real model's perplexity on eval_dev.txt (512-token windows: prefill
  # projections of 512 rows) and its greedy text; then the 1b shape (KILN_WGMMA_SHAPES,
  # default "1b 8b"; make_llama.py --tiled-weights, random weights; the 8b with
  # KILN_WGMMA_8B_LAYERS of its 32 layers, default 32) at prompts of KILN_WGMMA_PROMPTS
  # (default 512 2048; the 8b KILN_WGMMA_8B_PROMPTS, default 2048) tokens, one chunk each: the last position's logits of both builds
  # (relative L2) and their greedy tokens, kiln-run --bench prefill tok/s and TFLOP/s, and
  # the prefill kernels' profile (KILN_WGMMA_VARIANTS="wgmma" skips the mma build and the
  # comparison; KILN_WGMMA_REALMODEL=0 skips the real model). KILN_WGMMA_TORCH="prefill-1b
  # prefill-8b" adds PyTorch eager's prefill (pytorch_baselines.py) in the same call.
  rm=examples/realmodel
  rmv="wgmma mma"; [ "${KILN_WGMMA_REALMODEL:-1}" = 0 ] && rmv=""
  for v in $rmv; do
    flag=""; [ $v = mma ] && flag=--no-fuse=wgmma
    kiln-compile "$rm/model.onnx" --target "$arch" --max-seq-len 512 --prefill-chunk 512 $flag \
      -o "$W/rm-$v.kiln" > "$OUT/compile-rm-$v.log" 2>&1 || fail=1
    echo "realmodel $v${flag:+ ($flag)}:" >> "$summary"
    grep -E "tiles chosen|error" "$OUT/compile-rm-$v.log" | sed "s/^/  /" >> "$summary"
    kiln-run "$W/rm-$v.kiln" --perplexity "$rm/eval_dev.txt" --predictions "$W/pred-$v.txt" \
      > "$OUT/ppl-rm-$v.log" 2>&1 || fail=1
    grep -E "perplexity|error" "$OUT/ppl-rm-$v.log" | tail -2 | sed "s/^/  /" >> "$summary"
    kiln-run "$W/rm-$v.kiln" --prompt 'def fibonacci(n):' --max-new-tokens 64 --format ids \
      > "$W/rm-fib-$v.ids" 2> "$OUT/text-rm-$v.log" || fail=1
    if cmp -s "$W/rm-fib-$v.ids" "$W/bundle/cpu/realmodel-fibonacci.ids"; then
      echo "  greedy text ('def fibonacci(n):', 64 new): the CPU target's ids" >> "$summary"
    else
      fail=1; echo "  FAIL: greedy text differs from the CPU target's" >> "$summary"
    fi
  done
  [ -n "$rmv" ] && "$PY" - "$W/pred-wgmma.txt" "$W/pred-mma.txt" >> "$summary" <<'PYEOF' || fail=1
import sys
a, b = (open(f).read().split() for f in sys.argv[1:3])
print(f"  realmodel top-1 predictions, wgmma vs mma: {sum(x == y for x, y in zip(a, b))} of {len(a)} equal")
PYEOF
  for shape in ${KILN_WGMMA_SHAPES-1b 8b}; do
    dims=$(shape_dims "$shape")
    [ "$shape" = 8b ] && dims=${dims/--layers 32/--layers ${KILN_WGMMA_8B_LAYERS:-32}}
    m="$W/gen-$shape"; mkdir -p "$m"
    # shellcheck disable=SC2086
    "$PY" test/Import/Inputs/make_llama.py "$m/model.onnx" $dims --vocab 128256 --dtype float16 \
      --external-data --cache --tiled-weights > "$W/gen-$shape.log" 2>&1 || fail=1
    prompts=${KILN_WGMMA_PROMPTS:-512 2048}; [ "$shape" = 8b ] && prompts=${KILN_WGMMA_8B_PROMPTS:-2048}
    for L in $prompts; do
      prompt=$(random_ids 7 "$L")
      for v in ${KILN_WGMMA_VARIANTS:-wgmma mma}; do
        flag=""; [ $v = mma ] && flag=--no-fuse=wgmma
        k="$W/$shape-p$L-$v.kiln"
        kiln-compile "$m/model.onnx" --target "$arch" --max-seq-len $((L + 64)) --prefill-chunk "$L" \
          $flag -o "$k" > "$OUT/compile-$shape-p$L-$v.log" 2>&1 || fail=1
        echo "$shape ($dims) fp16 prefill, $L-token prompt, $v${flag:+ ($flag)}:" >> "$summary"
        grep -E "tiles chosen|memory: activation|error" "$OUT/compile-$shape-p$L-$v.log" | sed "s/^/  /" >> "$summary"
        [ -f "$k" ] || continue
        kiln-run "$k" --prompt-ids "$prompt" --max-new-tokens 16 --format ids \
          --dump-logits "$W/$shape-p$L-$v.npy" > "$W/$shape-p$L-$v.ids" 2> "$W/run-$shape-p$L-$v.log" || fail=1
        grep -E "error" "$W/run-$shape-p$L-$v.log" | sed "s/^/  /" >> "$summary"
        kiln-run "$k" --bench --bench-prompt "$L" --bench-generate 16 > "$OUT/bench-$shape-p$L-$v.txt" 2>&1 || fail=1
        grep -E "prefill|error" "$OUT/bench-$shape-p$L-$v.txt" | sed "s/^/  /" >> "$summary"
        KILN_PROFILE=1 KILN_PROFILE_TOP=prefill kiln-run "$k" --prompt-ids "$prompt" --max-new-tokens 1 \
          --format ids > "$W/profile-$shape-p$L-$v.log" 2>&1 || fail=1
        grep -E "kiln profile:.*by mapping" "$W/profile-$shape-p$L-$v.log" | head -4 | sed "s/^/  /" >> "$summary"
        grep -E "prefill_k" "$W/profile-$shape-p$L-$v.log" | sed -n '1,8p' | sed "s/^/  /" >> "$summary"
        rm -f "$k"
      done
      [ -f "$W/$shape-p$L-mma.npy" ] && "$PY" - "$W/$shape-p$L-wgmma" "$W/$shape-p$L-mma" "$L" >> "$summary" <<'PYEOF' || fail=1
import sys
import numpy as np
a, b, L = sys.argv[1], sys.argv[2], int(sys.argv[3])
x, y = np.load(a + ".npy"), np.load(b + ".npy")
rel = lambda p, q: float(np.linalg.norm(p - q) / np.linalg.norm(q))
last = rel(x[L - 1], y[L - 1])
whole = rel(x[:L], y[:L])
ia, ib = open(a + ".ids").read().split(), open(b + ".ids").read().split()
same = next((i for i, (p, q) in enumerate(zip(ia, ib)) if p != q), min(len(ia), len(ib)))
ok = last <= 2e-2 and np.isfinite(x).all()
print(f"  {'ok' if ok else 'FAIL'}: wgmma vs mma logits relative L2 {last:.2e} at the last prompt position "
      f"({whole:.2e} over all {L}); greedy tokens: the first {same} of {len(ia)} agree")
sys.exit(0 if ok else 1)
PYEOF
      rm -f "$W/$shape-p$L-"*.npy
    done
    rm -rf "$m"
  done
  if [ -n "${KILN_WGMMA_TORCH:-}" ]; then
    # shellcheck disable=SC2086
    mkdir -p "$OUT/pt"; OUT="$OUT/pt" "$PY" examples/export/pytorch_baselines.py $KILN_WGMMA_TORCH \
      > "$OUT/baselines-prefill.log" 2>&1 || fail=1
    echo "PyTorch eager prefill (same card, same run):" >> "$summary"
    grep "prefill" "$OUT/baselines-prefill.log" | tail -4 | cut -c1-400 | sed "s/^/  /" >> "$summary"
  fi
fi

# Only the summary and one archive of the logs come back (the device tool
# returns at most 8 files).
(cd "$OUT" && tar -czf "$W/logs.tar.gz" --exclude=summary.txt . 2>/dev/null
  find . -maxdepth 1 -type f ! -name summary.txt ! -name baselines.json -delete
  mv "$W/logs.tar.gz" .)
echo "=== summary"
cat "$summary"
exit $fail
