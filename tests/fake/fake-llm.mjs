#!/usr/bin/env node
// A fake model endpoint for tests: an HTTP server on a loopback port that replays real
// providers' wire formats from the transcripts in tests/unit/agents/data/, one event (SSE)
// or one line (NDJSON) per chunk, for
//   POST /v1/chat/completions   OpenAI-compatible (SSE; default transcript openai_text)
//   POST /v1/messages           Anthropic Messages (SSE; default anthropic_text)
//   POST /api/chat              Ollama native (NDJSON; default ollama_chat)
// The request's "model" picks the behaviour: "scenario:<mode>?<k>=<v>&..." (any other
// model is mode "normal"). Modes:
//   normal      the transcript, delay_ms (default 0) between chunks
//   slow        the same with delay_ms defaulting to 100
//   stall       `after` chunks (default 1), then silence with the connection open
//   hang        no response at all (not even headers)
//   disconnect  `after` chunks (default 1), then the server destroys the socket
//   status      HTTP `status` (default 500) with the provider's error body shape and
//               optional retry_after / retry_after_ms headers; `message` sets the text
// Options: transcript=<name> (a file of the data folder, without extension), tag=<name>
// (groups statistics; default "default"). Error-after-200 shapes are transcripts
// (openai_error, anthropic_overloaded, llamacpp_error, ollama_error).
// Introspection: GET /_stats?tag=T[&wait=disconnect|complete|request&count=N&timeout_ms=M]
// answers {requests, completed, disconnects, server_aborts, active, max_active} for the tag, waiting
// until the count reaches N (default 1) when `wait` is given; GET /_requests?tag=T returns
// the requests seen (method, path, headers, body).
// On start it prints {"port": N} as one JSON line on stdout. No dependencies.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dataDir = path.resolve(here, '../unit/agents/data');

const routes = {
  '/v1/chat/completions': { provider: 'openai', transcript: 'openai_text', ext: 'sse' },
  '/v1/messages': { provider: 'anthropic', transcript: 'anthropic_text', ext: 'sse' },
  '/api/chat': { provider: 'ollama', transcript: 'ollama_chat', ext: 'ndjson' },
};

const stats = new Map(); // tag -> counters and requests
const waiters = new Set(); // {tag, what, count, resolve}

function tagStats(tag) {
  let s = stats.get(tag);
  if (!s) {
    s = { requests: 0, completed: 0, disconnects: 0, server_aborts: 0, active: 0, max_active: 0, log: [] };
    stats.set(tag, s);
  }
  return s;
}

function counterOf(what) {
  return { disconnect: 'disconnects', complete: 'completed', request: 'requests' }[what];
}

function notify() {
  for (const w of [...waiters]) {
    const s = tagStats(w.tag);
    if (s[counterOf(w.what)] >= w.count) {
      waiters.delete(w);
      w.resolve();
    }
  }
}

function publicStats(s) {
  const { log, ...rest } = s;
  return rest;
}

// Splits a transcript into chunks: SSE at blank lines (each chunk keeps its terminator),
// NDJSON at newlines.
function chunksOf(text, ext) {
  const out = [];
  const re = ext === 'sse' ? /(\r\n\r\n|\n\n|\r\r)/g : /\n/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    out.push(text.slice(last, m.index + m[0].length));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function errorBody(provider, status, message) {
  const type = status === 429 ? 'rate_limit_error' : status >= 500 ? 'api_error' : 'invalid_request_error';
  if (provider === 'anthropic') return { type: 'error', error: { type, message } };
  if (provider === 'ollama') return { error: message };
  const otype = status === 429 ? 'rate_limit_exceeded' : status >= 500 ? 'server_error' : 'invalid_request_error';
  return { error: { message, type: otype, param: null, code: status === 429 ? 'rate_limit_exceeded' : null } };
}

function parseScenario(model) {
  if (typeof model !== 'string' || !model.startsWith('scenario:')) return { mode: 'normal', opts: new URLSearchParams() };
  const rest = model.slice('scenario:'.length);
  const q = rest.indexOf('?');
  return { mode: q < 0 ? rest : rest.slice(0, q), opts: new URLSearchParams(q < 0 ? '' : rest.slice(q + 1)) };
}

function json(res, code, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function handleStats(req, res, url) {
  const tag = url.searchParams.get('tag') ?? 'default';
  const what = url.searchParams.get('wait');
  if (what) {
    if (!counterOf(what)) return json(res, 400, { error: 'wait must be disconnect, complete or request' });
    const count = Number(url.searchParams.get('count') ?? 1);
    const timeout = Number(url.searchParams.get('timeout_ms') ?? 5000);
    await new Promise((resolve) => {
      const w = { tag, what, count, resolve };
      waiters.add(w);
      notify();
      setTimeout(() => { waiters.delete(w); resolve(); }, timeout).unref();
    });
  }
  json(res, 200, publicStats(tagStats(tag)));
}

function replay(req, res, route, body) {
  const { mode, opts } = parseScenario(body.model);
  const tag = opts.get('tag') ?? 'default';
  const s = tagStats(tag);
  s.requests++;
  s.log.push({ method: req.method, path: req.url, headers: req.headers, body });
  s.active++;
  s.max_active = Math.max(s.max_active, s.active);
  let finished = false;
  let serverAbort = false;
  const timers = new Set();
  const later = (fn, ms) => { const t = setTimeout(() => { timers.delete(t); fn(); }, ms); timers.add(t); };
  res.on('close', () => {
    for (const t of timers) clearTimeout(t);
    s.active--;
    if (serverAbort) s.server_aborts++;
    else if (!finished) s.disconnects++;
    notify();
  });
  notify();

  if (mode === 'hang') return;
  if (mode === 'status') {
    const status = Number(opts.get('status') ?? 500);
    const headers = { 'content-type': 'application/json' };
    if (opts.has('retry_after')) headers['retry-after'] = opts.get('retry_after');
    if (opts.has('retry_after_ms')) headers['retry-after-ms'] = opts.get('retry_after_ms');
    const text = JSON.stringify(errorBody(route.provider, status, opts.get('message') ?? `fake status ${status}`));
    res.writeHead(status, headers);
    res.end(text, () => { finished = true; s.completed++; notify(); });
    return;
  }
  const known = ['normal', 'slow', 'stall', 'disconnect'];
  if (!known.includes(mode)) {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify(errorBody(route.provider, 400, `unknown scenario mode "${mode}"`)), () => { finished = true; });
    return;
  }
  const name = opts.get('transcript') ?? route.transcript;
  if (!/^[a-z0-9_]+$/.test(name)) return json(res, 400, errorBody(route.provider, 400, 'bad transcript name'));
  const file = path.join(dataDir, `${name}.${route.ext}`);
  let text;
  try { text = fs.readFileSync(file, 'latin1'); } catch { return json(res, 404, errorBody(route.provider, 404, `no transcript ${name}`)); }
  const chunks = chunksOf(text, route.ext);
  const delay = Number(opts.get('delay_ms') ?? (mode === 'slow' ? 100 : 0));
  const after = Number(opts.get('after') ?? 1);
  const limit = mode === 'stall' || mode === 'disconnect' ? Math.min(after, chunks.length) : chunks.length;
  res.writeHead(200, {
    'content-type': route.ext === 'sse' ? 'text/event-stream' : 'application/x-ndjson',
    'cache-control': 'no-cache',
  });
  res.flushHeaders();
  let i = 0;
  const step = () => {
    if (i < limit) {
      res.write(Buffer.from(chunks[i++], 'latin1'));
      if (i < limit || mode === 'normal' || mode === 'slow') later(step, delay);
      else later(step, 0);
      return;
    }
    if (mode === 'stall') return; // keep the connection open, send nothing
    if (mode === 'disconnect') {
      serverAbort = true;
      res.socket?.destroy();
      return;
    }
    res.end(() => { finished = true; s.completed++; notify(); });
  };
  later(step, delay);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'GET' && url.pathname === '/_stats') return void handleStats(req, res, url);
  if (req.method === 'GET' && url.pathname === '/_requests') {
    return json(res, 200, tagStats(url.searchParams.get('tag') ?? 'default').log);
  }
  const route = routes[url.pathname];
  if (!route) return json(res, 404, { error: 'not found' });
  if (req.method !== 'POST') return json(res, 405, { error: 'method not allowed' });
  const parts = [];
  let size = 0;
  req.on('data', (b) => {
    size += b.length;
    if (size > 4 * 1024 * 1024) req.destroy();
    else parts.push(b);
  });
  req.on('end', () => {
    let body;
    try { body = JSON.parse(Buffer.concat(parts).toString('utf8')); } catch (e) {
      return json(res, 400, errorBody(route.provider, 400, `body is not JSON: ${e.message}`));
    }
    replay(req, res, route, body);
  });
});
server.on('connection', (sock) => sock.setNoDelay(true));
server.keepAliveTimeout = 1000;

const portArg = process.argv.indexOf('--port');
server.listen(portArg > 0 ? Number(process.argv[portArg + 1]) : 0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
const stop = () => server.close(() => process.exit(0)) && server.closeAllConnections?.();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
