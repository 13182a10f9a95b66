/* WebSocket transport for /v1/ws; see ws.h.
 *
 * Owns the list of open connections, each connection's copy queue and reassembly buffer
 * (embedded in the lws per-session data, coord_pss_t), and the close handshake. Writes
 * happen when the socket is writable (WRITEABLE, or wso.c's poll), eagerly from the hub's
 * wake phase (coord_ws_flush), or in the next turn's again run for a connection that had
 * more than a budget; each within WS_WRITE_BUDGET bytes, so one busy connection cannot hold
 * the loop; messages ready together leave in one write (coord_ws_write_frames, the frame
 * headers are built here). It does not interpret messages: the session ops do
 * (ws_basic.c, streams_ws.c).
 *
 * Read-ahead: lws 4.1.6 reads a WebSocket at most rx_buffer_size + LWS_PRE bytes per
 * readiness event (roles/ws/ops-ws.c), and that buffer is allocated for every connection
 * (transport.c keeps it at 128 bytes to keep idle connections small). A client that
 * publishes fast would then get one read per loop turn, and a turn that fans out to
 * thousands of subscribers is long: S1 in docs/benchmarks.md held 7 publishes/s. So a
 * connection that received something this turn is listed, and before the next poll
 * (uv_prepare) it is serviced again with lws_service_fd() while the kernel holds bytes
 * for it (FIONREAD), up to WS_RX_AHEAD_BUDGET bytes per connection per turn. Reading
 * paused for backpressure is respected (lws itself does not read a flow-controlled
 * connection). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"
#include "wsframe.h"
#include "wshead.h"

#define WS_PATH "/v1/ws"
#define WS_WRITE_BUDGET (64 * 1024) /* bytes per writable turn per connection */
#define WS_OUTQ_LIMIT (1024 * 1024) /* bytes queued by coord_ws_send before we give up */
#define WS_RX_PAUSE (256 * 1024)    /* queued bytes above which we stop reading the client */
#define WS_RX_RESUME (64 * 1024)    /* ... and below which we read again */
#define WS_CLOSE_TIMEOUT_S 5        /* a close that cannot be flushed is forced after this */
#define WS_HEADER_MAX COORD_WSF_HEADER_MAX /* bytes of a server (unmasked) frame header */
#define WS_BATCH_MAX 256            /* limits.ws_frames_per_write's upper bound */
#define WS_RX_AHEAD_BUDGET (64 * 1024) /* bytes read ahead per connection per loop turn */

/* Invariants: scratch (when not NULL) has scratch_cap bytes and is only used inside one
 * write call (lws copies what the kernel does not take), so one buffer serves every
 * connection of this single-threaded transport. */
struct coord_ws {
  coord_daemon_t *d;  /* borrowed */
  base_queue_t conns; /* coord_ws_conn_t.link */
  size_t nconns;
  size_t npaused;     /* connections with reading paused for backpressure */
  const coord_ws_session_ops_t *ops; /* borrowed */
  void *ops_ud;
  size_t max_batch;   /* frames per write, 1..WS_BATCH_MAX */
  size_t nbulk;       /* open connections on the coord-bulk subprotocol */
  unsigned char *scratch; /* owned: LWS_PRE + coalesced frames */
  size_t scratch_cap;     /* bytes */
  uv_prepare_t rx_ahead;  /* active while rx_hot holds connections */
  uv_idle_t again_run;    /* active while again holds connections */
  base_queue_t again;     /* coord_ws_conn_t.again: more than a budget ready, the last write
                           * taken whole: the next budget goes out next turn */
  coord_ws_conn_t **rx_hot; /* owned array of borrowed conns (NULL once closed) */
  size_t nrx_hot, rx_hot_cap;
  bool stopped;           /* rx_ahead and again_run closed: no read-ahead, nothing listed */
};

struct coord_ws_upgrade {
  struct lws *wsi;                 /* borrowed; NULL for our own transport */
  const coord_wsh_head_t *head;    /* borrowed; our own transport's request head */
};

/* The request head of the connection whose on_open runs (our own transport), else NULL. */
static const coord_wsh_head_t *ws_open_head;

/* ---- the two transports: libwebsockets (c->wsi) or our own (wso.c) ---- */

static void io_want_writable(coord_ws_conn_t *c) {
  if (c->wsi) lws_callback_on_writable(c->wsi);
  else coord__wso_want_writable(c);
}

static bool io_choked(const coord_ws_conn_t *c) {
  return c->wsi ? lws_send_pipe_choked(c->wsi) != 0 : coord__wso_choked(c);
}

/* Whether bytes of an earlier write are still waiting for the socket. */
static bool io_partial(const coord_ws_conn_t *c) {
  return c->wsi ? lws_partial_buffered(c->wsi) != 0 : coord__wso_choked(c);
}

/* Writes whole frames (headers included) at p, with COORD_WS_PRE bytes before it. */
static int io_write_raw(coord_ws_conn_t *c, unsigned char *p, size_t len) {
  if (c->wsi) return lws_write(c->wsi, p, len, LWS_WRITE_RAW) < 0 ? -EPIPE : 0;
  return coord__wso_write(c, p, len);
}

struct coord_ws_frame {
  base_queue_t link;
  size_t len;
  bool binary;
  unsigned char buf[]; /* LWS_PRE + payload */
};

/* Applies the effective read state (paused when either the transport or the session asks)
 * after one of the two flags changed; was is the effective state before. */
static void ws_rx_update(coord_ws_conn_t *c, bool was) {
  bool now = c->rx_paused || c->session_paused;
  if (now == was) return;
  if (now) c->ws->npaused++;
  else c->ws->npaused--;
  if (c->wsi) lws_rx_flow_control(c->wsi, now ? 0 : 1);
  else coord__wso_rx_flow(c, !now);
}

/* ---- read-ahead (see the file comment) ---- */

static void ws_rx_ahead_run(uv_prepare_t *h);

static void ws_rx_mark(coord_ws_conn_t *c) {
  coord_ws_t *ws = c->ws;
  if (c->rx_hot || ws->stopped) return;
  if (ws->nrx_hot == ws->rx_hot_cap) {
    ws->rx_hot_cap = ws->rx_hot_cap ? 2 * ws->rx_hot_cap : 64;
    ws->rx_hot = xrealloc(ws->rx_hot, ws->rx_hot_cap * sizeof *ws->rx_hot);
  }
  ws->rx_hot[ws->nrx_hot++] = c;
  c->rx_hot = true;
  if (ws->nrx_hot == 1) uv_prepare_start(&ws->rx_ahead, ws_rx_ahead_run);
}

static void ws_rx_unmark(coord_ws_conn_t *c) {
  if (!c->rx_hot) return;
  coord_ws_t *ws = c->ws;
  for (size_t i = 0; i < ws->nrx_hot; i++)
    if (ws->rx_hot[i] == c) ws->rx_hot[i] = NULL;
  c->rx_hot = false;
}

/* Services entry i of rx_hot while its socket holds unread bytes, within the budget. */
static void ws_rx_ahead_one(coord_ws_t *ws, size_t i) {
  coord_ws_conn_t *c = ws->rx_hot[i];
  struct lws_context *ctx = lws_get_context(c->wsi);
  int fd = lws_get_socket_fd(c->wsi);
  size_t taken = 0;
  int before = -1;
  while (fd >= 0 && taken < WS_RX_AHEAD_BUDGET) {
    if (c->closed || c->close_code || c->rx_paused || c->session_paused) return;
    int avail = 0;
    if (ioctl(fd, FIONREAD, &avail) < 0 || avail <= 0) return;
    if (avail == before) return; /* lws did not read: leave it to the poll */
    if (before > avail) taken += (size_t)(before - avail);
    before = avail;
    struct lws_pollfd p = {.fd = fd, .events = LWS_POLLIN, .revents = LWS_POLLIN};
    lws_service_fd(ctx, &p);
    if (ws->rx_hot[i] != c) return; /* closed inside (ws_closed cleared the entry) */
  }
}

static void ws_rx_ahead_run(uv_prepare_t *h) {
  coord_ws_t *ws = h->data;
  /* Entries added while servicing (none expected: lws_service_fd only serves its fd) are
   * left for the poll. */
  size_t n = ws->nrx_hot;
  for (size_t i = 0; i < n; i++)
    if (ws->rx_hot[i]) ws_rx_ahead_one(ws, i);
  for (size_t i = 0; i < ws->nrx_hot; i++)
    if (ws->rx_hot[i]) ws->rx_hot[i]->rx_hot = false;
  ws->nrx_hot = 0;
  uv_prepare_stop(h);
}

/* ---- writing again next turn (see coord_ws_flush) ---- */

static void ws_again_cb(uv_idle_t *h) {
  coord_ws_t *ws = h->data;
  /* One budget for each connection listed before this turn, oldest first; a connection
   * that still has more is listed again, behind them, for the next turn. */
  base_queue_t now;
  base_queue_init(&now);
  base_queue_move_tail(&ws->again, &now);
  while (!base_queue_empty(&now)) {
    coord_ws_conn_t *c = base_queue_data(base_queue_head(&now), coord_ws_conn_t, again);
    base_queue_remove(&c->again);
    coord_ws_flush(c);
  }
  if (base_queue_empty(&ws->again)) uv_idle_stop(h);
}

static void ws_again_mark(coord_ws_conn_t *c) {
  coord_ws_t *ws = c->ws;
  if (base_queue_linked(&c->again)) return;
  base_queue_insert_tail(&ws->again, &c->again);
  if (!uv_is_active((uv_handle_t *)&ws->again_run)) uv_idle_start(&ws->again_run, ws_again_cb);
}

static void ws_on_stop(coord_daemon_t *d, void *ud) {
  (void)d;
  coord_ws_t *ws = ud;
  if (ws->stopped) return;
  ws->stopped = true;
  for (size_t i = 0; i < ws->nrx_hot; i++)
    if (ws->rx_hot[i]) ws->rx_hot[i]->rx_hot = false;
  ws->nrx_hot = 0;
  uv_close((uv_handle_t *)&ws->rx_ahead, NULL);
  /* What waited for the next turn waits for writability instead. */
  while (!base_queue_empty(&ws->again)) {
    coord_ws_conn_t *c = base_queue_data(base_queue_head(&ws->again), coord_ws_conn_t, again);
    base_queue_remove(&c->again);
    c->want_writable = true;
    io_want_writable(c);
  }
  uv_close((uv_handle_t *)&ws->again_run, NULL);
}

coord_ws_t *coord__ws_new(coord_daemon_t *d) {
  coord_ws_t *ws = xcalloc(1, sizeof *ws);
  ws->d = d;
  base_queue_init(&ws->conns);
  ws->ops = &coord_ws_basic_session;
  int64_t batch = d->cfg->limits.ws_frames_per_write;
  ws->max_batch = batch < 1 ? 1 : batch > WS_BATCH_MAX ? WS_BATCH_MAX : (size_t)batch;
  uv_prepare_init(d->loop, &ws->rx_ahead);
  ws->rx_ahead.data = ws;
  uv_unref((uv_handle_t *)&ws->rx_ahead);
  base_queue_init(&ws->again);
  uv_idle_init(d->loop, &ws->again_run);
  ws->again_run.data = ws;
  uv_unref((uv_handle_t *)&ws->again_run);
  coord_daemon_on_stop(d, ws_on_stop, ws);
  return ws;
}

void coord__ws_free(coord_ws_t *ws) {
  if (!ws) return;
  free(ws->rx_hot);
  free(ws->scratch);
  free(ws);
}

void coord_ws_set_session(coord_ws_t *ws, const coord_ws_session_ops_t *ops, void *ud) {
  ws->ops = ops;
  ws->ops_ud = ud;
}

size_t coord_ws_count(const coord_ws_t *ws) { return ws->nconns; }

base_queue_t *coord__ws_conns(coord_ws_t *ws) { return &ws->conns; }

size_t coord__ws_paused_count(const coord_ws_t *ws) { return ws->npaused; }

void coord_ws_foreach(coord_ws_t *ws, void (*fn)(coord_ws_conn_t *c, void *session, void *ud),
                      void *ud) {
  base_queue_t *it, *tmp;
  base_queue_foreach_safe(it, tmp, &ws->conns) {
    coord_ws_conn_t *c = base_queue_data(it, coord_ws_conn_t, link);
    fn(c, c->session, ud);
  }
}

/* ---- sending ---- */

int coord_ws_send(coord_ws_conn_t *c, const void *data, size_t len, bool binary) {
  if (c->close_code || c->closed) return -EPIPE;
  if (c->outq_bytes + len > WS_OUTQ_LIMIT) {
    log_warn("ws", "send queue overflow, closing", "{s:I}", "queued", (json_int_t)c->outq_bytes);
    coord_ws_close(c, COORD_WS_CLOSE_POLICY, "send queue overflow");
    return -ENOBUFS;
  }
  coord_ws_frame_t *f = xmalloc(sizeof *f + LWS_PRE + len);
  f->len = len;
  f->binary = binary;
  memcpy(f->buf + LWS_PRE, data, len);
  base_queue_insert_tail(&c->outq, &f->link);
  c->outq_bytes += len;
  /* A client that sends faster than it reads our replies is throttled, not buffered for:
   * stop reading it until it has taken most of what is queued. */
  if (c->outq_bytes > WS_RX_PAUSE && !c->rx_paused) {
    bool was = c->session_paused;
    c->rx_paused = true;
    ws_rx_update(c, was);
  }
  io_want_writable(c);
  return 0;
}

static int ws_write_now(coord_ws_conn_t *c, unsigned char *payload, size_t len, bool binary) {
  if (c->wsi) {
    if (lws_write(c->wsi, payload, len, binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < 0) return -EPIPE;
  } else {
    /* the header goes into the headroom, as lws does: the same bytes for every reader */
    unsigned char h[COORD_WSF_HEADER_MAX];
    size_t hl = coord_wsf_header(h, binary ? COORD_WSF_BINARY : COORD_WSF_TEXT, true, len);
    memcpy(payload - hl, h, hl);
    if (coord__wso_write(c, payload - hl, hl + len) < 0) return -EPIPE;
  }
  coord_daemon_t *d = c->ws->d;
  coord_metric_add(d->m.ws_frames_out, 1);
  coord_metric_add(d->m.ws_bytes_out, (double)len);
  coord_metric_add(d->m.ws_writes, 1);
  return 0;
}

static int ws_write_batch_now(coord_ws_conn_t *c, const coord_ws_out_t *v, size_t n);

/* Remembers a failed write: an eager one (coord_ws_flush) cannot hang up by itself. */
static int ws_write_batch(coord_ws_conn_t *c, const coord_ws_out_t *v, size_t n) {
  int rc = ws_write_batch_now(c, v, n);
  if (rc < 0) c->write_failed = true;
  return rc;
}

static int ws_write_batch_now(coord_ws_conn_t *c, const coord_ws_out_t *v, size_t n) {
  if (n == 0) return 0;
  if (n == 1) return ws_write_now(c, v[0].payload, v[0].len, v[0].binary);
  coord_ws_t *ws = c->ws;
  size_t need = LWS_PRE, payload = 0;
  for (size_t i = 0; i < n; i++) {
    need += WS_HEADER_MAX + v[i].len;
    payload += v[i].len;
  }
  if (need > ws->scratch_cap) {
    size_t cap = ws->scratch_cap ? ws->scratch_cap : WS_WRITE_BUDGET + LWS_PRE + 64 * WS_HEADER_MAX;
    while (cap < need) cap *= 2;
    free(ws->scratch);
    ws->scratch = xmalloc(cap);
    ws->scratch_cap = cap;
  }
  unsigned char *start = ws->scratch + LWS_PRE, *p = start;
  for (size_t i = 0; i < n; i++) {
    p += coord_wsf_header(p, v[i].binary ? COORD_WSF_BINARY : COORD_WSF_TEXT, true, v[i].len);
    memcpy(p, v[i].payload, v[i].len);
    p += v[i].len;
  }
  /* LWS_WRITE_RAW: lws adds no framing of its own (see ws.h). */
  if (io_write_raw(c, start, (size_t)(p - start)) < 0) return -EPIPE;
  coord_daemon_t *d = ws->d;
  coord_metric_add(d->m.ws_frames_out, (double)n);
  coord_metric_add(d->m.ws_bytes_out, (double)payload);
  coord_metric_add(d->m.ws_writes, 1);
  return 0;
}

int coord_ws_write(coord_ws_conn_t *c, unsigned char *payload, size_t len, bool binary) {
  if (!c->in_writable || c->closed) return -EPIPE;
  int rc = ws_write_now(c, payload, len, binary);
  if (rc < 0) c->write_failed = true;
  return rc;
}

int coord_ws_write_frames(coord_ws_conn_t *c, const coord_ws_out_t *frames, size_t n) {
  if (!c->in_writable || c->closed) return -EPIPE;
  return ws_write_batch(c, frames, n);
}

size_t coord_ws_frames_per_write(const coord_ws_conn_t *c) { return c->ws->max_batch; }

void coord_ws_pause_reading(coord_ws_conn_t *c, bool paused) {
  if (c->closed || c->session_paused == paused) return;
  bool was = c->rx_paused || c->session_paused;
  c->session_paused = paused;
  ws_rx_update(c, was);
}

int coord_ws_upgrade_header(const coord_ws_upgrade_t *u, const char *name, char *buf, size_t len) {
  if (!u->wsi) return coord_wsh_header(u->head, name, buf, len);
  return coord__hdr_copy(u->wsi, name, buf, len);
}

int coord_ws_upgrade_query(const coord_ws_upgrade_t *u, const char *name, char *buf, size_t len) {
  if (!u->wsi) return coord_wsh_query(u->head, name, buf, len);
  return coord__query_copy(u->wsi, name, buf, len);
}

bool coord_ws_choked(const coord_ws_conn_t *c) { return c->closed || io_choked(c); }

void coord_ws_wake(coord_ws_conn_t *c) {
  if (!c->closed) io_want_writable(c);
}

/* Eager writes (see ws.h): lws_write() outside WRITEABLE is safe with lws 4.1.6 as long as
 * whole frames are written: lws_issue_raw() sends directly when nothing is buffered, keeps
 * an unsent remainder in buflist_out and asks for POLLOUT itself, and puts later writes
 * (its own pings and close frames included) behind that remainder. What it saves at fanout
 * scale: lws turning POLLOUT on and off goes through uv_poll_start(), which in libuv 1.44
 * removes the fd from epoll and adds it again, so a writable round trip costs about four
 * epoll_ctl calls and a poll wakeup on top of the send. */
void coord_ws_flush(coord_ws_conn_t *c) {
  /* WRITEABLE is coming, or the next turn's again run: either pulls the news */
  if (c->closed || c->want_writable || base_queue_linked(&c->again)) return;
  if (c->close_code || c->in_writable || c->write_failed || !base_queue_empty(&c->outq) ||
      !c->ops->on_writable || io_partial(c)) {
    c->want_writable = true;
    io_want_writable(c);
    return;
  }
  c->in_writable = true;
  bool more = c->ops->on_writable(c, c->session, WS_WRITE_BUDGET);
  c->in_writable = false;
  /* A remainder the socket did not take: the rest waits for POLLOUT, which the kernel
   * signals only once a good part of the send buffer is free again, so a client that
   * reads slowly is not fed in crumbs and its ephemerals keep coalescing. */
  if (c->write_failed || !base_queue_empty(&c->outq) || c->close_code || io_partial(c)) {
    coord_metric_add(c->ws->d->m.ws_wait_writable, 1);
    c->want_writable = true;
    io_want_writable(c);
  } else if (more) {
    coord_metric_add(c->ws->d->m.ws_wait_next_turn, 1);
    /* More than a budget, and the socket took it all: the next budget goes out next turn
     * (after other connections had theirs), without asking for POLLOUT. Turning POLLOUT
     * on and off goes through uv_poll_start(), which in libuv 1.44 deletes the fd from
     * epoll and adds it again: at S1's ceiling every subscriber falls more than a budget
     * behind in a long turn, and those epoll_ctl calls made the next turn longer still. */
    if (c->ws->stopped) {
      c->want_writable = true;
      io_want_writable(c);
    } else {
      ws_again_mark(c);
    }
  }
}

bool coord_ws_closing(const coord_ws_conn_t *c) { return c->close_code || c->closed; }

bool coord_ws_bulk(const coord_ws_conn_t *c) { return c->bulk; }

void coord_ws_close(coord_ws_conn_t *c, uint16_t code, const char *reason) {
  if (c->close_code || c->closed) return;
  c->close_code = code;
  if (!reason) reason = "";
  c->close_reason = xstrndup(reason, strnlen(reason, 123));
  if (c->wsi) lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, WS_CLOSE_TIMEOUT_S);
  else coord__wso_close_timeout(c);
  io_want_writable(c);
}

int coord_ws_conn_header(const coord_ws_conn_t *c, const char *name, char *buf, size_t len) {
  if (!c->in_open) return -1;
  if (!c->wsi) return ws_open_head ? coord_wsh_header(ws_open_head, name, buf, len) : -1;
  return coord__hdr_copy(c->wsi, name, buf, len);
}

int coord_ws_conn_query(const coord_ws_conn_t *c, const char *name, char *buf, size_t len) {
  if (!c->in_open) return -1;
  if (!c->wsi) return ws_open_head ? coord_wsh_query(ws_open_head, name, buf, len) : -1;
  return coord__query_copy(c->wsi, name, buf, len);
}

void coord_ws_conn_peer(const coord_ws_conn_t *c, char *buf, size_t len) {
  if (!len) return;
  buf[0] = '\0';
  if (c->closed) return;
  if (c->wsi) lws_get_peer_simple(c->wsi, buf, len);
  else coord__wso_peer(c, buf, len);
}

void coord__ws_drain_all(coord_ws_t *ws) {
  base_queue_t *it, *tmp;
  base_queue_foreach_safe(it, tmp, &ws->conns) {
    coord_ws_conn_t *c = base_queue_data(it, coord_ws_conn_t, link);
    if (c->ops->on_drain && !c->close_code) c->ops->on_drain(c, c->session);
  }
}

void coord__ws_close_all(coord_ws_t *ws, uint16_t code, const char *reason) {
  base_queue_t *it, *tmp;
  base_queue_foreach_safe(it, tmp, &ws->conns) {
    coord_ws_close(base_queue_data(it, coord_ws_conn_t, link), code, reason);
  }
}

/* ---- lws callbacks ---- */

/* Answers an upgrade we refuse with an HTTP status; returns what CONFIRM_UPGRADE needs. */
static int ws_refuse(struct lws *wsi, unsigned status, const char *msg, bool hang_up) {
  if (lws_return_http_status(wsi, status, msg)) return -1;
  return hang_up ? -1 : 1;
}

/* Reads the Sec-WebSocket-Protocol list of an upgrade. Only coord and coord-bulk may
 * be asked for: lws would bind any other name of its protocol table (such as the internal
 * coord-bad-http) and hang up on unknown ones without a status. Returns -1 when the list
 * names anything else (or is too long), else 0 with *bulk set when coord-bulk is in it. */
static int ws_subprotocol_list(char *list, bool *bulk) {
  *bulk = false;
  for (char *p = list; *p;) {
    while (*p == ' ' || *p == ',' || *p == '\t') p++;
    char *end = p;
    while (*end && *end != ',' && *end != ' ' && *end != '\t') end++;
    size_t n = (size_t)(end - p);
    if (n == strlen(COORD_WS_BULK_PROTOCOL) && memcmp(p, COORD_WS_BULK_PROTOCOL, n) == 0) *bulk = true;
    else if (n && !(n == strlen(COORD_WS_PROTOCOL) && memcmp(p, COORD_WS_PROTOCOL, n) == 0)) return -1;
    p = end;
  }
  return 0;
}

/* The same for an upgrade libwebsockets parsed. */
static int ws_subprotocols(struct lws *wsi, bool *bulk) {
  char list[256];
  *bulk = false;
  int len = lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL);
  if (len <= 0) return 0;
  if ((size_t)len >= sizeof list || lws_hdr_copy(wsi, list, sizeof list, WSI_TOKEN_PROTOCOL) < 0) return -1;
  return ws_subprotocol_list(list, bulk);
}

static int ws_confirm_upgrade(coord_daemon_t *d, struct lws *wsi, const char *what) {
  char uri[64];
  if (!what || strcmp(what, "websocket") != 0) return ws_refuse(wsi, 400, "unsupported upgrade", false);
  if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, WS_PATH) != 0)
    return ws_refuse(wsi, 404, "no WebSocket endpoint here", false);
  if (coord__listener_over_limit(d, wsi)) return ws_refuse(wsi, 503, "too many connections", true);
  if (d->state != COORD_STATE_RUNNING) return ws_refuse(wsi, 503, "draining", true);
  bool bulk;
  if (ws_subprotocols(wsi, &bulk) < 0)
    return ws_refuse(wsi, 400, "subprotocol: only coord or " COORD_WS_BULK_PROTOCOL, false);
  if (bulk && d->ws->nbulk >= (size_t)d->cfg->limits.ws_bulk_connections)
    return ws_refuse(wsi, 503, "too many " COORD_WS_BULK_PROTOCOL " connections", true);
  const coord_ws_session_ops_t *ops = d->ws->ops;
  if (ops->on_upgrade) {
    coord_ws_upgrade_t u = {.wsi = wsi};
    char reason[160] = "";
    int status = ops->on_upgrade(&u, d->ws->ops_ud, reason, sizeof reason);
    if (status) return ws_refuse(wsi, (unsigned)status, reason[0] ? reason : "refused", true);
  }
  return 0;
}

int coord__ws_upgrade_own(coord_daemon_t *d, const coord_wsh_head_t *h, bool over, bool *bulk,
                          char *reason, size_t reason_len) {
  *bulk = false;
  if (d->state != COORD_STATE_RUNNING) return snprintf(reason, reason_len, "draining"), 503;
  if (over) return snprintf(reason, reason_len, "too many connections"), 503;
  char list[256];
  bool asked = coord_wsh_has_header(h, "sec-websocket-protocol");
  if (asked && (coord_wsh_header(h, "sec-websocket-protocol", list, sizeof list) < 0 ||
                ws_subprotocol_list(list, bulk) < 0)) {
    snprintf(reason, reason_len, "subprotocol: only coord or " COORD_WS_BULK_PROTOCOL);
    return 400;
  }
  if (*bulk && d->ws->nbulk >= (size_t)d->cfg->limits.ws_bulk_connections)
    return snprintf(reason, reason_len, "too many " COORD_WS_BULK_PROTOCOL " connections"), 503;
  const coord_ws_session_ops_t *ops = d->ws->ops;
  if (ops->on_upgrade) {
    coord_ws_upgrade_t u = {.wsi = NULL, .head = h};
    reason[0] = '\0';
    int status = ops->on_upgrade(&u, d->ws->ops_ud, reason, reason_len);
    if (status) {
      if (!reason[0]) snprintf(reason, reason_len, "refused");
      return status;
    }
  }
  return 0;
}

/* Both transports: the connection is open. */
static void ws_open(coord_daemon_t *d, coord_ws_conn_t *c, bool bulk) {
  coord_ws_t *ws = d->ws;
  c->ws = ws;
  c->ops = ws->ops;
  base_queue_init(&c->outq);
  base_queue_init(&c->again);
  base_queue_insert_tail(&ws->conns, &c->link);
  ws->nconns++;
  if (bulk) {
    c->bulk = true;
    ws->nbulk++;
  }
  c->in_open = true;
  int rc = c->ops->on_open ? c->ops->on_open(c, ws->ops_ud, &c->session) : 0;
  c->in_open = false;
  if (rc < 0 && !c->close_code) coord_ws_close(c, COORD_WS_CLOSE_INTERNAL, "session refused");
}

void coord__ws_open(coord_daemon_t *d, coord_ws_conn_t *c, bool bulk, const coord_wsh_head_t *h) {
  c->wsi = NULL;
  ws_open_head = h;
  ws_open(d, c, bulk);
  ws_open_head = NULL;
}

static void ws_established(coord_daemon_t *d, struct lws *wsi, coord_pss_t *pss) {
  pss->kind = COORD_PSS_WS;
  pss->ws.wsi = wsi;
  const struct lws_protocols *proto = lws_get_protocol(wsi);
  ws_open(d, &pss->ws, proto && proto->name && strcmp(proto->name, COORD_WS_BULK_PROTOCOL) == 0);
}

static void ws_rx_reset(coord_ws_conn_t *c) {
  free(c->rx);
  c->rx = NULL;
  c->rx_len = c->rx_cap = 0;
  c->rx_active = false;
}

static void ws_dispatch(coord_daemon_t *d, coord_ws_conn_t *c, const char *data, size_t len) {
  coord_metric_add(d->m.ws_frames_in, 1);
  coord_metric_add(d->m.ws_bytes_in, (double)len);
  if (c->ops->on_message) c->ops->on_message(c, c->session, data, len, c->rx_binary);
}

static void ws_fail(coord_ws_conn_t *c, uint16_t code, const char *reason, coord_metric_t *counter) {
  coord_metric_add(counter, 1);
  ws_rx_reset(c);
  coord_ws_close(c, code, reason);
}

/* Both transports: appends a piece of a message to the reassembly buffer, grown towards
 * `expect` bytes in all (the message is known to stay within limits.max_ws_message, so the
 * buffer does too), and dispatches the message after its last piece. */
static void ws_rx_append(coord_daemon_t *d, coord_ws_conn_t *c, const char *in, size_t len,
                         size_t expect, bool last) {
  if (c->rx_len + len > c->rx_cap) {
    size_t max = (size_t)d->cfg->limits.max_ws_message;
    size_t cap = c->rx_cap ? c->rx_cap : 1024;
    while (cap < expect) cap *= 2;
    if (cap > max && max >= c->rx_len + len) cap = max;
    c->rx = xrealloc(c->rx, cap);
    c->rx_cap = cap;
  }
  memcpy(c->rx + c->rx_len, in, len);
  c->rx_len += len;
  if (last) {
    char *msg = c->rx;
    size_t n = c->rx_len;
    c->rx = NULL; /* reset first: the session may close or send from on_message */
    c->rx_len = c->rx_cap = 0;
    c->rx_active = false;
    ws_dispatch(d, c, msg, n);
    free(msg);
  }
}

static int ws_receive(coord_daemon_t *d, struct lws *wsi, coord_ws_conn_t *c, const char *in,
                      size_t len) {
  if (c->close_code) return 0; /* closing: ignore whatever still arrives */
  bool first = !c->rx_active;
  bool final = lws_is_final_fragment(wsi);
  size_t max = (size_t)d->cfg->limits.max_ws_message;
  size_t frame_rest = lws_remaining_packet_payload(wsi);
  if (c->rx_len + len + frame_rest > max) {
    ws_fail(c, COORD_WS_CLOSE_TOO_BIG, "message too big", d->m.ws_closed_too_big);
    return 0;
  }
  if (first) {
    c->rx_active = true;
    c->rx_binary = lws_frame_is_binary(wsi);
    coord_utf8_init(&c->utf8);
  }
  if (!c->rx_binary && !coord_utf8_feed(&c->utf8, in, len)) {
    ws_fail(c, COORD_WS_CLOSE_INVALID_DATA, "invalid UTF-8", d->m.ws_closed_utf8);
    return 0;
  }
  if (final && !c->rx_binary && !coord_utf8_complete(&c->utf8)) {
    ws_fail(c, COORD_WS_CLOSE_INVALID_DATA, "invalid UTF-8", d->m.ws_closed_utf8);
    return 0;
  }
  if (first && final) {
    /* The common case: the whole message is in lws's buffer; no copy. */
    c->rx_active = false;
    ws_dispatch(d, c, in, len);
    return 0;
  }
  ws_rx_append(d, c, in, len, c->rx_len + len + frame_rest, final);
  return 0;
}

void coord__ws_protocol_fail(coord_daemon_t *d, coord_ws_conn_t *c, uint16_t code) {
  if (code == COORD_WS_CLOSE_TOO_BIG) ws_fail(c, code, "message too big", d->m.ws_closed_too_big);
  else if (code == COORD_WS_CLOSE_INVALID_DATA) ws_fail(c, code, "invalid UTF-8", d->m.ws_closed_utf8);
  else {
    ws_rx_reset(c);
    coord_ws_close(c, code, "protocol error");
  }
}

/* Our own transport's pieces: the parser has already refused a message over the limit. */
void coord__ws_rx_piece(coord_daemon_t *d, coord_ws_conn_t *c, const char *in, size_t len, bool first,
                        bool last, bool binary) {
  if (c->close_code) return; /* closing: ignore whatever still arrives */
  if (first) {
    c->rx_active = true;
    c->rx_binary = binary;
    coord_utf8_init(&c->utf8);
  }
  if (!c->rx_binary && (!coord_utf8_feed(&c->utf8, in, len) || (last && !coord_utf8_complete(&c->utf8)))) {
    ws_fail(c, COORD_WS_CLOSE_INVALID_DATA, "invalid UTF-8", d->m.ws_closed_utf8);
    return;
  }
  if (first && last) {
    c->rx_active = false;
    ws_dispatch(d, c, in, len);
    return;
  }
  ws_rx_append(d, c, in, len, c->rx_len + len, last);
}

/* STACK-NOTES P2: on this lws build a close frame queued with lws_close_reason() is lost,
 * so the frame is written directly with the internal LWS_WRITE_CLOSE (4). The connection is
 * not dropped right away: closing a socket with unread input makes the kernel send RST, and
 * a client still sending (say, the rest of an oversized message) would lose our close frame
 * with it. We wait for the client's close reply (WS_PEER_INITIATED_CLOSE) instead; the
 * PENDING_TIMEOUT_CLOSE_SEND set by coord_ws_close() ends connections that never reply. */
static int ws_send_close(coord_ws_conn_t *c) {
  unsigned char buf[LWS_PRE + 2 + 124];
  size_t rlen = strlen(c->close_reason);
  buf[LWS_PRE] = (unsigned char)(c->close_code >> 8);
  buf[LWS_PRE + 1] = (unsigned char)(c->close_code & 0xff);
  memcpy(buf + LWS_PRE + 2, c->close_reason, rlen);
  if (c->wsi) {
    if (lws_write(c->wsi, buf + LWS_PRE, 2 + rlen, (enum lws_write_protocol)4) < 0) return -1;
  } else {
    size_t hl = coord_wsf_header(buf + LWS_PRE - 2, COORD_WSF_CLOSE, true, 2 + rlen);
    if (coord__wso_write(c, buf + LWS_PRE - hl, hl + 2 + rlen) < 0) return -1;
  }
  c->close_sent = true;
  return 0;
}

/* Writes queued copies, several per write, within budget; returns bytes written or -1. */
static long ws_write_queue(coord_ws_conn_t *c, size_t budget) {
  coord_ws_out_t out[WS_BATCH_MAX];
  coord_ws_frame_t *taken[WS_BATCH_MAX];
  size_t used = 0;
  while (!base_queue_empty(&c->outq) && used < budget) {
    if (used && io_choked(c)) break;
    size_t n = 0, bytes = 0;
    base_queue_t *it;
    base_queue_foreach(it, &c->outq) {
      coord_ws_frame_t *f = base_queue_data(it, coord_ws_frame_t, link);
      if (n == c->ws->max_batch || (n && used + bytes + f->len > budget)) break;
      out[n] = (coord_ws_out_t){.payload = f->buf + LWS_PRE, .len = f->len, .binary = f->binary};
      taken[n++] = f;
      bytes += f->len;
    }
    int rc = ws_write_batch(c, out, n);
    for (size_t i = 0; i < n; i++) {
      base_queue_remove(&taken[i]->link);
      c->outq_bytes -= taken[i]->len;
      free(taken[i]);
    }
    if (rc < 0) return -1;
    used += bytes;
  }
  return (long)used;
}

static int ws_writable(coord_daemon_t *d, coord_ws_conn_t *c) {
  (void)d;
  if (c->write_failed) return -1;
  c->want_writable = false;
  size_t budget = WS_WRITE_BUDGET;
  long wrote = ws_write_queue(c, budget);
  if (wrote < 0) return -1;
  size_t used = (size_t)wrote;
  if (c->rx_paused && c->outq_bytes < WS_RX_RESUME && !c->close_code) {
    bool was = true;
    c->rx_paused = false;
    ws_rx_update(c, was);
  }
  if (!base_queue_empty(&c->outq)) {
    io_want_writable(c);
    return 0;
  }
  if (c->close_code) {
    if (c->close_sent) return 0;
    if (io_choked(c)) {
      io_want_writable(c);
      return 0;
    }
    return ws_send_close(c);
  }
  /* lws calls WRITEABLE only when the socket took everything before, so the (poll-based)
   * choke test is needed only after our own writes of this turn. */
  if (c->ops->on_writable && used < budget && !(used && io_choked(c))) {
    c->in_writable = true;
    bool more = c->ops->on_writable(c, c->session, budget - used);
    c->in_writable = false;
    if (more || !base_queue_empty(&c->outq) || c->close_code) {
      c->want_writable = true;
      io_want_writable(c);
    }
  } else if (c->ops->on_writable) {
    /* The copies used the turn: the session's turn comes with the next WRITEABLE. */
    c->want_writable = true;
    io_want_writable(c);
  }
  return 0;
}

static void ws_closed(coord_daemon_t *d, coord_ws_conn_t *c) {
  if (c->closed || !c->ws) return;
  c->closed = true;
  ws_rx_unmark(c);
  if (c->ops->on_close) c->ops->on_close(c, c->session);
  c->session = NULL;
  base_queue_t *it, *tmp;
  base_queue_foreach_safe(it, tmp, &c->outq) {
    base_queue_remove(it);
    free(base_queue_data(it, coord_ws_frame_t, link));
  }
  c->outq_bytes = 0;
  if (c->rx_paused || c->session_paused) d->ws->npaused--;
  c->rx_paused = c->session_paused = false;
  free(c->close_reason);
  c->close_reason = NULL;
  ws_rx_reset(c);
  base_queue_remove(&c->again);
  base_queue_remove(&c->link);
  d->ws->nconns--;
  if (c->bulk) d->ws->nbulk--;
  if (d->ws->nconns == 0) coord__daemon_conn_gone(d);
}

int coord__ws_writable(coord_daemon_t *d, coord_ws_conn_t *c) { return ws_writable(d, c); }

void coord__ws_gone(coord_daemon_t *d, coord_ws_conn_t *c) { ws_closed(d, c); }

int coord__ws_callback(coord_daemon_t *d, struct lws *wsi, enum lws_callback_reasons reason,
                       coord_pss_t *pss, void *in, size_t len) {
  switch (reason) {
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    return ws_confirm_upgrade(d, wsi, in);
  case LWS_CALLBACK_ESTABLISHED:
    ws_established(d, wsi, pss);
    return 0;
  case LWS_CALLBACK_RECEIVE:
    if (pss->kind != COORD_PSS_WS) return -1;
    ws_rx_mark(&pss->ws);
    return ws_receive(d, wsi, &pss->ws, in, len);
  case LWS_CALLBACK_SERVER_WRITEABLE:
    if (pss->kind != COORD_PSS_WS) return 0;
    return ws_writable(d, &pss->ws);
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    /* Our own close already went out: this is the reply, hang up. Otherwise the client
     * started the close and lws echoes it. */
    return pss->kind == COORD_PSS_WS && pss->ws.close_sent ? -1 : 0;
  case LWS_CALLBACK_CLOSED:
    if (pss->kind == COORD_PSS_WS) ws_closed(d, &pss->ws);
    return 0;
  default:
    return 0;
  }
}
