/* Tests for workflows/registry.c: loading a folder where some files are bad (the others
 * still load), names unique across files, sub-workflow references and cycles, the
 * registry's lookups, and the `validate` subcommand's output and exit code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wf_test_util.h"

#define T1 "'steps':[{'id':'s','type':'transform','value':1}]"

static char *make_dir(const char *tag) {
  const char *tmp = getenv("COORD_TEST_TMPDIR");
  char *dir = xasprintf("%s/wf_reg_%s_%d", tmp ? tmp : "/tmp", tag, (int)getpid());
  mkdir(dir, 0700);
  return dir;
}

static void put(const char *dir, const char *name, const char *doc) {
  char *path = xasprintf("%s/%s", dir, name);
  char *text = wft_q(doc);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  free(text);
  free(path);
}

static void remove_dir(char *dir, const char *const *names, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char *path = xasprintf("%s/%s", dir, names[i]);
    unlink(path);
    free(path);
  }
  rmdir(dir);
  free(dir);
}

static const char *const files[] = {"a.json", "b.json", "c.json", "d.json", "e.json",
                                    "f.json", "g.json", "h.json", "notes.txt", ".hidden.json"};

static char *make_folder(void) {
  char *dir = make_dir("mixed");
  put(dir, "a.json", "{'name':'alpha'," T1 "}");
  put(dir, "b.json", "{'name':'broken',");
  put(dir, "c.json", "{'name':'caller','steps':[{'id':'s','type':'workflow','workflow':'nobody'}]}");
  put(dir, "d.json", "{'name':'alpha'," T1 "}");
  put(dir, "e.json", "{'name':'ping','steps':[{'id':'s','type':'workflow','workflow':'pong'}]}");
  put(dir, "f.json", "{'name':'pong','steps':[{'id':'s','type':'workflow','workflow':'ping'}]}");
  put(dir, "g.json", "{'name':'outer','steps':[{'id':'s','type':'workflow','workflow':'caller'}]}");
  put(dir, "h.json", "{'name':'user','steps':[{'id':'s','type':'workflow','workflow':'alpha','input':{'x':'{{ run.id }}'}}]}");
  put(dir, "notes.txt", "not json");
  put(dir, ".hidden.json", "{");
  return dir;
}

static void test_registry_loads_the_good_files_of_a_folder_and_reports_the_bad(void **state) {
  (void)state;
  char *dir = make_folder();
  wf_registry_t *reg = NULL;
  wf_errors_t *errs = NULL;
  assert_int_equal(wf_registry_load_dir(dir, NULL, &reg, &errs), -EINVAL);
  assert_non_null(reg);
  assert_int_equal(wf_registry_count(reg), 2);
  assert_string_equal(wf_workflow_name(wf_registry_at(reg, 0)), "alpha");
  assert_string_equal(wf_workflow_name(wf_registry_at(reg, 1)), "user");
  assert_non_null(wf_registry_find(reg, "user"));
  assert_null(wf_registry_find(reg, "caller"));
  assert_null(wf_registry_at(reg, 2));
  char *s = wf_errors_format(errs);
  /* The cycle is reported where it closes (pong calls ping); ping then fails too. */
  char *want = xasprintf("%s/b.json:1:17: invalid JSON: string or '}' expected near end of file\n"
                         "%s/c.json:1:66: steps[0].workflow: unknown workflow \"nobody\"\n"
                         "%s/d.json:1:9: name: workflow \"alpha\" is already defined in %s/a.json\n"
                         "%s/e.json:1:64: steps[0].workflow: workflow \"pong\" was rejected (see its errors)\n"
                         "%s/f.json:1:64: steps[0].workflow: sub-workflow cycle: ping -> pong -> ping\n"
                         "%s/g.json:1:65: steps[0].workflow: workflow \"caller\" was rejected (see its errors)\n",
                         dir, dir, dir, dir, dir, dir, dir);
  assert_string_equal(s, want);
  free(want);
  free(s);
  wf_errors_free(errs);
  wf_registry_free(reg);
  remove_dir(dir, files, BASE_ARRAY_SIZE(files));
}

static void test_registry_of_a_clean_folder_returns_zero_and_no_errors(void **state) {
  (void)state;
  char *dir = make_dir("clean");
  put(dir, "one.json", "{'name':'one'," T1 "}");
  put(dir, "two.json", "{'name':'two','steps':[{'id':'s','type':'workflow','workflow':'one'}]}");
  wf_registry_t *reg = NULL;
  wf_errors_t *errs = NULL;
  assert_int_equal(wf_registry_load_dir(dir, NULL, &reg, &errs), 0);
  assert_null(errs);
  assert_int_equal(wf_registry_count(reg), 2);
  /* A workflow outlives the registry it came from while someone holds a reference. */
  wf_workflow_t *held = wf_workflow_ref(wf_registry_find(reg, "two"));
  wf_registry_free(reg);
  assert_string_equal(wf_workflow_name(held), "two");
  wf_workflow_unref(&held);
  static const char *const names[] = {"one.json", "two.json"};
  remove_dir(dir, names, 2);
}

static void test_registry_resolves_agent_refs_against_shared_profiles(void **state) {
  (void)state;
  char *dir = make_dir("refs");
  put(dir, "r.json", "{'name':'r','agents':{'a':{'ref':'fast'},'b':{'ref':'slow'}},"
                     "'steps':[{'id':'s','type':'llm','agent':'a','prompt':'x'}]}");
  json_t *profiles = json_pack("{s:{s:s,s:s}}", "fast", "provider", "mock", "model", "m");
  wf_registry_t *reg = NULL;
  wf_errors_t *errs = NULL;
  assert_int_equal(wf_registry_load_dir(dir, profiles, &reg, &errs), -EINVAL);
  assert_int_equal(wf_errors_count(errs), 1);
  assert_string_equal(wf_errors_at(errs, 0)->path, "agents.b.ref");
  assert_string_equal(wf_errors_at(errs, 0)->reason, "unknown shared profile \"slow\"");
  wf_errors_free(errs);
  wf_registry_free(reg);
  /* Without a profile table refs are left to the daemon. */
  assert_int_equal(wf_registry_load_dir(dir, NULL, &reg, &errs), 0);
  wf_workflow_t *wf = wf_registry_find(reg, "r");
  assert_non_null(wf);
  assert_string_equal(wf->agents[0].ref, "fast");
  assert_null(wf->agents[0].provider);
  wf_registry_free(reg);
  json_decref(profiles);
  static const char *const names[] = {"r.json"};
  remove_dir(dir, names, 1);
}

static void test_registry_reports_a_missing_folder(void **state) {
  (void)state;
  wf_registry_t *reg = NULL;
  wf_errors_t *errs = NULL;
  assert_int_equal(wf_registry_load_dir("no/such/dir", NULL, &reg, &errs), -ENOENT);
  assert_null(reg);
  char *s = wf_errors_format(errs);
  assert_string_equal(s, "no/such/dir: cannot open the workflow folder: No such file or directory\n");
  free(s);
  wf_errors_free(errs);
}

static char *validate_output(const char *const *paths, size_t n, int *code) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  *code = wf_validate_files(paths, n, NULL, f);
  fclose(f);
  return buf;
}

static void test_validate_files_prints_each_result_and_returns_the_exit_code(void **state) {
  (void)state;
  char *dir = make_folder();
  char *a = xasprintf("%s/a.json", dir), *c = xasprintf("%s/c.json", dir),
       *h = xasprintf("%s/h.json", dir);
  const char *const good[] = {a, h};
  int code = -1;
  char *out = validate_output(good, 2, &code);
  char *want = xasprintf("%s: ok (workflow \"alpha\")\n%s: ok (workflow \"user\")\n", a, h);
  assert_string_equal(out, want);
  assert_int_equal(code, 0);
  free(out);
  free(want);
  /* user.json alone cannot resolve its sub-workflow. */
  const char *const bad[] = {h, c};
  out = validate_output(bad, 2, &code);
  want = xasprintf("%s:1:64: steps[0].workflow: unknown workflow \"alpha\"\n"
                   "%s:1:66: steps[0].workflow: unknown workflow \"nobody\"\n", h, c);
  assert_string_equal(out, want);
  assert_int_equal(code, 1);
  free(out);
  free(want);
  /* Every example validates as a set. */
  char *ex = wft_path("examples/workflows");
  const char *names[] = {"research-then-write.json", "best-of-n.json", "router.json",
                         "approval-gate.json", "critique-loop.json"};
  char *paths[5];
  for (int i = 0; i < 5; i++) paths[i] = xasprintf("%s/%s", ex, names[i]);
  out = validate_output((const char *const *)paths, 5, &code);
  assert_int_equal(code, 0);
  free(out);
  for (int i = 0; i < 5; i++) free(paths[i]);
  free(ex);
  free(a);
  free(c);
  free(h);
  remove_dir(dir, files, BASE_ARRAY_SIZE(files));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_registry_loads_the_good_files_of_a_folder_and_reports_the_bad),
      cmocka_unit_test(test_registry_of_a_clean_folder_returns_zero_and_no_errors),
      cmocka_unit_test(test_registry_resolves_agent_refs_against_shared_profiles),
      cmocka_unit_test(test_registry_reports_a_missing_folder),
      cmocka_unit_test(test_validate_files_prints_each_result_and_returns_the_exit_code),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
