#!/usr/bin/env bash
# scripts/test.sh BUILD_DIR...: runs the unit tests (ctest) and the end-to-end suite (pytest, Debian's python3)
# against the postern binary of each build directory, then a brief fuzz run (scripts/fuzz.sh, one item), and
# prints one closing line with the totals: "tests: N passed, N failed". Each section header shows the seconds
# since the start, so that a slow run shows where its time went.
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
add() {  # adds the counts found in $log: ctest's "N tests failed out of M", pytest's "N passed, M failed"
  local p f
  if grep -q 'tests failed out of' "$log"; then
    f=$(grep -o '[0-9]* tests failed out of [0-9]*' "$log" | tail -1 | awk '{print $1}')
    p=$(( $(grep -o 'out of [0-9]*' "$log" | tail -1 | awk '{print $3}') - f ))
  else
    p=$(grep -Eo '[0-9]+ passed' "$log" | tail -1 | awk '{print $1}')
    f=$(grep -Eo '[0-9]+ (failed|error)' "$log" | awk '{s+=$1} END {print s+0}')
  fi
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
}
if bash scripts/check-format.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
reference=1  # tests against Dovecot alone check the tests themselves: once is enough
for b in "$@"; do
  echo "== unit tests ($b) [${SECONDS}s]"
  (cd "$b" && ctest --output-on-failure -j2) 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || grep -q 'tests failed out of' "$log" || failed=$((failed + 1))
  add
  echo "== end-to-end tests ($b) [${SECONDS}s]"
  POSTERN_BIN="$PWD/$b/postern" POSTERN_TEST_REFERENCE="$reference" /usr/bin/python3 -m pytest -q \
    -p no:cacheprovider tests/e2e 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || [ "$rc" -eq 1 ] || failed=$((failed + 1))  # 1: tests failed (counted); else: no run
  add
  reference=0
done
echo "== fuzz (each target 10 s; longer: scripts/fuzz.sh 60) [${SECONDS}s]"
if bash scripts/fuzz.sh 10; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
echo "== done [${SECONDS}s]"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
