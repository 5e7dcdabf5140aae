"""The SDK against the protocol: envelopes in, answers out (validated against the JSON
Schemas in schemas/), the sidecar's answers mapped to exceptions, command and url mode."""
import io
import json
import threading
import time
import unittest
import urllib.error
import urllib.request

import firebreak
from firebreak import errors

from .support import ANSWER, ENVELOPE, Server, envelope


class FakeSidecar:
    """A simulated sidecar: responses by (method, path prefix)."""

    def __init__(self):
        self.routes = []
        self.server = Server(self._respond)
        self.sidecar = firebreak.Sidecar(self.server.url)

    def route(self, method, prefix, status, headers=None, body=b""):
        self.routes.insert(0, (method, prefix, status, headers or {}, body))

    handler = None  # (method, path, headers, body) -> (status, headers, body): all requests

    def _respond(self, method, path, headers, body):
        if self.handler is not None:
            return self.handler(method, path, headers, body)
        for m, prefix, status, h, out in self.routes:
            if m == method and path.startswith(prefix):
                return status, h, out() if callable(out) else out
        return 404, {"X-Firebreak-Origin": "firebreak"}, {"error": "no such key"}

    def close(self):
        self.server.close()


def own(status, error, **headers):
    """Headers of an answer the sidecar made itself."""
    return dict({"X-Firebreak-Origin": "firebreak"}, **headers), {"ok": False, "error": error}


class ProtocolTest(unittest.TestCase):
    def setUp(self):
        self.fake = FakeSidecar()
        self.bot = firebreak.Bot(sidecar=self.fake.sidecar)

    def tearDown(self):
        self.fake.close()

    def answer(self, env):
        ENVELOPE.validate(env)
        out = self.bot.handle(env)
        ANSWER.validate(out)
        return out

    def test_success_with_actions_and_enqueued_jobs(self):
        @self.bot.on("slack.event")
        def handle(ctx):
            self.assertEqual(ctx.payload["event"]["user"], "U1")
            self.assertEqual(ctx.envelope.trace_id, "0af7651916cd43dd8448eb211c80319c")
            ctx.action("slack-api", "post", "/api/chat.postMessage", json={"channel": "C1", "text": "hi"},
                       ordering_key="C1")
            ctx.enqueue("slack.reminder", {"user": "U1"}, delay="10m", key="remind:U1")

        out = self.answer(envelope())
        self.assertEqual(out, {"id": "01JTEST", "ok": True,
                               "actions": [{"integration": "slack-api", "method": "POST",
                                            "path": "/api/chat.postMessage",
                                            "json": {"channel": "C1", "text": "hi"},
                                            "ordering_key": "C1"}],
                               "enqueue": [{"type": "slack.reminder", "payload": {"user": "U1"},
                                            "delay": "10m", "key": "remind:U1"}]})

    def test_retry_reject_and_bugs(self):
        self.bot.on("a", lambda ctx: (_ for _ in ()).throw(firebreak.Retry("busy", after=2.5)))
        self.bot.on("b", lambda ctx: (_ for _ in ()).throw(firebreak.Reject("bad input")))
        self.bot.on("c", lambda ctx: 1 / 0)
        self.assertEqual(self.answer(envelope(type="a")),
                         {"id": "01JTEST", "ok": False, "error": "busy", "retry": True, "retry_after": 2.5})
        self.assertEqual(self.answer(envelope(type="b")),
                         {"id": "01JTEST", "ok": False, "error": "bad input", "retry": False})
        out = self.answer(envelope(type="c"))
        self.assertEqual((out["ok"], out["retry"]), (False, True))
        self.assertIn("ZeroDivisionError", out["error"])
        out = self.answer(envelope(type="nobody"))
        self.assertEqual((out["ok"], out["retry"]), (False, False))
        self.assertIn("no handler", out["error"])

    def test_catch_all_handler(self):
        seen = []
        self.bot.on("*", lambda ctx: seen.append(ctx.type))
        self.assertTrue(self.answer(envelope(type="github.issues"))["ok"])
        self.assertEqual(seen, ["github.issues"])

    def test_sidecar_refusals_raise_with_firebreaks_reason_and_retry_after(self):
        cases = [
            (503, "circuit breaker open: 5 of 10 failed", {"X-Firebreak-Breaker": "open", "Retry-After": "30"},
             errors.BreakerOpen, 30.0),
            (429, "rate limit: no permit", {"X-Firebreak-Rejected": "rate_limit", "Retry-After": "2"},
             errors.RateLimited, 2.0),
            (503, "max_concurrency 10 reached", {"X-Firebreak-Rejected": "concurrency"},
             errors.ConcurrencyFull, None),
            (504, "timed out after 5s", {}, errors.UpstreamTimeout, None),
            (502, "connection refused", {}, errors.UpstreamUnreachable, None),
        ]
        for status, reason, extra, cls, after in cases:
            with self.subTest(cls=cls.__name__):
                headers, body = own(status, reason, **extra)
                self.fake.route("POST", "/v1/integrations/slack-api/", status, headers, body)
                caught = []

                def handle(ctx):
                    try:
                        ctx.integration("slack-api").post("/api/chat.postMessage", json={"text": "x"})
                    except firebreak.SidecarError as exc:
                        caught.append(exc)
                        raise

                self.bot.on("slack.event", handle)
                out = self.answer(envelope())
                self.assertIsInstance(caught[0], cls)
                self.assertEqual(caught[0].reason, reason)
                self.assertEqual(caught[0].retry_after, after)
                self.assertEqual((out["ok"], out["retry"]), (False, True))
                self.assertIn(reason, out["error"])
                if after is None:
                    self.assertNotIn("retry_after", out)
                else:
                    self.assertEqual(out["retry_after"], after)

    def test_upstream_answers_are_returned_not_raised_and_carry_trace_and_job(self):
        self.fake.route("GET", "/v1/integrations/crm/contacts", 404, {}, {"error": "no contact"})
        got = []

        def handle(ctx):
            res = ctx.integration("crm").get("/contacts/42", params={"fields": "name"})
            got.append(res)
            res.raise_for_status()

        self.bot.on("slack.event", handle)
        out = self.answer(envelope())
        self.assertEqual(got[0].status, 404)
        self.assertEqual(got[0].json(), {"error": "no contact"})
        self.assertIn("UpstreamError", out["error"])
        method, path, headers, _ = self.fake.server.requests[-1]
        self.assertEqual((method, path), ("GET", "/v1/integrations/crm/contacts/42?fields=name"))
        self.assertEqual(headers["traceparent"], envelope()["traceparent"])
        self.assertEqual(headers["x-firebreak-job-id"], "01JTEST")

    def test_session_update_is_compare_and_set_and_retries_a_conflict(self):
        store = {"version": 0, "body": b""}
        raced = []

        def session(method, path, headers, body):
            if method == "GET":
                if store["version"] == 0:
                    return (404,) + own(404, "no such key")
                return 200, {"Content-Type": "application/json", "ETag": f'"{store["version"]}"'}, store["body"]
            if not raced:  # another job writes between this one's read and write, once
                raced.append(True)
                store["version"], store["body"] = 1, json.dumps({"count": 10}).encode()
            fresh = headers.get("if-match") == f'"{store["version"]}"' or \
                (headers.get("if-none-match") == "*" and store["version"] == 0)
            if not fresh:
                return (412,) + own(412, "the value changed")
            store["version"] += 1
            store["body"] = body
            return 200, {}, {"ok": True, "version": store["version"]}

        self.fake.handler = session
        written = []

        def handle(ctx):
            written.append(ctx.session("slack:T1:U1").update(
                lambda v: {"count": v["count"] + 1}, ttl="30m", default={"count": 0}))

        self.bot.on("slack.event", handle)
        self.assertTrue(self.answer(envelope())["ok"])
        self.assertEqual(written, [{"count": 11}])
        self.assertEqual(json.loads(store["body"]), {"count": 11})
        puts = [r for r in self.fake.server.requests if r[0] == "PUT"]
        self.assertEqual(len(puts), 2)
        self.assertEqual(puts[0][1], "/v1/sessions/slack%3AT1%3AU1?ttl=30m")
        self.assertEqual(puts[0][2].get("if-none-match"), "*")
        self.assertEqual(puts[1][2].get("if-match"), '"1"')

    def test_state_has_no_ttl(self):
        self.bot.on("slack.event", lambda ctx: ctx.state("k").put({"a": 1}, ttl="1h"))
        out = self.answer(envelope())
        self.assertIn("state does not expire", out["error"])

    def test_deadline_near_stops_sidecar_calls_and_is_retried(self):
        past = "2020-01-01T00:00:00.000Z"
        flags = []

        def handle(ctx):
            flags.append(ctx.cancelled)
            ctx.integration("slack-api").post("/api/chat.postMessage", json={})

        self.bot.on("slack.event", handle)
        out = self.answer(envelope(deadline=past))
        self.assertEqual(flags, [True])
        self.assertEqual((out["ok"], out["retry"]), (False, True))
        self.assertIn("DeadlineNear", out["error"])
        self.assertEqual(self.fake.server.requests, [], "no call may start past the deadline")

    def test_a_sidecar_call_never_outlives_the_attempt(self):
        self.fake.route("POST", "/v1/integrations/slow/", 200, {}, lambda: time.sleep(3) or b"{}")
        soon = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1.2)) + \
            ".%03dZ" % int((time.time() % 1) * 1000)
        self.bot.on("slack.event", lambda ctx: ctx.integration("slow").post("/x", json={}))
        started = time.monotonic()
        out = self.answer(envelope(deadline=soon))
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertIn("DeadlineNear", out["error"])

    def test_batch_answers_one_result_per_job(self):
        def handle(ctx):
            if ctx.payload == "bad":
                raise firebreak.Reject("bad row")
            ctx.action("crm", "POST", "/rows", json={"row": ctx.payload})

        self.bot.on("rows", handle)
        jobs = [envelope(id="J1", type="rows", payload="good"), envelope(id="J2", type="rows", payload="bad")]
        out = self.answer({"id": "J1", "type": "rows", "batch": jobs})
        self.assertEqual(out["id"], "J1")
        self.assertTrue(out["ok"])
        self.assertEqual([(r["id"], r["ok"]) for r in out["results"]], [("J1", True), ("J2", False)])
        self.assertEqual(out["results"][0]["actions"][0]["json"], {"row": "good"})
        self.assertEqual(out["results"][1]["retry"], False)

    def test_logs_carry_job_and_trace_ids(self):
        stream = io.StringIO()

        def handle(ctx):
            ctx.log._stream = stream
            ctx.log.info("replying", channel="C1")

        self.bot.on("slack.event", handle)
        self.answer(envelope())
        line = json.loads(stream.getvalue())
        self.assertEqual(line, {"level": "info", "msg": "replying", "job_id": "01JTEST",
                                "job_type": "slack.event",
                                "trace_id": "0af7651916cd43dd8448eb211c80319c", "channel": "C1"})


class ModesTest(unittest.TestCase):
    def test_command_mode_answers_every_line_sequentially_and_concurrently(self):
        for concurrency in (1, 4):
            with self.subTest(concurrency=concurrency):
                bot = firebreak.Bot(sidecar=firebreak.Sidecar("http://127.0.0.1:9"))
                bot.on("slack.event", lambda ctx: time.sleep(0.05) if concurrency > 1 else None)
                lines = b"".join(json.dumps(envelope(id=f"J{i}")).encode() + b"\n" for i in range(20))
                out = io.BytesIO()
                started = time.monotonic()
                bot.run(concurrency=concurrency, stdin=io.BytesIO(lines + b"\nnot json\n"), stdout=out)
                took = time.monotonic() - started
                answers = [json.loads(l) for l in out.getvalue().splitlines()]
                for a in answers:
                    ANSWER.validate(a)
                self.assertEqual(sorted(a["id"] for a in answers), sorted(f"J{i}" for i in range(20)))
                self.assertTrue(all(a["ok"] for a in answers))
                if concurrency > 1:  # 20 x 50 ms: 1 s one at a time, 0.25 s on 4 threads
                    self.assertLess(took, 0.7)

    def test_url_mode_maps_outcomes_to_status_codes(self):
        bot = firebreak.Bot(sidecar=firebreak.Sidecar("http://127.0.0.1:9"))
        bot.on("ok", lambda ctx: ctx.action("slack-api", "POST", "/api/chat.postMessage", json={}))
        bot.on("retry", lambda ctx: (_ for _ in ()).throw(firebreak.Retry("later", after=3)))
        bot.on("reject", lambda ctx: (_ for _ in ()).throw(firebreak.Reject("never")))
        ports = []
        ready = threading.Event()
        thread = threading.Thread(target=bot.serve, args=(0,),
                                  kwargs={"ready": lambda p: (ports.append(p), ready.set())}, daemon=True)
        thread.start()
        self.assertTrue(ready.wait(5))

        def post(body):
            req = urllib.request.Request(f"http://127.0.0.1:{ports[0]}/", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=5) as res:
                    return res.status, dict(res.headers), json.loads(res.read())
            except urllib.error.HTTPError as err:
                return err.code, dict(err.headers), json.loads(err.read())

        status, _, body = post(json.dumps(envelope(type="ok")).encode())
        self.assertEqual(status, 200)
        self.assertEqual(body["actions"][0]["integration"], "slack-api")
        status, headers, body = post(json.dumps(envelope(type="retry")).encode())
        self.assertEqual((status, headers.get("Retry-After"), body["error"]), (503, "3", "later"))
        status, _, body = post(json.dumps(envelope(type="reject")).encode())
        self.assertEqual((status, body["error"]), (422, "never"))
        status, _, _ = post(b"{not json")
        self.assertEqual(status, 400)


class SchemaTest(unittest.TestCase):
    def test_the_schemas_refuse_what_the_worker_refuses(self):
        bad_answers = [
            {"ok": True},                                      # no id
            {"id": "J", "ok": "yes"},                          # ok not a boolean
            {"id": "J", "ok": False, "retry_after": -1},       # negative retry_after
            {"id": "J", "ok": True, "actions": [{"integration": "x", "path": "/", "bogus": 1}]},
            {"id": "J", "ok": True, "actions": [{"integration": "x", "path": "/", "json": {}, "body": ""}]},
            {"id": "J", "ok": True, "enqueue": [{"payload": {}}]},  # no type
        ]
        for answer in bad_answers:
            with self.subTest(answer=answer):
                self.assertFalse(ANSWER.is_valid(answer))
        self.assertFalse(ENVELOPE.is_valid(envelope(deadline="tomorrow")))
        self.assertTrue(ENVELOPE.is_valid({"id": "J1", "type": "rows", "batch": [envelope()]}))


if __name__ == "__main__":
    unittest.main()
