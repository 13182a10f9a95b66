// Shared by the bench probers written in Node (topic-churn.mjs, catchup-readers.mjs): the
// ws package from tests/node_modules, a WebSocket that resolves once open, and the
// summary of a list of round trips.
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// The packages live in tests/node_modules, beside this folder.
const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json'));
export const WebSocket = require('ws');

// Opens a WebSocket to u; resolves with it once open, rejects on an error before.
export const openWs = (u) => new Promise((resolve, reject) => {
  const w = new WebSocket(u);
  w.once('open', () => resolve(w));
  w.once('error', reject);
});

// ms values: { count, p50, p99, max } (nearest rank, 2 decimals; null when empty).
export const summary = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const at = (p) => (s.length ? Number(s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2)) : null);
  return { count: s.length, p50: at(0.5), p99: at(0.99), max: at(1) };
};
