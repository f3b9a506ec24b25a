#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (the artifact loader, the tokenizer, chat templates, the .npy reader,
# kiln-run's command line, kiln-compile's option rules, the ONNX loader and importer) with clang-22 under ASan + UBSan in
# build-fuzz/, and runs each for SECONDS (default 60) from seed corpora made from the bundled
# examples and the importer tests' model generator. Then, when the main build is there, runs
# the whole lit suite with kiln-compile (importer, passes, code generation) and the runtime's
# tools (kiln-run, kiln-tokenize, kiln-generate-c) built the same way (ASan + UBSan): every
# test that runs them is a sanitizer test too. Any crash, hang (over 10 s on one input),
# leak or sanitizer report fails it; the reproducer is left in build-fuzz/findings/.
# Inputs that once found a bug live in fuzz/regressions/TARGET/ and are replayed first.
#   scripts/fuzz.sh [SECONDS]       (CI: scripts/test.sh runs it with 30)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
B=build-fuzz
cmake -G Ninja -S fuzz -B "$B" -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$B.configure.log" 2>&1 || { cat "$B.configure.log"; exit 1; }
targets="artifact tokenizer npy chat-template options compile-options onnx"
# shellcheck disable=SC2086
ninja -C "$B" -j "${KILN_JOBS:-2}" $(printf 'fuzz-%s ' $targets) > "$B.build.log" 2>&1 ||
  { tail -30 "$B.build.log"; exit 1; }

# Seeds: a small artifact (kiln-fake-artifact) and a tiny export compiled for a GPU target
# (PTX only: no host code in it) when the main build is there; the real model's
# tokenizer.json and a minimal one; .npy files of each dtype kiln-run --past reads.
rm -rf "$B/seeds" "$B/corpus" && mkdir -p "$B/findings"
for t in $targets; do mkdir -p "$B/seeds/$t" "$B/corpus/$t"; done
if [ -x build/bin/kiln-fake-artifact ]; then
  build/bin/kiln-fake-artifact "$B/seeds/artifact/fake.kiln" >/dev/null
fi
if [ -x build/bin/kiln-compile ]; then
  build/bin/kiln-compile examples/llama32_tiny/nocache_dynamo_fp16/model.onnx --target sm_80 \
    --max-seq-len 16 --prefill-chunk 4 --quiet -o "$B/seeds/artifact/tiny-sm80.kiln" || true
fi
cp examples/realmodel/tokenizer.json "$B/seeds/tokenizer/realmodel.json"
printf '%s' '{"version":"1.0","added_tokens":[{"id":3,"content":"<s>","special":true}],"normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},"post_processor":null,"decoder":{"type":"ByteLevel"},"model":{"type":"BPE","dropout":null,"unk_token":null,"byte_fallback":false,"vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}' \
  > "$B/seeds/tokenizer/minimal.json"
# Chat templates: the ones test/Tokenizer/Inputs/check_chat_templates.py checks against jinja2.
PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python
"$PY" - "$B/seeds/chat-template" <<'PYEOF'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("c", "test/Tokenizer/Inputs/check_chat_templates.py")
c = importlib.util.module_from_spec(spec)
spec.loader.exec_module(c)
for name, template in c.TEMPLATES.items():
    open(f"{sys.argv[1]}/{name}.jinja", "w").write(template)
PYEOF
"$PY" - "$B/seeds/npy" <<'PYEOF'
import sys
import numpy as np
d = sys.argv[1]
np.save(f"{d}/f32.npy", np.arange(24, dtype=np.float32).reshape(2, 3, 4))
np.save(f"{d}/f16.npy", np.ones((4, 1, 2, 3, 8), dtype=np.float16))
np.save(f"{d}/empty.npy", np.zeros((2, 1, 2, 0, 8), dtype=np.float32))
PYEOF

# kiln-run command lines (arguments separated by NUL bytes, \x00: \000 followed by a digit
# would be another octal escape).
printf -- '--prompt-ids\x001,2,3\x00--max-new-tokens\x004\x00--format\x00ids' > "$B/seeds/options/ids"
printf -- '--prompt\x00def f():\x00--temperature\x000.7\x00--top-p\x000.9\x00--seed\x0042' > "$B/seeds/options/text"
printf -- '--bench\x00--bench-prompt\x0016\x00--json' > "$B/seeds/options/bench"
printf -- '--perplexity\x00eval.txt\x00--perplexity-window\x00128' > "$B/seeds/options/ppl"
# kiln-compile's options: target, quantize, batch, prefill chunk, max seq len, flags, --no-fuse...
printf 'sm_90\x00int4:128\x001\x0064\x002048\x00\002\x00norm\x00swiglu' > "$B/seeds/compile-options/ok"
printf 'sm_60\x00int8:96\x000\x00999\x0016\x00\001\x00all\x00bogus' > "$B/seeds/compile-options/bad"
# Small Llama graphs in the exporters' styles (test/Import/Inputs/make_llama.py, ~20 KB each).
for v in "default:" "torchscript:--rms div --scale div --mask where --rms-casts" \
         "cache:--cache" "gqa:--heads 4 --kv-heads 2 --layers 2"; do
  "$PY" test/Import/Inputs/make_llama.py "$B/seeds/onnx/${v%%:*}.onnx" ${v#*:} >/dev/null 2>&1 ||
    echo "fuzz: (could not make the onnx seed ${v%%:*})"
done

status=0
# Inputs that once crashed a target (fuzz/regressions/TARGET/, each named for what it
# found) run first, every time: a fixed bug stays fixed whatever the timed runs explore.
for t in $targets; do
  [ -d "fuzz/regressions/$t" ] || continue
  if ! "$B/fuzz-$t" fuzz/regressions/"$t"/* -timeout=10 -rss_limit_mb=4096 \
      > "$B/fuzz-$t-regressions.log" 2>&1; then
    status=1
    echo "fuzz: $t regression input FAILS AGAIN:"
    grep -E "Running:|ERROR|SUMMARY" "$B/fuzz-$t-regressions.log" | tail -5
  else
    echo "fuzz: $t: $(ls fuzz/regressions/"$t" | wc -l) regression inputs pass"
  fi
done
for t in $targets; do
  echo "fuzz: $t for ${seconds}s"
  if ! "$B/fuzz-$t" "$B/corpus/$t" "$B/seeds/$t" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=4096 -artifact_prefix="$B/findings/$t-" -print_final_stats=1 -close_fd_mask=3 \
      > "$B/fuzz-$t.log" 2>&1; then
    status=1
    echo "fuzz: $t FOUND A PROBLEM (reproducer in $B/findings/):"
    grep -E "ERROR|SUMMARY|Test unit written" "$B/fuzz-$t.log" | head -10
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$B/fuzz-$t.log" | tr '\n' ' ' | sed 's/^/  /'
  echo
done
if [ -x build/bin/kiln-compile ] && [ -f build/test/lit.site.cfg.py ]; then
  echo "sanitized tools: the lit suite (less 10 whole-model tests) with $B/bin/kiln-compile, kiln-run, kiln-tokenize, kiln-serve and kiln-generate-c"
  # (Earlier versions linked build/bin/kiln-compile here: the sanitized one must not be
  # written through that link.)
  [ -L "$B/bin/kiln-compile" ] && rm -f "$B/bin/kiln-compile"
  ninja -C "$B" -j "${KILN_JOBS:-2}" kiln-compile kiln-run kiln-tokenize kiln-serve kiln-generate-c \
    >> "$B.build.log" 2>&1 || { tail -30 "$B.build.log"; exit 1; }
  ln -sf "$PWD/build/bin/kiln-opt" "$B/bin/kiln-opt"
  # The slowest end-to-end tests, whose time is the compiler's work on whole models (the
  # plain suite runs them all), are left out here to keep CI under its hour; every other
  # test, the server's, the runtime's and the importer's errors among them, runs sanitized.
  heavy='E2E/(compile-report|quantize-realmodel|genai-builder|numerics-realmodel|fusion-greedy|stream-weights|fused-ops|variants-transformers-js)\.test|Import/raise-(matmulnbits|dequantizelinear)\.test'
  if ! /usr/lib/llvm-22/bin/lit -q --param kiln_tools_dir="$PWD/$B/bin" --filter-out "$heavy" build/test \
      > "$B/lit-sanitized.log" 2>&1; then
    status=1
    echo "sanitized tools: lit FAILED:"
    grep -E "^FAIL|ERROR: AddressSanitizer|runtime error" "$B/lit-sanitized.log" | head -20
  fi
  grep -E "Total Discovered Tests|Excluded|Passed|Failed" "$B/lit-sanitized.log" | sed 's/^/  /'
fi
exit $status
