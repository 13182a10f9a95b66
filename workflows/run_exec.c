/* Runs, step lists and the life of one step instance.
 *
 * Owns a run's lifetime (creation, the root list, finishing with run.completed / failed /
 * cancelled, release once its events are acknowledged), list nodes (steps in order, the
 * outputs they add to the template context, catch gotos) and the common part of every
 * step: resume memoisation from stored rows, attempts with step.started, the timeout,
 * retries with backoff, jitter and Retry-After, the catch route, cancellation, and the
 * step row written at each transition. What a kind does inside an attempt is in
 * run_kinds.c and run_llm.c.
 *
 * Ordering: a transition is stored first and published second, so the store is never
 * behind the topic; a resumed run republishes the terminal events of finished steps with
 * their original ids, which the hub dedupes when they had made it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "engine_internal.h"

static void done_task_cb(wf__task_t *t);

static bool is_container(wf_step_kind_t k) {
  return k == WF_STEP_PARALLEL || k == WF_STEP_MAP || k == WF_STEP_SWITCH || k == WF_STEP_LOOP ||
         k == WF_STEP_WORKFLOW;
}

json_t *wf__ctx_child(const json_t *ctx) {
  json_t *c = json_copy((json_t *)ctx);
  json_object_set_new(c, "steps", json_copy(json_object_get(ctx, "steps")));
  return c;
}

/* ---- runs ---- */

static void run_start_task(wf__task_t *t);
static void run_release_task(wf__task_t *t);

wf__run_t *wf__run_new(wf_engine_t *e, const char *id, const char *tenant, wf_workflow_t *wf,
                       json_t *input_take, int64_t created_ms) {
  wf__run_t *r = xcalloc(1, sizeof *r);
  r->e = e;
  snprintf(r->id, sizeof r->id, "%s", id);
  r->tenant = xstrdup(tenant);
  r->topic = xasprintf("%s/runs/%s", tenant, id);
  r->wf = wf_workflow_ref(wf);
  r->input = input_take ? input_take : json_object();
  r->created_ms = created_ms;
  const char *name = wf_workflow_name(wf);
  r->ctx = json_pack("{s:O,s:{},s:{s:s,s:s}}", "input", r->input, "steps", "run", "id", r->id,
                     "workflow", name);
  r->view = json_pack("{s:s,s:s,s:s,s:s,s:s,s:O,s:n,s:n,s:I,s:I,s:i,s:{}}", "run_id", r->id,
                      "workflow", name, "tenant", tenant, "topic", r->topic, "status", "running",
                      "input", r->input, "output", "error", "created_ms", (json_int_t)created_ms,
                      "updated_ms", (json_int_t)created_ms, "resumes", 0, "steps");
  base_queue_init(&r->outq);
  base_queue_init(&r->inflight);
  base_map_init(&r->tbufs);
  base_queue_init(&r->approvals);
  base_queue_init(&r->waiters);
  wf__task_init(&r->start_task, run_start_task);
  wf__task_init(&r->release_task, run_release_task);
  wf__tmr_init(&r->pub_retry, wf__outbox_retry_cb);
  base_map_insert(&e->runs, &r->node, r->id, strlen(r->id));
  base_queue_insert_tail(&e->run_list, &r->link);
  e->running++;
  return r;
}

void wf__run_start(wf__run_t *r) {
  wf__task_post(r->e, &r->start_task);
}

static void run_start_task(wf__task_t *t) {
  wf__run_t *r = container_of(t, wf__run_t, start_task);
  r->root = wf__list_new(r, NULL, &r->wf->steps, json_incref(r->ctx), "");
  wf__node_start(&r->root->n);
}

void wf__run_free(wf__run_t *r) {
  wf_engine_t *e = r->e;
  int settled = r->finished && wf__outbox_empty(r) ? 0 : -ECANCELED;
  while (!base_queue_empty(&r->waiters)) {
    wf_run_waiter_t *w = base_queue_data(base_queue_head(&r->waiters), wf_run_waiter_t, link);
    base_queue_remove(&w->link);
    w->cb(w->ud, settled);
    free(w);
  }
  if (r->root) {
    wf__node_cancel(&r->root->n);
    wf__node_free(&r->root->n);
    r->root = NULL;
  }
  wf__outbox_abandon(r);
  wf__task_cancel(&r->start_task);
  wf__task_cancel(&r->release_task);
  base_map_remove(&e->runs, &r->node);
  base_queue_remove(&r->link);
  if (!r->finished) e->running--;
  wf_workflow_unref(&r->wf);
  json_decref(r->input);
  json_decref(r->ctx);
  json_decref(r->stored);
  base_map_close(&r->ext_tasks); /* empty: the root's agent steps stopped above */
  wf__view_drop(r);
  json_decref(r->view);
  free(r->tenant);
  free(r->topic);
  free(r);
}

static void run_release_task(wf__task_t *t) {
  wf__run_t *r = container_of(t, wf__run_t, release_task);
  if (r->finished && wf__outbox_empty(r)) wf__run_free(r);
}

void wf__run_abandon(wf__run_t *r) {
  r->quiet = true;
  wf__run_free(r);
}

static char *dumps_or_null(const json_t *j) {
  return j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/* Stores the final status and publishes the terminal event (output and error taken). */
static void run_finish(wf__run_t *r, const char *status, json_t *output, json_t *error) {
  wf_engine_t *e = r->e;
  int64_t ts = wf__now_ms(e);
  char *out_s = dumps_or_null(output), *err_s = dumps_or_null(error);
  char *state = xasprintf("{\"resumes\":%d}", r->resumes);
  store_run_t row = {.run_id = r->id,
                     .status = status,
                     .output = out_s,
                     .error = err_s,
                     .state = state,
                     .updated_ms = ts};
  int rc = store_run_save(e->store, &row, NULL, 0);
  if (rc < 0)
    log_error("workflows", "run state not stored", "{s:s,s:s,s:i}", "run", r->id, "status", status,
              "rc", rc);
  free(out_s);
  free(err_s);
  free(state);
  char *type = xasprintf("run.%s", status);
  char *id = xasprintf("%s:%s", r->id, type);
  json_t *d = json_pack("{s:I}", "ts", (json_int_t)ts);
  if (output) json_object_set_new(d, "output", output);
  if (error) json_object_set_new(d, "error", error);
  r->finished = true;
  e->running--;
  if (!strcmp(status, "completed"))
    e->stats.runs_completed++;
  else if (!strcmp(status, "failed"))
    e->stats.runs_failed++;
  else
    e->stats.runs_cancelled++;
  wf__emit(r, type, id, STREAM_LANE_CONTROL, d);
  free(type);
  free(id);
  if (wf__outbox_empty(r)) wf__task_post(e, &r->release_task);
}

static void run_root_done(wf__run_t *r, wf__node_t *n) {
  json_t *output = NULL, *error = NULL;
  if (n->res == WF__RES_FAIL) {
    error = json_incref(n->error);
  } else if (r->wf->output) {
    char *err = NULL;
    if (wf__vtmpl_render(r->wf->output, r->ctx, &output, &err) < 0) {
      error = wf__error("template", "output: %s", err ? err : "render failed");
      free(err);
    }
  } else {
    output = json_incref(n->output ? n->output : json_null());
  }
  wf__node_free(&r->root->n);
  r->root = NULL;
  if (error)
    run_finish(r, "failed", NULL, error);
  else
    run_finish(r, "completed", output, NULL);
}

void wf__run_cancel(wf__run_t *r) {
  if (r->finished) return;
  wf__task_cancel(&r->start_task);
  if (r->root) {
    wf__node_cancel(&r->root->n);
    wf__node_free(&r->root->n);
    r->root = NULL;
  }
  run_finish(r, "cancelled", NULL, NULL);
}

/* ---- nodes ---- */

static void node_init(wf__node_t *n, wf__node_type_t type, wf__run_t *r, wf__node_t *parent) {
  n->type = type;
  n->run = r;
  n->parent = parent;
  wf__task_init(&n->done_task, done_task_cb);
}

void wf__node_finish(wf__node_t *n, wf__res_t res, json_t *output, json_t *error) {
  n->res = res;
  json_decref(n->output);
  json_decref(n->error);
  n->output = output;
  n->error = error;
  wf__task_post(n->run->e, &n->done_task);
}

static void list_child_done(wf__list_t *l, wf__node_t *child);

static void done_task_cb(wf__task_t *t) {
  wf__node_t *n = container_of(t, wf__node_t, done_task);
  if (!n->parent)
    run_root_done(n->run, n);
  else if (n->parent->type == WF__NODE_LIST)
    list_child_done(container_of(n->parent, wf__list_t, n), n);
  else
    wf__kind_child_done(container_of(n->parent, wf__sx_t, n), n);
}

/* ---- lists ---- */

static wf__sx_t *sx_new(wf__list_t *l, const wf__step_t *step);
static void sx_begin(wf__sx_t *s);

wf__list_t *wf__list_new(wf__run_t *r, wf__node_t *parent, const wf__steps_t *steps,
                         json_t *ctx_take, const char *prefix) {
  wf__list_t *l = xcalloc(1, sizeof *l);
  node_init(&l->n, WF__NODE_LIST, r, parent);
  l->steps = steps;
  l->ctx = ctx_take;
  l->prefix = xstrdup(prefix);
  l->last = json_null();
  return l;
}

static void list_next(wf__list_t *l) {
  if (l->idx >= l->steps->n) {
    wf__node_finish(&l->n, WF__RES_OK, json_incref(l->last), NULL);
    return;
  }
  wf__sx_t *s = sx_new(l, &l->steps->v[l->idx]);
  l->cur = &s->n;
  sx_begin(s);
}

static void list_child_done(wf__list_t *l, wf__node_t *child) {
  wf__sx_t *s = container_of(child, wf__sx_t, n);
  l->cur = NULL;
  if (child->res == WF__RES_FAIL) {
    json_t *err = json_incref(child->error);
    wf__node_free(child);
    wf__node_finish(&l->n, WF__RES_FAIL, NULL, err);
    return;
  }
  if (child->res == WF__RES_GOTO) {
    size_t j = l->idx + 1;
    while (j < l->steps->n && strcmp(l->steps->v[j].id, child->goto_id)) j++;
    l->idx = j; /* the validator made it a later sibling; past the end means done */
  } else {
    json_t *out = child->output ? child->output : json_null();
    json_object_set_new(json_object_get(l->ctx, "steps"), s->step->id,
                        json_pack("{s:O}", "output", out));
    json_decref(l->last);
    l->last = json_incref(out);
    l->idx++;
  }
  wf__node_free(child);
  list_next(l);
}

void wf__node_start(wf__node_t *n) {
  if (n->type == WF__NODE_LIST) list_next(container_of(n, wf__list_t, n));
}

static void sx_cancel(wf__sx_t *s);

void wf__node_cancel(wf__node_t *n) {
  wf__task_cancel(&n->done_task);
  if (n->type == WF__NODE_LIST) {
    wf__list_t *l = container_of(n, wf__list_t, n);
    if (l->cur) {
      wf__node_cancel(l->cur);
      wf__node_free(l->cur);
      l->cur = NULL;
    }
  } else {
    sx_cancel(container_of(n, wf__sx_t, n));
  }
}

void wf__node_free(wf__node_t *n) {
  wf__task_cancel(&n->done_task);
  json_decref(n->output);
  json_decref(n->error);
  if (n->type == WF__NODE_LIST) {
    wf__list_t *l = container_of(n, wf__list_t, n);
    if (l->cur) {
      wf__node_cancel(l->cur);
      wf__node_free(l->cur);
    }
    json_decref(l->ctx);
    json_decref(l->last);
    free(l->prefix);
    free(l);
    return;
  }
  wf__sx_t *s = container_of(n, wf__sx_t, n);
  wf__kind_stop(s);
  wf__tmr_stop(n->run->e, &s->timeout);
  wf__tmr_stop(n->run->e, &s->backoff);
  base_queue_remove(&s->wait_link);
  free(s->kids);
  json_decref(s->results);
  json_decref(s->items);
  json_decref(s->error);
  json_decref(s->prompt);
  wf_workflow_unref(&s->sub);
  json_decref(s->ctx);
  free(s->key);
  free(s);
}

/* ---- step instances ---- */

static void timeout_cb(wf__tmr_t *t);
static void backoff_cb(wf__tmr_t *t);
static void sx_attempt(wf__sx_t *s);

/* The workflow a list's steps belong to: the run's, or a sub-workflow's. */
static const wf_workflow_t *list_workflow(const wf__list_t *l) {
  for (const wf__node_t *p = l->n.parent; p; p = p->parent) {
    if (p->type != WF__NODE_STEP) continue;
    const wf__sx_t *s = container_of(p, wf__sx_t, n);
    if (s->step->kind == WF_STEP_WORKFLOW && s->sub) return s->sub;
    return s->wf;
  }
  return l->n.run->wf;
}

static wf__sx_t *sx_new(wf__list_t *l, const wf__step_t *step) {
  wf__sx_t *s = xcalloc(1, sizeof *s);
  node_init(&s->n, WF__NODE_STEP, l->n.run, &l->n);
  s->step = step;
  s->wf = list_workflow(l);
  s->key = xasprintf("%s%s", l->prefix, step->id);
  s->ctx = json_incref(l->ctx);
  s->attempt = 1;
  wf__tmr_init(&s->timeout, timeout_cb);
  wf__tmr_init(&s->backoff, backoff_cb);
  base_queue_init(&s->wait_link);
  return s;
}

char *wf__sx_event_id(const wf__sx_t *s, const char *what) {
  return xasprintf("%s:%s:%d:%s", s->n.run->id, s->key, s->attempt, what);
}

static void sx_emit(wf__sx_t *s, const char *type, const char *what, json_t *d) {
  char *id = wf__sx_event_id(s, what);
  json_object_set_new(d, "step", json_string(s->key));
  if (!json_object_get(d, "attempt")) json_object_set_new(d, "attempt", json_integer(s->attempt));
  wf__emit(s->n.run, type, id, STREAM_LANE_CONTROL, d);
  free(id);
}

void wf__sx_save(wf__sx_t *s, const char *status, int64_t ts, const json_t *output,
                 const json_t *usage, const char *text, const json_t *extra, const json_t *error) {
  wf__run_t *r = s->n.run;
  if (r->quiet) return;
  char *out_s = dumps_or_null(output), *use_s = dumps_or_null(usage);
  char *ext_s = extra && json_object_size(extra) ? dumps_or_null(extra) : NULL;
  char *err_s = dumps_or_null(error);
  store_step_t row = {.run_id = r->id,
                      .key = s->key,
                      .step_id = s->step->id,
                      .kind = wf__step_kind_names[s->step->kind],
                      .attempt = s->attempt,
                      .status = status,
                      .output = out_s,
                      .usage = use_s,
                      .text = text,
                      .extra = ext_s,
                      .error = err_s,
                      .started_ms = s->started_ms,
                      .updated_ms = ts};
  int rc = store_run_save(r->e->store, NULL, &row, 1);
  if (rc < 0)
    log_error("workflows", "step state not stored", "{s:s,s:s,s:s,s:i}", "run", r->id, "step",
              s->key, "status", status, "rc", rc);
  free(out_s);
  free(use_s);
  free(ext_s);
  free(err_s);
}

/* A finished step of a resumed run: republish its terminal event (the hub dedupes it by
 * id when it made it before the crash) and report its stored result. */
static void sx_replay(wf__sx_t *s, const json_t *row, const char *status) {
  s->attempt = (int)json_integer_value(json_object_get(row, "attempt"));
  s->phase = WF__SX_DONE;
  json_t *output = json_object_get(row, "output");
  json_t *d = json_pack("{s:O}", "ts", json_object_get(row, "updated_ms"));
  if (output) json_object_set(d, "output", output);
  if (!strcmp(status, "completed")) {
    if (json_object_get(row, "usage")) json_object_set(d, "usage", json_object_get(row, "usage"));
    sx_emit(s, "step.completed", "completed", d);
    wf__node_finish(&s->n, WF__RES_OK, json_incref(output ? output : json_null()), NULL);
    return;
  }
  const char *caught = json_string_value(json_object_get(row, "caught"));
  json_t *err = json_object_get(row, "error");
  json_object_set(d, "error", err ? err : json_null());
  if (caught) json_object_set_new(d, "caught", json_string(caught));
  if (caught && !strcmp(caught, "goto") && s->step->catch_goto)
    json_object_set_new(d, "goto", json_string(s->step->catch_goto));
  sx_emit(s, "step.failed", "failed", d);
  if (caught && !strcmp(caught, "continue")) {
    s->n.caught = true;
    wf__node_finish(&s->n, WF__RES_OK, json_incref(output ? output : json_null()), NULL);
  } else if (caught && !strcmp(caught, "goto") && s->step->catch_goto) {
    s->n.goto_id = s->step->catch_goto;
    wf__node_finish(&s->n, WF__RES_GOTO, NULL, NULL);
  } else {
    json_t *e = json_deep_copy(err ? err : json_null());
    if (json_is_object(e)) json_object_set_new(e, "step", json_string(s->key));
    wf__node_finish(&s->n, WF__RES_FAIL, NULL, e);
  }
}

static void sx_begin(wf__sx_t *s) {
  wf__run_t *r = s->n.run;
  const json_t *row = r->stored ? json_object_get(r->stored, s->key) : NULL;
  s->started_ms = wf__now_ms(r->e);
  if (row) {
    const char *status = json_string_value(json_object_get(row, "status"));
    if (!strcmp(status, "completed") || !strcmp(status, "failed")) {
      sx_replay(s, row, status);
      return;
    }
    /* Interrupted: a container carries on in the same attempt (its children's keys stay
     * the same); any other step runs again as a new attempt. */
    int attempt = (int)json_integer_value(json_object_get(row, "attempt"));
    s->attempt = is_container(s->step->kind) ? attempt : attempt + 1;
    s->started_ms = json_integer_value(json_object_get(row, "started_ms"));
    s->deadline_ms = json_integer_value(json_object_get(row, "deadline_ms"));
  }
  sx_attempt(s);
}

static void sx_attempt(wf__sx_t *s) {
  wf__run_t *r = s->n.run;
  wf_engine_t *e = r->e;
  s->tries++;
  s->phase = WF__SX_RUN;
  int64_t ts = wf__now_ms(e);
  sx_emit(s, "step.started", "started",
          json_pack("{s:s,s:s,s:I,s:I}", "step_id", s->step->id, "kind",
                    wf__step_kind_names[s->step->kind], "started_ms", (json_int_t)s->started_ms,
                    "ts", (json_int_t)ts));
  wf__sx_save(s, "running", ts, NULL, NULL, NULL, NULL, NULL);
  e->stats.steps_started++;
  if (s->step->timeout_ms > 0 && s->step->kind != WF_STEP_APPROVAL)
    wf__tmr_start(e, &s->timeout, s->step->timeout_ms);
  wf__kind_start(s);
}

static void backoff_cb(wf__tmr_t *t) {
  wf__sx_t *s = container_of(t, wf__sx_t, backoff);
  s->attempt++;
  sx_attempt(s);
}

static void timeout_cb(wf__tmr_t *t) {
  wf__sx_t *s = container_of(t, wf__sx_t, timeout);
  wf__ext_reason(s, "timeout");
  wf__sx_fail(s, "timeout",
              xasprintf("no result within timeout_ms %lld", (long long)s->step->timeout_ms), -1,
              wf__kind_partial(s));
}

void wf__sx_ok(wf__sx_t *s, json_t *output, json_t *usage) {
  if (s->phase != WF__SX_RUN && s->phase != WF__SX_WAIT) {
    json_decref(output);
    json_decref(usage);
    return;
  }
  wf_engine_t *e = s->n.run->e;
  wf__tmr_stop(e, &s->timeout);
  int64_t ts = wf__now_ms(e);
  const char *text = wf__kind_text(s);
  json_t *extra = wf__sx_extra(s);
  wf__sx_save(s, "completed", ts, output, usage, text, extra, NULL);
  json_decref(extra);
  json_t *d = json_pack("{s:O,s:I}", "output", output, "ts", (json_int_t)ts);
  if (usage) json_object_set(d, "usage", usage);
  wf__kind_stop(s);
  s->phase = WF__SX_DONE;
  sx_emit(s, "step.completed", "completed", d);
  json_decref(usage);
  wf__node_finish(&s->n, WF__RES_OK, output, NULL);
}

/* Error classes the retry policy names (docs/workflows.md), as WF_RETRY_* bits. */
static unsigned class_bit(const char *cls) {
  static const char *const names[] = {"rate_limited",   "timeout",      "server_error", "network",
                                      "invalid_output", "stream_error", "agent_error"};
  for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(cls, names[i])) return 1u << i;
  return 0;
}

static bool retryable(const wf__retry_t *p, const char *cls) {
  static const char *const never[] = {"template", "not_implemented",  "cancelled",
                                      "internal", "workflow_missing", "invalid_input"};
  for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
    if (!strcmp(cls, never[i])) return false;
  unsigned bit = class_bit(cls);
  return bit ? (p->on & bit) != 0 : p->on == WF_RETRY_ANY;
}

/* backoff_ms doubled per retry made so far, capped, with the jitter fraction drawn at
 * random below the computed value. */
static int64_t backoff_delay(wf__sx_t *s) {
  const wf__retry_t *p = &s->step->retry;
  double d = (double)p->backoff_ms;
  for (int i = 1; i < s->tries && d < (double)p->max_backoff_ms; i++) d *= 2;
  if (d > (double)p->max_backoff_ms) d = (double)p->max_backoff_ms;
  if (p->jitter > 0) {
    double u = (double)(wf__random(s->n.run->e) >> 11) / 9007199254740992.0; /* [0,1) */
    d = d * (1 - p->jitter) + d * p->jitter * u;
  }
  return (int64_t)(d + 0.5);
}

void wf__sx_fail(wf__sx_t *s, const char *cls, char *msg, int64_t retry_after_ms, bool partial) {
  if (s->phase != WF__SX_RUN && s->phase != WF__SX_WAIT) {
    free(msg);
    return;
  }
  wf__run_t *r = s->n.run;
  wf_engine_t *e = r->e;
  wf__tmr_stop(e, &s->timeout);
  json_t *err = wf__error(cls, "%s", msg ? msg : cls);
  free(msg);
  int64_t ts = wf__now_ms(e);
  const wf__retry_t *p = &s->step->retry;
  if (retryable(p, cls) && s->tries < p->max_attempts && (!partial || p->after_partial_output)) {
    int64_t delay = retry_after_ms >= 0 ? retry_after_ms : backoff_delay(s);
    bool discarded = partial || wf__kind_partial(s);
    wf__kind_stop(s);
    wf__sx_save(s, "retrying", ts, NULL, NULL, NULL, NULL, err);
    sx_emit(
        s, "step.retrying", "retrying",
        json_pack("{s:i,s:I,s:O,s:b,s:I}", "next_attempt", s->attempt + 1, "delay_ms",
                  (json_int_t)delay, "error", err, "discarded", discarded, "ts", (json_int_t)ts));
    json_decref(err);
    e->stats.step_retries++;
    s->phase = WF__SX_BACKOFF;
    wf__tmr_start(e, &s->backoff, delay);
    return;
  }
  const char *text = wf__kind_text(s);
  json_t *extra = wf__sx_extra(s);
  if (!extra) extra = json_object();
  json_t *d = json_pack("{s:O,s:I}", "error", err, "ts", (json_int_t)ts);
  json_t *output = NULL;
  wf__res_t res = WF__RES_FAIL;
  if (s->step->catch_kind == WF_CATCH_CONTINUE) {
    char *terr = NULL;
    if (s->step->catch_output &&
        wf__vtmpl_render(s->step->catch_output, s->ctx, &output, &terr) < 0) {
      json_decref(err);
      err = wf__error("template", "catch.output: %s", terr ? terr : "render failed");
      json_object_set(d, "error", err);
      free(terr);
      output = NULL;
    } else {
      if (!output) output = json_null();
      res = WF__RES_OK;
      json_object_set_new(extra, "caught", json_string("continue"));
      json_object_set_new(d, "caught", json_string("continue"));
      json_object_set(d, "output", output);
    }
  } else if (s->step->catch_kind == WF_CATCH_GOTO) {
    res = WF__RES_GOTO;
    s->n.goto_id = s->step->catch_goto;
    json_object_set_new(extra, "caught", json_string("goto"));
    json_object_set_new(extra, "goto", json_string(s->step->catch_goto));
    json_object_set_new(d, "caught", json_string("goto"));
    json_object_set_new(d, "goto", json_string(s->step->catch_goto));
  }
  wf__sx_save(s, "failed", ts, output, NULL, text, extra, err);
  json_decref(extra);
  wf__kind_stop(s);
  s->phase = WF__SX_DONE;
  sx_emit(s, "step.failed", "failed", d);
  if (res == WF__RES_OK) s->n.caught = true;
  if (res == WF__RES_FAIL) {
    json_object_set_new(err, "step", json_string(s->key));
    wf__node_finish(&s->n, res, NULL, err);
  } else {
    json_decref(err);
    wf__node_finish(&s->n, res, output, NULL);
  }
}

/* Cancelled from above (run cancel, a sibling won or failed, the container timed out).
 * An active step says so on the topic and in its row, after its own children did. */
static void sx_cancel(wf__sx_t *s) {
  wf__run_t *r = s->n.run;
  wf_engine_t *e = r->e;
  bool active = s->phase == WF__SX_RUN || s->phase == WF__SX_WAIT || s->phase == WF__SX_BACKOFF;
  const char *text = NULL;
  json_t *extra = NULL;
  if (active && !r->quiet) {
    extra = wf__sx_extra(s);
    if (s->phase != WF__SX_BACKOFF) {
      text = wf__kind_text(s);
      text = text ? xstrdup(text) : NULL;
    }
  }
  wf__ext_reason(s, "cancelled");
  wf__kind_stop(s);
  wf__tmr_stop(e, &s->timeout);
  wf__tmr_stop(e, &s->backoff);
  if (active && !r->quiet) {
    int64_t ts = wf__now_ms(e);
    json_t *err = wf__error("cancelled", "cancelled");
    wf__sx_save(s, "cancelled", ts, NULL, NULL, text, extra, err);
    sx_emit(s, "step.failed", "failed", json_pack("{s:o,s:I}", "error", err, "ts", (json_int_t)ts));
  }
  free((char *)text);
  json_decref(extra);
  s->phase = WF__SX_DONE;
}
