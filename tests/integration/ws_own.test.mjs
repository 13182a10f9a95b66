// The daemon's own WebSocket transport (websocket.own_transport 1, the default;
// coordinator/wso.c): what only it does. The other integration files run against it
// too (and against libwebsockets in their *_lws ctest variants); this file checks the
// handshake it answers itself, what it leaves to libwebsockets, the frames it reads and
// writes, and its time limits.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';

import { WebSocket, delay, rawHttp, startDaemon, stopAll } from './lib/harness.mjs';

after(stopAll);

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const upgrade = (extra = '', path = '/v1/ws', version = '13', key = KEY) =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: ${version}\r\n${extra}\r\n`;

/** A masked client frame. */
function frame(op, payload, fin = true) {
  const data = Buffer.from(payload);
  const mask = crypto.randomBytes(4);
  const head = data.length < 126 ? Buffer.from([(fin ? 0x80 : 0) | op, 0x80 | data.length])
    : Buffer.from([(fin ? 0x80 : 0) | op, 0x80 | 126, data.length >> 8, data.length & 0xff]);
  const body = Buffer.from(data.map((b, i) => b ^ mask[i & 3]));
  return Buffer.concat([head, mask, body]);
}

/** A raw connection: sends bytes, collects what comes back until it closes or time is up. */
function raw(port, chunks, { timeoutMs = 3000, gapMs = 0 } = {}) {
  return new Promise((resolve) => {
    const got = [];
    const sock = net.connect(port, '127.0.0.1');
    const t0 = Date.now();
    const done = (why) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ bytes: Buffer.concat(got), why, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    sock.on('connect', async () => {
      for (const c of chunks) {
        sock.write(c);
        if (gapMs) await delay(gapMs);
      }
    });
    sock.on('data', (c) => got.push(c));
    sock.on('end', () => done('end'));
    sock.on('error', () => done('error'));
  });
}

/** Splits server frames (unmasked) that follow the 101 head. */
function serverFrames(buf) {
  const at = buf.indexOf('\r\n\r\n');
  let p = at + 4;
  const out = [];
  while (p + 2 <= buf.length) {
    let len = buf[p + 1] & 0x7f;
    let h = 2;
    if (len === 126) { len = buf.readUInt16BE(p + 2); h = 4; }
    if (p + h + len > buf.length) break;
    out.push({ op: buf[p] & 0x0f, data: buf.subarray(p + h, p + h + len) });
    p += h + len;
  }
  return out;
}

describe('the daemon\'s own WebSocket transport', () => {
  let d;
  before(async () => {
    d = await startDaemon({ config: { websocket: { own_transport: 1 }, limits: { idle_timeout_ms: 2000, handshake_timeout_ms: 500 } } });
    await d.waitForLog((l) => l.module === 'wso');
  });

  test('answers the upgrade itself, with the accept key and the subprotocol asked for', async () => {
    const r = await raw(d.port, [upgrade('Sec-WebSocket-Protocol: coord-bulk\r\n')], { timeoutMs: 500 });
    const head = r.bytes.toString('latin1');
    assert.match(head, /^HTTP\/1.1 101 Switching Protocols\r\n/);
    assert.match(head, /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
    assert.match(head, /\r\nSec-WebSocket-Protocol: coord-bulk\r\n/);
  });

  test('refuses a bad version with 426, a bad key with 400, an unknown subprotocol with 400', async () => {
    let r = await raw(d.port, [upgrade('', '/v1/ws', '8')]);
    assert.match(r.bytes.toString('latin1'), /^HTTP\/1.1 426 .*\r\n[^]*sec-websocket-version: 13\r\n/);
    r = await raw(d.port, [upgrade('', '/v1/ws', '13', 'short')]);
    assert.match(r.bytes.toString('latin1'), /^HTTP\/1.1 400 [^]*sec-websocket-key/);
    r = await raw(d.port, [upgrade('Sec-WebSocket-Protocol: mqtt\r\n')]);
    assert.match(r.bytes.toString('latin1'), /^HTTP\/1.1 400 [^]*subprotocol/);
    assert.equal(r.why, 'end');
  });

  test('leaves HTTP, other paths and junk to libwebsockets, unread', async () => {
    const health = await d.get('/healthz');
    assert.equal(health.status, 200);
    const other = await raw(d.port, [upgrade('', '/v1/elsewhere')]);
    assert.match(other.bytes.toString('latin1'), /^HTTP\/1\.[01] 404/);
    const junk = await rawHttp(d.port, Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]));
    assert.match(junk.text, /^HTTP\/1.1 400/);
    // a head that arrives in pieces is waited for, then answered
    const slow = await raw(d.port, [upgrade().slice(0, 10), upgrade().slice(10, 40), upgrade().slice(40)], { gapMs: 50, timeoutMs: 600 });
    assert.match(slow.bytes.toString('latin1'), /^HTTP\/1.1 101/);
  });

  test('a head that does not complete within limits.handshake_timeout_ms is hung up on', async () => {
    const r = await raw(d.port, [upgrade().slice(0, 30)], { timeoutMs: 3000 });
    assert.notEqual(r.why, 'timeout'); /* closed (with a reset: its bytes were never read) */
    assert.ok(r.ms >= 400 && r.ms < 2500, `hung up after ${r.ms} ms`);
  });

  test('frames sent right behind the head, fragments, pings and the client\'s close', async () => {
    const r = await raw(d.port, [
      Buffer.concat([
        Buffer.from(upgrade()),
        frame(0x1, '{"op":"pi', false),
        frame(0x9, 'hb'),
        frame(0x0, 'ng","ref":"a"}'),
      ]),
      // the close a moment later: replies the session has not pulled when a close arrives
      // are dropped, as on libwebsockets
      frame(0x8, Buffer.from([0x03, 0xe8])),
    ], { timeoutMs: 2000, gapMs: 200 });
    const f = serverFrames(r.bytes);
    assert.deepEqual(f.map((x) => x.op), [0xa, 0x1, 0x8]);
    assert.equal(f[0].data.toString(), 'hb');
    assert.deepEqual(JSON.parse(f[1].data.toString()), { op: 'pong', ref: 'a' });
    assert.equal(f[2].data.readUInt16BE(0), 1000); // the close code echoed
    assert.equal(r.why, 'end');
  });

  test('a protocol error gets close 1002; an unmasked frame too', async () => {
    const unmasked = Buffer.from([0x81, 0x02, 0x68, 0x69]);
    const r = await raw(d.port, [Buffer.concat([Buffer.from(upgrade()), unmasked])], { timeoutMs: 1000 });
    const f = serverFrames(r.bytes);
    assert.equal(f.at(-1).op, 0x8);
    assert.equal(f.at(-1).data.readUInt16BE(0), 1002);
  });

  test('a malformed close frame gets close 1002 and the connection ends at once', async () => {
    const r = await raw(d.port, [Buffer.concat([Buffer.from(upgrade()), frame(0x8, Buffer.from([0x03]))])], { timeoutMs: 3000 });
    const f = serverFrames(r.bytes);
    assert.equal(f.at(-1).op, 0x8);
    assert.equal(f.at(-1).data.readUInt16BE(0), 1002);
    assert.equal(r.why === 'timeout', false);
    assert.ok(r.ms < 1000, `ended after ${r.ms} ms`);
  });

  test('pipelined HTTP requests go to libwebsockets whole', async () => {
    const req = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const r = await rawHttp(d.port, Buffer.from(req));
    assert.equal((r.text.match(/HTTP\/1\.1 200/g) || []).length, 2, r.text);
  });

  test('a client that pings without reading cannot grow the daemon', async () => {
    const before = await d.rssKb();
    const sock = net.connect(d.port, '127.0.0.1');
    await new Promise((res) => sock.on('connect', res));
    sock.pause(); // never read: our pongs back up
    const ping = frame(0x9, 'p'.repeat(125));
    const burst = Buffer.concat(Array.from({ length: 2000 }, () => ping));
    sock.write(upgrade());
    for (let i = 0; i < 60; i++) { // 120,000 pings, 16 MB: as many pongs would be 15 MB
      if (!sock.write(burst)) await new Promise((res) => sock.once('drain', res));
    }
    await delay(500);
    const grown = (await d.rssKb()) - before;
    assert.ok(grown < 8 * 1024, `RSS grew by ${grown} KB`);
    sock.destroy();
    // and the daemon still serves others
    const ws = await d.ws();
    ws.sendJson({ op: 'ping', ref: 'z' });
    assert.equal((await ws.nextJson()).op, 'pong');
    await ws.close();
  });

  test('a silent client is pinged after half of limits.idle_timeout_ms and hung up after all of it', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${d.port}/v1/ws`, { autoPong: false });
    const pings = [];
    const t0 = Date.now();
    ws.on('ping', () => pings.push(Date.now() - t0));
    const closed = new Promise((res) => ws.on('close', (code) => res({ code, ms: Date.now() - t0 })));
    await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
    const c = await closed;
    assert.ok(pings.length >= 1, 'pinged');
    assert.ok(c.ms >= 1500 && c.ms < 5000, `hung up after ${c.ms} ms`);
  });

  test('a client that answers the pings stays', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${d.port}/v1/ws`);
    let closed = false;
    ws.on('close', () => { closed = true; });
    await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
    await delay(4000);
    assert.equal(closed, false);
    ws.close();
  });
});
