// Integrations, Sources, Capacity: read-outs.
import { h, num, rate, secs, pct, bar, table, badge, ago, emptyBox } from '../dom.js';

function head(title, note) {
  return h('div', { class: 'page-head' }, h('h1', null, title), note ? h('span', { class: 'muted small' }, note) : null);
}

function latency(p50, p99) {
  return h('span', { class: 'num' }, `${secs(p50)} / ${secs(p99)}`);
}

// Where the cap, rate limit and breaker are counted: over every process on the store
// ("shared", with this process's share), or per process; "shared_degraded" is the
// per-process fallback while the store does not answer (docs/egress.md).
function limitsNote(i) {
  if (!i.limits) return null;
  if (i.limits === 'shared') return h('div', { class: 'muted small', title: 'Counted over every worker process on the queue\'s store' }, `shared · ${num(i.in_flight_process)} here`);
  if (i.limits === 'shared_degraded') return h('div', { class: 'small', title: 'The store did not answer: each process counts on its own until it does' }, h('span', { class: 'badge b-half' }, 'per process: store unreachable'));
  return h('div', { class: 'muted small', title: 'Counted by each worker process on its own' }, 'per process');
}

export async function renderIntegrations(ctx, root) {
  const r = await ctx.api('api/v1/integrations');
  root.append(head('Integrations', 'Outbound calls: breaker, limits and latency over the window'),
    r.items.length ? table([
      { label: 'Integration', cell: (i) => h('div', null, h('strong', null, i.name), h('div', { class: 'muted small mono' }, i.base_url)) },
      { label: 'Breaker', cell: (i) => (i.breaker ? h('div', null, badge(i.breaker.state), h('div', { class: 'muted small', title: i.breaker.since }, `since ${ago(i.breaker.since)}`)) : badge('not live', 'b-unknown')) },
      { label: 'Failure rate', cell: (i) => (i.breaker ? h('div', null,
        h('div', { class: 'barline' }, bar(i.breaker.failure_rate / (i.breaker.opens_at_failure_rate || 1), { label: `${pct(i.breaker.failure_rate, 1)} of ${pct(i.breaker.opens_at_failure_rate)}` }), h('span', { class: 'num' }, pct(i.breaker.failure_rate, 1))),
        h('div', { class: 'muted small' }, `of ${num(i.breaker.calls_in_window)} calls in the window`)) : '—') },
      { label: 'Opens at', cell: (i) => (i.breaker ? h('span', { class: 'small' }, `${pct(i.breaker.opens_at_failure_rate)} of ≥${num(i.breaker.min_calls)} calls / ${secs(i.breaker.window_seconds)}`) : '—') },
      { label: 'Rate limit', cell: (i) => (i.rate_limit ? `${i.rate_limit.rate} (burst ${num(i.rate_limit.burst)}, ${i.rate_limit.tokens === null ? '—' : num(i.rate_limit.tokens, 1)} left)` : h('span', { class: 'muted' }, 'none')) },
      { label: 'In flight', cell: (i) => h('div', null,
        h('div', { class: 'barline' }, bar(i.in_flight === null ? 0 : i.in_flight / (i.max_concurrency || 1)), h('span', { class: 'num' }, `${i.in_flight === null ? '—' : num(i.in_flight)} / ${num(i.max_concurrency)}`)),
        limitsNote(i)) },
      { label: 'Queued', num: true, cell: (i) => `${i.queued === null ? '—' : num(i.queued)} / ${num(i.max_queue)}` },
      { label: 'Calls', num: true, cell: (i) => rate(i.calls_per_s) },
      { label: 'p50 / p99', num: true, cell: (i) => latency(i.latency_p50_seconds, i.latency_p99_seconds) },
    ], r.items, { rowClass: (i) => (i.breaker && i.breaker.state !== 'closed' ? 'row-bad' : null) }) : emptyBox('No integrations', 'Outbound APIs are configured with [[integrations]].'));
}

export async function renderSources(ctx, root) {
  const r = await ctx.api('api/v1/sources');
  const reasons = ['unauthorized', 'bad_request', 'too_large', 'overloaded'];
  root.append(head('Sources', 'Webhook ingress: counts since start, rates and ACK latency over the window'),
    r.items.length ? table([
      { label: 'Source', cell: (s) => h('div', null, h('strong', null, s.name), h('div', { class: 'muted small mono' }, `${s.kind} · ${s.path}`)) },
      { label: 'Job', cell: (s) => h('a', { href: `#/queues/${encodeURIComponent(s.job)}` }, s.job) },
      { label: 'Accepted', num: true, cell: (s) => h('a', { href: `#/jobs?source=${encodeURIComponent(s.name)}` }, num(s.accepted)) },
      { label: 'Duplicate', num: true, cell: (s) => num(s.duplicate) },
      { label: 'Rejected', cell: (s) => {
        const bad = reasons.filter((k) => s.rejected && s.rejected[k]);
        if (!bad.length) return h('span', { class: 'muted', title: reasons.map((k) => `${k}: 0`).join(', ') }, 'none');
        return h('span', { class: 'rejected' }, bad.map((k) => h('span', { class: 'chip bad' }, `${k.replace('_', ' ')} ${num(s.rejected[k])}`)));
      } },
      { label: 'Rate', num: true, cell: (s) => rate(s.requests_per_s) },
      { label: 'ACK p50 / p99', num: true, cell: (s) => latency(s.ack_p50_seconds, s.ack_p99_seconds) },
      { label: 'p99 of deadline', cell: (s) => {
        const f = s.ack_deadline_seconds ? (s.ack_p99_seconds || 0) / s.ack_deadline_seconds : 0;
        return h('div', { class: 'barline', title: `deadline ${secs(s.ack_deadline_seconds)}${s.ack_deadline_assumed ? ' (assumed)' : ''}` }, bar(f, { warn: 0.3, crit: 0.6 }), h('span', { class: 'num' }, `${pct(f, 2)} of ${secs(s.ack_deadline_seconds)}${s.ack_deadline_assumed ? '*' : ''}`));
      } },
      { label: 'Secret', cell: (s) => (s.secret_fingerprint ? h('span', { class: 'mono', title: 'First 8 hex digits of SHA-256 of the secret' }, s.secret_fingerprint, s.previous_secret_fingerprint ? h('span', { class: 'muted' }, ` (was ${s.previous_secret_fingerprint})`) : null) : h('span', { class: 'muted' }, 'none')) },
    ], r.items) : emptyBox('No sources', 'Webhook sources are configured with [[sources]].'),
    h('p', { class: 'muted small' }, 'Secret: the first 8 hex digits of SHA-256 of the signing secret; compare with printf %s "$SECRET" | sha256sum | cut -c1-8. * deadline assumed (3 s, the shortest any platform gives).'));
}

export async function renderCapacity(ctx, root) {
  const r = await ctx.api('api/v1/capacity');
  root.append(head('Capacity', "Little's law over the last 5 minutes: slots needed = arrival rate × mean job time"),
    r.items.length ? table([
      { label: 'Job type', cell: (c) => h('a', { href: `#/queues/${encodeURIComponent(c.job_type)}` }, c.job_type) },
      { label: 'Arrivals', num: true, cell: (c) => rate(c.arrival_rate_per_s) },
      { label: 'Arrived', num: true, cell: (c) => num(c.arrived) },
      { label: 'Finished', num: true, cell: (c) => num(c.finished) },
      { label: 'Mean job', num: true, cell: (c) => secs(c.mean_job_seconds) },
      { label: 'Needed / configured', num: true, cell: (c) => `${num(c.concurrency_needed, 2)} / ${num(c.concurrency_configured)}` },
      { label: 'Utilization', cell: (c) => h('div', { class: 'barline' }, bar(c.utilization, { warn: 0.7, crit: 1 }), h('span', { class: 'num' }, pct(c.utilization, 1))) },
      { label: 'Ready / delayed / in flight', num: true, cell: (c) => `${num(c.ready)} / ${num(c.delayed)} / ${num(c.in_flight)}` },
      { label: 'Window', num: true, cell: (c) => secs(c.window_seconds) },
      { label: 'Hints', cell: (c) => (c.hints && c.hints.length ? h('ul', { class: 'hints' }, c.hints.map((x) => h('li', null, x))) : h('span', { class: 'muted' }, 'none')) },
    ], r.items) : emptyBox('No job types', 'Capacity appears once job types are configured.'));

}
