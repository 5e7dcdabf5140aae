#!/usr/bin/env python3
"""llm-bot: answers Slack messages with a chat-completion model.

The model call goes through the sidecar, so the bot has no timeout, retry, breaker or
concurrency code of its own, and never sees the API key:
  POST $FIREBREAK_SIDECAR/v1/integrations/llm/v1/chat/completions
It sends an Idempotency-Key (the job id), which tells firebreak that resending this POST
is safe: without one, a POST is never retried. If the breaker is open (503 with
X-Firebreak-Breaker: open) or the call still fails, the job fails with the Retry-After
firebreak gave and runs again later. The reply goes out as an action through slack-api.
Only the Python standard library is used.
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

SIDECAR = os.environ.get("FIREBREAK_SIDECAR", "http://127.0.0.1:8081")
MODEL = os.environ.get("LLM_MODEL", "gpt-4o-mini")
HISTORY = 10  # messages kept per conversation


def sidecar(method, path, body=None, headers=None, timeout=120):
    request = urllib.request.Request(SIDECAR + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def retry_later(envelope, why, headers):
    answer = {"id": envelope["id"], "ok": False, "error": why, "retry": True}
    retry_after = headers.get("Retry-After") if headers else None
    if retry_after and retry_after.isdigit():
        answer["retry_after"] = int(retry_after)
    return answer


def handle(envelope):
    payload = envelope.get("payload") or {}
    event = payload.get("event") or {}
    if event.get("type") != "message" or event.get("bot_id") or event.get("subtype"):
        return {"id": envelope["id"], "ok": True}
    channel, user = event.get("channel"), event.get("user", "someone")
    key = urllib.parse.quote(f"llm:{channel}:{user}", safe="")

    status, _, body = sidecar("GET", f"/v1/sessions/{key}")
    history = json.loads(body)["messages"] if status == 200 else []
    history = (history + [{"role": "user", "content": event.get("text", "")}])[-HISTORY:]

    request = {"model": MODEL, "messages": [{"role": "system", "content": "You are a helpful Slack bot."}] + history}
    status, headers, body = sidecar(
        "POST", "/v1/integrations/llm/v1/chat/completions", json.dumps(request).encode(),
        {"Content-Type": "application/json", "Idempotency-Key": envelope["id"] + ":llm",
         "X-Firebreak-Job-Id": envelope["id"], "traceparent": envelope.get("traceparent", "")})
    if status != 200:
        return retry_later(envelope, f"model call: HTTP {status} {body[:200]!r}", headers)
    content = json.loads(body)["choices"][0]["message"]["content"]

    history.append({"role": "assistant", "content": content})
    sidecar("PUT", f"/v1/sessions/{key}?ttl=1h", json.dumps({"messages": history[-HISTORY:]}).encode(),
            {"Content-Type": "application/json"})
    reply = {"channel": channel, "thread_ts": event.get("thread_ts") or event.get("ts"), "text": content}
    return {"id": envelope["id"], "ok": True,
            "actions": [{"integration": "slack-api", "method": "POST", "path": "/api/chat.postMessage", "json": reply}]}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        envelope = json.loads(line)
        try:
            answer = handle(envelope)
        except Exception as exc:
            answer = {"id": envelope.get("id"), "ok": False, "error": repr(exc), "retry": True}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
