// page-runs.js: the runs list (#/runs?status=&workflow=&q=). Filters by status and
// workflow go to the daemon (GET /v1/runs); the free-text filter matches run ids and
// workflow names in the page. The list refreshes every few seconds while the page is
// visible, and says when it last did, so a stale list is never mistaken for a live one.

import { api } from './api.js';
import { h, replaceChildren, badge, timeEl } from './dom.js';

const STATUSES = ['', 'running', 'completed', 'failed', 'cancelled'];
const REFRESH_MS = 4000;

export function mountRuns({ el, query }) {
  document.title = 'Runs · coordinator';
  const f = { status: query.get('status') || '', workflow: query.get('workflow') || '', q: query.get('q') || '' };

  const status = h('select', { id: 'f-status', name: 'status' },
    STATUSES.map((s) => h('option', { value: s, selected: s === f.status }, s || 'any')));
  const workflow = h('select', { id: 'f-workflow', name: 'workflow' }, h('option', { value: '' }, 'any'));
  if (f.workflow) workflow.append(h('option', { value: f.workflow, selected: true }, f.workflow));
  const text = h('input', { id: 'f-q', name: 'q', type: 'search', value: f.q, placeholder: 'run id or workflow' });
  const updated = h('span', { class: 'muted', id: 'runs-updated' });
  const count = h('p', { class: 'muted', role: 'status', id: 'runs-count' });
  const tbody = h('tbody', {});
  const table = h('table', { class: 'runs', 'aria-describedby': 'runs-count' },
    h('caption', { class: 'visually-hidden' }, 'Runs, newest first'),
    h('thead', {}, h('tr', {},
      ['Run', 'Workflow', 'Status', 'Started', 'Updated', 'Error'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const err = h('p', { class: 'error', role: 'alert', hidden: true });

  const syncHash = () => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
    const next = `#/runs${q.toString() ? `?${q}` : ''}`;
    if (location.hash !== next) history.replaceState(null, '', next);
  };

  let rows = [];
  const render = () => {
    const needle = f.q.toLowerCase();
    const shown = needle ? rows.filter((r) => `${r.run_id} ${r.workflow}`.toLowerCase().includes(needle)) : rows;
    replaceChildren(tbody, shown.map((r) => h('tr', { dataset: { run: r.run_id, status: r.status } },
      h('td', {}, h('a', { href: `#/runs/${encodeURIComponent(r.run_id)}` }, h('code', {}, r.run_id))),
      h('td', {}, r.workflow),
      h('td', {}, badge(r.status)),
      h('td', {}, timeEl(r.created_ms, { withDate: true })),
      h('td', {}, timeEl(r.updated_ms)),
      h('td', { class: 'err-cell' }, r.error ? `${r.error.class || ''}: ${r.error.message || ''}` : ''))));
    count.textContent = shown.length === rows.length ? `${rows.length} run(s)` : `${shown.length} of ${rows.length} run(s) match`;
  };

  let alive = true;
  let timer = null;
  let inflight = null;
  const load = async () => {
    if (inflight) inflight.abort();
    const ctl = new AbortController();
    inflight = ctl;
    try {
      const body = await api.runs({ status: f.status, workflow: f.workflow, limit: 200 }, { signal: ctl.signal });
      if (!alive || ctl.signal.aborted) return;
      rows = (body && body.runs) || [];
      err.hidden = true;
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      render();
    } catch (e) {
      if (!alive || (e && e.name === 'AbortError')) return;
      err.textContent = `Could not load runs: ${e.message}`;
      err.hidden = false;
    } finally {
      if (inflight === ctl) inflight = null;
    }
  };
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (!alive) return;
      if (document.visibilityState === 'visible') await load();
      schedule();
    }, REFRESH_MS);
  };

  api.workflows().then((body) => {
    const names = (Array.isArray(body) ? body : (body && body.workflows) || []).map((w) => w.name);
    for (const n of names) if (n !== f.workflow) workflow.append(h('option', { value: n }, n));
  }).catch(() => {});

  status.addEventListener('change', () => { f.status = status.value; syncHash(); load(); });
  workflow.addEventListener('change', () => { f.workflow = workflow.value; syncHash(); load(); });
  text.addEventListener('input', () => { f.q = text.value.trim(); syncHash(); render(); });

  replaceChildren(el, h('h1', {}, 'Runs'),
    h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter runs', onsubmit: (e) => { e.preventDefault(); load(); } },
      h('div', { class: 'field' }, h('label', { for: 'f-status' }, 'Status'), status),
      h('div', { class: 'field' }, h('label', { for: 'f-workflow' }, 'Workflow'), workflow),
      h('div', { class: 'field grow' }, h('label', { for: 'f-q' }, 'Search'), text),
      h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Refresh'), ' ', updated)),
    err, count, h('div', { class: 'table-wrap' }, table));
  load();
  schedule();
  return () => {
    alive = false;
    clearTimeout(timer);
    if (inflight) inflight.abort();
  };
}
