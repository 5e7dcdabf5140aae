// What a handler gets for one job: the envelope, the sidecar's services, and the answer
// it is building (actions, enqueued jobs).
import { DeadlineNear, Conflict, UpstreamError, ownError } from './errors.js';
import { Envelope, traceIdOf } from './envelope.js';
import { Sidecar, TimeoutError } from './sidecar.js';

/** Sidecar calls stop this long before the attempt's deadline (ms). */
export const DEADLINE_MARGIN_MS = 250;
const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** An upstream's answer relayed by the sidecar. */
export class Response {
  constructor(readonly status: number, readonly headers: Record<string, string>, readonly body: string) {}
  get ok(): boolean { return this.status >= 200 && this.status < 300; }
  json<T = unknown>(): T { return (this.body ? JSON.parse(this.body) : null) as T; }
  raiseForStatus(): this {
    if (this.status >= 400) throw new UpstreamError(this.status, this.body);
    return this;
  }
}

export interface RequestOptions {
  json?: unknown;
  body?: string;
  headers?: Record<string, string>;
  params?: Record<string, string>;
  timeoutMs?: number;
}

export class Integration {
  private readonly prefix: string;
  constructor(private readonly ctx: Context, name: string) {
    this.prefix = `/v1/integrations/${encodeURIComponent(name)}/`;
  }

  /** The upstream's answer (any status). firebreak's refusals throw: BreakerOpen,
   *  RateLimited, ConcurrencyFull, UpstreamTimeout, UpstreamUnreachable. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const headers = { ...(options.headers ?? {}) };
    let body = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['Content-Type'] ??= 'application/json';
    }
    let target = this.prefix + path.replace(/^\/+/, '');
    if (options.params) target += '?' + new URLSearchParams(options.params).toString();
    const got = await this.ctx.call(method.toUpperCase(), target, body, headers, options.timeoutMs);
    if (got.headers['x-firebreak-origin'] === 'firebreak') throw ownError(got.status, got.headers, got.body);
    return new Response(got.status, got.headers, got.body);
  }
  get(path: string, options?: RequestOptions) { return this.request('GET', path, options); }
  post(path: string, json?: unknown, options: RequestOptions = {}) { return this.request('POST', path, { ...options, json }); }
  put(path: string, json?: unknown, options: RequestOptions = {}) { return this.request('PUT', path, { ...options, json }); }
  patch(path: string, json?: unknown, options: RequestOptions = {}) { return this.request('PATCH', path, { ...options, json }); }
  delete(path: string, options?: RequestOptions) { return this.request('DELETE', path, options); }
}

export interface PutOptions {
  /** Sessions only: how long it lives ("30m"). */
  ttl?: string;
  /** Compare-and-set: write only over this version (412 -> Conflict). */
  ifVersion?: number;
  /** Compare-and-set: write only if the key is absent. */
  ifAbsent?: boolean;
}

/** One key of the session store (values with a ttl) or the state store (durable). Values
 *  are JSON; writes can be compare-and-set on the version (ETag). */
export class Store<T = unknown> {
  private readonly path: string;
  constructor(private readonly ctx: Context, private readonly kind: 'sessions' | 'state', readonly key: string) {
    this.path = `/v1/${kind}/${encodeURIComponent(key)}`;
  }

  /** [value, version], or [undefined, undefined] when absent or expired. */
  async getVersioned(): Promise<[T | undefined, number | undefined]> {
    const got = await this.ctx.call('GET', this.path, undefined, {});
    if (got.status === 404) return [undefined, undefined];
    if (got.status !== 200) throw ownError(got.status, got.headers, got.body);
    const version = Number((got.headers.etag ?? '"0"').replace(/"/g, ''));
    const isJson = (got.headers['content-type'] ?? '').startsWith('application/json');
    return [(isJson ? (got.body ? JSON.parse(got.body) : null) : got.body) as T, version];
  }

  async get(fallback?: T): Promise<T | undefined> {
    const [value, version] = await this.getVersioned();
    return version === undefined ? fallback : value;
  }

  /** Stores `value` as JSON; returns the new version. */
  async put(value: T, options: PutOptions = {}): Promise<number> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (options.ifVersion !== undefined) headers['If-Match'] = `"${options.ifVersion}"`;
    else if (options.ifAbsent) headers['If-None-Match'] = '*';
    let path = this.path;
    if (options.ttl !== undefined) {
      if (this.kind !== 'sessions') throw new Error('state does not expire: use ctx.session() for a ttl');
      path += `?ttl=${encodeURIComponent(options.ttl)}`;
    }
    const got = await this.ctx.call('PUT', path, JSON.stringify(value), headers);
    if (got.status !== 200 && got.status !== 201) throw ownError(got.status, got.headers, got.body);
    return Number((JSON.parse(got.body) as { version: number }).version);
  }

  /** Read, change(value) -> new value, write if nobody wrote in between; again on a
   *  Conflict, up to `attempts` times. Returns the value written. */
  async update(change: (value: T) => T, options: { ttl?: string; fallback?: T; attempts?: number } = {}): Promise<T> {
    const attempts = options.attempts ?? 10;
    for (let i = 0; i < attempts; i++) {
      const [value, version] = await this.getVersioned();
      const next = change((version === undefined ? options.fallback : value) as T);
      try {
        await this.put(next, { ttl: options.ttl, ifVersion: version, ifAbsent: version === undefined });
        return next;
      } catch (err) {
        if (!(err instanceof Conflict)) throw err;
      }
    }
    throw new Conflict(412, `${this.key}: still changing after ${attempts} tries`);
  }

  /** True when it existed. */
  async delete(): Promise<boolean> {
    const got = await this.ctx.call('DELETE', this.path, undefined, {});
    if (got.status === 404) return false;
    if (got.status !== 200 && got.status !== 204) throw ownError(got.status, got.headers, got.body);
    return true;
  }
}

export interface Action {
  integration: string;
  method: string;
  path: string;
  json?: unknown;
  body?: string;
  headers?: Record<string, string>;
  idempotency_key?: string;
  ordering_key?: string;
}

export interface EnqueuedJob {
  type: string;
  payload?: unknown;
  delay?: string | number;
  key?: string;
}

/** JSON lines on stderr with the job's id and trace id; firebreak logs a command
 *  handler's stderr lines with the job id. */
export class Logger {
  constructor(private readonly fields: Record<string, string>,
              private readonly write: (line: string) => void = (l) => process.stderr.write(l)) {}
  log(level: string, msg: string, fields: Record<string, unknown> = {}): void {
    this.write(JSON.stringify({ level, msg, ...this.fields, ...fields }) + '\n');
  }
  debug(msg: string, fields?: Record<string, unknown>) { this.log('debug', msg, fields); }
  info(msg: string, fields?: Record<string, unknown>) { this.log('info', msg, fields); }
  warn(msg: string, fields?: Record<string, unknown>) { this.log('warn', msg, fields); }
  error(msg: string, fields?: Record<string, unknown>) { this.log('error', msg, fields); }
}

export class Context<P = any> {
  readonly actions: Action[] = [];
  readonly enqueued: EnqueuedJob[] = [];
  log: Logger;
  private readonly deadlineMs: number | undefined;
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly envelope: Envelope<P>, private readonly sidecar: Sidecar,
              private readonly now: () => number = Date.now) {
    this.log = new Logger({ job_id: envelope.id, job_type: envelope.type, trace_id: this.traceId });
    this.deadlineMs = envelope.deadline ? Date.parse(envelope.deadline) : undefined;
    if (this.deadlineMs !== undefined) {
      const left = this.deadlineMs - DEADLINE_MARGIN_MS - this.now();
      if (left <= 0) this.controller.abort(new DeadlineNear('the attempt\'s deadline is near'));
      else if (left < MAX_TIMER_MS) {  // a later timer would fire at once (Node's 32-bit limit)
        this.timer = setTimeout(() => this.controller.abort(new DeadlineNear('the attempt\'s deadline is near')), left);
        this.timer.unref();
      }
    }
  }

  get id(): string { return this.envelope.id; }
  get type(): string { return this.envelope.type; }
  get payload(): P { return this.envelope.payload; }
  get attempt(): number { return this.envelope.attempt; }
  get traceId(): string { return traceIdOf(this.envelope.traceparent); }

  /** Milliseconds until the attempt's timeout kills it (Infinity without a deadline). */
  timeLeftMs(): number {
    return this.deadlineMs === undefined ? Infinity : this.deadlineMs - this.now();
  }
  /** Aborted DEADLINE_MARGIN_MS before the deadline: pass it to fetch() and friends. */
  get signal(): AbortSignal { return this.controller.signal; }
  get cancelled(): boolean { return this.timeLeftMs() <= DEADLINE_MARGIN_MS; }
  checkDeadline(): void {
    if (this.cancelled) throw new DeadlineNear(`the attempt's deadline is ${this.timeLeftMs()} ms away`);
  }

  integration(name: string): Integration { return new Integration(this, name); }
  session<T = unknown>(key: string): Store<T> { return new Store<T>(this, 'sessions', key); }
  state<T = unknown>(key: string): Store<T> { return new Store<T>(this, 'state', key); }

  /** An outbound call firebreak makes once the job succeeds (stored with the success,
   *  sent once). Default idempotency key: <job id>:<index>. Actions of one integration
   *  with the same `orderingKey` (a chat id) are sent one at a time, in stored order. */
  action(integration: string, method: string, path: string,
         options: { json?: unknown; body?: string; headers?: Record<string, string>; idempotencyKey?: string;
                    orderingKey?: string } = {}): void {
    const a: Action = { integration, method: method.toUpperCase(), path };
    if (options.json !== undefined) a.json = options.json;
    if (options.body !== undefined) a.body = options.body;
    if (options.headers) a.headers = options.headers;
    if (options.idempotencyKey !== undefined) a.idempotency_key = options.idempotencyKey;
    if (options.orderingKey !== undefined) a.ordering_key = options.orderingKey;
    this.actions.push(a);
  }

  /** A job stored with this job's success: now, or after `delay` ("10m" or ms). */
  enqueue(type: string, payload?: unknown, options: { delay?: string | number; key?: string } = {}): void {
    const job: EnqueuedJob = { type };
    if (payload !== undefined) job.payload = payload;
    if (options.delay !== undefined) job.delay = options.delay;
    if (options.key !== undefined) job.key = options.key;
    this.enqueued.push(job);
  }

  /** @internal One sidecar call, bounded by the attempt's deadline. */
  async call(method: string, path: string, body: string | undefined, headers: Record<string, string>,
             timeoutMs?: number) {
    const left = this.timeLeftMs() - DEADLINE_MARGIN_MS;
    if (left <= 0) throw new DeadlineNear('no time left for a sidecar call before the deadline');
    const limit = Math.min(timeoutMs ?? DEFAULT_TIMEOUT_MS, left);
    const sent = { ...headers, traceparent: this.envelope.traceparent, 'X-Firebreak-Job-Id': this.envelope.id };
    try {
      return await this.sidecar.request(method, path, body, sent, limit);
    } catch (err) {
      if (err instanceof TimeoutError && this.cancelled) throw new DeadlineNear('a sidecar call ran into the deadline');
      throw err;
    }
  }

  /** @internal */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}
