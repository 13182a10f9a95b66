/* Tests of the model call an llm step makes (workflows/run_llm.c) for profiles that
 * refer to shared profiles of the configuration: the shared provider, model, system
 * prompt and params reach the call, and the workflow's own system and params win.
 * The mock provider's text is a hash of model, system prompt and messages
 * (docs/agents.md, mock_words), so two calls give the same text exactly when they sent
 * the same request: each case is compared with an inline profile spelling out what the
 * call should have been, and with one that differs only by the system prompt. */
#include "engine_test.h"

/* Like et_open, with a registry resolving refs against the given shared profiles. */
static void open_with_profiles(et_t *t, const char *profiles_q) {
  memset(t, 0, sizeof *t);
  t->events = json_array();
  assert_int_equal(uv_loop_init(&t->loop), 0);
  char *text = wft_q(profiles_q);
  json_t *profiles = json_loads(text, 0, NULL);
  free(text);
  assert_non_null(profiles);
  t->reg = wf_registry_new(profiles);
  json_decref(profiles);
  et_open_base(t, false);
  et_engine(t);
}

/* Runs workflow name to completion; returns its output text (free()). */
static char *output_of(et_t *t, const char *name) {
  const char *id = et_start(t, name, NULL);
  json_t *doc = et_finish(t, id);
  assert_string_equal(et_status_of(doc), "completed");
  const char *out = json_string_value(json_object_get(doc, "output"));
  assert_non_null(out);
  char *copy = xstrdup(out);
  json_decref(doc);
  return copy;
}

static size_t words_in(const char *s) {
  size_t n = 0;
  for (const char *p = s; *p; p++)
    if (*p != ' ' && (p == s || p[-1] == ' ')) n++;
  return n;
}

#define PROFILES                                                                          \
  "{'house':{'provider':'mock','model':'m1','system':'Serve {{ run.workflow }} tersely.'," \
  " 'params':{'mock_words':6,'mock_chunk_chars':5}}}"

#define ONE_STEP "'steps':[{'id':'a','type':'llm','agent':'w','prompt':'Say hello.'}]}"

static void test_shared_profile_system_prompt_reaches_the_model_call(void **state) {
  (void)state;
  et_t t;
  open_with_profiles(&t, PROFILES);
  et_wf(&t, "{'name':'viaref','agents':{'w':{'ref':'house'}}," ONE_STEP);
  et_wf(&t, "{'name':'spelled','agents':{'w':{'provider':'mock','model':'m1',"
            "'system':'Serve viaref tersely.','params':{'mock_words':6}}}," ONE_STEP);
  et_wf(&t, "{'name':'nosystem','agents':{'w':{'provider':'mock','model':'m1',"
            "'params':{'mock_words':6}}}," ONE_STEP);
  char *via = output_of(&t, "viaref");
  char *spelled = output_of(&t, "spelled");
  char *nosys = output_of(&t, "nosystem");
  assert_int_equal(words_in(via), 6);
  /* Same model, same rendered system prompt, same message: the same request. */
  assert_string_equal(via, spelled);
  /* Without the system prompt the request differs, and so does the text. */
  assert_string_not_equal(via, nosys);
  free(via);
  free(spelled);
  free(nosys);
  et_close(&t);
}

static void test_workflow_system_and_params_win_over_the_shared_profile(void **state) {
  (void)state;
  et_t t;
  open_with_profiles(&t, PROFILES);
  et_wf(&t, "{'name':'override','agents':{'w':{'ref':'house','system':'Be verbose.',"
            "'params':{'mock_words':3}}}," ONE_STEP);
  et_wf(&t, "{'name':'spelled','agents':{'w':{'provider':'mock','model':'m1',"
            "'system':'Be verbose.','params':{'mock_words':3}}}," ONE_STEP);
  et_wf(&t, "{'name':'shared_system','agents':{'w':{'provider':'mock','model':'m1',"
            "'system':'Serve override tersely.','params':{'mock_words':3}}}," ONE_STEP);
  char *over = output_of(&t, "override");
  char *spelled = output_of(&t, "spelled");
  char *shared = output_of(&t, "shared_system");
  /* mock_words from the workflow replaced the shared 6; model m1 came from the share. */
  assert_int_equal(words_in(over), 3);
  assert_string_equal(over, spelled);
  assert_string_not_equal(over, shared);
  free(over);
  free(spelled);
  free(shared);
  et_close(&t);
}

static void test_ref_profile_outlives_the_registry_that_resolved_it(void **state) {
  (void)state;
  char *text = wft_q(PROFILES);
  json_t *profiles = json_loads(text, 0, NULL);
  free(text);
  wf_registry_t *reg = wf_registry_new(profiles);
  json_decref(profiles);
  char *doc = wft_q("{'name':'viaref','agents':{'w':{'ref':'house'}}," ONE_STEP);
  wf_workflow_t *wf = NULL;
  assert_int_equal(wf_load_buffer(doc, strlen(doc), "t.json", reg, &wf, NULL), 0);
  free(doc);
  wf_registry_free(reg);
  /* The registry's copy of the profiles is gone; the workflow still runs on them
   * (ASan reports a use after free here if it only borrowed them). */
  et_t t;
  open_with_profiles(&t, "{}");
  assert_int_equal(wf_registry_add(t.reg, wf), 0);
  wf_free(wf);
  char *out = output_of(&t, "viaref");
  assert_int_equal(words_in(out), 6);
  free(out);
  et_close(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shared_profile_system_prompt_reaches_the_model_call),
      cmocka_unit_test(test_workflow_system_and_params_win_over_the_shared_profile),
      cmocka_unit_test(test_ref_profile_outlives_the_registry_that_resolved_it),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
