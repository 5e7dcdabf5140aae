#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang + ASan/UBSan) and runs each for SECONDS.
# Usage: scripts/fuzz.sh SECONDS. New inputs are kept in build/fuzz/corpus/<target>
# (seeded from fuzz/corpus/<target>); a crash leaves its input as build/fuzz/crash-*:
# fix the bug, then add the input to fuzz/corpus/<target> as a regression seed.
# SECONDS = 0 only builds them (scripts/test.sh builds them with the ASan/UBSan build).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: scripts/fuzz.sh SECONDS}

cmake -S fuzz -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/fuzz -j "${JOBS:-$(nproc)}"
[[ "$seconds" != 0 ]] || exit 0

status=0
for target in sources form_json config actions; do
  corpus=build/fuzz/corpus/$target
  mkdir -p "$corpus"
  log=build/fuzz/$target.log
  echo "== fuzz $target for ${seconds}s"
  if ! build/fuzz/${target}_fuzz -max_total_time="$seconds" -print_final_stats=1 \
      -artifact_prefix=build/fuzz/ "$corpus" "fuzz/corpus/$target" >"$log" 2>&1; then
    echo "FINDING in $target: see $log"
    grep -E "ERROR|SUMMARY" "$log" | head -5 || true
    status=1
  fi
  grep -E "DONE" "$log" | tail -1 || true
  grep -E "stat::average_exec_per_sec" "$log" || true
done
exit $status
