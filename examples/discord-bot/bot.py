#!/usr/bin/env python3
"""discord-bot: answers the /ask slash command with a follow-up message.

firebreak answers Discord at once (PING with {"type":1}, a command with {"type":5}, the
"thinking…" state) and stores the interaction as a job. This handler, written with the
Python SDK (sdk/python), then edits that original response through the interaction
webhook (PATCH /api/v10/webhooks/<application id>/<token>/messages/@original), which
Discord accepts for 15 minutes. The edit is an *action*: stored with the job's success and
sent once through the discord-api integration (timeouts, retries, rate limit).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk", "python"))
from firebreak import Bot  # noqa: E402 (the in-repo SDK; `pip install sdk/python` elsewhere)

APPLICATION_COMMAND = 2
bot = Bot()


def option(data, name, default=""):
    for opt in data.get("options") or []:
        if opt.get("name") == name:
            return str(opt.get("value", default))
    return default


@bot.on("discord.interaction")
def answer(ctx):
    interaction = ctx.payload or {}
    if interaction.get("type") != APPLICATION_COMMAND:
        return  # components and the rest: nothing to follow up
    data = interaction.get("data") or {}
    user = ((interaction.get("member") or {}).get("user") or interaction.get("user") or {})
    name = user.get("global_name") or user.get("username") or "someone"
    if data.get("name") == "ask":
        question = option(data, "question")
        content = f"{name} asked: {question!r}. (The answer would come from your model here.)"
    else:
        content = f"Unknown command /{data.get('name')}"
    ctx.log.info("following up", command=data.get("name"))
    path = f"/api/v10/webhooks/{interaction['application_id']}/{interaction['token']}/messages/@original"
    ctx.action("discord-api", "PATCH", path, json={"content": content, "allowed_mentions": {"parse": []}})


if __name__ == "__main__":
    bot.run()
