// The prober of run-topic-churn.sh: over one WebSocket a ping every 5 ms (the daemon's
// loop: a pong is only written once the loop reads the ping), over another CREATES
// subscriptions per second, each to a topic nobody used before, unsubscribed as soon as
// it is confirmed, and RUNS workflow runs per second started over HTTP (POST
// /v1/workflows/churn/runs: the daemon must have a workflow named churn). Prints one JSON
// object: the ping, subscribe and run-start round trips (ms: count, p50, p99, max) and
// how many went unanswered or failed.
//
// usage: node tests/bench/topic-churn.mjs <ws://127.0.0.1:PORT/v1/ws> <seconds> <creates/s> [runs/s]
import http from 'node:http';
import { openWs as open, summary } from './probe-lib.mjs';

const [url, seconds, creates, runs] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]),
  Number(process.argv[5] ?? 0)];
if (!/^ws:\/\/(127\.|localhost[:/])/.test(url || '') || !(seconds > 0 && seconds <= 600) || !(creates >= 0 && creates <= 1000) ||
    !(runs >= 0 && runs <= 1000)) {
  console.error('usage: topic-churn.mjs <ws://127.x loopback url> <seconds 0-600> <creates/s 0-1000> [runs/s 0-1000]');
  process.exit(2);
}


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
const { hostname, port } = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const starts = [];
let startFailures = 0;
const startRun = () => {
  const t0 = performance.now();
  const req = http.request({ host: hostname, port, path: '/v1/workflows/churn/runs', method: 'POST', agent,
    headers: { 'content-type': 'application/json' } }, (res) => {
    res.resume();
    res.on('end', () => (res.statusCode === 202 ? starts.push(performance.now() - t0) : startFailures++));
  });
  req.on('error', () => startFailures++);
  req.end('{}');
};
const runTimer = runs > 0 ? setInterval(startRun, 1000 / runs) : null;
const subTimer = creates > 0 ? setInterval(() => {
  const topic = `bench/churn-${tag}-${k++}`;
  pendingSubs.set(topic, performance.now());
  subber.send(JSON.stringify({ op: 'sub', topic }));
}, 1000 / creates) : null;
setTimeout(() => {
  clearInterval(pingTimer);
  if (subTimer) clearInterval(subTimer);
  if (runTimer) clearInterval(runTimer);
  setTimeout(() => { // a second for the last answers
    console.log(JSON.stringify({ creates_per_s: creates, runs_per_s: runs, seconds, ping_ms: summary(pings),
      subscribe_ms: summary(subs), run_start_ms: summary(starts), unanswered: pendingPings.size + pendingSubs.size,
      run_start_failures: startFailures }));
    process.exit(0);
  }, 1000);
}, seconds * 1000);
