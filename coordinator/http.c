/* The HTTP router and request/response machinery on libwebsockets; see http.h.
 *
 * Owns the route table and every coord_http_req_t (one per request, hung off the
 * connection's pss). Everything that goes on the wire is written from
 * LWS_CALLBACK_HTTP_WRITEABLE: an answer only queues data and asks for writability, which
 * is what lets handlers answer later and stream. It does not know any route itself
 * (endpoints.c, static.c and later layers register theirs). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"
#include "route.h"

#define HTTP_MAX_ROUTES 64
#define HTTP_MAX_EXTRA_HEADERS 12
#define HTTP_WRITE_BUDGET (64 * 1024) /* bytes per writable turn */
#define HTTP_HEADER_SPACE 2048

typedef struct http_route {
  unsigned methods;
  char *pattern;      /* owned */
  char *metric_route; /* owned */
  coord_http_handler_fn fn;
  void *ud;
} http_route_t;

struct coord_http {
  coord_daemon_t *d; /* borrowed */
  http_route_t routes[HTTP_MAX_ROUTES];
  size_t nroutes;
  http_route_t fallback; /* fn NULL when unset */
};

typedef enum {
  REQ_BODY,    /* collecting the request body */
  REQ_HANDLER, /* handler running, or deferred: nothing to write yet */
  REQ_ANSWER,  /* a complete answer is queued */
  REQ_STREAM,  /* streamed answer, open-ended */
  REQ_FILE,    /* lws serves a file; we wait for FILE_COMPLETION */
} req_state_t;

typedef struct http_chunk {
  base_queue_t link;
  size_t len; /* payload bytes */
  size_t off; /* bytes already written */
  unsigned char buf[]; /* LWS_PRE + payload */
} http_chunk_t;

/* Invariants: exactly one answer is started (answered); once ended, nothing is added to
 * chunks; wsi is NULL only transiently while the abort callback runs. */
struct coord_http_req {
  coord_http_t *http;   /* borrowed */
  struct lws *wsi;      /* borrowed */
  coord_pss_t *pss;     /* borrowed: the connection's data, holds us */
  unsigned method;      /* COORD_HTTP_* */
  char *path;           /* owned */
  char *query;          /* owned: "k=v\0k=v\0\0" (decoded by lws) */
  const http_route_t *route; /* borrowed */
  char *params[COORD_ROUTE_MAX_PARAMS][2]; /* owned name/value pairs */
  size_t nparams;
  char *body;           /* owned, NUL-terminated */
  size_t body_len, body_cap;
  int64_t content_length; /* -1 when absent */
  char peer[48];
  req_state_t state;
  bool answered;
  bool ended;           /* no more data will be queued */
  bool headers_sent;
  bool close_after;     /* hang up after the answer (limits, unread bodies) */
  bool discard_body;    /* answered before the body arrived: drop what comes */
  bool kill;            /* lws already answered (file serving failed): hang up */
  bool lws_done;        /* lws completed the transaction itself (HEAD of a file) */
  int status;
  char *content_type;   /* owned */
  char *hdr_names[HTTP_MAX_EXTRA_HEADERS]; /* owned, "name:" */
  char *hdr_values[HTTP_MAX_EXTRA_HEADERS]; /* owned */
  size_t nhdrs;
  int64_t content_len_out; /* -1 when streamed */
  base_queue_t chunks;  /* owned http_chunk_t */
  size_t pending;       /* bytes queued, not written */
  uint64_t sent;        /* streamed bytes handed to the socket layer so far */
  coord_http_abort_fn on_abort;
  coord_http_pull_fn pull;
  void *cb_ud;
};

coord_http_t *coord__http_new(coord_daemon_t *d) {
  coord_http_t *h = xcalloc(1, sizeof *h);
  h->d = d;
  return h;
}

void coord__http_free(coord_http_t *h) {
  if (!h) return;
  free(h->fallback.metric_route);
  for (size_t i = 0; i < h->nroutes; i++) {
    free(h->routes[i].pattern);
    free(h->routes[i].metric_route);
  }
  free(h);
}

int coord_http_route(coord_http_t *h, unsigned methods, const char *pattern,
                     const char *metric_route, coord_http_handler_fn fn, void *ud) {
  if (!coord_route_pattern_valid(pattern) || !fn || !methods) return -EINVAL;
  if (h->nroutes == HTTP_MAX_ROUTES) return -ENOSPC;
  http_route_t *r = &h->routes[h->nroutes++];
  r->methods = methods;
  r->pattern = xstrdup(pattern);
  r->metric_route = xstrdup(metric_route ? metric_route : pattern);
  r->fn = fn;
  r->ud = ud;
  return 0;
}

void coord_http_set_fallback(coord_http_t *h, unsigned methods, const char *metric_route,
                             coord_http_handler_fn fn, void *ud) {
  free(h->fallback.metric_route);
  h->fallback.methods = methods;
  h->fallback.metric_route = xstrdup(metric_route ? metric_route : "fallback");
  h->fallback.fn = fn;
  h->fallback.ud = ud;
}

static void req_free(coord_http_req_t *req) {
  base_queue_t *it, *tmp;
  base_queue_foreach_safe(it, tmp, &req->chunks) {
    base_queue_remove(it);
    free(base_queue_data(it, http_chunk_t, link));
  }
  for (size_t i = 0; i < req->nparams; i++) {
    free(req->params[i][0]);
    free(req->params[i][1]);
  }
  for (size_t i = 0; i < req->nhdrs; i++) {
    free(req->hdr_names[i]);
    free(req->hdr_values[i]);
  }
  free(req->content_type);
  free(req->path);
  free(req->query);
  free(req->body);
  free(req);
}

/* Detaches req from its connection and frees it. */
static void req_release(coord_http_req_t *req) {
  if (req->pss && req->pss->req == req) req->pss->req = NULL;
  req_free(req);
}

static void req_count(coord_http_req_t *req) {
  char status[8];
  snprintf(status, sizeof status, "%d", req->status);
  const char *route = req->route ? req->route->metric_route : "unmatched";
  if (req->state == REQ_FILE) route = "static";
  coord_metric_add(coord_metric_series(req->http->d->m.http_requests,
                                       (const char *const[]){"route", route, "status", status,
                                                             NULL}),
                   1);
}

/* ---- request accessors ---- */

unsigned coord_http_req_method(const coord_http_req_t *req) { return req->method; }
const char *coord_http_req_path(const coord_http_req_t *req) { return req->path; }
const char *coord_http_req_peer(const coord_http_req_t *req) { return req->peer; }

const char *coord_http_req_param(const coord_http_req_t *req, const char *name) {
  for (size_t i = 0; i < req->nparams; i++)
    if (strcmp(req->params[i][0], name) == 0) return req->params[i][1];
  return NULL;
}

int coord_http_req_query(const coord_http_req_t *req, const char *name, char *buf, size_t len) {
  size_t n = strlen(name);
  for (const char *q = req->query; q && *q; q += strlen(q) + 1) {
    if (strncmp(q, name, n) == 0 && q[n] == '=') {
      snprintf(buf, len, "%s", q + n + 1);
      size_t vlen = strlen(q + n + 1);
      return (int)(vlen < len ? vlen : len - 1);
    }
  }
  return -1;
}

int coord_http_req_header(const coord_http_req_t *req, const char *name, char *buf, size_t len) {
  if (!req->wsi || req->headers_sent) return -1;
  return coord__hdr_copy(req->wsi, name, buf, len);
}

const char *coord_http_req_body(const coord_http_req_t *req, size_t *len) {
  *len = req->body_len;
  return req->body ? req->body : "";
}

/* ---- answering ---- */

static void req_queue(coord_http_req_t *req, const void *data, size_t len) {
  if (!len) return;
  http_chunk_t *c = xmalloc(sizeof *c + LWS_PRE + len);
  c->len = len;
  c->off = 0;
  memcpy(c->buf + LWS_PRE, data, len);
  base_queue_insert_tail(&req->chunks, &c->link);
  req->pending += len;
}

static void req_want_write(coord_http_req_t *req) {
  if (req->wsi) lws_callback_on_writable(req->wsi);
}

void coord_http_add_header(coord_http_req_t *req, const char *name, const char *value) {
  if (req->answered || req->nhdrs == HTTP_MAX_EXTRA_HEADERS) return;
  char *n = xasprintf("%s:", name);
  for (char *p = n; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  req->hdr_names[req->nhdrs] = n;
  req->hdr_values[req->nhdrs] = xstrdup(value);
  req->nhdrs++;
}

/* Starts the answer; false (and a logged error) when one was already given. */
static bool req_start_answer(coord_http_req_t *req, int status, const char *content_type) {
  if (req->answered) {
    log_error("http", "second answer to one request ignored", "{s:s,s:i}", "path", req->path,
              "status", status);
    return false;
  }
  req->answered = true;
  req->status = status;
  req->content_type = content_type ? xstrdup(content_type) : NULL;
  return true;
}

void coord_http_respond(coord_http_req_t *req, int status, const char *content_type,
                        const void *body, size_t len) {
  if (!req_start_answer(req, status, content_type)) return;
  req->content_len_out = (int64_t)len;
  if (req->method != COORD_HTTP_HEAD) req_queue(req, body, len);
  req->ended = true;
  /* A body still on its way is dropped; the connection cannot be reused after that. */
  if (req->state == REQ_BODY) {
    req->discard_body = true;
    req->close_after = true;
  }
  req->state = REQ_ANSWER;
  req_want_write(req);
}

void coord_http_respond_json_take(coord_http_req_t *req, int status, json_t *body) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (!text) {
    static const char internal[] = "{\"error\":{\"code\":\"internal\",\"message\":\"cannot encode the answer\"}}";
    coord_http_respond(req, 500, "application/json", internal, sizeof internal - 1);
    return;
  }
  size_t n = strlen(text);
  char *line = xmalloc(n + 2);
  memcpy(line, text, n);
  line[n] = '\n';
  coord_http_respond(req, status, "application/json", line, n + 1);
  free(line);
  free(text);
}

void coord_http_respond_error(coord_http_req_t *req, int status, const char *code,
                              const char *message) {
  coord_http_respond_json_take(req, status,
                               json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message));
}

void coord_http_serve_file(coord_http_req_t *req, const char *fs_path, const char *content_type) {
  if (!req->wsi || req->answered) return;
  req->answered = true;
  req->ended = true;
  req->status = 200;
  req->state = REQ_FILE;
  req->headers_sent = true;
  unsigned char extra[256], *p = extra, *end = extra + sizeof extra;
  static const char nosniff[] = "nosniff", nocache[] = "no-cache";
  if (lws_add_http_header_by_name(req->wsi, (const unsigned char *)"x-content-type-options:",
                                  (const unsigned char *)nosniff, (int)strlen(nosniff), &p, end) ||
      lws_add_http_header_by_name(req->wsi, (const unsigned char *)"cache-control:",
                                  (const unsigned char *)nocache, (int)strlen(nocache), &p, end))
    p = extra;
  int n = lws_serve_http_file(req->wsi, fs_path, content_type, (const char *)extra,
                              (int)(p - extra));
  if (n == 0 && req->method == COORD_HTTP_HEAD) {
    /* lws sent the headers of a HEAD and completed the transaction by itself. */
    req_count(req);
    req->lws_done = true;
  } else if (n != 0) {
    /* lws answered by itself (404 when the file vanished) and wants the connection
     * closed; there is nothing more to write. */
    req->status = n < 0 ? 404 : 200;
    req_count(req);
    req->state = REQ_ANSWER;
    req->kill = true;
  }
}

void coord_http_defer(coord_http_req_t *req, coord_http_abort_fn on_abort, void *ud) {
  req->on_abort = on_abort;
  req->cb_ud = ud;
}

void coord_http_stream_begin(coord_http_req_t *req, int status, const char *content_type,
                             coord_http_pull_fn pull, coord_http_abort_fn on_abort, void *ud) {
  if (!req_start_answer(req, status, content_type)) return;
  req->content_len_out = -1;
  req->state = REQ_STREAM;
  req->ended = req->method == COORD_HTTP_HEAD; /* headers only */
  req->pull = pull;
  req->on_abort = on_abort;
  req->cb_ud = ud;
  req_want_write(req);
}

int coord_http_stream_write(coord_http_req_t *req, const void *data, size_t len) {
  if (!req->wsi || req->ended || req->state != REQ_STREAM) return -EPIPE;
  req_queue(req, data, len);
  req_want_write(req);
  return 0;
}

size_t coord_http_stream_pending(const coord_http_req_t *req) { return req->pending; }

void coord_http_stream_wake(coord_http_req_t *req) { req_want_write(req); }

void coord_http_stream_end(coord_http_req_t *req) {
  req->ended = true;
  req_want_write(req);
}

uint64_t coord_http_stream_sent(const coord_http_req_t *req) { return req->sent; }

bool coord_http_stream_backlog(const coord_http_req_t *req) {
  return req->pending || (req->wsi && lws_partial_buffered(req->wsi));
}

void coord_http_stream_abort(coord_http_req_t *req) {
  /* What is queued goes: a client that takes nothing would never let it drain, and the
   * stream must end as a cut, not with the final chunk. The owner lets go here, so its
   * callbacks and data are forgotten too. */
  while (!base_queue_empty(&req->chunks)) {
    base_queue_t *it = base_queue_head(&req->chunks);
    base_queue_remove(it);
    free(base_queue_data(it, http_chunk_t, link));
  }
  req->pending = 0;
  req->pull = NULL;
  req->on_abort = NULL;
  req->cb_ud = NULL;
  req->ended = true;
  req->close_after = true;
  /* Closed at lws's next timeout check (within a second), or at the next writable turn,
   * whichever comes first; the close frees req (http_gone). */
  if (req->wsi) lws_set_timeout(req->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* ---- lws side ---- */

static unsigned http_method_of(struct lws *wsi) {
  char *uri;
  int len;
  switch (lws_http_get_uri_and_method(wsi, &uri, &len)) {
  case LWSHUMETH_GET: return COORD_HTTP_GET;
  case LWSHUMETH_POST: return COORD_HTTP_POST;
  case LWSHUMETH_OPTIONS: return COORD_HTTP_OPTIONS;
  case LWSHUMETH_PUT: return COORD_HTTP_PUT;
  case LWSHUMETH_PATCH: return COORD_HTTP_PATCH;
  case LWSHUMETH_DELETE: return COORD_HTTP_DELETE;
  case LWSHUMETH_HEAD: return COORD_HTTP_HEAD;
  default: return 0;
  }
}

/* Copies every query fragment ("k=v", decoded) into one owned "k=v\0...\0\0" block. */
static char *http_copy_query(struct lws *wsi) {
  int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
  if (total <= 0) return NULL;
  char *q = xcalloc(1, (size_t)total + 64);
  size_t used = 0;
  for (int i = 0; used + 2 < (size_t)total + 64; i++) {
    int n = lws_hdr_copy_fragment(wsi, q + used, (int)((size_t)total + 63 - used),
                                  WSI_TOKEN_HTTP_URI_ARGS, i);
    if (n < 0) break;
    used += (size_t)n + 1;
  }
  return q;
}

/* Runs the route's handler; returns what the lws callback should return. req stays alive
 * through the call because nothing is written (so nothing can close) inside a handler. */
static int http_run_handler(coord_http_req_t *req) {
  req->state = REQ_HANDLER;
  if (req->http->d->state == COORD_STATE_STOPPING) {
    /* The modules have stopped; only answers queued before are still being written. */
    coord_http_add_header(req, "retry-after", "1");
    coord_http_respond_error(req, 503, "shutting_down", "the server is shutting down; retry on the next one");
  } else {
    req->route->fn(req, req->route->ud);
  }
  if (!req->answered && !req->on_abort && req->state == REQ_HANDLER) {
    /* A handler that neither answers nor defers would hang the client forever. */
    log_error("http", "handler did not answer", "{s:s}", "path", req->path);
    coord_http_respond_error(req, 500, "internal", "handler did not answer");
  }
  if (req->kill) return -1;
  if (req->lws_done) req_release(req);
  return 0;
}

static int http_begin(coord_daemon_t *d, struct lws *wsi, coord_pss_t *pss, const char *in,
                      size_t len) {
  coord_http_t *h = d->http;
  if (pss->req) req_release(pss->req);
  coord_http_req_t *req = xcalloc(1, sizeof *req);
  base_queue_init(&req->chunks);
  req->http = h;
  req->wsi = wsi;
  req->pss = pss;
  pss->kind = COORD_PSS_HTTP;
  pss->req = req;
  /* lws decodes %00 into a NUL inside the path it hands us ("/a%00b" -> "/a\0b", len 4):
   * refuse rather than silently truncate. */
  bool nul_in_path = in && memchr(in, '\0', len) != NULL;
  req->path = xstrndup(in ? in : "/", in ? len : 1);
  req->method = http_method_of(wsi);
  req->query = http_copy_query(wsi);
  req->content_length = -1;
  lws_get_peer_simple(wsi, req->peer, sizeof req->peer);
  char cl[32];
  if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
    req->content_length = strtoll(cl, NULL, 10);
  bool has_body = req->content_length > 0;

  if (coord__listener_over_limit(d, wsi)) {
    req->close_after = true;
    coord_http_add_header(req, "retry-after", "1");
    coord_http_respond_error(req, 503, "overloaded", "too many connections");
    return 0;
  }

  if (nul_in_path || req->path[0] != '/') {
    req->close_after = has_body;
    coord_http_respond_error(req, 400, "bad_request", "invalid path");
    return 0;
  }

  /* The body limit is checked before routing, so it holds for every path and method. */
  if (has_body && req->content_length > d->cfg->limits.max_http_body) {
    req->close_after = true;
    coord_http_respond_error(req, 413, "too_large", "request body too large");
    return 0;
  }

  /* HEAD is answered by GET routes, without the body. */
  unsigned route_method = req->method == COORD_HTTP_HEAD ? COORD_HTTP_GET : req->method;
  const http_route_t *allowed_elsewhere = NULL;
  for (size_t i = 0; i < h->nroutes; i++) {
    coord_route_param_t p[COORD_ROUTE_MAX_PARAMS];
    size_t np = 0;
    if (!coord_route_match(h->routes[i].pattern, req->path, p, &np)) continue;
    if (!(h->routes[i].methods & route_method)) {
      if (!allowed_elsewhere) allowed_elsewhere = &h->routes[i];
      continue;
    }
    req->route = &h->routes[i];
    for (size_t k = 0; k < np; k++) {
      req->params[k][0] = xstrndup(p[k].name, p[k].name_len);
      req->params[k][1] = xstrndup(p[k].value, p[k].value_len);
    }
    req->nparams = np;
    break;
  }
  if (!req->route && !allowed_elsewhere && h->fallback.fn && (h->fallback.methods & route_method))
    req->route = &h->fallback;
  if (!req->route) {
    req->close_after = has_body;
    if (allowed_elsewhere) {
      req->route = allowed_elsewhere;
      coord_http_respond_error(req, 405, "method_not_allowed", "method not allowed here");
    } else {
      coord_http_respond_error(req, 404, "not_found", "no such resource");
    }
    return 0;
  }
  if (has_body) {
    req->state = REQ_BODY;
    return 0; /* LWS_CALLBACK_HTTP_BODY follows */
  }
  return http_run_handler(req);
}

static int http_body(coord_daemon_t *d, coord_http_req_t *req, const void *in, size_t len) {
  if (req->discard_body || req->state != REQ_BODY) return 0;
  if (req->body_len + len > (size_t)d->cfg->limits.max_http_body) {
    req->close_after = true;
    coord_http_respond_error(req, 413, "too_large", "request body too large");
    return 0;
  }
  req->body = xgrow(req->body, &req->body_cap, req->body_len + len + 1, 1024);
  memcpy(req->body + req->body_len, in, len);
  req->body_len += len;
  req->body[req->body_len] = '\0';
  return 0;
}

static int http_write_headers(coord_http_req_t *req) {
  unsigned char buf[LWS_PRE + HTTP_HEADER_SPACE];
  unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
  struct lws *wsi = req->wsi;
  lws_filepos_t cl = req->content_len_out < 0 ? LWS_ILLEGAL_HTTP_CONTENT_LEN
                                              : (lws_filepos_t)req->content_len_out;
  if (lws_add_http_common_headers(wsi, (unsigned)req->status, req->content_type, cl, &p, end))
    return -1;
  static const char nosniff[] = "nosniff";
  if (lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:",
                                  (const unsigned char *)nosniff, (int)strlen(nosniff), &p, end))
    return -1;
  if (req->state == REQ_STREAM) {
    static const char nocache[] = "no-cache", nobuf[] = "no";
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)nocache, 8, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"x-accel-buffering:",
                                    (const unsigned char *)nobuf, 2, &p, end))
      return -1;
  }
  if (req->close_after && req->content_len_out >= 0 &&
      lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                  (const unsigned char *)"close", 5, &p, end))
    return -1;
  for (size_t i = 0; i < req->nhdrs; i++)
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)req->hdr_names[i],
                                    (const unsigned char *)req->hdr_values[i],
                                    (int)strlen(req->hdr_values[i]), &p, end))
      return -1;
  if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
  req->headers_sent = true;
  return 0;
}

/* Writes queued chunks within the budget; returns bytes written or -1. */
static long http_write_chunks(coord_http_req_t *req, size_t budget) {
  size_t written = 0;
  while (!base_queue_empty(&req->chunks) && written < budget && !lws_send_pipe_choked(req->wsi)) {
    http_chunk_t *c = base_queue_data(base_queue_head(&req->chunks), http_chunk_t, link);
    size_t n = c->len - c->off;
    if (n > budget - written) n = budget - written;
    bool last = req->ended && c->off + n == c->len && c->link.next == &req->chunks;
    /* Writing from the middle of a chunk reuses already-sent bytes as LWS_PRE headroom. */
    int m = lws_write(req->wsi, c->buf + LWS_PRE + c->off, n,
                      last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    if (m < 0) return -1;
    c->off += n;
    written += n;
    req->pending -= n;
    req->sent += n;
    if (c->off == c->len) {
      base_queue_remove(&c->link);
      free(c);
    }
  }
  return (long)written;
}

static int http_writable(coord_daemon_t *d, struct lws *wsi, coord_pss_t *pss) {
  (void)d;
  coord_http_req_t *req = pss->req;
  if (!req || !req->answered || req->state == REQ_FILE) return 0;
  if (!req->headers_sent && http_write_headers(req) < 0) return -1;
  size_t budget = HTTP_WRITE_BUDGET;
  for (int round = 0; round < 4; round++) {
    long n = http_write_chunks(req, budget);
    if (n < 0) return -1;
    budget -= (size_t)n;
    if (!base_queue_empty(&req->chunks) || req->ended || !req->pull || budget == 0 ||
        lws_send_pipe_choked(wsi))
      break;
    size_t before = req->pending;
    bool more = req->pull(req, req->cb_ud, budget);
    if (req->pending == before) {
      if (more) lws_callback_on_writable(wsi);
      return 0;
    }
  }
  if (!base_queue_empty(&req->chunks) || !req->ended) {
    if (!base_queue_empty(&req->chunks) || (req->pull && !req->ended))
      lws_callback_on_writable(wsi);
    return 0;
  }
  /* Everything is written. */
  req_count(req);
  bool close_after = req->close_after;
  req_release(req);
  if (close_after) return -1;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* The client went away (or the connection is being upgraded): tell the owner, free. */
static void http_gone(coord_pss_t *pss) {
  coord_http_req_t *req = pss->req;
  if (!req) return;
  /* Once the owner answered (respond) or ended its stream it has let go of req: only an
   * unfinished answer is reported. */
  if (req->on_abort && !req->ended) {
    req->wsi = NULL;
    req->on_abort(req, req->cb_ud);
  }
  req_release(req);
}

int coord__http_callback(coord_daemon_t *d, struct lws *wsi, enum lws_callback_reasons reason,
                         coord_pss_t *pss, void *in, size_t len) {
  switch (reason) {
  case LWS_CALLBACK_HTTP:
    return http_begin(d, wsi, pss, in, len);
  case LWS_CALLBACK_HTTP_BODY:
    return pss->req ? http_body(d, pss->req, in, len) : 0;
  case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    if (pss->req && pss->req->state == REQ_BODY && !pss->req->discard_body)
      return http_run_handler(pss->req);
    return 0;
  case LWS_CALLBACK_HTTP_WRITEABLE:
    return http_writable(d, wsi, pss);
  case LWS_CALLBACK_HTTP_FILE_COMPLETION:
    if (pss->req) {
      req_count(pss->req);
      req_release(pss->req);
    }
    return lws_http_transaction_completed(wsi) ? -1 : 0;
  case LWS_CALLBACK_CLOSED_HTTP:
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    http_gone(pss);
    return 0;
  default:
    return 0;
  }
}
