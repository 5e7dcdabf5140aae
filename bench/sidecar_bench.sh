#!/usr/bin/env bash
# Sidecar proxy overhead (acceptance 7 of issue 5). In one run on this machine: wrk calls
# a local upstream (a bare nginx returning 200 with a JSON body) directly, then the same
# upstream through the worker's sidecar (/v1/integrations/up/...), which adds an HTTP hop,
# the policies (breaker, cap, retry plan) and curl. Printed: per-call latency p50/p99 with
# one connection (sequential calls: the overhead one call pays) and with 32 connections
# (under load), and the difference against the direct call.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
BIN=${BIN:-build/release/firebreak}

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_workdir firebreak-sidecar-bench

up_port=$(free_port)
start_nginx "$up_port" "'{\"ok\":true,\"channel\":\"C1\",\"ts\":\"1700000000.000100\"}'"

sidecar_port=$(free_port)
cat > "$work/firebreak.toml" <<TOML
[queue]
path = "$work/queue.db"
[worker]
sidecar = "127.0.0.1:$sidecar_port"
[telemetry]
log_level = "warn"
[[integrations]]
name = "up"
base_url = "http://127.0.0.1:$up_port"
timeout = "5s"
max_concurrency = 256
retry = { attempts = 1 }
TOML
"$BIN" worker -c "$work/firebreak.toml" > "$work/firebreak.log" 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$sidecar_port/healthz"

run() {  # name connections url
  wrk -t1 -c"$2" -d"${DURATION}s" --latency "$3" > "$work/$1.txt"
  parse_wrk "$work/$1.txt"
}
direct_url="http://127.0.0.1:$up_port/api/chat.postMessage"
sidecar_url="http://127.0.0.1:$sidecar_port/v1/integrations/up/api/chat.postMessage"

read -r d1_rps d1_p50 d1_p99 d1_bad < <(run direct1 1 "$direct_url")
read -r s1_rps s1_p50 s1_p99 s1_bad < <(run sidecar1 1 "$sidecar_url")
read -r d32_rps d32_p50 d32_p99 d32_bad < <(run direct32 32 "$direct_url")
read -r s32_rps s32_p50 s32_p99 s32_bad < <(run sidecar32 32 "$sidecar_url")
if [ "$s1_bad" != 0 ] || [ "$s32_bad" != 0 ]; then
  echo "sidecar answered non-2xx: $s1_bad / $s32_bad" >&2
  tail -5 "$work/firebreak.log" >&2
  exit 1
fi

python3 - "$d1_rps" "$d1_p50" "$d1_p99" "$s1_rps" "$s1_p50" "$s1_p99" \
  "$d32_rps" "$d32_p50" "$d32_p99" "$s32_rps" "$s32_p50" "$s32_p99" <<'PY'
import sys
d1r, d1a, d1b, s1r, s1a, s1b, d32r, d32a, d32b, s32r, s32a, s32b = map(float, sys.argv[1:])
print("== sidecar proxy overhead (GET through /v1/integrations/up/... vs. the upstream directly)")
print(f"1 connection:   direct p50 {d1a*1000:.0f} us p99 {d1b*1000:.0f} us ({d1r:.0f}/s); "
      f"sidecar p50 {s1a*1000:.0f} us p99 {s1b*1000:.0f} us ({s1r:.0f}/s)")
print(f"                overhead per call: p50 {(s1a-d1a)*1000:+.0f} us, p99 {(s1b-d1b)*1000:+.0f} us")
print(f"32 connections: direct p50 {d32a:.2f} ms p99 {d32b:.2f} ms ({d32r:.0f}/s); "
      f"sidecar p50 {s32a:.2f} ms p99 {s32b:.2f} ms ({s32r:.0f}/s, {s32r/d32r:.2f}x direct)")
PY
