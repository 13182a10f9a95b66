// page-workflows.js: the workflows list (#/workflows) and one workflow's page with the
// start form (#/workflows/<name>). The form is a JSON editor prefilled from the
// workflow's declared inputs (defaults, else an empty value of the type); the daemon's
// 400 answer is shown field by field; a started run opens its run page.

import { api, ApiError } from './api.js';
import { h, replaceChildren, pretty, announce } from './dom.js';
import { inputTemplate } from './run-state.js';

function listOf(body) {
  if (Array.isArray(body)) return body;
  if (body && Array.isArray(body.workflows)) return body.workflows;
  return [];
}

function errorBox(err) {
  const msg = err instanceof ApiError && err.status === 0 ? err.message : `${err.message}`;
  return h('p', { class: 'error', role: 'alert' }, msg);
}

function inputsTable(inputs) {
  const entries = Object.entries(inputs || {});
  if (!entries.length) return h('p', { class: 'muted' }, 'No inputs.');
  return h('table', { class: 'inputs' },
    h('caption', { class: 'visually-hidden' }, 'Inputs'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Input'), h('th', { scope: 'col' }, 'Type'),
      h('th', { scope: 'col' }, 'Default'), h('th', { scope: 'col' }, 'Description'))),
    h('tbody', {}, entries.map(([name, d]) => h('tr', {},
      h('th', { scope: 'row' }, h('code', {}, name), d && d.required ? h('span', { class: 'req' }, ' required') : null),
      h('td', {}, (d && d.type) || ''),
      h('td', {}, d && d.default !== undefined ? h('code', {}, JSON.stringify(d.default)) : h('span', { class: 'muted' }, '—')),
      h('td', {}, (d && d.description) || '')))));
}

/** #/workflows */
export function mountWorkflows({ el }) {
  document.title = 'Workflows · coordinator';
  const list = h('div', { class: 'cards', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading workflows…'));
  replaceChildren(el, h('h1', {}, 'Workflows'),
    h('p', { class: 'lead' }, 'Pick a workflow to start a run, then watch it stream. ',
      h('a', { href: '#/runs' }, 'Runs already started'), ' are listed on their own page.'),
    list);
  let alive = true;
  api.workflows().then((body) => {
    if (!alive) return;
    const wfs = listOf(body);
    list.removeAttribute('aria-busy');
    if (!wfs.length) {
      replaceChildren(list, h('p', {}, 'No workflows are loaded. Put workflow files in the daemon\'s workflows folder and send it SIGHUP.'));
      return;
    }
    replaceChildren(list, wfs.map((wf) => h('article', { class: 'card', dataset: { workflow: wf.name } },
      h('h2', {}, h('a', { href: `#/workflows/${encodeURIComponent(wf.name)}` }, wf.name)),
      wf.description ? h('p', {}, wf.description) : null,
      h('p', { class: 'meta' },
        `${Object.keys(wf.inputs || {}).length} input(s)`,
        Number.isInteger(wf.steps) ? ` · ${wf.steps} step(s)` : '',
        Array.isArray(wf.agents) && wf.agents.length ? ` · agents: ${wf.agents.join(', ')}` : ''),
      h('a', { class: 'button', href: `#/workflows/${encodeURIComponent(wf.name)}`, 'aria-label': `Start a run of ${wf.name}` }, 'Start a run'))));
  }).catch((err) => {
    if (!alive) return;
    list.removeAttribute('aria-busy');
    replaceChildren(list, errorBox(err));
  });
  return () => {
    alive = false;
  };
}

/** The workflow document inside a GET /v1/workflows/{name} answer, whatever its wrapping. */
function documentOf(body) {
  if (!body || typeof body !== 'object') return null;
  for (const k of ['document', 'workflow', 'definition', 'doc']) {
    if (body[k] && typeof body[k] === 'object' && Array.isArray(body[k].steps)) return body[k];
  }
  return Array.isArray(body.steps) ? body : null;
}

function stepOutline(steps) {
  if (!Array.isArray(steps) || !steps.length) return null;
  return h('ol', { class: 'outline' }, steps.map((st) => {
    const kids = [];
    if (Array.isArray(st.branches)) {
      kids.push(h('ul', {}, st.branches.map((b, i) => h('li', {}, `branch ${i + 1}`, stepOutline(b)))));
    }
    for (const k of ['steps', 'default']) if (Array.isArray(st[k])) kids.push(stepOutline(st[k]));
    if (st.cases && typeof st.cases === 'object') {
      kids.push(h('ul', {}, Object.entries(st.cases).map(([c, list]) => h('li', {}, `case ${c}`, stepOutline(list)))));
    }
    return h('li', {}, h('code', {}, st.id), ` ${st.type}`, st.agent ? ` (agent ${st.agent})` : '', ...kids);
  }));
}

/** #/workflows/<name>: details and the start form. */
export function mountWorkflow({ el, params }) {
  const name = params.name;
  document.title = `${name} · coordinator`;
  const body = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
  replaceChildren(el, h('p', { class: 'crumbs' }, h('a', { href: '#/workflows' }, 'Workflows'), ' / '),
    h('h1', {}, name), body);
  let alive = true;
  Promise.all([api.workflow(name).catch((e) => e), api.workflows().catch(() => null)]).then(([detail, all]) => {
    if (!alive) return;
    body.removeAttribute('aria-busy');
    const summary = listOf(all).find((w) => w.name === name);
    if (detail instanceof Error && !summary) {
      replaceChildren(body, errorBox(detail instanceof ApiError && detail.status === 404
        ? new Error(`No workflow named "${name}" is loaded.`) : detail));
      return;
    }
    const info = detail instanceof Error ? summary : { ...summary, ...detail };
    const doc = documentOf(detail instanceof Error ? null : detail);
    const inputs = info.inputs || (doc && doc.inputs) || {};
    replaceChildren(body,
      info.description ? h('p', { class: 'lead' }, info.description) : null,
      startForm(name, inputs),
      h('section', { 'aria-labelledby': 'inputs-h' }, h('h2', { id: 'inputs-h' }, 'Inputs'), inputsTable(inputs)),
      doc ? h('section', { 'aria-labelledby': 'steps-h' }, h('h2', { id: 'steps-h' }, 'Steps'), stepOutline(doc.steps)) : null);
  });
  return () => {
    alive = false;
  };
}

function startForm(name, inputs) {
  const initial = pretty(inputTemplate(inputs));
  const errId = 'start-errors';
  const textarea = h('textarea', {
    id: 'run-input', name: 'input', rows: Math.min(16, Math.max(4, initial.split('\n').length + 1)),
    spellcheck: 'false', autocapitalize: 'off', 'aria-describedby': 'run-input-help',
  });
  textarea.value = initial;
  const keyInput = h('input', { id: 'run-key', name: 'key', type: 'text', autocomplete: 'off', 'aria-describedby': 'run-key-help' });
  const errors = h('div', { id: errId, class: 'error-summary', role: 'alert', tabindex: '-1', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Start run');
  const status = h('span', { class: 'muted', role: 'status' });

  const showErrors = (title, items) => {
    replaceChildren(errors, h('p', {}, h('strong', {}, title)),
      items.length ? h('ul', {}, items.map((e) => h('li', {}, e.path ? h('code', {}, e.path) : null, e.path ? ': ' : '', e.message))) : null);
    errors.hidden = false;
    textarea.setAttribute('aria-invalid', 'true');
    textarea.setAttribute('aria-describedby', `run-input-help ${errId}`);
    errors.focus();
  };
  const clearErrors = () => {
    errors.hidden = true;
    errors.replaceChildren();
    textarea.removeAttribute('aria-invalid');
    textarea.setAttribute('aria-describedby', 'run-input-help');
  };

  const form = h('form', {
    class: 'start', 'aria-labelledby': 'start-h', novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      clearErrors();
      let input;
      try {
        input = JSON.parse(textarea.value || '{}');
      } catch (err) {
        showErrors('The input is not valid JSON.', [{ path: '', message: err.message }]);
        return;
      }
      if (input === null || typeof input !== 'object' || Array.isArray(input)) {
        showErrors('The input must be a JSON object.', []);
        return;
      }
      submit.disabled = true;
      status.textContent = 'Starting…';
      try {
        const res = await api.startRun(name, input, keyInput.value.trim() || undefined);
        status.textContent = 'Started.';
        announce(`Run ${res.run_id} started`);
        location.hash = `#/runs/${encodeURIComponent(res.run_id)}`;
      } catch (err) {
        status.textContent = '';
        const items = err instanceof ApiError ? err.fieldErrors : [];
        showErrors(err instanceof ApiError && err.status === 400 ? `The daemon refused the input: ${err.message}` : err.message, items);
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('h2', { id: 'start-h' }, 'Start a run'),
  errors,
  h('label', { for: 'run-input' }, 'Input (JSON object)'),
  h('p', { id: 'run-input-help', class: 'help' }, 'Prefilled from the declared inputs: defaults where given, empty values otherwise.'),
  textarea,
  h('details', {}, h('summary', {}, 'Options'),
    h('label', { for: 'run-key' }, 'Idempotency key (optional)'),
    h('p', { id: 'run-key-help', class: 'help' }, 'Starting again with the same key returns the same run.'),
    keyInput),
  h('div', { class: 'actions' }, submit, ' ', h('button', {
    type: 'button', onclick: () => {
      textarea.value = initial;
      clearErrors();
    },
  }, 'Reset'), ' ', status));
  return form;
}
