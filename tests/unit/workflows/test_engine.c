/* Tests for the run engine (workflows/engine.c, run_exec.c, run_llm.c, run_events.c,
 * run_api.c) end to end on small workflows: a memory store, a real stream hub, the mock
 * provider; the run's topic is watched from seq 0 and its events checked in order. */
#include "engine_test.h"

/* An llm step then a transform reading it. */
static const char *const two_steps =
    "{'name':'two','inputs':{'topic':{'type':'string','required':true}},"
    " 'agents':{'w':{'provider':'mock','params':{'mock_text':'Hello streaming world',"
    "   'mock_chunk_chars':3}}},"
    " 'steps':[{'id':'a','type':'llm','agent':'w','prompt':'About {{ input.topic }}'},"
    "          {'id':'b','type':'transform','value':{'said':'{{ steps.a.output }}','n':2}}],"
    " 'output':{'final':'{{ steps.b.output.said }}'}}";

static void test_run_of_llm_then_transform_publishes_the_exact_event_sequence(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t, two_steps);
  const char *id = et_start(&t, "two", "{'topic':'rivers'}");
  et_watch(&t, id);
  json_t *doc = et_finish(&t, id);
  char *types = et_types(&t);
  assert_string_equal(types,
                      "run.started step.started:a token* step.completed:a step.started:b "
                      "step.completed:b run.completed");
  free(types);
  char *text = et_tokens(&t, "a", 1, "text", NULL);
  assert_string_equal(text, "Hello streaming world");
  free(text);

  assert_string_equal(et_status_of(doc), "completed");
  assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "output"), "final")),
                      "Hello streaming world");
  json_t *a = json_object_get(json_object_get(doc, "steps"), "a");
  assert_string_equal(json_string_value(json_object_get(a, "text")), "Hello streaming world");
  assert_string_equal(json_string_value(json_object_get(a, "status")), "completed");
  json_t *b = json_object_get(json_object_get(doc, "steps"), "b");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(b, "output"), "n")), 2);

  /* Event ids name the run, the step and the attempt. */
  json_t *first = json_array_get(t.events, 0);
  char want[128];
  snprintf(want, sizeof want, "%s:run.started", id);
  assert_string_equal(json_string_value(json_object_get(first, "id")), want);
  json_t *second = json_array_get(t.events, 1);
  snprintf(want, sizeof want, "%s:a:1:started", id);
  assert_string_equal(json_string_value(json_object_get(second, "id")), want);
  json_t *tok = json_array_get(t.events, 2);
  snprintf(want, sizeof want, "%s:a:1:0", id);
  assert_string_equal(json_string_value(json_object_get(tok, "id")), want);
  assert_string_equal(json_string_value(json_object_get(tok, "lane")), "data");
  assert_string_equal(json_string_value(json_object_get(second, "lane")), "control");

  /* The document equals the fold of the topic up to its seq. */
  assert_int_equal(json_integer_value(json_object_get(doc, "seq")), json_array_size(t.events));
  json_t *initial = json_pack("{s:s,s:s,s:s,s:s,s:s,s:O,s:n,s:n,s:O,s:O,s:i,s:{}}", "run_id", id,
                              "workflow", "two", "tenant", "default", "topic",
                              json_string_value(json_object_get(doc, "topic")), "status", "running",
                              "input", json_object_get(doc, "input"), "output", "error",
                              "created_ms", json_object_get(doc, "created_ms"), "updated_ms",
                              json_object_get(doc, "created_ms"), "resumes", 0, "steps");
  json_t *folded = et_fold(&t, initial);
  json_t *exported = wf__view_export(folded);
  json_object_set(exported, "epoch", json_object_get(doc, "epoch"));
  if (!json_equal(exported, doc)) {
    char *x = json_dumps(exported, JSON_SORT_KEYS), *y = json_dumps(doc, JSON_SORT_KEYS);
    fail_msg("fold differs:\n%s\n%s", x, y);
  }
  json_decref(exported);
  json_decref(folded);
  json_decref(initial);

  /* Once released from memory, the stored rows give the same document. */
  uv_run(&t.loop, UV_RUN_NOWAIT);
  assert_null(wf__run_find(t.eng, id));
  json_t *stored = et_get(&t, id);
  if (!json_equal(stored, doc)) {
    char *x = json_dumps(stored, JSON_SORT_KEYS), *y = json_dumps(doc, JSON_SORT_KEYS);
    fail_msg("stored differs:\n%s\n%s", x, y);
  }
  json_decref(stored);
  json_decref(doc);
  et_close(&t);
}

/* ---- token coalescing ---- */

#define CHUNKY_TEXT                                                                            \
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzAB" \
  "CDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
#define CHUNKY_CHUNKS ((sizeof CHUNKY_TEXT - 1 + 2) / 3)

static const char *const chunky =
    "{'name':'chunky','agents':{'w':{'provider':'mock','params':{'mock_text':"
    "'" CHUNKY_TEXT
    "',"
    "'mock_chunk_chars':3,'mock_tokens_per_s':2000}}},"
    " 'steps':[{'id':'a','type':'llm','agent':'w','prompt':'go'}]}";

/* Tasks posted by tasks run in the next loop turn, so a long chain of instant steps
 * cannot hold the loop. The queue used to run on a 0 ms timer, which libuv 1.44 runs
 * again in the same timer pass when it is started from its own callback: one turn ran
 * the whole chain. */
typedef struct chain {
  wf__task_t task; /* first: the task is the chain */
  wf_engine_t *e;
  int left, ran;
} chain_t;

static void chain_step(wf__task_t *task) {
  chain_t *c = (chain_t *)task;
  c->ran++;
  if (--c->left > 0) wf__task_post(c->e, &c->task);
}

static void test_a_chain_of_tasks_runs_one_link_per_loop_turn(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  enum { LINKS = 1000 };
  chain_t c = {.e = t.eng, .left = LINKS};
  wf__task_init(&c.task, chain_step);
  wf__task_post(t.eng, &c.task);
  uv_run(&t.loop, UV_RUN_NOWAIT);
  assert_int_equal(c.ran, 1);
  for (int turn = 1; c.left > 0; turn++) {
    assert_true(turn < 2 * LINKS);
    uv_run(&t.loop, UV_RUN_NOWAIT);
    assert_true(c.ran <= turn + 1);
  }
  assert_int_equal(c.ran, LINKS);
  et_close(&t);
}

static void test_token_deltas_are_coalesced_into_fewer_events_with_the_same_text(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t, chunky);
  const char *id = et_start(&t, "chunky", NULL);
  et_watch(&t, id);
  json_decref(et_finish(&t, id));
  int n = 0;
  char *text = et_tokens(&t, "a", 1, "text", &n);
  assert_string_equal(text, CHUNKY_TEXT);
  wf_engine_stats_t st;
  wf_engine_stats(t.eng, &st);
  assert_int_equal(st.token_deltas, CHUNKY_CHUNKS);
  assert_true(n >= 1);
  assert_true(n < 20); /* about 31 ms of chunks in 20 ms windows */
  assert_int_equal(st.token_events, (uint64_t)n);
  free(text);
  et_close(&t);
}

static void test_without_a_window_every_delta_is_one_token_event(void **state) {
  (void)state;
  et_t t;
  wf_engine_config_t cfg = {.token_coalesce_ms = -1};
  et_open(&t, &cfg, false);
  et_wf(&t, chunky);
  const char *id = et_start(&t, "chunky", NULL);
  et_watch(&t, id);
  json_decref(et_finish(&t, id));
  int n = 0;
  char *text = et_tokens(&t, "a", 1, "text", &n);
  assert_string_equal(text, CHUNKY_TEXT);
  assert_int_equal(n, CHUNKY_CHUNKS);
  free(text);
  et_close(&t);
}

/* ---- retries ---- */

static void test_a_429_with_retry_after_is_retried_after_that_delay(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'limited','agents':{'w':{'provider':'mock','params':{'mock_text':'fine',"
        " 'mock_fail':{'attempt':1,'class':'rate_limited','retry_after_ms':300}}}},"
        " 'steps':[{'id':'a','type':'llm','agent':'w','prompt':'go',"
        "  'retry':{'max_attempts':3,'backoff_ms':5000,'max_backoff_ms':5000,'jitter':0,"
        "   'on':['rate_limited']}}]}");
  uint64_t t0 = uv_now(&t.loop);
  const char *id = et_start(&t, "limited", NULL);
  et_watch(&t, id);
  json_t *doc = et_finish(&t, id);
  uint64_t elapsed = uv_now(&t.loop) - t0;
  char *types = et_types(&t);
  assert_string_equal(types,
                      "run.started step.started:a step.retrying:a step.started:a token* "
                      "step.completed:a run.completed");
  free(types);
  json_t *retrying = et_last_event(&t, "step.retrying");
  assert_int_equal(json_integer_value(json_object_get(retrying, "delay_ms")), 300);
  assert_int_equal(json_integer_value(json_object_get(retrying, "attempt")), 1);
  assert_int_equal(json_integer_value(json_object_get(retrying, "next_attempt")), 2);
  assert_true(json_is_false(json_object_get(retrying, "discarded")));
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(retrying, "error"), "class")),
      "rate_limited");
  /* Measured on the event timestamps: the second attempt began no sooner than 300 ms
   * after the failure, and well before the 5 s backoff the policy would have used. */
  json_t *started2 = NULL;
  size_t i;
  json_t *m;
  json_array_foreach(t.events, i, m) {
    json_t *d = json_object_get(m, "data");
    if (!strcmp(json_string_value(json_object_get(m, "type")), "step.started") &&
        json_integer_value(json_object_get(d, "attempt")) == 2)
      started2 = d;
  }
  assert_non_null(started2);
  int64_t gap = json_integer_value(json_object_get(started2, "ts")) -
                json_integer_value(json_object_get(retrying, "ts"));
  assert_true(gap >= 299);
  assert_true(elapsed >= 300);
  assert_true(elapsed < 3000);
  json_t *a = json_object_get(json_object_get(doc, "steps"), "a");
  assert_int_equal(json_integer_value(json_object_get(a, "attempt")), 2);
  assert_string_equal(json_string_value(json_object_get(a, "text")), "fine");
  json_decref(doc);
  et_close(&t);
}

static void test_backoff_doubles_up_to_its_cap_without_jitter(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'backoff','agents':{'w':{'provider':'mock','params':{'mock_text':'x',"
        " 'mock_fail':[{'attempt':1,'class':'server_error'},{'attempt':2,'class':'server_error'},"
        "  {'attempt':3,'class':'network'}]}}},"
        " 'steps':[{'id':'a','type':'llm','agent':'w','prompt':'go',"
        "  'retry':{'max_attempts':4,'backoff_ms':20,'max_backoff_ms':50,'jitter':0}}]}");
  const char *id = et_start(&t, "backoff", NULL);
  et_watch(&t, id);
  json_t *doc = et_finish(&t, id);
  assert_string_equal(et_status_of(doc), "completed");
  int64_t delays[3] = {0};
  int n = 0;
  size_t i;
  json_t *m;
  json_array_foreach(t.events, i, m) {
    if (strcmp(json_string_value(json_object_get(m, "type")), "step.retrying")) continue;
    assert_true(n < 3);
    delays[n++] = json_integer_value(json_object_get(json_object_get(m, "data"), "delay_ms"));
  }
  assert_int_equal(n, 3);
  assert_int_equal(delays[0], 20);
  assert_int_equal(delays[1], 40);
  assert_int_equal(delays[2], 50);
  json_decref(doc);
  et_close(&t);
}

static void test_a_class_outside_the_policy_fails_without_retry(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'auth','agents':{'w':{'provider':'mock','params':{"
        " 'mock_fail':{'class':'auth','message':'bad key'}}}},"
        " 'steps':[{'id':'a','type':'llm','agent':'w','prompt':'go'}]}");
  const char *id = et_start(&t, "auth", NULL);
  et_watch(&t, id);
  json_t *doc = et_finish(&t, id);
  char *types = et_types(&t);
  assert_string_equal(types, "run.started step.started:a step.failed:a run.failed");
  free(types);
  json_t *err = json_object_get(doc, "error");
  assert_string_equal(json_string_value(json_object_get(err, "class")), "auth");
  assert_string_equal(json_string_value(json_object_get(err, "step")), "a");
  json_decref(doc);
  et_close(&t);
}

/* ---- failures after partial output ---- */

static const char *const partial_fmt =
    "{'name':'partial','agents':{'w':{'provider':'mock','params':{'mock_text':'abcdefghijkl',"
    " 'mock_chunk_chars':2,'mock_fail':{'attempt':1,'class':'server_error','after_chunks':2}}}},"
    " 'steps':[{'id':'a','type':'llm','agent':'w','prompt':'go',"
    "  'retry':{'max_attempts':3,'backoff_ms':0,'after_partial_output':%s}}]}";

static void test_a_mid_stream_failure_after_partial_output_fails_when_not_allowed(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  char *doc_text = xasprintf(partial_fmt, "false");
  et_wf(&t, doc_text);
  free(doc_text);
  const char *id = et_start(&t, "partial", NULL);
  et_watch(&t, id);
  json_t *doc = et_finish(&t, id);
  char *types = et_types(&t);
  assert_string_equal(types, "run.started step.started:a token* step.failed:a run.failed");
  free(types);
  char *text = et_tokens(&t, "a", 1, "text", NULL);
  assert_string_equal(text, "abcd");
  free(text);
  json_t *a = json_object_get(json_object_get(doc, "steps"), "a");
  assert_string_equal(json_string_value(json_object_get(a, "status")), "failed");
  assert_string_equal(json_string_value(json_object_get(a, "text")), "abcd");
  assert_string_equal(json_string_value(json_object_get(json_object_get(a, "error"), "class")),
                      "server_error");
  json_decref(doc);
  et_close(&t);
}

static void test_a_mid_stream_failure_is_retried_when_the_step_allows_it(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  char *doc_text = xasprintf(partial_fmt, "true");
  et_wf(&t, doc_text);
  free(doc_text);
  const char *id = et_start(&t, "partial", NULL);
  et_watch(&t, id);
  json_t *doc = et_finish(&t, id);
  char *types = et_types(&t);
  assert_string_equal(types,
                      "run.started step.started:a token* step.retrying:a step.started:a token* "
                      "step.completed:a run.completed");
  free(types);
  json_t *retrying = et_last_event(&t, "step.retrying");
  assert_true(json_is_true(json_object_get(retrying, "discarded")));
  assert_int_equal(json_integer_value(json_object_get(retrying, "attempt")), 1);
  char *t1 = et_tokens(&t, "a", 1, "text", NULL);
  char *t2 = et_tokens(&t, "a", 2, "text", NULL);
  assert_string_equal(t1, "abcd");
  assert_string_equal(t2, "abcdefghijkl");
  free(t1);
  free(t2);
  json_t *a = json_object_get(json_object_get(doc, "steps"), "a");
  assert_string_equal(json_string_value(json_object_get(a, "text")), "abcdefghijkl");
  assert_string_equal(json_string_value(json_object_get(doc, "output")), "abcdefghijkl");
  json_decref(doc);
  et_close(&t);
}

/* ---- cancel ---- */

static void test_cancel_aborts_the_in_flight_model_call(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'slow','agents':{'w':{'provider':'mock','params':{'mock_words':200,"
        " 'mock_chunk_chars':2,'mock_tokens_per_s':100}}},"
        " 'steps':[{'id':'a','type':'llm','agent':'w','prompt':'go'},"
        "          {'id':'b','type':'transform','value':'never'}]}");
  const char *id = et_start(&t, "slow", NULL);
  et_watch(&t, id);
  et_wait_event(&t, "token", "a", 1);
  agent_client_stats_t st;
  agent_client_stats(t.agents, &st);
  assert_int_equal(st.running, 1);
  assert_int_equal(wf_run_cancel(t.eng, NULL, id), 0);
  assert_int_equal(wf_run_cancel(t.eng, NULL, id), -EALREADY);
  json_t *doc = et_finish(&t, id);
  agent_client_stats(t.agents, &st);
  assert_int_equal(st.running + st.queued, 0); /* the call was aborted, not finished */
  assert_int_equal(st.failed, 0);
  char *types = et_types(&t);
  assert_string_equal(types, "run.started step.started:a token* step.failed:a run.cancelled");
  free(types);
  assert_string_equal(et_status_of(doc), "cancelled");
  json_t *a = json_object_get(json_object_get(doc, "steps"), "a");
  assert_string_equal(json_string_value(json_object_get(a, "status")), "cancelled");
  /* Nothing more arrives: the loop runs dry (the call is gone). */
  size_t n = json_array_size(t.events);
  uv_run(&t.loop, UV_RUN_NOWAIT);
  et_pull(&t);
  assert_int_equal(json_array_size(t.events), n);
  assert_int_equal(wf_run_cancel(t.eng, NULL, id), -EALREADY);
  json_decref(doc);
  et_close(&t);
}

typedef struct settled_rec {
  et_t *t;
  const char *id;
  int calls, status;
  char doc_status[16]; /* the document's status when the callback ran */
} settled_rec_t;

static bool settled_pred(et_t *t, const void *arg) {
  (void)t;
  return ((const settled_rec_t *)arg)->calls > 0;
}

static void on_settled(void *ud, int status) {
  settled_rec_t *s = ud;
  s->calls++;
  s->status = status;
  json_t *doc = NULL;
  if (wf_run_get(s->t->eng, NULL, s->id, &doc) == 0)
    snprintf(s->doc_status, sizeof s->doc_status, "%s", et_status_of(doc));
  json_decref(doc);
}

/* Opens t and starts a one-step run whose model call streams slowly; returns once its
 * first token has arrived. */
static const char *slow_run_streaming(et_t *t) {
  et_open(t, NULL, false);
  et_wf(t,
        "{'name':'slow','agents':{'w':{'provider':'mock','params':{'mock_words':200,"
        " 'mock_chunk_chars':2,'mock_tokens_per_s':100}}},"
        " 'steps':[{'id':'a','type':'llm','agent':'w','prompt':'go'}]}");
  const char *id = et_start(t, "slow", NULL);
  et_watch(t, id);
  et_wait_event(t, "token", "a", 1);
  return id;
}

static void test_cancel_wait_calls_back_once_run_cancelled_is_acknowledged(void **state) {
  (void)state;
  et_t t;
  const char *id = slow_run_streaming(&t);
  settled_rec_t s = {.t = &t, .id = id};
  wf_run_waiter_t *w = NULL;
  assert_int_equal(wf_run_cancel_wait(t.eng, NULL, id, on_settled, &s, &w), 0);
  assert_non_null(w);
  assert_int_equal(s.calls, 0); /* never from inside the call */
  et_wait(&t, settled_pred, &s); /* the loop runs (blocking) until the callback, or fails */
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.status, 0);
  assert_string_equal(s.doc_status, "cancelled");
  /* A finished run: nothing to wait for. */
  assert_int_equal(wf_run_cancel_wait(t.eng, NULL, id, on_settled, &s, &w), -EALREADY);
  assert_null(w);
  et_close(&t);
}

static void test_a_dropped_cancel_waiter_is_never_called(void **state) {
  (void)state;
  et_t t;
  const char *id = slow_run_streaming(&t);
  settled_rec_t s = {.t = &t, .id = id};
  wf_run_waiter_t *w = NULL;
  assert_int_equal(wf_run_cancel_wait(t.eng, NULL, id, on_settled, &s, &w), 0);
  /* A second caller's waiter on the same run (added by hand: the run is finished now)
   * tells when the run has been let go. */
  settled_rec_t kept = {.t = &t, .id = id};
  wf__run_t *r = wf__run_find(t.eng, id);
  assert_non_null(r);
  wf_run_waiter_t *k = xcalloc(1, sizeof *k);
  k->cb = on_settled;
  k->ud = &kept;
  base_queue_insert_tail(&r->waiters, &k->link);
  wf_run_waiter_drop(w);
  et_wait(&t, settled_pred, &kept);
  assert_int_equal(kept.calls, 1);
  assert_int_equal(s.calls, 0);
  et_close(&t);
}

static void test_a_watcher_leaving_does_not_cancel_the_run(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t, two_steps);
  const char *id = et_start(&t, "two", "{'topic':'x'}");
  et_watch(&t, id);
  et_wait_event(&t, "step.started", "a", 1);
  stream_conn_free(t.conn);
  t.conn = NULL;
  json_t *doc = et_finish(&t, id);
  assert_string_equal(et_status_of(doc), "completed");
  json_decref(doc);
  stream_principal_t who = {.scopes = STREAM_SCOPE_SUBSCRIBE};
  assert_int_equal(stream_conn_new(t.hub, &et_conn_ops, &t, &who, &t.conn), 0);
  et_close(&t);
}

/* ---- approval ---- */

static const char *const gate =
    "{'name':'gate','inputs':{'x':{'type':'string','required':true}},"
    " 'steps':[{'id':'ok','type':'approval','prompt':'Ship {{ input.x }}?','timeout_ms':%d,"
    "   'catch':{'action':'continue','output':{'approved':false,'comment':'timed out'}}},"
    "  {'id':'after','type':'transform','value':'{{ steps.ok.output.approved }}'}]}";

static json_t *run_gate(et_t *t, int timeout_ms, int decide, char **types) {
  char *doc_text = xasprintf(gate, timeout_ms);
  et_wf(t, doc_text);
  free(doc_text);
  const char *id = et_start(t, "gate", "{'x':'v2'}");
  et_watch(t, id);
  et_wait_event(t, "approval.requested", "ok", 1);
  json_t *req = et_last_event(t, "approval.requested");
  assert_string_equal(json_string_value(json_object_get(req, "prompt")), "Ship v2?");
  assert_int_equal(wf_run_approve(t->eng, NULL, id, "nope", true, NULL), -ESRCH);
  assert_int_equal(wf_run_approve(t->eng, "other", id, "ok", true, NULL), -ENOENT);
  json_t *mid = et_get(t, id);
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(json_object_get(mid, "steps"), "ok"), "status")),
                      "waiting");
  json_decref(mid);
  if (decide >= 0) assert_int_equal(wf_run_approve(t->eng, NULL, id, "ok", decide == 1, "lgtm"), 0);
  json_t *doc = et_finish(t, id);
  if (decide >= 0) assert_int_equal(wf_run_approve(t->eng, NULL, id, "ok", true, NULL), -EALREADY);
  *types = et_types(t);
  return doc;
}

static void test_an_approval_waits_for_the_decision_and_completes_with_it(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  char *types;
  json_t *doc = run_gate(&t, 60000, 1, &types);
  assert_string_equal(types,
                      "run.started step.started:ok approval.requested:ok step.completed:ok "
                      "step.started:after step.completed:after run.completed");
  free(types);
  json_t *ok = json_object_get(json_object_get(doc, "steps"), "ok");
  assert_true(json_is_true(json_object_get(json_object_get(ok, "output"), "approved")));
  assert_string_equal(json_string_value(json_object_get(json_object_get(ok, "output"), "comment")),
                      "lgtm");
  assert_true(json_is_true(json_object_get(doc, "output")));
  json_decref(doc);
  et_close(&t);
}

static void test_a_rejected_approval_completes_with_approved_false(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  char *types;
  json_t *doc = run_gate(&t, 60000, 0, &types);
  free(types);
  assert_true(json_is_false(json_object_get(doc, "output")));
  json_decref(doc);
  et_close(&t);
}

static void test_an_approval_timeout_fails_the_step_and_its_catch_continues(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  char *types;
  json_t *doc = run_gate(&t, 50, -1, &types);
  assert_string_equal(types,
                      "run.started step.started:ok approval.requested:ok step.failed:ok "
                      "step.started:after step.completed:after run.completed");
  free(types);
  json_t *ok = json_object_get(json_object_get(doc, "steps"), "ok");
  assert_string_equal(json_string_value(json_object_get(ok, "status")), "failed");
  assert_string_equal(json_string_value(json_object_get(ok, "caught")), "continue");
  assert_string_equal(json_string_value(json_object_get(json_object_get(ok, "error"), "class")),
                      "timeout");
  assert_true(json_is_false(json_object_get(doc, "output")));
  json_decref(doc);
  et_close(&t);
}

/* ---- starting runs ---- */

static void test_the_same_idempotency_key_returns_the_same_run(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t, two_steps);
  bool existing = true;
  char first[WF_RUN_ID_MAX + 1];
  snprintf(first, sizeof first, "%s", et_start_key(&t, "two", "{'topic':'x'}", "key-1", &existing));
  assert_false(existing);
  const char *again = et_start_key(&t, "two", "{'topic':'y'}", "key-1", &existing);
  assert_true(existing);
  assert_string_equal(again, first);
  const char *other = et_start_key(&t, "two", "{'topic':'y'}", "key-2", &existing);
  assert_false(existing);
  assert_string_not_equal(other, first);
  json_decref(et_finish(&t, first));
  json_decref(et_finish(&t, other));
  json_t *list = NULL;
  assert_int_equal(wf_runs_list(t.eng, NULL, "two", NULL, 0, &list), 0);
  assert_int_equal(json_array_size(json_object_get(list, "runs")), 2);
  json_decref(list);
  assert_int_equal(wf_runs_list(t.eng, NULL, NULL, "failed", 0, &list), 0);
  assert_int_equal(json_array_size(json_object_get(list, "runs")), 0);
  json_decref(list);
  et_close(&t);
}

static void test_start_refuses_unknown_workflows_and_bad_input(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t, two_steps);
  char id[WF_RUN_ID_MAX + 1];
  wf_errors_t *errs = NULL;
  assert_int_equal(wf_run_start(t.eng, NULL, "nope", NULL, NULL, id, NULL, &errs), -ENOENT);
  json_t *in = json_pack("{s:i}", "topic", 3);
  assert_int_equal(wf_run_start(t.eng, NULL, "two", in, NULL, id, NULL, &errs), -EINVAL);
  char *msg = wf_errors_format(errs);
  assert_non_null(strstr(msg, "input.topic"));
  free(msg);
  wf_errors_free(errs);
  json_decref(in);
  assert_int_equal(wf_run_start(t.eng, "Bad Tenant", "two", NULL, NULL, id, NULL, NULL), -EINVAL);
  json_t *doc = NULL;
  assert_int_equal(wf_run_get(t.eng, NULL, "r_missing", &doc), -ENOENT);
  et_close(&t);
}

static void test_runs_of_one_tenant_are_invisible_to_another(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t, two_steps);
  const char *id = et_start(&t, "two", "{'topic':'x'}");
  json_decref(et_finish(&t, id));
  json_t *doc = NULL;
  assert_int_equal(wf_run_get(t.eng, "other", id, &doc), -ENOENT);
  assert_int_equal(wf_run_cancel(t.eng, "other", id), -ENOENT);
  json_t *list = NULL;
  assert_int_equal(wf_runs_list(t.eng, "other", NULL, NULL, 0, &list), 0);
  assert_int_equal(json_array_size(json_object_get(list, "runs")), 0);
  json_decref(list);
  et_close(&t);
}

/* ---- the hub pushing back, reloads, limits ---- */

static void test_events_refused_by_a_rate_limit_wait_and_tokens_merge_meanwhile(void **state) {
  (void)state;
  stream_config_t hub;
  stream_config_defaults(&hub);
  hub.topic_publish_rate = 50; /* events per second */
  hub.topic_publish_burst = 4;
  wf_engine_config_t cfg = {.token_coalesce_ms = -1};
  et_t t;
  et_open_hub(&t, &cfg, false, &hub);
  et_wf(&t, chunky);
  const char *id = et_start(&t, "chunky", NULL);
  et_watch(&t, id);
  json_t *doc = et_finish(&t, id);
  int n = 0;
  char *text = et_tokens(&t, "a", 1, "text", &n);
  assert_string_equal(text, CHUNKY_TEXT);
  free(text);
  assert_true(n < (int)CHUNKY_CHUNKS); /* merged while waiting */
  char *types = et_types(&t);
  assert_string_equal(types, "run.started step.started:a token* step.completed:a run.completed");
  free(types);
  assert_string_equal(json_string_value(json_object_get(doc, "output")), CHUNKY_TEXT);
  wf_engine_stats_t st;
  wf_engine_stats(t.eng, &st);
  assert_int_equal(st.publish_errors, 0);
  json_decref(doc);
  et_close(&t);
}

static void test_a_running_run_keeps_its_workflow_across_a_registry_swap(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'keep','agents':{'w':{'provider':'mock','params':{'mock_text':'still here',"
        "  'mock_tokens_per_s':100}}},"
        " 'steps':[{'id':'a','type':'llm','agent':'w','prompt':'x'}]}");
  const char *id = et_start(&t, "keep", NULL);
  et_watch(&t, id);
  et_wait_event(&t, "step.started", "a", 1);
  wf_registry_t *fresh = wf_registry_new(NULL);
  wf_engine_set_registry(t.eng, fresh);
  wf_registry_free(t.reg); /* the old registry is gone; the run holds its workflow */
  t.reg = fresh;
  json_t *doc = et_finish(&t, id);
  assert_string_equal(json_string_value(json_object_get(doc, "output")), "still here");
  char rid[WF_RUN_ID_MAX + 1];
  assert_int_equal(wf_run_start(t.eng, NULL, "keep", NULL, NULL, rid, NULL, NULL), -ENOENT);
  json_decref(doc);
  et_close(&t);
}

static void test_starts_beyond_max_runs_are_refused(void **state) {
  (void)state;
  wf_engine_config_t cfg = {.max_runs = 1};
  et_t t;
  et_open(&t, &cfg, false);
  et_wf(&t, two_steps);
  const char *id = et_start(&t, "two", "{'topic':'x'}");
  char rid[WF_RUN_ID_MAX + 1];
  json_t *in = json_pack("{s:s}", "topic", "y");
  assert_int_equal(wf_run_start(t.eng, NULL, "two", in, NULL, rid, NULL, NULL), -EBUSY);
  json_decref(et_finish(&t, id));
  assert_int_equal(wf_run_start(t.eng, NULL, "two", in, NULL, rid, NULL, NULL), 0);
  json_decref(in);
  json_decref(et_finish(&t, rid));
  et_close(&t);
}

static void test_large_outputs_are_split_into_token_events_and_omitted_from_events(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  size_t n = 70000;
  char *big = xmalloc(n + 1);
  for (size_t i = 0; i < n; i++) big[i] = (char)('a' + i % 26);
  big[n] = '\0';
  char *doc_text = xasprintf(
      "{'name':'big','agents':{'w':{'provider':'mock','params':{'mock_text':'%s',"
      " 'mock_chunk_chars':65536}}},"
      " 'steps':[{'id':'a','type':'llm','agent':'w','prompt':'x'}]}",
      big);
  et_wf(&t, doc_text);
  free(doc_text);
  const char *id = et_start(&t, "big", NULL);
  et_watch(&t, id);
  json_t *doc = et_finish(&t, id);
  int events = 0;
  char *text = et_tokens(&t, "a", 1, "text", &events);
  assert_string_equal(text, big);
  assert_true(events >= 9); /* no token event over token_max_bytes (8 KiB) */
  free(text);
  json_t *done = et_last_event(&t, "step.completed");
  assert_true(json_is_null(json_object_get(done, "output")));
  assert_string_equal(json_string_value(json_array_get(json_object_get(done, "omitted"), 0)),
                      "output");
  json_t *rdone = et_last_event(&t, "run.completed");
  assert_non_null(rdone);
  assert_string_equal(json_string_value(json_object_get(doc, "output")), big);
  wf_engine_stats_t st;
  wf_engine_stats(t.eng, &st);
  assert_int_equal(st.publish_errors, 0);
  free(big);
  json_decref(doc);
  et_close(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_run_of_llm_then_transform_publishes_the_exact_event_sequence),
      cmocka_unit_test(test_a_chain_of_tasks_runs_one_link_per_loop_turn),
      cmocka_unit_test(test_token_deltas_are_coalesced_into_fewer_events_with_the_same_text),
      cmocka_unit_test(test_without_a_window_every_delta_is_one_token_event),
      cmocka_unit_test(test_a_429_with_retry_after_is_retried_after_that_delay),
      cmocka_unit_test(test_backoff_doubles_up_to_its_cap_without_jitter),
      cmocka_unit_test(test_a_class_outside_the_policy_fails_without_retry),
      cmocka_unit_test(test_a_mid_stream_failure_after_partial_output_fails_when_not_allowed),
      cmocka_unit_test(test_a_mid_stream_failure_is_retried_when_the_step_allows_it),
      cmocka_unit_test(test_cancel_aborts_the_in_flight_model_call),
      cmocka_unit_test(test_cancel_wait_calls_back_once_run_cancelled_is_acknowledged),
      cmocka_unit_test(test_a_dropped_cancel_waiter_is_never_called),
      cmocka_unit_test(test_a_watcher_leaving_does_not_cancel_the_run),
      cmocka_unit_test(test_an_approval_waits_for_the_decision_and_completes_with_it),
      cmocka_unit_test(test_a_rejected_approval_completes_with_approved_false),
      cmocka_unit_test(test_an_approval_timeout_fails_the_step_and_its_catch_continues),
      cmocka_unit_test(test_the_same_idempotency_key_returns_the_same_run),
      cmocka_unit_test(test_start_refuses_unknown_workflows_and_bad_input),
      cmocka_unit_test(test_runs_of_one_tenant_are_invisible_to_another),
      cmocka_unit_test(test_events_refused_by_a_rate_limit_wait_and_tokens_merge_meanwhile),
      cmocka_unit_test(test_a_running_run_keeps_its_workflow_across_a_registry_swap),
      cmocka_unit_test(test_starts_beyond_max_runs_are_refused),
      cmocka_unit_test(test_large_outputs_are_split_into_token_events_and_omitted_from_events),
  };
  return cmocka_run_group_tests_name("workflows engine", tests, NULL, NULL);
}
