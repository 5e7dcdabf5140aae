#!/usr/bin/env python3
"""slack-bot: answers every message in its thread, and remembers the conversation.

firebreak runs this process and writes one job envelope per line to stdin. The bot
  - keeps a per-user conversation in the sidecar's session store (expires after 30 min),
  - answers with an *action*: firebreak stores it together with the job's success and
    sends it through the slack-api integration (auth, retries, rate limit, breaker),
    so a crash between "handled" and "replied" can neither lose nor double the reply.
Only the Python standard library is used.
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

SIDECAR = os.environ.get("FIREBREAK_SIDECAR", "http://127.0.0.1:8081")


def sidecar(method, path, body=None, headers=None):
    """One call to the sidecar; returns (status, headers, body)."""
    request = urllib.request.Request(SIDECAR + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def handle(envelope):
    payload = envelope.get("payload") or {}
    event = payload.get("event") or {}
    if event.get("type") != "message" or event.get("bot_id") or event.get("subtype"):
        return {"id": envelope["id"], "ok": True}  # not a user's message: nothing to do
    channel, user, text = event.get("channel"), event.get("user", "someone"), event.get("text", "")
    key = urllib.parse.quote(f"slack:{payload.get('team_id', '-')}:{channel}:{user}", safe="")

    status, headers, body = sidecar("GET", f"/v1/sessions/{key}")
    if status == 200:
        conversation = json.loads(body)
    elif status == 404:
        conversation = {"messages": 0}
    else:  # the store is unavailable: let firebreak retry the job later
        return {"id": envelope["id"], "ok": False, "error": f"session read: HTTP {status}", "retry": True}
    conversation["messages"] += 1
    status, _, _ = sidecar("PUT", f"/v1/sessions/{key}?ttl=30m", json.dumps(conversation).encode(),
                           {"Content-Type": "application/json"})
    if status not in (200, 201):
        return {"id": envelope["id"], "ok": False, "error": f"session write: HTTP {status}", "retry": True}

    reply = {
        "channel": channel,
        "thread_ts": event.get("thread_ts") or event.get("ts"),
        "text": f"<@{user}> you said {text!r} (message {conversation['messages']} of this conversation)",
    }
    action = {"integration": "slack-api", "method": "POST", "path": "/api/chat.postMessage", "json": reply}
    return {"id": envelope["id"], "ok": True, "actions": [action]}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        envelope = json.loads(line)
        try:
            answer = handle(envelope)
        except Exception as exc:  # a bug in the bot: firebreak retries, then dead-letters
            answer = {"id": envelope.get("id"), "ok": False, "error": repr(exc), "retry": True}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
