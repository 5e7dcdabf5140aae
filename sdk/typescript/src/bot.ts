// Handler registration and the two ways firebreak runs a handler:
//   command mode (bot.run()): envelopes arrive one per line on stdin (NDJSON); answers go
//     out one line per job on stdout, in any order; jobs run concurrently (async handlers).
//   url mode (bot.serve(port)): firebreak POSTs each envelope; 200 done, 503 + Retry-After
//     retry, 422 dead-letter; the 200 body carries actions and enqueued jobs.
import http from 'node:http';
import readline from 'node:readline';

import { Context } from './context.js';
import { BatchEnvelope, Envelope } from './envelope.js';
import { DeadlineNear, Reject, Retry, SidecarError } from './errors.js';
import { Sidecar } from './sidecar.js';

export type Handler<P = any> = (ctx: Context<P>) => unknown | Promise<unknown>;

export interface Outcome {
  ok: boolean;
  error?: string;
  retry?: boolean;
  retry_after?: number;
  actions?: Context['actions'];
  enqueue?: Context['enqueued'];
}
export interface Answer extends Outcome {
  id: string;
  results?: Array<Outcome & { id: string }>;
}

export class Bot {
  private readonly handlers = new Map<string, Handler>();
  private sidecarClient: Sidecar | undefined;

  constructor(sidecar?: Sidecar) {
    this.sidecarClient = sidecar;
  }

  get sidecar(): Sidecar {
    this.sidecarClient ??= new Sidecar();
    return this.sidecarClient;
  }

  /** Registers fn for a job type ("*": every type without its own handler). */
  on<P = any>(jobType: string, fn: Handler<P>): this {
    this.handlers.set(jobType, fn as Handler);
    return this;
  }

  /** The answer for one envelope (a batch's: one results entry per job). */
  async handle(envelope: Envelope | BatchEnvelope): Promise<Answer> {
    if (envelope && Array.isArray((envelope as BatchEnvelope).batch)) {
      const batch = envelope as BatchEnvelope;
      const results = await Promise.all(batch.batch.map(async (job) => ({ ...(await this.outcome(job)), id: job.id })));
      return { id: batch.id, ok: true, results };
    }
    return { ...(await this.outcome(envelope as Envelope)), id: String((envelope as Envelope)?.id ?? '') };
  }

  private async outcome(envelope: Envelope): Promise<Outcome> {
    if (!envelope || typeof envelope !== 'object' || typeof envelope.id !== 'string' || !envelope.id) {
      return { ok: false, error: 'bad envelope: no string id', retry: false };
    }
    const fn = this.handlers.get(envelope.type) ?? this.handlers.get('*');
    if (!fn) return { ok: false, error: `no handler for job type ${JSON.stringify(envelope.type)}`, retry: false };
    const ctx = new Context(envelope, this.sidecar);
    try {
      await fn(ctx);
    } catch (err) {
      return failed(err, ctx);
    } finally {
      ctx.dispose();
    }
    const answer: Outcome = { ok: true };
    if (ctx.actions.length) answer.actions = ctx.actions;
    if (ctx.enqueued.length) answer.enqueue = ctx.enqueued;
    return answer;
  }

  /** Command mode: reads envelopes from `input` until it closes; answers on `output`.
   *  At most `concurrency` jobs run at once. Resolves when every answer is written. */
  async run(options: { concurrency?: number; input?: NodeJS.ReadableStream; output?: NodeJS.WritableStream } = {}): Promise<void> {
    const concurrency = Math.max(1, options.concurrency ?? 64);
    const output = options.output ?? process.stdout;
    const lines = readline.createInterface({ input: options.input ?? process.stdin, crlfDelay: Infinity });
    const running = new Set<Promise<void>>();
    for await (const line of lines) {
      if (!line.trim()) continue;
      let envelope: Envelope;
      try {
        envelope = JSON.parse(line) as Envelope;
      } catch (err) {
        process.stderr.write(`firebreak sdk: not an envelope: ${(err as Error).message}\n`);
        continue;
      }
      const job = this.handle(envelope).then((answer) => { output.write(JSON.stringify(answer) + '\n'); });
      const tracked = job.finally(() => running.delete(tracked));
      running.add(tracked);
      if (running.size >= concurrency) await Promise.race(running);
    }
    await Promise.all(running);
  }

  /** Url mode: an HTTP server for `handler = { url = ... }`. Resolves with the listening
   *  server (port 0 picks a free one: server.address()). */
  serve(port: number, host = '127.0.0.1'): Promise<http.Server> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const send = (status: number, body: unknown, retryAfter?: number) => {
          const data = JSON.stringify(body);
          const headers: Record<string, string | number> = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) };
          if (retryAfter !== undefined) headers['Retry-After'] = Math.max(1, Math.ceil(retryAfter));
          res.writeHead(status, headers).end(data);
        };
        let envelope: Envelope | BatchEnvelope;
        try {
          envelope = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return send(400, { error: 'the body is not JSON' });
        }
        const answer = await this.handle(envelope);
        if (answer.results || answer.ok) {
          const body: Record<string, unknown> = {};
          for (const k of ['actions', 'enqueue', 'results'] as const) if (answer[k]) body[k] = answer[k];
          return send(200, body);
        }
        if (answer.retry !== false) return send(503, { error: answer.error }, answer.retry_after);
        return send(422, { error: answer.error });
      });
    });
    return new Promise((resolve) => server.listen(port, host, () => resolve(server)));
  }
}

function failed(err: unknown, ctx: Context): Outcome {
  if (err instanceof Retry) return withAfter({ ok: false, error: err.message, retry: true }, err.after);
  if (err instanceof Reject) return { ok: false, error: err.message, retry: false };
  if (err instanceof SidecarError) return withAfter({ ok: false, error: `${err.name}: ${err.message}`, retry: true }, err.retryAfter);
  if (err instanceof DeadlineNear) return { ok: false, error: `DeadlineNear: ${err.message}`, retry: true };
  const e = err instanceof Error ? err : new Error(String(err));
  ctx.log.error('handler threw', { error: `${e.name}: ${e.message}` });
  return { ok: false, error: `${e.name}: ${e.message}`, retry: true };
}

function withAfter(outcome: Outcome, after: number | undefined): Outcome {
  if (after !== undefined) outcome.retry_after = Math.max(0, after);
  return outcome;
}
