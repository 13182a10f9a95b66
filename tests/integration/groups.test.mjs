// Issue 6: consumer groups against the real daemon with real WebSocket members: exactly
// one delivery per group across 3 members under load (every event acked once, none
// lost), redelivery after a member is killed mid-task, lease extension, dead letters after
// max_deliveries, group state across a kill -9 and restart, and the groups HTTP route.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { startDaemon, stopAll, until } from './lib/harness.mjs';

after(stopAll);

const unlimited = { publish_rate: 0, topic_publish_rate: 0 };

/** Joins group on topic; resolves with the member's socket once `subscribed` came. */
async function join(d, topic, group, extra = {}) {
  const ws = await d.ws();
  ws.sendJson({ op: 'sub', topic, group, ...extra });
  const s = await ws.waitFor((m) => m.op === 'subscribed' || m.op === 'error');
  assert.equal(s.op, 'subscribed', JSON.stringify(s));
  assert.equal(s.group, group);
  return ws;
}

/** Publishes n events ({i}) to topic over HTTP in batches; resolves with their seqs. */
async function publish(d, topic, n, batch = 250) {
  const seqs = [];
  for (let i = 0; i < n; i += batch) {
    const events = [];
    for (let k = i; k < Math.min(n, i + batch); k++) events.push({ type: 'task', data: { i: k } });
    const res = await d.postJson(`/v1/streams/${topic}/events`, events);
    assert.equal(res.status, 201, res.text);
    seqs.push(...res.json().map((a) => a.seq));
  }
  return seqs;
}

async function groupsOf(d, topic) {
  const res = await d.get(`/v1/streams/${topic}/groups`);
  assert.equal(res.status, 200, res.text);
  return Object.fromEntries(res.json().groups.map((g) => [g.group, g]));
}

describe('consumer groups over the daemon', () => {
  test('3 members under load: every event reaches exactly one member and is acked once', async () => {
    const d = await startDaemon({ config: { limits: unlimited } });
    try {
      const topic = 'acme/load';
      const members = [];
      for (let k = 0; k < 3; k++) members.push(await join(d, topic, 'workers', { max_inflight: 32 }));
      const N = 3000;
      const got = new Map(); // seq -> [member, ...]
      const perMember = [0, 0, 0];
      let redelivered = 0;
      members.forEach((ws, k) => {
        ws.sock.on('message', (buf) => {
          const m = JSON.parse(buf.toString());
          if (m.op !== 'ev') return;
          assert.equal(m.group, 'workers');
          if (m.redelivered) redelivered++;
          if (!got.has(m.seq)) got.set(m.seq, []);
          got.get(m.seq).push(k);
          perMember[k]++;
          ws.sendJson({ op: 'ack', topic, group: 'workers', seq: m.seq });
        });
      });
      const seqs = await publish(d, topic, N);
      await until(() => got.size === N, { timeoutMs: 30000, what: `${N} deliveries` });
      await until(async () => (await groupsOf(d, topic)).workers.acks === N, { timeoutMs: 10000, what: 'acks' });
      const g = (await groupsOf(d, topic)).workers;
      assert.deepEqual(
        [g.members, g.pending, g.inflight, g.position, g.head, g.lag, g.deliveries, g.redeliveries],
        [3, 0, 0, seqs.at(-1), seqs.at(-1), 0, N, 0],
      );
      assert.equal(redelivered, 0);
      for (const s of seqs) assert.equal(got.get(s)?.length, 1, `seq ${s} delivered ${got.get(s)?.length ?? 0} times`);
      for (const n of perMember) assert.ok(n > N / 10, `shares ${perMember} are not spread`);
      for (const ws of members) await ws.close();
    } finally {
      await d.stop();
    }
  });

  test('a member killed mid-task gives its unacked events to another member at once', async () => {
    const d = await startDaemon();
    try {
      const topic = 'acme/kill';
      const a = await join(d, topic, 'workers', { ack_wait_ms: 600000 }); // only the kill redelivers
      await publish(d, topic, 2);
      const held = [await a.nextJson(), await a.nextJson()];
      assert.deepEqual(held.map((m) => [m.op, m.seq, m.redelivered]), [
        ['ev', 1, undefined],
        ['ev', 2, undefined],
      ]);
      const b = await join(d, topic, 'workers');
      a.terminate(); // the process is gone: no close frame, no unsub
      const again = [await b.nextJson(), await b.nextJson()].sort((x, y) => x.seq - y.seq);
      assert.deepEqual(again.map((m) => [m.seq, m.redelivered, m.data.i]), [
        [1, 1, 0],
        [2, 1, 1],
      ]);
      for (const m of again) b.sendJson({ op: 'ack', topic, group: 'workers', seq: m.seq });
      await until(async () => (await groupsOf(d, topic)).workers.pending === 0, { what: 'acked' });
      const g = (await groupsOf(d, topic)).workers;
      assert.deepEqual([g.members, g.redeliveries, g.acks], [1, 2, 2]);
      await b.close();
    } finally {
      await d.stop();
    }
  });

  test('extend keeps a lease past ack_wait_ms; once it stops, the event goes to the other member', async () => {
    const d = await startDaemon();
    try {
      const topic = 'acme/lease';
      const a = await join(d, topic, 'workers', { ack_wait_ms: 300 });
      await publish(d, topic, 1);
      const ev = await a.nextJson();
      assert.equal(ev.seq, 1);
      const b = await join(d, topic, 'workers');
      // Extend every 100 ms for 1.2 s (four leases' worth): b must get nothing meanwhile.
      const started = Date.now();
      const extender = setInterval(() => a.sendJson({ op: 'extend', topic, group: 'workers', seq: 1, ref: 'x' }), 100);
      await assert.rejects(b.nextJson({ timeoutMs: 1200 }), /no message/);
      clearInterval(extender);
      const extended = await a.waitFor((m) => m.op === 'extended' || m.op === 'error');
      assert.deepEqual([extended.op, extended.seq], ['extended', 1]);
      const re = await b.nextJson({ timeoutMs: 3000 });
      assert.deepEqual([re.seq, re.redelivered], [1, 1]);
      assert.ok(Date.now() - started >= 1200);
      // The first holder lost it: its late extend is refused.
      a.sendJson({ op: 'extend', topic, group: 'workers', seq: 1, ref: 'late' });
      const late = await a.waitFor((m) => m.ref === 'late');
      assert.equal(late.code, 'not_found');
      b.sendJson({ op: 'ack', topic, group: 'workers', seq: 1 });
      await a.close();
      await b.close();
    } finally {
      await d.stop();
    }
  });

  test('after max_deliveries an event is dead-lettered to <topic>.dlq with the reason', async () => {
    const d = await startDaemon({ config: { streams: { groups: { max_deliveries: 3 } } } });
    try {
      const topic = 'acme/jobs';
      const dlq = await d.ws();
      dlq.sendJson({ op: 'sub', topic: 'acme/jobs.dlq' });
      assert.equal((await dlq.nextJson()).op, 'subscribed');
      const m = await join(d, topic, 'workers');
      await d.postJson(`/v1/streams/${topic}/events`, { id: 'job-7', type: 'task', data: { job: 'x' } });
      const seen = [];
      for (let k = 0; k < 3; k++) {
        const ev = await m.nextJson();
        seen.push(ev.redelivered ?? 0);
        m.sendJson({ op: 'nack', topic, group: 'workers', seq: ev.seq, delay_ms: 0 });
      }
      assert.deepEqual(seen, [0, 1, 2]);
      const dead = await dlq.waitFor((e) => e.op === 'ev');
      assert.equal(dead.type, 'dead_letter');
      assert.deepEqual(
        [dead.data.topic, dead.data.group, dead.data.seq, dead.data.deliveries, dead.data.reason, dead.data.last_failure],
        [topic, 'workers', 1, 3, 'max_deliveries', 'nacked'],
      );
      assert.deepEqual([dead.data.event.id, dead.data.event.data], ['job-7', { job: 'x' }]);
      await assert.rejects(m.nextJson({ timeoutMs: 300 }), /no message/); // not delivered again
      const g = (await groupsOf(d, topic)).workers;
      assert.deepEqual([g.pending, g.dead_lettered, g.nacks], [0, 1, 3]);
      await m.close();
      await dlq.close();
    } finally {
      await d.stop();
    }
  });

  test('position and pending leases survive kill -9 and a restart', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'coord-groups-'));
    try {
      const topic = 'acme/durable';
      const d1 = await startDaemon({ config: { data_dir: dataDir } });
      const m = await join(d1, topic, 'workers', { max_inflight: 10 });
      await publish(d1, topic, 5);
      const evs = [];
      for (let k = 0; k < 5; k++) evs.push(await m.nextJson());
      for (const ev of evs.slice(0, 3)) m.sendJson({ op: 'ack', topic, group: 'workers', seq: ev.seq });
      await until(async () => (await groupsOf(d1, topic)).workers.pending === 2, { what: '3 acks' });
      d1.signal('SIGKILL');
      await d1.exited;
      await d1.cleanup();

      const d2 = await startDaemon({ config: { data_dir: dataDir } });
      const before = (await groupsOf(d2, topic)).workers;
      assert.deepEqual([before.loaded, before.position, before.pending, before.members], [false, 5, 2, 0]);
      const m2 = await join(d2, topic, 'workers', { max_inflight: 10 });
      const back = [await m2.nextJson(), await m2.nextJson()].sort((x, y) => x.seq - y.seq);
      assert.deepEqual(back.map((e) => [e.seq, e.redelivered]), [
        [4, 1],
        [5, 1],
      ]);
      await publish(d2, topic, 1);
      const fresh = await m2.nextJson();
      assert.deepEqual([fresh.seq, fresh.redelivered], [6, undefined]); // nothing acked came back
      for (const e of [...back, fresh]) m2.sendJson({ op: 'ack', topic, group: 'workers', seq: e.seq });
      await until(async () => (await groupsOf(d2, topic)).workers.pending === 0, { what: 'acked' });
      await m2.close();
      await d2.stop();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('GET .../groups answers [] for a topic without groups and 400 for a bad room', async () => {
    const d = await startDaemon();
    try {
      const none = await d.get('/v1/streams/acme/nothing-here/groups');
      assert.equal(none.status, 200);
      assert.deepEqual(none.json(), { topic: 'acme/nothing-here', groups: [] });
      const bad = await d.get('/v1/streams/acme/bad%20room/groups');
      assert.equal(bad.status, 400);
      assert.match(bad.json().error.message, /room/);
    } finally {
      await d.stop();
    }
  });
});
