/* What the server's messages mean to a wsload connection: events (sequence checks and
 * delivery latency), publish acks (ack latency, acknowledged seqs per topic), subscribe
 * replies, errors and pings, and NATS protocol lines for idle runs. The hot messages (ev,
 * puback: up to millions per second) are scanned by hand for the few fields needed; rarer
 * ones are parsed with jansson. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "wsload_worker.h"

/* ---- messages ---- */

/* Returns the start of key's value in a JSON text (key given with its quotes), or NULL. */
static const char *wl_json_find(const char *p, size_t len, const char *key, const char **end) {
  size_t kl = strlen(key);
  const char *e = p + len, *s = p;
  *end = e;
  while (s < e && (s = memmem(s, (size_t)(e - s), key, kl)) != NULL) {
    const char *q = s + kl;
    while (q < e && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) q++;
    if (q < e && *q == ':') {
      q++;
      while (q < e && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) q++;
      return q < e ? q : NULL;
    }
    s += kl;
  }
  return NULL;
}

/* Reads an unsigned integer value (also inside quotes) of key; false when absent. */
static bool wl_json_u64(const char *p, size_t len, const char *key, uint64_t *out) {
  const char *e;
  const char *q = wl_json_find(p, len, key, &e);
  if (!q) return false;
  if (*q == '"') q++;
  if (q >= e || *q < '0' || *q > '9') return false;
  uint64_t v = 0;
  while (q < e && *q >= '0' && *q <= '9') v = v * 10 + (uint64_t)(*q++ - '0');
  *out = v;
  return true;
}

/* Compares the string value of key with want. */
static bool wl_json_str_is(const char *p, size_t len, const char *key, const char *want) {
  const char *e;
  const char *q = wl_json_find(p, len, key, &e);
  size_t wl = strlen(want);
  return q && *q == '"' && (size_t)(e - q) > wl + 1 && memcmp(q + 1, want, wl) == 0 && q[1 + wl] == '"';
}

static void wl_on_event(wl_conn_t *c, const char *p, size_t len) {
  wl_worker_t *w = c->w;
  uint64_t seq, t0;
  w->res.c.ev_received++;
  w->last_ev_us = uv_now(&w->loop) * 1000; /* same clock as wl_monotonic_us, cheaper */
  if (wl_json_u64(p, len, "\"seq\"", &seq)) wl_seq_see(&c->seq, seq);
  else w->res.c.ev_no_seq++;
  const char *e, *q = wl_json_find(p, len, "\"t0\"", &e);
  if (q && *q >= '0' && *q <= '9') {
    t0 = 0;
    while (q < e && *q >= '0' && *q <= '9') t0 = t0 * 10 + (uint64_t)(*q++ - '0');
    /* wsload's publishers put the warm-up mark right after t0: no second scan. */
    if ((size_t)(e - q) >= 6 && memcmp(q, ",\"w\":1", 6) == 0) return;
    if (t0 < 100000000000000ULL) t0 *= 1000; /* milliseconds */
    uint64_t now = wl_realtime_us();
    wl_samples_add(&w->res.lat, now > t0 ? now - t0 : 0);
  }
}

static void wl_on_puback(wl_conn_t *c, const char *p, size_t len) {
  wl_worker_t *w = c->w;
  uint64_t ref, seq;
  if (!c->ring || !wl_json_u64(p, len, "\"ref\"", &ref)) {
    w->res.c.bad_messages++;
    return;
  }
  wl_inflight_t *f = &c->ring[ref % WL_RING];
  if (!f->sent_us) {
    w->res.c.bad_messages++;
    return;
  }
  uint64_t now = wl_monotonic_us();
  w->res.c.pub_acked++;
  w->res.c.ack_span_us = now - w->go_us;
  if (!f->warm) wl_samples_add(&w->res.ack, now - f->sent_us);
  if (wl_json_u64(p, len, "\"seq\"", &seq) && f->topic < w->res.ntopics) {
    wl_topic_rec_t *t = &w->res.topic_recs[f->topic];
    if (seq < t->min_seq) t->min_seq = seq;
    if (seq > t->max_seq) t->max_seq = seq;
    t->acked++;
  }
  const char *e;
  const char *d = wl_json_find(p, len, "\"duplicate\"", &e);
  if (d && *d == 't') w->res.c.pub_ack_duplicate++;
  f->sent_us = 0;
  c->inflight--;
}

static void wl_on_error_msg(wl_conn_t *c, const char *p, size_t len) {
  wl_worker_t *w = c->w;
  json_t *j = json_loadb(p, len, 0, NULL);
  const char *code = j ? json_string_value(json_object_get(j, "code")) : NULL;
  size_t ci = 0;
  while (ci < WL_NCODES - 1 && !(code && strcmp(code, wl_error_codes[ci]) == 0)) ci++;
  w->res.c.error_codes[ci]++;
  if (c->w->res.c.error_codes[ci] == 1 && !w->o->quiet)
    fprintf(stderr, "wsload: first error reply %.*s\n", (int)(len > 300 ? 300 : len), p);
  if (c->state == WL_C_SUBSCRIBING) {
    w->res.c.sub_errors++;
    c->state = WL_C_OPEN;
    wl_settle(c);
  } else if (c->ring) {
    if (code && strcmp(code, "rate_limited") == 0) w->res.c.pub_err_rate_limited++;
    else if (code && strcmp(code, "overloaded") == 0) w->res.c.pub_err_overloaded++;
    else w->res.c.pub_err_other++;
    const char *ref = j ? json_string_value(json_object_get(j, "ref")) : NULL;
    if (ref) {
      wl_inflight_t *f = &c->ring[strtoull(ref, NULL, 10) % WL_RING];
      if (f->sent_us) {
        f->sent_us = 0;
        c->inflight--;
      }
    }
  } else {
    w->res.c.other_messages++;
  }
  json_decref(j);
}

static void wl_on_text(wl_conn_t *c, const char *p, size_t len) {
  wl_worker_t *w = c->w;
  if (wl_json_str_is(p, len, "\"op\"", "ev")) {
    wl_on_event(c, p, len);
  } else if (wl_json_str_is(p, len, "\"op\"", "puback")) {
    wl_on_puback(c, p, len);
  } else if (wl_json_str_is(p, len, "\"op\"", "pong")) {
    w->res.c.pongs++;
  } else if (wl_json_str_is(p, len, "\"op\"", "subscribed")) {
    if (c->state == WL_C_SUBSCRIBING) {
      w->res.c.subscribed++;
      c->sub_ok = true;
      c->state = WL_C_OPEN;
      wl_settle(c);
    }
  } else if (wl_json_str_is(p, len, "\"op\"", "gap")) {
    w->res.c.gaps++;
  } else if (wl_json_str_is(p, len, "\"op\"", "error")) {
    wl_on_error_msg(c, p, len);
  } else {
    w->res.c.other_messages++;
  }
}

/* NATS over WebSocket, idle connections only: every frame is scanned for whole protocol
 * lines (INFO, PING, PONG, -ERR); bulk MSG traffic, which may split across frames, is
 * not expected on an idle connection. PONG answers our PING after CONNECT (and SUB). */
static void wl_on_nats(wl_conn_t *c, const char *p, size_t len) {
  wl_worker_t *w = c->w;
  const char *e = p + len;
  while (p < e) {
    const char *nl = memchr(p, '\n', (size_t)(e - p));
    size_t ll = (size_t)((nl ? nl : e) - p);
    if (ll >= 4 && memcmp(p, "PING", 4) == 0) {
      w->res.c.server_pings++;
      wl_send_text(c, "PONG\r\n");
    } else if (ll >= 4 && memcmp(p, "PONG", 4) == 0) {
      if (c->state == WL_C_SUBSCRIBING) {
        if (w->o->subscribe) {
          w->res.c.subscribed++;
          c->sub_ok = true;
        }
        c->state = WL_C_OPEN;
        wl_settle(c);
      } else {
        w->res.c.pongs++;
      }
    } else if (ll >= 4 && memcmp(p, "-ERR", 4) == 0) {
      if (c->state == WL_C_SUBSCRIBING) {
        w->res.c.sub_errors++;
        c->state = WL_C_OPEN;
        wl_settle(c);
      } else {
        w->res.c.other_messages++;
      }
    } else if (ll >= 4 && memcmp(p, "INFO", 4) != 0 && memcmp(p, "+OK", 3) != 0) {
      w->res.c.other_messages++;
    }
    p = nl ? nl + 1 : e;
  }
}

int wl_on_message(void *ud, uint8_t opcode, const uint8_t *payload, size_t len) {
  wl_conn_t *c = ud;
  if (c->w->o->nats && (opcode == WSF_OP_TEXT || opcode == WSF_OP_BINARY)) {
    wl_on_nats(c, (const char *)payload, len);
    return 0;
  }
  switch (opcode) {
  case WSF_OP_TEXT:
    wl_on_text(c, (const char *)payload, len);
    return 0;
  case WSF_OP_PING:
    c->w->res.c.server_pings++;
    wl_send_frame(c, WSF_OP_PONG, payload, len, false);
    return 0;
  case WSF_OP_CLOSE: {
    int code = len >= 2 ? (payload[0] << 8) | payload[1] : 1005;
    c->saw_close = true;
    if (c->state == WL_C_CLOSING) {
      wl_conn_close(c);
    } else {
      wl_conn_lost(c, code);
      uint8_t cp[125];
      size_t cl = wsf_close_payload(cp, len >= 2 ? (uint16_t)code : 1000, NULL);
      c->state = WL_C_CLOSING;
      wl_send_frame(c, WSF_OP_CLOSE, cp, cl, true);
    }
    return 1;
  }
  default:
    c->w->res.c.other_messages++; /* binary, pong */
    return 0;
  }
}
