// A no-op BullMQ Worker draining the queue express_bullmq_server.js fills (BullMQ's
// defaults: concurrency 1, completed jobs kept). Env: REDIS_URL, QUEUE, CONCURRENCY.
'use strict';
const IORedis = require('ioredis');
const { Worker } = require('bullmq');

// Workers need maxRetriesPerRequest: null (BullMQ's docs, "Connections").
const connection = new IORedis(process.env.REDIS_URL || 'redis://127.0.0.1:6379',
  { maxRetriesPerRequest: null });
const worker = new Worker(process.env.QUEUE || 'slack', async () => {}, {
  connection,
  concurrency: Number(process.env.CONCURRENCY || 1),
});
worker.on('failed', (job, err) => console.error(`job ${job && job.id} failed: ${err.message}`));
async function shutdown() {
  await worker.close();
  await connection.quit();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
