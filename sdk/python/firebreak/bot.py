"""Handler registration and the two ways firebreak runs a handler:

  command mode (`bot.run()`): firebreak starts the process and writes one envelope per
    line (NDJSON) to stdin; the process answers one line per job, in any order. Many jobs
    go through one process; with `concurrency > 1` they run on that many threads.
  url mode (`bot.serve(port)`): firebreak POSTs each envelope; the status code is the
    outcome (2xx done, 503 + Retry-After retry, 422 dead-letter), the body carries the
    actions and enqueued jobs.
"""
import json
import sys
import threading
from typing import Any, Callable, Dict, Optional

from . import errors
from .context import Context
from .envelope import Envelope
from .sidecar import Sidecar

Handler = Callable[[Context], Any]


class Bot:
    def __init__(self, sidecar: Optional[Sidecar] = None):
        self._handlers: Dict[str, Handler] = {}
        self._sidecar = sidecar

    @property
    def sidecar(self) -> Sidecar:
        if self._sidecar is None:
            self._sidecar = Sidecar()
        return self._sidecar

    def on(self, job_type: str, fn: Optional[Handler] = None):
        """Registers fn for a job type ("*": every type without its own handler).
        Usable as `bot.on("slack.event", fn)` or as a decorator `@bot.on("slack.event")`."""
        if fn is not None:
            self._handlers[job_type] = fn
            return fn

        def register(f: Handler) -> Handler:
            self._handlers[job_type] = f
            return f
        return register

    # --- one envelope -> one answer ------------------------------------------------------
    def handle(self, envelope_json: Dict[str, Any]) -> Dict[str, Any]:
        """The answer object for one envelope (a batch's: one results entry per job)."""
        if isinstance(envelope_json, dict) and isinstance(envelope_json.get("batch"), list):
            results = [dict(self._outcome(job), id=job.get("id", "")) for job in envelope_json["batch"]]
            return {"id": envelope_json.get("id", ""), "ok": True, "results": results}
        return dict(self._outcome(envelope_json), id=envelope_json.get("id", ""))

    def _outcome(self, envelope_json: Dict[str, Any]) -> Dict[str, Any]:
        try:
            envelope = Envelope.from_json(envelope_json)
        except (ValueError, TypeError) as exc:
            return {"ok": False, "error": f"bad envelope: {exc}", "retry": False}
        fn = self._handlers.get(envelope.type) or self._handlers.get("*")
        if fn is None:
            return {"ok": False, "error": f"no handler for job type {envelope.type!r}", "retry": False}
        ctx = Context(envelope, self.sidecar)
        try:
            fn(ctx)
        except errors.Retry as exc:
            return _failed(exc.error, True, exc.after)
        except errors.Reject as exc:
            return _failed(exc.error, False, None)
        except errors.SidecarError as exc:
            return _failed(str(exc), True, exc.retry_after)
        except errors.DeadlineNear as exc:
            return _failed(f"DeadlineNear: {exc}", True, None)
        except Exception as exc:  # a bug or an upstream error: retried with backoff
            ctx.log.error("handler raised", error=repr(exc))
            return _failed(f"{type(exc).__name__}: {exc}", True, None)
        answer: Dict[str, Any] = {"ok": True}
        if ctx.actions:
            answer["actions"] = ctx.actions
        if ctx.enqueued:
            answer["enqueue"] = ctx.enqueued
        return answer

    # --- command mode ---------------------------------------------------------------------
    def run(self, concurrency: int = 1, stdin=None, stdout=None) -> None:
        """Reads envelopes from stdin until it closes; answers on stdout."""
        stdin = stdin or sys.stdin.buffer
        stdout = stdout or sys.stdout.buffer
        lock = threading.Lock()

        def answer(line: bytes) -> None:
            try:
                envelope = json.loads(line)
            except ValueError as exc:
                # No id to answer to: firebreak only writes JSON, so say so and carry on.
                sys.stderr.write(f"firebreak sdk: not an envelope: {exc}\n")
                return
            out = (json.dumps(self.handle(envelope), separators=(",", ":")) + "\n").encode()
            with lock:
                stdout.write(out)
                stdout.flush()

        if concurrency <= 1:
            for line in stdin:
                if line.strip():
                    answer(line)
            return
        # Imported here: a command handler process starts with every job's pool slot,
        # and these modules cost it 20-40 ms of start-up it mostly does not need.
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for line in stdin:
                if line.strip():
                    pool.submit(answer, line)

    # --- url mode -------------------------------------------------------------------------
    def serve(self, port: int, host: str = "127.0.0.1", ready: Optional[Callable[[int], None]] = None):
        """An HTTP server for a `url` handler; blocks. Returns the server if `ready` is
        given (called with the bound port, e.g. when port is 0) after it stops."""
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        bot = self

        class Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    envelope = json.loads(self.rfile.read(length))
                except ValueError:
                    return self._send(400, {"error": "the body is not JSON"}, None)
                result = bot.handle(envelope)
                if "results" in result or result["ok"]:
                    body = {k: v for k, v in result.items() if k in ("actions", "enqueue", "results")}
                    return self._send(200, body, None)
                if result.get("retry", True):
                    return self._send(503, {"error": result["error"]}, result.get("retry_after"))
                return self._send(422, {"error": result["error"]}, None)

            def _send(self, status: int, body: Dict[str, Any], retry_after: Optional[float]):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if retry_after is not None:
                    self.send_header("Retry-After", str(max(1, int(retry_after + 0.999))))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # no access log on stderr
                pass

        server = ThreadingHTTPServer((host, port), Request)
        server.daemon_threads = True
        if ready is not None:
            ready(server.server_address[1])
        try:
            server.serve_forever()
        finally:
            server.server_close()
        return server


def _failed(error: str, retry: bool, after: Optional[float]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"ok": False, "error": error or "handler failed", "retry": retry}
    if after is not None:
        out["retry_after"] = max(0.0, float(after))
    return out

