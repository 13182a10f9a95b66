// Issue 3 ("Metrics (Prometheus)"): every stage's metric on /metrics moves as a user would
// read it: events published by lane, publish latency to durable, fanout deliveries,
// delivery latency from durable to write, subscriber lag, ephemeral drops, gaps,
// rate-limited publishes, active subscriptions and commit batch sizes. Each family is
// read before and after the traffic that must move it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startDaemon, stopAll, until } from './lib/harness.mjs';

after(stopAll);

/** Every sample of /metrics as name{labels} -> value, and the TYPE of each family. */
async function scrape(d) {
  const text = (await d.get('/metrics')).text;
  const samples = new Map();
  const types = new Map();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1], t[2]);
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    samples.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return { samples, types, get: (k) => samples.get(k) ?? 0 };
}

describe('stream metrics', () => {
  let d;
  before(async () => {
    d = await startDaemon({
      config: {
        // a small retention so that a gap can be made; a tight topic limit for a 429
        streams: { retention: { max_events: 3 } },
        limits: { topic_publish_rate: 1, topic_publish_burst: 4 },
      },
    });
  });
  after(() => d?.stop());

  test('each stage and lane is counted where the issue names it', async () => {
    const m0 = await scrape(d);
    const types = {
      coord_stream_events_published_total: 'counter',
      coord_stream_publish_to_durable_seconds: 'histogram',
      coord_stream_fanout_deliveries_total: 'counter',
      coord_stream_deliveries_total: 'counter',
      coord_stream_durable_to_write_seconds: 'histogram',
      coord_stream_subscriber_lag_max_events: 'gauge',
      coord_stream_subscriber_lag_events: 'gauge',
      coord_stream_ephemeral_drops_total: 'counter',
      coord_stream_gaps_total: 'counter',
      coord_stream_rate_limited_total: 'counter',
      coord_stream_subscriptions: 'gauge',
      coord_stream_commit_batch_events: 'histogram',
    };
    for (const [name, type] of Object.entries(types)) assert.equal(m0.types.get(name), type, name);

    // one subscriber on a topic; three data events and one control event are published to it
    const ws = await d.ws();
    ws.sendJson({ op: 'sub', topic: 'acme/m' });
    assert.equal((await ws.nextJson()).op, 'subscribed');
    assert.equal((await scrape(d)).get('coord_stream_subscriptions'), m0.get('coord_stream_subscriptions') + 1);
    const res = await d.postJson('/v1/streams/acme/m/events', [
      { data: 1 },
      { data: 2 },
      { lane: 'control', data: 'c' },
    ]);
    assert.equal(res.status, 201, res.text);
    assert.equal((await d.postJson('/v1/streams/acme/m/events', { data: 3 })).status, 201);
    const seen = await ws.take(4);
    assert.deepEqual(seen.map((e) => [e.op, e.seq]), [['ev', 1], ['ev', 2], ['ev', 3], ['ev', 4]]);
    // an ephemeral to a topic nobody reads is dropped at ingress
    assert.equal((await d.postJson('/v1/streams/acme/nobody/events', { lane: 'ephemeral', data: 0 })).status, 201);
    // a batch of 5 on a fresh topic: its burst of 4 takes the first four, the fifth is
    // limited (one request, so no token comes back in between, however slow the machine)
    const five = Array.from({ length: 5 }, (_, i) => ({ data: i }));
    const limited = await d.postJson('/v1/streams/acme/rl/events', five);
    assert.equal(limited.status, 429, limited.text);
    assert.equal(limited.json().error.index, 4);

    const m1 = await scrape(d);
    const delta = (k) => m1.get(k) - m0.get(k);
    assert.equal(delta('coord_stream_events_published_total{lane="data"}'), 3 + 4);
    assert.equal(delta('coord_stream_events_published_total{lane="control"}'), 1);
    assert.equal(delta('coord_stream_publish_to_durable_seconds_count'), 4 + 4);
    assert.ok(delta('coord_stream_publish_to_durable_seconds_sum') > 0);
    assert.equal(delta('coord_stream_fanout_deliveries_total'), 4);
    assert.equal(delta('coord_stream_deliveries_total{transport="ws",lane="data"}'), 3);
    assert.equal(delta('coord_stream_deliveries_total{transport="ws",lane="control"}'), 1);
    assert.equal(delta('coord_stream_durable_to_write_seconds_count{transport="ws"}'), 4);
    assert.equal(delta('coord_stream_ephemeral_drops_total{stage="ingress"}'), 1);
    assert.equal(delta('coord_stream_rate_limited_total{limit="topic"}'), 1);
    assert.equal(delta('coord_stream_rate_limited_total{limit="tenant"}'), 0);
    assert.ok(delta('coord_stream_commit_batch_events_count') >= 1);
    assert.ok(delta('coord_stream_commit_batch_events_sum') >= 8);
    // the subscriber got everything: nothing lags
    assert.equal(m1.get('coord_stream_subscriber_lag_max_events'), 0);

    // a reader asking for what retention dropped gets a gap, and it is counted
    // (a fresh topic has its own burst of 4; retention keeps the newest 3)
    const four = [{ data: 1 }, { data: 2 }, { data: 3 }, { data: 4 }];
    assert.equal((await d.postJson('/v1/streams/acme/g/events', four)).status, 201);
    const late = await d.ws();
    late.sendJson({ op: 'sub', topic: 'acme/g', after: { seq: 0 } });
    const gap = await late.waitFor((m) => m.op === 'gap');
    assert.deepEqual([gap.from, gap.to, gap.reason], [1, 1, 'retention']);
    const m2 = await scrape(d);
    const gapKey = 'coord_stream_gaps_total{reason="retention"}';
    assert.equal(m2.get(gapKey) - m1.get(gapKey), 1);
    await late.close();
    await ws.close();
    await until(async () => (await scrape(d)).get('coord_stream_subscriptions') === m0.get('coord_stream_subscriptions'), {
      what: 'the subscriptions to end with their connections',
    });
  });
});
