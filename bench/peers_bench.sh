#!/usr/bin/env bash
# firebreak against the stacks a user would deploy instead (issue 18), on this machine,
# with the same load, side by side:
#   nginx            `return 200`, one worker: the HTTP ceiling (no queue)
#   bullmq-always    Express + BullMQ (bench/peers), Redis appendfsync always
#   bullmq-everysec  the same, appendfsync everysec
#   rq-always        FastAPI + uvicorn (one worker) + rq, Redis appendfsync always
#   rq-everysec      the same, appendfsync everysec
#   fb-sqlite-fsync  `firebreak ingest` + `firebreak worker`, SQLite, durability fsync
#   fb-sqlite-process                                   SQLite, durability process
#   fb-redis-always  Redis appendfsync always (queue.durability fsync)
#   fb-redis-everysec Redis appendfsync everysec (queue.durability process)
# Every stack verifies the Slack v0 signature, dedupes on event_id and enqueues a job.
#
# Per stack and round, with a fresh store (its own redis-server on a free loopback port
# in the work dir, or a new SQLite file):
#  1. ingest: the server alone; wrk -t1 -c64 replays distinct signed Slack events
#     (bench/gen_requests.py, bench/signed.lua), WARMUP s not counted, then DURATION s
#     measured → req/s, p50/p99, non-2xx, CPU per request of the server + redis-server
#     (utime+stime from /proc/PID/stat over the measured run; nginx: master + worker),
#     the server's VmHWM (nginx: master + worker).
#  2. drain: the server stopped, the worker started on the full queue (warm-up and
#     measured jobs); jobs/s = jobs / (time from the worker's start until the queue is
#     empty), at most DRAIN_MAX s (then the rate of what it finished, marked "*"); CPU per
#     job of the worker (with its handler children, alive or reaped) + redis-server; the
#     worker's VmHWM (its own process, not its children).
# Rounds are interleaved: round 1 in STACKS order, round 2 reversed, and so on, so a
# busy neighbour hits every stack alike. The table shows each stack's mean over rounds
# (p99: the worst round) and every firebreak mode's ratio to nginx and to Express+BullMQ.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-build/release/firebreak}
STACKS=${STACKS:-"nginx bullmq-always bullmq-everysec rq-always rq-everysec fb-sqlite-fsync fb-sqlite-process fb-redis-always fb-redis-everysec"}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10}      # measured seconds of wrk per stack and round
WARMUP=${WARMUP:-2}           # seconds of wrk first, not counted (their jobs are drained)
CONNECTIONS=${CONNECTIONS:-64}
EVENTS=${EVENTS:-300000}      # distinct events per measured run (more requests replay them)
DRAIN_MAX=${DRAIN_MAX:-20}    # seconds; a slower drain is cut and its rate marked "*"
CONCURRENCY=${CONCURRENCY:-16}  # firebreak's no-op handler processes (as ingest_bench.sh)
# rq's default worker forks a work horse per job; rq.worker.SimpleWorker runs them in-process.
RQ_WORKER_CLASS=${RQ_WORKER_CLASS:-rq.worker.Worker}
peers_dir=$PWD/bench/peers
RESULTS=${RESULTS:-}           # also keep the per-run lines in this file ($0 --table FILE)
PY=/usr/bin/python3           # Debian's python3: FastAPI, uvicorn, rq come from apt
CLK_TCK=$(getconf CLK_TCK)

# shellcheck source=bench/lib.sh
source bench/lib.sh
die() { echo "peers_bench: $*" >&2; exit 1; }
# -- processes ---------------------------------------------------------------------
# Stops one PID this script started and drops it from $pids.
stop_pid() {
  local p=$1 keep=() q
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for q in "${pids[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
  pids=("${keep[@]}")
}
# utime+stime (+ cutime+cstime: reaped children, e.g. rq's work horses) in clock ticks.
cpu_ticks() {
  awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
# The same, plus the live children's own (firebreak's handler processes).
tree_ticks() {
  local t c
  t=$(cpu_ticks "$1")
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null || true); do t=$((t + $(cpu_ticks "$c"))); done
  echo "$t"
}
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# The same over the process and its live children (nginx: master + worker).
tree_hwm_kb() {
  local t c
  t=$(hwm_kb "$1")
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null || true); do t=$((t + $(hwm_kb "$c"))); done
  echo "$t"
}
calc() { python3 -c "print($1)"; }
now_ns() { date +%s%N; }

# A fresh redis-server in $1 with appendfsync $2 (AOF on, no snapshots).
start_redis() {
  redis_port=$(free_port)
  mkdir -p "$1"
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$1" --save "" \
    --appendonly yes --appendfsync "$2" --daemonize no --logfile "$1/redis.log" &
  redis_pid=$!; pids+=("$redis_pid")
  for _ in $(seq 1 100); do
    redis-cli -p "$redis_port" PING 2>/dev/null | grep -q PONG && return 0
    sleep 0.05
  done
  die "redis-server did not start ($1/redis.log)"
}
rcli() { redis-cli -p "$redis_port" "$@"; }

fb_config() {  # dir backend fsync|process port
  local queue
  if [ "$2" = sqlite ]; then
    queue="path = \"$1/queue.db\""
  else
    queue=$(printf 'backend = "redis"\nurl = "redis://127.0.0.1:%s/0"' "$redis_port")
  fi
  cat > "$1/firebreak.toml" <<TOML
[server]
listen = "127.0.0.1:$4"
[queue]
$queue
durability = "$3"
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
handler = { command = [$handler_command] }
concurrency = $CONCURRENCY
timeout = "30s"
TOML
}
# firebreak's queue: "ready+delayed+in_flight" summed over types, or -1.
fb_pending() {
  local out
  out=$("$BIN" queue stats -c "$1/firebreak.toml" --json 2>/dev/null) || { echo -1; return; }
  { grep -oE '"(ready|delayed|in_flight)":[0-9]+' <<<"$out" || true; } |
    awk -F: '{ s += $2 } END { print s + 0 }'
}

# Per stack: start_server DIR PORT (sets server_pid), queued DIR (jobs in the queue
# after ingest), start_worker DIR (sets worker_pid), pending DIR (jobs not yet done).
start_server() {
  local dir=$1 port=$2
  case "$stack" in
    nginx)
      start_nginx "$port" '"OK"'
      server_pid=${pids[-1]}
      return ;;
    bullmq-*)
      SLACK_SIGNING_SECRET=bench-secret REDIS_URL="redis://127.0.0.1:$redis_port" PORT=$port \
        node bench/peers/express_bullmq_server.js > "$dir/server.log" 2>&1 & ;;
    rq-*)
      (cd bench/peers && SLACK_SIGNING_SECRET=bench-secret \
        REDIS_URL="redis://127.0.0.1:$redis_port/0" exec $PY -m uvicorn fastapi_rq_app:app \
        --host 127.0.0.1 --port "$port" --workers 1 --no-access-log --log-level warning) \
        > "$dir/server.log" 2>&1 & ;;
    fb-*)
      "$BIN" ingest -c "$dir/firebreak.toml" > "$dir/server.log" 2>&1 & ;;
  esac
  server_pid=$!; pids+=("$server_pid")
  wait_http "http://127.0.0.1:$port/healthz" || die "$stack did not start ($dir/server.log)"
}
queued() {
  case "$stack" in
    bullmq-*) rcli LLEN bull:slack:wait ;;
    rq-*) rcli LLEN rq:queue:default ;;
    fb-*) fb_pending "$1" ;;
  esac
}
start_worker() {
  local dir=$1
  case "$stack" in
    bullmq-*)
      REDIS_URL="redis://127.0.0.1:$redis_port" node bench/peers/bullmq_worker.js \
        > "$dir/worker.log" 2>&1 & ;;
    rq-*)
      (cd "$dir" && exec $PY -m rq.cli worker --url "redis://127.0.0.1:$redis_port/0" \
        --path "$peers_dir" --worker-class "$RQ_WORKER_CLASS" --logging_level WARNING default) > "$dir/worker.log" 2>&1 & ;;
    fb-*)
      "$BIN" worker -c "$dir/firebreak.toml" > "$dir/worker.log" 2>&1 & ;;
  esac
  worker_pid=$!; pids+=("$worker_pid")
}
# Jobs not finished yet (waiting or running).
pending() {
  case "$stack" in
    bullmq-*) echo $(( $(rcli LLEN bull:slack:wait) + $(rcli LLEN bull:slack:active) )) ;;
    rq-*) echo $(( $(rcli LLEN rq:queue:default) + $(rcli ZCARD rq:wip:default) )) ;;
    fb-*) fb_pending "$1" ;;
  esac
}
failed_jobs() {
  case "$stack" in
    bullmq-*) rcli ZCARD bull:slack:failed ;;
    rq-*) rcli ZCARD rq:failed:default ;;
    *) echo 0 ;;
  esac
}

# -- one stack, one round -----------------------------------------------------------
run_stack() {
  stack=$1
  local round=$2 dir="$work/$1-$2" port
  mkdir -p "$dir"
  port=$(free_port)
  redis_pid="" redis_port=""
  case "$stack" in
    *-always) start_redis "$dir/redis" always ;;
    *-everysec) start_redis "$dir/redis" everysec ;;
  esac
  case "$stack" in
    fb-sqlite-fsync) fb_config "$dir" sqlite fsync "$port" ;;
    fb-sqlite-process) fb_config "$dir" sqlite process "$port" ;;
    fb-redis-always) fb_config "$dir" redis fsync "$port" ;;
    fb-redis-everysec) fb_config "$dir" redis process "$port" ;;
  esac
  start_server "$dir" "$port"

  # Signed just before use (Slack's 5-minute window); warm-up ids below the measured ones.
  python3 bench/gen_requests.py bench-secret $((EVENTS / 8)) "$dir/warm.txt" 0
  python3 bench/gen_requests.py bench-secret "$EVENTS" "$dir/req.txt" 10000000
  if [ "$WARMUP" -gt 0 ]; then
    wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -s bench/signed.lua "http://127.0.0.1:$port" \
      -- "$dir/warm.txt" 1 > "$dir/warm-wrk.txt"
  fi
  local srv0 red0 srv1 red1
  srv0=$(tree_ticks "$server_pid"); red0=0
  [ -z "$redis_pid" ] || red0=$(cpu_ticks "$redis_pid")
  wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/signed.lua \
    "http://127.0.0.1:$port" -- "$dir/req.txt" 1 > "$dir/wrk.txt"
  srv1=$(tree_ticks "$server_pid"); red1=0
  [ -z "$redis_pid" ] || red1=$(cpu_ticks "$redis_pid")
  rm -f "$dir/warm.txt" "$dir/req.txt"
  local rps p50 p99 non2xx requests errors srv_hwm
  read -r rps p50 p99 non2xx < <(parse_wrk "$dir/wrk.txt")
  requests=$(grep -oE '^ *[0-9]+ requests in' "$dir/wrk.txt" | grep -oE '[0-9]+')
  errors=$({ grep -oE 'Socket errors: .*' "$dir/wrk.txt" || true; } | tr -d ',' |
    awk '{ print $4 + $6 + $8 + $10 }')
  errors=${errors:-0}
  srv_hwm=$(tree_hwm_kb "$server_pid")
  local srv_us red_us
  srv_us=$(calc "round(($srv1 - $srv0) * 1e6 / $CLK_TCK / max(1, $requests), 1)")
  red_us=$(calc "round(($red1 - $red0) * 1e6 / $CLK_TCK / max(1, $requests), 1)")

  local jobs=0 done_s=0 jobs_s=0 wrk_us=0 wred_us=0 wrk_hwm=0 partial=0 failed=0
  if [ "$stack" != nginx ]; then
    jobs=$(queued "$dir")
    stop_pid "$server_pid"
    red0=0
    [ -z "$redis_pid" ] || red0=$(cpu_ticks "$redis_pid")
    local t0 t1 left w1 deadline
    t0=$(now_ns)
    start_worker "$dir"
    deadline=$((t0 + DRAIN_MAX * 1000000000))
    while :; do
      left=$(pending "$dir")
      [ "$left" = 0 ] && break
      if [ "$(now_ns)" -ge "$deadline" ]; then partial=1; break; fi
      sleep 0.05
    done
    t1=$(now_ns)
    w1=$(tree_ticks "$worker_pid"); red1=0
    [ -z "$redis_pid" ] || red1=$(cpu_ticks "$redis_pid")
    wrk_hwm=$(hwm_kb "$worker_pid")
    failed=$(failed_jobs)
    local finished=$jobs
    [ "$partial" = 0 ] || finished=$((jobs - left))
    done_s=$(calc "round(($t1 - $t0) / 1e9, 2)")
    jobs_s=$(calc "round($finished / max(1e-9, $done_s))")
    wrk_us=$(calc "round($w1 * 1e6 / $CLK_TCK / max(1, $finished), 1)")
    wred_us=$(calc "round(($red1 - $red0) * 1e6 / $CLK_TCK / max(1, $finished), 1)")
    stop_pid "$worker_pid"
    jobs=$finished
  else
    stop_pid "$server_pid"
  fi
  [ -z "$redis_pid" ] || stop_pid "$redis_pid"
  echo "$stack $round $rps $p50 $p99 $non2xx $errors $requests $srv_us $red_us $jobs $done_s" \
    "$jobs_s $partial $failed $wrk_us $wred_us $srv_hwm $wrk_hwm" >> "$work/runs.txt"
  [ -z "$RESULTS" ] || cp "$work/runs.txt" "$RESULTS"
  printf '%-18s round %s: %6s req/s p50 %6s p99 %7s ms non-2xx %s errors %s | %s jobs in %ss = %s jobs/s%s\n' \
    "$stack" "$round" "$rps" "$p50" "$p99" "$non2xx" "$errors" "$jobs" "$done_s" "$jobs_s" \
    "$([ "$partial" = 1 ] && echo " (cut at ${DRAIN_MAX}s)")"
  if [ "$stack" != nginx ] && [ "$requests" -gt "$EVENTS" ]; then
    echo "  note: $requests requests > EVENTS=$EVENTS: events were replayed (duplicates, no job)"
  fi
  rm -rf "$dir/redis"
}

# -- the table ------------------------------------------------------------------------
print_table() {
python3 - "$1" "$DRAIN_MAX" <<'PY'
import sys
from collections import defaultdict
runs = defaultdict(list)
order = []
for line in open(sys.argv[1]):
    f = line.split()
    if f[0] not in runs:
        order.append(f[0])
    runs[f[0]].append(dict(
        rps=float(f[2]), p50=float(f[3]), p99=float(f[4]), non2xx=int(f[5]), errors=int(f[6]),
        srv_us=float(f[8]), red_us=float(f[9]), jobs=int(f[10]), jobs_s=float(f[12]),
        partial=int(f[13]), failed=int(f[14]), wrk_us=float(f[15]), wred_us=float(f[16]),
        srv_mb=int(f[17]) / 1024, wrk_mb=int(f[18]) / 1024))
def mean(s, k): return sum(r[k] for r in runs[s]) / len(runs[s])
names = {
    "nginx": "nginx `return 200` (1 worker)",
    "bullmq-always": "Express + BullMQ, Redis always",
    "bullmq-everysec": "Express + BullMQ, Redis everysec",
    "rq-always": "FastAPI + uvicorn + rq, Redis always",
    "rq-everysec": "FastAPI + uvicorn + rq, Redis everysec",
    "fb-sqlite-fsync": "firebreak, SQLite fsync",
    "fb-sqlite-process": "firebreak, SQLite process",
    "fb-redis-always": "firebreak, Redis always",
    "fb-redis-everysec": "firebreak, Redis everysec",
}
nginx = mean("nginx", "rps") if "nginx" in runs else None
def peer_for(s):  # a durable firebreak mode against BullMQ on appendfsync always
    want = "bullmq-everysec" if s.endswith(("process", "everysec")) else "bullmq-always"
    return want if want in runs else ("bullmq-always" if "bullmq-always" in runs else None)
print()
print("| stack | req/s | p50 ms | p99 ms | non-2xx | drain jobs/s | CPU µs/req (server+redis) "
      "| CPU µs/job (worker+redis) | peak RSS MB server / worker | req/s × nginx | "
      "req/s × BullMQ | drain × BullMQ |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for s in order:
    rs = runs[s]
    rps, p50, p99 = mean(s, "rps"), mean(s, "p50"), max(r["p99"] for r in rs)
    bad = sum(r["non2xx"] for r in rs)
    errs = sum(r["errors"] for r in rs)
    bad_s = f"{bad}" + (f" (+{errs} socket errors)" if errs else "")
    srv_us, red_us = mean(s, "srv_us"), mean(s, "red_us")
    cpu_req = f"{srv_us + red_us:.0f} ({srv_us:.0f}+{red_us:.0f})" if red_us else f"{srv_us:.0f}"
    if s == "nginx":
        drain = cpu_job = "–"
        rss = f"{max(r['srv_mb'] for r in rs):.1f} / –"
    else:
        cut = any(r["partial"] for r in rs)
        drain = f"{mean(s, 'jobs_s'):,.0f}" + ("*" if cut else "")
        w, wr = mean(s, "wrk_us"), mean(s, "wred_us")
        cpu_job = f"{w + wr:.0f} ({w:.0f}+{wr:.0f})" if wr else f"{w:.0f}"
        rss = f"{max(r['srv_mb'] for r in rs):.1f} / {max(r['wrk_mb'] for r in rs):.1f}"
    x_nginx = f"{rps / nginx:.2f}×" if nginx and s != "nginx" else "–"
    peer = peer_for(s) if s.startswith("fb-") else None
    x_peer = f"{rps / mean(peer, 'rps'):.2f}×" if peer else "–"
    x_drain = f"{mean(s, 'jobs_s') / mean(peer, 'jobs_s'):.2f}×" if peer else "–"
    print(f"| {names.get(s, s)} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {bad_s} | {drain} | "
          f"{cpu_req} | {cpu_job} | {rss} | {x_nginx} | {x_peer} | {x_drain} |")
failed = {s: sum(r["failed"] for r in runs[s]) for s in order if sum(r["failed"] for r in runs[s])}
print()
print("req/s, p50: mean over rounds; p99: the worst round; drain: the worker started on the "
      "full queue after ingest stopped, time until it is empty (worker start-up included)"
      + (f"; * = cut at {sys.argv[2]} s, rate of what finished" if any(
          r["partial"] for s in order for r in runs[s]) else "")
      + ". Ratios × BullMQ: durable modes (SQLite fsync, Redis always) against BullMQ on "
      "appendfsync always, the others against BullMQ on everysec.")
if failed:
    print("FAILED JOBS:", failed)
PY
}

if [ "${1:-}" = --table ]; then  # the table again from a RESULTS file (of a cut run, too)
  print_table "$2"
  exit 0
fi
for tool in wrk redis-server redis-cli node curl /usr/sbin/nginx; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh bench)"
done
[ -x "$BIN" ] || die "$BIN not found (make build, or BIN=...)"
[ -d bench/peers/node_modules/bullmq ] || die "bench/peers has no node_modules (scripts/install-deps.sh bench)"
$PY -c 'import fastapi, uvicorn, rq, redis' 2>/dev/null ||
  die "$PY lacks fastapi/uvicorn/rq/redis (scripts/install-deps.sh bench)"

bench_workdir firebreak-peers
printf 'bench-secret' > "$work/secret"
handler_command=$(noop_handler_command "$work/noop")  # BENCH_HANDLER picks it (lib.sh)
: > "$work/runs.txt"

echo "== peers: $(nproc) cores; wrk -t1 -c$CONNECTIONS, ${WARMUP}s warm-up + ${DURATION}s;" \
  "$ROUNDS interleaved rounds; $($BIN version | head -1); node $(node --version);" \
  "rq worker class $RQ_WORKER_CLASS;" \
  "$(redis-server --version | grep -o 'v=[0-9.]*')"
read -r -a order <<<"$STACKS"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then list=("${order[@]}"); else
    list=(); for ((i = ${#order[@]} - 1; i >= 0; i--)); do list+=("${order[$i]}"); done
  fi
  for s in "${list[@]}"; do run_stack "$s" "$round"; done
done

print_table "$work/runs.txt"
