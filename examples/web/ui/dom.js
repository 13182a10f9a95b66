// dom.js: the few DOM helpers the pages share (element building, time formatting,
// announcements). Text always goes in as text nodes, never as HTML: run output, prompts
// and event data come from models and users.

/**
 * h('button', {class: 'x', onclick: fn, 'aria-label': 'y'}, 'text', child, [more])
 * builds an element. Attributes: `class`, `text`, `on<event>` (listeners), `dataset`
 * (object), boolean true/false (set/omit), anything else via setAttribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(document.createTextNode(String(c)));
  }
}

/** Replaces every child of el. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** "14:03:21" (local time) for a ms timestamp, '' when absent. */
export function clock(ms) {
  if (!Number.isFinite(ms)) return '';
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** "2024-05-01 14:03:21" (local) for a ms timestamp. */
export function dateTime(ms) {
  if (!Number.isFinite(ms)) return '';
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A <time> element for a ms timestamp. */
export function timeEl(ms, { withDate = false } = {}) {
  if (!Number.isFinite(ms)) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: new Date(ms).toISOString(), title: dateTime(ms) }, withDate ? dateTime(ms) : clock(ms));
}

/** Pretty JSON for display. */
export function pretty(v) {
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

/** A status badge: <span class="badge status-running">running</span>. */
export function badge(status) {
  return h('span', { class: `badge status-${status || 'unknown'}` }, status || 'unknown');
}

/** Sends a message to the page's polite live region (screen readers). */
export function announce(text) {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  // A new text node after a tick is announced even when the text repeats.
  setTimeout(() => {
    region.textContent = text;
  }, 30);
}
