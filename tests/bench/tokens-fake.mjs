#!/usr/bin/env node
// A loopback OpenAI-compatible streaming endpoint for the token-latency benchmark
// (run-tokens.mjs; docs/bench-tools.md). POST /v1/chat/completions answers
// text/event-stream: one role chunk, then `tokens` content chunks at `rate` chunks/s, each
// chunk's text being "t<emission time> " where the time is CLOCK_MONOTONIC in microseconds
// (process.hrtime, the same clock in every process of this machine) taken just before the
// chunk is written; then the finish chunk, a usage chunk and [DONE]. A watcher that finds
// these stamps in the run's token events knows when each token left the "model".
//
// The request's model name sets the stream: "bench?tokens=N&rate=R" (defaults 100 and 50).
// Chunks are due at start + k/rate (no drift); one 2 ms ticker writes every due chunk.
// GET /_stats answers {streams, active, chunks, late_max_us}. On start it prints
// {"port": N} on stdout. Loopback only; it exits on SIGTERM/SIGINT.
import http from 'node:http';

const nowUs = () => process.hrtime.bigint() / 1000n;
const streams = new Set();
const stats = { streams: 0, active: 0, chunks: 0, late_max_us: 0 };

function sse(res, obj) {
  return res.write(`data: ${JSON.stringify(obj)}\n\n`);
}

function chunk(content, finish = null) {
  return {
    id: 'chatcmpl-bench',
    object: 'chat.completion.chunk',
    model: 'bench',
    choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }],
  };
}

function finish(s) {
  streams.delete(s);
  sse(s.res, chunk(null, 'stop'));
  sse(s.res, { id: 'chatcmpl-bench', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 1, completion_tokens: s.tokens, total_tokens: s.tokens + 1 } });
  s.res.end('data: [DONE]\n\n');
}

function tick() {
  const now = nowUs();
  for (const s of streams) {
    while (s.sent < s.tokens) {
      const due = s.start + BigInt(Math.round((s.sent * 1e6) / s.rate));
      if (due > now) break;
      const t = nowUs();
      const late = Number(t - due);
      if (late > stats.late_max_us) stats.late_max_us = late;
      sse(s.res, chunk(`t${t} `));
      s.sent++;
      stats.chunks++;
    }
    if (s.sent >= s.tokens) finish(s);
  }
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/_stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return void res.end(JSON.stringify(stats));
  }
  if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
    res.writeHead(404);
    return void res.end();
  }
  const parts = [];
  req.on('data', (b) => parts.push(b));
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' });
      return void res.end('{"error":{"message":"body is not JSON","type":"invalid_request_error"}}');
    }
    const model = String(body.model || 'bench');
    const q = new URLSearchParams(model.includes('?') ? model.slice(model.indexOf('?') + 1) : '');
    const s = {
      res,
      tokens: Math.max(1, Math.min(1e6, Number(q.get('tokens') ?? 100))),
      rate: Math.max(0.1, Math.min(10000, Number(q.get('rate') ?? 50))),
      sent: 0,
      start: 0n,
    };
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    sse(res, { ...chunk(''), choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
    s.start = nowUs();
    stats.streams++;
    stats.active++;
    res.on('close', () => {
      stats.active--;
      streams.delete(s);
    });
    streams.add(s);
  });
});
server.on('connection', (sock) => sock.setNoDelay(true));
server.keepAliveTimeout = 1000;

const ticker = setInterval(tick, 2);
const portArg = process.argv.indexOf('--port');
server.listen(portArg > 0 ? Number(process.argv[portArg + 1]) : 0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
const stop = () => {
  clearInterval(ticker);
  for (const s of streams) s.res.destroy();
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
