// The HTTP machinery later layers build on: bodies, answers given later, streamed answers,
// clients that leave early. Uses the /_test routes (COORD_TEST_ROUTES=1, testroutes.c).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';

import { HttpConn, parseHttp, rawHttp, startDaemon, stopAll } from './lib/harness.mjs';

after(stopAll);

/** GET with timestamps of the first body byte and of the end. */
function timedGet(port, p) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let first = null;
      const chunks = [];
      res.on('data', (c) => {
        if (first === null) first = Date.now() - t0;
        chunks.push(c);
      });
      res.on('end', () =>
        resolve({ res, body: Buffer.concat(chunks), first, total: Date.now() - t0 }),
      );
    });
    req.on('error', reject);
  });
}

describe('HTTP bodies, deferred and streamed answers', () => {
  let d;
  before(async () => {
    d = await startDaemon({ env: { COORD_TEST_ROUTES: '1' }, config: { limits: { max_http_body: 1024 } } });
  });
  after(() => d?.stop());

  test('a deferred answer arrives later while other requests are served meanwhile', async () => {
    const t0 = Date.now();
    const slow = d.request('POST', '/_test/echo?delay_ms=400', { body: 'hello' });
    const fast = await d.get('/healthz');
    assert.equal(fast.status, 200);
    assert.ok(Date.now() - t0 < 300, 'healthz was not held up by the deferred request');
    const res = await slow;
    assert.equal(res.status, 200);
    assert.equal(res.text, 'hello');
    assert.ok(Date.now() - t0 >= 380, `answered after ${Date.now() - t0} ms`);
  });

  test('a body up to max_http_body is collected, one byte more is 413', async () => {
    const ok = await d.request('POST', '/_test/echo', { body: 'b'.repeat(1024) });
    assert.equal(ok.status, 200);
    assert.equal(ok.text.length, 1024);
    const big = await d.request('POST', '/_test/echo', { body: 'b'.repeat(1025) });
    assert.equal(big.status, 413);
  });

  test('a body split across TCP segments is reassembled', async () => {
    const body = 'abcdefghij'.repeat(50);
    const sock = net.connect(d.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const chunks = [];
    sock.on('data', (c) => chunks.push(c));
    const ended = new Promise((r) => sock.on('close', r));
    sock.write(`POST /_test/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`);
    for (let i = 0; i < body.length; i += 97) {
      sock.write(body.slice(i, i + 97));
      await new Promise((r) => setImmediate(r));
    }
    await ended;
    const res = parseHttp(Buffer.concat(chunks).toString('latin1'));
    assert.equal(res.status, 200);
    assert.equal(res.body, body);
  });

  test('keep-alive connections carry several requests with bodies', async () => {
    const c = await HttpConn.open(d.port);
    for (const body of ['one', 'two', 'three']) {
      const res = await c.request('POST', '/_test/echo', { body });
      assert.equal(res.status, 200);
      assert.equal(res.body, body);
    }
    assert.equal((await c.request('GET', '/healthz')).status, 200);
    c.close();
  });

  test('a client leaving before the deferred answer triggers the abort callback', async () => {
    const count = (msg) => d.logs.filter((e) => e.msg === msg).length;
    const aborted = count('test request aborted');
    const deferred = count('test request deferred');
    const sock = net.connect(d.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write('POST /_test/echo?delay_ms=5000 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi');
    await d.waitForLog(() => count('test request deferred') > deferred);
    sock.destroy();
    await d.waitForLog(() => count('test request aborted') > aborted);
    assert.equal((await d.get('/healthz')).status, 200);
  });

  test('a streamed answer flows event by event without Content-Length', async () => {
    const { res, body, first, total } = await timedGet(d.port, '/_test/stream?chunks=5&interval_ms=100');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    assert.equal(res.headers['content-length'], undefined);
    assert.equal(res.headers['cache-control'], 'no-cache');
    assert.equal(res.headers['x-accel-buffering'], 'no');
    assert.equal(res.headers['x-test'], 'stream');
    assert.equal(body.toString(), [0, 1, 2, 3, 4].map((i) => `data: ${i}\n\n`).join(''));
    assert.ok(first < 250, `first event after ${first} ms`);
    assert.ok(total >= 350, `stream ended after ${total} ms`);
  });

  test('a streaming client that leaves triggers the abort callback', async () => {
    const count = () => d.logs.filter((e) => e.msg === 'test request aborted').length;
    const before = count();
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no data')), 5000);
      const req = http.get(
        { host: '127.0.0.1', port: d.port, path: '/_test/stream?chunks=100000&interval_ms=5', agent: false },
        (res) => {
          res.once('data', () => {
            clearTimeout(timer);
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', () => {});
    });
    await d.waitForLog(() => count() > before);
    assert.equal((await d.get('/healthz')).status, 200);
  });

  test('a pulled stream delivers every byte in order under backpressure', async () => {
    const { res, body } = await timedGet(d.port, '/_test/pull?chunks=300&size=4096');
    assert.equal(res.statusCode, 200);
    assert.equal(body.length, 300 * 4096);
    for (let i = 0; i < 300; i++) {
      const expect = 97 + (i % 26);
      assert.equal(body[i * 4096], expect, `chunk ${i}`);
      assert.equal(body[i * 4096 + 4095], expect, `chunk ${i} end`);
    }
  });

  test('a route answers 405 to the wrong method', async () => {
    const res = await d.get('/_test/echo');
    assert.equal(res.status, 405);
    assert.equal(res.json().error.code, 'method_not_allowed');
    const raw = await rawHttp(d.port, 'DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(parseHttp(raw.text).status, 405);
  });
});
