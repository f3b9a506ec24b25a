#!/bin/bash
# gemv_q's forms against each other and against the CPU target, on the GPU host:
#   scripts/gpu/gemvq-numerics.sh [VARIANT_ENV ...]
# Three layers of the Llama-3-8B shape (make_llama.py: 4096 hidden, GQA 32/8, head_dim 128,
# ffn 14336, vocab 32000, untied, fp16, random weights) quantized --quantize=int4:128 and
# compiled for the GPU twice: the default form and the one the environment settings given
# select (default: KILN_TUNE_GEMV_Q_STAGE=0 KILN_TUNE_GEMV_Q_LOP3=0, x per warp and and+or).
# Both decode a 24-token prompt and 48 new tokens greedily; the CPU target then runs the same
# model over the prompt and the tokens both GPU forms agree on (teacher-forced). Prints the
# logits' relative L2 distances: the two GPU forms per row, and each against the CPU's f32.
# Uses .gpu/bundle.tar.xz (scripts/gpu/build-bundle.sh) like check.sh.
set -u
W=${TMPDIR:-/tmp}/kiln-gemvq-numerics; rm -rf "$W"; mkdir -p "$W"
tar -C "$W" -xJf .gpu/bundle.tar.xz || { echo "cannot unpack .gpu/bundle.tar.xz"; exit 1; }
export PATH="$W/bundle/bin:$PATH"
PY=${PYTHON:-python3}
alt=("$@"); [ ${#alt[@]} -gt 0 ] || alt=(KILN_TUNE_GEMV_Q_STAGE=0 KILN_TUNE_GEMV_Q_LOP3=0)
"$PY" test/Import/Inputs/make_llama.py "$W/m.onnx" --layers 3 --hidden 4096 --heads 32 \
  --kv-heads 8 --head-dim 128 --ffn 14336 --vocab 32000 --untied --dtype float16 --cache \
  > "$W/gen.log" 2>&1 || { tail -3 "$W/gen.log"; exit 1; }
ids=$("$PY" -c "import random; random.seed(7); print(','.join(str(random.randrange(32000)) for _ in range(24)))")
for v in new alt; do
  e=(); [ $v = alt ] && e=("${alt[@]}")
  env "${e[@]}" kiln-compile "$W/m.onnx" --target sm_90 --max-seq-len 256 --quiet \
    --quantize=int4:128 -o "$W/$v.kiln" || exit 1
  kiln-run "$W/$v.kiln" --prompt-ids "$ids" --max-new-tokens 48 --format ids \
    --dump-logits "$W/$v.npy" > "$W/$v.ids" 2> "$W/$v.log" || { tail -3 "$W/$v.log"; exit 1; }
done
same=$("$PY" -c "import sys; a, b = (open(f).read().split() for f in sys.argv[1:]); print(next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a)))" "$W/new.ids" "$W/alt.ids")
forced=$(tr ' ' '\n' < "$W/new.ids" | head -n "$same" | paste -sd, -)
kiln-compile "$W/m.onnx" --target cpu --max-seq-len 256 --quiet --quantize=int4:128 \
  -o "$W/cpu.kiln" || exit 1
kiln-run "$W/cpu.kiln" --prompt-ids "$ids${forced:+,$forced}" --max-new-tokens 1 --format ids \
  --dump-logits "$W/cpu.npy" > /dev/null 2> "$W/cpu.log" || { tail -3 "$W/cpu.log"; exit 1; }
"$PY" - "$W" "$same" "${alt[*]}" <<'PY'
import sys
import numpy as np
w, same, alt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
a, b, c = (np.load(f"{w}/{v}.npy") for v in ("new", "alt", "cpu"))
n = min(24 + same, len(c))  # rows whose inputs agree: the prompt and the shared tokens
a, b, c = a[:n], b[:n], c[:n]
def rel(x, y): return float(np.linalg.norm(x - y) / np.linalg.norm(y))
print(f"greedy tokens, default vs {alt}: the first {same} of 48 agree")
print("rows %d (24 prompt): default vs %s rel. L2 %.3e; argmax agree %d/%d" % (
    n, alt, rel(a, b), (a.argmax(-1) == b.argmax(-1)).sum(), n))
print("  per row:", " ".join("%.1e" % rel(x, y) for x, y in zip(a, b)))
print("against the CPU target (f32): prompt rows default %.3e, other %.3e; decode rows default %.3e, other %.3e" % (
    rel(a[:24], c[:24]), rel(b[:24], c[:24]), rel(a[24:], c[24:]), rel(b[24:], c[24:])))
top2 = np.sort(b, -1)[:, -2:]
print("top-2 logit margins: min %.2e, median %.2e" % ((top2[:, 1] - top2[:, 0]).min(),
                                                    np.median(top2[:, 1] - top2[:, 0])))
PY
