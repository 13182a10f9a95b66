// Issue 6: the `agent` workflow step against the real daemon with real external agents:
// the example workflow end to end with the example Node agent (streaming) and the example
// C agent, a killed agent whose task another member takes over, and results after a
// cancel rejected over HTTP (409) and ignored on the reply topic.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { repoRoot, startDaemon, stopAll, until } from './lib/harness.mjs';

after(stopAll);

const nodeAgent = path.join(repoRoot, 'examples/agents/node/agent.mjs');
const cAgent = path.join(process.env.COORD_BUILD_DIR || path.join(repoRoot, 'build'), 'examples/agents/agent_c');
// The example workflows refer to the shared profiles of the example configuration.
const exampleAgents = JSON.parse(readFileSync(path.join(repoRoot, 'examples/coordinator.json'), 'utf8')).agents;
const agents = new Set();
after(() => {
  for (const a of agents) a.proc.kill('SIGKILL');
});

/** Starts an example agent; resolves once it joined its group. Its stdout JSON lines
 * collect in `lines`. */
async function startAgent(cmd, args) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const a = { proc, lines: [], stderr: '' };
  agents.add(a);
  let partial = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk) => {
    partial += chunk;
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      a.lines.push(JSON.parse(partial.slice(0, nl)));
      partial = partial.slice(nl + 1);
    }
  });
  proc.stderr.on('data', (c) => (a.stderr += c));
  a.exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  await until(() => a.lines.some((l) => l.msg === 'joined'), { timeoutMs: 10000, what: `${cmd} joined` });
  return a;
}

async function stopAgent(a) {
  a.proc.kill('SIGTERM');
  await a.exited;
  agents.delete(a);
}

/** Follows a run's topic from seq 0; resolves with every event up to the terminal one. */
async function followRun(d, topic) {
  const ws = await d.ws();
  ws.sendJson({ op: 'sub', topic, after: { seq: 0 } });
  const evs = [];
  await ws.waitFor(
    (m) => {
      if (m.op === 'ev') evs.push(m);
      return m.op === 'ev' && /^run\.(completed|failed|cancelled)$/.test(m.type);
    },
    { timeoutMs: 30000 },
  );
  await ws.close();
  return evs;
}

async function startRun(d, workflow, input) {
  const res = await d.postJson(`/v1/workflows/${workflow}/runs`, { input });
  assert.equal(res.status, 202, res.text);
  return res.json();
}

/** The token text of one step's attempt, checking indexes are dense. */
function tokensOf(evs, step, attempt = 1) {
  const toks = evs.filter((e) => e.type === 'token' && e.data.step === step && e.data.attempt === attempt);
  assert.deepEqual(
    toks.map((t) => t.data.index),
    toks.map((_, i) => i),
  );
  return toks.map((t) => t.data.text).join('');
}

async function workflowsDir(docs) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'coord-wf-'));
  for (const doc of docs) await writeFile(path.join(dir, `${doc.name}.json`), JSON.stringify(doc));
  return dir;
}

const waitTask = {
  name: 'wait-task',
  steps: [
    {
      id: 'ask',
      type: 'agent',
      topic: 'tasks/slow',
      group: 'slow',
      input: { topic: '{{ input.topic }}' },
      heartbeat_ms: 10000,
      timeout_ms: 60000,
    },
  ],
  inputs: { topic: { type: 'string', required: true } },
};

describe('agent steps with external agents', () => {
  test('the example workflow runs end to end with the Node and C agents streaming', async (t) => {
    if (!existsSync(cAgent)) {
      t.skip(`${cAgent} is not built`);
      return;
    }
    const d = await startDaemon({ config: { workflows_dir: path.join(repoRoot, 'examples/workflows'), agents: exampleAgents } });
    try {
      const url = `ws://127.0.0.1:${d.port}/v1/ws`;
      const researcher = await startAgent(process.execPath, [nodeAgent, '--url', url, '--delay-ms', '5']);
      const summarizer = await startAgent(cAgent, ['--port', String(d.port), '--delay-ms', '5']);
      const run = await startRun(d, 'research-with-agents', { topic: 'tides' });
      const evs = await followRun(d, run.topic);
      const last = evs.at(-1);
      assert.equal(last.type, 'run.completed', JSON.stringify(last.data));
      const findings = [
        'tides has been studied for a long time.',
        'Three sources agree on the basics of tides.',
        'Open questions about tides remain.',
      ];
      assert.deepEqual(last.data.output.findings, findings);
      assert.equal(last.data.output.summary, findings.join(' ').split(' ').slice(0, 12).join(' '));
      // The agents' partial output is on the run's topic as token text, in order.
      assert.equal(tokensOf(evs, 'research'), findings.join(' '));
      assert.equal(tokensOf(evs, 'summarize'), last.data.output.summary);
      const offered = evs.filter((e) => e.type === 'task.offered').map((e) => e.data.step);
      assert.deepEqual(offered, ['research', 'summarize']);
      // The run document agrees, and each group saw one delivery, acked.
      const doc = (await d.get(`/v1/runs/${run.run_id}`)).json();
      assert.equal(doc.status, 'completed');
      assert.equal(doc.steps.research.text, findings.join(' '));
      assert.match(doc.steps.research.task_id, new RegExp(`^${run.run_id}\\.[0-9a-f]{16}\\.1$`));
      const g = (await d.get('/v1/streams/default/tasks/research/groups')).json().groups[0];
      assert.deepEqual([g.group, g.acks, g.pending, g.redeliveries], ['researchers', 1, 0, 0]);
      await stopAgent(researcher);
      await stopAgent(summarizer);
    } finally {
      await d.stop();
    }
  });

  test('a task whose agent is killed mid-stream is taken over by another member', async () => {
    const dir = await workflowsDir([waitTask]);
    const d = await startDaemon({ config: { workflows_dir: dir } });
    try {
      const url = `ws://127.0.0.1:${d.port}/v1/ws`;
      const args = ['--url', url, '--topic', 'default/tasks/slow', '--group', 'slow', '--delay-ms', '150'];
      const first = await startAgent(process.execPath, [nodeAgent, ...args, '--name', 'first']);
      const run = await startRun(d, 'wait-task', { topic: 'reefs' });
      await until(() => first.lines.some((l) => l.msg === 'task'), { what: 'first took the task' });
      const second = await startAgent(process.execPath, [nodeAgent, ...args, '--name', 'second']);
      first.proc.kill('SIGKILL');
      await first.exited;
      agents.delete(first);
      const evs = await followRun(d, run.topic);
      assert.equal(evs.at(-1).type, 'run.completed');
      assert.equal(evs.at(-1).data.output.agent, 'second');
      const took = second.lines.find((l) => l.msg === 'task');
      assert.equal(took.redelivered, 1);
      // The same attempt finished: no retry, and the text is whole (pieces carry ids).
      assert.equal(evs.filter((e) => e.type === 'step.retrying').length, 0);
      assert.equal(
        tokensOf(evs, 'ask'),
        'reefs has been studied for a long time. Three sources agree on the basics of reefs. Open questions about reefs remain.',
      );
      await stopAgent(second);
    } finally {
      await d.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a result after the run was cancelled is rejected (409) and ignored on the reply topic', async () => {
    const dir = await workflowsDir([waitTask]);
    const d = await startDaemon({ config: { workflows_dir: dir } });
    try {
      const agent = await d.ws();
      agent.sendJson({ op: 'sub', topic: 'default/tasks/slow', group: 'slow' });
      assert.equal((await agent.nextJson()).op, 'subscribed');
      const run = await startRun(d, 'wait-task', { topic: 'x' });
      const delivery = await agent.waitFor((m) => m.op === 'ev' && m.type === 'task');
      const task = delivery.data;
      assert.equal(task.run_id, run.run_id);
      agent.sendJson({ op: 'pub', ref: 'c', topic: task.reply_to, type: 'task.heartbeat', data: {} });
      assert.equal((await agent.waitFor((m) => m.ref === 'c')).op, 'puback');

      const cancel = await d.postJson(`/v1/runs/${run.run_id}/cancel`, {});
      assert.equal(cancel.status, 200, cancel.text);
      const late = await d.postJson(`/v1/tasks/${task.task_id}/result`, { output: 'too late' });
      assert.equal(late.status, 409, late.text);
      assert.equal(late.json().error.code, 'not_waiting');
      assert.match(late.json().error.message, new RegExp(run.run_id));

      // Over the reply topic the publish succeeds, but it lands after task.closed.
      agent.sendJson({ op: 'pub', ref: 'r', topic: task.reply_to, type: 'task.result', data: { output: 'too late' } });
      assert.equal((await agent.waitFor((m) => m.ref === 'r')).op, 'puback');
      const reply = (await d.get(`/v1/streams/${task.reply_to}/events`)).json().events;
      assert.deepEqual(
        reply.map((e) => e.type),
        ['task.heartbeat', 'task.closed', 'task.result'],
      );
      assert.equal(reply[1].data.reason, 'cancelled');
      const doc = (await d.get(`/v1/runs/${run.run_id}`)).json();
      assert.deepEqual([doc.status, doc.steps.ask.status], ['cancelled', 'cancelled']);

      // Unknown tasks are 404, bodies are checked.
      const unknown = await d.postJson('/v1/tasks/r_00000000000000000000.0123456789abcdef.1/result', { output: 1 });
      assert.equal(unknown.status, 404, unknown.text);
      const bad = await d.postJson(`/v1/tasks/${task.task_id}/result`, { outptu: 1 });
      assert.equal(bad.status, 400);
      assert.match(bad.json().error.message, /outptu/);
      agent.sendJson({ op: 'ack', topic: 'default/tasks/slow', group: 'slow', seq: delivery.seq });
      await agent.close();
    } finally {
      await d.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a result over HTTP completes the step (200), a second one is 409', async () => {
    const dir = await workflowsDir([waitTask]);
    const d = await startDaemon({ config: { workflows_dir: dir } });
    try {
      const agent = await d.ws();
      agent.sendJson({ op: 'sub', topic: 'default/tasks/slow', group: 'slow' });
      assert.equal((await agent.nextJson()).op, 'subscribed');
      const run = await startRun(d, 'wait-task', { topic: 'x' });
      const delivery = await agent.waitFor((m) => m.op === 'ev' && m.type === 'task');
      const ok = await d.postJson(`/v1/tasks/${delivery.data.task_id}/result`, { output: { answer: 42 } });
      assert.equal(ok.status, 200, ok.text);
      assert.deepEqual(ok.json(), { task_id: delivery.data.task_id, status: 'accepted' });
      const again = await d.postJson(`/v1/tasks/${delivery.data.task_id}/result`, { output: 1 });
      assert.equal(again.status, 409);
      const evs = await followRun(d, run.topic);
      assert.deepEqual(evs.at(-1).data.output, { answer: 42 });
      assert.equal(await d.metric('coord_agent_tasks_total{event="offered"}'), 1);
      assert.equal(await d.metric('coord_agent_tasks_total{event="answered"}'), 1);
      assert.equal(await d.metric('coord_agent_tasks_total{event="rejected"}'), 1);
      agent.sendJson({ op: 'ack', topic: 'default/tasks/slow', group: 'slow', seq: delivery.seq });
      await agent.close();
    } finally {
      await d.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
