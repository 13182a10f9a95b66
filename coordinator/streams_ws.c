/* The streams WebSocket session on /v1/ws: one stream_conn_t per connection.
 *
 * Owns authentication of the upgrade (a bearer token from the Authorization header or
 * ?access_token=; 401 at the upgrade, 1008 if it fails later), the principal each
 * connection keeps, feeding complete messages to the engine, pulling frames on WRITEABLE
 * and writing them in one send per turn (coord_ws_write_frames), read backpressure on the
 * control queue, the drain message and the 1001 close once it is written, and the
 * housekeeping of slow clients and expired tokens. The protocol itself is the engine's
 * (streams/protocol.c); the framing is ws.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/log.h"
#include "base/mem.h"
#include "streams_glue.h"

#define SWS_PLAIN_QUEUE 64 /* replies a connection not on coord-bulk may have waiting, see sws_flow */
#define SWS_PULL_MAX 256 /* frames per pull; limits.ws_frames_per_write caps it further */

/* Invariants: conn is NULL only after the module stopped (hub closed); rooms outlives conn
 * (the engine's allows callback reads it).
 *
 * A session is held for every WebSocket, so it keeps of the principal only what the
 * engine's own checks (tenant, scopes: copied into the stream_conn_t) leave out: the
 * token's expiry, and the principal itself only when the token names rooms (the allows
 * callback matches them). That is 80 bytes instead of 160 (docs/benchmarks.md, "S3: a
 * session that keeps less of its principal"). */
typedef struct sws {
  base_queue_t link;              /* in coord_streams_t.ws_sessions */
  coord_streams_t *s;             /* borrowed */
  coord_ws_conn_t *c;             /* borrowed: valid until on_close */
  stream_conn_t *conn;            /* owned */
  coord_auth_principal_t *rooms;  /* owned; the principal when its token names rooms, else NULL */
  int64_t exp_s;                  /* the token's expiry, unix seconds; 0 = never */
  uint64_t last_write_ms;     /* mono ms of the last write to this client */
  uint64_t waiting_since_ms;  /* mono ms when pending data was first seen unwritten; 0 = none */
  bool draining;
  bool paused; /* reading stopped: the control queue is half full */
} sws_t;
_Static_assert(sizeof(void *) != 8 || sizeof(sws_t) <= 80,
               "sws_t grew: it is held for every WebSocket (S3, docs/benchmarks.md)");

static int sws_token(const coord_ws_upgrade_t *u, const coord_ws_conn_t *c, char *token,
                     size_t len) {
  char hdr[COORD_AUTH_TOKEN_MAX_DEFAULT + 64];
  int n = u ? coord_ws_upgrade_header(u, "authorization", hdr, sizeof hdr)
            : coord_ws_conn_header(c, "authorization", hdr, sizeof hdr);
  if (n > 0) return coord_auth_extract_bearer(hdr, token, len) == 0 ? 0 : -EINVAL;
  n = u ? coord_ws_upgrade_query(u, "access_token", token, len)
        : coord_ws_conn_query(c, "access_token", token, len);
  if (n < 0) token[0] = '\0';
  return 0;
}

static int sws_on_upgrade(const coord_ws_upgrade_t *u, void *ud, char *reason, size_t reason_len) {
  coord_streams_t *s = ud;
  if (s->stopped) return 503;
  char token[COORD_AUTH_TOKEN_MAX_DEFAULT + 1];
  if (sws_token(u, NULL, token, sizeof token) < 0) {
    snprintf(reason, reason_len, "authorization: expected \"Bearer <token>\"");
    return 401;
  }
  coord_auth_principal_t who;
  int status = coord__streams_authenticate(s, token, &who, reason, reason_len);
  coord_auth_principal_close(&who);
  return status;
}

/* The hub calls wakes from its own loop phase, never inside our callbacks: write now. */
static void sws_wake(stream_conn_t *conn, void *ud) {
  (void)conn;
  sws_t *w = ud;
  coord_ws_flush(w->c);
}

static const stream_conn_ops_t sws_conn_ops = {.wake = sws_wake};

static int sws_on_open(coord_ws_conn_t *c, void *ud, void **session) {
  coord_streams_t *s = ud;
  *session = NULL;
  if (s->stopped) {
    coord_ws_close(c, COORD_WS_CLOSE_GOING_AWAY, "server shutting down");
    return -ESHUTDOWN;
  }
  char token[COORD_AUTH_TOKEN_MAX_DEFAULT + 1];
  char reason[160] = "";
  coord_auth_principal_t who;
  memset(&who, 0, sizeof who);
  int status = sws_token(NULL, c, token, sizeof token) < 0
                   ? 401
                   : coord__streams_authenticate(s, token, &who, reason, sizeof reason);
  if (status) {
    /* on_upgrade checked the same token a moment ago: only a token expiring in between
     * gets here */
    char msg[200];
    snprintf(msg, sizeof msg, "unauthorized: %s", reason[0] ? reason : "bad token");
    coord_ws_close(c, COORD_WS_CLOSE_POLICY, msg);
    coord_auth_principal_close(&who);
    return -EACCES;
  }
  sws_t *w = xcalloc(1, sizeof *w);
  w->exp_s = who.exp_s;
  stream_principal_t sp;
  if (who.nrooms) {
    /* the principal moves to the heap (its globs with it): the allows callback reads it */
    w->rooms = xmalloc(sizeof *w->rooms);
    coord_auth_principal_move(w->rooms, &who);
    coord__streams_principal(w->rooms, &sp);
  } else {
    /* without rooms, allows would only repeat the engine's tenant and scope checks */
    coord__streams_principal(&who, &sp);
    sp.allows = NULL;
    sp.allows_ud = NULL;
  }
  int rc = stream_conn_new(s->hub, &sws_conn_ops, w, &sp, &w->conn);
  if (rc < 0) {
    coord_auth_principal_close(w->rooms ? w->rooms : &who);
    free(w->rooms);
    free(w);
    return rc;
  }
  w->s = s;
  w->c = c;
  w->last_write_ms = coord__streams_mono_ms();
  base_queue_insert_tail(&s->ws_sessions, &w->link);
  *session = w;
  return 0;
}

static void sws_close_for(sws_t *w, const char *reason) {
  char msg[124];
  snprintf(msg, sizeof msg, "%s", reason ? reason : "closing");
  /* The server's own fault is 1011; everything else the engine closes for is the
   * client's doing (1008). */
  coord_ws_close(w->c, reason == stream_close_store_failed ? COORD_WS_CLOSE_INTERNAL : COORD_WS_CLOSE_POLICY, msg);
}

/* Replies pile up in the engine's bounded control queue when a client sends faster than
 * it reads; stop reading it at half the queue and read again below a quarter, so it is
 * slowed down instead of closed for overflow. Publishes in flight count: their replies
 * all arrive after the commit that ends the turn. That also bounds how many publishes one
 * connection has in flight, hence how big a burst it lands on its topics at once: a
 * coord-bulk connection (a declared bulk publisher) gets the whole control queue, any
 * other at most SWS_PLAIN_QUEUE, because a burst of hundreds of events on a topic with
 * thousands of subscribers pushes them past the ring into store catch-up reads
 * (docs/benchmarks.md, S1 at 500/s: 358/s sustained at 64, 100/s at 1,024). */
static void sws_flow(sws_t *w) {
  uint32_t max = stream_hub_config(w->s->hub)->control_queue_max;
  if (!coord_ws_bulk(w->c) && max > SWS_PLAIN_QUEUE) max = SWS_PLAIN_QUEUE;
  size_t held = stream_conn_backlog(w->conn);
  if (!w->paused && held >= max / 2) {
    w->paused = true;
    coord_ws_pause_reading(w->c, true);
  } else if (w->paused && held <= max / 4) {
    w->paused = false;
    coord_ws_pause_reading(w->c, false);
  }
}

static void sws_reply_binary(coord_ws_conn_t *c) {
  static const char msg[] =
      "{\"op\":\"error\",\"code\":\"bad_request\",\"message\":\"message: binary messages are not "
      "supported; send JSON text\"}";
  if (coord_ws_send(c, msg, sizeof msg - 1, false) < 0) {
    /* closing already (or closed for a send queue overflow) */
  }
}

static void sws_on_message(coord_ws_conn_t *c, void *session, const char *data, size_t len,
                           bool binary) {
  sws_t *w = session;
  if (!w || !w->conn) return;
  if (binary) {
    sws_reply_binary(c);
    return;
  }
  if (stream_conn_handle_message(w->conn, data, len) == -ENOBUFS) {
    sws_close_for(w, stream_conn_close_reason(w->conn));
    return;
  }
  sws_flow(w);
}

static bool sws_on_writable(coord_ws_conn_t *c, void *session, size_t budget) {
  sws_t *w = session;
  if (!w || !w->conn) return false;
  coord_streams_t *s = w->s;
  stream_frame_t *frames[SWS_PULL_MAX];
  coord_ws_out_t out[SWS_PULL_MAX];
  size_t max = coord_ws_frames_per_write(c);
  if (max > SWS_PULL_MAX) max = SWS_PULL_MAX;
  int n = stream_conn_pull(w->conn, frames, max, budget);
  if (n < 0) {
    sws_close_for(w, stream_conn_close_reason(w->conn));
    return false;
  }
  for (int i = 0; i < n; i++) {
    size_t len;
    out[i].payload = stream_frame_payload_mut(frames[i], &len);
    out[i].len = len;
    out[i].binary = false;
  }
  int rc = n ? coord_ws_write_frames(c, out, (size_t)n) : 0;
  if (n) {
    uint64_t now_us = stream_hub_now_us(s->hub);
    if (rc == 0) coord__streams_count_writes(s, COORD_STREAMS_WS, frames, (size_t)n, now_us);
    for (int i = 0; i < n; i++) stream_frame_unref(&frames[i]);
    w->last_write_ms = now_us / 1000;
    w->waiting_since_ms = 0;
  }
  if (rc < 0) return false;
  if (w->paused) sws_flow(w);
  bool more = stream_conn_pending(w->conn);
  /* After drain nothing but replies is sent: once they are out, say goodbye. */
  if (!more && w->draining) coord_ws_close(c, COORD_WS_CLOSE_GOING_AWAY, "server shutting down");
  return more;
}

static void sws_on_drain(coord_ws_conn_t *c, void *session) {
  sws_t *w = session;
  if (!w || !w->conn || w->draining) return;
  w->draining = true;
  if (stream_conn_drain(w->conn, coord__streams_retry_ms(w->s)) == -ENOBUFS) {
    sws_close_for(w, stream_conn_close_reason(w->conn));
    return;
  }
  coord_ws_wake(c);
}

static void sws_on_close(coord_ws_conn_t *c, void *session) {
  (void)c;
  sws_t *w = session;
  if (!w) return;
  base_queue_remove(&w->link);
  stream_conn_free(w->conn);
  coord_auth_principal_close(w->rooms);
  free(w->rooms);
  free(w);
}

const coord_ws_session_ops_t coord__streams_ws_session = {
    .on_upgrade = sws_on_upgrade,
    .on_open = sws_on_open,
    .on_message = sws_on_message,
    .on_writable = sws_on_writable,
    .on_drain = sws_on_drain,
    .on_close = sws_on_close,
};

void coord__streams_ws_tick(coord_streams_t *s, uint64_t now_ms) {
  int64_t now_s = coord__streams_now_s();
  base_queue_t *it, *tmp;
  base_queue_foreach_safe(it, tmp, &s->ws_sessions) {
    sws_t *w = base_queue_data(it, sws_t, link);
    if (!w->conn) continue;
    if (coord_auth_exp_passed(w->exp_s, now_s)) {
      /* A connection lives no longer than its token: the client reconnects with a fresh
       * one and resumes from its positions. */
      coord_metric_add(s->m.closed_expired, 1);
      coord_ws_close(w->c, COORD_WS_CLOSE_POLICY, "token expired");
      continue;
    }
    /* a closing connection (drain's 1001 included) is governed by the close timeouts */
    if (w->draining || coord_ws_closing(w->c)) continue;
    uint64_t ms = coord__streams_slow_due(s, "ws", w->conn, stream_conn_pending(w->conn), &w->waiting_since_ms,
                                          w->last_write_ms, now_ms);
    if (!ms) continue;
    char msg[100];
    snprintf(msg, sizeof msg, "slow client: nothing could be written for %llu ms", (unsigned long long)ms);
    w->waiting_since_ms = 0;
    w->last_write_ms = now_ms; /* once */
    coord_ws_close(w->c, COORD_WS_CLOSE_POLICY, msg);
  }
}

void coord__streams_ws_stop(coord_streams_t *s) {
  base_queue_t *it;
  base_queue_foreach(it, &s->ws_sessions) {
    sws_t *w = base_queue_data(it, sws_t, link);
    stream_conn_free(w->conn);
    w->conn = NULL;
  }
}

void coord__streams_ws_lag(coord_streams_t *s, uint64_t *max, uint64_t *total, uint64_t *lagging) {
  base_queue_t *it;
  base_queue_foreach(it, &s->ws_sessions) {
    sws_t *w = base_queue_data(it, sws_t, link);
    if (!w->conn) continue;
    uint64_t lag = stream_conn_lag(w->conn);
    if (lag > *max) *max = lag;
    *total += lag;
    if (lag) (*lagging)++;
  }
}
