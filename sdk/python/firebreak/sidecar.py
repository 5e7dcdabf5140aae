"""A small HTTP client for the worker's sidecar ($FIREBREAK_SIDECAR), standard library only.

One keep-alive connection per thread. firebreak's own refusals become exceptions
(errors.py); an upstream's answer, whatever its status, is returned as a Response.
"""
import json as jsonlib
import os
import threading
import urllib.parse
from typing import Any, Dict, Optional, Tuple

from . import errors

DEFAULT_TIMEOUT = 30.0


class Response:
    """An upstream's answer relayed by the sidecar."""

    def __init__(self, status: int, headers: Dict[str, str], body: bytes):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return jsonlib.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def raise_for_status(self) -> "Response":
        if self.status >= 400:
            raise errors.UpstreamError(self.status, self.body)
        return self

    def __repr__(self) -> str:
        return f"Response(status={self.status}, {len(self.body)} bytes)"


def _retry_after(headers: Dict[str, str]) -> Optional[float]:
    try:
        return float(headers["retry-after"])
    except (KeyError, ValueError):
        return None


def own_error(status: int, headers: Dict[str, str], body: bytes) -> errors.SidecarError:
    """The exception for an answer firebreak made itself (X-Firebreak-Origin: firebreak)."""
    try:
        reason = jsonlib.loads(body).get("error") or ""
    except (ValueError, AttributeError):
        reason = body.decode("utf-8", "replace")
    after = _retry_after(headers)
    if headers.get("x-firebreak-breaker") == "open":
        cls = errors.BreakerOpen
    elif headers.get("x-firebreak-rejected") == "rate_limit" or status == 429:
        cls = errors.RateLimited
    elif headers.get("x-firebreak-rejected") == "concurrency":
        cls = errors.ConcurrencyFull
    elif status == 504:
        cls = errors.UpstreamTimeout
    elif status == 502:
        cls = errors.UpstreamUnreachable
    elif status == 412:
        cls = errors.Conflict
    elif status == 503:
        cls = errors.StoreUnavailable
    else:
        cls = errors.SidecarError
    return cls(status, reason, after)


class Sidecar:
    """Calls to one sidecar address, e.g. http://127.0.0.1:8081."""

    def __init__(self, url: Optional[str] = None):
        url = url or os.environ.get("FIREBREAK_SIDECAR", "http://127.0.0.1:8081")
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"FIREBREAK_SIDECAR must be http://host:port, not {url!r}")
        self.url = url
        self._host = parsed.hostname
        self._port = parsed.port or 80
        self._local = threading.local()

    def _connection(self, timeout: float):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # Imported on the first call: http.client pulls in ssl and email (~20 ms),
            # which a handler that never calls the sidecar need not pay at start-up.
            import http.client
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None,
                timeout: float = DEFAULT_TIMEOUT) -> Tuple[int, Dict[str, str], bytes]:
        """One call; retried once on a kept-alive connection the sidecar had closed."""
        while True:
            conn = self._connection(timeout)
            reused = conn.sock is not None
            try:
                conn.request(method, path, body=body, headers=headers or {})
                res = conn.getresponse()
                data = res.read()
                return res.status, {k.lower(): v for k, v in res.getheaders()}, data
            except Exception as exc:
                import http.client
                conn.close()
                self._local.conn = None
                # Sent again only when a kept-alive connection turned out closed (the
                # sidecar drops idle ones): the request never reached it.
                closed = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                if not (reused and isinstance(exc, closed)):
                    raise
