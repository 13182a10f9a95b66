/* One wsload worker process: a libuv loop holding up to a few thousand WebSocket client
 * connections in one role (idle, subscriber or publisher), paced connection setup, the
 * publish clock, the phases (connect, wait for go, run, drain, close) and the result. It
 * owns no output: its result goes to the parent as a blob (wsload_stats.c). Connections
 * are wsload_conn.c's, the meaning of messages wsload_msg.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "wsload_worker.h"

uint64_t wl_rand(wl_worker_t *w) {
  uint64_t x = w->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  w->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

void wl_mask_make(wl_worker_t *w, uint8_t mask[4]) {
  uint64_t r = wl_rand(w);
  memcpy(mask, &r, 4);
}

/* ---- publishing ---- */

/* Copies the literal s (no NUL) to p; returns the end. */
#define wl_put_lit(p, s) ((char *)memcpy((p), (s), sizeof(s) - 1) + sizeof(s) - 1)

/* Writes v in decimal at p; returns the end. */
static char *wl_put_u64(char *p, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

static void wl_publish_one(wl_worker_t *w, wl_conn_t *c, bool warm) {
  const wl_opts_t *o = w->o;
  if (c->inflight >= WL_RING - 1 || c->ring[c->next_ref % WL_RING].sent_us ||
      uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WL_MAX_WRITE_QUEUE) {
    w->res.c.pub_skipped++;
    return;
  }
  uint32_t topic = (uint32_t)((w->pub_count * w->o->pub_workers + w->spec->index) % o->topics);
  uint64_t ref = c->next_ref++;
  uint64_t sent_us = wl_monotonic_us();
  /* Plain ASCII with numbers only, put together by hand (snprintf copied the padding a
   * byte at a time): the publisher stays cheap at hundreds of thousands of messages per
   * second, and leaves the shared cores to the server. One clock read: t0 is the
   * realtime clock at sent_us, through the offset the tick measured. */
  char text[512 + WL_PAYLOAD_MAX]; /* the fixed parts, a 127-byte prefix, numbers, the padding */
  _Static_assert(sizeof(((wl_opts_t *)0)->topic_prefix) <= 128, "text[] leaves 512 bytes for the rest");
  char *p = text;
  p = wl_put_lit(p, "{\"op\":\"pub\",\"ref\":\"");
  p = wl_put_u64(p, ref);
  p = wl_put_lit(p, "\",\"topic\":\"");
  memcpy(p, o->topic_prefix, w->prefix_len);
  p += w->prefix_len;
  p = wl_put_u64(p, topic);
  p = wl_put_lit(p, "\",\"type\":\"bench\",\"data\":{\"t0\":");
  p = wl_put_u64(p, sent_us + w->realtime_offset_us);
  if (warm) p = wl_put_lit(p, ",\"w\":1");
  p = wl_put_lit(p, ",\"pad\":\"");
  memcpy(p, w->pad, w->pad_len);
  p += w->pad_len;
  p = wl_put_lit(p, "\"}}");
  size_t tl = (size_t)(p - text);
  size_t need = c->out_len + tl + WSF_MAX_HEADER;
  if (need > c->out_cap) {
    c->out_cap = need * 2;
    c->out = xrealloc(c->out, c->out_cap);
  }
  uint8_t mask[4];
  wl_mask_make(w, mask);
  c->out_len += wsf_frame_encode(c->out + c->out_len, c->out_cap - c->out_len, WSF_OP_TEXT, true,
                                 mask, text, tl);
  wl_inflight_t *f = &c->ring[ref % WL_RING];
  f->sent_us = sent_us;
  f->topic = topic;
  f->warm = warm;
  c->inflight++;
  w->res.c.pub_sent++;
}

static void wl_publish_tick(wl_worker_t *w) {
  uint64_t now = wl_monotonic_us();
  w->realtime_offset_us = wl_realtime_us() - now;
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

void wl_worker_close_handles(wl_worker_t *w) {
  uv_close((uv_handle_t *)&w->tick, NULL);
  uv_close((uv_handle_t *)&w->sweep, NULL);
  uv_close((uv_handle_t *)&w->phase_timer, NULL);
  uv_close((uv_handle_t *)&w->deadline, NULL);
  if (w->ctl_open) {
    w->ctl_open = false;
    uv_close((uv_handle_t *)&w->ctl, NULL);
  }
}

static void wl_on_close_wait(uv_timer_t *t) {
  wl_worker_t *w = t->data;
  for (uint32_t i = 0; i < w->n; i++) wl_conn_close(&w->conns[i]);
}

void wl_worker_begin_close(wl_worker_t *w) {
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
  if (w->open_handles == 0) wl_worker_close_handles(w); /* nothing left open */
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
  w->pad_len = padn;
  w->prefix_len = strlen(o->topic_prefix);
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
