"""Shared by the SDK's tests: the protocol's JSON Schemas and a scriptable local HTTP
server (a simulated sidecar or upstream) on a free loopback port."""
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def schema(name):
    with open(os.path.join(REPO, "schemas", name + ".schema.json")) as f:
        return json.load(f)


ENVELOPE = jsonschema.Draft202012Validator(schema("envelope"))
ANSWER = jsonschema.Draft202012Validator(schema("answer"))


def envelope(**fields):
    """A valid job envelope; `fields` override."""
    env = {"id": "01JTEST", "type": "slack.event", "source": "slack", "dedupe_key": "slack:Ev1",
           "attempt": 1, "max_attempts": 5, "enqueued_at": "2026-11-27T20:00:00.000Z",
           "deadline": "2099-01-01T00:00:00.000Z",
           "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
           "headers": {}, "payload": {"event": {"type": "message", "user": "U1", "channel": "C1",
                                                "ts": "1.2", "text": "hi"}}}
    env.update(fields)
    return env


class Server:
    """Answers every request with respond(method, path, headers, body) ->
    (status, headers, body); records (method, path, headers, body)."""

    def __init__(self, respond):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((self.command, self.path, headers, body))
                status, out_headers, out = respond(self.command, self.path, headers, body)
                if isinstance(out, (dict, list)):
                    out = json.dumps(out).encode()
                    out_headers = dict(out_headers, **{"Content-Type": "application/json"})
                try:
                    self.send_response(status)
                    for k, v in out_headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a test of timeouts)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def handle(self):
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a client closed its kept-alive connection

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
