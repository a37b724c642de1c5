#!/usr/bin/env bash
# scripts/check-format.sh: fails when a C++ file differs from what clang-format (the repo's .clang-format) makes.
cd "$(dirname "$0")/.."
bad=0
for f in $(git ls-files '*.cpp' '*.hpp'); do
  if ! diff -q <(clang-format "$f") "$f" >/dev/null; then echo "not clang-formatted: $f"; bad=1; fi
done
exit $bad
