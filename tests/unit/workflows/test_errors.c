/* Tests for workflows/errors.c: wf__quote (how document strings appear in messages:
 * escaped as JSON strings, cut at WF__QUOTE_MAX bytes on a character boundary), the
 * escaping of control characters left in reasons and file names, and that every error
 * formats as exactly one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "wf_test_util.h"

/* wf__quote into a heap buffer of exactly WF__QUOTE_SIZE bytes, so that ASan sees any
 * write past it. */
static char *quote(const char *s, bool quoted) {
  char *buf = xmalloc(WF__QUOTE_SIZE);
  assert_ptr_equal(wf__quote(buf, s, quoted), buf);
  return buf;
}

static void assert_quote(const char *s, bool quoted, const char *want) {
  char *got = quote(s, quoted);
  assert_string_equal(got, want);
  free(got);
}

static void test_quote_renders_plain_names_as_they_always_were(void **state) {
  (void)state;
  assert_quote("llm", true, "\"llm\"");
  assert_quote("writer-2_b", true, "\"writer-2_b\"");
  assert_quote("", true, "\"\"");
  assert_quote("steps.a.output", false, "steps.a.output");
  /* and through the macro used by the messages */
  char *msg = xasprintf("unknown step type %s (did you mean %s?)", WF__Q("lmm"), WF__Q("llm"));
  assert_string_equal(msg, "unknown step type \"lmm\" (did you mean \"llm\"?)");
  free(msg);
}

static void test_quote_escapes_newlines_quotes_and_backslashes_as_json_does(void **state) {
  (void)state;
  assert_quote("x\nfuzz.json:1:1: forged", true, "\"x\\nfuzz.json:1:1: forged\"");
  assert_quote("a\"b", true, "\"a\\\"b\"");
  assert_quote("a\\b", true, "\"a\\\\b\"");
  assert_quote("\t\r\b\f", true, "\"\\t\\r\\b\\f\"");
  /* the result parses back as the same JSON string */
  const char *odd = "q\"\\\n\x01\x1f end";
  char *q = quote(odd, true);
  json_t *back = json_loads(q, JSON_DECODE_ANY, NULL);
  assert_non_null(back);
  assert_string_equal(json_string_value(back), odd);
  json_decref(back);
  free(q);
}

static void test_quote_escapes_other_controls_del_c1_and_line_separators(void **state) {
  (void)state;
  assert_quote("\x01\x1b[2J\x7f", true, "\"\\u0001\\u001B[2J\\u007F\"");
  /* U+009B (CSI), U+0085 (NEL), U+2028, U+2029; other UTF-8 stays as it is */
  assert_quote("\xc2\x9b" "1m\xc2\x85" "a\xe2\x80\xa8" "b\xe2\x80\xa9" "\xc3\xa9\xe2\x82\xac", true,
               "\"\\u009B1m\\u0085a\\u2028b\\u2029\xc3\xa9\xe2\x82\xac\"");
}

static void test_quote_without_quotes_escapes_controls_only(void **state) {
  (void)state;
  assert_quote("input[\n\"x\"]", false, "input[\\n\"x\"]");
  assert_quote("a\\b\x1b", false, "a\\b\\u001B");
}

static void test_quote_shows_null_for_a_null_string(void **state) {
  (void)state;
  assert_quote(NULL, true, "null");
  assert_quote(NULL, false, "null");
}

static void test_quote_cuts_strings_longer_than_64_bytes_with_an_ellipsis(void **state) {
  (void)state;
  char a64[65], a65[66], want[100];
  memset(a64, 'a', 64);
  a64[64] = '\0';
  memcpy(a65, a64, 64);
  memcpy(a65 + 64, "b", 2);
  /* exactly 64 bytes: whole */
  snprintf(want, sizeof want, "\"%s\"", a64);
  assert_quote(a64, true, want);
  /* 65 bytes: the first 64 and the ellipsis, inside the quotes */
  snprintf(want, sizeof want, "\"%s...\"", a64);
  assert_quote(a65, true, want);
  snprintf(want, sizeof want, "%s...", a64);
  assert_quote(a65, false, want);
}

static void test_quote_cuts_on_a_utf8_character_boundary(void **state) {
  (void)state;
  /* 63 ASCII bytes, then a 3-byte euro sign across the 64-byte mark: it is left out whole */
  char s[100], want[100];
  memset(s, 'a', 63);
  memcpy(s + 63, "\xe2\x82\xac tail", 9);
  memset(want, 0, sizeof want);
  want[0] = '"';
  memset(want + 1, 'a', 63);
  memcpy(want + 64, "...\"", 4);
  assert_quote(s, true, want);
  /* 63 ASCII bytes, then a 2-byte C1 control across the mark: left out whole too */
  memset(s, 'a', 63);
  memcpy(s + 63, "\xc2\x9b" "b", 4);
  assert_quote(s, true, want);
}

static void test_quote_worst_case_fills_exactly_the_buffer(void **state) {
  (void)state;
  char s[200];
  memset(s, '\x01', sizeof s - 1);
  s[sizeof s - 1] = '\0';
  char *got = quote(s, true);
  assert_int_equal(strlen(got) + 1, WF__QUOTE_SIZE);
  assert_memory_equal(got, "\"\\u0001\\u0001", 13);
  assert_string_equal(got + strlen(got) - 10, "\\u0001...\"");
  free(got);
}

static void test_errors_add_escapes_control_characters_left_in_a_reason(void **state) {
  (void)state;
  wf_errors_t *errs = wf__errors_new();
  /* text quoted by someone else (jansson echoes the offending byte) */
  wf__errors_add(errs, "f.json", "a\nb", 1, 2, "invalid JSON: invalid token near '%s'", "\x1b");
  const wf_error_t *e = wf_errors_at(errs, 0);
  assert_string_equal(e->reason, "invalid JSON: invalid token near '\\u001B'");
  assert_string_equal(e->path, "a\\nb");
  /* quotes and backslashes of a reason are the message's own: left alone */
  wf__errors_add(errs, "f.json", "", 0, 0, "say \"%s\" \\", "hi");
  assert_string_equal(wf_errors_at(errs, 1)->reason, "say \"hi\" \\");
  wf_errors_free(errs);
}

static void test_errors_format_is_one_line_per_error_even_for_an_odd_file_name(void **state) {
  (void)state;
  wf_errors_t *errs = wf__errors_new();
  wf__errors_add(errs, "dir/x\n.json", "steps[0].type", 3, 4, "unknown step type %s",
                 WF__Q("a\nb"));
  char *text = wf_errors_format(errs);
  assert_string_equal(text, "dir/x\\n.json:3:4: steps[0].type: unknown step type \"a\\nb\"\n");
  free(text);
  /* the list and JSON keep the file as given; the message is the escaped line */
  assert_string_equal(wf_errors_at(errs, 0)->file, "dir/x\n.json");
  json_t *j = wf_errors_json(errs);
  json_t *e = json_array_get(j, 0);
  assert_string_equal(json_string_value(json_object_get(e, "file")), "dir/x\n.json");
  assert_string_equal(json_string_value(json_object_get(e, "message")),
                      "dir/x\\n.json:3:4: steps[0].type: unknown step type \"a\\nb\"");
  json_decref(j);
  wf_errors_free(errs);
}

static void test_load_reports_a_control_byte_of_invalid_json_escaped(void **state) {
  (void)state;
  const char doc[] = "{\"name\": \x1b}";
  wf_workflow_t *wf = NULL;
  wf_errors_t *errs = NULL;
  assert_int_equal(wf_load_buffer(doc, sizeof doc - 1, "t.json", NULL, &wf, &errs), -EINVAL);
  char *text = wf_errors_format(errs);
  assert_string_equal(text, "t.json:1:10: invalid JSON: invalid token near '\\u001B'\n");
  free(text);
  wf_errors_free(errs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quote_renders_plain_names_as_they_always_were),
      cmocka_unit_test(test_quote_escapes_newlines_quotes_and_backslashes_as_json_does),
      cmocka_unit_test(test_quote_escapes_other_controls_del_c1_and_line_separators),
      cmocka_unit_test(test_quote_without_quotes_escapes_controls_only),
      cmocka_unit_test(test_quote_shows_null_for_a_null_string),
      cmocka_unit_test(test_quote_cuts_strings_longer_than_64_bytes_with_an_ellipsis),
      cmocka_unit_test(test_quote_cuts_on_a_utf8_character_boundary),
      cmocka_unit_test(test_quote_worst_case_fills_exactly_the_buffer),
      cmocka_unit_test(test_errors_add_escapes_control_characters_left_in_a_reason),
      cmocka_unit_test(test_errors_format_is_one_line_per_error_even_for_an_odd_file_name),
      cmocka_unit_test(test_load_reports_a_control_byte_of_invalid_json_escaped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
