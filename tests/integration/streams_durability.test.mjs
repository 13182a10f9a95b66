// Issue 3: what survives the daemon's end, against the real binary and SQLite file:
// kill -9 while publishing (every acknowledged event is there after the restart, seqs go on
// with no repeat and no skip), and SIGTERM drain then resume on a restarted daemon at the
// same address with zero loss and no duplicates.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { freePort, startDaemon, stopAll, until } from './lib/harness.mjs';

after(stopAll);

const unlimited = { publish_rate: 0, topic_publish_rate: 0 };

/** Every retained event of a topic over HTTP, paging with next_after. */
async function readAll(d, topic) {
  const out = [];
  let afterSeq = 0;
  for (;;) {
    const res = await d.get(`/v1/streams/${topic}/events?after=${afterSeq}&limit=1000`);
    assert.equal(res.status, 200, res.text);
    const body = res.json();
    out.push(...body.events);
    if (!body.more) return { events: out, head: body.head, epoch: body.epoch };
    afterSeq = body.next_after;
  }
}

describe('crash and restart', () => {
  test('kill -9 during publishing: every acked event is there after restart, seq continues densely', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'coord-crash-'));
    try {
      const d1 = await startDaemon({ config: { data_dir: dataDir, limits: unlimited } });
      const topics = ['acme/crash-a', 'acme/crash-b', 'acme/crash-c'];
      const acked = new Map(); // id -> {topic, seq}
      const clients = await Promise.all(topics.map(() => d1.ws()));
      let stop = false;
      const loops = clients.map(async (ws, t) => {
        let ackedHere = 0;
        ws.sock.on('message', (buf) => {
          const m = JSON.parse(buf.toString());
          if (m.op !== 'puback') return;
          acked.set(m.ref, { topic: m.topic, seq: m.seq });
          ackedHere++;
        });
        // keep up to 50 publishes in flight per connection until the daemon is gone
        for (let i = 0; !stop && ws.sock.readyState === 1; i++) {
          const id = `${topics[t]}#${i}`;
          ws.sendJson({ op: 'pub', topic: topics[t], id, ref: id, data: { i } });
          while (!stop && i + 1 - ackedHere >= 50) await new Promise((r) => setTimeout(r, 1));
        }
      });
      await until(() => acked.size >= 1500, { timeoutMs: 20000, what: '1500 acks' });
      d1.signal('SIGKILL');
      const exit = await d1.exited;
      assert.equal(exit.signal, 'SIGKILL');
      stop = true;
      await Promise.all(loops);
      const ackedAtKill = new Map(acked);
      await d1.cleanup();

      const d2 = await startDaemon({ config: { data_dir: dataDir, limits: unlimited } });
      for (const topic of topics) {
        const { events, head } = await readAll(d2, topic);
        // dense: 1..head, each once
        assert.deepEqual(
          events.map((e) => e.seq),
          Array.from({ length: head }, (_, i) => i + 1),
          `${topic}: seqs are not dense`,
        );
        const byId = new Map(events.map((e) => [e.id, e.seq]));
        for (const [id, a] of ackedAtKill) {
          if (a.topic !== topic) continue;
          assert.equal(byId.get(id), a.seq, `acked ${id} (seq ${a.seq}) missing or moved after the crash`);
        }
        // the next publish continues right after the head, no repeat, no skip
        const next = await d2.postJson(`/v1/streams/${topic}/events`, { data: 'after-restart' });
        assert.equal(next.json().seq, head + 1);
        // and an id acked before the crash is still known (dedupe survives the restart)
        const someId = [...ackedAtKill.keys()].find((k) => k.startsWith(topic));
        const dup = await d2.postJson(`/v1/streams/${topic}/events`, { id: someId, data: 'again' });
        assert.deepEqual([dup.json().seq, dup.json().duplicate], [ackedAtKill.get(someId).seq, true]);
      }
      await d2.stop();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('drain and resume', () => {
  test('SIGTERM: the subscriber gets drain with its position, resumes on the restarted daemon, loses nothing', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'coord-drain-'));
    const port = await freePort();
    const topic = 'acme/drain';
    try {
      const cfg = { data_dir: dataDir, limits: unlimited, shutdown: { drain_ms: 3000, grace_ms: 1000 } };
      const d1 = await startDaemon({ port, config: cfg });
      const sub = await d1.ws();
      sub.sendJson({ op: 'sub', topic, after: { seq: 0 } });
      const subscribed = await sub.nextJson();
      const received = [];
      let drain = null;
      sub.sock.on('message', (buf) => {
        const m = JSON.parse(buf.toString());
        if (m.op === 'ev') received.push(m.seq);
        if (m.op === 'drain') drain = m;
      });
      // a publisher that keeps going through the restart, retrying what was refused
      const acked = new Set();
      const publishOne = async (d, i) => {
        for (;;) {
          try {
            const res = await d().postJson(`/v1/streams/${topic}/events`, { id: `e${i}`, data: i }, { timeoutMs: 2000 });
            if (res.status === 201) {
              acked.add(res.json().seq);
              return;
            }
          } catch {
            /* refused while the daemon is down: retry */
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      let current = d1;
      const publisher = (async () => {
        for (let i = 1; i <= 300; i++) await publishOne(() => current, i);
      })();
      await until(() => acked.size >= 100, { timeoutMs: 10000, what: '100 publishes' });
      d1.signal('SIGTERM');
      await until(() => drain, { timeoutMs: 5000, what: 'the drain message' });
      const closed = await sub.closed;
      assert.equal(closed.code, 1001);
      const pos = drain.positions[topic];
      assert.equal(pos.epoch, subscribed.epoch);
      assert.equal(pos.seq, received.at(-1) ?? 0, 'the drain position is the last event delivered');
      assert.ok(drain.retry_ms >= 250 && drain.retry_ms < 2250);
      assert.deepEqual(await d1.exited, { code: 0, signal: null });
      await d1.cleanup();

      const d2 = await startDaemon({ port, config: cfg });
      current = d2;
      const again = await d2.ws();
      again.sendJson({ op: 'sub', topic, after: { epoch: pos.epoch, seq: pos.seq } });
      const s2 = await again.nextJson();
      assert.equal(s2.op, 'subscribed');
      assert.equal(s2.epoch, pos.epoch, 'the epoch survives a restart');
      await publisher;
      const head = Math.max(...acked);
      const resumed = [];
      await again.waitFor((m) => {
        if (m.op === 'ev') resumed.push(m.seq);
        return m.op === 'ev' && m.seq === head;
      }, { timeoutMs: 10000 });
      const all = [...received, ...resumed];
      assert.deepEqual(all, Array.from({ length: head }, (_, i) => i + 1), 'every event exactly once, in order');
      assert.equal(acked.size, 300);
      await again.close();
      await d2.stop();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
