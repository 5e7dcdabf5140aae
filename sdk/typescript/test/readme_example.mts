// The README's example, type-checked against dist/*.d.ts by `tsc -p tsconfig.test.json`.
import { Bot } from '../dist/index.js';

const bot = new Bot();
bot.on('slack.event', async (ctx) => {
  const { event } = ctx.payload;
  const user = await ctx.integration('slack-api').get('/api/users.info', { params: { user: event.user } });
  const name = user.raiseForStatus().json<{ user: { name: string } }>().user.name;
  const convo = await ctx.session<{ n: number }>(`slack:${event.user}`)
    .update((c) => ({ n: c.n + 1 }), { ttl: '30m', fallback: { n: 0 } });
  ctx.log.info('replying', { n: convo.n });
  ctx.action('slack-api', 'POST', '/api/chat.postMessage',
    { json: { channel: event.channel, thread_ts: event.ts, text: `hi ${name} (${convo.n})` } });
});
await bot.run();
