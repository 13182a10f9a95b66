/* Tests for streams/json_text.c: the validating compactor, the canonical writer and the
 * string escaper, with data-driven tables and differential runs against jansson on
 * generated inputs. */
#include "fastpath.h"
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
    char measured[64 * 6 + 2];
    stream_jstr_t j;
    stream__json_escape_measure(&j, s);
    assert_int_equal(stream__json_escape_jstr(measured, &j), n);
    assert_memory_equal(measured, mine, n);
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

/* ---- the canonical writer ---- */

/* What jansson writes for text (load with JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, compact
 * dump), or NULL when it refuses; *why gets its error text. */
static char *jansson_canon(const char *text, size_t len, const char **why) {
  static json_error_t jerr;
  json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  *why = jerr.text;
  if (!v) return NULL;
  char *out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(v);
  return out;
}

/* Runs the canonical writer on text with a small starting buffer (so growing is tested). */
static int canon(const char *text, size_t len, uint32_t depth, char **out, size_t *out_len) {
  char small[16];
  stream_jout_t o;
  stream__jout_init(&o, small, sizeof small);
  int rc = stream__json_canon(text, len, depth, &o, NULL, NULL);
  *out = rc == 0 ? strndup(o.p, o.len) : NULL;
  *out_len = rc == 0 ? o.len : 0;
  stream__jout_close(&o);
  return rc;
}

typedef struct ccase {
  const char *in;
  const char *out;  /* NULL: refused */
  bool jansson_ok;  /* jansson accepts it (for refusals: a case the writer leaves to jansson) */
} ccase_t;

static void test_canon_writes_what_jansson_loads_and_dumps_per_the_table(void **state) {
  (void)state;
  const ccase_t cases[] = {
      {" { \"b\" : 1 , \"a\" : [ 2 , { } , [ ] ] } ", "{\"b\":1,\"a\":[2,{},[]]}", true},
      {"\"\\u00e9\\/\\u0001\\u001f\\u007f\\u2028\\ud83d\\ude00\\u0022\\u005c\\u000a\"",
       "\"\xc3\xa9/\\u0001\\u001F\x7f\xe2\x80\xa8\xf0\x9f\x98\x80\\\"\\\\\\n\"", true},
      {"\"\\b\\f\\n\\r\\t\\\"\\\\\"", "\"\\b\\f\\n\\r\\t\\\"\\\\\"", true},
      {"\"\\u0008\\u000C\\u000d\\u0009\"", "\"\\b\\f\\r\\t\"", true},
      {"-0", "0", true},
      {"[-0.0,1e5,1E-7,0.1,1e22,1e16,100.0,2.5e-310,1e-400]",
       "[-0.0,100000.0,9.9999999999999995e-8,0.10000000000000001,1e22,10000000000000000.0,100.0,"
       "2.5000000000000171e-310,0.0]",
       true},
      {"9223372036854775807", "9223372036854775807", true},
      {"-9223372036854775808", "-9223372036854775808", true},
      {"9223372036854775808", NULL, false},
      {"-9223372036854775809", NULL, false},
      {"12345678901234567890123", NULL, false},
      {"1e400", NULL, false},
      {"-1e400", NULL, false},
      {"{\"a\":1,\"a\":2}", NULL, false},
      {"{\"a\":1,\"\\u0061\":2}", NULL, false},
      {"[{\"x\":{\"y\":1,\"y\":1}}]", NULL, false},
      {"[{\"a\":1},{\"a\":1}]", "[{\"a\":1},{\"a\":1}]", true}, /* same key in sibling objects */
      {"{\"a\":{\"a\":{\"a\":1}}}", "{\"a\":{\"a\":{\"a\":1}}}", true},
      {"\"\\u0000\"", NULL, false},
      {"\"\\ud800\"", NULL, false},
      {"\"\\udc00\"", NULL, false},
      {"\"\\ud800\\u0041\"", NULL, false},
      {"\"\xed\xa0\x80\"", NULL, false},
      {"\"\xc0\xaf\"", NULL, false},
      {"\"\xff\"", NULL, false},
      {"\"a\tb\"", NULL, false},
      {"[1,]", NULL, false},
      {"{\"a\":1} x", NULL, false},
      {"", NULL, false},
      {"[[[[[[[[[1]]]]]]]]]", NULL, true}, /* depth 9 > 8 */
      {"0.100000000000000000000000000000000000000000000000000000000000000001", NULL, true}, /* long literal */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *in = cases[i].in, *why;
    char *mine;
    size_t n;
    int rc = canon(in, strlen(in), 8, &mine, &n);
    char *theirs = jansson_canon(in, strlen(in), &why);
    if ((theirs != NULL) != cases[i].jansson_ok) fail_msg("case %zu (%s): jansson says %s", i, in, theirs ? "ok" : why);
    if (!cases[i].out) {
      if (rc != -EINVAL) fail_msg("case %zu (%s): accepted as %s", i, in, mine);
    } else {
      if (rc != 0) fail_msg("case %zu (%s): refused", i, in);
      if (n != strlen(cases[i].out) || memcmp(mine, cases[i].out, n) != 0)
        fail_msg("case %zu: got %s want %s", i, mine, cases[i].out);
      if (strcmp(theirs, mine) != 0) fail_msg("case %zu: jansson writes %s, we %s", i, theirs, mine);
    }
    free(mine);
    free(theirs);
  }
}

/* The escaper and the canonical writer look at strings 8 bytes at a time and copy the
 * plain bytes before the first one that needs a look: each such byte (raw, or escaped in
 * the input) at every offset of a run of plain ASCII and UTF-8 text, with and without input
 * after the string, against jansson. */
static void test_strings_with_one_special_byte_at_every_offset_match_jansson(void **state) {
  (void)state;
  static const struct {
    const char *raw;     /* the character, as the string holds it */
    const char *quoted;  /* as the input spells it inside quotes; NULL: raw is not allowed there */
  } specials[] = {
      {"\"", "\\\""}, {"\\", "\\\\"}, {"\n", "\\n"},         {"\x01", "\\u0001"}, {"\x1f", NULL},
      {"/", "\\/"},   {"\x7f", "\x7f"}, {"\xc3\xa9", "\xc3\xa9"}, {"\xe2\x80\xa8", "\\u2028"},
      {"\xf0\x9f\x98\x80", "\\ud83d\\ude00"},                 {" ", " "},
  };
  static const char *fillers[] = {"a", "\xc3\xa9"};
  for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
    for (size_t fi = 0; fi < 2; fi++) {
      for (size_t before = 0; before < 20; before++) {
        for (size_t after = 0; after < 12; after += 5) {
          char raw[256] = "", quoted[256] = "\"";
          for (size_t i = 0; i < before; i++) strcat(raw, fillers[fi]), strcat(quoted, fillers[fi]);
          strcat(raw, specials[k].raw);
          strcat(quoted, specials[k].quoted ? specials[k].quoted : "\\u001f");
          for (size_t i = 0; i < after; i++) strcat(raw, "b"), strcat(quoted, "b");
          strcat(quoted, "\"");

          char mine[256 * 6 + 2], measured[256 * 6 + 2];
          size_t n = stream__json_escape(mine, raw);
          assert_int_equal(n, stream__json_escape_len(raw));
          stream_jstr_t j;
          assert_int_equal(stream__json_escape_measure(&j, raw), n);
          assert_int_equal(j.len, strlen(raw));
          assert_int_equal(stream__json_escape_jstr(measured, &j), n);
          assert_memory_equal(measured, mine, n);
          json_t *js = json_string(raw);
          assert_non_null(js);
          char *theirs = json_dumps(js, JSON_COMPACT | JSON_ENCODE_ANY);
          if (strlen(theirs) != n || memcmp(theirs, mine, n) != 0) fail_msg("escape: %s vs %.*s", theirs, (int)n, mine);
          json_decref(js);

          for (int tail = 0; tail < 2; tail++) { /* the string alone, then followed by more input */
            char text[512];
            snprintf(text, sizeof text, tail ? "[%s,12345678]" : "%s", quoted);
            char *canon_out;
            size_t cn;
            if (canon(text, strlen(text), 8, &canon_out, &cn) != 0) fail_msg("canon refused %s", text);
            char want[512];
            snprintf(want, sizeof want, tail ? "[%s,12345678]" : "%s", theirs);
            if (strcmp(canon_out, want) != 0) fail_msg("canon: %s gives %s, jansson %s", text, canon_out, want);
            free(canon_out);
          }
          free(theirs);
        }
      }
    }
  }
}

static void test_canon_refuses_objects_wider_than_it_checks_for_duplicates(void **state) {
  (void)state;
  char text[1024];
  size_t n = 0;
  text[n++] = '{';
  for (int k = 0; k < 33; k++) n += (size_t)sprintf(text + n, "%s\"k%d\":%d", k ? "," : "", k, k);
  text[n++] = '}';
  char *out;
  size_t out_len;
  assert_int_equal(canon(text, n, 8, &out, &out_len), -EINVAL); /* 33 members: left to jansson */
  /* 32 members are checked and written */
  n = (size_t)(strstr(text, ",\"k32\"") - text);
  text[n++] = '}';
  assert_int_equal(canon(text, n, 8, &out, &out_len), 0);
  const char *why;
  char *theirs = jansson_canon(text, n, &why);
  assert_string_equal(out, theirs);
  free(out);
  free(theirs);
}

static void test_canon_grows_its_output_past_the_callers_buffer_for_reals(void **state) {
  (void)state;
  char text[4000];
  size_t n = 0;
  text[n++] = '[';
  for (int k = 0; k < 500; k++) n += (size_t)sprintf(text + n, "%s1e%d", k ? "," : "", k % 300);
  text[n++] = ']';
  char *out;
  size_t out_len;
  assert_int_equal(canon(text, n, 8, &out, &out_len), 0);
  assert_true(out_len > n); /* reals written by jansson's rules are longer */
  const char *why;
  char *theirs = jansson_canon(text, n, &why);
  assert_string_equal(out, theirs);
  free(out);
  free(theirs);
}

typedef struct members {
  char seen[256];
} members_t;

static void collect_member(void *ud, const stream_jout_t *out, size_t key_off, size_t key_len, size_t val_off,
                           size_t val_len) {
  members_t *m = ud;
  size_t n = strlen(m->seen);
  snprintf(m->seen + n, sizeof m->seen - n, "%.*s=%.*s;", (int)key_len, out->p + key_off, (int)val_len,
           out->p + val_off);
}

static void test_canon_reports_top_level_members_in_order_with_their_canonical_text(void **state) {
  (void)state;
  const char *text = "{ \"op\" : \"pub\", \"o\\u0070\\/\":[1, {\"a\" :2}], \"\":1.50 ,\"n\":null}";
  members_t m = {{0}};
  char buf[256];
  stream_jout_t o;
  stream__jout_init(&o, buf, sizeof buf);
  assert_int_equal(stream__json_canon(text, strlen(text), 8, &o, collect_member, &m), 0);
  assert_string_equal(m.seen, "op=\"pub\";op/=[1,{\"a\":2}];=1.5;n=null;");
  assert_false(o.heap);
  stream__jout_close(&o);
  /* With a callback the text must be an object. */
  stream__jout_init(&o, buf, sizeof buf);
  assert_int_equal(stream__json_canon("[1]", 3, 8, &o, collect_member, &m), -EINVAL);
  stream__jout_close(&o);
}

static void test_canon_unescape_inverts_jansson_escaping(void **state) {
  (void)state;
  unsigned seed = 11;
  for (int i = 0; i < 5000; i++) {
    char s[64];
    random_utf8(&seed, s, sizeof s);
    json_t *js = json_string(s);
    char *text = json_dumps(js, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t len = strlen(text);
    char *dst = malloc(len);
    size_t n = stream__json_canon_unescape(dst, text, len);
    assert_int_equal(n, strlen(s));
    assert_string_equal(dst, s);
    n = stream__json_canon_unescape(text, text, len); /* in place */
    assert_string_equal(text, s);
    free(dst);
    free(text);
    json_decref(js);
  }
}

static void test_canon_agrees_with_jansson_on_mutated_documents(void **state) {
  (void)state;
  static const char alphabet[] = "{}[]\",:\\ 0123456789-+.eEtrufalsn\x01\x80\xc3\xa9u/";
  static const char *docs[] = {
      "{\"a\":[1,2.5,-3e2,true,false,null],\"b\":{\"c\":\"d\\n\\u00e9\\/\"},\"e\":\"\xf0\x9f\x98\x80\"}",
      "[{\"x\":\"y\",\"z\":\"y\"},[],{},\"\\ud83d\\ude00\",0,-0,1e-5,1.0E+2]",
      "{\"op\":\"pub\",\"ref\":\"r\\u0031\",\"topic\":\"acme/r\",\"data\":{\"k\":[0.5,\"\\u0001\"],\"kk\":1}}",
      "{\"deep\":[[[[{\"k\":[1]}]]]],\"a\":{\"a\":{}}}",
  };
  unsigned seed = 5;
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 40000; i++) {
    const char *doc = docs[i % 4];
    char buf[256];
    size_t len = strlen(doc);
    memcpy(buf, doc, len);
    int muts = (int)(rnd(&seed) % 3);
    for (int k = 0; k < muts && len > 0; k++) {
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
    }
    const char *why;
    char *theirs = memchr(buf, '\0', len) ? NULL : jansson_canon(buf, len, &why);
    char *mine;
    size_t n;
    int rc = canon(buf, len, 64, &mine, &n);
    if (rc == 0 && (!theirs || strlen(theirs) != n || memcmp(theirs, mine, n) != 0))
      fail_msg("on %.*s: we write %s, jansson %s", (int)len, buf, mine, theirs ? theirs : why);
    if (rc != 0 && theirs) fail_msg("on %.*s: we refuse what jansson writes as %s", (int)len, buf, theirs);
    if (rc == 0) accepted++;
    else rejected++;
    free(mine);
    free(theirs);
  }
  assert_true(accepted > 1000 && rejected > 1000); /* both sides were exercised */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_compact_accepts_valid_json_and_strips_whitespace_per_the_table),
      cmocka_unit_test(test_escape_matches_jansson_compact_dump_on_generated_strings),
      cmocka_unit_test(test_utf8_validation_rejects_bad_sequences_and_nul),
      cmocka_unit_test(test_compact_agrees_with_jansson_on_mutated_documents),
      cmocka_unit_test(test_canon_writes_what_jansson_loads_and_dumps_per_the_table),
      cmocka_unit_test(test_strings_with_one_special_byte_at_every_offset_match_jansson),
      cmocka_unit_test(test_canon_refuses_objects_wider_than_it_checks_for_duplicates),
      cmocka_unit_test(test_canon_grows_its_output_past_the_callers_buffer_for_reals),
      cmocka_unit_test(test_canon_reports_top_level_members_in_order_with_their_canonical_text),
      cmocka_unit_test(test_canon_unescape_inverts_jansson_escaping),
      cmocka_unit_test(test_canon_agrees_with_jansson_on_mutated_documents),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
