/* Provider-neutral decoder behaviour (agents/decoder.c): framing errors become ERROR
 * deltas, input after the terminal event is ignored, callback errors latch, and events can
 * be fed already framed. */
#include <errno.h>

#include "agents_test.h"

static void test_decoder_line_over_limit_is_an_error_delta_and_push_error(void **state) {
  at_str_t out = {0};
  agent_decoder_t *d;
  agent_decoder_opts_t o = {.wire = AGENT_WIRE_OPENAI, .max_line = 64, .on_delta = at_collect, .ud = &out};
  assert_int_equal(agent_decoder_new(&o, &d), 0);
  static const char ok[] = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n";
  assert_int_equal(agent_decoder_push(d, ok, sizeof ok - 1), 0);
  char big[200];
  memset(big, 'x', sizeof big);
  assert_int_equal(agent_decoder_push(d, big, sizeof big), -EMSGSIZE);
  assert_true(agent_decoder_done(d));
  assert_int_equal(agent_decoder_push(d, ok, sizeof ok - 1), 0); /* ignored */
  assert_int_equal(agent_decoder_finish(d), 0);
  at_assert_same("text \"a\"\nerror unknown \"line 3: line too long\"\n", out.p, "limit");
  agent_decoder_free(d);
  free(out.p);
}

static void test_decoder_ndjson_line_over_limit_is_an_error_delta(void **state) {
  at_str_t out = {0};
  agent_decoder_t *d;
  agent_decoder_opts_t o = {.wire = AGENT_WIRE_OLLAMA, .max_line = 16, .on_delta = at_collect, .ud = &out};
  assert_int_equal(agent_decoder_new(&o, &d), 0);
  static const char in[] = "{\"response\":\"a\"}\n{\"response\":\"bb\"}\n";
  assert_int_equal(agent_decoder_push(d, in, sizeof in - 1), -EMSGSIZE);
  assert_int_equal(agent_decoder_finish(d), 0);
  at_assert_same("text \"a\"\nerror unknown \"line 2: line too long\"\n", out.p, "limit");
  agent_decoder_free(d);
  free(out.p);
}

static void test_decoder_ignores_input_after_done(void **state) {
  at_str_t out = {0};
  agent_decoder_t *d;
  agent_decoder_opts_t o = {.wire = AGENT_WIRE_OPENAI, .on_delta = at_collect, .ud = &out};
  assert_int_equal(agent_decoder_new(&o, &d), 0);
  static const char in[] = "data: [DONE]\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n";
  assert_false(agent_decoder_done(d));
  assert_int_equal(agent_decoder_push(d, in, sizeof in - 1), 0);
  assert_true(agent_decoder_done(d));
  assert_int_equal(agent_decoder_finish(d), 0);
  assert_null(out.p);
  agent_decoder_free(d);
}

static int fail_on_text(void *ud, const agent_delta_t *dl) {
  ++*(int *)ud;
  return dl->kind == AGENT_DELTA_TEXT ? -ECANCELED : 0;
}

static void test_decoder_callback_error_stops_and_latches(void **state) {
  int n = 0;
  agent_decoder_t *d;
  agent_decoder_opts_t o = {.wire = AGENT_WIRE_ANTHROPIC, .on_delta = fail_on_text, .ud = &n};
  assert_int_equal(agent_decoder_new(&o, &d), 0);
  static const char in[] =
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
      "\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
      "\"delta\":{\"type\":\"text_delta\",\"text\":\"b\"}}\n\n";
  assert_int_equal(agent_decoder_push(d, in, sizeof in - 1), -ECANCELED);
  assert_int_equal(agent_decoder_push(d, in, sizeof in - 1), -ECANCELED);
  assert_int_equal(agent_decoder_finish(d), -ECANCELED);
  assert_int_equal(n, 1);
  agent_decoder_free(d);
}

static void test_decoder_accepts_already_framed_events(void **state) {
  at_str_t out = {0};
  agent_decoder_t *d;
  agent_decoder_opts_t o = {.wire = AGENT_WIRE_ANTHROPIC, .on_delta = at_collect, .ud = &out};
  assert_int_equal(agent_decoder_new(&o, &d), 0);
  static const char ev[] = "{\"type\":\"content_block_delta\",\"index\":0,"
                           "\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}";
  assert_int_equal(agent_decoder_event(d, NULL, ev, sizeof ev - 1), 0);
  static const char err[] = "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}";
  assert_int_equal(agent_decoder_event(d, "error", err, sizeof err - 1), 0);
  assert_true(agent_decoder_done(d));
  at_assert_same("reasoning \"hm\"\nerror server_error \"boom\"\n", out.p, "framed");
  agent_decoder_free(d);
  free(out.p);
}

static void test_decoder_finish_reason_without_done_marker_is_complete(void **state) {
  static const char body[] = "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
  char *got = at_decode(AGENT_WIRE_OPENAI, body, sizeof body - 1, NULL, 0);
  at_assert_same("finish stop raw=stop\n", got, "no [DONE]");
  free(got);
}

static void test_decoder_empty_body_is_a_network_error(void **state) {
  for (int w = AGENT_WIRE_OPENAI; w <= AGENT_WIRE_OLLAMA; w++) {
    char *got = at_decode((agent_wire_t)w, "", 0, NULL, 0);
    at_assert_same("error network \"stream ended before the response was complete\"\n", got, "empty");
    free(got);
  }
}

static void test_decoder_new_rejects_bad_options(void **state) {
  agent_decoder_t *d;
  agent_decoder_opts_t o = {.wire = (agent_wire_t)7, .on_delta = at_collect};
  assert_int_equal(agent_decoder_new(&o, &d), -EINVAL);
  o.wire = AGENT_WIRE_OPENAI;
  o.on_delta = NULL;
  assert_int_equal(agent_decoder_new(&o, &d), -EINVAL);
  assert_string_equal(agent_delta_kind_name(AGENT_DELTA_TOOL_CALL), "tool_call");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decoder_line_over_limit_is_an_error_delta_and_push_error),
      cmocka_unit_test(test_decoder_ndjson_line_over_limit_is_an_error_delta),
      cmocka_unit_test(test_decoder_ignores_input_after_done),
      cmocka_unit_test(test_decoder_callback_error_stops_and_latches),
      cmocka_unit_test(test_decoder_accepts_already_framed_events),
      cmocka_unit_test(test_decoder_finish_reason_without_done_marker_is_complete),
      cmocka_unit_test(test_decoder_empty_body_is_a_network_error),
      cmocka_unit_test(test_decoder_new_rejects_bad_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
