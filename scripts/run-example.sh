#!/usr/bin/env bash
# The main job on the bundled example model: set up, build, compile the small real Llama
# (examples/realmodel: trained on Python source, fp16, its tokenizer beside model.onnx) for the
# CPU and generate text from a prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
model=examples/realmodel/model.onnx
echo "== kiln-compile $model --emit=summary"
build/bin/kiln-compile "$model" --emit=summary
echo "== kiln-compile $model --target cpu --max-seq-len 512 -o build/realmodel.kiln"
build/bin/kiln-compile "$model" --target cpu --max-seq-len 512 -o build/realmodel.kiln
echo "== kiln-run build/realmodel.kiln --prompt 'def fibonacci(n):' --max-new-tokens 64"
build/bin/kiln-run build/realmodel.kiln --prompt 'def fibonacci(n):' --max-new-tokens 64
