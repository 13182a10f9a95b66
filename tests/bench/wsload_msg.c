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

static void wl_on_event(wl_conn_t *c, const char *p, size_t len) {
  wl_worker_t *w = c->w;
  wl_ev_scan_t ev;
  w->res.c.ev_received++;
  w->last_ev_us = uv_now(&w->loop) * 1000; /* same clock as wl_monotonic_us, cheaper */
  wl_scan_ev(p, len, &ev);
  if (ev.has_seq) wl_seq_see(&c->seq, ev.seq);
  else w->res.c.ev_no_seq++;
  if (!ev.has_t0 || ev.warm) return;
  /* Receipt time: when the read that brought the message returned (one clock read per
   * read, not per message). */
  if (!w->rx_realtime_us) w->rx_realtime_us = wl_realtime_us();
  uint64_t now = w->rx_realtime_us;
  wl_samples_add(&w->res.lat, now > ev.t0_us ? now - ev.t0_us : 0);
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
  switch (wl_scan_op(p, len)) {
  case WL_OP_EV:
    wl_on_event(c, p, len);
    break;
  case WL_OP_PUBACK:
    wl_on_puback(c, p, len);
    break;
  case WL_OP_PONG:
    w->res.c.pongs++;
    break;
  case WL_OP_SUBSCRIBED:
    if (c->state == WL_C_SUBSCRIBING) {
      w->res.c.subscribed++;
      c->sub_ok = true;
      c->state = WL_C_OPEN;
      wl_settle(c);
    }
    break;
  case WL_OP_GAP:
    w->res.c.gaps++;
    break;
  case WL_OP_ERROR:
    wl_on_error_msg(c, p, len);
    break;
  default:
    w->res.c.other_messages++;
    break;
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
