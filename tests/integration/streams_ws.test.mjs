// Issue 3: publish/subscribe over the WebSocket protocol against the real daemon: live,
// replay from 0, resume after N in an epoch, retention and epoch gaps, idempotent publish,
// lanes (control ahead of queued data) and ephemeral coalescing and drops.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startDaemon, stopAll, until } from './lib/harness.mjs';

after(stopAll);

/** Publishes over ws and resolves with the puback (skipping other messages). */
async function pub(ws, topic, fields, ref) {
  ws.sendJson({ op: 'pub', ref, topic, ...fields });
  return ws.waitFor((m) => (m.op === 'puback' || m.op === 'error') && m.ref === ref);
}

async function subscribe(d, topic, afterPos) {
  const ws = await d.ws();
  const msg = { op: 'sub', topic };
  if (afterPos) msg.after = afterPos;
  ws.sendJson(msg);
  const sub = await ws.nextJson();
  assert.equal(sub.op, 'subscribed', JSON.stringify(sub));
  return { ws, sub };
}

describe('pub/sub over WebSocket', () => {
  let d;
  before(async () => {
    d = await startDaemon({ config: { streams: { retention: { max_events: 5 } } } });
  });
  after(() => d?.stop());

  test('a live subscriber gets events published after it subscribed, in seq order, once durable', async () => {
    const { ws: sub, sub: s } = await subscribe(d, 'acme/live');
    assert.equal(s.topic, 'acme/live');
    assert.equal(s.head, 0);
    assert.match(s.epoch, /^[0-9a-f]{16}$/);
    const pubWs = await d.ws();
    const acks = [];
    for (let i = 1; i <= 3; i++) acks.push(await pub(pubWs, 'acme/live', { type: 'n', data: { i } }, `c${i}`));
    assert.deepEqual(acks.map((a) => [a.op, a.seq, a.duplicate, a.epoch]), [
      ['puback', 1, false, s.epoch],
      ['puback', 2, false, s.epoch],
      ['puback', 3, false, s.epoch],
    ]);
    const evs = await sub.take(3);
    assert.deepEqual(evs.map((e) => [e.op, e.topic, e.seq, e.lane, e.type, e.data.i]), [
      ['ev', 'acme/live', 1, 'data', 'n', 1],
      ['ev', 'acme/live', 2, 'data', 'n', 2],
      ['ev', 'acme/live', 3, 'data', 'n', 3],
    ]);
    assert.ok(evs.every((e) => e.epoch === s.epoch && Number.isInteger(e.ts)));
    await sub.close();
    await pubWs.close();
  });

  test('after seq 0 replays what is retained, then goes live; after N resumes with no repeat', async () => {
    const pubWs = await d.ws();
    for (let i = 1; i <= 4; i++) await pub(pubWs, 'acme/replay', { data: i }, `r${i}`);
    const { ws: all, sub: s } = await subscribe(d, 'acme/replay', { seq: 0 });
    assert.equal(s.head, 4);
    assert.deepEqual((await all.take(4)).map((e) => e.seq), [1, 2, 3, 4]);
    const { ws: resumed } = await subscribe(d, 'acme/replay', { epoch: s.epoch, seq: 2 });
    assert.deepEqual((await resumed.take(2)).map((e) => e.seq), [3, 4]);
    await pub(pubWs, 'acme/replay', { data: 5 }, 'r5');
    assert.equal((await all.nextJson()).seq, 5);
    assert.equal((await resumed.nextJson()).seq, 5);
    for (const w of [all, resumed, pubWs]) await w.close();
  });

  test('events beyond the retention count are announced as a gap, then delivery continues', async () => {
    const pubWs = await d.ws();
    for (let i = 1; i <= 9; i++) await pub(pubWs, 'acme/retained', { data: i }, `g${i}`);
    const { ws } = await subscribe(d, 'acme/retained', { seq: 0 });
    const gap = await ws.nextJson();
    assert.deepEqual(gap, { op: 'gap', topic: 'acme/retained', from: 1, to: 4, reason: 'retention' });
    assert.deepEqual((await ws.take(5)).map((e) => e.seq), [5, 6, 7, 8, 9]);
    const m = await d.metric('coord_stream_gaps_total{reason="retention"}');
    assert.ok(m >= 1, `gaps_total ${m}`);
    await ws.close();
    await pubWs.close();
  });

  test('resuming in an unknown epoch gives subscribed with the current epoch, an epoch gap, then replay', async () => {
    const pubWs = await d.ws();
    const ack = await pub(pubWs, 'acme/epochs', { data: 1 }, 'e1');
    const ws = await d.ws();
    ws.sendJson({ op: 'sub', topic: 'acme/epochs', after: { epoch: '0123456789abcdef', seq: 7 } });
    const s = await ws.nextJson();
    assert.equal(s.op, 'subscribed');
    assert.equal(s.epoch, ack.epoch);
    const gap = await ws.nextJson();
    assert.equal(gap.op, 'gap');
    assert.equal(gap.reason, 'epoch');
    assert.equal(gap.epoch, ack.epoch);
    const ev = await ws.nextJson();
    assert.equal(ev.seq, 1);
    assert.ok((await d.metric('coord_stream_gaps_total{reason="epoch"}')) >= 1);
    await ws.close();
    await pubWs.close();
  });

  test('the same id on the same topic is acknowledged as a duplicate with the original seq', async () => {
    const ws = await d.ws();
    const a = await pub(ws, 'acme/idem', { id: 'evt-1', data: 'x' }, 'i1');
    const b = await pub(ws, 'acme/idem', { id: 'evt-2', data: 'y' }, 'i2');
    const again = await pub(ws, 'acme/idem', { id: 'evt-1', data: 'changed' }, 'i3');
    assert.deepEqual([a.seq, a.duplicate], [1, false]);
    assert.deepEqual([b.seq, b.duplicate], [2, false]);
    assert.deepEqual([again.seq, again.duplicate], [1, true]);
    // Nothing was published by the duplicate: the topic holds two events.
    const res = await d.get('/v1/streams/acme/idem/events?after=0');
    assert.deepEqual(res.json().events.map((e) => [e.seq, e.id, e.data]), [
      [1, 'evt-1', 'x'],
      [2, 'evt-2', 'y'],
    ]);
    // The same id on another topic is another event.
    const other = await pub(ws, 'acme/idem-2', { id: 'evt-1', data: 'z' }, 'i4');
    assert.deepEqual([other.seq, other.duplicate], [1, false]);
    await ws.close();
  });

  test('a consumer group shares events between members over the daemon; /metrics counts them', async () => {
    const members = [await d.ws(), await d.ws()];
    for (const m of members) {
      m.sendJson({ op: 'sub', topic: 'acme/tasks', group: 'workers' });
      const s = await m.nextJson();
      assert.deepEqual([s.op, s.group], ['subscribed', 'workers']);
    }
    const pubWs = await d.ws();
    for (let i = 1; i <= 6; i++) await pub(pubWs, 'acme/tasks', { data: i }, `t${i}`);
    const seen = [];
    await Promise.all(
      members.map(async (m) => {
        for (;;) {
          let ev;
          try {
            ev = await m.nextJson({ timeoutMs: 300 });
          } catch {
            return; // nothing more for this member
          }
          assert.equal(ev.group, 'workers');
          seen.push(ev.seq);
          m.sendJson({ op: 'ack', topic: 'acme/tasks', group: 'workers', seq: ev.seq });
        }
      }),
    );
    assert.deepEqual(seen.sort((a, b) => a - b), [1, 2, 3, 4, 5, 6], 'each event to exactly one member');
    await until(async () => (await d.metric('coord_stream_group_events_total{kind="acked"}')) === 6, {
      what: 'six acks counted',
    });
    assert.equal(await d.metric('coord_stream_group_members'), 2);
    for (const w of [...members, pubWs]) await w.close();
  });

  test('unsub stops delivery; ping gets pong; errors name the field and keep the connection', async () => {
    const ws = await d.ws();
    ws.sendJson({ op: 'sub', topic: 'acme/u' });
    assert.equal((await ws.nextJson()).op, 'subscribed');
    ws.sendJson({ op: 'unsub', topic: 'acme/u', ref: 'u1' });
    assert.deepEqual(await ws.nextJson(), { op: 'unsubscribed', topic: 'acme/u', ref: 'u1' });
    ws.sendJson({ op: 'unsub', topic: 'acme/u', ref: 'u2' });
    const nf = await ws.nextJson();
    assert.equal(nf.code, 'not_found');
    ws.sendJson({ op: 'sub', topic: 'Acme/x', ref: 's1' });
    const bad = await ws.nextJson();
    assert.equal(bad.code, 'bad_request');
    assert.match(bad.message, /^topic: tenant/);
    ws.sendJson({ op: 'pub', topic: 'acme/u', lane: 'fast', ref: 'p1' });
    const lane = await ws.nextJson();
    assert.equal(lane.code, 'bad_request');
    assert.match(lane.message, /^lane/);
    ws.sendJson({ op: 'ping', ref: 'p2' });
    assert.deepEqual(await ws.nextJson(), { op: 'pong', ref: 'p2' });
    await ws.close();
  });
});

describe('lanes and ephemeral events', () => {
  let d;
  before(async () => {
    d = await startDaemon({
      config: { limits: { topic_publish_rate: 0, publish_rate: 0, slow_client_timeout_ms: 0 } },
    });
  });
  after(() => d?.stop());

  const pad = 'x'.repeat(1000);

  /** Publishes n data events of ~1 KB in batches over HTTP. */
  async function fill(topic, n) {
    for (let done = 0; done < n; done += 500) {
      const batch = Array.from({ length: Math.min(500, n - done) }, (_, i) => ({ data: { i: done + i, pad } }));
      const res = await d.postJson(`/v1/streams/${topic}/events`, batch);
      assert.equal(res.status, 201, res.text);
    }
  }

  test('a control-lane event overtakes data queued for the same connection', async () => {
    const ws = await d.ws();
    ws.sendJson({ op: 'sub', topic: 'acme/bulk' });
    ws.sendJson({ op: 'sub', topic: 'acme/ctl' });
    await ws.take(2); // subscribed x2
    ws.sock._socket.pause(); // the client stops reading: data piles up behind its cursor
    await fill('acme/bulk', 8000);
    await until(async () => (await d.metric('coord_stream_subscriber_lag_max_events')) > 0, {
      what: 'the subscriber to lag',
    });
    const res = await d.postJson('/v1/streams/acme/ctl/events', { type: 'step', lane: 'control', data: 'urgent' });
    assert.equal(res.status, 201);
    ws.sock._socket.resume();
    const seen = [];
    const ctl = await ws.waitFor((m) => m.topic === 'acme/ctl', { skipped: seen, timeoutMs: 20000 });
    assert.equal(ctl.lane, 'control');
    assert.equal(ctl.data, 'urgent');
    const lastBulkBefore = seen.filter((m) => m.topic === 'acme/bulk').at(-1)?.seq ?? 0;
    assert.ok(lastBulkBefore < 8000, `control arrived after all ${lastBulkBefore} data events`);
    // The data that was behind it still arrives, complete and in order.
    const rest = [];
    await ws.waitFor((m) => m.seq === 8000, { skipped: rest, timeoutMs: 20000 });
    const seqs = [...seen, ...rest].filter((m) => m.topic === 'acme/bulk').map((m) => m.seq);
    seqs.push(8000);
    assert.deepEqual(seqs, Array.from({ length: 8000 }, (_, i) => i + 1));
    await ws.close();
  });

  test('ephemerals coalesce latest-wins while a client cannot take them, and drop when it is far behind', async () => {
    const ws = await d.ws();
    ws.sendJson({ op: 'sub', topic: 'acme/filler' });
    ws.sendJson({ op: 'sub', topic: 'acme/progress' });
    await ws.take(2);
    ws.sock._socket.pause();
    await fill('acme/filler', 8000); // choke the socket without making acme/progress lag
    await until(async () => (await d.metric('coord_stream_subscriber_lag_max_events')) > 0);
    for (let i = 1; i <= 10; i++) {
      const r = await d.postJson('/v1/streams/acme/progress/events', { type: 'pct', lane: 'ephemeral', data: i });
      assert.equal(r.status, 201);
      assert.equal(r.json().seq, null);
    }
    ws.sock._socket.resume();
    const got = [];
    await ws.waitFor((m) => m.topic === 'acme/filler' && m.seq === 8000, { skipped: got, timeoutMs: 20000 });
    const eph = got.filter((m) => m.topic === 'acme/progress');
    assert.deepEqual(eph.map((m) => [m.lane, m.seq, m.data]), [['ephemeral', undefined, 10]]);

    // Now make acme/progress itself lag by more than 64 events: its ephemerals are dropped.
    const dropsBefore = await d.metric('coord_stream_ephemeral_drops_total{stage="connection"}');
    ws.sock._socket.pause();
    await fill('acme/filler', 8000);
    const batch = Array.from({ length: 100 }, (_, i) => ({ data: i }));
    assert.equal((await d.postJson('/v1/streams/acme/progress/events', batch)).status, 201);
    await until(async () => (await d.metric('coord_stream_subscriber_lag_max_events')) > 64);
    assert.equal(
      (await d.postJson('/v1/streams/acme/progress/events', { type: 'pct', lane: 'ephemeral', data: 'late' })).status,
      201,
    );
    const dropsAfter = await d.metric('coord_stream_ephemeral_drops_total{stage="connection"}');
    assert.ok(dropsAfter > dropsBefore, `drops ${dropsBefore} -> ${dropsAfter}`);
    ws.sock._socket.resume();
    const later = [];
    await ws.waitFor((m) => m.topic === 'acme/progress' && m.seq === 100, { skipped: later, timeoutMs: 20000 });
    assert.ok(!later.some((m) => m.data === 'late'), 'the dropped ephemeral was not delivered');
    await ws.close();
  });

  test('events ready together leave in few writes (coalescing), not one send per message', async () => {
    const ws = await d.ws();
    ws.sendJson({ op: 'sub', topic: 'acme/coalesce' });
    await ws.nextJson();
    const frames0 = await d.metric('coord_ws_frames_total{direction="out"}');
    const writes0 = await d.metric('coord_ws_writes_total');
    const batch = Array.from({ length: 200 }, (_, i) => ({ data: i }));
    assert.equal((await d.postJson('/v1/streams/acme/coalesce/events', batch)).status, 201);
    await ws.waitFor((m) => m.seq === 200);
    const frames = (await d.metric('coord_ws_frames_total{direction="out"}')) - frames0;
    const writes = (await d.metric('coord_ws_writes_total')) - writes0;
    assert.ok(frames >= 200, `frames ${frames}`);
    assert.ok(writes <= 20, `${writes} writes for ${frames} messages`);
    await ws.close();
  });

  test('an ephemeral to a topic without subscribers is dropped at ingress and still acknowledged', async () => {
    const before = (await d.metric('coord_stream_ephemeral_drops_total{stage="ingress"}')) ?? 0;
    const ws = await d.ws();
    const ack = await pub(ws, 'acme/nobody', { lane: 'ephemeral', type: 't', data: 1 }, 'n1');
    assert.equal(ack.op, 'puback');
    assert.equal(ack.seq, null);
    assert.equal(await d.metric('coord_stream_ephemeral_drops_total{stage="ingress"}'), before + 1);
    await ws.close();
  });
});

describe('more than one write budget at once', () => {
  // With 4 frames per write, a backlog of 60 events takes 15 budgets: after the first, each
  // next one goes out in the next loop turn (ws.c's again run), oldest connection first.
  let d;
  before(async () => {
    d = await startDaemon({ config: { limits: { ws_frames_per_write: 4 } } });
  });
  after(() => d?.stop());

  test('every event arrives once and in order, also while another listed connection closes', async () => {
    const batch = (from, n) => Array.from({ length: n }, (_, i) => ({ type: 'n', data: { i: from + i } }));
    const res = await d.postJson('/v1/streams/acme/budget/events', batch(1, 60));
    assert.equal(res.status, 201, res.text);
    const a = await subscribe(d, 'acme/budget', { seq: 0 });
    const b = await subscribe(d, 'acme/budget', { seq: 0 });
    const gone = await subscribe(d, 'acme/budget', { seq: 0 });
    gone.ws.sock.terminate(); // goes while it is behind by many budgets
    const seqs = (evs) => evs.map((e) => e.seq);
    const want = Array.from({ length: 60 }, (_, i) => i + 1);
    assert.deepEqual(seqs(await a.ws.take(60)), want);
    assert.deepEqual(seqs(await b.ws.take(60)), want);
    // the next budgets went out in later turns, not through POLLOUT
    assert.ok((await d.metric('coord_ws_write_waits_total{wait="next_turn"}')) >= 2);
    // then live: a batch of 30 in one commit is again more than a budget for each
    const live = await d.postJson('/v1/streams/acme/budget/events', batch(61, 30));
    assert.equal(live.status, 201, live.text);
    const next = Array.from({ length: 30 }, (_, i) => i + 61);
    assert.deepEqual(seqs(await a.ws.take(30)), next);
    assert.deepEqual(seqs(await b.ws.take(30)), next);
    // and nothing twice: the next message after them is the answer to a ping
    a.ws.sendJson({ op: 'ping', ref: 'end' });
    assert.deepEqual(await a.ws.nextJson(), { op: 'pong', ref: 'end' });
    for (const w of [a.ws, b.ws]) await w.close();
  });
});

