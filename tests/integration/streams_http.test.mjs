// Issue 3: the streams HTTP API against the real daemon: publish (single and batch, 201
// once durable), read with after/limit and gap information, list a tenant's topics, and
// the errors (JSON {"error":{"code","message"}} naming the field).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startDaemon, stopAll } from './lib/harness.mjs';

after(stopAll);

describe('streams over HTTP', () => {
  let d;
  before(async () => {
    d = await startDaemon({ config: { streams: { retention: { max_events: 10 } } } });
  });
  after(() => d?.stop());

  test('POST publishes one event and answers 201 with seq, epoch and duplicate once durable', async () => {
    const res = await d.postJson('/v1/streams/acme/room-1/events', { id: 'a1', type: 'note', data: { text: 'hi' } });
    assert.equal(res.status, 201, res.text);
    const body = res.json();
    assert.deepEqual(Object.keys(body).sort(), ['duplicate', 'epoch', 'seq']);
    assert.equal(body.seq, 1);
    assert.equal(body.duplicate, false);
    assert.match(body.epoch, /^[0-9a-f]{16}$/);
    const again = await d.postJson('/v1/streams/acme/room-1/events', { id: 'a1', type: 'note', data: 'other' });
    assert.equal(again.status, 201);
    assert.deepEqual(again.json(), { seq: 1, epoch: body.epoch, duplicate: true });
  });

  test('POST of an array publishes a batch in order and answers an array of results', async () => {
    const res = await d.postJson('/v1/streams/acme/batch/events', [
      { type: 'a', data: 1 },
      { type: 'b', lane: 'control', data: 2 },
      { type: 'c', lane: 'ephemeral', data: 3 },
      { id: 'x', data: null },
    ]);
    assert.equal(res.status, 201, res.text);
    const r = res.json();
    assert.deepEqual(r.map((x) => x.seq), [1, 2, null, 3]);
    assert.ok(r.every((x) => x.duplicate === false && x.epoch === r[0].epoch));
  });

  test('GET events returns what is retained after a seq, with limit, head and paging hints', async () => {
    const batch = Array.from({ length: 6 }, (_, i) => ({ type: 't', data: { i: i + 1 } }));
    assert.equal((await d.postJson('/v1/streams/acme/read/events', batch)).status, 201);
    const all = (await d.get('/v1/streams/acme/read/events?after=0')).json();
    assert.equal(all.topic, 'acme/read');
    assert.equal(all.head, 6);
    assert.equal(all.first, 1);
    assert.equal(all.gap, null);
    assert.equal(all.more, false);
    assert.deepEqual(all.events.map((e) => [e.op, e.seq, e.data.i]), [1, 2, 3, 4, 5, 6].map((i) => ['ev', i, i]));
    const page = (await d.get('/v1/streams/acme/read/events?after=2&limit=3')).json();
    assert.deepEqual(page.events.map((e) => e.seq), [3, 4, 5]);
    assert.equal(page.next_after, 5);
    assert.equal(page.more, true);
    const rest = (await d.get(`/v1/streams/acme/read/events?after=${page.next_after}`)).json();
    assert.deepEqual(rest.events.map((e) => e.seq), [6]);
  });

  test('GET events names the lost range in gap when retention removed it', async () => {
    const batch = Array.from({ length: 15 }, (_, i) => ({ data: i + 1 }));
    assert.equal((await d.postJson('/v1/streams/acme/old/events', batch)).status, 201);
    const res = (await d.get('/v1/streams/acme/old/events?after=0&limit=100')).json();
    assert.deepEqual(res.gap, { from: 1, to: 5, reason: 'retention' });
    assert.deepEqual(res.events.map((e) => e.seq), [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  });

  test('GET /v1/streams/{tenant} lists its topics with head and subscriber counts', async () => {
    const ws = await d.ws();
    ws.sendJson({ op: 'sub', topic: 'acme/room-1' });
    await ws.nextJson();
    const res = await d.get('/v1/streams/acme');
    assert.equal(res.status, 200);
    const body = res.json();
    assert.equal(body.tenant, 'acme');
    const room = body.topics.find((t) => t.topic === 'acme/room-1');
    assert.deepEqual([room.head, room.subscribers], [1, 1]);
    assert.ok(body.topics.every((t) => t.topic.startsWith('acme/')));
    assert.deepEqual((await d.get('/v1/streams/nobody')).json(), { tenant: 'nobody', topics: [], more: false });
    await ws.close();
  });

  test('GET /v1/streams/{tenant} pages with limit and after, and says when there is more', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await d.postJson(`/v1/streams/pager/t-${i}/events`, { data: i })).status, 201);
    const seen = [];
    let after = null;
    for (let page = 0; page < 5; page++) {
      const q = after ? `?limit=2&after=${encodeURIComponent(after)}` : '?limit=2';
      const body = (await d.get(`/v1/streams/pager${q}`)).json();
      seen.push(...body.topics.map((t) => t.topic));
      if (!body.more) {
        assert.equal(body.next_after, undefined);
        break;
      }
      assert.equal(body.next_after, body.topics.at(-1).topic);
      after = body.next_after;
    }
    assert.deepEqual(seen, ['pager/t-0', 'pager/t-1', 'pager/t-2', 'pager/t-3', 'pager/t-4']);
    // the room alone works as `after` too; one of another tenant is refused
    const byRoom = (await d.get('/v1/streams/pager?after=t-3')).json();
    assert.deepEqual(byRoom.topics.map((t) => t.topic), ['pager/t-4']);
    const other = await d.get('/v1/streams/pager?after=acme/x');
    assert.equal(other.status, 200); // a room "acme/x" of pager: rooms may hold '/'
    for (const bad of ['', '%20', 'a'.repeat(300)]) {
      const res = await d.get(`/v1/streams/pager?after=${bad}`);
      assert.equal(res.status, 400, bad);
      assert.match(res.json().error.message, /^after: must be a topic of tenant pager/);
    }
  });

  test('bad input gets 400 with an error naming the field; unknown topics 404; other methods 405', async () => {
    const cases = [
      ['{"data":', /^body: invalid JSON at line 1/],
      ['[]', /^body: a batch holds 1 to 1000 events/],
      ['"x"', /^body: must be an object/],
      ['{"lane":"fast"}', /^lane: must be one of/],
      ['[{"data":1},{"type":7}]', /^\[1\]\.type: must be a string/],
      ['{"id":"a","id":"b"}', /^body: invalid JSON.*duplicate/],
      [JSON.stringify({ id: 'x'.repeat(300) }), /^id/],
    ];
    for (const [body, re] of cases) {
      const res = await d.postJson('/v1/streams/acme/bad/events', body);
      assert.equal(res.status, 400, `${body}: ${res.text}`);
      assert.equal(res.json().error.code, 'bad_request');
      assert.match(res.json().error.message, re, body);
    }
    const bad = await d.postJson('/v1/streams/Acme/bad/events', { data: 1 });
    assert.equal(bad.status, 400);
    assert.match(bad.json().error.message, /^tenant/);
    const room = await d.postJson('/v1/streams/acme/b%20d/events', { data: 1 });
    assert.equal(room.status, 400);
    assert.match(room.json().error.message, /room/);
    assert.equal((await d.get('/v1/streams/acme/read/events?after=x')).status, 400);
    assert.match((await d.get('/v1/streams/acme/read/events?limit=0')).json().error.message, /^limit/);
    const missing = await d.get('/v1/streams/acme/never-published/events');
    assert.equal(missing.status, 404);
    assert.equal(missing.json().error.code, 'not_found');
    assert.equal((await d.request('DELETE', '/v1/streams/acme/read/events')).status, 405);
  });

  test('an event over the size limit gets 413 too_large', async () => {
    const res = await d.postJson('/v1/streams/acme/big/events', { data: 'x'.repeat(70000) });
    assert.equal(res.status, 413, res.text);
    assert.equal(res.json().error.code, 'too_large');
  });
});
