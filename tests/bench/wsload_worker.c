/* One wsload worker process: a libuv loop holding up to a few thousand WebSocket client
 * connections in one role (idle, subscriber or publisher), paced connection setup, the
 * publish clock, sequence and latency recording, and a clean close at the end. It owns
 * no output: its result goes to the parent as a blob (wsload_stats.c). The JSON of the
 * messages it reads is scanned by hand for the few fields it needs on the hot paths
 * (ev, puback: up to millions per second); rarer messages are parsed with jansson. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "base/mem.h"
#include "wsframe.h"
#include "wsload.h"

#define WL_RING 65536u              /* publishes in flight per publisher connection */
#define WL_MAX_MESSAGE (4u << 20)   /* bytes */
#define WL_MAX_WRITE_QUEUE (4u << 20) /* bytes queued per connection before skipping */
#define WL_MAX_INPROGRESS 1024u     /* connections being set up at once per worker */
#define WL_CLOSE_WAIT_MS 2000

typedef enum {
  WL_C_NEW, WL_C_CONNECTING, WL_C_HANDSHAKE, WL_C_SUBSCRIBING, WL_C_OPEN, WL_C_CLOSING, WL_C_DEAD
} wl_cstate_t;

typedef enum { WL_P_CONNECT, WL_P_WAIT_GO, WL_P_RUN, WL_P_DRAIN, WL_P_CLOSING } wl_phase_t;

typedef struct wl_inflight {
  uint64_t sent_us; /* monotonic; 0 = slot free */
  uint32_t topic;
  uint32_t warm;
} wl_inflight_t;

/* One client connection. Invariants: handle_open while tcp is initialised and not yet
 * closed; settled once it is open (and subscribed when it subscribes) or has failed. */
typedef struct wl_conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  struct wl_worker *w; /* borrowed */
  uint32_t gindex;     /* global connection number */
  uint32_t topic;
  wl_cstate_t state;
  bool handle_open, settled, opened, saw_close, sub_ok;
  uint64_t deadline_us; /* monotonic: give up connecting / subscribing */
  char key[WSF_KEY_LEN + 1];
  char *hs; /* owned: upgrade answer so far */
  size_t hs_len, hs_cap;
  wsf_reader_t rd;
  wl_seq_t seq;
  wl_inflight_t *ring; /* owned, publishers only */
  uint64_t next_ref, inflight;
  uint8_t *out; /* owned: frames batched this tick */
  size_t out_len, out_cap;
} wl_conn_t;

typedef struct wl_worker {
  const wl_opts_t *o;
  const wl_worker_spec_t *spec;
  uv_loop_t loop;
  uv_timer_t tick, sweep, phase_timer, deadline;
  uv_pipe_t ctl;
  wl_conn_t *conns; /* owned, n */
  uint32_t n, started, settled;
  uint32_t open_handles;
  wl_phase_t phase;
  bool ctl_open;
  uint64_t t_connect_us, go_us, drain_us, last_ev_us;
  uint64_t pub_count, pub_rr, sweep_count;
  uint64_t rng;
  char *pad; /* owned: payload padding */
  wl_result_t res;
  char rbuf[65536]; /* every connection's reads land here, one at a time */
  char ctlbuf[64];
  struct sockaddr_storage dst;
} wl_worker_t;

typedef struct wl_write {
  uv_write_t req;
  wl_conn_t *c;
  bool close_after;
  uv_buf_t buf;
  uint8_t data[];
} wl_write_t;

static void wl_conn_close(wl_conn_t *c);
static void wl_worker_begin_close(wl_worker_t *w);

static uint64_t wl_rand(wl_worker_t *w) {
  uint64_t x = w->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  w->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static void wl_mask_make(wl_worker_t *w, uint8_t mask[4]) {
  uint64_t r = wl_rand(w);
  memcpy(mask, &r, 4);
}

/* ---- writing ---- */

static void wl_on_write(uv_write_t *req, int status) {
  wl_write_t *wr = container_of(req, wl_write_t, req);
  wl_conn_t *c = wr->c;
  bool close_after = wr->close_after;
  free(wr);
  if (status < 0 || close_after) wl_conn_close(c);
}

static void wl_send_raw(wl_conn_t *c, const void *data, size_t len, bool close_after) {
  if (!c->handle_open || uv_is_closing((uv_handle_t *)&c->tcp)) return;
  wl_write_t *wr = xmalloc(sizeof(*wr) + len);
  wr->c = c;
  wr->close_after = close_after;
  memcpy(wr->data, data, len);
  wr->buf = uv_buf_init((char *)wr->data, (unsigned)len);
  if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &wr->buf, 1, wl_on_write) < 0) {
    free(wr);
    wl_conn_close(c);
  }
}

static void wl_send_frame(wl_conn_t *c, uint8_t opcode, const void *payload, size_t len,
                          bool close_after) {
  uint8_t stack[512];
  uint8_t *buf = len + WSF_MAX_HEADER <= sizeof(stack) ? stack : xmalloc(len + WSF_MAX_HEADER);
  uint8_t mask[4];
  wl_mask_make(c->w, mask);
  size_t n = wsf_frame_encode(buf, len + WSF_MAX_HEADER, opcode, true, mask, payload, len);
  wl_send_raw(c, buf, n, close_after);
  if (buf != stack) free(buf);
}

static void wl_send_text(wl_conn_t *c, const char *text) {
  wl_send_frame(c, WSF_OP_TEXT, text, strlen(text), false);
}

/* ---- connection lifecycle ---- */

static void wl_settle(wl_conn_t *c) {
  wl_worker_t *w = c->w;
  if (c->settled) return;
  c->settled = true;
  w->settled++;
  if (w->settled == w->n && w->phase == WL_P_CONNECT) {
    w->phase = WL_P_WAIT_GO;
    w->res.c.connect_us = wl_monotonic_us() - w->t_connect_us;
    char m = WL_MSG_READY;
    if (write(w->spec->ctl_out, &m, 1) != 1) wl_worker_begin_close(w);
  }
}

static void wl_on_close(uv_handle_t *h) {
  wl_conn_t *c = container_of((uv_tcp_t *)h, wl_conn_t, tcp);
  wl_worker_t *w = c->w;
  c->handle_open = false;
  c->state = WL_C_DEAD;
  w->open_handles--;
  if (w->phase == WL_P_CLOSING && w->open_handles == 0) {
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->sweep, NULL);
    uv_close((uv_handle_t *)&w->phase_timer, NULL);
    uv_close((uv_handle_t *)&w->deadline, NULL);
    if (w->ctl_open) {
      w->ctl_open = false;
      uv_close((uv_handle_t *)&w->ctl, NULL);
    }
  }
}

static void wl_conn_close(wl_conn_t *c) {
  if (!c->handle_open || uv_is_closing((uv_handle_t *)&c->tcp)) return;
  uv_close((uv_handle_t *)&c->tcp, wl_on_close);
}

static void wl_conn_fail(wl_conn_t *c, uint64_t *reason) {
  wl_worker_t *w = c->w;
  if (!c->opened && !c->settled) {
    w->res.c.failed++;
    (*reason)++;
  }
  wl_settle(c);
  wl_conn_close(c);
}

/* The server ended an open connection (close frame code, or 0 for no close frame). */
static void wl_conn_lost(wl_conn_t *c, int code) {
  wl_counts_t *k = &c->w->res.c;
  if (c->state == WL_C_CLOSING || c->w->phase == WL_P_CLOSING) return;
  k->closed_by_server++;
  switch (code) {
  case 0: k->close_abrupt++; break;
  case 1000: k->close_1000++; break;
  case 1001: k->close_1001++; break;
  case 1008: k->close_1008++; break;
  case 1009: k->close_1009++; break;
  case 1011: k->close_1011++; break;
  default: k->close_other++; break;
  }
  if (c->state == WL_C_SUBSCRIBING) {
    k->sub_errors++;
    wl_settle(c);
  }
}

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

static int wl_on_message(void *ud, uint8_t opcode, const uint8_t *payload, size_t len) {
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

/* ---- reading ---- */

static void wl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  wl_conn_t *c = container_of((uv_tcp_t *)h, wl_conn_t, tcp);
  *buf = uv_buf_init(c->w->rbuf, sizeof(c->w->rbuf)); /* one read at a time per loop */
}

static void wl_conn_opened(wl_conn_t *c) {
  wl_worker_t *w = c->w;
  const wl_opts_t *o = w->o;
  c->opened = true;
  w->res.c.opened++;
  free(c->hs);
  c->hs = NULL;
  wsf_reader_init(&c->rd, WL_MAX_MESSAGE);
  bool sub = w->spec->role == WL_ROLE_SUB || (w->spec->role == WL_ROLE_IDLE && o->subscribe);
  if (o->nats) {
    /* CONNECT, SUB when asked, then PING: the PONG says both were processed. */
    char m[512];
    int n = snprintf(m, sizeof(m),
                     "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n");
    if (sub) {
      n += snprintf(m + n, sizeof(m) - (size_t)n, "SUB ");
      for (const char *q = o->topic_prefix; *q && (size_t)n < sizeof(m) - 64; q++)
        m[n++] = *q == '/' ? '.' : *q;
      n += snprintf(m + n, sizeof(m) - (size_t)n, "%u 1\r\n", c->topic);
      w->res.c.sub_sent++;
    }
    snprintf(m + n, sizeof(m) - (size_t)n, "PING\r\n");
    wl_send_text(c, m);
    if (o->ping_once) {
      wl_send_text(c, "PING\r\n");
      w->res.c.pings_sent++;
    }
    c->state = WL_C_SUBSCRIBING;
    c->deadline_us = wl_monotonic_us() + (uint64_t)(o->connect_timeout * 1e6);
    return;
  }
  if (w->spec->role == WL_ROLE_IDLE && o->ping_once) {
    char m[64];
    snprintf(m, sizeof(m), "{\"op\":\"ping\",\"ref\":\"%u\"}", c->gindex);
    wl_send_text(c, m);
    w->res.c.pings_sent++;
  }
  if (sub) {
    char m[256];
    snprintf(m, sizeof(m), "{\"op\":\"sub\",\"topic\":\"%s%u\"}", o->topic_prefix, c->topic);
    wl_send_text(c, m);
    w->res.c.sub_sent++;
    c->state = WL_C_SUBSCRIBING;
    c->deadline_us = wl_monotonic_us() + (uint64_t)(o->connect_timeout * 1e6);
  } else {
    c->state = WL_C_OPEN;
    if (w->spec->role == WL_ROLE_PUB) c->ring = xcalloc(WL_RING, sizeof(wl_inflight_t));
    wl_settle(c);
  }
}

static void wl_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  wl_conn_t *c = container_of((uv_tcp_t *)s, wl_conn_t, tcp);
  wl_worker_t *w = c->w;
  if (nread == 0) return;
  if (nread < 0) {
    if (c->state == WL_C_HANDSHAKE) wl_conn_fail(c, &w->res.c.fail_handshake);
    else {
      if (!c->saw_close) wl_conn_lost(c, 0);
      wl_conn_close(c);
    }
    return;
  }
  const uint8_t *data = (const uint8_t *)buf->base;
  size_t len = (size_t)nread;
  if (c->state == WL_C_HANDSHAKE) {
    if (c->hs_len + len > c->hs_cap) {
      c->hs_cap = c->hs_len + len + 1024;
      c->hs = xrealloc(c->hs, c->hs_cap);
    }
    memcpy(c->hs + c->hs_len, data, len);
    c->hs_len += len;
    int rc = wsf_response_check(c->hs, c->hs_len, c->key, NULL);
    if (rc == -EAGAIN) return;
    if (rc < 0) {
      wl_conn_fail(c, rc == -ECONNREFUSED ? &w->res.c.fail_http : &w->res.c.fail_handshake);
      return;
    }
    size_t head = (size_t)rc, rest = c->hs_len - head;
    uint8_t *tail = rest ? xmalloc(rest) : NULL;
    if (rest) memcpy(tail, c->hs + head, rest);
    wl_conn_opened(c);
    int frc = rest ? wsf_reader_feed(&c->rd, tail, rest, wl_on_message, c) : 0;
    free(tail);
    if (frc < 0) {
      w->res.c.proto_errors++;
      wl_conn_lost(c, 0);
      wl_conn_close(c);
    }
    return;
  }
  if (c->state == WL_C_DEAD) return;
  int rc = wsf_reader_feed(&c->rd, data, len, wl_on_message, c);
  if (rc < 0) {
    w->res.c.proto_errors++;
    wl_conn_lost(c, 0);
    wl_conn_close(c);
  }
}

/* ---- connecting ---- */

static void wl_on_connect(uv_connect_t *req, int status) {
  wl_conn_t *c = container_of(req, wl_conn_t, creq);
  wl_worker_t *w = c->w;
  if (status < 0) {
    if (status != UV_ECANCELED) wl_conn_fail(c, &w->res.c.fail_connect);
    return;
  }
  if (c->state != WL_C_CONNECTING) return;
  uint8_t nonce[16];
  uint64_t a = wl_rand(w), b = wl_rand(w);
  memcpy(nonce, &a, 8);
  memcpy(nonce + 8, &b, 8);
  wsf_key_make(nonce, c->key);
  char req_text[1024];
  size_t n = wsf_request_build(req_text, sizeof(req_text), w->o->host, w->o->port, w->o->path, c->key);
  c->state = WL_C_HANDSHAKE;
  if (uv_read_start((uv_stream_t *)&c->tcp, wl_alloc, wl_on_read) < 0) {
    wl_conn_fail(c, &w->res.c.fail_connect);
    return;
  }
  wl_send_raw(c, req_text, n, false);
}

static void wl_conn_start(wl_conn_t *c) {
  wl_worker_t *w = c->w;
  const wl_opts_t *o = w->o;
  int family = w->dst.ss_family;
  c->deadline_us = wl_monotonic_us() + (uint64_t)(o->connect_timeout * 1e6);
  if (uv_tcp_init_ex(&w->loop, &c->tcp, (unsigned)family) < 0) {
    w->res.c.failed++;
    w->res.c.fail_connect++;
    c->state = WL_C_DEAD;
    wl_settle(c);
    return;
  }
  c->handle_open = true;
  w->open_handles++;
  c->state = WL_C_CONNECTING;
  uv_tcp_nodelay(&c->tcp, 1);
  if (family == AF_INET && o->src_addrs > 0) {
    uv_os_fd_t fd;
    int one = 1;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
      (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    struct sockaddr_in src;
    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7F000002u + c->gindex % o->src_addrs);
    if (uv_tcp_bind(&c->tcp, (const struct sockaddr *)&src, 0) < 0) {
      wl_conn_fail(c, &w->res.c.fail_connect);
      return;
    }
  }
  if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&w->dst, wl_on_connect) < 0)
    wl_conn_fail(c, &w->res.c.fail_connect);
}

/* ---- publishing ---- */

static void wl_publish_one(wl_worker_t *w, wl_conn_t *c, bool warm) {
  const wl_opts_t *o = w->o;
  if (c->inflight >= WL_RING - 1 || c->ring[c->next_ref % WL_RING].sent_us ||
      uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WL_MAX_WRITE_QUEUE) {
    w->res.c.pub_skipped++;
    return;
  }
  uint32_t topic = (uint32_t)((w->pub_count * w->o->pub_workers + w->spec->index) % o->topics);
  uint64_t ref = c->next_ref++;
  /* Plain ASCII with numbers only: formatting by hand is safe here and keeps the
   * publisher cheap at hundreds of thousands of messages per second. */
  char text[256 + 65536];
  int tl = snprintf(text, sizeof(text),
                    "{\"op\":\"pub\",\"ref\":\"%llu\",\"topic\":\"%s%u\",\"type\":\"bench\","
                    "\"data\":{\"t0\":%llu,%s\"pad\":\"%s\"}}",
                    (unsigned long long)ref, o->topic_prefix, topic,
                    (unsigned long long)wl_realtime_us(), warm ? "\"w\":1," : "", w->pad);
  if (tl < 0 || (size_t)tl >= sizeof(text)) tl = (int)sizeof(text) - 1;
  size_t need = c->out_len + (size_t)tl + WSF_MAX_HEADER;
  if (need > c->out_cap) {
    c->out_cap = need * 2;
    c->out = xrealloc(c->out, c->out_cap);
  }
  uint8_t mask[4];
  wl_mask_make(w, mask);
  c->out_len += wsf_frame_encode(c->out + c->out_len, c->out_cap - c->out_len, WSF_OP_TEXT, true,
                                 mask, text, (size_t)tl);
  wl_inflight_t *f = &c->ring[ref % WL_RING];
  f->sent_us = wl_monotonic_us();
  f->topic = topic;
  f->warm = warm;
  c->inflight++;
  w->res.c.pub_sent++;
}

static void wl_publish_tick(wl_worker_t *w) {
  uint64_t now = wl_monotonic_us();
  double elapsed = (double)(now - w->go_us) / 1e6;
  bool last = elapsed >= w->o->duration;
  if (last) elapsed = w->o->duration; /* top up to exactly rate x duration, then drain */
  uint64_t target = (uint64_t)(elapsed * w->o->rate * w->spec->share + 1e-9);
  bool warm = elapsed < w->o->warmup;
  for (uint32_t guard = 0; w->pub_count < target && guard < 100000; guard++) {
    wl_conn_t *c = NULL;
    for (uint32_t i = 0; i < w->n && !c; i++) {
      wl_conn_t *cand = &w->conns[(w->pub_rr + i) % w->n];
      if (cand->state == WL_C_OPEN && cand->ring) c = cand;
    }
    if (!c) {
      w->pub_count = target; /* nobody to publish on: count nothing as sent */
      break;
    }
    w->pub_rr = (uint64_t)(c - w->conns) + 1;
    wl_publish_one(w, c, warm);
    w->pub_count++;
  }
  for (uint32_t i = 0; i < w->n; i++) {
    wl_conn_t *c = &w->conns[i];
    if (!c->out_len) continue;
    wl_send_raw(c, c->out, c->out_len, false);
    c->out_len = 0;
  }
  if (last) {
    w->res.c.publish_us = now - w->go_us;
    w->phase = WL_P_DRAIN;
    w->drain_us = now;
  }
}

/* ---- phases and timers ---- */

static void wl_on_close_wait(uv_timer_t *t) {
  wl_worker_t *w = t->data;
  for (uint32_t i = 0; i < w->n; i++) wl_conn_close(&w->conns[i]);
}

static void wl_worker_begin_close(wl_worker_t *w) {
  if (w->phase == WL_P_CLOSING) return;
  if (w->res.c.publish_us == 0 && w->go_us && w->spec->role == WL_ROLE_PUB)
    w->res.c.publish_us = wl_monotonic_us() - w->go_us;
  w->phase = WL_P_CLOSING;
  uv_timer_stop(&w->tick);
  uint8_t cp[125];
  size_t cl = wsf_close_payload(cp, 1000, "wsload done");
  for (uint32_t i = 0; i < w->n; i++) {
    wl_conn_t *c = &w->conns[i];
    if (!c->handle_open) continue;
    if (c->state == WL_C_OPEN || c->state == WL_C_SUBSCRIBING) {
      c->state = WL_C_CLOSING;
      wl_send_frame(c, WSF_OP_CLOSE, cp, cl, false);
    } else if (c->state != WL_C_CLOSING) {
      wl_conn_close(c);
    }
  }
  uv_timer_stop(&w->phase_timer);
  uv_timer_start(&w->phase_timer, wl_on_close_wait, WL_CLOSE_WAIT_MS, 0);
  if (w->open_handles == 0) {
    /* Nothing left open: close the loop's own handles right away. */
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->sweep, NULL);
    uv_close((uv_handle_t *)&w->phase_timer, NULL);
    uv_close((uv_handle_t *)&w->deadline, NULL);
    if (w->ctl_open) {
      w->ctl_open = false;
      uv_close((uv_handle_t *)&w->ctl, NULL);
    }
  }
}

static void wl_on_phase_end(uv_timer_t *t) {
  wl_worker_begin_close(t->data);
}

static void wl_on_tick(uv_timer_t *t) {
  wl_worker_t *w = t->data;
  if (w->phase == WL_P_CONNECT) {
    double elapsed = (double)(wl_monotonic_us() - w->t_connect_us) / 1e6;
    double per_worker = w->o->conn_rate * w->spec->nconns /
                        (double)(w->spec->role == WL_ROLE_PUB ? w->o->pubs : w->o->conns);
    uint64_t allowed = (uint64_t)(elapsed * per_worker) + 1;
    while (w->started < w->n && w->started < allowed &&
           w->started - w->settled < WL_MAX_INPROGRESS)
      wl_conn_start(&w->conns[w->started++]);
  } else if (w->phase == WL_P_RUN && w->spec->role == WL_ROLE_PUB) {
    wl_publish_tick(w);
  }
}

static void wl_on_sweep(uv_timer_t *t) {
  wl_worker_t *w = t->data;
  uint64_t now = wl_monotonic_us();
  const wl_opts_t *o = w->o;
  w->sweep_count++;
  if (w->phase == WL_P_CONNECT || w->phase == WL_P_WAIT_GO || w->phase == WL_P_RUN) {
    for (uint32_t i = 0; i < w->started; i++) {
      wl_conn_t *c = &w->conns[i];
      if (c->settled || now < c->deadline_us) continue;
      if (c->state == WL_C_SUBSCRIBING) {
        w->res.c.sub_timeouts++;
        c->state = WL_C_OPEN;
        wl_settle(c);
      } else {
        wl_conn_fail(c, &w->res.c.fail_timeout);
      }
    }
  }
  /* Pings every ping_interval: each sweep (100 ms) pings its share of the connections. */
  if (o->ping_interval > 0 && w->phase == WL_P_RUN) {
    uint64_t slots = (uint64_t)(o->ping_interval * 10);
    if (slots == 0) slots = 1;
    for (uint32_t i = (uint32_t)(w->sweep_count % slots); i < w->n; i += (uint32_t)slots) {
      wl_conn_t *c = &w->conns[i];
      if (c->state != WL_C_OPEN) continue;
      char m[64];
      if (o->nats) snprintf(m, sizeof(m), "PING\r\n");
      else snprintf(m, sizeof(m), "{\"op\":\"ping\",\"ref\":\"%u\"}", c->gindex);
      wl_send_text(c, m);
      w->res.c.pings_sent++;
    }
  }
  if (w->phase == WL_P_DRAIN) {
    bool done;
    if (w->spec->role == WL_ROLE_PUB) {
      uint64_t inflight = 0;
      for (uint32_t i = 0; i < w->n; i++) inflight += w->conns[i].inflight;
      done = inflight == 0;
    } else {
      uint64_t last = w->last_ev_us > w->drain_us ? w->last_ev_us : w->drain_us;
      done = now - last > 1000000; /* quiet for 1 s */
    }
    if (done || now - w->drain_us > (uint64_t)(o->grace * 1e6)) wl_worker_begin_close(w);
  }
}

static void wl_on_deadline(uv_timer_t *t) {
  wl_worker_t *w = t->data;
  fprintf(stderr, "wsload: worker %u hit its deadline, closing\n", w->spec->index);
  wl_worker_begin_close(w);
}

static void wl_go(wl_worker_t *w) {
  if (w->phase != WL_P_WAIT_GO && w->phase != WL_P_CONNECT) return;
  w->phase = WL_P_RUN;
  w->go_us = wl_monotonic_us();
  bool wait_for_stop = w->o->mode == WL_MODE_PUBSUB && w->spec->role == WL_ROLE_SUB;
  if (w->spec->role == WL_ROLE_PUB) {
    uv_timer_stop(&w->tick);
    uv_timer_start(&w->tick, wl_on_tick, 1, 1);
  } else if (!wait_for_stop) {
    uv_timer_start(&w->phase_timer, wl_on_phase_end, (uint64_t)(w->o->duration * 1000), 0);
  }
}

static void wl_ctl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  wl_worker_t *w = h->data;
  *buf = uv_buf_init(w->ctlbuf, sizeof(w->ctlbuf));
}

static void wl_on_ctl(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  wl_worker_t *w = s->data;
  if (nread < 0) {
    wl_worker_begin_close(w); /* the parent went away */
    return;
  }
  for (ssize_t i = 0; i < nread; i++) {
    if (buf->base[i] == WL_MSG_GO) {
      wl_go(w);
    } else if (buf->base[i] == WL_MSG_STOP && w->phase == WL_P_RUN) {
      w->phase = WL_P_DRAIN;
      w->drain_us = wl_monotonic_us();
    }
  }
}

static void wl_result_fill(wl_worker_t *w) {
  wl_result_t *r = &w->res;
  if (w->spec->role != WL_ROLE_PUB) {
    r->nconn_recs = w->n;
    r->conn_recs = xcalloc(w->n ? w->n : 1, sizeof(wl_conn_rec_t));
  }
  for (uint32_t i = 0; i < w->n; i++) {
    wl_conn_t *c = &w->conns[i];
    r->c.ev_duplicates += c->seq.duplicates;
    r->c.ev_reordered += c->seq.reordered;
    r->c.ev_holes += c->seq.holes;
    if (r->conn_recs) {
      wl_conn_rec_t *cr = &r->conn_recs[i];
      cr->topic = c->topic;
      cr->subscribed = c->sub_ok;
      cr->first = c->seq.have ? c->seq.first : 0;
      cr->last = c->seq.have ? c->seq.last : 0;
      cr->unique = c->seq.unique;
      cr->holes = c->seq.holes;
    }
    wsf_reader_close(&c->rd);
    free(c->hs);
    free(c->ring);
    free(c->out);
  }
}

int wl_worker_run(const wl_opts_t *o, const wl_worker_spec_t *spec) {
  wl_worker_t *w = xcalloc(1, sizeof(*w));
  w->o = o;
  w->spec = spec;
  w->n = spec->nconns;
  w->rng = wl_realtime_us() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
  w->res.c.conns = w->n;
  wl_samples_init(&w->res.lat, o->max_samples, wl_rand(w));
  wl_samples_init(&w->res.ack, o->max_samples, wl_rand(w));
  if (spec->role == WL_ROLE_PUB) {
    w->res.ntopics = o->topics;
    w->res.topic_recs = xcalloc(o->topics, sizeof(wl_topic_rec_t));
    for (uint32_t i = 0; i < o->topics; i++) w->res.topic_recs[i].min_seq = UINT64_MAX;
  }
  size_t padn = o->payload > 31 ? o->payload - 31 : 0;
  w->pad = xmalloc(padn + 1);
  memset(w->pad, 'x', padn);
  w->pad[padn] = 0;
  if (o->ipv6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&w->dst;
    (void)uv_ip6_addr(o->host, o->port, a);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&w->dst;
    (void)uv_ip4_addr(o->host, o->port, a);
  }
  w->conns = xcalloc(w->n ? w->n : 1, sizeof(wl_conn_t));
  for (uint32_t i = 0; i < w->n; i++) {
    wl_conn_t *c = &w->conns[i];
    c->w = w;
    c->gindex = spec->first_conn + i;
    c->topic = c->gindex % o->topics;
  }
  int rc = uv_loop_init(&w->loop);
  if (rc < 0) {
    fprintf(stderr, "wsload: uv_loop_init: %s\n", uv_strerror(rc));
    return 1;
  }
  uv_timer_init(&w->loop, &w->tick);
  uv_timer_init(&w->loop, &w->sweep);
  uv_timer_init(&w->loop, &w->phase_timer);
  uv_timer_init(&w->loop, &w->deadline);
  w->tick.data = w->sweep.data = w->phase_timer.data = w->deadline.data = w;
  uv_pipe_init(&w->loop, &w->ctl, 0);
  w->ctl.data = w;
  if (uv_pipe_open(&w->ctl, spec->ctl_in) == 0 &&
      uv_read_start((uv_stream_t *)&w->ctl, wl_ctl_alloc, wl_on_ctl) == 0)
    w->ctl_open = true;
  double setup_s = (double)o->conns / o->conn_rate + (double)o->pubs / o->conn_rate + o->connect_timeout;
  uint64_t limit_ms = (uint64_t)((setup_s + o->duration + o->grace + 60) * 1000);
  uv_timer_start(&w->deadline, wl_on_deadline, limit_ms, 0);
  uv_timer_start(&w->sweep, wl_on_sweep, 100, 100);
  uv_timer_start(&w->tick, wl_on_tick, 10, 10);
  w->phase = WL_P_CONNECT;
  w->t_connect_us = wl_monotonic_us();
  if (w->n == 0) {
    w->phase = WL_P_WAIT_GO;
    char m = WL_MSG_READY;
    if (write(spec->ctl_out, &m, 1) != 1) wl_worker_begin_close(w);
  }
  uv_run(&w->loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(&w->loop);
  if (rc < 0) fprintf(stderr, "wsload: worker loop not empty at exit: %s\n", uv_strerror(rc));
  wl_result_fill(w);
  char m = WL_MSG_DONE;
  int wrc = write(spec->ctl_out, &m, 1) == 1 ? wl_result_write(spec->ctl_out, &w->res) : -EPIPE;
  wl_result_close(&w->res);
  free(w->conns);
  free(w->pad);
  free(w);
  return wrc == 0 && rc == 0 ? 0 : 1;
}
