/* Tests for workflows/jsonpos.c: locating a path in JSON text (escaped keys, nested
 * arrays, UTF-8 columns, missing parts), the pre-parse depth check and path rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "wf_test_util.h"

static const char *const doc =
    "{\n"
    "  \"a\": {\"b\": [1, {\"c\": \"x\"}, [true, null]]},\n"
    "  \"k\\u00e9y\": \"é\", \"z\\\"q\": {\"s\": \"[{\\\"\" ,\"t\": 5},\n"
    "  \"\u00e9\u00e9\": 7\n"
    "}";

typedef struct lcase {
  wf__path_comp_t comps[4];
  size_t n, want_matched;
  int line, column;
} lcase_t;

static void test_locate_finds_values_and_falls_back_to_the_deepest_ancestor(void **state) {
  (void)state;
  const lcase_t cases[] = {
      {{{.key = "a"}}, 1, 1, 2, 8},
      {{{.key = "a"}, {.key = "b"}, {.index = 1}, {.key = "c"}}, 4, 4, 2, 24},
      {{{.key = "a"}, {.key = "b"}, {.index = 2}, {.index = 1}}, 4, 4, 2, 37},
      {{{.key = "kéy"}}, 1, 1, 3, 15},                      /* escaped key decoded */
      {{{.key = "z\"q"}, {.key = "t"}}, 2, 2, 3, 47},        /* skips a string with [{" in it */
      {{{.key = "éé"}}, 1, 1, 4, 9},                         /* columns count characters */
      {{{.key = "a"}, {.key = "b"}, {.index = 9}}, 3, 2, 2, 14}, /* missing: the array */
      {{{.key = "nope"}}, 1, 0, 1, 1},                      /* missing: the document */
      {{{.key = "a"}, {.index = 0}}, 2, 1, 2, 8},            /* index into an object */
  };
  for (size_t i = 0; i < BASE_ARRAY_SIZE(cases); i++) {
    int line = 0, column = 0;
    size_t m = wf__json_locate(doc, strlen(doc), cases[i].comps, cases[i].n, &line, &column);
    char *p = wf__path_format(cases[i].comps, cases[i].n);
    if (m != cases[i].want_matched || line != cases[i].line || column != cases[i].column)
      fail_msg("%s: matched %zu at %d:%d, want %zu at %d:%d", p, m, line, column,
               cases[i].want_matched, cases[i].line, cases[i].column);
    free(p);
  }
}

static void test_depth_check_counts_brackets_outside_strings_only(void **state) {
  (void)state;
  int line = 0, column = 0;
  assert_int_equal(wf__json_depth_check("[[\"[[[[\"]]", 10, 2, &line, &column), 0);
  assert_int_equal(wf__json_depth_check("{\"a\":\n [[1]]}", 13, 2, &line, &column), -EMLINK);
  assert_int_equal(line, 2);
  assert_int_equal(column, 3);
  /* Unbalanced input is not this check's business; it must not crash or go negative. */
  assert_int_equal(wf__json_depth_check("]]]][", 5, 1, &line, &column), 0);
  assert_int_equal(wf__json_depth_check("\"\\", 2, 1, &line, &column), 0);
}

static void test_path_format_quotes_keys_that_are_not_plain_names(void **state) {
  (void)state;
  const wf__path_comp_t comps[] = {{.key = "steps"}, {.index = 2}, {.key = "cases"},
                                   {.key = "a b"}, {.index = 0}, {.key = "x-y_1"}, {.key = ""}};
  char *p = wf__path_format(comps, BASE_ARRAY_SIZE(comps));
  assert_string_equal(p, "steps[2].cases[\"a b\"][0].x-y_1[\"\"]");
  free(p);
  p = wf__path_format(comps, 0);
  assert_string_equal(p, "");
  free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_locate_finds_values_and_falls_back_to_the_deepest_ancestor),
      cmocka_unit_test(test_depth_check_counts_brackets_outside_strings_only),
      cmocka_unit_test(test_path_format_quotes_keys_that_are_not_plain_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
