/* Tests for workflows/load.c: size and depth limits, JSON syntax errors with positions,
 * duplicate keys, unreadable files, reference counting, summaries and run inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wf_test_util.h"

static char *load_errors(const char *text, size_t len, int want_rc) {
  wf_workflow_t *wf = NULL;
  wf_errors_t *errs = NULL;
  int rc = wf_load_buffer(text, len, "t.json", NULL, &wf, &errs);
  assert_int_equal(rc, want_rc);
  assert_null(wf);
  char *s = wf_errors_format(errs);
  wf_errors_free(errs);
  return s;
}

static void test_load_reports_json_syntax_errors_with_line_and_column(void **state) {
  (void)state;
  const char *doc = "{\n  \"name\": \"t\",\n  \"steps\": [,]\n}\n";
  char *s = load_errors(doc, strlen(doc), -EINVAL);
  assert_string_equal(s, "t.json:3:13: invalid JSON: unexpected token near ','\n");
  free(s);
  s = load_errors("", 0, -EINVAL);
  assert_string_equal(s, "t.json:1:1: invalid JSON: '[' or '{' expected near end of file\n");
  free(s);
}

static void test_load_rejects_duplicate_keys(void **state) {
  (void)state;
  const char *doc = "{\"name\": \"t\", \"name\": \"u\", \"steps\": []}";
  char *s = load_errors(doc, strlen(doc), -EINVAL);
  assert_string_equal(s, "t.json:1:20: invalid JSON: duplicate object key near '\"name\"'\n");
  free(s);
}

static void test_load_rejects_nesting_deeper_than_the_limit_before_parsing(void **state) {
  (void)state;
  char doc[300];
  size_t n = 0;
  n += (size_t)snprintf(doc, sizeof doc, "{\"name\":\"t\",\"x\":");
  for (int i = 0; i < 70; i++) doc[n++] = '[';
  for (int i = 0; i < 70; i++) doc[n++] = ']';
  doc[n++] = '}';
  char *s = load_errors(doc, n, -EINVAL);
  /* The 65th level is the 64th '[' after the object's '{' at column 17 + 63. */
  assert_string_equal(s, "t.json:1:80: nesting deeper than 64 levels\n");
  free(s);
  /* Brackets inside strings do not count. */
  char *text = xasprintf("{\"name\":\"t\",\"description\":\"%0200d\",\"steps\":[{\"id\":\"a\",\"type\":\"transform\",\"value\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}]}", 0);
  wf_workflow_t *wf = NULL;
  assert_int_equal(wf_load_buffer(text, strlen(text), "t.json", NULL, &wf, NULL), 0);
  wf_free(wf);
  free(text);
}

static void test_load_rejects_files_over_the_size_limit(void **state) {
  (void)state;
  size_t big = WF_MAX_FILE_BYTES + 1;
  char *text = xmalloc(big);
  memset(text, ' ', big);
  char *s = load_errors(text, big, -EMSGSIZE);
  assert_string_equal(s, "t.json: file is 1048577 bytes, the limit is 1048576\n");
  free(s);
  /* The same through a file. */
  const char *tmp = getenv("COORD_TEST_TMPDIR");
  char *path = xasprintf("%s/wf_big_%d.json", tmp ? tmp : "/tmp", (int)getpid());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, big, f), big);
  fclose(f);
  wf_workflow_t *wf = NULL;
  wf_errors_t *errs = NULL;
  assert_int_equal(wf_load_file(path, NULL, &wf, &errs), -EMSGSIZE);
  assert_int_equal(wf_errors_count(errs), 1);
  assert_string_equal(wf_errors_at(errs, 0)->reason, "file is 1048577 bytes, the limit is 1048576");
  wf_errors_free(errs);
  unlink(path);
  free(path);
  free(text);
}

static void test_load_reports_missing_files_and_folders(void **state) {
  (void)state;
  wf_workflow_t *wf = NULL;
  wf_errors_t *errs = NULL;
  assert_int_equal(wf_load_file("no/such/file.json", NULL, &wf, &errs), -ENOENT);
  char *s = wf_errors_format(errs);
  assert_string_equal(s, "no/such/file.json: cannot open: No such file or directory\n");
  free(s);
  wf_errors_free(errs);
  char *dir = wft_path("examples");
  assert_int_equal(wf_load_file(dir, NULL, &wf, &errs), -EINVAL);
  assert_string_equal(wf_errors_at(errs, 0)->reason, "not a regular file");
  wf_errors_free(errs);
  free(dir);
  /* errs may be NULL. */
  assert_int_equal(wf_load_file("no/such/file.json", NULL, &wf, NULL), -ENOENT);
}

static wf_workflow_t *load_example(const char *name) {
  char *rel = xasprintf("examples/workflows/%s", name);
  char *path = wft_path(rel);
  wf_workflow_t *wf = NULL;
  assert_int_equal(wf_load_file(path, NULL, &wf, NULL), 0);
  free(rel);
  free(path);
  return wf;
}

static void test_load_gives_name_summary_and_shared_references(void **state) {
  (void)state;
  wf_workflow_t *wf = load_example("research-then-write.json");
  assert_string_equal(wf_workflow_name(wf), "research-then-write");
  assert_non_null(strstr(wf_workflow_file(wf), "examples/workflows/research-then-write.json"));
  assert_string_equal(json_string_value(json_object_get(wf_workflow_doc(wf), "name")),
                      "research-then-write");
  json_t *sum = wf_workflow_summary(wf);
  char *s = json_dumps(json_object_get(sum, "agents"), JSON_COMPACT);
  assert_string_equal(s, "[\"researcher\",\"writer\"]");
  free(s);
  assert_int_equal(json_integer_value(json_object_get(sum, "steps")), 3);
  assert_true(json_is_object(json_object_get(json_object_get(sum, "inputs"), "topic")));
  json_decref(sum);
  /* A second reference keeps it alive after the first is dropped. */
  wf_workflow_t *again = wf_workflow_ref(wf);
  wf_free(wf);
  assert_string_equal(wf_workflow_name(again), "research-then-write");
  wf_workflow_unref(&again);
  assert_null(again);
}

static void test_load_builds_the_model_the_engine_reads(void **state) {
  (void)state;
  wf_workflow_t *wf = load_example("best-of-n.json");
  assert_int_equal(wf->steps.n, 2);
  const wf__step_t *map = &wf->steps.v[0];
  assert_int_equal(map->kind, WF_STEP_MAP);
  assert_string_equal(map->path, "steps[0]");
  assert_int_equal(map->u.map.concurrency, 3);
  assert_int_equal(map->u.map.tolerated_failures, 1);
  const wf__step_t *draft = &map->u.map.steps.v[0];
  assert_string_equal(draft->id, "draft");
  assert_string_equal(draft->path, "steps[0].steps[0]");
  assert_int_equal(draft->catch_kind, WF_CATCH_CONTINUE);
  assert_string_equal(draft->u.llm.agent->name, "drafter");
  assert_true(draft->u.llm.stream);
  /* Default retry of an llm step: 3 attempts on the transient classes. */
  assert_int_equal(draft->retry.max_attempts, 3);
  assert_int_equal(draft->retry.on, WF_RETRY_RATE_LIMITED | WF_RETRY_TIMEOUT |
                                        WF_RETRY_SERVER_ERROR | WF_RETRY_NETWORK);
  assert_int_equal(draft->timeout_ms, 60000);
  wf_free(wf);
  wf = load_example("research-then-write.json");
  const wf__retry_t *r = &wf->steps.v[0].retry;
  assert_int_equal(r->max_attempts, 3);
  assert_int_equal(r->backoff_ms, 500);
  assert_int_equal(r->max_backoff_ms, 8000);
  assert_true(r->jitter > 0.19 && r->jitter < 0.21);
  wf_free(wf);
  wf = load_example("approval-gate.json");
  const wf__step_t *sw = &wf->steps.v[2];
  assert_int_equal(sw->kind, WF_STEP_SWITCH);
  assert_int_equal(sw->u.sw.ncases, 1);
  assert_string_equal(sw->u.sw.cases[0].value, "true");
  assert_true(sw->u.sw.has_default);
  assert_int_equal(wf->steps.v[1].retry.max_attempts, 1); /* approvals do not retry by default */
  wf_free(wf);
}

static void test_inputs_resolve_checks_types_and_fills_defaults(void **state) {
  (void)state;
  wf_workflow_t *wf = load_example("research-then-write.json");
  json_t *in = json_pack("{s:s}", "topic", "otters"), *out = NULL;
  assert_int_equal(wf_inputs_resolve(wf, in, &out, NULL), 0);
  char *s = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
  assert_string_equal(s, "{\"audience\":\"a general audience\",\"topic\":\"otters\",\"words\":600}");
  free(s);
  json_decref(out);
  json_decref(in);
  in = json_pack("{s:i,s:s,s:s}", "topic", 5, "wrods", "x", "audience", "kids");
  wf_errors_t *errs = NULL;
  assert_int_equal(wf_inputs_resolve(wf, in, &out, &errs), -EINVAL);
  assert_null(out);
  s = wf_errors_format(errs);
  assert_string_equal(s, "input.topic: expected string, got integer\n"
                         "input.wrods: unknown input (did you mean \"words\"?)\n");
  free(s);
  wf_errors_free(errs);
  json_decref(in);
  assert_int_equal(wf_inputs_resolve(wf, NULL, &out, &errs), -EINVAL);
  s = wf_errors_format(errs);
  assert_string_equal(s, "input.topic: missing required input\n");
  free(s);
  wf_errors_free(errs);
  wf_free(wf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_reports_json_syntax_errors_with_line_and_column),
      cmocka_unit_test(test_load_rejects_duplicate_keys),
      cmocka_unit_test(test_load_rejects_nesting_deeper_than_the_limit_before_parsing),
      cmocka_unit_test(test_load_rejects_files_over_the_size_limit),
      cmocka_unit_test(test_load_reports_missing_files_and_folders),
      cmocka_unit_test(test_load_gives_name_summary_and_shared_references),
      cmocka_unit_test(test_load_builds_the_model_the_engine_reads),
      cmocka_unit_test(test_inputs_resolve_checks_types_and_fills_defaults),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
