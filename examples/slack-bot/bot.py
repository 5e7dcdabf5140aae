#!/usr/bin/env python3
"""slack-bot: answers every message in its thread, and remembers the conversation.

Written with the Python SDK (sdk/python). The bot
  - keeps a per-user conversation in the sidecar's session store (expires after 30 min),
    updated with compare-and-set, so two deliveries at once cannot lose a count;
  - answers with an *action*: firebreak stores it together with the job's success and
    sends it through the slack-api integration (auth, retries, rate limit, breaker),
    so a crash between "handled" and "replied" can neither lose nor double the reply.
A session store that is unavailable raises StoreUnavailable: the job is retried after
the sidecar's Retry-After.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk", "python"))
from firebreak import Bot  # noqa: E402 (the in-repo SDK; `pip install sdk/python` elsewhere)

bot = Bot()


@bot.on("slack.event")
def reply(ctx):
    payload = ctx.payload or {}
    event = payload.get("event") or {}
    if event.get("type") != "message" or event.get("bot_id") or event.get("subtype"):
        return  # not a user's message: nothing to do
    channel, user, text = event.get("channel"), event.get("user", "someone"), event.get("text", "")
    conversation = ctx.session(f"slack:{payload.get('team_id', '-')}:{channel}:{user}").update(
        lambda c: {"messages": c["messages"] + 1}, ttl="30m", default={"messages": 0})
    ctx.log.info("replying", channel=channel, messages=conversation["messages"])
    ctx.action("slack-api", "POST", "/api/chat.postMessage", json={
        "channel": channel,
        "thread_ts": event.get("thread_ts") or event.get("ts"),
        "text": f"<@{user}> you said {text!r} (message {conversation['messages']} of this conversation)",
    })


if __name__ == "__main__":
    bot.run()
