// page-run.js: one run, live (#/runs/<id>).
//
// How it stays lossless: the page fetches the run document (GET /v1/runs/{id}), which is
// the fold of the run's topic up to `seq`, renders it, then subscribes to the topic
// after (epoch, seq) and applies each later event with the same fold rules
// (run-state.js). The client delivers each seq once and in order across reconnects and
// drains; the page also drops any event at or below the position it has applied. When
// the topic reports a gap (retention, epoch reset), or an event arrives with large values
// left out, the page unsubscribes, fetches the document again and subscribes after its
// new position, so nothing is missed and no token is applied twice. Token text is kept
// per (step, attempt): a retry or a resume starts a new attempt and the old text goes.
//
// It owns the page's DOM and its one subscription; the fold itself is run-state.js.

import { api, ApiError } from './api.js';
import { h, replaceChildren, badge, timeEl, pretty, announce } from './dom.js';
import {
  FINAL, stateFromDocument, applyEvent, alreadyApplied, parseKey, groupOf, branchIndex,
  usageText, durationText, errorText,
} from './run-state.js';

const CONTAINERS = new Set(['parallel', 'map', 'switch', 'loop', 'workflow']);
const SIDE_BY_SIDE = new Set(['parallel', 'map']);
const TIMELINE_MAX = 500;

export function mountRun({ el, params, client }) {
  const page = new RunPage(el, params.id, client);
  page.start();
  window.coordinatorUI = { ...(window.coordinatorUI || {}), runPage: page };
  return () => page.stop();
}

class RunPage {
  constructor(el, id, client) {
    this.el = el;
    this.id = id;
    this.client = client;
    this.alive = true;
    this.state = null;
    this.sub = null;
    this.syncing = false; // a snapshot reload is under way: incoming events are ignored
    this.loads = 0; // snapshot loads so far (1 = the first)
    this.skipped = 0; // events dropped as already applied (should stay 0: the client dedupes)
    this.resyncs = []; // why the page reloaded the snapshot
    this.branchOf = null;
    this.nodes = new Map(); // step key -> step view
    this.retryTimer = null;
    this.reloadTimer = null;
  }

  start() {
    document.title = `Run ${this.id} · coordinator`;
    this.summary = h('section', { class: 'run-summary', 'aria-label': 'Run summary' });
    this.approvals = h('section', { class: 'approvals', 'aria-label': 'Approvals waiting', hidden: true });
    this.sync = h('p', { class: 'sync muted', id: 'run-sync' }, 'Loading the run…');
    this.stepsRoot = h('ol', { class: 'steps', id: 'steps' });
    this.result = h('section', { class: 'result', 'aria-labelledby': 'result-h', hidden: true });
    this.timeline = h('ol', { class: 'timeline', id: 'timeline' });
    this.error = h('p', { class: 'error', role: 'alert', hidden: true });
    replaceChildren(this.el,
      h('p', { class: 'crumbs' }, h('a', { href: '#/runs' }, 'Runs'), ' / '),
      h('h1', { id: 'run-h' }, 'Run ', h('code', {}, this.id)),
      this.error,
      h('div', { id: 'run', class: 'run', dataset: { status: 'loading' } },
        this.summary, this.sync, this.approvals,
        h('section', { 'aria-labelledby': 'steps-h' }, h('h2', { id: 'steps-h' }, 'Steps'), this.stepsRoot),
        this.result,
        h('section', { 'aria-labelledby': 'timeline-h' },
          h('details', { open: true, class: 'timeline-box' },
            h('summary', {}, h('h2', { id: 'timeline-h', class: 'inline' }, 'Timeline')),
            h('div', { role: 'log', 'aria-labelledby': 'timeline-h', 'aria-live': 'off' }, this.timeline)))));
    this.runEl = this.el.querySelector('#run');
    this.load('open');
  }

  stop() {
    this.alive = false;
    clearInterval(this.clock);
    clearTimeout(this.retryTimer);
    clearTimeout(this.reloadTimer);
    if (this.sub) this.sub.unsubscribe();
    this.sub = null;
  }

  // ---- snapshot + subscription ----

  /** Fetches the run document and subscribes after its position. Synchronous up to the
   * fetch: the old subscription is gone before anything else is delivered. */
  async load(reason) {
    if (!this.alive) return;
    this.syncing = true;
    if (reason !== 'open') this.resyncs.push(reason);
    if (this.sub) {
      this.sub.unsubscribe();
      this.sub = null;
    }
    clearTimeout(this.retryTimer);
    this.setSync(reason === 'open' ? 'Loading the run…' : `Reloading the run (${reason})…`, 'loading');
    let doc;
    try {
      doc = await api.run(this.id);
    } catch (err) {
      if (!this.alive) return;
      if (err instanceof ApiError && (err.status === 404 || err.status === 403)) {
        this.showError(err.status === 404 ? `There is no run ${this.id} (or it belongs to another tenant).` : err.message);
        this.setSync('Not available.', 'error');
        return;
      }
      // The daemon may be restarting: try again, and say so.
      this.setSync(`Could not load the run (${err.message}); retrying…`, 'error');
      this.retryTimer = setTimeout(() => this.load(reason), 1500);
      return;
    }
    if (!this.alive) return;
    this.loads++;
    if (!this.branchOf) {
      try {
        const wf = await api.workflow(doc.workflow);
        const wdoc = wf && (wf.document || wf.workflow || wf.definition || wf.doc || wf);
        this.branchOf = branchIndex(wdoc);
      } catch {
        this.branchOf = () => undefined; // lanes per child id instead of per branch
      }
      if (!this.alive) return;
    }
    this.state = stateFromDocument(doc);
    this.hideError();
    this.renderAll(reason);
    const after = { seq: this.state.applied.seq };
    if (this.state.applied.epoch) after.epoch = this.state.applied.epoch;
    this.syncing = false;
    try {
      this.sub = this.client.subscribe(doc.topic, (ev) => this.onEvent(ev), {
        after,
        onGap: (gap) => this.load(gap.reason === 'epoch' ? 'history reset' : `gap ${gap.from}–${gap.to}`),
        onError: (err) => {
          this.sub = null;
          this.showError(`Live updates refused: ${err.code}: ${err.message}`);
          this.setSync('Not following the run (refused).', 'error');
        },
      });
    } catch (err) {
      this.showError(String(err.message || err));
      return;
    }
    this.setSync(this.syncText(), 'live');
    this.sub.ready.then(() => {
      if (this.alive && !this.syncing) this.setSync(this.syncText(), 'live');
    }, () => {});
  }

  onEvent(ev) {
    if (!this.alive || this.syncing || !this.state) return;
    if (ev.seq === undefined || ev.seq === null) return; // ephemeral: not part of the run document
    if (alreadyApplied(this.state, ev)) {
      this.skipped++;
      return;
    }
    const applied = this.state.applied;
    if ((applied.epoch && ev.epoch !== applied.epoch) || ev.seq !== applied.seq + 1) {
      // Never expected (the client resumes exactly and announces gaps); never skip silently.
      this.load(`hole before seq ${ev.seq}`);
      return;
    }
    const change = applyEvent(this.state, ev);
    if (change.what === 'token') {
      this.appendToken(change);
    } else if (change.what === 'step') {
      this.updateStep(change.key);
      this.addTimeline(ev, false);
      this.renderSummary();
      this.renderApprovals();
    } else if (change.what === 'run') {
      this.renderSummary();
      this.renderResult();
      this.addTimeline(ev, false);
      if (FINAL.includes(this.state.status)) announce(`Run ${this.state.status}`);
    }
    this.setSync(this.syncText(), 'live');
    if (ev.data && Array.isArray(ev.data.omitted) && ev.data.omitted.length) {
      // The event was too large for the topic: the document has the full values.
      clearTimeout(this.reloadTimer);
      this.reloadTimer = setTimeout(() => this.load('large values'), 50);
    }
  }

  syncText() {
    const s = this.state;
    const where = `seq ${s.applied.seq}`;
    const what = FINAL.includes(s.status) ? 'Run finished' : 'Following live';
    return `${what} · up to ${where}${this.loads > 1 ? ` · snapshot reloaded ${this.loads - 1}×` : ''}`;
  }

  setSync(text, kind) {
    this.sync.textContent = text;
    this.sync.dataset.kind = kind;
    if (this.state) this.sync.dataset.seq = String(this.state.applied.seq);
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = false;
  }

  hideError() {
    this.error.hidden = true;
  }

  // ---- rendering ----

  renderAll(reason) {
    this.nodes.clear();
    this.stepsRoot.replaceChildren();
    for (const key of this.state.order) this.updateStep(key);
    if (!this.state.order.length) this.stepsRoot.append(h('li', { class: 'muted empty' }, 'No step has started yet.'));
    this.renderSummary();
    this.renderApprovals();
    this.renderResult();
    this.timeline.replaceChildren();
    this.snapshotTimeline(reason);
  }

  /** The summary is built once per snapshot and then updated in place, so a focused
   * control (Cancel) keeps its focus while events arrive. */
  renderSummary() {
    const s = this.state;
    this.runEl.dataset.status = s.status;
    const running = !FINAL.includes(s.status);
    if (!this.facts || this.facts.runId !== s.run_id || !this.summary.contains(this.facts.dl)) {
      const f = { runId: s.run_id };
      const fact = (label, name) => {
        f[name] = h('dd', {});
        f[`${name}Label`] = h('dt', {}, label);
        f[`${name}Row`] = h('div', {}, f[`${name}Label`], f[name]);
        return f[`${name}Row`];
      };
      f.dl = h('dl', { class: 'facts' }, fact('Status', 'status'), fact('Workflow', 'workflow'), fact('Started', 'started'),
        fact('Running for', 'duration'), fact('Usage', 'usage'), fact('Resumed', 'resumes'), fact('Topic', 'topic'));
      f.cancel = h('button', { type: 'button', class: 'danger', id: 'cancel-run', onclick: (e) => this.cancel(e.currentTarget) }, 'Cancel run');
      f.cancelStatus = h('span', { class: 'muted', role: 'status', id: 'cancel-status' });
      f.actions = h('div', { class: 'actions' }, f.cancel, f.cancelStatus);
      replaceChildren(f.workflow, h('a', { href: `#/workflows/${encodeURIComponent(s.workflow)}` }, s.workflow));
      replaceChildren(f.started, timeEl(s.created_ms, { withDate: true }));
      replaceChildren(f.topic, h('a', { href: `#/topics?topic=${encodeURIComponent(s.topic)}&after=0` }, h('code', {}, s.topic)));
      replaceChildren(this.summary, f.dl, f.actions);
      this.facts = f;
    }
    const f = this.facts;
    if (f.status.dataset.value !== s.status) {
      replaceChildren(f.status, badge(s.status));
      f.status.dataset.value = s.status;
    }
    f.durationLabel.textContent = running ? 'Running for' : 'Took';
    f.duration.textContent = durationText((running ? Date.now() : s.updated_ms) - s.created_ms);
    const usage = usageText(s.usage);
    f.usage.textContent = usage;
    f.usageRow.hidden = !usage;
    f.resumes.textContent = s.resumes ? `${s.resumes}× after a restart` : '';
    f.resumesRow.hidden = !s.resumes;
    f.actions.hidden = !running;
    clearInterval(this.clock);
    if (running) {
      this.clock = setInterval(() => {
        if (!this.alive || FINAL.includes(this.state.status)) return clearInterval(this.clock);
        f.duration.textContent = durationText(Date.now() - this.state.created_ms);
        return undefined;
      }, 1000);
    }
  }

  renderResult() {
    const s = this.state;
    if (s.status === 'completed') {
      replaceChildren(this.result, h('h2', { id: 'result-h' }, 'Output'), h('pre', { class: 'json', id: 'run-output' }, pretty(s.output)));
      this.result.hidden = false;
    } else if (s.status === 'failed') {
      replaceChildren(this.result, h('h2', { id: 'result-h' }, 'Error'),
        h('p', { class: 'error' }, errorText(s.error), s.error && s.error.step ? ` (step ${s.error.step})` : ''));
      this.result.hidden = false;
    } else if (s.status === 'cancelled') {
      replaceChildren(this.result, h('h2', { id: 'result-h' }, 'Cancelled'), h('p', {}, 'The run was cancelled.'));
      this.result.hidden = false;
    } else {
      this.result.hidden = true;
    }
  }

  renderApprovals() {
    const waiting = this.state.order.filter((k) => this.state.steps[k].status === 'waiting');
    const sig = waiting.join('\n');
    if (this.approvals.isConnected && this.approvalsSig === sig && this.approvals.childElementCount === (waiting.length ? 1 : 0)) return;
    this.approvalsSig = sig;
    if (!waiting.length) {
      this.approvals.hidden = true;
      this.approvals.replaceChildren();
      return;
    }
    replaceChildren(this.approvals, h('p', {}, h('strong', {}, 'Waiting for a decision: '),
      waiting.map((k, i) => [i ? ', ' : '', h('button', {
        type: 'button', class: 'link', onclick: () => {
          const n = this.nodes.get(k);
          const t = n && n.card.querySelector('textarea');
          if (t) t.focus();
        },
      }, k)])));
    this.approvals.hidden = false;
  }

  /** The view of one step, created on first use inside its container's lane. */
  node(key) {
    let n = this.nodes.get(key);
    if (n) return n;
    const p = parseKey(key);
    let list = this.stepsRoot;
    if (p.parent !== null) {
      const parent = this.node(p.parent);
      const parentEntry = this.state.steps[p.parent];
      const kind = parentEntry ? parentEntry.kind : undefined;
      list = this.lane(parent, groupOf(key, kind, this.branchOf), kind);
    }
    const empty = this.stepsRoot.querySelector(':scope > .empty');
    if (empty) empty.remove();
    const hid = `step-h-${this.nodes.size}-${Math.random().toString(36).slice(2, 7)}`;
    n = {
      key,
      card: h('li', { class: 'step', dataset: { step: key } }),
      heading: h('h3', { id: hid }),
      status: h('span', { class: 'step-status' }),
      meta: h('p', { class: 'step-meta' }),
      notes: h('div', { class: 'step-notes' }),
      textBox: null,
      textNode: null,
      extra: h('div', { class: 'step-extra' }),
      approval: h('div', { class: 'approval' }),
      children: null,
      lanes: new Map(),
    };
    n.card.setAttribute('aria-labelledby', hid);
    n.card.append(h('div', { class: 'step-head' }, n.heading, n.status), n.meta, n.notes, n.extra, n.approval);
    list.append(n.card);
    this.nodes.set(key, n);
    return n;
  }

  lane(parent, group, kind) {
    if (!parent.children) {
      parent.children = h('div', { class: `lanes ${SIDE_BY_SIDE.has(kind) ? 'side' : 'stack'}` });
      parent.card.append(parent.children);
    }
    let lane = parent.lanes.get(group.id);
    if (lane) return lane.list;
    lane = { order: group.order, list: h('ol', { class: 'steps' }) };
    lane.el = h('section', { class: 'lane', dataset: { group: group.id }, 'aria-label': group.label || 'steps' },
      group.label ? h('h4', { class: 'lane-label' }, group.label) : null, lane.list);
    parent.lanes.set(group.id, lane);
    const after = [...parent.lanes.values()].filter((l) => l !== lane && l.order > lane.order)
      .sort((a, b) => a.order - b.order)[0];
    if (after) parent.children.insertBefore(lane.el, after.el);
    else parent.children.append(lane.el);
    return lane.list;
  }

  updateStep(key) {
    const e = this.state.steps[key];
    if (!e) return;
    const n = this.node(key);
    const p = parseKey(key);
    n.card.dataset.status = e.status;
    if (e.kind) n.card.dataset.kind = e.kind;
    if (CONTAINERS.has(e.kind) && n.children) n.children.className = `lanes ${SIDE_BY_SIDE.has(e.kind) ? 'side' : 'stack'}`;
    replaceChildren(n.heading, h('code', {}, p.id), ' ', h('span', { class: 'kind' }, e.kind || ''),
      p.parent !== null ? h('span', { class: 'key muted' }, ` ${key}`) : null);
    replaceChildren(n.status, badge(e.status), e.attempt > 1 ? h('span', { class: 'attempt' }, ` attempt ${e.attempt}`) : null);

    const meta = [];
    if (Number.isFinite(e.started_ms)) meta.push(['started ', timeEl(e.started_ms)]);
    if (FINAL.includes(e.status) && Number.isFinite(e.started_ms) && Number.isFinite(e.updated_ms)) {
      meta.push(`took ${durationText(e.updated_ms - e.started_ms)}`);
    }
    const usage = usageText(e.usage);
    if (usage) meta.push(usage);
    replaceChildren(n.meta, meta.map((m, i) => [i ? ' · ' : '', m]));

    const notes = [];
    const r = this.state.retries[key];
    if (e.status === 'retrying' && r) {
      const delay = Number.isFinite(r.delay_ms) ? ` in ${durationText(r.delay_ms)}` : '';
      notes.push(h('p', { class: 'note retry' }, `Attempt ${r.attempt ?? e.attempt} failed (${errorText(r.error)}); `,
        r.discarded ? 'its streamed text was discarded; ' : '', `retrying${delay}.`));
    } else if (e.error && (e.status === 'failed' || e.status === 'cancelled')) {
      notes.push(h('p', { class: e.status === 'cancelled' ? 'note' : 'note error' }, errorText(e.error),
        e.caught ? ` (caught: ${e.caught}${e.goto ? ` → ${e.goto}` : ''})` : ''));
    }
    if (e.attempt > 1 && e.status === 'running') {
      notes.push(h('p', { class: 'note muted' }, `Attempt ${e.attempt}: the text of earlier attempts was discarded.`));
    }
    replaceChildren(n.notes, notes);

    // Streamed text: kept equal to the entry's text (tokens append to the node directly).
    if ('text' in e || e.kind === 'llm') {
      if (!n.textBox) {
        n.textNode = document.createTextNode('');
        n.textBox = h('pre', { class: 'step-text', tabindex: '0', 'aria-label': `Text streamed by ${key}` }, n.textNode);
        n.card.insertBefore(n.textBox, n.extra);
      }
      const text = e.text || '';
      if (n.textNode.data !== text) n.textNode.data = text;
      n.textBox.dataset.streaming = String(e.status === 'running');
    }
    this.renderExtra(n, e);
    this.renderApproval(n, key, e);
  }

  renderExtra(n, e) {
    const parts = [];
    if (e.reasoning) {
      n.reasoningNode = document.createTextNode(e.reasoning);
      parts.push(h('details', { class: 'reasoning' }, h('summary', {}, 'Reasoning'), h('pre', {}, n.reasoningNode)));
    } else {
      n.reasoningNode = null;
    }
    if (e.tool_calls && Object.keys(e.tool_calls).length) {
      parts.push(h('details', { class: 'tools', open: true }, h('summary', {}, 'Tool calls'), h('pre', { class: 'json' }, pretty(e.tool_calls))));
    }
    const showOutput = e.output !== undefined && e.output !== null && !(typeof e.output === 'string' && e.output === e.text);
    if (showOutput && !CONTAINERS.has(e.kind)) {
      parts.push(h('details', { class: 'output', open: e.kind !== 'llm' }, h('summary', {}, 'Output'),
        h('pre', { class: 'json' }, typeof e.output === 'string' ? e.output : pretty(e.output))));
    } else if (showOutput) {
      parts.push(h('details', { class: 'output' }, h('summary', {}, 'Output'), h('pre', { class: 'json' }, pretty(e.output))));
    }
    replaceChildren(n.extra, parts);
  }

  renderApproval(n, key, e) {
    if (e.kind !== 'approval' && e.status !== 'waiting' && e.prompt === undefined) {
      n.approval.replaceChildren();
      return;
    }
    if (e.status !== 'waiting') {
      const out = e.output && typeof e.output === 'object' ? e.output : null;
      replaceChildren(n.approval,
        e.prompt ? h('details', {}, h('summary', {}, 'Prompt'), h('pre', { class: 'prompt' }, e.prompt)) : null,
        out && 'approved' in out ? h('p', { class: `decision ${out.approved ? 'yes' : 'no'}` },
          out.approved ? 'Approved' : 'Rejected', out.comment ? `: ${out.comment}` : '') : null);
      return;
    }
    if (n.approval.dataset.waitingAttempt === String(e.attempt)) return; // keep what the user typed
    n.approval.dataset.waitingAttempt = String(e.attempt);
    const cid = `comment-${Math.random().toString(36).slice(2, 8)}`;
    const comment = h('textarea', { id: cid, rows: 2, name: 'comment' });
    const status = h('span', { class: 'muted', role: 'status' });
    const decide = async (approve, btns) => {
      for (const b of btns) b.disabled = true;
      status.textContent = approve ? 'Approving…' : 'Rejecting…';
      try {
        await api.approve(this.id, key, approve, comment.value.trim());
        status.textContent = 'Decision sent; waiting for the run to go on…';
      } catch (err) {
        status.textContent = `Could not send the decision: ${err.message}`;
        for (const b of btns) b.disabled = false;
      }
    };
    const yes = h('button', { type: 'button', class: 'primary', dataset: { action: 'approve' } }, 'Approve');
    const no = h('button', { type: 'button', class: 'danger', dataset: { action: 'reject' } }, 'Reject');
    yes.addEventListener('click', () => decide(true, [yes, no]));
    no.addEventListener('click', () => decide(false, [yes, no]));
    replaceChildren(n.approval,
      h('div', { class: 'approval-box', role: 'group', 'aria-label': `Approval for ${key}` },
        h('p', {}, h('strong', {}, 'This step waits for your decision.'),
          Number.isFinite(e.deadline_ms) ? [' Deadline: ', timeEl(e.deadline_ms, { withDate: true }), '.'] : null),
        e.prompt ? h('pre', { class: 'prompt' }, e.prompt) : null,
        h('label', { for: cid }, 'Comment (optional)'), comment,
        h('div', { class: 'actions' }, yes, ' ', no, ' ', status)));
  }

  appendToken(change) {
    const n = this.node(change.key);
    const e = this.state.steps[change.key];
    if (change.part === 'text') {
      if (!n.textNode) {
        this.updateStep(change.key);
        return;
      }
      const box = n.textBox;
      const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
      n.textNode.appendData(change.text);
      if (atBottom) box.scrollTop = box.scrollHeight;
    } else if (change.part === 'reasoning' && n.reasoningNode) {
      n.reasoningNode.appendData(change.text);
    } else {
      this.renderExtra(n, e);
    }
  }

  // ---- timeline ----

  snapshotTimeline(reason) {
    const s = this.state;
    // Times are in ms, so many things share one. Within a ms, follow the step order: a
    // step's start, then its descendants, then its end (after its last descendant's).
    const items = [];
    const inside = (k, parent) => ['/', '[', '#', '@'].some((c) => k.startsWith(parent + c));
    if (Number.isFinite(s.created_ms)) items.push({ at: s.created_ms, rank: -1, text: 'Run created' });
    s.order.forEach((k, i) => {
      const e = s.steps[k];
      let last = i;
      for (let j = i + 1; j < s.order.length; j++) if (inside(s.order[j], k)) last = j;
      if (Number.isFinite(e.started_ms)) {
        items.push({ at: e.started_ms, rank: i, text: `${k} started${e.attempt > 1 ? ` (now at attempt ${e.attempt})` : ''}` });
      }
      if (e.status !== 'running' && Number.isFinite(e.updated_ms)) {
        const rank = last + 0.5 + 0.001 * (64 - k.split('/').length);
        items.push({ at: e.updated_ms, rank, text: `${k} ${e.status === 'waiting' ? 'waits for approval' : e.status}` });
      }
    });
    if (FINAL.includes(s.status) && Number.isFinite(s.updated_ms)) items.push({ at: s.updated_ms, rank: Infinity, text: `Run ${s.status}` });
    items.sort((a, b) => a.at - b.at || a.rank - b.rank);
    const label = reason === 'open' ? 'Before this page opened (from the run document)' : `Reloaded the run document (${reason})`;
    this.timeline.append(h('li', { class: 'tl-sep' }, label));
    for (const it of items) this.timeline.append(h('li', { class: 'tl-snap' }, timeEl(it.at), ' ', it.text));
    this.timeline.append(h('li', { class: 'tl-sep' }, `Live from seq ${s.applied.seq + 1}`));
  }

  addTimeline(ev) {
    const d = ev.data || {};
    const k = d.step;
    let text;
    switch (ev.type) {
      case 'run.started': text = 'Run started'; break;
      case 'run.resumed': text = `Run resumed after a restart${Array.isArray(d.steps) && d.steps.length ? ` (running again: ${d.steps.join(', ')})` : ''}`; break;
      case 'run.completed': text = 'Run completed'; break;
      case 'run.failed': text = `Run failed: ${errorText(d.error)}`; break;
      case 'run.cancelled': text = 'Run cancelled'; break;
      case 'step.started': text = `${k} started${d.attempt > 1 ? ` (attempt ${d.attempt})` : ''}`; break;
      case 'step.retrying': text = `${k} attempt ${d.attempt} failed (${errorText(d.error)}); retry in ${durationText(d.delay_ms)}${d.discarded ? ', text discarded' : ''}`; break;
      case 'approval.requested': text = `${k} waits for approval`; break;
      case 'step.completed': {
        const e = this.state.steps[k];
        const took = e && Number.isFinite(e.started_ms) ? ` in ${durationText((d.ts ?? ev.ts) - e.started_ms)}` : '';
        const u = usageText(d.usage);
        text = `${k} completed${took}${u ? ` · ${u}` : ''}`;
        break;
      }
      case 'step.failed': text = `${k} ${d.error && d.error.class === 'cancelled' ? 'cancelled' : `failed: ${errorText(d.error)}`}`; break;
      default: return;
    }
    this.timeline.append(h('li', { class: `tl-ev tl-${ev.type.replace('.', '-')}`, dataset: { seq: ev.seq } },
      timeEl(d.ts ?? ev.ts), ' ', text));
    while (this.timeline.children.length > TIMELINE_MAX) this.timeline.firstElementChild.remove();
  }

  // ---- actions ----

  async cancel(btn) {
    btn.disabled = true;
    const status = this.summary.querySelector('#cancel-status');
    if (status) status.textContent = 'Cancelling…';
    try {
      await api.cancel(this.id);
      if (status && status.isConnected) status.textContent = 'Cancel sent.';
    } catch (err) {
      btn.disabled = false;
      const already = err instanceof ApiError && err.status === 409;
      if (status && status.isConnected) status.textContent = already ? 'The run has already finished.' : `Could not cancel: ${err.message}`;
    }
  }
}

