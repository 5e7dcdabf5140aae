#!/usr/bin/env python3
"""Pre-signs N distinct webhook events for wrk (wrk's Lua has no HMAC).

Usage: gen_requests.py SECRET COUNT OUT [FIRST] [--mode MODE]
  event ids FIRST..FIRST+COUNT-1, so a long run can sign its events in chunks, each
  inside the provider's 5-minute window. SECRET is written as the source's config has
  it (standard-webhooks: "whsec_<base64>").
  MODE slack (default): Slack Events API; one request per line,
    "timestamp<TAB>signature<TAB>body".
  MODE stripe | standard-webhooks: that preset's deliveries, signed independently of
    firebreak (the providers' documented schemes); one request per line,
    "Name: value<TAB>Name: value...<TAB>body". bench/signed.lua sends either.
The bodies of every mode are about the same size (~240 bytes), so a run per mode
compares the signature schemes, not body sizes.
"""
import argparse
import base64
import hashlib
import hmac
import time

parser = argparse.ArgumentParser()
parser.add_argument("secret")
parser.add_argument("count", type=int)
parser.add_argument("out")
parser.add_argument("first", type=int, nargs="?", default=0)
parser.add_argument("--mode", default="slack", choices=["slack", "stripe", "standard-webhooks"])
args = parser.parse_args()

secret = args.secret.encode()
ts = str(int(time.time()))


def slack(i):
    body = ('{"token":"bench","team_id":"T1","api_app_id":"A1","type":"event_callback",'
            '"event_id":"EvBench%09d","event_time":%s,"event":{"type":"message",'
            '"channel":"C1","user":"U1","text":"hello %d","ts":"%s.000100"}}' % (i, ts, i, ts))
    sig = hmac.new(secret, ("v0:%s:%s" % (ts, body)).encode(), hashlib.sha256).hexdigest()
    return "%s\tv0=%s\t%s" % (ts, sig, body)


def stripe(i):
    # https://docs.stripe.com/webhooks#verify-manually: the key is the whole whsec_ string.
    body = ('{"id":"evt_bench%09d","object":"event","api_version":"2024-06-20","created":%s,'
            '"type":"payment_intent.succeeded","livemode":false,"data":{"object":{'
            '"id":"pi_bench%09d","object":"payment_intent","amount":%d,"currency":"usd"}}}'
            % (i, ts, i, 1000 + i % 9000))
    sig = hmac.new(secret, ("%s.%s" % (ts, body)).encode(), hashlib.sha256).hexdigest()
    return "Content-Type: application/json\tStripe-Signature: t=%s,v1=%s\t%s" % (ts, sig, body)


def standard_webhooks(i):
    # https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
    key = base64.b64decode(args.secret[len("whsec_"):] if args.secret.startswith("whsec_")
                           else args.secret)
    msg_id = "msg_bench%09d" % i
    body = ('{"type":"invoice.paid","timestamp":"2026-01-01T00:00:00Z","data":{'
            '"id":"inv_bench%09d","customer":"cus_bench","amount_due":%d,"currency":"usd",'
            '"status":"paid","description":"Bench workspace, January","text":"hello %d"}}' % (i, 1000 + i % 9000, i))
    sig = base64.b64encode(
        hmac.new(key, ("%s.%s.%s" % (msg_id, ts, body)).encode(), hashlib.sha256).digest())
    return ("Content-Type: application/json\twebhook-id: %s\twebhook-timestamp: %s\t"
            "webhook-signature: v1,%s\t%s" % (msg_id, ts, sig.decode(), body))


line = {"slack": slack, "stripe": stripe, "standard-webhooks": standard_webhooks}[args.mode]
with open(args.out, "w") as out:
    for i in range(args.first, args.first + args.count):
        out.write(line(i) + "\n")
