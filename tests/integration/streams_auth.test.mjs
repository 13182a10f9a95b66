// Issue 3: tenant isolation and tokens (auth.mode jwt) against the real daemon. A token of
// tenant acme gets forbidden for everything of tenant other (every HTTP route, SSE, every
// WebSocket op), never data; missing, expired, forged and alg-none tokens get 401; scopes
// and room globs hold; a WebSocket does not outlive its token.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { mintToken, startDaemon, stopAll } from './lib/harness.mjs';

after(stopAll);

const SECRET = 'integration-secret-0123456789abcdef-xyz';
const now = () => Math.floor(Date.now() / 1000);

describe('tenant isolation with JWT', () => {
  let d;
  const acme = mintToken(SECRET, { tenant: 'acme', scope: 'subscribe publish' });
  const other = mintToken(SECRET, { tenant: 'other', scope: 'subscribe publish' });

  before(async () => {
    d = await startDaemon({ config: { auth: { mode: 'jwt', jwt_secret: SECRET } } });
    // tenant other has data that acme must never see
    const res = await d.postJson('/v1/streams/other/secret/events', { type: 's', data: 'TOP-SECRET' }, { token: other });
    assert.equal(res.status, 201, res.text);
  });
  after(() => d?.stop());

  test("every HTTP route of another tenant answers 403 forbidden with no data", async () => {
    const answers = [
      await d.postJson('/v1/streams/other/secret/events', { data: 'x' }, { token: acme }),
      await d.getAuth('/v1/streams/other/secret/events?after=0', acme),
      await d.getAuth('/v1/streams/other/secret/sse?after=0', acme),
      await d.getAuth('/v1/streams/other', acme),
      await d.getAuth('/v1/streams/other/does-not-exist/events', acme),
    ];
    for (const res of answers) {
      assert.equal(res.status, 403, res.text);
      assert.equal(res.json().error.code, 'forbidden');
      assert.ok(!res.text.includes('TOP-SECRET') && !res.text.includes('"seq"'), res.text);
    }
    // and the same token works on its own tenant
    assert.equal((await d.postJson('/v1/streams/acme/mine/events', { data: 1 }, { token: acme })).status, 201);
    assert.equal((await d.getAuth('/v1/streams/acme', acme)).status, 200);
    // the other tenant's topic got nothing from acme
    const theirs = (await d.getAuth('/v1/streams/other/secret/events?after=0', other)).json();
    assert.deepEqual(theirs.events.map((e) => e.data), ['TOP-SECRET']);
  });

  test('every WebSocket op on another tenant gets an error forbidden, and no event leaks', async () => {
    const ws = await d.ws('/v1/ws', { headers: { authorization: `Bearer ${acme}` } });
    ws.sendJson({ op: 'sub', topic: 'other/secret', after: { seq: 0 }, ref: 's1' });
    const e1 = await ws.nextJson();
    assert.deepEqual([e1.op, e1.code, e1.ref], ['error', 'forbidden', 's1']);
    ws.sendJson({ op: 'pub', topic: 'other/secret', data: 'x', ref: 'p1' });
    const e2 = await ws.nextJson();
    assert.deepEqual([e2.op, e2.code, e2.ref], ['error', 'forbidden', 'p1']);
    ws.sendJson({ op: 'pub', topic: 'other/secret', lane: 'ephemeral', data: 'x', ref: 'p2' });
    assert.equal((await ws.nextJson()).code, 'forbidden');
    // the ops on what a connection holds answer forbidden too, not not_found: another
    // tenant's topics are not there to be named
    const held = [
      { op: 'unsub', topic: 'other/secret', ref: 'u1' },
      { op: 'sub', topic: 'other/secret', group: 'g', ref: 'g1' },
      { op: 'unsub', topic: 'other/secret', group: 'g', ref: 'u2' },
      { op: 'ack', topic: 'other/secret', group: 'g', seq: 1, ref: 'a1' },
      { op: 'extend', topic: 'other/secret', group: 'g', seq: 1, ref: 'x1' },
      { op: 'nack', topic: 'other/secret', group: 'g', seq: 1, ref: 'n1' },
    ];
    for (const m of held) {
      ws.sendJson(m);
      const e = await ws.nextJson();
      assert.deepEqual([e.op, e.code, e.ref], ['error', 'forbidden', m.ref], JSON.stringify(m));
    }
    // its own tenant is fine, over the same connection
    ws.sendJson({ op: 'sub', topic: 'acme/mine', after: { seq: 0 } });
    assert.equal((await ws.nextJson()).op, 'subscribed');
    // a publish on other's topic by its owner reaches nobody of acme
    await d.postJson('/v1/streams/other/secret/events', { data: 'TOP-SECRET-2' }, { token: other });
    ws.sendJson({ op: 'ping', ref: 'end' });
    const rest = [];
    await ws.waitFor((m) => m.op === 'pong', { skipped: rest });
    assert.ok(rest.every((m) => m.topic === 'acme/mine'), JSON.stringify(rest));
    await ws.close();
  });

  test('missing, forged, alg-none and expired tokens get 401; the upgrade is refused', async () => {
    const forged = mintToken('another-secret-0123456789abcdef-xyz!', { tenant: 'acme', scope: 'admin' });
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const algNone = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ tenant: 'acme', exp: now() + 60 })}.`;
    const expired = mintToken(SECRET, { tenant: 'acme', exp: now() - 120 });
    const cases = [
      [undefined, /missing bearer token/],
      [forged, /signature/],
      [algNone, /alg must be HS256/],
      [expired, /expired/],
    ];
    for (const [tok, re] of cases) {
      const res = await d.getAuth('/v1/streams/acme/mine/events', tok);
      assert.equal(res.status, 401, res.text);
      assert.equal(res.json().error.code, 'unauthorized');
      assert.match(res.json().error.message, re);
      assert.equal(res.headers['www-authenticate'], 'Bearer');
      const url = tok ? `/v1/ws?access_token=${tok}` : '/v1/ws';
      await assert.rejects(d.ws(url), (err) => err.status === 401);
    }
    const garbled = await d.request('GET', '/v1/streams/acme', { headers: { authorization: 'Basic abc' } });
    assert.equal(garbled.status, 401);
  });

  test('a token in ?access_token= works for WebSocket and SSE, not for other HTTP routes', async () => {
    const ws = await d.ws(`/v1/ws?access_token=${acme}`);
    ws.sendJson({ op: 'ping', ref: 'q' });
    assert.deepEqual(await ws.nextJson(), { op: 'pong', ref: 'q' });
    await ws.close();
    const s = await d.sse(`/v1/streams/acme/mine/sse?after=0&access_token=${acme}`);
    assert.equal(s.status, 200);
    const ev = await s.waitFor((m) => m.id);
    assert.equal(ev.json.topic, 'acme/mine');
    s.close();
    assert.equal((await d.get(`/v1/streams/acme/mine/events?access_token=${acme}`)).status, 401);
  });

  const pick = (m) => [m.op, m.code, m.ref];

  test('scopes and room globs are enforced', async () => {
    const readOnly = mintToken(SECRET, { tenant: 'acme' }); // scope absent = subscribe
    const r1 = await d.postJson('/v1/streams/acme/mine/events', { data: 1 }, { token: readOnly });
    assert.equal(r1.status, 403);
    assert.equal((await d.getAuth('/v1/streams/acme/mine/events', readOnly)).status, 200);
    const chat = mintToken(SECRET, { tenant: 'acme', scope: ['subscribe', 'publish'], rooms: ['chat-*'] });
    assert.equal((await d.postJson('/v1/streams/acme/chat-1/events', { data: 1 }, { token: chat })).status, 201);
    assert.equal((await d.postJson('/v1/streams/acme/chat-1/x/events', { data: 1 }, { token: chat })).status, 403);
    assert.equal((await d.getAuth('/v1/streams/acme/mine/events', chat)).status, 403);
    assert.equal((await d.getAuth('/v1/streams/acme', chat)).status, 403); // listing needs the whole tenant
    const ws = await d.ws(`/v1/ws?access_token=${chat}`);
    ws.sendJson({ op: 'sub', topic: 'acme/mine', ref: 'r' });
    assert.equal((await ws.nextJson()).code, 'forbidden');
    ws.sendJson({ op: 'sub', topic: 'acme/chat-9', ref: 'ok' });
    assert.equal((await ws.nextJson()).op, 'subscribed');
    // the WebSocket keeps the token's rooms for every later op, publishes included
    ws.sendJson({ op: 'pub', topic: 'acme/mine', data: 1, ref: 'p1' });
    assert.deepEqual(pick(await ws.nextJson()), ['error', 'forbidden', 'p1']);
    ws.sendJson({ op: 'pub', topic: 'acme/chat-2', data: 1, ref: 'p2' });
    assert.deepEqual(pick(await ws.nextJson()), ['puback', undefined, 'p2']);
    await ws.close();
    // a token without rooms: the tenant and the scopes alone decide
    const ro = await d.ws(`/v1/ws?access_token=${readOnly}`);
    ro.sendJson({ op: 'pub', topic: 'acme/mine', data: 1, ref: 'p3' });
    assert.deepEqual(pick(await ro.nextJson()), ['error', 'forbidden', 'p3']);
    ro.sendJson({ op: 'sub', topic: 'other/mine', ref: 's3' });
    assert.deepEqual(pick(await ro.nextJson()), ['error', 'forbidden', 's3']);
    ro.sendJson({ op: 'sub', topic: 'acme/any/room', ref: 's4' });
    assert.equal((await ro.nextJson()).op, 'subscribed');
    await ro.close();
    // admin implies publish and subscribe, inside its own tenant only
    const admin = mintToken(SECRET, { tenant: 'acme', scope: ['admin'] });
    const ad = await d.ws(`/v1/ws?access_token=${admin}`);
    ad.sendJson({ op: 'pub', topic: 'acme/any/room', data: 1, ref: 'p4' });
    assert.deepEqual(pick(await ad.nextJson()), ['puback', undefined, 'p4']);
    ad.sendJson({ op: 'pub', topic: 'other/room', data: 1, ref: 'p5' });
    assert.deepEqual(pick(await ad.nextJson()), ['error', 'forbidden', 'p5']);
    await ad.close();
  });

  test('a WebSocket is closed with 1008 "token expired" when its token expires', async () => {
    // exp 2 s ahead: valid at the upgrade (even without the verifier's leeway)
    const short = mintToken(SECRET, { tenant: 'acme', exp: now() + 2 });
    const ws = await d.ws(`/v1/ws?access_token=${short}`);
    const t0 = Date.now();
    const closed = await ws.closed;
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, 'token expired');
    assert.ok(closed.at - t0 < 5000, `closed after ${closed.at - t0} ms`);
    const m = await d.metric('coord_stream_connections_closed_total{reason="token_expired"}');
    assert.ok(m >= 1);
  });

  test('the signature check covers the payload: a tenant swapped in a valid token is refused', async () => {
    const [h, , s] = acme.split('.');
    const p = Buffer.from(JSON.stringify({ tenant: 'other', scope: 'subscribe publish', exp: now() + 60 })).toString('base64url');
    const res = await d.getAuth('/v1/streams/other/secret/events', `${h}.${p}.${s}`);
    assert.equal(res.status, 401);
    assert.match(res.json().error.message, /signature/);
  });
});
