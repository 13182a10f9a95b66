// The JavaScript client (examples/web/coordinator-client.js, on the `ws` package) against
// the real daemon: subscribe, publish with acknowledgements, and resume across a SIGTERM
// drain and a restart on the same address with no loss and no duplicates.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { WebSocket, freePort, mintToken, startDaemon, stopAll, until } from './lib/harness.mjs';
import { CoordinatorClient } from '../../examples/web/coordinator-client.js';

after(stopAll);

describe('the JS client against the daemon', () => {
  test('subscribes, publishes with acks and receives its events once, in order (JWT)', async () => {
    const secret = 'client-test-secret-0123456789abcdef';
    const d = await startDaemon({ config: { auth: { mode: 'jwt', jwt_secret: secret } } });
    const token = mintToken(secret, { tenant: 'acme', scope: 'subscribe publish' });
    const client = new CoordinatorClient({ url: d.wsUrl, token: async () => token, WebSocket });
    const errors = [];
    client.onError((e) => errors.push(e));
    const got = [];
    const sub = client.subscribe('acme/client-basic', (ev) => got.push(ev), { after: { seq: 0 } });
    client.connect();
    const ready = await sub.ready;
    assert.equal(ready.topic, 'acme/client-basic');
    const acks = [];
    for (let i = 1; i <= 20; i++) acks.push(await client.publish('acme/client-basic', { i }, { type: 'n' }));
    assert.deepEqual(acks.map((a) => a.seq), Array.from({ length: 20 }, (_, i) => i + 1));
    assert.ok(acks.every((a) => a.duplicate === false && a.epoch === ready.epoch));
    await until(() => got.length === 20, { what: '20 events' });
    assert.deepEqual(got.map((e) => e.data.i), Array.from({ length: 20 }, (_, i) => i + 1));
    // a publish the server refuses rejects with its code
    await assert.rejects(client.publish('other/x', 1), (e) => e.code === 'forbidden');
    client.close();
    assert.deepEqual(errors, []);
    await d.stop();
  });

  test('resumes across a drain and a restart on the same address: no loss, no duplicates', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'coord-client-'));
    const port = await freePort();
    const cfg = { data_dir: dataDir, shutdown: { drain_ms: 3000, grace_ms: 500 } };
    try {
      const d1 = await startDaemon({ port, config: cfg });
      const client = new CoordinatorClient({
        url: `ws://127.0.0.1:${port}/v1/ws`,
        WebSocket,
        reconnectBaseMs: 100,
        publishTimeoutMs: 30000,
      });
      const states = [];
      client.onState((s) => states.push(s.type));
      const got = [];
      const sub = client.subscribe('acme/client-resume', (ev) => got.push(ev.seq), { after: { seq: 0 } });
      client.connect();
      await sub.ready;
      const total = 200;
      const pubs = [];
      let d2 = null;
      for (let i = 1; i <= total; i++) {
        pubs.push(client.publish('acme/client-resume', { i }));
        if (i === 80) {
          await Promise.all(pubs); // some history first
          d1.signal('SIGTERM');
          await until(() => states.includes('reconnecting'), { what: 'the client to follow the drain' });
          assert.deepEqual(await d1.exited, { code: 0, signal: null });
          await d1.cleanup();
          d2 = await startDaemon({ port, config: cfg });
        }
      }
      const acks = await Promise.all(pubs);
      const seqs = acks.map((a) => a.seq).sort((a, b) => a - b);
      assert.deepEqual(seqs, Array.from({ length: total }, (_, i) => i + 1), 'each publish made exactly once');
      await until(() => got.length >= total, { timeoutMs: 10000, what: 'every event delivered' });
      assert.deepEqual(got, Array.from({ length: total }, (_, i) => i + 1));
      assert.ok(states.includes('resumed'), states.join(','));
      assert.equal(client.stats.gaps, 0);
      client.close();
      await d2.stop();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
