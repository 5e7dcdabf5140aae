"""FastAPI + rq: the Slack Events ingress a Python user would deploy instead of
firebreak (bench/peers_bench.sh). Written from Slack's "Verifying requests from Slack"
and the FastAPI and rq docs: verify the v0 signature over the raw body, reject
timestamps more than 5 minutes off, answer url_verification, dedupe on event_id with
SET NX EX, enqueue an rq job, ACK 200. Run with one uvicorn worker process:

    REDIS_URL=redis://127.0.0.1:6379/0 SLACK_SIGNING_SECRET=... \
        uvicorn fastapi_rq_app:app --port 8000

rq talks to Redis synchronously (redis-py); its calls here are short loopback round
trips made from the event loop, as rq's own examples do from web handlers.
"""
import hashlib
import hmac
import json
import os
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis import Redis
from rq import Queue

SECRET = os.environ["SLACK_SIGNING_SECRET"].encode()
DEDUPE_TTL_SECONDS = 24 * 3600
redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
queue = Queue(os.environ.get("QUEUE", "default"), connection=redis)
app = FastAPI()


def valid_signature(timestamp: str, signature: str, body: bytes) -> bool:
    if not timestamp or not signature:
        return False
    try:
        if abs(time.time() - int(timestamp)) > 60 * 5:
            return False
    except ValueError:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(SECRET, base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


@app.get("/healthz")
async def healthz():
    return {"ok": True}


@app.post("/hooks/slack")
async def slack_events(request: Request):
    body = await request.body()
    if not valid_signature(request.headers.get("x-slack-request-timestamp", ""),
                           request.headers.get("x-slack-signature", ""), body):
        return JSONResponse({"ok": False, "error": "invalid signature"}, status_code=401)
    try:
        event = json.loads(body)
    except ValueError:
        return JSONResponse({"ok": False, "error": "malformed JSON"}, status_code=400)
    if event.get("type") == "url_verification":
        return {"challenge": event.get("challenge")}
    key = "dedupe:slack:" + (event.get("event_id") or hashlib.sha256(body).hexdigest())
    if not redis.set(key, 1, nx=True, ex=DEDUPE_TTL_SECONDS):
        return {"ok": True, "duplicate": True}
    job = queue.enqueue("noop_job.handle", event)
    return {"ok": True, "job": job.id}
