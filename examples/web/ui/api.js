// api.js: the daemon's HTTP API as the UI uses it (workflows, runs, topic listing), with
// the bearer token from the settings page. Every failure becomes an ApiError carrying the
// HTTP status and the parsed {"error": {...}} body, so pages can show the server's words
// (validation errors name their field). It owns no state besides the token accessors.

const TOKEN_KEY = 'coordinator.token';

/** The token the user entered (sessionStorage), or '' for auth mode none. */
export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: the token lives for this page only
  }
}

/** The tenant named by the token's claims (not verified: only for display and defaults). */
export function tokenTenant(token = getToken()) {
  const parts = token.split('.');
  if (parts.length !== 3) return 'default';
  try {
    const json = atob(parts[1].replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(json);
    return typeof claims.tenant === 'string' ? claims.tenant : 'default';
  } catch {
    return 'default';
  }
}

/** An HTTP failure: `status` (0 when the daemon did not answer), `code`, `body`. */
export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.body = body;
  }

  /** Field errors of a 400 ([{path, message}]), from error.errors or errors. */
  get fieldErrors() {
    const b = this.body || {};
    const list = (b.error && Array.isArray(b.error.errors) && b.error.errors) || (Array.isArray(b.errors) && b.errors) ||
      (b.error && Array.isArray(b.error.details) && b.error.details) || [];
    return list.map((e) => (typeof e === 'string' ? { path: '', message: e } : {
      path: e.path || e.field || '',
      message: e.reason || e.message || JSON.stringify(e),
    }));
  }
}

async function request(method, path, { body, headers = {}, signal } = {}) {
  const h = { accept: 'application/json', ...headers };
  const token = getToken();
  if (token) h.authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    h['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: payload, signal, cache: 'no-store' });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'unreachable', 'the daemon did not answer (is it running?)', null);
  }
  const text = await res.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!res.ok) {
    const e = (json && json.error) || {};
    const code = typeof e === 'object' ? e.code : String(e);
    const message = (typeof e === 'object' && e.message) || `${method} ${path}: HTTP ${res.status}`;
    throw new ApiError(res.status, code || `http_${res.status}`, message, json);
  }
  return json;
}

const enc = encodeURIComponent;

export const api = {
  workflows: () => request('GET', '/v1/workflows'),
  workflow: (name) => request('GET', `/v1/workflows/${enc(name)}`),
  startRun: (name, input, idempotencyKey) =>
    request('POST', `/v1/workflows/${enc(name)}/runs`, {
      body: { input },
      headers: idempotencyKey ? { 'idempotency-key': idempotencyKey } : {},
    }),
  run: (id, opts) => request('GET', `/v1/runs/${enc(id)}`, opts),
  runs: (filters = {}, opts = {}) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    const qs = q.toString();
    return request('GET', `/v1/runs${qs ? `?${qs}` : ''}`, opts);
  },
  cancel: (id) => request('POST', `/v1/runs/${enc(id)}/cancel`, { body: {} }),
  approve: (id, step, approve, comment) =>
    request('POST', `/v1/runs/${enc(id)}/approvals/${enc(step)}`, { body: { approve, comment: comment || null } }),
  topics: (tenant) => request('GET', `/v1/streams/${enc(tenant)}`),
};
