// Shared set-up for the console's browser tests and screenshots: a temp dir with config,
// secrets and a bot, a firebreak process, a fake upstream for the bot's actions, signed
// Slack webhooks to seed it, a prefixing reverse proxy, and headless Debian chromium.
// Everything started here is tracked by PID and ended in stop() / on exit.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const uiDir = path.resolve(here, '../../src/admin/ui');
export const PREFIX = '/ops/firebreak';

const children = new Set(); // ChildProcess objects we spawned
const servers = new Set(); // node http servers we created
function killChildren() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try { process.kill(c.pid, 'SIGTERM'); } catch { /* gone */ }
    }
  }
}
process.on('exit', killChildren);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { killChildren(); process.exit(130); });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const hex = (n) => crypto.randomBytes(n).toString('hex');

// The bot: slack.event jobs post one action to the "api" integration; events whose text
// contains "fail" fail while the file `broken` exists ("boom" without retry, "flaky" with
// one retry), so replaying them after removing the file succeeds.
const BOT = String.raw`
import json, os, sys, time
broken = sys.argv[1]
for line in sys.stdin:
    env = json.loads(line)
    p = env.get("payload") or {}
    ev = p.get("event") or {}
    text = ev.get("text", "")
    out = {"id": env["id"], "ok": True}
    if env["type"] == "slack.event":
        time.sleep(0.005 + (hash(text) % 20) / 1000.0)
        if "wobbly" in text and env.get("attempt", 1) == 1:
            out = {"id": env["id"], "ok": False, "retry": True, "error": "upstream timed out after 2000 ms"}
        elif "fail" in text and os.path.exists(broken):
            if "boom" in text:
                out = {"id": env["id"], "ok": False, "retry": False,
                       "error": "channel " + ev.get("channel", "?") + " is archived (code 4" + str(len(text)) + ")"}
            else:
                out = {"id": env["id"], "ok": False, "retry": True,
                       "error": "upstream answered 503 after " + str(100 + len(text)) + " ms"}
        else:
            out["actions"] = [{"integration": "api", "method": "POST", "path": "/chat.postMessage",
                               "json": {"channel": ev.get("channel"), "text": "ok"}}]
    print(json.dumps(out), flush=True)
`;

// Starts firebreak with three admin tokens (admin/operate/read), one Slack source and
// one integration whose upstream is a local node server. opts.queuePath: use that store
// (a pre-seeded one) instead of a fresh file.
export async function startFirebreak(opts = {}) {
  const bin = path.resolve(process.env.FIREBREAK_BIN || 'build/release/firebreak');
  if (!fs.existsSync(bin)) throw new Error(`firebreak binary not found: ${bin} (set FIREBREAK_BIN)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fb-console-'));
  const secrets = {
    admin: 'adm_' + hex(24), ops: 'ops_' + hex(24), read: 'rd_' + hex(24),
    slack: 'slk_' + hex(20), api: 'api_' + hex(20),
  };
  for (const [k, v] of Object.entries(secrets)) fs.writeFileSync(path.join(dir, `${k}.secret`), v);
  fs.writeFileSync(path.join(dir, 'bot.py'), BOT);
  fs.writeFileSync(path.join(dir, 'broken'), '1');

  const upstream = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      }, 3 + Math.floor(Math.random() * 15));
    });
  });
  servers.add(upstream);
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));

  const port = await freePort();
  const adminPort = await freePort();
  const queuePath = opts.queuePath || path.join(dir, 'queue.db');
  const sec = (k) => `{ file = "${path.join(dir, k + '.secret')}" }`;
  const config = `[server]
listen = "127.0.0.1:${port}"
threads = 2
admin_token = ${sec('admin')}
admin_listen = "127.0.0.1:${adminPort}"
[[server.admin_tokens]]
name = "ops"
token = ${sec('ops')}
scope = "operate"
[[server.admin_tokens]]
name = "viewer"
token = ${sec('read')}
scope = "read"
[queue]
path = "${queuePath}"
durability = "process"
[worker]
sidecar = "127.0.0.1:0"
[[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = ${sec('slack')}
job = "slack.event"
[[jobs]]
type = "slack.event"
handler = { command = ["/usr/bin/python3", "${path.join(dir, 'bot.py')}", "${path.join(dir, 'broken')}"] }
concurrency = 4
max_attempts = 2
[[integrations]]
name = "api"
base_url = "http://127.0.0.1:${upstream.address().port}"
auth = { bearer = ${sec('api')} }
`;
  const configPath = path.join(dir, 'firebreak.toml');
  fs.writeFileSync(configPath, config);
  const env = { ...process.env };
  if (opts.uiDir || process.env.FIREBREAK_ADMIN_UI_DIR) {
    env.FIREBREAK_ADMIN_UI_DIR = opts.uiDir || process.env.FIREBREAK_ADMIN_UI_DIR;
  }
  const log = fs.openSync(path.join(dir, 'firebreak.log'), 'a');
  const child = spawn(bin, ['run', '-c', configPath], { env, stdio: ['ignore', log, log] });
  children.add(child);
  const fb = {
    dir, bin, secrets, port, adminPort, child, configPath, upstream,
    ingress: `http://127.0.0.1:${port}`,
    adminOrigin: `http://127.0.0.1:${adminPort}`,
    adminBase: `http://127.0.0.1:${adminPort}/admin/`,
    log: () => { try { return fs.readFileSync(path.join(dir, 'firebreak.log'), 'utf8'); } catch { return ''; } },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, 'SIGTERM');
        await Promise.race([new Promise((r) => child.once('exit', r)), sleep(5000)]);
        if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      }
      children.delete(child);
      await new Promise((r) => upstream.close(r));
      servers.delete(upstream);
      if (!opts.keepDir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 20000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`firebreak exited (${child.exitCode}):\n${fb.log()}`);
    try {
      const r = await api(fb, 'GET', 'overview');
      if (r.status === 200) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`firebreak did not answer in 20 s:\n${fb.log()}`);
    await sleep(100);
  }
  return fb;
}

// A plain HTTP request; returns {status, headers, body, json}.
export function request(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body: text, json });
      });
    });
    req.on('error', reject);
    req.setTimeout(15000, () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// The admin API with a bearer token (admin by default).
export function api(fb, method, p, body, token = fb.secrets.admin) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return request(`${fb.adminBase}api/v1/${p}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
}

let eventSeq = 0;
export async function postSlack(fb, event) {
  const id = `Ev${Date.now().toString(36)}${(eventSeq++).toString(36)}`;
  const body = JSON.stringify({
    type: 'event_callback', team_id: event.team || 'T1', event_id: id,
    event: { type: 'message', user: event.user || 'U1', channel: event.channel || 'C1', text: event.text || 'hi' },
  });
  const ts = Math.floor(Date.now() / 1000);
  const sig = 'v0=' + crypto.createHmac('sha256', fb.secrets.slack).update(`v0:${ts}:${body}`).digest('hex');
  const r = await request(`${fb.ingress}/hooks/slack`, {
    method: 'POST', body,
    headers: {
      'Content-Type': 'application/json', 'X-Slack-Request-Timestamp': String(ts), 'X-Slack-Signature': sig,
    },
  });
  if (r.status !== 200) throw new Error(`slack webhook answered ${r.status}: ${r.body}`);
  return id;
}

export const XSS_TEXT = 'look <img src=x onerror=window.__pwned=1> here';

// 60 events over channels C1..C3 (20 each) and users U1..U6; every 6th fails for good
// ("boom"), every 10th fails twice ("flaky"); one carries an HTML payload. Returns the
// expected counts.
export async function seed(fb, n = 60) {
  const expected = { perChannel: { C1: 0, C2: 0, C3: 0 }, dead: 0, total: n };
  const posts = [];
  for (let i = 0; i < n; i++) {
    const channel = `C${(i % 3) + 1}`;
    let text = `hello ${i} from the seed`;
    if (i % 6 === 5) text = `boom fail ${i}`;
    else if (i % 10 === 3) text = `flaky fail ${i}`;
    else if (i === 7) text = XSS_TEXT;
    if (text.includes('fail')) expected.dead++;
    expected.perChannel[channel]++;
    posts.push(postSlack(fb, { channel, user: `U${(i % 6) + 1}`, text }));
    if (posts.length >= 8) await Promise.all(posts.splice(0));
  }
  await Promise.all(posts);
  return expected;
}

// Waits until no slack.event job is ready, delayed or in flight.
export async function waitIdle(fb, minDead = 0, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    const r = await api(fb, 'GET', 'queues');
    last = r.body;
    if (r.status === 200) {
      const busy = r.json.items.some((q) => q.ready + q.delayed + q.in_flight > 0);
      const dead = r.json.items.reduce((s, q) => s + q.dead, 0);
      if (!busy && dead >= minDead) return r.json;
    }
    if (Date.now() > deadline) throw new Error(`jobs not processed in ${timeoutMs} ms: ${last}`);
    await sleep(200);
  }
}

// A reverse proxy serving `${PREFIX}/*` from the admin listener with the prefix stripped.
// Host is forwarded as-is, plus X-Forwarded-Host/-Proto. Cookie paths are not rewritten.
export async function startProxy(fb) {
  const server = http.createServer((req, res) => {
    if (!req.url.startsWith(PREFIX + '/')) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not under the proxy prefix');
      return;
    }
    const headers = { ...req.headers };
    headers['x-forwarded-host'] = req.headers.host;
    headers['x-forwarded-proto'] = 'http';
    const up = http.request({
      host: '127.0.0.1', port: fb.adminPort, method: req.method,
      path: req.url.slice(PREFIX.length), headers, agent: false,
    }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('error', (e) => { if (!res.headersSent) res.writeHead(502); res.end(String(e)); });
    req.pipe(up);
    res.on('close', () => up.destroy());
  });
  servers.add(server);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  return {
    port, origin: `http://127.0.0.1:${port}`, base: `http://127.0.0.1:${port}${PREFIX}/admin/`,
    async stop() {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
      servers.delete(server);
    },
  };
}

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) {
    throw new Error(`${executablePath} missing: apt-get install -y --no-install-recommends chromium`);
  }
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS });
}

// Logs in through the UI's own form. Waits for the dashboard.
export async function login(page, base, token) {
  await page.goto(base + '#/');
  await page.waitForSelector('#login-token');
  await page.fill('#login-token', token);
  await page.press('#login-token', 'Enter');
  await page.waitForSelector('body[data-scope]');
}

// Navigates by hash and waits until the page says it rendered; returns ms from the
// navigation's start to the page's fb:rendered mark.
export async function visit(page, base, hash, name, { timeout = 10000 } = {}) {
  // A full load of the page each time, so the mark's startTime is ms since navigation
  // start; a reload rather than a trip through about:blank, which (COOP) would time a
  // new renderer process too.
  const url = base + hash;
  if (!page.url().startsWith(base)) await page.goto(url);
  else await page.evaluate((u) => history.replaceState(null, '', u), url);
  await page.reload();
  await page.waitForFunction((n) => document.documentElement.dataset.rendered === n, name, { timeout });
  return page.evaluate((n) => {
    const m = performance.getEntriesByName('fb:rendered:' + n, 'mark');
    return m.length ? m[m.length - 1].startTime : NaN;
  }, name);
}

// Navigates inside the running app (a click on a link: the hash changes, the page's
// module fetches its data and draws) and returns ms from the change to its fb:rendered
// mark. `from` is a hash to stand on first, so the change is a real navigation.
export async function navigate(page, hash, name, { from = '#/sources', timeout = 10000 } = {}) {
  return page.evaluate(async ({ hash, name, from, timeout }) => {
    const until = async (ok) => {
      const end = Date.now() + timeout;
      while (!ok()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${name}`);
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const rendered = (n) => document.documentElement.dataset.rendered === n;
    if (location.hash !== from) {
      const fromName = from === '#/sources' ? 'sources' : 'audit';
      location.hash = from;
      await until(() => rendered(fromName));
    }
    const seen = performance.getEntriesByName('fb:rendered:' + name, 'mark').length;
    const t0 = performance.now();
    location.hash = hash;
    await until(() => rendered(name) &&
      performance.getEntriesByName('fb:rendered:' + name, 'mark').length > seen);
    const marks = performance.getEntriesByName('fb:rendered:' + name, 'mark');
    return marks[marks.length - 1].startTime - t0;
  }, { hash, name, from, timeout });
}

export const PAGES = [
  ['dashboard', '#/'],
  ['queues', '#/queues'],
  ['jobs', '#/jobs'],
  ['dead', '#/dead'],
  ['integrations', '#/integrations'],
  ['sources', '#/sources'],
  ['capacity', '#/capacity'],
  ['audit', '#/audit'],
];
