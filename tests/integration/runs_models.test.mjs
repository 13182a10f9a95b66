// Issue 4 "Done when" against the real daemon: model endpoints behind workflow steps.
// Profiles point at tests/fake/fake-llm.mjs through the configuration only (shared profiles
// in `agents`, providers.openai.base_url), as a real endpoint would be wired:
// - cancel aborts the HTTP transfer (the fake sees the client disconnect);
// - 429 with Retry-After is retried after that delay (timed at the fake);
// - a mid-stream error after partial output follows the step's policy: step.failed by
//   default, step.retrying with the discarded attempt when after_partial_output allows it;
// - kill -9 mid-run, restart on the same data dir: the run resumes (run.resumed), only the
//   unfinished step runs again, and it completes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { startDaemon, stopAll } from './lib/harness.mjs';
import { mockAgent, removeDir, shape, startFake, startRun, tokenText, watchRun, workflowsDir } from './lib/runs.mjs';

after(stopAll);

const llmStep = (id, agent, extra = {}) => ({ id, type: 'llm', agent, prompt: `Say something for ${id}.`, ...extra });
const oneStep = (name, agent, extra) => ({ name, agents: { p: { ref: agent } }, steps: [llmStep('talk', 'p', extra)] });

describe('model endpoints behind steps (fake endpoint)', () => {
  let fake;
  let d;
  let dir;
  before(async () => {
    fake = await startFake();
    dir = await workflowsDir({
      slow: oneStep('slow', 'slow'),
      limited: oneStep('limited', 'limited', {
        retry: { max_attempts: 2, on: ['rate_limited'], backoff_ms: 10, max_backoff_ms: 20 },
      }),
      midstream: oneStep('midstream', 'broken', {
        retry: { max_attempts: 3, on: ['server_error'], backoff_ms: 10 },
      }),
      partial: {
        name: 'partial',
        agents: {
          m: mockAgent('first attempt text that will be discarded', {
            chunk: 5,
            extra: { mock_fail: [{ attempt: 1, class: 'server_error', after_chunks: 3 }] },
          }),
        },
        steps: [llmStep('talk', 'm', { retry: { max_attempts: 2, on: ['server_error'], backoff_ms: 10, after_partial_output: true } })],
      },
    });
    d = await startDaemon({
      config: {
        workflows_dir: dir,
        providers: { openai: { base_url: fake.openaiUrl, api_key_env: 'COORD_TEST_FAKE_KEY' } },
        agents: {
          slow: { provider: 'openai', model: 'scenario:slow?tag=cancel&delay_ms=300' },
          limited: { provider: 'openai', model: 'scenario:status?status=429&retry_after=1&tag=r429' },
          broken: { provider: 'openai', model: 'scenario:normal?transcript=openai_error&tag=mid' },
        },
      },
      env: { COORD_TEST_FAKE_KEY: 'sk-test-key' },
    });
  });
  after(async () => {
    await d?.stop();
    await fake?.stop();
    await removeDir(dir);
  });

  test('cancel aborts the in-flight HTTP transfer: the fake sees the disconnect', async () => {
    const run = await startRun(d, 'slow', {});
    const seen = await watchRun(d, run.topic, { until: (e) => e.type === 'token' });
    assert.equal(seen.at(-1).data.step, 'talk');
    const req = (await fake.requests('cancel'))[0];
    assert.equal(req.headers.authorization, 'Bearer sk-test-key');
    assert.equal(req.body.stream, true);

    const res = await d.postJson(`/v1/runs/${run.run_id}/cancel`, {});
    assert.equal(res.status, 200, res.text);
    const st = await fake.stats('cancel', { wait: 'disconnect', timeoutMs: 5000 });
    assert.equal(st.disconnects, 1, JSON.stringify(st));
    assert.equal(st.completed, 0);

    const events = await watchRun(d, run.topic);
    const tail = shape(events).slice(-2);
    assert.deepEqual(tail, ['step.failed:talk', 'run.cancelled']);
    assert.equal(events.at(-2).data.error.class, 'cancelled');
    const doc = (await d.get(`/v1/runs/${run.run_id}`)).json();
    assert.equal(doc.status, 'cancelled');
    assert.equal(doc.steps.talk.status, 'cancelled');
    assert.equal((await fake.stats('cancel')).requests, 1, 'no request after the cancel');
  });

  test('429 with Retry-After: 1 is retried one second later (timed at the fake)', async () => {
    // Both long-polls are armed before the requests they time can arrive.
    const first = fake.stats('r429', { wait: 'request', count: 1, timeoutMs: 10000 }).then((s) => ({ s, at: Date.now() }));
    const run = await startRun(d, 'limited', {});
    const a = await first;
    assert.equal(a.s.requests, 1);
    const b = await fake.stats('r429', { wait: 'request', count: 2, timeoutMs: 10000 }).then((s) => ({ s, at: Date.now() }));
    assert.equal(b.s.requests, 2);
    const gap = b.at - a.at;
    assert.ok(gap >= 950 && gap < 1700, `second request ${gap} ms after the first`);

    const events = await watchRun(d, run.topic);
    assert.deepEqual(shape(events), [
      'run.started',
      'step.started:talk',
      'step.retrying:talk',
      'step.started:talk',
      'step.failed:talk',
      'run.failed',
    ]);
    const retrying = events.find((e) => e.type === 'step.retrying').data;
    assert.equal(retrying.delay_ms, 1000);
    assert.equal(retrying.error.class, 'rate_limited');
    assert.equal(retrying.discarded, false);
    assert.equal(events.at(-1).data.error.class, 'rate_limited');
    assert.equal((await fake.stats('r429')).requests, 2, 'max_attempts 2: no third request');
  });

  test('an error after partial output fails the step when the policy does not allow a retry', async () => {
    const run = await startRun(d, 'midstream', {});
    const events = await watchRun(d, run.topic);
    assert.deepEqual(shape(events), ['run.started', 'step.started:talk', 'token:talk#1', 'step.failed:talk', 'run.failed']);
    assert.equal(tokenText(events, 'talk'), 'Par');
    const failed = events.find((e) => e.type === 'step.failed').data;
    assert.equal(failed.error.class, 'server_error');
    assert.match(failed.error.message, /The server had an error/);
    assert.equal((await fake.stats('mid')).requests, 1, 'server_error is in retry.on, but partial output forbids the retry');
    const doc = (await d.get(`/v1/runs/${run.run_id}`)).json();
    assert.equal(doc.steps.talk.text, 'Par', 'the streamed text stays in the document');
    assert.equal(doc.status, 'failed');
  });

  test('an error after partial output is retried when after_partial_output allows it, the attempt discarded', async () => {
    const run = await startRun(d, 'partial', {});
    const events = await watchRun(d, run.topic);
    assert.deepEqual(shape(events), [
      'run.started',
      'step.started:talk',
      'token:talk#1',
      'step.retrying:talk',
      'step.started:talk',
      'token:talk#2',
      'step.completed:talk',
      'run.completed',
    ]);
    const retrying = events.find((e) => e.type === 'step.retrying').data;
    assert.equal(retrying.attempt, 1);
    assert.equal(retrying.next_attempt, 2);
    assert.equal(retrying.discarded, true);
    assert.equal(tokenText(events, 'talk', 1), 'first attempt t'); // 3 chunks of 5 bytes
    const doc = (await d.get(`/v1/runs/${run.run_id}`)).json();
    assert.equal(doc.steps.talk.attempt, 2);
    assert.equal(doc.steps.talk.text, 'first attempt text that will be discarded');
    assert.equal(doc.steps.talk.text, tokenText(events, 'talk', 2));
  });
});

describe('kill -9 mid-run', () => {
  let dir;
  before(async () => {
    dir = await workflowsDir({
      long: {
        name: 'long',
        agents: {
          quick: mockAgent('quick step output', { chunk: 4 }),
          slow: mockAgent('x'.repeat(400), { chunk: 4, rate: 40 }), // 100 chunks: 2.5 s
        },
        steps: [
          { id: 'first', type: 'llm', agent: 'quick', prompt: 'one' },
          { id: 'second', type: 'llm', agent: 'slow', prompt: 'two: {{ steps.first.output }}' },
          { id: 'third', type: 'transform', value: '{{ steps.second.output }}' },
        ],
      },
    });
  });
  after(() => removeDir(dir));

  test('the run resumes after a restart on the same data dir, re-running only the unfinished step', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'coord-runs-crash-'));
    const d1 = await startDaemon({ config: { workflows_dir: dir, data_dir: dataDir } });
    const run = await startRun(d1, 'long', {});
    const before = await watchRun(d1, run.topic, {
      until: (e) => e.type === 'token' && e.data.step === 'second' && e.data.index >= 2,
    });
    assert.ok(before.some((e) => e.type === 'step.completed' && e.data.step === 'first'));
    d1.signal('SIGKILL');
    assert.equal((await d1.exited).signal, 'SIGKILL');

    await d1.cleanup();
    const d2 = await startDaemon({ config: { workflows_dir: dir, data_dir: dataDir } });
    try {
      await d2.waitForLog((e) => e.msg === 'run engine started' && e.resumed === 1);
      const events = await watchRun(d2, run.topic, { timeoutMs: 20000 });
      const i = events.findIndex((e) => e.type === 'run.resumed');
      assert.ok(i > 0, `run.resumed in ${shape(events)}`);
      const resumed = events[i].data;
      assert.deepEqual(resumed.steps, ['second']);
      assert.equal(resumed.resumes, 1);
      const afterResume = events.slice(i + 1);
      assert.ok(!afterResume.some((e) => e.type === 'step.started' && e.data.step === 'first'), 'first is not run again');
      const started = afterResume.filter((e) => e.type === 'step.started').map((e) => `${e.data.step}#${e.data.attempt}`);
      assert.deepEqual(started, ['second#2', 'third#1']);
      assert.equal(events.at(-1).type, 'run.completed');
      assert.equal(tokenText(events, 'second', 2), 'x'.repeat(400));
      // seqs stayed dense across the crash
      events.forEach((e, k) => assert.equal(e.seq, k + 1));

      const doc = (await d2.get(`/v1/runs/${run.run_id}`)).json();
      assert.equal(doc.status, 'completed');
      assert.equal(doc.resumes, 1);
      assert.equal(doc.steps.first.attempt, 1);
      assert.equal(doc.steps.second.attempt, 2);
      assert.equal(doc.steps.third.output, 'x'.repeat(400));
      assert.equal(await d2.metric('coord_runs_total{event="resumed"}'), 1);
    } finally {
      await d2.stop();
      await removeDir(dataDir);
    }
  });

  test('SIGTERM stops runs where they stand and the next start resumes them', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'coord-runs-term-'));
    const d1 = await startDaemon({ config: { workflows_dir: dir, data_dir: dataDir } });
    const run = await startRun(d1, 'long', {});
    await watchRun(d1, run.topic, { until: (e) => e.type === 'token' && e.data.step === 'second' });
    const { code } = await d1.stop();
    assert.equal(code, 0);
    const stopped = d1.logs.find((e) => e.msg === 'engine stopped; unfinished runs resume at the next start');
    assert.equal(stopped.runs_active, 1);
    const d2 = await startDaemon({ config: { workflows_dir: dir, data_dir: dataDir } });
    try {
      const events = await watchRun(d2, run.topic, { timeoutMs: 20000 });
      assert.ok(events.some((e) => e.type === 'run.resumed'));
      assert.equal(events.at(-1).type, 'run.completed');
    } finally {
      await d2.stop();
      await removeDir(dataDir);
    }
  });
});
