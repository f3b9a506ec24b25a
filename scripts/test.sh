#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine if needed, builds, and runs every test
# (lit suites and GoogleTest units) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure -j 2
