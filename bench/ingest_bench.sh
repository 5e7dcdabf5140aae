#!/usr/bin/env bash
# Whole-system ingest benchmark (acceptance 7 of issue 2). Measures, in one run on
# this machine: a bare nginx "200 OK" (one worker) as the baseline, then durable
# signed-Slack ingest into `firebreak run` with wrk (64 connections), then how fast
# a no-op handler drains what was accepted. Prints ratios against the baseline.
# The same server also has a provider preset source (PRESET: standard-webhooks or
# stripe), measured the same way with that provider's signed deliveries, interleaved
# with the Slack runs (slack, preset, preset, slack, ...: ROUNDS pairs, fresh event ids
# each run), and compared with Slack: a preset should cost no more than `slack` (±10%).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
EVENTS=${EVENTS:-600000}
BIN=${BIN:-build/release/firebreak}
DURABILITY=${DURABILITY:-fsync}
PRESET=${PRESET:-standard-webhooks}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-3}  # seconds of each mode first, not counted (the first run was slower)

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_workdir firebreak-bench

echo "== baseline: nginx, 1 worker, return 200"
nginx_port=$(free_port)
start_nginx "$nginx_port" '"OK"'
python3 bench/gen_requests.py bench-secret "$EVENTS" "$work/requests.txt"
# nginx answers POSTs with 200 too; it gets the same requests, bodies and all.
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/signed.lua \
  "http://127.0.0.1:$nginx_port" -- "$work/requests.txt" "$WRK_THREADS" > "$work/nginx.txt"
read -r nginx_rps nginx_p50 nginx_p99 _ < <(parse_wrk "$work/nginx.txt")
echo "nginx: $nginx_rps req/s, p50 ${nginx_p50} ms, p99 ${nginx_p99} ms"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

echo "== firebreak ${ROLE:-run}: durable ingest (durability=$DURABILITY), no-op handler;" \
  "slack and $PRESET interleaved, $ROUNDS rounds"
fb_port=$(free_port)
printf 'bench-secret' > "$work/secret"
case "$PRESET" in
  stripe) printf 'whsec_bench-secret' > "$work/preset-secret" ;;
  standard-webhooks) printf 'whsec_%s' "$(printf 'bench-secret' | base64)" > "$work/preset-secret" ;;
  *) echo "PRESET must be stripe or standard-webhooks" >&2; exit 2 ;;
esac
write_noop_handler "$work/noop.py"
cat > "$work/firebreak.toml" <<TOML
[server]
listen = "127.0.0.1:$fb_port"
[queue]
path = "$work/queue.db"
durability = "$DURABILITY"
max_depth = 10000000
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
[[sources]]
name = "$PRESET"
kind = "$PRESET"
path = "/hooks/$PRESET"
secret = { file = "$work/preset-secret" }
job = "slack.event"
[[jobs]]
type = "slack.event"
handler = { command = ["python3", "$work/noop.py"] }
concurrency = 16
timeout = "30s"
TOML
"$BIN" ${ROLE:-run} -c "$work/firebreak.toml" > "$work/firebreak.log" 2>&1 & fb_pid=$!; pids+=($fb_pid)
wait_http "http://127.0.0.1:$fb_port/healthz"

# One wrk run of MODE (slack or the preset) for SECONDS with fresh events (ids from
# RUN * EVENTS), signed just before it so the timestamps are inside the 5-minute
# window. Run 0 is the warm-up; the others append "mode rps p50 p99 non2xx" to
# $work/runs.txt.
gen_ns=0
measure() {
  local mode=$1 run=$2 seconds=$3 secret=bench-secret t0 events=$EVENTS
  [ "$mode" = slack ] || secret=$(cat "$work/preset-secret")
  [ "$run" = 0 ] && events=$((EVENTS / 10))
  t0=$(date +%s%N)
  python3 bench/gen_requests.py "$secret" "$events" "$work/req-$run.txt" $((run * EVENTS)) \
    --mode "$mode"
  gen_ns=$((gen_ns + $(date +%s%N) - t0))
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${seconds}s" --latency -s bench/signed.lua \
    "http://127.0.0.1:$fb_port" -- "$work/req-$run.txt" "$WRK_THREADS" "$mode" \
    > "$work/fb-$mode-$run.txt"
  rm -f "$work/req-$run.txt"
  local rps p50 p99 non2xx
  read -r rps p50 p99 non2xx < <(parse_wrk "$work/fb-$mode-$run.txt")
  if [ "$run" = 0 ]; then
    echo "warm-up $mode: $rps req/s, p99 ${p99} ms, non-2xx $non2xx (not counted)"
    return
  fi
  echo "firebreak $mode (run $run): $rps req/s, p50 ${p50} ms, p99 ${p99} ms, non-2xx $non2xx"
  grep -E "Socket errors" "$work/fb-$mode-$run.txt" || true
  echo "$mode $rps $p50 $p99 $non2xx" >> "$work/runs.txt"
}
start_ns=$(date +%s%N)
if [ "$WARMUP" -gt 0 ]; then
  measure slack 0 "$WARMUP"
  measure "$PRESET" 0 "$WARMUP"
fi
run=0
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="slack $PRESET"; else order="$PRESET slack"; fi
  for mode in $order; do
    run=$((run + 1))
    measure "$mode" "$run" "$DURATION"
  done
done

metric() {
  curl -fs "http://127.0.0.1:$fb_port/metrics" | awk -v name="$1" -v lbl="$2" \
    'index($0, name) == 1 && index($0, lbl) > 0 { s += $NF } END { printf "%d", s }'
}
accepted=$(metric firebreak_ingress_requests_total 'outcome="accepted"')
# Per mode: mean req/s over its runs, the worst p99; ratios to nginx and preset/slack.
summarize() {
  python3 - "$nginx_rps" "$PRESET" "$work/runs.txt" <<'PY'
import sys
nginx, preset = float(sys.argv[1]), sys.argv[2]
runs = {}
for line in open(sys.argv[3]):
    mode, rps, p50, p99, non2xx = line.split()
    runs.setdefault(mode, []).append((float(rps), float(p99), int(non2xx)))
def mean(mode): return sum(r[0] for r in runs[mode]) / len(runs[mode])
def p99(mode): return max(r[1] for r in runs[mode])
for mode in ("slack", preset):
    rates = ", ".join(f"{r[0]:.0f}" for r in runs[mode])
    bad = sum(r[2] for r in runs[mode])
    print(f"{mode}: mean {mean(mode):.0f} req/s ({rates}) = {mean(mode) / nginx:.2f}x nginx, "
          f"worst p99 {p99(mode):.2f} ms" + (f", NON-2XX {bad}" if bad else ""))
print(f"== result: firebreak durable ingest = {mean('slack') / nginx:.2f}x bare nginx "
      f"(target >= 0.5x), p99 {p99('slack'):.2f} ms (target <= 2 ms)")
ratio = mean(preset) / mean("slack")
print(f"== result: preset {preset} = {mean(preset) / nginx:.2f}x bare nginx, "
      f"{ratio:.2f}x slack (target: >= 0.90x, a preset costs no more than slack +-10%)")
PY
}
if [ "${ROLE:-run}" = ingest ]; then
  echo "ingest only: $accepted jobs stored, none drained (ROLE=ingest)"
  summarize
  exit 0
fi
# Drain: wait until the no-op handler has finished every accepted job.
for _ in $(seq 1 600); do
  done_jobs=$(metric firebreak_jobs_total 'outcome="succeeded"')
  [ "$done_jobs" -ge "$accepted" ] && break
  sleep 0.5
done
end_ns=$(date +%s%N)
# Signing the next run's requests is not the handler's time.
elapsed=$(python3 -c "print(($end_ns - $start_ns - $gen_ns) / 1e9)")
jobs_per_s=$(python3 -c "print(round($done_jobs / $elapsed))")
echo "drain: $done_jobs of $accepted accepted jobs handled in ${elapsed}s → $jobs_per_s jobs/s (no-op command handler, concurrency 16)"

summarize
