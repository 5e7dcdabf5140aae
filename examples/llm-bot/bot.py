#!/usr/bin/env python3
"""llm-bot: answers Slack messages with a chat-completion model (Python SDK, sdk/python).

The model call goes through the sidecar, so the bot has no timeout, retry, breaker or
concurrency code of its own, and never sees the API key:
  ctx.integration("llm").post("/v1/chat/completions", ...)
It sends an Idempotency-Key (the job id), which tells firebreak that resending this POST
is safe: without one, a POST is never retried. If the breaker is open (BreakerOpen) or the
call still fails, the job fails with the Retry-After firebreak gave and runs again later.
The conversation is kept in a session; the reply goes out as an action through slack-api.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk", "python"))
from firebreak import Bot, Retry  # noqa: E402 (the in-repo SDK; `pip install sdk/python` elsewhere)

MODEL = os.environ.get("LLM_MODEL", "gpt-4o-mini")
HISTORY = 10  # messages kept per conversation
bot = Bot()


@bot.on("slack.event")
def answer(ctx):
    event = (ctx.payload or {}).get("event") or {}
    if event.get("type") != "message" or event.get("bot_id") or event.get("subtype"):
        return
    channel = event.get("channel")
    session = ctx.session(f"llm:{channel}:{event.get('user', 'someone')}")
    history = (session.get(default={"messages": []})["messages"]
               + [{"role": "user", "content": event.get("text", "")}])[-HISTORY:]

    request = {"model": MODEL,
               "messages": [{"role": "system", "content": "You are a helpful Slack bot."}] + history}
    res = ctx.integration("llm").post("/v1/chat/completions", json=request,
                                      headers={"Idempotency-Key": ctx.id + ":llm"}, timeout=120)
    if not res.ok:  # the upstream's own failure, after the integration's retries
        after = res.headers.get("retry-after")
        raise Retry(f"model call: HTTP {res.status} {res.body[:200]!r}",
                    after=float(after) if after and after.isdigit() else None)
    content = res.json()["choices"][0]["message"]["content"]

    history.append({"role": "assistant", "content": content})
    session.put({"messages": history[-HISTORY:]}, ttl="1h")
    ctx.action("slack-api", "POST", "/api/chat.postMessage", json={
        "channel": channel, "thread_ts": event.get("thread_ts") or event.get("ts"), "text": content})


if __name__ == "__main__":
    bot.run()
