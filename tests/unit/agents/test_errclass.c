/* Error classes (agents/errclass.c): statuses, provider error names, error bodies, and
 * Retry-After / retry-after-ms in every form RFC 9110 allows. */
#include <errno.h>

#include "agents_test.h"

static void test_errclass_statuses_map_to_classes(void **state) {
  static const struct {
    int status;
    agent_err_class_t cls;
  } t[] = {{200, AGENT_ERR_NONE},          {0, AGENT_ERR_NETWORK},        {400, AGENT_ERR_BAD_REQUEST},
           {401, AGENT_ERR_AUTH},          {403, AGENT_ERR_AUTH},         {404, AGENT_ERR_BAD_REQUEST},
           {408, AGENT_ERR_TIMEOUT},       {413, AGENT_ERR_BAD_REQUEST},  {429, AGENT_ERR_RATE_LIMITED},
           {500, AGENT_ERR_SERVER},        {502, AGENT_ERR_SERVER},       {503, AGENT_ERR_SERVER},
           {504, AGENT_ERR_TIMEOUT},       {529, AGENT_ERR_SERVER},       {302, AGENT_ERR_UNKNOWN}};
  for (size_t i = 0; i < BASE_ARRAY_SIZE(t); i++) {
    if (agent_err_class_from_status(t[i].status) != t[i].cls)
      fail_msg("status %d gave %s", t[i].status,
               agent_err_class_name(agent_err_class_from_status(t[i].status)));
  }
}

static void test_errclass_provider_error_names_map_to_classes(void **state) {
  static const struct {
    const char *name;
    agent_err_class_t cls;
  } t[] = {{"overloaded_error", AGENT_ERR_SERVER},
           {"rate_limit_error", AGENT_ERR_RATE_LIMITED},
           {"rate_limit_exceeded", AGENT_ERR_RATE_LIMITED},
           {"api_error", AGENT_ERR_SERVER},
           {"invalid_request_error", AGENT_ERR_BAD_REQUEST},
           {"authentication_error", AGENT_ERR_AUTH},
           {"insufficient_quota", AGENT_ERR_AUTH},
           {"content_policy_violation", AGENT_ERR_CONTENT_FILTER},
           {"context_length_exceeded", AGENT_ERR_BAD_REQUEST},
           {"timeout_error", AGENT_ERR_TIMEOUT},
           {"503", AGENT_ERR_SERVER},
           {"200", AGENT_ERR_UNKNOWN},
           {"something_new", AGENT_ERR_UNKNOWN},
           {"", AGENT_ERR_UNKNOWN},
           {NULL, AGENT_ERR_UNKNOWN}};
  for (size_t i = 0; i < BASE_ARRAY_SIZE(t); i++) {
    if (agent_err_class_from_type(t[i].name) != t[i].cls) fail_msg("%s", t[i].name ? t[i].name : "NULL");
  }
  assert_string_equal(agent_err_class_name(AGENT_ERR_SERVER), "server_error");
  assert_string_equal(agent_err_class_name(AGENT_ERR_CONTENT_FILTER), "content_filter");
  assert_string_equal(agent_err_class_name((agent_err_class_t)99), "unknown");
}

/* 1994-11-06T08:49:37Z, the RFC's example date */
#define RFC_DATE_MS INT64_C(784111777000)

static void test_errclass_retry_after_in_all_forms(void **state) {
  static const struct {
    const char *ra, *ra_ms;
    int64_t now_ms, want;
  } t[] = {
      {"120", NULL, 0, 120000},
      {" 7 ", NULL, 0, 7000},
      {"Sun, 06 Nov 1994 08:49:37 GMT", NULL, RFC_DATE_MS - 30000, 30000},
      {"Sunday, 06-Nov-94 08:49:37 GMT", NULL, RFC_DATE_MS - 1500, 1500},
      {"Sun Nov  6 08:49:37 1994", NULL, RFC_DATE_MS - 2000, 2000},
      {"Sun, 06 Nov 1994 08:49:37 GMT", NULL, RFC_DATE_MS + 5000, 0},
      {"soon", NULL, 0, -1},
      {"12s", NULL, 0, -1},
      {"Sun, 06 Nov 1994 08:49:37 PST", NULL, 0, -1},
      {"Sun, 32 Nov 1994 08:49:37 GMT", NULL, 0, -1},
      {"-5", NULL, 0, -1},
      {"", NULL, 0, -1},
      {"120", "1500", 0, 1500},
      {"120", "1500.25", 0, 1501},
      {"120", "abc", 0, 120000},
      {NULL, "0", 0, 0},
      {"99999999999999999999", NULL, 0, INT64_C(1000) * 86400 * 365},
  };
  for (size_t i = 0; i < BASE_ARRAY_SIZE(t); i++) {
    agent_err_class_t cls;
    int64_t ms;
    assert_int_equal(agent_http_classify(429, t[i].ra, t[i].ra_ms, t[i].now_ms, &cls, &ms), 0);
    assert_int_equal(cls, AGENT_ERR_RATE_LIMITED);
    if (ms != t[i].want)
      fail_msg("case %zu (%s / %s): got %lld want %lld", i, t[i].ra ? t[i].ra : "-",
               t[i].ra_ms ? t[i].ra_ms : "-", (long long)ms, (long long)t[i].want);
  }
  agent_err_class_t cls;
  int64_t ms;
  assert_int_equal(agent_http_classify(503, NULL, NULL, 0, &cls, &ms), 0);
  assert_int_equal(cls, AGENT_ERR_SERVER);
  assert_int_equal(ms, -1);
  assert_int_equal(agent_http_classify(503, NULL, NULL, 0, NULL, &ms), -EINVAL);
}

static void test_errclass_error_bodies_of_each_provider(void **state) {
  static const struct {
    const char *body;
    int rc;
    agent_err_class_t cls;
    const char *msg;
  } t[] = {
      {"{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":\"invalid_request_error\","
       "\"param\":null,\"code\":\"invalid_api_key\"}}",
       0, AGENT_ERR_AUTH, "Incorrect API key provided"},
      {"{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}", 0,
       AGENT_ERR_SERVER, "Overloaded"},
      {"{\"error\":\"model 'llama9' not found\"}", 0, AGENT_ERR_UNKNOWN, "model 'llama9' not found"},
      {"{\"error\":{\"code\":400,\"message\":\"bad input\",\"type\":\"invalid_request_error\"}}", 0,
       AGENT_ERR_BAD_REQUEST, "bad input"},
      {"{\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}", 0,
       AGENT_ERR_SERVER, "Loading model"},
      {"{\"error\":{\"type\":\"tokens\"}}", 0, AGENT_ERR_RATE_LIMITED,
       "{\"error\":{\"type\":\"tokens\"}}"},
      {"{\"ok\":true}", -ENOENT, AGENT_ERR_UNKNOWN, NULL},
      {"<html>502 Bad Gateway</html>", -EBADMSG, AGENT_ERR_UNKNOWN, NULL},
  };
  for (size_t i = 0; i < BASE_ARRAY_SIZE(t); i++) {
    agent_err_class_t cls;
    char *msg;
    int rc = agent_error_body_parse(t[i].body, strlen(t[i].body), &cls, &msg);
    if (rc != t[i].rc || cls != t[i].cls) fail_msg("case %zu: rc %d class %s", i, rc, agent_err_class_name(cls));
    if (t[i].msg)
      assert_string_equal(msg, t[i].msg);
    else
      assert_null(msg);
    free(msg);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_errclass_statuses_map_to_classes),
      cmocka_unit_test(test_errclass_provider_error_names_map_to_classes),
      cmocka_unit_test(test_errclass_retry_after_in_all_forms),
      cmocka_unit_test(test_errclass_error_bodies_of_each_provider),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
