// run-state.js: the client-side model of one run, as pure functions with no DOM.
//
// It owns the fold of a run's topic events into a run document, following the rules of
// docs/runs.md ("The run document"): the state starts as the document of GET /v1/runs/{id}
// (the fold of events 1..doc.seq) and each later event of the topic is applied in seq
// order, so the page reaches the same state as the server without replaying old tokens.
// It also parses step keys into their container and group (branch, map item, loop
// iteration, container attempt) so the page can lay nested steps out. It does not own the
// subscription or the DOM (page-run.js does) and never fetches anything.

/** Final run and step statuses: nothing follows them but a resume. */
export const FINAL = Object.freeze(['completed', 'failed', 'cancelled']);

const LLM_TEXT_PARTS = { text: 'text', reasoning: 'reasoning' };

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * A fresh state from a run document (deep-copied, so the caller's object is not touched).
 * `applied` is the position {epoch, seq} the state reflects: events at or below it are
 * already folded in.
 */
export function stateFromDocument(doc) {
  const s = JSON.parse(JSON.stringify(doc));
  if (!isObject(s.steps)) s.steps = {};
  s.order = orderSteps(s.steps);
  s.applied = { epoch: s.epoch, seq: Number.isInteger(s.seq) ? s.seq : 0 };
  s.retries = {}; // key -> data of the last step.retrying seen live (for the notice)
  for (const [key, entry] of Object.entries(s.steps)) {
    if (entry.status === 'retrying' && entry.error) s.retries[key] = { attempt: entry.attempt, error: entry.error };
  }
  return s;
}

/** Step keys in the order they started. Start times are in ms, so ties are common; they
 * are broken so that a container comes before its children and, among siblings, the one
 * that finished first (sequential steps) comes first, then document order. */
export function orderSteps(steps) {
  const keys = Object.keys(steps);
  const pos = new Map(keys.map((k, i) => [k, i]));
  const num = (v) => (Number.isFinite(v) ? v : Infinity);
  return keys.sort((a, b) => {
    const sa = num(steps[a].started_ms);
    const sb = num(steps[b].started_ms);
    if (sa !== sb) return sa - sb;
    if (b.startsWith(`${a}/`) || b.startsWith(`${a}[`) || b.startsWith(`${a}#`) || b.startsWith(`${a}@`)) return -1;
    if (a.startsWith(`${b}/`) || a.startsWith(`${b}[`) || a.startsWith(`${b}#`) || a.startsWith(`${b}@`)) return 1;
    const ua = num(steps[a].updated_ms);
    const ub = num(steps[b].updated_ms);
    if (ua !== ub) return ua - ub;
    return pos.get(a) - pos.get(b);
  });
}

function sumUsage(steps) {
  let inTok = 0;
  let outTok = 0;
  let any = false;
  for (const e of Object.values(steps)) {
    if (e.status !== 'completed' || !isObject(e.usage)) continue;
    if (Number.isFinite(e.usage.in_tokens)) {
      inTok += e.usage.in_tokens;
      any = true;
    }
    if (Number.isFinite(e.usage.out_tokens)) {
      outTok += e.usage.out_tokens;
      any = true;
    }
  }
  return any ? { in_tokens: inTok, out_tokens: outTok } : null;
}

/**
 * Whether an event is already part of the state: same epoch and seq at or below the
 * applied position. Events of another epoch are never "applied"; the caller resyncs.
 */
export function alreadyApplied(state, ev) {
  return ev.epoch === state.applied.epoch && Number.isInteger(ev.seq) && ev.seq <= state.applied.seq;
}

/**
 * Applies one `ev` message (as the client delivers it: {type, seq, epoch, ts, data}) to the
 * state, in place. Returns what changed, for the page to redraw only that:
 *   {what: 'token', key, part, text, call}   text appended to a step (part: text|reasoning|tool_call)
 *   {what: 'step', key, event}               a step's entry changed (or was created)
 *   {what: 'run', event}                     the run's status or result changed
 *   {what: 'none'}                           nothing to do (unknown type, stale attempt)
 * An event must come right after state.applied (the caller ensures order and dedupe).
 */
export function applyEvent(state, ev) {
  const d = isObject(ev.data) ? ev.data : {};
  if (Number.isInteger(ev.seq)) state.applied = { epoch: ev.epoch, seq: ev.seq };
  const ts = Number.isFinite(d.ts) ? d.ts : ev.ts;
  const type = ev.type || '';
  if (type !== 'token' && Number.isFinite(ts)) state.updated_ms = ts;

  if (type === 'token') return applyToken(state, d);
  if (type.startsWith('run.')) return applyRunEvent(state, type, d);
  if (!type.startsWith('step.') && type !== 'approval.requested') return { what: 'none' };

  const key = d.step;
  if (typeof key !== 'string') return { what: 'none' };
  let entry = state.steps[key];
  if (type === 'step.started') {
    entry = {
      step_id: d.step_id ?? key.slice(key.lastIndexOf('/') + 1),
      kind: d.kind,
      status: 'running',
      attempt: d.attempt ?? 1,
      started_ms: d.started_ms ?? ts,
      updated_ms: ts,
    };
    if (d.kind === 'llm') entry.text = '';
    if (!(key in state.steps)) state.order.push(key);
    state.steps[key] = entry;
    delete state.retries[key];
    return { what: 'step', key, event: type };
  }
  if (!entry) {
    // An event for a step the state never saw start (it cannot happen when the state is
    // the fold of the topic; keep something visible rather than drop it).
    entry = { step_id: key.slice(key.lastIndexOf('/') + 1), status: 'running', attempt: d.attempt ?? 1 };
    state.steps[key] = entry;
    state.order.push(key);
  }
  if (Number.isFinite(ts)) entry.updated_ms = ts;
  switch (type) {
    case 'step.retrying':
      entry.status = 'retrying';
      entry.error = d.error ?? null;
      if ('text' in entry) entry.text = '';
      delete entry.reasoning;
      delete entry.tool_calls;
      state.retries[key] = {
        attempt: d.attempt,
        next_attempt: d.next_attempt,
        delay_ms: d.delay_ms,
        error: d.error,
        discarded: d.discarded,
        ts,
      };
      break;
    case 'approval.requested':
      entry.status = 'waiting';
      entry.prompt = d.prompt;
      if (d.deadline_ms !== undefined) entry.deadline_ms = d.deadline_ms;
      break;
    case 'step.completed':
      entry.status = 'completed';
      entry.output = d.output;
      if (d.usage !== undefined) entry.usage = d.usage;
      state.usage = sumUsage(state.steps);
      break;
    case 'step.failed':
      entry.status = isObject(d.error) && d.error.class === 'cancelled' ? 'cancelled' : 'failed';
      entry.error = d.error ?? null;
      for (const k of ['caught', 'goto', 'output']) if (d[k] !== undefined) entry[k] = d[k];
      break;
    default:
      return { what: 'none' };
  }
  return { what: 'step', key, event: type };
}

function applyRunEvent(state, type, d) {
  switch (type) {
    case 'run.started':
      state.status = 'running';
      if (d.workflow !== undefined) state.workflow = d.workflow;
      if (d.input !== undefined) state.input = d.input;
      break;
    case 'run.resumed':
      state.status = 'running';
      if (Number.isInteger(d.resumes)) state.resumes = d.resumes;
      break;
    case 'run.completed':
      state.status = 'completed';
      state.output = d.output;
      break;
    case 'run.failed':
      state.status = 'failed';
      state.error = d.error ?? null;
      break;
    case 'run.cancelled':
      state.status = 'cancelled';
      break;
    default:
      return { what: 'none' };
  }
  return { what: 'run', event: type };
}

function applyToken(state, d) {
  const key = d.step;
  const entry = typeof key === 'string' ? state.steps[key] : undefined;
  // Text of another attempt than the entry's is void (a retry or a resume replaced it).
  if (!entry || d.attempt !== entry.attempt || typeof d.text !== 'string') return { what: 'none' };
  const part = d.part || 'text';
  if (LLM_TEXT_PARTS[part]) {
    const field = LLM_TEXT_PARTS[part];
    entry[field] = (entry[field] || '') + d.text;
    return { what: 'token', key, part, text: d.text };
  }
  if (part === 'tool_call') {
    const call = Number.isInteger(d.call) ? d.call : 0;
    if (!entry.tool_calls || typeof entry.tool_calls !== 'object') entry.tool_calls = {};
    const calls = entry.tool_calls;
    const prev = calls[call];
    if (isObject(prev)) {
      prev.arguments = (prev.arguments || '') + d.text;
      if (d.name) prev.name = d.name;
      if (d.tool_id) prev.id = d.tool_id;
    } else {
      calls[call] = (prev || '') + d.text;
    }
    return { what: 'token', key, part, text: d.text, call };
  }
  return { what: 'none' };
}

/**
 * Where a step key sits: {parent, id, attempt, item, iteration}.
 *   "write"              -> parent null
 *   "fan/judge"          -> parent "fan"
 *   "answers[2]/ask"     -> parent "answers", item 2
 *   "refine#0/draft"     -> parent "refine", iteration 0
 *   "fan@2[0]/ask"       -> parent "fan", attempt 2, item 0
 */
export function parseKey(key) {
  const slash = key.lastIndexOf('/');
  if (slash < 0) return { parent: null, id: key, attempt: null, item: null, iteration: null };
  const prefix = key.slice(0, slash);
  const m = /^(.*?)(?:@(\d+))?(?:\[(\d+)\]|#(\d+))?$/.exec(prefix);
  return {
    parent: m[1],
    id: key.slice(slash + 1),
    attempt: m[2] !== undefined ? Number(m[2]) : null,
    item: m[3] !== undefined ? Number(m[3]) : null,
    iteration: m[4] !== undefined ? Number(m[4]) : null,
  };
}

/**
 * The group a step belongs to inside its container, for laying out lanes:
 * {id, label, order}. Steps of one map item, loop iteration or parallel branch share a
 * group. branchOf(parentKey, stepId) may name the branch index of a parallel's child
 * (from the workflow definition); without it each child id is its own lane.
 */
export function groupOf(key, parentKind, branchOf) {
  const p = parseKey(key);
  const parts = [];
  let id = '';
  let order = 0;
  if (p.attempt !== null) {
    id += `@${p.attempt}`;
    parts.push(`attempt ${p.attempt}`);
    order += p.attempt * 1e6;
  }
  if (p.item !== null) {
    id += `[${p.item}]`;
    parts.push(`item ${p.item}`);
    order += p.item;
  } else if (p.iteration !== null) {
    id += `#${p.iteration}`;
    parts.push(`iteration ${p.iteration}`);
    order += p.iteration;
  } else if (parentKind === 'parallel') {
    const b = branchOf ? branchOf(p.parent, p.id) : undefined;
    if (Number.isInteger(b)) {
      id += `b${b}`;
      parts.push(`branch ${b + 1}`);
      order += b;
    } else {
      id += `c:${p.id}`;
      parts.push(p.id);
      order += 1e5;
    }
  }
  return { id, label: parts.join(' · '), order };
}

/**
 * From a workflow document, a function (containerId, stepId) -> branch index for the
 * steps of every parallel step (nested steps included), or undefined when unknown.
 */
export function branchIndex(workflowDoc) {
  const map = new Map(); // parallel id -> Map(step id -> branch)
  const walk = (steps) => {
    if (!Array.isArray(steps)) return;
    for (const st of steps) {
      if (!isObject(st)) continue;
      if (st.type === 'parallel' && Array.isArray(st.branches)) {
        const m = new Map();
        st.branches.forEach((branch, i) => {
          const mark = (list) => {
            if (!Array.isArray(list)) return;
            for (const c of list) if (isObject(c) && typeof c.id === 'string') m.set(c.id, i);
          };
          mark(branch);
          walk(branch);
        });
        map.set(st.id, m);
      }
      for (const k of ['steps', 'default']) walk(st[k]);
      if (isObject(st.cases)) for (const list of Object.values(st.cases)) walk(list);
    }
  };
  walk(workflowDoc && workflowDoc.steps);
  return (parentKey, stepId) => {
    const m = map.get(lastId(parentKey));
    return m ? m.get(stepId) : undefined;
  };
}

function lastId(key) {
  const p = parseKey(key);
  return p.parent === null ? key : p.id;
}

/** Usage in words: "12 in · 40 out tokens", or '' when none. */
export function usageText(usage) {
  if (!isObject(usage)) return '';
  if (!usage.in_tokens && !usage.out_tokens) return ''; // nothing counted yet
  const parts = [];
  if (Number.isFinite(usage.in_tokens)) parts.push(`${usage.in_tokens} in`);
  if (Number.isFinite(usage.out_tokens)) parts.push(`${usage.out_tokens} out`);
  return parts.length ? `${parts.join(' · ')} tokens` : '';
}

/** A duration in ms as "850 ms", "3.2 s", "4 min 05 s". */
export function durationText(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60000);
  const s = Math.round((ms % 60000) / 1000);
  return `${m} min ${String(s).padStart(2, '0')} s`;
}

/** An error object {class, message} as one line. */
export function errorText(err) {
  if (!err) return '';
  if (typeof err === 'string') return err;
  const cls = err.class ? `${err.class}: ` : '';
  return `${cls}${err.message ?? ''}`.trim();
}

/**
 * The value a start form is prefilled with from a workflow's `inputs` declarations:
 * the default when there is one, else an empty value of the declared type.
 */
export function inputTemplate(inputs) {
  const out = {};
  if (!isObject(inputs)) return out;
  const empty = { string: '', number: 0, integer: 0, boolean: false, object: {}, array: [] };
  for (const [name, decl] of Object.entries(inputs)) {
    if (!isObject(decl)) continue;
    if (decl.default !== undefined) out[name] = decl.default;
    else if (decl.type in empty) out[name] = JSON.parse(JSON.stringify(empty[decl.type]));
    else out[name] = null;
  }
  return out;
}
