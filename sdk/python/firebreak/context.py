"""What a handler gets for one job: the envelope, the sidecar's services, and the answer
it is building (actions, enqueued jobs)."""
import json as jsonlib
import socket
import sys
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import errors
from .envelope import Envelope
from .sidecar import DEFAULT_TIMEOUT, Response, Sidecar, own_error

# Sidecar calls stop this long before the attempt's deadline, so the handler can still
# answer (a retry) instead of being killed mid-call.
DEADLINE_MARGIN = 0.25


class Logger:
    """JSON lines on stderr, each with the job's id and trace id. firebreak logs a
    command handler's stderr lines with the job id (README: Operations)."""

    _lock = threading.Lock()

    def __init__(self, envelope: Envelope, stream=None):
        self._fields = {"job_id": envelope.id, "job_type": envelope.type,
                        "trace_id": envelope.trace_id}
        self._stream = stream

    def log(self, level: str, msg: str, **fields: Any) -> None:
        line = {"level": level, "msg": msg, **self._fields, **fields}
        text = jsonlib.dumps(line, default=str) + "\n"
        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(text)
            stream.flush()

    def debug(self, msg: str, **fields: Any) -> None:
        self.log("debug", msg, **fields)

    def info(self, msg: str, **fields: Any) -> None:
        self.log("info", msg, **fields)

    def warn(self, msg: str, **fields: Any) -> None:
        self.log("warn", msg, **fields)

    def error(self, msg: str, **fields: Any) -> None:
        self.log("error", msg, **fields)


class Integration:
    """Calls to one configured integration through the sidecar (its timeout, retries,
    breaker, rate limit, concurrency cap and credential apply)."""

    def __init__(self, ctx: "Context", name: str):
        self._ctx = ctx
        self._prefix = "/v1/integrations/" + urllib.parse.quote(name, safe="") + "/"

    def request(self, method: str, path: str, json: Any = None, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None,
                params: Optional[Dict[str, str]] = None,
                timeout: Optional[float] = None) -> Response:
        """The upstream's answer (any status). firebreak's refusals raise: BreakerOpen,
        RateLimited, ConcurrencyFull, UpstreamTimeout, UpstreamUnreachable."""
        sent = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent.setdefault("Content-Type", "application/json")
        target = self._prefix + path.lstrip("/")
        if params:
            target += "?" + urllib.parse.urlencode(params)
        status, got, data = self._ctx._call(method.upper(), target, body, sent, timeout)
        if got.get("x-firebreak-origin") == "firebreak":
            raise own_error(status, got, data)
        return Response(status, got, data)

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Response:
        return self.request("POST", path, json=json, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> Response:
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> Response:
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path: str, **kw: Any) -> Response:
        return self.request("DELETE", path, **kw)


class Store:
    """One key of the session store (values with a ttl) or the state store (durable).
    Values are JSON; every write can be compare-and-set on the version (ETag)."""

    def __init__(self, ctx: "Context", kind: str, key: str):
        self._ctx = ctx
        self._kind = kind
        self._path = f"/v1/{kind}/" + urllib.parse.quote(key, safe="")
        self.key = key

    def get_versioned(self) -> Tuple[Any, Optional[int]]:
        """(value, version), or (None, None) when the key is absent or expired."""
        status, headers, body = self._ctx._call("GET", self._path, None, {}, None)
        if status == 404:
            return None, None
        if status != 200:
            raise own_error(status, headers, body)
        version = int(headers.get("etag", '"0"').strip('"') or 0)
        if headers.get("content-type", "").startswith("application/json"):
            return (jsonlib.loads(body) if body else None), version
        return body, version

    def get(self, default: Any = None) -> Any:
        value, version = self.get_versioned()
        return default if version is None else value

    def put(self, value: Any, ttl: Optional[str] = None, if_version: Optional[int] = None,
            if_absent: bool = False) -> int:
        """Stores `value` (JSON; bytes as they are); returns the new version. With
        `if_version` (or `if_absent`) it is a compare-and-set: Conflict when stale."""
        headers: Dict[str, str] = {}
        if isinstance(value, (bytes, bytearray)):
            body = bytes(value)
            headers["Content-Type"] = "application/octet-stream"
        else:
            body = jsonlib.dumps(value).encode()
            headers["Content-Type"] = "application/json"
        if if_version is not None:
            headers["If-Match"] = f'"{if_version}"'
        elif if_absent:
            headers["If-None-Match"] = "*"
        path = self._path
        if ttl is not None:
            if self._kind != "sessions":
                raise ValueError("state does not expire: use ctx.session() for a ttl")
            path += "?ttl=" + urllib.parse.quote(ttl)
        status, got, data = self._ctx._call("PUT", path, body, headers, None)
        if status not in (200, 201):
            raise own_error(status, got, data)
        return int(jsonlib.loads(data)["version"])

    def update(self, change: Callable[[Any], Any], ttl: Optional[str] = None,
               default: Any = None, attempts: int = 10) -> Any:
        """Read, change(value) -> new value, write if nobody wrote in between; again on a
        Conflict, up to `attempts` times. Returns the value written."""
        for _ in range(attempts):
            value, version = self.get_versioned()
            new = change(default if version is None else value)
            try:
                self.put(new, ttl=ttl, if_version=version, if_absent=version is None)
                return new
            except errors.Conflict:
                continue
        raise errors.Conflict(412, f"{self.key}: still changing after {attempts} tries")

    def delete(self) -> bool:
        """True when it existed."""
        status, headers, body = self._ctx._call("DELETE", self._path, None, {}, None)
        if status == 404:
            return False
        if status not in (200, 204):
            raise own_error(status, headers, body)
        return True


class Context:
    """One job's handler context."""

    def __init__(self, envelope: Envelope, sidecar: Sidecar, clock: Callable[[], float] = time.time):
        self.envelope = envelope
        self.log = Logger(envelope)
        self._sidecar = sidecar
        self._clock = clock
        self._deadline: Optional[float] = None  # parsed on first use (strptime is slow)
        self.actions: List[Dict[str, Any]] = []
        self.enqueued: List[Dict[str, Any]] = []

    # --- the job --------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def payload(self) -> Any:
        return self.envelope.payload

    @property
    def attempt(self) -> int:
        return self.envelope.attempt

    # --- the attempt's deadline -------------------------------------------------------
    def time_left(self) -> float:
        """Seconds until the attempt's timeout kills it (inf without a deadline)."""
        if self.envelope.deadline is None:
            return float("inf")
        if self._deadline is None:
            self._deadline = self.envelope.deadline_epoch
        return self._deadline - self._clock()

    @property
    def cancelled(self) -> bool:
        """True once the deadline is near: stop and let the job be retried."""
        return self.time_left() <= DEADLINE_MARGIN

    def check_deadline(self) -> None:
        """Raises DeadlineNear once the deadline is near (a long loop's checkpoint)."""
        if self.cancelled:
            raise errors.DeadlineNear(f"the attempt's deadline is {self.time_left():.2f}s away")

    # --- the sidecar --------------------------------------------------------------------
    def integration(self, name: str) -> Integration:
        return Integration(self, name)

    def session(self, key: str) -> Store:
        return Store(self, "sessions", key)

    def state(self, key: str) -> Store:
        return Store(self, "state", key)

    def _call(self, method: str, path: str, body: Optional[bytes], headers: Dict[str, str],
              timeout: Optional[float]):
        # Never outlive the attempt: the call's timeout ends at the deadline's margin.
        left = self.time_left() - DEADLINE_MARGIN
        if left <= 0:
            raise errors.DeadlineNear("no time left for a sidecar call before the deadline")
        limit = min(timeout or DEFAULT_TIMEOUT, left)
        sent = dict(headers)
        sent["traceparent"] = self.envelope.traceparent
        sent["X-Firebreak-Job-Id"] = self.envelope.id
        try:
            return self._sidecar.request(method, path, body, sent, limit)
        except (TimeoutError, socket.timeout) as exc:
            if self.cancelled:
                raise errors.DeadlineNear("a sidecar call ran into the deadline") from exc
            raise

    # --- the answer ---------------------------------------------------------------------
    def action(self, integration: str, method: str, path: str, json: Any = None,
               body: Optional[str] = None, headers: Optional[Dict[str, str]] = None,
               idempotency_key: Optional[str] = None, ordering_key: Optional[str] = None) -> None:
        """An outbound call firebreak makes once the job succeeds (stored with the
        success, sent once, retried on its own). Default key: <job id>:<index>.
        Actions of one integration with the same `ordering_key` (a chat id) are sent one
        at a time, in the order they were stored."""
        action: Dict[str, Any] = {"integration": integration, "method": method.upper(), "path": path}
        if json is not None:
            action["json"] = json
        if body is not None:
            action["body"] = body
        if headers:
            action["headers"] = headers
        if idempotency_key is not None:
            action["idempotency_key"] = idempotency_key
        if ordering_key is not None:
            action["ordering_key"] = ordering_key
        self.actions.append(action)

    def enqueue(self, type: str, payload: Any = None, delay: Any = None,
                key: Optional[str] = None) -> None:
        """A job stored with this job's success: now, or after `delay` ("10m" or ms)."""
        job: Dict[str, Any] = {"type": type}
        if payload is not None:
            job["payload"] = payload
        if delay is not None:
            job["delay"] = delay
        if key is not None:
            job["key"] = key
        self.enqueued.append(job)
