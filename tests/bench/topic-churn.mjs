// The topic-churn prober of run-topic-churn.sh: over one WebSocket a ping every 5 ms
// (the daemon's loop: a pong is only written once the loop reads the ping), over another
// CREATES subscriptions per second, each to a topic nobody used before, unsubscribed as
// soon as it is confirmed. Prints one JSON object: the ping round trips and the
// subscribe round trips (ms: count, p50, p99, max) and how many went unanswered.
//
// usage: node tests/bench/topic-churn.mjs <ws://127.0.0.1:PORT/v1/ws> <seconds> <creates/s>
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// The packages live in tests/node_modules, beside this folder.
const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json'));
const WebSocket = require('ws');

const [url, seconds, creates] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
if (!/^ws:\/\/(127\.|localhost[:/])/.test(url || '') || !(seconds > 0 && seconds <= 600) || !(creates >= 0 && creates <= 1000)) {
  console.error('usage: topic-churn.mjs <ws://127.x loopback url> <seconds 0-600> <creates/s 0-1000>');
  process.exit(2);
}

const summary = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const at = (p) => (s.length ? Number(s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2)) : null);
  return { count: s.length, p50: at(0.5), p99: at(0.99), max: at(1) };
};
const open = (u) => new Promise((resolve, reject) => {
  const w = new WebSocket(u);
  w.once('open', () => resolve(w));
  w.once('error', reject);
});

const pinger = await open(url), subber = await open(url);
const pings = [], subs = [], pendingPings = new Map(), pendingSubs = new Map();
pinger.on('message', (m) => {
  const o = JSON.parse(m);
  if (o.op !== 'pong' || !pendingPings.has(o.ref)) return;
  pings.push(performance.now() - pendingPings.get(o.ref));
  pendingPings.delete(o.ref);
});
subber.on('message', (m) => {
  const o = JSON.parse(m);
  if (o.op !== 'subscribed' || !pendingSubs.has(o.topic)) return;
  subs.push(performance.now() - pendingSubs.get(o.topic));
  pendingSubs.delete(o.topic);
  subber.send(JSON.stringify({ op: 'unsub', topic: o.topic }));
});
const tag = `${process.pid}-${Date.now().toString(36)}`;
let n = 0, k = 0;
const pingTimer = setInterval(() => {
  const ref = `p${n++}`;
  pendingPings.set(ref, performance.now());
  pinger.send(JSON.stringify({ op: 'ping', ref }));
}, 5);
const subTimer = creates > 0 ? setInterval(() => {
  const topic = `bench/churn-${tag}-${k++}`;
  pendingSubs.set(topic, performance.now());
  subber.send(JSON.stringify({ op: 'sub', topic }));
}, 1000 / creates) : null;
setTimeout(() => {
  clearInterval(pingTimer);
  if (subTimer) clearInterval(subTimer);
  setTimeout(() => { // a second for the last answers
    console.log(JSON.stringify({ creates_per_s: creates, seconds, ping_ms: summary(pings), subscribe_ms: summary(subs),
      unanswered: pendingPings.size + pendingSubs.size }));
    process.exit(0);
  }, 1000);
}, seconds * 1000);
