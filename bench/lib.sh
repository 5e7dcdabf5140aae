# Shared by the bench scripts (sourced): a work dir, ports, readiness, wrk output.

# Makes $work (a temp dir named after $1) and an empty $pids; on exit every PID in $pids
# is stopped (only what the script started) and $work removed.
bench_workdir() {
  work=$(mktemp -d "/tmp/$1-XXXXXX")
  pids=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A bare nginx (one worker) on 127.0.0.1:$1 answering every request with 200 and the
# body $2 (nginx `return` syntax, e.g. '"OK"'), as a baseline or a simulated upstream.
# Appends its PID to $pids and waits until it answers.
start_nginx() {
  mkdir -p "$work/nginx"
  cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$1;
    keepalive_requests 1000000;
    location / { default_type application/json; return 200 $2; }
  }
}
NGINX
  /usr/sbin/nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" & pids+=($!)
  wait_http "http://127.0.0.1:$1/"
}

wait_http() {
  for _ in $(seq 1 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# Prints "rps p50_ms p99_ms non2xx" from a wrk --latency output file.
parse_wrk() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    n, u = float(re.match(r"([\d.]+)", v).group(1)), re.search(r"[a-z]+", v).group(0)
    return n * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
# Anchored to the distribution's own lines: "62.50%" in the Req/Sec row also ends in 50%.
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {m.group(1) if m else 0}")
PY
}

# A no-op NDJSON command handler (DESIGN §5): answers ok for every job, at once.
# BENCH_HANDLER=sdk writes the same no-op with the Python SDK (sdk/python) instead.
write_noop_handler() {
  if [ "${BENCH_HANDLER:-raw}" = sdk ]; then
    cat > "$1" <<PY
import sys
sys.path.insert(0, "$PWD/sdk/python")
from firebreak import Bot
bot = Bot()
bot.on("*", lambda ctx: None)
bot.run()
PY
    return
  fi
  cat > "$1" <<'PY'
import sys
w = sys.stdout.write
for line in sys.stdin:
    i = line.index('"id":"') + 6
    w('{"id":"%s","ok":true}\n' % line[i:line.index('"', i)])
    sys.stdout.flush()
PY
}

# The no-op handler's command, as TOML array items, for BENCH_HANDLER = raw or sdk
# (Python, above), sdk-node (the TypeScript SDK's dist/) or sdk-cpp (the C++ SDK's
# build/release/bench/sdk-noop-bot); writes what it needs next to $1 (no extension).
noop_handler_command() {
  case "${BENCH_HANDLER:-raw}" in
    sdk-node)
      cat > "$1.mjs" <<JS
import { Bot } from '$PWD/sdk/typescript/dist/index.js';
await new Bot().on('*', () => {}).run({ concurrency: 1 });
JS
      printf '"node", "%s"' "$1.mjs" ;;
    sdk-cpp) printf '"%s"' "$PWD/build/release/bench/sdk-noop-bot" ;;
    *)
      write_noop_handler "$1.py"
      printf '"%s", "%s"' "${PY:-/usr/bin/python3}" "$1.py" ;;
  esac
}

# A redis-server of the bench's own on a free port (append-only, fsync every second, no
# snapshots), its PID in $pids; exports FIREBREAK_BENCH_REDIS_URL for micro_bench.
start_bench_redis() {
  local port
  port=$(free_port)
  mkdir -p "$work/redis"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$work/redis" --save "" \
    --appendonly yes --appendfsync everysec --daemonize no \
    --logfile "$work/redis/redis.log" & pids+=($!)
  for _ in $(seq 1 100); do
    redis-cli -p "$port" PING 2>/dev/null | grep -q PONG && break
    sleep 0.05
  done
  redis_port=$port
  export FIREBREAK_BENCH_REDIS_URL="redis://127.0.0.1:$port/0"
}

# Runs the micro_bench ($BIN) benchmarks matching filter $1 $REPETITIONS times each, in
# random interleaved order (a busy neighbour then hits every variant alike), into the
# JSON file $2.
bench_interleaved() {
  "$BIN" --benchmark_filter="$1" --benchmark_repetitions="$REPETITIONS" \
    --benchmark_enable_random_interleaving=true --benchmark_min_time=1 \
    --benchmark_format=json --benchmark_out="$2" --benchmark_out_format=json >/dev/null
}
