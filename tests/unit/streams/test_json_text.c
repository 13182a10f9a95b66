/* Tests for streams/json_text.c: the validating compactor and the string escaper, with a
 * data-driven table and differential runs against jansson on generated inputs. */
#include "streams/helpers.h"

typedef struct jcase {
  const char *in;
  const char *out; /* NULL: must be rejected */
} jcase_t;

static void test_compact_accepts_valid_json_and_strips_whitespace_per_the_table(void **state) {
  (void)state;
  const jcase_t cases[] = {
      {"0", "0"},
      {" -0.5e+10 ", "-0.5e+10"},
      {"1E2", "1E2"},
      {"true", "true"},
      {"null", "null"},
      {"\"a b\"", "\"a b\""},
      {" { \"k\" : [ 1 , 2 , { } , [ ] ] , \"s\" : \"x\\\" \\n\\u00e9\\ud83d\\ude00\" } ",
       "{\"k\":[1,2,{},[]],\"s\":\"x\\\" \\n\\u00e9\\ud83d\\ude00\"}"},
      {"\"\xc3\xa9\xf0\x9f\x98\x80\"", "\"\xc3\xa9\xf0\x9f\x98\x80\""},
      {"\n[\r\n\t1]\n", "[1]"},
      {"", NULL},
      {"   ", NULL},
      {"01", NULL},
      {"1.", NULL},
      {".5", NULL},
      {"1e", NULL},
      {"+1", NULL},
      {"-", NULL},
      {"tru", NULL},
      {"nul", NULL},
      {"[1,]", NULL},
      {"[,1]", NULL},
      {"{\"a\":1,}", NULL},
      {"{\"a\" 1}", NULL},
      {"{1:2}", NULL},
      {"[1 2]", NULL},
      {"1 2", NULL},
      {"\"abc", NULL},
      {"\"a\tb\"", NULL},
      {"\"\\x\"", NULL},
      {"\"\\u12\"", NULL},
      {"\"\\u0000\"", NULL},
      {"\"\\ud800\"", NULL},
      {"\"\\udc00\"", NULL},
      {"\"\\ud800\\u0041\"", NULL},
      {"\"\xc3\"", NULL},
      {"\"\xc0\xaf\"", NULL},
      {"\"\xed\xa0\x80\"", NULL},
      {"\"\xf5\x80\x80\x80\"", NULL},
      {"[[[[[[[[[1]]]]]]]]]", NULL}, /* depth 9 > 8 */
      {"[[[[[[[[1]]]]]]]]", "[[[[[[[[1]]]]]]]]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[256];
    size_t n = 0, off = 0;
    int rc = stream__json_compact(cases[i].in, strlen(cases[i].in), 8, out, &n, &off);
    if (cases[i].out == NULL) {
      if (rc != -EINVAL) fail_msg("case %zu (%s): accepted", i, cases[i].in);
      continue;
    }
    if (rc != 0) fail_msg("case %zu (%s): rejected at %zu", i, cases[i].in, off);
    if (n != strlen(cases[i].out) || memcmp(out, cases[i].out, n) != 0)
      fail_msg("case %zu: got %.*s want %s", i, (int)n, out, cases[i].out);
  }
}

static unsigned rnd(unsigned *seed) {
  *seed = *seed * 1103515245u + 12345u;
  return *seed >> 8;
}

/* A random valid UTF-8 string with plenty of characters that need escaping. */
static void random_utf8(unsigned *seed, char *buf, size_t max) {
  static const char *pieces[] = {"a", "\"", "\\", "/", "\n", "\t", "\x01", "\x1f", "\x7f", " ",
                                 "\xc3\xa9", "\xe2\x80\xa8", "\xf0\x9f\x98\x80", "\b", "\f", "\r", "Z"};
  size_t n = 0, count = rnd(seed) % 12;
  for (size_t i = 0; i < count; i++) {
    const char *p = pieces[rnd(seed) % (sizeof pieces / sizeof pieces[0])];
    size_t l = strlen(p);
    if (n + l >= max) break;
    memcpy(buf + n, p, l);
    n += l;
  }
  buf[n] = '\0';
}

static void test_escape_matches_jansson_compact_dump_on_generated_strings(void **state) {
  (void)state;
  unsigned seed = 7;
  for (int i = 0; i < 20000; i++) {
    char s[64], mine[64 * 6 + 2];
    random_utf8(&seed, s, sizeof s);
    assert_true(stream__utf8_valid(s, strlen(s)));
    size_t n = stream__json_escape(mine, s);
    assert_int_equal(n, stream__json_escape_len(s));
    json_t *js = json_string(s);
    assert_non_null(js);
    char *theirs = json_dumps(js, JSON_COMPACT | JSON_ENCODE_ANY);
    if (strlen(theirs) != n || memcmp(theirs, mine, n) != 0) fail_msg("%s vs %.*s", theirs, (int)n, mine);
    free(theirs);
    json_decref(js);
  }
}

static void test_utf8_validation_rejects_bad_sequences_and_nul(void **state) {
  (void)state;
  assert_true(stream__utf8_valid("h\xc3\xa9", 3));
  assert_false(stream__utf8_valid("\xc3", 1));
  assert_false(stream__utf8_valid("\xff", 1));
  assert_false(stream__utf8_valid("\xe0\x80\x80", 3)); /* overlong */
  assert_false(stream__utf8_valid("a\0b", 3));
}

static const char *seed_docs[] = {
    "{\"a\":[1,2.5,-3e2,true,false,null],\"b\":{\"c\":\"d\\n\\u00e9\"},\"e\":\"\xf0\x9f\x98\x80\"}",
    "[{\"x\":\"y\"},[],{},\"\\ud83d\\ude00\",0,-0,1e-5]",
    " \"plain string with \\\"quotes\\\" and \\\\ \" ",
    "{\"deep\":[[[[{\"k\":[1]}]]]]}",
};

static void test_compact_agrees_with_jansson_on_mutated_documents(void **state) {
  (void)state;
  static const char alphabet[] = "{}[]\",:\\ 0123456789-+.eEtrufalsn\x01\x80\xc3\xa9u";
  unsigned seed = 99;
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 30000; i++) {
    const char *doc = seed_docs[i % 4];
    char buf[256], out[256];
    size_t len = strlen(doc);
    memcpy(buf, doc, len);
    int muts = (int)(rnd(&seed) % 3);
    for (int k = 0; k < muts; k++) {
      size_t at = rnd(&seed) % len;
      switch (rnd(&seed) % 3) {
      case 0: buf[at] = alphabet[rnd(&seed) % (sizeof alphabet - 1)]; break;
      case 1: memmove(buf + at, buf + at + 1, len - at - 1), len--; break;
      default:
        if (len < sizeof buf - 1) {
          memmove(buf + at + 1, buf + at, len - at);
          buf[at] = alphabet[rnd(&seed) % (sizeof alphabet - 1)];
          len++;
        }
      }
      if (len == 0) break;
    }
    json_error_t jerr;
    json_t *ref = json_loadb(buf, len, JSON_DECODE_ANY, &jerr);
    size_t n = 0;
    int rc = stream__json_compact(buf, len, 64, out, &n, NULL);
    if (!ref && (strstr(jerr.text, "too big") || strstr(jerr.text, "overflow"))) continue; /* jansson's limits */
    if ((rc == 0) != (ref != NULL))
      fail_msg("disagree on %.*s: ours %d, jansson %s", (int)len, buf, rc, ref ? "ok" : jerr.text);
    if (ref) {
      json_t *back = json_loadb(out, n, JSON_DECODE_ANY, &jerr);
      if (!back || !json_equal(ref, back)) fail_msg("compact changed %.*s into %.*s", (int)len, buf, (int)n, out);
      assert_null(memchr(out, '\n', n));
      json_decref(back);
      json_decref(ref);
      accepted++;
    } else {
      rejected++;
    }
  }
  assert_true(accepted > 1000 && rejected > 1000); /* both sides were exercised */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_compact_accepts_valid_json_and_strips_whitespace_per_the_table),
      cmocka_unit_test(test_escape_matches_jansson_compact_dump_on_generated_strings),
      cmocka_unit_test(test_utf8_validation_rejects_bad_sequences_and_nul),
      cmocka_unit_test(test_compact_agrees_with_jansson_on_mutated_documents),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
