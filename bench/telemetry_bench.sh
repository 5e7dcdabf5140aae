#!/usr/bin/env bash
# What observability costs the ingress (issue 6, acceptance 3 and 6). One script, one
# machine, the same signed Slack requests, `firebreak ingest` (so no worker competes
# for the cores) started fresh for every run:
#   off     log_level = "error", no trace export
#   on      log_level = "info", spans exported to a collector (nginx answering 200)
#   closed  log_level = "info", otlp_endpoint on a closed port: every export fails
#   debug   log_level = "debug" (one log line per request) + export: for information
# Runs are interleaved (off, on, closed, off, on, closed) and the better of each pair
# is kept, because these machines are shared and noisy. Metrics cannot be turned off
# (they are always recorded); their own cost per request is in micro_bench
# (BM_Metrics*).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}
EVENTS=${EVENTS:-400000}
BIN=${BIN:-build/release/firebreak}

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_workdir firebreak-telemetry-bench

collector_port=$(free_port)
start_nginx "$collector_port" '"{}"'
closed_port=$(free_port)
printf 'bench-secret' > "$work/secret"
python3 bench/gen_requests.py bench-secret "$EVENTS" "$work/requests.txt"

# run_one NAME LOG_LEVEL OTLP_ENDPOINT → prints "rps p50 p99 exported dropped"
run_one() {
  local name=$1 level=$2 otlp=$3 dir="$work/$1-$RANDOM" port
  mkdir -p "$dir"
  port=$(free_port)
  cat > "$dir/firebreak.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
threads = 1
[queue]
path = "$dir/queue.db"
durability = "process"
max_depth = 100000000
[telemetry]
log_level = "$level"
otlp_endpoint = "$otlp"
[[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = { file = "$work/secret" }
job = "slack.event"
[[jobs]]
type = "slack.event"
handler = { command = ["true"] }
TOML
  "$BIN" ingest -c "$dir/firebreak.toml" > "$dir/firebreak.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  if ! wait_http "http://127.0.0.1:$port/healthz"; then
    echo "$name: firebreak did not start:" >&2; tail -5 "$dir/firebreak.log" >&2; exit 1
  fi
  local cpu_before cpu_after
  cpu_before=$(cpu_ticks "$pid")
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/signed.lua \
    "http://127.0.0.1:$port" -- "$work/requests.txt" "$WRK_THREADS" > "$dir/wrk.txt"
  sleep 1.5  # one more export interval, so the counters include the last batch
  cpu_after=$(cpu_ticks "$pid")
  local scrape exported dropped
  scrape=$(curl -fs "http://127.0.0.1:$port/metrics")
  exported=$(awk '/^firebreak_trace_spans_exported_total/ { s += $NF } END { printf "%d", s }' <<<"$scrape")
  dropped=$(awk '/^firebreak_trace_spans_dropped_total/ { s += $NF } END { printf "%d", s }' <<<"$scrape")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if ! parse_wrk "$dir/wrk.txt" > "$dir/parsed.txt" 2>/dev/null; then
    echo "$name: unreadable wrk output:" >&2; cat "$dir/wrk.txt" >&2; tail -3 "$dir/firebreak.log" >&2
    exit 1
  fi
  read -r rps p50 p99 non2xx < "$dir/parsed.txt"
  [ "$non2xx" = 0 ] || echo "$name: $non2xx non-2xx answers" >&2
  local requests us_per_request
  requests=$(awk '/requests in/ { print $1 }' "$dir/wrk.txt")
  us_per_request=$(python3 -c "import os,sys; t=(int(sys.argv[2])-int(sys.argv[1]))/os.sysconf('SC_CLK_TCK'); print(f'{t*1e6/int(sys.argv[3]):.1f}')" "$cpu_before" "$cpu_after" "$requests")
  rm -rf "$dir"
  echo "$rps $p50 $p99 $exported $dropped $us_per_request"
}

# utime + stime of a process, in clock ticks: all of its threads (export included).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

declare -A best
for round in 1 2; do
  for cfg in off on closed; do
    case $cfg in
      off) out=$(run_one off error "") ;;
      on) out=$(run_one on info "http://127.0.0.1:$collector_port") ;;
      closed) out=$(run_one closed info "http://127.0.0.1:$closed_port") ;;
    esac
    read -r rps p50 p99 exported dropped cpu <<<"$out"
    echo "round $round $cfg: $rps req/s, p50 $p50 ms, p99 $p99 ms, firebreak CPU $cpu µs/request, spans exported $exported, dropped $dropped"
    if [ -z "${best[$cfg]:-}" ] || [ "${rps%.*}" -gt "$(cut -d' ' -f1 <<<"${best[$cfg]}")" ]; then
      best[$cfg]="$out"
    fi
  done
done
out=$(run_one debug debug "http://127.0.0.1:$collector_port")
read -r rps p50 p99 exported dropped cpu <<<"$out"
echo "debug (log line per request + export): $rps req/s, p50 $p50 ms, p99 $p99 ms, CPU $cpu µs/request"
best[debug]="$out"

python3 - "${best[off]}" "${best[on]}" "${best[closed]}" "${best[debug]}" <<'PY'
import sys
off, on, closed, debug = ([float(x) for x in a.split()] for a in sys.argv[1:])
def line(name, r):
    print(f"  {name:7s} {r[0]:9.0f} req/s ({r[0] / off[0]:.3f}x off)  p50 {r[1]:.3f} ms  "
          f"p99 {r[2]:.3f} ms  CPU {r[5]:.1f} µs/request ({r[5] / off[5]:.3f}x off)  "
          f"spans exported {r[3]:.0f} dropped {r[4]:.0f}")
print("== result (best of 2 by throughput, 1 ingress thread; CPU = all firebreak threads):")
for name, r in (("off", off), ("on", on), ("closed", closed), ("debug", debug)):
    line(name, r)
print(f"== telemetry on: throughput {(1 - on[0] / off[0]) * 100:+.1f}% lower, "
      f"CPU per request {(on[5] / off[5] - 1) * 100:+.1f}% (target: cost < 10%); "
      f"collector down: throughput {(1 - closed[0] / off[0]) * 100:+.1f}% lower, "
      f"p99 {closed[2]:.2f} vs {off[2]:.2f} ms, spans dropped {closed[4]:.0f}")
PY
