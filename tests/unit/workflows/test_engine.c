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
                              json_string_value(json_object_get(doc, "topic")), "status",
                              "running", "input", json_object_get(doc, "input"), "output", "error",
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_run_of_llm_then_transform_publishes_the_exact_event_sequence),
  };
  return cmocka_run_group_tests_name("workflows engine", tests, NULL, NULL);
}
