/* The client core with the mock transport: concurrency limits and FIFO queues, cancel in
 * every state, input and profile errors reported through on_done, max_calls, stats, and
 * teardown with calls in flight. Each test has its own loop; all handles close. */
#include "loop_test.h"

typedef struct ct {
  uv_loop_t loop;
  agent_client_t *c;
  json_t *slow; /* params: 8 chunks at 200/s, about 35 ms */
} ct_t;

static int setup(void **state) {
  ct_t *t = xcalloc(1, sizeof *t);
  assert_int_equal(uv_loop_init(&t->loop), 0);
  agent_client_config_t cfg = {.max_calls = 8};
  assert_int_equal(agent_client_new(&t->loop, &cfg, &t->c), 0);
  t->slow = json_pack("{s:s,s:i,s:i}", "mock_text", "abcdefgh", "mock_chunk_chars", 1,
                      "mock_tokens_per_s", 200);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  ct_t *t = *state;
  lt_teardown(&t->loop, t->c);
  json_decref(t->slow);
  free(t);
  return 0;
}

static void test_provider_names_round_trip(void **state) {
  agent_provider_t p;
  for (int i = 0; i < AGENT_PROVIDER_COUNT; i++) {
    assert_int_equal(agent_provider_parse(agent_provider_name((agent_provider_t)i), &p), 0);
    assert_int_equal(p, i);
  }
  assert_int_equal(agent_provider_parse("gemini", &p), -EINVAL);
}

static void test_limit_queues_the_third_call_in_fifo_order(void **state) {
  ct_t *t = *state;
  lt_rec_t r[4];
  uint64_t running, queued;
  agent_profile_t p = {
      .provider = AGENT_PROVIDER_MOCK, .params = t->slow, .limit_key = "k", .concurrency = 2};
  for (int i = 0; i < 4; i++) {
    lt_rec_init(&r[i], &t->loop);
    lt_start(t->c, &p, "q", NULL, &r[i]);
  }
  agent_client_limit_stats(t->c, "k", &running, &queued);
  assert_int_equal(running, 2);
  assert_int_equal(queued, 2);
  agent_client_stats_t st;
  agent_client_stats(t->c, &st);
  assert_int_equal(st.running, 2);
  assert_int_equal(st.queued, 2);
  for (int i = 0; i < 4; i++) lt_run_until(&t->loop, &r[i].done, 1);
  /* the queued ones started only when a slot freed, oldest first */
  assert_true(r[2].first_at >= r[0].done_at || r[2].first_at >= r[1].done_at);
  assert_true(r[3].first_at >= r[2].first_at);
  assert_true(r[3].first_at >= r[0].done_at && r[3].first_at >= r[1].done_at);
  agent_client_stats(t->c, &st);
  assert_int_equal(st.started, 4);
  assert_int_equal(st.running + st.queued + st.failed, 0);
  for (int i = 0; i < 4; i++) lt_rec_free(&r[i]);
}

static void test_other_limit_keys_do_not_wait(void **state) {
  ct_t *t = *state;
  lt_rec_t a, b;
  uint64_t running, queued;
  agent_profile_t p = {
      .provider = AGENT_PROVIDER_MOCK, .params = t->slow, .limit_key = "one", .concurrency = 1};
  lt_rec_init(&a, &t->loop);
  lt_start(t->c, &p, "q", NULL, &a);
  p.limit_key = "two";
  lt_rec_init(&b, &t->loop);
  lt_start(t->c, &p, "q", NULL, &b);
  agent_client_limit_stats(t->c, "two", &running, &queued);
  assert_int_equal(running, 1);
  assert_int_equal(queued, 0);
  agent_client_limit_stats(t->c, "never", &running, &queued);
  assert_int_equal(running + queued, 0);
  lt_run_until(&t->loop, &a.done, 1);
  lt_run_until(&t->loop, &b.done, 1);
  lt_rec_free(&a);
  lt_rec_free(&b);
}

static void test_cancel_of_a_queued_call_fires_nothing_and_frees_its_place(void **state) {
  ct_t *t = *state;
  lt_rec_t r[3];
  uint64_t running, queued;
  agent_profile_t p = {
      .provider = AGENT_PROVIDER_MOCK, .params = t->slow, .limit_key = "q", .concurrency = 1};
  for (int i = 0; i < 3; i++) {
    lt_rec_init(&r[i], &t->loop);
    lt_start(t->c, &p, "q", NULL, &r[i]);
  }
  agent_call_cancel(r[1].call);
  agent_client_limit_stats(t->c, "q", &running, &queued);
  assert_int_equal(queued, 1);
  lt_run_until(&t->loop, &r[0].done, 1);
  lt_run_until(&t->loop, &r[2].done, 1);
  assert_int_equal(r[1].done, 0);
  assert_int_equal(r[1].ndeltas, 0);
  assert_int_equal(r[2].status, 0);
  lt_rec_free(&r[0]);
  lt_rec_free(&r[1]);
  lt_rec_free(&r[2]);
}

static void test_cancel_from_on_delta_stops_the_stream_and_on_done_never_fires(void **state) {
  ct_t *t = *state;
  lt_rec_t r;
  agent_profile_t p = {.provider = AGENT_PROVIDER_MOCK, .params = t->slow};
  lt_rec_init(&r, &t->loop);
  r.cancel_after = 2;
  lt_start(t->c, &p, "q", NULL, &r);
  lt_run_until(&t->loop, &r.ndeltas, 2);
  lt_run_for(&t->loop, 100);
  assert_int_equal(r.ndeltas, 2);
  assert_int_equal(r.done, 0);
  agent_client_stats_t st;
  agent_client_stats(t->c, &st);
  assert_int_equal(st.running, 0);
  assert_int_equal(st.failed, 0);
  lt_rec_free(&r);
}

static void test_cancel_right_after_start_fires_nothing(void **state) {
  ct_t *t = *state;
  lt_rec_t r;
  agent_profile_t p = {.provider = AGENT_PROVIDER_MOCK};
  lt_rec_init(&r, &t->loop);
  lt_start(t->c, &p, "q", NULL, &r);
  agent_call_cancel(r.call);
  lt_run_for(&t->loop, 30);
  assert_int_equal(r.done + r.ndeltas, 0);
  lt_rec_free(&r);
}

/* on_done of one call cancels another that has already finished but not been delivered. */
typedef struct pair {
  lt_rec_t a, b;
} pair_t;

static void pair_done_a(void *ud, const agent_result_t *res) {
  pair_t *pr = ud;
  lt_on_done(&pr->a, res);
  if (pr->b.call) agent_call_cancel(pr->b.call);
}

static void pair_done_b(void *ud, const agent_result_t *res) {
  pair_t *pr = ud;
  lt_on_done(&pr->b, res);
}

static void test_cancel_inside_another_calls_on_done_suppresses_the_pending_result(void **state) {
  ct_t *t = *state;
  pair_t pr;
  json_t *in = json_string("q");
  lt_rec_init(&pr.a, &t->loop);
  lt_rec_init(&pr.b, &t->loop);
  agent_profile_t p = {.provider = AGENT_PROVIDER_MOCK, .params = NULL};
  json_t *bad = json_pack("{s:i}", "mock_bogus", 1); /* both fail at once, same reaper turn */
  p.params = bad;
  agent_call_cbs_t ca = {.on_done = pair_done_a}, cb = {.on_done = pair_done_b};
  assert_int_equal(agent_call_start(t->c, &p, in, NULL, &ca, &pr, &pr.a.call), 0);
  assert_int_equal(agent_call_start(t->c, &p, in, NULL, &cb, &pr, &pr.b.call), 0);
  lt_run_until(&t->loop, &pr.a.done, 1);
  lt_run_for(&t->loop, 20);
  assert_int_equal(pr.b.done, 0);
  json_decref(bad);
  json_decref(in);
  lt_rec_free(&pr.a);
  lt_rec_free(&pr.b);
}

static void test_bad_input_and_profile_fail_through_on_done(void **state) {
  ct_t *t = *state;
  static const struct {
    agent_provider_t prov;
    const char *model;
    const char *input; /* JSON */
    const char *msg;
  } cases[] = {
      {AGENT_PROVIDER_MOCK, NULL, "42",
       "input: expected a prompt string or a non-empty array of messages"},
      {AGENT_PROVIDER_MOCK, NULL, "[]",
       "input: expected a prompt string or a non-empty array of messages"},
      {AGENT_PROVIDER_MOCK, NULL, "[{\"role\":\"user\"}]",
       "input[0].content: expected a string or an array"},
      {AGENT_PROVIDER_MOCK, NULL, "[{\"role\":1,\"content\":\"x\"}]",
       "input[0].role: expected a non-empty string"},
      {AGENT_PROVIDER_OPENAI, NULL, "\"q\"", "model: required for provider openai"},
      {(agent_provider_t)9, "m", "\"q\"", "provider: unknown provider"},
  };
  for (size_t i = 0; i < BASE_ARRAY_SIZE(cases); i++) {
    lt_rec_t r;
    json_error_t je;
    json_t *in = json_loads(cases[i].input, JSON_DECODE_ANY, &je);
    agent_profile_t p = {.provider = cases[i].prov, .model = cases[i].model};
    lt_rec_init(&r, &t->loop);
    assert_int_equal(agent_call_start(t->c, &p, in, NULL, &lt_cbs, &r, NULL), 0);
    assert_int_equal(r.done, 0);
    lt_run_until(&t->loop, &r.done, 1);
    assert_int_equal(r.status, -EINVAL);
    assert_int_equal(r.cls, AGENT_ERR_BAD_REQUEST);
    assert_string_equal(r.message, cases[i].msg);
    json_decref(in);
    lt_rec_free(&r);
  }
}

static void test_start_rejects_missing_arguments_and_too_many_calls(void **state) {
  ct_t *t = *state;
  agent_profile_t p = {.provider = AGENT_PROVIDER_MOCK, .params = t->slow};
  json_t *in = json_string("q");
  agent_call_cbs_t no_done = {.on_delta = lt_on_delta};
  lt_rec_t r[9];
  assert_int_equal(agent_call_start(NULL, &p, in, NULL, &lt_cbs, NULL, NULL), -EINVAL);
  assert_int_equal(agent_call_start(t->c, NULL, in, NULL, &lt_cbs, NULL, NULL), -EINVAL);
  assert_int_equal(agent_call_start(t->c, &p, NULL, NULL, &lt_cbs, NULL, NULL), -EINVAL);
  assert_int_equal(agent_call_start(t->c, &p, in, NULL, &no_done, NULL, NULL), -EINVAL);
  for (int i = 0; i < 8; i++) {
    lt_rec_init(&r[i], &t->loop);
    assert_int_equal(agent_call_start(t->c, &p, in, NULL, &lt_cbs, &r[i], NULL), 0);
  }
  lt_rec_init(&r[8], &t->loop);
  assert_int_equal(agent_call_start(t->c, &p, in, NULL, &lt_cbs, &r[8], NULL), -EBUSY);
  for (int i = 0; i < 8; i++) lt_run_until(&t->loop, &r[i].done, 1);
  for (int i = 0; i < 9; i++) lt_rec_free(&r[i]);
  json_decref(in);
}

static void test_messages_array_input_is_used_as_given(void **state) {
  ct_t *t = *state;
  lt_rec_t r;
  json_t *params = json_pack("{s:b,s:i}", "mock_echo", 1, "mock_chunk_chars", 100);
  json_t *in =
      json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "role", "user", "content", "first", "role",
                "assistant", "content", "reply", "role", "user", "content", "second");
  agent_profile_t p = {.provider = AGENT_PROVIDER_MOCK, .params = params};
  lt_rec_init(&r, &t->loop);
  assert_int_equal(agent_call_start(t->c, &p, in, NULL, &lt_cbs, &r, NULL), 0);
  lt_run_until(&t->loop, &r.done, 1);
  assert_string_equal(r.text, "second");
  json_decref(in);
  json_decref(params);
  lt_rec_free(&r);
}

static void test_client_free_with_running_and_queued_calls_closes_every_handle(void **state) {
  ct_t *t = *state;
  lt_rec_t r[3];
  agent_profile_t p = {.provider = AGENT_PROVIDER_MOCK, .params = t->slow, .concurrency = 1};
  for (int i = 0; i < 3; i++) {
    lt_rec_init(&r[i], &t->loop);
    lt_start(t->c, &p, "q", NULL, &r[i]);
  }
  lt_run_until(&t->loop, &r[0].ndeltas, 1);
  agent_client_free(t->c);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  for (int i = 0; i < 3; i++) assert_int_equal(r[i].done, 0);
  for (int i = 0; i < 3; i++) lt_rec_free(&r[i]);
  assert_int_equal(agent_client_new(&t->loop, NULL, &t->c), 0); /* for teardown */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_provider_names_round_trip),
      cmocka_unit_test_setup_teardown(test_limit_queues_the_third_call_in_fifo_order, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_other_limit_keys_do_not_wait, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_cancel_of_a_queued_call_fires_nothing_and_frees_its_place, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_cancel_from_on_delta_stops_the_stream_and_on_done_never_fires, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_right_after_start_fires_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_cancel_inside_another_calls_on_done_suppresses_the_pending_result, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_input_and_profile_fail_through_on_done, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_start_rejects_missing_arguments_and_too_many_calls,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_messages_array_input_is_used_as_given, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_client_free_with_running_and_queued_calls_closes_every_handle, setup, teardown),
  };
  return cmocka_run_group_tests_name("agents_client", tests, NULL, NULL);
}
