// Audit: every change through the API or the CLI, newest first; live from SSE `audit`.
import { h, num, table, time, qs } from '../dom.js';
import { pager } from './jobs.js';

function target(e) {
  const t = e.target || '';
  if (/^[0-9A-HJKMNP-TV-Z]{26}$/.test(t)) return h('a', { class: 'mono', href: `#/jobs/${encodeURIComponent(t)}` }, t);
  return h('span', { class: 'mono' }, t);
}

function detail(d) {
  if (!d || (typeof d === 'object' && !Object.keys(d).length)) return '';
  return h('code', { class: 'detail', title: JSON.stringify(d, null, 2) }, JSON.stringify(d));
}

const columns = [
  { label: 'At', cell: (e) => time(e.at, { millis: true }) },
  { label: 'Actor', cell: (e) => h('strong', null, e.actor) },
  { label: 'Action', cell: (e) => h('span', { class: ['badge', 'action', `act-${e.action.split('.')[0]}`] }, e.action) },
  { label: 'Target', cell: target },
  { label: 'Count', num: true, cell: (e) => (e.count === undefined || e.count === null ? '' : num(e.count)) },
  { label: 'Detail', class: 'detail-cell', cell: (e) => detail(e.detail) },
];

export async function renderAudit(ctx, root) {
  const params = ctx.params;
  const page = await ctx.api(`api/v1/audit${qs({ limit: 50, cursor: params.cursor })}`);
  const items = page.items;
  const holder = h('div');
  const draw = () => holder.replaceChildren(table(columns, items, { empty: 'No changes recorded yet. Retries, cancels, pauses, replays and deletes show up here.' }));
  draw();
  root.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Audit log'),
      h('span', { class: 'muted small' }, `${num(page.total_estimate)} entries${params.cursor ? '' : ' · new ones appear live'}`)),
    holder,
    h('div', { class: 'result-foot' }, pager('#/audit', params, page)));
  if (!params.cursor) {
    ctx.on('audit', (e) => {
      items.unshift(e);
      draw();
      const row = holder.querySelector('tbody tr');
      if (row) row.classList.add('flash');
    });
  }
}
