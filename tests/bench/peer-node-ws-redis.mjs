// A comparison peer for benchmarks (docs/bench-tools.md): Node's `ws` with fanout through
// Redis pub/sub, built the way a naive production setup would be. It speaks the subset of
// the coordinator's /v1/ws protocol that wsload uses:
//   {"op":"sub","topic":T}            -> {"op":"subscribed","topic":T,"epoch":"redis","head":N}
//   {"op":"unsub","topic":T}
//   {"op":"pub","ref":R,"topic":T,"type":..,"data":..}
//                                     -> {"op":"puback","ref":R,"topic":T,"seq":N,"duplicate":false}
//   {"op":"ping","ref":R}             -> {"op":"pong","ref":R}
// and delivers {"op":"ev","topic":T,"seq":N,"epoch":"redis","type":..,"lane":"data","ts":..,"data":..}.
// A publish runs one Lua script in Redis that INCRs the topic's seq and PUBLISHes the event
// with it, so seq is dense per topic and channel order is seq order. Nothing is stored:
// there is no replay, no idempotency and no durability; acks mean "Redis accepted it".
// Also serves GET /healthz and /readyz. Usage:
//   node tests/bench/peer-node-ws-redis.mjs --port 9001 [--host 127.0.0.1] [--redis-port 6379]
import http from 'node:http';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

// The packages live in tests/node_modules, beside this folder.
const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json'));
const { WebSocketServer } = require('ws');
const Redis = require('ioredis');

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '9001' },
    'redis-host': { type: 'string', default: '127.0.0.1' },
    'redis-port': { type: 'string', default: '6379' },
    // Faults, for checking that wsload notices them (tests/bench/selftest.sh): every Nth
    // delivery to a subscriber is dropped / sent twice / held back until the next one.
    'fault-drop-every': { type: 'string', default: '0' },
    'fault-dup-every': { type: 'string', default: '0' },
    'fault-swap-every': { type: 'string', default: '0' },
  },
});
const faultDrop = Number(args['fault-drop-every']);
const faultDup = Number(args['fault-dup-every']);
const faultSwap = Number(args['fault-swap-every']);
let deliveries = 0;
const loopback = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;
if (!loopback.test(args.host) || !loopback.test(args['redis-host'])) {
  console.error('peer: loopback addresses only');
  process.exit(2);
}

const redisOpts = { host: args['redis-host'], port: Number(args['redis-port']), lazyConnect: false };
const cmd = new Redis(redisOpts);
const sub = new Redis(redisOpts);
cmd.defineCommand('pubseq', {
  numberOfKeys: 2,
  lua: "local s = redis.call('INCR', KEYS[1]); redis.call('PUBLISH', KEYS[2], s .. '|' .. ARGV[1]); return s",
});

const topics = new Map(); // topic -> Set<ws>
const pendingSubs = new Map(); // topic -> Promise of the Redis SUBSCRIBE
const TOPIC_RE = /^[a-z0-9_-]{1,64}\/[A-Za-z0-9_.:/-]{1,200}$/;

sub.on('message', (channel, message) => {
  const set = topics.get(channel);
  if (!set || set.size === 0) return;
  const bar = message.indexOf('|');
  const seq = message.slice(0, bar);
  const ev = JSON.parse(message.slice(bar + 1));
  // Serialized once per event and sent to every local subscriber.
  const frame = `{"op":"ev","topic":${JSON.stringify(channel)},"seq":${seq},"epoch":"redis",` +
    `"type":${JSON.stringify(ev.type ?? 'event')},"lane":"data","ts":${ev.ts},"data":${JSON.stringify(ev.data ?? null)}}`;
  for (const ws of set) {
    if (ws.readyState !== 1) continue;
    deliveries++;
    if (faultDrop && deliveries % faultDrop === 0) continue;
    if (faultSwap && deliveries % faultSwap === 0 && !ws.held) {
      ws.held = frame;
      continue;
    }
    ws.send(frame);
    if (ws.held) {
      ws.send(ws.held);
      ws.held = null;
    }
    if (faultDup && deliveries % faultDup === 0) ws.send(frame);
  }
});

function send(ws, obj) {
  if (ws.readyState === 1) ws.send(JSON.stringify(obj));
}

async function subscribe(ws, topic) {
  let set = topics.get(topic);
  if (!set) {
    set = new Set();
    topics.set(topic, set);
  }
  set.add(ws);
  ws.topics.add(topic);
  if (!pendingSubs.has(topic)) pendingSubs.set(topic, sub.subscribe(topic));
  await pendingSubs.get(topic);
  const head = Number((await cmd.get(`seq:${topic}`)) ?? 0);
  send(ws, { op: 'subscribed', topic, epoch: 'redis', head });
}

function unsubscribe(ws, topic) {
  const set = topics.get(topic);
  ws.topics.delete(topic);
  if (!set) return;
  set.delete(ws);
  if (set.size === 0) {
    topics.delete(topic);
    pendingSubs.delete(topic);
    sub.unsubscribe(topic).catch(() => {});
  }
}

async function onMessage(ws, text) {
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    return send(ws, { op: 'error', code: 'bad_request', message: 'not JSON' });
  }
  const ref = m.ref;
  if (m.op === 'ping') return send(ws, { op: 'pong', ref });
  if ((m.op === 'sub' || m.op === 'unsub' || m.op === 'pub') && !TOPIC_RE.test(m.topic ?? '')) {
    return send(ws, { op: 'error', ref, code: 'bad_request', message: 'topic: expected tenant/room' });
  }
  if (m.op === 'sub') return subscribe(ws, m.topic);
  if (m.op === 'unsub') return unsubscribe(ws, m.topic);
  if (m.op === 'pub') {
    const ev = JSON.stringify({ type: m.type, ts: Date.now(), data: m.data });
    const seq = await cmd.pubseq(`seq:${m.topic}`, m.topic, ev);
    return send(ws, { op: 'puback', ref, topic: m.topic, seq, duplicate: false });
  }
  return send(ws, { op: 'error', ref, code: 'bad_request', message: `op: unknown "${m.op}"` });
}

const server = http.createServer((req, res) => {
  if (req.url === '/healthz' || req.url === '/readyz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end('ok\n');
  }
  res.writeHead(404).end();
});
const wss = new WebSocketServer({ server, path: '/v1/ws', perMessageDeflate: false, maxPayload: 1 << 20 });
wss.on('connection', (ws) => {
  ws.topics = new Set();
  ws.on('message', (data, isBinary) => {
    if (isBinary) return send(ws, { op: 'error', code: 'bad_request', message: 'text frames only' });
    onMessage(ws, data.toString()).catch((err) =>
      send(ws, { op: 'error', ref: null, code: 'internal', message: String(err.message ?? err) }));
  });
  ws.on('close', () => {
    for (const t of [...ws.topics]) unsubscribe(ws, t);
  });
  ws.on('error', () => {});
});

Promise.all([cmd.ping(), sub.ping()]).then(() => {
  server.listen(Number(args.port), args.host, () => {
    console.error(`peer: listening on ${args.host}:${args.port}, redis ${args['redis-host']}:${args['redis-port']}`);
  });
});

function stop() {
  wss.clients.forEach((ws) => ws.close(1001, 'going away'));
  server.close();
  cmd.disconnect();
  sub.disconnect();
  setTimeout(() => process.exit(0), 500).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
