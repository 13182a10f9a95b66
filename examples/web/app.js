// app.js: the web UI's entry point. It owns the one CoordinatorClient of the page (a
// single WebSocket shared by every page), the connection indicator in the header and the
// hash router that mounts one page at a time (#/workflows, #/workflows/<name>, #/runs,
// #/runs/<id>, #/topics, #/settings). Pages live in ui/page-*.js and get {client, params,
// query, el}; each returns an unmount function. docs/ui.md describes the pages.

import { CoordinatorClient } from './coordinator-client.js';
import { getToken } from './ui/api.js';
import { ConnectionIndicator } from './ui/connection.js';
import { mountWorkflows, mountWorkflow } from './ui/page-workflows.js';
import { mountRuns } from './ui/page-runs.js';
import { mountRun } from './ui/page-run.js';
import { mountTopics } from './ui/page-topics.js';
import { mountSettings } from './ui/page-settings.js';
import { h, replaceChildren } from './ui/dom.js';

const client = new CoordinatorClient({ token: () => getToken() });
const indicator = new ConnectionIndicator(document.getElementById('conn'), client);
client.onError((err) => {
  // Errors with no request to answer: shown in the console; refused subscriptions are
  // shown by the page that made them.
  console.warn('coordinator:', err && (err.code || err.name), err && err.message);
});
client.connect();

const routes = [
  { re: /^\/workflows\/([^/]+)$/, nav: 'workflows', mount: mountWorkflow, params: ['name'] },
  { re: /^\/workflows\/?$/, nav: 'workflows', mount: mountWorkflows },
  { re: /^\/runs\/([^/]+)$/, nav: 'runs', mount: mountRun, params: ['id'] },
  { re: /^\/runs\/?$/, nav: 'runs', mount: mountRuns },
  { re: /^\/topics\/?$/, nav: 'topics', mount: mountTopics },
  { re: /^\/settings\/?$/, nav: 'settings', mount: mountSettings },
];

const main = document.getElementById('main');
let unmount = null;
let firstRoute = true;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/workflows';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  return { path, query };
}

function route() {
  const { path, query } = parseHash();
  if (unmount) {
    try {
      unmount();
    } catch (err) {
      console.error(err);
    }
    unmount = null;
  }
  hideNotice();
  let matched = null;
  let params = {};
  for (const r of routes) {
    const m = r.re.exec(path);
    if (!m) continue;
    matched = r;
    params = Object.fromEntries((r.params || []).map((n, i) => [n, decodeURIComponent(m[i + 1])]));
    break;
  }
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (matched && a.dataset.nav === matched.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!matched) {
    replaceChildren(main, h('h1', {}, 'Not found'), h('p', {}, 'No page at ', h('code', {}, path), '. ',
      h('a', { href: '#/workflows' }, 'Go to the workflows.')));
    document.title = 'Not found · coordinator';
  } else {
    main.replaceChildren();
    unmount = matched.mount({ client, params, query, el: main, indicator }) || null;
  }
  // Move focus to the new content (not on the first load: the browser keeps it at the top).
  if (!firstRoute) main.focus({ preventScroll: false });
  firstRoute = false;
}

/** Shows a page-level error (role=alert) until the next navigation. */
export function showNotice(text) {
  const n = document.getElementById('notice');
  n.textContent = text;
  n.hidden = false;
}

function hideNotice() {
  const n = document.getElementById('notice');
  n.hidden = true;
  n.textContent = '';
}

// For debugging from the console and for the browser tests: the client, the indicator
// and (set by the run page) the run page's state.
window.coordinatorUI = { client, indicator };

window.addEventListener('hashchange', route);
route();
