// Unit tests for examples/web/ui/run-state.js: the web UI's fold of a run's topic events
// into its run document (docs/runs.md rules), step key parsing and lane grouping, and the
// start form's prefill. No daemon, no DOM. Run: node --test tests/js/
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';

import {
  stateFromDocument, applyEvent, alreadyApplied, orderSteps, parseKey, groupOf, branchIndex, inputTemplate,
  usageText, durationText,
} from '../../examples/web/ui/run-state.js';

const EPOCH = '5f0c2a9e1b7d4c3a';

/** A run's topic as the engine would publish it (seq from 1), for a run with a retried
 * llm step, a parallel with two llm branches, an approval and a transform. */
function runEvents() {
  let seq = 0;
  let ts = 1000;
  const ev = (type, data, lane = 'control') => ({
    op: 'ev', topic: 'default/runs/r1', seq: ++seq, epoch: EPOCH, type, lane, ts: ++ts,
    data: lane === 'control' ? { ...data, ts } : data,
  });
  const tok = (step, attempt, index, text, part = 'text') => ev('token', { step, attempt, part, text, index }, 'data');
  return [
    ev('run.started', { run_id: 'r1', workflow: 'w', input: { topic: 'x' }, resumes: 0 }),
    ev('step.started', { step: 'a', step_id: 'a', kind: 'llm', attempt: 1, started_ms: 1002 }),
    tok('a', 1, 0, 'Hel'),
    tok('a', 1, 1, 'lo wr'),
    ev('step.retrying', { step: 'a', attempt: 1, next_attempt: 2, delay_ms: 50, error: { class: 'server_error', message: '502' }, discarded: true }),
    ev('step.started', { step: 'a', step_id: 'a', kind: 'llm', attempt: 2, started_ms: 1002 }),
    tok('a', 1, 2, 'STALE'), // a late delta of the void attempt: must not show
    tok('a', 2, 0, 'Hello '),
    tok('a', 2, 1, 'world', 'reasoning'),
    tok('a', 2, 2, 'world'),
    ev('step.completed', { step: 'a', attempt: 2, output: 'Hello world', usage: { in_tokens: 3, out_tokens: 2 } }),
    ev('step.started', { step: 'fan', step_id: 'fan', kind: 'parallel', attempt: 1, started_ms: 1013 }),
    ev('step.started', { step: 'fan/pro', step_id: 'pro', kind: 'llm', attempt: 1, started_ms: 1014 }),
    ev('step.started', { step: 'fan/con', step_id: 'con', kind: 'llm', attempt: 1, started_ms: 1015 }),
    tok('fan/con', 1, 0, 'no '),
    tok('fan/pro', 1, 0, 'yes '),
    tok('fan/con', 1, 1, 'way'),
    tok('fan/pro', 1, 1, 'please'),
    ev('step.completed', { step: 'fan/pro', attempt: 1, output: 'yes please', usage: { in_tokens: 1, out_tokens: 1 } }),
    ev('step.failed', { step: 'fan/con', attempt: 1, error: { class: 'cancelled', message: 'cancelled' } }),
    ev('step.completed', { step: 'fan', attempt: 1, output: ['yes please', null] }),
    ev('step.started', { step: 'review', step_id: 'review', kind: 'approval', attempt: 1, started_ms: 1022 }),
    ev('approval.requested', { step: 'review', attempt: 1, prompt: 'Ship it?', deadline_ms: 99999 }),
    ev('step.completed', { step: 'review', attempt: 1, output: { approved: true, comment: null } }),
    ev('step.started', { step: 'pub', step_id: 'pub', kind: 'transform', attempt: 1, started_ms: 1025 }),
    ev('step.completed', { step: 'pub', attempt: 1, output: { status: 'published' } }),
    ev('run.completed', { output: { text: 'Hello world' } }),
  ];
}

const EMPTY = { run_id: 'r1', workflow: 'w', tenant: 'default', topic: 'default/runs/r1', status: 'running', steps: {}, seq: 0, epoch: EPOCH };

function fold(doc, events) {
  const s = stateFromDocument(doc);
  for (const ev of events) {
    if (alreadyApplied(s, ev)) continue;
    applyEvent(s, ev);
  }
  return s;
}

/** The part of a state that is the run document (drops the UI's bookkeeping). */
function asDocument(s) {
  const { order, applied, retries, ...doc } = s;
  return JSON.parse(JSON.stringify({ ...doc, seq: applied.seq, epoch: applied.epoch }));
}

describe('the run fold', () => {
  test('folding the whole topic gives the final text of each attempt and every status', () => {
    const s = fold(EMPTY, runEvents());
    assert.equal(s.status, 'completed');
    assert.deepEqual(s.output, { text: 'Hello world' });
    assert.equal(s.steps.a.text, 'Hello world');
    assert.equal(s.steps.a.reasoning, 'world');
    assert.equal(s.steps.a.attempt, 2);
    assert.equal(s.steps['fan/pro'].text, 'yes please');
    assert.equal(s.steps['fan/con'].text, 'no way');
    assert.equal(s.steps['fan/con'].status, 'cancelled');
    assert.equal(s.steps.review.status, 'completed');
    assert.equal(s.steps.review.prompt, 'Ship it?');
    assert.deepEqual(s.usage, { in_tokens: 4, out_tokens: 3 });
    assert.deepEqual(s.order, ['a', 'fan', 'fan/pro', 'fan/con', 'review', 'pub']);
    assert.equal(s.applied.seq, runEvents().length);
  });

  test('a document at any seq plus the rest of the topic equals the fold from seq 0', () => {
    const events = runEvents();
    const full = asDocument(fold(EMPTY, events));
    for (let k = 0; k <= events.length; k++) {
      const snapshot = asDocument(fold(EMPTY, events.slice(0, k)));
      // The tail overlaps the snapshot by a few events, as a resubscribe may replay them.
      const tail = events.slice(Math.max(0, k - 3));
      assert.deepEqual(asDocument(fold(snapshot, tail)), full, `split at seq ${k}`);
    }
  });

  test('a retry empties the streamed text and says the attempt was discarded', () => {
    const events = runEvents();
    const upToRetry = events.findIndex((e) => e.type === 'step.retrying') + 1;
    const s = fold(EMPTY, events.slice(0, upToRetry));
    assert.equal(s.steps.a.status, 'retrying');
    assert.equal(s.steps.a.text, '');
    assert.equal(s.retries.a.discarded, true);
    assert.equal(s.retries.a.next_attempt, 2);
  });

  test('tokens of another attempt than the step entry are ignored', () => {
    const s = stateFromDocument({ ...EMPTY, steps: { a: { kind: 'llm', status: 'running', attempt: 3, text: 'abc' } }, seq: 9 });
    const r = applyEvent(s, { seq: 10, epoch: EPOCH, type: 'token', data: { step: 'a', attempt: 2, part: 'text', text: 'X', index: 0 } });
    assert.equal(r.what, 'none');
    assert.equal(s.steps.a.text, 'abc');
    assert.equal(s.applied.seq, 10, 'the position still moves past the ignored event');
  });

  test('an event at or below the applied position counts as applied', () => {
    const s = stateFromDocument({ ...EMPTY, seq: 5 });
    assert.equal(alreadyApplied(s, { seq: 5, epoch: EPOCH }), true);
    assert.equal(alreadyApplied(s, { seq: 6, epoch: EPOCH }), false);
    assert.equal(alreadyApplied(s, { seq: 2, epoch: 'ffffffffffffffff' }), false);
  });

  test('tool call fragments collect by call index', () => {
    const s = stateFromDocument({ ...EMPTY, steps: { a: { kind: 'llm', status: 'running', attempt: 1, text: '' } } });
    applyEvent(s, { seq: 1, epoch: EPOCH, type: 'token', data: { step: 'a', attempt: 1, part: 'tool_call', call: 1, text: '{"q":', index: 0 } });
    applyEvent(s, { seq: 2, epoch: EPOCH, type: 'token', data: { step: 'a', attempt: 1, part: 'tool_call', call: 1, text: '1}', index: 1 } });
    assert.deepEqual(s.steps.a.tool_calls, { 1: '{"q":1}' });
  });

  test('the state is a copy: the fetched document is not modified', () => {
    const doc = { ...EMPTY, steps: { a: { kind: 'llm', status: 'running', attempt: 1, text: 'x' } } };
    const s = stateFromDocument(doc);
    applyEvent(s, { seq: 1, epoch: EPOCH, type: 'token', data: { step: 'a', attempt: 1, part: 'text', text: 'y', index: 0 } });
    assert.equal(doc.steps.a.text, 'x');
    assert.equal(s.steps.a.text, 'xy');
  });
});

describe('step order in a document', () => {
  test('steps started in the same ms keep containers first and finished siblings first', () => {
    const steps = {
      'base/outline': { started_ms: 5, updated_ms: 7 },
      base: { started_ms: 5, updated_ms: 9 },
      'base/research': { started_ms: 5, updated_ms: 6 },
      write: { started_ms: 10, updated_ms: 11 },
      first: { started_ms: 1, updated_ms: 4 },
      'base/write': { started_ms: 7, updated_ms: 8 },
    };
    assert.deepEqual(orderSteps(steps), ['first', 'base', 'base/research', 'base/outline', 'base/write', 'write']);
  });
});

describe('step keys and lanes', () => {
  test('keys name their container, item, iteration and container attempt', () => {
    assert.deepEqual(parseKey('write'), { parent: null, id: 'write', attempt: null, item: null, iteration: null });
    assert.deepEqual(parseKey('fan/judge'), { parent: 'fan', id: 'judge', attempt: null, item: null, iteration: null });
    assert.deepEqual(parseKey('answers[2]/ask'), { parent: 'answers', id: 'ask', attempt: null, item: 2, iteration: null });
    assert.deepEqual(parseKey('refine#0/draft'), { parent: 'refine', id: 'draft', attempt: null, item: null, iteration: 0 });
    assert.deepEqual(parseKey('fan@2[0]/ask'), { parent: 'fan', id: 'ask', attempt: 2, item: 0, iteration: null });
    assert.deepEqual(parseKey('outer[1]/inner#3/x'), { parent: 'outer[1]/inner', id: 'x', attempt: null, item: null, iteration: 3 });
  });

  test('map items and loop iterations form lanes in index order', () => {
    assert.deepEqual(groupOf('answers[2]/ask', 'map'), { id: '[2]', label: 'item 2', order: 2 });
    assert.deepEqual(groupOf('refine#1/d', 'loop'), { id: '#1', label: 'iteration 1', order: 1 });
    assert.equal(groupOf('fan@2[0]/ask', 'map').label, 'attempt 2 · item 0');
  });

  test('parallel children are laid out by branch from the workflow definition', async () => {
    const wf = JSON.parse(await readFile(new URL('../../examples/workflows/critique-loop.json', import.meta.url), 'utf8'));
    const branchOf = branchIndex(wf);
    assert.equal(branchOf('perspectives', 'pro'), 0);
    assert.equal(branchOf('perspectives', 'con'), 1);
    assert.deepEqual(groupOf('perspectives/con', 'parallel', branchOf), { id: 'b1', label: 'branch 2', order: 1 });
    // Without a definition each child is its own lane.
    assert.equal(groupOf('perspectives/con', 'parallel').id, 'c:con');
    assert.equal(groupOf('sub/outline', 'workflow').id, '');
  });
});

describe('formatting and the start form', () => {
  test('inputs prefill with defaults, else empty values of their type', async () => {
    const wf = JSON.parse(await readFile(new URL('../../examples/workflows/research-then-write.json', import.meta.url), 'utf8'));
    assert.deepEqual(inputTemplate(wf.inputs), { topic: '', audience: 'a general audience', words: 600 });
    assert.deepEqual(inputTemplate({ a: { type: 'array' }, b: { type: 'boolean' }, c: { type: 'object' } }), { a: [], b: false, c: {} });
    assert.deepEqual(inputTemplate(undefined), {});
  });

  test('usage and durations read as words', () => {
    assert.equal(usageText({ in_tokens: 12, out_tokens: 40 }), '12 in · 40 out tokens');
    assert.equal(usageText(null), '');
    assert.equal(durationText(850), '850 ms');
    assert.equal(durationText(3210), '3.21 s');
    assert.equal(durationText(245000), '4 min 05 s');
  });
});
