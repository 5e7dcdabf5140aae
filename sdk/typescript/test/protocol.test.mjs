// The SDK against the protocol: envelopes in, answers out (validated against schemas/),
// the sidecar's answers mapped to errors, command and url mode.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';

import {
  Bot, BreakerOpen, ConcurrencyFull, RateLimited, Reject, Retry, Sidecar, SidecarError,
  UpstreamTimeout, UpstreamUnreachable,
} from '../dist/index.js';
import { envelope, own, schemaErrors, startServer } from './support.mjs';

let fake;
let route = () => ({ status: 404, ...own('no such key') });
before(async () => { fake = await startServer((req) => route(req)); });
after(async () => { await fake.close(); });

function newBot() {
  const sidecar = new Sidecar(fake.url);
  return new Bot(sidecar);
}

async function answer(bot, env) {
  assert.deepEqual(schemaErrors('envelope', [env]), []);
  const out = await bot.handle(env);
  assert.deepEqual(schemaErrors('answer', [out]), []);
  return out;
}

test('success carries actions and enqueued jobs', async () => {
  const bot = newBot().on('slack.event', (ctx) => {
    assert.equal(ctx.payload.event.user, 'U1');
    assert.equal(ctx.traceId, '0af7651916cd43dd8448eb211c80319c');
    ctx.action('slack-api', 'post', '/api/chat.postMessage', { json: { channel: 'C1', text: 'hi' }, orderingKey: 'C1' });
    ctx.enqueue('slack.reminder', { user: 'U1' }, { delay: '10m', key: 'remind:U1' });
  });
  assert.deepEqual(await answer(bot, envelope()), {
    id: '01JTEST', ok: true,
    actions: [{ integration: 'slack-api', method: 'POST', path: '/api/chat.postMessage', json: { channel: 'C1', text: 'hi' }, ordering_key: 'C1' }],
    enqueue: [{ type: 'slack.reminder', payload: { user: 'U1' }, delay: '10m', key: 'remind:U1' }],
  });
});

test('Retry, Reject, a bug, and a type nobody handles', async () => {
  const bot = newBot()
    .on('a', () => { throw new Retry('busy', 2.5); })
    .on('b', async () => { throw new Reject('bad input'); })
    .on('c', () => { null.x; });
  assert.deepEqual(await answer(bot, envelope({ type: 'a' })), { id: '01JTEST', ok: false, error: 'busy', retry: true, retry_after: 2.5 });
  assert.deepEqual(await answer(bot, envelope({ type: 'b' })), { id: '01JTEST', ok: false, error: 'bad input', retry: false });
  const bug = await answer(bot, envelope({ type: 'c' }));
  assert.equal(bug.retry, true);
  assert.match(bug.error, /TypeError/);
  const nobody = await answer(bot, envelope({ type: 'nobody' }));
  assert.equal(nobody.retry, false);
  assert.match(nobody.error, /no handler/);
});

test("sidecar refusals throw with firebreak's reason and Retry-After", async () => {
  const cases = [
    [503, 'circuit breaker open', { 'X-Firebreak-Breaker': 'open', 'Retry-After': '30' }, BreakerOpen, 30],
    [429, 'rate limit: no permit', { 'X-Firebreak-Rejected': 'rate_limit', 'Retry-After': '2' }, RateLimited, 2],
    [503, 'max_concurrency reached', { 'X-Firebreak-Rejected': 'concurrency' }, ConcurrencyFull, undefined],
    [504, 'timed out after 5s', {}, UpstreamTimeout, undefined],
    [502, 'connection refused', {}, UpstreamUnreachable, undefined],
  ];
  for (const [status, reason, headers, kind, retryAfter] of cases) {
    route = () => ({ status, ...own(reason, headers) });
    let caught;
    const bot = newBot().on('slack.event', async (ctx) => {
      try {
        await ctx.integration('slack-api').post('/api/chat.postMessage', { text: 'x' });
      } catch (err) {
        caught = err;
        throw err;
      }
    });
    const out = await answer(bot, envelope());
    assert.ok(caught instanceof kind && caught instanceof SidecarError, kind.name);
    assert.equal(caught.reason, reason);
    assert.equal(caught.retryAfter, retryAfter);
    assert.equal(out.retry, true);
    assert.match(out.error, new RegExp(reason));
    assert.equal(out.retry_after, retryAfter);
  }
});

test('upstream answers are returned, and calls carry the trace and the job id', async () => {
  route = () => ({ status: 404, body: { error: 'no contact' } });
  let got;
  const bot = newBot().on('slack.event', async (ctx) => {
    got = await ctx.integration('crm').get('/contacts/42', { params: { fields: 'name' } });
    got.raiseForStatus();
  });
  const out = await answer(bot, envelope());
  assert.equal(got.status, 404);
  assert.deepEqual(got.json(), { error: 'no contact' });
  assert.match(out.error, /UpstreamError/);
  const last = fake.requests.at(-1);
  assert.equal(last.url, '/v1/integrations/crm/contacts/42?fields=name');
  assert.equal(last.headers.traceparent, envelope().traceparent);
  assert.equal(last.headers['x-firebreak-job-id'], '01JTEST');
});

test('session update is a compare-and-set that retries a conflict', async () => {
  const store = { version: 0, body: '' };
  let raced = false;
  route = (req) => {
    if (req.method === 'GET') {
      if (store.version === 0) return { status: 404, ...own('no such key') };
      return { status: 200, headers: { 'Content-Type': 'application/json', ETag: `"${store.version}"` }, body: store.body };
    }
    if (!raced) { raced = true; store.version = 1; store.body = JSON.stringify({ count: 10 }); }
    const fresh = req.headers['if-match'] === `"${store.version}"` ||
      (req.headers['if-none-match'] === '*' && store.version === 0);
    if (!fresh) return { status: 412, ...own('the value changed') };
    store.version += 1;
    store.body = req.body;
    return { status: 200, body: { ok: true, version: store.version } };
  };
  fake.requests.length = 0;
  let written;
  const bot = newBot().on('slack.event', async (ctx) => {
    written = await ctx.session('slack:T1:U1').update((v) => ({ count: v.count + 1 }), { ttl: '30m', fallback: { count: 0 } });
  });
  assert.equal((await answer(bot, envelope())).ok, true);
  assert.deepEqual(written, { count: 11 });
  const puts = fake.requests.filter((r) => r.method === 'PUT');
  assert.equal(puts.length, 2);
  assert.equal(puts[0].url, '/v1/sessions/slack%3AT1%3AU1?ttl=30m');
  assert.equal(puts[0].headers['if-none-match'], '*');
  assert.equal(puts[1].headers['if-match'], '"1"');
});

test('past the deadline no sidecar call starts, and the job is retried', async () => {
  fake.requests.length = 0;
  let cancelled;
  const bot = newBot().on('slack.event', async (ctx) => {
    cancelled = ctx.cancelled && ctx.signal.aborted;
    await ctx.integration('slack-api').post('/api/chat.postMessage', {});
  });
  const out = await answer(bot, envelope({ deadline: '2020-01-01T00:00:00.000Z' }));
  assert.equal(cancelled, true);
  assert.equal(out.retry, true);
  assert.match(out.error, /DeadlineNear/);
  assert.equal(fake.requests.length, 0);
});

test('a sidecar call never outlives the attempt', async () => {
  route = () => new Promise((r) => setTimeout(() => r({ status: 200, body: {} }), 3000));
  const bot = newBot().on('slack.event', (ctx) => ctx.integration('slow').post('/x', {}));
  const started = Date.now();
  const out = await answer(bot, envelope({ deadline: new Date(Date.now() + 1200).toISOString() }));
  assert.ok(Date.now() - started < 2000, `${Date.now() - started} ms`);
  assert.match(out.error, /DeadlineNear/);
});

test('a batch answers one result per job', async () => {
  const bot = newBot().on('rows', (ctx) => {
    if (ctx.payload === 'bad') throw new Reject('bad row');
    ctx.action('crm', 'POST', '/rows', { json: { row: ctx.payload } });
  });
  const jobs = [envelope({ id: 'J1', type: 'rows', payload: 'good' }), envelope({ id: 'J2', type: 'rows', payload: 'bad' })];
  const out = await answer(bot, { id: 'J1', type: 'rows', batch: jobs });
  assert.equal(out.ok, true);
  assert.deepEqual(out.results.map((r) => [r.id, r.ok]), [['J1', true], ['J2', false]]);
  assert.deepEqual(out.results[0].actions[0].json, { row: 'good' });
  assert.equal(out.results[1].retry, false);
});

test('logs are JSON lines with the job and trace ids', async () => {
  const lines = [];
  const bot = newBot().on('slack.event', (ctx) => {
    ctx.log = new ctx.log.constructor({ job_id: ctx.id, job_type: ctx.type, trace_id: ctx.traceId }, (l) => lines.push(l));
    ctx.log.info('replying', { channel: 'C1' });
  });
  await answer(bot, envelope());
  assert.deepEqual(JSON.parse(lines[0]), {
    level: 'info', msg: 'replying', job_id: '01JTEST', job_type: 'slack.event',
    trace_id: '0af7651916cd43dd8448eb211c80319c', channel: 'C1',
  });
});

test('command mode answers every line, concurrently', async () => {
  const bot = newBot().on('slack.event', () => new Promise((r) => setTimeout(r, 50)));
  const input = new PassThrough();
  const output = new PassThrough();
  let text = '';
  output.on('data', (c) => { text += c; });
  for (let i = 0; i < 20; i++) input.write(JSON.stringify(envelope({ id: `J${i}` })) + '\n');
  input.end('\nnot json\n');
  const started = Date.now();
  await bot.run({ input, output, concurrency: 10 });
  const took = Date.now() - started;
  const answers = text.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(schemaErrors('answer', answers), []);
  assert.deepEqual(answers.map((a) => a.id).sort(), Array.from({ length: 20 }, (_, i) => `J${i}`).sort());
  // Twenty 50 ms jobs: 1 s one at a time, 0.1 s ten at a time.
  assert.ok(took < 700, `${took} ms`);
});

test('url mode maps outcomes to status codes', async () => {
  const bot = newBot()
    .on('ok', (ctx) => ctx.action('slack-api', 'POST', '/api/chat.postMessage', { json: {} }))
    .on('retry', () => { throw new Retry('later', 3); })
    .on('reject', () => { throw new Reject('never'); });
  const server = await bot.serve(0);
  const base = `http://127.0.0.1:${server.address().port}/`;
  const post = async (body) => {
    const res = await fetch(base, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
    return [res.status, res.headers.get('retry-after'), await res.json()];
  };
  let [status, retryAfter, body] = await post(JSON.stringify(envelope({ type: 'ok' })));
  assert.equal(status, 200);
  assert.equal(body.actions[0].integration, 'slack-api');
  [status, retryAfter, body] = await post(JSON.stringify(envelope({ type: 'retry' })));
  assert.deepEqual([status, retryAfter, body.error], [503, '3', 'later']);
  [status, , body] = await post(JSON.stringify(envelope({ type: 'reject' })));
  assert.deepEqual([status, body.error], [422, 'never']);
  [status] = await post('{not json');
  assert.equal(status, 400);
  server.close();
});
