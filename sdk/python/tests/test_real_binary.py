"""The SDK against the real firebreak binary (FIREBREAK_BIN; ctest sets it).

A bot written with the SDK handles signed Slack events: it looks the user up through the
sidecar (the slack-api integration, pointed at a simulated Slack on loopback), counts the
conversation in a session, and answers with a chat.postMessage action. The simulated
Slack must see each reply exactly once, with the integration's token and an
Idempotency-Key; a redelivered event (Slack's retry) changes nothing; every envelope the
worker wrote validates against schemas/envelope.schema.json.
"""
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from .support import ENVELOPE, REPO, Server

SDK_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"

BOT = r'''
import json, os, sys
from firebreak import Bot

bot = Bot()

@bot.on("slack.event")
def reply(ctx):
    with open(os.environ["ENVELOPES"], "a") as f:
        f.write(json.dumps(ctx.envelope.raw) + "\n")
    event = ctx.payload["event"]
    user = ctx.integration("slack-api").get("/api/users.info", params={"user": event["user"]})
    name = user.raise_for_status().json()["user"]["name"]
    convo = ctx.session(f"slack:{ctx.payload['team_id']}:{event['user']}").update(
        lambda c: {"messages": c["messages"] + 1}, ttl="30m", default={"messages": 0})
    ctx.log.info("replying", channel=event["channel"], messages=convo["messages"])
    ctx.action("slack-api", "POST", "/api/chat.postMessage", json={
        "channel": event["channel"], "thread_ts": event["ts"],
        "text": f"hi {name}, message {convo['messages']}"})

bot.run()
'''


def free_port():
    # Below the kernel's ephemeral range (32768+): firebreak's own sidecar binds
    # 127.0.0.1:0, and the kernel hands a port just released by bind(0) to the next one.
    for _ in range(200):
        port = random.randint(10000, 32767)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def slack_post(port, body):
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/hooks/slack", data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status
    except urllib.error.HTTPError as err:
        return err.code


def wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@unittest.skipUnless(os.environ.get("FIREBREAK_BIN"), "FIREBREAK_BIN is not set")
class RealBinaryTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fb-sdk-py-")
        self.slack = Server(self.simulated_slack)
        self.posts = []
        self.process = None

    def tearDown(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.slack.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def simulated_slack(self, method, path, headers, body):
        if headers.get("authorization") != "Bearer xoxb-test":
            return 401, {}, {"ok": False, "error": "not_authed"}
        if method == "GET" and path.startswith("/api/users.info?user=U42"):
            return 200, {}, {"ok": True, "user": {"id": "U42", "name": "ada"}}
        if method == "POST" and path == "/api/chat.postMessage":
            self.posts.append((headers.get("idempotency-key"), json.loads(body)))
            return 200, {}, {"ok": True, "ts": "2.0"}
        return 404, {}, {"ok": False, "error": "unknown_method"}

    def start(self):
        port = free_port()
        bot = os.path.join(self.dir, "bot.py")
        with open(bot, "w") as f:
            f.write(BOT)
        with open(os.path.join(self.dir, "secret"), "w") as f:
            f.write(SECRET)
        config = os.path.join(self.dir, "firebreak.toml")
        with open(os.path.join(REPO, "sdk", "testdata", "firebreak.toml.in")) as f:
            template = f.read()
        with open(config, "w") as f:
            f.write(template.replace("@PORT@", str(port)).replace("@DIR@", self.dir)
                    .replace("@HANDLER@", json.dumps(["/usr/bin/python3", bot]))
                    .replace("@SLACK_URL@", self.slack.url))
        env = dict(os.environ, SLACK_BOT_TOKEN="xoxb-test", PYTHONPATH=SDK_DIR,
                   ENVELOPES=os.path.join(self.dir, "envelopes.ndjson"))
        self.log = open(os.path.join(self.dir, "firebreak.log"), "w")
        self.process = subprocess.Popen([os.environ["FIREBREAK_BIN"], "run", "-c", config],
                                        stdout=self.log, stderr=subprocess.STDOUT, env=env)

        def up():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as res:
                    return res.status == 200
            except OSError:
                return False
        self.assertTrue(wait_for(up, 20), self.firebreak_log())
        return port

    def firebreak_log(self):
        with open(os.path.join(self.dir, "firebreak.log")) as f:
            return f.read()[-4000:]

    def test_a_bot_written_with_the_sdk_replies_once_per_event_through_the_sidecar(self):
        port = self.start()

        def event(event_id, text):
            return json.dumps({"type": "event_callback", "team_id": "T1", "event_id": event_id,
                               "event": {"type": "message", "user": "U42", "channel": "C7",
                                         "ts": f"1700000000.{event_id[-1]}", "text": text}})
        first = event("Ev0001", "hello")
        self.assertEqual(slack_post(port, first), 200)
        self.assertTrue(wait_for(lambda: len(self.posts) >= 1, 20), self.firebreak_log())
        self.assertEqual(slack_post(port, first), 200)  # Slack's retry of the same event
        self.assertEqual(slack_post(port, event("Ev0002", "again")), 200)
        self.assertTrue(wait_for(lambda: len(self.posts) >= 2, 20), self.firebreak_log())
        time.sleep(1.0)  # room for a duplicate to show up, if there were one

        self.assertEqual(len(self.posts), 2, self.posts)
        texts = sorted(p[1]["text"] for p in self.posts)
        self.assertEqual(texts, ["hi ada, message 1", "hi ada, message 2"])
        self.assertTrue(all(p[1]["channel"] == "C7" and p[1]["thread_ts"] for p in self.posts))
        keys = [p[0] for p in self.posts]
        self.assertTrue(all(keys) and len(set(keys)) == 2, keys)

        with open(os.path.join(self.dir, "envelopes.ndjson")) as f:
            envelopes = [json.loads(line) for line in f]
        self.assertEqual(len(envelopes), 2)
        for env in envelopes:
            ENVELOPE.validate(env)
            self.assertEqual(env["type"], "slack.event")
        # The SDK's log lines reach firebreak's log under their job, with the job's trace.
        replies = []
        for line in self.firebreak_log().splitlines():
            entry = json.loads(line) if line.startswith("{") else {}
            if entry.get("msg") == "handler stderr":
                sdk = json.loads(entry["line"])
                self.assertEqual((sdk["job_id"], sdk["trace_id"]), (entry["job_id"], entry["trace_id"]))
                replies.append(sdk["messages"])
        self.assertEqual(sorted(replies), [1, 2])


if __name__ == "__main__":
    unittest.main()
