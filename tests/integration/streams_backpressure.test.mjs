// Issue 3: slow clients against the real daemon. A client that stops reading beside a fast
// one: the fast one keeps receiving promptly, the daemon's memory stays bounded, and the
// slow one gets everything (or a gap for what retention removed) once it reads again. A
// client (WebSocket or SSE) that stays unwritable past limits.slow_client_timeout_ms is
// closed, and loses nothing retained when it comes back.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startDaemon, stopAll, until } from './lib/harness.mjs';

after(stopAll);

const pad = 'x'.repeat(1000);

async function publishBatches(d, topic, from, n) {
  for (let done = 0; done < n; done += 250) {
    const batch = Array.from({ length: Math.min(250, n - done) }, (_, i) => ({ data: { i: from + done + i, pad } }));
    const res = await d.postJson(`/v1/streams/${topic}/events`, batch);
    assert.equal(res.status, 201, res.text);
  }
}

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

describe('a non-reading client beside a fast one', () => {
  test('the fast one stays prompt, memory stays bounded, the slow one catches up with a gap', async (t) => {
    const d = await startDaemon({
      config: {
        limits: { publish_rate: 0, topic_publish_rate: 0, slow_client_timeout_ms: 0 },
        streams: { retention: { max_events: 4000 } },
        // SQLite's page cache (32 MB by default) fills as the 20 MB are written and would
        // count in the RSS bound below, which is about what a non-reader costs
        store: { cache_mb: 2 },
      },
    });
    const topic = 'acme/firehose';
    const slow = await d.ws();
    const fast = await d.ws();
    for (const w of [slow, fast]) {
      w.sendJson({ op: 'sub', topic });
      assert.equal((await w.nextJson()).op, 'subscribed');
    }
    const total = 20000; // ~20 MB of events, far beyond the socket buffers of the slow one
    // The baseline, in the same daemon: the fast client alone on a topic of its own.
    const base = await d.ws();
    base.sendJson({ op: 'sub', topic: 'acme/baseline' });
    assert.equal((await base.nextJson()).op, 'subscribed');
    const baseLat = [];
    base.sock.on('message', (buf) => {
      const m = JSON.parse(buf.toString());
      if (m.op === 'ev') baseLat.push(Date.now() - m.ts);
    });
    await publishBatches(d, 'acme/baseline', 1, total);
    await until(() => baseLat.length === total, { timeoutMs: 20000, what: 'the baseline client to see everything' });
    await base.close();

    slow.sock._socket.pause();
    const latencies = [];
    let fastSeen = 0;
    fast.sock.on('message', (buf) => {
      const m = JSON.parse(buf.toString());
      if (m.op !== 'ev') return;
      latencies.push(Date.now() - m.ts);
      fastSeen = m.seq;
    });
    const rss0 = d.rssKb();
    await publishBatches(d, topic, 1, total);
    await until(() => fastSeen === total, { timeoutMs: 20000, what: 'the fast client to see everything' });
    const rss1 = d.rssKb();
    const lagMax = await d.metric('coord_stream_subscriber_lag_max_events');
    assert.ok(lagMax > 1000, `the slow client lags (${lagMax})`);
    // fast: every event, promptly (latency from the publish's server timestamp)
    assert.equal(latencies.length, total);
    const p99 = percentile(latencies, 0.99);
    const baseP99 = percentile(baseLat, 0.99);
    t.diagnostic(`fast p50 ${percentile(latencies, 0.5)} ms, p99 ${p99} ms (alone: p50 ${percentile(baseLat, 0.5)}, p99 ${baseP99}); RSS ${rss0} -> ${rss1} KiB; slow lag ${lagMax}`);
    // beside a non-reader, about as prompt as alone (loose: the machine is shared, and this
    // is a check, not a benchmark: docs/benchmarks.md measures it)
    assert.ok(p99 <= 4 * baseP99 + 50, `fast client p99 ${p99} ms beside a non-reader, ${baseP99} ms alone`);
    assert.ok(p99 < 500, `fast client p99 ${p99} ms`);
    // memory: the slow client costs no copy of what it has not read (20 MB were published):
    // the engine's frames stay at about one ring of a topic, and so does the RSS (except
    // under ASan, whose quarantine keeps freed memory)
    const frameBytes = await d.metric('coord_stream_frame_bytes');
    assert.ok(frameBytes < 2 * 1024 * 1024, `frames alive: ${frameBytes} bytes`);
    // (under 1 MiB here: the baseline already warmed SQLite's 2 MB cache and malloc's
    // arenas; holding what the non-reader did not take would add its 16,000 events, ~16 MB)
    if (!d.sanitized()) assert.ok(rss1 - rss0 < 6 * 1024, `RSS grew ${rss1 - rss0} KiB while 20 MB went past a non-reader`);

    // the slow one reads again: what is still retained, after a gap naming the rest
    slow.sock._socket.resume();
    const seqs = [];
    const gaps = [];
    await slow.waitFor((m) => {
      if (m.op === 'gap') gaps.push(m);
      if (m.op === 'ev') seqs.push(m.seq);
      return m.op === 'ev' && m.seq === total;
    }, { timeoutMs: 30000 });
    // in order with no silent hole: every jump is a gap naming exactly the skipped range
    // (more than one gap when the kernel still took some events while it was behind)
    for (let i = 1; i < seqs.length; i++) {
      const g = gaps.find((x) => x.from === seqs[i - 1] + 1);
      assert.ok(seqs[i] === seqs[i - 1] + 1 || (g && seqs[i] === g.to + 1), `hole between ${seqs[i - 1]} and ${seqs[i]}`);
    }
    assert.ok(gaps.length >= 1 && gaps.every((g) => g.reason === 'retention'), JSON.stringify(gaps));
    assert.ok(seqs.filter((x) => x > total - 4000).length === 4000, 'the whole retained tail arrived');
    assert.equal(new Set(seqs).size, seqs.length, 'no duplicates');
    await slow.close();
    await fast.close();
    await d.stop();
  });
});

describe('slow-client deadline', () => {
  test('an SSE stream whose socket takes nothing past slow_client_timeout_ms is cut; Last-Event-ID resumes it', async (t) => {
    const d = await startDaemon({
      config: { limits: { publish_rate: 0, topic_publish_rate: 0, slow_client_timeout_ms: 1000 } },
    });
    const topic = 'acme/sse-deadline';
    const s = await d.sse(`/v1/streams/${topic}/sse`);
    assert.equal(s.status, 200);
    s.req.socket.pause(); // reads nothing more from the kernel
    await publishBatches(d, topic, 1, 8000);
    const t0 = Date.now();
    await until(async () => (await d.metric('coord_stream_connections_closed_total{reason="slow_client"}')) >= 1, {
      timeoutMs: 8000,
      what: 'the slow SSE client to be closed',
    });
    t.diagnostic(`closed ${Date.now() - t0} ms after the last batch was accepted`);
    const line = await d.waitForLog((e) => e.msg === 'closing a slow client');
    assert.equal(line.transport, 'sse', JSON.stringify(line));
    // it reads what reached it, then finds the stream cut (no final chunk)
    s.req.socket.resume();
    await s.closed;
    const ids = [...s.body.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.ok(ids.length > 0, 'some events reached it before its socket filled');
    assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => i + 1));
    const last = ids.at(-1);
    assert.ok(last < 8000, `it had not received everything (${last})`);
    // Last-Event-ID picks up right after the last event it saw
    const back = await d.sse(`/v1/streams/${topic}/sse`, { headers: { 'last-event-id': String(last) } });
    const first = await back.waitFor((m) => m.id);
    assert.equal(Number(first.id), last + 1);
    back.req.destroy();
    await d.stop();
  });

  test('a client unwritable past slow_client_timeout_ms is closed; it resumes without loss', async (t) => {
    const d = await startDaemon({
      config: { limits: { publish_rate: 0, topic_publish_rate: 0, slow_client_timeout_ms: 1000 } },
    });
    const topic = 'acme/deadline';
    const slow = await d.ws();
    const fast = await d.ws();
    let fastLast = 0;
    for (const w of [slow, fast]) {
      w.sendJson({ op: 'sub', topic });
      await w.nextJson();
    }
    fast.sock.on('message', (buf) => {
      const m = JSON.parse(buf.toString());
      if (m.op === 'ev') fastLast = m.seq;
    });
    slow.sock._socket.pause();
    await publishBatches(d, topic, 1, 8000);
    const t0 = Date.now();
    await until(async () => (await d.metric('coord_stream_connections_closed_total{reason="slow_client"}')) >= 1, {
      timeoutMs: 8000,
      what: 'the slow client to be closed',
    });
    const ms = Date.now() - t0;
    t.diagnostic(`closed ${ms} ms after the last batch was accepted`);
    assert.ok(ms < 5000, `closed ${ms} ms after the socket choked`);
    await until(() => fastLast === 8000, { what: 'the fast client to be unaffected' });
    // the slow client reads what reached it, then finds the connection closed
    slow.sock._socket.resume();
    let last = 0;
    slow.sock.on('message', (buf) => {
      const m = JSON.parse(buf.toString());
      if (m.op === 'ev') {
        assert.equal(m.seq, last + 1);
        last = m.seq;
      }
    });
    await slow.closed;
    assert.ok(last < 8000, `it had not received everything (${last})`);
    // it comes back and resumes after the last seq it saw: nothing retained is lost
    const back = await d.ws();
    back.sendJson({ op: 'sub', topic, after: { seq: last } });
    assert.equal((await back.nextJson()).op, 'subscribed');
    const rest = [];
    await back.waitFor((m) => {
      if (m.op === 'ev') rest.push(m.seq);
      return m.seq === 8000;
    }, { timeoutMs: 20000 });
    assert.deepEqual(rest, Array.from({ length: 8000 - last }, (_, i) => last + i + 1));
    await back.close();
    await fast.close();
    await d.stop();
  });
});
