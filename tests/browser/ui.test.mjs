// Browser tests of the web UI (examples/web) in Debian's chromium against the real daemon
// with the mock provider. What they show:
// - a run started from the UI streams its text into the page token by token, and the
//   page ends with exactly the run document's text (GET /v1/runs/{id}), which is also what
//   the topic carried (read independently over a WebSocket from seq 0);
// - cutting the page's WebSocket mid-run (closing it from the page, and restarting the
//   daemon with a drain on the same port) loses and duplicates no token;
// - approving an approval step from the UI lets the run finish;
// - a second tab opened mid-run shows the run so far at once, then follows it live.
// A screenshot of the run page is saved in tests/artifacts/browser/.
//
// Run: node --test tests/browser/ (COORDINATOR_BIN selects the daemon; ctest sets it).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import { repoRoot, startDaemon, stopAll, until } from '../integration/lib/harness.mjs';
import {
  launchBrowser, makeWorkflowsDir, snapshots, stepText, artifactsDir, tempDir, removeDir,
} from './lib/browser.mjs';

const RUN_TIMEOUT_MS = 60000;

// The copied example workflows refer to the shared profiles of the example configuration.
const exampleAgents = JSON.parse(readFileSync(path.join(repoRoot, 'examples/coordinator.json'), 'utf8')).agents;

/** Daemon config for a workflows folder (and optionally a data dir kept across restarts). */
function daemonConfig(wfDir, dataDir) {
  const c = { workflows_dir: wfDir, agents: exampleAgents, shutdown: { drain_ms: 300, grace_ms: 1000 } };
  if (dataDir) c.data_dir = dataDir;
  return c;
}

async function runDoc(d, id) {
  const res = await d.get(`/v1/runs/${encodeURIComponent(id)}`);
  assert.equal(res.status, 200, `GET /v1/runs/${id}: ${res.status} ${res.text}`);
  return res.json();
}

/** Every event of a topic from seq 0 until the run's final event, read over a WebSocket
 * of our own (independent of the page and of the UI's code). */
async function topicEvents(d, topic) {
  const ws = await d.ws();
  try {
    ws.sendJson({ op: 'sub', topic, after: { seq: 0 }, ref: 's' });
    const events = [];
    for (;;) {
      const m = await ws.nextJson({ timeoutMs: RUN_TIMEOUT_MS });
      if (m.op === 'gap') throw new Error(`gap on ${topic}: ${JSON.stringify(m)}`);
      if (m.op !== 'ev') continue;
      events.push(m);
      if (['run.completed', 'run.failed', 'run.cancelled'].includes(m.type)) return events;
    }
  } finally {
    await ws.close();
  }
}

/** The text of a step's last attempt as the topic carried it (token events by index). */
function streamedText(events, step) {
  const tokens = events.filter((e) => e.type === 'token' && e.data.step === step && e.data.part === 'text');
  const last = Math.max(...tokens.map((e) => e.data.attempt));
  const mine = tokens.filter((e) => e.data.attempt === last).sort((a, b) => a.data.index - b.data.index);
  mine.forEach((e, i) => assert.equal(e.data.index, i, `token indexes of ${step} are dense`));
  return mine.map((e) => e.data.text).join('');
}

/** Every text the page showed for a step was a prefix of the final text, and it grew in
 * many steps (token by token, not in one piece). */
function assertGrewTokenByToken(snaps, final, { minSteps = 10 } = {}) {
  const nonEmpty = snaps.filter((s) => s.length > 0);
  for (const s of nonEmpty) {
    assert.ok(final.startsWith(s), `shown text is not a prefix of the final text:\n${JSON.stringify(s)}\nvs\n${JSON.stringify(final)}`);
  }
  assert.equal(nonEmpty[nonEmpty.length - 1], final, 'the last text shown is the final text');
  assert.ok(nonEmpty.length >= minSteps, `the text appeared in ${nonEmpty.length} steps, expected token by token (>= ${minSteps})`);
}

async function startFromUi(page, d, workflow, input) {
  await page.goto(`${d.url}/#/workflows`);
  await page.getByRole('link', { name: `Start a run of ${workflow}` }).click();
  await page.locator('#run-input').fill(JSON.stringify(input));
  await page.getByRole('button', { name: 'Start run' }).click();
  await page.waitForURL(/#\/runs\/[^/]+$/);
  return decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''));
}

async function waitStatus(page, status) {
  await page.waitForSelector(`#run[data-status="${status}"]`, { timeout: RUN_TIMEOUT_MS });
}

async function connHistory(page) {
  return page.evaluate(() => window.coordinatorUI.indicator.history.map((h) => `${h.type}${h.reason ? `:${h.reason}` : ''}`));
}

describe('web UI in chromium', () => {
  let d;
  let browser;
  let wfDir;

  before(async () => {
    wfDir = await makeWorkflowsDir();
    d = await startDaemon({ config: daemonConfig(wfDir) });
    browser = await launchBrowser();
    await mkdir(artifactsDir, { recursive: true });
  });

  after(async () => {
    if (browser) await browser.close();
    if (d) await d.stop();
    await stopAll();
    await removeDir(wfDir);
  });

  test('a run started from the UI streams its text token by token, equal to the run document', async () => {
    const page = await browser.newPage();
    // A refused input first: the daemon's 400 is shown, naming the field.
    await page.goto(`${d.url}/#/workflows/ui-slow`);
    await page.locator('#run-input').fill('{}');
    await page.getByRole('button', { name: 'Start run' }).click();
    const summary = page.locator('.error-summary');
    await summary.waitFor({ state: 'visible' });
    assert.match(await summary.textContent(), /topic/);
    assert.equal(await page.locator('#run-input').getAttribute('aria-invalid'), 'true');
    // The browser logs the refused request; nothing else may be logged.
    assert.deepEqual(page.errors.splice(0), ['console: Failed to load resource: the server responded with a status of 400 (Bad Request)']);

    const id = await startFromUi(page, d, 'ui-slow', { topic: 'rivers' });
    await waitStatus(page, 'completed');
    const doc = await runDoc(d, id);
    assert.equal(doc.status, 'completed');
    const final = doc.steps.write.text;
    assert.ok(final.length > 100, `the mock wrote ${final.length} bytes`);
    assert.equal(await stepText(page, 'write'), final, 'the page shows the run document\'s text');
    assert.equal(streamedText(await topicEvents(d, doc.topic), 'write'), final, 'the topic carried the same text');
    assertGrewTokenByToken(await snapshots(page, 'write'), final);
    const runPage = await page.evaluate(() => ({ skipped: window.coordinatorUI.runPage.skipped, loads: window.coordinatorUI.runPage.loads }));
    assert.deepEqual(runPage, { skipped: 0, loads: 1 });
    assert.match(await page.locator('[data-step="write"] .step-meta').textContent(), /took .* · \d+ in · \d+ out tokens/);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test('closing the page\'s WebSocket mid-run loses and duplicates no token', async () => {
    const page = await browser.newPage();
    const id = await startFromUi(page, d, 'ui-slow', { topic: 'socket cuts' });
    for (let cut = 1; cut <= 2; cut++) {
      const before = (await stepText(page, 'write')).length;
      await until(async () => (await stepText(page, 'write')).length > before + 20, { timeoutMs: RUN_TIMEOUT_MS, what: 'more text' });
      await page.evaluate(() => window.__sockets[window.__sockets.length - 1].close());
      await page.waitForSelector('#conn[data-state="reconnecting"]', { timeout: 5000 }).catch(() => {});
      await until(async () => (await connHistory(page)).filter((t) => t === 'resumed').length >= cut,
        { timeoutMs: 15000, what: `resume after cut ${cut}` });
    }
    await waitStatus(page, 'completed');
    const doc = await runDoc(d, id);
    const final = doc.steps.write.text;
    assert.equal(await stepText(page, 'write'), final);
    assertGrewTokenByToken(await snapshots(page, 'write'), final);
    assert.equal(await page.locator('#conn').getAttribute('data-state'), 'live');
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test('approving an approval step from the UI lets the run finish', async () => {
    const page = await browser.newPage();
    const id = await startFromUi(page, d, 'approval-gate', { subject: 'the new bridge' });
    const approve = page.locator('[data-step="review"] button[data-action="approve"]');
    await approve.waitFor({ state: 'visible', timeout: RUN_TIMEOUT_MS });
    assert.match(await page.locator('.approvals').textContent(), /review/);
    assert.match(await page.locator('[data-step="review"] pre.prompt').textContent(), /Publish this announcement\?/);
    await page.locator('[data-step="review"] textarea').fill('ship it');
    await approve.click();
    await waitStatus(page, 'completed');
    const doc = await runDoc(d, id);
    assert.deepEqual(doc.steps.review.output, { approved: true, comment: 'ship it' });
    assert.equal(doc.output.status, 'published');
    assert.equal(doc.output.text, doc.steps.draft.text);
    assert.match(await page.locator('[data-step="review"] .decision').textContent(), /Approved: ship it/);
    assert.equal(await page.locator('.approvals').isHidden(), true);
    assert.match(await page.locator('#run-output').textContent(), /published/);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test('cancelling from the run page stops the run and its streaming step', async () => {
    const page = await browser.newPage();
    const id = await startFromUi(page, d, 'ui-slow', { topic: 'cancel me' });
    await until(async () => (await stepText(page, 'write')).length > 10, { timeoutMs: RUN_TIMEOUT_MS, what: 'some text' });
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await waitStatus(page, 'cancelled');
    const doc = await runDoc(d, id);
    assert.equal(doc.status, 'cancelled');
    assert.equal(doc.steps.write.status, 'cancelled');
    assert.equal(await page.locator('[data-step="write"]').getAttribute('data-status'), 'cancelled');
    assert.equal(await stepText(page, 'write'), doc.steps.write.text, 'the text streamed before the cancel stays');
    assert.equal(await page.getByRole('button', { name: 'Cancel run' }).isHidden(), true);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test('the runs list shows each run with its status and filters them', async () => {
    const listed = (await d.get('/v1/runs')).json().runs;
    assert.ok(listed.length >= 3, `runs so far: ${listed.length}`);
    const page = await browser.newPage();
    await page.goto(`${d.url}/#/runs`);
    const rows = page.locator('table.runs tbody tr');
    await until(async () => (await rows.count()) === listed.length, { what: 'every run listed' });
    const shown = await rows.evaluateAll((trs) => trs.map((tr) => [tr.dataset.run, tr.dataset.status]));
    assert.deepEqual(shown, listed.map((r) => [r.run_id, r.status]), 'newest first, as the daemon lists them');

    await page.getByLabel('Workflow').selectOption('approval-gate');
    await until(async () => (await rows.evaluateAll((trs) => trs.map((tr) => tr.textContent)))
      .every((t) => t.includes('approval-gate')) && (await rows.count()) === 1, { what: 'the workflow filter' });
    assert.match(page.url(), /workflow=approval-gate/);
    await page.getByLabel('Workflow').selectOption('');
    await page.getByLabel('Status').selectOption('completed');
    const completed = listed.filter((r) => r.status === 'completed').length;
    await until(async () => (await rows.count()) === completed, { what: 'the status filter' });
    const target = listed.find((r) => r.status === 'completed').run_id;
    await page.getByLabel('Search').fill(target.slice(2, 12));
    await until(async () => (await rows.count()) === 1, { what: 'the search filter' });
    await rows.first().getByRole('link').click();
    await page.waitForURL(new RegExp(`#/runs/${target}$`));
    await waitStatus(page, 'completed');
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test('the topics page follows a coordination topic from its start, then live', async () => {
    const topic = 'default/agents/tasks';
    const post = (events) => d.request('POST', `/v1/streams/${topic}/events`, {
      headers: { 'content-type': 'application/json' }, body: JSON.stringify(events),
    });
    assert.equal((await post([{ type: 'task', data: { n: 1 } }, { type: 'task', data: { n: 2 } }])).status, 201);
    const page = await browser.newPage();
    await page.goto(`${d.url}/#/topics?topic=${encodeURIComponent(topic)}&after=0`);
    const rows = page.locator('table.events tbody tr');
    await until(async () => (await rows.count()) === 2, { what: 'the two retained events' });
    assert.equal((await post([{ type: 'task', lane: 'control', data: { n: 3 } }])).status, 201);
    await until(async () => (await rows.count()) === 3, { what: 'the live event' });
    assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.seq)), ['1', '2', '3']);
    assert.match(await rows.nth(2).textContent(), /task.*control.*"n":3/);
    assert.match(await page.locator('#t-status').textContent(), /3 event\(s\), last seq 3/);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test('a second tab opened mid-run shows the whole run so far, then live', async () => {
    const first = await browser.newPage();
    const id = await startFromUi(first, d, 'ui-parallel', { topic: 'bridges' });
    await until(async () => (await stepText(first, 'fan/con').catch(() => '')).length > 60, { timeoutMs: RUN_TIMEOUT_MS, what: 'text in the first tab' });
    const sofar = await runDoc(d, id);
    assert.equal(sofar.status, 'running', 'the run is still going when the second tab opens');
    const second = await browser.newPage();
    await second.goto(`${d.url}/#/runs/${encodeURIComponent(id)}`);
    await second.waitForSelector('[data-step="fan/con"] > pre.step-text');
    // Parallel branches are side by side on a wide screen.
    const pro = await second.locator('[data-step="fan/pro"]').boundingBox();
    const con = await second.locator('[data-step="fan/con"]').boundingBox();
    assert.ok(con.x > pro.x + pro.width - 1 && Math.abs(con.y - pro.y) < 2, `branches side by side: ${JSON.stringify({ pro, con })}`);
    await second.screenshot({ path: path.join(artifactsDir, 'run-page-midrun.png'), fullPage: true });

    await waitStatus(second, 'completed');
    await waitStatus(first, 'completed');
    const doc = await runDoc(d, id);
    for (const key of ['fan/pro', 'fan/con']) {
      const final = doc.steps[key].text;
      assert.equal(await stepText(second, key), final, `${key} in the second tab`);
      assert.equal(await stepText(first, key), final, `${key} in the first tab`);
      const snaps = (await snapshots(second, key)).filter((s) => s.length > 0);
      assert.ok(snaps[0].length >= sofar.steps[key].text.length,
        `${key}: the second tab's first text (${snaps[0].length} bytes) has at least what the run had when it opened (${sofar.steps[key].text.length})`);
      for (const s of snaps) assert.ok(final.startsWith(s), `${key}: every text shown is a prefix of the final`);
    }
    const conSnaps = (await snapshots(second, 'fan/con')).filter((s) => s.length > 0);
    assert.ok(conSnaps.length >= 5, `the second tab kept streaming fan/con live (${conSnaps.length} texts)`);
    assert.match(await second.locator('[data-step="sum"]').textContent(), /completed/);
    await second.screenshot({ path: path.join(artifactsDir, 'run-page.png'), fullPage: true });
    await second.setViewportSize({ width: 390, height: 844 });
    await second.screenshot({ path: path.join(artifactsDir, 'run-page-narrow.png'), fullPage: true });
    assert.deepEqual(first.errors, []);
    assert.deepEqual(second.errors, []);
    await first.close();
    await second.close();
  });
});

describe('web UI across a daemon restart', () => {
  let browser;
  let wfDir;
  let dataDir;
  let d;

  before(async () => {
    wfDir = await makeWorkflowsDir({ tokensPerS: 20 });
    dataDir = await tempDir('coord-ui-data-');
    browser = await launchBrowser();
  });

  after(async () => {
    if (browser) await browser.close();
    if (d) await d.stop();
    await stopAll();
    await removeDir(wfDir);
    await removeDir(dataDir);
  });

  test('restarting the daemon with a drain mid-run loses and duplicates no token', async () => {
    d = await startDaemon({ config: daemonConfig(wfDir, dataDir) });
    const port = d.port;
    const page = await browser.newPage();
    const id = await startFromUi(page, d, 'ui-slow', { topic: 'restarts' });
    await until(async () => (await stepText(page, 'write')).length > 40, { timeoutMs: RUN_TIMEOUT_MS, what: 'text before the restart' });
    const beforeStop = await stepText(page, 'write');
    const { code } = await d.stop();
    assert.equal(code, 0, 'graceful exit');
    d = await startDaemon({ port, config: daemonConfig(wfDir, dataDir) });

    await waitStatus(page, 'completed');
    const doc = await runDoc(d, id);
    assert.equal(doc.resumes, 1, 'the run was resumed by the new daemon');
    const final = doc.steps.write.text;
    assert.ok(final.startsWith(beforeStop), 'the resumed attempt streams the same deterministic text');
    assert.equal(await stepText(page, 'write'), final, 'no token lost or doubled across the restart');
    assertGrewTokenByToken(await snapshots(page, 'write'), final);
    const history = await connHistory(page);
    assert.ok(history.includes('reconnecting:drain'), `the page followed the drain: ${history}`);
    assert.ok(history.includes('resumed'), `the page resumed: ${history}`);
    assert.equal(await page.locator('[data-step="write"] .attempt').textContent(), ' attempt 2');
    assert.match(await page.locator('#timeline').textContent(), /Run resumed after a restart/);
    await page.screenshot({ path: path.join(artifactsDir, 'run-page-after-restart.png'), fullPage: true });
    assert.deepEqual(page.errors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(e)), []);
    await page.close();
  });
});
