/* A run's events and its document.
 *
 * Owns the outbox of each run (events queued in order, handed to the stream hub, kept in
 * flight until acknowledged), the merging of token events that wait behind a rate limit,
 * and the run document: the reducer that folds each acknowledged event into it, so the
 * document always equals the fold of the topic's events up to `seq`, and the builder of
 * the same document from stored rows. docs/runs.md describes both. Does not decide what
 * to publish (run_exec.c and the kinds do). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "engine_internal.h"

/* ---- helpers ---- */

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  size_t len;
  unsigned min;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, min = 0x10000;
  else
    return 0;
  if (len > n) return 0;
  unsigned cp = c & (0x3F >> (len - 1));
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

json_t *wf__json_text(const char *s, size_t len) {
  if (!s) return json_string("");
  json_t *j = json_stringn(s, len);
  if (j) return j;
  /* Invalid UTF-8 (or nothing jansson accepts): replace each bad byte by U+FFFD. */
  char *buf = xmalloc(len * 3 + 1);
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    size_t k = utf8_seq((const unsigned char *)s + i, len - i);
    if (k) {
      memcpy(buf + o, s + i, k);
      o += k;
      i += k;
    } else {
      memcpy(buf + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  j = json_stringn(buf, o);
  free(buf);
  return j ? j : json_string("");
}

json_t *wf__error(const char *cls, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  va_end(ap);
  json_t *m = msg ? wf__json_text(msg, strlen(msg)) : json_string("");
  free(msg);
  return json_pack("{s:s,s:o}", "class", cls, "message", m);
}

/* ---- the reducer ---- */

static int64_t data_int(const json_t *d, const char *k) {
  return json_integer_value(json_object_get(d, k));
}

static void set_copy(json_t *obj, const char *k, const json_t *v) {
  if (v) json_object_set(obj, k, (json_t *)v);
}

static void append_text(json_t *obj, const char *k, const json_t *add) {
  json_t *cur = json_object_get(obj, k);
  size_t a = json_string_length(cur), b = json_string_length(add);
  char *buf = xmalloc(a + b + 1);
  memcpy(buf, json_string_value(cur) ? json_string_value(cur) : "", a);
  memcpy(buf + a, json_string_value(add) ? json_string_value(add) : "", b);
  json_object_set_new(obj, k, json_stringn_nocheck(buf, a + b));
  free(buf);
}

static void apply_token(json_t *step, const json_t *d) {
  if (!step || data_int(step, "attempt") != data_int(d, "attempt")) return;
  const char *part = json_string_value(json_object_get(d, "part"));
  const json_t *text = json_object_get(d, "text");
  if (!part || !json_is_string(text)) return;
  if (!strcmp(part, "text")) {
    append_text(step, "text", text);
  } else if (!strcmp(part, "reasoning")) {
    append_text(step, "reasoning", text);
  } else if (!strcmp(part, "tool_call")) {
    json_t *calls = json_object_get(step, "tool_calls");
    if (!calls) json_object_set_new(step, "tool_calls", calls = json_array());
    size_t call = (size_t)data_int(d, "call");
    if (call > 1024) return;
    while (json_array_size(calls) <= call) json_array_append_new(calls, json_string(""));
    json_t *cur = json_array_get(calls, call);
    size_t a = json_string_length(cur), b = json_string_length(text);
    char *buf = xmalloc(a + b + 1);
    memcpy(buf, json_string_value(cur), a);
    memcpy(buf + a, json_string_value(text), b);
    json_array_set_new(calls, call, json_stringn_nocheck(buf, a + b));
    free(buf);
  }
}

void wf__view_apply(json_t *view, const char *type, const json_t *d) {
  json_t *steps = json_object_get(view, "steps");
  const char *key = json_string_value(json_object_get(d, "step"));
  json_t *step = key ? json_object_get(steps, key) : NULL;
  const json_t *ts = json_object_get(d, "ts");

  if (!strcmp(type, "token")) {
    apply_token(step, d);
    return;
  }
  if (!strncmp(type, "run.", 4)) {
    set_copy(view, "updated_ms", ts);
    if (!strcmp(type, "run.started") || !strcmp(type, "run.resumed")) {
      json_object_set_new(view, "status", json_string("running"));
      set_copy(view, "resumes", json_object_get(d, "resumes"));
    } else if (!strcmp(type, "run.completed")) {
      json_object_set_new(view, "status", json_string("completed"));
      set_copy(view, "output", json_object_get(d, "output"));
    } else if (!strcmp(type, "run.failed")) {
      json_object_set_new(view, "status", json_string("failed"));
      set_copy(view, "error", json_object_get(d, "error"));
    } else if (!strcmp(type, "run.cancelled")) {
      json_object_set_new(view, "status", json_string("cancelled"));
    }
    return;
  }
  if (!key) return;
  if (!strcmp(type, "step.started")) {
    json_t *s = json_pack("{s:O,s:O,s:s,s:O,s:O,s:O}", "step_id", json_object_get(d, "step_id"),
                          "kind", json_object_get(d, "kind"), "status", "running", "attempt",
                          json_object_get(d, "attempt"), "started_ms",
                          json_object_get(d, "started_ms"), "updated_ms", ts);
    if (!s) return;
    if (!strcmp(json_string_value(json_object_get(d, "kind")), "llm"))
      json_object_set_new(s, "text", json_string(""));
    json_object_set_new(steps, key, s);
    return;
  }
  if (!step) return;
  set_copy(step, "updated_ms", ts);
  if (!strcmp(type, "step.retrying")) {
    json_object_set_new(step, "status", json_string("retrying"));
    set_copy(step, "error", json_object_get(d, "error"));
    if (json_object_get(step, "text")) json_object_set_new(step, "text", json_string(""));
    json_object_del(step, "reasoning");
    json_object_del(step, "tool_calls");
  } else if (!strcmp(type, "task.offered")) {
    set_copy(step, "task_id", json_object_get(d, "task_id"));
    set_copy(step, "topic", json_object_get(d, "topic"));
    set_copy(step, "reply_to", json_object_get(d, "reply_to"));
  } else if (!strcmp(type, "approval.requested")) {
    json_object_set_new(step, "status", json_string("waiting"));
    set_copy(step, "prompt", json_object_get(d, "prompt"));
    set_copy(step, "deadline_ms", json_object_get(d, "deadline_ms"));
  } else if (!strcmp(type, "step.completed")) {
    json_object_set_new(step, "status", json_string("completed"));
    json_object_del(step, "error");
    set_copy(step, "output", json_object_get(d, "output"));
    set_copy(step, "usage", json_object_get(d, "usage"));
  } else if (!strcmp(type, "step.failed")) {
    const json_t *err = json_object_get(d, "error");
    const char *cls = json_string_value(json_object_get(err, "class"));
    json_object_set_new(step, "status",
                        json_string(cls && !strcmp(cls, "cancelled") ? "cancelled" : "failed"));
    set_copy(step, "error", err);
    set_copy(step, "caught", json_object_get(d, "caught"));
    set_copy(step, "goto", json_object_get(d, "goto"));
    set_copy(step, "output", json_object_get(d, "output"));
  }
}

/* ---- documents from rows ---- */

static json_t *parse_or_null(const char *text) {
  if (!text) return json_null();
  json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
  return j ? j : json_null();
}

json_t *wf__run_row_json(const store_run_t *r) {
  json_t *state = parse_or_null(r->state);
  json_int_t resumes = json_integer_value(json_object_get(state, "resumes"));
  json_decref(state);
  return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:I,s:I,s:I}", "run_id", r->run_id, "tenant",
                   r->tenant, "workflow", r->workflow, "status", r->status, "input",
                   parse_or_null(r->input), "output", parse_or_null(r->output), "error",
                   parse_or_null(r->error), "created_ms", (json_int_t)r->created_ms, "updated_ms",
                   (json_int_t)r->updated_ms, "resumes", resumes);
}

json_t *wf__step_row_json(const store_step_t *s) {
  json_t *o = json_pack("{s:s,s:s,s:s,s:i,s:I,s:I}", "step_id", s->step_id, "kind", s->kind,
                        "status", s->status, "attempt", s->attempt, "started_ms",
                        (json_int_t)s->started_ms, "updated_ms", (json_int_t)s->updated_ms);
  if (s->output) json_object_set_new(o, "output", parse_or_null(s->output));
  if (s->usage) json_object_set_new(o, "usage", parse_or_null(s->usage));
  if (s->error) json_object_set_new(o, "error", parse_or_null(s->error));
  if (s->text) json_object_set_new(o, "text", wf__json_text(s->text, strlen(s->text)));
  if (s->extra) {
    json_t *x = parse_or_null(s->extra);
    if (json_is_object(x)) json_object_update(o, x);
    json_decref(x);
  }
  return o;
}

json_t *wf__view_from_rows(const json_t *run_row, const json_t *steps) {
  json_t *v = json_deep_copy(run_row);
  json_t *out = json_object();
  const char *k;
  json_t *row;
  json_object_foreach((json_t *)steps, k, row) {
    json_t *s = json_deep_copy(row);
    if (!strcmp(json_string_value(json_object_get(s, "kind")), "llm") &&
        !json_object_get(s, "text"))
      json_object_set_new(s, "text", json_string(""));
    json_object_set_new(out, k, s);
  }
  json_object_set_new(v, "steps", out);
  const char *tenant = json_string_value(json_object_get(v, "tenant"));
  const char *id = json_string_value(json_object_get(v, "run_id"));
  char *topic = xasprintf("%s/runs/%s", tenant, id);
  json_object_set_new(v, "topic", json_string(topic));
  free(topic);
  return v;
}

json_t *wf__view_export(const json_t *view) {
  json_t *v = json_deep_copy(view);
  int64_t in = 0, out = 0;
  const char *k;
  json_t *s;
  json_object_foreach(json_object_get(v, "steps"), k, s) {
    if (strcmp(json_string_value(json_object_get(s, "status")), "completed")) continue;
    json_t *u = json_object_get(s, "usage");
    int64_t a = json_integer_value(json_object_get(u, "in_tokens"));
    int64_t b = json_integer_value(json_object_get(u, "out_tokens"));
    if (a > 0) in += a;
    if (b > 0) out += b;
  }
  json_object_set_new(
      v, "usage",
      json_pack("{s:I,s:I}", "in_tokens", (json_int_t)in, "out_tokens", (json_int_t)out));
  return v;
}

/* ---- token text waiting to be folded ----
 *
 * Folding every token event into the document's JSON string would copy the whole text
 * each time (quadratic in the output's length). Acknowledged token text accumulates here
 * per (step, part, call) instead and is folded in as one piece before the next other
 * event of that step, before a run-level event, and when a reader asks (wf__view_sync). */
typedef struct wf__tbuf {
  base_map_node_t node;
  char *mkey;    /* owned: "<step>\n<part>\n<call>" */
  char *step;    /* owned */
  json_t *proto; /* owned: the first token event's data without its text */
  char *p;       /* owned */
  size_t len, cap;
} wf__tbuf_t;

static void tbuf_fold(wf__run_t *r, wf__tbuf_t *b) {
  json_t *step = json_object_get(json_object_get(r->view, "steps"), b->step);
  json_object_set_new(b->proto, "text", json_stringn_nocheck(b->p ? b->p : "", b->len));
  apply_token(step, b->proto);
  base_map_remove(&r->tbufs, &b->node);
  free(b->mkey);
  free(b->step);
  json_decref(b->proto);
  free(b->p);
  free(b);
}

/* Folds the pending text of one step (all steps when step is NULL). */
static void tbufs_fold(wf__run_t *r, const char *step) {
  base_map_iter_t it;
  for (base_map_node_t *n = base_map_first(&r->tbufs, &it); n; n = base_map_next(&r->tbufs, &it)) {
    wf__tbuf_t *b = container_of(n, wf__tbuf_t, node);
    if (!step || !strcmp(step, b->step)) tbuf_fold(r, b);
  }
}

static void tbuf_add(wf__run_t *r, const json_t *d) {
  const char *step = json_string_value(json_object_get(d, "step"));
  const char *part = json_string_value(json_object_get(d, "part"));
  const json_t *text = json_object_get(d, "text");
  if (!step || !part || !json_is_string(text)) return;
  char *mkey = xasprintf("%s\n%s\n%lld", step, part,
                         (long long)json_integer_value(json_object_get(d, "call")));
  base_map_node_t *n = base_map_get(&r->tbufs, mkey, strlen(mkey));
  wf__tbuf_t *b = n ? container_of(n, wf__tbuf_t, node) : NULL;
  if (b && json_integer_value(json_object_get(b->proto, "attempt")) !=
               json_integer_value(json_object_get(d, "attempt"))) {
    tbuf_fold(r, b);
    b = NULL;
  }
  if (!b) {
    b = xcalloc(1, sizeof *b);
    b->mkey = mkey;
    mkey = NULL;
    b->step = xstrdup(step);
    b->proto = json_deep_copy(d);
    json_object_del(b->proto, "text");
    base_map_insert(&r->tbufs, &b->node, b->mkey, strlen(b->mkey));
  }
  free(mkey);
  size_t n_add = json_string_length(text);
  if (b->len + n_add + 1 > b->cap) {
    b->cap = (b->len + n_add + 1) * 2;
    b->p = xrealloc(b->p, b->cap);
  }
  memcpy(b->p + b->len, json_string_value(text), n_add);
  b->len += n_add;
  b->p[b->len] = '\0';
}

void wf__view_sync(wf__run_t *r) {
  tbufs_fold(r, NULL);
}

void wf__view_drop(wf__run_t *r) {
  tbufs_fold(r, NULL);
  base_map_close(&r->tbufs);
}

/* Applies an acknowledged event to the run's document. */
static void view_ack(wf__run_t *r, const char *type, const json_t *d) {
  if (!strcmp(type, "token")) {
    tbuf_add(r, d);
    return;
  }
  tbufs_fold(r, strncmp(type, "run.", 4) ? json_string_value(json_object_get(d, "step")) : NULL);
  wf__view_apply(r->view, type, d);
}

/* ---- the outbox ---- */

static void ev_free(wf__ev_t *ev) {
  base_queue_remove(&ev->link);
  free(ev->type);
  free(ev->id);
  json_decref(ev->data);
  json_decref(ev->slim);
  free(ev);
}

/* For an event over the hub's size limit: its data with the large values (output, input,
 * prompt, error) set to null and named in "omitted". NULL when there is nothing to slim
 * (the event is then dropped). The document still gets the full data. */
static json_t *slim_data(const json_t *d) {
  static const char *const big[] = {"output", "input", "prompt", "error"};
  json_t *slim = json_copy((json_t *)d);
  json_t *omitted = json_array();
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
    json_t *v = json_object_get(slim, big[i]);
    if (!v || json_is_null(v)) continue;
    json_object_set_new(slim, big[i], json_null());
    json_array_append_new(omitted, json_string(big[i]));
  }
  if (json_array_size(omitted) == 0) {
    json_decref(omitted);
    json_decref(slim);
    return NULL;
  }
  json_object_set_new(slim, "omitted", omitted);
  return slim;
}

static void flush(wf__run_t *r);

static void on_ack(void *ud, int status, const stream_ack_t *ack) {
  wf__ev_t *ev = ud;
  wf__run_t *r = ev->run;
  ev->handle = NULL;
  if (status == 0) {
    if (!ack->duplicate) {
      view_ack(r, ev->type, ev->data);
      if (ack->seq > r->seq) r->seq = ack->seq;
      snprintf(r->epoch, sizeof r->epoch, "%s", ack->epoch ? ack->epoch : "");
    }
  } else {
    r->e->stats.publish_errors++;
    log_error("workflows", "run event lost", "{s:s,s:s,s:s,s:i}", "run", r->id, "type", ev->type,
              "id", ev->id, "status", status);
  }
  ev_free(ev);
  if (r->finished && wf__outbox_empty(r)) wf__task_post(r->e, &r->release_task);
}

void wf__outbox_retry_cb(wf__tmr_t *t) {
  flush(container_of(t, wf__run_t, pub_retry));
}

/* Publishes queued events in order until the hub refuses one for now. */
static void flush(wf__run_t *r) {
  wf_engine_t *e = r->e;
  if (wf__tmr_armed(&r->pub_retry)) return;
  while (!base_queue_empty(&r->outq)) {
    wf__ev_t *ev = base_queue_data(base_queue_head(&r->outq), wf__ev_t, link);
    char *text = json_dumps(ev->slim ? ev->slim : ev->data, JSON_COMPACT | JSON_ENCODE_ANY);
    stream_event_t sev = {.id = ev->id,
                          .type = ev->type,
                          .lane = ev->lane,
                          .data = text,
                          .data_len = text ? strlen(text) : 0};
    stream_err_t err = {0};
    int rc = stream_publish(e->hub, r->topic, &sev, on_ack, ev, &ev->handle, &err);
    free(text);
    if (rc == 0) {
      base_queue_remove(&ev->link);
      base_queue_insert_tail(&r->inflight, &ev->link);
      ev->tok_step = NULL; /* taken: nothing merges into it any more */
      if (!strcmp(ev->type, "token")) e->stats.token_events++;
      continue;
    }
    if (rc == -EAGAIN || rc == -EBUSY) {
      wf__tmr_start(e, &r->pub_retry,
                    err.retry_after_ms ? err.retry_after_ms : WF__PUBLISH_RETRY_MS);
      return;
    }
    if (rc == -EMSGSIZE && !ev->slim && strcmp(ev->type, "token") &&
        (ev->slim = slim_data(ev->data)) != NULL)
      continue; /* again, without the large values */
    e->stats.publish_errors++;
    log_error("workflows", "run event refused", "{s:s,s:s,s:i,s:s}", "run", r->id, "type", ev->type,
              "rc", rc, "reason", err.message);
    ev_free(ev);
  }
  if (r->finished && wf__outbox_empty(r)) wf__task_post(e, &r->release_task);
}

static wf__ev_t *ev_new(wf__run_t *r, const char *type, const char *id, int lane, json_t *data) {
  wf__ev_t *ev = xcalloc(1, sizeof *ev);
  base_queue_init(&ev->link);
  ev->run = r;
  ev->type = xstrdup(type);
  ev->id = xstrdup(id);
  ev->lane = lane;
  ev->data = data;
  return ev;
}

void wf__emit(wf__run_t *r, const char *type, const char *id, int lane, json_t *data) {
  if (r->quiet) {
    json_decref(data);
    return;
  }
  if (!json_object_get(data, "ts") && strcmp(type, "token"))
    json_object_set_new(data, "ts", json_integer(wf__now_ms(r->e)));
  wf__ev_t *ev = ev_new(r, type, id, lane, data);
  base_queue_insert_tail(&r->outq, &ev->link);
  flush(r);
}

static const char *part_name(int part) {
  switch (part) {
    case AGENT_DELTA_REASONING:
      return "reasoning";
    case AGENT_DELTA_TOOL_CALL:
      return "tool_call";
    default:
      return "text";
  }
}

bool wf__emit_token(wf__run_t *r, const char *key, int attempt, int part, int call,
                    const char *tool_id, const char *tool_name, int index, const char *text,
                    size_t len) {
  if (r->quiet) return false;
  if (!base_queue_empty(&r->outq)) {
    wf__ev_t *last = base_queue_data(r->outq.prev, wf__ev_t, link);
    if (last->tok_step && !strcmp(last->tok_step, key) && last->tok_attempt == attempt &&
        last->tok_part == part && last->tok_call == call &&
        json_string_length(json_object_get(last->data, "text")) + len <=
            r->e->cfg.token_max_bytes) {
      json_t *add = wf__json_text(text, len);
      append_text(last->data, "text", add);
      json_decref(add);
      return false;
    }
  }
  json_t *d = json_pack("{s:s,s:i,s:s,s:o,s:i}", "step", key, "attempt", attempt, "part",
                        part_name(part), "text", wf__json_text(text, len), "index", index);
  if (part == AGENT_DELTA_TOOL_CALL) {
    json_object_set_new(d, "call", json_integer(call));
    if (tool_id) json_object_set_new(d, "tool_id", wf__json_text(tool_id, strlen(tool_id)));
    if (tool_name) json_object_set_new(d, "name", wf__json_text(tool_name, strlen(tool_name)));
  }
  char *id = xasprintf("%s:%s:%d:%d", r->id, key, attempt, index);
  wf__ev_t *ev = ev_new(r, "token", id, STREAM_LANE_DATA, d);
  free(id);
  ev->tok_step = json_string_value(json_object_get(d, "step"));
  ev->tok_attempt = attempt;
  ev->tok_part = part;
  ev->tok_call = call;
  base_queue_insert_tail(&r->outq, &ev->link);
  flush(r);
  return true;
}

bool wf__outbox_empty(const wf__run_t *r) {
  return base_queue_empty(&r->outq) && base_queue_empty(&r->inflight);
}

void wf__outbox_abandon(wf__run_t *r) {
  wf__tmr_stop(r->e, &r->pub_retry);
  while (!base_queue_empty(&r->outq))
    ev_free(base_queue_data(base_queue_head(&r->outq), wf__ev_t, link));
  while (!base_queue_empty(&r->inflight)) {
    wf__ev_t *ev = base_queue_data(base_queue_head(&r->inflight), wf__ev_t, link);
    if (ev->handle) stream_publish_cancel(ev->handle);
    ev_free(ev);
  }
}
