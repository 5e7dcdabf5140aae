"""What a handler raises, and what the sidecar's refusals raise.

A handler ends an attempt by returning (success) or raising:
  - Retry: fail this attempt; firebreak retries it (after `after` seconds, if given).
  - Reject: fail for good; the job goes to the dead-letter queue (`retry: false`).
  - any other exception: a failed attempt, retried with the job type's backoff.

The sidecar's own refusals (its answer carries `X-Firebreak-Origin: firebreak`) raise a
SidecarError subclass that keeps firebreak's reason and Retry-After; uncaught, it fails
the attempt with that reason and retry_after, so the job waits as long as the sidecar
asked rather than the backoff's guess.
"""
from typing import Optional


class Retry(Exception):
    """Fail this attempt and retry the job, after `after` seconds when given."""

    def __init__(self, error: str = "retry requested", after: Optional[float] = None):
        super().__init__(error)
        self.error = error
        self.after = after


class Reject(Exception):
    """Fail the job for good: it goes straight to the dead-letter queue."""

    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


class DeadlineNear(Exception):
    """The attempt's timeout is about to kill it: give up cleanly (it is retried)."""


class SidecarError(Exception):
    """firebreak's sidecar refused or could not complete a call.

    status: its HTTP status; reason: its error text; retry_after: seconds (or None).
    """

    def __init__(self, status: int, reason: str, retry_after: Optional[float] = None):
        super().__init__(f"{type(self).__name__}: HTTP {status}: {reason}")
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class BreakerOpen(SidecarError):
    """The integration's circuit breaker is open: the upstream was not called."""


class RateLimited(SidecarError):
    """The integration's rate limit has no permit now (retry_after says when)."""


class ConcurrencyFull(SidecarError):
    """The integration's max_concurrency is reached."""


class UpstreamTimeout(SidecarError):
    """The upstream did not answer within the integration's timeout (after retries)."""


class UpstreamUnreachable(SidecarError):
    """The upstream could not be connected to (after retries)."""


class StoreUnavailable(SidecarError):
    """The session or state store did not answer in time."""


class Conflict(SidecarError):
    """A compare-and-set write found a newer version (412)."""


class UpstreamError(Exception):
    """An upstream answered with a 4xx/5xx (Response.raise_for_status)."""

    def __init__(self, status: int, body: bytes):
        super().__init__(f"upstream answered HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body
