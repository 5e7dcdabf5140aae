#!/usr/bin/env bash
# `make test` (CI's command): the release build and all its suites, then the unit suite on
# an ASan/UBSan build and the integration suite against its binary, then a smoke run of
# the fuzz targets. `scripts/test.sh asan` runs only the sanitizer part (`make test-asan`).
# Each phase prints the seconds since the start; docs/build.md has the measured times.
#
# Most tests wait on processes, timers and sockets: four at a time on two cores, the
# integration suite used 0.9 core on average (168 CPU-s in 182 s). So the suites run
# TEST_JOBS (default two per core) tests at once, and the sanitized build compiles during
# the release suites at nice 19, on the CPU the tests leave idle. Eight at a time measured
# no faster (the longest tests bound it) and failed latency checks.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
jobs=${JOBS:-$(nproc)}
test_jobs=${TEST_JOBS:-$((jobs * 2))}
read -r -a ctest_args <<<"${CTEST_ARGS:-}"

phase() { printf '== %s [%d s]\n' "$*" "$SECONDS"; }

build_sanitized() {
  cmake --preset asan >/dev/null
  cmake --build --preset asan -j "$jobs" --target unit_tests firebreak
  JOBS=$jobs scripts/fuzz.sh 0  # fuzz targets (clang, ASan/UBSan); run at the end
}

# The integration suite only drives firebreak over HTTP and processes, so the release
# build of it runs against the sanitized binary: compiling it again with ASan buys nothing.
# ASan keeps freed memory in a quarantine (256 MiB by default) to catch use-after-free;
# it fills with every byte the server frees, so HostileTest's RSS bound (64 MiB) would
# measure the quarantine rather than a leak: 16 MiB keeps the check meaningful.
test_sanitized() {
  phase "unit suite, ASan/UBSan ($test_jobs at a time)"
  ctest --test-dir build/asan --output-on-failure -j "$test_jobs"
  phase "integration suite against the ASan/UBSan binary"
  cmake --build --preset release -j "$jobs" --target integration_tests
  FIREBREAK_BIN=$PWD/build/asan/firebreak ASAN_OPTIONS=quarantine_size_mb=16 \
    ctest --test-dir build/release -L integration --output-on-failure -j "$test_jobs"
}

case "$what" in
  asan)
    cmake --preset release >/dev/null
    phase "ASan/UBSan build"
    build_sanitized
    test_sanitized
    exit 0 ;;
  all) ;;
  *) echo "usage: scripts/test.sh [all|asan]" >&2; exit 2 ;;
esac

phase "release build"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"

# Its own process group (set -m), so a failing suite can stop the whole build.
background_log=build/sanitized-build.log
set -m
nice -n 19 bash -c "$(declare -f build_sanitized); jobs=$jobs; set -euo pipefail; build_sanitized" \
  >"$background_log" 2>&1 &
background=$!
set +m
trap 'kill -- -"$background" 2>/dev/null || true' EXIT

phase "release suites ($test_jobs at a time; the ASan/UBSan build runs at nice 19 meanwhile," \
  "log: $background_log)"
ctest --test-dir build/release --output-on-failure -j "$test_jobs" "${ctest_args[@]}"

phase "waiting for the ASan/UBSan build"
if ! wait "$background"; then
  tail -n 40 "$background_log"
  echo "test.sh: the ASan/UBSan build failed; its log: $background_log" >&2
  exit 1
fi
trap - EXIT

test_sanitized
phase "fuzz smoke run"
scripts/fuzz.sh 5
phase "all passed"
