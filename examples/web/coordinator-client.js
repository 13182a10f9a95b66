// coordinator-client.js: a dependency-free ES module that speaks the daemon's WebSocket
// protocol (docs/protocol.md) for browsers and Node.
//
// It owns one logical connection: connecting with a token, reconnecting with jittered,
// capped exponential backoff, resubscribing every topic from the last (epoch, seq) it
// delivered, dropping repeated seqs, reporting gaps, following `drain` hints, keeping the
// socket alive with pings, and publishing with acknowledgements (unacknowledged publishes
// are sent again on the next connection under the same idempotency id). It does not own
// the application's state: after a gap the application refetches what it needs.
// The API reference is docs/client.md.

/** Defaults for every tunable option (milliseconds unless the name says otherwise). */
export const DEFAULTS = Object.freeze({
  path: '/v1/ws',
  reconnectBaseMs: 500, // ceiling of the first reconnect delay
  reconnectMaxMs: 30000, // cap of the ceiling
  reconnectJitter: 0.5, // share of the ceiling that is random: delay in [c*(1-j), c]
  stableAfterMs: 10000, // a connection live this long resets the backoff
  connectTimeoutMs: 10000, // opening handshake deadline
  pingIntervalMs: 20000, // an application ping this often
  pongTimeoutMs: 10000, // nothing received this long after a ping: the socket is dead
  drainJitter: 0.2, // after `drain`, wait retry_ms plus up to this share of it
  publishTimeoutMs: 10000, // a publish not acknowledged by then is rejected with `timeout`
  maxQueuedPublishes: 1000, // publishes waiting for a connection; more are rejected
  retryThrottled: true, // resend after `rate_limited` / `overloaded` when time allows
  autoId: true, // give each publish an idempotency id so a resend cannot publish twice
});

/** Connection states reported by `client.state`. */
export const STATES = Object.freeze(['idle', 'connecting', 'live', 'reconnecting', 'closed']);

/** A rejected publish or subscription: `code` is the server's error code or one of
 * `timeout`, `queue_full`, `closed`, `unsubscribed`. */
export class CoordinatorError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = 'CoordinatorError';
    this.code = code;
    this.topic = extra.topic;
    this.retryAfterMs = extra.retryAfterMs;
    this.ref = extra.ref;
  }
}

/**
 * The delay before reconnect attempt `attempt` (1 for the first retry): the ceiling
 * min(maxMs, baseMs * 2^(attempt-1)) less a random share `jitter` of it, so a crowd of
 * clients dropped together spreads out instead of returning at once.
 */
export function backoffDelay(attempt, { baseMs, maxMs, jitter }, random = Math.random) {
  const n = Math.max(1, attempt);
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(n - 1, 30));
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(ceiling * (1 - jitter) + ceiling * jitter * r);
}

const OPEN = 1; // WebSocket.OPEN, the same for browsers and `ws`

function decodeText(data) {
  if (typeof data === 'string') return data;
  if (typeof TextDecoder !== 'undefined') {
    if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  }
  return String(data);
}

function randomId() {
  const c = globalThis.crypto;
  const bytes = new Uint8Array(12);
  // getRandomValues works in insecure browser contexts too (randomUUID does not).
  if (c && typeof c.getRandomValues === 'function') c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A copy of a user-supplied `after`: undefined (live), {seq} or {epoch, seq}. */
function checkAfter(after) {
  if (after === undefined || after === null || after === 'live') return null;
  if (typeof after !== 'object' || !Number.isInteger(after.seq) || after.seq < 0)
    throw new TypeError('after: must be {seq: integer >= 0} or {epoch, seq}');
  if (after.epoch !== undefined && typeof after.epoch !== 'string')
    throw new TypeError('after.epoch: must be a string');
  return { epoch: after.epoch, seq: after.seq };
}

/**
 * One topic followed by a client. Invariant: `position` is the (epoch, seq) of the last
 * reliable event handed to the handler (or the point a live subscription started from);
 * an event is delivered only when its seq is exactly position.seq + 1 in that epoch.
 */
class Subscription {
  constructor(client, topic, handler, opts) {
    this.topic = topic;
    this._client = client;
    this._handler = handler;
    this._onGap = opts.onGap;
    this._onError = opts.onError;
    this._position = checkAfter(opts.after); // null until known for a live subscription
    this._ref = null; // ref of the last `sub` sent
    this._resumeFrom = null; // a lower position from `drain`, for the next `sub` only
    this._resyncing = false; // a repositioning `sub` is on its way
    this._settled = false;
    this.epoch = undefined; // from the last `subscribed`
    this.head = undefined;
    this.active = true;
    this.ready = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.ready.catch(() => {}); // reported through onError too; never an unhandled rejection
  }

  /** The resume position {epoch, seq}, or null before the first `subscribed` of a live one. */
  get position() {
    return this._position ? { ...this._position } : null;
  }

  /** Stops following the topic. Events still in flight are ignored. */
  unsubscribe() {
    this._client._unsubscribe(this);
  }
}

/**
 * The client. Construct, subscribe, then `connect()`; subscriptions and publishes made
 * before the connection is live are sent once it is.
 */
export class CoordinatorClient {
  /**
   * @param {object} options
   *   url: ws(s) URL of /v1/ws; in a browser it may be omitted or relative (default '/v1/ws')
   *   token: string, or a function returning a string (or a promise of one) called before
   *          every connection attempt; sent as ?access_token=
   *   WebSocket: constructor (default globalThis.WebSocket; pass `ws`'s in Node < 22)
   *   timers: {setTimeout, clearTimeout}, random: () => [0,1), now: () => ms (for tests)
   *   and any key of DEFAULTS.
   */
  constructor(options = {}) {
    this._opt = { ...DEFAULTS };
    for (const k of Object.keys(DEFAULTS)) if (options[k] !== undefined) this._opt[k] = options[k];
    this._url = options.url;
    this._token = options.token;
    this._WS = options.WebSocket || globalThis.WebSocket;
    if (typeof this._WS !== 'function') throw new TypeError('WebSocket: no constructor given and none global');
    const t = options.timers || {};
    this._setTimeout = t.setTimeout || ((fn, ms) => globalThis.setTimeout(fn, ms));
    this._clearTimeout = t.clearTimeout || ((h) => globalThis.clearTimeout(h));
    this._random = options.random || Math.random;
    this._now = options.now || (() => Date.now());

    this._state = 'idle';
    this._wanted = false; // connect() called and close() not since
    this._conn = null; // the current connection (see _open)
    this._retired = null; // a drained connection still read for acks
    this._attempt = 0; // reconnect attempts since the last stable connection
    this._everLive = false;
    this._reconnectTimer = null;
    this._subs = new Map(); // topic -> Subscription
    this._pubs = new Map(); // ref -> pending publish, in call order
    this._counter = 0;
    this._stateListeners = new Set();
    this._errorListeners = new Set();
    this.stats = { reconnects: 0, duplicates: 0, resyncs: 0, gaps: 0, resent: 0 };
  }

  /** 'idle', 'connecting', 'live', 'reconnecting' or 'closed'. */
  get state() {
    return this._state;
  }

  /** Resume positions of all subscriptions: {topic: {epoch, seq}}. */
  positions() {
    const out = {};
    for (const [topic, sub] of this._subs) if (sub._position) out[topic] = { ...sub._position };
    return out;
  }

  /**
   * fn({type, state, ...}) for each of: connecting, live, reconnecting ({attempt, delayMs,
   * reason, code}), resumed, gap ({topic, from, to, reason, epoch}), closed.
   * Returns a function that removes the listener.
   */
  onState(fn) {
    this._stateListeners.add(fn);
    return () => this._stateListeners.delete(fn);
  }

  /** fn(error) for errors with no request to reject: server errors without a known ref,
   * malformed frames, exceptions thrown by handlers. Returns a remover. */
  onError(fn) {
    this._errorListeners.add(fn);
    return () => this._errorListeners.delete(fn);
  }

  /** Starts connecting (no-op when already started). Returns the client. */
  connect() {
    if (this._wanted) return this;
    this._wanted = true;
    this._attempt = 0;
    this._setState('connecting', {});
    this._open();
    return this;
  }

  /** Closes for good (until connect() is called again). Pending publishes are rejected
   * with `closed`; subscriptions and their positions are kept for a later connect(). */
  close() {
    if (!this._wanted && this._state === 'closed') return;
    this._wanted = false;
    if (this._reconnectTimer !== null) this._clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    for (const conn of [this._conn, this._retired]) if (conn) this._drop(conn, 1000, 'client closed');
    this._conn = null;
    this._retired = null;
    for (const p of [...this._pubs.values()]) this._settlePub(p, new CoordinatorError('closed', 'client closed', { topic: p.msg.topic }));
    this._setState('closed', {});
  }

  /**
   * Follows a topic. handler(ev) gets each event ({topic, seq, epoch, id, type, lane, ts,
   * data}); ephemeral events have no seq and are delivered as they come.
   * opts.after: undefined (live), {seq: 0} (all retained), {seq} or {epoch, seq} (resume).
   * opts.onGap(gap): events were lost ({topic, from, to, reason: 'retention'|'epoch'});
   * refetch a snapshot, delivery continues. opts.onError(err): the server refused the sub.
   * One subscription per topic: subscribing to a followed topic throws.
   */
  subscribe(topic, handler, opts = {}) {
    if (typeof topic !== 'string' || !topic.includes('/')) throw new TypeError('topic: must be "tenant/room"');
    if (typeof handler !== 'function') throw new TypeError('handler: must be a function');
    if (this._subs.has(topic)) throw new Error(`already subscribed to ${topic}`);
    const sub = new Subscription(this, topic, handler, opts);
    this._subs.set(topic, sub);
    const conn = this._conn;
    if (conn && conn.open) {
      if (!conn.live) conn.awaiting.add(topic);
      this._sendSub(conn, sub);
    }
    return sub;
  }

  /**
   * Publishes one event; resolves with {topic, seq, epoch, duplicate} once it is durable
   * (seq is null for ephemeral events). opts: type, lane ('control'|'data'|'ephemeral'),
   * id (idempotency key; generated when absent and autoId is on), timeoutMs.
   * While disconnected it is queued (at most maxQueuedPublishes, else `queue_full`).
   * Rejects with CoordinatorError: the server's code, `timeout`, `queue_full` or `closed`.
   */
  publish(topic, data, opts = {}) {
    const queued = [...this._pubs.values()].filter((p) => !p.sentOn).length;
    if (queued >= this._opt.maxQueuedPublishes && !(this._conn && this._conn.open))
      return Promise.reject(new CoordinatorError('queue_full', 'too many publishes wait for a connection', { topic }));
    const ref = `p${++this._counter}`;
    const msg = { op: 'pub', ref, topic };
    const id = opts.id !== undefined ? opts.id : this._opt.autoId ? randomId() : undefined;
    if (id !== undefined) msg.id = id;
    if (opts.type !== undefined) msg.type = opts.type;
    if (opts.lane !== undefined) msg.lane = opts.lane;
    if (data !== undefined) msg.data = data;
    return new Promise((resolve, reject) => {
      const p = { ref, msg, resolve, reject, sentOn: null, retryTimer: null, deadline: 0 };
      const timeoutMs = opts.timeoutMs !== undefined ? opts.timeoutMs : this._opt.publishTimeoutMs;
      p.deadline = this._now() + timeoutMs;
      p.timer = this._setTimeout(() => {
        p.timer = null;
        this._settlePub(p, new CoordinatorError('timeout', `no acknowledgement within ${timeoutMs} ms`, { topic, ref }));
      }, timeoutMs);
      this._pubs.set(ref, p);
      const conn = this._conn;
      if (conn && conn.open) this._sendPub(conn, p);
    });
  }

  // ---- connection lifecycle ----

  _setState(type, extra) {
    if (type === 'connecting' || type === 'live' || type === 'reconnecting' || type === 'closed') this._state = type;
    else if (type === 'resumed') this._state = 'live';
    this._emitState({ type, ...extra });
  }

  _emitState(ev) {
    const full = { ...ev, state: this._state, at: this._now() };
    for (const fn of [...this._stateListeners]) {
      try {
        fn(full);
      } catch (err) {
        this._emitError(err);
      }
    }
  }

  _emitError(err) {
    if (this._errorListeners.size === 0) {
      if (globalThis.console) globalThis.console.error('coordinator-client:', err);
      return;
    }
    for (const fn of [...this._errorListeners]) {
      try {
        fn(err);
      } catch {
        // a throwing error listener has nowhere left to report to
      }
    }
  }

  _resolveUrl(token) {
    const loc = globalThis.location;
    let u;
    if (loc && loc.href) {
      u = new URL(this._url || this._opt.path, loc.href);
      if (u.protocol === 'http:') u.protocol = 'ws:';
      else if (u.protocol === 'https:') u.protocol = 'wss:';
    } else {
      if (!this._url) throw new TypeError('url: required outside a browser');
      u = new URL(this._url);
    }
    if (token) u.searchParams.set('access_token', token);
    return u.toString();
  }

  async _open() {
    let token;
    try {
      token = typeof this._token === 'function' ? await this._token() : this._token;
    } catch (err) {
      this._emitError(err);
      if (this._wanted) this._scheduleReconnect({ reason: 'token' });
      return;
    }
    if (!this._wanted) return;
    /* One record per socket: `open` after the handshake, `live` once every subscription
     * sent on it was answered, `awaiting` the topics not answered yet. */
    const conn = { ws: null, open: false, live: false, liveSince: 0, retired: false, awaiting: new Set(),
      openTimer: null, pingTimer: null, deadTimer: null, pingRef: 0 };
    try {
      conn.ws = new this._WS(this._resolveUrl(token));
    } catch (err) {
      this._emitError(err);
      this._scheduleReconnect({ reason: 'error' });
      return;
    }
    this._conn = conn;
    conn.ws.onopen = () => this._onOpen(conn);
    conn.ws.onmessage = (e) => this._onMessage(conn, e.data);
    conn.ws.onclose = (e) => this._onClose(conn, e.code, e.reason);
    conn.ws.onerror = () => {}; // a close event follows every error
    conn.openTimer = this._setTimeout(() => this._kill(conn, 'connect timeout'), this._opt.connectTimeoutMs);
  }

  _onOpen(conn) {
    if (conn !== this._conn) return;
    this._clearTimeout(conn.openTimer);
    conn.openTimer = null;
    conn.open = true;
    this._armPing(conn);
    for (const sub of this._subs.values()) {
      conn.awaiting.add(sub.topic);
      this._sendSub(conn, sub);
    }
    for (const p of this._pubs.values()) if (!p.retryTimer) this._sendPub(conn, p);
    if (conn.awaiting.size === 0) this._goLive(conn);
  }

  _goLive(conn) {
    conn.live = true;
    conn.liveSince = this._now();
    if (this._retired) {
      this._drop(this._retired, 1000, 'replaced');
      this._retired = null;
    }
    const resumed = this._everLive;
    this._everLive = true;
    this._setState(resumed ? 'resumed' : 'live', { positions: this.positions() });
  }

  _onClose(conn, code, reason) {
    this._stopTimers(conn);
    if (conn.retired) {
      if (this._retired === conn) this._retired = null;
      return;
    }
    if (conn !== this._conn) return;
    this._conn = null;
    this._unsend(conn);
    if (!this._wanted) return;
    if (conn.live && this._now() - conn.liveSince >= this._opt.stableAfterMs) this._attempt = 0;
    this._scheduleReconnect({ reason: 'close', code, closeReason: reason });
  }

  /** Forgets a socket that is dead or replaced without waiting for its close event. */
  _drop(conn, code, why) {
    this._stopTimers(conn);
    const ws = conn.ws;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    try {
      if (typeof ws.terminate === 'function' && code >= 4000) ws.terminate();
      else ws.close(code, why);
    } catch {
      // already closed
    }
  }

  _kill(conn, why) {
    if (conn !== this._conn) return;
    this._drop(conn, 4000, why);
    this._onClose(conn, 4000, why);
  }

  _stopTimers(conn) {
    for (const k of ['openTimer', 'pingTimer', 'deadTimer']) {
      if (conn[k] !== null) this._clearTimeout(conn[k]);
      conn[k] = null;
    }
  }

  /** Publishes sent on a lost connection go out again on the next (same ref and id). */
  _unsend(conn) {
    for (const p of this._pubs.values()) if (p.sentOn === conn) p.sentOn = null;
  }

  _scheduleReconnect(info, delayMs) {
    this._attempt++;
    this.stats.reconnects++;
    const delay = delayMs !== undefined ? delayMs
      : backoffDelay(this._attempt, { baseMs: this._opt.reconnectBaseMs, maxMs: this._opt.reconnectMaxMs,
        jitter: this._opt.reconnectJitter }, this._random);
    this._setState('reconnecting', { attempt: this._attempt, delayMs: delay, ...info });
    this._reconnectTimer = this._setTimeout(() => {
      this._reconnectTimer = null;
      if (this._wanted) this._open();
    }, delay);
  }

  _armPing(conn) {
    conn.pingTimer = this._setTimeout(() => {
      conn.pingTimer = null;
      if (conn !== this._conn) return;
      this._send(conn, { op: 'ping', ref: `k${++conn.pingRef}` });
      if (conn.deadTimer === null)
        conn.deadTimer = this._setTimeout(() => this._kill(conn, 'no pong'), this._opt.pongTimeoutMs);
      this._armPing(conn);
    }, this._opt.pingIntervalMs);
  }

  _send(conn, msg) {
    if (!conn.ws || conn.ws.readyState !== OPEN) return false;
    try {
      conn.ws.send(JSON.stringify(msg));
      return true;
    } catch (err) {
      this._emitError(err);
      return false;
    }
  }

  _sendSub(conn, sub) {
    const msg = { op: 'sub', topic: sub.topic, ref: `s${++this._counter}` };
    const pos = sub._resumeFrom || sub._position;
    sub._resumeFrom = null; // one-shot: later attempts resume from what was delivered
    if (pos) msg.after = pos.epoch !== undefined ? { epoch: pos.epoch, seq: pos.seq } : { seq: pos.seq };
    sub._ref = msg.ref;
    this._send(conn, msg);
  }

  _sendPub(conn, p) {
    if (p.sentOn === conn) return;
    if (p.sentOn === null && p.everSent) this.stats.resent++;
    if (this._send(conn, p.msg)) {
      p.sentOn = conn;
      p.everSent = true;
    }
  }

  _unsubscribe(sub) {
    if (!sub.active) return;
    sub.active = false;
    if (this._subs.get(sub.topic) === sub) this._subs.delete(sub.topic);
    if (!sub._settled) {
      sub._settled = true;
      sub._reject(new CoordinatorError('unsubscribed', 'unsubscribed before the server answered', { topic: sub.topic }));
    }
    const conn = this._conn;
    if (conn && conn.open) {
      this._send(conn, { op: 'unsub', topic: sub.topic, ref: `u${++this._counter}` });
      if (conn.awaiting.delete(sub.topic) && conn.awaiting.size === 0 && !conn.live) this._goLive(conn);
    }
  }

  // ---- incoming messages ----

  _onMessage(conn, raw) {
    if (conn !== this._conn && !conn.retired) return;
    if (conn.deadTimer !== null) {
      this._clearTimeout(conn.deadTimer);
      conn.deadTimer = null;
    }
    let m;
    try {
      m = JSON.parse(decodeText(raw));
    } catch (err) {
      this._emitError(new CoordinatorError('bad_message', `malformed frame from the server: ${err.message}`));
      return;
    }
    if (!m || typeof m !== 'object' || typeof m.op !== 'string') return;
    if (conn.retired) {
      // After `drain` only answers to our publishes matter; no event follows a drain.
      if (m.op === 'puback') this._onPuback(m);
      else if (m.op === 'error') this._onServerError(conn, m);
      return;
    }
    switch (m.op) {
      case 'ev': return this._onEvent(conn, m);
      case 'subscribed': return this._onSubscribed(conn, m);
      case 'gap': return this._onGap(m);
      case 'puback': return this._onPuback(m);
      case 'error': return this._onServerError(conn, m);
      case 'drain': return this._onDrain(conn, m);
      default: return undefined; // pong, unsubscribed, and ops added later
    }
  }

  _deliver(sub, m) {
    try {
      sub._handler(m);
    } catch (err) {
      this._emitError(err);
    }
  }

  _onEvent(conn, m) {
    const sub = this._subs.get(m.topic);
    if (!sub) return;
    if (m.seq === undefined || m.seq === null) {
      this._deliver(sub, m); // ephemeral: no seq, no dedupe, no position
      return;
    }
    const pos = sub._position;
    if (pos && pos.epoch !== undefined) {
      if (pos.epoch === m.epoch && m.seq <= pos.seq) {
        this.stats.duplicates++;
        return;
      }
      if (pos.epoch !== m.epoch || m.seq !== pos.seq + 1) {
        // A hole no `gap` announced: ask again from what we have; never skip silently.
        this._resync(conn, sub);
        return;
      }
    }
    sub._position = { epoch: m.epoch, seq: m.seq };
    this._deliver(sub, m);
  }

  _resync(conn, sub) {
    if (sub._resyncing) return;
    sub._resyncing = true;
    this.stats.resyncs++;
    this._sendSub(conn, sub);
  }

  _onSubscribed(conn, m) {
    const sub = this._subs.get(m.topic);
    if (!sub) return;
    sub.epoch = m.epoch;
    sub.head = m.head;
    sub._resyncing = false;
    const pos = sub._position;
    if (!pos) sub._position = { epoch: m.epoch, seq: m.head }; // live: starts after the head
    else if (pos.epoch === undefined) pos.epoch = m.epoch; // {seq: N} means the current epoch
    else if (pos.epoch !== m.epoch) sub._position = { epoch: m.epoch, seq: 0 }; // an epoch gap follows
    if (!sub._settled) {
      sub._settled = true;
      sub._resolve({ topic: m.topic, epoch: m.epoch, head: m.head });
    }
    if (conn.awaiting.delete(m.topic) && conn.awaiting.size === 0 && !conn.live) this._goLive(conn);
  }

  _onGap(m) {
    const sub = this._subs.get(m.topic);
    if (!sub) return;
    const to = Number.isInteger(m.to) ? m.to : 0;
    const pos = sub._position || { epoch: sub.epoch, seq: 0 };
    if (m.reason === 'epoch') sub._position = { epoch: m.epoch || sub.epoch, seq: Math.max(0, to) };
    else sub._position = { epoch: pos.epoch !== undefined ? pos.epoch : sub.epoch, seq: Math.max(pos.seq, to) };
    this.stats.gaps++;
    const gap = { topic: m.topic, from: m.from, to: m.to, reason: m.reason };
    if (m.epoch !== undefined) gap.epoch = m.epoch;
    if (sub._onGap) {
      try {
        sub._onGap(gap);
      } catch (err) {
        this._emitError(err);
      }
    }
    this._emitState({ type: 'gap', ...gap });
  }

  _onPuback(m) {
    const p = this._pubs.get(m.ref);
    if (!p) return; // already settled (a resend's second answer, or timed out)
    this._settlePub(p, null, { topic: m.topic, seq: m.seq === undefined ? null : m.seq, epoch: m.epoch,
      duplicate: m.duplicate === true });
  }

  _settlePub(p, err, value) {
    if (this._pubs.get(p.ref) !== p) return;
    this._pubs.delete(p.ref);
    if (p.timer) this._clearTimeout(p.timer);
    if (p.retryTimer) this._clearTimeout(p.retryTimer);
    if (err) p.reject(err);
    else p.resolve(value);
  }

  _onServerError(conn, m) {
    const extra = { topic: m.topic, retryAfterMs: m.retry_after_ms, ref: m.ref };
    const err = new CoordinatorError(m.code || 'unknown', m.message, extra);
    const p = m.ref !== undefined ? this._pubs.get(m.ref) : undefined;
    if (p) return this._onPubError(p, err);
    for (const sub of this._subs.values()) {
      if (m.ref !== undefined && sub._ref === m.ref) return this._onSubError(conn, sub, err);
    }
    this._emitError(err);
    return undefined;
  }

  _onPubError(p, err) {
    if (err.code === 'shutting_down') {
      p.sentOn = null; // goes out again on the connection that follows the drain
      return;
    }
    const wait = err.retryAfterMs || 0;
    const throttled = err.code === 'rate_limited' || err.code === 'overloaded';
    if (throttled && this._opt.retryThrottled && this._now() + wait < p.deadline) {
      p.sentOn = null;
      p.retryTimer = this._setTimeout(() => {
        p.retryTimer = null;
        const conn = this._conn;
        if (conn && conn.open) this._sendPub(conn, p);
      }, wait);
      return;
    }
    this._settlePub(p, err);
  }

  _onSubError(conn, sub, err) {
    if (err.code === 'unavailable' || err.code === 'overloaded' || err.code === 'rate_limited') {
      // The store hiccuped: ask again on this connection rather than go silent.
      this._setTimeout(() => {
        if (this._conn === conn && conn.open && sub.active) this._sendSub(conn, sub);
      }, err.retryAfterMs || this._opt.reconnectBaseMs);
      this._emitError(err);
      return;
    }
    // Refused for good (forbidden, bad_request, too_many_subscriptions, ...).
    sub.active = false;
    this._subs.delete(sub.topic);
    if (!sub._settled) {
      sub._settled = true;
      sub._reject(err);
    }
    if (sub._onError) {
      try {
        sub._onError(err);
      } catch (e) {
        this._emitError(e);
      }
    }
    this._emitError(err);
    if (conn.awaiting.delete(sub.topic) && conn.awaiting.size === 0 && !conn.live) this._goLive(conn);
  }

  _onDrain(conn, m) {
    const given = m.positions && typeof m.positions === 'object' ? m.positions : {};
    for (const [topic, hint] of Object.entries(given)) {
      const sub = this._subs.get(topic);
      if (!sub || !hint || !Number.isInteger(hint.seq)) continue;
      const pos = sub._position;
      // Resume from the lower of ours and the server's in one epoch (a repeat is dropped,
      // a hole is not recoverable) without forgetting what was delivered; the server's
      // when the epochs differ or we have none.
      if (!pos || pos.epoch === undefined || pos.epoch !== hint.epoch) sub._position = { epoch: hint.epoch, seq: hint.seq };
      else if (hint.seq < pos.seq) sub._resumeFrom = { epoch: hint.epoch, seq: hint.seq };
    }
    if (conn.live && this._now() - conn.liveSince >= this._opt.stableAfterMs) this._attempt = 0;
    // Stop using this socket but keep reading it: acks of publishes made before the drain
    // may still arrive. Unacknowledged publishes are sent again on the next connection.
    this._stopTimers(conn);
    conn.retired = true;
    if (this._retired) this._drop(this._retired, 1000, 'replaced');
    this._retired = conn;
    this._conn = null;
    this._unsend(conn);
    const retryMs = Number.isFinite(m.retry_ms) && m.retry_ms >= 0 ? m.retry_ms : this._opt.reconnectBaseMs;
    const delay = Math.round(retryMs + retryMs * this._opt.drainJitter * this._random());
    this._scheduleReconnect({ reason: 'drain' }, delay);
  }
}

export default CoordinatorClient;
