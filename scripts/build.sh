#!/usr/bin/env bash
# Configures (once) and builds Kiln into ./build. Incremental; 2 parallel jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  cmake -G Ninja -B build -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
        -DKILN_TEST_PYTHON="$PWD/.venv/bin/python"
fi
ninja -C build -j "${KILN_JOBS:-2}"
