// What a handler throws, and what the sidecar's refusals throw (docs/handler-protocol.md).
//
// A handler ends an attempt by returning (success) or throwing:
//   Retry:  fail this attempt; firebreak retries it (after `after` seconds, if given).
//   Reject: fail for good; the job goes to the dead-letter queue (`retry: false`).
//   anything else: a failed attempt, retried with the job type's backoff.
// The sidecar's own refusals (`X-Firebreak-Origin: firebreak`) throw a SidecarError that
// keeps firebreak's reason and Retry-After; uncaught, it answers a retry after that long.

export class Retry extends Error {
  override name = 'Retry';
  constructor(message = 'retry requested', readonly after?: number) {
    super(message);
  }
}

export class Reject extends Error {
  override name = 'Reject';
}

export class DeadlineNear extends Error {
  override name = 'DeadlineNear';
}

export class SidecarError extends Error {
  override name = 'SidecarError';
  constructor(readonly status: number, readonly reason: string, readonly retryAfter?: number) {
    super(`HTTP ${status}: ${reason}`);
  }
}
export class BreakerOpen extends SidecarError { override name = 'BreakerOpen'; }
export class RateLimited extends SidecarError { override name = 'RateLimited'; }
export class ConcurrencyFull extends SidecarError { override name = 'ConcurrencyFull'; }
export class UpstreamTimeout extends SidecarError { override name = 'UpstreamTimeout'; }
export class UpstreamUnreachable extends SidecarError { override name = 'UpstreamUnreachable'; }
export class StoreUnavailable extends SidecarError { override name = 'StoreUnavailable'; }
export class Conflict extends SidecarError { override name = 'Conflict'; }

/** An upstream answered 4xx/5xx (Response.raiseForStatus). */
export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(readonly status: number, readonly body: string) {
    super(`upstream answered HTTP ${status}: ${body.slice(0, 200)}`);
  }
}

/** The exception for an answer firebreak made itself (X-Firebreak-Origin: firebreak). */
export function ownError(status: number, headers: Record<string, string>, body: string): SidecarError {
  let reason = body;
  try {
    reason = (JSON.parse(body) as { error?: string }).error ?? body;
  } catch {
    // not JSON: the body is the reason
  }
  const after = headers['retry-after'] !== undefined ? Number(headers['retry-after']) : undefined;
  const retryAfter = after !== undefined && Number.isFinite(after) ? after : undefined;
  let kind: typeof SidecarError = SidecarError;
  if (headers['x-firebreak-breaker'] === 'open') kind = BreakerOpen;
  else if (headers['x-firebreak-rejected'] === 'rate_limit' || status === 429) kind = RateLimited;
  else if (headers['x-firebreak-rejected'] === 'concurrency') kind = ConcurrencyFull;
  else if (status === 504) kind = UpstreamTimeout;
  else if (status === 502) kind = UpstreamUnreachable;
  else if (status === 412) kind = Conflict;
  else if (status === 503) kind = StoreUnavailable;
  return new kind(status, reason, retryAfter);
}
