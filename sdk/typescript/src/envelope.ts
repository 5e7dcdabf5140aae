// The job envelope (schemas/envelope.schema.json).

export interface Envelope<P = unknown> {
  id: string;
  type: string;
  source: string;
  dedupe_key: string;
  attempt: number;
  max_attempts: number;
  /** UTC, RFC 3339 with milliseconds. */
  enqueued_at: string;
  /** When the attempt's timeout kills it. */
  deadline?: string;
  traceparent: string;
  ordering_key?: string;
  headers: Record<string, string>;
  payload: P;
  [field: string]: unknown;
}

export interface BatchEnvelope {
  id: string;
  type: string;
  batch: Envelope[];
}

/** The 32-hex trace id of a W3C traceparent ('' when malformed). */
export function traceIdOf(traceparent: string): string {
  const parts = traceparent.split('-');
  return parts.length === 4 ? parts[1] : '';
}
