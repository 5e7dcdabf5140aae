// 1280×800 screenshots of every page, light and dark, into docs/screenshots/.
//   node tests/browser/screenshots.mjs      (cwd: the repository root; env as run.mjs)
import fs from 'node:fs';
import path from 'node:path';
import { startFirebreak, seed, waitIdle, startProxy, launchBrowser, login, visit, api, postSlack, sleep, PAGES } from './lib.mjs';

const out = path.resolve('docs/screenshots');
fs.mkdirSync(out, { recursive: true });
const cleanups = [];
try {
  const fb = await startFirebreak();
  cleanups.push(() => fb.stop());
  const exp = await seed(fb, 150);
  for (let i = 0; i < 4; i++) await postSlack(fb, { channel: 'C2', user: 'U3', text: `wobbly ${i}` });
  await waitIdle(fb, exp.dead);
  // Some history for the audit log and the replays.
  const flaky = (await api(fb, 'GET', 'dead?group=fingerprint')).json.items.find((g) => g.sample_error.includes('503'));
  fs.rmSync(path.join(fb.dir, 'broken'), { force: true });
  if (flaky) {
    const op = (await api(fb, 'POST', 'dead/replay', { filter: { fingerprint: flaky.fingerprint, key: 'slack.channel:C1' }, dry_run: false })).json;
    for (let i = 0; i < 50 && (await api(fb, 'GET', `operations/${op.id}`)).json.state === 'running'; i++) await sleep(100);
  }
  fs.writeFileSync(path.join(fb.dir, 'broken'), '1');
  await api(fb, 'POST', 'queues/action:api/pause', undefined, fb.secrets.ops);
  await api(fb, 'POST', 'queues/action:api/resume', undefined, fb.secrets.ops);
  const oneDead = (await api(fb, 'GET', 'dead?limit=1')).json.items[0];
  await api(fb, 'POST', `jobs/${oneDead.id}/retry`, undefined, fb.secrets.ops);
  await waitIdle(fb, 0);
  const wobbly = (await api(fb, 'GET', `jobs?q=wobbly&type=slack.event&limit=1`)).json.items[0];
  const proxy = await startProxy(fb);
  cleanups.push(() => proxy.stop());

  const browser = await launchBrowser();
  cleanups.push(() => browser.close());
  for (const scheme of ['light', 'dark']) {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: scheme });
    const page = await ctx.newPage();
    await page.emulateMedia({ colorScheme: scheme });
    await page.goto(proxy.base);
    await page.waitForSelector('#login-token');
    await page.screenshot({ path: path.join(out, `login-${scheme}.png`) });
    await login(page, proxy.base, fb.secrets.admin);
    // The theme toggle: flip twice, so the stored choice equals the scheme.
    await page.click('#theme');
    await page.click('#theme');
    const theme = await page.evaluate(() => document.documentElement.dataset.theme);
    if (theme !== scheme) throw new Error(`theme toggle left ${theme}, wanted ${scheme}`);
    // Dashboard with some live traffic, so the sparklines have a few points.
    await visit(page, proxy.base, '#/', 'dashboard');
    for (let i = 0; i < 24; i++) {
      await postSlack(fb, { channel: `C${(i % 3) + 1}`, text: i % 7 === 0 ? `boom fail live ${i}` : `live ${i}` });
      await sleep(900);
    }
    await page.screenshot({ path: path.join(out, `dashboard-${scheme}.png`) });
    for (const [name, hash] of PAGES.slice(1)) {
      await visit(page, proxy.base, hash, name);
      await page.screenshot({ path: path.join(out, `${name}-${scheme}.png`) });
    }
    await visit(page, proxy.base, '#/jobs?key=slack.channel%3AC2', 'jobs');
    await page.screenshot({ path: path.join(out, `jobs-search-${scheme}.png`) });
    await visit(page, proxy.base, `#/jobs/${wobbly.id}`, 'job');
    await page.screenshot({ path: path.join(out, `job-${scheme}.png`) });
    await visit(page, proxy.base, `#/jobs/${oneDead.id}`, 'job');
    await page.screenshot({ path: path.join(out, `job-replayed-${scheme}.png`) });
    await visit(page, proxy.base, '#/queues/slack.event', 'queue');
    await page.screenshot({ path: path.join(out, `queue-${scheme}.png`) });
    await visit(page, proxy.base, '#/dead', 'dead');
    await page.click('button[data-action="replay-filter"]');
    await page.waitForSelector('.dry-result');
    await page.screenshot({ path: path.join(out, `dead-dry-run-${scheme}.png`) });
    await ctx.close();
  }
  console.log(`screenshots in ${out}: ${fs.readdirSync(out).filter((f) => f.endsWith('.png')).length}`);
} finally {
  for (const fn of cleanups.reverse()) {
    try { await fn(); } catch { /* best effort */ }
  }
}
process.exit(0);
