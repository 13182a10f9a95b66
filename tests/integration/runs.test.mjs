// Issue 4 against the real daemon: workflow runs over HTTP and their topics over WebSocket.
// A run end to end on the mock provider (exact event order, token text equal to the run
// document), idempotency keys, listing and filters, approvals over HTTP, tenants under
// JWT, the `validate` subcommand's exit codes and messages, and SIGHUP reloads.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { daemonBin, mintToken, repoRoot, startDaemon, stopAll } from './lib/harness.mjs';
import { addWorkflows, mockAgent, postRun, removeDir, shape, startRun, tokenText, watchRun, workflowsDir } from './lib/runs.mjs';

after(stopAll);

const STORY_TEXT = 'Rivers carve valleys; "quotes" and\nnew lines and ünïcödé survive.';

const story = {
  name: 'story',
  description: 'two llm steps and a transform',
  inputs: { topic: { type: 'string', required: true }, tone: { type: 'string', default: 'calm' } },
  agents: { w: mockAgent(STORY_TEXT, { chunk: 3, rate: 400 }) },
  steps: [
    { id: 'draft', type: 'llm', agent: 'w', prompt: 'Write about {{ input.topic }} in a {{ input.tone }} tone.' },
    { id: 'polish', type: 'llm', agent: 'w', prompt: 'Polish: {{ steps.draft.output }}' },
    { id: 'pack', type: 'transform', value: { words: '{{ steps.polish.output }}', topic: '{{ input.topic }}' } },
  ],
  output: { text: '{{ steps.polish.output }}' },
};

const gate = {
  name: 'gate',
  inputs: { what: { type: 'string', required: true } },
  steps: [
    { id: 'ask', type: 'approval', prompt: 'Ship {{ input.what }}?', timeout_ms: 60000 },
    { id: 'after', type: 'transform', value: { approved: '{{ steps.ask.output.approved }}', comment: '{{ steps.ask.output.comment }}' } },
  ],
  output: { decision: '{{ steps.after.output }}' },
};

describe('runs on the mock provider (auth none)', () => {
  let d;
  let dir;
  before(async () => {
    dir = await workflowsDir({ story, gate });
    d = await startDaemon({ config: { workflows_dir: dir } });
  });
  after(async () => {
    await d?.stop();
    await removeDir(dir);
  });

  test('GET /v1/workflows lists the folder and GET /v1/workflows/{name} returns the document', async () => {
    const res = await d.get('/v1/workflows');
    assert.equal(res.status, 200);
    const names = res.json().workflows.map((w) => w.name);
    assert.deepEqual(names, ['gate', 'story']);
    const one = await d.get('/v1/workflows/story');
    assert.equal(one.status, 200);
    const body = one.json();
    assert.equal(body.name, 'story');
    assert.equal(body.steps, 3);
    assert.deepEqual(body.document.steps.map((s) => s.id), ['draft', 'polish', 'pack']);
    assert.equal((await d.get('/v1/workflows/nope')).status, 404);
  });

  test('a run streams on its topic in the documented order and its text equals GET /v1/runs/{id}', async () => {
    const res = await postRun(d, 'story', { topic: 'rivers' });
    assert.equal(res.status, 202, res.text);
    const run = res.json();
    assert.match(run.run_id, /^[A-Za-z0-9_-]+$/);
    assert.equal(run.topic, `default/runs/${run.run_id}`);
    assert.equal(res.headers.location, `/v1/runs/${run.run_id}`);

    const events = await watchRun(d, run.topic);
    assert.deepEqual(shape(events), [
      'run.started',
      'step.started:draft',
      'token:draft#1',
      'step.completed:draft',
      'step.started:polish',
      'token:polish#1',
      'step.completed:polish',
      'step.started:pack',
      'step.completed:pack',
      'run.completed',
    ]);
    // seqs are dense from 1, control events on the control lane, tokens on data
    events.forEach((e, i) => assert.equal(e.seq, i + 1));
    for (const e of events) assert.equal(e.lane, e.type === 'token' ? 'data' : 'control');
    // tokens of a step have dense indexes and were coalesced (fewer events than chunks)
    const draftTokens = events.filter((e) => e.type === 'token' && e.data.step === 'draft');
    draftTokens.forEach((e, i) => assert.equal(e.data.index, i));
    assert.ok(draftTokens.length < Math.ceil(Buffer.byteLength(STORY_TEXT) / 3), `${draftTokens.length} token events`);
    assert.equal(tokenText(events, 'draft'), STORY_TEXT);
    assert.deepEqual(events[0].data.input, { topic: 'rivers', tone: 'calm' });

    const doc = (await d.get(`/v1/runs/${run.run_id}`)).json();
    assert.equal(doc.status, 'completed');
    assert.equal(doc.steps.draft.text, tokenText(events, 'draft'));
    assert.equal(doc.steps.polish.text, tokenText(events, 'polish'));
    assert.equal(doc.steps.draft.output, STORY_TEXT);
    assert.deepEqual(doc.output, { text: STORY_TEXT });
    assert.deepEqual(doc.steps.pack.output, { words: STORY_TEXT, topic: 'rivers' });
    assert.equal(doc.seq, events.length);
    assert.deepEqual(events.at(-1).data.output, doc.output);
  });

  test('input errors are 400 naming the field; unknown workflows 404; bodies are checked', async () => {
    let res = await postRun(d, 'story', {});
    assert.equal(res.status, 400);
    let err = res.json().error;
    assert.equal(err.code, 'invalid_input');
    assert.equal(err.message, 'input.topic: missing required input');
    assert.equal(err.errors[0].path, 'input.topic');
    res = await postRun(d, 'story', { topic: 5 });
    assert.equal(res.status, 400);
    assert.match(res.json().error.message, /^input\.topic: /);
    res = await postRun(d, 'nope', {});
    assert.equal(res.status, 404);
    assert.equal(res.json().error.code, 'not_found');
    res = await d.postJson('/v1/workflows/story/runs', '{"input":');
    assert.equal(res.status, 400);
    assert.match(res.json().error.message, /^body: invalid JSON/);
    res = await d.postJson('/v1/workflows/story/runs', { input: { topic: 'x' }, extra: 1 });
    assert.equal(res.status, 400);
    assert.equal(res.json().error.message, 'body.extra: unknown field');
    res = await d.postJson('/v1/workflows/story/runs', { input: [1] });
    assert.equal(res.status, 400);
    assert.equal(res.json().error.message, 'body.input: must be an object');
    assert.equal((await d.get('/v1/runs/r_doesnotexist')).status, 404);
    assert.equal((await d.get('/v1/workflows/story/runs')).status, 405);
  });

  test('the same Idempotency-Key returns the same run; another key starts another', async () => {
    const a = await postRun(d, 'story', { topic: 'keys' }, { key: 'k-123' });
    const b = await postRun(d, 'story', { topic: 'keys' }, { key: 'k-123' });
    const c = await postRun(d, 'story', { topic: 'keys' }, { key: 'k-456' });
    assert.equal(a.status, 202);
    assert.equal(b.status, 202);
    assert.equal(a.json().run_id, b.json().run_id);
    assert.equal(a.json().existing, false);
    assert.equal(b.json().existing, true);
    assert.notEqual(c.json().run_id, a.json().run_id);
    const tooLong = await postRun(d, 'story', { topic: 'keys' }, { key: 'x'.repeat(201) });
    assert.equal(tooLong.status, 400);
    assert.match(tooLong.json().error.message, /^idempotency-key: /);
    await watchRun(d, c.json().topic);
  });

  test('GET /v1/runs lists newest first and filters by workflow, status and limit', async () => {
    const r1 = await startRun(d, 'story', { topic: 'list-1' });
    await watchRun(d, r1.topic);
    const g = await startRun(d, 'gate', { what: 'list' });
    await watchRun(d, g.topic, { until: (e) => e.type === 'approval.requested' });

    let body = (await d.get('/v1/runs')).json();
    assert.equal(body.runs[0].run_id, g.run_id);
    const created = body.runs.map((r) => r.created_ms);
    assert.deepEqual(created, [...created].sort((x, y) => y - x));

    body = (await d.get('/v1/runs?workflow=gate&status=running')).json();
    assert.ok(body.runs.some((r) => r.run_id === g.run_id));
    assert.ok(body.runs.every((r) => r.workflow === 'gate' && r.status === 'running'));
    body = (await d.get('/v1/runs?workflow=story&status=completed')).json();
    assert.ok(body.runs.some((r) => r.run_id === r1.run_id));
    assert.ok(body.runs.every((r) => r.workflow === 'story' && r.status === 'completed'));
    body = (await d.get('/v1/runs?limit=1')).json();
    assert.equal(body.runs.length, 1);
    assert.equal((await d.get('/v1/runs?status=done')).status, 400);
    assert.equal((await d.get('/v1/runs?limit=0')).status, 400);
    assert.equal((await d.get('/v1/runs?limit=1001')).status, 400);

    assert.equal((await d.postJson(`/v1/runs/${g.run_id}/cancel`, {})).status, 200);
    /* The 200 comes once run.cancelled is durable: the row and the document agree at once. */
    body = (await d.get('/v1/runs?workflow=gate&status=cancelled')).json();
    assert.ok(body.runs.some((r) => r.run_id === g.run_id));
    body = (await d.get(`/v1/runs/${g.run_id}`)).json();
    assert.equal(body.status, 'cancelled');
    assert.equal(body.steps.ask.status, 'cancelled');
    const again = await d.postJson(`/v1/runs/${g.run_id}/cancel`, {});
    assert.equal(again.status, 409);
    assert.equal(again.json().error.code, 'finished');
  });

  test('an approval is decided over HTTP and the run carries on with the decision', async () => {
    const run = await startRun(d, 'gate', { what: 'v2' });
    const seen = await watchRun(d, run.topic, { until: (e) => e.type === 'approval.requested' });
    assert.equal(seen.at(-1).data.prompt, 'Ship v2?');
    let doc = (await d.get(`/v1/runs/${run.run_id}`)).json();
    assert.equal(doc.steps.ask.status, 'waiting');

    let res = await d.postJson(`/v1/runs/${run.run_id}/approvals/ask`, { comment: 'no verdict' });
    assert.equal(res.status, 400);
    assert.equal(res.json().error.message, 'body.approve: required, true or false');
    res = await d.postJson(`/v1/runs/${run.run_id}/approvals/after`, { approve: true });
    assert.equal(res.status, 409);
    assert.equal(res.json().error.code, 'not_waiting');
    res = await d.postJson(`/v1/runs/${run.run_id}/approvals/ask`, { approve: true, comment: 'ship it' });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json(), { run_id: run.run_id, step: 'ask', approved: true });

    const events = await watchRun(d, run.topic);
    assert.deepEqual(shape(events), [
      'run.started',
      'step.started:ask',
      'approval.requested:ask',
      'step.completed:ask',
      'step.started:after',
      'step.completed:after',
      'run.completed',
    ]);
    doc = (await d.get(`/v1/runs/${run.run_id}`)).json();
    assert.deepEqual(doc.steps.ask.output, { approved: true, comment: 'ship it' });
    assert.deepEqual(doc.output, { decision: { approved: true, comment: 'ship it' } });
    res = await d.postJson(`/v1/runs/${run.run_id}/approvals/ask`, { approve: false });
    assert.equal(res.status, 409);
  });

  test('/metrics carries the engine and model client figures', async () => {
    const text = (await d.get('/metrics')).text;
    for (const name of [
      'coord_runs_active',
      'coord_runs_total{event="completed"}',
      'coord_run_token_deltas_total',
      'coord_run_token_events_total',
      'coord_model_calls{state="running"}',
      'coord_model_calls{state="queued"}',
      'coord_workflows_loaded',
    ])
      assert.ok(text.includes(`\n${name} `), `missing ${name}`);
    assert.ok((await d.metric('coord_runs_total{event="completed"}')) >= 3);
    assert.equal(await d.metric('coord_workflows_loaded'), 2);
    const deltas = await d.metric('coord_run_token_deltas_total');
    const evs = await d.metric('coord_run_token_events_total');
    assert.ok(deltas > evs && evs > 0, `deltas ${deltas} events ${evs}`);
  });
});

describe('tenants (auth jwt)', () => {
  const secret = 'a-secret-of-at-least-32-bytes-for-tests!!';
  const tok = (tenant, scope = 'subscribe publish', extra = {}) => mintToken(secret, { tenant, scope, ...extra });
  let d;
  let dir;
  before(async () => {
    dir = await workflowsDir({ story, gate });
    d = await startDaemon({ config: { workflows_dir: dir, auth: { mode: 'jwt', jwt_secret: secret } } });
  });
  after(async () => {
    await d?.stop();
    await removeDir(dir);
  });

  test("a run belongs to the token's tenant; another tenant gets 404 and no data, WS refuses its topic", async () => {
    const a = tok('acme');
    const b = tok('bravo');
    assert.equal((await postRun(d, 'story', { topic: 'x' })).status, 401);
    const readOnly = await postRun(d, 'story', { topic: 'x' }, { token: tok('acme', 'subscribe') });
    assert.equal(readOnly.status, 403);

    const run = await startRun(d, 'story', { topic: 'tenants' }, { token: a });
    assert.equal(run.topic, `acme/runs/${run.run_id}`);
    await watchRun(d, run.topic, { headers: { authorization: `Bearer ${a}` } });

    const mine = await d.getAuth(`/v1/runs/${run.run_id}`, a);
    assert.equal(mine.status, 200);
    assert.equal(mine.json().tenant, 'acme');
    for (const [method, p, body] of [
      ['GET', `/v1/runs/${run.run_id}`],
      ['POST', `/v1/runs/${run.run_id}/cancel`, {}],
      ['POST', `/v1/runs/${run.run_id}/approvals/ask`, { approve: true }],
    ]) {
      const res = method === 'GET' ? await d.getAuth(p, b) : await d.postJson(p, body, { token: b });
      assert.equal(res.status, 404, `${method} ${p}: ${res.text}`);
      assert.ok(!res.text.includes('tenants'), 'no data of the other tenant');
    }
    const listB = (await d.getAuth('/v1/runs', b)).json();
    assert.deepEqual(listB.runs, []);
    const listA = (await d.getAuth('/v1/runs', a)).json();
    assert.ok(listA.runs.some((r) => r.run_id === run.run_id));

    // same idempotency key under two tenants: two runs
    const ka = await startRun(d, 'story', { topic: 'k' }, { token: a, key: 'shared-key' });
    const kb = await startRun(d, 'story', { topic: 'k' }, { token: b, key: 'shared-key' });
    assert.notEqual(ka.run_id, kb.run_id);
    assert.equal(kb.topic, `bravo/runs/${kb.run_id}`);

    const ws = await d.ws('/v1/ws', { headers: { authorization: `Bearer ${b}` } });
    ws.sendJson({ op: 'sub', topic: run.topic, after: { seq: 0 }, ref: 's1' });
    const reply = await ws.waitFor((m) => m.op === 'error' || m.op === 'subscribed' || m.op === 'ev');
    assert.equal(reply.op, 'error');
    assert.equal(reply.code, 'forbidden');
    ws.close();
  });

  test('a token restricted to other rooms cannot read the run', async () => {
    const a = tok('acme');
    const run = await startRun(d, 'gate', { what: 'rooms' }, { token: a });
    const narrow = tok('acme', 'subscribe publish', { rooms: ['chat/*'] });
    assert.equal((await d.getAuth(`/v1/runs/${run.run_id}`, narrow)).status, 403);
    const runsOnly = tok('acme', 'subscribe publish', { rooms: ['runs/*'] });
    assert.equal((await d.getAuth(`/v1/runs/${run.run_id}`, runsOnly)).status, 200);
    assert.equal((await d.postJson(`/v1/runs/${run.run_id}/cancel`, {}, { token: runsOnly })).status, 200);
  });
});

describe('coordinator validate', () => {
  let dir;
  before(async () => {
    dir = await workflowsDir({
      story,
      broken: '{\n  "name": "broken",\n  "steps": [\n    {"id": "a", "type": "llm", "agent": "writer", "prompt": "x"}\n  ]\n}\n',
      notjson: '{"name": "x",\n  "steps": [}\n',
    });
  });
  after(() => removeDir(dir));

  const validate = (...args) => spawnSync(daemonBin, ['validate', ...args], { encoding: 'utf8' });

  test('exit 0 with "ok" for valid files', () => {
    const r = validate(path.join(dir, 'story.json'));
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.stdout, `${path.join(dir, 'story.json')}: ok (workflow "story")\n`);
  });

  test('exit 1 with every error as file:line:col: path: reason', () => {
    const broken = path.join(dir, 'broken.json');
    const notjson = path.join(dir, 'notjson.json');
    const r = validate(path.join(dir, 'story.json'), broken, notjson, path.join(dir, 'missing.json'));
    assert.equal(r.status, 1);
    const lines = r.stdout.trim().split('\n');
    assert.ok(lines.includes(`${path.join(dir, 'story.json')}: ok (workflow "story")`));
    assert.ok(
      lines.includes(`${broken}:4:41: steps[0].agent: unknown agent profile "writer" (the workflow declares no agents)`),
      r.stdout,
    );
    assert.ok(lines.some((l) => l.startsWith(`${notjson}:2:13: `)), r.stdout);
    assert.ok(lines.some((l) => l.startsWith(`${path.join(dir, 'missing.json')}: `) && /No such file/.test(l)), r.stdout);
  });

  test('exit 2 for bad usage', () => {
    let r = validate();
    assert.equal(r.status, 2);
    assert.match(r.stderr, /no file given/);
    r = validate('--strict', 'x.json');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown option '--strict'/);
    r = validate('--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^usage: coordinator validate \[--config FILE\] FILE/);
    r = validate('--config');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /a value is needed after '--config'/);
  });

  test('--config resolves shared profiles: the examples are valid with examples/coordinator.json only', async () => {
    const files = ['approval-gate', 'best-of-n', 'critique-loop', 'research-then-write', 'research-with-agents', 'router']
      .map((n) => path.join(repoRoot, 'examples/workflows', `${n}.json`));
    let r = validate('--config', path.join(repoRoot, 'examples/coordinator.json'), ...files);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, files.length);
    const empty = path.join(dir, 'no-agents.config');
    await writeFile(empty, '{"agents": {}}');
    r = validate(`--config=${empty}`, files[5]);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /router\.json:\d+:\d+: agents\.classifier\.ref: unknown shared profile "classifier"/);
    const bad = path.join(dir, 'bad-agents.config');
    await writeFile(bad, '{"agents": {"w": {"provider": "openia"}}}');
    r = validate('--config', bad, files[5]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /invalid configuration: .*agents\.w\.provider: unknown provider "openia"/);
  });
});

describe('the workflows folder: invalid files at start and SIGHUP reloads', () => {
  let d;
  let dir;
  before(async () => {
    dir = await workflowsDir({ story, bad: '{"name": "bad", "steps": [{"id": "a", "type": "nope"}]}' });
    d = await startDaemon({ config: { workflows_dir: dir } });
  });
  after(async () => {
    await d?.stop();
    await removeDir(dir);
  });

  test('an invalid file is logged with its position and the daemon serves the others', async () => {
    const line = await d.waitForLog((e) => e.msg === 'invalid workflow file left out');
    assert.equal(line.file, path.join(dir, 'bad.json'));
    assert.match(line.error, new RegExp(`^${path.join(dir, 'bad.json')}:1:\\d+: steps\\[0\\]\\.type: `));
    const names = (await d.get('/v1/workflows')).json().workflows.map((w) => w.name);
    assert.deepEqual(names, ['story']);
    assert.equal(await d.metric('coord_workflow_files_rejected'), 1);
  });

  test('SIGHUP picks up a new file, keeps a broken file\'s previous version, drops a deleted one', async () => {
    await addWorkflows(dir, { gate });
    d.signal('SIGHUP');
    let log = await d.waitForLog((e) => e.msg === 'workflows reloaded');
    assert.deepEqual(log.added, ['gate']);
    assert.deepEqual(log.removed, []);
    const names = (await d.get('/v1/workflows')).json().workflows.map((w) => w.name);
    assert.deepEqual(names, ['gate', 'story']);
    const run = await startRun(d, 'gate', { what: 'reloaded' });
    await watchRun(d, run.topic, { until: (e) => e.type === 'approval.requested' });

    // the running run keeps its workflow while the file turns invalid: previous version kept
    await writeFile(path.join(dir, 'gate.json'), '{"name": "gate", "steps": 5}');
    const before = d.logs.length;
    d.signal('SIGHUP');
    log = await d.waitForLog((e) => e.msg === 'workflows reloaded' && d.logs.indexOf(e) >= before);
    assert.deepEqual(log.kept_previous, ['gate']);
    assert.ok(d.logs.slice(before).some((e) => e.msg === 'invalid workflow file left out' && e.file.endsWith('gate.json')));
    assert.equal((await d.get('/v1/workflows/gate')).status, 200);

    // a changed valid file is reported as changed; a deleted one as removed
    await writeFile(path.join(dir, 'gate.json'), JSON.stringify({ ...gate, description: 'v2' }));
    await unlink(path.join(dir, 'story.json'));
    const mark = d.logs.length;
    d.signal('SIGHUP');
    log = await d.waitForLog((e) => e.msg === 'workflows reloaded' && d.logs.indexOf(e) >= mark);
    assert.deepEqual(log.changed, ['gate']);
    assert.deepEqual(log.removed, ['story']);
    assert.equal((await d.get('/v1/workflows/story')).status, 404);
    assert.equal((await postRun(d, 'story', { topic: 'gone' })).status, 404);

    // the run started before the reloads still finishes with its workflow
    const res = await d.postJson(`/v1/runs/${run.run_id}/approvals/ask`, { approve: false });
    assert.equal(res.status, 200);
    const events = await watchRun(d, run.topic);
    assert.equal(events.at(-1).type, 'run.completed');
    assert.equal(await d.metric('coord_workflow_reloads_total{result="ok"}'), 3);
  });
});
