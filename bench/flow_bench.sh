#!/usr/bin/env bash
# What per-key concurrency costs a claim (bench/flow_bench.cc, issue 17): ingest + drain
# of 2,000-job bursts keyed over 50 chats (concurrency_per_key = 2), and with a key per
# job (keys that never collide), vs the same jobs unkeyed, on sqlite and on a Redis of
# its own; repetitions interleaved in random order so a busy neighbour hits both alike;
# the ratio is of the medians. Target: keyed <= 20% slower than unkeyed.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

BIN=${BIN:-build/release/micro_bench}
REPETITIONS=${REPETITIONS:-7}
[ -x "$BIN" ] || { echo "$BIN not found (make build)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server not found" >&2; exit 1; }

bench_workdir flow-bench
start_bench_redis

out="$work/flow.json"
bench_interleaved '^BM_KeyedIngestDrain/' "$out"

python3 - "$out" <<'PY'
import json, statistics, sys
runs = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("run_type") == "iteration" and "items_per_second" in b:
        runs.setdefault(b["run_name"].removeprefix("BM_KeyedIngestDrain/"), []).append(b)
def med(name, field):
    return statistics.median(b[field] for b in runs[name])
print("== ingest + drain (2,000-job bursts, claims of 64): jobs/s, and µs per job to store, to")
print("   claim, and to claim + finish (medians); keyed/unkeyed is of jobs/s, target >= 0.80x")
for backend in ("sqlite", "redis"):
    plain = f"{backend}/keys:0/real_time"
    if plain not in runs:
        print(f"{backend}: skipped")
        continue
    base = med(plain, "items_per_second")
    print(f"{backend:<7} unkeyed        {base:>7.0f} jobs/s  store {med(plain, 'enqueue_us'):5.1f} µs"
          f"  claim {med(plain, 'claim_us'):5.1f} µs  claim+finish {med(plain, 'drain_us'):5.1f} µs")
    for keys, label in (("50", "50 keys x2"), ("2000", "a key each")):
        name = f"{backend}/keys:{keys}/real_time"
        if name not in runs:
            continue
        rate = med(name, "items_per_second")
        print(f"{backend:<7} {label:<14} {rate:>7.0f} jobs/s  store {med(name, 'enqueue_us'):5.1f} µs"
              f"  claim {med(name, 'claim_us'):5.1f} µs  claim+finish {med(name, 'drain_us'):5.1f} µs"
              f"  = {rate / base:.2f}x unkeyed")
PY
