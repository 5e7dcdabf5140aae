#!/usr/bin/env bash
# Whole-system ingest benchmark (acceptance 7 of issue 2). Measures, in one run on
# this machine: a bare nginx "200 OK" (one worker) as the baseline, then durable
# signed-Slack ingest into `firebreak run` with wrk (64 connections), then how fast
# a no-op handler drains what was accepted. Prints ratios against the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
EVENTS=${EVENTS:-600000}
BIN=${BIN:-build/release/firebreak}
DURABILITY=${DURABILITY:-fsync}

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

echo "== firebreak run: durable ingest (durability=$DURABILITY), no-op handler"
fb_port=$(free_port)
printf 'bench-secret' > "$work/secret"
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
[[jobs]]
type = "slack.event"
handler = { command = ["python3", "$work/noop.py"] }
concurrency = 16
timeout = "30s"
TOML
"$BIN" ${ROLE:-run} -c "$work/firebreak.toml" > "$work/firebreak.log" 2>&1 & fb_pid=$!; pids+=($fb_pid)
wait_http "http://127.0.0.1:$fb_port/healthz"
start_ns=$(date +%s%N)
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/signed.lua \
  "http://127.0.0.1:$fb_port" -- "$work/requests.txt" "$WRK_THREADS" > "$work/fb.txt"
read -r fb_rps fb_p50 fb_p99 _ < <(parse_wrk "$work/fb.txt")
echo "firebreak: $fb_rps req/s, p50 ${fb_p50} ms, p99 ${fb_p99} ms"
grep -E "Non-2xx|Socket errors" "$work/fb.txt" || true

metric() {
  curl -fs "http://127.0.0.1:$fb_port/metrics" | awk -v name="$1" -v lbl="$2" \
    'index($0, name) == 1 && index($0, lbl) > 0 { s += $NF } END { printf "%d", s }'
}
accepted=$(metric firebreak_ingress_requests_total 'outcome="accepted"')
if [ "${ROLE:-run}" = ingest ]; then
  echo "ingest only: $accepted jobs stored, none drained (ROLE=ingest)"
  python3 -c "import sys; n, f = map(float, sys.argv[1:]); print(f'== result: {f/n:.2f}x bare nginx')" "$nginx_rps" "$fb_rps"
  exit 0
fi
# Drain: wait until the no-op handler has finished every accepted job.
for _ in $(seq 1 600); do
  done_jobs=$(metric firebreak_jobs_total 'outcome="succeeded"')
  [ "$done_jobs" -ge "$accepted" ] && break
  sleep 0.5
done
end_ns=$(date +%s%N)
elapsed=$(python3 -c "print(($end_ns - $start_ns) / 1e9)")
jobs_per_s=$(python3 -c "print(round($done_jobs / $elapsed))")
echo "drain: $done_jobs of $accepted accepted jobs handled in ${elapsed}s → $jobs_per_s jobs/s (no-op command handler, concurrency 16)"

python3 - "$nginx_rps" "$fb_rps" "$fb_p99" <<'PY'
import sys
nginx, fb, p99 = map(float, sys.argv[1:])
print(f"== result: firebreak durable ingest = {fb/nginx:.2f}x bare nginx (target >= 0.5x), "
      f"p99 {p99:.2f} ms (target <= 2 ms)")
PY
