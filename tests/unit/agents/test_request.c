/* Request building (request.c) without sending: URLs, JSON bodies and headers of each
 * provider, key lookup order, config headers overriding ours, and the errors. */
#include <stdlib.h>

#include "internal.h"
#include "loop_test.h"

typedef struct rt {
  uv_loop_t loop;
  agent_client_t *c;
  agent_call_t call;
  agent__request_t rq;
  json_t *body;
  char err[256];
} rt_t;

static int setup(void **state) {
  rt_t *t = xcalloc(1, sizeof *t);
  assert_int_equal(uv_loop_init(&t->loop), 0);
  json_t *hdr = json_pack("{s:s,s:s}", "X-Org", "acme", "accept", "application/json");
  agent_client_config_t cfg = {0};
  cfg.providers[AGENT_PROVIDER_OPENAI].base_url = "http://llm.local:8080/v1//";
  cfg.providers[AGENT_PROVIDER_OPENAI].api_key = "sk-config";
  cfg.providers[AGENT_PROVIDER_OPENAI].headers = hdr;
  cfg.providers[AGENT_PROVIDER_ANTHROPIC].api_key_env = "AGENTS_TEST_ANTHROPIC_KEY";
  assert_int_equal(agent_client_new(&t->loop, &cfg, &t->c), 0);
  json_decref(hdr);
  t->call.client = t->c;
  t->call.params = json_object();
  t->call.messages = json_pack("[{s:s,s:s}]", "role", "user", "content", "hi");
  t->call.model = xstrdup("m1");
  *state = t;
  return 0;
}

static int teardown(void **state) {
  rt_t *t = *state;
  agent__request_free(&t->rq);
  json_decref(t->body);
  json_decref(t->call.params);
  json_decref(t->call.messages);
  free(t->call.model);
  free(t->call.system);
  free(t->call.api_key_env);
  lt_teardown(&t->loop, t->c);
  free(t);
  unsetenv("AGENTS_TEST_ANTHROPIC_KEY");
  unsetenv("AGENTS_TEST_PROFILE_KEY");
  return 0;
}

static void build(rt_t *t, agent_provider_t p) {
  t->call.provider = p;
  assert_int_equal(agent__request_build(&t->call, &t->rq, t->err, sizeof t->err), 0);
  json_error_t je;
  t->body = json_loads(t->rq.body, 0, &je);
  assert_non_null(t->body);
}

/* The headers joined with "|", in order. */
static char *headers(const rt_t *t) {
  at_str_t s = {0};
  for (size_t i = 0; i < t->rq.nheaders; i++) {
    if (i) at_puts(&s, "|", 1);
    at_puts(&s, t->rq.headers[i], strlen(t->rq.headers[i]));
  }
  if (!s.p) at_puts(&s, "", 0);
  return s.p;
}

static void test_openai_request_streams_with_usage_and_system_first(void **state) {
  rt_t *t = *state;
  t->call.system = xstrdup("be brief");
  json_object_set_new(t->call.params, "temperature", json_real(0.25));
  json_object_set_new(t->call.params, "stream", json_false());        /* ours wins */
  json_object_set_new(t->call.params, "model", json_string("other")); /* ours wins */
  json_object_set_new(t->call.params, "mock_text", json_string("x")); /* dropped */
  json_object_set_new(t->call.params, "stream_options",
                      json_pack("{s:b}", "continuous_usage_stats", 1));
  build(t, AGENT_PROVIDER_OPENAI);
  assert_string_equal(t->rq.url, "http://llm.local:8080/v1/chat/completions");
  char *body = json_dumps(t->body, JSON_COMPACT | JSON_SORT_KEYS);
  assert_string_equal(
      body,
      "{\"messages\":[{\"content\":\"be "
      "brief\",\"role\":\"system\"},{\"content\":\"hi\",\"role\":\"user\"}],"
      "\"model\":\"m1\",\"stream\":true,\"stream_options\":{\"continuous_usage_stats\":true,"
      "\"include_usage\":true},\"temperature\":0.25}");
  free(body);
  char *h = headers(t);
  /* the config's accept replaces ours; its headers come last */
  assert_string_equal(h,
                      "Content-Type: application/json|Authorization: Bearer sk-config|X-Org: "
                      "acme|accept: application/json");
  free(h);
}

static void test_profile_key_variable_wins_over_the_config_key(void **state) {
  rt_t *t = *state;
  setenv("AGENTS_TEST_PROFILE_KEY", "sk-profile", 1);
  t->call.api_key_env = xstrdup("AGENTS_TEST_PROFILE_KEY");
  build(t, AGENT_PROVIDER_OPENAI);
  char *h = headers(t);
  assert_non_null(strstr(h, "Authorization: Bearer sk-profile"));
  free(h);
}

static void test_anthropic_request_separates_system_and_defaults_max_tokens(void **state) {
  rt_t *t = *state;
  setenv("AGENTS_TEST_ANTHROPIC_KEY", "ak-env", 1);
  t->call.system = xstrdup("rules");
  json_decref(t->call.messages);
  t->call.messages = json_pack("[{s:s,s:s},{s:s,s:[{s:s,s:s}]}]", "role", "user", "content", "hi",
                               "role", "system", "content", "type", "text", "text", "more rules");
  build(t, AGENT_PROVIDER_ANTHROPIC);
  assert_string_equal(t->rq.url, "https://api.anthropic.com/v1/messages");
  char *body = json_dumps(t->body, JSON_COMPACT | JSON_SORT_KEYS);
  assert_string_equal(body,
                      "{\"max_tokens\":4096,\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}],"
                      "\"model\":\"m1\",\"stream\":true,\"system\":\"rules\\n\\nmore rules\"}");
  free(body);
  char *h = headers(t);
  assert_string_equal(h,
                      "Content-Type: application/json|Accept: text/event-stream|x-api-key: "
                      "ak-env|anthropic-version: 2023-06-01");
  free(h);
}

static void test_anthropic_needs_a_non_system_message(void **state) {
  rt_t *t = *state;
  json_decref(t->call.messages);
  t->call.messages = json_pack("[{s:s,s:s}]", "role", "system", "content", "only");
  t->call.provider = AGENT_PROVIDER_ANTHROPIC;
  assert_int_equal(agent__request_build(&t->call, &t->rq, t->err, sizeof t->err), -EINVAL);
  assert_string_equal(t->err, "input: anthropic needs at least one non-system message");
}

static void test_ollama_request_moves_sampling_params_into_options(void **state) {
  rt_t *t = *state;
  json_object_set_new(t->call.params, "max_tokens", json_integer(50));
  json_object_set_new(t->call.params, "temperature", json_integer(0));
  json_object_set_new(t->call.params, "keep_alive", json_string("5m"));
  json_object_set_new(t->call.params, "options", json_pack("{s:i}", "num_ctx", 4096));
  build(t, AGENT_PROVIDER_OLLAMA);
  assert_string_equal(t->rq.url, "http://127.0.0.1:11434/api/chat");
  char *body = json_dumps(t->body, JSON_COMPACT | JSON_SORT_KEYS);
  assert_string_equal(
      body,
      "{\"keep_alive\":\"5m\",\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}],"
      "\"model\":\"m1\",\"options\":{\"num_ctx\":4096,\"num_predict\":50,\"temperature\":0},"
      "\"stream\":true}");
  free(body);
  char *h = headers(t);
  assert_string_equal(h, "Content-Type: application/json|Accept: application/x-ndjson");
  free(h);
}

static void test_bad_base_url_is_rejected(void **state) {
  rt_t *t = *state;
  t->call.base_url = xstrdup("ftp://x");
  t->call.provider = AGENT_PROVIDER_OLLAMA;
  assert_int_equal(agent__request_build(&t->call, &t->rq, t->err, sizeof t->err), -EINVAL);
  assert_string_equal(t->err, "base_url: expected an http:// or https:// URL");
  free(t->call.base_url);
  t->call.base_url = NULL;
}

static void test_client_rejects_headers_that_are_not_strings(void **state) {
  uv_loop_t loop;
  agent_client_t *c = NULL;
  assert_int_equal(uv_loop_init(&loop), 0);
  json_t *bad = json_pack("{s:i}", "X-N", 1), *crlf = json_pack("{s:s}", "X-A", "a\r\nX-B: b");
  agent_client_config_t cfg = {0};
  cfg.providers[AGENT_PROVIDER_OPENAI].headers = bad;
  assert_int_equal(agent_client_new(&loop, &cfg, &c), -EINVAL);
  cfg.providers[AGENT_PROVIDER_OPENAI].headers = crlf;
  assert_int_equal(agent_client_new(&loop, &cfg, &c), -EINVAL);
  json_decref(bad);
  json_decref(crlf);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_openai_request_streams_with_usage_and_system_first,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_profile_key_variable_wins_over_the_config_key, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_anthropic_request_separates_system_and_defaults_max_tokens, setup, teardown),
      cmocka_unit_test_setup_teardown(test_anthropic_needs_a_non_system_message, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ollama_request_moves_sampling_params_into_options, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_bad_base_url_is_rejected, setup, teardown),
      cmocka_unit_test(test_client_rejects_headers_that_are_not_strings),
  };
  return cmocka_run_group_tests_name("agents_request", tests, NULL, NULL);
}
