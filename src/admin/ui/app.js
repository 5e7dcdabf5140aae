// firebreak console: session, API client, hash router, live events, theme.
// Every URL is relative: the page may be served under any prefix (<prefix>/admin/).
import { h, clear, loading, errorBox } from './dom.js';
import { renderLogin } from './pages/login.js';
import { renderDashboard } from './pages/dashboard.js';
import { renderQueues, renderQueue } from './pages/queues.js';
import { renderJobs } from './pages/jobs.js';
import { renderJob } from './pages/job.js';
import { renderDead } from './pages/dead.js';
import { renderIntegrations, renderSources, renderCapacity } from './pages/system.js';
import { renderAudit } from './pages/audit.js';

const RANK = { read: 1, operate: 2, admin: 3 };

const state = {
  session: null,
  sessionReady: null, // resolves once the session is known (pages' data waits for it)
  gen: 0,
  cleanups: [],
  es: null,
  subs: new Map(), // event name -> Set<fn>
  live: 'off',
};

const $ = (id) => document.getElementById(id);

// ---- API ---------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD' && state.session && state.session.csrf) {
    headers['X-CSRF-Token'] = state.session.csrf;
  }
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, credentials: 'same-origin', cache: 'no-store', signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `the server did not answer (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (res.status === 401 && path !== 'login') {
    loggedOut('Your session has ended. Log in again.');
    throw new ApiError(401, (data && data.error) || 'not logged in', data);
  }
  if (!res.ok) {
    let msg = (data && data.error) || `${res.status} ${res.statusText || 'error'}`;
    const after = res.headers.get('Retry-After');
    if (res.status === 429 && after) msg += ` (try again in ${after} s)`;
    throw new ApiError(res.status, msg, data);
  }
  return data;
}

export function can(scope) {
  return !!state.session && (RANK[state.session.scope] || 0) >= RANK[scope];
}

// ---- toasts ------------------------------------------------------------------------

export function toast(message, kind = 'ok') {
  const t = h('div', { class: ['toast', kind], role: kind === 'error' ? 'alert' : 'status' }, message);
  $('toasts').appendChild(t);
  setTimeout(() => t.remove(), kind === 'error' ? 9000 : 5000);
}

// ---- live events (SSE) ---------------------------------------------------------------

function setLive(s) {
  state.live = s;
  const el = $('live');
  el.className = `live live-${s}`;
  el.title = { on: 'Live: receiving server events', off: 'Live updates paused', connecting: 'Connecting to live events…' }[s];
  el.lastChild.textContent = s === 'on' ? 'live' : s === 'connecting' ? 'connecting' : 'paused';
}

function openEvents() {
  if (state.es || !state.session || document.hidden) return;
  const es = new EventSource('api/v1/events');
  state.es = es;
  setLive('connecting');
  es.onopen = () => setLive('on');
  for (const name of ['queue', 'operation', 'audit', 'error']) {
    es.addEventListener(name, (e) => {
      if (e.data === undefined) return; // the connection's own error event, handled below
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      for (const fn of state.subs.get(name) || []) {
        try { fn(data); } catch (err) { console.warn('event handler', err); }
      }
    });
  }
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      // Refused (401, 429...): find out whether the session is still good, retry later.
      closeEvents();
      setLive('off');
      api('api/v1/session').then(() => setTimeout(openEvents, 5000), () => {});
    } else {
      setLive('connecting');
    }
  };
}

function closeEvents() {
  if (state.es) {
    state.es.close();
    state.es = null;
  }
  setLive('off');
}

function subscribe(name, fn) {
  if (!state.subs.has(name)) state.subs.set(name, new Set());
  state.subs.get(name).add(fn);
  return () => state.subs.get(name).delete(fn);
}

window.addEventListener('pagehide', () => closeEvents());
document.addEventListener('visibilitychange', () => {
  if (document.hidden) closeEvents();
  else if (state.session) openEvents();
});

// ---- theme ---------------------------------------------------------------------------

const darkQuery = window.matchMedia('(prefers-color-scheme: dark)');

function effectiveTheme() {
  return document.documentElement.dataset.theme || (darkQuery.matches ? 'dark' : 'light');
}

function applyTheme() {
  let saved = null;
  try { saved = localStorage.getItem('fb-theme'); } catch { /* storage off */ }
  if (saved === 'light' || saved === 'dark') document.documentElement.dataset.theme = saved;
  else delete document.documentElement.dataset.theme;
  const btn = $('theme');
  const dark = effectiveTheme() === 'dark';
  btn.setAttribute('aria-pressed', dark ? 'true' : 'false');
  btn.title = dark ? 'Switch to light mode' : 'Switch to dark mode';
  btn.lastChild.textContent = dark ? 'Light' : 'Dark';
}

function toggleTheme() {
  const next = effectiveTheme() === 'dark' ? 'light' : 'dark';
  try { localStorage.setItem('fb-theme', next); } catch { /* storage off */ }
  applyTheme();
}

// ---- router ---------------------------------------------------------------------------

const ROUTES = [
  [/^\/?$/, 'dashboard', 'Dashboard', renderDashboard, '#/'],
  [/^\/queues$/, 'queues', 'Queues', renderQueues, '#/queues'],
  [/^\/queues\/(.+)$/, 'queue', 'Queue', renderQueue, '#/queues'],
  [/^\/jobs$/, 'jobs', 'Jobs', renderJobs, '#/jobs'],
  [/^\/jobs\/([^/]+)$/, 'job', 'Job', renderJob, '#/jobs'],
  [/^\/dead$/, 'dead', 'Dead letters', renderDead, '#/dead'],
  [/^\/integrations$/, 'integrations', 'Integrations', renderIntegrations, '#/integrations'],
  [/^\/sources$/, 'sources', 'Sources', renderSources, '#/sources'],
  [/^\/capacity$/, 'capacity', 'Capacity', renderCapacity, '#/capacity'],
  [/^\/audit$/, 'audit', 'Audit', renderAudit, '#/audit'],
];

export function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const i = raw.indexOf('?');
  const path = i < 0 ? raw : raw.slice(0, i);
  const params = Object.fromEntries(new URLSearchParams(i < 0 ? '' : raw.slice(i + 1)));
  return { path, params };
}

function runCleanups() {
  for (const fn of state.cleanups.splice(0)) {
    try { fn(); } catch { /* ignore */ }
  }
}

function markRendered(name) {
  performance.mark(`fb:rendered:${name}`);
  document.documentElement.dataset.rendered = name;
}

async function route() {
  delete document.documentElement.dataset.rendered;
  const gen = ++state.gen;
  runCleanups();
  const main = $('main');
  if (!state.session && !state.sessionReady) return;
  const { path, params } = parseHash();
  const found = ROUTES.find(([re]) => re.test(path));
  if (!found) {
    clear(main).appendChild(errorBox(new Error(`no page at #${path}`)));
    markRendered('notfound');
    return;
  }
  const [re, name, title, render, navHref] = found;
  const match = path.match(re);
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === navHref) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${title} · firebreak`;
  const alive = () => gen === state.gen;
  // Requests go out at once; their answers wait for the session (so scope-dependent
  // buttons are right) when it is still being checked in parallel.
  const ctxApi = (p, o) => (state.session ? api(p, o) : Promise.all([api(p, o), state.sessionReady]).then(([d]) => d));
  const ctx = {
    name, params, match, alive, api: ctxApi, can, toast,
    session: state.session,
    on: (event, fn) => state.cleanups.push(subscribe(event, (d) => alive() && fn(d))),
    cleanup: (fn) => state.cleanups.push(fn),
    // Runs fn every `period` ms while the page is shown and the tab visible; at once
    // again when the tab comes back.
    every(period, fn) {
      let timer = null;
      const tick = async () => {
        timer = null;
        if (!alive()) return;
        if (!document.hidden) {
          try { await fn(); } catch { /* shown by fn */ }
        }
        if (alive() && !document.hidden) timer = setTimeout(tick, period);
      };
      const onVis = () => {
        if (document.hidden) { clearTimeout(timer); timer = null; } else if (!timer) tick();
      };
      document.addEventListener('visibilitychange', onVis);
      timer = setTimeout(tick, period);
      state.cleanups.push(() => { clearTimeout(timer); document.removeEventListener('visibilitychange', onVis); });
    },
    // Replaces the hash (filters) and re-routes.
    go(hash) {
      if (location.hash === hash) route();
      else location.hash = hash;
    },
  };
  if (!main.querySelector('.page')) clear(main).appendChild(loading());
  const root = h('div', { class: `page page-${name}` });
  try {
    await render(ctx, root);
  } catch (err) {
    if (!alive()) return;
    if (err && err.status === 401) return;
    root.appendChild(errorBox(err, () => route()));
  }
  if (!alive()) return;
  clear(main).appendChild(root);
  markRendered(name);
}

// ---- session ---------------------------------------------------------------------------

const HINT = 'fb-session-hint';
function hint(on) {
  try { if (on) localStorage.setItem(HINT, '1'); else localStorage.removeItem(HINT); } catch { /* storage off */ }
}
function hinted() {
  try { return localStorage.getItem(HINT) === '1'; } catch { return false; }
}

function showTopbar() {
  document.body.dataset.scope = state.session.scope;
  $('topbar').hidden = false;
  $('who-name').textContent = state.session.name;
  $('who-scope').textContent = state.session.scope;
  $('who-scope').className = `badge scope scope-${state.session.scope}`;
  hint(true);
}

function showApp() {
  showTopbar();
  openEvents();
  route();
}

function loggedOut(message) {
  const wasIn = !!state.session;
  state.session = null;
  state.sessionReady = null;
  hint(false);
  state.gen++;
  runCleanups();
  closeEvents();
  delete document.body.dataset.scope;
  if (!wasIn && document.querySelector('.login')) return;
  $('topbar').hidden = true;
  document.title = 'Log in · firebreak';
  delete document.documentElement.dataset.rendered;
  renderLogin(clear($('main')), {
    message,
    async submit(token) {
      const s = await api('login', { method: 'POST', body: { token } });
      state.session = s;
      showApp();
    },
  });
  markRendered('login');
}

async function logout() {
  try {
    await api('logout', { method: 'POST' });
  } catch (e) {
    if (e.status !== 401) toast(`Logout failed: ${e.message}`, 'error');
  }
  loggedOut('Logged out.');
}

async function boot() {
  applyTheme();
  darkQuery.addEventListener('change', applyTheme);
  $('theme').addEventListener('click', toggleTheme);
  $('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', () => { if (state.session) route(); });
  document.addEventListener('keydown', (e) => {
    if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    const search = document.querySelector('[data-search]');
    if (search) {
      e.preventDefault();
      search.focus();
      search.select?.();
    }
  });
  $('main').appendChild(loading('Checking your session…'));
  // Logged in before (a hint, not a secret): ask for the session and the page's data at
  // once. Otherwise the session first, so a visitor's first load makes one 401, not two.
  const check = api('api/v1/session').then((s) => { state.session = s; return s; });
  state.sessionReady = check;
  check.catch(() => {});
  const parallel = hinted();
  if (parallel) route();
  try {
    await check;
  } catch (e) {
    if (e.status !== 401) loggedOut(`Could not check the session: ${e.message}`);
    return; // 401: api() showed the login form
  }
  showTopbar();
  openEvents();
  if (!parallel) route();
}

boot();
