#!/usr/bin/env bash
# The handler SDKs' cost per job (issue 19: "the SDK is not the bottleneck of the drain").
#  1. Per process, no firebreak: ENVELOPES Slack-event envelopes piped into one handler
#     process, answers to /dev/null, ROUNDS interleaved rounds; jobs/s of
#       raw   bench/lib.sh's no-op (finds the id by string search: the floor)
#       plain json.loads + json.dumps per line, what a hand-written handler does
#       sdk   the Python SDK's Bot with a no-op handler (envelope, context, answer)
#       sdk-node  the TypeScript SDK's Bot (node, one job at a time, as firebreak sends them)
#       sdk-cpp   the C++ SDK's Bot (bench/sdk/noop_bot.cc, one job at a time)
#  2. Through firebreak: bench/peers_bench.sh's drain (firebreak worker, CONCURRENCY
#     no-op handler processes, SQLite `process`) with each of those handlers but `plain`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/release/firebreak}
ENVELOPES=${ENVELOPES:-100000}
ROUNDS=${ROUNDS:-3}
PY=/usr/bin/python3
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_workdir sdk-bench
(cd sdk/typescript && node_modules/.bin/tsc -p .)  # dist/ (scripts/install-deps.sh ran npm ci)
cmake --build --preset release --target sdk_noop_bot >/dev/null

"$PY" - "$work/envelopes.ndjson" "$ENVELOPES" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for n in range(int(sys.argv[2])):
        f.write(json.dumps({
            "id": "01JD5Q3W8Z6V2X4K7N9P%06d" % n, "type": "slack.event", "source": "slack",
            "dedupe_key": "slack:Ev%08d" % n, "attempt": 1, "max_attempts": 5,
            "enqueued_at": "2026-11-27T20:00:00.000Z", "deadline": "2026-11-27T20:00:30.000Z",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "headers": {"x-slack-retry-num": "0"},
            "payload": {"type": "event_callback", "team_id": "T0001", "event_id": "Ev%08d" % n,
                        "event": {"type": "message", "user": "U%04d" % (n % 5000),
                                  "channel": "C%02d" % (n % 97), "ts": "1700000000.%06d" % n,
                                  "text": "message %d from the bench" % n}}},
            separators=(",", ":")) + "\n")
PY
write_noop_handler "$work/raw.py"
BENCH_HANDLER=sdk write_noop_handler "$work/sdk.py"
BENCH_HANDLER=sdk-node noop_handler_command "$work/sdk" >/dev/null  # $work/sdk.mjs
cat > "$work/plain.py" <<'PY'
import json, sys
for line in sys.stdin:
    sys.stdout.write(json.dumps({"id": json.loads(line)["id"], "ok": True}) + "\n")
    sys.stdout.flush()
PY

echo "== handler SDKs, per process: $ENVELOPES envelopes ($(du -k "$work/envelopes.ndjson" | cut -f1) KiB), $ROUNDS rounds"
declare -A total
for round in $(seq 1 "$ROUNDS"); do
  for h in raw plain sdk sdk-node sdk-cpp; do
    start=$(date +%s%N)
    if [ "$h" = sdk-node ]; then
      node "$work/sdk.mjs" < "$work/envelopes.ndjson" > "$work/out.ndjson"
    elif [ "$h" = sdk-cpp ]; then
      build/release/bench/sdk-noop-bot < "$work/envelopes.ndjson" > "$work/out.ndjson" 2>/dev/null
    else
      "$PY" "$work/$h.py" < "$work/envelopes.ndjson" > "$work/out.ndjson"
    fi
    end=$(date +%s%N)
    answers=$(wc -l < "$work/out.ndjson")
    [ "$answers" = "$ENVELOPES" ] || { echo "sdk_bench: $h answered $answers of $ENVELOPES" >&2; exit 1; }
    rate=$((ENVELOPES * 1000000000 / (end - start)))
    total[$h]=$(( ${total[$h]:-0} + rate ))
    echo "round $round: $h $rate jobs/s"
  done
done
for h in raw plain sdk sdk-node sdk-cpp; do echo "mean $h $(( total[$h] / ROUNDS )) jobs/s"; done
echo "sdk / raw: $(python3 -c "print(f'{${total[sdk]}/${total[raw]}:.2f}')")x;" \
  "sdk / plain: $(python3 -c "print(f'{${total[sdk]}/${total[plain]}:.2f}')")x"

echo "== through firebreak (bench/peers_bench.sh drain, SQLite process): raw, then each SDK's handler"
for h in raw sdk sdk-node sdk-cpp; do
  BENCH_HANDLER=$h STACKS=fb-sqlite-process ROUNDS=1 DURATION=${DURATION:-5} BIN=$BIN \
    bench/peers_bench.sh 2>&1 | grep -E "^\| firebreak" | sed "s/^/$h handler: /"
done
