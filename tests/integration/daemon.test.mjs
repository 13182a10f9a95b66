// Issue 2: the daemon foundation, checked as a user would, against the real binary.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import {
  HttpConn,
  parseHttp,
  rawHttp,
  startDaemon,
  stopAll,
  until,
} from './lib/harness.mjs';

after(stopAll);

const SECRET = 'top-secret-outside-web-root';

/** A web root with one file per content type, a sub folder, a dot-file and a symlink out. */
async function makeWebRoot() {
  const base = await mkdtemp(path.join(os.tmpdir(), 'coord-web-'));
  const root = path.join(base, 'www');
  await mkdir(path.join(root, 'sub'), { recursive: true });
  await writeFile(path.join(base, 'secret.txt'), SECRET);
  await writeFile(path.join(root, 'index.html'), '<!doctype html><title>root</title>');
  await writeFile(path.join(root, 'app.js'), 'console.log(1)');
  await writeFile(path.join(root, 'style.css'), 'body{}');
  await writeFile(path.join(root, 'data.json'), '{"a":1}');
  await writeFile(path.join(root, 'logo.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  await writeFile(path.join(root, 'blob.bin'), 'xx');
  await writeFile(path.join(root, '.env'), SECRET);
  await writeFile(path.join(root, 'sub', 'index.html'), '<p>sub</p>');
  await symlink(path.join(base, 'secret.txt'), path.join(root, 'escape.txt'));
  return { base, root };
}

describe('a running daemon', () => {
  let d;
  let web;

  before(async () => {
    web = await makeWebRoot();
    d = await startDaemon({ webRoot: web.root, config: { limits: { max_http_body: 1024 } } });
  });
  after(async () => {
    await d?.stop();
    if (web) await rm(web.base, { recursive: true, force: true });
  });

  test('it logs the bound address and its file-descriptor capacity at start', () => {
    const listening = d.logs.find((e) => e.msg === 'listening');
    assert.equal(listening.port, d.port);
    assert.equal(listening.url, `http://127.0.0.1:${d.port}`);
    const fds = d.logs.find((e) => e.msg === 'file descriptors');
    assert.ok(fds.rlimit_nofile > 0 && fds.max_connections > 0, JSON.stringify(fds));
  });

  test('GET /healthz says ok and GET /readyz says ready', async () => {
    const h = await d.get('/healthz');
    assert.equal(h.status, 200);
    assert.deepEqual(h.json(), { status: 'ok' });
    assert.match(h.headers['content-type'], /^application\/json/);
    const r = await d.get('/readyz');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { status: 'ready' });
  });

  test('GET /metrics renders Prometheus text with connections, requests, frames and loop lag', async () => {
    const ws = await d.ws();
    ws.sendJson({ op: 'ping', ref: 'm' });
    await ws.next();
    // The lag timer ticks every 100 ms: wait for its first observation.
    const res = await until(async () => {
      const r = await d.get('/metrics');
      return /^coord_event_loop_lag_seconds_count [1-9]/m.test(r.text) && r;
    }, { what: 'a loop lag sample' });
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    const t = res.text;
    assert.match(t, /^# TYPE coord_open_connections gauge$/m);
    assert.match(t, /^coord_open_connections [1-9]\d*$/m);
    assert.match(t, /^coord_ws_connections 1$/m);
    assert.match(t, /^coord_http_requests_total\{route="\/healthz",status="200"\} [1-9]/m);
    assert.match(t, /^coord_ws_frames_total\{direction="in"\} [1-9]/m);
    assert.match(t, /^coord_ws_frames_total\{direction="out"\} [1-9]/m);
    assert.match(t, /^coord_ws_bytes_total\{direction="in"\} [1-9]/m);
    assert.match(t, /^# TYPE coord_event_loop_lag_seconds histogram$/m);
    assert.match(t, /^coord_event_loop_lag_seconds_bucket\{le="\+Inf"\} [1-9]/m);
    assert.match(t, /^coord_event_loop_lag_seconds_count [1-9]/m);
    await ws.close();
  });

  test('static files come with their content types', async () => {
    const cases = [
      ['/', 'text/html', '<!doctype html><title>root</title>'],
      ['/index.html', 'text/html', '<!doctype html><title>root</title>'],
      ['/app.js', 'text/javascript', 'console.log(1)'],
      ['/style.css', 'text/css', 'body{}'],
      ['/data.json', 'application/json', '{"a":1}'],
      ['/logo.svg', 'image/svg+xml', '<svg xmlns="http://www.w3.org/2000/svg"/>'],
      ['/blob.bin', 'application/octet-stream', 'xx'],
      ['/sub/', 'text/html', '<p>sub</p>'],
      ['/sub', 'text/html', '<p>sub</p>'],
    ];
    for (const [p, type, body] of cases) {
      const res = await d.get(p);
      assert.equal(res.status, 200, p);
      assert.ok(res.headers['content-type'].startsWith(type), `${p}: ${res.headers['content-type']}`);
      assert.equal(res.text, body, p);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', p);
    }
  });

  test('HEAD gets the headers of GET without a body', async () => {
    for (const p of ['/healthz', '/app.js']) {
      const res = await rawHttp(d.port, `HEAD ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const parsed = parseHttp(res.text);
      assert.equal(parsed.status, 200, p);
      assert.ok(Number(parsed.headers['content-length']) > 0, p);
      assert.equal(res.text.slice(res.text.indexOf('\r\n\r\n') + 4), '', `${p}: no body`);
    }
    const c = await HttpConn.open(d.port);
    c.sock.write('HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    // The connection stays usable after a HEAD (no body bytes left in the stream).
    await until(() => c.buf.includes('\r\n\r\n'));
    c.buf = Buffer.alloc(0);
    assert.equal((await c.request('GET', '/readyz')).status, 200);
    c.close();
  });

  test('path traversal never yields a file outside web_root', async () => {
    const attempts = [
      '/../secret.txt',
      '/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/%2E%2E/secret.txt',
      '/..%2fsecret.txt',
      '/%2e%2e%2fsecret.txt',
      '/sub/../../secret.txt',
      '/sub/%2e%2e/%2e%2e/secret.txt',
      '/..\\secret.txt',
      '/.env',
      '/escape.txt',
      '/sub/..%00/secret.txt',
    ];
    for (const p of attempts) {
      const res = await rawHttp(d.port, `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.ok(!res.text.includes(SECRET), `${p} leaked the secret`);
      const parsed = parseHttp(res.text);
      if (parsed) assert.ok([400, 403, 404].includes(parsed.status), `${p}: status ${parsed.status}`);
    }
  });

  test('a NUL byte smuggled into the path never serves a file', async () => {
    // lws's URI decoder rejects %00 in most positions by dropping the connection; where it
    // lets one through, the router answers 400.
    for (const p of ['/index.html%00.txt', '/sub%00/index.html', '/a%00b']) {
      const res = await rawHttp(d.port, `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const parsed = parseHttp(res.text);
      assert.ok(res.closed, p);
      assert.ok(parsed === null || parsed.status === 400, `${p}: ${res.text}`);
    }
  });

  test('a request with a 6 KB header block (a long bearer token) is served', async () => {
    const res = await d.get('/healthz', { headers: { authorization: `Bearer ${'t'.repeat(6000)}` } });
    assert.equal(res.status, 200);
  });

  test('unknown paths get 404 with a JSON error', async () => {
    const res = await d.get('/no/such/thing');
    assert.equal(res.status, 404);
    assert.deepEqual(res.json(), { error: { code: 'not_found', message: 'no such resource' } });
  });

  test('a body over limits.max_http_body gets 413', async () => {
    const res = await d.request('POST', '/healthz', { body: 'x'.repeat(5000) });
    assert.equal(res.status, 413);
    assert.equal(res.json().error.code, 'too_large');
    // Announced but never sent: answered from the headers alone.
    const raw = await rawHttp(
      d.port,
      'POST /anything HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nabc',
    );
    assert.equal(parseHttp(raw.text)?.status, 413);
    assert.ok(raw.closed, 'connection closed after 413');
  });

  test('malformed HTTP gets 400 while another connection keeps working', async () => {
    const other = await HttpConn.open(d.port);
    assert.equal((await other.request('GET', '/healthz')).status, 200);
    for (const junk of ['GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03']) {
      const res = await rawHttp(d.port, Buffer.from(junk, 'latin1'));
      assert.equal(parseHttp(res.text)?.status, 400, JSON.stringify(res.text));
      assert.ok(res.closed);
    }
    assert.equal((await other.request('GET', '/readyz')).status, 200);
    other.close();
  });

  test('WebSocket ping frames are answered with pong frames', async () => {
    const ws = await d.ws();
    assert.equal(await ws.ping('hello'), 'hello');
    await ws.close();
  });

  test('JSON op ping gets op pong with the same ref', async () => {
    const ws = await d.ws();
    ws.sendJson({ op: 'ping', ref: 'p1' });
    assert.deepEqual(await ws.nextJson(), { op: 'pong', ref: 'p1' });
    ws.sendJson({ op: 'ping' });
    assert.deepEqual(await ws.nextJson(), { op: 'pong' });
    await ws.close();
  });

  test('malformed JSON and unknown ops get a bad_request error and the connection stays', async () => {
    const ws = await d.ws();
    ws.send('not json');
    const e1 = await ws.nextJson();
    assert.equal(e1.op, 'error');
    assert.equal(e1.code, 'bad_request');
    assert.match(e1.message, /^message: invalid JSON at line 1 column \d+/);
    ws.sendJson({ op: 'fly', ref: 'r9' });
    assert.deepEqual(await ws.nextJson(), {
      op: 'error',
      code: 'bad_request',
      message: 'op: unknown "fly"',
      ref: 'r9',
    });
    ws.send('[1,2]');
    assert.equal((await ws.nextJson()).message, 'message: must be an object');
    ws.sendJson({ op: 'ping', ref: 'still' });
    assert.deepEqual(await ws.nextJson(), { op: 'pong', ref: 'still' });
    await ws.close();
  });

  test('a fragmented text message is reassembled', async () => {
    const ws = await d.ws();
    ws.send('{"op":"pi', { fin: false });
    ws.send('ng","ref":"fr', { fin: false });
    ws.send('ag"}', { fin: true });
    assert.deepEqual(await ws.nextJson(), { op: 'pong', ref: 'frag' });
    await ws.close();
  });

  test('a client that does not read its replies is slowed down, then gets every reply', async () => {
    const ws = await d.ws();
    ws.sock._socket.pause(); // stop reading: replies pile up on the server side
    // 100000 pongs of ~150 bytes: about 15 MB, far more than kernel socket buffers (a few
    // MB on loopback); the server's queue of replies holds 64, so it has to stop reading.
    const n = 100000;
    const pad = 'p'.repeat(120);
    for (let i = 0; i < n; i++) ws.sendJson({ op: 'ping', ref: `r${i}${pad}`, pad });
    // The server fills its queue while we read nothing, then stops reading us.
    await until(async () => /^coord_ws_rx_paused 1$/m.test((await d.get('/metrics')).text), {
      timeoutMs: 10000,
      what: 'the server to pause reading the client',
    });
    ws.sock._socket.resume();
    for (let i = 0; i < n; i++) {
      const m = await ws.nextJson();
      if (m.ref !== `r${i}${pad}`) assert.fail(`pong ${i} has ref ${m.ref.slice(0, 20)}`);
    }
    await ws.close();
  });

  test('WebSocket upgrades elsewhere than /v1/ws are refused', async () => {
    await assert.rejects(d.ws('/elsewhere'), (err) => err.status === 404);
  });
});

describe('WebSocket limits', () => {
  let d;
  before(async () => {
    d = await startDaemon({ config: { limits: { max_ws_message: 1024 } } });
  });
  after(() => d?.stop());

  test('a message over limits.max_ws_message is closed with 1009', async () => {
    const ws = await d.ws();
    ws.send(JSON.stringify({ op: 'ping', pad: 'x'.repeat(2000) }));
    const { code } = await ws.closed;
    assert.equal(code, 1009);
  });

  test('a fragmented message growing over the limit is closed with 1009', async () => {
    const ws = await d.ws();
    for (let i = 0; i < 4; i++) ws.send('x'.repeat(400), { fin: false });
    ws.send('x', { fin: true });
    assert.equal((await ws.closed).code, 1009);
  });

  test('invalid UTF-8 in a text message is closed with 1007', async () => {
    const ws = await d.ws();
    ws.send(Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), { binary: false });
    assert.equal((await ws.closed).code, 1007);
  });

  test('a UTF-8 sequence split across fragments is fine, a broken one is 1007', async () => {
    const ok = await d.ws();
    const euro = Buffer.from('{"op":"ping","ref":"€"}', 'utf8');
    const cut = euro.indexOf(0xe2) + 1;
    ok.send(euro.subarray(0, cut), { binary: false, fin: false });
    ok.send(euro.subarray(cut), { fin: true });
    assert.deepEqual(await ok.nextJson(), { op: 'pong', ref: '€' });
    await ok.close();
    const bad = await d.ws();
    bad.send(Buffer.from('{"a":"', 'utf8'), { binary: false, fin: false });
    bad.send(Buffer.from([0xe2, 0x82]), { fin: false });
    bad.send(Buffer.from('"}', 'utf8'), { fin: true });
    assert.equal((await bad.closed).code, 1007);
  });

  test('other connections are unaffected by a peer closed for a violation', async () => {
    const good = await d.ws();
    const badOne = await d.ws();
    badOne.send(Buffer.from([0xff]), { binary: false });
    assert.equal((await badOne.closed).code, 1007);
    good.sendJson({ op: 'ping', ref: 'ok' });
    assert.deepEqual(await good.nextJson(), { op: 'pong', ref: 'ok' });
    await good.close();
    const m = (await d.get('/metrics')).text;
    assert.match(m, /^coord_ws_protocol_closes_total\{code="1007"\} [1-9]/m);
    assert.match(m, /^coord_ws_protocol_closes_total\{code="1009"\} [1-9]/m);
  });
});

describe('connection limits and timeouts', () => {
  test('connections over limits.max_connections get 503, and capacity returns after closes', async () => {
    const d = await startDaemon({ config: { limits: { max_connections: 3 } } });
    try {
      // The readiness poll's connections close asynchronously: wait until none is counted.
      await until(async () => /^coord_open_connections 1$/m.test((await d.get('/metrics')).text), {
        what: 'only the metrics connection open',
      });
      const clients = [await d.ws(), await d.ws(), await d.ws()];
      const res = await d.get('/healthz');
      assert.equal(res.status, 503);
      assert.equal(res.json().error.code, 'overloaded');
      const refused = await d.ws().then(() => null, (err) => err);
      assert.equal(refused?.status, 503);
      // The own transport (the default) answers with the HTTP API's JSON error; libwebsockets
      // (the *_lws variant) with its own page.
      if (d.expectOwnWs) {
        assert.equal(JSON.parse(refused.body).error.code, 'overloaded', refused.body);
        assert.equal(refused.headers['retry-after'], '1');
      }
      await clients[0].close();
      await until(async () => (await d.get('/healthz')).status === 200, { what: 'a free slot' });
      const m = (await d.get('/metrics')).text;
      assert.match(m, /^coord_connections_rejected_total\{reason="max_connections"\} [2-9]/m);
      for (const c of clients.slice(1)) await c.close();
    } finally {
      await d.stop();
    }
  });

  test('a WebSocket that stops answering pings is closed after limits.idle_timeout_ms', async () => {
    const d = await startDaemon({ config: { limits: { idle_timeout_ms: 2000 } } });
    try {
      const silent = await d.ws('/v1/ws', { autoPong: false });
      const lively = await d.ws();
      const opened = Date.now();
      const closed = await silent.closed;
      const ms = closed.at - opened;
      assert.ok(ms >= 1500 && ms < 5000, `closed after ${ms} ms`);
      assert.ok(silent.pings >= 1, 'the server pinged before giving up');
      // The one that answers pings is still there.
      lively.sendJson({ op: 'ping', ref: 'alive' });
      assert.deepEqual(await lively.nextJson(), { op: 'pong', ref: 'alive' });
      await lively.close();
    } finally {
      await d.stop();
    }
  });

  test('a client that never completes its request headers is dropped after the handshake timeout', async () => {
    const d = await startDaemon({ config: { limits: { handshake_timeout_ms: 1000 } } });
    try {
      const res = await rawHttp(d.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n', { timeoutMs: 6000 });
      assert.ok(res.closed, 'server closed the connection');
      assert.ok(res.ms >= 900 && res.ms < 4000, `closed after ${res.ms} ms`);
    } finally {
      await d.stop();
    }
  });
});

describe('graceful shutdown', () => {
  test('SIGTERM: /readyz 503 during the drain window, listener closed, clients get drain then 1001, exit 0', async () => {
    const d = await startDaemon({ config: { shutdown: { drain_ms: 1500, grace_ms: 2000 } } });
    const ws = await d.ws();
    const keep = await HttpConn.open(d.port);
    assert.equal((await keep.request('GET', '/readyz')).status, 200);
    const signalled = Date.now();
    d.signal('SIGTERM');
    await d.waitForLog((e) => e.msg === 'draining');
    const r = await keep.request('GET', '/readyz');
    assert.equal(r.status, 503);
    assert.deepEqual(JSON.parse(r.body), { status: 'draining' });
    // New connections are no longer accepted.
    await assert.rejects(rawHttp(d.port, 'GET /healthz HTTP/1.1\r\n\r\n'), (e) => e.code === 'ECONNREFUSED');
    // The session was told first, and the WebSocket still works during the window.
    const drain = await ws.nextJson();
    assert.equal(drain.op, 'drain');
    assert.ok(drain.retry_ms >= 250 && drain.retry_ms < 2250, `retry_ms ${drain.retry_ms}`);
    assert.deepEqual(drain.positions, {});
    // Once its drain message is written the WebSocket is closed with 1001 (streams session);
    // the window stays open for the keep-alive HTTP client.
    const closed = await ws.closed;
    assert.equal(closed.code, 1001);
    assert.ok(closed.at - signalled < 1300, `1001 came after ${closed.at - signalled} ms`);
    assert.equal((await keep.request('GET', '/healthz')).status, 200);
    keep.close();
    const exit = await d.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    await d.stop();
  });

  test('an upgrade whose request arrives after SIGTERM, on a connection accepted before, gets 503 shutting_down', async () => {
    const d = await startDaemon({ config: { shutdown: { drain_ms: 1500, grace_ms: 1000 } } });
    // Accepted while running (the listener closes at the drain's start), request sent after.
    const sock = net.connect(d.port, '127.0.0.1');
    await new Promise((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const chunks = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', () => {});
    const ended = new Promise((resolve) => sock.once('close', resolve));
    // The daemon has taken it off the listen queue once it counts it.
    await until(async () => /^coord_open_connections 2$/m.test((await d.get('/metrics')).text), {
      what: 'the idle connection counted',
    });
    d.signal('SIGTERM');
    await d.waitForLog((e) => e.msg === 'draining');
    sock.write(
      'GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await ended;
    const res = parseHttp(Buffer.concat(chunks).toString('latin1'));
    assert.ok(res, `an HTTP answer, got ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`);
    assert.equal(res.status, 503);
    // The own transport (the default) answers with the HTTP API's JSON error; libwebsockets
    // (the *_lws variant) with its own page.
    if (d.expectOwnWs) {
      assert.equal(JSON.parse(res.body).error.code, 'shutting_down', res.body);
      assert.equal(res.headers['retry-after'], '1');
    }
    assert.deepEqual(await d.exited, { code: 0, signal: null });
    await d.stop();
  });

  test('a second signal during the drain exits at once with a nonzero status', async () => {
    const d = await startDaemon({ config: { shutdown: { drain_ms: 30000 } } });
    const keep = await HttpConn.open(d.port); // an open connection keeps the drain window open
    assert.equal((await keep.request('GET', '/healthz')).status, 200);
    d.signal('SIGTERM');
    await d.waitForLog((e) => e.msg === 'draining');
    const t0 = Date.now();
    d.signal('SIGINT');
    const exit = await d.exited;
    assert.ok(Date.now() - t0 < 2000, 'exited promptly');
    assert.equal(exit.code, 128 + 2);
    keep.close();
    await d.stop();
  });

  test('with nothing connected, SIGINT exits 0 right away', async () => {
    const d = await startDaemon({ config: { shutdown: { drain_ms: 30000 } } });
    await until(async () => /^coord_open_connections 1$/m.test((await d.get('/metrics')).text));
    const t0 = Date.now();
    d.signal('SIGINT');
    assert.deepEqual(await d.exited, { code: 0, signal: null });
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    await d.stop();
  });
});

describe('configuration errors', () => {
  test('an unknown key in the config file exits 2 naming the key', async () => {
    const d = await startDaemon({
      rawConfig: JSON.stringify({ listen: '127.0.0.1:0', limits: { max_conections: 5 } }),
      waitReady: false,
    });
    const exit = await d.exited;
    assert.equal(exit.code, 2);
    const line = d.logs.find((e) => e.module === 'config');
    assert.equal(line.key, 'limits.max_conections');
    assert.equal(line.reason, 'unknown key');
    assert.match(d.stderr, /limits\.max_conections: unknown key/);
    await d.stop();
  });

  test('a bad value exits 2 with the key and the reason', async () => {
    const d = await startDaemon({
      rawConfig: JSON.stringify({ shutdown: { drain_ms: 'soon' } }),
      waitReady: false,
    });
    assert.equal((await d.exited).code, 2);
    assert.match(d.stderr, /shutdown\.drain_ms: must be an integer between 0 and 3600000/);
    await d.stop();
  });

  test('environment overrides are checked too and name the variable', async () => {
    const d = await startDaemon({ env: { COORDINATOR_LOG_LEVEL: 'chatty' }, waitReady: false });
    assert.equal((await d.exited).code, 2);
    assert.match(d.stderr, /COORDINATOR_LOG_LEVEL: log_level: must be one of/);
    await d.stop();
  });

  test('bad usage exits 2; --help and --version exit 0', async () => {
    const bad = await startDaemon({ args: ['--frobnicate'], waitReady: false, noConfig: true });
    assert.equal((await bad.exited).code, 2);
    assert.match(bad.stderr, /unknown option '--frobnicate'/);
    await bad.stop();
    const help = await startDaemon({ args: ['--help'], waitReady: false, noConfig: true });
    assert.equal((await help.exited).code, 0);
    assert.match(help.stdout, /usage: coordinator/);
    assert.match(help.stdout, /limits\.max_connections/);
    await help.stop();
    const version = await startDaemon({ args: ['--version'], waitReady: false, noConfig: true });
    assert.equal((await version.exited).code, 0);
    assert.match(version.stdout, /^coordinator \d+\.\d+\.\d+/);
    await version.stop();
  });

  test('a port already in use exits 1 with the reason', async () => {
    const first = await startDaemon();
    const second = await startDaemon({ port: first.port, waitReady: false });
    assert.equal((await second.exited).code, 1);
    const line = second.logs.find((e) => e.msg === 'cannot listen');
    assert.match(line.error, /Address already in use/);
    await second.stop();
    await first.stop();
  });

  test('the listen flag beats the file', async () => {
    const d = await startDaemon({
      config: { listen: '127.0.0.1:1' },
      args: ['--listen', '127.0.0.1:0'],
    });
    assert.notEqual(d.port, 1);
    assert.equal((await d.get('/healthz')).status, 200);
    await d.stop();
  });
});
