#!/usr/bin/env bash
# What keeping history costs (bench/history_bench.cc, issue 15):
#  1. ingest + drain of Slack-sized jobs with queue.retention on ("24h") vs off ("0s"),
#     on sqlite and on a Redis of its own; repetitions interleaved in random order so a
#     busy neighbour hits both alike; the ratio is of the medians. Target: on <= 15%
#     slower than off.
#  2. ListJobs (GET /jobs without HTTP: the query and the JSON of a 50-job page) over a
#     store holding 1,000,000 retained jobs (sqlite) / 200,000 (redis): p50 and p99 per
#     page for a key search (target p99 <= 50 ms), the newest page, a state page and a
#     type+text search (a bounded scan).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

BIN=${BIN:-build/release/micro_bench}
REPETITIONS=${REPETITIONS:-7}
[ -x "$BIN" ] || { echo "$BIN not found (make build)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server not found" >&2; exit 1; }

bench_workdir history-bench
start_bench_redis

out="$work/ingest.json"
bench_interleaved '^BM_IngestDrain/' "$out"
redis-cli -p "$redis_port" FLUSHALL >/dev/null
list="$work/list.json"
"$BIN" --benchmark_filter='^BM_ListJobs/' --benchmark_format=json --benchmark_out="$list" \
  --benchmark_out_format=json >/dev/null

python3 - "$out" "$list" <<'PY'
import json, statistics, sys
rates = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("run_type") == "iteration" and "items_per_second" in b:
        rates.setdefault(b["run_name"].removeprefix("BM_IngestDrain/"), []).append(b["items_per_second"])
print("== ingest + drain (2,000-job bursts, 4 search keys each), jobs/s")
print(f"{'backend':<8} {'retention off':>14} {'retention on':>13} {'on/off':>7}")
for backend in ("sqlite", "redis"):
    off = rates.get(f"{backend}/retention:0/real_time")
    on = rates.get(f"{backend}/retention:1/real_time")
    if not off or not on:
        print(f"{backend:<8} (skipped)")
        continue
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(f"{backend:<8} {m_off:>14.0f} {m_on:>13.0f} {m_on / m_off:>6.2f}x"
          f"   ({(1 - m_on / m_off) * 100:.0f}% slower; target <= 15%)")
print()
print("== ListJobs page of 50 (+ its JSON) over retained jobs")
print(f"{'query':<24} {'retained':>9} {'p50 ms':>8} {'p99 ms':>8}")
for b in json.load(open(sys.argv[2]))["benchmarks"]:
    if "p99_ms" not in b:
        print(f"{b['name']:<24} skipped: {b.get('error_message', '')}")
        continue
    name = b["name"].removeprefix("BM_ListJobs/").split("/")[0]
    print(f"{name:<24} {b['retained_jobs']:>9.0f} {b['p50_ms']:>8.2f} {b['p99_ms']:>8.2f}")
PY
