/* The agent step kind: one task per attempt for an external agent, and the results that
 * agents deliver over HTTP (wf_task_result).
 *
 * An attempt renders its coordination topic and input, subscribes an observer connection
 * of its own to the task's reply topic "<tenant>/runs/<run_id>/tasks/<task_id>", creates
 * the step's consumer group when it names one (so a task published before the group's
 * first member joined waits for that member instead of being skipped by a group that
 * starts live), and publishes the `task` event. What agents publish on the reply topic
 * reaches the observer: the hub wakes it, the wake posts an engine task, and the task
 * pulls the frames and applies them, so nothing here runs inside the hub's callbacks and
 * streams/ knows nothing of workflows. task.partial text becomes token events of the run
 * (like model tokens); task.heartbeat and task.partial keep a claimed task alive within
 * heartbeat_ms; task.result and task.error end the attempt. However the attempt ends,
 * task.closed with the reason goes to the reply topic, so an agent can see that a late
 * answer was not taken.
 *
 * Does not own the attempt's flow (timeout, retry, catch, rows: run_exec.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "engine_internal.h"

#define EXT_PULL_BATCH 64
#define EXT_PULL_BYTES ((size_t)4 << 20) /* bytes per pull */
#define EXT_RETRY_MS 100                 /* publish retry without a hint */
#define EXT_DRAIN_RETRY_MS 1000          /* publish retry while the hub drains */
#define EXT_ERROR_MAX 2000               /* bytes of an agent's error message kept */

/* Invariant: while s->ext == this, node is in the run's ext_tasks and conn is subscribed
 * to reply; handed is set once the hub took the task event (from then on task.closed is
 * owed to the reply topic). */
struct wf__ext {
  base_map_node_t node;
  wf__sx_t *s; /* borrowed: the step that owns this */
  char task_id[WF_TASK_ID_MAX + 1];
  char *topic;         /* owned: the coordination topic */
  char *reply;         /* owned: the reply topic */
  char *task_text;     /* owned: the task event's data until the hub took it */
  stream_conn_t *conn; /* owned: the observer of reply */
  stream_pub_t *pub;   /* while the task's publish callback is pending */
  int pub_status;      /* a failed commit of the task event, reported by the pull task */
  wf__task_t pull;
  wf__tmr_t hb;    /* heartbeat deadline, armed once claimed */
  wf__tmr_t retry; /* publishes the task again after a refusal for now */
  bool handed, claimed, partial;
  int index;          /* token events created this attempt */
  const char *reason; /* static: why the task ends, for task.closed */
  char *text;         /* owned: streamed text (part "text") */
  size_t len, cap;    /* bytes */
};

/* ---- helpers ---- */

static uint64_t fnv64(const char *s) {
  uint64_t h = 14695981039346656037ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

/* Bytes of p[0..len) to put in one event of at most max bytes, cut before a UTF-8
 * continuation byte so that no character is split. */
static size_t piece_len(const char *p, size_t len, size_t max) {
  if (len <= max) return len;
  size_t n = max;
  while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80) n--;
  return n ? n : max;
}

static void text_add(wf__ext_t *x, const char *p, size_t n) {
  if (x->len + n + 1 > x->cap) {
    x->cap = (x->len + n + 1) * 2;
    x->text = xrealloc(x->text, x->cap);
  }
  memcpy(x->text + x->len, p, n);
  x->len += n;
  x->text[x->len] = '\0';
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT:
      return "object";
    case JSON_ARRAY:
      return "array";
    case JSON_STRING:
      return "string";
    case JSON_INTEGER:
    case JSON_REAL:
      return "number";
    case JSON_TRUE:
    case JSON_FALSE:
      return "boolean";
    default:
      return "null";
  }
}

/* task.closed on a reply topic (best effort: the task's attempt is over either way). */
static void publish_closed(wf_engine_t *e, const char *reply, const char *task_id,
                           const char *reason) {
  json_t *d = json_pack("{s:s,s:s,s:I}", "task_id", task_id, "reason", reason, "ts",
                        (json_int_t)wf__now_ms(e));
  char *text = json_dumps(d, JSON_COMPACT);
  char *id = xasprintf("%s:closed", task_id);
  stream_event_t ev = {.id = id,
                       .type = "task.closed",
                       .lane = STREAM_LANE_CONTROL,
                       .data = text,
                       .data_len = strlen(text)};
  stream_err_t err = {0};
  int rc = stream_publish(e->hub, reply, &ev, NULL, NULL, NULL, &err);
  if (rc < 0)
    log_warn("workflows", "task.closed not published", "{s:s,s:s,s:i,s:s}", "task", task_id,
             "reason", reason, "rc", rc, "error", err.message);
  free(id);
  free(text);
  json_decref(d);
}

/* Fails the attempt (msg taken); x is freed on return. */
static void ext_fail(wf__ext_t *x, const char *cls, char *msg) {
  wf__sx_fail(x->s, cls, msg, -1, x->partial);
}

/* ---- observing the reply topic ---- */

static void hb_cb(wf__tmr_t *t) {
  wf__ext_t *x = container_of(t, wf__ext_t, hb);
  wf__sx_t *s = x->s;
  x->reason = "heartbeat";
  s->n.run->e->stats.task_heartbeat_misses++;
  ext_fail(x, "timeout",
           xasprintf("no heartbeat or partial output from the agent within heartbeat_ms %lld",
                     (long long)s->step->u.agent.heartbeat_ms));
}

/* The agent showed life: the task is claimed and its heartbeat deadline restarts. */
static void ext_alive(wf__ext_t *x) {
  x->claimed = true;
  int64_t hb = x->s->step->u.agent.heartbeat_ms;
  if (hb > 0) wf__tmr_start(x->s->n.run->e, &x->hb, hb);
}

static void ext_partial(wf__ext_t *x, const json_t *data) {
  wf__sx_t *s = x->s;
  wf__run_t *r = s->n.run;
  const json_t *text = json_is_string(data) ? data : json_object_get(data, "text");
  const char *part = json_string_value(json_object_get(data, "part"));
  if (!json_is_string(text) || json_string_length(text) == 0) return;
  int kind = part && !strcmp(part, "reasoning") ? AGENT_DELTA_REASONING : AGENT_DELTA_TEXT;
  const char *p = json_string_value(text);
  size_t left = json_string_length(text);
  if (kind == AGENT_DELTA_TEXT) text_add(x, p, left);
  x->partial = true;
  do { /* one event, or several for a partial larger than token_max_bytes */
    size_t n = piece_len(p, left, r->e->cfg.token_max_bytes);
    if (wf__emit_token(r, s->key, s->attempt, kind, -1, NULL, NULL, x->index, p, n)) x->index++;
    p += n;
    left -= n;
  } while (left > 0);
}

/* Only the counts of a usage object are kept (new reference or NULL). */
static json_t *usage_of(const json_t *u) {
  if (!json_is_object(u)) return NULL;
  json_t *out = json_object();
  const char *const keys[] = {"in_tokens", "out_tokens"};
  for (size_t i = 0; i < 2; i++) {
    const json_t *v = json_object_get(u, keys[i]);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
      json_object_set(out, keys[i], (json_t *)v);
  }
  if (json_object_size(out) == 0) {
    json_decref(out);
    return NULL;
  }
  return out;
}

/* The step completes with output; x is freed on return. */
static void ext_succeed(wf__ext_t *x, const json_t *output, const json_t *usage) {
  wf__sx_t *s = x->s;
  x->reason = "completed";
  s->n.run->e->stats.task_results++;
  wf__sx_ok(s, json_incref((json_t *)(output ? output : json_null())), usage_of(usage));
}

/* The attempt fails with agent_error; x is freed on return. */
static void ext_error(wf__ext_t *x, const json_t *err) {
  const json_t *m = json_is_string(err) ? err : json_object_get(err, "message");
  char *msg;
  if (json_is_string(m)) {
    msg = xstrndup(json_string_value(m), json_string_length(m));
  } else {
    msg = json_dumps(err, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!msg) msg = xstrdup("the agent reported an error");
  }
  if (strlen(msg) > EXT_ERROR_MAX) msg[piece_len(msg, strlen(msg), EXT_ERROR_MAX)] = '\0';
  x->reason = "failed";
  x->s->n.run->e->stats.task_results++;
  ext_fail(x, "agent_error", xasprintf("agent: %s", msg));
  free(msg);
}

/* Applies one frame of the reply topic. May end the attempt (x freed). */
static void ext_frame(wf__ext_t *x, stream_frame_t *f) {
  if (stream_frame_kind(f) != STREAM_FRAME_EVENT) return;
  size_t len;
  const unsigned char *p = stream_frame_payload(f, &len);
  json_t *m = json_loadb((const char *)p, len, 0, NULL);
  const char *type = json_string_value(json_object_get(m, "type"));
  const json_t *data = json_object_get(m, "data");
  if (!type) {
    /* not an agent's message */
  } else if (!strcmp(type, "task.heartbeat")) {
    ext_alive(x);
  } else if (!strcmp(type, "task.partial")) {
    ext_alive(x);
    ext_partial(x, data);
  } else if (!strcmp(type, "task.result")) {
    if (json_is_object(data) && json_object_get(data, "output"))
      ext_succeed(x, json_object_get(data, "output"), json_object_get(data, "usage"));
    else
      ext_succeed(x, data, NULL);
  } else if (!strcmp(type, "task.error")) {
    ext_error(x, json_is_object(data) && json_object_get(data, "error")
                     ? json_object_get(data, "error")
                     : data);
  }
  json_decref(m);
}

static void pull_cb(wf__task_t *t) {
  wf__ext_t *x = container_of(t, wf__ext_t, pull);
  wf__sx_t *s = x->s;
  wf_engine_t *e = s->n.run->e;
  if (x->pub_status < 0) {
    ext_fail(x, "server_error",
             xasprintf("task not published (status %d): the store failed", x->pub_status));
    return;
  }
  stream_frame_t *frames[EXT_PULL_BATCH];
  int n = stream_conn_pull(x->conn, frames, EXT_PULL_BATCH, EXT_PULL_BYTES);
  if (n < 0) {
    const char *why = stream_conn_close_reason(x->conn);
    ext_fail(x, "server_error", xasprintf("reply topic watch failed: %s", why ? why : "closed"));
    return;
  }
  /* An answer ends the attempt and frees x; the frames after it are only released. The
   * comparison never reads x after that: a new attempt starts on a later turn at best. */
  for (int i = 0; i < n; i++) {
    if (s->ext == x) ext_frame(x, frames[i]);
    stream_frame_unref(&frames[i]);
  }
  if (s->ext == x && stream_conn_pending(x->conn)) wf__task_post(e, &x->pull);
}

static void observer_wake(stream_conn_t *conn, void *ud) {
  (void)conn;
  wf__ext_t *x = ud;
  wf__task_post(x->s->n.run->e, &x->pull);
}

static const stream_conn_ops_t observer_ops = {.wake = observer_wake};

/* ---- publishing the task ---- */

static void on_task_ack(void *ud, int status, const stream_ack_t *ack) {
  wf__ext_t *x = ud;
  wf__sx_t *s = x->s;
  wf__run_t *r = s->n.run;
  x->pub = NULL;
  if (status < 0) {
    /* Failing here would free the observer inside the hub's callback: the pull task
     * reports it on the next turn instead. */
    x->pub_status = status;
    wf__task_post(r->e, &x->pull);
    return;
  }
  r->e->stats.tasks_offered++;
  free(x->task_text);
  x->task_text = NULL;
  json_t *d =
      json_pack("{s:s,s:s,s:s,s:I,s:b}", "task_id", x->task_id, "topic", x->topic, "reply_to",
                x->reply, "task_seq", (json_int_t)ack->seq, "duplicate", ack->duplicate);
  char *id = wf__sx_event_id(s, "offered");
  json_object_set_new(d, "step", json_string(s->key));
  json_object_set_new(d, "attempt", json_integer(s->attempt));
  wf__emit(r, "task.offered", id, STREAM_LANE_CONTROL, d);
  free(id);
}

static void ext_publish(wf__ext_t *x);

static void retry_cb(wf__tmr_t *t) {
  ext_publish(container_of(t, wf__ext_t, retry));
}

/* Hands the task event to the hub, again later when refused for now. May end the
 * attempt (x freed). */
static void ext_publish(wf__ext_t *x) {
  wf_engine_t *e = x->s->n.run->e;
  stream_event_t ev = {.id = x->task_id,
                       .type = "task",
                       .lane = STREAM_LANE_DATA,
                       .data = x->task_text,
                       .data_len = strlen(x->task_text)};
  stream_err_t err = {0};
  int rc = stream_publish(e->hub, x->topic, &ev, on_task_ack, x, &x->pub, &err);
  if (rc == 0) {
    x->handed = true;
    return;
  }
  if (rc == -EAGAIN || rc == -EBUSY || rc == -ESHUTDOWN) {
    int64_t delay = rc == -ESHUTDOWN         ? EXT_DRAIN_RETRY_MS
                    : err.retry_after_ms > 0 ? err.retry_after_ms
                                             : EXT_RETRY_MS;
    wf__tmr_start(e, &x->retry, delay);
    return;
  }
  const char *cls = rc == -EINVAL || rc == -EMSGSIZE ? "invalid_input" : "server_error";
  ext_fail(x, cls,
           xasprintf("task not published to \"%s\": %s", x->topic,
                     err.message[0] ? err.message : "refused"));
}

/* ---- the attempt ---- */

/* The task's data: what an agent needs to do it and to answer. */
static char *task_json(wf__ext_t *x, json_t *input_take) {
  wf__sx_t *s = x->s;
  wf__run_t *r = s->n.run;
  int64_t now = wf__now_ms(r->e);
  json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:o,s:s,s:I}", "task_id", x->task_id, "run_id",
                        r->id, "workflow", wf_workflow_name(s->wf), "step", s->key, "step_id",
                        s->step->id, "attempt", s->attempt, "input", input_take, "reply_to",
                        x->reply, "ts", (json_int_t)now);
  if (s->step->u.agent.heartbeat_ms > 0)
    json_object_set_new(d, "heartbeat_ms", json_integer(s->step->u.agent.heartbeat_ms));
  if (s->step->timeout_ms > 0) {
    json_object_set_new(d, "timeout_ms", json_integer(s->step->timeout_ms));
    json_object_set_new(d, "deadline_ms", json_integer(now + s->step->timeout_ms));
  }
  if (s->step->u.agent.group) json_object_set_new(d, "group", json_string(s->step->u.agent.group));
  char *text = json_dumps(d, JSON_COMPACT);
  json_decref(d);
  return text;
}

/* The coordination topic "<tenant>/<rendered topic>", or NULL after failing the attempt. */
static char *render_topic(wf__sx_t *s) {
  wf__run_t *r = s->n.run;
  json_t *v = NULL;
  char *err = NULL;
  if (wf__tmpl_render(s->step->u.agent.topic, s->ctx, &v, &err) < 0) {
    wf__sx_fail(s, "template", err ? err : xstrdup("topic: render failed"), -1, false);
    return NULL;
  }
  if (!json_is_string(v)) {
    wf__sx_fail(s, "invalid_input", xasprintf("topic: expected a string, got %s", json_kind(v)), -1,
                false);
    json_decref(v);
    return NULL;
  }
  char *topic = xasprintf("%s/%s", r->tenant, json_string_value(v));
  json_decref(v);
  stream_err_t serr = {0};
  size_t tl = 0;
  if (stream_topic_validate(topic, &tl, &serr) < 0 || tl != strlen(r->tenant)) {
    wf__sx_fail(s, "invalid_input",
                xasprintf("topic \"%s\": %s", topic,
                          serr.message[0] ? serr.message : "not a room of the run's tenant"),
                -1, false);
    free(topic);
    return NULL;
  }
  return topic;
}

/* Makes the step's group exist (at the topic's head) before the task is published: a
 * group starts live when it is created, so without this a task published before the
 * first member joined would never reach the group. Joining and leaving at once hands
 * nothing to the observer (dispatch runs in the hub's loop phase, after the leave). */
static int ensure_group(wf__ext_t *x, stream_err_t *err) {
  const char *g = x->s->step->u.agent.group;
  if (!g) return 0;
  stream_group_join_t join = {.group = g};
  int rc = stream_conn_group_join(x->conn, x->topic, &join, err);
  if (rc < 0) return rc;
  return stream_conn_group_leave(x->conn, x->topic, g);
}

/* A resumed run: the task of the interrupted attempt (stored in the step row) is over. */
static void close_superseded(wf__sx_t *s, const char *task_id) {
  wf__run_t *r = s->n.run;
  const json_t *row = r->stored ? json_object_get(r->stored, s->key) : NULL;
  const char *old = json_string_value(json_object_get(row, "task_id"));
  const char *reply = json_string_value(json_object_get(row, "reply_to"));
  if (!old || !reply || !strcmp(old, task_id)) return;
  size_t tl = 0;
  if (stream_topic_validate(reply, &tl, NULL) < 0 || tl != strlen(r->tenant) ||
      strncmp(reply, r->tenant, tl))
    return;
  publish_closed(r->e, reply, old, "superseded");
}

void wf__ext_start(wf__sx_t *s) {
  wf__run_t *r = s->n.run;
  wf_engine_t *e = r->e;
  char *topic = render_topic(s);
  if (!topic) return;
  json_t *input = NULL;
  char *err = NULL;
  if (s->step->u.agent.input &&
      wf__vtmpl_render(s->step->u.agent.input, s->ctx, &input, &err) < 0) {
    free(topic);
    wf__sx_fail(s, "template", err ? err : xstrdup("input: render failed"), -1, false);
    return;
  }
  wf__ext_t *x = xcalloc(1, sizeof *x);
  x->s = s;
  x->topic = topic;
  x->reason = "stopped";
  snprintf(x->task_id, sizeof x->task_id, "%s.%016llx.%d", r->id, (unsigned long long)fnv64(s->key),
           s->attempt);
  x->reply = xasprintf("%s/runs/%s/tasks/%s", r->tenant, r->id, x->task_id);
  wf__task_init(&x->pull, pull_cb);
  wf__tmr_init(&x->hb, hb_cb);
  wf__tmr_init(&x->retry, retry_cb);
  s->ext = x;
  base_map_insert(&r->ext_tasks, &x->node, x->task_id, strlen(x->task_id));
  x->task_text = task_json(x, input ? input : json_null());

  if (s->tries == 1) close_superseded(s, x->task_id);
  /* The row names the task from the start, so that a restart can close it. */
  json_t *extra = wf__ext_extra(s);
  wf__sx_save(s, "running", wf__now_ms(e), NULL, NULL, NULL, extra, NULL);
  json_decref(extra);

  stream_principal_t who = {.tenant = r->tenant, .scopes = STREAM_SCOPE_SUBSCRIBE};
  stream_err_t serr = {0};
  int rc = stream_conn_new(e->hub, &observer_ops, x, &who, &x->conn);
  if (rc == 0) {
    stream_position_t from = {.live = false, .seq = 0};
    rc = stream_conn_subscribe(x->conn, x->reply, &from, &serr);
  }
  if (rc == 0) rc = ensure_group(x, &serr);
  if (rc < 0) {
    ext_fail(x, rc == -EINVAL ? "invalid_input" : "server_error",
             xasprintf("task not offered: %s", serr.message[0] ? serr.message : strerror(-rc)));
    return;
  }
  ext_publish(x);
}

void wf__ext_reason(wf__sx_t *s, const char *reason) {
  if (s->ext) s->ext->reason = reason;
}

void wf__ext_stop(wf__sx_t *s) {
  wf__ext_t *x = s->ext;
  if (!x) return;
  wf__run_t *r = s->n.run;
  wf_engine_t *e = r->e;
  s->ext = NULL;
  base_map_remove(&r->ext_tasks, &x->node);
  wf__task_cancel(&x->pull);
  wf__tmr_stop(e, &x->hb);
  wf__tmr_stop(e, &x->retry);
  if (x->pub) stream_publish_cancel(x->pub);
  stream_conn_free(x->conn);
  if (x->handed && !r->quiet) publish_closed(e, x->reply, x->task_id, x->reason);
  free(x->topic);
  free(x->reply);
  free(x->task_text);
  free(x->text);
  free(x);
}

const char *wf__ext_text(const wf__sx_t *s) {
  const wf__ext_t *x = s->ext;
  if (!x) return NULL;
  return x->text ? x->text : "";
}

bool wf__ext_partial(const wf__sx_t *s) {
  return s->ext && s->ext->partial;
}

json_t *wf__ext_extra(const wf__sx_t *s) {
  const wf__ext_t *x = s->ext;
  if (!x) return NULL;
  return json_pack("{s:s,s:s,s:s}", "task_id", x->task_id, "topic", x->topic, "reply_to", x->reply);
}

/* ---- results over HTTP ---- */

typedef struct run_brief {
  char *tenant; /* owned */
  char *status; /* owned */
} run_brief_t;

static int grab_brief(void *ud, const store_run_t *r) {
  run_brief_t *b = ud;
  free(b->tenant);
  free(b->status);
  b->tenant = xstrdup(r->tenant);
  b->status = xstrdup(r->status);
  return 0;
}

static void set_why(char **why, char *msg) {
  if (why)
    *why = msg;
  else
    free(msg);
}

/* Splits "<run_id>.<16 hex>.<attempt>"; false when task_id is not of that shape. */
static bool task_id_parse(const char *task_id, char run_id[WF_RUN_ID_MAX + 1]) {
  size_t n = strnlen(task_id, WF_TASK_ID_MAX + 1);
  if (n > WF_TASK_ID_MAX) return false;
  const char *dot = memchr(task_id, '.', n);
  if (!dot || dot == task_id || (size_t)(dot - task_id) > WF_RUN_ID_MAX) return false;
  const char *h = dot + 1;
  for (int i = 0; i < 16; i++)
    if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) return false;
  if (h[16] != '.' || !h[17]) return false;
  for (const char *a = h + 17; *a; a++)
    if (*a < '0' || *a > '9') return false;
  memcpy(run_id, task_id, (size_t)(dot - task_id));
  run_id[dot - task_id] = '\0';
  return true;
}

int wf_task_result(wf_engine_t *e, const char *tenant, const char *task_id, const json_t *body,
                   char **why) {
  if (why) *why = NULL;
  if (!e || !task_id) return -EINVAL;
  tenant = tenant && tenant[0] ? tenant : e->default_tenant;
  const json_t *output = json_object_get(body, "output");
  const json_t *error = json_object_get(body, "error");
  if (!json_is_object(body) || !output == !error) {
    set_why(why, xstrdup("body: expected an object with \"output\" or with \"error\""));
    return -EINVAL;
  }
  char run_id[WF_RUN_ID_MAX + 1];
  if (!task_id_parse(task_id, run_id)) {
    e->stats.task_rejected++;
    set_why(why, xstrdup("task_id: not a task id"));
    return -ENOENT;
  }
  wf__run_t *r = wf__run_find(e, run_id);
  if (r && !strcmp(r->tenant, tenant)) {
    base_map_node_t *n = base_map_get(&r->ext_tasks, task_id, strlen(task_id));
    if (n) {
      wf__ext_t *x = container_of(n, wf__ext_t, node);
      if (output)
        ext_succeed(x, output, json_object_get(body, "usage"));
      else
        ext_error(x, error);
      return 0;
    }
    e->stats.task_rejected++;
    set_why(why, r->finished ? xasprintf("task %s: run %s has finished", task_id, run_id)
                             : xasprintf("task %s is not waiting for a result: its attempt "
                                         "ended (answered, timed out or cancelled)",
                                         task_id));
    return -EALREADY;
  }
  run_brief_t b = {0};
  int rc = -ENOENT;
  if (!r && store_run_get(e->store, run_id, grab_brief, &b) == 0 && b.tenant &&
      !strcmp(b.tenant, tenant)) {
    rc = -EALREADY;
    set_why(why, xasprintf("task %s is not waiting for a result: run %s is %s", task_id, run_id,
                           b.status));
  } else {
    set_why(why, xasprintf("task %s: unknown task", task_id));
  }
  free(b.tenant);
  free(b.status);
  e->stats.task_rejected++;
  return rc;
}
