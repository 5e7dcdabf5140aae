#!/usr/bin/env bash
# Scale-out benchmark on the redis queue backend (issue 3, acceptance 3).
#
# One redis-server of its own (loopback, free port, temp dir, AOF appendfsync everysec,
# so firebreak runs with queue.durability = "process"), a no-op command handler.
#  - worker scale: the queue is pre-filled with JOBS signed Slack events (firebreak
#    ingest + wrk), then 1, 2 and 4 `firebreak worker` processes drain it; jobs/s and
#    CPU per job (utime+stime from /proc/PID/stat) of the worker processes, of their
#    handler processes and of redis-server.
#  - ingest scale: wrk against 1, then 2 `firebreak ingest` processes (one wrk per
#    process, run in parallel) → req/s, and CPU per request.
# Ratios are against the 1-process case. The machine has few cores, so throughput
# cannot scale linearly; the point is that CPU per job must not grow with processes.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-build/release/firebreak}
JOBS=${JOBS:-50000}                 # jobs per worker-scale run
WORKER_COUNTS=${WORKER_COUNTS:-"1 2 4"}
CONCURRENCY=${CONCURRENCY:-8}       # handler processes per worker process
INGEST_SECONDS=${INGEST_SECONDS:-8}
CONNECTIONS=${CONNECTIONS:-32}      # per wrk
INGEST_EVENTS=${INGEST_EVENTS:-200000}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-60}
CLK_TCK=$(getconf CLK_TCK)

work=$(mktemp -d /tmp/firebreak-scaleout-XXXXXX)
pids=()
redis_pid=""
# Stops background firebreak/wrk processes started since the last call (by PID).
stop_started() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_started
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

die() { echo "scaleout: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source bench/lib.sh
now_ns() { date +%s%N; }
calc() { python3 -c "print($1)"; }
# utime+stime of one process in clock ticks (the comm field may contain spaces).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Sum of cpu_ticks over the given PIDs.
sum_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(cpu_ticks "$p"))); done; echo "$t"; }
# CPU microseconds per unit: us_per TICKS UNITS.
us_per() { calc "round($1 * 1e6 / $CLK_TCK / max(1, $2), 1)"; }
children_of() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }

# Prints "ready delayed in_flight" summed over job types ("-1 -1 -1" if stats failed).
# Parsed with grep/awk, not python: it runs several times a second during a drain.
queue_depth() {
  local out
  if ! out=$("$BIN" queue stats -c "$work/ingest.toml" --json 2>/dev/null); then
    echo "-1 -1 -1"
    return
  fi
  local key sums=()
  for key in ready delayed in_flight; do
    sums+=("$({ grep -o "\"$key\":[0-9]*" <<<"$out" || true; } |
      awk -F: '{ s += $2 } END { print s + 0 }')")
  done
  echo "${sums[*]}"
}

redis_flush() { redis-cli -p "$redis_port" FLUSHALL >/dev/null; }

write_config() {  # path listen sidecar threads
  cat > "$1" <<TOML
[server]
listen = "$2"
threads = $4
[queue]
backend = "redis"
url = "redis://127.0.0.1:$redis_port/0"
durability = "process"
max_depth = 10000000
[worker]
sidecar = "$3"
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
handler = { command = ["$python", "$work/noop.py"] }
concurrency = $CONCURRENCY
timeout = "30s"
TOML
}

for tool in redis-server redis-cli wrk curl; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh bench)"
done
[ -x "$BIN" ] || die "$BIN not found (make build)"

# -- redis ---------------------------------------------------------------------------
redis_port=$(free_port)
mkdir -p "$work/redis"
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work/redis" --save "" \
  --appendonly yes --appendfsync everysec --daemonize no \
  --logfile "$work/redis/redis.log" & redis_pid=$!
for _ in $(seq 1 100); do
  redis-cli -p "$redis_port" PING 2>/dev/null | grep -q PONG && break
  sleep 0.05
done
redis-cli -p "$redis_port" PING | grep -q PONG || die "redis-server did not start"
echo "== scale-out on redis: redis-server $(redis-server --version | grep -o 'v=[0-9.]*')" \
  "on port $redis_port, AOF appendfsync everysec (queue.durability = \"process\")"

printf 'bench-secret' > "$work/secret"
# The interpreter itself, not a wrapper (a pyenv shim costs ~100 ms of CPU per start).
python=$(python3 -c 'import sys; print(sys.executable)')
write_noop_handler "$work/noop.py"
python3 bench/gen_requests.py bench-secret "$JOBS" "$work/fill.txt"
python3 bench/gen_requests.py bench-secret "$INGEST_EVENTS" "$work/ingest.txt"
# Two disjoint halves for the two-process ingest run (each wrk its own events).
awk 'NR % 2 == 1' "$work/ingest.txt" > "$work/ingest.a.txt"
awk 'NR % 2 == 0' "$work/ingest.txt" > "$work/ingest.b.txt"
write_config "$work/ingest.toml" "127.0.0.1:$(free_port)" "127.0.0.1:$(free_port)" 1

# -- ingest scale --------------------------------------------------------------------
declare -A ingest_rps ingest_p99 ingest_bad ingest_cpu ingest_redis_cpu
for n in 1 2; do
  redis_flush
  fb=() ports=()
  for i in $(seq 1 "$n"); do
    port=$(free_port)
    write_config "$work/ingest$i.toml" "127.0.0.1:$port" "127.0.0.1:$(free_port)" 1
    "$BIN" ingest -c "$work/ingest$i.toml" > "$work/ingest$i.log" 2>&1 & pids+=($!); fb+=($!)
    ports+=("$port")
  done
  for port in "${ports[@]}"; do
    wait_http "http://127.0.0.1:$port/healthz" || die "ingest did not start"
  done
  redis_before=$(cpu_ticks "$redis_pid")
  fb_before=$(sum_ticks "${fb[@]}")
  wrks=()
  for i in $(seq 1 "$n"); do
    file="$work/ingest.txt"
    if [ "$n" -eq 2 ]; then file="$work/ingest.$([ "$i" -eq 1 ] && echo a || echo b).txt"; fi
    wrk -t1 -c"$CONNECTIONS" -d"${INGEST_SECONDS}s" --latency -s bench/signed.lua \
      "http://127.0.0.1:${ports[$((i - 1))]}" -- "$file" 1 > "$work/wrk$n.$i.txt" & wrks+=($!)
  done
  for w in "${wrks[@]}"; do wait "$w"; done
  fb_after=$(sum_ticks "${fb[@]}")
  redis_after=$(cpu_ticks "$redis_pid")
  rps=0 p99=0 bad=0
  for i in $(seq 1 "$n"); do
    read -r r _ p b < <(parse_wrk "$work/wrk$n.$i.txt")
    rps=$((rps + r)); bad=$((bad + b)); p99=$(calc "max($p99, $p)")
  done
  requests=$((rps * INGEST_SECONDS))
  ingest_rps[$n]=$rps ingest_p99[$n]=$p99 ingest_bad[$n]=$bad
  ingest_cpu[$n]=$(us_per $((fb_after - fb_before)) "$requests")
  ingest_redis_cpu[$n]=$(us_per $((redis_after - redis_before)) "$requests")
  echo "ingest x$n: $rps req/s, p99 ${p99} ms (worst wrk), non-2xx $bad"
  stop_started
done

# -- worker scale --------------------------------------------------------------------
# Fills the queue with exactly JOBS jobs: wrk replays the JOBS distinct events in a
# loop (replays are deduplicated) until all are stored.
fill_queue() {
  redis_flush
  local port; port=$(free_port)
  write_config "$work/fill.toml" "127.0.0.1:$port" "127.0.0.1:$(free_port)" 0
  "$BIN" ingest -c "$work/fill.toml" > "$work/fill.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$port/healthz" || die "ingest for the fill did not start"
  wrk -t1 -c"$CONNECTIONS" -d60s -s bench/signed.lua "http://127.0.0.1:$port" -- \
    "$work/fill.txt" 1 > "$work/fill-wrk.txt" &
  pids+=($!)
  local ready=0
  for _ in $(seq 1 240); do
    read -r ready _ _ < <(queue_depth)
    [ "$ready" -ge "$JOBS" ] && break
    sleep 0.25
  done
  stop_started
  [ "$ready" -ge "$JOBS" ] || die "fill stored only $ready of $JOBS jobs"
}

declare -A drain_rate drain_secs worker_cpu handler_cpu redis_cpu
for n in $WORKER_COUNTS; do
  fill_queue
  redis_before=$(cpu_ticks "$redis_pid")
  start=$(now_ns)
  workers=()
  for i in $(seq 1 "$n"); do
    write_config "$work/worker$i.toml" "127.0.0.1:$(free_port)" "127.0.0.1:$(free_port)" 1
    "$BIN" worker -c "$work/worker$i.toml" > "$work/worker$i.log" 2>&1 &
    pids+=($!) workers+=($!)
  done
  drained=0
  deadline=$((start + DRAIN_TIMEOUT * 1000000000))
  while [ "$(now_ns)" -lt "$deadline" ]; do
    read -r ready delayed in_flight < <(queue_depth)
    if [ "$ready" -eq 0 ] && [ "$delayed" -eq 0 ] && [ "$in_flight" -eq 0 ]; then
      drained=1
      break
    fi
    sleep 0.25
  done
  end=$(now_ns)
  [ "$drained" -eq 1 ] || die "$n worker(s) did not drain $JOBS jobs in ${DRAIN_TIMEOUT}s" \
    "(left: ready $ready, delayed $delayed, in flight $in_flight)"
  fb_ticks=$(sum_ticks "${workers[@]}")
  handler_ticks=0
  for p in "${workers[@]}"; do
    # shellcheck disable=SC2046  # one PID per word
    handler_ticks=$((handler_ticks + $(sum_ticks $(children_of "$p"))))
  done
  redis_after=$(cpu_ticks "$redis_pid")
  secs=$(calc "round(($end - $start) / 1e9, 2)")
  drain_secs[$n]=$secs
  drain_rate[$n]=$(calc "round($JOBS / $secs)")
  worker_cpu[$n]=$(us_per "$fb_ticks" "$JOBS")
  handler_cpu[$n]=$(us_per "$handler_ticks" "$JOBS")
  redis_cpu[$n]=$(us_per $((redis_after - redis_before)) "$JOBS")
  echo "workers x$n: $JOBS jobs drained in ${secs}s → ${drain_rate[$n]} jobs/s"
  stop_started
done

# -- report --------------------------------------------------------------------------
ratio() { calc "round($1 / max(1, $2), 2)"; }
echo
echo "== scale-out results: redis (AOF appendfsync everysec), $(nproc) cores," \
  "no-op command handler, concurrency $CONCURRENCY per worker; CPU in µs per job/request"
row='%-8s %8s %9s %9s %7s %11s %12s %10s\n'
# shellcheck disable=SC2059  # the format is ours
printf "$row" workers jobs seconds jobs/s "vs x1" "worker CPU" "handler CPU" "redis CPU"
first=""
for n in $WORKER_COUNTS; do
  first=${first:-$n}
  # shellcheck disable=SC2059
  printf "$row" "$n" "$JOBS" "${drain_secs[$n]}" "${drain_rate[$n]}" \
    "$(ratio "${drain_rate[$n]}" "${drain_rate[$first]}")x" \
    "${worker_cpu[$n]}" "${handler_cpu[$n]}" "${redis_cpu[$n]}"
done
echo
row='%-8s %9s %7s %9s %8s %11s %10s\n'
# shellcheck disable=SC2059
printf "$row" ingress req/s "vs x1" "p99 ms" non-2xx "ingest CPU" "redis CPU"
for n in 1 2; do
  # shellcheck disable=SC2059
  printf "$row" "$n" "${ingest_rps[$n]}" "$(ratio "${ingest_rps[$n]}" "${ingest_rps[1]}")x" \
    "${ingest_p99[$n]}" "${ingest_bad[$n]}" "${ingest_cpu[$n]}" "${ingest_redis_cpu[$n]}"
done
echo "(each ingest process runs with server.threads = 1, so the process count is what scales;" \
  "one wrk with $CONNECTIONS connections per process)"
