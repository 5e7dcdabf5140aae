#!/usr/bin/env python3
"""Pre-signs N distinct Slack events for wrk (wrk's Lua has no HMAC).

Output: one request per line, "timestamp<TAB>signature<TAB>body".
Usage: gen_requests.py SECRET COUNT OUT [FIRST] -- event ids FIRST..FIRST+COUNT-1, so a
long run can sign its events in chunks, each inside Slack's 5-minute window.
"""
import hashlib
import hmac
import sys
import time

secret, count, out_path = sys.argv[1].encode(), int(sys.argv[2]), sys.argv[3]
first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
ts = str(int(time.time()))
with open(out_path, "w") as out:
    for i in range(first, first + count):
        body = ('{"token":"bench","team_id":"T1","api_app_id":"A1","type":"event_callback",'
                '"event_id":"EvBench%09d","event_time":%s,"event":{"type":"message",'
                '"channel":"C1","user":"U1","text":"hello %d","ts":"%s.000100"}}' % (i, ts, i, ts))
        sig = hmac.new(secret, ("v0:%s:%s" % (ts, body)).encode(), hashlib.sha256).hexdigest()
        out.write("%s\tv0=%s\t%s\n" % (ts, sig, body))
