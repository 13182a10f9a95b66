/* Declarations shared inside the coordinator folder: the daemon context, the
 * per-connection data libwebsockets allocates for our protocol, and the entry points the
 * single lws protocol callback (transport.c) dispatches to. Only files of this folder
 * include it; it may include libwebsockets.h. */
#ifndef COORD_INTERNAL_H
#define COORD_INTERNAL_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/queue.h"
#include "config.h"
#include "http.h"
#include "metrics.h"
#include "utf8.h"
#include "ws.h"

typedef struct coord_daemon coord_daemon_t;

typedef enum {
  COORD_STATE_RUNNING = 0,
  COORD_STATE_DRAINING, /* listener closed, /readyz 503, WebSockets told */
  COORD_STATE_CLOSING,  /* close 1001 sent, waiting for clients to go */
  COORD_STATE_STOPPING, /* tearing down lws and our handles */
} coord_state_t;

/* Hooks run once when graceful shutdown begins (the streams layer stops publishes there)
 * and once when the daemon stops (close every uv handle you own there, or the loop never
 * ends). */
typedef void (*coord_daemon_hook_fn)(coord_daemon_t *d, void *ud);

#define COORD_DAEMON_MAX_HOOKS 8

/* Our own listening socket: accepted fds are handed to lws (lws_adopt_socket_vhost), so we
 * decide about fd exhaustion, connection limits and when to stop accepting. */
typedef struct coord_listener {
  int fd;            /* -1 when closed */
  uv_poll_t poll;    /* on fd */
  uv_timer_t retry;  /* re-enables accepting after EMFILE */
  bool active;
  bool retry_active;
  uint64_t emfile_logged_ms; /* rate limit of the EMFILE warning */
} coord_listener_t;

/* Daemon-wide counters that hot paths bump directly (series live in d->metrics). */
typedef struct coord_daemon_metrics {
  coord_metric_t *ws_frames_in, *ws_frames_out; /* messages, not wire frames */
  coord_metric_t *ws_bytes_in, *ws_bytes_out;
  coord_metric_t *ws_writes;                       /* lws_write calls carrying messages */
  coord_metric_t *ws_wait_writable, *ws_wait_next_turn; /* after an eager write: what it waits for */
  coord_metric_t *loop_lag;                        /* histogram */
  coord_metric_t *rejected_max, *rejected_fd;      /* connections refused */
  coord_metric_t *ws_closed_too_big, *ws_closed_utf8;
  coord_metric_family_t *http_requests;            /* {route, status} */
} coord_daemon_metrics_t;

typedef struct coord_wso coord_wso_t;

struct coord_daemon {
  const coord_config_t *cfg; /* borrowed */
  uv_loop_t *loop;           /* borrowed */
  struct lws_context *lws;   /* owned */
  struct lws_vhost *vhost;   /* borrowed from lws */
  coord_metrics_t *metrics;  /* owned */
  coord_daemon_metrics_t m;
  coord_http_t *http;        /* owned */
  coord_ws_t *ws;            /* owned */
  coord_wso_t *wso;          /* owned; NULL unless websocket.own_transport */
  coord_listener_t listener;
  lws_retry_bo_t idle_policy;
  uv_signal_t sig_term, sig_int;
  uv_timer_t lag_timer, drain_timer;
  uint64_t lag_due_ns;       /* when the lag timer should fire (uv_hrtime) */
  coord_state_t state;
  bool destroyed;            /* daemon_destroy ran: handles closing, lws going */
  char *web_root_real;       /* owned: realpath of cfg->web_root, NULL when unusable */
  int bound_port;
  int64_t open_conns;        /* accepted TCP connections not yet destroyed */
  int64_t max_conns;         /* effective: min(limits.max_connections, fd capacity) */
  int fd_limit;              /* RLIMIT_NOFILE soft after raising */
  int signals;               /* signals received */
  int exit_code;
  char conn_marker, over_marker; /* addresses tag our accepted wsis (opaque user data) */
  struct {
    coord_daemon_hook_fn fn;
    void *ud;
  } drain_hooks[COORD_DAEMON_MAX_HOOKS], stop_hooks[COORD_DAEMON_MAX_HOOKS],
      exit_hooks[COORD_DAEMON_MAX_HOOKS];
  int ndrain_hooks, nstop_hooks, nexit_hooks;
  /* The streams hub for modules attached after "streams" (workflows publish their run
   * events there): set by the streams module's attach, NULL again once its stop hook closed
   * the hub. Hooks run in reverse registration order, so a later module stops (releasing
   * its connections and frames) before the hub it uses is closed. */
  struct stream_hub *streams_hub; /* borrowed */
  /* The streams module's store (the run engine keeps its runs there too): set by the
   * streams module's attach, NULL again at its exit hook. */
  struct store *streams_store; /* borrowed */
  /* Why the daemon is not ready although running (NULL = ready); for /readyz. */
  const char *(*not_ready)(void *ud);
  void *not_ready_ud;
};

/* Per-connection data lws allocates (zeroed) for our protocol at each protocol bind: an
 * HTTP connection keeps its current request there, a WebSocket its whole state (embedded to
 * save an allocation per connection). */
typedef enum { COORD_PSS_NONE = 0, COORD_PSS_HTTP, COORD_PSS_WS } coord_pss_kind_t;

typedef struct coord_ws_frame coord_ws_frame_t;

struct coord_ws_conn {
  base_queue_t link;     /* in coord_ws_t.conns */
  struct lws *wsi;       /* borrowed; NULL on a connection of our own transport (wso.c) */
  coord_ws_t *ws;        /* borrowed */
  const coord_ws_session_ops_t *ops; /* borrowed */
  void *session;         /* owned by the session ops */
  base_queue_t outq;     /* owned coord_ws_frame_t, oldest first */
  base_queue_t again;    /* in coord_ws_t.again while it has more than one budget to write */
  size_t outq_bytes;
  char *rx;              /* owned reassembly buffer (NULL between messages) */
  size_t rx_len, rx_cap; /* bytes */
  coord_utf8_t utf8;     /* state of the text message being received */
  uint16_t close_code;   /* nonzero: close frame pending or sent */
  /* Flags as one-bit fields: with the two fields above they fill the word before
   * close_reason, so a connection (held for every WebSocket) has no padding. */
  bool rx_active : 1;      /* inside a fragmented message */
  bool rx_binary : 1;
  bool in_open : 1;        /* during on_open: headers readable */
  bool in_writable : 1;    /* during on_writable: coord_ws_write allowed */
  bool close_sent : 1;     /* our close frame is out; waiting for the peer's close */
  bool rx_paused : 1;      /* reading paused until the copy queue drains (backpressure) */
  bool session_paused : 1; /* the session asked to stop reading (coord_ws_pause_reading) */
  bool rx_hot : 1;         /* listed in coord_ws_t's read-ahead list for this loop turn */
  bool write_failed : 1;   /* a write outside WRITEABLE failed: the next WRITEABLE hangs up */
  bool want_writable : 1;  /* a writable event was asked for (WRITEABLE / wso's POLLOUT), not come yet */
  bool closed : 1;         /* on_close ran */
  bool bulk : 1;           /* on the coord-bulk subprotocol: counted in coord_ws_t.nbulk */
  char *close_reason;    /* owned while a close is pending (at most 123 bytes) */
};

typedef struct coord_pss {
  coord_pss_kind_t kind;
  coord_http_req_t *req; /* owned: current HTTP request, if any */
  coord_ws_conn_t ws;    /* kind == COORD_PSS_WS */
} coord_pss_t;

/* transport.c: the one lws protocol (HTTP + WebSocket) and the raw 400 fallback. */
extern const struct lws_protocols coord__protocols[];
/* The default protocol's name (a client may ask for it or for none) and the subprotocol a
 * publishing client asks for to be read 16 KB at a time (transport.c). */
#define COORD_WS_PROTOCOL "coord"
#define COORD_WS_BULK_PROTOCOL "coord-bulk"
/* Copies request header name (case-insensitive) of wsi; -1 when absent. */
int coord__hdr_copy(struct lws *wsi, const char *name, char *buf, size_t len);
/* Copies query argument name (decoded) of wsi; -1 when absent. */
int coord__query_copy(struct lws *wsi, const char *name, char *buf, size_t len);

/* http.c */
coord_http_t *coord__http_new(coord_daemon_t *d);
void coord__http_free(coord_http_t *h);
int coord__http_callback(coord_daemon_t *d, struct lws *wsi, enum lws_callback_reasons reason,
                         coord_pss_t *pss, void *in, size_t len);

/* wso.c: the WebSockets the daemon reads and writes itself (websocket.own_transport 1,
 * the default);
 * ws.c calls the coord__wso_* functions for a connection whose wsi is NULL. */
struct coord_wsh_head;
coord_wso_t *coord__wso_new(coord_daemon_t *d);
void coord__wso_free(coord_wso_t *o);
/* Takes an accepted socket: reads its request head, answers a /v1/ws upgrade itself and
 * hands anything else to libwebsockets (coord__listener_adopt_lws). */
void coord__wso_accept(coord_daemon_t *d, int fd, bool over);
void coord__wso_want_writable(coord_ws_conn_t *c);
bool coord__wso_choked(const coord_ws_conn_t *c);
/* Sends len bytes (whole frames) now, keeping what the kernel does not take; 0 or -EPIPE. */
int coord__wso_write(coord_ws_conn_t *c, const unsigned char *buf, size_t len);
void coord__wso_rx_flow(coord_ws_conn_t *c, bool on);
/* A close was started: the connection is hung up if it is not gone within 5 s. */
void coord__wso_close_timeout(coord_ws_conn_t *c);
void coord__wso_peer(const coord_ws_conn_t *c, char *buf, size_t len);

/* ws.c */
/* For wso.c: the checks of an upgrade read by the daemon (path and upgrade headers already
 * checked); returns 0 (with *bulk) or an HTTP status and reason. */
int coord__ws_upgrade_own(coord_daemon_t *d, const struct coord_wsh_head *h, bool over, bool *bulk,
                          char *reason, size_t reason_len);
/* For wso.c: the connection is open (headers of h readable during on_open). */
void coord__ws_open(coord_daemon_t *d, coord_ws_conn_t *c, bool bulk, const struct coord_wsh_head *h);
/* For wso.c: a piece of a message (first/last as wsframe.h says). */
void coord__ws_rx_piece(coord_daemon_t *d, coord_ws_conn_t *c, const char *in, size_t len, bool first,
                        bool last, bool binary);
/* For wso.c: the client broke the protocol (1002, 1007 or 1009): close with that code. */
void coord__ws_protocol_fail(coord_daemon_t *d, coord_ws_conn_t *c, uint16_t code);
/* For wso.c: the socket is writable; -1 means hang up. */
int coord__ws_writable(coord_daemon_t *d, coord_ws_conn_t *c);
/* For wso.c: every open connection (coord_ws_conn_t.link), both transports. */
base_queue_t *coord__ws_conns(coord_ws_t *ws);
/* For wso.c: the connection is gone; calls the session's on_close. */
void coord__ws_gone(coord_daemon_t *d, coord_ws_conn_t *c);

coord_ws_t *coord__ws_new(coord_daemon_t *d);
void coord__ws_free(coord_ws_t *ws);
int coord__ws_callback(coord_daemon_t *d, struct lws *wsi, enum lws_callback_reasons reason,
                       coord_pss_t *pss, void *in, size_t len);
/* Drain: on_drain for every session; then close: 1001 to every connection. */
void coord__ws_drain_all(coord_ws_t *ws);
void coord__ws_close_all(coord_ws_t *ws, uint16_t code, const char *reason);
/* Connections whose reading is paused because their replies pile up. */
size_t coord__ws_paused_count(const coord_ws_t *ws);

/* listener.c */
int coord__listener_start(coord_daemon_t *d) __attribute__((warn_unused_result));
void coord__listener_stop(coord_daemon_t *d);
/* Called from WSI_DESTROY for every wsi: keeps open_conns right. */
void coord__listener_wsi_destroyed(coord_daemon_t *d, struct lws *wsi);
/* Hands an accepted socket to libwebsockets (counted in open_conns until WSI_DESTROY). */
void coord__listener_adopt_lws(coord_daemon_t *d, int fd, bool over);
/* True when wsi was accepted above max_conns and must get 503 and close. */
bool coord__listener_over_limit(coord_daemon_t *d, struct lws *wsi);

/* static.c: GET routes serving cfg->web_root. */
int coord__static_register(coord_daemon_t *d) __attribute__((warn_unused_result));

/* endpoints.c: /healthz, /readyz, /metrics. */
int coord__endpoints_register(coord_daemon_t *d) __attribute__((warn_unused_result));

/* streams_mod.c: the streams engine on the daemon (store, hub, WebSocket session, HTTP
 * and SSE routes, metrics, drain). */
int coord__streams_attach(coord_daemon_t *d) __attribute__((warn_unused_result));

/* runs_mod.c: the workflow engine and the model clients on the daemon (registry with
 * SIGHUP reload, /v1/workflows and /v1/runs routes, metrics); attached after streams. */
int coord__runs_attach(coord_daemon_t *d) __attribute__((warn_unused_result));

/* testroutes.c: the /_test/ routes, only with COORD_TEST_ROUTES=1 in the environment. */
int coord__testroutes_register(coord_daemon_t *d) __attribute__((warn_unused_result));

/* daemon.c */
int coord__daemon_run(const coord_config_t *cfg);
/* Registers a hook run at drain start / at stop, in reverse registration order: modules
 * attached later (which use earlier ones) drain and stop first (at most
 * COORD_DAEMON_MAX_HOOKS each). Call from a module's attach function (daemon.c). */
void coord_daemon_on_drain(coord_daemon_t *d, coord_daemon_hook_fn fn, void *ud);
void coord_daemon_on_stop(coord_daemon_t *d, coord_daemon_hook_fn fn, void *ud);
/* Registers a hook run after the loop has ended (every handle closed), before the loop is
 * closed, in reverse registration order: where a module frees what its handles' close
 * callbacks needed (a store). */
void coord_daemon_on_exit(coord_daemon_t *d, coord_daemon_hook_fn fn, void *ud);
/* Installs the check /readyz makes while running: fn returns a reason ("overloaded") to
 * answer 503 with it, or NULL when ready. One check; a later call replaces it. */
void coord_daemon_set_ready_check(coord_daemon_t *d, const char *(*fn)(void *ud), void *ud);
/* The ws module tells the daemon that the last WebSocket went away. */
void coord__daemon_conn_gone(coord_daemon_t *d);

#endif
