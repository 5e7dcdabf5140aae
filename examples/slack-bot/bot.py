#!/usr/bin/env python3
"""slack-bot: answers every message in its thread, and remembers the conversation;
answers slash commands in the channel through their response_url.

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
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk", "python"))
from firebreak import Bot, Reject  # noqa: E402 (the in-repo SDK; `pip install sdk/python` elsewhere)

bot = Bot()


def slash_command(ctx, payload):
    """A slash command (/echo hi): answered in the channel through its response_url,
    which Slack accepts for 30 minutes, via the slack-hooks integration."""
    response_url = urllib.parse.urlsplit(payload.get("response_url", ""))
    if response_url.scheme != "https" or response_url.netloc != "hooks.slack.com":
        raise Reject(f"unexpected response_url {payload.get('response_url')!r}")
    ctx.action("slack-hooks", "POST", response_url.path, json={
        "response_type": "in_channel",
        "text": f"<@{payload.get('user_id')}> ran {payload.get('command')} {payload.get('text', '')!r}",
    })


@bot.on("slack.event")
def reply(ctx):
    payload = ctx.payload or {}
    if "command" in payload:
        return slash_command(ctx, payload)
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
