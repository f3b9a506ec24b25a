#!/usr/bin/env bash
# Installs everything Kiln needs on Debian 12: the Debian packages (LLVM/MLIR 22,
# protobuf + the ONNX schema, test tools) and a Python venv with the pinned test oracles.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(cmake ninja-build g++ python3 python3-venv
      libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools
      libonnx-dev libprotobuf-dev protobuf-compiler
      libflatbuffers-dev flatbuffers-compiler libcli11-dev libxxhash-dev
      libpcre2-dev nlohmann-json3-dev pybind11-dev python3-dev
      libgtest-dev zlib1g-dev libzstd-dev clang-format-22
      clang-22 libclang-rt-22-dev libcpp-httplib-dev pkgconf)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv for the pinned test oracles (requirements.txt)"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
# A stamp holds the hash of the requirements.txt the venv was installed from,
# so that a changed pin (a new oracle) reaches existing venvs, CI's included.
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat .venv/requirements.sha256 2>/dev/null)" != "$want" ] ||
   ! .venv/bin/python -c 'import onnx, onnxruntime, numpy, tokenizers, jinja2' 2>/dev/null; then
  echo "setup: installing the pinned test oracles (requirements.txt) into .venv"
  .venv/bin/pip install -q -r requirements.txt
  echo "$want" > .venv/requirements.sha256
fi
