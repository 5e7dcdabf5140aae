// Queues: depth by state per job type, pause/resume (operate).
import { h, clear, num, secs, rate, pct, table, badge, stat, section, emptyBox, time } from '../dom.js';

const STATES = ['ready', 'delayed', 'in_flight', 'dead', 'succeeded', 'cancelled', 'replayed'];

function pauseButton(ctx, q, after) {
  if (!ctx.can('operate')) return null;
  const verb = q.paused ? 'resume' : 'pause';
  const btn = h('button', {
    type: 'button', class: ['btn', 'small', q.paused ? 'primary' : 'warn'],
    dataset: { action: verb, type: q.job_type },
    title: q.paused ? 'Workers claim this type again' : 'Workers stop claiming this type; ingress keeps accepting',
  }, q.paused ? 'Resume' : 'Pause');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const r = await ctx.api(`api/v1/queues/${encodeURIComponent(q.job_type)}/${verb}`, { method: 'POST' });
      q.paused = r.paused;
      ctx.toast(`${q.job_type} ${r.paused ? 'paused' : 'resumed'}`);
      after();
    } catch (e) {
      ctx.toast(`${verb} ${q.job_type}: ${e.message}`, 'error');
      btn.disabled = false;
    }
  });
  return btn;
}

function stateLink(type, st, n) {
  if (!n) return h('span', { class: 'muted' }, '0');
  const href = st === 'dead' ? `#/dead?type=${encodeURIComponent(type)}` : `#/jobs?type=${encodeURIComponent(type)}&state=${st}`;
  return h('a', { href, class: st === 'dead' ? 'dead-link' : null }, num(n));
}

export async function renderQueues(ctx, root) {
  const list = await ctx.api('api/v1/queues');
  const details = await Promise.all(list.items.map((q) => ctx.api(`api/v1/queues/${encodeURIComponent(q.job_type)}`).catch(() => q)));
  const rows = details;
  const holder = h('div');
  const draw = () => {
    clear(holder).appendChild(rows.length ? table([
      { label: 'Job type', cell: (q) => h('a', { href: `#/queues/${encodeURIComponent(q.job_type)}` }, q.job_type) },
      { label: 'Status', cell: (q) => (q.paused ? badge('paused') : badge('running', 'b-active')) },
      ...STATES.map((st) => ({ label: st.replace('_', ' '), num: true, cell: (q) => stateLink(q.job_type, st, q[st]) })),
      { label: 'Oldest ready', num: true, cell: (q) => (q.oldest_ready_age_seconds === null || q.oldest_ready_age_seconds === undefined ? '—' : secs(q.oldest_ready_age_seconds)) },
      ...(ctx.can('operate') ? [{ label: '', class: 'actions', cell: (q) => pauseButton(ctx, q, draw) }] : []),
    ], rows, { rowClass: (q) => (q.paused ? 'row-paused' : null) }) : emptyBox('No queues yet', 'Job types appear here once configured or stored.'));
  };
  draw();
  root.append(h('div', { class: 'page-head' }, h('h1', null, 'Queues'),
    h('span', { class: 'muted small' }, 'Depth by state; live from the event stream')), holder);
  ctx.on('queue', (ev) => {
    const q = rows.find((x) => x.job_type === ev.job_type);
    if (q) Object.assign(q, ev);
    else rows.push({ ...ev });
    draw();
  });
}

export async function renderQueue(ctx, root) {
  const type = decodeURIComponent(ctx.match[1]);
  const q = await ctx.api(`api/v1/queues/${encodeURIComponent(type)}`);
  const holder = h('div');
  const draw = () => {
    const c = q.capacity || {};
    clear(holder).append(
      h('div', { class: 'page-head' },
        h('h1', null, h('a', { href: '#/queues', class: 'crumb' }, 'Queues'), ' / ', q.job_type, ' ', q.paused ? badge('paused') : null),
        h('div', { class: 'head-actions' }, pauseButton(ctx, q, draw),
          h('a', { class: 'btn small', href: `#/jobs?type=${encodeURIComponent(q.job_type)}` }, 'Browse jobs'))),
      h('div', { class: 'stats' }, STATES.map((st) => stat(st.replace('_', ' '), num(q[st]), {
        href: st === 'dead' ? `#/dead?type=${encodeURIComponent(q.job_type)}` : `#/jobs?type=${encodeURIComponent(q.job_type)}&state=${st}`,
        cls: st === 'dead' && q.dead ? 'stat-bad' : null,
      }))),
      section('Capacity (last 5 min)', h('dl', { class: 'kv' },
        h('dt', null, 'Oldest ready'), h('dd', null, q.oldest_ready_at ? time(q.oldest_ready_at) : '—', q.oldest_ready_age_seconds != null ? ` (${secs(q.oldest_ready_age_seconds)} old)` : ''),
        h('dt', null, 'Arrivals'), h('dd', null, `${rate(c.arrival_rate_per_s)} (${num(c.arrived)} in ${secs(c.window_seconds)})`),
        h('dt', null, 'Finished attempts'), h('dd', null, num(c.finished)),
        h('dt', null, 'Mean job time'), h('dd', null, secs(c.mean_job_seconds)),
        h('dt', null, 'Slots needed / configured'), h('dd', null, `${num(c.concurrency_needed, 2)} / ${num(c.concurrency_configured)} (${pct(c.utilization, 1)})`),
        h('dt', null, 'Hints'), h('dd', null, c.hints && c.hints.length ? h('ul', { class: 'hints' }, c.hints.map((x) => h('li', null, x))) : 'none'))),
    );
  };
  draw();
  root.appendChild(holder);
  ctx.on('queue', (ev) => {
    if (ev.job_type !== q.job_type) return;
    Object.assign(q, ev);
    draw();
  });
}
