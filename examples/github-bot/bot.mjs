// github-bot: labels newly opened issues, written with the TypeScript SDK (sdk/typescript).
//
// firebreak verifies X-Hub-Signature-256, answers GitHub at once, dedupes redeliveries
// on X-GitHub-Delivery and hands the event here, with the X-GitHub-Event header in the
// envelope. The label is an *action*: stored with the job's success and sent once through
// the github-api integration (token, retries, rate limit), so a redelivered or retried
// event never labels twice.
import { Bot } from '../../sdk/typescript/dist/index.js';

const bot = new Bot();

bot.on('github.event', (ctx) => {
  const event = ctx.envelope.headers['x-github-event'];
  const { action, issue, repository } = ctx.payload ?? {};
  if (event !== 'issues' || action !== 'opened' || !issue || !repository) return;  // not ours
  const text = `${issue.title ?? ''}\n${issue.body ?? ''}`.toLowerCase();
  const label = /\b(bug|crash|error|broken)\b/.test(text) ? 'bug' : 'triage';
  ctx.log.info('labelling', { repo: repository.full_name, issue: issue.number, label });
  ctx.action('github-api', 'POST', `/repos/${repository.full_name}/issues/${issue.number}/labels`, {
    json: { labels: [label] },
    headers: { Accept: 'application/vnd.github+json', 'X-GitHub-Api-Version': '2022-11-28' },
  });
});

await bot.run();
