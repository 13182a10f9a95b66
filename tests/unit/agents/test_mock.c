/* The mock provider on a real uv loop: text choice (configured, echoed, derived and
 * deterministic), chunking, pacing, every failure injection, option errors. */
#include "loop_test.h"

typedef struct mt {
  uv_loop_t loop;
  agent_client_t *c;
} mt_t;

static int setup(void **state) {
  mt_t *t = xcalloc(1, sizeof *t);
  assert_int_equal(uv_loop_init(&t->loop), 0);
  assert_int_equal(agent_client_new(&t->loop, NULL, &t->c), 0);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  mt_t *t = *state;
  lt_teardown(&t->loop, t->c);
  free(t);
  return 0;
}

/* Runs one mock call with params given as JSON text; r must be freed by the caller. */
static void run_mock(mt_t *t, const char *params, const char *prompt, const agent_call_opts_t *o,
                     lt_rec_t *r) {
  json_error_t je;
  json_t *pj = params ? json_loads(params, 0, &je) : NULL;
  if (params && !pj) fail_msg("bad params in test: %s", je.text);
  agent_profile_t p = {.provider = AGENT_PROVIDER_MOCK, .model = "mock-1", .params = pj};
  lt_rec_init(r, &t->loop);
  lt_start(t->c, &p, prompt, o, r);
  json_decref(pj);
  lt_run_until(&t->loop, &r->done, 1);
}

static void test_mock_streams_configured_text_in_chunks_then_finish_and_usage(void **state) {
  lt_rec_t r;
  run_mock(*state, "{\"mock_text\":\"Hello world!\",\"mock_chunk_chars\":5}", "hi", NULL, &r);
  at_assert_same(
      "text \"Hello\"\ntext \" worl\"\ntext \"d!\"\nfinish stop raw=stop\nusage in=2 out=3\n",
      r.deltas.p, "deltas");
  assert_int_equal(r.status, 0);
  assert_int_equal(r.cls, AGENT_ERR_NONE);
  assert_string_equal(r.text, "Hello world!");
  assert_string_equal(r.finish, "stop");
  assert_string_equal(r.message, "");
  assert_int_equal(r.out_tokens, 3);
  assert_int_equal(r.retry_after_ms, -1);
  assert_true(r.partial);
  lt_rec_free(&r);
}

static void test_mock_derived_text_is_deterministic_and_differs_by_prompt(void **state) {
  lt_rec_t a, b, c;
  run_mock(*state, NULL, "research the topic", NULL, &a);
  run_mock(*state, NULL, "research the topic", NULL, &b);
  run_mock(*state, NULL, "write the article", NULL, &c);
  assert_int_equal(a.status, 0);
  assert_true(a.text_len > 20);
  assert_string_equal(a.text, b.text);
  assert_string_equal(a.deltas.p, b.deltas.p);
  assert_string_not_equal(a.text, c.text);
  assert_true(a.text[0] >= 'A' && a.text[0] <= 'Z');
  assert_int_equal(a.text[a.text_len - 1], '.');
  lt_rec_free(&a);
  lt_rec_free(&b);
  lt_rec_free(&c);
}

static void test_mock_word_count_sets_derived_length(void **state) {
  lt_rec_t r;
  run_mock(*state, "{\"mock_words\":3}", "x", NULL, &r);
  int spaces = 0;
  for (size_t i = 0; i < r.text_len; i++) spaces += r.text[i] == ' ';
  assert_int_equal(spaces, 2);
  lt_rec_free(&r);
}

static void test_mock_echo_repeats_the_last_user_message(void **state) {
  lt_rec_t r;
  run_mock(*state, "{\"mock_echo\":true,\"mock_chunk_chars\":64}", "say \"this\"", NULL, &r);
  assert_string_equal(r.text, "say \"this\"");
  lt_rec_free(&r);
}

static void test_mock_reasoning_streams_before_text(void **state) {
  lt_rec_t r;
  run_mock(*state,
           "{\"mock_text\":\"ok\",\"mock_reasoning\":\"hmm\",\"mock_chunk_chars\":8,"
           "\"mock_finish_reason\":\"length\"}",
           "q", NULL, &r);
  at_assert_same("reasoning \"hmm\"\ntext \"ok\"\nfinish length raw=length\nusage in=2 out=2\n",
                 r.deltas.p, "deltas");
  assert_string_equal(r.reasoning, "hmm");
  assert_string_equal(r.finish, "length");
  lt_rec_free(&r);
}

static void test_mock_chunks_never_split_a_utf8_character(void **state) {
  lt_rec_t r;
  /* "é" is 2 bytes, "😀" 4: 3-byte chunks must bend around them */
  run_mock(*state, "{\"mock_text\":\"a\\u00e9\\ud83d\\ude00b\",\"mock_chunk_chars\":3}", "q", NULL,
           &r);
  at_assert_same("text \"aé\"\ntext \"😀\"\ntext \"b\"\nfinish stop raw=stop\nusage in=2 out=3\n",
                 r.deltas.p, "deltas");
  lt_rec_free(&r);
}

static void test_mock_paces_chunks_at_tokens_per_second(void **state) {
  mt_t *t = *state;
  lt_rec_t r;
  uv_update_time(&t->loop);
  uint64_t t0 = uv_now(&t->loop);
  /* 10 chunks at 100/s: the last one is due at 90 ms */
  run_mock(t, "{\"mock_text\":\"0123456789\",\"mock_chunk_chars\":1,\"mock_tokens_per_s\":100}",
           "q", NULL, &r);
  uint64_t took = r.done_at - t0;
  assert_int_equal(r.status, 0);
  assert_int_equal(r.out_tokens, 10);
  if (took < 85 || took > 400)
    fail_msg("10 chunks at 100/s took %llu ms", (unsigned long long)took);
  lt_rec_free(&r);
}

static void test_mock_first_token_delay_holds_the_first_chunk(void **state) {
  mt_t *t = *state;
  lt_rec_t r;
  uv_update_time(&t->loop);
  uint64_t t0 = uv_now(&t->loop);
  run_mock(t, "{\"mock_text\":\"ab\",\"mock_first_token_ms\":80}", "q", NULL, &r);
  assert_true(r.first_at - t0 >= 78);
  lt_rec_free(&r);
}

static void test_mock_fails_only_the_named_attempt_with_rate_limited_and_retry_after(void **state) {
  const char *params =
      "{\"mock_text\":\"fine\",\"mock_fail\":{\"attempt\":1,\"class\":\"rate_limited\","
      "\"retry_after_ms\":1500,\"message\":\"slow down\"}}";
  lt_rec_t r;
  agent_call_opts_t o1 = {.attempt = 1}, o2 = {.attempt = 2};
  run_mock(*state, params, "q", &o1, &r);
  assert_int_equal(r.status, -EIO);
  assert_int_equal(r.cls, AGENT_ERR_RATE_LIMITED);
  assert_int_equal(r.http_status, 429);
  assert_int_equal(r.retry_after_ms, 1500);
  assert_string_equal(r.message, "slow down");
  assert_false(r.partial);
  assert_int_equal(r.ndeltas, 0);
  lt_rec_free(&r);
  run_mock(*state, params, "q", &o2, &r);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.text, "fine");
  lt_rec_free(&r);
}

static void test_mock_fails_mid_stream_after_k_chunks_with_partial_output(void **state) {
  lt_rec_t r;
  run_mock(*state,
           "{\"mock_text\":\"abcdefgh\",\"mock_chunk_chars\":2,"
           "\"mock_fail\":[{\"attempt\":2,\"class\":\"auth\"},"
           "{\"class\":\"server_error\",\"after_chunks\":2}]}",
           "q", NULL, &r);
  at_assert_same("text \"ab\"\ntext \"cd\"\n", r.deltas.p, "deltas");
  assert_int_equal(r.status, -EIO);
  assert_int_equal(r.cls, AGENT_ERR_SERVER);
  assert_int_equal(r.http_status, 200);
  assert_true(r.partial);
  assert_string_equal(r.text, "abcd");
  assert_null(r.finish);
  lt_rec_free(&r);
}

static void test_mock_network_failure_has_no_http_status(void **state) {
  lt_rec_t r;
  run_mock(*state, "{\"mock_fail\":{\"class\":\"network\"}}", "q", NULL, &r);
  assert_int_equal(r.status, -ECONNRESET);
  assert_int_equal(r.cls, AGENT_ERR_NETWORK);
  assert_int_equal(r.http_status, 0);
  lt_rec_free(&r);
}

static void test_mock_stall_ends_with_the_idle_timeout_within_tolerance(void **state) {
  mt_t *t = *state;
  lt_rec_t r;
  agent_call_opts_t o = {.idle_timeout_ms = 100};
  uv_update_time(&t->loop);
  run_mock(t,
           "{\"mock_text\":\"abcdef\",\"mock_chunk_chars\":1,"
           "\"mock_fail\":{\"class\":\"stall\",\"after_chunks\":1}}",
           "q", &o, &r);
  assert_int_equal(r.status, -ETIMEDOUT);
  assert_int_equal(r.cls, AGENT_ERR_TIMEOUT);
  assert_string_equal(r.text, "a");
  uint64_t gap = r.done_at - r.first_at;
  if (gap < 95 || gap > 300)
    fail_msg("idle timeout after %llu ms, want ~100", (unsigned long long)gap);
  lt_rec_free(&r);
}

static void test_mock_total_timeout_cuts_a_slow_stream(void **state) {
  mt_t *t = *state;
  lt_rec_t r;
  agent_call_opts_t o = {.timeout_ms = 150};
  uv_update_time(&t->loop);
  uint64_t t0 = uv_now(&t->loop);
  run_mock(t, "{\"mock_words\":50,\"mock_chunk_chars\":1,\"mock_tokens_per_s\":40}", "q", &o, &r);
  assert_int_equal(r.status, -ETIMEDOUT);
  assert_int_equal(r.cls, AGENT_ERR_TIMEOUT);
  assert_true(r.partial);
  uint64_t took = r.done_at - t0;
  if (took < 145 || took > 400)
    fail_msg("total timeout after %llu ms, want ~150", (unsigned long long)took);
  lt_rec_free(&r);
}

static void test_mock_rejects_bad_options_through_on_done(void **state) {
  static const struct {
    const char *params;
    const char *msg;
  } cases[] = {
      {"{\"mock_bogus\":1}", "params.mock_bogus: unknown mock option"},
      {"{\"mock_text\":3}", "params.mock_text: expected a string"},
      {"{\"mock_chunk_chars\":0}", "params.mock_chunk_chars: expected an integer 1-65536"},
      {"{\"mock_tokens_per_s\":-1}", "params.mock_tokens_per_s: expected a number 0-1000000"},
      {"{\"mock_fail\":{\"class\":\"nope\"}}",
       "params.mock_fail.class: expected an error class or \"stall\""},
      {"{\"mock_fail\":[{\"class\":\"auth\"},{\"attempt\":0,\"class\":\"auth\"}]}",
       "params.mock_fail[1].attempt: expected an integer >= 1"},
      {"{\"mock_fail\":{\"after_chunks\":1}}", "params.mock_fail.class: required"},
      {"{\"mock_fail\":{\"class\":\"auth\",\"x\":1}}", "params.mock_fail.x: unknown field"},
  };
  for (size_t i = 0; i < BASE_ARRAY_SIZE(cases); i++) {
    lt_rec_t r;
    run_mock(*state, cases[i].params, "q", NULL, &r);
    assert_int_equal(r.status, -EINVAL);
    assert_int_equal(r.cls, AGENT_ERR_BAD_REQUEST);
    assert_string_equal(r.message, cases[i].msg);
    assert_int_equal(r.ndeltas, 0);
    lt_rec_free(&r);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_mock_streams_configured_text_in_chunks_then_finish_and_usage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mock_derived_text_is_deterministic_and_differs_by_prompt,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_mock_word_count_sets_derived_length, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mock_echo_repeats_the_last_user_message, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_mock_reasoning_streams_before_text, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mock_chunks_never_split_a_utf8_character, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_mock_paces_chunks_at_tokens_per_second, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mock_first_token_delay_holds_the_first_chunk, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_mock_fails_only_the_named_attempt_with_rate_limited_and_retry_after, setup,
          teardown),
      cmocka_unit_test_setup_teardown(test_mock_fails_mid_stream_after_k_chunks_with_partial_output,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_mock_network_failure_has_no_http_status, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_mock_stall_ends_with_the_idle_timeout_within_tolerance,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_mock_total_timeout_cuts_a_slow_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mock_rejects_bad_options_through_on_done, setup,
                                      teardown),
  };
  return cmocka_run_group_tests_name("agents_mock", tests, NULL, NULL);
}
