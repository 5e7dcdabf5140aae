// firebreak's TypeScript/JavaScript SDK: write a job handler in a few lines.
//
//   import { Bot } from '@firebreak/sdk';
//   const bot = new Bot();
//   bot.on('slack.event', async (ctx) => {
//     const { event } = ctx.payload;
//     ctx.action('slack-api', 'POST', '/api/chat.postMessage',
//       { json: { channel: event.channel, thread_ts: event.ts, text: 'hi' } });
//   });
//   await bot.run();  // command mode; bot.serve(8090) for a url handler
//
// The protocol it speaks: docs/handler-protocol.md (schemas/*.schema.json).
export { Bot } from './bot.js';
export type { Answer, Handler, Outcome } from './bot.js';
export { Context, Integration, Logger, Response, Store, DEADLINE_MARGIN_MS } from './context.js';
export type { Action, EnqueuedJob, PutOptions, RequestOptions } from './context.js';
export type { BatchEnvelope, Envelope } from './envelope.js';
export { traceIdOf } from './envelope.js';
export {
  BreakerOpen, ConcurrencyFull, Conflict, DeadlineNear, RateLimited, Reject, Retry, SidecarError,
  StoreUnavailable, UpstreamError, UpstreamTimeout, UpstreamUnreachable,
} from './errors.js';
export { Sidecar } from './sidecar.js';
