#!/usr/bin/env bash
# The main job on the bundled example model: set up, build, compile the tiny
# Llama export and show what Kiln made of it (its summary and the tfm dialect).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
model=examples/llama32_tiny/nocache_dynamo/model.onnx
echo "== kiln-compile $model --emit=summary"
build/bin/kiln-compile "$model" --emit=summary
echo "== kiln-compile $model --emit=tfm"
build/bin/kiln-compile "$model" --emit=tfm
