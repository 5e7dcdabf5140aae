"""firebreak's Python SDK: write a job handler in a few lines.

    from firebreak import Bot

    bot = Bot()

    @bot.on("slack.event")
    def reply(ctx):
        event = ctx.payload["event"]
        ctx.action("slack-api", "POST", "/api/chat.postMessage",
                   json={"channel": event["channel"], "thread_ts": event["ts"], "text": "hi"})

    bot.run()  # command mode; bot.serve(8090) for a url handler

The protocol it speaks is docs/handler-protocol.md (schemas/*.schema.json).
"""
from .bot import Bot
from .context import Context, Integration, Logger, Store
from .envelope import Envelope
from .errors import (BreakerOpen, ConcurrencyFull, Conflict, DeadlineNear, RateLimited, Reject,
                     Retry, SidecarError, StoreUnavailable, UpstreamError, UpstreamTimeout,
                     UpstreamUnreachable)
from .sidecar import Response, Sidecar

__all__ = [
    "Bot", "Context", "Envelope", "Integration", "Logger", "Response", "Sidecar", "Store",
    "BreakerOpen", "ConcurrencyFull", "Conflict", "DeadlineNear", "RateLimited", "Reject",
    "Retry", "SidecarError", "StoreUnavailable", "UpstreamError", "UpstreamTimeout",
    "UpstreamUnreachable",
]
__version__ = "0.1.0"
