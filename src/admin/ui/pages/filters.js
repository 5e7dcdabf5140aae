// The search form shared by Jobs and Dead letters. Filters live in the hash URL.
import { h, qs } from '../dom.js';

export const JOB_STATES = ['ready', 'delayed', 'in_flight', 'dead', 'succeeded', 'cancelled', 'replayed'];
const FILTER_KEYS = ['key', 'trace_id', 'q', 'state', 'type', 'source', 'from', 'to', 'fingerprint'];

// datetime-local ("2026-12-04T10:15") -> epoch ms; epoch ms and RFC 3339 pass through.
function apiTime(v) {
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return v;
  if (/[zZ]|[+-]\d\d:\d\d$/.test(v)) return v;
  const t = new Date(v).getTime();
  return Number.isNaN(t) ? v : String(t);
}

// The filter as the API takes it (query parameters or a bulk operation's "filter").
export function apiFilter(params, { dead = false } = {}) {
  const f = {};
  for (const k of FILTER_KEYS) {
    if (!params[k]) continue;
    if (k === 'state' && dead) continue;
    if (k === 'fingerprint' && !dead) continue;
    f[k] = k === 'from' || k === 'to' ? apiTime(params[k]) : params[k];
  }
  return f;
}

export function hasFilter(params, opts) {
  return Object.keys(apiFilter(params, opts)).length > 0;
}

// Fetches one page; when a page comes back empty but with a cursor (the server examined
// its share of the index without a match), follows a few more pages at once.
export async function fetchPage(ctx, base, params, { limit = 50, dead = false } = {}) {
  const filter = apiFilter(params, { dead });
  let cursor = params.cursor;
  const items = [];
  let next = null;
  let total = null;
  let pages = 0;
  const t0 = performance.now();
  do {
    const r = await ctx.api(`${base}${qs({ ...filter, limit, cursor })}`);
    if (total === null) total = r.total_estimate;
    items.push(...r.items);
    next = r.next_cursor;
    cursor = next;
    pages++;
  } while (!items.length && next && pages < 5 && performance.now() - t0 < 2000);
  return { items, next_cursor: next, total_estimate: total, pages };
}

function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), input, hint ? h('span', { class: 'field-hint' }, hint) : null);
}

// A search form; onSubmit(params) with the non-empty values.
export function filterForm(ctx, params, { dead = false, onSubmit, resetHref }) {
  const inp = (name, attrs = {}) => h('input', { name, id: `f-${name}`, value: params[name] || '', autocomplete: 'off', spellcheck: 'false', ...attrs });
  const key = inp('key', { placeholder: 'slack.channel:C123', 'data-search': '', 'aria-keyshortcuts': '/', class: 'wide' });
  const types = h('datalist', { id: 'dl-types' });
  const sources = h('datalist', { id: 'dl-sources' });
  const state = dead ? null : h('select', { name: 'state', id: 'f-state' },
    h('option', { value: '' }, 'any'),
    JOB_STATES.map((s) => h('option', { value: s, selected: params.state === s }, s.replace('_', ' '))));
  const form = h('form', { class: 'filters card', role: 'search', 'aria-label': dead ? 'Filter dead letters' : 'Search jobs' },
    h('div', { class: 'filter-row' },
      field('Search key  ( / )', key),
      field('Text in payload', inp('q', { placeholder: 'substring', type: 'search' })),
      field('Trace id', inp('trace_id', { placeholder: '32 hex digits', pattern: '[0-9a-fA-F]{32}', class: 'mono', size: 34 })),
      dead ? field('Fingerprint', inp('fingerprint', { placeholder: 'error fingerprint', class: 'mono' })) : field('State', state),
    ),
    h('div', { class: 'filter-row' },
      field('Type', inp('type', { list: 'dl-types', placeholder: 'any' })),
      field('Source', inp('source', { list: 'dl-sources', placeholder: 'any' })),
      field('Enqueued from', inp('from', { type: 'datetime-local', step: 1 })),
      field('to', inp('to', { type: 'datetime-local', step: 1 })),
      h('div', { class: 'filter-buttons' },
        h('button', { type: 'submit', class: 'btn primary' }, dead ? 'Filter' : 'Search'),
        h('a', { class: 'btn ghost', href: resetHref }, 'Clear')),
    ),
    types, sources);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const out = {};
    for (const [k, v] of new FormData(form).entries()) if (String(v).trim()) out[k] = String(v).trim();
    onSubmit(out);
  });
  // Suggestions, after the page is up (not on the render path).
  setTimeout(() => {
    if (!ctx.alive()) return;
    ctx.api('api/v1/queues').then((r) => {
      for (const q of r.items) types.appendChild(h('option', { value: q.job_type }));
    }, () => {});
    ctx.api('api/v1/sources').then((r) => {
      for (const s of r.items) sources.appendChild(h('option', { value: s.name }));
    }, () => {});
  }, 300);
  return form;
}

export function filterSummary(params, opts) {
  const f = apiFilter(params, opts);
  const parts = Object.entries(f).map(([k, v]) => `${k}=${params[k]}`);
  return parts.length ? parts.join(' · ') : 'no filter';
}
