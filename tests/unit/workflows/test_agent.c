/* Tests for the agent step kind (workflows/run_agent.c) end to end: a real hub and
 * engine, and an in-test external agent that is a stream connection speaking the
 * WebSocket protocol's messages (join a group, ack, publish replies), as a remote agent
 * would through the daemon. Covers streaming partial output, heartbeats and their miss,
 * timeouts, results over the HTTP entry point, results after a cancel, the group created
 * before its first member, and the re-offer after a restart. */
#include "engine_test.h"

#define TASKS "default/tasks/research"

/* The in-test agent: one connection, a member of group "g" of TASKS once joined. */
typedef struct ta {
  et_t *t;
  stream_conn_t *conn;
  json_t *tasks; /* every task delivery ("ev" message), in arrival order */
  int pubacks;   /* pubacks received */
  int errors;    /* error replies received */
} ta_t;

static void ta_wake(stream_conn_t *c, void *ud) {
  (void)c;
  (void)ud;
}

static const stream_conn_ops_t ta_ops = {.wake = ta_wake};

static void ta_send(ta_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ta_send(ta_t *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  assert_true(vasprintf(&msg, fmt, ap) >= 0);
  va_end(ap);
  char *q = wft_q(msg);
  assert_int_equal(stream_conn_handle_message(a->conn, q, strlen(q)), 0);
  free(q);
  free(msg);
}

static void ta_open(ta_t *a, et_t *t) {
  memset(a, 0, sizeof *a);
  a->t = t;
  a->tasks = json_array();
  stream_principal_t who = {.tenant = NULL,
                            .scopes = STREAM_SCOPE_SUBSCRIBE | STREAM_SCOPE_PUBLISH};
  assert_int_equal(stream_conn_new(t->hub, &ta_ops, a, &who, &a->conn), 0);
}

static void ta_join(ta_t *a, const char *group) {
  ta_send(a, "{'op':'sub','topic':'" TASKS "','group':'%s'}", group);
}

static void ta_close(ta_t *a) {
  stream_conn_free(a->conn);
  a->conn = NULL;
  json_decref(a->tasks);
  a->tasks = NULL;
}

static void ta_pull(ta_t *a) {
  stream_frame_t *frames[64];
  while (a->conn && stream_conn_pending(a->conn)) {
    int n = stream_conn_pull(a->conn, frames, 64, 1 << 22);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
      size_t len;
      const unsigned char *p = stream_frame_payload(frames[i], &len);
      json_t *m = json_loadb((const char *)p, len, 0, NULL);
      assert_non_null(m);
      const char *op = json_string_value(json_object_get(m, "op"));
      const char *type = json_string_value(json_object_get(m, "type"));
      if (!strcmp(op, "ev") && type && !strcmp(type, "task")) json_array_append(a->tasks, m);
      if (!strcmp(op, "puback")) a->pubacks++;
      if (!strcmp(op, "error")) {
        a->errors++;
        char *s = json_dumps(m, JSON_COMPACT);
        print_message("agent got an error: %s\n", s);
        free(s);
      }
      json_decref(m);
      stream_frame_unref(&frames[i]);
    }
    if (n == 0) break;
  }
}

/* The data of the i-th task delivered. */
static json_t *ta_task(ta_t *a, size_t i) {
  return json_object_get(json_array_get(a->tasks, i), "data");
}

static const char *ta_str(const json_t *task, const char *k) {
  return json_string_value(json_object_get(task, k));
}

static void ta_ack(ta_t *a, size_t i) {
  json_int_t seq = json_integer_value(json_object_get(json_array_get(a->tasks, i), "seq"));
  ta_send(a, "{'op':'ack','topic':'" TASKS "','group':'g','seq':%lld}", (long long)seq);
}

/* Publishes an event of type with '-quoted data to the reply address of task i. */
static void ta_reply(ta_t *a, size_t i, const char *type, const char *data) {
  ta_send(a, "{'op':'pub','topic':'%s','type':'%s','data':%s}", ta_str(ta_task(a, i), "reply_to"),
          type, data);
}

typedef struct ta_wait {
  ta_t *a;
  int tasks;   /* at least this many tasks delivered */
  int pubacks; /* at least this many pubacks */
} ta_wait_t;

static bool ta_pred(et_t *t, const void *arg) {
  (void)t;
  const ta_wait_t *w = arg;
  ta_pull(w->a);
  return (int)json_array_size(w->a->tasks) >= w->tasks && w->a->pubacks >= w->pubacks;
}

static void ta_wait_tasks(ta_t *a, int n) {
  ta_wait_t w = {.a = a, .tasks = n};
  et_wait(a->t, ta_pred, &w);
}

static void ta_wait_pubacks(ta_t *a, int n) {
  ta_wait_t w = {.a = a, .pubacks = n};
  et_wait(a->t, ta_pred, &w);
}

/* The events of a topic (reply topics), as {type, data} in seq order. */
static int collect_ev(void *ud, const stream_frame_t *f) {
  size_t len;
  const unsigned char *p = stream_frame_payload(f, &len);
  json_t *m = json_loadb((const char *)p, len, 0, NULL);
  json_array_append_new(ud, m);
  return 0;
}

static json_t *topic_events(et_t *t, const char *topic) {
  json_t *arr = json_array();
  stream_read_info_t info;
  assert_int_equal(stream_read(t->hub, topic, 0, 1000, collect_ev, arr, &info), 0);
  return arr;
}

/* The reason of the task.closed event of a reply topic, NULL when there is none. Its
 * position among the topic's events goes to *pos (may be NULL). */
static char *closed_reason(et_t *t, const char *reply, size_t *pos) {
  json_t *evs = topic_events(t, reply);
  char *reason = NULL;
  size_t i;
  json_t *m;
  json_array_foreach(evs, i, m) {
    if (strcmp(json_string_value(json_object_get(m, "type")), "task.closed")) continue;
    reason = xstrdup(json_string_value(json_object_get(json_object_get(m, "data"), "reason")));
    if (pos) *pos = i;
    break;
  }
  json_decref(evs);
  return reason;
}

static const char *err_class(json_t *doc) {
  return json_string_value(json_object_get(json_object_get(doc, "error"), "class"));
}

static json_t *step_of(json_t *doc, const char *key) {
  return json_object_get(json_object_get(doc, "steps"), key);
}

/* Runs the loop until the closing events of the reply topic were committed. */
static bool pred_closed(et_t *t, const void *arg) {
  char *r = closed_reason(t, arg, NULL);
  bool ok = r != NULL;
  free(r);
  return ok;
}

static const char *const research =
    "{'name':'research','inputs':{'q':{'type':'string','required':true}},"
    " 'steps':[{'id':'a','type':'agent','topic':'tasks/research','group':'g',"
    "   'input':{'question':'{{ input.q }}'},'heartbeat_ms':%d,'timeout_ms':%d%s}]}";

static void add_research(et_t *t, int heartbeat_ms, int timeout_ms, const char *more) {
  char *doc = xasprintf(research, heartbeat_ms, timeout_ms, more ? more : "");
  et_wf(t, doc);
  free(doc);
}

static void test_an_agent_takes_the_task_streams_partial_output_and_returns_the_result(
    void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  add_research(&t, 2000, 10000, NULL);
  ta_t a;
  ta_open(&a, &t);
  ta_join(&a, "g");
  const char *id = et_start(&t, "research", "{'q':'why is the sky blue'}");
  et_watch(&t, id);

  ta_wait_tasks(&a, 1);
  json_t *task = ta_task(&a, 0);
  const char *task_id = ta_str(task, "task_id");
  char *want_reply = xasprintf("default/runs/%s/tasks/%s", id, task_id);
  assert_string_equal(ta_str(task, "reply_to"), want_reply);
  assert_string_equal(ta_str(task, "run_id"), id);
  assert_string_equal(ta_str(task, "step"), "a");
  assert_string_equal(ta_str(task, "group"), "g");
  assert_int_equal(json_integer_value(json_object_get(task, "attempt")), 1);
  assert_int_equal(json_integer_value(json_object_get(task, "heartbeat_ms")), 2000);
  assert_string_equal(ta_str(json_object_get(task, "input"), "question"), "why is the sky blue");
  assert_true(strncmp(task_id, id, strlen(id)) == 0);

  /* Claim, ack the delivery, stream three pieces, answer. */
  ta_reply(&a, 0, "task.heartbeat", "{}");
  ta_ack(&a, 0);
  ta_reply(&a, 0, "task.partial", "{'text':'Rayleigh '}");
  ta_reply(&a, 0, "task.partial", "{'text':'scattering'}");
  ta_reply(&a, 0, "task.partial", "'!'");
  ta_reply(&a, 0, "task.result",
           "{'output':{'answer':'Rayleigh scattering!'},'usage':{'in_tokens':3,'out_tokens':7}}");
  json_t *doc = et_finish(&t, id);
  assert_int_equal(a.errors, 0);
  assert_string_equal(et_status_of(doc), "completed");
  assert_string_equal(ta_str(json_object_get(doc, "output"), "answer"), "Rayleigh scattering!");

  /* The partial output is on the run's topic as token text of the step's attempt. */
  char *text = et_tokens(&t, "a", 1, "text", NULL);
  assert_string_equal(text, "Rayleigh scattering!");
  free(text);
  char *types = et_types(&t);
  assert_string_equal(types,
                      "run.started step.started:a task.offered:a token* step.completed:a "
                      "run.completed");
  free(types);
  json_t *st = step_of(doc, "a");
  assert_string_equal(ta_str(st, "text"), "Rayleigh scattering!");
  assert_string_equal(ta_str(st, "task_id"), task_id);
  assert_string_equal(ta_str(st, "reply_to"), want_reply);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "usage"), "out_tokens")),
                   7);

  /* The engine closed the task on its reply topic, after everything the agent sent. */
  et_wait(&t, pred_closed, want_reply);
  size_t pos = 0;
  char *reason = closed_reason(&t, want_reply, &pos);
  assert_string_equal(reason, "completed");
  assert_int_equal(pos, 5);
  free(reason);

  wf_engine_stats_t es;
  wf_engine_stats(t.eng, &es);
  assert_int_equal(es.tasks_offered, 1);
  assert_int_equal(es.task_results, 1);
  free(want_reply);
  json_decref(doc);
  ta_close(&a);
  et_close(&t);
}

static void test_a_missed_heartbeat_fails_the_attempt_and_the_task_is_offered_again(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  add_research(&t, 200, 20000, ",'retry':{'max_attempts':3,'backoff_ms':0,'on':['timeout']}");
  ta_t a;
  ta_open(&a, &t);
  ta_join(&a, "g");
  const char *id = et_start(&t, "research", "{'q':'x'}");
  et_watch(&t, id);

  /* Attempt 1: claimed, then silence. */
  ta_wait_tasks(&a, 1);
  ta_reply(&a, 0, "task.heartbeat", "{}");
  ta_ack(&a, 0);
  ta_wait_tasks(&a, 2);
  json_t *t1 = ta_task(&a, 0), *t2 = ta_task(&a, 1);
  assert_int_equal(json_integer_value(json_object_get(t2, "attempt")), 2);
  assert_string_not_equal(ta_str(t2, "task_id"), ta_str(t1, "task_id"));
  assert_null(json_object_get(json_array_get(a.tasks, 1), "redelivered")); /* a new task */
  json_t *retrying = et_last_event(&t, "step.retrying");
  assert_non_null(retrying);
  const char *msg =
      json_string_value(json_object_get(json_object_get(retrying, "error"), "message"));
  assert_non_null(strstr(msg, "heartbeat"));

  /* A late answer to attempt 1 is not taken, over HTTP or on its reply topic. */
  json_t *body = json_pack("{s:s}", "output", "late");
  char *why = NULL;
  assert_int_equal(wf_task_result(t.eng, NULL, ta_str(t1, "task_id"), body, &why), -EALREADY);
  assert_non_null(strstr(why, "not waiting"));
  free(why);
  json_decref(body);
  ta_reply(&a, 0, "task.result", "{'output':'late'}");

  ta_ack(&a, 1);
  ta_reply(&a, 1, "task.result", "'on time'");
  json_t *doc = et_finish(&t, id);
  assert_string_equal(et_status_of(doc), "completed");
  assert_string_equal(json_string_value(json_object_get(doc, "output")), "on time");
  assert_int_equal(et_count(&t, "step.retrying", "a"), 1);
  assert_int_equal(et_count(&t, "task.offered", "a"), 2);

  char *r1 = closed_reason(&t, ta_str(t1, "reply_to"), NULL);
  assert_string_equal(r1, "heartbeat");
  free(r1);
  wf_engine_stats_t es;
  wf_engine_stats(t.eng, &es);
  assert_int_equal(es.task_heartbeat_misses, 1);
  json_decref(doc);
  ta_close(&a);
  et_close(&t);
}

static void test_a_task_nobody_answers_fails_at_its_timeout(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  add_research(&t, 1000, 300, ",'retry':{'max_attempts':1}");
  const char *id = et_start(&t, "research", "{'q':'x'}");
  et_watch(&t, id);
  json_t *doc = et_finish(&t, id);
  assert_string_equal(et_status_of(doc), "failed");
  assert_string_equal(err_class(doc), "timeout");
  /* The task was offered all the same and is closed for a late agent. */
  const char *reply = ta_str(step_of(doc, "a"), "reply_to");
  assert_non_null(reply);
  et_wait(&t, pred_closed, reply);
  char *reason = closed_reason(&t, reply, NULL);
  assert_string_equal(reason, "timeout");
  free(reason);
  json_decref(doc);
  et_close(&t);
}

static void test_a_result_after_the_run_was_cancelled_is_rejected(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  add_research(&t, 5000, 20000, NULL);
  ta_t a;
  ta_open(&a, &t);
  ta_join(&a, "g");
  const char *id = et_start(&t, "research", "{'q':'x'}");
  et_watch(&t, id);
  ta_wait_tasks(&a, 1);
  ta_reply(&a, 0, "task.partial", "{'text':'half'}");
  ta_ack(&a, 0);
  ta_wait_pubacks(&a, 1);

  assert_int_equal(wf_run_cancel(t.eng, NULL, id), 0);
  json_t *doc = et_finish(&t, id);
  assert_string_equal(et_status_of(doc), "cancelled");
  assert_string_equal(ta_str(step_of(doc, "a"), "status"), "cancelled");

  const char *task_id = ta_str(ta_task(&a, 0), "task_id");
  json_t *body = json_pack("{s:{s:i}}", "output", "n", 1);
  char *why = NULL;
  assert_int_equal(wf_task_result(t.eng, NULL, task_id, body, &why), -EALREADY);
  assert_non_null(strstr(why, id));
  free(why);
  /* Other tenants, unknown runs and ids that are no task ids are unknown. */
  assert_int_equal(wf_task_result(t.eng, "acme", task_id, body, NULL), -ENOENT);
  assert_int_equal(wf_task_result(t.eng, NULL, "r_0000.0123456789abcdef.1", body, NULL), -ENOENT);
  assert_int_equal(wf_task_result(t.eng, NULL, "nonsense", body, NULL), -ENOENT);
  json_t *bad = json_pack("{s:s,s:s}", "output", "x", "error", "y");
  assert_int_equal(wf_task_result(t.eng, NULL, task_id, bad, NULL), -EINVAL);
  json_decref(bad);
  json_decref(body);

  /* Published on the reply topic, it lands after task.closed and changes nothing. */
  ta_reply(&a, 0, "task.result", "{'output':'too late'}");
  ta_wait_pubacks(&a, 2);
  const char *reply = ta_str(ta_task(&a, 0), "reply_to");
  size_t pos = 0;
  char *reason = closed_reason(&t, reply, &pos);
  assert_string_equal(reason, "cancelled");
  free(reason);
  json_t *evs = topic_events(&t, reply);
  assert_int_equal(json_array_size(evs), pos + 2);
  assert_string_equal(ta_str(json_array_get(evs, pos + 1), "type"), "task.result");
  json_decref(evs);
  json_decref(doc);
  doc = et_get(&t, id);
  assert_string_equal(et_status_of(doc), "cancelled");
  assert_int_equal(et_count(&t, "step.completed", "a"), 0);
  json_decref(doc);
  ta_close(&a);
  et_close(&t);
}

static void test_results_over_http_complete_or_fail_the_step(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  add_research(&t, 5000, 20000, NULL);
  ta_t a;
  ta_open(&a, &t);
  ta_join(&a, "g");
  const char *ok = et_start(&t, "research", "{'q':'one'}");
  et_watch(&t, ok);
  ta_wait_tasks(&a, 1);
  ta_ack(&a, 0);
  const char *task_id = ta_str(ta_task(&a, 0), "task_id");
  json_t *body = json_pack("{s:{s:i},s:{s:i}}", "output", "k", 1, "usage", "in_tokens", 2);
  assert_int_equal(wf_task_result(t.eng, NULL, task_id, body, NULL), 0);
  assert_int_equal(wf_task_result(t.eng, NULL, task_id, body, NULL), -EALREADY);
  json_decref(body);
  json_t *doc = et_finish(&t, ok);
  assert_string_equal(et_status_of(doc), "completed");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "output"), "k")), 1);
  json_decref(doc);

  /* An error is agent_error, which the default retry policy does not retry. */
  const char *bad = et_start(&t, "research", "{'q':'two'}");
  et_watch(&t, bad);
  ta_wait_tasks(&a, 2);
  ta_ack(&a, 1);
  body = json_pack("{s:{s:s}}", "error", "message", "no sources found");
  assert_int_equal(wf_task_result(t.eng, NULL, ta_str(ta_task(&a, 1), "task_id"), body, NULL), 0);
  json_decref(body);
  doc = et_finish(&t, bad);
  assert_string_equal(et_status_of(doc), "failed");
  assert_string_equal(err_class(doc), "agent_error");
  assert_non_null(
      strstr(json_string_value(json_object_get(json_object_get(doc, "error"), "message")),
             "no sources found"));
  assert_int_equal(et_count(&t, "step.retrying", NULL), 0);
  json_decref(doc);
  ta_close(&a);
  et_close(&t);
}

static void test_a_task_published_before_the_groups_first_member_waits_for_it(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  add_research(&t, 5000, 20000, NULL);
  const char *id = et_start(&t, "research", "{'q':'x'}");
  et_watch(&t, id);
  et_wait_event(&t, "task.offered", "a", 1);
  /* The first member joins live, after the task was durable. */
  ta_t a;
  ta_open(&a, &t);
  ta_join(&a, "g");
  ta_wait_tasks(&a, 1);
  ta_ack(&a, 0);
  ta_reply(&a, 0, "task.result", "{'output':'found'}");
  json_t *doc = et_finish(&t, id);
  assert_string_equal(et_status_of(doc), "completed");
  json_decref(doc);
  ta_close(&a);
  et_close(&t);
}

static void test_a_topic_that_is_no_room_fails_the_step_without_retry(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'badtopic','inputs':{'room':{'type':'string','required':true}},"
        " 'steps':[{'id':'a','type':'agent','topic':'{{ input.room }}'}]}");
  const char *id = et_start(&t, "badtopic", "{'room':'no spaces allowed'}");
  et_watch(&t, id);
  json_t *doc = et_finish(&t, id);
  assert_string_equal(et_status_of(doc), "failed");
  assert_string_equal(err_class(doc), "invalid_input");
  assert_non_null(
      strstr(json_string_value(json_object_get(json_object_get(doc, "error"), "message")), "room"));
  assert_int_equal(et_count(&t, "step.started", "a"), 1);
  json_decref(doc);
  et_close(&t);
}

static void test_a_group_name_outside_the_allowed_characters_is_a_load_error(void **state) {
  (void)state;
  char *errs = wft_errors_of(
      "{'name':'g','steps':[{'id':'a','type':'agent','topic':'t','group':'no spaces'}]}", NULL);
  assert_non_null(strstr(errs, "steps[0].group: must match [A-Za-z0-9_.-]{1,64}"));
  free(errs);
  errs = wft_errors_of(
      "{'name':'g','steps':[{'id':'a','type':'agent','topic':'t','group':'ok.name_1-x'}]}", NULL);
  assert_string_equal(errs, "");
  free(errs);
}

/* Drops everything but the registry, reopens the same file and resumes. */
static void crash_and_resume(et_t *t) {
  et_stop_engine(t);
  store_close(t->store);
  t->store = NULL;
  json_array_clear(t->events);
  et_open_base(t, true);
  et_engine(t);
  size_t n = 0;
  assert_int_equal(wf_engine_resume(t->eng, &n), 0);
  assert_int_equal(n, 1);
}

static void test_a_resumed_run_offers_an_unfinished_task_again(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, true);
  add_research(&t, 5000, 60000, NULL);
  ta_t a;
  ta_open(&a, &t);
  ta_join(&a, "g");
  char id[WF_RUN_ID_MAX + 1];
  snprintf(id, sizeof id, "%s", et_start(&t, "research", "{'q':'x'}"));
  et_watch(&t, id);
  ta_wait_tasks(&a, 1);
  ta_reply(&a, 0, "task.partial", "{'text':'lost '}");
  ta_ack(&a, 0);
  ta_wait_pubacks(&a, 1);
  char *old_id = xstrdup(ta_str(ta_task(&a, 0), "task_id"));
  char *old_reply = xstrdup(ta_str(ta_task(&a, 0), "reply_to"));
  ta_close(&a);

  crash_and_resume(&t);
  et_watch(&t, id);
  ta_open(&a, &t);
  ta_join(&a, "g");
  ta_wait_tasks(&a, 1);
  json_t *task = ta_task(&a, 0);
  assert_int_equal(json_integer_value(json_object_get(task, "attempt")), 2);
  assert_string_not_equal(ta_str(task, "task_id"), old_id);

  /* The interrupted task is closed as superseded and no longer takes answers. */
  et_wait(&t, pred_closed, old_reply);
  char *reason = closed_reason(&t, old_reply, NULL);
  assert_string_equal(reason, "superseded");
  free(reason);
  json_t *body = json_pack("{s:s}", "output", "old");
  assert_int_equal(wf_task_result(t.eng, NULL, old_id, body, NULL), -EALREADY);
  json_decref(body);

  ta_ack(&a, 0);
  ta_reply(&a, 0, "task.partial", "{'text':'kept'}");
  ta_reply(&a, 0, "task.result", "{'output':'done'}");
  json_t *doc = et_finish(&t, id);
  assert_string_equal(et_status_of(doc), "completed");
  assert_string_equal(json_string_value(json_object_get(doc, "output")), "done");
  assert_string_equal(ta_str(step_of(doc, "a"), "text"), "kept");
  assert_int_equal(json_integer_value(json_object_get(step_of(doc, "a"), "attempt")), 2);
  json_decref(doc);
  free(old_id);
  free(old_reply);
  ta_close(&a);
  et_close(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_an_agent_takes_the_task_streams_partial_output_and_returns_the_result),
      cmocka_unit_test(test_a_missed_heartbeat_fails_the_attempt_and_the_task_is_offered_again),
      cmocka_unit_test(test_a_task_nobody_answers_fails_at_its_timeout),
      cmocka_unit_test(test_a_result_after_the_run_was_cancelled_is_rejected),
      cmocka_unit_test(test_results_over_http_complete_or_fail_the_step),
      cmocka_unit_test(test_a_task_published_before_the_groups_first_member_waits_for_it),
      cmocka_unit_test(test_a_topic_that_is_no_room_fails_the_step_without_retry),
      cmocka_unit_test(test_a_resumed_run_offers_an_unfinished_task_again),
      cmocka_unit_test(test_a_group_name_outside_the_allowed_characters_is_a_load_error),
  };
  return cmocka_run_group_tests_name("agent step", tests, NULL, NULL);
}
