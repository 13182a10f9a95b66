// Unit tests for examples/web/coordinator-client.js against a fake server written here.
//
// The fake speaks docs/protocol.md (sub/unsub/pub/ping; subscribed, ev, gap, puback, error,
// drain) from an in-memory log per topic, and can misbehave on purpose: re-send seqs the
// client already has, leave holes, swallow publishes, stop answering pings, drop sockets.
// It is not the daemon; tests/integration/ covers the real one. Run: node --test tests/js/
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { WebSocket, WebSocketServer } from '../node_modules/ws/wrapper.mjs';
import { CoordinatorClient, CoordinatorError, backoffDelay } from '../../examples/web/coordinator-client.js';

const EPOCH_A = '5f0c2a9e1b7d4c3a';
const EPOCH_B = '9a1e00c0ffee0042';

/** Resolves once cond() is true; fails after ms. Polls, so it waits for a condition only. */
async function until(cond, what = 'condition', ms = 3000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

class FakeServer {
  constructor() {
    this.topics = new Map(); // name -> {epoch, events: [ev] (index seq-1), first}
    this.conns = []; // {ws, url, subs: Map(topic -> {next}), msgs: []}
    this.received = []; // every client message, in order
    this.overlap = 0; // on resume, replay this many already-delivered seqs again
    this.answerPings = true;
    this.hooks = {}; // op -> (conn, msg) => true when the hook answered instead
    this.dedupe = new Map();
  }

  async start() {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => this.wss.once('listening', r));
    this.url = `ws://127.0.0.1:${this.wss.address().port}/v1/ws`;
    this.wss.on('connection', (ws, req) => {
      const conn = { ws, url: req.url, subs: new Map(), msgs: [] };
      this.conns.push(conn);
      ws.on('message', (data) => this._onMessage(conn, JSON.parse(String(data))));
    });
  }

  async stop() {
    for (const c of this.conns) c.ws.terminate();
    await new Promise((r) => this.wss.close(r));
  }

  get last() {
    return this.conns[this.conns.length - 1];
  }

  topic(name, epoch = EPOCH_A) {
    if (!this.topics.has(name)) this.topics.set(name, { epoch, events: [], first: 1 });
    return this.topics.get(name);
  }

  send(conn, msg) {
    if (conn.ws.readyState === WebSocket.OPEN) conn.ws.send(JSON.stringify(msg));
  }

  /** Appends a reliable event and sends it to live subscribers. */
  append(name, data, extra = {}) {
    const t = this.topic(name);
    const seq = t.events.length + 1;
    const ev = { op: 'ev', topic: name, seq, epoch: t.epoch, lane: 'data', ts: Date.now(), ...extra, data };
    t.events.push(ev);
    for (const c of this.conns) {
      const s = c.subs.get(name);
      if (s && s.next === seq) {
        this.send(c, ev);
        s.next++;
      }
    }
    return ev;
  }

  ephemeral(name, data) {
    for (const c of this.conns) if (c.subs.has(name)) this.send(c, { op: 'ev', topic: name, epoch: this.topic(name).epoch, lane: 'ephemeral', ts: Date.now(), data });
  }

  /** Sends `drain` with each subscription's last delivered seq (or the given positions). */
  drain(conn, retryMs, positions) {
    const pos = {};
    for (const [name, s] of conn.subs) pos[name] = { epoch: this.topic(name).epoch, seq: s.next - 1 };
    this.send(conn, { op: 'drain', retry_ms: retryMs, positions: positions || pos });
    conn.subs.clear();
  }

  _onMessage(conn, msg) {
    this.received.push(msg);
    conn.msgs.push(msg);
    const hook = this.hooks[msg.op];
    if (hook && hook(conn, msg)) return;
    if (msg.op === 'sub') this._sub(conn, msg);
    else if (msg.op === 'unsub') {
      conn.subs.delete(msg.topic);
      this.send(conn, { op: 'unsubscribed', topic: msg.topic, ref: msg.ref });
    } else if (msg.op === 'pub') this._pub(conn, msg);
    else if (msg.op === 'ping' && this.answerPings) this.send(conn, { op: 'pong', ref: msg.ref });
  }

  _sub(conn, msg) {
    const t = this.topic(msg.topic);
    const head = t.events.length;
    const after = msg.after;
    if (after && (!after.epoch || after.epoch === t.epoch) && after.seq > head) {
      this.send(conn, { op: 'error', ref: msg.ref, code: 'bad_request', message: 'after.seq: beyond the head', topic: msg.topic });
      return;
    }
    this.send(conn, { op: 'subscribed', topic: msg.topic, epoch: t.epoch, head });
    let next;
    if (!after) next = head + 1;
    else if (after.epoch && after.epoch !== t.epoch) {
      next = t.first;
      this.send(conn, { op: 'gap', topic: msg.topic, from: 1, to: t.first - 1, reason: 'epoch', epoch: t.epoch });
    } else {
      next = after.seq + 1;
      if (after.seq > 0 && this.overlap > 0) next = Math.max(1, next - this.overlap);
    }
    if (next < t.first) {
      this.send(conn, { op: 'gap', topic: msg.topic, from: next, to: t.first - 1, reason: 'retention' });
      next = t.first;
    }
    for (let s = next; s <= head; s++) this.send(conn, t.events[s - 1]);
    conn.subs.set(msg.topic, { next: head + 1 });
  }

  _pub(conn, msg) {
    const t = this.topic(msg.topic);
    const key = `${msg.topic}\n${msg.id}`;
    if (msg.id !== undefined && this.dedupe.has(key)) {
      this.send(conn, { op: 'puback', ref: msg.ref, topic: msg.topic, seq: this.dedupe.get(key), epoch: t.epoch, duplicate: true });
      return;
    }
    if (msg.lane === 'ephemeral') {
      this.ephemeral(msg.topic, msg.data);
      this.send(conn, { op: 'puback', ref: msg.ref, topic: msg.topic, seq: null, epoch: t.epoch, duplicate: false });
      return;
    }
    const ev = this.append(msg.topic, msg.data === undefined ? null : msg.data, { id: msg.id, type: msg.type });
    if (msg.id !== undefined) this.dedupe.set(key, ev.seq);
    this.send(conn, { op: 'puback', ref: msg.ref, topic: msg.topic, seq: ev.seq, epoch: t.epoch, duplicate: false });
  }
}

let server;
const clients = [];

function makeClient(opts = {}) {
  const c = new CoordinatorClient({
    url: server.url,
    token: 'tok-1',
    WebSocket,
    reconnectBaseMs: 10,
    reconnectMaxMs: 40,
    ...opts,
  });
  c.states = [];
  c.errors = [];
  c.onState((s) => c.states.push(s));
  c.onError((e) => c.errors.push(e));
  clients.push(c);
  return c;
}

function collector() {
  const got = [];
  const fn = (ev) => got.push(ev);
  fn.got = got;
  fn.seqs = () => got.filter((e) => e.seq != null).map((e) => e.seq);
  return fn;
}

beforeEach(async () => {
  server = new FakeServer();
  await server.start();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server.stop();
});

describe('subscribing', () => {
  test('a subscriber receives retained then live events in order with its token in the URL', async () => {
    for (let i = 1; i <= 3; i++) server.append('acme/room-1', { n: i });
    const c = makeClient();
    const h = collector();
    const sub = c.subscribe('acme/room-1', h, { after: { seq: 0 } });
    c.connect();
    const ready = await sub.ready;
    assert.deepEqual(ready, { topic: 'acme/room-1', epoch: EPOCH_A, head: 3 });
    server.append('acme/room-1', { n: 4 });
    server.append('acme/room-1', { n: 5 });
    await until(() => h.got.length === 5, '5 events');
    assert.deepEqual(h.seqs(), [1, 2, 3, 4, 5]);
    assert.deepEqual(h.got.map((e) => e.data.n), [1, 2, 3, 4, 5]);
    assert.equal(h.got[0].topic, 'acme/room-1');
    assert.equal(h.got[0].epoch, EPOCH_A);
    assert.match(server.last.url, /^\/v1\/ws\?access_token=tok-1$/);
    assert.deepEqual(sub.position, { epoch: EPOCH_A, seq: 5 });
  });

  test('a live subscription starts after the head and resumes from it', async () => {
    server.append('acme/live', 'old');
    const c = makeClient();
    const h = collector();
    const sub = c.subscribe('acme/live', h);
    c.connect();
    await sub.ready;
    assert.equal(server.received[0].after, undefined);
    assert.deepEqual(sub.position, { epoch: EPOCH_A, seq: 1 });
    server.last.ws.terminate();
    server.append('acme/live', 'while away');
    await until(() => h.got.length === 1, 'the event published while away');
    assert.deepEqual(server.last.msgs[0].after, { epoch: EPOCH_A, seq: 1 });
    assert.equal(h.got[0].data, 'while away');
  });

  test('a token function is called for every connection attempt', async () => {
    let n = 0;
    const c = makeClient({ token: async () => `t${++n}` });
    c.connect();
    await until(() => c.state === 'live', 'live');
    server.last.ws.terminate();
    await until(() => server.conns.length === 2 && c.state === 'live', 'second connection');
    assert.deepEqual(server.conns.map((x) => x.url), ['/v1/ws?access_token=t1', '/v1/ws?access_token=t2']);
  });

  test('a refused subscription rejects ready and calls onError while the client stays live', async () => {
    server.hooks.sub = (conn, msg) => {
      if (msg.topic !== 'other/x') return false;
      server.send(conn, { op: 'error', ref: msg.ref, code: 'forbidden', message: 'topic: not allowed to subscribe', topic: msg.topic });
      return true;
    };
    const c = makeClient();
    const seen = [];
    const bad = c.subscribe('other/x', () => {}, { onError: (e) => seen.push(e.code) });
    const good = c.subscribe('acme/ok', () => {});
    c.connect();
    await assert.rejects(bad.ready, (e) => e instanceof CoordinatorError && e.code === 'forbidden');
    await good.ready;
    await until(() => c.state === 'live', 'live');
    assert.deepEqual(seen, ['forbidden']);
    assert.equal(bad.active, false);
    assert.deepEqual(Object.keys(c.positions()), ['acme/ok']);
  });

  test('subscribing twice to one topic throws and unsubscribing stops delivery', async () => {
    const c = makeClient();
    const h = collector();
    const sub = c.subscribe('acme/u', h);
    assert.throws(() => c.subscribe('acme/u', () => {}), /already subscribed/);
    c.connect();
    await sub.ready;
    server.append('acme/u', 1);
    await until(() => h.got.length === 1, 'first event');
    sub.unsubscribe();
    await until(() => server.received.some((m) => m.op === 'unsub'), 'unsub sent');
    server.append('acme/u', 2);
    server.hooks.ping = () => false;
    // An event that does reach the client after unsub (sent before it was read) is ignored.
    server.send(server.last, { op: 'ev', topic: 'acme/u', seq: 2, epoch: EPOCH_A, lane: 'data', ts: 1, data: 2 });
    c.subscribe('acme/u2', () => {});
    await until(() => server.received.some((m) => m.op === 'sub' && m.topic === 'acme/u2'), 'later sub');
    assert.deepEqual(h.seqs(), [1]);
  });
});

describe('resuming', () => {
  test('after a drop mid-stream nothing is lost and re-sent seqs are suppressed', async () => {
    server.overlap = 3; // the fake replays three seqs the client already has
    const c = makeClient();
    const h = collector();
    c.subscribe('acme/run', h, { after: { seq: 0 } });
    c.connect();
    await until(() => c.state === 'live', 'live');
    for (let i = 1; i <= 10; i++) {
      server.append('acme/run', `tok${i}`);
      if (i === 7) server.last.ws.terminate(); // cut while frames are in flight
    }
    for (let i = 11; i <= 14; i++) server.append('acme/run', `tok${i}`); // published while away
    await until(() => h.got.length >= 14 && server.conns.length === 2, 'all 14 events');
    const resub = server.conns[1].msgs.find((m) => m.op === 'sub');
    assert.equal(resub.after.epoch, EPOCH_A);
    assert.ok(resub.after.seq >= 0 && resub.after.seq <= 7, `resumed after ${resub.after.seq}`);
    server.append('acme/run', 'tok15');
    await until(() => h.got.length === 15, 'live event after resume');
    assert.deepEqual(h.seqs(), Array.from({ length: 15 }, (_, i) => i + 1));
    assert.deepEqual(h.got.map((e) => e.data), Array.from({ length: 15 }, (_, i) => `tok${i + 1}`));
    if (resub.after.seq > 0) assert.ok(c.stats.duplicates >= Math.min(3, resub.after.seq));
  });

  test('repeated drops with overlapping replays still deliver every seq exactly once', async () => {
    server.overlap = 5;
    const c = makeClient();
    const h = collector();
    c.subscribe('acme/many', h, { after: { seq: 0 } });
    c.connect();
    let n = 0;
    for (let round = 0; round < 5; round++) {
      await until(() => c.state === 'live', `live in round ${round}`);
      for (let i = 0; i < 6; i++) server.append('acme/many', ++n);
      await until(() => h.got.length === n, `round ${round} events`);
      server.last.ws.terminate();
      await until(() => c.state === 'reconnecting', `reconnecting in round ${round}`);
    }
    await until(() => c.state === 'live', 'live at the end');
    assert.deepEqual(h.seqs(), Array.from({ length: n }, (_, i) => i + 1));
    assert.ok(c.stats.duplicates >= 5 * 4, `duplicates suppressed: ${c.stats.duplicates}`);
  });

  test('a hole no gap announced makes the client resubscribe from its position', async () => {
    let first = true;
    server.hooks.sub = (conn, msg) => {
      if (!first) return false;
      first = false;
      for (let i = 1; i <= 4; i++) server.topic('acme/hole').events.push({ op: 'ev', topic: 'acme/hole', seq: i, epoch: EPOCH_A, lane: 'data', ts: 1, data: i });
      server.send(conn, { op: 'subscribed', topic: msg.topic, epoch: EPOCH_A, head: 4 });
      for (const s of [1, 2, 4]) server.send(conn, server.topic('acme/hole').events[s - 1]); // 3 is missing
      conn.subs.set(msg.topic, { next: 5 });
      return true;
    };
    const c = makeClient();
    const h = collector();
    c.subscribe('acme/hole', h, { after: { seq: 0 } });
    c.connect();
    await until(() => h.got.length === 4, 'four events');
    assert.deepEqual(h.seqs(), [1, 2, 3, 4]);
    assert.equal(c.stats.resyncs, 1);
    const subs = server.received.filter((m) => m.op === 'sub');
    assert.deepEqual(subs[1].after, { epoch: EPOCH_A, seq: 2 });
  });
});

describe('gaps', () => {
  test('a retention gap calls onGap once, reports it, then delivery continues', async () => {
    const t = server.topic('acme/old');
    for (let i = 1; i <= 6; i++) server.append('acme/old', i);
    t.first = 4; // 1..3 are no longer kept
    const c = makeClient();
    const h = collector();
    const gaps = [];
    c.subscribe('acme/old', h, { after: { seq: 0 }, onGap: (g) => gaps.push(g) });
    c.connect();
    await until(() => h.got.length === 3, 'retained events');
    assert.deepEqual(gaps, [{ topic: 'acme/old', from: 1, to: 3, reason: 'retention' }]);
    assert.deepEqual(h.seqs(), [4, 5, 6]);
    const gapState = c.states.find((s) => s.type === 'gap');
    assert.equal(gapState.from, 1);
    assert.equal(gapState.to, 3);
    server.append('acme/old', 7);
    await until(() => h.got.length === 4, 'live after the gap');
    assert.equal(c.stats.gaps, 1);
  });

  test('an epoch change voids the position: onGap with reason epoch, then the new history', async () => {
    server.topic('acme/reset', EPOCH_B);
    server.append('acme/reset', 'b1');
    server.append('acme/reset', 'b2');
    const c = makeClient();
    const h = collector();
    const gaps = [];
    const sub = c.subscribe('acme/reset', h, { after: { epoch: EPOCH_A, seq: 40 }, onGap: (g) => gaps.push(g) });
    c.connect();
    await until(() => h.got.length === 2, 'new epoch events');
    assert.deepEqual(gaps, [{ topic: 'acme/reset', from: 1, to: 0, reason: 'epoch', epoch: EPOCH_B }]);
    assert.deepEqual(h.got.map((e) => e.data), ['b1', 'b2']);
    assert.deepEqual(sub.position, { epoch: EPOCH_B, seq: 2 });
  });
});

describe('drain', () => {
  test('drain makes the client reconnect at the hinted time with the given positions', async () => {
    const c = makeClient({ random: () => 0 });
    const a = collector();
    const b = collector();
    c.subscribe('acme/a', a, { after: { seq: 0 } });
    c.subscribe('acme/b', b);
    for (let i = 1; i <= 3; i++) server.append('acme/a', i);
    c.connect();
    await until(() => a.got.length === 3 && c.state === 'live', 'first events');
    const old = server.last;
    let oldOpenWhenNew;
    server.wss.once('connection', () => {
      oldOpenWhenNew = old.ws.readyState === WebSocket.OPEN;
    });
    // The server claims a lower position for a than the client has: the client resumes from it.
    server.drain(old, 30, { 'acme/a': { epoch: EPOCH_A, seq: 2 }, 'acme/b': { epoch: EPOCH_A, seq: 0 } });
    await until(() => c.states.some((s) => s.type === 'reconnecting'), 'reconnecting');
    const rec = c.states.find((s) => s.type === 'reconnecting');
    assert.equal(rec.reason, 'drain');
    assert.equal(rec.delayMs, 30);
    server.append('acme/a', 4); // published during the drain window
    server.append('acme/b', 1);
    await until(() => server.conns.length === 2 && c.state === 'live', 'new connection');
    assert.equal(oldOpenWhenNew, true, 'reconnected without waiting for the close');
    const subs = server.conns[1].msgs.filter((m) => m.op === 'sub');
    assert.deepEqual(Object.fromEntries(subs.map((m) => [m.topic, m.after])), {
      'acme/a': { epoch: EPOCH_A, seq: 2 },
      'acme/b': { epoch: EPOCH_A, seq: 0 },
    });
    await until(() => a.got.length === 4 && b.got.length === 1, 'events after the drain');
    assert.deepEqual(a.seqs(), [1, 2, 3, 4]);
    assert.deepEqual(b.seqs(), [1]);
    assert.equal(c.stats.duplicates, 1);
    assert.equal(c.states.at(-1).type, 'resumed');
    await until(() => old.ws.readyState === WebSocket.CLOSED, 'old socket closed by the client');
  });

  test('a publish answered shutting_down during a drain is sent again after it', async () => {
    const c = makeClient({ random: () => 0 });
    c.connect();
    await until(() => c.state === 'live', 'live');
    const old = server.last;
    server.hooks.pub = (conn, msg) => {
      if (conn !== old) return false;
      server.drain(conn, 20);
      server.send(conn, { op: 'error', ref: msg.ref, code: 'shutting_down', message: 'draining', topic: msg.topic });
      return true;
    };
    const ack = await c.publish('acme/p', { x: 1 });
    assert.equal(ack.seq, 1);
    const pubs = server.received.filter((m) => m.op === 'pub');
    assert.equal(pubs.length, 2);
    assert.equal(pubs[0].id, pubs[1].id);
  });
});

describe('publishing', () => {
  test('publish resolves with the puback of its ref and carries an idempotency id', async () => {
    const c = makeClient();
    c.connect();
    await until(() => c.state === 'live', 'live');
    const ack = await c.publish('acme/room', { text: 'hi' }, { type: 'note' });
    assert.deepEqual(ack, { topic: 'acme/room', seq: 1, epoch: EPOCH_A, duplicate: false });
    const pub = server.received.find((m) => m.op === 'pub');
    assert.equal(pub.type, 'note');
    assert.deepEqual(pub.data, { text: 'hi' });
    assert.match(pub.id, /^[0-9a-f]{24}$/);
    const eph = await c.publish('acme/room', { p: 1 }, { lane: 'ephemeral' });
    assert.equal(eph.seq, null);
    const dup = await c.publish('acme/room', { text: 'hi' }, { id: pub.id });
    assert.deepEqual(dup, { topic: 'acme/room', seq: 1, epoch: EPOCH_A, duplicate: true });
  });

  test('an error with the ref rejects the publish with the server code', async () => {
    server.hooks.pub = (conn, msg) => {
      server.send(conn, { op: 'error', ref: msg.ref, code: 'forbidden', message: 'topic: not allowed to publish', topic: msg.topic });
      return true;
    };
    const c = makeClient();
    c.connect();
    await assert.rejects(c.publish('acme/room', 1), (e) => e instanceof CoordinatorError && e.code === 'forbidden' && e.topic === 'acme/room');
    assert.equal(c.state, 'live');
  });

  test('an unanswered publish rejects with timeout', async () => {
    server.hooks.pub = () => true;
    const c = makeClient();
    c.connect();
    const t0 = Date.now();
    await assert.rejects(c.publish('acme/room', 1, { timeoutMs: 60 }), (e) => e.code === 'timeout');
    assert.ok(Date.now() - t0 >= 55);
  });

  test('rate_limited is retried after retry_after_ms with the same id', async () => {
    let n = 0;
    server.hooks.pub = (conn, msg) => {
      if (++n > 1) return false;
      server.send(conn, { op: 'error', ref: msg.ref, code: 'rate_limited', message: 'slow down', topic: msg.topic, retry_after_ms: 15 });
      return true;
    };
    const c = makeClient();
    c.connect();
    const ack = await c.publish('acme/room', 'x');
    assert.equal(ack.seq, 1);
    const pubs = server.received.filter((m) => m.op === 'pub');
    assert.equal(pubs.length, 2);
    assert.equal(pubs[0].id, pubs[1].id);
  });

  test('publishes made while disconnected are queued up to a bound and sent on connect', async () => {
    const c = makeClient({ maxQueuedPublishes: 2 });
    const p1 = c.publish('acme/q', 1);
    const p2 = c.publish('acme/q', 2);
    await assert.rejects(c.publish('acme/q', 3), (e) => e.code === 'queue_full');
    c.connect();
    assert.equal((await p1).seq, 1);
    assert.equal((await p2).seq, 2);
  });

  test('a publish lost with its connection is sent again and resolves once', async () => {
    let n = 0;
    server.hooks.pub = (conn) => {
      if (++n > 1) return false;
      conn.ws.terminate(); // swallowed, then the connection dies
      return true;
    };
    const c = makeClient();
    c.connect();
    const ack = await c.publish('acme/r', 'once');
    assert.equal(ack.seq, 1);
    const pubs = server.received.filter((m) => m.op === 'pub');
    assert.equal(pubs.length, 2);
    assert.equal(pubs[0].id, pubs[1].id);
    assert.equal(pubs[0].ref, pubs[1].ref);
    assert.equal(c.stats.resent, 1);
    assert.equal(server.topic('acme/r').events.length, 1);
  });

  test('close rejects pending publishes with closed', async () => {
    server.hooks.pub = () => true;
    const c = makeClient();
    c.connect();
    const p = c.publish('acme/room', 1);
    await until(() => server.received.some((m) => m.op === 'pub'), 'pub sent');
    c.close();
    await assert.rejects(p, (e) => e.code === 'closed');
  });
});

describe('ephemeral events', () => {
  test('ephemeral events are delivered as they come, repeated ones too, without moving the position', async () => {
    const c = makeClient();
    const h = collector();
    const sub = c.subscribe('acme/typing', h);
    c.connect();
    await sub.ready;
    server.append('acme/typing', 'reliable');
    server.ephemeral('acme/typing', { typing: true });
    server.ephemeral('acme/typing', { typing: true });
    await until(() => h.got.length === 3, 'three events');
    assert.deepEqual(h.got.map((e) => e.lane), ['data', 'ephemeral', 'ephemeral']);
    assert.equal(h.got[1].seq, undefined);
    assert.deepEqual(sub.position, { epoch: EPOCH_A, seq: 1 });
    assert.equal(c.stats.duplicates, 0);
  });
});

describe('keepalive', () => {
  test('a server that stops answering is declared dead and replaced', async () => {
    const c = makeClient({ pingIntervalMs: 20, pongTimeoutMs: 30 });
    c.connect();
    await until(() => c.state === 'live', 'live');
    server.answerPings = false;
    await until(() => server.conns.length === 2, 'a new connection after missing pongs');
    const rec = c.states.find((s) => s.type === 'reconnecting');
    assert.equal(rec.code, 4000);
    assert.equal(rec.closeReason, 'no pong');
    assert.ok(server.conns[0].msgs.filter((m) => m.op === 'ping').length >= 1);
  });

  test('a server that answers pings keeps the connection', async () => {
    const c = makeClient({ pingIntervalMs: 10, pongTimeoutMs: 15 });
    c.connect();
    await until(() => server.received.filter((m) => m.op === 'ping').length >= 6, 'six pings');
    assert.equal(server.conns.length, 1);
    assert.equal(c.state, 'live');
  });
});

describe('connection state', () => {
  test('states go connecting, live, reconnecting, resumed, then a gap, then closed', async () => {
    const c = makeClient();
    const sub = c.subscribe('acme/s', () => {}, { after: { seq: 0 } });
    assert.equal(c.state, 'idle');
    c.connect();
    assert.equal(c.state, 'connecting');
    await sub.ready;
    await until(() => c.state === 'live', 'live');
    server.topic('acme/s').first = 3;
    server.append('acme/s', 1);
    server.append('acme/s', 2);
    server.append('acme/s', 3);
    await until(() => sub.position.seq === 3, 'position 3');
    server.last.ws.terminate();
    await until(() => c.states.some((s) => s.type === 'resumed'), 'resumed');
    server.topic('acme/s').events.push(...[4, 5].map((seq) => ({ op: 'ev', topic: 'acme/s', seq, epoch: EPOCH_A, lane: 'data', ts: 1, data: seq })));
    server.topic('acme/s').first = 6;
    server.last.ws.terminate();
    await until(() => c.states.filter((s) => s.type === 'resumed').length === 2, 'resumed twice');
    c.close();
    const types = c.states.map((s) => s.type);
    assert.deepEqual(types, ['connecting', 'live', 'reconnecting', 'resumed', 'reconnecting', 'resumed', 'gap', 'closed']);
    assert.equal(c.state, 'closed');
    assert.deepEqual(c.states.find((s) => s.type === 'gap'), { ...c.states.find((s) => s.type === 'gap'), from: 4, to: 5, reason: 'retention' });
    assert.deepEqual(c.states.find((s) => s.type === 'resumed').positions, { 'acme/s': { epoch: EPOCH_A, seq: 3 } });
  });

  test('close then connect resumes from the kept positions', async () => {
    const c = makeClient();
    const h = collector();
    c.subscribe('acme/k', h, { after: { seq: 0 } });
    server.append('acme/k', 1);
    c.connect();
    await until(() => h.got.length === 1, 'first');
    c.close();
    server.append('acme/k', 2);
    c.connect();
    await until(() => h.got.length === 2, 'second');
    assert.deepEqual(server.last.msgs.find((m) => m.op === 'sub').after, { epoch: EPOCH_A, seq: 1 });
  });
});

describe('backoff', () => {
  test('backoffDelay doubles up to the cap and jitters within the ceiling', () => {
    const o = { baseMs: 100, maxMs: 1000, jitter: 0.5 };
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, o, () => 1)), [100, 200, 400, 800, 1000, 1000]);
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, o, () => 0)), [50, 100, 200, 400, 500, 500]);
    assert.equal(backoffDelay(3, o, () => 0.5), 300);
    assert.equal(backoffDelay(1000, o, () => 1), 1000);
  });

  /** Timers the test fires by hand, and a WebSocket that never opens. */
  function harness(random) {
    const pending = new Map();
    let next = 0;
    const timers = {
      setTimeout: (fn, ms) => {
        pending.set(++next, { fn, ms });
        return next;
      },
      clearTimeout: (id) => pending.delete(id),
    };
    const sockets = [];
    class RefusedSocket {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        sockets.push(this);
        queueMicrotask(() => {
          this.readyState = 3;
          if (this.onclose) this.onclose({ code: 1006, reason: '' });
        });
      }
      close() {}
      send() {
        throw new Error('not open');
      }
    }
    const c = new CoordinatorClient({ url: 'ws://127.0.0.1:9/v1/ws', WebSocket: RefusedSocket, timers, random,
      reconnectBaseMs: 100, reconnectMaxMs: 1000 });
    const delays = [];
    c.onState((s) => {
      if (s.type === 'reconnecting') delays.push(s.delayMs);
    });
    const fireReconnect = async () => {
      await new Promise((r) => setImmediate(r));
      const last = [...pending.entries()].at(-1);
      assert.ok(last, 'a reconnect timer is pending');
      pending.delete(last[0]);
      last[1].fn();
    };
    return { c, delays, sockets, pending, fireReconnect };
  }

  test('reconnect delays grow, are capped and jittered by the injected random', async () => {
    const rs = [0, 1, 0.5, 0.25, 1, 0, 0.5];
    let i = 0;
    const h = harness(() => rs[i++ % rs.length]);
    h.c.connect();
    for (let k = 0; k < 7; k++) await h.fireReconnect();
    await new Promise((r) => setImmediate(r));
    // ceilings 100, 200, 400, 800, 1000...; delay = ceiling * (0.5 + 0.5 * random)
    assert.deepEqual(h.delays.slice(0, 7), [50, 200, 300, 500, 1000, 500, 750]);
    assert.equal(h.sockets.length, 8);
    assert.equal(h.c.state, 'reconnecting');
    h.c.close();
    assert.equal(h.pending.size, 0, 'close cancels every timer');
  });

  test('two clients with different randoms spread their retries', async () => {
    const a = harness(() => 0.1);
    const b = harness(() => 0.9);
    a.c.connect();
    b.c.connect();
    for (let k = 0; k < 3; k++) {
      await a.fireReconnect();
      await b.fireReconnect();
    }
    for (let k = 0; k < 3; k++) assert.notEqual(a.delays[k], b.delays[k]);
    a.c.close();
    b.c.close();
  });
});
