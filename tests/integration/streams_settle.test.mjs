// Issue 3: a WAL settle's pass never stalls the daemon's loop. The /_test/hold-store route
// (COORD_TEST_ROUTES=1) stands in for the commit thread in a settle: a thread holds the
// store's lock and its reader's lock for a while. Meanwhile pings are answered at once; a
// subscriber catching up from the store and an HTTP read of stored events are answered
// once the hold ends, complete and in order; an HTTP read whose client leaves during the
// hold is forgotten; and a daemon told to stop during a hold answers the waiting read
// within its drain window before it exits, or 503 with Retry-After when the hold outlasts
// the window.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { delay, startDaemon, stopAll } from './lib/harness.mjs';

after(stopAll);

const TOPIC = 'acme/held';
const EVENTS = 400; /* the ring keeps 256: seqs 1..144 come from the store */

async function publishAll(d) {
  for (let k = 0; k < EVENTS; k += 100) {
    const batch = Array.from({ length: 100 }, (_, i) => ({ type: 't', data: { i: k + i + 1 } }));
    const res = await d.postJson(`/v1/streams/${TOPIC}/events`, batch);
    assert.equal(res.status, 201, res.text);
  }
}

async function hold(d, ms) {
  const res = await d.request('POST', `/_test/hold-store?ms=${ms}`);
  assert.equal(res.status, 202, res.text);
  return Date.now();
}

describe('reads while a WAL settle holds the store', () => {
  let d;
  before(async () => {
    d = await startDaemon({ env: { COORD_TEST_ROUTES: '1' } });
    await publishAll(d);
  });
  after(() => d?.stop());

  test('pings go on; catch-up and HTTP reads are answered after the hold, complete', async () => {
    const pinger = await d.ws();
    const sub = await d.ws();
    const HOLD = 2000; /* long beside the pings, so that a loaded machine (ASan) passes too */
    const t0 = await hold(d, HOLD);
    sub.sendJson({ op: 'sub', topic: TOPIC, after: { seq: 0 } });
    const read = d.get(`/v1/streams/${TOPIC}/events?after=0&limit=${EVENTS}`, { timeoutMs: 10000 });
    const rtts = [];
    for (let i = 0; i < 5; i++) {
      const p0 = Date.now();
      pinger.sendJson({ op: 'ping', ref: `p${i}` });
      await pinger.waitFor((m) => m.op === 'pong' && m.ref === `p${i}`, { timeoutMs: 2000 });
      rtts.push(Date.now() - p0);
      await delay(40);
    }
    const pingsDone = Date.now() - t0;
    assert.ok(pingsDone < HOLD - 500, `the pings took ${pingsDone} ms (the hold is ${HOLD} ms): ${rtts}`);

    const res = await read;
    const readMs = Date.now() - t0;
    assert.equal(res.status, 200, res.text);
    const body = res.json();
    assert.deepEqual(body.events.map((e) => e.seq), Array.from({ length: EVENTS }, (_, i) => i + 1));
    assert.ok(readMs >= HOLD - 300, `the read was answered after ${readMs} ms, inside the hold`);

    const seqs = [];
    const skipped = [];
    await sub.waitFor((m) => m.op === 'ev' && (seqs.push(m.seq), m.seq === EVENTS), { timeoutMs: 5000, skipped });
    assert.deepEqual(seqs, Array.from({ length: EVENTS }, (_, i) => i + 1));
    assert.ok(!skipped.some((m) => m.op === 'gap'), 'no gap');
    assert.ok((await d.metric('coord_stream_http_reads_deferred_total')) >= 1);
    assert.ok((await d.metric('coord_stream_store_catchup_deferred_total')) >= 1);
    await pinger.close();
    await sub.close();
  });

  test('a read whose client leaves during the hold is forgotten', async () => {
    const before = await d.metric('coord_stream_http_reads_deferred_total');
    await hold(d, 1500);
    await assert.rejects(d.get(`/v1/streams/${TOPIC}/events?after=0&limit=10`, { timeoutMs: 500 }));
    assert.equal(await d.metric('coord_stream_http_reads_deferred_total'), before + 1);
    await delay(1200); /* the hold ends; the wait was cancelled with the request */
    const res = await d.get(`/v1/streams/${TOPIC}/events?after=0&limit=10`);
    assert.equal(res.status, 200);
    assert.equal(res.json().events.length, 10);
  });
});

describe('a daemon that stops during a hold', () => {
  test('answers the waiting read within its drain window, then exits cleanly', async () => {
    const d = await startDaemon({ env: { COORD_TEST_ROUTES: '1' }, config: { shutdown: { drain_ms: 3000 } } });
    await publishAll(d);
    await hold(d, 600);
    const read = d.get(`/v1/streams/${TOPIC}/events?after=0&limit=10`, { timeoutMs: 10000 });
    await delay(150);
    d.signal('SIGTERM');
    const res = await read;
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json().events.map((e) => e.seq), Array.from({ length: 10 }, (_, i) => i + 1));
    const { code } = await d.exited;
    assert.equal(code, 0);
    await d.stop();
  });

  test('answers 503 with Retry-After a read still waiting when the window ends', async () => {
    const d = await startDaemon({ env: { COORD_TEST_ROUTES: '1' }, config: { shutdown: { drain_ms: 200, grace_ms: 200 } } });
    await publishAll(d);
    await hold(d, 3000);
    const read = d.get(`/v1/streams/${TOPIC}/events?after=0&limit=10`, { timeoutMs: 10000 });
    await delay(150);
    d.signal('SIGTERM');
    const res = await read;
    assert.equal(res.status, 503, res.text);
    assert.equal(res.json().error.code, 'shutting_down');
    assert.ok(res.headers['retry-after']);
    const { code } = await d.exited;
    assert.equal(code, 0);
    await d.stop();
  });
});
