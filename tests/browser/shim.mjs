// A stand-in for the console's server side, for developing the UI against a firebreak
// binary that does not serve it yet: serves src/admin/ui with the nonce and the CSP,
// implements POST login / GET api/v1/session / POST logout with a cookie and a CSRF
// token, refuses cross-origin and CSRF-less non-GETs, and forwards api/v1/* to the admin
// listener with the session's bearer token. Not used once the real server serves /admin/.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { uiDir } from './lib.mjs';

const TYPES = { '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.html': 'text/html' };

export async function startShim(fb) {
  const tokens = [
    { name: 'admin', scope: 'admin', token: fb.secrets.admin },
    { name: 'ops', scope: 'operate', token: fb.secrets.ops },
    { name: 'viewer', scope: 'read', token: fb.secrets.read },
  ];
  const sessions = new Map(); // sid -> {name, scope, token, csrf, expires_at_ms}
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    let p = url.pathname;
    const send = (status, obj, headers = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
      res.end(typeof obj === 'string' ? obj : JSON.stringify(obj));
    };
    if (p === '/admin') { res.writeHead(308, { location: 'admin/' }); res.end(); return; }
    if (!p.startsWith('/admin/')) { send(404, { error: 'not found' }); return; }
    p = p.slice('/admin/'.length);
    const sid = /(?:^|;\s*)fb_session=([^;]+)/.exec(req.headers.cookie || '')?.[1];
    const sess = sid && sessions.get(sid);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const origin = req.headers.origin;
      if (origin && origin !== `http://${req.headers.host}`) { send(403, { error: 'cross-origin request refused' }); return; }
      if (p !== 'login' && (!sess || req.headers['x-csrf-token'] !== sess.csrf)) {
        send(sess ? 403 : 401, { error: sess ? 'missing or wrong X-CSRF-Token' : 'not logged in' });
        return;
      }
    }
    if (p === '' || p === 'index.html') {
      const nonce = crypto.randomBytes(16).toString('base64');
      const html = fs.readFileSync(path.join(uiDir, 'index.html'), 'utf8').replaceAll('{{nonce}}', nonce);
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store',
        'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}' 'strict-dynamic'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
      });
      res.end(html);
      return;
    }
    if (p.startsWith('assets/')) {
      const file = path.resolve(uiDir, p.slice('assets/'.length));
      if (!file.startsWith(uiDir + path.sep) || file.endsWith('index.html') || !fs.existsSync(file)) { send(404, { error: 'no such asset' }); return; }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-cache' });
      res.end(fs.readFileSync(file));
      return;
    }
    if (p === 'login' && req.method === 'POST') {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      let body = {};
      try { body = JSON.parse(Buffer.concat(chunks).toString()); } catch { /* empty */ }
      const t = tokens.find((x) => x.token === body.token);
      if (!t) { send(401, { error: 'wrong token' }); return; }
      const id = crypto.randomBytes(16).toString('hex');
      const s = { name: t.name, scope: t.scope, token: t.token, csrf: crypto.randomBytes(16).toString('hex'), expires_at_ms: Date.now() + 8 * 3600e3 };
      sessions.set(id, s);
      send(200, { name: s.name, scope: s.scope, csrf: s.csrf, expires_at_ms: s.expires_at_ms }, { 'set-cookie': `fb_session=${id}; HttpOnly; SameSite=Strict` });
      return;
    }
    if (p === 'logout' && req.method === 'POST') {
      sessions.delete(sid);
      send(200, { ok: true }, { 'set-cookie': 'fb_session=; Max-Age=0' });
      return;
    }
    if (!sess) { send(401, { error: 'not logged in' }); return; }
    if (p === 'api/v1/session') {
      send(200, { name: sess.name, scope: sess.scope, csrf: sess.csrf, expires_at_ms: sess.expires_at_ms });
      return;
    }
    const headers = { ...req.headers, authorization: `Bearer ${sess.token}` };
    delete headers.cookie;
    const up = http.request({ host: '127.0.0.1', port: fb.adminPort, method: req.method, path: '/admin/' + p + url.search, headers, agent: false }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('error', (e) => { if (!res.headersSent) res.writeHead(502); res.end(String(e)); });
    req.pipe(up);
    res.on('close', () => up.destroy());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  return {
    port, adminPort: port, origin: `http://127.0.0.1:${port}`, base: `http://127.0.0.1:${port}/admin/`,
    async stop() { server.closeAllConnections?.(); await new Promise((r) => server.close(r)); },
  };
}
