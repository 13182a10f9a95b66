/* GET /v1/streams/{tenant}/{room...}/sse: one topic as Server-Sent Events.
 *
 * Each stream is a stream_conn_t with one subscription, positioned by Last-Event-ID (or
 * ?after=, optionally ?epoch=), or live. Events are written as `id: <seq>` + `data: <the
 * ev message>`; ephemeral events have no id (EventSource then keeps the last one); control
 * frames become named events (`event: subscribed`, `event: gap`, `event: drain`). Writes
 * are pulled when the socket has taken what was queued (coord_http_stream_begin's pull), so
 * at most one budget is buffered per stream. Owns the streams list, keepalive comments,
 * the final drain event and the end of each response. The bearer token may come in
 * ?access_token= too, because browsers' EventSource cannot set headers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "streams_glue.h"

#define SSE_PULL_MAX 64
#define SSE_RETRY_MS 1000 /* EventSource reconnect delay we announce at the start */

/* Invariants: linked in s->sse_streams exactly while req is ours (not ended, not
 * aborted); conn is NULL only after the module stopped. */
typedef struct sse {
  base_queue_t link;
  coord_streams_t *s;         /* borrowed */
  coord_http_req_t *req;      /* borrowed until ended or aborted */
  stream_conn_t *conn;        /* owned */
  coord_auth_principal_t who; /* owned; read by the engine's allows callback */
  uint64_t last_write_ms;     /* mono ms of the last write (keepalive timing) */
  uint64_t sent_seen;         /* coord_http_stream_sent at the last tick */
  uint64_t progress_ms;       /* mono ms the socket was last seen taking bytes */
  uint64_t waiting_since_ms;  /* mono ms data began to wait (0: nothing waits) */
  uint32_t retry_ms;          /* drain: the reconnect hint */
  bool draining;
} sse_t;

static void sse_free(sse_t *x) {
  base_queue_remove(&x->link);
  stream_conn_free(x->conn);
  coord_auth_principal_close(&x->who);
  free(x);
}

/* Writes text and ends the response; x is freed. */
static void sse_finish(sse_t *x, const char *text) {
  if (x->req) {
    if (text && coord_http_stream_write(x->req, text, strlen(text)) < 0) {
      /* the client is gone: ending is all that is left */
    }
    coord_http_stream_end(x->req);
    x->req = NULL;
  }
  sse_free(x);
}

typedef struct sse_buf {
  char *p;
  size_t len, cap;
} sse_buf_t;

static void sb_put(sse_buf_t *b, const void *s, size_t n) {
  b->p = xgrow(b->p, &b->cap, b->len + n, 8192);
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void sb_str(sse_buf_t *b, const char *s) {
  sb_put(b, s, strlen(s));
}

/* One frame as an SSE message. Payloads are single-line JSON (the engine's serializer
 * escapes control characters), so one data: line carries it. */
static void sse_format(sse_t *x, sse_buf_t *b, const stream_frame_t *f) {
  size_t len;
  const unsigned char *p = stream_frame_payload(f, &len);
  char line[64];
  if (stream_frame_kind(f) == STREAM_FRAME_EVENT) {
    uint64_t seq = stream_frame_seq(f);
    if (seq) {
      snprintf(line, sizeof line, "id: %llu\n", (unsigned long long)seq);
      sb_str(b, line);
    }
  } else {
    const char *op = stream_frame_op(f);
    snprintf(line, sizeof line, "event: %s\n", op ? op : "message");
    sb_str(b, line);
    if (op && strcmp(op, "drain") == 0) {
      snprintf(line, sizeof line, "retry: %u\n", x->retry_ms);
      sb_str(b, line);
    }
  }
  sb_str(b, "data: ");
  sb_put(b, p, len);
  sb_str(b, "\n\n");
}

static bool sse_pull(coord_http_req_t *req, void *ud, size_t budget) {
  sse_t *x = ud;
  if (!x->conn) return false;
  coord_streams_t *s = x->s;
  stream_frame_t *frames[SSE_PULL_MAX];
  int n = stream_conn_pull(x->conn, frames, SSE_PULL_MAX, budget);
  if (n < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, ": closing: %s\n\n", stream_conn_close_reason(x->conn));
    sse_finish(x, msg);
    return false;
  }
  if (n > 0) {
    sse_buf_t b = {0};
    for (int i = 0; i < n; i++) sse_format(x, &b, frames[i]);
    int rc = coord_http_stream_write(req, b.p, b.len);
    free(b.p);
    uint64_t now_us = stream_hub_now_us(s->hub);
    for (int i = 0; i < n; i++) {
      if (rc == 0) coord__streams_count_write(s, COORD_STREAMS_SSE, frames[i], now_us);
      stream_frame_unref(&frames[i]);
    }
    x->last_write_ms = coord__streams_mono_ms();
  }
  bool more = stream_conn_pending(x->conn);
  if (!more && x->draining) {
    sse_finish(x, NULL);
    return false;
  }
  return more;
}

static void sse_abort(coord_http_req_t *req, void *ud) {
  (void)req;
  sse_t *x = ud;
  x->req = NULL;
  sse_free(x);
}

static void sse_wake(stream_conn_t *conn, void *ud) {
  (void)conn;
  sse_t *x = ud;
  if (x->req) coord_http_stream_wake(x->req);
}

static const stream_conn_ops_t sse_conn_ops = {.wake = sse_wake};

static int sse_digits(const char *v, int n, uint64_t *out) {
  if (n <= 0 || n > 19) return -1;
  uint64_t x = 0;
  for (int i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    x = x * 10 + (uint64_t)(v[i] - '0');
  }
  *out = x;
  return 0;
}

static void sse_bad(coord_http_req_t *req, const char *message) {
  stream_err_t err = {0};
  snprintf(err.message, sizeof err.message, "%s", message);
  coord__streams_http_fail(req, -EINVAL, &err);
}

static void streams_sse(coord_http_req_t *req, void *ud) {
  coord_streams_t *s = ud;
  sse_t *x = xcalloc(1, sizeof *x);
  base_queue_init(&x->link);
  char topic[STREAM_TOPIC_MAX + 1];
  if (coord__streams_http_open(s, req, COORD_AUTH_SCOPE_SUBSCRIBE, true, &x->who, topic) < 0) {
    free(x);
    return;
  }
  char v[80];
  stream_position_t pos = {.live = true};
  int n = coord_http_req_header(req, "last-event-id", v, sizeof v);
  if (n >= 0) {
    if (sse_digits(v, n, &pos.seq) < 0) {
      sse_bad(req, "Last-Event-ID: must be an event seq (an integer >= 0)");
      goto fail;
    }
    pos.live = false;
    /* EventSource reconnects with it by itself and gives up on an error answer: a seq
     * beyond the head (the store was lost, a new epoch began) resumes with an epoch gap. */
    pos.beyond_is_epoch = true;
  } else if ((n = coord_http_req_query(req, "after", v, sizeof v)) >= 0) {
    if (sse_digits(v, n, &pos.seq) < 0) {
      sse_bad(req, "after: must be an integer >= 0");
      goto fail;
    }
    pos.live = false;
  }
  char epoch[STORE_EPOCH_LEN + 8];
  if ((n = coord_http_req_query(req, "epoch", epoch, sizeof epoch)) >= 0) {
    if (pos.live) {
      sse_bad(req, "epoch: only with Last-Event-ID or after");
      goto fail;
    }
    pos.epoch = epoch;
  }
  if (coord_http_req_method(req) == COORD_HTTP_HEAD) {
    coord_http_stream_begin(req, 200, "text/event-stream", NULL, NULL, NULL);
    goto done;
  }
  stream_principal_t sp;
  coord__streams_principal(&x->who, &sp);
  int rc = stream_conn_new(s->hub, &sse_conn_ops, x, &sp, &x->conn);
  stream_err_t err = {0};
  if (rc == 0) rc = stream_conn_subscribe(x->conn, topic, &pos, &err);
  if (rc < 0) {
    coord__streams_http_fail(req, rc, &err);
    goto fail;
  }
  x->s = s;
  x->req = req;
  x->last_write_ms = coord__streams_mono_ms();
  x->progress_ms = x->last_write_ms;
  base_queue_insert_tail(&s->sse_streams, &x->link);
  coord_http_stream_begin(req, 200, "text/event-stream", sse_pull, sse_abort, x);
  snprintf(v, sizeof v, "retry: %d\n\n", SSE_RETRY_MS);
  if (coord_http_stream_write(req, v, strlen(v)) < 0) {
    /* cannot happen right after begin; the abort callback cleans up if the client left */
  }
  return;
fail:
done:
  stream_conn_free(x->conn);
  coord_auth_principal_close(&x->who);
  free(x);
}

int coord__streams_sse_register(coord_streams_t *s) {
  return coord_http_route(s->d->http, COORD_HTTP_GET, "/v1/streams/{tenant}/{room...}/sse",
                          "/v1/streams/{tenant}/{room...}/sse", streams_sse, s);
}

void coord__streams_sse_drain(coord_streams_t *s) {
  base_queue_t *it, *tmp;
  base_queue_foreach_safe(it, tmp, &s->sse_streams) {
    sse_t *x = base_queue_data(it, sse_t, link);
    if (x->draining || !x->conn) continue;
    x->draining = true;
    x->retry_ms = coord__streams_retry_ms(s);
    if (stream_conn_drain(x->conn, x->retry_ms) < 0)
      sse_finish(x, ": closing: control queue overflow\n\n");
    else
      coord_http_stream_wake(x->req);
  }
}

/* The slow-client deadline, as for WebSocket (limits.slow_client_timeout_ms): data waits
 * (events not pulled yet, or written bytes the socket has not taken) and the socket took
 * no byte for that long. Nothing can reach a client whose socket is full, so the stream
 * is cut without a last message; the client resumes with Last-Event-ID. True when x was
 * closed (and freed). */
static bool sse_slow_check(coord_streams_t *s, sse_t *x, uint64_t now_ms) {
  uint64_t sent = coord_http_stream_sent(x->req);
  if (sent != x->sent_seen) {
    x->sent_seen = sent;
    x->progress_ms = now_ms;
  }
  if (x->draining) return false;
  bool waiting = stream_conn_pending(x->conn) || coord_http_stream_backlog(x->req);
  if (!coord__streams_slow_due(s, "sse", x->conn, waiting, &x->waiting_since_ms, x->progress_ms, now_ms))
    return false;
  coord_http_stream_abort(x->req);
  x->req = NULL;
  sse_free(x);
  return true;
}

void coord__streams_sse_tick(coord_streams_t *s, uint64_t now_ms) {
  uint64_t every = (uint64_t)s->d->cfg->streams.sse_keepalive_ms;
  int64_t now_s = coord__streams_now_s();
  base_queue_t *it, *tmp;
  base_queue_foreach_safe(it, tmp, &s->sse_streams) {
    sse_t *x = base_queue_data(it, sse_t, link);
    if (coord_auth_principal_expired(&x->who, now_s)) {
      coord_metric_add(s->m.closed_expired, 1);
      sse_finish(x,
                 "event: error\ndata: "
                 "{\"op\":\"error\",\"code\":\"unauthorized\",\"message\":\"token expired\"}\n\n");
      continue;
    }
    if (sse_slow_check(s, x, now_ms)) continue;
    if (x->draining || now_ms - x->last_write_ms < every || coord_http_stream_pending(x->req))
      continue;
    static const char ka[] = ": keepalive\n\n";
    if (coord_http_stream_write(x->req, ka, sizeof ka - 1) == 0) x->last_write_ms = now_ms;
  }
}

void coord__streams_sse_stop(coord_streams_t *s) {
  while (!base_queue_empty(&s->sse_streams))
    sse_finish(base_queue_data(base_queue_head(&s->sse_streams), sse_t, link),
               ": server stopping\n\n");
}

size_t coord__streams_sse_count(const coord_streams_t *s) {
  size_t n = 0;
  base_queue_t *it;
  base_queue_foreach(it, &s->sse_streams) n++;
  return n;
}
