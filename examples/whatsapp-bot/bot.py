#!/usr/bin/env python3
"""whatsapp-bot: answers every WhatsApp text message with a reply quoting it.

firebreak's `meta` source checks X-Hub-Signature-256, answers Meta's GET handshake, and
splits each delivery into one job per message and one per status update, each deduped by
its own id (a retried delivery stores nothing twice). Each job's payload is
  {"object", "entry_id", "field", "metadata": {"phone_number_id", ...}, "contacts": [...],
   "message": {...}}   (or "status": {...}, or "change": {...} for other webhook fields).

Written with the Python SDK (sdk/python). The bot
  - counts the sender's messages in a session (24 h), updated by compare-and-set and keyed
    by message id, so a retried job shows the same number instead of counting twice;
  - replies with an *action*: firebreak stores it with the job's success and sends it once,
    through the whatsapp-api integration, which holds the access token and retries;
  - ignores status updates (sent/delivered/read; a failed one is logged), reactions and
    system notices, and answers any other message that is not text with a short note.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk", "python"))
from firebreak import Bot  # noqa: E402 (the in-repo SDK; `pip install sdk/python` elsewhere)

GRAPH_VERSION = "v21.0"
# Free-form replies are accepted only within 24 h of the user's last message
# (the customer service window); a job older than that is dropped, not sent to fail.
SERVICE_WINDOW = 24 * 3600 - 300
# Not worth a reply: reactions, and system notices (e.g. "the user changed number").
IGNORED_TYPES = {"reaction", "system"}
MAX_BODY = 1000

bot = Bot()


def count_message(ctx, sender, message_id):
    """This message's number in the sender's conversation (forgotten after 24 h of quiet)."""
    def add(seen):
        if any(entry[0] == message_id for entry in seen["recent"]):
            return seen  # a retry of this job: already counted
        n = seen["count"] + 1
        return {"count": n, "recent": (seen["recent"] + [[message_id, n]])[-20:]}

    seen = ctx.session(f"whatsapp:{sender}").update(add, ttl="24h", default={"count": 0, "recent": []})
    return next(n for mid, n in seen["recent"] if mid == message_id)


@bot.on("whatsapp.message")
def reply(ctx):
    payload = ctx.payload or {}
    status = payload.get("status")
    if status is not None:
        if status.get("status") == "failed":
            ctx.log.warn("a reply was not delivered", message=status.get("id"),
                         errors=status.get("errors"))
        return  # sent / delivered / read: nothing to answer
    message = payload.get("message")
    if message is None:
        return  # another webhook field (account or template updates)
    kind, sender, message_id = message.get("type"), message.get("from"), message.get("id")
    if not sender or not message_id or kind in IGNORED_TYPES:
        return
    sent_at = str(message.get("timestamp", ""))
    if sent_at.isdigit() and time.time() - int(sent_at) > SERVICE_WINDOW:
        ctx.log.warn("too old to answer", message=message_id)
        return
    phone_number_id = (payload.get("metadata") or {}).get("phone_number_id")
    if not phone_number_id:
        ctx.log.warn("no metadata.phone_number_id to answer from", message=message_id)
        return
    if kind == "text":
        text = (message.get("text") or {}).get("body", "")[:MAX_BODY]
        n = count_message(ctx, sender, message_id)
        contact = next((c for c in payload.get("contacts") or [] if c.get("wa_id") == sender), {})
        name = (contact.get("profile") or {}).get("name") or "there"
        answer = f"Hi {name}, you said: {text}\n(message {n} from you)"
    else:
        answer = f"Sorry, I only read text messages (got {kind})."
    ctx.log.info("replying", message=message_id, kind=kind)
    ctx.action("whatsapp-api", "POST", f"/{GRAPH_VERSION}/{phone_number_id}/messages", json={
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": sender,
        "context": {"message_id": message_id},  # shown as a reply quoting the message
        "type": "text",
        "text": {"preview_url": False, "body": answer},
    })


if __name__ == "__main__":
    bot.run()
