/* Helpers of agents/util.c: WHATWG UTF-8 repair (maximal subparts) and JSON parsing with
 * a depth limit. */
#include <errno.h>

#include "agents_test.h"
#include "internal.h"

static void test_util_utf8_repair_replaces_maximal_subparts(void **state) {
  static const struct {
    const char *in, *want;
  } t[] = {
      {"plain", "plain"},
      {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
      {"a\xff" "b", "a\xef\xbf\xbd" "b"},
      {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                   /* overlong lead */
      {"\xe2\x82", "\xef\xbf\xbd"},                               /* truncated at end */
      {"\xe2\x82x", "\xef\xbf\xbdx"},                             /* truncated mid */
      {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},   /* surrogate */
      {"\xf0\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},   /* overlong 4-byte */
      {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
      {"\xf0\x9f\x98", "\xef\xbf\xbd"},
  };
  for (size_t i = 0; i < BASE_ARRAY_SIZE(t); i++) {
    agent__buf_t b = {0};
    agent__utf8_sanitize(t[i].in, strlen(t[i].in), &b);
    if (strcmp(b.p, t[i].want) != 0) fail_msg("case %zu", i);
    assert_int_equal(agent__utf8_valid(t[i].in, strlen(t[i].in)), strcmp(t[i].in, t[i].want) == 0);
    assert_true(agent__utf8_valid(b.p, b.len));
    agent__buf_free(&b);
  }
}

static void test_util_json_parse_enforces_depth_before_parsing(void **state) {
  json_t *doc;
  char err[200];
  assert_int_equal(agent__json_parse("[[1]]", 5, 2, &doc, err, sizeof err), 0);
  json_decref(doc);
  assert_int_equal(agent__json_parse("[[[1]]]", 7, 2, &doc, err, sizeof err), -EBADMSG);
  assert_null(doc);
  assert_string_equal(err, "nested deeper than 2");
  assert_int_equal(agent__json_parse("{\"a\":\"\\\"[[[\"}", 13, 1, &doc, err, sizeof err), 0);
  json_decref(doc);
  assert_int_equal(agent__json_parse("{\"a\":", 5, 0, &doc, err, sizeof err), -EBADMSG);
  assert_non_null(strstr(err, "line 1 column"));
  char deep[200];
  memset(deep, '[', 100);
  memset(deep + 100, ']', 100);
  assert_int_equal(agent__json_parse(deep, sizeof deep, 0, &doc, err, sizeof err), -EBADMSG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_util_utf8_repair_replaces_maximal_subparts),
      cmocka_unit_test(test_util_json_parse_enforces_depth_before_parsing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
