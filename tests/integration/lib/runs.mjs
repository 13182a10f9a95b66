// Helpers for the workflow-run integration tests (runs*.test.mjs):
//
//   const dir = await workflowsDir({ story: {...workflow doc...} });   // temp folder of files
//   const fake = await startFake();            // tests/fake/fake-llm.mjs on a free port
//   await fake.stats('tag', { wait: 'disconnect' });   // long-polls the fake's counters
//   const run = await startRun(d, 'story', { topic: 'x' });           // 202 body
//   const events = await watchRun(d, run.topic);     // WS, after seq 0, until run.* ends it
//
// Nothing here sleeps to wait for readiness: the fake announces its port on stdout, the
// watcher reads until a terminal event, and every wait has a deadline.

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { repoRoot } from './harness.mjs';

export const TERMINAL = new Set(['run.completed', 'run.failed', 'run.cancelled']);

/** Writes each {name: doc} as <name>.json (a string doc is written as is) in a new temp folder. */
export async function workflowsDir(docs) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'coord-wf-'));
  await addWorkflows(dir, docs);
  return dir;
}

export async function addWorkflows(dir, docs) {
  for (const [name, doc] of Object.entries(docs)) {
    await writeFile(path.join(dir, `${name}.json`), typeof doc === 'string' ? doc : JSON.stringify(doc, null, 2));
  }
}

export async function removeDir(dir) {
  if (process.env.COORD_KEEP_TMP !== '1') await rm(dir, { recursive: true, force: true });
}

/** A mock agent profile streaming `text` in chunks of `chunk` bytes at `rate` chunks/s. */
export function mockAgent(text, { chunk = 4, rate = 0, extra = {} } = {}) {
  return {
    provider: 'mock',
    params: { mock_text: text, mock_chunk_chars: chunk, mock_tokens_per_s: rate, ...extra },
  };
}

/** POST /v1/workflows/{name}/runs; asserts nothing, resolves the response. */
export function postRun(d, name, input, { token, key } = {}) {
  const headers = key ? { 'idempotency-key': key } : {};
  return d.postJson(`/v1/workflows/${encodeURIComponent(name)}/runs`, { input }, { token, headers });
}

/** Starts a run and returns its 202 body; throws with the answer otherwise. */
export async function startRun(d, name, input, options) {
  const res = await postRun(d, name, input, options);
  if (res.status !== 202) throw new Error(`start ${name}: HTTP ${res.status} ${res.text}`);
  return res.json();
}

/**
 * Subscribes to topic after seq 0 on a new WebSocket and collects `ev` messages until
 * `until(ev)` is true (default: a terminal run event). Resolves the events in arrival order
 * (each {seq, type, lane, data, ...}). `onEvent(ev)` sees each one as it comes.
 */
export async function watchRun(d, topic, { until = (ev) => TERMINAL.has(ev.type), timeoutMs = 15000, onEvent, ws, headers } = {}) {
  const sock = ws || (await d.ws('/v1/ws', headers ? { headers } : {}));
  sock.sendJson({ op: 'sub', topic, after: { seq: 0 } });
  const sub = await sock.waitFor((m) => m.op === 'subscribed' || m.op === 'error', { timeoutMs });
  if (sub.op === 'error') throw new Error(`subscribe ${topic}: ${JSON.stringify(sub)}`);
  const events = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no end of run on ${topic} within ${timeoutMs} ms; got ${events.map((e) => e.type)}`);
    const m = await sock.waitFor((x) => x.op === 'ev' && x.topic === topic, { timeoutMs: left });
    events.push(m);
    if (onEvent) await onEvent(m);
    if (until(m)) break;
  }
  if (!ws) sock.close();
  return events;
}

/** The text of the token events of `step` and `attempt`, concatenated in index order. */
export function tokenText(events, step, attempt = 1, part = 'text') {
  return events
    .filter((e) => e.type === 'token' && e.data.step === step && e.data.attempt === attempt && e.data.part === part)
    .sort((a, b) => a.data.index - b.data.index)
    .map((e) => e.data.text)
    .join('');
}

/** Event types in order, with tokens of one step and attempt collapsed into one "token" entry. */
export function shape(events) {
  const out = [];
  for (const e of events) {
    const label = e.type === 'token' ? `token:${e.data.step}#${e.data.attempt}` : `${e.type}${e.data.step ? `:${e.data.step}` : ''}`;
    if (e.type === 'token' && out[out.length - 1] === label) continue;
    out.push(label);
  }
  return out;
}

function getJson(port, p, timeoutMs) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from the fake within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Runs tests/fake/fake-llm.mjs on a free loopback port. */
export async function startFake() {
  const proc = spawn(process.execPath, [path.join(repoRoot, 'tests', 'fake', 'fake-llm.mjs'), '--port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('the fake endpoint did not start')), 10000);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (c) => {
      buf += c;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      resolve(JSON.parse(buf.slice(0, nl)).port);
    });
    proc.once('exit', (code) => reject(new Error(`the fake endpoint exited (${code})`)));
  });
  const exited = new Promise((r) => proc.once('exit', r));
  return {
    port,
    /** Base URL for providers.openai.base_url. */
    openaiUrl: `http://127.0.0.1:${port}/v1`,
    /** Counters of a tag; with wait, long-polls until the counter reaches count. */
    stats(tag, { wait, count = 1, timeoutMs = 10000 } = {}) {
      const q = new URLSearchParams({ tag });
      if (wait) {
        q.set('wait', wait);
        q.set('count', String(count));
        q.set('timeout_ms', String(timeoutMs));
      }
      return getJson(port, `/_stats?${q}`, timeoutMs + 2000);
    },
    requests(tag) {
      return getJson(port, `/_requests?tag=${encodeURIComponent(tag)}`, 5000);
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}
