/* text/event-stream parser (agents/sse.c): a table of WHATWG edge cases, each fed whole,
 * split at every byte boundary and byte by byte, which must all give the same events,
 * comments, pending flag and error; then the reconnect and error-latching contracts. */
#include <errno.h>

#include "agents_test.h"

typedef struct sse_case {
  const char *name;
  const char *in;
  size_t in_len; /* 0: strlen(in) */
  size_t max_line, max_data;
  bool strict;
  const char *want; /* rendered: events, comments, then "pending=..", "rc=.." */
} sse_case_t;

static int render_event(void *ud, const agent_sse_event_t *ev) {
  at_str_t *out = ud;
  at_printf(out, "%s id=%s ", ev->type, ev->last_id);
  at_quote(out, ev->data, ev->data_len);
  at_puts(out, "\n", 1);
  return 0;
}

static void render_comment(void *ud, const char *text, size_t len) {
  at_puts(ud, "comment ", 8);
  at_quote(ud, text, len);
  at_puts(ud, "\n", 1);
}

static char *run_case(const sse_case_t *c, size_t len, const size_t *cuts, size_t ncuts) {
  at_str_t out = {0};
  agent_sse_t *p;
  agent_sse_opts_t o = {.max_line = c->max_line, .max_data = c->max_data, .strict = c->strict,
                        .on_event = render_event, .on_comment = render_comment, .ud = &out};
  assert_int_equal(agent_sse_new(&o, &p), 0);
  size_t at = 0;
  int first = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t end = i < ncuts ? cuts[i] : len;
    int rc = agent_sse_push(p, c->in + at, end - at);
    if (rc && !first) first = rc;
    if (first) assert_int_equal(rc, first); /* refuses input once failed */
    at = end;
  }
  if (agent_sse_retry_ms(p) >= 0) at_printf(&out, "retry=%lld\n", (long long)agent_sse_retry_ms(p));
  bool pending;
  int frc = agent_sse_finish(p, &pending);
  assert_int_equal(frc, first);
  at_printf(&out, "pending=%d", pending);
  if (first) at_printf(&out, " rc=%d", first);
  at_puts(&out, "\n", 1);
  agent_sse_free(p);
  return out.p;
}

static const sse_case_t cases[] = {
    {"lf", "data: hello\n\n", 0, 0, 0, false, "message id= \"hello\"\npending=0\n"},
    {"cr only", "data: a\rdata: b\r\r", 0, 0, 0, false, "message id= \"a\\nb\"\npending=0\n"},
    {"crlf", "data: a\r\n\r\n", 0, 0, 0, false, "message id= \"a\"\npending=0\n"},
    {"mixed ends", "data: a\r\ndata: b\ndata: c\r\r\n", 0, 0, 0, false,
     "message id= \"a\\nb\\nc\"\npending=0\n"},
    {"cr then lf is one end", "data: a\r\n\r\ndata: b\n\r\n", 0, 0, 0, false,
     "message id= \"a\"\nmessage id= \"b\"\npending=0\n"},
    {"no blank line, no dispatch", "data: x\n", 0, 0, 0, false, "pending=1\n"},
    {"unterminated line, no dispatch", "data: x", 0, 0, 0, false, "pending=1\n"},
    {"last event without blank line is dropped", "data: a\n\ndata: b\n", 0, 0, 0, false,
     "message id= \"a\"\npending=1\n"},
    {"comments are reported, not dispatched", ": keepalive\n\n:\ndata: a\n\n", 0, 0, 0, false,
     "comment \" keepalive\"\ncomment \"\"\nmessage id= \"a\"\npending=0\n"},
    {"multi-line data", "data: a\ndata:\ndata:  b\n\n", 0, 0, 0, false,
     "message id= \"a\\n\\n b\"\npending=0\n"},
    {"field without colon is an empty value", "data\n\n", 0, 0, 0, false,
     "message id= \"\"\npending=0\n"},
    {"no space after colon", "data:a\n\n", 0, 0, 0, false, "message id= \"a\"\npending=0\n"},
    {"colon in value", "data: a: b\n\n", 0, 0, 0, false, "message id= \"a: b\"\npending=0\n"},
    {"id persists and can be cleared", "id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", 0, 0, 0,
     false, "message id=1 \"a\"\nmessage id=1 \"b\"\nmessage id= \"c\"\npending=0\n"},
    {"id is set at the blank line even without data", "id: 7\n\ndata: x\n\n", 0, 0, 0, false,
     "message id=7 \"x\"\npending=0\n"},
    {"id with NUL is ignored", "id: 1\n\nid: a\0b\ndata: x\n\n", 24, 0, 0, false,
     "message id=1 \"x\"\npending=0\n"},
    {"NUL in data is kept", "data: a\0b\n\n", 11, 0, 0, false,
     "message id= \"a\\u0000b\"\npending=0\n"},
    {"bom is skipped", "\xEF\xBB\xBF" "data: a\n\n", 0, 0, 0, false,
     "message id= \"a\"\npending=0\n"},
    {"only one bom is skipped", "\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\ndata: b\n\n", 0, 0, 0,
     false, "message id= \"b\"\npending=0\n"},
    {"bom alone then blank", "\xEF\xBB\xBF\ndata: a\n\n", 0, 0, 0, false,
     "message id= \"a\"\npending=0\n"},
    {"event type applies once", "event: add\ndata: 1\n\ndata: 2\n\n", 0, 0, 0, false,
     "add id= \"1\"\nmessage id= \"2\"\npending=0\n"},
    {"event without data is not dispatched", "event: x\n\ndata: y\n\n", 0, 0, 0, false,
     "message id= \"y\"\npending=0\n"},
    {"empty event type is message", "event:\ndata: y\n\n", 0, 0, 0, false,
     "message id= \"y\"\npending=0\n"},
    {"retry digits only", "retry: 1500\n\nretry: 15x\n\nretry:\n\n", 0, 0, 0, false,
     "retry=1500\npending=0\n"},
    {"unknown fields ignored", "foo: bar\nDATA: no\ndata: a\n\n", 0, 0, 0, false,
     "message id= \"a\"\npending=0\n"},
    {"blank lines only", "\n\r\n\r", 0, 0, 0, false, "pending=0\n"},
    {"invalid utf8 becomes U+FFFD", "data: a\xff" "b\xe2\x82\n\n", 0, 0, 0, false,
     "message id= \"a\xef\xbf\xbd" "b\xef\xbf\xbd\"\npending=0\n"},
    {"llama.cpp error line", "error: {\"code\":500}\n\n", 0, 0, 0, false,
     "error id= \"{\\\"code\\\":500}\"\npending=0\n"},
    {"llama.cpp error line ignored when strict", "error: {\"code\":500}\n\n", 0, 0, 0, true,
     "pending=0\n"},
    {"line over limit", "data: a\n\ndata: 0123456789abcdef\n\ndata: b\n\n", 0, 16, 0, false,
     "message id= \"a\"\npending=1 rc=-90\n"},
    {"line at limit is fine", "data: 0123456789\n\n", 0, 16, 0, false,
     "message id= \"0123456789\"\npending=0\n"},
    {"comment over limit", ": 0123456789abcdefghij\n", 0, 16, 0, false, "pending=1 rc=-90\n"},
    {"data over limit", "data: 1234\ndata: 5678\n\n", 0, 0, 8, false, "pending=1 rc=-90\n"},
    {"data at limit is fine", "data: 123\ndata: 567\n\n", 0, 0, 8, false,
     "message id= \"123\\n567\"\npending=0\n"},
};

static void test_sse_edge_cases_give_the_same_result_at_every_split(void **state) {
  for (size_t k = 0; k < BASE_ARRAY_SIZE(cases); k++) {
    const sse_case_t *c = &cases[k];
    size_t len = c->in_len ? c->in_len : strlen(c->in);
    char *got = run_case(c, len, NULL, 0);
    if (strcmp(got, c->want) != 0) fail_msg("%s:\n--- want\n%s--- got\n%s", c->name, c->want, got);
    free(got);
    for (size_t cut = 1; cut < len; cut++) {
      got = run_case(c, len, &cut, 1);
      if (strcmp(got, c->want) != 0) fail_msg("%s split at %zu:\n%s", c->name, cut, got);
      free(got);
    }
    size_t cuts[64];
    assert_true(len <= BASE_ARRAY_SIZE(cuts));
    for (size_t i = 0; i + 1 < len; i++) cuts[i] = i + 1;
    got = run_case(c, len, cuts, len - 1);
    if (strcmp(got, c->want) != 0) fail_msg("%s byte by byte:\n%s", c->name, got);
    free(got);
  }
}

static void test_sse_finish_starts_a_new_stream_keeping_last_id_and_retry(void **state) {
  at_str_t out = {0};
  agent_sse_t *p;
  agent_sse_opts_t o = {.on_event = render_event, .ud = &out};
  assert_int_equal(agent_sse_new(&o, &p), 0);
  static const char a[] = "retry: 300\nid: 41\ndata: a\n\nid: 42\ndata: b";
  assert_int_equal(agent_sse_push(p, a, sizeof a - 1), 0);
  bool pending = false;
  assert_int_equal(agent_sse_finish(p, &pending), 0);
  assert_true(pending);
  assert_string_equal(agent_sse_last_id(p), "41"); /* 42 never reached a blank line */
  assert_int_equal(agent_sse_retry_ms(p), 300);
  static const char b[] = "\xEF\xBB\xBF" "data: c\n\n";
  assert_int_equal(agent_sse_push(p, b, sizeof b - 1), 0);
  assert_int_equal(agent_sse_finish(p, &pending), 0);
  assert_false(pending);
  assert_string_equal(out.p, "message id=41 \"a\"\nmessage id=41 \"c\"\n");
  agent_sse_free(p);
  free(out.p);
}

static int stop_on_second(void *ud, const agent_sse_event_t *ev) {
  int *n = ud;
  return ++*n == 2 ? -ECANCELED : 0;
}

static void test_sse_callback_error_stops_the_push_and_latches(void **state) {
  int n = 0;
  agent_sse_t *p;
  agent_sse_opts_t o = {.on_event = stop_on_second, .ud = &n};
  assert_int_equal(agent_sse_new(&o, &p), 0);
  static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
  assert_int_equal(agent_sse_push(p, in, sizeof in - 1), -ECANCELED);
  assert_int_equal(n, 2);
  assert_int_equal(agent_sse_push(p, in, sizeof in - 1), -ECANCELED);
  assert_int_equal(n, 2);
  assert_int_equal(agent_sse_error(p)->code, -ECANCELED);
  assert_int_equal(agent_sse_error(p)->line, 4);
  assert_int_equal(agent_sse_finish(p, NULL), -ECANCELED);
  assert_int_equal(agent_sse_error(p)->code, 0);
  agent_sse_free(p);
}

static void test_sse_over_limit_error_names_the_line(void **state) {
  agent_sse_t *p;
  agent_sse_opts_t o = {.max_line = 8, .on_event = stop_on_second, .ud = &(int){0}};
  assert_int_equal(agent_sse_new(&o, &p), 0);
  static const char in[] = "data: 1\n: ok\ndata: 123456789\n";
  assert_int_equal(agent_sse_push(p, in, sizeof in - 1), -EMSGSIZE);
  assert_int_equal(agent_sse_error(p)->line, 3);
  assert_string_equal(agent_sse_error(p)->msg, "line 3: line too long");
  agent_sse_free(p);
}

static void test_sse_new_rejects_missing_callback(void **state) {
  agent_sse_t *p;
  agent_sse_opts_t o = {0};
  assert_int_equal(agent_sse_new(&o, &p), -EINVAL);
  assert_int_equal(agent_sse_new(NULL, &p), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sse_edge_cases_give_the_same_result_at_every_split),
      cmocka_unit_test(test_sse_finish_starts_a_new_stream_keeping_last_id_and_retry),
      cmocka_unit_test(test_sse_callback_error_stops_the_push_and_latches),
      cmocka_unit_test(test_sse_over_limit_error_names_the_line),
      cmocka_unit_test(test_sse_new_rejects_missing_callback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
