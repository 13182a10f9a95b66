// page-topics.js: follow any topic the token allows (#/topics?topic=t/room&after=0).
// Lists the tenant's topics (GET /v1/streams/{tenant}) for picking, subscribes with the
// chosen start (live, everything retained, or after a seq) and shows each event as a row
// (seq, time, type, lane, data), gaps as rows of their own. Only the newest rows are kept
// on screen; the count of events received is exact.

import { api, tokenTenant } from './api.js';
import { h, replaceChildren, clock } from './dom.js';

const MAX_ROWS = 1000;

export function mountTopics({ el, client, query }) {
  document.title = 'Topics · coordinator';
  const tenant = tokenTenant();
  const topicIn = h('input', {
    id: 't-topic', name: 'topic', type: 'text', required: true, list: 't-topics', autocomplete: 'off',
    spellcheck: 'false', placeholder: `${tenant}/room`, value: query.get('topic') || '', 'aria-describedby': 't-topic-help',
  });
  const datalist = h('datalist', { id: 't-topics' });
  const from = h('select', { id: 't-from', name: 'from' },
    h('option', { value: 'live' }, 'new events only'),
    h('option', { value: 'all' }, 'everything retained'),
    h('option', { value: 'seq' }, 'after a seq'));
  const seqIn = h('input', { id: 't-seq', name: 'seq', type: 'number', min: '0', step: '1', value: '0', inputmode: 'numeric' });
  const seqField = h('div', { class: 'field', hidden: true }, h('label', { for: 't-seq' }, 'After seq'), seqIn);
  const after = query.get('after');
  if (after === '0') from.value = 'all';
  else if (after && /^\d+$/.test(after)) {
    from.value = 'seq';
    seqIn.value = after;
    seqField.hidden = false;
  }
  from.addEventListener('change', () => { seqField.hidden = from.value !== 'seq'; });

  const follow = h('button', { type: 'submit', class: 'primary' }, 'Follow');
  const stopBtn = h('button', { type: 'button', disabled: true }, 'Stop');
  const clearBtn = h('button', { type: 'button' }, 'Clear');
  const stickIn = h('input', { id: 't-stick', type: 'checkbox', checked: true });
  const status = h('p', { class: 'muted', role: 'status', id: 't-status' }, 'Not following any topic.');
  const tbody = h('tbody', {});
  const table = h('table', { class: 'events' },
    h('caption', { class: 'visually-hidden' }, 'Events of the topic, oldest first'),
    h('thead', {}, h('tr', {}, ['Seq', 'Time', 'Type', 'Lane', 'Data'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const wrap = h('div', { class: 'table-wrap events-wrap', tabindex: '0', 'aria-label': 'Events' }, table);

  let sub = null;
  let count = 0;
  let topic = '';
  const setStatus = (t) => { status.textContent = t; };
  const addRow = (row) => {
    tbody.append(row);
    while (tbody.children.length > MAX_ROWS) tbody.firstElementChild.remove();
    if (stickIn.checked) wrap.scrollTop = wrap.scrollHeight;
  };
  const stop = () => {
    if (sub) sub.unsubscribe();
    sub = null;
    stopBtn.disabled = true;
    if (topic) setStatus(`Stopped following ${topic} after ${count} event(s).`);
  };
  const start = () => {
    stop();
    topic = topicIn.value.trim();
    if (!topic.includes('/')) {
      setStatus('A topic is tenant/room, e.g. default/runs/r_123.');
      topicIn.focus();
      return;
    }
    let opts = {};
    if (from.value === 'all') opts = { after: { seq: 0 } };
    else if (from.value === 'seq') opts = { after: { seq: Math.max(0, Number.parseInt(seqIn.value, 10) || 0) } };
    const q = new URLSearchParams({ topic });
    if (opts.after) q.set('after', String(opts.after.seq));
    history.replaceState(null, '', `#/topics?${q}`);
    count = 0;
    tbody.replaceChildren();
    setStatus(`Subscribing to ${topic}…`);
    try {
      sub = client.subscribe(topic, (ev) => {
        count++;
        addRow(h('tr', { class: `lane-${ev.lane || 'data'}`, dataset: { seq: ev.seq ?? '' } },
          h('td', {}, ev.seq ?? '—'), h('td', {}, clock(ev.ts)), h('td', {}, ev.type || ''), h('td', {}, ev.lane || ''),
          h('td', {}, h('code', { class: 'data' }, compact(ev.data)))));
        setStatus(`Following ${topic}: ${count} event(s), last seq ${ev.seq ?? '(ephemeral)'}.`);
      }, {
        ...opts,
        onGap: (g) => addRow(h('tr', { class: 'gap' }, h('td', { colspan: '5' },
          g.reason === 'epoch' ? `The topic's history was reset (new epoch ${g.epoch || ''}).`
            : `Gap: events ${g.from}–${g.to} are no longer retained.`))),
        onError: (err) => {
          sub = null;
          stopBtn.disabled = true;
          setStatus(`Refused: ${err.code}: ${err.message}`);
        },
      });
    } catch (err) {
      setStatus(String(err.message || err));
      return;
    }
    stopBtn.disabled = false;
    sub.ready.then((r) => {
      if (sub && sub.topic === topic) setStatus(`Following ${topic} (epoch ${r.epoch}, head ${r.head}): ${count} event(s).`);
    }, () => {});
  };
  stopBtn.addEventListener('click', stop);
  clearBtn.addEventListener('click', () => { tbody.replaceChildren(); });

  replaceChildren(el, h('h1', {}, 'Topics'),
    h('p', { class: 'lead' }, 'Follow any topic your token may read: a run\'s topic, or agents\' coordination topics.'),
    h('form', { class: 'filters', 'aria-label': 'Follow a topic', onsubmit: (e) => { e.preventDefault(); start(); } },
      h('div', { class: 'field grow' }, h('label', { for: 't-topic' }, 'Topic'), topicIn, datalist,
        h('span', { id: 't-topic-help', class: 'help' }, `tenant/room; your tenant is ${tenant}`)),
      h('div', { class: 'field' }, h('label', { for: 't-from' }, 'Start'), from),
      seqField,
      h('div', { class: 'field' }, h('span', { class: 'actions' }, follow, ' ', stopBtn, ' ', clearBtn))),
    h('p', {}, stickIn, ' ', h('label', { for: 't-stick', class: 'check' }, 'Keep the newest event in view')),
    status, wrap);

  api.topics(tenant).then((body) => {
    const topics = (body && body.topics) || [];
    replaceChildren(datalist, topics.map((t) => h('option', { value: t.topic }, `head ${t.head}`)));
  }).catch(() => {});
  if (topicIn.value) start();
  return () => stop();
}

function compact(v) {
  let s;
  try {
    s = JSON.stringify(v);
  } catch {
    s = String(v);
  }
  return s && s.length > 2000 ? `${s.slice(0, 2000)}… (${s.length} chars)` : s;
}
