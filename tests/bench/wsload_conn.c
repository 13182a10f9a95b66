/* One wsload connection: TCP connect from a chosen loopback source address, the upgrade
 * and its checks, reading (frames go to wsload_msg.c), writing, and the close. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "wsload_worker.h"

typedef struct wl_write {
  uv_write_t req;
  wl_conn_t *c;
  bool close_after;
  uv_buf_t buf;
  uint8_t data[];
} wl_write_t;

/* ---- writing ---- */

static void wl_on_write(uv_write_t *req, int status) {
  wl_write_t *wr = container_of(req, wl_write_t, req);
  wl_conn_t *c = wr->c;
  bool close_after = wr->close_after;
  free(wr);
  if (status < 0 || close_after) wl_conn_close(c);
}

void wl_send_raw(wl_conn_t *c, const void *data, size_t len, bool close_after) {
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

void wl_send_frame(wl_conn_t *c, uint8_t opcode, const void *payload, size_t len,
                          bool close_after) {
  uint8_t stack[512];
  uint8_t *buf = len + WSF_MAX_HEADER <= sizeof(stack) ? stack : xmalloc(len + WSF_MAX_HEADER);
  uint8_t mask[4];
  wl_mask_make(c->w, mask);
  size_t n = wsf_frame_encode(buf, len + WSF_MAX_HEADER, opcode, true, mask, payload, len);
  wl_send_raw(c, buf, n, close_after);
  if (buf != stack) free(buf);
}

void wl_send_text(wl_conn_t *c, const char *text) {
  wl_send_frame(c, WSF_OP_TEXT, text, strlen(text), false);
}

/* ---- connection lifecycle ---- */

void wl_settle(wl_conn_t *c) {
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
  if (w->phase == WL_P_CLOSING && w->open_handles == 0) wl_worker_close_handles(w);
}

void wl_conn_close(wl_conn_t *c) {
  if (!c->handle_open || uv_is_closing((uv_handle_t *)&c->tcp)) return;
  uv_close((uv_handle_t *)&c->tcp, wl_on_close);
}

void wl_conn_fail(wl_conn_t *c, uint64_t *reason) {
  wl_worker_t *w = c->w;
  if (!c->opened && !c->settled) {
    w->res.c.failed++;
    (*reason)++;
  }
  wl_settle(c);
  wl_conn_close(c);
}

/* The server ended an open connection (close frame code, or 0 for no close frame). */
void wl_conn_lost(wl_conn_t *c, int code) {
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
  w->rx_realtime_us = 0; /* read at the first event of this read that needs it */
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
  size_t n = wsf_request_build(req_text, sizeof(req_text), w->o->host, w->o->port, w->o->path, c->key,
                               w->spec->role == WL_ROLE_PUB ? w->o->pub_subprotocol : NULL);
  c->state = WL_C_HANDSHAKE;
  if (uv_read_start((uv_stream_t *)&c->tcp, wl_alloc, wl_on_read) < 0) {
    wl_conn_fail(c, &w->res.c.fail_connect);
    return;
  }
  wl_send_raw(c, req_text, n, false);
}

void wl_conn_start(wl_conn_t *c) {
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
