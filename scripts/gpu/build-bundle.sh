#!/usr/bin/env bash
# Builds what the GPU check needs on the GPU host, which has the NVIDIA driver and the CUDA
# toolkit but no MLIR or Debian packages: a kiln-compile linked statically against LLVM/MLIR,
# protobuf and libstdc++ (it needs only glibc), a kiln-run that needs only glibc, kiln-serve
# with the shared libraries it needs besides glibc (bundle/lib), and CPU reference logits of
# the bundled examples. Writes .gpu/bundle.tar.xz (git-ignored; carry `.gpu` to the device
# tool) and prints its size.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/build.sh >/dev/null
mkdir -p .gpu/bundle/bin .gpu/bundle/cpu
d=$(git rev-parse --git-dir); mkdir -p "$d/info"; grep -qx '/.gpu/' "$d/info/exclude" 2>/dev/null || echo '/.gpu/' >> "$d/info/exclude"

# Relink kiln-compile and kiln-run from the objects ninja built, swapping the shared
# libraries for static archives (Debian ships every LLVM component as an archive).
relink() { # target output extra-flags...
  local cmd
  cmd=$(ninja -C build -t commands "bin/$1" | tail -1)
  local llvm_archives
  llvm_archives=$(ls /usr/lib/llvm-22/lib/libLLVM*.a | tr '\n' ' ')
  cmd=${cmd//\/usr\/lib\/x86_64-linux-gnu\/libprotobuf-lite.so/\/usr\/lib\/x86_64-linux-gnu\/libprotobuf-lite.a}
  cmd=${cmd//\/usr\/lib\/x86_64-linux-gnu\/libxxhash.so/\/usr\/lib\/x86_64-linux-gnu\/libxxhash.a}
  cmd=${cmd//\/usr\/lib\/x86_64-linux-gnu\/libpcre2-8.so/\/usr\/lib\/x86_64-linux-gnu\/libpcre2-8.a}
  cmd=${cmd//\/usr\/lib\/llvm-22\/lib\/libLLVM.so.1/-Wl,--start-group $llvm_archives -Wl,--end-group \/usr\/lib\/x86_64-linux-gnu\/libz.a \/usr\/lib\/x86_64-linux-gnu\/libzstd.a -lrt -ldl -lpthread -lm}
  cmd=${cmd//-o bin\/$1 /-o $2 -static-libstdc++ -static-libgcc -Wl,--gc-sections -s }
  (cd build && eval "$cmd" 2>&1 | grep -v -i warning || true)
}
relink kiln-compile "$PWD/.gpu/bundle/bin/kiln-compile"
relink kiln-run "$PWD/.gpu/bundle/bin/kiln-run"
# kiln-serve links Debian's compiled cpp-httplib (with OpenSSL, zlib and brotli): its
# shared libraries travel in bundle/lib (check.sh puts it on LD_LIBRARY_PATH).
relink kiln-serve "$PWD/.gpu/bundle/bin/kiln-serve"
mkdir -p .gpu/bundle/lib
ldd .gpu/bundle/bin/kiln-serve | awk '$2 == "=>" && $3 ~ /^\// {print $3}' \
  | grep -v -E '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' \
  | while read -r lib; do cp -L "$lib" .gpu/bundle/lib/; done
for tool in kiln-compile kiln-run; do
  if ldd ".gpu/bundle/bin/$tool" | grep -v -E 'linux-vdso|libc\.so|libm\.so|ld-linux' | grep -q '=>'; then
    echo "build-bundle: $tool still needs non-glibc shared libraries:" >&2
    ldd ".gpu/bundle/bin/$tool" >&2
    exit 1
  fi
done

# CPU reference logits for the GPU-vs-CPU comparison (same model, same inputs).
for v in nocache_dynamo nocache_torchscript nocache_dynamo_fp16 cache_torchscript nocache_dynamo_opset23; do
  ids=$(python3 -c "import json; print(','.join(map(str, json.load(open('examples/llama32_tiny/$v/io.json'))['input_ids'])))")
  build/bin/kiln-compile "examples/llama32_tiny/$v/model.onnx" --max-seq-len 64 \
    --prefill-chunk 16 --quiet -o ".gpu/bundle/cpu/$v.kiln"
  build/bin/kiln-run ".gpu/bundle/cpu/$v.kiln" --prompt-ids "$ids" --max-new-tokens 0 \
    --format ids --dump-logits ".gpu/bundle/cpu/$v.npy" >/dev/null 2>&1
  rm ".gpu/bundle/cpu/$v.kiln"
done
# The real model's greedy text on the CPU target, for the GPU's to equal (ids and text).
build/bin/kiln-compile examples/realmodel/model.onnx --max-seq-len 512 --quiet \
  -o .gpu/bundle/cpu/realmodel.kiln
build/bin/kiln-run .gpu/bundle/cpu/realmodel.kiln --prompt 'def fibonacci(n):' \
  --max-new-tokens 64 --format ids > .gpu/bundle/cpu/realmodel-fibonacci.ids 2>/dev/null
rm .gpu/bundle/cpu/realmodel.kiln
tar -C .gpu -cf - bundle | xz -T2 -6 > .gpu/bundle.tar.xz
rm -rf .gpu/bundle
echo "build-bundle: .gpu/bundle.tar.xz $(du -h .gpu/bundle.tar.xz | cut -f1)"
