#!/usr/bin/env python3
"""echo-bot: the smallest firebreak handler.

firebreak starts this process and writes one job envelope per line (NDJSON) to its
stdin; the bot answers one line per job on stdout. Anything written to stderr ends
up in firebreak's log, tagged with the job id.
"""
import json
import sys


def handle(envelope):
    payload = envelope.get("payload") or {}
    event = payload.get("event") or {}
    text = event.get("text") or payload.get("text") or ""
    print(
        f"echo-bot: {envelope['type']} from {envelope['source']} "
        f"(attempt {envelope['attempt']}, {envelope['dedupe_key']}): {text!r}",
        file=sys.stderr,
        flush=True,
    )
    return {"id": envelope["id"], "ok": True}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        envelope = json.loads(line)
        try:
            answer = handle(envelope)
        except Exception as exc:  # a bug in the bot: let firebreak retry it
            answer = {"id": envelope.get("id"), "ok": False, "error": repr(exc), "retry": True}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
