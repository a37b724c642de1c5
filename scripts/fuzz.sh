#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS]: builds the fuzz preset (clang, libFuzzer, ASan+UBSan) and runs each fuzz target for
# SECONDS (default 10) on a copy of its seed corpus in build-fuzz/corpus-run/<target>, with its dictionary.
# fuzz/corpus is only read. Exits non-zero when the build fails or a target crashes, naming the crash file.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
# target:max_len (a command stream or a message needs a few KB; a path is at most 256 bytes plus parameters)
targets=(smtp_command:4096 smtp_data:4096 smtp_address:512 main_cf:4096 mime_headers:4096 passwd_file:4096 mutf7:1024
  mime_structure:4096 pop3_command:4096 imap_command:4096 sasl_exchange:2048 queue_file:8192 dkim_canon:8192 smtp_reply:4096 dns_rdata:512 smtp_client:4096
  mta_sts_policy:4096)

if ! { cmake --preset fuzz >/dev/null && cmake --build build-fuzz -j"${JOBS:-2}"; }; then
  echo "fuzz: build failed"
  exit 1
fi
failed=0
for entry in "${targets[@]}"; do
  t=${entry%%:*}
  max=${entry#*:}
  run=build-fuzz/corpus-run/$t
  artifacts=build-fuzz/artifacts/$t
  log=build-fuzz/fuzz-$t.log
  rm -rf "$artifacts"
  mkdir -p "$run" "$artifacts"
  cp -n fuzz/corpus/"$t"/* "$run"/  # on top of what earlier runs found
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ./build-fuzz/fuzz_"$t" -max_total_time="$secs" -max_len="$max" \
    -dict=fuzz/"$t".dict -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$run" >"$log" 2>&1
  rc=$?
  runs=$(grep -Eo 'number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  crash=$(find "$artifacts" -type f | head -1)
  if [ "$rc" -eq 0 ] && [ -z "$crash" ]; then
    echo "fuzz: $t: ok, ${runs:-?} runs in ${secs}s, corpus $(find "$run" -type f | wc -l) files"
  else
    failed=1
    echo "fuzz: $t: FAILED (exit $rc) after ${runs:-?} runs; crash file: ${crash:-none}; log: $log"
    grep -E '^==[0-9]+==|^SUMMARY|^    #[0-9] |ERROR|runtime error|Test unit written' "$log" | head -25
    [ -z "$crash" ] || od -c "$crash" | head -20
  fi
done
exit $failed
