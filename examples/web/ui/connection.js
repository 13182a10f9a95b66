// connection.js: the always-visible connection indicator in the header. It owns the
// text and the data-state of #conn and follows the client's state events: connecting,
// live, reconnecting (with the attempt, the reason and a countdown to the next try),
// resumed (a reconnect that resubscribed every topic from its position), gap (events a
// topic lost, which the page refetches), closed. While not live it ticks every second,
// so a stuck connection shows its age instead of freezing silently.

import { clock } from './dom.js';

const LABELS = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  closed: 'Offline',
};

export class ConnectionIndicator {
  constructor(el, client) {
    this.el = el;
    this.text = el.querySelector('.conn-text'); // announced: changes on transitions only
    this.detail = el.querySelector('.conn-detail'); // countdowns, not announced
    this.client = client;
    this.since = Date.now(); // when the current state began
    this.next = 0; // when the next reconnect attempt is due
    this.last = null; // the last state event
    this.flash = null; // {type, text, until}: resumed / gap, shown for a while
    this.timer = null;
    this.history = []; // last state events, newest last (for tests and the title tooltip)
    client.onState((s) => this._onState(s));
    this._render();
  }

  _onState(s) {
    this.history.push({ type: s.type, state: s.state, at: s.at, reason: s.reason, topic: s.topic });
    if (this.history.length > 50) this.history.shift();
    if (s.type === 'reconnecting') {
      this.next = Date.now() + (s.delayMs || 0);
      if (this.last && this.last.state !== 'reconnecting') this.since = Date.now();
    } else if (s.type !== 'gap') {
      this.since = Date.now();
    }
    if (s.type === 'resumed') {
      this.flash = { type: 'resumed', text: `Live · resumed at ${clock(Date.now())}`, until: Date.now() + 8000 };
    } else if (s.type === 'gap') {
      const range = s.reason === 'epoch' ? 'history reset' : `events ${s.from}–${s.to} expired`;
      this.flash = { type: 'gap', text: `Gap on ${s.topic}: ${range}; reloaded from the server`, until: Date.now() + 15000 };
    } else if (s.type !== 'live') {
      this.flash = null;
    }
    this.last = s;
    this.el.dataset.lastEvent = s.type;
    this._render();
  }

  _render() {
    const state = this.client.state;
    const now = Date.now();
    let text = LABELS[state] || state;
    let detail = '';
    let kind = state;
    if (state === 'reconnecting' && this.last) {
      const why = this.last.reason === 'drain' ? 'server restarting' : 'connection lost';
      const attempt = this.last.attempt ? `, attempt ${this.last.attempt}` : '';
      text = `Reconnecting (${why}${attempt})`;
      const wait = Math.max(0, Math.ceil((this.next - now) / 1000));
      const age = Math.floor((now - this.since) / 1000);
      detail = wait > 0 ? `next try in ${wait} s` : `trying… (down ${age} s)`;
    } else if (state === 'connecting') {
      const age = Math.floor((now - this.since) / 1000);
      if (age >= 2) detail = `${age} s`;
    }
    if (this.flash && this.flash.until > now && state === 'live') {
      text = this.flash.text;
      kind = this.flash.type;
    } else if (this.flash && this.flash.until <= now) {
      this.flash = null;
    }
    this.el.dataset.state = state;
    this.el.dataset.kind = kind;
    if (this.text.textContent !== text) this.text.textContent = text;
    if (this.detail.textContent !== detail) this.detail.textContent = detail;
    this.el.title = `Connection: ${state} since ${clock(this.since)}`;
    // Tick while something time-dependent is shown.
    const ticking = state === 'reconnecting' || state === 'connecting' || this.flash;
    if (ticking && !this.timer) {
      this.timer = setInterval(() => this._render(), 1000);
    } else if (!ticking && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
