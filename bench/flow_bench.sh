#!/usr/bin/env bash
# What per-key concurrency costs a claim (bench/flow_bench.cc, issue 17): ingest + drain
# of 2,000-job bursts keyed over 50 chats (concurrency_per_key = 2) vs the same jobs
# unkeyed, on sqlite and on a Redis of its own; repetitions interleaved in random order
# so a busy neighbour hits both alike; the ratio is of the medians. Target: keyed <= 20%
# slower than unkeyed.
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
rates = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("run_type") == "iteration" and "items_per_second" in b:
        rates.setdefault(b["run_name"].removeprefix("BM_KeyedIngestDrain/"), []).append(
            b["items_per_second"])
print("== ingest + drain (2,000-job bursts, claims of 64), jobs/s")
print(f"{'backend':<8} {'unkeyed':>9} {'50 keys x2':>11} {'keyed/unkeyed':>14}")
for backend in ("sqlite", "redis"):
    plain = rates.get(f"{backend}/keys:0/real_time")
    keyed = rates.get(f"{backend}/keys:50/real_time")
    if not plain or not keyed:
        print(f"{backend:<8} (skipped)")
        continue
    m_plain, m_keyed = statistics.median(plain), statistics.median(keyed)
    print(f"{backend:<8} {m_plain:>9.0f} {m_keyed:>11.0f} {m_keyed / m_plain:>13.2f}x"
          f"   ({(1 - m_keyed / m_plain) * 100:.0f}% slower; target <= 20%)")
PY
