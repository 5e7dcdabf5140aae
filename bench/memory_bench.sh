#!/usr/bin/env bash
# Memory benchmark (issue 13, item 4): resident memory of `firebreak ingest` idle and
# with 1 M jobs queued, and of a `firebreak worker` idle and while it drains them, on
# the embedded SQLite queue. Run once per queue.cache_size (the default 8MiB, and the
# 64MiB this build used to hard-code) so the effect of the setting shows in one script.
# Goal: <= 20 MB idle, <= +50 MB with 1 M queued.
#
# RSS is VmRSS from /proc (shared library pages included); "peak" is VmHWM.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-1000000}
CACHE_SIZES=${CACHE_SIZES:-"8MiB 64MiB"}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
BIN=${BIN:-build/release/firebreak}

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_workdir firebreak-memory

rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
hwm_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
metric() {  # $1 port, $2 metric name, $3 label filter
  curl -fs "http://127.0.0.1:$1/metrics" | awk -v name="$2" -v lbl="$3" \
    'index($0, name) == 1 && index($0, lbl) > 0 { s += $NF } END { printf "%d", s }'
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

CHUNK=${CHUNK:-100000}  # events signed at a time: each chunk is sent within Slack's 5 min
printf 'bench-secret' > "$work/secret"
write_noop_handler "$work/noop.py"

results=()
for cache in $CACHE_SIZES; do
  run="$work/$cache"
  mkdir -p "$run"
  port=$(free_port)
  cat > "$run/firebreak.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
[queue]
path = "$run/queue.db"
durability = "process"   # memory does not depend on it; the fill is faster
max_depth = 100000000
cache_size = "$cache"
[worker]
sidecar = "127.0.0.1:0"
[telemetry]
log_level = "warn"
[[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = { file = "$work/secret" }
job = "slack.event"
[[jobs]]
type = "slack.event"
handler = { command = ["python3", "$work/noop.py"] }
concurrency = 16
timeout = "30s"
TOML

  echo "== queue.cache_size = $cache"
  # The worker's idle footprint, on the empty queue.
  "$BIN" worker -c "$run/firebreak.toml" > "$run/worker-idle.log" 2>&1 & worker=$!; pids+=($worker)
  sleep 3
  worker_idle=$(rss_mb "$worker")
  stop "$worker"

  "$BIN" ingest -c "$run/firebreak.toml" > "$run/ingest.log" 2>&1 & ingest=$!; pids+=($ingest)
  wait_http "http://127.0.0.1:$port/healthz"
  sleep 2
  ingest_idle=$(rss_mb "$ingest")
  fill_start=$(date +%s)
  accepted=0
  for (( first = 0; first < EVENTS; first += CHUNK )); do
    count=$(( EVENTS - first < CHUNK ? EVENTS - first : CHUNK ))
    python3 bench/gen_requests.py bench-secret "$count" "$work/requests.txt" "$first"
    # Each wrk thread sends its lines once; wrk is stopped as soon as the chunk is in
    # (a resend after a refusal is a duplicate and stores nothing).
    while [ "$accepted" -lt $(( first + count )) ] && [ $(( $(date +%s) - fill_start )) -lt 1800 ]; do
      wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d300s -s bench/signed.lua \
        "http://127.0.0.1:$port" -- "$work/requests.txt" "$WRK_THREADS" once > "$run/wrk.txt" &
      wrk_pid=$!
      sent_at=$(date +%s)
      while kill -0 "$wrk_pid" 2>/dev/null; do
        sleep 0.5
        accepted=$(metric "$port" firebreak_ingress_requests_total 'outcome="accepted"')
        [ "$accepted" -ge $(( first + count )) ] && break
        # Every line went out long ago: what is missing was refused; send the chunk again.
        [ $(( $(date +%s) - sent_at )) -ge 60 ] && break
      done
      stop "$wrk_pid"
      accepted=$(metric "$port" firebreak_ingress_requests_total 'outcome="accepted"')
    done
  done
  fill_s=$(( $(date +%s) - fill_start ))
  ingest_full=$(rss_mb "$ingest")
  ingest_peak=$(hwm_mb "$ingest")
  echo "ingest: idle ${ingest_idle} MB; ${accepted} jobs queued in ${fill_s}s: ${ingest_full} MB (peak ${ingest_peak} MB)"

  "$BIN" worker -c "$run/firebreak.toml" > "$run/worker.log" 2>&1 & worker=$!; pids+=($worker)
  drain_start=$(date +%s)
  worker_peak=0
  while :; do
    sleep 1
    worker_peak=$(hwm_mb "$worker")
    left=$(sqlite3 "$run/queue.db" "SELECT COUNT(*) FROM jobs" 2>/dev/null || echo "$accepted")
    [ "$left" = 0 ] && break
    [ $(( $(date +%s) - drain_start )) -ge 900 ] && break
  done
  drain_s=$(( $(date +%s) - drain_start ))
  worker_end=$(rss_mb "$worker")
  echo "worker: idle ${worker_idle} MB; draining ${accepted} jobs took ${drain_s}s: peak ${worker_peak} MB, ${worker_end} MB at the end"
  stop "$worker"
  stop "$ingest"
  results+=("$cache $ingest_idle $ingest_full $ingest_peak $worker_idle $worker_peak $accepted")
  rm -f "$run"/queue.db*
done

python3 - "${results[@]}" <<'PY'
import sys
print("\n== memory (MB, VmRSS; peak = VmHWM)")
print(f"{'cache_size':>10} {'ingest idle':>12} {'ingest full':>11} {'+queued':>8} {'worker idle':>12} {'worker peak':>12} {'+drain':>8}")
for row in sys.argv[1:]:
    cache, ii, iq, ip, wi, wp, n = row.split()
    ii, iq, ip, wi, wp = map(float, (ii, iq, ip, wi, wp))
    print(f"{cache:>10} {ii:>12.1f} {iq:>11.1f} {max(iq, ip) - ii:>+8.1f} {wi:>12.1f} {wp:>12.1f} {wp - wi:>+8.1f}   ({int(n):,} jobs)")
print("goal: idle <= 20 MB, +queued <= +50 MB")
PY
