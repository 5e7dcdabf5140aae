#!/usr/bin/env bash
# Per-request cost of each source kind (bench/sources_bench.cc): Source::Handle plus the
# envelope headers the server adds, on one correctly signed ~1 KB request. Repetitions
# are interleaved in random order (so a busy neighbour on a shared machine hits every
# case alike) and the table shows the fastest and the median repetition, with the ratio
# to `slack` (JSON) — and, for Twilio's form, to Slack's form path too.
# Acceptance: a preset costs no more than `slack` per request (±10%).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-build/release/micro_bench}
REPETITIONS=${REPETITIONS:-15}
MIN_TIME=${MIN_TIME:-0.2}

out=$(mktemp /tmp/sources-bench-XXXXXX.json)
trap 'rm -f "$out"' EXIT
"$BIN" --benchmark_filter='^BM_SourceHandle/' --benchmark_repetitions="$REPETITIONS" \
  --benchmark_enable_random_interleaving=true --benchmark_min_time="$MIN_TIME" \
  --benchmark_format=json --benchmark_out="$out" --benchmark_out_format=json >/dev/null

python3 - "$out" <<'PY'
import json, statistics, sys
runs, order = {}, {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("run_type") != "iteration":
        continue
    ns = b["cpu_time"] * {"ns": 1, "us": 1e3, "ms": 1e6}[b["time_unit"]]
    runs.setdefault(b["run_name"].removeprefix("BM_SourceHandle/"), []).append(ns)
    order[b["run_name"].removeprefix("BM_SourceHandle/")] = b["family_index"]
runs = dict(sorted(runs.items(), key=lambda item: order[item[0]]))
best = {name: min(v) for name, v in runs.items()}
base = best["slack"]
print(f"{'source (1 request)':<38} {'min ns':>8} {'median ns':>10} {'vs slack':>9}")
for name, v in runs.items():
    note = ""
    if name.startswith("twilio") and "slack-form" in best:
        note = f"  ({best[name] / best['slack-form']:.2f}x slack-form)"
    print(f"{name:<38} {best[name]:>8.0f} {statistics.median(v):>10.0f} "
          f"{best[name] / base:>8.2f}x{note}")
PY
