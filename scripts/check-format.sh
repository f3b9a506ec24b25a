#!/usr/bin/env bash
# Fails when a C++ source of the tree differs from what .clang-format makes of it (ctest runs
# this as `clang-format`). Fix with: clang-format-22 -i $(git ls-files '*.cpp' '*.h' | grep -v ^test/Import/Inputs)
set -euo pipefail
cd "$(dirname "$0")/.."
cf=$(command -v clang-format-22 || command -v /usr/lib/llvm-22/bin/clang-format || true)
if [ -z "$cf" ]; then
  echo "check-format: clang-format-22 is not installed (scripts/setup.sh installs it)" >&2
  exit 1
fi
if [ -d .git ] || git rev-parse --git-dir >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cpp' '*.h' | grep -v '^test/Import/Inputs')
else
  mapfile -t files < <(find dialects include lib passes runtime tools test -name '*.cpp' -o -name '*.h' | grep -v '^test/Import/Inputs')
fi
bad=0
for f in "${files[@]}"; do
  if ! "$cf" --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "check-format: $f is not clang-formatted"
    bad=1
  fi
done
echo "check-format: ${#files[@]} files checked with $("$cf" --version | head -1)"
exit $bad
