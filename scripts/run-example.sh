#!/usr/bin/env bash
# The main job on the bundled example model: set up, build, compile the tiny
# Llama export for the CPU and generate from it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
model=examples/llama32_tiny/nocache_dynamo/model.onnx
echo "== kiln-compile $model --emit=summary"
build/bin/kiln-compile "$model" --emit=summary
echo "== kiln-compile $model --target cpu --max-seq-len 256 -o build/llama32_tiny.kiln"
build/bin/kiln-compile "$model" --target cpu --max-seq-len 256 -o build/llama32_tiny.kiln
prompt=$(python3 -c 'import json; print(",".join(map(str, json.load(open("examples/llama32_tiny/nocache_dynamo/io.json"))["prompt"])))')
echo "== kiln-run build/llama32_tiny.kiln --prompt-ids $prompt --max-new-tokens 24"
build/bin/kiln-run build/llama32_tiny.kiln --prompt-ids "$prompt" --max-new-tokens 24
