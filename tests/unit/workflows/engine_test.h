/* Fixtures of the run engine tests: a loop of the test's own, a store (memory or a SQLite
 * file), a real stream hub, the agent client with its offline mock provider, a registry
 * filled from '-quoted JSON literals, the engine, and a watcher connection subscribed to
 * a run's topic from seq 0 whose events the tests pull and fold. Waiting runs the loop
 * until a condition holds, with a watchdog timer so that a hang fails the test instead
 * of blocking it. Teardown closes every handle and checks uv_loop_close. */
#ifndef ENGINE_TEST_H
#define ENGINE_TEST_H

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "base/mem.h"
#include "engine_internal.h"
#include "wf_test_util.h"

#define ET_UNUSED __attribute__((unused))
#define ET_WATCHDOG_MS 10000

typedef struct et {
  uv_loop_t loop;
  store_t *store;
  stream_hub_t *hub;
  agent_client_t *agents;
  wf_registry_t *reg;
  wf_engine_t *eng;
  wf_engine_config_t cfg;
  stream_config_t hub_cfg; /* used when hub_cfg_set */
  bool hub_cfg_set;
  stream_conn_t *conn;
  int wakes;
  json_t *events; /* every "ev" message pulled so far, in order */
  char dir[512];
  char db[600];
} et_t;

static ET_UNUSED void et_wake(stream_conn_t *c, void *ud) {
  (void)c;
  ((et_t *)ud)->wakes++;
}

static const stream_conn_ops_t et_conn_ops = {.wake = et_wake};

static ET_UNUSED void et_tmpdir(et_t *t) {
  const char *base = getenv("COORD_TEST_TMPDIR");
  snprintf(t->dir, sizeof t->dir, "%s/engine-XXXXXX", base && base[0] ? base : "/tmp");
  assert_non_null(mkdtemp(t->dir));
  snprintf(t->db, sizeof t->db, "%s/coord.db", t->dir);
}

static ET_UNUSED void et_rmdir(et_t *t) {
  DIR *d = opendir(t->dir);
  if (!d) return;
  char path[1100];
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", t->dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(t->dir);
}

/* Opens the store (SQLite at t->db when sqlite, else memory), hub and agent client. */
static ET_UNUSED void et_open_base(et_t *t, bool sqlite) {
  if (sqlite) {
    assert_int_equal(store_open_sqlite(&(store_options_t){.path = t->db}, &t->store), 0);
  } else {
    assert_int_equal(store_open_memory(&t->store), 0);
  }
  stream_hub_options_t ho = {
      .loop = &t->loop, .store = t->store, .config = t->hub_cfg_set ? &t->hub_cfg : NULL};
  assert_int_equal(stream_hub_new(&ho, &t->hub), 0);
  assert_int_equal(agent_client_new(&t->loop, NULL, &t->agents), 0);
  if (!t->reg) t->reg = wf_registry_new(NULL);
}

static ET_UNUSED void et_engine(et_t *t) {
  wf_engine_options_t o = {.loop = &t->loop,
                           .store = t->store,
                           .hub = t->hub,
                           .agents = t->agents,
                           .registry = t->reg,
                           .config = &t->cfg};
  assert_int_equal(wf_engine_new(&o, &t->eng), 0);
  stream_principal_t who = {.tenant = NULL, .scopes = STREAM_SCOPE_SUBSCRIBE};
  assert_int_equal(stream_conn_new(t->hub, &et_conn_ops, t, &who, &t->conn), 0);
}

/* cfg: NULL for defaults. sqlite: a file store in a fresh folder. hub: NULL for the
 * hub's defaults. */
static ET_UNUSED void et_open_hub(et_t *t, const wf_engine_config_t *cfg, bool sqlite,
                                  const stream_config_t *hub) {
  memset(t, 0, sizeof *t);
  if (cfg) t->cfg = *cfg;
  if (hub) {
    t->hub_cfg = *hub;
    t->hub_cfg_set = true;
  }
  t->events = json_array();
  assert_int_equal(uv_loop_init(&t->loop), 0);
  if (sqlite) et_tmpdir(t);
  et_open_base(t, sqlite);
  et_engine(t);
}

static ET_UNUSED void et_open(et_t *t, const wf_engine_config_t *cfg, bool sqlite) {
  et_open_hub(t, cfg, sqlite, NULL);
}

/* Frees engine, watcher, client and hub (as a crash would leave the store), runs the loop
 * until their handles closed. The store stays open. */
static ET_UNUSED void et_stop_engine(et_t *t) {
  stream_conn_free(t->conn);
  t->conn = NULL;
  wf_engine_free(t->eng);
  t->eng = NULL;
  agent_client_free(t->agents);
  t->agents = NULL;
  stream_hub_close(t->hub);
  t->hub = NULL;
  uv_run(&t->loop, UV_RUN_DEFAULT);
}

static ET_UNUSED void et_close(et_t *t) {
  if (t->eng) et_stop_engine(t);
  store_close(t->store);
  wf_registry_free(t->reg);
  json_decref(t->events);
  assert_int_equal(uv_loop_close(&t->loop), 0);
  if (t->dir[0]) et_rmdir(t);
}

/* Adds a '-quoted workflow to the registry (asserting it is valid). */
static ET_UNUSED void et_wf(et_t *t, const char *doc) {
  char *text = wft_q(doc);
  wf_workflow_t *wf = NULL;
  wf_errors_t *errs = NULL;
  int rc = wf_load_buffer(text, strlen(text), "t.json", t->reg, &wf, &errs);
  if (rc != 0) {
    char *msg = wf_errors_format(errs);
    fail_msg("workflow invalid: %s", msg);
  }
  free(text);
  assert_int_equal(wf_registry_add(t->reg, wf), 0);
  wf_free(wf);
}

/* Starts a run with a '-quoted input (NULL: none); returns its id (static buffer). */
static ET_UNUSED const char *et_start_key(et_t *t, const char *name, const char *input,
                                          const char *key, bool *existing) {
  static char ids[8][WF_RUN_ID_MAX + 1];
  static int next;
  char *id = ids[next++ % 8];
  json_t *in = NULL;
  if (input) {
    char *text = wft_q(input);
    in = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(in);
  }
  wf_errors_t *errs = NULL;
  int rc = wf_run_start(t->eng, NULL, name, in, key, id, existing, &errs);
  json_decref(in);
  if (rc != 0) {
    char *msg = wf_errors_format(errs);
    fail_msg("wf_run_start: %d %s", rc, msg);
  }
  return id;
}

static ET_UNUSED const char *et_start(et_t *t, const char *name, const char *input) {
  return et_start_key(t, name, input, NULL, NULL);
}

static ET_UNUSED void et_watch(et_t *t, const char *run_id) {
  char topic[300];
  snprintf(topic, sizeof topic, "default/runs/%s", run_id);
  stream_position_t pos = {.seq = 0};
  stream_err_t err;
  assert_int_equal(stream_conn_subscribe(t->conn, topic, &pos, &err), 0);
}

/* Pulls every pending frame; "ev" messages go to t->events. */
static ET_UNUSED void et_pull(et_t *t) {
  stream_frame_t *frames[256];
  while (t->conn && stream_conn_pending(t->conn)) {
    int n = stream_conn_pull(t->conn, frames, 256, 1 << 22);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
      size_t len;
      const unsigned char *p = stream_frame_payload(frames[i], &len);
      json_t *m = json_loadb((const char *)p, len, 0, NULL);
      assert_non_null(m);
      if (!strcmp(json_string_value(json_object_get(m, "op")), "ev"))
        json_array_append(t->events, m);
      json_decref(m);
      stream_frame_unref(&frames[i]);
    }
    if (n == 0) break;
  }
}

static ET_UNUSED void et_watchdog_cb(uv_timer_t *h) {
  *(bool *)h->data = true;
}

/* Runs the loop until pred(t, arg) holds; fails after ET_WATCHDOG_MS. */
static ET_UNUSED void et_wait(et_t *t, bool (*pred)(et_t *t, const void *arg), const void *arg) {
  bool fired = false;
  uv_timer_t wd;
  uv_timer_init(&t->loop, &wd);
  wd.data = &fired;
  uv_timer_start(&wd, et_watchdog_cb, ET_WATCHDOG_MS, 0);
  for (;;) {
    et_pull(t);
    if (pred(t, arg) || fired) break;
    uv_run(&t->loop, UV_RUN_ONCE);
  }
  uv_close((uv_handle_t *)&wd, NULL);
  uv_run(&t->loop, UV_RUN_NOWAIT);
  if (fired && !pred(t, arg)) fail_msg("timed out waiting");
}

static ET_UNUSED json_t *et_get(et_t *t, const char *run_id) {
  json_t *v = NULL;
  int rc = wf_run_get(t->eng, NULL, run_id, &v);
  if (rc != 0) fail_msg("wf_run_get %s: %d", run_id, rc);
  return v;
}

static ET_UNUSED const char *et_status_of(json_t *v) {
  return json_string_value(json_object_get(v, "status"));
}

static ET_UNUSED bool et_pred_final(et_t *t, const void *arg) {
  json_t *v = et_get(t, arg);
  const char *s = et_status_of(v);
  bool done = !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "cancelled");
  json_decref(v);
  return done;
}

/* Waits until the run's document shows a final status. Returns the document. */
static ET_UNUSED json_t *et_finish(et_t *t, const char *run_id) {
  et_wait(t, et_pred_final, run_id);
  return et_get(t, run_id);
}

/* Waits until an event of type (and, when step is not NULL, of that step) was pulled. */
typedef struct et_evq {
  const char *type;
  const char *step;
  int count; /* at least this many; 0 = 1 */
} et_evq_t;

static ET_UNUSED int et_count(et_t *t, const char *type, const char *step) {
  int n = 0;
  size_t i;
  json_t *m;
  json_array_foreach(t->events, i, m) {
    if (strcmp(json_string_value(json_object_get(m, "type")), type)) continue;
    const char *st = json_string_value(json_object_get(json_object_get(m, "data"), "step"));
    if (step && (!st || strcmp(st, step))) continue;
    n++;
  }
  return n;
}

static ET_UNUSED bool et_pred_event(et_t *t, const void *arg) {
  const et_evq_t *q = arg;
  return et_count(t, q->type, q->step) >= (q->count ? q->count : 1);
}

static ET_UNUSED void et_wait_event(et_t *t, const char *type, const char *step, int count) {
  et_evq_t q = {.type = type, .step = step, .count = count};
  et_wait(t, et_pred_event, &q);
}

/* The types of the pulled events as one space-separated string, tokens collapsed to one
 * "token*" per run of tokens. */
static ET_UNUSED char *et_types(et_t *t) {
  char *out = xstrdup("");
  size_t i;
  json_t *m;
  const char *prev = "";
  json_array_foreach(t->events, i, m) {
    const char *type = json_string_value(json_object_get(m, "type"));
    if (!strcmp(type, "token") && !strcmp(prev, "token")) continue;
    const char *step = json_string_value(json_object_get(json_object_get(m, "data"), "step"));
    char *next = xasprintf(
        "%s%s%s%s%s", out, out[0] ? " " : "", !strcmp(type, "token") ? "token*" : type,
        step && strcmp(type, "token") ? ":" : "", step && strcmp(type, "token") ? step : "");
    free(out);
    out = next;
    prev = type;
  }
  return out;
}

/* The concatenated text of the token events of (step, attempt, part). */
static ET_UNUSED char *et_tokens(et_t *t, const char *step, int attempt, const char *part,
                                 int *nevents) {
  char *out = xstrdup("");
  int n = 0;
  size_t i;
  json_t *m;
  json_array_foreach(t->events, i, m) {
    if (strcmp(json_string_value(json_object_get(m, "type")), "token")) continue;
    json_t *d = json_object_get(m, "data");
    if (strcmp(json_string_value(json_object_get(d, "step")), step)) continue;
    if (json_integer_value(json_object_get(d, "attempt")) != attempt) continue;
    if (strcmp(json_string_value(json_object_get(d, "part")), part)) continue;
    assert_int_equal(json_integer_value(json_object_get(d, "index")), n); /* dense */
    char *next = xasprintf("%s%s", out, json_string_value(json_object_get(d, "text")));
    free(out);
    out = next;
    n++;
  }
  if (nevents) *nevents = n;
  return out;
}

/* Folds the pulled events of the run into a document the way a client would, starting
 * from the run's initial document shape. */
static ET_UNUSED json_t *et_fold(et_t *t, json_t *initial) {
  json_t *v = json_deep_copy(initial);
  size_t i;
  json_t *m;
  json_array_foreach(t->events, i, m) {
    wf__view_apply(v, json_string_value(json_object_get(m, "type")), json_object_get(m, "data"));
    json_object_set(v, "seq", json_object_get(m, "seq"));
  }
  return v;
}

static ET_UNUSED json_t *et_last_event(et_t *t, const char *type) {
  json_t *found = NULL;
  size_t i;
  json_t *m;
  json_array_foreach(t->events, i, m) {
    if (!strcmp(json_string_value(json_object_get(m, "type")), type)) found = m;
  }
  return found ? json_object_get(found, "data") : NULL;
}

#endif
