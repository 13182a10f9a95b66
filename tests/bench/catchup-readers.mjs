// Slow subscribers catching up, for run-topic-churn.sh: READERS WebSocket connections,
// each in turn taking one of the tenant "bench" topics that hold events (listed once over
// HTTP), asking for its head (a live subscription), then replaying the BEHIND events
// before that head (a subscription after head - BEHIND in the same epoch), which the
// daemon reads from its store once the ring no longer holds them; then it unsubscribes,
// pauses PAUSE ms and takes the next topic. Runs in a process of its own so that its
// parsing does not delay the prober's pings. Prints one JSON object: catch-ups done,
// events read, the time of each catch-up (ms: count, p50, p99, max) and gaps seen.
//
// usage: node tests/bench/catchup-readers.mjs <ws://127.0.0.1:PORT/v1/ws> <seconds> <readers> [behind] [pause ms]
import http from 'node:http';
import { openWs, summary } from './probe-lib.mjs';

const [url, seconds, readers, behind, pause] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]),
  Number(process.argv[5] ?? 500), Number(process.argv[6] ?? 50)];
if (!/^ws:\/\/(127\.|localhost[:/])/.test(url || '') || !(seconds > 0 && seconds <= 600) || !(readers >= 1 && readers <= 16) ||
    !(behind >= 1 && behind <= 100000) || !(pause >= 0 && pause <= 10000)) {
  console.error('usage: catchup-readers.mjs <ws://127.x loopback url> <seconds 0-600> <readers 1-16> [behind 1-100000] [pause ms 0-10000]');
  process.exit(2);
}
const { hostname, port } = new URL(url);
const list = await new Promise((resolve, reject) => {
  http.get({ host: hostname, port, path: '/v1/streams/bench?limit=1000' }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`list: ${res.statusCode}`))));
  }).on('error', reject);
});
const topics = list.topics.filter((t) => t.head > behind).map((t) => t.topic);
if (!topics.length) throw new Error(`no bench topic holds more than ${behind} events`);

let done = 0, events = 0, gaps = 0, stop = false;
const times = [];
for (let r = 0; r < readers; r++) {
  const w = await openWs(url);
  let i = r, topic = null, phase = 0, until = 0, t0 = 0;
  const next = () => {
    if (stop) return;
    topic = topics[i++ % topics.length];
    phase = 0;
    w.send(JSON.stringify({ op: 'sub', topic }));
  };
  w.on('message', (m) => {
    const o = JSON.parse(m);
    if (o.topic !== topic) return;
    if (o.op === 'subscribed' && phase === 0) { // the head; now replay what lies before it
      phase = 1;
      w.send(JSON.stringify({ op: 'unsub', topic }));
      t0 = performance.now();
      until = o.head;
      w.send(JSON.stringify({ op: 'sub', topic, after: { epoch: o.epoch, seq: o.head - behind } }));
      return;
    }
    if (phase !== 1) return;
    if (o.op === 'gap') gaps++;
    if (o.op === 'ev') events++;
    if ((o.op === 'ev' && o.seq >= until) || (o.op === 'gap' && o.to >= until)) {
      times.push(performance.now() - t0);
      done++;
      phase = 2;
      w.send(JSON.stringify({ op: 'unsub', topic }));
      setTimeout(next, pause);
    }
  });
  next();
}
setTimeout(() => {
  stop = true;
  console.log(JSON.stringify({ readers, behind, pause_ms: pause, done, events, gaps, catchup_ms: summary(times) }));
  process.exit(0);
}, seconds * 1000);
