/* WebSockets the daemon reads and writes itself (websocket.own_transport 1, the default); see
 * docs/libwebsockets.md, "Owning established WebSockets: the plan".
 *
 * An accepted socket is watched until its request head has arrived; the head is read with
 * MSG_PEEK, so nothing is consumed. A GET /v1/ws upgrade is answered here (101, or an HTTP
 * error and a hang-up); anything else goes to libwebsockets untouched
 * (coord__listener_adopt_lws). An upgraded connection is a coord_ws_conn_t with no wsi:
 * ws.c runs its sessions, queues and close handshake exactly as for libwebsockets and calls
 * coord__wso_* for the socket work; this file reads (one shared 64 KB buffer, frames parsed
 * in place by wsframe.c), writes (what the kernel does not take waits in a per-connection
 * remainder, sent when the socket is writable), answers pings and the client's close, and
 * keeps the time limits libwebsockets kept: the head within limits.handshake_timeout_ms,
 * a ping after half of limits.idle_timeout_ms of silence and a hang-up after all of it, a
 * close that is not done within 5 s. Loop thread only. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"
#include "wsframe.h"
#include "wshead.h"

#define WSO_PATH "/v1/ws"
#define WSO_READ_MAX (64 * 1024)   /* bytes per read; one buffer for every connection */
#define WSO_READS_PER_TURN 4       /* reads per readiness event, so one client cannot hold the loop */
#define WSO_CLOSE_TIMEOUT_MS 5000  /* as libwebsockets' PENDING_TIMEOUT_CLOSE_SEND */
#define WSO_TICK_MS 1000           /* each connection's time limits are checked this often (at most) */
#define WSO_TICK_SLICES 8          /* ... an eighth of the connections per tick, so no tick is long */
#define WSO_STOP 1                 /* a sink's "stop parsing" */
#define WSO_REARM_MS 20            /* an incomplete head is looked at again after this ... */
#define WSO_REARM_MAX_MS 640       /* ... doubled while no new byte came, up to this */
#define WSO_OUT_MAX (4 << 20)      /* unsent bytes a connection may hold; beyond, it fails */

typedef enum { WSO_HEAD = 0, WSO_OPEN, WSO_GONE } wso_state_t;

/* One connection. Invariants: c.link is in coord_wso_t.pending while state is WSO_HEAD and
 * in coord_ws_t.conns (ws.c) while WSO_OPEN; out holds out_len unsent bytes (out_off of them
 * already sent) and the socket is polled for writing while out_len > 0 or want_writable;
 * pend holds bytes read but not parsed while reading is paused. */
typedef struct wso_conn {
  coord_ws_conn_t c; /* first: ws.c's view */
  uv_poll_t poll;
  coord_wsf_parser_t parser;
  coord_wso_t *o;
  unsigned char *out; /* owned */
  size_t out_len, out_off, out_cap;
  unsigned char *pend; /* owned */
  size_t pend_len;
  uint64_t deadline_ms; /* head: handshake limit; open: 0, or when a started close is forced */
  uint64_t last_rx_ms;  /* mono ms of the last bytes from the client */
  uint64_t head_next_ms; /* head: when the rearm timer looks at it again */
  int fd;
  int events; /* UV_READABLE | UV_WRITABLE as last given to uv_poll_start */
  uint16_t peeked;       /* head: bytes seen by the last MSG_PEEK */
  uint16_t head_backoff; /* head: ms between looks while no byte comes (20 .. 640) */
  uint8_t state;
  bool counted;        /* in d->open_conns (until handed to libwebsockets or freed) */
  bool over;           /* accepted above max_conns: an upgrade gets 503 */
  bool reading;        /* not paused */
  bool want_writable;  /* ws.c asked for coord__ws_writable */
  bool ping_sent;      /* the idle ping is out, no answer yet */
  bool peer_closed;    /* the client sent a close: ours answers it, then we hang up */
  bool discard;        /* the client broke the protocol: its bytes are read and dropped */
  bool shut;           /* shutdown(SHUT_WR) done after our close went out */
  bool head_wait;      /* an incomplete head: polled again by the rearm timer, not at once */
} wso_conn_t;

struct coord_wso {
  coord_daemon_t *d;    /* borrowed */
  base_queue_t pending; /* wso_conn_t.c.link: request head not read yet */
  uv_timer_t tick;
  uv_timer_t rearm;     /* runs while heads are incomplete (nwaiting > 0) */
  size_t nwaiting;
  size_t nclosing;      /* open connections with a close deadline (deadline_ms set) */
  unsigned char *rbuf;  /* owned: WSO_READ_MAX bytes, shared by every read */
  bool stopped;
};

static wso_conn_t *wso_of(const coord_ws_conn_t *c) { return (wso_conn_t *)c; }

static void wso_poll_cb(uv_poll_t *h, int status, int events);
static void wso_rearm(uv_timer_t *t);

static void wso_events(wso_conn_t *w) {
  if (w->state == WSO_GONE) return;
  /* Writable also while bytes kept at a pause wait for a resumed reader: the client may
   * have nothing more to send, so no readable event would come for them. */
  int ev = (w->reading ? UV_READABLE : 0) |
           (w->out_len || w->want_writable || (w->reading && w->pend) ? UV_WRITABLE : 0);
  if (ev == w->events) return;
  w->events = ev;
  if (ev) uv_poll_start(&w->poll, ev, wso_poll_cb);
  else uv_poll_stop(&w->poll);
}

static void wso_free_cb(uv_handle_t *h) {
  wso_conn_t *w = h->data;
  coord_daemon_t *d = w->o->d;
  if (w->fd >= 0) close(w->fd);
  coord_wsf_parser_close(&w->parser);
  free(w->out);
  free(w->pend);
  bool counted = w->counted;
  free(w);
  if (counted) {
    d->open_conns--;
    coord__daemon_conn_gone(d);
  }
}

/* Ends the connection: the session hears of it now; the memory goes after uv_close. */
static void wso_hangup(wso_conn_t *w) {
  if (w->state == WSO_GONE) return;
  coord_daemon_t *d = w->o->d;
  uint8_t was = w->state;
  w->state = WSO_GONE;
  if (was == WSO_OPEN) {
    if (w->deadline_ms) w->o->nclosing--;
    coord__ws_gone(d, &w->c);
  } else {
    base_queue_remove(&w->c.link);
  }
  if (w->head_wait) {
    w->head_wait = false;
    if (--w->o->nwaiting == 0) uv_timer_stop(&w->o->rearm);
  }
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, wso_free_cb);
}

/* ---- writing ---- */

static void wso_keep(wso_conn_t *w, const unsigned char *p, size_t n) {
  if (w->out_len + n > w->out_cap) {
    if (w->out_off) { /* slide the unsent part to the front first */
      memmove(w->out, w->out + w->out_off, w->out_len - w->out_off);
      w->out_len -= w->out_off;
      w->out_off = 0;
    }
    w->out = xgrow(w->out, &w->out_cap, w->out_len + n, 4096);
  }
  memcpy(w->out + w->out_len, p, n);
  w->out_len += n;
}

/* Sends what waits; returns 0 (maybe some still waits) or -1 (the connection failed). */
static int wso_flush(wso_conn_t *w) {
  while (w->out_off < w->out_len) {
    ssize_t n = send(w->fd, w->out + w->out_off, w->out_len - w->out_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -1;
    }
    w->out_off += (size_t)n;
  }
  /* All out: give the memory back (an idle connection holds no buffer, S3). */
  w->out_off = w->out_len = 0;
  free(w->out);
  w->out = NULL;
  w->out_cap = 0;
  return 0;
}

int coord__wso_write(coord_ws_conn_t *c, const unsigned char *buf, size_t len) {
  wso_conn_t *w = wso_of(c);
  if (w->state != WSO_OPEN) return -EPIPE;
  if (w->out_len - w->out_off + len > WSO_OUT_MAX) return -EPIPE; /* a reader that stopped */
  if (w->out_len > w->out_off) { /* behind what waits, in order */
    wso_keep(w, buf, len);
    return 0;
  }
  size_t at = 0;
  while (at < len) {
    ssize_t n = send(w->fd, buf + at, len - at, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return -EPIPE;
    }
    at += (size_t)n;
  }
  if (at < len) {
    wso_keep(w, buf + at, len - at);
    wso_events(w);
  }
  return 0;
}

bool coord__wso_choked(const coord_ws_conn_t *c) {
  const wso_conn_t *w = wso_of(c);
  return w->out_len > w->out_off;
}

void coord__wso_want_writable(coord_ws_conn_t *c) {
  wso_conn_t *w = wso_of(c);
  if (w->state != WSO_OPEN) return;
  w->want_writable = true;
  wso_events(w);
}

void coord__wso_rx_flow(coord_ws_conn_t *c, bool on) {
  wso_conn_t *w = wso_of(c);
  if (w->state != WSO_OPEN || w->reading == on || (on && w->peer_closed)) return;
  w->reading = on;
  wso_events(w);
}

void coord__wso_close_timeout(coord_ws_conn_t *c) {
  wso_conn_t *w = wso_of(c);
  if (w->state != WSO_OPEN || w->deadline_ms) return;
  w->deadline_ms = uv_now(w->o->d->loop) + WSO_CLOSE_TIMEOUT_MS;
  w->o->nclosing++;
}

void coord__wso_peer(const coord_ws_conn_t *c, char *buf, size_t len) {
  const wso_conn_t *w = wso_of(c);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  buf[0] = '\0';
  if (getpeername(w->fd, (struct sockaddr *)&ss, &sl) < 0) return;
  if (ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)len);
  else if (ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)len);
}

/* A control frame of ours (pong, ping, the echo of a close). */
static int wso_control(wso_conn_t *w, unsigned op, const unsigned char *p, size_t n) {
  unsigned char f[COORD_WSF_HEADER_MAX + COORD_WSF_CONTROL_MAX];
  size_t hl = coord_wsf_header(f, op, true, n);
  if (n) memcpy(f + hl, p, n); /* p may be NULL when n is 0 */
  return coord__wso_write(&w->c, f, hl + n);
}

/* ---- reading ---- */

static int wso_on_data(void *ud, bool binary, const unsigned char *p, size_t n, bool first, bool last) {
  wso_conn_t *w = ud;
  coord__ws_rx_piece(w->o->d, &w->c, (const char *)p, n, first, last, binary);
  /* the session may have paused reading (its replies pile up) or closed */
  return w->state != WSO_OPEN || !w->reading ? WSO_STOP : 0;
}

static int wso_on_control(void *ud, unsigned op, const unsigned char *p, size_t n) {
  wso_conn_t *w = ud;
  coord_daemon_t *d = w->o->d;
  if (op == COORD_WSF_PING) {
    /* While our output waits for the client to read, its pings are not answered (RFC 6455
     * 5.5.3 allows answering only the latest): a client that pings without reading cannot
     * grow our buffer. */
    if (!w->c.close_sent && !coord__wso_choked(&w->c) && wso_control(w, COORD_WSF_PONG, p, n) < 0) {
      wso_hangup(w);
      return WSO_STOP;
    }
    return 0;
  }
  if (op == COORD_WSF_PONG) return 0;
  /* close */
  uint16_t code;
  const char *reason;
  size_t rlen;
  int bad = coord_wsf_close_parse(p, n, &code, &reason, &rlen);
  /* Whatever it says, the client is done: no more reading; once our close is out (it may
   * be out already, or still in the buffer), wso_close_done hangs up. */
  w->peer_closed = true;
  w->reading = false;
  wso_events(w);
  if (w->c.close_sent) return WSO_STOP; /* the reply to ours */
  if (bad) {
    coord__ws_protocol_fail(d, &w->c, (uint16_t)bad);
    return WSO_STOP;
  }
  /* The client started it: what is queued for it goes out, then our close with its code
   * (RFC 6455 5.5.1; a close without a code is answered with 1000), then we hang up
   * (wso_close_done). A close of ours already queued answers it as it is. */
  coord_ws_close(&w->c, code == 1005 ? COORD_WS_CLOSE_NORMAL : code, "");
  return WSO_STOP;
}

static const coord_wsf_sink_t wso_sink = {wso_on_data, wso_on_control};

/* Parses p[0..n); keeps what a pause leaves. Returns false when the connection went. */
static bool wso_parse(wso_conn_t *w, unsigned char *p, size_t n) {
  size_t at = 0;
  while (at < n && w->state == WSO_OPEN) {
    size_t used = 0;
    int rc = coord_wsf_parse(&w->parser, p + at, n - at, &wso_sink, w, &used);
    at += used;
    if (rc == 0) break;
    if (rc != WSO_STOP) {
      /* The client broke the protocol: close with that code. Its later bytes cannot be
       * parsed any more; they are read and dropped (closing with unread input would send a
       * reset that can destroy our close frame, STACK-NOTES P2), and once our close is out
       * we shut our side down, so the client answers and goes (or the close timeout). */
      coord__ws_protocol_fail(w->o->d, &w->c, (uint16_t)rc);
      w->discard = true;
      return w->state == WSO_OPEN;
    }
    if (w->state != WSO_OPEN) return false;
    if (!w->reading && at < n) { /* paused: keep the rest for later */
      unsigned char *keep = xmalloc(n - at);
      memcpy(keep, p + at, n - at);
      free(w->pend);
      w->pend = keep;
      w->pend_len = n - at;
      return true;
    }
  }
  return w->state == WSO_OPEN;
}

static void wso_read(wso_conn_t *w) {
  coord_wso_t *o = w->o;
  if (w->pend) { /* bytes kept at a pause come first */
    unsigned char *p = w->pend;
    size_t n = w->pend_len;
    w->pend = NULL;
    w->pend_len = 0;
    bool alive = wso_parse(w, p, n);
    free(p);
    if (!alive || !w->reading || w->pend) return;
  }
  for (int i = 0; i < WSO_READS_PER_TURN && w->state == WSO_OPEN && w->reading; i++) {
    ssize_t n = recv(w->fd, o->rbuf, WSO_READ_MAX, 0);
    if (n == 0) {
      wso_hangup(w); /* the client went without a close frame */
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) wso_hangup(w);
      return;
    }
    w->last_rx_ms = uv_now(o->d->loop);
    w->ping_sent = false;
    if (w->discard) continue;
    if (!wso_parse(w, o->rbuf, (size_t)n)) return;
    if ((size_t)n < WSO_READ_MAX) return;
  }
}

/* After the client's close: once our close frame is out, the connection is done. After a
 * protocol error: once it is out, our side is shut down. */
static bool wso_close_done(wso_conn_t *w) {
  if (w->state != WSO_OPEN || !w->c.close_sent || coord__wso_choked(&w->c)) return false;
  if (w->discard && !w->shut) {
    w->shut = true;
    shutdown(w->fd, SHUT_WR);
  }
  if (!w->peer_closed) return false;
  wso_hangup(w);
  return true;
}

static void wso_open_poll(wso_conn_t *w, int status, int events) {
  coord_daemon_t *d = w->o->d;
  if (status < 0) {
    wso_hangup(w);
    return;
  }
  if (events & UV_WRITABLE) {
    /* A remainder goes out alone; what the session has for the connection waits for the
     * next writable event (as libwebsockets does with its buflist). Right after a
     * remainder the send buffer is nearly full again, so writing at once would send a few
     * frames, leave another remainder and arm the poll again: at S1's 500/s that made
     * more, smaller sends and many more epoll_ctl calls than libwebsockets, and the loop
     * fell behind (docs/benchmarks.md). Waiting a turn lets the frames coalesce. */
    bool had_rest = w->out_len > w->out_off;
    if (wso_flush(w) < 0) {
      wso_hangup(w);
      return;
    }
    if (!had_rest && !coord__wso_choked(&w->c)) {
      if (w->want_writable) {
        w->want_writable = false;
        if (coord__ws_writable(d, &w->c) < 0) {
          wso_hangup(w);
          return;
        }
      }
    }
  }
  if (w->state == WSO_OPEN && (events & UV_READABLE) && w->reading) wso_read(w);
  if (w->state == WSO_OPEN && w->reading && w->pend && !(events & UV_READABLE)) wso_read(w);
  if (wso_close_done(w)) return;
  wso_events(w);
}

/* ---- the request head ---- */

static const char *wso_status_text(int status) {
  switch (status) {
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 503: return "Service Unavailable";
  default: return "Error";
  }
}

/* The error codes of protocol.md's HTTP table: a 503 here is a limit (overloaded) or the
 * drain (shutting_down), never "unavailable", which there means a failed store. */
static const char *wso_status_code(const coord_daemon_t *d, int status) {
  switch (status) {
  case 401: return "unauthorized";
  case 403: return "forbidden";
  case 503: return d->state != COORD_STATE_RUNNING ? "shutting_down" : "overloaded";
  default: return "bad_request";
  }
}

/* Answers a refused upgrade and hangs up. The head was read (consumed) before. */
static void wso_refuse(wso_conn_t *w, int status, const char *reason) {
  if (w->over && status == 503) coord_metric_add(w->o->d->m.rejected_max, 1);
  json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", wso_status_code(w->o->d, status), "message", reason);
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  char head[512];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n%s%s%s"
                   "connection: close\r\n\r\n",
                   status, wso_status_text(status), text ? strlen(text) : 0,
                   status == 426 ? "sec-websocket-version: 13\r\n" : "",
                   status == 401 ? "www-authenticate: Bearer\r\n" : "",
                   status == 503 ? "retry-after: 1\r\n" : "");
  /* a fresh socket takes a few hundred bytes at once; if not, the client loses the body */
  if (n > 0 && (size_t)n < sizeof head) {
    (void)!send(w->fd, head, (size_t)n, MSG_NOSIGNAL);
    if (text) (void)!send(w->fd, text, strlen(text), MSG_NOSIGNAL);
  }
  free(text);
  shutdown(w->fd, SHUT_WR);
  wso_hangup(w);
}

/* Leaves the socket to libwebsockets, unread. */
static void wso_hand_over(wso_conn_t *w) {
  coord_daemon_t *d = w->o->d;
  int fd = w->fd;
  bool over = w->over;
  w->fd = -1; /* not ours to close any more */
  w->counted = false; /* lws counts it from here; counted down now, so that accepts later
                       * in this loop turn do not see it twice against max_connections */
  d->open_conns--;
  wso_hangup(w);
  coord__listener_adopt_lws(d, fd, over);
}

static void wso_head_poll(wso_conn_t *w, int status) {
  coord_daemon_t *d = w->o->d;
  if (status < 0) {
    wso_hangup(w);
    return;
  }
  char buf[COORD_WSH_MAX];
  ssize_t n = recv(w->fd, buf, sizeof buf, MSG_PEEK);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    wso_hangup(w); /* gone before its request */
    return;
  }
  coord_wsh_head_t h;
  size_t head_len;
  int rc = coord_wsh_parse(buf, (size_t)n, &h, &head_len);
  if (rc == COORD_WSH_MORE) {
    /* The rest comes (or the handshake limit ends it). The peeked bytes stay readable, so
     * a level-triggered poll would fire at once again: look again a moment later. */
    uv_poll_stop(&w->poll);
    w->events = 0;
    w->peeked = (uint16_t)n;
    if (!w->head_backoff) w->head_backoff = WSO_REARM_MS;
    w->head_next_ms = uv_now(d->loop) + w->head_backoff;
    if (!w->head_wait) {
      w->head_wait = true;
      if (w->o->nwaiting++ == 0) uv_timer_start(&w->o->rearm, wso_rearm, WSO_REARM_MS, WSO_REARM_MS);
    }
    return;
  }
  if (rc == COORD_WSH_OTHER || !coord_wsh_is_upgrade(&h, WSO_PATH)) {
    wso_hand_over(w);
    return;
  }
  /* ours: consume the head (what follows it stays in the socket for the frame parser); into
   * another buffer, since h points into buf */
  char drop[COORD_WSH_MAX];
  size_t got = 0;
  while (got < head_len) {
    ssize_t r = recv(w->fd, drop + got, head_len - got, 0);
    if (r <= 0) {
      wso_hangup(w);
      return;
    }
    got += (size_t)r;
  }
  char accept[29], reason[200];
  const char *why;
  int st = coord_wsh_check_upgrade(&h, accept, &why);
  if (st) {
    wso_refuse(w, st, why);
    return;
  }
  bool bulk = false;
  st = coord__ws_upgrade_own(d, &h, w->over, &bulk, reason, sizeof reason);
  if (st) {
    wso_refuse(w, st, reason);
    return;
  }
  char answer[256];
  /* the subprotocol the client offered (none when it offered none, or an empty list) */
  const char *proto = bulk ? COORD_WS_BULK_PROTOCOL
                      : coord_wsh_has_token(&h, "sec-websocket-protocol", COORD_WS_PROTOCOL) ? COORD_WS_PROTOCOL
                                                                                             : NULL;
  int alen = coord_wsh_answer_101(answer, sizeof answer, accept, proto);
  if (alen < 0 || send(w->fd, answer, (size_t)alen, MSG_NOSIGNAL) != alen) {
    wso_hangup(w); /* a fresh socket that does not take 200 bytes is not worth keeping */
    return;
  }
  base_queue_remove(&w->c.link);
  w->state = WSO_OPEN;
  w->deadline_ms = 0;
  w->reading = true;
  w->last_rx_ms = uv_now(d->loop);
  coord_wsf_parser_init(&w->parser, (uint64_t)d->cfg->limits.max_ws_message);
  coord__ws_open(d, &w->c, bulk, &h);
  wso_events(w);
}

/* Polls an incomplete head again once new bytes came (FIONREAD above what was peeked);
 * while none come, it is looked at less and less often, so a client that trickles or
 * stalls costs one ioctl per look, not a peek and a parse. */
static void wso_rearm(uv_timer_t *t) {
  coord_wso_t *o = t->data;
  uint64_t now = uv_now(o->d->loop);
  base_queue_t *it;
  base_queue_foreach(it, &o->pending) {
    wso_conn_t *w = base_queue_data(it, wso_conn_t, c.link);
    if (!w->head_wait || now < w->head_next_ms) continue;
    int avail = 0;
    if (ioctl(w->fd, FIONREAD, &avail) == 0 && avail <= (int)w->peeked) {
      w->head_backoff = (uint16_t)(w->head_backoff * 2 > WSO_REARM_MAX_MS ? WSO_REARM_MAX_MS : w->head_backoff * 2);
      w->head_next_ms = now + w->head_backoff;
      continue;
    }
    w->head_backoff = WSO_REARM_MS;
    w->head_wait = false;
    o->nwaiting--;
    w->events = UV_READABLE;
    uv_poll_start(&w->poll, UV_READABLE, wso_poll_cb);
  }
  if (!o->nwaiting) uv_timer_stop(t);
}

static void wso_poll_cb(uv_poll_t *h, int status, int events) {
  wso_conn_t *w = h->data;
  if (w->state == WSO_HEAD) wso_head_poll(w, status);
  else if (w->state == WSO_OPEN) wso_open_poll(w, status, events);
}

void coord__wso_accept(coord_daemon_t *d, int fd, bool over) {
  coord_wso_t *o = d->wso;
  wso_conn_t *w = xcalloc(1, sizeof *w);
  w->o = o;
  w->fd = fd;
  w->over = over;
  w->state = WSO_HEAD;
  w->reading = true;
  w->poll.data = w;
  d->open_conns++;
  w->counted = true;
  if (uv_poll_init(d->loop, &w->poll, fd) != 0) {
    close(fd);
    free(w);
    d->open_conns--;
    return;
  }
  w->deadline_ms = uv_now(d->loop) + (uint64_t)d->cfg->limits.handshake_timeout_ms;
  base_queue_insert_tail(&o->pending, &w->c.link);
  w->events = UV_READABLE;
  uv_poll_start(&w->poll, UV_READABLE, wso_poll_cb);
}

/* ---- time limits ---- */

static void wso_tick(uv_timer_t *t) {
  coord_wso_t *o = t->data;
  coord_daemon_t *d = o->d;
  uint64_t now = uv_now(d->loop);
  base_queue_t *it, *tmp;
  base_queue_foreach_safe(it, tmp, &o->pending) {
    wso_conn_t *w = base_queue_data(it, wso_conn_t, c.link);
    if (now >= w->deadline_ms) wso_hangup(w); /* no complete request head in time */
  }
  uint64_t idle = (uint64_t)d->cfg->limits.idle_timeout_ms;
  if (!idle && !o->nclosing) return; /* nothing to look for on open connections */
  /* A slice of the open connections, taken from the head of the list and moved to its
   * tail: every connection comes round once per WSO_TICK_SLICES ticks. Walking all 19,000
   * at once took the loop about a millisecond, a stall for everything else in that turn. */
  base_queue_t *conns = coord__ws_conns(d->ws);
  size_t k = coord_ws_count(d->ws) / WSO_TICK_SLICES + 1;
  while (k-- > 0 && !base_queue_empty(conns)) {
    base_queue_t *q = base_queue_head(conns);
    base_queue_remove(q);
    base_queue_insert_tail(conns, q);
    coord_ws_conn_t *c = base_queue_data(q, coord_ws_conn_t, link);
    if (c->wsi) continue;
    wso_conn_t *w = wso_of(c);
    if (w->deadline_ms && now >= w->deadline_ms) {
      wso_hangup(w); /* a close that did not finish */
      continue;
    }
    if (!idle || c->close_code) continue;
    uint64_t quiet = now - w->last_rx_ms;
    if (quiet >= idle && w->ping_sent) {
      wso_hangup(w); /* silent, and no answer to our ping */
    } else if (quiet >= idle / 2 && !w->ping_sent) { /* a late tick pings before it hangs up */
      w->ping_sent = true;
      if (wso_control(w, COORD_WSF_PING, NULL, 0) < 0) wso_hangup(w);
    }
  }
}

static void wso_on_stop(coord_daemon_t *d, void *ud) {
  (void)d;
  coord_wso_t *o = ud;
  if (o->stopped) return;
  o->stopped = true;
  uv_close((uv_handle_t *)&o->tick, NULL);
  uv_close((uv_handle_t *)&o->rearm, NULL);
  while (!base_queue_empty(&o->pending))
    wso_hangup(base_queue_data(base_queue_head(&o->pending), wso_conn_t, c.link));
  base_queue_t *it, *tmp;
  base_queue_t *conns = coord__ws_conns(d->ws);
  base_queue_foreach_safe(it, tmp, conns) {
    coord_ws_conn_t *c = base_queue_data(it, coord_ws_conn_t, link);
    if (!c->wsi) wso_hangup(wso_of(c));
  }
}

coord_wso_t *coord__wso_new(coord_daemon_t *d) {
  coord_wso_t *o = xcalloc(1, sizeof *o);
  o->d = d;
  base_queue_init(&o->pending);
  o->rbuf = xmalloc(WSO_READ_MAX);
  uv_timer_init(d->loop, &o->tick);
  o->tick.data = o;
  uv_timer_init(d->loop, &o->rearm);
  o->rearm.data = o;
  uv_unref((uv_handle_t *)&o->rearm);
  /* Each connection is looked at every quarter of the idle time (at most every second), so
   * the ping comes near half of it and the hang-up near all of it. */
  uint64_t period = (uint64_t)d->cfg->limits.idle_timeout_ms / 4;
  if (!period || period > WSO_TICK_MS) period = WSO_TICK_MS;
  uint64_t tick = period / WSO_TICK_SLICES;
  if (tick < 10) tick = 10;
  uv_timer_start(&o->tick, wso_tick, tick, tick);
  uv_unref((uv_handle_t *)&o->tick);
  coord_daemon_on_stop(d, wso_on_stop, o);
  log_info("wso", "WebSockets on " WSO_PATH " are read and written by the daemon itself", NULL);
  return o;
}

void coord__wso_free(coord_wso_t *o) {
  if (!o) return;
  free(o->rbuf);
  free(o);
}
