/* Tests for coordinator/utf8.c: valid and invalid sequences, split at every byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "utf8.h"

static const struct {
  const char *bytes;
  size_t len;
  bool valid;
  const char *what;
} cases[] = {
#define C(s, v, w) {s, sizeof(s) - 1, v, w}
    C("", true, "empty"),
    C("hello, world {\"op\":\"ping\"}", true, "ascii"),
    C("caf\xc3\xa9", true, "2-byte"),
    C("\xe2\x82\xac 10", true, "3-byte euro"),
    C("\xf0\x9f\x98\x80", true, "4-byte emoji"),
    C("\xf4\x8f\xbf\xbf", true, "U+10FFFF"),
    C("\xed\x9f\xbf", true, "U+D7FF"),
    C("\xee\x80\x80", true, "U+E000"),
    C("\x00", true, "NUL is valid UTF-8"),
    C("\x80", false, "lone continuation"),
    C("\xc3", false, "truncated 2-byte"),
    C("\xc0\xaf", false, "overlong slash (C0)"),
    C("\xc1\xbf", false, "overlong (C1)"),
    C("\xe0\x80\xaf", false, "overlong 3-byte"),
    C("\xed\xa0\x80", false, "surrogate U+D800"),
    C("\xed\xbf\xbf", false, "surrogate U+DFFF"),
    C("\xf0\x80\x80\xaf", false, "overlong 4-byte"),
    C("\xf4\x90\x80\x80", false, "above U+10FFFF"),
    C("\xf5\x80\x80\x80", false, "F5 lead"),
    C("\xff", false, "FF"),
    C("abc\xe2\x82", false, "truncated at end"),
    C("\xe2\x28\xa1", false, "bad continuation"),
    C("0123456789abcdef\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true, "ascii run then greek"),
    C("0123456789abcdef0123456789\x80", false, "ascii run then stray byte"),
#undef C
};

static void test_utf8_accepts_valid_and_rejects_invalid_sequences(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    if (coord_utf8_valid(cases[i].bytes, cases[i].len) != cases[i].valid)
      fail_msg("case %zu (%s)", i, cases[i].what);
}

static void test_utf8_gives_the_same_answer_when_split_at_every_byte(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    for (size_t cut = 0; cut <= cases[i].len; cut++) {
      coord_utf8_t s;
      coord_utf8_init(&s);
      bool ok = coord_utf8_feed(&s, cases[i].bytes, cut);
      ok = coord_utf8_feed(&s, cases[i].bytes + cut, cases[i].len - cut) && ok;
      ok = ok && coord_utf8_complete(&s);
      if (ok != cases[i].valid) fail_msg("case %zu (%s) cut at %zu", i, cases[i].what, cut);
    }
  }
}

static void test_utf8_stays_invalid_after_an_error(void **state) {
  (void)state;
  coord_utf8_t s;
  coord_utf8_init(&s);
  assert_false(coord_utf8_feed(&s, "\xff", 1));
  assert_false(coord_utf8_feed(&s, "ok", 2));
  assert_false(coord_utf8_complete(&s));
}

static void test_utf8_reports_an_unfinished_sequence_as_incomplete(void **state) {
  (void)state;
  coord_utf8_t s;
  coord_utf8_init(&s);
  assert_true(coord_utf8_feed(&s, "\xf0\x9f", 2));
  assert_false(coord_utf8_complete(&s));
  assert_true(coord_utf8_feed(&s, "\x98\x80", 2));
  assert_true(coord_utf8_complete(&s));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_utf8_accepts_valid_and_rejects_invalid_sequences),
      cmocka_unit_test(test_utf8_gives_the_same_answer_when_split_at_every_byte),
      cmocka_unit_test(test_utf8_stays_invalid_after_an_error),
      cmocka_unit_test(test_utf8_reports_an_unfinished_sequence_as_incomplete),
  };
  return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
