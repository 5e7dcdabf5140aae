#!/usr/bin/env python3
"""Pre-signs N distinct Slack events for wrk (wrk's Lua has no HMAC).

Output: one request per line, "timestamp<TAB>signature<TAB>body".
"""
import hashlib
import hmac
import sys
import time

secret, count, out_path = sys.argv[1].encode(), int(sys.argv[2]), sys.argv[3]
ts = str(int(time.time()))
with open(out_path, "w") as out:
    for i in range(count):
        body = ('{"token":"bench","team_id":"T1","api_app_id":"A1","type":"event_callback",'
                '"event_id":"EvBench%09d","event_time":%s,"event":{"type":"message",'
                '"channel":"C1","user":"U1","text":"hello %d","ts":"%s.000100"}}' % (i, ts, i, ts))
        sig = hmac.new(secret, ("v0:%s:%s" % (ts, body)).encode(), hashlib.sha256).hexdigest()
        out.write("%s\tv0=%s\t%s\n" % (ts, sig, body))
