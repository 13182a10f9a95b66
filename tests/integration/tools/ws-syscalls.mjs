// Measures what WebSocket write coalescing saves: runs the daemon with a given
// limits.ws_frames_per_write, subscribes S WebSocket clients to one topic, publishes E
// events over HTTP in batches of B while strace counts the daemon's system calls, and
// prints the send calls per delivered frame. Not a test (figures, not assertions):
//
//   node tests/integration/tools/ws-syscalls.mjs [frames_per_write=64] [subscribers=50] [events=2000] [batch=100]
//
// Needs strace and permission to attach to one's own processes (ptrace). The binary is
// COORDINATOR_BIN or build/coordinator/coordinator, as for the integration tests.
import { spawn } from 'node:child_process';

import { startDaemon, until } from '../lib/harness.mjs';

const [fpw = 64, subs = 50, events = 2000, batch = 100] = process.argv.slice(2).map(Number);

const d = await startDaemon({
  config: { limits: { ws_frames_per_write: fpw, publish_rate: 0, topic_publish_rate: 0 } },
});
const topic = 'bench/syscalls';
const clients = [];
let received = 0;
for (let i = 0; i < subs; i++) {
  const ws = await d.ws();
  ws.sendJson({ op: 'sub', topic });
  await ws.nextJson();
  ws.sock.on('message', () => received++);
  clients.push(ws);
}
const out = [];
const strace = spawn('strace', ['-c', '-f', '-p', String(d.proc.pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
strace.stderr.on('data', (c) => out.push(c));
await until(() => out.join('').includes('attached') || out.length > 0, { timeoutMs: 5000, what: 'strace to attach' });
const framesBefore = await d.metric('coord_ws_frames_total{direction="out"}');
const writesBefore = await d.metric('coord_ws_writes_total');
const t0 = Date.now();
for (let done = 0; done < events; done += batch) {
  const body = Array.from({ length: Math.min(batch, events - done) }, (_, i) => ({ type: 't', data: { i: done + i } }));
  const res = await d.postJson(`/v1/streams/${topic}/events`, body);
  if (res.status !== 201) throw new Error(res.text);
}
await until(() => received >= subs * events, { timeoutMs: 60000, what: 'every delivery' });
const ms = Date.now() - t0;
const frames = (await d.metric('coord_ws_frames_total{direction="out"}')) - framesBefore;
const writes = (await d.metric('coord_ws_writes_total')) - writesBefore;
strace.kill('SIGINT');
await new Promise((r) => strace.on('exit', r));
const table = Buffer.concat(out).toString();
if (process.env.SHOW_STRACE) console.error(table);
// strace -c rows: % time, seconds, usecs/call, calls, [errors], syscall
const calls = (name) => {
  for (const line of table.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols.length >= 5 && cols.at(-1) === name) return Number(cols[3]);
  }
  return 0;
};
const sends = calls('sendto') + calls('write') + calls('writev') + calls('sendmsg');
console.log(
  JSON.stringify({
    frames_per_write: fpw,
    subscribers: subs,
    events,
    batch,
    deliveries: subs * events,
    ms,
    ws_frames_out: frames,
    ws_writes: writes,
    send_syscalls: sends,
    poll_syscalls: calls('poll'),
    epoll_wait: calls('epoll_wait'),
    epoll_ctl: calls('epoll_ctl'),
    sends_per_frame: Number((sends / frames).toFixed(3)),
  }),
);
for (const ws of clients) ws.terminate();
await d.stop();
