#!/usr/bin/env python3
"""Command handler for the chaos test (NDJSON protocol, DESIGN §5).

Usage: handler.py EFFECTS_FILE ATTEMPTS_FILE

The side effect is one line "dedupe_key job_id attempt" appended to EFFECTS_FILE
with O_APPEND in a single write(2), so lines from many handler processes on many
"hosts" never interleave. The checker counts effects by dedupe key, which makes the
effect idempotent: a redelivered job adds a line but never a second handled event.

- payload {"fail_first": true}: answers a retryable failure on attempt 1, before
  any effect, so the retry path (backoff, delayed set) is exercised.
- job type "chaos.doomed": always fails (retryable); every attempt is recorded in
  ATTEMPTS_FILE so the checker can tell that each such job reached the DLQ after
  using up its attempts.
"""
import json
import os
import random
import sys
import time

DOOMED_TYPE = "chaos.doomed"


def open_append(path):
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def answer_for(envelope, effects_fd, attempts_fd):
    payload = envelope.get("payload") or {}
    record = f"{envelope['dedupe_key']} {envelope['id']} {envelope['attempt']}\n".encode()
    time.sleep(random.uniform(0.0, 0.020))
    if envelope.get("type") == DOOMED_TYPE:
        os.write(attempts_fd, record)
        return {"id": envelope["id"], "ok": False, "error": "doomed by the test", "retry": True}
    if payload.get("fail_first") and envelope.get("attempt") == 1:
        return {"id": envelope["id"], "ok": False, "error": "asked to fail on attempt 1",
                "retry": True}
    os.write(effects_fd, record)
    return {"id": envelope["id"], "ok": True}


def main():
    effects_fd = open_append(sys.argv[1])
    attempts_fd = open_append(sys.argv[2])
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        envelope = json.loads(line)
        try:
            answer = answer_for(envelope, effects_fd, attempts_fd)
        except Exception as exc:  # a bug here: let firebreak retry and log it
            answer = {"id": envelope.get("id"), "ok": False, "error": repr(exc), "retry": True}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
