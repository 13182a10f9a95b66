/* The streams HTTP API:
 *   POST /v1/streams/{tenant}/{room...}/events   publish one event or a batch (array)
 *   GET  /v1/streams/{tenant}/{room...}/events   retained events after a seq, with gaps
 *   GET  /v1/streams/{tenant}                    the tenant's topics
 * plus the request authentication and error mapping the SSE route shares.
 *
 * Owns the publishes waiting for their commit (a publish is answered 201 only once
 * durable; a client that leaves first cancels the callbacks, the events still go in). Every
 * route checks the bearer token before it looks at anything: a token of tenant A gets 403
 * for tenant B whether or not the topic exists. Error bodies are
 * {"error":{"code","message"}} naming the field. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/log.h"
#include "base/mem.h"
#include "streams_glue.h"

#define POST_BATCH_MAX 1000
#define READ_LIMIT_DEFAULT 100
#define READ_LIMIT_MAX 10000
#define LIST_LIMIT_DEFAULT 1000
#define LIST_LIMIT_MAX 10000

/* ---- shared: authentication, topic, errors ---- */

static int http_status_of(int rc, const char **code) {
  switch (rc) {
    case -EINVAL:
      *code = "bad_request";
      return 400;
    case -EACCES:
    case -EPERM:
      *code = "forbidden";
      return 403;
    case -ENOENT:
      *code = "not_found";
      return 404;
    case -EMSGSIZE:
      *code = "too_large";
      return 413;
    case -EAGAIN:
      *code = "rate_limited";
      return 429;
    case -EBUSY:
      *code = "overloaded";
      return 503;
    case -ESHUTDOWN:
    case -ECANCELED:
      *code = "shutting_down";
      return 503;
    case -EMLINK:
      *code = "too_many_subscriptions";
      return 400;
    default:
      *code = "unavailable";
      return 503;
  }
}

static void http_retry_after(coord_http_req_t *req, uint32_t ms) {
  char v[24];
  snprintf(v, sizeof v, "%u", ms ? (ms + 999) / 1000 : 1);
  coord_http_add_header(req, "retry-after", v);
}

/* {"error":{"code","message",...extra}} with status; extra (may be NULL) is taken. */
static void http_error_take(coord_http_req_t *req, int status, const char *code,
                            const char *message, json_t *extra) {
  json_t *e = json_pack("{s:s,s:s}", "code", code, "message", message && *message ? message : code);
  if (extra) {
    json_object_update(e, extra);
    json_decref(extra);
  }
  coord_http_respond_json_take(req, status, json_pack("{s:o}", "error", e));
}

void coord__streams_http_fail(coord_http_req_t *req, int rc, const stream_err_t *err) {
  const char *code;
  int status = http_status_of(rc, &code);
  json_t *extra = NULL;
  if ((rc == -EAGAIN || rc == -EBUSY) && err) {
    http_retry_after(req, err->retry_after_ms);
    extra = json_pack("{s:I}", "retry_after_ms", (json_int_t)err->retry_after_ms);
  } else if (rc == -ESHUTDOWN || rc == -ECANCELED) {
    http_retry_after(req, 1000);
  }
  const char *msg = err && err->message[0] ? err->message : NULL;
  if (!msg && (rc == -ESHUTDOWN || rc == -ECANCELED))
    msg = "the server is shutting down; retry on the next one";
  if (!msg && rc == -EIO)
    msg = "the store failed; nothing was published (retrying with the same id is safe)";
  http_error_take(req, status, code, msg, extra);
}

int coord__streams_http_open(coord_streams_t *s, coord_http_req_t *req, unsigned action,
                             bool query_token, coord_auth_principal_t *who, char *topic) {
  memset(who, 0, sizeof *who);
  if (s->stopped) {
    coord__streams_http_fail(req, -ESHUTDOWN, NULL);
    return -1;
  }
  char hdr[COORD_AUTH_TOKEN_MAX_DEFAULT + 64];
  char token[COORD_AUTH_TOKEN_MAX_DEFAULT + 1] = "";
  char reason[160] = "";
  int status = 0;
  if (coord_http_req_header(req, "authorization", hdr, sizeof hdr) > 0) {
    if (coord_auth_extract_bearer(hdr, token, sizeof token) < 0) {
      snprintf(reason, sizeof reason, "authorization: expected \"Bearer <token>\"");
      status = 401;
    }
  } else if (query_token && coord_http_req_query(req, "access_token", token, sizeof token) < 0) {
    token[0] = '\0';
  }
  if (!status) status = coord__streams_authenticate(s, token, who, reason, sizeof reason);
  if (status) {
    coord_auth_principal_close(who);
    coord_http_add_header(req, "www-authenticate", "Bearer");
    http_error_take(req, status, "unauthorized", reason, NULL);
    return -1;
  }
  const char *tenant = coord_http_req_param(req, "tenant");
  const char *room = coord_http_req_param(req, "room");
  if (!tenant || !coord_auth_tenant_valid(tenant)) {
    http_error_take(req, 400, "bad_request", "tenant: must match [a-z0-9_-]{1,64}", NULL);
    goto refuse;
  }
  if (room) {
    stream_err_t err = {0};
    int n = snprintf(topic, STREAM_TOPIC_MAX + 1, "%s/%s", tenant, room);
    if (n > STREAM_TOPIC_MAX) {
      http_error_take(req, 400, "bad_request",
                      "room: must be 1 to 200 characters of [A-Za-z0-9_.:/-]", NULL);
      goto refuse;
    }
    if (stream_topic_validate(topic, NULL, &err) < 0) {
      http_error_take(req, 400, "bad_request", err.message, NULL);
      goto refuse;
    }
  } else {
    snprintf(topic, STREAM_TOPIC_MAX + 1, "%s", tenant);
  }
  if (!coord_auth_allows(who, action, tenant, room)) {
    const char *what = action == COORD_AUTH_SCOPE_PUBLISH ? "publish to this topic"
                       : room                             ? "read this topic"
                                                          : "list this tenant's topics";
    char msg[96];
    snprintf(msg, sizeof msg, "the token may not %s", what);
    http_error_take(req, 403, "forbidden", msg, NULL);
    goto refuse;
  }
  return 0;
refuse:
  coord_auth_principal_close(who);
  return -1;
}

/* ---- POST .../events ---- */

typedef struct post post_t;

typedef struct post_item {
  post_t *post;         /* borrowed back-pointer */
  stream_pub_t *handle; /* pending callback; NULL once it fired */
  int status;           /* 0 or the callback's error */
  uint64_t seq;
  bool duplicate, ephemeral;
  char epoch[STORE_EPOCH_LEN + 1];
} post_item_t;

/* One publish request waiting for its events' commits. Invariants: pending counts items
 * whose handle is set; the request is answered once it reaches 0. */
struct post {
  base_queue_t link;     /* in coord_streams_t.posts */
  coord_streams_t *s;    /* borrowed */
  coord_http_req_t *req; /* borrowed until answered */
  bool batch;
  size_t n; /* items queued */
  size_t pending;
  int fail_rc; /* a publish refused at once (0 = none); later items were not tried */
  size_t fail_index;
  stream_err_t fail_err;
  post_item_t items[];
};

/* {"seq","epoch","duplicate"} (seq null for ephemeral), or {"error":{...}}. */
static json_t *post_item_json(const post_item_t *it) {
  if (it->status < 0) {
    const char *code;
    (void)http_status_of(it->status, &code);
    return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message",
                     it->status == -EIO ? "commit failed; nothing was published" : code);
  }
  json_t *o = json_object();
  json_object_set_new(o, "seq", it->ephemeral ? json_null() : json_integer((json_int_t)it->seq));
  json_object_set_new(o, "epoch", json_string(it->epoch));
  json_object_set_new(o, "duplicate", json_boolean(it->duplicate));
  return o;
}

static void post_free(post_t *p) {
  base_queue_remove(&p->link);
  free(p);
}

static void post_answer(post_t *p) {
  coord_http_req_t *req = p->req;
  coord_metric_add(p->s->m.http_published, (double)p->n);
  int first_async = 0;
  size_t first_async_i = 0;
  for (size_t i = 0; i < p->n; i++) {
    if (p->items[i].status < 0 && !first_async) {
      first_async = p->items[i].status;
      first_async_i = i;
    }
  }
  if (!p->batch) {
    if (first_async) {
      coord__streams_http_fail(req, first_async, NULL);
    } else {
      coord_http_respond_json_take(req, 201, post_item_json(&p->items[0]));
    }
    return;
  }
  json_t *results = json_array();
  for (size_t i = 0; i < p->n; i++) json_array_append_new(results, post_item_json(&p->items[i]));
  if (!p->fail_rc && !first_async) {
    coord_http_respond_json_take(req, 201, results);
    return;
  }
  /* Partly done: the events in results are published (in order); the one at index and
   * those after it are not. Retrying the rest (with ids) is safe. */
  int rc = p->fail_rc ? p->fail_rc : first_async;
  size_t index = p->fail_rc ? p->fail_index : first_async_i;
  const char *code;
  int status = http_status_of(rc, &code);
  char msg[sizeof p->fail_err.message + 32];
  if (p->fail_rc)
    snprintf(msg, sizeof msg, "[%zu]: %s", index,
             p->fail_err.message[0] ? p->fail_err.message : code);
  else
    snprintf(msg, sizeof msg, "[%zu]: commit failed; it and the events after it were not published",
             index);
  json_t *e = json_pack("{s:s,s:s,s:I}", "code", code, "message", msg, "index", (json_int_t)index);
  if (rc == -EAGAIN || rc == -EBUSY) {
    http_retry_after(req, p->fail_err.retry_after_ms);
    json_object_set_new(e, "retry_after_ms", json_integer(p->fail_err.retry_after_ms));
  }
  coord_http_respond_json_take(req, status, json_pack("{s:o,s:o}", "error", e, "results", results));
}

static void post_done(void *ud, int status, const stream_ack_t *ack) {
  post_item_t *it = ud;
  post_t *p = it->post;
  it->handle = NULL;
  it->status = status;
  if (status == 0) {
    it->seq = ack->seq;
    it->duplicate = ack->duplicate;
    it->ephemeral = ack->ephemeral;
    snprintf(it->epoch, sizeof it->epoch, "%s", ack->epoch ? ack->epoch : "");
  }
  if (--p->pending) return;
  post_answer(p);
  post_free(p);
}

static void post_abort(coord_http_req_t *req, void *ud) {
  (void)req;
  post_t *p = ud;
  for (size_t i = 0; i < p->n; i++)
    if (p->items[i].handle) stream_publish_cancel(p->items[i].handle);
  post_free(p);
}

static const char *const lane_names[] = {"control", "data", "ephemeral"};

/* Checks the shape of one event object; returns its lane or -1 with msg filled. */
static int post_check_item(json_t *ev, const char *at, char *msg, size_t len) {
  if (!json_is_object(ev)) {
    snprintf(msg, len, "%s: must be an object {\"id\",\"type\",\"lane\",\"data\"}",
             at[0] ? at : "body");
    return -1;
  }
  static const char *const strs[] = {"id", "type"};
  for (size_t k = 0; k < 2; k++) {
    json_t *v = json_object_get(ev, strs[k]);
    if (v && !json_is_null(v) && !json_is_string(v)) {
      snprintf(msg, len, "%s%s: must be a string", at, strs[k]);
      return -1;
    }
  }
  json_t *lane = json_object_get(ev, "lane");
  if (!lane || json_is_null(lane)) return STREAM_LANE_DATA;
  for (int l = 0; l < STREAM_LANES; l++)
    if (json_is_string(lane) && strcmp(json_string_value(lane), lane_names[l]) == 0) return l;
  snprintf(msg, len, "%slane: must be one of \"control\", \"data\", \"ephemeral\"", at);
  return -1;
}

static void streams_post(coord_http_req_t *req, void *ud) {
  coord_streams_t *s = ud;
  coord_auth_principal_t who;
  char topic[STREAM_TOPIC_MAX + 1];
  if (coord__streams_http_open(s, req, COORD_AUTH_SCOPE_PUBLISH, false, &who, topic) < 0) return;
  coord_auth_principal_close(&who);
  size_t len;
  const char *body = coord_http_req_body(req, &len);
  char msg[200];
  if (len == 0) {
    http_error_take(req, 400, "bad_request",
                    "body: missing; send an event object or an array of them", NULL);
    return;
  }
  json_error_t jerr;
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (!root) {
    snprintf(msg, sizeof msg, "body: invalid JSON at line %d column %d: %.100s", jerr.line,
             jerr.column, jerr.text);
    http_error_take(req, 400, "bad_request", msg, NULL);
    return;
  }
  bool batch = json_is_array(root);
  size_t n = batch ? json_array_size(root) : 1;
  if (batch && (n == 0 || n > POST_BATCH_MAX)) {
    snprintf(msg, sizeof msg, "body: a batch holds 1 to %d events, not %zu", POST_BATCH_MAX, n);
    http_error_take(req, 400, "bad_request", msg, NULL);
    json_decref(root);
    return;
  }
  int lanes[POST_BATCH_MAX];
  for (size_t i = 0; i < n; i++) {
    char at[32] = "";
    if (batch)
      snprintf(at, sizeof at, "[%zu].", i);
    else if (!json_is_object(root))
      snprintf(at, sizeof at, "body");
    lanes[i] = post_check_item(batch ? json_array_get(root, i) : root, at, msg, sizeof msg);
    if (lanes[i] < 0) {
      http_error_take(req, 400, "bad_request", msg, NULL);
      json_decref(root);
      return;
    }
  }
  post_t *p = xcalloc(1, sizeof *p + n * sizeof(post_item_t));
  p->s = s;
  p->req = req;
  p->batch = batch;
  base_queue_init(&p->link);
  for (size_t i = 0; i < n; i++) {
    json_t *ev = batch ? json_array_get(root, i) : root;
    json_t *data = json_object_get(ev, "data");
    char *text =
        data && !json_is_null(data) ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    stream_event_t e = {
        .id = json_string_value(json_object_get(ev, "id")),
        .type = json_string_value(json_object_get(ev, "type")),
        .lane = lanes[i],
        .data = text,
        .data_len = text ? strlen(text) : 0,
    };
    post_item_t *it = &p->items[i];
    it->post = p;
    stream_err_t err = {0};
    int rc = stream_publish(s->hub, topic, &e, post_done, it, &it->handle, &err);
    free(text);
    if (rc < 0) {
      it->handle = NULL;
      p->fail_rc = rc;
      p->fail_index = i;
      p->fail_err = err;
      break;
    }
    p->n++;
    p->pending++;
  }
  json_decref(root);
  if (p->n == 0) {
    /* Nothing was queued: answer now, the error names the event in a batch. */
    stream_err_t err = p->fail_err;
    if (batch && p->fail_err.message[0])
      snprintf(err.message, sizeof err.message, "[0].%.180s", p->fail_err.message);
    coord__streams_http_fail(req, p->fail_rc, &err);
    free(p);
    return;
  }
  base_queue_insert_tail(&s->posts, &p->link);
  coord_http_defer(req, post_abort, p);
}

static void read_waits_stop(coord_streams_t *s);

void coord__streams_http_stop(coord_streams_t *s) {
  read_waits_stop(s);
  while (!base_queue_empty(&s->posts)) {
    post_t *p = base_queue_data(base_queue_head(&s->posts), post_t, link);
    for (size_t i = 0; i < p->n; i++) {
      if (!p->items[i].handle) continue;
      stream_publish_cancel(p->items[i].handle);
      p->items[i].handle = NULL;
      p->items[i].status = -ECANCELED;
    }
    post_answer(p);
    post_free(p);
  }
}

/* ---- GET .../events ---- */

typedef struct text_buf {
  char *p;
  size_t len, cap;
} text_buf_t;

static void tb_put(text_buf_t *b, const void *s, size_t n) {
  b->p = xgrow(b->p, &b->cap, b->len + n + 1, 4096);
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void tb_printf(text_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(text_buf_t *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) tb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

typedef struct read_acc {
  text_buf_t buf;
  size_t count;
  uint64_t last;
} read_acc_t;

static int read_one(void *ud, const stream_frame_t *f) {
  read_acc_t *a = ud;
  size_t len;
  const unsigned char *p = stream_frame_payload(f, &len);
  if (a->count++) tb_put(&a->buf, ",", 1);
  tb_put(&a->buf, p, len);
  a->last = stream_frame_seq(f);
  return 0;
}

/* A query integer of at most 19 digits; def when absent. Returns -1 when malformed. */
static int query_u64(coord_http_req_t *req, const char *name, uint64_t def, uint64_t *out) {
  char v[32];
  int n = coord_http_req_query(req, name, v, sizeof v);
  if (n < 0) {
    *out = def;
    return 0;
  }
  if (n == 0 || n > 19) return -1;
  uint64_t x = 0;
  for (int i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    x = x * 10 + (uint64_t)(v[i] - '0');
  }
  *out = x;
  return 0;
}

static bool read_answer(coord_streams_t *s, coord_http_req_t *req, const char *topic, uint64_t after,
                        size_t limit);

/* A read put off while a WAL settle holds the store's reader: the request is deferred and
 * read again once the reader is free (stream_reader_wait), so the loop never waits. */
typedef struct read_wait {
  stream_reader_wait_t w; /* first: the callback gets &w */
  base_queue_t link;      /* in s->reads */
  coord_streams_t *s;
  coord_http_req_t *req;
  uint64_t after;
  size_t limit;
  char topic[STREAM_TOPIC_MAX + 1];
} read_wait_t;

static void read_wait_free(read_wait_t *r) {
  stream_reader_wait_cancel(&r->w);
  base_queue_remove(&r->link);
  free(r);
}

static void read_wait_abort(coord_http_req_t *req, void *ud) {
  (void)req;
  read_wait_free(ud);
}

static void read_wait_cb(stream_reader_wait_t *w) {
  read_wait_t *r = container_of(w, read_wait_t, w);
  if (!read_answer(r->s, r->req, r->topic, r->after, r->limit)) {
    stream_reader_wait(r->s->hub, &r->w, read_wait_cb); /* a new settle began meanwhile */
    return;
  }
  read_wait_free(r);
}

/* Stop: the reads still waiting are answered 503 (written in the daemon's stop flush) and
 * freed. A settle's pass is far shorter than the drain window, so a read normally gets its
 * events during the drain (streams_settle.test.mjs covers both). */
static void read_waits_stop(coord_streams_t *s) {
  while (!base_queue_empty(&s->reads)) {
    read_wait_t *r = base_queue_data(base_queue_head(&s->reads), read_wait_t, link);
    coord__streams_http_fail(r->req, -ESHUTDOWN, NULL);
    read_wait_free(r);
  }
}

static void read_wait_start(coord_streams_t *s, coord_http_req_t *req, const char *topic, uint64_t after,
                            size_t limit) {
  read_wait_t *r = xcalloc(1, sizeof *r);
  r->s = s;
  r->req = req;
  r->after = after;
  r->limit = limit;
  snprintf(r->topic, sizeof r->topic, "%s", topic);
  base_queue_insert_tail(&s->reads, &r->link);
  coord_metric_add(s->m.reads_deferred, 1);
  stream_reader_wait(s->hub, &r->w, read_wait_cb);
  coord_http_defer(req, read_wait_abort, r);
}

static void streams_read(coord_http_req_t *req, void *ud) {
  coord_streams_t *s = ud;
  coord_auth_principal_t who;
  char topic[STREAM_TOPIC_MAX + 1];
  if (coord__streams_http_open(s, req, COORD_AUTH_SCOPE_SUBSCRIBE, false, &who, topic) < 0) return;
  coord_auth_principal_close(&who);
  uint64_t after, limit;
  if (query_u64(req, "after", 0, &after) < 0) {
    http_error_take(req, 400, "bad_request", "after: must be an integer >= 0", NULL);
    return;
  }
  if (query_u64(req, "limit", READ_LIMIT_DEFAULT, &limit) < 0 || limit < 1 ||
      limit > READ_LIMIT_MAX) {
    char msg[80];
    snprintf(msg, sizeof msg, "limit: must be an integer from 1 to %d", READ_LIMIT_MAX);
    http_error_take(req, 400, "bad_request", msg, NULL);
    return;
  }
  if (!read_answer(s, req, topic, after, (size_t)limit)) read_wait_start(s, req, topic, after, (size_t)limit);
}

/* Reads and answers; false, having answered nothing, when a WAL settle holds the store's
 * reader (the read would make the loop wait for it). */
static bool read_answer(coord_streams_t *s, coord_http_req_t *req, const char *topic, uint64_t after,
                        size_t limit) {
  read_acc_t a = {0};
  stream_read_info_t info;
  int rc = stream_read_nowait(s->hub, topic, after, limit, read_one, &a, &info);
  if (rc == -EAGAIN) {
    free(a.buf.p);
    return false;
  }
  if (rc < 0) {
    free(a.buf.p);
    stream_err_t err = {0};
    if (rc == -ENOENT)
      snprintf(err.message, sizeof err.message, "topic: nothing was ever published to %.150s",
               topic);
    coord__streams_http_fail(req, rc, &err);
    return true;
  }
  text_buf_t out = {0};
  /* topic and epoch need no escaping: their characters are restricted */
  tb_printf(&out, "{\"topic\":\"%s\",\"epoch\":\"%s\",\"head\":%llu,\"first\":%llu,", topic,
            info.epoch, (unsigned long long)info.head, (unsigned long long)info.first);
  if (info.gap_from)
    tb_printf(&out, "\"gap\":{\"from\":%llu,\"to\":%llu,\"reason\":\"retention\"},",
              (unsigned long long)info.gap_from, (unsigned long long)info.gap_to);
  else
    tb_printf(&out, "\"gap\":null,");
  uint64_t next = a.count ? a.last : info.gap_from ? info.gap_to : after;
  tb_printf(&out, "\"next_after\":%llu,\"more\":%s,\"events\":[", (unsigned long long)next,
            next < info.head ? "true" : "false");
  if (a.buf.len) tb_put(&out, a.buf.p, a.buf.len);
  tb_put(&out, "]}\n", 3);
  coord_http_add_header(req, "cache-control", "no-store");
  coord_http_respond(req, 200, "application/json", out.p, out.len);
  free(out.p);
  free(a.buf.p);
  return true;
}

/* ---- GET /v1/streams/{tenant} ---- */

static int list_one(void *ud, const stream_topic_info_t *t) {
  json_array_append_new(ud, json_pack("{s:s,s:s,s:I,s:I,s:I}", "topic", t->topic, "epoch", t->epoch,
                                      "head", (json_int_t)t->head, "first", (json_int_t)t->first,
                                      "subscribers", (json_int_t)t->subscribers));
  return 0;
}

/* ?after=: the last topic of the previous page, a topic of this tenant (or its room
 * alone). 0 when absent (*out empty), -1 with the 400 sent. */
static int list_after(coord_http_req_t *req, const char *tenant, char *out, size_t cap) {
  char v[STREAM_TOPIC_MAX + 2];
  out[0] = '\0';
  int n = coord_http_req_query(req, "after", v, sizeof v);
  if (n < 0) return 0;
  size_t tl = strlen(tenant);
  bool whole = (size_t)n > tl && strncmp(v, tenant, tl) == 0 && v[tl] == '/';
  int w = whole ? snprintf(out, cap, "%s", v) : snprintf(out, cap, "%s/%s", tenant, v);
  stream_err_t err = {0};
  if (n == 0 || (size_t)n >= sizeof v - 1 || w < 0 || (size_t)w >= cap ||
      stream_topic_validate(out, NULL, &err) < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "after: must be a topic of tenant %s (the last \"topic\" of the previous page)",
             tenant);
    http_error_take(req, 400, "bad_request", msg, NULL);
    return -1;
  }
  return 0;
}

static void streams_list(coord_http_req_t *req, void *ud) {
  coord_streams_t *s = ud;
  coord_auth_principal_t who;
  char tenant[STREAM_TOPIC_MAX + 1];
  if (coord__streams_http_open(s, req, COORD_AUTH_SCOPE_SUBSCRIBE, false, &who, tenant) < 0) return;
  coord_auth_principal_close(&who);
  uint64_t limit;
  if (query_u64(req, "limit", LIST_LIMIT_DEFAULT, &limit) < 0 || limit < 1 ||
      limit > LIST_LIMIT_MAX) {
    char msg[80];
    snprintf(msg, sizeof msg, "limit: must be an integer from 1 to %d", LIST_LIMIT_MAX);
    http_error_take(req, 400, "bad_request", msg, NULL);
    return;
  }
  char after[STREAM_TOPIC_MAX + 1];
  if (list_after(req, tenant, after, sizeof after) < 0) return;
  json_t *topics = json_array();
  /* one more than asked: whether there is a next page */
  int rc = stream_list_topics(s->hub, tenant, after[0] ? after : NULL, (size_t)limit + 1, list_one, topics);
  if (rc < 0) {
    json_decref(topics);
    coord__streams_http_fail(req, rc, NULL);
    return;
  }
  bool more = json_array_size(topics) > limit;
  if (more) json_array_remove(topics, json_array_size(topics) - 1);
  json_t *body = json_pack("{s:s,s:o,s:b}", "tenant", tenant, "topics", topics, "more", more);
  if (more) {
    json_t *last = json_array_get(topics, json_array_size(topics) - 1);
    json_object_set(body, "next_after", json_object_get(last, "topic"));
  }
  coord_http_add_header(req, "cache-control", "no-store");
  coord_http_respond_json_take(req, 200, body);
}

static void streams_events(coord_http_req_t *req, void *ud) {
  if (coord_http_req_method(req) == COORD_HTTP_POST)
    streams_post(req, ud);
  else
    streams_read(req, ud);
}

int coord__streams_http_register(coord_streams_t *s) {
  coord_http_t *h = s->d->http;
  int rc =
      coord_http_route(h, COORD_HTTP_GET | COORD_HTTP_POST, "/v1/streams/{tenant}/{room...}/events",
                       "/v1/streams/{tenant}/{room...}/events", streams_events, s);
  if (rc == 0)
    rc = coord_http_route(h, COORD_HTTP_GET, "/v1/streams/{tenant}", "/v1/streams/{tenant}",
                          streams_list, s);
  return rc;
}
