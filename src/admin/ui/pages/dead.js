// Dead letters: groups by error fingerprint, a filtered list with checkboxes, and replay
// or delete of one job, the selected ones, or everything matching the filter (a dry run
// first, then the real operation with progress and Cancel).
import { h, clear, num, table, time, qs, emptyBox, bar, section, pct } from '../dom.js';
import { filterForm, fetchPage, apiFilter, filterSummary } from './filters.js';
import { jobColumns, pager } from './jobs.js';

const sleep = (t) => new Promise((r) => setTimeout(r, t));

function groupsTable(groups, params) {
  return table([
    { label: 'Fingerprint', cell: (g) => h('a', { class: ['mono', params.fingerprint === g.fingerprint && 'current'], href: `#/dead${qs({ ...params, fingerprint: g.fingerprint, cursor: undefined })}`, title: 'Show only this group' }, g.fingerprint) },
    { label: 'Jobs', num: true, cell: (g) => h('strong', null, num(g.count)) },
    { label: 'Sample error', class: 'err-cell', cell: (g) => h('a', { class: 'err-text', href: `#/jobs/${encodeURIComponent(g.sample_job_id)}`, title: g.sample_error }, g.sample_error) },
    { label: 'Job types', cell: (g) => Object.entries(g.job_types || {}).map(([t, n]) => h('span', { class: 'chip' }, `${t} ×${num(n)}`)) },
    { label: 'Newest', cell: (g) => time(g.newest_at) },
    { label: 'Oldest', cell: (g) => time(g.oldest_at) },
  ], groups, { rowClass: (g) => (params.fingerprint === g.fingerprint ? 'row-current' : null) });
}

// The bulk panel: dry run -> confirm -> progress.
function bulkPanel(ctx, params, onDone) {
  const filter = apiFilter(params, { dead: true });
  const box = h('div', { class: 'bulk-body' });
  const panel = h('section', { class: 'panel bulk' }, h('h2', null, 'All dead letters matching the filter'),
    h('p', { class: 'muted small' }, `Filter: ${filterSummary(params, { dead: true })}. A dry run counts them first; nothing changes until you confirm.`), box);
  const verbs = {
    replay: { method: 'POST', label: 'Replay', cls: 'primary' },
    delete: { method: 'DELETE', label: 'Delete', cls: 'danger' },
  };

  const start = () => {
    clear(box).append(h('div', { class: 'btn-row' },
      h('button', { type: 'button', class: 'btn', dataset: { action: 'replay-filter' }, on: { click: () => dry('replay') } }, 'Replay all matching…'),
      ctx.can('admin') ? h('button', { type: 'button', class: 'btn danger-outline', dataset: { action: 'delete-filter' }, on: { click: () => dry('delete') } }, 'Delete all matching…') : null));
  };

  async function poll(op, show) {
    let view = op;
    show(view);
    while (view.state === 'running' && ctx.alive()) {
      await sleep(400);
      if (!ctx.alive()) return view;
      view = await ctx.api(`api/v1/operations/${encodeURIComponent(view.id)}`);
      show(view);
    }
    return view;
  }

  async function dry(verb) {
    const v = verbs[verb];
    clear(box).append(h('div', { class: 'state-box loading', role: 'status' }, h('span', { class: 'spinner' }), `Counting the dead letters that match (dry run)…`));
    try {
      const op = await ctx.api('api/v1/dead' + (verb === 'replay' ? '/replay' : ''), { method: v.method, body: { filter, dry_run: true } });
      const fin = await poll(op, () => {});
      if (!ctx.alive()) return;
      if (fin.state !== 'succeeded') throw new Error(fin.error || `dry run ${fin.state}`);
      const n = fin.matched;
      const confirm = h('button', { type: 'button', class: ['btn', v.cls], dataset: { action: `${verb}-filter-confirm` } }, `${v.label} ${num(n)} job${n === 1 ? '' : 's'}`);
      confirm.disabled = n === 0;
      confirm.addEventListener('click', () => real(verb, n));
      clear(box).append(
        h('div', { class: 'dry-result', role: 'status', dataset: { matched: String(n) } },
          h('strong', { class: 'dry-count' }, `${num(n)} job${n === 1 ? '' : 's'} match`), h('span', { class: 'muted' }, ` (dry run, ${num(fin.scanned)} scanned)`)),
        h('div', { class: 'btn-row' }, confirm,
          h('button', { type: 'button', class: 'btn ghost', on: { click: start } }, 'Back')));
      confirm.focus();
    } catch (e) {
      if (!ctx.alive()) return;
      clear(box).append(h('div', { class: 'state-box error', role: 'alert' }, e.message), h('button', { type: 'button', class: 'btn ghost small', on: { click: start } }, 'Back'));
    }
  }

  async function real(verb, expected) {
    const v = verbs[verb];
    const fill = h('div', { class: 'progress-text' });
    const barHolder = h('div', { class: 'progress-bar' });
    const cancel = h('button', { type: 'button', class: 'btn warn small', dataset: { action: 'op-cancel' } }, 'Cancel');
    const status = h('div', { class: 'op-status', role: 'status', 'aria-live': 'polite' });
    clear(box).append(status, barHolder, fill, h('div', { class: 'btn-row' }, cancel));
    let opId = null;
    cancel.addEventListener('click', async () => {
      if (!opId) return;
      cancel.disabled = true;
      try { await ctx.api(`api/v1/operations/${encodeURIComponent(opId)}/cancel`, { method: 'POST' }); } catch (e) { ctx.toast(e.message, 'error'); cancel.disabled = false; }
    });
    const show = (view) => {
      const total = Math.max(view.matched || 0, expected || 0, 1);
      clear(barHolder).appendChild(bar((view.done + view.failed) / total, { warn: 2, crit: 2, label: 'progress' }));
      status.textContent = `${v.label} ${view.state}${view.error ? `: ${view.error}` : ''}`;
      status.dataset.state = view.state;
      fill.textContent = `matched ${num(view.matched)} · done ${num(view.done)} · failed ${num(view.failed)} · ${pct((view.done + view.failed) / total)}`;
      fill.dataset.done = String(view.done);
      fill.dataset.failed = String(view.failed);
      fill.dataset.matched = String(view.matched);
    };
    try {
      const op = await ctx.api('api/v1/dead' + (verb === 'replay' ? '/replay' : ''), { method: v.method, body: { filter, dry_run: false } });
      opId = op.id;
      const offOp = [];
      ctx.on('operation', (view) => { if (view.id === opId) { offOp.push(view); show(view); } });
      const fin = await poll(op, show);
      if (!ctx.alive()) return;
      cancel.remove();
      ctx.toast(`${v.label}: ${num(fin.done)} done, ${num(fin.failed)} failed (${fin.state})`, fin.failed ? 'error' : 'ok');
      box.appendChild(h('div', { class: 'btn-row' }, h('button', { type: 'button', class: 'btn small', dataset: { action: 'refresh' }, on: { click: onDone } }, 'Refresh the list')));
    } catch (e) {
      if (!ctx.alive()) return;
      clear(box).append(h('div', { class: 'state-box error', role: 'alert' }, e.message), h('button', { type: 'button', class: 'btn ghost small', on: { click: start } }, 'Back'));
    }
  }

  start();
  return panel;
}

export async function renderDead(ctx, root) {
  const params = ctx.params;
  const groupParams = { ...apiFilter(params, { dead: true }), fingerprint: undefined, group: 'fingerprint' };
  const [groups, page] = await Promise.all([
    ctx.api(`api/v1/dead${qs(groupParams)}`),
    fetchPage(ctx, 'api/v1/dead', params, { dead: true }),
  ]);
  const reload = () => ctx.go(location.hash || '#/dead');
  const groupTotal = groups.items.reduce((n, g) => n + g.count, 0);

  root.append(h('div', { class: 'page-head' },
    h('h1', null, 'Dead letters'),
    h('span', { class: 'muted small' }, `${num(groupTotal)} in ${num(groups.items.length)} group${groups.items.length === 1 ? '' : 's'}${groups.complete === false ? ` (newest ${num(groups.scanned)} grouped)` : ''}`)));
  root.appendChild(filterForm(ctx, params, { dead: true, onSubmit: (p) => ctx.go(`#/dead${qs(p)}`), resetHref: '#/dead' }));

  if (!groups.items.length && !page.items.length) {
    root.appendChild(emptyBox('No dead letters', Object.keys(apiFilter(params, { dead: true })).length ? 'None match this filter.' : 'Every job so far succeeded, is waiting, or was replayed.'));
    return;
  }
  root.appendChild(section('Groups by error fingerprint', groupsTable(groups.items, params)));
  if (ctx.can('operate')) root.appendChild(bulkPanel(ctx, params, reload));

  // The list, with selection.
  const selected = new Set();
  const selInfo = h('span', { class: 'muted' });
  const selButtons = h('span', { class: 'btn-row inline' });
  const boxes = [];
  const updateSel = () => {
    selInfo.textContent = selected.size ? `${selected.size} selected` : 'Select jobs to act on them';
    for (const b of selButtons.querySelectorAll('button')) b.disabled = !selected.size;
    if (all) {
      all.checked = selected.size > 0 && selected.size === boxes.length;
      all.indeterminate = selected.size > 0 && selected.size < boxes.length;
    }
  };
  const oneCall = (verb, id) => (verb === 'replay'
    ? ctx.api(`api/v1/dead/${encodeURIComponent(id)}/replay`, { method: 'POST' })
    : ctx.api(`api/v1/dead/${encodeURIComponent(id)}`, { method: 'DELETE' }));
  const runSelected = async (verb, btn) => {
    const ids = [...selected];
    btn.disabled = true;
    let ok = 0;
    const errors = [];
    for (const id of ids) {
      try { await oneCall(verb, id); ok++; } catch (e) { errors.push(`${id}: ${e.message}`); }
      if (!ctx.alive()) return;
      btn.textContent = `${verb === 'replay' ? 'Replaying' : 'Deleting'} ${ok + errors.length}/${ids.length}…`;
    }
    ctx.toast(`${verb === 'replay' ? 'Replayed' : 'Deleted'} ${ok} of ${ids.length}${errors.length ? `; ${errors[0]}` : ''}`, errors.length ? 'error' : 'ok');
    reload();
  };
  if (ctx.can('operate')) {
    const rb = h('button', { type: 'button', class: 'btn small', dataset: { action: 'replay-selected' } }, 'Replay selected');
    rb.addEventListener('click', () => runSelected('replay', rb));
    selButtons.appendChild(rb);
  }
  if (ctx.can('admin')) {
    const db = h('button', { type: 'button', class: 'btn small danger-outline', dataset: { action: 'delete-selected' } }, 'Delete selected');
    db.addEventListener('click', () => runSelected('delete', db));
    selButtons.appendChild(db);
  }
  const canAct = ctx.can('operate');
  let all = null;
  const cols = jobColumns({ dead: true });
  if (canAct) {
    all = h('input', { type: 'checkbox', 'aria-label': 'Select all on this page', class: 'check-all' });
    all.addEventListener('change', () => {
      for (const b of boxes) {
        b.checked = all.checked;
        if (all.checked) selected.add(b.value); else selected.delete(b.value);
      }
      updateSel();
    });
    cols.unshift({ label: '', class: 'check', cell: (j) => {
      const b = h('input', { type: 'checkbox', value: j.id, 'aria-label': `Select ${j.id}`, class: 'row-check' });
      b.addEventListener('change', () => { if (b.checked) selected.add(j.id); else selected.delete(j.id); updateSel(); });
      boxes.push(b);
      return b;
    } });
    cols.push({ label: '', class: 'actions', cell: (j) => {
      const out = [];
      const r = h('button', { type: 'button', class: 'btn small', dataset: { action: 'replay', id: j.id }, title: 'Replay this job' }, 'Replay');
      r.addEventListener('click', async () => {
        r.disabled = true;
        try { const x = await oneCall('replay', j.id); ctx.toast(`Replayed as ${x.job_id || 'a new job'}`); reload(); } catch (e) { ctx.toast(e.message, 'error'); r.disabled = false; }
      });
      out.push(r);
      if (ctx.can('admin')) {
        const d = h('button', { type: 'button', class: 'btn small danger-outline', dataset: { action: 'delete', id: j.id }, title: 'Delete this job (click twice)' }, 'Delete');
        let armed = false;
        d.addEventListener('click', async () => {
          if (!armed) { armed = true; d.textContent = 'Sure?'; setTimeout(() => { armed = false; d.textContent = 'Delete'; }, 4000); return; }
          d.disabled = true;
          try { await oneCall('delete', j.id); ctx.toast('Deleted'); reload(); } catch (e) { ctx.toast(e.message, 'error'); d.disabled = false; }
        });
        out.push(d);
      }
      return h('span', { class: 'btn-row inline' }, out);
    } });
  }
  const tbl = table(cols, page.items, { empty: page.next_cursor ? 'No match in the slice examined so far: use “Older →”.' : 'No dead letters match.' });
  if (all) {
    const th = tbl.querySelector('th.check');
    if (th) th.appendChild(all);
  }
  root.appendChild(h('section', { class: 'panel' },
    h('div', { class: 'result-head' },
      h('h2', null, `Jobs${params.fingerprint ? ` with fingerprint ${params.fingerprint}` : ''}`),
      canAct ? h('div', { class: 'sel-bar' }, selInfo, selButtons) : null,
      pager('#/dead', params, page)),
    tbl,
    h('div', { class: 'result-foot' }, pager('#/dead', params, page))));
  updateSel();

}
