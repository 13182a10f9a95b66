#!/usr/bin/env node
// Token latency benchmark of workflow runs (issue 4, docs/benchmarks.md "Run token
// latency"): the coordinator's overhead per streamed token, from the moment a chunk leaves
// the model endpoint to the moment the WebSocket watcher of the run reads it, with many
// runs streaming at once, and the CPU the daemon uses meanwhile.
//
//   node tests/bench/run-tokens.mjs [--runs 1000] [--rate 50] [--duration 30] [--warmup 6]
//        [--ramp 2] [--coalesce 20] [--conns RUNS] [--provider fake|mock] [--bin PATH]
//        [--keep] [--json FILE]
//
// What it does (everything on 127.0.0.1, every child stopped by PID, every wait bounded):
// 1. starts tests/bench/tokens-fake.mjs, an OpenAI-compatible endpoint whose chunks carry
//    their emission time (CLOCK_MONOTONIC, microseconds) as their text;
// 2. starts the daemon with a one-step workflow whose profile is the shared profile
//    `bench` (provider openai, base_url the fake: the configuration-only wiring of a real
//    endpoint), publish rate limits off, runs.token_coalesce_ms = --coalesce;
// 3. opens --conns WebSocket connections (default one per run, as one browser per run),
//    starts --runs runs spread over --ramp seconds, and subscribes each run's topic (after
//    seq 0) as soon as its POST answers;
// 4. for every token event, every stamp in its text gives one sample: read time minus
//    emission time. Samples count when the chunk was emitted inside the measurement window
//    (after ramp + warmup, until the runs begin to end), so every run streams during it;
// 5. reads the daemon's and the fake's CPU time (/proc/<pid>/stat) at the window's edges,
//    waits for every run.completed, checks every emitted chunk arrived exactly once, and
//    prints a JSON summary (and a short table on stderr).
//
// Latency includes, by construction: loopback TCP from the fake, libcurl and the SSE
// parser, the engine's coalescing window (a chunk waits up to --coalesce ms for the ones
// after it), the durable commit of the event, fanout, the WebSocket write, and the
// watcher's read (this process: its CPU is reported too, all share the machine's cores).
//
// --provider mock runs the same workflow on the daemon's in-process mock provider instead
// (4-byte chunks at --rate, no HTTP and no fake process). Its chunks carry no emission
// time, so the latency reported then is only from each token event's publish (the `ts`
// of the `ev` message, milliseconds) to its read: it leaves out the coalescing wait and
// everything before it. Use it to see the daemon's CPU without the HTTP transport and
// without a fake competing for the cores.
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const WebSocket = createRequire(path.join(repo, 'tests', 'package.json'))('ws');

// ---- options ----
const defaults = { runs: 1000, rate: 50, duration: 30, warmup: 6, ramp: 2, coalesce: 20, conns: 0, provider: 'fake', bin: '', keep: false, json: '' };
const opt = { ...defaults };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const key = a.replace(/^--/, '');
  if (!(key in defaults) || !a.startsWith('--')) {
    console.error(`run-tokens: unknown argument ${a}\nusage: run-tokens.mjs [--runs N] [--rate R] [--duration S] [--warmup S] [--ramp S] [--coalesce MS] [--conns N] [--provider fake|mock] [--bin PATH] [--keep] [--json FILE]`);
    process.exit(2);
  }
  if (typeof defaults[key] === 'boolean') opt[key] = true;
  else opt[key] = typeof defaults[key] === 'number' ? Number(process.argv[++i]) : process.argv[++i];
}
opt.conns = opt.conns || opt.runs;
opt.bin = opt.bin || process.env.COORDINATOR_BIN || path.join(repo, 'build', 'coordinator', 'coordinator');
const bounds = { runs: [1, 5000], rate: [1, 1000], duration: [5, 300], warmup: [0, 60], ramp: [0, 60], coalesce: [0, 1000], conns: [1, 5000] };
for (const [k, [lo, hi]] of Object.entries(bounds)) {
  if (!(opt[k] >= lo && opt[k] <= hi)) {
    console.error(`run-tokens: --${k} must be between ${lo} and ${hi}`);
    process.exit(2);
  }
}
if (opt.provider !== 'fake' && opt.provider !== 'mock') {
  console.error('run-tokens: --provider is fake or mock');
  process.exit(2);
}
if (Math.ceil(opt.runs / opt.conns) > 64) {
  console.error('run-tokens: at most 64 runs per connection (max_subs_per_conn); raise --conns');
  process.exit(2);
}
const tokens = Math.round(opt.rate * opt.duration);
if (opt.ramp + opt.warmup + 2 >= opt.duration) {
  console.error('run-tokens: --duration must exceed --ramp + --warmup + 2 s');
  process.exit(2);
}

const nowUs = () => process.hrtime.bigint() / 1000n;
const log = (...a) => console.error('run-tokens:', ...a);
const children = [];
let stopping = false; // set before we stop the children ourselves
const stopChild = async (c, sig = 'SIGTERM') => {
  if (c.exitCode !== null || c.signalCode !== null) return;
  c.kill(sig);
  const t = setTimeout(() => c.kill('SIGKILL'), 15000);
  await new Promise((r) => c.once('exit', r));
  clearTimeout(t);
};
const hardDeadline = setTimeout(() => {
  log('hard deadline reached, stopping');
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
}, (opt.duration + opt.ramp + 120) * 1000);
hardDeadline.unref();
// Interrupted (Ctrl-C, a supervisor's SIGTERM) or bailing out: the children go too.
const killChildren = () => {
  stopping = true;
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
};
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    killChildren();
    process.exit(130);
  });
}
process.on('exit', killChildren);

function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, CLK_TCK 100
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
function request(port, method, p, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, agent, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.setTimeout(60000, () => req.destroy(new Error(`${method} ${p}: no answer within 60 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

async function main() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-tokens-'));
  try {
    return await bench(dir);
  } catch (err) {
    log(err.stack || String(err));
    return 1;
  } finally {
    stopping = true;
    for (const c of children.reverse()) await stopChild(c);
    if (!opt.keep) await rm(dir, { recursive: true, force: true });
    else log(`kept ${dir}`);
  }
}

async function bench(dir) {
  // the fake endpoint
  const mock = opt.provider === 'mock';
  let fake = null;
  let fakePort = 0;
  if (!mock) {
    fake = spawn(process.execPath, [path.join(here, 'tokens-fake.mjs'), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(fake);
    fakePort = await new Promise((resolve, reject) => {
      let buf = '';
      fake.stdout.on('data', (c) => {
        buf += c;
        if (buf.includes('\n')) resolve(JSON.parse(buf.slice(0, buf.indexOf('\n'))).port);
      });
      fake.once('exit', () => reject(new Error('the fake endpoint exited')));
    });
  }

  // the daemon
  const port = await freePort();
  await mkdir(path.join(dir, 'wf'));
  await writeFile(
    path.join(dir, 'wf', 'bench.json'),
    JSON.stringify({
      name: 'bench',
      agents: { m: { ref: 'bench' } },
      steps: [{ id: 'gen', type: 'llm', agent: 'm', prompt: 'Stream for run {{ run.id }}.' }],
    }),
  );
  const config = {
    listen: `127.0.0.1:${port}`,
    data_dir: path.join(dir, 'data'),
    web_root: '',
    log_level: 'info',
    workflows_dir: path.join(dir, 'wf'),
    limits: { publish_rate: 0, topic_publish_rate: 0 },
    runs: { max_runs: opt.runs + 100, token_coalesce_ms: opt.coalesce },
    providers: { openai: { base_url: `http://127.0.0.1:${fakePort}/v1` } },
    agents: {
      bench: mock
        ? { provider: 'mock', params: { mock_text: 'abcd'.repeat(tokens), mock_chunk_chars: 4, mock_tokens_per_s: opt.rate } }
        : { provider: 'openai', model: `bench?tokens=${tokens}&rate=${opt.rate}` },
    },
    model_calls: { idle_timeout_ms: 30000 },
  };
  await writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const daemon = spawn(opt.bin, ['--config', path.join(dir, 'config.json')], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(daemon);
  let daemonErr = '';
  daemon.stderr.setEncoding('utf8');
  daemon.stderr.on('data', (c) => {
    daemonErr += c;
    if (daemonErr.length > 200000) daemonErr = daemonErr.slice(-100000);
  });
  daemon.once('exit', (code, sig) => {
    if (!stopping) {
      log(`the daemon exited (${code ?? sig}):\n${daemonErr.slice(-4000)}`);
      process.exit(1);
    }
  });
  await until(async () => (await request(port, 'GET', '/readyz').catch(() => ({}))).status === 200, 15000, 'the daemon');
  log(`daemon ready on ${port}; ${mock ? 'mock provider' : `fake on ${fakePort}`}; ${opt.runs} runs x ${tokens} tokens at ${opt.rate}/s, coalesce ${opt.coalesce} ms, ${opt.conns} watcher connections`);

  // watcher connections
  const conns = await Promise.all(
    Array.from({ length: opt.conns }, () =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, { perMessageDeflate: false });
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      }),
    ),
  );

  const samples = new Uint32Array(opt.runs * tokens + 16);
  let nsamples = 0;
  let lateSamples = 0; // outside the window
  let maxUs = 0;
  let windowStart = 0n;
  let windowEnd = 0n;
  const perRun = new Map(); // topic -> {chunks, done, stamps:Set?}
  let completed = 0;
  let failedRuns = 0;
  let badMessages = 0;
  let duplicates = 0;
  let onAllDone;
  const allDone = new Promise((r) => (onAllDone = r));
  const stampRe = /t(\d+) /g;
  // hrtime (us) at performance.now() == 0, to place wall-clock ts on the monotonic clock
  const originUs = nowUs() - BigInt(Math.round(performance.now() * 1000));

  for (const ws of conns) {
    ws.on('message', (data) => {
      const recv = nowUs();
      let m;
      try {
        m = JSON.parse(data.toString('utf8'));
      } catch {
        badMessages++;
        return;
      }
      if (m.op !== 'ev') return;
      const run = perRun.get(m.topic);
      if (!run) return;
      if (m.seq !== undefined) {
        if (m.seq <= run.lastSeq) {
          duplicates++;
          return;
        }
        run.lastSeq = m.seq;
      }
      if (m.type === 'token' && m.data && m.data.part === 'text' && mock) {
        // no stamps: publish (ev.ts, ms) -> read, once per event, in the window
        run.chunks += m.data.text.length / 4;
        const recvMs = performance.timeOrigin + performance.now();
        const tsUs = BigInt(Math.round((m.ts - performance.timeOrigin) * 1000)) + originUs;
        if (tsUs < windowStart || tsUs > windowEnd || windowStart === 0n) {
          lateSamples++;
        } else {
          const us = Math.round((recvMs - m.ts) * 1000);
          samples[nsamples++] = us < 0 ? 0 : us;
          if (us > maxUs) maxUs = us;
        }
      } else if (m.type === 'token' && m.data && m.data.part === 'text') {
        stampRe.lastIndex = 0;
        let x;
        while ((x = stampRe.exec(m.data.text))) {
          run.chunks++;
          const sent = BigInt(x[1]);
          if (sent < windowStart || sent > windowEnd || windowStart === 0n) {
            lateSamples++;
            continue;
          }
          const us = Number(recv - sent);
          samples[nsamples++] = us < 0 ? 0 : us;
          if (us > maxUs) maxUs = us;
        }
      } else if (m.type === 'run.completed' || m.type === 'run.failed' || m.type === 'run.cancelled') {
        if (!run.done) {
          run.done = true;
          completed++;
          if (m.type !== 'run.completed') failedRuns++;
          if (completed === opt.runs) onAllDone();
        }
      }
    });
  }

  // start the runs, spread over the ramp
  const t0 = nowUs();
  const rampUs = BigInt(Math.round(opt.ramp * 1e6));
  windowStart = t0 + rampUs + BigInt(Math.round(opt.warmup * 1e6));
  // the last run starts at ~ramp and streams duration; the first ends at ~duration
  windowEnd = t0 + BigInt(Math.round((opt.duration - 1) * 1e6));
  const windowMs = Number(windowEnd - windowStart) / 1000;
  const cpuTimers = [];
  const cpu = {};
  const wcpu = {};
  cpuTimers.push(
    setTimeout(() => {
      cpu.daemon0 = cpuSeconds(daemon.pid);
      cpu.fake0 = fake ? cpuSeconds(fake.pid) : 0;
      wcpu.start = process.cpuUsage();
    }, Number(windowStart - nowUs()) / 1000),
  );
  cpuTimers.push(
    setTimeout(() => {
      cpu.daemon1 = cpuSeconds(daemon.pid);
      cpu.fake1 = fake ? cpuSeconds(fake.pid) : 0;
      wcpu.end = process.cpuUsage(wcpu.start);
    }, Number(windowEnd - nowUs()) / 1000),
  );
  let startErrors = 0;
  const starts = [];
  for (let i = 0; i < opt.runs; i++) {
    const due = Number(t0 + (rampUs * BigInt(i)) / BigInt(opt.runs) - nowUs()) / 1000;
    if (due > 1) await new Promise((r) => setTimeout(r, due));
    const ws = conns[i % conns.length];
    starts.push(
      request(port, 'POST', '/v1/workflows/bench/runs', JSON.stringify({ input: {} })).then((res) => {
        if (res.status !== 202) {
          if (startErrors++ < 3) log(`start ${i}: HTTP ${res.status} ${res.text.trim()}`);
          return;
        }
        const { topic } = JSON.parse(res.text);
        perRun.set(topic, { chunks: 0, done: false, lastSeq: 0 });
        ws.send(JSON.stringify({ op: 'sub', topic, after: { seq: 0 } }));
      }),
    );
  }
  await Promise.all(starts);
  const startedUs = nowUs() - t0;
  log(`${opt.runs - startErrors} runs started in ${(Number(startedUs) / 1e6).toFixed(2)} s`);
  if (startErrors) throw new Error(`${startErrors} runs were refused`);

  const timeout = new Promise((_, rej) => setTimeout(() => rej(new Error('runs did not all complete in time')), (opt.duration + opt.ramp + 60) * 1000).unref());
  await Promise.race([allDone, timeout]);
  for (const t of cpuTimers) clearTimeout(t);

  const metricsText = (await request(port, 'GET', '/metrics')).text;
  const metric = (name) => {
    const line = metricsText.split('\n').find((l) => l.startsWith(name + ' '));
    return line ? Number(line.slice(name.length + 1)) : null;
  };
  const fakeStats = mock ? { chunks: opt.runs * tokens, late_max_us: null } : JSON.parse((await request(fakePort, 'GET', '/_stats')).text);

  stopping = true;
  for (const ws of conns) ws.terminate();
  agent.destroy();

  const lat = samples.subarray(0, nsamples).sort();
  const ms = (us) => (us === null ? null : Math.round(us / 10) / 100);
  let chunks = 0;
  for (const r of perRun.values()) chunks += r.chunks;
  const lost = opt.runs * tokens - chunks;
  const summary = {
    bench: 'run-tokens',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, kernel: os.release(), node: process.version },
    options: { ...opt, tokens_per_run: tokens },
    window_s: Math.round(windowMs) / 1000,
    runs: { started: opt.runs - startErrors, completed, failed: failedRuns },
    chunks: { emitted: fakeStats.chunks, received: chunks, lost, duplicates_dropped: duplicates, bad_messages: badMessages, fake_late_max_ms: ms(fakeStats.late_max_us) },
    latency_ms: {
      kind: mock ? 'token event publish (ev.ts) to WebSocket read' : 'chunk emission at the endpoint to WebSocket read',
      samples: nsamples,
      outside_window: lateSamples,
      p50: ms(percentile(lat, 50)),
      p90: ms(percentile(lat, 90)),
      p99: ms(percentile(lat, 99)),
      p99_9: ms(percentile(lat, 99.9)),
      max: ms(maxUs),
    },
    cpu: {
      daemon_cores: cpu.daemon1 !== undefined ? Math.round(((cpu.daemon1 - cpu.daemon0) / (windowMs / 1000)) * 100) / 100 : null,
      fake_cores: cpu.fake1 !== undefined ? Math.round(((cpu.fake1 - cpu.fake0) / (windowMs / 1000)) * 100) / 100 : null,
      watcher_cores: wcpu.end ? Math.round(((wcpu.end.user + wcpu.end.system) / 1e6 / (windowMs / 1000)) * 100) / 100 : null,
    },
    daemon_metrics: {
      token_deltas: metric('coord_run_token_deltas_total'),
      token_events: metric('coord_run_token_events_total'),
      store_commits: metric('coord_store_commits_total'),
      events_appended: metric('coord_store_events_appended_total'),
      loop_lag_count: metric('coord_event_loop_lag_seconds_count'),
      loop_lag_sum_s: metric('coord_event_loop_lag_seconds_sum'),
    },
  };
  const text = JSON.stringify(summary, null, 2);
  if (opt.json) await writeFile(opt.json, text + '\n');
  process.stdout.write(text + '\n');
  log(`latency p50 ${summary.latency_ms.p50} ms, p99 ${summary.latency_ms.p99} ms, max ${summary.latency_ms.max} ms over ${nsamples} ${mock ? 'token events' : 'tokens'}; daemon ${summary.cpu.daemon_cores} cores; lost ${lost}`);
  return lost === 0 && failedRuns === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    log(err.stack || String(err));
    process.exit(1);
  },
);
