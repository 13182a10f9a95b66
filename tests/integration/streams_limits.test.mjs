// Issue 3: publish-time protection against the real daemon: rate limits per tenant and per
// topic (429 + Retry-After, WebSocket rate_limited with retry_after_ms, other tenants
// unaffected), hostile input (malformed, too deep, too large, invalid UTF-8, binary) with
// the right error or close code while another client keeps receiving, and overload
// shedding (503 + Retry-After, WebSocket overloaded).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startDaemon, stopAll, until } from './lib/harness.mjs';

after(stopAll);

describe('rate limits', () => {
  let d;
  before(async () => {
    d = await startDaemon({
      config: { limits: { publish_rate: 1, publish_burst: 5, topic_publish_rate: 1, topic_publish_burst: 2 } },
    });
  });
  after(() => d?.stop());

  test('a topic over its rate gets 429 with Retry-After; a limited tenant does not slow another', async () => {
    const post = (topic) => d.postJson(`/v1/streams/${topic}/events`, { data: 1 });
    assert.equal((await post('acme/x')).status, 201);
    assert.equal((await post('acme/x')).status, 201);
    const limited = await post('acme/x');
    assert.equal(limited.status, 429, limited.text);
    assert.equal(limited.json().error.code, 'rate_limited');
    assert.ok(Number(limited.headers['retry-after']) >= 1, JSON.stringify(limited.headers));
    assert.ok(limited.json().error.retry_after_ms > 0);
    // The refused publish cost the tenant nothing: 3 more fit in its burst of 5.
    assert.equal((await post('acme/y')).status, 201);
    assert.equal((await post('acme/y')).status, 201);
    assert.equal((await post('acme/z')).status, 201);
    const tenantLimited = await post('acme/w');
    assert.equal(tenantLimited.status, 429);
    assert.match(tenantLimited.json().error.message, /tenant/);
    // Another tenant is not affected.
    for (let i = 0; i < 2; i++) assert.equal((await post('other/a')).status, 201);
    // one of each: the topic's limit (acme/x above), then the tenant's (acme/w)
    assert.ok((await d.metric('coord_stream_rate_limited_total{limit="topic"}')) >= 1);
    assert.ok((await d.metric('coord_stream_rate_limited_total{limit="tenant"}')) >= 1);
  });

  test('over WebSocket the refusal is an error rate_limited with retry_after_ms', async () => {
    const ws = await d.ws();
    const codes = [];
    for (let i = 0; i < 4; i++) {
      ws.sendJson({ op: 'pub', topic: 'third/t', data: i, ref: `r${i}` });
      codes.push(await ws.waitFor((m) => m.ref === `r${i}`));
    }
    assert.deepEqual(codes.map((m) => m.op), ['puback', 'puback', 'error', 'error']);
    assert.equal(codes[2].code, 'rate_limited');
    assert.ok(codes[2].retry_after_ms > 0 && codes[2].retry_after_ms <= 1000, JSON.stringify(codes[2]));
    await ws.close();
  });
});

describe('hostile input', () => {
  let d;
  before(async () => {
    d = await startDaemon({ config: { limits: { max_ws_message: 200000, max_http_body: 300000 } } });
  });
  after(() => d?.stop());

  test('bad messages get the right error or close code while another client keeps receiving', async () => {
    const watcher = await d.ws();
    watcher.sendJson({ op: 'sub', topic: 'acme/watched' });
    assert.equal((await watcher.nextJson()).op, 'subscribed');
    let seq = 0;
    const publishAndSee = async () => {
      seq++;
      assert.equal((await d.postJson('/v1/streams/acme/watched/events', { data: seq })).status, 201);
      const ev = await watcher.nextJson();
      assert.deepEqual([ev.seq, ev.data], [seq, seq]);
    };

    const bad = await d.ws();
    const errors = [
      ['{"op":"pub","topic":', 'bad_request', /^message: invalid JSON/],
      ['['.repeat(40) + ']'.repeat(40), 'bad_request', /^message: nested deeper than 32/],
      [JSON.stringify({ op: 'pub', topic: 'acme/watched', data: 'x'.repeat(150000) }), 'too_large', /^message: \d+ bytes exceeds/],
      [JSON.stringify({ op: 'pub', topic: 'acme/watched', data: 'x'.repeat(70000) }), 'too_large', /./],
      [JSON.stringify({ op: 'pub', topic: 'acme/watched', data: { a: '\u0000' } }), 'bad_request', /./],
      [JSON.stringify({ op: 'pub', topic: 'acme/watched', id: 7 }), 'bad_request', /^id: must be a string/],
    ];
    for (const [text, code, re] of errors) {
      bad.send(text);
      const e = await bad.nextJson();
      assert.equal(e.op, 'error', text.slice(0, 40));
      assert.equal(e.code, code, JSON.stringify(e));
      assert.match(e.message, re);
      await publishAndSee();
    }
    bad.send(Buffer.from([1, 2, 3]), { binary: true });
    assert.equal((await bad.nextJson()).code, 'bad_request');
    bad.sendJson({ op: 'ping', ref: 'alive' });
    assert.deepEqual(await bad.nextJson(), { op: 'pong', ref: 'alive' });

    const huge = await d.ws();
    huge.send(JSON.stringify({ op: 'pub', topic: 'acme/watched', data: 'x'.repeat(250000) }));
    assert.equal((await huge.closed).code, 1009);
    await publishAndSee();

    const utf8 = await d.ws();
    utf8.send(Buffer.concat([Buffer.from('{"op":"pub","topic":"acme/watched","data":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), {
      binary: false,
    });
    assert.equal((await utf8.closed).code, 1007);
    await publishAndSee();

    // HTTP: invalid UTF-8 and oversized bodies
    const res = await d.request('POST', '/v1/streams/acme/watched/events', {
      headers: { 'content-type': 'application/json' },
      body: Buffer.concat([Buffer.from('{"data":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
    });
    assert.equal(res.status, 400);
    assert.match(res.json().error.message, /^body: invalid JSON/);
    const big = await d.postJson('/v1/streams/acme/watched/events', { data: 'x'.repeat(400000) });
    assert.equal(big.status, 413);
    await publishAndSee();
    await bad.close();
    await watcher.close();
  });
});

describe('overload shedding', () => {
  let d;
  before(async () => {
    d = await startDaemon({
      config: { streams: { overload_threshold: 1 }, limits: { publish_rate: 0, topic_publish_rate: 0 } },
      env: { COORD_TEST_ROUTES: '1' },
    });
  });
  after(() => d?.stop());

  test('publishes beyond the uncommitted threshold get 503 overloaded with Retry-After', async () => {
    const res = await d.postJson('/v1/streams/acme/hot/events', [{ data: 1 }, { data: 2 }, { data: 3 }]);
    assert.equal(res.status, 503, res.text);
    const body = res.json();
    assert.equal(body.error.code, 'overloaded');
    assert.equal(body.error.index, 1);
    assert.equal(body.error.retry_after_ms, 250);
    assert.equal(res.headers['retry-after'], '1');
    // what was accepted before the refusal is durable and reported
    assert.deepEqual(body.results.map((r) => r.seq), [1]);
    const read = (await d.get('/v1/streams/acme/hot/events?after=0')).json();
    assert.deepEqual(read.events.map((e) => e.data), [1]);
    assert.ok((await d.metric('coord_stream_overloaded_total')) >= 1);
    // the commit emptied the queue: the next publish goes through, and the daemon is ready
    assert.equal((await d.postJson('/v1/streams/acme/hot/events', { data: 4 })).status, 201);
    assert.equal((await d.get('/readyz')).status, 200);
  });

  test('/readyz says overloaded while commits are held up, and ready once they land', async () => {
    // A stand-in for a slow disk: a thread holds the store, so the publish stays uncommitted.
    const hold = await d.request('POST', '/_test/hold-store?ms=1500');
    assert.equal(hold.status, 202, hold.text);
    const accepted = d.postJson('/v1/streams/acme/held/events', { data: 'x' });
    await until(async () => (await d.get('/readyz')).status === 503, { what: '/readyz 503' });
    const r = await d.get('/readyz');
    assert.deepEqual(r.json(), { status: 'overloaded' });
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(await d.metric('coord_stream_overloaded'), 1);
    assert.equal(await d.metric('coord_stream_pending_events'), 1);
    assert.ok((await d.metric('coord_stream_pending_bytes')) > 0);
    // the publish itself is answered once durable, after the hold
    assert.equal((await accepted).status, 201);
    await until(async () => (await d.get('/readyz')).status === 200, { what: '/readyz ready again' });
    assert.equal(await d.metric('coord_stream_pending_bytes'), 0);
  });

  test('WebSocket publishers arriving in the same loop turn are shed with overloaded and retry_after_ms', async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => d.ws()));
    const replies = clients.map((ws, i) => {
      for (let k = 0; k < 5; k++) ws.sendJson({ op: 'pub', topic: `acme/ws-${i}`, data: k, ref: `r${k}` });
      return ws.take(5, { timeoutMs: 10000 });
    });
    const all = (await Promise.all(replies)).flat();
    const shed = all.filter((m) => m.op === 'error');
    assert.ok(shed.length > 0, 'some publishes were shed');
    for (const e of shed) {
      assert.equal(e.code, 'overloaded');
      assert.equal(e.retry_after_ms, 250);
    }
    assert.ok(all.some((m) => m.op === 'puback'));
    for (const ws of clients) await ws.close();
  });
});

describe('coord-bulk subprotocol', () => {
  let d;
  before(async () => {
    d = await startDaemon({ config: { limits: { ws_bulk_connections: 1, publish_rate: 0, topic_publish_rate: 0 } } });
  });
  after(() => d?.stop());

  test('a bulk publisher pipelines hundreds of pubs, all acked in order and delivered, and big messages still reassemble', async () => {
    const sub = await d.ws();
    sub.sendJson({ op: 'sub', topic: 'acme/bulk' });
    await sub.waitFor((m) => m.op === 'subscribed');
    const pub = await d.ws('/v1/ws', { protocols: 'coord-bulk' });
    assert.equal(pub.sock.protocol, 'coord-bulk');
    const n = 600;
    const pad = 'x'.repeat(250);
    for (let i = 0; i < n; i++) pub.sendJson({ op: 'pub', ref: `r${i}`, topic: 'acme/bulk', data: { i, pad } });
    const big = 'y'.repeat(60000); // several 16 KB reads, under the 64 KB event limit
    pub.sendJson({ op: 'pub', ref: 'big', topic: 'acme/bulk', data: { big } });
    for (let i = 0; i < n; i++) {
      const m = await pub.waitFor((x) => x.op === 'puback' || x.op === 'error');
      assert.equal(m.op, 'puback', JSON.stringify(m));
      assert.equal(m.ref, `r${i}`);
      assert.equal(m.seq, i + 1);
    }
    const bigAck = await pub.waitFor((x) => x.ref === 'big');
    assert.equal(bigAck.op, 'puback', JSON.stringify(bigAck));
    for (let i = 0; i < n; i++) {
      const ev = await sub.waitFor((m) => m.op === 'ev');
      assert.equal(ev.seq, i + 1);
      assert.deepEqual(ev.data, { i, pad });
    }
    assert.equal((await sub.waitFor((m) => m.op === 'ev')).data.big.length, big.length);
    await pub.close();
    await sub.close();
  });

  // Waits for a bulk place: the previous test's connection may still be closing.
  const bulkSoon = () =>
    until(async () => {
      try {
        return await d.ws('/v1/ws', { protocols: 'coord-bulk' });
      } catch (e) {
        if (e.status === 503) return null;
        throw e;
      }
    }, { what: 'a coord-bulk place' });

  test('bulk connections are bounded (503), unknown subprotocols get 400, and a closed one frees its place', async () => {
    const first = await bulkSoon();
    await assert.rejects(d.ws('/v1/ws', { protocols: 'coord-bulk' }), (e) => e.status === 503);
    for (const p of ['nope', 'coord-bad-http', ['coord', 'other']])
      await assert.rejects(d.ws('/v1/ws', { protocols: p }), (e) => e.status === 400, JSON.stringify(p));
    const plain = await d.ws('/v1/ws', { protocols: 'coord' });
    assert.equal(plain.sock.protocol, 'coord');
    await plain.close();
    await first.close();
    const again = await bulkSoon();
    assert.equal(again.sock.protocol, 'coord-bulk');
    await again.close();
  });
});
