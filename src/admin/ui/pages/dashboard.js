// Dashboard: GET api/v1/overview every 5 s plus SSE `queue` events; a client-side
// series of the last hour (ingest rate, depth, dead) drawn as sparklines; the last 24
// hours from the kept jobs (GET api/v1/history, every minute, after the first draw).
import { h, clear, num, rate, secs, pct, bar, sparkline, historyChart, table, stat, section, badge, emptyBox } from '../dom.js';

const HOUR_MS = 3600e3;
// Kept across navigations (module state), dropped on reload.
const series = { points: [], perType: new Map() };

function depthOf(t) {
  return (t.ready || 0) + (t.delayed || 0) + (t.in_flight || 0);
}

function record(ov) {
  const now = Date.now();
  const ingest = ov.sources.reduce((s, x) => s + (x.requests_per_s || 0), 0);
  const depth = ov.job_types.reduce((s, t) => s + depthOf(t), 0);
  series.points.push({ t: now, ingest, depth, dead: ov.dead_total || 0 });
  for (const t of ov.job_types) {
    if (!series.perType.has(t.job_type)) series.perType.set(t.job_type, []);
    series.perType.get(t.job_type).push({ t: now, depth: depthOf(t) });
  }
  const cut = now - HOUR_MS;
  while (series.points.length && series.points[0].t < cut) series.points.shift();
  for (const arr of series.perType.values()) while (arr.length && arr[0].t < cut) arr.shift();
}

function pick(key) {
  return series.points.map((p) => p[key]);
}

function spanLabel() {
  const p = series.points;
  if (p.length < 2) return 'collecting…';
  const m = Math.round((p[p.length - 1].t - p[0].t) / 60000);
  return m < 1 ? 'last minute' : `last ${m} min`;
}

export async function renderDashboard(ctx, root) {
  let ov = await ctx.api('api/v1/overview');
  record(ov);
  const body = h('div', { class: 'dash' });
  root.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Dashboard'),
      h('span', { class: 'muted small', id: 'dash-updated' })),
    body,
  );

  // The 24 h panel keeps its node across redraws; it fills when the history arrives.
  const dayBody = h('div', { class: 'history-body' }, h('div', { class: 'muted small' }, 'Loading the last 24 hours…'));
  const day = section('Last 24 hours · kept jobs finished and dead per hour', dayBody);
  const loadDay = async () => {
    try {
      const hist = await ctx.api('api/v1/history?hours=24');
      if (!ctx.alive()) return;
      const total = hist.items.reduce((a, b) => ({ finished: a.finished + b.finished, dead: a.dead + b.dead }), { finished: 0, dead: 0 });
      clear(dayBody).append(
        historyChart(hist.items),
        h('div', { class: 'history-legend small muted' },
          h('span', { class: 'key key-finished' }), `finished ${num(total.finished)}`,
          h('span', { class: 'key key-dead' }), `dead ${num(total.dead)}`,
          ' · from the jobs kept by queue.retention'),
      );
    } catch (e) {
      if (ctx.alive()) clear(dayBody).append(h('div', { class: 'muted small' }, `Could not load the last 24 hours: ${e.message}`));
    }
  };

  const draw = () => {
    const types = ov.job_types;
    const depth = types.reduce((s, t) => s + depthOf(t), 0);
    const inflight = types.reduce((s, t) => s + (t.in_flight || 0), 0);
    const conc = types.reduce((s, t) => s + (t.concurrency_configured || 0), 0);
    const ingest = ov.sources.reduce((s, x) => s + (x.requests_per_s || 0), 0);
    const worstAck = ov.sources.reduce((m, x) => Math.max(m, x.ack_p99_of_deadline || 0), 0);
    const span = spanLabel();
    const cards = h('div', { class: 'stats' },
      stat('Ingest', rate(ingest), { sub: `all sources · ${span}`, spark: sparkline(pick('ingest'), { label: 'ingest rate, last hour' }), href: '#/sources' }),
      stat('Queue depth', num(depth), { sub: `ready + delayed + in flight · ${span}`, spark: sparkline(pick('depth'), { label: 'queue depth, last hour' }), href: '#/queues' }),
      stat('In flight', `${num(inflight)} / ${num(conc)}`, { sub: 'running / configured slots', spark: bar(conc ? inflight / conc : 0, { label: 'slots in use' }) }),
      stat('Dead letters', num(ov.dead_total), {
        sub: span, spark: sparkline(pick('dead'), { label: 'dead letters, last hour' }), href: '#/dead',
        cls: ov.dead_total > 0 ? 'stat-bad' : null,
      }),
      stat('Open breakers', ov.open_breakers === null ? 'n/a' : num(ov.open_breakers), {
        sub: ov.integrations === null ? 'no workers in this process' : `of ${num(ov.integrations)} integrations`,
        href: '#/integrations', cls: ov.open_breakers > 0 ? 'stat-bad' : null,
      }),
      stat('Worst ACK p99', pct(worstAck, 1), { sub: 'of the platform deadline', spark: bar(worstAck, { warn: 0.3, crit: 0.6 }) }),
    );

    const sources = section('Sources',
      ov.sources.length ? table([
        { label: 'Source', cell: (x) => h('a', { href: '#/sources' }, x.name) },
        { label: 'Kind', cell: (x) => x.kind },
        { label: 'Ingest', num: true, cell: (x) => rate(x.requests_per_s) },
        { label: 'ACK p50', num: true, cell: (x) => secs(x.ack_p50_seconds) },
        { label: 'ACK p99', num: true, cell: (x) => secs(x.ack_p99_seconds) },
        { label: 'Deadline', num: true, cell: (x) => h('span', { title: x.ack_deadline_assumed ? 'assumed: the shortest any platform gives' : 'the platform’s deadline' }, `${secs(x.ack_deadline_seconds)}${x.ack_deadline_assumed ? '*' : ''}`) },
        { label: 'p99 of deadline', class: 'barcell', cell: (x) => h('div', { class: 'barline' }, bar(x.ack_p99_of_deadline, { warn: 0.3, crit: 0.6 }), h('span', { class: 'num' }, pct(x.ack_p99_of_deadline, 2))) },
        { label: 'Window', num: true, cell: (x) => secs(x.window_seconds) },
      ], ov.sources) : emptyBox('No sources configured', 'Add [[sources]] to the config.'));

    const jobTypes = section('Job types',
      types.length ? table([
        { label: 'Type', cell: (t) => h('a', { href: `#/queues/${encodeURIComponent(t.job_type)}` }, t.job_type) },
        { label: '', cell: (t) => (t.paused ? badge('paused') : null) },
        { label: 'Ready', num: true, cell: (t) => num(t.ready) },
        { label: 'Delayed', num: true, cell: (t) => num(t.delayed) },
        { label: 'Oldest ready', num: true, cell: (t) => (t.oldest_ready_age_seconds === null || t.oldest_ready_age_seconds === undefined ? '—' : secs(t.oldest_ready_age_seconds)) },
        { label: 'In flight / slots', class: 'barcell', cell: (t) => h('div', { class: 'barline' }, bar(t.concurrency_configured ? t.in_flight / t.concurrency_configured : 0, { label: `${t.in_flight} of ${t.concurrency_configured}` }), h('span', { class: 'num' }, `${num(t.in_flight)} / ${num(t.concurrency_configured)}`)) },
        { label: 'Arrivals', num: true, cell: (t) => rate(t.arrival_rate_per_s) },
        { label: 'Utilization', num: true, title: "Little's law over 5 min: busy slots needed / configured", cell: (t) => pct(t.utilization, 1) },
        { label: 'Dead', num: true, cell: (t) => (t.dead ? h('a', { class: 'dead-link', href: `#/dead?type=${encodeURIComponent(t.job_type)}` }, num(t.dead)) : '0') },
        { label: 'Depth, last hour', cell: (t) => sparkline((series.perType.get(t.job_type) || []).map((p) => p.depth), { width: 110, height: 20, label: `${t.job_type} depth` }) },
      ], types) : emptyBox('No job types', 'Add [[jobs]] to the config.'));

    clear(body).append(cards, day, h('div', { class: 'cols' }, sources), jobTypes);
    const up = document.getElementById('dash-updated');
    if (up) up.textContent = `updated ${new Date().toLocaleTimeString()} · every 5 s and live`;
  };
  draw();
  loadDay();
  ctx.every(60000, loadDay);

  ctx.every(5000, async () => {
    try {
      const next = await ctx.api('api/v1/overview');
      if (!ctx.alive()) return;
      ov = next;
      record(ov);
      draw();
    } catch (e) {
      if (ctx.alive()) ctx.toast(`Overview: ${e.message}`, 'error');
    }
  });

  ctx.on('queue', (q) => {
    const t = ov.job_types.find((x) => x.job_type === q.job_type);
    if (!t) return;
    const before = t.dead;
    Object.assign(t, { ready: q.ready, delayed: q.delayed, in_flight: q.in_flight, dead: q.dead, paused: q.paused });
    ov.dead_total += q.dead - before;
    draw();
  });
  ctx.on('error', (e) => ctx.toast(`Live events: ${e.error}`, 'error'));
}
