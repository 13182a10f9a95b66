// Browser test helpers: Debian's chromium driven by playwright-core (tests/node_modules,
// pinned by tests/package-lock.json; no browser download), a temporary workflows folder
// with slowed-down mock workflows, and page instrumentation the tests read back.
//
//   const b = await launchBrowser();              // headless chromium, temp profile
//   const page = await b.newPage(daemon);         // recorders installed, console captured
//   ... await b.close();
//
// Recorders installed in every page before any of its scripts runs:
// - window.__snaps[stepKey]: every distinct text the step's streamed-text box showed, in
//   order (a MutationObserver over the whole document), so a test can check the text grew
//   token by token and that every intermediate text was a prefix of the final one;
// - window.__sockets: every WebSocket the page opened (to cut them from the page).

import { mkdtemp, rm, writeFile, readdir, copyFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { repoRoot } from '../../integration/lib/harness.mjs';

const require = createRequire(path.join(repoRoot, 'tests', 'package.json'));
const { chromium } = require('playwright-core');

export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const artifactsDir = path.join(repoRoot, 'tests', 'artifacts', 'browser');

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

const RECORDERS = `(() => {
  window.__snaps = {};
  const record = () => {
    for (const el of document.querySelectorAll('[data-step] > pre.step-text')) {
      const key = el.closest('[data-step]').dataset.step;
      const text = el.textContent;
      const list = window.__snaps[key] || (window.__snaps[key] = []);
      if (list[list.length - 1] !== text) list.push(text);
    }
  };
  new MutationObserver(record).observe(document, { subtree: true, childList: true, characterData: true });
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      window.__sockets.push(this);
    }
  };
})();`;

/** Launches headless chromium with a temporary profile (--user-data-dir). */
export async function launchBrowser({ viewport = { width: 1280, height: 900 } } = {}) {
  if (!existsSync(chromiumPath)) {
    throw new Error(`no chromium at ${chromiumPath}: install it with scripts/deps.sh --test (or set CHROMIUM_PATH)`);
  }
  const profile = await mkdtemp(path.join(os.tmpdir(), 'coord-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
  });
  await context.addInitScript({ content: RECORDERS });
  const pages = [];
  return {
    context,
    /** A new tab; its console errors and page errors are collected in page.errors. */
    async newPage() {
      const page = await context.newPage();
      page.errors = [];
      page.on('pageerror', (e) => page.errors.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') page.errors.push(`console: ${m.text()}`);
      });
      pages.push(page);
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** The texts a step's box showed in a page, oldest first. */
export function snapshots(page, key) {
  return page.evaluate((k) => (window.__snaps[k] || []).slice(), key);
}

/** The step's streamed text as the page shows it now. */
export function stepText(page, key) {
  return page.locator(`[data-step="${key}"] > pre.step-text`).textContent();
}

/**
 * A workflows folder for a test daemon: the examples (what a new user runs) plus slowed
 * mock workflows for mid-run tests. tokensPerS sets how fast the slow ones stream.
 */
export async function makeWorkflowsDir({ tokensPerS = 25 } = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'coord-ui-wf-'));
  const examples = path.join(repoRoot, 'examples', 'workflows');
  for (const f of await readdir(examples)) if (f.endsWith('.json')) await copyFile(path.join(examples, f), path.join(dir, f));
  const slowAgent = (words, rate) => ({
    provider: 'mock',
    model: 'mock-writer',
    params: { mock_words: words, mock_tokens_per_s: rate, mock_chunk_chars: 5 },
  });
  await writeFile(path.join(dir, 'ui-slow.json'), JSON.stringify({
    name: 'ui-slow',
    description: 'One llm step streaming slowly (browser tests).',
    inputs: { topic: { type: 'string', required: true } },
    agents: { writer: slowAgent(90, tokensPerS) },
    steps: [{ id: 'write', type: 'llm', agent: 'writer', prompt: 'Write about {{ input.topic }}.' }],
  }, null, 2));
  await writeFile(path.join(dir, 'ui-parallel.json'), JSON.stringify({
    name: 'ui-parallel',
    description: 'Two llm branches streaming side by side, then a transform (browser tests).',
    inputs: { topic: { type: 'string', default: 'rivers' } },
    agents: { fast: slowAgent(60, tokensPerS * 2), slow: slowAgent(70, tokensPerS) },
    steps: [
      {
        id: 'fan',
        type: 'parallel',
        branches: [
          [{ id: 'pro', type: 'llm', agent: 'fast', prompt: 'Arguments for {{ input.topic }}.' }],
          [{ id: 'con', type: 'llm', agent: 'slow', prompt: 'Arguments against {{ input.topic }}.' }],
        ],
      },
      { id: 'sum', type: 'transform', value: { pro: '{{ steps.pro.output }}', con: '{{ steps.con.output }}' } },
    ],
  }, null, 2));
  return dir;
}

/** A fresh directory (for a daemon's data that must outlive one daemon process). */
export async function tempDir(prefix) {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  await mkdir(dir, { recursive: true });
  return dir;
}

export async function removeDir(dir) {
  if (dir && process.env.COORD_KEEP_TMP !== '1') await rm(dir, { recursive: true, force: true });
}
