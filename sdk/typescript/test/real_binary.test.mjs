// The SDK against the real firebreak binary (FIREBREAK_BIN; ctest sets it): a bot written
// with it handles signed Slack events, looks the user up through the sidecar (the slack-api
// integration, pointed at a simulated Slack on loopback), counts the conversation in a
// session and answers with a chat.postMessage action. The simulated Slack must see each
// reply exactly once, with the integration's token and an Idempotency-Key; a redelivered
// event changes nothing; every envelope the worker wrote validates against the schema.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { REPO, schemaErrors, startServer } from './support.mjs';

const SDK = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'index.js');
const SECRET = '8f742231b10e8888abcd99yyyzzz85a5';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const BOT = `
import fs from 'node:fs';
import { Bot } from ${JSON.stringify(SDK)};

const bot = new Bot();
bot.on('slack.event', async (ctx) => {
  fs.appendFileSync(process.env.ENVELOPES, JSON.stringify(ctx.envelope) + '\\n');
  const { event, team_id } = ctx.payload;
  const user = await ctx.integration('slack-api').get('/api/users.info', { params: { user: event.user } });
  const name = user.raiseForStatus().json().user.name;
  const convo = await ctx.session(\`slack:\${team_id}:\${event.user}\`)
    .update((c) => ({ messages: c.messages + 1 }), { ttl: '30m', fallback: { messages: 0 } });
  ctx.log.info('replying', { channel: event.channel, messages: convo.messages });
  ctx.action('slack-api', 'POST', '/api/chat.postMessage', {
    json: { channel: event.channel, thread_ts: event.ts, text: \`hi \${name}, message \${convo.messages}\` } });
});
await bot.run();
`;

// Below the kernel's ephemeral range (32768+): firebreak's own sidecar binds 127.0.0.1:0,
// and the kernel hands a port just released by listen(0) to the next one.
async function freePort() {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 10000 + Math.floor(Math.random() * 22768);
    const free = await new Promise((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port');
}

async function waitFor(predicate, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await predicate()) return true;
    await sleep(50);
  }
  return predicate();
}

async function slackPost(port, body) {
  const ts = String(Math.floor(Date.now() / 1000));
  const sig = 'v0=' + crypto.createHmac('sha256', SECRET).update(`v0:${ts}:${body}`).digest('hex');
  const res = await fetch(`http://127.0.0.1:${port}/hooks/slack`, {
    method: 'POST', body,
    headers: { 'Content-Type': 'application/json', 'X-Slack-Request-Timestamp': ts, 'X-Slack-Signature': sig },
  });
  return res.status;
}

test('a bot written with the SDK replies once per event through the sidecar',
  { skip: !process.env.FIREBREAK_BIN && 'FIREBREAK_BIN is not set' }, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fb-sdk-ts-'));
    const posts = [];
    const slack = await startServer((req) => {
      if (req.headers.authorization !== 'Bearer xoxb-test') return { status: 401, body: { ok: false, error: 'not_authed' } };
      if (req.method === 'GET' && req.url.startsWith('/api/users.info?user=U42')) {
        return { status: 200, body: { ok: true, user: { id: 'U42', name: 'ada' } } };
      }
      if (req.method === 'POST' && req.url === '/api/chat.postMessage') {
        posts.push([req.headers['idempotency-key'], JSON.parse(req.body)]);
        return { status: 200, body: { ok: true, ts: '2.0' } };
      }
      return { status: 404, body: { ok: false, error: 'unknown_method' } };
    });
    const port = await freePort();
    fs.writeFileSync(path.join(dir, 'bot.mjs'), BOT);
    fs.writeFileSync(path.join(dir, 'secret'), SECRET);
    const config = path.join(dir, 'firebreak.toml');
    const template = fs.readFileSync(path.join(REPO, 'sdk', 'testdata', 'firebreak.toml.in'), 'utf8');
    fs.writeFileSync(config, template.replaceAll('@PORT@', String(port)).replaceAll('@DIR@', dir)
      .replaceAll('@HANDLER@', JSON.stringify([process.execPath, path.join(dir, 'bot.mjs')]))
      .replaceAll('@SLACK_URL@', slack.url));
    const logPath = path.join(dir, 'firebreak.log');
    const log = fs.openSync(logPath, 'w');
    const firebreak = spawn(process.env.FIREBREAK_BIN, ['run', '-c', config], {
      stdio: ['ignore', log, log],
      env: { ...process.env, SLACK_BOT_TOKEN: 'xoxb-test', ENVELOPES: path.join(dir, 'envelopes.ndjson') },
    });
    const exited = new Promise((r) => firebreak.on('exit', r));
    t.after(async () => {
      firebreak.kill('SIGTERM');
      await Promise.race([exited, sleep(10000).then(() => firebreak.kill('SIGKILL'))]);
      fs.closeSync(log);
      await slack.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const logTail = () => fs.readFileSync(logPath, 'utf8').slice(-4000);
    const up = await waitFor(async () => {
      try { return (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200; } catch { return false; }
    }, 20000);
    assert.ok(up, logTail());

    const event = (id, text) => JSON.stringify({ type: 'event_callback', team_id: 'T1', event_id: id,
      event: { type: 'message', user: 'U42', channel: 'C7', ts: `1700000000.${id.at(-1)}`, text } });
    const first = event('Ev0001', 'hello');
    assert.equal(await slackPost(port, first), 200);
    assert.ok(await waitFor(() => posts.length >= 1, 20000), logTail());
    assert.equal(await slackPost(port, first), 200);  // Slack's retry of the same event
    assert.equal(await slackPost(port, event('Ev0002', 'again')), 200);
    assert.ok(await waitFor(() => posts.length >= 2, 20000), logTail());
    await sleep(1000);  // room for a duplicate to show up, if there were one

    assert.equal(posts.length, 2, JSON.stringify(posts));
    assert.deepEqual(posts.map((p) => p[1].text).sort(), ['hi ada, message 1', 'hi ada, message 2']);
    assert.ok(posts.every((p) => p[1].channel === 'C7' && p[1].thread_ts));
    assert.equal(new Set(posts.map((p) => p[0]).filter(Boolean)).size, 2);

    const envelopes = fs.readFileSync(path.join(dir, 'envelopes.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(envelopes.length, 2);
    assert.deepEqual(schemaErrors('envelope', envelopes), []);

    // The SDK's log lines reach firebreak's log under their job, with the job's trace.
    const replies = [];
    for (const line of fs.readFileSync(logPath, 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line);
      if (entry.msg !== 'handler stderr') continue;
      const sdk = JSON.parse(entry.line);
      assert.deepEqual([sdk.job_id, sdk.trace_id], [entry.job_id, entry.trace_id]);
      replies.push(sdk.messages);
    }
    assert.deepEqual(replies.sort(), [1, 2]);
  });
