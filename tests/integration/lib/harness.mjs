// Integration test harness: runs the real coordinator daemon and talks to it.
//
//   import { startDaemon } from './lib/harness.mjs';
//   const d = await startDaemon({ config: { limits: { max_connections: 3 } } });
//   const res = await d.get('/healthz');              // { status, headers, text, json() }
//   const ws = await d.ws();                          // WsClient on /v1/ws, already open
//   ws.sendJson({ op: 'ping', ref: 'p1' });
//   const msg = await ws.nextJson();                  // next message, parsed
//   const { code } = await d.stop();                  // SIGTERM, wait for exit
//
// What it does:
// - Binary: env COORDINATOR_BIN (ctest sets it), else build/coordinator/coordinator.
// - Each daemon gets a temp dir (mkdtemp) holding its data_dir and config.json; the config
//   is the test's `config` deep-merged over small defaults (loopback, port 0, short drain).
// - Port: by default the daemon binds port 0 and the harness reads the real port from its
//   "listening" log line (no race between choosing and binding). With `port: N` the daemon
//   binds N; if N is busy (EADDRINUSE) start is retried a few times (for restarts on the same
//   port while the old socket lingers).
// - Readiness: polls GET /readyz until 200 (no fixed sleeps); fails with the daemon's log
//   if it exits first or does not become ready within readyTimeoutMs.
// - Logs: stderr is JSON lines; every parsed line is kept in `d.logs` (raw text in
//   `d.stderr`); `d.waitForLog(pred)` waits for a matching line.
// - Stop: `d.signal(sig)` sends a signal; `d.exited` resolves to { code, signal };
//   `d.stop()` sends SIGTERM and waits (SIGKILL after a timeout, reported as failure).
// - Cleanup: `d.stop()` also removes the temp dir (unless COORD_KEEP_TMP=1) and fails if
//   the daemon printed a sanitizer report; after `await d.exited`, call `d.stop()` too.
//   Call `stopAll()` in an after() hook to reap strays.
//
// Helpers for raw traffic: `rawHttp(port, bytes)` sends bytes on a fresh TCP connection and
// collects the answer until the server closes; `HttpConn` keeps one HTTP/1.1 connection
// open for sequential requests (to see what an existing keep-alive client sees).
//
// Streams helpers: `mintToken(secret, claims)` signs an HS256 JWT; `d.postJson(path, body,
// {token})` and `d.get(path, {headers})`; `ws.waitFor(pred)` reads until a message matches;
// `d.sse(path, {headers})` opens an SSE stream (`next()` yields {id, event, data, comment});
// `freePort()` picks a port for restarts on the same address; `d.rssKb()` and
// `d.metric(name)` read the daemon's memory and one /metrics sample.

import { spawn } from 'node:child_process';
import { mkdtemp, writeFile, rm, mkdir } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');
// `ws` lives in tests/node_modules (installed by scripts/deps.sh --test).
const require = createRequire(path.join(repoRoot, 'tests', 'package.json'));
export const WebSocket = require('ws');

export const daemonBin =
  process.env.COORDINATOR_BIN || path.join(repoRoot, 'build', 'coordinator', 'coordinator');

const running = new Set();

function isObject(v) {
  return v && typeof v === 'object' && !Array.isArray(v);
}

function deepMerge(base, over) {
  const out = { ...base };
  for (const [k, v] of Object.entries(over || {})) {
    out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k], v) : v;
  }
  return out;
}

/** Resolves after ms (for polling intervals only, never to wait for readiness). */
export const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value; throws after timeoutMs. */
export async function until(fn, { timeoutMs = 5000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}

export class Daemon {
  constructor({ proc, dir, configPath, dataDir }) {
    this.proc = proc;
    this.dir = dir;
    this.configPath = configPath;
    this.dataDir = dataDir;
    this.port = 0;
    this.logs = [];
    this.stderr = '';
    this.stdout = '';
    this.exitInfo = null;
    this._logWaiters = [];
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        running.delete(this);
        resolve(this.exitInfo);
      });
    });
    let partial = '';
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      this.stderr += chunk;
      partial += chunk;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        let entry;
        try {
          entry = JSON.parse(line);
        } catch {
          entry = { level: 'raw', msg: line };
        }
        this.logs.push(entry);
        this._logWaiters = this._logWaiters.filter((w) => !w.check(entry));
      }
    });
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      this.stdout += chunk;
    });
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/v1/ws`;
  }

  /** Resolves with the first log entry (past or future) for which pred(entry) is true. */
  waitForLog(pred, { timeoutMs = 5000 } = {}) {
    const found = this.logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._logWaiters = this._logWaiters.filter((w) => w !== waiter);
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr:\n${this.stderr}`));
      }, timeoutMs);
      const waiter = {
        check: (e) => {
          if (!pred(e)) return false;
          clearTimeout(timer);
          resolve(e);
          return true;
        },
      };
      this._logWaiters.push(waiter);
      this.exited.then(() => {
        if (this._logWaiters.includes(waiter)) {
          this._logWaiters = this._logWaiters.filter((w) => w !== waiter);
          clearTimeout(timer);
          reject(new Error(`daemon exited before a matching log line; stderr:\n${this.stderr}`));
        }
      });
    });
  }

  /**
   * One HTTP request on a fresh connection that closes afterwards (so tests that count
   * connections are not confused by a pool): resolves { status, headers, text, json() }.
   */
  request(method, p, options = {}) {
    return httpRequest(this.port, method, p, options);
  }

  get(p, options) {
    return this.request('GET', p, options);
  }

  /** POST with a JSON body (a string is sent as is); options.token adds a bearer token. */
  postJson(p, body, { token, headers = {}, timeoutMs } = {}) {
    const h = { 'content-type': 'application/json', ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    return this.request('POST', p, { headers: h, body: typeof body === 'string' ? body : JSON.stringify(body), timeoutMs });
  }

  /** GET with an optional bearer token. */
  getAuth(p, token, options = {}) {
    const headers = { ...(options.headers || {}) };
    if (token) headers.authorization = `Bearer ${token}`;
    return this.request('GET', p, { ...options, headers });
  }

  /** Opens an SSE stream; resolves once the response headers are in. */
  sse(p, options = {}) {
    return SseClient.open(this.port, p, options);
  }

  /** Resident set size of the daemon in KiB (Linux /proc). */
  rssKb() {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.proc.pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  }

  /** True when the daemon runs with AddressSanitizer (its RSS then says little). */
  sanitized() {
    try {
      return /libasan/.test(readFileSync(`/proc/${this.proc.pid}/maps`, 'utf8'));
    } catch {
      return false;
    }
  }

  /** The value of one /metrics sample (exact name with labels), or undefined. */
  async metric(sample) {
    const text = (await this.get('/metrics')).text;
    for (const line of text.split('\n')) {
      if (line.startsWith(sample + ' ')) return Number(line.slice(sample.length + 1));
    }
    return undefined;
  }

  /** Opens a WebSocket (default /v1/ws) and resolves once it is open. */
  ws(p = '/v1/ws', options = {}) {
    return WsClient.connect(`ws://127.0.0.1:${this.port}${p}`, options);
  }

  signal(sig) {
    if (!this.exitInfo) this.proc.kill(sig);
  }

  /** Sends sig (default SIGTERM) and waits for the exit; SIGKILL after timeoutMs. */
  async stop({ signal = 'SIGTERM', timeoutMs = 10000 } = {}) {
    if (!this.exitInfo) {
      this.signal(signal);
      const timer = setTimeout(() => this.signal('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    await this.cleanup();
    this.assertNoSanitizerReport();
    return this.exitInfo;
  }

  /** Throws when the daemon's stderr holds an ASan/UBSan/LSan report (sanitizer builds). */
  assertNoSanitizerReport() {
    const m = /(ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:)/.exec(this.stderr);
    if (m) throw new Error(`sanitizer report from the daemon:\n${this.stderr.slice(m.index, m.index + 4000)}`);
  }

  async cleanup() {
    if (process.env.COORD_KEEP_TMP === '1') return;
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Starts a daemon and waits until /readyz answers 200.
 * options: config (object merged over the defaults), args (extra argv), env (extra env),
 * port (fixed port; default 0 = any), webRoot (path; default examples/web),
 * readyTimeoutMs (default 10000), waitReady (default true; false returns right after spawn,
 * e.g. to test start-up failures: then await d.exited).
 */
export async function startDaemon(options = {}) {
  const attempts = options.port ? 20 : 1;
  for (let i = 0; ; i++) {
    try {
      return await startOnce(options);
    } catch (err) {
      if (i + 1 < attempts && err.addressInUse) {
        await delay(100);
        continue;
      }
      throw err;
    }
  }
}

/** true: the daemon should carry /v1/ws itself (websocket.own_transport 1, the default);
 * false: libwebsockets should; undefined: not known here (a raw config). The environment
 * wins over the config file, as in the daemon (the *_lws ctest variants set it to 0). */
function expectedTransport(env, options) {
  const fromEnv = env.COORDINATOR_WEBSOCKET_OWN_TRANSPORT;
  if (fromEnv === '0' || fromEnv === '1') return fromEnv === '1';
  if (fromEnv !== undefined || options.rawConfig !== undefined) return undefined;
  const set = options.noConfig ? undefined : options.config?.websocket?.own_transport;
  return set === undefined ? true : set === 1;
}

async function startOnce(options) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'coord-test-'));
  const dataDir = path.join(dir, 'data');
  await mkdir(dataDir, { recursive: true });
  const defaults = {
    listen: `127.0.0.1:${options.port || 0}`,
    data_dir: dataDir,
    web_root: options.webRoot || path.join(repoRoot, 'examples', 'web'),
    log_level: 'info',
    shutdown: { drain_ms: 200, grace_ms: 1000 },
  };
  const configPath = path.join(dir, 'config.json');
  const config = options.rawConfig ?? JSON.stringify(deepMerge(defaults, options.config), null, 2);
  await writeFile(configPath, config);
  const env = { ...process.env, ...(options.env || {}) };
  const args = options.noConfig ? [...(options.args || [])] : ['--config', configPath, ...(options.args || [])];
  const proc = spawn(options.bin || daemonBin, args, {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const d = new Daemon({ proc, dir, configPath, dataDir });
  d.expectOwnWs = expectedTransport(env, options);
  running.add(d);
  proc.on('error', (err) => {
    d.stderr += `spawn error: ${err.message}\n`;
  });
  if (options.waitReady === false) return d;

  const readyTimeoutMs = options.readyTimeoutMs ?? 10000;
  try {
    const listening = await d.waitForLog((e) => e.msg === 'listening' || e.msg === 'cannot listen', {
      timeoutMs: readyTimeoutMs,
    });
    if (listening.msg === 'cannot listen') {
      const err = new Error(`daemon could not listen: ${listening.error}`);
      err.addressInUse = /in use/i.test(String(listening.error));
      throw err;
    }
    d.port = listening.port;
    // Make sure the transport this test means is the one that carries /v1/ws (the daemon
    // logs module "wso" before "listening" when it carries them itself), so that the *_lws
    // ctest variants cannot pass on the own transport by mistake, nor the default runs on
    // libwebsockets, whichever client the test uses.
    if (d.expectOwnWs !== undefined && d.expectOwnWs !== d.logs.some((l) => l.module === 'wso')) {
      throw new Error(`expected /v1/ws on ${d.expectOwnWs ? 'the own transport' : 'libwebsockets'}, ` +
        'but the start-up log says otherwise (module "wso")');
    }
    await until(
      async () => {
        if (d.exitInfo) throw new Error(`daemon exited (${JSON.stringify(d.exitInfo)}) before ready`);
        try {
          return (await d.get('/readyz')).status === 200;
        } catch {
          return false;
        }
      },
      { timeoutMs: readyTimeoutMs, what: '/readyz 200' },
    );
  } catch (err) {
    d.signal('SIGKILL');
    await d.exited;
    await d.cleanup();
    err.message += `\n--- daemon stderr ---\n${d.stderr}`;
    throw err;
  }
  return d;
}

/** Kills every daemon still running (use in after()). */
export async function stopAll() {
  await Promise.all([...running].map((d) => d.stop({ signal: 'SIGKILL' })));
}

/** A WebSocket client with a message queue and promises for what tests wait on. */
export class WsClient {
  /** options.protocols: subprotocols to ask for; the rest goes to ws's options. */
  static connect(url, options = {}) {
    return new Promise((resolve, reject) => {
      const { protocols, ...wsOptions } = options;
      const sock = new WebSocket(url, protocols, wsOptions);
      const client = new WsClient(sock);
      sock.once('open', () => resolve(client));
      sock.once('unexpected-response', (req, res) => {
        // err.status, and err.body: the refusal's body (text), once it has all arrived
        const err = new Error(`upgrade refused: HTTP ${res.statusCode}`);
        err.status = res.statusCode;
        err.headers = res.headers;
        err.body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => { if (err.body.length < 65536) err.body += chunk; });
        res.once('end', () => reject(err));
        res.once('error', () => reject(err));
        res.once('close', () => reject(err));
      });
      sock.once('error', reject);
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.queue = [];
    this.waiters = [];
    this.pings = 0;
    this.pongs = 0;
    sock.on('message', (data, isBinary) => {
      const m = { data, isBinary, text: isBinary ? null : data.toString('utf8') };
      const w = this.waiters.shift();
      if (w) w.resolve(m);
      else this.queue.push(m);
    });
    sock.on('ping', () => this.pings++);
    sock.on('pong', () => this.pongs++);
    sock.on('error', () => {});
    this.closed = new Promise((resolve) => {
      sock.on('close', (code, reason) => {
        const info = { code, reason: reason.toString('utf8'), at: Date.now() };
        for (const w of this.waiters.splice(0)) w.reject(new Error(`closed ${code} ${info.reason}`));
        resolve(info);
      });
    });
  }

  send(data, opts) {
    this.sock.send(data, opts);
  }

  sendJson(obj) {
    this.sock.send(JSON.stringify(obj));
  }

  /** Next message ({data, isBinary, text}); rejects on close or after timeoutMs. */
  next({ timeoutMs = 5000 } = {}) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`no message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  async nextJson(opts) {
    const m = await this.next(opts);
    return JSON.parse(m.text);
  }

  /**
   * Reads messages until pred(msg) is true; resolves with that message. Messages read on
   * the way are appended to `skipped` when given.
   */
  async waitFor(pred, { timeoutMs = 5000, skipped } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching message within ${timeoutMs} ms`);
      const m = await this.nextJson({ timeoutMs: left });
      if (pred(m)) return m;
      if (skipped) skipped.push(m);
    }
  }

  /** Reads n messages (parsed). */
  async take(n, opts) {
    const out = [];
    for (let i = 0; i < n; i++) out.push(await this.nextJson(opts));
    return out;
  }

  /** WebSocket-level ping; resolves when the pong arrives. */
  ping(payload = 'hb', { timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no pong')), timeoutMs);
      this.sock.once('pong', (data) => {
        clearTimeout(timer);
        resolve(data.toString());
      });
      this.sock.ping(payload);
    });
  }

  close(code = 1000, reason = '') {
    this.sock.close(code, reason);
    return this.closed;
  }

  terminate() {
    this.sock.terminate();
  }
}

/**
 * Sends bytes on a fresh TCP connection and collects everything until the server closes
 * the connection or timeoutMs passes. Resolves { text, closed, reset, ms }.
 */
export function rawHttp(port, bytes, { timeoutMs = 3000, endAfterSend = false } = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const chunks = [];
    const sock = net.connect(port, '127.0.0.1');
    let done = false;
    const finish = (extra) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), ms: Date.now() - started, ...extra });
    };
    const timer = setTimeout(() => finish({ closed: false, reset: false }), timeoutMs);
    sock.on('connect', () => {
      if (bytes && bytes.length) sock.write(bytes);
      if (endAfterSend) sock.end();
    });
    sock.on('data', (c) => chunks.push(c));
    sock.on('end', () => finish({ closed: true, reset: false }));
    sock.on('error', (err) => {
      if (err.code === 'ECONNRESET') finish({ closed: true, reset: true });
      else if (!done) {
        done = true;
        clearTimeout(timer);
        reject(err);
      }
    });
  });
}

/** One request on a new connection (agent: false, connection: close). */
export function httpRequest(port, method, p, { headers = {}, body, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path: p, agent: false, headers: { connection: 'close', ...headers } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no response within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** Parses the first HTTP/1.1 response in text: { status, headers, body }. */
export function parseHttp(text) {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const status = Number(statusLine.split(' ')[1]);
  const headers = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = text.slice(end + 4);
  if (headers['content-length'] !== undefined) body = body.slice(0, Number(headers['content-length']));
  return { status, headers, body };
}

/** One persistent HTTP/1.1 connection for sequential requests (keep-alive). */
export class HttpConn {
  static open(port) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.once('connect', () => resolve(new HttpConn(sock)));
      sock.once('error', reject);
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.pending = null;
    this.closed = false;
    sock.on('data', (c) => {
      this.buf = Buffer.concat([this.buf, c]);
      this._check();
    });
    sock.on('close', () => {
      this.closed = true;
      if (this.pending) this.pending.reject(new Error('connection closed'));
      this.pending = null;
    });
    sock.on('error', () => {});
  }

  _check() {
    if (!this.pending) return;
    const text = this.buf.toString('latin1');
    const res = parseHttp(text);
    if (!res) return;
    const headEnd = text.indexOf('\r\n\r\n') + 4;
    const len = Number(res.headers['content-length'] ?? 0);
    if (this.buf.length < headEnd + len) return;
    this.buf = this.buf.subarray(headEnd + len);
    const p = this.pending;
    this.pending = null;
    p.resolve(res);
  }

  /** Sends one request and resolves with { status, headers, body }. */
  request(method, p, { headers = {}, body = '', timeoutMs = 5000 } = {}) {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no response')), timeoutMs);
      this.pending = {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const lines = [`${method} ${p} HTTP/1.1`, 'host: 127.0.0.1'];
      for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
      if (body) lines.push(`content-length: ${Buffer.byteLength(body)}`);
      this.sock.write(lines.join('\r\n') + '\r\n\r\n' + body);
      this._check();
    });
  }

  close() {
    this.sock.destroy();
  }
}

/** Signs an HS256 JWT with the given claims (exp defaults to one hour from now). */
export function mintToken(secret, claims) {
  const b64url = (x) => Buffer.from(x).toString('base64url');
  const body = { exp: Math.floor(Date.now() / 1000) + 3600, ...claims };
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify(body));
  const sig = createHmac('sha256', secret).update(`${head}.${payload}`).digest('base64url');
  return `${head}.${payload}.${sig}`;
}

/** A port that was free a moment ago (for a daemon restarted on the same address). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A Server-Sent Events client over node:http: parses the stream into messages
 * {id, event, data, retry, comment} (comment lines come as {comment}).
 */
export class SseClient {
  static open(port, p, { headers = {}, timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port, method: 'GET', path: p, agent: false, headers: { accept: 'text/event-stream', ...headers } },
        (res) => {
          clearTimeout(timer);
          const c = new SseClient(req, res);
          resolve(c);
        },
      );
      const timer = setTimeout(() => req.destroy(new Error('no SSE response')), timeoutMs);
      req.on('error', reject);
      req.end();
    });
  }

  constructor(req, res) {
    this.req = req;
    this.res = res;
    this.status = res.statusCode;
    this.headers = res.headers;
    this.body = '';
    this.queue = [];
    this.waiters = [];
    this.buf = '';
    this.ended = false;
    this.closed = new Promise((resolve) => {
      res.on('end', () => {
        this.ended = true;
        for (const w of this.waiters.splice(0)) w.reject(new Error('SSE stream ended'));
        resolve();
      });
      res.on('error', () => resolve());
      res.on('close', () => resolve());
    });
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      this.body += chunk;
      this.buf += chunk;
      let i;
      while ((i = this.buf.indexOf('\n\n')) >= 0) {
        const block = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        this._block(block);
      }
    });
  }

  _block(block) {
    const msg = {};
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        msg.comment = line.slice(1).trim();
        continue;
      }
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
      if (field === 'data') msg.data = msg.data === undefined ? value : `${msg.data}\n${value}`;
      else msg[field] = value;
    }
    if (msg.data !== undefined) {
      try {
        msg.json = JSON.parse(msg.data);
      } catch {
        /* not JSON */
      }
    }
    const w = this.waiters.shift();
    if (w) w.resolve(msg);
    else this.queue.push(msg);
  }

  /** The next message (or comment); rejects when the stream ends or after timeoutMs. */
  next({ timeoutMs = 5000 } = {}) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.ended) return Promise.reject(new Error('SSE stream ended'));
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`no SSE message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Reads until pred(msg); resolves with it. */
  async waitFor(pred, { timeoutMs = 5000, skipped } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching SSE message within ${timeoutMs} ms`);
      const m = await this.next({ timeoutMs: left });
      if (pred(m)) return m;
      if (skipped) skipped.push(m);
    }
  }

  close() {
    this.req.destroy();
  }
}
