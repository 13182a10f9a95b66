/* Tests for the step kinds of the run engine (workflows/run_kinds.c, run_llm.c) end to
 * end on small workflows: parallel, map, switch, loop, workflow, transform, output
 * schemas and catch routes. The agent kind has its own tests (test_agent.c). */
#include "engine_test.h"

/* Runs workflow `name` (already added) with input to its end; returns the document. */
static json_t *run_to_end(et_t *t, const char *name, const char *input) {
  const char *id = et_start(t, name, input);
  et_watch(t, id);
  return et_finish(t, id);
}

static void assert_json(const json_t *got, const char *want_q) {
  char *text = wft_q(want_q);
  json_t *want = json_loads(text, JSON_DECODE_ANY, NULL);
  free(text);
  assert_non_null(want);
  if (!json_equal((json_t *)got, want)) {
    char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS);
    fail_msg("got %s, want %s", g, want_q);
  }
  json_decref(want);
}

static const char *step_status(json_t *doc, const char *key) {
  json_t *s = json_object_get(json_object_get(doc, "steps"), key);
  return s ? json_string_value(json_object_get(s, "status")) : "(none)";
}

static void test_parallel_join_all_outputs_every_branch_in_order(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(
      &t,
      "{'name':'par','agents':{'w':{'provider':'mock','params':{'mock_text':'slow one',"
      "  'mock_tokens_per_s':200}}},"
      " 'steps':[{'id':'p','type':'parallel','branches':["
      "   [{'id':'x','type':'llm','agent':'w','prompt':'x'}],"
      "   [{'id':'y','type':'transform','value':'fast'}]]},"
      "  {'id':'z','type':'transform','value':['{{ steps.x.output }}','{{ steps.y.output }}']}]}");
  json_t *doc = run_to_end(&t, "par", NULL);
  assert_string_equal(et_status_of(doc), "completed");
  assert_json(json_object_get(json_object_get(json_object_get(doc, "steps"), "p"), "output"),
              "['slow one','fast']");
  assert_json(json_object_get(doc, "output"), "['slow one','fast']");
  assert_string_equal(step_status(doc, "p/x"), "completed");
  assert_string_equal(step_status(doc, "p/y"), "completed");
  json_decref(doc);
  et_close(&t);
}

static void test_parallel_join_any_takes_the_first_and_cancels_the_rest(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'any','agents':{'slow':{'provider':'mock','params':{'mock_words':100,"
        "  'mock_tokens_per_s':20}}},"
        " 'steps':[{'id':'p','type':'parallel','join':'any','branches':["
        "   [{'id':'x','type':'llm','agent':'slow','prompt':'x'}],"
        "   [{'id':'y','type':'transform','value':'quick'}]]}]}");
  json_t *doc = run_to_end(&t, "any", NULL);
  assert_json(json_object_get(doc, "output"), "'quick'");
  assert_string_equal(step_status(doc, "p/x"), "cancelled");
  assert_int_equal(et_count(&t, "step.failed", "p/x"), 1);
  agent_client_stats_t st;
  agent_client_stats(t.agents, &st);
  assert_int_equal(st.running + st.queued, 0);
  json_decref(doc);
  et_close(&t);
}

static void test_map_runs_every_item_with_item_and_index_within_its_cap(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'map','inputs':{'items':{'type':'array','required':true}},"
        " 'steps':[{'id':'m','type':'map','over':'{{ input.items }}','concurrency':2,"
        "   'steps':[{'id':'t','type':'transform','value':'{{ item }}-{{ index }}'}]}]}");
  json_t *doc = run_to_end(&t, "map", "{'items':['a','b','c']}");
  assert_json(json_object_get(doc, "output"), "['a-0','b-1','c-2']");
  assert_string_equal(step_status(doc, "m[2]/t"), "completed");
  json_decref(doc);
  et_close(&t);
}

static const char *const map_fail =
    "{'name':'mapf','inputs':{'items':{'type':'array','required':true}},"
    " 'steps':[{'id':'m','type':'map','over':'{{ input.items }}','tolerated_failures':%d,"
    "   'steps':[{'id':'t','type':'transform','value':'{{ item.a }}'}]}]}";

static void test_map_tolerates_failed_items_up_to_its_limit(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  char *doc_text = xasprintf(map_fail, 1);
  et_wf(&t, doc_text);
  free(doc_text);
  json_t *doc = run_to_end(&t, "mapf", "{'items':[{'a':1},{'b':2},{'a':3}]}");
  assert_string_equal(et_status_of(doc), "completed");
  assert_json(json_object_get(doc, "output"), "[1,null,3]");
  assert_string_equal(step_status(doc, "m[1]/t"), "failed");
  json_decref(doc);
  et_close(&t);
}

static void test_map_fails_past_its_tolerated_failures(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  char *doc_text = xasprintf(map_fail, 0);
  et_wf(&t, doc_text);
  free(doc_text);
  json_t *doc = run_to_end(&t, "mapf", "{'items':[{'a':1},{'b':2},{'a':3}]}");
  assert_string_equal(et_status_of(doc), "failed");
  json_t *err = json_object_get(doc, "error");
  assert_string_equal(json_string_value(json_object_get(err, "class")), "template");
  assert_string_equal(json_string_value(json_object_get(err, "step")), "m");
  assert_non_null(strstr(json_string_value(json_object_get(err, "message")), "item.a"));
  json_decref(doc);
  et_close(&t);
}

static void test_switch_runs_the_matching_case_or_the_default(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'sw','inputs':{'kind':{'type':'string','required':true}},"
        " 'steps':[{'id':'s','type':'switch','value':'{{ input.kind }}',"
        "   'cases':{'a':[{'id':'ca','type':'transform','value':'was a'}],"
        "            'b':[{'id':'cb','type':'transform','value':'was b'}]},"
        "   'default':[{'id':'cd','type':'transform','value':'other'}]}]}");
  json_t *doc = run_to_end(&t, "sw", "{'kind':'b'}");
  assert_json(json_object_get(doc, "output"), "'was b'");
  assert_string_equal(step_status(doc, "s/ca"), "(none)");
  json_decref(doc);
  doc = run_to_end(&t, "sw", "{'kind':'zzz'}");
  assert_json(json_object_get(doc, "output"), "'other'");
  json_decref(doc);
  et_close(&t);
}

static void test_loop_iterates_until_its_condition_holds(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'loop','steps':[{'id':'l','type':'loop','max_iterations':10,"
        "   'until':'{{ steps.t.output == 2 }}',"
        "   'steps':[{'id':'t','type':'transform','value':'{{ iteration }}'}]}]}");
  json_t *doc = run_to_end(&t, "loop", NULL);
  assert_json(json_object_get(doc, "output"), "2");
  assert_string_equal(step_status(doc, "l#0/t"), "completed");
  assert_string_equal(step_status(doc, "l#2/t"), "completed");
  assert_string_equal(step_status(doc, "l#3/t"), "(none)");
  json_decref(doc);
  et_close(&t);
}

static void test_loop_stops_at_max_iterations(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'loop3','steps':[{'id':'l','type':'loop','max_iterations':3,"
        "   'until':'{{ false }}',"
        "   'steps':[{'id':'t','type':'transform','value':'{{ iteration }}'}]}]}");
  json_t *doc = run_to_end(&t, "loop3", NULL);
  assert_json(json_object_get(doc, "output"), "2");
  assert_int_equal(et_count(&t, "step.completed", NULL), 4); /* 3 iterations + the loop */
  json_decref(doc);
  et_close(&t);
}

static void test_a_sub_workflow_runs_inline_with_its_own_input_and_output(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'child','inputs':{'n':{'type':'integer','required':true}},"
        " 'steps':[{'id':'double','type':'transform','value':['{{ input.n }}','{{ input.n }}']}],"
        " 'output':{'pair':'{{ steps.double.output }}','who':'{{ run.workflow }}'}}");
  et_wf(&t,
        "{'name':'parent','steps':[{'id':'w','type':'workflow','workflow':'child',"
        "   'input':{'n':7}}]}");
  json_t *doc = run_to_end(&t, "parent", NULL);
  assert_json(json_object_get(doc, "output"), "{'pair':[7,7],'who':'child'}");
  assert_string_equal(step_status(doc, "w/double"), "completed");
  json_decref(doc);
  et_close(&t);
}

static void test_catch_goto_skips_to_the_named_later_step(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'jump','inputs':{'o':{'type':'object','default':{}}},"
        " 'steps':[{'id':'a','type':'transform','value':'{{ input.o.missing }}',"
        "   'catch':{'goto':'c'}},"
        "  {'id':'b','type':'transform','value':'skipped'},"
        "  {'id':'c','type':'transform','value':'landed'}]}");
  json_t *doc = run_to_end(&t, "jump", NULL);
  char *types = et_types(&t);
  assert_string_equal(types,
                      "run.started step.started:a step.failed:a step.started:c "
                      "step.completed:c run.completed");
  free(types);
  assert_json(json_object_get(doc, "output"), "'landed'");
  json_t *a = json_object_get(json_object_get(doc, "steps"), "a");
  assert_string_equal(json_string_value(json_object_get(a, "caught")), "goto");
  json_decref(doc);
  et_close(&t);
}

static void test_output_schema_parses_and_validates_the_text(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  /* The quote inside the text is written \u0022 (wft_q turns every ' into "). */
  et_wf(&t,
        "{'name':'schema','agents':{'w':{'provider':'mock','params':{"
        "   'mock_text':'```json\\n{\\u0022score\\u0022: 4}\\n```'}}},"
        " 'steps':[{'id':'a','type':'llm','agent':'w','prompt':'score it',"
        "   'output_schema':{'type':'object','required':['score'],"
        "     'properties':{'score':{'type':'integer'}}}}]}");
  json_t *doc = run_to_end(&t, "schema", NULL);
  assert_string_equal(et_status_of(doc), "completed");
  assert_json(json_object_get(doc, "output"), "{'score':4}");
  json_decref(doc);
  et_close(&t);
}

static void test_output_that_breaks_the_schema_is_an_invalid_output_error(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'schema','agents':{'w':{'provider':'mock','params':{"
        "   'mock_text':'{\\u0022score\\u0022: \\u0022high\\u0022}'}}},"
        " 'steps':[{'id':'a','type':'llm','agent':'w','prompt':'score it',"
        "   'retry':{'max_attempts':2,'backoff_ms':0,'on':['invalid_output']},"
        "   'output_schema':{'type':'object','required':['score'],"
        "     'properties':{'score':{'type':'integer'}}}}]}");
  json_t *doc = run_to_end(&t, "schema", NULL);
  assert_string_equal(et_status_of(doc), "failed");
  assert_int_equal(et_count(&t, "step.retrying", "a"), 1);
  json_t *err = json_object_get(doc, "error");
  assert_string_equal(json_string_value(json_object_get(err, "class")), "invalid_output");
  assert_non_null(strstr(json_string_value(json_object_get(err, "message")), "score"));
  json_decref(doc);
  et_close(&t);
}

static void test_a_step_timeout_fails_a_slow_model_call(void **state) {
  (void)state;
  et_t t;
  et_open(&t, NULL, false);
  et_wf(&t,
        "{'name':'late','agents':{'w':{'provider':'mock','params':{'mock_first_token_ms':5000}}},"
        " 'steps':[{'id':'a','type':'llm','agent':'w','prompt':'x','timeout_ms':30,"
        "   'retry':{'max_attempts':1}}]}");
  json_t *doc = run_to_end(&t, "late", NULL);
  json_t *err = json_object_get(doc, "error");
  assert_string_equal(json_string_value(json_object_get(err, "class")), "timeout");
  agent_client_stats_t st;
  agent_client_stats(t.agents, &st);
  assert_int_equal(st.running + st.queued, 0);
  json_decref(doc);
  et_close(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parallel_join_all_outputs_every_branch_in_order),
      cmocka_unit_test(test_parallel_join_any_takes_the_first_and_cancels_the_rest),
      cmocka_unit_test(test_map_runs_every_item_with_item_and_index_within_its_cap),
      cmocka_unit_test(test_map_tolerates_failed_items_up_to_its_limit),
      cmocka_unit_test(test_map_fails_past_its_tolerated_failures),
      cmocka_unit_test(test_switch_runs_the_matching_case_or_the_default),
      cmocka_unit_test(test_loop_iterates_until_its_condition_holds),
      cmocka_unit_test(test_loop_stops_at_max_iterations),
      cmocka_unit_test(test_a_sub_workflow_runs_inline_with_its_own_input_and_output),
      cmocka_unit_test(test_catch_goto_skips_to_the_named_later_step),
      cmocka_unit_test(test_output_schema_parses_and_validates_the_text),
      cmocka_unit_test(test_output_that_breaks_the_schema_is_an_invalid_output_error),
      cmocka_unit_test(test_a_step_timeout_fails_a_slow_model_call),
  };
  return cmocka_run_group_tests_name("workflows engine kinds", tests, NULL, NULL);
}
