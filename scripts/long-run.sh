#!/usr/bin/env bash
# Long runs with memory sampled (issue 14): generation to the full context, over and over,
# about 10,000 decode steps in all (kiln-run --bench: prompt P tokens, then the rest of the
# context decoded, repeated), with the process's RSS and (on a GPU) its device memory sampled
# every 0.2 s. Then two processes on the same artifact at once. Prints the memory at start,
# after the warm-up and at the end, and fails if the second half grew or either run failed.
#   scripts/long-run.sh model.kiln [STEPS]        (a kiln-run on PATH, or build/bin's)
set -euo pipefail
model=$1
steps=${2:-10000}
run=$(command -v kiln-run || echo "$(dirname "$0")/../build/bin/kiln-run")
# The context, from the message that refuses more.
context=$({ "$run" "$model" --bench --bench-prompt 1 --bench-generate 1073741824 2>&1 || true; } |
  sed -n "s/.*exceed the artifact's context of \([0-9]*\).*/\1/p")
[ -n "$context" ] || { echo "long-run: cannot read the context of $model"; exit 1; }
prompt=64; [ "$context" -le 128 ] && prompt=$((context / 4))
gen=$((context - prompt))
reps=$(((steps + gen - 1) / gen))
echo "long-run: $model: context $context; $reps x (prompt $prompt + $gen decoded) = $((reps * gen)) decode steps"

sample() { # pid out
  local pid=$1 out=$2
  : > "$out"
  while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    dev=""
    if command -v nvidia-smi > /dev/null; then
      dev=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null |
        awk -F', ' -v p="$pid" '$1 == p {print $2}')
    fi
    echo "$(date +%s) ${rss:-0} ${dev:-0}" >> "$out"
    sleep 0.2
  done
}
W=$(mktemp -d)
"$run" "$model" --bench --bench-prompt "$prompt" --bench-generate "$gen" \
  --bench-repetitions "$reps" --json > "$W/one.json" 2> "$W/one.err" &
pid=$!
sample "$pid" "$W/one.mem" &
sampler=$!
wait "$pid" || { echo "long-run: FAILED: $(cat "$W/one.err")"; exit 1; }
wait "$sampler" || true
python3 - "$W/one.mem" "$W/one.json" <<'PYEOF'
import json, sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
# A sample taken as the process exited reads nothing.
while rows and rows[-1][1] == 0:
    rows.pop()
d = json.load(open(sys.argv[2]))
if len(rows) < 3:
    print(f"long-run: {len(rows)} samples (the run took under 0.6 s)"); sys.exit(0)
# The first sample is taken before the model is loaded; "after warm-up" is
# one second in.
start, warm, end = rows[0], rows[min(5, len(rows) - 1)], rows[-1]
half = rows[len(rows) // 2]
print(f"long-run: decode {d['decode_tok_s']:.1f} tok/s on {d['device']}; {len(rows)} samples")
for name, r in (("start", start), ("after warm-up", warm), ("middle", half), ("end", end)):
    print(f"  {name:14s} RSS {r[1] / 1024:8.1f} MiB   device {r[2]:6d} MiB")
grew = end[1] - half[1]
print(f"  RSS from the middle to the end: {grew:+d} KiB; device: {end[2] - half[2]:+d} MiB")
sys.exit(1 if grew > 1024 or end[2] > half[2] else 0)
PYEOF
# Two processes on one artifact (and one GPU) at once: both finish, same figures' shape.
"$run" "$model" --bench --bench-prompt "$prompt" --bench-generate "$gen" --bench-repetitions 2 \
  --json > "$W/a.json" 2> "$W/a.err" &
a=$!
"$run" "$model" --bench --bench-prompt "$prompt" --bench-generate "$gen" --bench-repetitions 2 \
  --json > "$W/b.json" 2> "$W/b.err" &
b=$!
wait $a && wait $b || { echo "long-run: FAILED with two processes: $(cat "$W/a.err" "$W/b.err")"; exit 1; }
python3 -c "import json,sys; [print(f'long-run: concurrent process {i}: decode {json.load(open(f))[\"decode_tok_s\"]:.1f} tok/s') for i, f in enumerate(sys.argv[1:])]" "$W/a.json" "$W/b.json"
rm -rf "$W"
