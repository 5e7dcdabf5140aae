// Job detail: summary, trace waterfall, attempts, actions (outbound calls), replays,
// headers and payload (always as text), Retry / Cancel / Delete by scope and state.
import { h, badge, time, ms, code, table, section, qs, emptyBox } from '../dom.js';
import { jobLink, keyChips } from './jobs.js';

const t = (iso) => (iso ? new Date(iso).getTime() : NaN);

function actionLabel(a) {
  const p = a.payload || {};
  if (p.method || p.path) return `${p.method || ''} ${p.path || ''}`.trim();
  return a.type;
}

// succeeded | retry | failed (any other outcome: failed, rejected, timeout, lost...)
export function outcomeKind(outcome) {
  const o = String(outcome || '');
  if (o === 'succeeded') return 'succeeded';
  if (/retry|released|deferred/.test(o)) return 'retry';
  return 'failed';
}

// Bars on one time axis: [{label, start, end, kind, note, indent}]
function waterfallRows(job) {
  const rows = [];
  const enq = t(job.enqueued_at);
  rows.push({ label: 'ingress → enqueued', start: enq, end: enq, kind: 'mark', note: 'stored' });
  const att = job.attempts || [];
  if (att.length && !Number.isNaN(t(att[0].started_at))) {
    rows.push({ label: 'queue wait', start: enq, end: t(att[0].started_at), kind: 'wait' });
  } else if (['ready', 'delayed'].includes(job.state)) {
    rows.push({ label: 'queue wait (still waiting)', start: enq, end: Date.now(), kind: 'wait' });
  }
  let prevEnd = null;
  for (const a of att) {
    const s = t(a.started_at);
    if (Number.isNaN(s)) continue;
    if (prevEnd !== null && s > prevEnd) rows.push({ label: 'backoff', start: prevEnd, end: s, kind: 'wait' });
    const e = s + (a.duration_ms || 0);
    rows.push({ label: `attempt ${a.attempt}`, start: s, end: e, kind: outcomeKind(a.outcome), note: a.error || a.outcome });
    prevEnd = e;
  }
  for (const act of job.actions || []) {
    const aenq = t(act.enqueued_at);
    const aatt = act.attempts || [];
    const label = actionLabel(act);
    if (!Number.isNaN(aenq) && aatt.length && !Number.isNaN(t(aatt[0].started_at))) {
      rows.push({ label: `${act.type} wait`, start: aenq, end: t(aatt[0].started_at), kind: 'wait', indent: true, href: `#/jobs/${encodeURIComponent(act.id)}` });
    }
    let pe = null;
    for (const a of aatt) {
      const s = t(a.started_at);
      if (Number.isNaN(s)) continue;
      if (pe !== null && s > pe) rows.push({ label: 'backoff', start: pe, end: s, kind: 'wait', indent: true });
      const e = s + (a.duration_ms || 0);
      rows.push({ label: `${label} #${a.attempt}`, start: s, end: e, kind: outcomeKind(a.outcome), note: a.error || a.outcome, indent: true, href: `#/jobs/${encodeURIComponent(act.id)}` });
      pe = e;
    }
  }
  return rows.filter((r) => !Number.isNaN(r.start) && !Number.isNaN(r.end));
}

function niceStep(span) {
  const raw = span / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

export function waterfall(job) {
  const rows = waterfallRows(job);
  if (rows.length < 2) return emptyBox('Nothing to draw yet', 'The job has not been attempted.');
  const t0 = Math.min(...rows.map((r) => r.start));
  const t1 = Math.max(...rows.map((r) => r.end), t(job.finished_at) || 0);
  const span = Math.max(t1 - t0, 1);
  const pos = (x) => ((x - t0) / span) * 100;
  const step = niceStep(span);
  const axis = h('div', { class: 'wf-axis', 'aria-hidden': 'true' });
  for (let x = 0; x <= span + 1e-9; x += step) {
    const tick = h('span', { class: 'wf-tick' }, ms(x));
    tick.style.left = `${pos(t0 + x)}%`;
    if (pos(t0 + x) > 92) tick.classList.add('flip');
    axis.appendChild(tick);
  }
  const grid = h('div', { class: 'wf', role: 'list', 'aria-label': 'Trace waterfall' },
    h('div', { class: 'wf-row wf-head' }, h('div', { class: 'wf-label muted' }, `${ms(span)} total`), h('div', { class: 'wf-track' }, axis)));
  for (const r of rows) {
    const b = h('span', { class: ['wf-bar', `wf-${String(r.kind).replace(/[^a-z_]/gi, '')}`] });
    b.style.left = `${pos(r.start)}%`;
    b.style.width = `${Math.max(pos(r.end) - pos(r.start), 0)}%`;
    const d = h('span', { class: 'wf-dur' }, r.kind === 'mark' ? '' : ms(r.end - r.start));
    const endPct = pos(r.end);
    if (endPct <= 82) {
      d.style.left = `${endPct}%`;
    } else if (pos(r.start) >= 18) {
      d.classList.add('flip'); // before the bar
      d.style.right = `${100 - pos(r.start)}%`;
    } else {
      d.classList.add('inside'); // inside the bar, at its end
      d.style.right = `${100 - endPct}%`;
    }
    const label = r.href ? h('a', { href: r.href }, r.label) : r.label;
    grid.appendChild(h('div', { class: ['wf-row', r.indent && 'indent'], role: 'listitem', title: `${r.label}: ${ms(r.end - r.start)} at +${ms(r.start - t0)}${r.note ? ` — ${r.note}` : ''}` },
      h('div', { class: 'wf-label' }, label), h('div', { class: 'wf-track' }, b, d)));
  }
  return h('div', null, grid,
    h('div', { class: 'wf-legend muted small' },
      h('span', { class: 'lg wf-wait' }), 'waiting', h('span', { class: 'lg wf-succeeded' }), 'succeeded',
      h('span', { class: 'lg wf-failed' }), 'failed', h('span', { class: 'lg wf-mark' }), 'enqueued'));
}

function attemptsTable(attempts) {
  return table([
    { label: '#', num: true, cell: (a) => String(a.attempt) },
    { label: 'Started', cell: (a) => time(a.started_at, { millis: true }) },
    { label: 'Duration', num: true, cell: (a) => ms(a.duration_ms) },
    { label: 'Outcome', cell: (a) => badge(a.outcome) },
    { label: 'Error', class: 'err-cell', cell: (a) => h('span', { class: 'err-text wrap' }, a.error || '') },
  ], attempts || [], { empty: 'No attempts yet.' });
}

function actionButtons(ctx, job, reload) {
  const out = [];
  if (!ctx.can('operate')) return out;
  const call = async (btn, path, method, done) => {
    btn.disabled = true;
    try {
      const r = await ctx.api(path, { method });
      done(r);
      reload();
    } catch (e) {
      ctx.toast(e.message, 'error');
      btn.disabled = false;
    }
  };
  const id = encodeURIComponent(job.id);
  const retryable = ['dead', 'succeeded', 'cancelled'].includes(job.state) && !job.replayed_as && !job.payload_pruned;
  if (retryable || job.state === 'delayed') {
    const label = job.state === 'delayed' ? 'Run now' : job.state === 'dead' ? 'Replay' : 'Retry';
    const b = h('button', { type: 'button', class: 'btn primary small', dataset: { action: 'retry' } }, label);
    b.addEventListener('click', () => call(b, `api/v1/jobs/${id}/retry`, 'POST', (r) => {
      ctx.toast(r.job_id && r.job_id !== job.id ? h('span', null, 'Running again as ', jobLink(r.job_id)) : 'Runs now');
    }));
    out.push(b);
  }
  if (['ready', 'delayed'].includes(job.state)) {
    const b = h('button', { type: 'button', class: 'btn warn small', dataset: { action: 'cancel' } }, 'Cancel');
    b.addEventListener('click', () => call(b, `api/v1/jobs/${id}/cancel`, 'POST', () => ctx.toast('Cancelled')));
    out.push(b);
  }
  if (job.state === 'dead' && ctx.can('admin')) {
    const b = h('button', { type: 'button', class: 'btn danger small', dataset: { action: 'delete' } }, 'Delete');
    let armed = false;
    b.addEventListener('click', () => {
      if (!armed) {
        armed = true;
        b.textContent = 'Really delete?';
        setTimeout(() => { armed = false; b.textContent = 'Delete'; }, 4000);
        return;
      }
      call(b, `api/v1/dead/${id}`, 'DELETE', () => { ctx.toast('Deleted'); ctx.go('#/dead'); });
    });
    out.push(b);
  }
  return out;
}

export async function renderJob(ctx, root) {
  const id = decodeURIComponent(ctx.match[1]);
  const job = await ctx.api(`api/v1/jobs/${encodeURIComponent(id)}`);
  const reload = () => ctx.go(location.hash);
  const dl = h('dl', { class: 'kv' });
  const kv = (k, v) => { if (v !== null && v !== undefined && v !== '') dl.append(h('dt', null, k), h('dd', null, v)); };
  kv('State', badge(job.state));
  kv('Type', h('a', { href: `#/jobs${qs({ type: job.type })}` }, job.type));
  kv('Source', job.source ? h('a', { href: `#/jobs${qs({ source: job.source })}` }, job.source) : null);
  kv('Attempts', `${job.attempt} of ${job.max_attempts}`);
  kv('Enqueued', time(job.enqueued_at, { millis: true }));
  kv('Run at', time(job.run_at, { millis: true }));
  kv('Finished', job.finished_at ? time(job.finished_at, { millis: true }) : null);
  kv('Lease until', job.lease_until ? time(job.lease_until, { millis: true }) : null);
  kv('Trace', job.trace_id ? h('a', { class: 'mono', href: `#/jobs${qs({ trace_id: job.trace_id })}`, title: 'All jobs of this trace' }, job.trace_id) : null);
  kv('Parent', job.parent_id ? jobLink(job.parent_id) : null);
  kv('Replay of', job.replay_of ? jobLink(job.replay_of) : null);
  kv('Replayed as', job.replayed_as ? jobLink(job.replayed_as) : null);
  kv('Dedupe key', job.dedupe_key ? h('span', { class: 'mono' }, job.dedupe_key) : null);
  kv('Ordering key', job.ordering_key ? h('span', { class: 'mono' }, job.ordering_key) : null);
  kv('Search keys', keyChips(job.search_keys));
  if (job.last_error) {
    kv('Last error', h('span', { class: 'err-text wrap' }, job.last_error));
    kv('Fingerprint', h('a', { class: 'mono', href: `#/dead${qs({ fingerprint: job.fingerprint })}` }, job.fingerprint));
  }

  const actions = (job.actions || []).map((a) => h('div', { class: 'action-block' },
    h('div', { class: 'action-head' }, badge(a.state), ' ', h('strong', null, actionLabel(a)), ' ',
      h('span', { class: 'muted' }, a.type, a.payload && a.payload.integration ? ` → ${a.payload.integration}` : ''), ' ', jobLink(a.id)),
    attemptsTable(a.attempts)));

  const payload = job.payload_pruned
    ? emptyBox('Payload pruned', 'Retention removed the payload; the job can no longer be retried.')
    : code(job.payload);

  root.append(...[
    h('div', { class: 'page-head' },
      h('h1', null, h('a', { href: '#/jobs', class: 'crumb' }, 'Jobs'), ' / ', h('span', { class: 'mono' }, job.id), ' ', badge(job.state)),
      h('div', { class: 'head-actions' }, actionButtons(ctx, job, reload))),
    h('div', { class: 'detail-grid' },
      section('Summary', dl),
      section('Trace waterfall', waterfall(job))),
    section(`Attempts (${(job.attempts || []).length})`, attemptsTable(job.attempts)),
    section(`Actions (${actions.length})`, actions.length ? actions : h('p', { class: 'muted' }, 'No outbound calls.')),
    (job.replays || []).length ? section(`Replays (${job.replays.length})`, table([
      { label: 'Id', cell: (r) => jobLink(r.id) },
      { label: 'State', cell: (r) => badge(r.state) },
      { label: 'Enqueued', cell: (r) => time(r.enqueued_at) },
      { label: 'Attempts', num: true, cell: (r) => String((r.attempts || []).length) },
      { label: 'Last error', class: 'err-cell', cell: (r) => h('span', { class: 'err-text' }, r.last_error || '') },
    ], job.replays)) : null,
    h('div', { class: 'detail-grid' },
      section('Headers', code(job.headers || {})),
      section('Payload', payload)),
  ].filter(Boolean));
  // Jobs change state without events of their own: refresh while it is still moving.
  if (['ready', 'delayed', 'in_flight'].includes(job.state)) {
    ctx.every(2000, async () => {
      const next = await ctx.api(`api/v1/jobs/${encodeURIComponent(id)}`);
      if (ctx.alive() && next.state !== job.state) reload();
    });
  }

}
