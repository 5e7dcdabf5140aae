// DOM building and formatting helpers. Data only ever reaches the page as text nodes or
// attribute values (never innerHTML), and never as a style attribute (the CSP forbids
// inline styles; positions and widths go through the CSSOM: el.style.width = ...).

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

function applyAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style') throw new Error('inline style attributes are not allowed (CSP); use classes or el.style');
    else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

// h('a', {href: '#/jobs', class: 'x'}, 'text', child, [more])
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  applyAttrs(el, attrs);
  append(el, children);
  return el;
}

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  applyAttrs(el, attrs);
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// ---- formatting -------------------------------------------------------------------

export function num(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function rate(n) {
  if (n === null || n === undefined) return '—';
  if (n === 0) return '0/s';
  if (n < 0.1) return `${(n * 60).toFixed(1)}/min`;
  return `${num(n, n < 10 ? 2 : 1)}/s`;
}

export function secs(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  if (x === 0) return '0';
  if (x < 0.001) return `${(x * 1e6).toFixed(0)} µs`;
  if (x < 1) return `${(x * 1000).toFixed(x < 0.01 ? 1 : 0)} ms`;
  if (x < 120) return `${x.toFixed(x < 10 ? 2 : 1)} s`;
  if (x < 7200) return `${(x / 60).toFixed(1)} min`;
  if (x < 172800) return `${(x / 3600).toFixed(1)} h`;
  return `${(x / 86400).toFixed(1)} d`;
}

export function ms(x) {
  return x === null || x === undefined ? '—' : secs(x / 1000);
}

export function pct(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  return `${(x * 100).toFixed(digits)}%`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// Local time, "2026-12-04 10:15:01.700"; full ISO in the title.
export function ts(iso, { millis = false } = {}) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const base = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return millis ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
}

export function ago(iso) {
  if (!iso) return '—';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return '—';
  const d = (Date.now() - t) / 1000;
  if (d < 0) return `in ${secs(-d)}`;
  if (d < 1) return 'just now';
  return `${secs(d).replace(/\.\d+ /, ' ')} ago`;
}

// A <time> element: local timestamp, relative age as title.
export function time(iso, opts) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: `${iso} (${ago(iso)})` }, ts(iso, opts));
}

export function badge(state, extra) {
  return h('span', { class: ['badge', `b-${String(state).replace(/[^a-z_]/gi, '')}`, extra] }, String(state).replace('_', ' '));
}

// A horizontal bar: value in [0, 1+], with warning/critical thresholds.
export function bar(frac, { warn = 0.5, crit = 0.8, label } = {}) {
  const f = Number.isFinite(frac) ? Math.max(0, frac) : 0;
  const fill = h('span', { class: ['bar-fill', f >= crit ? 'crit' : f >= warn ? 'warn' : 'ok'] });
  fill.style.width = `${Math.min(100, f * 100).toFixed(1)}%`;
  return h('span', { class: 'bar', title: label || pct(f, 1), role: 'img', 'aria-label': label || pct(f, 1) }, fill);
}

// A sparkline of numbers (oldest first) as inline SVG.
export function sparkline(values, { width = 120, height = 28, label = '' } = {}) {
  const svgEl = s('svg', { class: 'spark', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': label });
  if (!values || values.length < 2) {
    svgEl.appendChild(s('line', { x1: 0, y1: height - 1.5, x2: width, y2: height - 1.5, class: 'spark-base' }));
    return svgEl;
  }
  const max = Math.max(...values, 1e-9);
  const min = Math.min(0, ...values);
  const span = max - min || 1;
  const step = width / (values.length - 1);
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - ((v - min) / span) * (height - 4)).toFixed(1)}`);
  svgEl.appendChild(s('polygon', { class: 'spark-area', points: `0,${height} ${pts.join(' ')} ${width},${height}` }));
  svgEl.appendChild(s('polyline', { class: 'spark-line', points: pts.join(' ') }));
  return svgEl;
}

// Hourly bars of kept jobs (GET api/v1/history): finished stacked under dead, one
// bar per hour, the hour's counts in its tooltip; hour labels every 6 bars.
export function historyChart(items, { width = 1180, height = 120 } = {}) {
  const pad = { top: 6, bottom: 18, left: 44 };
  const svgEl = s('svg', { class: 'history', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'kept jobs per hour, last 24 hours' });
  const max = Math.max(1, ...items.map((b) => b.finished + b.dead));
  const plotH = height - pad.top - pad.bottom;
  const slot = (width - pad.left) / Math.max(1, items.length);
  const y = (v) => pad.top + plotH - (v / max) * plotH;
  svgEl.appendChild(s('line', { class: 'history-axis', x1: pad.left, x2: width, y1: y(0), y2: y(0) }));
  svgEl.appendChild(s('text', { class: 'history-label', x: pad.left - 6, y: y(max) + 8, 'text-anchor': 'end' }, num(max)));
  svgEl.appendChild(s('text', { class: 'history-label', x: pad.left - 6, y: y(0), 'text-anchor': 'end' }, '0'));
  items.forEach((b, i) => {
    const x = pad.left + i * slot + 1;
    const w = Math.max(1, slot - 2);
    const start = new Date(b.start);
    const hour = start.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const g = s('g', null, s('title', null, `${hour}: ${num(b.finished)} finished, ${num(b.dead)} dead`));
    if (b.finished) g.appendChild(s('rect', { class: 'history-finished', x, width: w, y: y(b.finished), height: y(0) - y(b.finished) }));
    if (b.dead) g.appendChild(s('rect', { class: 'history-dead', x, width: w, y: y(b.finished + b.dead), height: y(b.finished) - y(b.finished + b.dead) }));
    svgEl.appendChild(g);
    if (i % 6 === 0 || i === items.length - 1) {
      svgEl.appendChild(s('text', { class: 'history-label', x: x + w / 2, y: height - 4, 'text-anchor': 'middle' }, i === items.length - 1 ? 'now' : hour));
    }
  });
  return svgEl;
}

// A table. columns: [{label, cell: row => node|string, class, num: bool}]
export function table(columns, rows, { empty = 'Nothing here.', caption, rowClass } = {}) {
  const thead = h('thead', null, h('tr', null, columns.map((c) => h('th', { class: [c.num && 'num', c.class], scope: 'col', title: c.title }, c.label))));
  const tbody = h('tbody');
  if (!rows.length) {
    tbody.appendChild(h('tr', { class: 'empty-row' }, h('td', { colspan: columns.length }, h('div', { class: 'empty' }, empty))));
  }
  for (const r of rows) {
    tbody.appendChild(h('tr', { class: rowClass ? rowClass(r) : null }, columns.map((c) => h('td', { class: [c.num && 'num', c.class] }, c.cell(r)))));
  }
  return h('div', { class: 'table-wrap' }, h('table', { class: 'grid' }, caption ? h('caption', null, caption) : null, thead, tbody));
}

export function pretty(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

export function code(value, cls = 'json') {
  return h('pre', { class: ['code', cls] }, typeof value === 'string' ? value : pretty(value));
}

export function loading(what = 'Loading…') {
  return h('div', { class: 'state-box loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), what);
}

export function errorBox(err, retry) {
  return h('div', { class: 'state-box error', role: 'alert' },
    h('strong', null, 'Could not load: '), err && err.message ? err.message : String(err),
    retry ? h('button', { type: 'button', class: 'btn small', on: { click: retry } }, 'Try again') : null);
}

export function emptyBox(title, hint) {
  return h('div', { class: 'state-box empty-state' }, h('strong', null, title), hint ? h('div', { class: 'muted' }, hint) : null);
}

export function stat(label, value, { sub, spark, href, cls } = {}) {
  const inner = [h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, value), sub ? h('div', { class: 'stat-sub' }, sub) : null, spark || null];
  return href ? h('a', { class: ['stat', 'card', cls], href }, inner) : h('div', { class: ['stat', 'card', cls] }, inner);
}

export function section(title, ...children) {
  return h('section', { class: 'panel' }, h('h2', null, title), children);
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
  const str = u.toString();
  return str ? `?${str}` : '';
}

export function short(id, n = 10) {
  return id && id.length > n + 2 ? `${id.slice(0, n)}…` : id || '';
}
