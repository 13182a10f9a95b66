/* The public run functions of workflows.h: start (with idempotency keys), get, list,
 * cancel, approve and resume after a restart.
 *
 * Owns the checks and the translation between the store's rows and the engine's live
 * runs: a run live in this engine answers from its document (as of acknowledged
 * events), any other from its stored rows. Does not run steps (run_exec.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/log.h"
#include "base/mem.h"
#include "engine_internal.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000

static const char *tenant_or_default(const wf_engine_t *e, const char *tenant) {
  return tenant && tenant[0] ? tenant : e->default_tenant;
}

static int new_run_id(char out[WF_RUN_ID_MAX + 1]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char raw[10];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -EIO;
    got += (size_t)n;
  }
  out[0] = 'r';
  out[1] = '_';
  for (size_t i = 0; i < sizeof raw; i++) {
    out[2 + 2 * i] = hex[raw[i] >> 4];
    out[3 + 2 * i] = hex[raw[i] & 15];
  }
  out[2 + 2 * sizeof raw] = '\0';
  return 0;
}

/* The tenant must make "<tenant>/runs/<id>" a valid topic whose tenant part it is. */
static bool tenant_ok(const char *tenant) {
  char *topic = xasprintf("%s/runs/r_0", tenant);
  size_t tl = 0;
  bool ok = stream_topic_validate(topic, &tl, NULL) == 0 && tl == strlen(tenant);
  free(topic);
  return ok;
}

static bool key_ok(const char *key) {
  if (!key) return true;
  size_t n = strnlen(key, WF__IDEM_KEY_MAX + 1);
  if (n == 0 || n > WF__IDEM_KEY_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f) return false;
  return true;
}

int wf_run_start(wf_engine_t *e, const char *tenant, const char *name, const json_t *input,
                 const char *idempotency_key, char run_id[WF_RUN_ID_MAX + 1], bool *existing,
                 wf_errors_t **errs) {
  if (errs) *errs = NULL;
  if (existing) *existing = false;
  if (!e || !name || !run_id || !key_ok(idempotency_key)) return -EINVAL;
  if (input && !json_is_object(input)) return -EINVAL;
  tenant = tenant_or_default(e, tenant);
  if (!tenant_ok(tenant)) return -EINVAL;
  wf_workflow_t *wf = e->registry ? wf_registry_find(e->registry, name) : NULL;
  if (!wf) return -ENOENT;
  if (e->running >= e->cfg.max_runs) return -EBUSY;
  json_t *resolved = NULL;
  int rc = wf_inputs_resolve(wf, input, &resolved, errs);
  if (rc < 0) return rc;
  char id[WF_RUN_ID_MAX + 1];
  rc = new_run_id(id);
  if (rc < 0) {
    json_decref(resolved);
    return rc;
  }
  int64_t now = wf__now_ms(e);
  char *input_s = json_dumps(resolved, JSON_COMPACT);
  store_run_t row = {.run_id = id,
                     .tenant = tenant,
                     .workflow = wf_workflow_name(wf),
                     .status = "running",
                     .input = input_s,
                     .idem_key = idempotency_key,
                     .state = "{\"resumes\":0}",
                     .created_ms = now,
                     .updated_ms = now};
  char holder[STORE_RUN_ID_MAX + 1] = "";
  rc = store_run_create(e->store, &row, holder);
  free(input_s);
  if (rc == -EEXIST && idempotency_key) {
    json_decref(resolved);
    snprintf(run_id, WF_RUN_ID_MAX + 1, "%s", holder);
    if (existing) *existing = true;
    return 0;
  }
  if (rc < 0) {
    json_decref(resolved);
    return rc == -EEXIST ? -EIO : rc;
  }
  wf__run_t *r = wf__run_new(e, id, tenant, wf, resolved, now);
  e->stats.runs_started++;
  char *eid = xasprintf("%s:run.started", id);
  wf__emit(r, "run.started", eid, STREAM_LANE_CONTROL,
           json_pack("{s:s,s:s,s:O,s:I,s:i}", "run_id", id, "workflow", wf_workflow_name(wf),
                     "input", r->input, "ts", (json_int_t)now, "resumes", 0));
  free(eid);
  wf__run_start(r);
  snprintf(run_id, WF_RUN_ID_MAX + 1, "%s", id);
  return 0;
}

/* ---- reading stored runs ---- */

static int grab_run(void *ud, const store_run_t *r) {
  json_t **out = ud;
  json_decref(*out);
  *out = wf__run_row_json(r);
  return 0;
}

static int grab_step(void *ud, const store_step_t *s) {
  json_object_set_new(ud, s->key, wf__step_row_json(s));
  return 0;
}

/* The stored run row (as JSON) and its steps ({key: row}). */
static int load_rows(wf_engine_t *e, const char *run_id, json_t **run, json_t **steps) {
  *run = NULL;
  *steps = NULL;
  int rc = store_run_get(e->store, run_id, grab_run, run);
  if (rc < 0) return rc;
  *steps = json_object();
  rc = store_step_list(e->store, run_id, grab_step, *steps);
  if (rc < 0) {
    json_decref(*run);
    json_decref(*steps);
    *run = *steps = NULL;
  }
  return rc;
}

/* The state column for a row being updated (store_run_save replaces it). */
static char *state_of(const json_t *row) {
  return xasprintf("{\"resumes\":%lld}",
                   (long long)json_integer_value(json_object_get(row, "resumes")));
}

static bool status_final(const char *status) {
  return status && (!strcmp(status, "completed") || !strcmp(status, "failed") ||
                    !strcmp(status, "cancelled"));
}

static bool tenant_matches(const json_t *row, const char *tenant) {
  return !strcmp(json_string_value(json_object_get(row, "tenant")), tenant);
}

int wf_run_get(wf_engine_t *e, const char *tenant, const char *run_id, json_t **out) {
  if (!e || !run_id || !out) return -EINVAL;
  tenant = tenant_or_default(e, tenant);
  wf__run_t *r = wf__run_find(e, run_id);
  if (r) {
    if (strcmp(r->tenant, tenant)) return -ENOENT;
    wf__view_sync(r);
    json_t *v = wf__view_export(r->view);
    json_object_set_new(v, "seq", json_integer((json_int_t)r->seq));
    json_object_set_new(v, "epoch", json_string(r->epoch));
    *out = v;
    return 0;
  }
  if (strnlen(run_id, STORE_RUN_ID_MAX + 1) > STORE_RUN_ID_MAX || !run_id[0]) return -ENOENT;
  json_t *row, *steps;
  int rc = load_rows(e, run_id, &row, &steps);
  if (rc < 0) return rc;
  if (!tenant_matches(row, tenant)) {
    json_decref(row);
    json_decref(steps);
    return -ENOENT;
  }
  json_t *view = wf__view_from_rows(row, steps);
  json_decref(row);
  json_decref(steps);
  json_t *v = wf__view_export(view);
  json_decref(view);
  store_topic_t t;
  bool known = stream_topic_state(e->hub, json_string_value(json_object_get(v, "topic")), &t) == 0;
  json_object_set_new(v, "seq", json_integer(known ? (json_int_t)t.head_seq : 0));
  json_object_set_new(v, "epoch", json_string(known ? t.epoch : ""));
  *out = v;
  return 0;
}

static int add_summary(void *ud, const store_run_t *r) {
  json_t *row = wf__run_row_json(r);
  json_object_del(row, "input");
  json_object_del(row, "output");
  json_object_del(row, "resumes");
  char *topic = xasprintf("%s/runs/%s", r->tenant, r->run_id);
  json_object_set_new(row, "topic", json_string(topic));
  free(topic);
  json_array_append_new(ud, row);
  return 0;
}

int wf_runs_list(wf_engine_t *e, const char *tenant, const char *workflow, const char *status,
                 size_t limit, json_t **out) {
  if (!e || !out) return -EINVAL;
  if (limit == 0) limit = LIST_DEFAULT;
  if (limit > LIST_MAX) limit = LIST_MAX;
  store_run_filter_t f = {.tenant = tenant_or_default(e, tenant),
                          .workflow = workflow && workflow[0] ? workflow : NULL,
                          .status = status && status[0] ? status : NULL,
                          .limit = limit};
  json_t *arr = json_array();
  int rc = store_run_list(e->store, &f, add_summary, arr);
  if (rc < 0) {
    json_decref(arr);
    return rc;
  }
  *out = json_pack("{s:o}", "runs", arr);
  return 0;
}

int wf_run_cancel_wait(wf_engine_t *e, const char *tenant, const char *run_id,
                       wf_run_settled_fn cb, void *ud, wf_run_waiter_t **waiter) {
  *waiter = NULL;
  wf__run_t *r = e && run_id ? wf__run_find(e, run_id) : NULL;
  int rc = wf_run_cancel(e, tenant, run_id);
  if (rc < 0 || !r || !cb) return rc;
  /* r is still here: wf__run_cancel finishes it, and it is freed only on a later turn
   * (release task), once its outbox is empty. */
  wf_run_waiter_t *w = xcalloc(1, sizeof *w);
  w->cb = cb;
  w->ud = ud;
  base_queue_insert_tail(&r->waiters, &w->link);
  *waiter = w;
  return 0;
}

void wf_run_waiter_drop(wf_run_waiter_t *w) {
  if (!w) return;
  base_queue_remove(&w->link);
  free(w);
}

int wf_run_cancel(wf_engine_t *e, const char *tenant, const char *run_id) {
  if (!e || !run_id) return -EINVAL;
  tenant = tenant_or_default(e, tenant);
  wf__run_t *r = wf__run_find(e, run_id);
  if (r) {
    if (strcmp(r->tenant, tenant)) return -ENOENT;
    if (r->finished) return -EALREADY;
    wf__run_cancel(r);
    return 0;
  }
  /* Stored but not running here (not resumed): mark it so it never resumes. */
  json_t *row, *steps;
  int rc = load_rows(e, run_id, &row, &steps);
  if (rc < 0) return rc;
  json_decref(steps);
  if (!tenant_matches(row, tenant))
    rc = -ENOENT;
  else if (status_final(json_string_value(json_object_get(row, "status"))))
    rc = -EALREADY;
  if (rc == 0) {
    int64_t ts = wf__now_ms(e);
    char *state = state_of(row);
    store_run_t upd = {.run_id = run_id, .status = "cancelled", .state = state, .updated_ms = ts};
    rc = store_run_save(e->store, &upd, NULL, 0);
    free(state);
    if (rc == 0) {
      char *topic = xasprintf("%s/runs/%s", tenant, run_id);
      char *id = xasprintf("%s:run.cancelled", run_id);
      char data[64];
      snprintf(data, sizeof data, "{\"ts\":%lld}", (long long)ts);
      stream_event_t ev = {.id = id,
                           .type = "run.cancelled",
                           .lane = STREAM_LANE_CONTROL,
                           .data = data,
                           .data_len = strlen(data)};
      if (stream_publish(e->hub, topic, &ev, NULL, NULL, NULL, NULL) < 0) e->stats.publish_errors++;
      free(topic);
      free(id);
    }
  }
  json_decref(row);
  return rc;
}

int wf_run_approve(wf_engine_t *e, const char *tenant, const char *run_id, const char *step,
                   bool approve, const char *comment) {
  if (!e || !run_id || !step) return -EINVAL;
  tenant = tenant_or_default(e, tenant);
  wf__run_t *r = wf__run_find(e, run_id);
  if (!r) {
    json_t *row = NULL;
    if (strnlen(run_id, STORE_RUN_ID_MAX + 1) > STORE_RUN_ID_MAX || !run_id[0] ||
        store_run_get(e->store, run_id, grab_run, &row) < 0)
      return -ENOENT;
    int rc = !tenant_matches(row, tenant)                                      ? -ENOENT
             : status_final(json_string_value(json_object_get(row, "status"))) ? -EALREADY
                                                                               : -ESRCH;
    json_decref(row);
    return rc;
  }
  if (strcmp(r->tenant, tenant)) return -ENOENT;
  if (r->finished) return -EALREADY;
  base_queue_t *q;
  wf__sx_t *match = NULL;
  base_queue_foreach(q, &r->approvals) {
    wf__sx_t *s = base_queue_data(q, wf__sx_t, wait_link);
    if (!strcmp(s->key, step)) {
      match = s;
      break;
    }
    if (!match && !strcmp(s->step->id, step)) match = s;
  }
  if (!match) return -ESRCH;
  return wf__approval_decide(match, approve, comment);
}

/* ---- resume ---- */

static int collect_id(void *ud, const store_run_t *r) {
  json_array_append_new(ud, json_string(r->run_id));
  return 0;
}

static bool leaf_kind(const char *kind) {
  return !strcmp(kind, "llm") || !strcmp(kind, "transform") || !strcmp(kind, "approval") ||
         !strcmp(kind, "agent");
}

/* Marks a stored run failed when it cannot resume (its workflow is gone). */
static void resume_fail(wf_engine_t *e, const json_t *row, const char *why) {
  const char *id = json_string_value(json_object_get(row, "run_id"));
  const char *tenant = json_string_value(json_object_get(row, "tenant"));
  int64_t ts = wf__now_ms(e);
  json_t *err = wf__error("workflow_missing", "%s", why);
  char *err_s = json_dumps(err, JSON_COMPACT);
  char *state = state_of(row);
  store_run_t upd = {
      .run_id = id, .status = "failed", .error = err_s, .state = state, .updated_ms = ts};
  int rc = store_run_save(e->store, &upd, NULL, 0);
  free(state);
  if (rc == 0) {
    char *topic = xasprintf("%s/runs/%s", tenant, id);
    char *eid = xasprintf("%s:run.failed", id);
    json_t *d = json_pack("{s:O,s:I}", "error", err, "ts", (json_int_t)ts);
    char *data = json_dumps(d, JSON_COMPACT);
    stream_event_t ev = {.id = eid,
                         .type = "run.failed",
                         .lane = STREAM_LANE_CONTROL,
                         .data = data,
                         .data_len = strlen(data)};
    if (stream_publish(e->hub, topic, &ev, NULL, NULL, NULL, NULL) < 0) e->stats.publish_errors++;
    free(data);
    json_decref(d);
    free(eid);
    free(topic);
  }
  log_warn("workflows", "run cannot resume", "{s:s,s:s}", "run", id, "reason", why);
  free(err_s);
  json_decref(err);
}

static void resume_one(wf_engine_t *e, const char *run_id) {
  json_t *row, *steps;
  if (load_rows(e, run_id, &row, &steps) < 0) return;
  const char *name = json_string_value(json_object_get(row, "workflow"));
  wf_workflow_t *wf = e->registry ? wf_registry_find(e->registry, name) : NULL;
  if (!wf) {
    char *why = xasprintf("workflow \"%s\" is no longer loaded", name);
    resume_fail(e, row, why);
    free(why);
    json_decref(row);
    json_decref(steps);
    return;
  }
  json_t *rerun = json_array(), *containers = json_array();
  const char *k;
  json_t *st;
  json_object_foreach(steps, k, st) {
    const char *status = json_string_value(json_object_get(st, "status"));
    if (!strcmp(status, "completed") || !strcmp(status, "failed")) continue;
    if (!strcmp(status, "cancelled")) continue;
    json_array_append_new(
        leaf_kind(json_string_value(json_object_get(st, "kind"))) ? rerun : containers,
        json_string(k));
  }
  int64_t created = json_integer_value(json_object_get(row, "created_ms"));
  wf__run_t *r = wf__run_new(e, run_id, json_string_value(json_object_get(row, "tenant")), wf,
                             json_incref(json_object_get(row, "input")), created);
  json_decref(r->view);
  r->view = wf__view_from_rows(row, steps);
  r->stored = steps;
  r->resumes = (int)json_integer_value(json_object_get(row, "resumes")) + 1;
  store_topic_t t;
  if (stream_topic_state(e->hub, r->topic, &t) == 0) {
    r->seq = t.head_seq;
    snprintf(r->epoch, sizeof r->epoch, "%s", t.epoch);
  }
  int64_t ts = wf__now_ms(e);
  char *state = xasprintf("{\"resumes\":%d}", r->resumes);
  store_run_t upd = {.run_id = r->id, .status = "running", .state = state, .updated_ms = ts};
  if (store_run_save(e->store, &upd, NULL, 0) < 0)
    log_error("workflows", "resume not stored", "{s:s}", "run", r->id);
  free(state);
  char *id = xasprintf("%s:run.resumed:%d", r->id, r->resumes);
  wf__emit(r, "run.resumed", id, STREAM_LANE_CONTROL,
           json_pack("{s:o,s:o,s:i,s:I}", "steps", rerun, "containers", containers, "resumes",
                     r->resumes, "ts", (json_int_t)ts));
  free(id);
  e->stats.runs_resumed++;
  wf__run_start(r);
  json_decref(row);
}

int wf_engine_resume(wf_engine_t *e, size_t *count) {
  if (count) *count = 0;
  if (!e) return -EINVAL;
  json_t *ids = json_array();
  store_run_filter_t f = {.unfinished = true};
  int rc = store_run_list(e->store, &f, collect_id, ids);
  size_t i;
  json_t *v;
  json_array_foreach(ids, i, v) {
    if (rc < 0) break;
    const char *id = json_string_value(v);
    if (wf__run_find(e, id)) continue;
    size_t before = e->stats.runs_resumed;
    resume_one(e, id);
    if (count && e->stats.runs_resumed > before) (*count)++;
  }
  json_decref(ids);
  return rc < 0 ? rc : 0;
}
