// Issue 3 ("Store"), end to end with real clients: retention by age, the end of the dedupe
// window, and idle topics leaving memory and coming back with their seq, epoch and
// idempotency keys.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startDaemon, stopAll, until } from './lib/harness.mjs';

after(stopAll);

async function publish(d, topic, body) {
  const res = await d.postJson(`/v1/streams/${topic}/events`, body);
  assert.equal(res.status, 201, res.text);
  return res.json();
}

describe('retention by age and the dedupe window', () => {
  let d;
  before(async () => {
    d = await startDaemon({
      config: { streams: { retention: { max_age_s: 1 }, dedupe_window_s: 1 } },
    });
  });
  after(() => d?.stop());

  test('events older than max_age_s are gone: a reader gets a gap for them, then the rest', async () => {
    const deleted0 = (await d.metric('coord_store_events_deleted_total')) ?? 0;
    const t0 = Date.now();
    await publish(d, 'acme/aged', [{ data: 1 }, { data: 2 }]);
    const kept = (await d.get('/v1/streams/acme/aged/events?after=0')).json();
    if (Date.now() - t0 < 900) assert.deepEqual(kept.events.map((e) => e.seq), [1, 2]);
    // past the age, reads no longer serve them (at once), and a retention slice (every
    // second) deletes them from the store
    await until(async () => (await d.metric('coord_store_events_deleted_total')) - deleted0 >= 2, {
      timeoutMs: 5000,
      what: 'the aged events to be deleted from the store',
    });
    const fresh = await publish(d, 'acme/aged', { data: 3 });
    assert.equal(fresh.seq, 3); // seq continues after what retention removed
    const read = (await d.get('/v1/streams/acme/aged/events?after=0')).json();
    assert.deepEqual(read.events.map((e) => e.seq), [3]);
    assert.deepEqual([read.gap?.from, read.gap?.to, read.gap?.reason], [1, 2, 'retention']);
    const ws = await d.ws();
    ws.sendJson({ op: 'sub', topic: 'acme/aged', after: { seq: 0 } });
    assert.equal((await ws.nextJson()).op, 'subscribed');
    const gap = await ws.nextJson();
    assert.deepEqual([gap.op, gap.from, gap.to, gap.reason], ['gap', 1, 2, 'retention']);
    assert.equal((await ws.nextJson()).seq, 3);
    await ws.close();
  });

  test('an id is a duplicate inside dedupe_window_s and a new event after it', async () => {
    const first = await publish(d, 'acme/once', { id: 'k-1', data: 'a' });
    const again = await publish(d, 'acme/once', { id: 'k-1', data: 'a' });
    assert.deepEqual([again.seq, again.duplicate], [first.seq, true]);
    await new Promise((r) => setTimeout(r, 1300));
    const later = await publish(d, 'acme/once', { id: 'k-1', data: 'a' });
    assert.deepEqual([later.seq, later.duplicate], [first.seq + 1, false]);
  });
});

describe('idle topics', () => {
  let d;
  before(async () => {
    d = await startDaemon({
      // a topic bucket that refills in 1 s, so that topics may leave after idle_topic_s
      config: { streams: { idle_topic_s: 1 }, limits: { topic_publish_rate: 100, topic_publish_burst: 100 } },
    });
  });
  after(() => d?.stop());

  test('leave memory when quiet and come back with their seq, epoch and idempotency keys', async () => {
    const N = 50;
    const acks = [];
    for (let i = 0; i < N; i++) acks.push(await publish(d, `acme/idle-${i}`, { id: `e-${i}`, data: i }));
    const topicsBefore = await d.metric('coord_stream_topics');
    assert.ok(topicsBefore >= N, `topics in memory: ${topicsBefore}`);
    const evictions0 = (await d.metric('coord_stream_topic_evictions_total')) ?? 0;
    await until(async () => (await d.metric('coord_stream_topic_evictions_total')) - evictions0 >= N, {
      timeoutMs: 10000,
      what: `${N} topics to leave memory`,
    });
    assert.ok((await d.metric('coord_stream_topics')) <= topicsBefore - N);
    const loads0 = (await d.metric('coord_stream_topic_loads_total')) ?? 0;
    // the same id again is still a duplicate (dedupe_window_s is 300 s by default) ...
    const dup = await publish(d, 'acme/idle-7', { id: 'e-7', data: 7 });
    assert.deepEqual([dup.seq, dup.duplicate, dup.epoch], [acks[7].seq, true, acks[7].epoch]);
    // ... and a new event continues the seq in the same epoch
    const next = await publish(d, 'acme/idle-7', { data: 'after' });
    assert.deepEqual([next.seq, next.epoch], [acks[7].seq + 1, acks[7].epoch]);
    assert.ok((await d.metric('coord_stream_topic_loads_total')) > loads0);
    // a subscriber resuming from before the eviction gets everything after its position
    const ws = await d.ws();
    ws.sendJson({ op: 'sub', topic: 'acme/idle-7', after: { epoch: acks[7].epoch, seq: 0 } });
    assert.equal((await ws.nextJson()).op, 'subscribed');
    const evs = await ws.take(2);
    assert.deepEqual(evs.map((e) => [e.seq, e.data]), [[1, 7], [2, 'after']]);
    await ws.close();
  });
});
