#!/usr/bin/env bash
# Per-kernel GPU time of the 1B decode, on the GPU host after `scripts/gpu/check.sh 1b`
# (which leaves /tmp/kiln-gpu/1b.kiln): Nsight Systems with CUDA graphs traced node by node,
# then the kernel summary as CSV in $OUT/kernels.csv. Skips (exit 0) when nsys is missing.
set -uo pipefail
OUT=${OUT:-/tmp/kiln-gpu-out}
export PATH="/tmp/kiln-gpu/bundle/bin:/usr/local/cuda/bin:$PATH"
nsys=$(command -v nsys || ls /opt/nvidia/nsight-systems/*/bin/nsys /usr/local/cuda/bin/nsys 2>/dev/null | head -1)
if [ -z "$nsys" ] || [ ! -f /tmp/kiln-gpu/1b.kiln ]; then
  echo "profile: no nsys or no /tmp/kiln-gpu/1b.kiln; skipped"
  exit 0
fi
prompt=$(python3 -c "print(','.join(str(i * 7 % 128000) for i in range(128)))")
"$nsys" profile --cuda-graph-trace=node --force-overwrite true -o /tmp/kiln-prof \
  kiln-run /tmp/kiln-gpu/1b.kiln --prompt-ids "$prompt" --max-new-tokens 64 --format ids \
  > "$OUT/profile-run.log" 2>&1
"$nsys" stats --report cuda_gpu_kern_sum --format csv --output "$OUT/kernels" /tmp/kiln-prof.nsys-rep \
  > "$OUT/profile-stats.log" 2>&1
ls "$OUT"/kernels* 2>/dev/null
head -25 "$OUT"/kernels*.csv 2>/dev/null | cut -c1-200
