// Issue 3: Server-Sent Events against the real daemon: headers, events with id = seq,
// resume with Last-Event-ID and ?after=, keepalive comments, gaps, ephemerals without id,
// and the final drain event at shutdown.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startDaemon, stopAll } from './lib/harness.mjs';

after(stopAll);

async function publish(d, topic, events) {
  const res = await d.postJson(`/v1/streams/${topic}/events`, events);
  assert.equal(res.status, 201, res.text);
  return res.json();
}

describe('SSE', () => {
  let d;
  before(async () => {
    d = await startDaemon({
      config: { streams: { sse_keepalive_ms: 300, retention: { max_events: 5 } } },
    });
  });
  after(() => d?.stop());

  test('a stream has SSE headers, announces the subscription, then sends events with id = seq', async () => {
    const s = await d.sse('/v1/streams/acme/sse-live/sse');
    assert.equal(s.status, 200);
    assert.equal(s.headers['content-type'], 'text/event-stream');
    assert.equal(s.headers['cache-control'], 'no-cache');
    assert.equal(s.headers['x-accel-buffering'], 'no');
    const retry = await s.next();
    assert.equal(retry.retry, '1000');
    const sub = await s.next();
    assert.equal(sub.event, 'subscribed');
    assert.equal(sub.json.head, 0);
    await publish(d, 'acme/sse-live', [{ type: 'a', data: 1 }, { type: 'b', data: 2 }]);
    const e1 = await s.waitFor((m) => m.id !== undefined);
    const e2 = await s.next();
    assert.deepEqual([e1.id, e1.json.seq, e1.json.data], ['1', 1, 1]);
    assert.deepEqual([e2.id, e2.json.seq, e2.json.data], ['2', 2, 2]);
    assert.equal(e1.event, undefined); // default "message" events
    s.close();
  });

  test('Last-Event-ID resumes after that seq; ?after= too; the header wins', async () => {
    await publish(d, 'acme/sse-resume', [1, 2, 3, 4].map((i) => ({ data: i })));
    const byHeader = await d.sse('/v1/streams/acme/sse-resume/sse?after=0', { headers: { 'last-event-id': '2' } });
    const got = [];
    await byHeader.waitFor((m) => m.id === '4', { skipped: got });
    assert.deepEqual(got.filter((m) => m.id).map((m) => m.id), ['3']);
    byHeader.close();
    const byQuery = await d.sse('/v1/streams/acme/sse-resume/sse?after=1');
    const q = [];
    await byQuery.waitFor((m) => m.id === '4', { skipped: q });
    assert.deepEqual(q.filter((m) => m.id).map((m) => m.id), ['2', '3']);
    byQuery.close();
    const bad = await d.sse('/v1/streams/acme/sse-resume/sse', { headers: { 'last-event-id': 'abc' } });
    assert.equal(bad.status, 400);
    bad.close();
  });

  test('a Last-Event-ID beyond the head (an earlier epoch) resumes with an epoch gap; ?after= beyond it is a 400', async () => {
    await publish(d, 'acme/sse-lost', [1, 2].map((i) => ({ data: i })));
    const s = await d.sse('/v1/streams/acme/sse-lost/sse', { headers: { 'last-event-id': '900' } });
    assert.equal(s.status, 200);
    const sub = await s.waitFor((m) => m.event === 'subscribed');
    const gap = await s.waitFor((m) => m.event === 'gap');
    assert.equal(gap.json.reason, 'epoch');
    assert.equal(gap.json.epoch, sub.json.epoch);
    const evs = [];
    await s.waitFor((m) => m.id === '2', { skipped: evs });
    assert.deepEqual(evs.filter((m) => m.id).map((m) => m.id), ['1']);
    s.close();
    const byQuery = await d.sse('/v1/streams/acme/sse-lost/sse?after=900');
    assert.equal(byQuery.status, 400);
    byQuery.close();
  });

  test('a quiet stream gets ": keepalive" comments', async () => {
    const s = await d.sse('/v1/streams/acme/sse-quiet/sse');
    const t0 = Date.now();
    const ka = await s.waitFor((m) => m.comment === 'keepalive', { timeoutMs: 3000 });
    assert.ok(ka);
    assert.ok(Date.now() - t0 < 2000, `first keepalive after ${Date.now() - t0} ms`);
    s.close();
  });

  test('events lost to retention come as an "event: gap" message, then the rest', async () => {
    await publish(d, 'acme/sse-gap', Array.from({ length: 8 }, (_, i) => ({ data: i + 1 })));
    const s = await d.sse('/v1/streams/acme/sse-gap/sse?after=0');
    const gap = await s.waitFor((m) => m.event === 'gap');
    assert.deepEqual(gap.json, { op: 'gap', topic: 'acme/sse-gap', from: 1, to: 3, reason: 'retention' });
    const ids = [];
    await s.waitFor((m) => m.id === '8', { skipped: ids });
    assert.deepEqual(ids.filter((m) => m.id).map((m) => m.id), ['4', '5', '6', '7']);
    s.close();
  });

  test('ephemeral events carry no id, so a resume position is never an ephemeral', async () => {
    const s = await d.sse('/v1/streams/acme/sse-eph/sse');
    await s.waitFor((m) => m.event === 'subscribed');
    await publish(d, 'acme/sse-eph', { type: 'typing', lane: 'ephemeral', data: 'x' });
    const m = await s.waitFor((x) => x.json?.op === 'ev');
    assert.equal(m.id, undefined);
    assert.equal(m.json.lane, 'ephemeral');
    s.close();
  });

  test('errors come before the stream starts: bad topic 400', async () => {
    const res = await d.get('/v1/streams/acme/bad%20room/sse');
    assert.equal(res.status, 400);
    assert.equal(res.json().error.code, 'bad_request');
  });
});

describe('SSE at shutdown', () => {
  test('SIGTERM sends a final drain event with a retry hint and ends the stream', async () => {
    const d = await startDaemon({ config: { shutdown: { drain_ms: 5000 } } });
    await publish(d, 'acme/sse-drain', [{ data: 1 }, { data: 2 }]);
    const s = await d.sse('/v1/streams/acme/sse-drain/sse?after=0');
    await s.waitFor((m) => m.id === '2');
    const t0 = Date.now();
    d.signal('SIGTERM');
    const drain = await s.waitFor((m) => m.event === 'drain');
    assert.ok(Number(drain.retry) >= 250, `retry ${drain.retry}`);
    assert.deepEqual(drain.json.positions['acme/sse-drain'].seq, 2);
    await s.closed;
    assert.ok(s.ended, 'the response ended');
    assert.deepEqual(await d.exited, { code: 0, signal: null });
    assert.ok(Date.now() - t0 < 4000, `exit after ${Date.now() - t0} ms, before the drain window's end`);
    await d.stop();
  });
});
