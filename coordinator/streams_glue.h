/* Declarations shared by the files that put the streams engine (streams/) on the daemon:
 * streams_mod.c (attach, config mapping, auth helpers, housekeeping timer, metrics, drain
 * and stop), streams_ws.c (the /v1/ws session), streams_http.c (publish, read, list) and
 * streams_sse.c (Server-Sent Events). Included by those files only.
 *
 * Lifetime: the module (coord_streams_t) lives from attach to the daemon's exit hook. The
 * hub is closed in the stop hook, after every stream_conn_t was freed; from then on
 * `stopped` is true and the transports' late callbacks (a WebSocket closing during
 * lws_context_destroy) touch nothing of the engine. The store is closed in the exit hook,
 * once the loop has run the hub's close callbacks. */
#ifndef COORD_STREAMS_GLUE_H
#define COORD_STREAMS_GLUE_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "internal.h"
#include "streams.h"

enum { COORD_STREAMS_WS = 0, COORD_STREAMS_SSE = 1, COORD_STREAMS_TRANSPORTS = 2 };

typedef struct coord_streams_metrics {
  coord_metric_t *delivered[COORD_STREAMS_TRANSPORTS][STREAM_LANES]; /* event frames written */
  coord_metric_t *durable_to_write[COORD_STREAMS_TRANSPORTS];        /* histograms */
  coord_metric_t *closed_slow, *closed_expired, *closed_overflow;    /* connections closed */
  coord_metric_t *http_published;                                    /* events via POST */
  coord_metric_t *reads_deferred; /* GET .../events put off while a WAL settle held the reader */
} coord_streams_metrics_t;

/* Invariants: hub and store are set between a successful attach and stop/exit; every
 * stream_conn_t of a session is freed before the hub is closed (stopped = true). */
typedef struct coord_streams {
  coord_daemon_t *d;        /* borrowed */
  store_t *store;           /* owned */
  stream_hub_t *hub;        /* owned; NULL once closed */
  stream_config_t scfg;     /* what the hub was created with */
  coord_auth_jwt_cfg_t jwt; /* secret borrowed from the config */
  uv_timer_t tick;          /* housekeeping: slow clients, expiry, SSE keepalives */
  bool tick_started;
  bool draining;            /* SIGTERM seen */
  bool stopped;             /* hub closed */
  uint64_t tick_ms;         /* interval of the housekeeping timer */
  uint64_t rng;             /* xorshift state for retry jitter */
  base_queue_t ws_sessions; /* streams_ws.c sessions */
  base_queue_t sse_streams; /* streams_sse.c streams */
  base_queue_t posts;       /* streams_http.c publishes waiting for durability */
  base_queue_t reads;       /* streams_http.c event reads waiting for a WAL settle to end */
  coord_streams_metrics_t m;
} coord_streams_t;

/* ---- streams_mod.c ---- */

/* Authenticates a bearer token (NULL or "" when none was presented) into out. Mode none:
 * the any-tenant principal. Mode jwt: verifies the token. Returns 0, or 401 with reason
 * filled ("missing bearer token", "token expired", ...). out needs
 * coord_auth_principal_close either way. */
int coord__streams_authenticate(coord_streams_t *s, const char *token, coord_auth_principal_t *out,
                                char *reason, size_t reason_len);
/* The engine's view of p; p must outlive the stream_conn_t (its allows callback reads it). */
void coord__streams_principal(const coord_auth_principal_t *p, stream_principal_t *out);
/* A reconnect hint for drain: 250 ms plus up to 2 s of jitter. */
uint32_t coord__streams_retry_ms(coord_streams_t *s);
/* The slow-client deadline (limits.slow_client_timeout_ms), shared by the transports:
 * *waiting_since_ms follows `waiting` (data waits for the socket); once the client has
 * been waiting, with no progress since progress_ms, for the timeout, logs and counts the
 * close and returns how long it was unwritable (the caller closes it); else 0. */
uint64_t coord__streams_slow_due(coord_streams_t *s, const char *transport, const stream_conn_t *conn,
                                 bool waiting, uint64_t *waiting_since_ms, uint64_t progress_ms,
                                 uint64_t now_ms);
/* Counts frames written together by a transport at now_us (one write): deliveries by lane
 * and durable -> write, one counter update per lane and one histogram update per run of
 * frames from the same commit. */
void coord__streams_count_writes(coord_streams_t *s, int transport, stream_frame_t *const *frames,
                                 size_t n, uint64_t now_us);
/* Counts one frame written by a transport (coord__streams_count_writes of one). */
void coord__streams_count_write(coord_streams_t *s, int transport, const stream_frame_t *f,
                                uint64_t now_us);
/* Wall clock, unix seconds (token expiry). */
int64_t coord__streams_now_s(void);
/* Monotonic milliseconds (uv_hrtime). */
uint64_t coord__streams_mono_ms(void);

/* ---- streams_ws.c ---- */

extern const coord_ws_session_ops_t coord__streams_ws_session;
/* Closes connections that stayed unwritable with data pending past
 * limits.slow_client_timeout_ms, and connections whose token expired. */
void coord__streams_ws_tick(coord_streams_t *s, uint64_t now_ms);
/* Frees every connection's stream_conn_t (before the hub closes). */
void coord__streams_ws_stop(coord_streams_t *s);
/* Reliable events committed but not yet written, over WebSocket connections. */
void coord__streams_ws_lag(coord_streams_t *s, uint64_t *max, uint64_t *total, uint64_t *lagging);

/* ---- streams_http.c ---- */

/* POST/GET .../events and GET /v1/streams/{tenant}. */
int coord__streams_http_register(coord_streams_t *s) __attribute__((warn_unused_result));
/* Answers 503 to publishes still waiting (stop). */
void coord__streams_http_stop(coord_streams_t *s);
/* Authenticates req (Authorization: Bearer, or ?access_token= when query_token) and builds
 * the topic from the route's {tenant} and {room...} into topic (STREAM_TOPIC_MAX + 1
 * bytes), checking that the principal may do action (COORD_AUTH_SCOPE_*). On failure the
 * request is answered (401, 400, 403) and -1 returned; on success 0, and who must be
 * closed by the caller. */
int coord__streams_http_open(coord_streams_t *s, coord_http_req_t *req, unsigned action,
                             bool query_token, coord_auth_principal_t *who, char *topic);
/* Answers req with the error of an engine call: status from errno, Retry-After for
 * -EAGAIN / -EBUSY, {"error":{"code","message","retry_after_ms"?}}. */
void coord__streams_http_fail(coord_http_req_t *req, int rc, const stream_err_t *err);

/* ---- groups_http.c ---- */

/* GET /v1/streams/{tenant}/{room...}/groups. */
int coord__streams_groups_http_register(coord_streams_t *s) __attribute__((warn_unused_result));

/* ---- streams_sse.c ---- */

int coord__streams_sse_register(coord_streams_t *s) __attribute__((warn_unused_result));
/* Drain: each stream gets a final `drain` event and ends once written. */
void coord__streams_sse_drain(coord_streams_t *s);
/* Keepalive comments and token expiry. */
void coord__streams_sse_tick(coord_streams_t *s, uint64_t now_ms);
/* Frees every stream's stream_conn_t and ends the responses (before the hub closes). */
void coord__streams_sse_stop(coord_streams_t *s);
size_t coord__streams_sse_count(const coord_streams_t *s);

#endif
