// Jobs: search by key, trace, text, state, type, source, time; paged by next_cursor.
import { h, num, table, badge, time, qs, emptyBox } from '../dom.js';
import { filterForm, fetchPage, filterSummary } from './filters.js';

export function jobLink(id) {
  return h('a', { href: `#/jobs/${encodeURIComponent(id)}`, class: 'mono id', title: id }, id);
}

export function keyChips(keys, { skipTrace = true } = {}) {
  return h('span', { class: 'chips' }, (keys || []).filter((k) => !(skipTrace && k.startsWith('trace:')) && !k.startsWith('parent:'))
    .map((k) => h('a', { class: 'chip', href: `#/jobs${qs({ key: k })}`, title: `Jobs with ${k}` }, k)));
}

export function jobColumns({ dead = false } = {}) {
  return [
    { label: 'Id', cell: (j) => jobLink(j.id) },
    { label: 'Type', cell: (j) => j.type },
    { label: 'Source', cell: (j) => j.source || h('span', { class: 'muted' }, '—') },
    ...(dead ? [] : [{ label: 'State', cell: (j) => badge(j.state) }]),
    { label: 'Attempts', num: true, cell: (j) => `${j.attempt}/${j.max_attempts}` },
    { label: 'Enqueued', cell: (j) => time(j.enqueued_at) },
    { label: dead ? 'Died' : 'Finished', cell: (j) => time(j.finished_at) },
    dead
      ? { label: 'Last error', class: 'err-cell', cell: (j) => h('span', { class: 'err-text', title: j.last_error }, j.last_error || '') }
      : { label: 'Keys', cell: (j) => keyChips(j.search_keys) },
  ];
}

export function pager(base, params, page) {
  const links = [];
  if (params.cursor) links.push(h('a', { class: 'btn small ghost', href: `${base}${qs({ ...params, cursor: undefined })}` }, '← Newest'));
  if (page.next_cursor) links.push(h('a', { class: 'btn small', href: `${base}${qs({ ...params, cursor: page.next_cursor })}`, rel: 'next' }, 'Older →'));
  return h('nav', { class: 'pager', 'aria-label': 'Pages' }, links);
}

export async function renderJobs(ctx, root) {
  const params = ctx.params;
  const form = filterForm(ctx, params, { onSubmit: (p) => ctx.go(`#/jobs${qs(p)}`), resetHref: '#/jobs' });
  const page = await fetchPage(ctx, 'api/v1/jobs', params);
  const summary = h('div', { class: 'result-summary' },
    h('span', null, `${num(page.items.length)} job${page.items.length === 1 ? '' : 's'}${page.next_cursor ? ' on this page' : ''}`),
    page.total_estimate !== null && page.total_estimate !== undefined
      ? h('span', { class: 'muted', title: 'The size of the index this search walks (the key’s, else the state’s, else all jobs)' }, ` · index ≈ ${num(page.total_estimate)}`)
      : null,
    h('span', { class: 'muted' }, ` · ${filterSummary(params)}`));
  root.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Jobs')),
    form,
    h('div', { class: 'result-head' }, summary, pager('#/jobs', params, page)),
    page.items.length
      ? table(jobColumns(), page.items)
      : emptyBox(page.next_cursor ? 'No match in the part of the index examined so far' : 'No jobs match',
        page.next_cursor ? 'The server examines a bounded slice per page: use “Older →” to keep looking.' : 'Try fewer filters, or a search key like slack.channel:C123.'),
    h('div', { class: 'result-foot' }, pager('#/jobs', params, page)),
  );
}
