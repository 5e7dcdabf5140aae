// Express + BullMQ: the Slack Events ingress a Node user would deploy instead of
// firebreak (bench/peers_bench.sh). Written from Slack's "Verifying requests from
// Slack" and the Express and BullMQ docs: verify the v0 signature over the raw body,
// reject timestamps more than 5 minutes off, answer url_verification, dedupe on
// event_id with SET NX EX, enqueue a BullMQ job, ACK 200. One process, no cluster.
// Env: PORT, REDIS_URL, SLACK_SIGNING_SECRET, QUEUE (default "slack").
'use strict';
const crypto = require('node:crypto');
const express = require('express');
const IORedis = require('ioredis');
const { Queue } = require('bullmq');

const secret = process.env.SLACK_SIGNING_SECRET;
if (!secret) throw new Error('SLACK_SIGNING_SECRET is not set');
// enableOfflineQueue: false, so a request fails at once while Redis is down (BullMQ's
// "Failing fast when Redis is down", for REST APIs) and Slack retries it.
const connection = new IORedis(process.env.REDIS_URL || 'redis://127.0.0.1:6379',
  { enableOfflineQueue: false });
const queue = new Queue(process.env.QUEUE || 'slack', { connection });
const DEDUPE_TTL_SECONDS = 24 * 3600;

function validSignature(req) {
  const ts = req.get('X-Slack-Request-Timestamp');
  const sig = req.get('X-Slack-Signature');
  if (!ts || !sig || !Buffer.isBuffer(req.body)) return false;
  if (Math.abs(Math.floor(Date.now() / 1000) - Number(ts)) > 60 * 5) return false;
  const hmac = crypto.createHmac('sha256', secret);
  hmac.update(`v0:${ts}:`);
  hmac.update(req.body);
  const expected = Buffer.from(`v0=${hmac.digest('hex')}`);
  const given = Buffer.from(sig);
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

const app = express();
app.disable('x-powered-by');
app.get('/healthz', (req, res) => res.send('ok'));
// The raw body: the signature is over the exact bytes Slack sent.
app.post('/hooks/slack', express.raw({ type: '*/*', limit: '1mb' }), async (req, res) => {
  try {
    if (!validSignature(req)) return res.status(401).json({ ok: false, error: 'invalid signature' });
    let event;
    try {
      event = JSON.parse(req.body.toString('utf8'));
    } catch {
      return res.status(400).json({ ok: false, error: 'malformed JSON' });
    }
    if (event.type === 'url_verification') return res.json({ challenge: event.challenge });
    const key = `dedupe:slack:${event.event_id ??
      crypto.createHash('sha256').update(req.body).digest('hex')}`;
    const fresh = await connection.set(key, '1', 'EX', DEDUPE_TTL_SECONDS, 'NX');
    if (fresh === null) return res.json({ ok: true, duplicate: true });
    const job = await queue.add('slack.event', event);
    res.json({ ok: true, job: job.id });
  } catch (err) {
    console.error(`enqueue failed: ${err.message}`);
    res.status(503).set('Retry-After', '1').json({ ok: false, error: 'queue unavailable' });
  }
});

const server = app.listen(Number(process.env.PORT || 3000), '127.0.0.1');
async function shutdown() {
  server.close();
  await queue.close();
  await connection.quit();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
