/* Tests for resuming runs after a crash (workflows/run_api.c wf_engine_resume and the
 * memoisation in run_exec.c): a run goes half way on a SQLite store, the engine, hub and
 * client are dropped without a goodbye and the store closed, as a kill -9 leaves them;
 * a new set on the same file resumes it. Only unfinished steps run again. */
#include "engine_test.h"

/* Drops everything but the registry, reopens the same file and resumes. */
static size_t crash_and_resume(et_t *t) {
  et_stop_engine(t);
  store_close(t->store);
  t->store = NULL;
  json_array_clear(t->events);
  et_open_base(t, true);
  et_engine(t);
  size_t n = 0;
  assert_int_equal(wf_engine_resume(t->eng, &n), 0);
  return n;
}

static const char *json_str(const json_t *j, const char *k) {
  return json_string_value(json_object_get(j, k));
}

static void test_a_crashed_run_resumes_and_reruns_only_its_unfinished_steps(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, true);
  et_wf(&t,
        "{'name':'half','agents':{'slow':{'provider':'mock','params':{'mock_words':60,"
        "   'mock_chunk_chars':4,'mock_tokens_per_s':200}}},"
        " 'steps':[{'id':'a','type':'transform','value':'first'},"
        "  {'id':'b','type':'llm','agent':'slow','prompt':'after {{ steps.a.output }}'},"
        "  {'id':'c','type':'transform','value':{'a':'{{ steps.a.output }}',"
        "     'b':'{{ steps.b.output }}'}}]}");
  char id[WF_RUN_ID_MAX + 1];
  snprintf(id, sizeof id, "%s", et_start(&t, "half", NULL));
  et_watch(&t, id);
  et_wait_event(&t, "token", "b", 2);
  assert_int_equal(et_count(&t, "step.completed", "a"), 1);

  assert_int_equal(crash_and_resume(&t), 1);
  et_watch(&t, id);
  json_t *doc = et_finish(&t, id);
  assert_string_equal(et_status_of(doc), "completed");

  /* The topic holds both lives; a ran once, b twice, c once. */
  assert_int_equal(et_count(&t, "run.started", NULL), 1);
  assert_int_equal(et_count(&t, "step.started", "a"), 1);
  assert_int_equal(et_count(&t, "step.completed", "a"), 1); /* republished, deduped */
  assert_int_equal(et_count(&t, "step.started", "b"), 2);
  assert_int_equal(et_count(&t, "step.completed", "b"), 1);
  assert_int_equal(et_count(&t, "step.started", "c"), 1);
  assert_int_equal(et_count(&t, "run.resumed", NULL), 1);
  json_t *resumed = et_last_event(&t, "run.resumed");
  json_t *rerun = json_object_get(resumed, "steps");
  assert_int_equal(json_array_size(rerun), 1);
  assert_string_equal(json_string_value(json_array_get(rerun, 0)), "b");

  /* The new client made exactly one model call: b's second attempt. */
  agent_client_stats_t st;
  agent_client_stats(t.agents, &st);
  assert_int_equal(st.started, 1);

  json_t *b = json_object_get(json_object_get(doc, "steps"), "b");
  assert_int_equal(json_integer_value(json_object_get(b, "attempt")), 2);
  char *text2 = et_tokens(&t, "b", 2, "text", NULL);
  assert_string_equal(json_str(b, "text"), text2);
  assert_string_equal(json_str(json_object_get(doc, "output"), "b"), text2);
  assert_string_equal(json_str(json_object_get(doc, "output"), "a"), "first");
  free(text2);
  assert_int_equal(json_integer_value(json_object_get(doc, "resumes")), 1);

  /* Nothing left to resume. */
  size_t n = 99;
  assert_int_equal(wf_engine_resume(t.eng, &n), 0);
  assert_int_equal(n, 0);
  json_decref(doc);
  et_close(&t);
}

static void test_a_map_resumes_inside_its_items(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, true);
  et_wf(&t,
        "{'name':'fan','inputs':{'items':{'type':'array','default':[1,2,3]}},"
        " 'agents':{'slow':{'provider':'mock','params':{'mock_words':30,"
        "   'mock_chunk_chars':4,'mock_tokens_per_s':200}}},"
        " 'steps':[{'id':'m','type':'map','over':'{{ input.items }}','concurrency':1,"
        "   'steps':[{'id':'ask','type':'llm','agent':'slow','prompt':'item {{ item }}'}]}]}");
  char id[WF_RUN_ID_MAX + 1];
  snprintf(id, sizeof id, "%s", et_start(&t, "fan", NULL));
  et_watch(&t, id);
  et_wait_event(&t, "token", "m[1]/ask", 1);
  assert_int_equal(crash_and_resume(&t), 1);
  et_watch(&t, id);
  json_t *doc = et_finish(&t, id);
  assert_string_equal(et_status_of(doc), "completed");
  json_t *resumed = et_last_event(&t, "run.resumed");
  assert_string_equal(json_string_value(json_array_get(json_object_get(resumed, "steps"), 0)),
                      "m[1]/ask");
  assert_string_equal(json_string_value(json_array_get(json_object_get(resumed, "containers"), 0)),
                      "m");
  assert_int_equal(et_count(&t, "step.started", "m[0]/ask"), 1);
  assert_int_equal(et_count(&t, "step.started", "m[1]/ask"), 2);
  assert_int_equal(et_count(&t, "step.started", "m[2]/ask"), 1);
  agent_client_stats_t st;
  agent_client_stats(t.agents, &st);
  assert_int_equal(st.started, 2);
  json_t *out = json_object_get(doc, "output");
  assert_int_equal(json_array_size(out), 3);
  for (size_t i = 0; i < 3; i++) assert_true(json_string_length(json_array_get(out, i)) > 0);
  json_decref(doc);
  et_close(&t);
}

static void test_a_waiting_approval_survives_a_restart_with_its_deadline(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, true);
  et_wf(&t,
        "{'name':'gate','steps':[{'id':'ok','type':'approval','prompt':'go?','timeout_ms':600000},"
        "  {'id':'after','type':'transform','value':'{{ steps.ok.output.approved }}'}]}");
  char id[WF_RUN_ID_MAX + 1];
  snprintf(id, sizeof id, "%s", et_start(&t, "gate", NULL));
  et_watch(&t, id);
  et_wait_event(&t, "approval.requested", "ok", 1);
  int64_t deadline =
      json_integer_value(json_object_get(et_last_event(&t, "approval.requested"), "deadline_ms"));
  assert_true(deadline > 0);
  assert_int_equal(crash_and_resume(&t), 1);
  et_watch(&t, id);
  et_wait_event(&t, "approval.requested", "ok", 2);
  json_t *again = et_last_event(&t, "approval.requested");
  assert_int_equal(json_integer_value(json_object_get(again, "deadline_ms")), deadline);
  assert_int_equal(json_integer_value(json_object_get(again, "attempt")), 2);
  assert_int_equal(wf_run_approve(t.eng, NULL, id, "ok", true, NULL), 0);
  json_t *doc = et_finish(&t, id);
  assert_true(json_is_true(json_object_get(doc, "output")));
  json_decref(doc);
  et_close(&t);
}

static void test_a_finished_run_is_read_from_the_store_after_a_restart(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, true);
  et_wf(&t, "{'name':'one','steps':[{'id':'a','type':'transform','value':[1,2]}]}");
  char id[WF_RUN_ID_MAX + 1];
  snprintf(id, sizeof id, "%s", et_start(&t, "one", NULL));
  json_t *before = et_finish(&t, id);
  uv_run(&t.loop, UV_RUN_NOWAIT);
  assert_int_equal(crash_and_resume(&t), 0);
  json_t *after = et_get(&t, id);
  assert_true(json_equal(before, after));
  assert_int_equal(wf_run_cancel(t.eng, NULL, id), -EALREADY);
  json_decref(before);
  json_decref(after);
  et_close(&t);
}

static void test_a_run_whose_workflow_is_gone_fails_instead_of_resuming(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, true);
  et_wf(&t,
        "{'name':'gone','agents':{'slow':{'provider':'mock','params':{'mock_words':60,"
        "   'mock_tokens_per_s':100}}},"
        " 'steps':[{'id':'a','type':'llm','agent':'slow','prompt':'x'}]}");
  char id[WF_RUN_ID_MAX + 1];
  snprintf(id, sizeof id, "%s", et_start(&t, "gone", NULL));
  et_watch(&t, id);
  et_wait_event(&t, "token", "a", 1);
  wf_registry_free(t.reg);
  t.reg = wf_registry_new(NULL); /* the next process no longer has the file */
  assert_int_equal(crash_and_resume(&t), 0);
  json_t *doc = et_get(&t, id);
  assert_string_equal(et_status_of(doc), "failed");
  json_t *err = json_object_get(doc, "error");
  assert_string_equal(json_string_value(json_object_get(err, "class")), "workflow_missing");
  et_watch(&t, id);
  et_wait_event(&t, "run.failed", NULL, 1);
  json_decref(doc);
  et_close(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_a_crashed_run_resumes_and_reruns_only_its_unfinished_steps),
      cmocka_unit_test(test_a_map_resumes_inside_its_items),
      cmocka_unit_test(test_a_waiting_approval_survives_a_restart_with_its_deadline),
      cmocka_unit_test(test_a_finished_run_is_read_from_the_store_after_a_restart),
      cmocka_unit_test(test_a_run_whose_workflow_is_gone_fails_instead_of_resuming),
  };
  return cmocka_run_group_tests_name("workflows run resume", tests, NULL, NULL);
}
