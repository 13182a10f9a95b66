/* The HTTP transport against the fake endpoint (tests/fake/fake-llm.mjs) on loopback: each
 * provider's stream gives the transcript's deltas and result; HTTP errors, errors after
 * 200, idle and total timeouts, cancel (the server sees the disconnect), a server that
 * drops the connection, and concurrency limits. Each test has its own loop and client. */
#include "loop_test.h"

typedef struct ht {
  lt_fake_t *fake; /* borrowed from the group */
  uv_loop_t loop;
  agent_client_t *c;
  char openai_base[96];
} ht_t;

static int group_setup(void **state) {
  lt_fake_t *f = xcalloc(1, sizeof *f);
  if (lt_fake_start(f) < 0) fprintf(stderr, "[  SKIP    ] %s\n", f->skip);
  *state = f;
  return 0;
}

static int group_teardown(void **state) {
  lt_fake_t *f = *state;
  lt_fake_stop(f);
  free(f);
  return 0;
}

static int setup(void **state) {
  ht_t *t = xcalloc(1, sizeof *t);
  t->fake = *state;
  assert_int_equal(uv_loop_init(&t->loop), 0);
  snprintf(t->openai_base, sizeof t->openai_base, "%s/v1", t->fake->base);
  agent_client_config_t cfg = {0};
  cfg.providers[AGENT_PROVIDER_OPENAI].base_url = t->openai_base;
  cfg.providers[AGENT_PROVIDER_OPENAI].api_key = "sk-test";
  cfg.providers[AGENT_PROVIDER_ANTHROPIC].base_url = t->fake->base;
  cfg.providers[AGENT_PROVIDER_ANTHROPIC].api_key = "ak-test";
  cfg.providers[AGENT_PROVIDER_OLLAMA].base_url = t->fake->base;
  assert_int_equal(agent_client_new(&t->loop, &cfg, &t->c), 0);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  ht_t *t = *state;
  lt_teardown(&t->loop, t->c);
  free(t);
  return 0;
}

#define NEED_FAKE(t)                          \
  do {                                        \
    if ((t)->fake->skip[0]) {                 \
      print_message("%s\n", (t)->fake->skip); \
      skip();                                 \
    }                                         \
  } while (0)

static void run_call(ht_t *t, agent_provider_t prov, const char *model, const json_t *params,
                     const agent_call_opts_t *o, lt_rec_t *r) {
  agent_profile_t p = {.provider = prov, .model = model, .params = params};
  lt_rec_init(r, &t->loop);
  lt_start(t->c, &p, "hello", o, r);
  lt_run_until(&t->loop, &r->done, 1);
}

/* The transcript's .expect without its ERROR line (errors go to on_done only). */
static char *expect_without_error(const char *name) {
  size_t len;
  char *path = xasprintf("%s.expect", name);
  char *want = at_read_file(path, &len);
  free(path);
  char *err = strstr(want, "error ");
  if (err && (err == want || err[-1] == '\n')) *err = '\0';
  return want;
}

static void check_transcript(ht_t *t, agent_provider_t prov, const char *transcript) {
  lt_rec_t r;
  char *model = xasprintf("scenario:normal?transcript=%s&tag=%s", transcript, transcript);
  run_call(t, prov, model, NULL, NULL, &r);
  char *want = expect_without_error(transcript);
  at_assert_same(want, r.deltas.p ? r.deltas.p : "", transcript);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.http_status, 200);
  assert_string_equal(r.finish, "stop");
  assert_true(r.in_tokens > 0 && r.out_tokens > 0);
  free(want);
  free(model);
  lt_rec_free(&r);
}

static void test_openai_stream_gives_the_transcript_deltas_and_result(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  check_transcript(t, AGENT_PROVIDER_OPENAI, "openai_text");
  lt_rec_t r;
  run_call(t, AGENT_PROVIDER_OPENAI, "scenario:normal?transcript=openai_text", NULL, NULL, &r);
  assert_string_equal(r.text, "Hello! \"Quoted\"\nnew line");
  assert_int_equal(r.in_tokens, 9);
  assert_int_equal(r.out_tokens, 12);
  lt_rec_free(&r);
}

static void test_anthropic_stream_gives_the_transcript_deltas_and_result(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  check_transcript(t, AGENT_PROVIDER_ANTHROPIC, "anthropic_text");
}

static void test_ollama_stream_gives_the_transcript_deltas_and_result(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  check_transcript(t, AGENT_PROVIDER_OLLAMA, "ollama_chat");
}

static void test_tool_calls_are_assembled_in_the_result(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  lt_rec_t r;
  run_call(t, AGENT_PROVIDER_OPENAI, "scenario:normal?transcript=openai_tools", NULL, NULL, &r);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.finish, "tool_calls");
  assert_true(r.ntools >= 1);
  assert_non_null(r.tool0);
  assert_non_null(strstr(r.tool0, "{"));
  lt_rec_free(&r);
}

static void test_requests_carry_each_providers_body_and_headers(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  json_t *params =
      json_pack("{s:f,s:i,s:s}", "temperature", 0.5, "max_tokens", 77, "mock_text", "x");
  agent_profile_t p = {.provider = AGENT_PROVIDER_OPENAI,
                       .model = "scenario:normal?tag=req_openai",
                       .system = "be brief",
                       .params = params};
  lt_rec_t r[3];
  lt_rec_init(&r[0], &t->loop);
  lt_start(t->c, &p, "hello", NULL, &r[0]);
  p.provider = AGENT_PROVIDER_ANTHROPIC;
  p.model = "scenario:normal?tag=req_anthropic";
  lt_rec_init(&r[1], &t->loop);
  json_t *msgs = json_pack("[{s:s,s:s},{s:s,s:s}]", "role", "system", "content", "and kind", "role",
                           "user", "content", "hello");
  assert_int_equal(agent_call_start(t->c, &p, msgs, NULL, &lt_cbs, &r[1], NULL), 0);
  p.provider = AGENT_PROVIDER_OLLAMA;
  p.model = "scenario:normal?tag=req_ollama";
  lt_rec_init(&r[2], &t->loop);
  lt_start(t->c, &p, "hello", NULL, &r[2]);
  for (int i = 0; i < 3; i++) lt_run_until(&t->loop, &r[i].done, 1);
  for (int i = 0; i < 3; i++) assert_int_equal(r[i].status, 0);

  json_t *log = lt_fake_get(t->fake, "/_requests?tag=req_openai");
  json_t *req = json_array_get(log, 0), *h = json_object_get(req, "headers"),
         *b = json_object_get(req, "body");
  assert_string_equal(json_string_value(json_object_get(h, "authorization")), "Bearer sk-test");
  assert_string_equal(json_string_value(json_object_get(h, "accept")), "text/event-stream");
  assert_true(json_is_true(json_object_get(b, "stream")));
  assert_true(json_is_true(json_object_get(json_object_get(b, "stream_options"), "include_usage")));
  assert_int_equal(json_integer_value(json_object_get(b, "max_tokens")), 77);
  assert_null(json_object_get(b, "mock_text"));
  json_t *m0 = json_array_get(json_object_get(b, "messages"), 0);
  assert_string_equal(json_string_value(json_object_get(m0, "role")), "system");
  assert_string_equal(json_string_value(json_object_get(m0, "content")), "be brief");
  json_decref(log);

  log = lt_fake_get(t->fake, "/_requests?tag=req_anthropic");
  req = json_array_get(log, 0), h = json_object_get(req, "headers"),
  b = json_object_get(req, "body");
  assert_string_equal(json_string_value(json_object_get(h, "x-api-key")), "ak-test");
  assert_string_equal(json_string_value(json_object_get(h, "anthropic-version")), "2023-06-01");
  assert_null(json_object_get(h, "authorization"));
  assert_string_equal(json_string_value(json_object_get(b, "system")), "be brief\n\nand kind");
  assert_int_equal(json_array_size(json_object_get(b, "messages")), 1);
  assert_true(json_is_true(json_object_get(b, "stream")));
  json_decref(log);

  log = lt_fake_get(t->fake, "/_requests?tag=req_ollama");
  req = json_array_get(log, 0), h = json_object_get(req, "headers"),
  b = json_object_get(req, "body");
  assert_null(json_object_get(h, "authorization"));
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(b, "options"), "num_predict")), 77);
  assert_null(json_object_get(b, "max_tokens"));
  json_decref(log);

  for (int i = 0; i < 3; i++) lt_rec_free(&r[i]);
  json_decref(msgs);
  json_decref(params);
}

static void test_429_with_retry_after_is_rate_limited_with_its_delay(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  lt_rec_t r;
  run_call(t, AGENT_PROVIDER_OPENAI, "scenario:status?status=429&retry_after=3&message=slow%20down",
           NULL, NULL, &r);
  assert_int_equal(r.status, -EIO);
  assert_int_equal(r.cls, AGENT_ERR_RATE_LIMITED);
  assert_int_equal(r.http_status, 429);
  assert_int_equal(r.retry_after_ms, 3000);
  assert_string_equal(r.message, "HTTP 429: slow down");
  assert_false(r.partial);
  lt_rec_free(&r);
  /* retry-after-ms wins, Anthropic's body shape */
  run_call(t, AGENT_PROVIDER_ANTHROPIC,
           "scenario:status?status=429&retry_after=3&retry_after_ms=1500", NULL, NULL, &r);
  assert_int_equal(r.cls, AGENT_ERR_RATE_LIMITED);
  assert_int_equal(r.retry_after_ms, 1500);
  lt_rec_free(&r);
}

static void test_500_is_a_server_error_without_delay(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  lt_rec_t r;
  run_call(t, AGENT_PROVIDER_OLLAMA, "scenario:status?status=500", NULL, NULL, &r);
  assert_int_equal(r.status, -EIO);
  assert_int_equal(r.cls, AGENT_ERR_SERVER);
  assert_int_equal(r.http_status, 500);
  assert_int_equal(r.retry_after_ms, -1);
  assert_string_equal(r.message, "HTTP 500: fake status 500");
  lt_rec_free(&r);
  run_call(t, AGENT_PROVIDER_OPENAI, "scenario:status?status=401", NULL, NULL, &r);
  assert_int_equal(r.cls, AGENT_ERR_AUTH);
  lt_rec_free(&r);
}

static void test_error_after_200_fails_with_its_class_and_partial_text(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  lt_rec_t r;
  run_call(t, AGENT_PROVIDER_OPENAI, "scenario:normal?transcript=openai_error", NULL, NULL, &r);
  assert_int_equal(r.status, -EIO);
  assert_int_equal(r.cls, AGENT_ERR_SERVER);
  assert_int_equal(r.http_status, 200);
  assert_true(r.partial);
  assert_string_equal(r.text, "Par");
  at_assert_same("text \"Par\"\n", r.deltas.p, "deltas");
  lt_rec_free(&r);
  run_call(t, AGENT_PROVIDER_ANTHROPIC, "scenario:normal?transcript=anthropic_overloaded", NULL,
           NULL, &r);
  assert_int_equal(r.cls, AGENT_ERR_SERVER);
  assert_string_equal(r.message, "Overloaded");
  lt_rec_free(&r);
}

static void test_idle_timeout_fires_on_a_stall_within_tolerance(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  lt_rec_t r;
  agent_call_opts_t o = {.idle_timeout_ms = 200};
  run_call(t, AGENT_PROVIDER_OPENAI, "scenario:stall?after=3&tag=stall", NULL, &o, &r);
  assert_int_equal(r.status, -ETIMEDOUT);
  assert_int_equal(r.cls, AGENT_ERR_TIMEOUT);
  assert_true(r.partial);
  assert_string_equal(r.text, "Hello");
  uint64_t gap = r.done_at - r.first_at;
  if (gap < 190 || gap > 500)
    fail_msg("idle timeout after %llu ms, want ~200", (unsigned long long)gap);
  assert_int_equal(lt_fake_stat(t->fake, "stall", "disconnect", 1, "disconnects"), 1);
  lt_rec_free(&r);
}

static void test_idle_timeout_also_covers_the_wait_for_headers(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  lt_rec_t r;
  agent_call_opts_t o = {.idle_timeout_ms = 150};
  run_call(t, AGENT_PROVIDER_ANTHROPIC, "scenario:hang?tag=hang", NULL, &o, &r);
  assert_int_equal(r.status, -ETIMEDOUT);
  assert_int_equal(r.http_status, 0);
  assert_true(r.elapsed_ms >= 145);
  assert_int_equal(lt_fake_stat(t->fake, "hang", "disconnect", 1, "disconnects"), 1);
  lt_rec_free(&r);
}

static void test_total_timeout_ends_a_slow_stream(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  lt_rec_t r;
  agent_call_opts_t o = {.timeout_ms = 250, .idle_timeout_ms = 5000};
  run_call(t, AGENT_PROVIDER_OPENAI, "scenario:slow?delay_ms=50&tag=slowtotal", NULL, &o, &r);
  assert_int_equal(r.status, -ETIMEDOUT);
  assert_int_equal(r.cls, AGENT_ERR_TIMEOUT);
  assert_true(r.partial);
  assert_true(r.elapsed_ms >= 245 && r.elapsed_ms < 600);
  assert_non_null(strstr(r.message, "timed out after 250 ms"));
  lt_rec_free(&r);
}

static void test_cancel_aborts_the_transfer_and_fires_nothing(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  lt_rec_t r;
  agent_profile_t p = {.provider = AGENT_PROVIDER_OPENAI,
                       .model = "scenario:slow?delay_ms=50&tag=cancel"};
  lt_rec_init(&r, &t->loop);
  r.cancel_after = 1; /* from inside on_delta, i.e. inside curl's write callback */
  lt_start(t->c, &p, "hello", NULL, &r);
  lt_run_until(&t->loop, &r.ndeltas, 1);
  assert_int_equal(lt_fake_stat(t->fake, "cancel", "disconnect", 1, "disconnects"), 1);
  lt_run_for(&t->loop, 150);
  assert_int_equal(r.done, 0);
  assert_int_equal(r.ndeltas, 1);
  assert_int_equal(lt_fake_stat(t->fake, "cancel", NULL, 0, "completed"), 0);
  agent_client_stats_t st;
  agent_client_stats(t->c, &st);
  assert_int_equal(st.running, 0);
  lt_rec_free(&r);
}

static void test_cancel_from_outside_a_callback_aborts_the_transfer(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  lt_rec_t r;
  agent_profile_t p = {.provider = AGENT_PROVIDER_OPENAI,
                       .model = "scenario:stall?after=3&tag=cancel2"};
  lt_rec_init(&r, &t->loop);
  lt_start(t->c, &p, "hello", NULL, &r);
  lt_run_until(&t->loop, &r.ndeltas, 1);
  agent_call_cancel(r.call);
  /* the abort happens on the next loop turn, not inside agent_call_cancel */
  assert_int_equal(lt_fake_stat(t->fake, "cancel2", NULL, 0, "disconnects"), 0);
  lt_run_for(&t->loop, 50);
  assert_int_equal(lt_fake_stat(t->fake, "cancel2", "disconnect", 1, "disconnects"), 1);
  assert_int_equal(r.done, 0);
  lt_rec_free(&r);
}

static void test_server_dropping_the_connection_mid_stream_is_a_network_error(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  lt_rec_t r;
  run_call(t, AGENT_PROVIDER_OLLAMA, "scenario:disconnect?after=2", NULL, NULL, &r);
  assert_int_equal(r.cls, AGENT_ERR_NETWORK);
  assert_true(r.status == -ECONNRESET);
  assert_true(r.partial);
  assert_string_equal(r.text, "The sky is");
  lt_rec_free(&r);
}

static void test_connection_refused_is_a_network_error(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  lt_rec_t r;
  agent_profile_t p = {
      .provider = AGENT_PROVIDER_OPENAI, .model = "m", .base_url = "http://127.0.0.1:1/v1"};
  lt_rec_init(&r, &t->loop);
  lt_start(t->c, &p, "hello", NULL, &r);
  lt_run_until(&t->loop, &r.done, 1);
  assert_int_equal(r.status, -ECONNREFUSED);
  assert_int_equal(r.cls, AGENT_ERR_NETWORK);
  assert_int_equal(r.http_status, 0);
  lt_rec_free(&r);
}

static void test_concurrency_limit_queues_the_third_call_when_the_limit_is_2(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  lt_rec_t r[3];
  uint64_t running, queued;
  agent_profile_t p = {.provider = AGENT_PROVIDER_OPENAI,
                       .model = "scenario:slow?delay_ms=40&tag=limit",
                       .limit_key = "wf/writer",
                       .concurrency = 2};
  for (int i = 0; i < 3; i++) {
    lt_rec_init(&r[i], &t->loop);
    lt_start(t->c, &p, "hello", NULL, &r[i]);
  }
  agent_client_limit_stats(t->c, "wf/writer", &running, &queued);
  assert_int_equal(running, 2);
  assert_int_equal(queued, 1);
  lt_run_for(&t->loop, 100);
  assert_int_equal(r[2].ndeltas, 0); /* still waiting for a slot */
  assert_int_equal(lt_fake_stat(t->fake, "limit", NULL, 0, "requests"), 2);
  for (int i = 0; i < 3; i++) lt_run_until(&t->loop, &r[i].done, 1);
  for (int i = 0; i < 3; i++) assert_int_equal(r[i].status, 0);
  assert_true(r[2].first_at >= r[0].done_at || r[2].first_at >= r[1].done_at);
  assert_int_equal(lt_fake_stat(t->fake, "limit", NULL, 0, "max_active"), 2);
  assert_int_equal(lt_fake_stat(t->fake, "limit", NULL, 0, "requests"), 3);
  agent_client_limit_stats(t->c, "wf/writer", &running, &queued);
  assert_int_equal(running + queued, 0);
  for (int i = 0; i < 3; i++) lt_rec_free(&r[i]);
}

static void test_response_over_the_size_limit_fails(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  /* a client of its own with a 200-byte body limit */
  agent_client_t *small;
  agent_client_config_t cfg = {.max_response_bytes = 200};
  cfg.providers[AGENT_PROVIDER_OPENAI].base_url = t->openai_base;
  assert_int_equal(agent_client_new(&t->loop, &cfg, &small), 0);
  lt_rec_t r;
  agent_profile_t p = {.provider = AGENT_PROVIDER_OPENAI, .model = "scenario:normal?tag=big"};
  lt_rec_init(&r, &t->loop);
  lt_start(small, &p, "hello", NULL, &r);
  lt_run_until(&t->loop, &r.done, 1);
  assert_int_equal(r.status, -EMSGSIZE);
  assert_string_equal(r.message, "response larger than 200 bytes");
  agent_client_free(small);
  lt_rec_free(&r);
}

static void test_client_free_with_transfers_in_flight_closes_everything(void **state) {
  ht_t *t = *state;
  NEED_FAKE(t);
  lt_rec_t r[2];
  agent_profile_t p = {.provider = AGENT_PROVIDER_OPENAI,
                       .model = "scenario:stall?after=3&tag=freeing"};
  for (int i = 0; i < 2; i++) {
    lt_rec_init(&r[i], &t->loop);
    lt_start(t->c, &p, "hello", NULL, &r[i]);
  }
  for (int i = 0; i < 2; i++) lt_run_until(&t->loop, &r[i].ndeltas, 1);
  /* teardown frees the client with both running; the loop must then close cleanly */
  for (int i = 0; i < 2; i++) lt_rec_free(&r[i]);
  agent_client_free(t->c);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  assert_int_equal(lt_fake_stat(t->fake, "freeing", "disconnect", 2, "disconnects"), 2);
  assert_int_equal(agent_client_new(&t->loop, NULL, &t->c), 0); /* for teardown */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_openai_stream_gives_the_transcript_deltas_and_result,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_anthropic_stream_gives_the_transcript_deltas_and_result,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_ollama_stream_gives_the_transcript_deltas_and_result,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_tool_calls_are_assembled_in_the_result, setup, teardown),
      cmocka_unit_test_setup_teardown(test_requests_carry_each_providers_body_and_headers, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_429_with_retry_after_is_rate_limited_with_its_delay,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_500_is_a_server_error_without_delay, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_after_200_fails_with_its_class_and_partial_text,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_idle_timeout_fires_on_a_stall_within_tolerance, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_idle_timeout_also_covers_the_wait_for_headers, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_total_timeout_ends_a_slow_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_aborts_the_transfer_and_fires_nothing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cancel_from_outside_a_callback_aborts_the_transfer,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_server_dropping_the_connection_mid_stream_is_a_network_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_connection_refused_is_a_network_error, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_concurrency_limit_queues_the_third_call_when_the_limit_is_2, setup, teardown),
      cmocka_unit_test_setup_teardown(test_response_over_the_size_limit_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_free_with_transfers_in_flight_closes_everything,
                                      setup, teardown),
  };
  return cmocka_run_group_tests_name("agents_http", tests, group_setup, group_teardown);
}
