#!/usr/bin/env node
// An external agent for the coordinator in one short file (docs/agents-external.md).
//
// It joins a consumer group on a coordination topic over the WebSocket protocol and, for
// each `task` event the group hands it: watches the task's reply topic (to see
// task.closed when the run is cancelled or the task was given up), claims the task
// (task.heartbeat on reply_to), streams its answer word by word (task.partial) while
// heartbeating (task.heartbeat, and `extend` of the group lease), returns a result
// (task.result) and only then acknowledges the group delivery. Acking last means a
// member that dies mid-task gives the task back to the group at once (another member
// takes it over) and that `max_inflight` bounds the tasks it works on. The "work" is a
// deterministic stand-in so the example runs offline: a few findings about input.topic.
//
//   node examples/agents/node/agent.mjs --url ws://127.0.0.1:8080/v1/ws \
//        --topic default/tasks/research --group researchers
//
// Options: --url, --topic, --group, --name (this agent's name), --token (a JWT when the
// daemon runs with auth.mode jwt), --delay-ms (pause between streamed words, default 40),
// --max-inflight (tasks at once, default 1). Needs the `ws` package (the repository's
// tests/node_modules has it: run scripts/deps.sh --test). Prints one JSON line per event.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const WebSocket = (() => {
  try {
    return require('ws');
  } catch {
    return require('../../../tests/node_modules/ws');
  }
})();

const opts = {
  url: 'ws://127.0.0.1:8080/v1/ws',
  topic: 'default/tasks/research',
  group: 'researchers',
  name: `node-agent-${process.pid}`,
  token: '',
  'delay-ms': '40',
  'max-inflight': '1',
};
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '');
  if (!(key in opts) || i + 1 >= process.argv.length) {
    console.error(`usage: agent.mjs [--${Object.keys(opts).join(' V] [--')} V]`);
    process.exit(2);
  }
  opts[key] = process.argv[i + 1];
}
const delayMs = Number(opts['delay-ms']);
const say = (msg, fields = {}) => console.log(JSON.stringify({ agent: opts.name, msg, ...fields }));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let ws = null;
let stopping = false;
const closed = new Map(); // reply topic -> resolve() of a task the engine closed

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}

/** Publishes an event to a task's reply topic; the id makes a resend harmless (and lets
 * a member that takes over a task repeat the same pieces without doubling them). */
function reply(task, type, data, id) {
  send({ op: 'pub', topic: task.reply_to, type, id: `${task.task_id}:${id}`, data });
}

/** The stand-in for real work: a few sentences about the task's input. */
function findingsFor(input) {
  const topic = String(input?.topic ?? input?.question ?? JSON.stringify(input));
  return [
    `${topic} has been studied for a long time.`,
    `Three sources agree on the basics of ${topic}.`,
    `Open questions about ${topic} remain.`,
  ];
}

async function work(delivery) {
  const task = delivery.data;
  const conn = ws;
  let gone = false; // the engine closed the task (cancelled, timed out, answered)
  closed.set(task.reply_to, () => (gone = true));
  send({ op: 'sub', topic: task.reply_to, after: { seq: 0 } });
  say('task', { task_id: task.task_id, attempt: task.attempt, redelivered: delivery.redelivered ?? 0 });
  reply(task, 'task.heartbeat', { agent: opts.name }, 'claim');
  const every = Math.max(50, Math.floor((task.heartbeat_ms ?? 10000) / 3));
  const beat = setInterval(() => {
    reply(task, 'task.heartbeat', {}, `hb${Date.now()}`);
    send({ op: 'extend', topic: opts.topic, group: opts.group, seq: delivery.seq });
  }, every);
  try {
    const findings = findingsFor(task.input);
    const words = findings.join(' ').split(' ');
    for (let i = 0; i < words.length && !gone; i++) {
      if (ws !== conn) return; // connection lost: the group gives the task to another member
      reply(task, 'task.partial', { text: (i ? ' ' : '') + words[i] }, `p${i}`);
      await sleep(delayMs);
    }
    if (gone) say('closed by the engine', { task_id: task.task_id });
    else {
      reply(task, 'task.result', { output: { agent: opts.name, findings }, usage: { out_tokens: words.length } }, 'result');
      say('done', { task_id: task.task_id });
    }
    send({ op: 'ack', topic: opts.topic, group: opts.group, seq: delivery.seq });
  } finally {
    clearInterval(beat);
    closed.delete(task.reply_to);
    send({ op: 'unsub', topic: task.reply_to });
  }
}

function connect() {
  const headers = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  const sock = new WebSocket(opts.url, { headers });
  ws = sock;
  sock.on('open', () => {
    send({ op: 'sub', topic: opts.topic, group: opts.group, max_inflight: Number(opts['max-inflight']) });
  });
  sock.on('message', (buf) => {
    const m = JSON.parse(buf.toString());
    if (m.op === 'subscribed' && m.group) say('joined', { topic: m.topic, group: m.group, pending: m.pending });
    else if (m.op === 'ev' && m.group === opts.group && m.type === 'task') work(m).catch((e) => say('error', { error: String(e) }));
    else if (m.op === 'ev' && m.type === 'task.closed') closed.get(m.topic)?.();
    else if (m.op === 'error') say('server error', { code: m.code, message: m.message });
    else if (m.op === 'drain') sock.close(1000, 'drain');
  });
  sock.on('error', (e) => say('socket error', { error: e.message }));
  sock.on('close', () => {
    if (ws === sock) ws = null;
    if (!stopping) setTimeout(connect, 1000); // the group keeps our place; just join again
  });
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    stopping = true;
    if (ws) ws.close(1000, 'bye');
    else process.exit(0);
    setTimeout(() => process.exit(0), 500).unref();
  });
}
connect();
