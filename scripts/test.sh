#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine if needed, builds, fuzzes the loaders for 30 s each
# (scripts/fuzz.sh), and runs every test (lit suites and GoogleTest units) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
# The loaders under libFuzzer (ASan + UBSan), 30 s each (scripts/fuzz.sh runs longer).
scripts/fuzz.sh 30
cd build
ctest --output-on-failure -j 2
