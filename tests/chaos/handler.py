#!/usr/bin/env python3
"""Command handler for the chaos test (NDJSON protocol, DESIGN §5).

Usage: handler.py EFFECTS_FILE ATTEMPTS_FILE [RUNS_FILE HOST INTEGRATION]

The side effect is one line "dedupe_key job_id attempt" appended to EFFECTS_FILE
with O_APPEND in a single write(2), so lines from many handler processes on many
"hosts" never interleave. The checker counts effects by dedupe key, which makes the
effect idempotent: a redelivered job adds a line but never a second handled event.

- payload {"fail_first": true}: answers a retryable failure on attempt 1, before
  any effect, so the retry path (backoff, delayed set) is exercised.
- job type "chaos.doomed": always fails (retryable); every attempt is recorded in
  ATTEMPTS_FILE so the checker can tell that each such job reached the DLQ after
  using up its attempts.

Flow control and shared limits (with RUNS_FILE):
- every run of a "chaos.event" job appends two records to RUNS_FILE, each one
  write(2) with O_APPEND:
      S <run> <key> <job_id> <attempt> <host> <worker_pid> <wall time>
      E <run> <key> <job_id> <attempt> <host> <worker_pid> <wall time> <outcome> <call ms>
  `run` is "<handler pid>.<n>" (unique for the test), `worker_pid` the firebreak
  process that started this handler (its parent), `wall time` time.time() with
  microseconds. S is written before any work, E after the effect (or the failure),
  just before the answer: the run lies inside the job's claim..finish in the queue.
  `call ms` is how long the integration call through the sidecar took ("-": none).
  A run that never wrote E was killed (its worker was kill -9'd: the handler dies
  with it through PR_SET_PDEATHSIG) or ran into the job timeout.
- payload {"call": true}: the job calls the integration INTEGRATION through the
  worker's sidecar (POST $FIREBREAK_SIDECAR/v1/integrations/INTEGRATION/work) before
  its effect; anything but a 2xx answer is a retryable failure, before the effect.
"""
import http.client
import json
import os
import random
import sys
import time
import urllib.parse

DOOMED_TYPE = "chaos.doomed"
EVENT_TYPE = "chaos.event"
SIDECAR_TIMEOUT = 4.0  # below the job timeout (5 s) and above the integration's (2 s)


def open_append(path):
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


class Runs:
    """Start/end records of keyed runs, and the integration call."""

    def __init__(self, path, host, integration):
        self.fd = open_append(path)
        self.host = host
        self.integration = integration
        self.worker_pid = os.getppid()  # read at start: after a kill -9 it would be 1
        self.count = 0
        sidecar = urllib.parse.urlsplit(os.environ.get("FIREBREAK_SIDECAR", ""))
        self.sidecar = (sidecar.hostname, sidecar.port) if sidecar.hostname else None

    def record(self, kind, run, envelope, key, outcome="", call_ms=None):
        line = (f"{kind} {run} {key} {envelope['id']} {envelope['attempt']} {self.host} "
                f"{self.worker_pid} {time.time():.6f}")
        if kind == "E":
            line += f" {outcome} " + ("-" if call_ms is None else f"{call_ms:.1f}")
        os.write(self.fd, (line + "\n").encode())

    def call(self, envelope, key):
        """POSTs through the sidecar; returns "" on a 2xx, else why it failed."""
        if self.sidecar is None:
            return "FIREBREAK_SIDECAR not set"
        conn = http.client.HTTPConnection(*self.sidecar, timeout=SIDECAR_TIMEOUT)
        try:
            body = json.dumps({"job": envelope["id"], "key": key}).encode()
            conn.request("POST", f"/v1/integrations/{self.integration}/work", body=body,
                         headers={"Content-Type": "application/json",
                                  "X-Firebreak-Job-Id": envelope["id"]})
            response = conn.getresponse()
            response.read()
            if 200 <= response.status < 300:
                return ""
            origin = response.getheader("X-Firebreak-Origin") or "upstream"
            return f"http_{response.status}_{origin}"
        except (OSError, http.client.HTTPException) as exc:
            return f"sidecar_{type(exc).__name__}"
        finally:
            conn.close()


def answer_for(envelope, effects_fd, attempts_fd, runs):
    payload = envelope.get("payload") or {}
    record = f"{envelope['dedupe_key']} {envelope['id']} {envelope['attempt']}\n".encode()
    if envelope.get("type") == DOOMED_TYPE:
        time.sleep(random.uniform(0.0, 0.020))
        os.write(attempts_fd, record)
        return {"id": envelope["id"], "ok": False, "error": "doomed by the test", "retry": True}
    key = str(payload.get("key", "-"))
    run = None
    if runs is not None and envelope.get("type") == EVENT_TYPE:
        runs.count += 1
        run = f"{os.getpid()}.{runs.count}"
        runs.record("S", run, envelope, key)
    outcome = "ok"
    call_ms = None
    try:
        time.sleep(random.uniform(0.0, 0.020))
        if payload.get("fail_first") and envelope.get("attempt") == 1:
            outcome = "fail_first"
            return {"id": envelope["id"], "ok": False, "error": "asked to fail on attempt 1",
                    "retry": True}
        if payload.get("call") and runs is not None:
            called = time.monotonic()
            failure = runs.call(envelope, key)
            call_ms = (time.monotonic() - called) * 1000
            if failure:
                outcome = failure
                return {"id": envelope["id"], "ok": False,
                        "error": f"integration call failed: {failure}", "retry": True}
        os.write(effects_fd, record)
        return {"id": envelope["id"], "ok": True}
    finally:
        if run is not None:
            runs.record("E", run, envelope, key, outcome, call_ms)


def main():
    effects_fd = open_append(sys.argv[1])
    attempts_fd = open_append(sys.argv[2])
    runs = Runs(sys.argv[3], sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else None
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        envelope = json.loads(line)
        try:
            answer = answer_for(envelope, effects_fd, attempts_fd, runs)
        except Exception as exc:  # a bug here: let firebreak retry and log it
            answer = {"id": envelope.get("id"), "ok": False, "error": repr(exc), "retry": True}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
