/* NDJSON parser (agents/ndjson.c): a table of cases fed whole, split at every byte boundary
 * and byte by byte, all giving the same lines and result; plus the error contracts. */
#include <errno.h>

#include "agents_test.h"

typedef struct nd_case {
  const char *name;
  const char *in;
  size_t max_line, max_depth;
  const char *want;
} nd_case_t;

static int render_line(void *ud, json_t *doc, const char *line, size_t len, const char *err) {
  at_str_t *out = ud;
  if (doc) {
    char *s = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    at_printf(out, "json %s\n", s);
    free(s);
  } else {
    at_printf(out, "bad (%s) ", err);
    at_quote(out, line, len);
    at_puts(out, "\n", 1);
  }
  return 0;
}

static char *run_case(const nd_case_t *c, const size_t *cuts, size_t ncuts) {
  at_str_t out = {0};
  agent_ndjson_t *p;
  size_t len = strlen(c->in);
  agent_ndjson_opts_t o = {.max_line = c->max_line, .max_depth = c->max_depth,
                           .on_line = render_line, .ud = &out};
  assert_int_equal(agent_ndjson_new(&o, &p), 0);
  size_t at = 0;
  int first = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t end = i < ncuts ? cuts[i] : len;
    int rc = agent_ndjson_push(p, c->in + at, end - at);
    if (rc && !first) first = rc;
    at = end;
  }
  int frc = agent_ndjson_finish(p);
  at_printf(&out, "rc=%d finish=%d\n", first, frc);
  agent_ndjson_free(p);
  return out.p;
}

static const nd_case_t cases[] = {
    {"two lines", "{\"a\":1}\n{\"b\":2}\n", 0, 0, "json {\"a\":1}\njson {\"b\":2}\nrc=0 finish=0\n"},
    {"last line without newline comes at finish", "{\"a\":1}\n{\"b\":2}", 0, 0,
     "json {\"a\":1}\njson {\"b\":2}\nrc=0 finish=0\n"},
    {"crlf and blank lines", "{\"a\":1}\r\n\r\n \t\n\n{\"b\":2}\r\n", 0, 0,
     "json {\"a\":1}\njson {\"b\":2}\nrc=0 finish=0\n"},
    {"bom", "\xEF\xBB\xBF{\"a\":1}\n", 0, 0, "json {\"a\":1}\nrc=0 finish=0\n"},
    {"not json", "{\"a\":1}\nhello\n", 0, 0,
     "json {\"a\":1}\nbad (line 1 column 5: invalid token near 'hello') \"hello\"\nrc=0 finish=0\n"},
    {"scalars are json too", "42\n\"s\"\n", 0, 0, "json 42\njson \"s\"\nrc=0 finish=0\n"},
    {"too deep", "[[[[1]]]]\n[[[1]]]\n", 0, 3,
     "bad (nested deeper than 3) \"[[[[1]]]]\"\njson [[[1]]]\nrc=0 finish=0\n"},
    {"brackets inside strings do not count", "[\"[[[[\"]\n", 0, 2,
     "json [\"[[[[\"]\nrc=0 finish=0\n"},
    {"over limit", "{\"a\":1}\n{\"b\":\"0123456789\"}\n{}\n", 12, 0,
     "json {\"a\":1}\nrc=-90 finish=-90\n"},
    {"at limit with cr", "{\"a\":\"xx\"}\r\n", 11, 0, "json {\"a\":\"xx\"}\nrc=0 finish=0\n"},
};

static void test_ndjson_cases_give_the_same_result_at_every_split(void **state) {
  for (size_t k = 0; k < BASE_ARRAY_SIZE(cases); k++) {
    const nd_case_t *c = &cases[k];
    size_t len = strlen(c->in);
    char *got = run_case(c, NULL, 0);
    if (strcmp(got, c->want) != 0) fail_msg("%s:\n--- want\n%s--- got\n%s", c->name, c->want, got);
    free(got);
    for (size_t cut = 1; cut < len; cut++) {
      got = run_case(c, &cut, 1);
      if (strcmp(got, c->want) != 0) fail_msg("%s split at %zu:\n%s", c->name, cut, got);
      free(got);
    }
    size_t cuts[64];
    assert_true(len <= BASE_ARRAY_SIZE(cuts));
    for (size_t i = 0; i + 1 < len; i++) cuts[i] = i + 1;
    got = run_case(c, cuts, len - 1);
    if (strcmp(got, c->want) != 0) fail_msg("%s byte by byte:\n%s", c->name, got);
    free(got);
  }
}

static int fail_always(void *ud, json_t *doc, const char *line, size_t len, const char *err) {
  ++*(int *)ud;
  return -ECANCELED;
}

static void test_ndjson_callback_error_latches_until_finish(void **state) {
  int n = 0;
  agent_ndjson_t *p;
  agent_ndjson_opts_t o = {.on_line = fail_always, .ud = &n};
  assert_int_equal(agent_ndjson_new(&o, &p), 0);
  assert_int_equal(agent_ndjson_push(p, "1\n2\n", 4), -ECANCELED);
  assert_int_equal(agent_ndjson_push(p, "3\n", 2), -ECANCELED);
  assert_int_equal(n, 1);
  assert_int_equal(agent_ndjson_error(p)->line, 1);
  assert_int_equal(agent_ndjson_finish(p), -ECANCELED);
  assert_int_equal(agent_ndjson_push(p, "\n", 1), 0); /* a new stream after finish */
  agent_ndjson_free(p);
}

static void test_ndjson_new_rejects_missing_callback(void **state) {
  agent_ndjson_t *p;
  agent_ndjson_opts_t o = {0};
  assert_int_equal(agent_ndjson_new(&o, &p), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ndjson_cases_give_the_same_result_at_every_split),
      cmocka_unit_test(test_ndjson_callback_error_latches_until_finish),
      cmocka_unit_test(test_ndjson_new_rejects_missing_callback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
