/* Tests for coordinator/config.c: defaults, JSON file, env overrides, error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "streams.h"

/* A fake environment: NULL-terminated "NAME=value" strings. */
static const char *fake_getenv(const char *name, void *ud) {
  const char *const *env = ud;
  size_t n = strlen(name);
  for (; *env; env++)
    if (strncmp(*env, name, n) == 0 && (*env)[n] == '=') return *env + n + 1;
  return NULL;
}

static void test_config_defaults_serve_loopback_8080_with_data_in_dot_data(void **state) {
  (void)state;
  coord_config_t c;
  coord_config_defaults(&c);
  assert_string_equal(c.listen, "127.0.0.1:8080");
  assert_string_equal(c.listen_host, "127.0.0.1");
  assert_int_equal(c.listen_port, 8080);
  assert_true(c.listen_loopback);
  assert_string_equal(c.data_dir, "./data");
  assert_string_equal(c.web_root, "examples/web");
  assert_int_equal(c.log_level, LOG_INFO);
  assert_int_equal(c.auth.mode, COORD_AUTH_NONE);
  assert_int_equal(c.streams.partitions, 16);
  assert_int_equal(c.streams.retention_max_events, 10000);
  assert_int_equal(c.streams.retention_max_age_s, 600);
  coord_config_error_t err;
  assert_int_equal(coord_config_validate(&c, &err), 0);
  coord_config_close(&c);
}

static void test_config_streams_defaults_are_the_engines_own(void **state) {
  (void)state;
  coord_config_t c;
  coord_config_defaults(&c);
  stream_config_t sc;
  stream_config_defaults(&sc);
  assert_int_equal(c.limits.publish_rate, (int64_t)sc.publish_rate);
  assert_int_equal(c.limits.publish_burst, sc.publish_burst);
  assert_int_equal(c.limits.topic_publish_rate, (int64_t)sc.topic_publish_rate);
  assert_int_equal(c.limits.topic_publish_burst, sc.topic_publish_burst);
  assert_int_equal(c.streams.partitions, sc.partitions);
  assert_int_equal(c.streams.retention_max_events, (int64_t)sc.retention_max_events);
  assert_int_equal(c.streams.retention_max_age_s, sc.retention_max_age_s);
  assert_int_equal(c.streams.dedupe_window_s, sc.dedupe_window_s);
  assert_int_equal(c.streams.overload_threshold, sc.overload_threshold);
  assert_int_equal(c.streams.commit_thread, 1);
  assert_int_equal(c.streams.commit_inline_max, sc.commit_inline_max);
  assert_int_equal(c.streams.router_budget, sc.router_budget);
  assert_int_equal(c.streams.ring_size, sc.ring_size);
  assert_int_equal(c.store.wal_max_mb, STORE_WAL_MAX_DEFAULT >> 20);
  assert_int_equal(c.store.cache_mb, STORE_CACHE_DEFAULT >> 20);
  assert_int_equal(c.store.secure_delete, 0);
  coord_config_close(&c);
}

static void test_config_json_sets_every_kind_of_key(void **state) {
  (void)state;
  static const char json[] =
      "{\"listen\":\"[::1]:9000\",\"data_dir\":\"/var/lib/x\",\"log_level\":\"debug\","
      "\"web_root\":\"\",\"limits\":{\"max_connections\":5,\"max_http_body\":100,"
      "\"max_ws_message\":4096,\"idle_timeout_ms\":0,\"handshake_timeout_ms\":1000,"
      "\"publish_rate\":7,\"publish_burst\":8,\"topic_publish_rate\":9,"
      "\"topic_publish_burst\":10},\"shutdown\":{\"drain_ms\":0,\"grace_ms\":50},"
      "\"auth\":{\"mode\":\"jwt\",\"jwt_secret\":\"0123456789abcdef0123456789abcdef\"},"
      "\"streams\":{\"partitions\":4,\"retention\":{\"max_events\":11,\"max_age_s\":12},"
      "\"dedupe_window_s\":13,\"commit_inline_max\":14,\"router_budget\":15,\"ring_size\":2048},\"store\":{\"wal_max_mb\":64,\"cache_mb\":3,\"secure_delete\":1}}";
  coord_config_t c;
  coord_config_error_t err;
  coord_config_defaults(&c);
  assert_int_equal(coord_config_apply_json(&c, json, sizeof json - 1, "t.json", &err), 0);
  assert_string_equal(c.listen_host, "::1");
  assert_int_equal(c.listen_port, 9000);
  assert_true(c.listen_loopback);
  assert_string_equal(c.data_dir, "/var/lib/x");
  assert_int_equal(c.log_level, LOG_DEBUG);
  assert_string_equal(c.web_root, "");
  assert_int_equal(c.limits.max_connections, 5);
  assert_int_equal(c.limits.max_http_body, 100);
  assert_int_equal(c.limits.max_ws_message, 4096);
  assert_int_equal(c.limits.idle_timeout_ms, 0);
  assert_int_equal(c.limits.handshake_timeout_ms, 1000);
  assert_int_equal(c.limits.publish_rate, 7);
  assert_int_equal(c.limits.publish_burst, 8);
  assert_int_equal(c.limits.topic_publish_rate, 9);
  assert_int_equal(c.limits.topic_publish_burst, 10);
  assert_int_equal(c.shutdown.drain_ms, 0);
  assert_int_equal(c.shutdown.grace_ms, 50);
  assert_int_equal(c.auth.mode, COORD_AUTH_JWT);
  assert_string_equal(c.auth.jwt_secret, "0123456789abcdef0123456789abcdef");
  assert_int_equal(c.streams.partitions, 4);
  assert_int_equal(c.streams.retention_max_events, 11);
  assert_int_equal(c.streams.retention_max_age_s, 12);
  assert_int_equal(c.streams.dedupe_window_s, 13);
  assert_int_equal(c.store.wal_max_mb, 64);
  assert_int_equal(c.store.secure_delete, 1);
  assert_int_equal(c.store.cache_mb, 3);
  assert_int_equal(c.streams.commit_inline_max, 14);
  assert_int_equal(c.streams.router_budget, 15);
  assert_int_equal(c.streams.ring_size, 2048);
  assert_int_equal(coord_config_validate(&c, &err), 0);
  coord_config_close(&c);
}

/* Each invalid document and the exact message it must produce. */
static const struct {
  const char *json;
  const char *text;
  const char *key;
} invalid_cases[] = {
    {"{\"limits\":{\"max_conections\":5}}", "f.json: limits.max_conections: unknown key",
     "limits.max_conections"},
    {"{\"colour\":\"red\"}", "f.json: colour: unknown key", "colour"},
    {"{\"limits\":{\"max_connections\":0}}",
     "f.json: limits.max_connections: must be an integer between 1 and 1000000",
     "limits.max_connections"},
    {"{\"limits\":{\"max_connections\":\"10\"}}",
     "f.json: limits.max_connections: must be an integer between 1 and 1000000",
     "limits.max_connections"},
    {"{\"limits\":{\"max_http_body\":1.5}}",
     "f.json: limits.max_http_body: must be an integer between 1 and 1073741824",
     "limits.max_http_body"},
    {"{\"shutdown\":{\"drain_ms\":-1}}",
     "f.json: shutdown.drain_ms: must be an integer between 0 and 3600000", "shutdown.drain_ms"},
    {"{\"streams\":{\"router_budget\":0}}",
     "f.json: streams.router_budget: must be an integer between 1 and 10000000",
     "streams.router_budget"},
    {"{\"streams\":{\"ring_size\":8}}",
     "f.json: streams.ring_size: must be an integer between 16 and 65536",
     "streams.ring_size"},
    {"{\"limits\":5}", "f.json: limits: must be an object", "limits"},
    {"{\"streams\":{\"retention\":[]}}", "f.json: streams.retention: must be an object",
     "streams.retention"},
    {"{\"listen\":8080}", "f.json: listen: must be a string", "listen"},
    {"{\"listen\":\"127.0.0.1\"}",
     "f.json: listen: must be HOST:PORT with a numeric IPv4 or [IPv6] address or localhost",
     "listen"},
    {"{\"listen\":\"example.com:80\"}",
     "f.json: listen: must be HOST:PORT with a numeric IPv4 or [IPv6] address or localhost",
     "listen"},
    {"{\"listen\":\"127.0.0.1:70000\"}",
     "f.json: listen: port must be a number between 0 and 65535", "listen"},
    {"{\"log_level\":\"loud\"}",
     "f.json: log_level: must be one of \"debug\", \"info\", \"warn\", \"error\", \"off\"",
     "log_level"},
    {"{\"auth\":{\"mode\":\"basic\"}}", "f.json: auth.mode: must be one of \"none\", \"jwt\"",
     "auth.mode"},
    {"{\"data_dir\":\"\"}", "f.json: data_dir: must not be empty", "data_dir"},
    {"[1,2]", "f.json: the top level must be a JSON object", ""},
    {"{\"listen\":\"a\",\"listen\":\"b\"}",
     "f.json:1:22: invalid JSON: duplicate object key near '\"listen\"'", ""},
    {"{\"limits\":{\n  \"max_connections\": 5,\n}}",
     "f.json:3:1: invalid JSON: string or '}' expected near '}'", ""},
};

static void test_config_rejects_each_invalid_document_with_its_exact_message(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof invalid_cases / sizeof invalid_cases[0]; i++) {
    coord_config_t c;
    coord_config_error_t err;
    coord_config_defaults(&c);
    const char *j = invalid_cases[i].json;
    int rc = coord_config_apply_json(&c, j, strlen(j), "f.json", &err);
    coord_config_close(&c);
    if (rc != -EINVAL || strcmp(err.text, invalid_cases[i].text) != 0 ||
        strcmp(err.key, invalid_cases[i].key) != 0)
      fail_msg("case %zu (%s): rc %d, text \"%s\", key \"%s\"", i, j, rc, err.text, err.key);
  }
}

static void test_config_env_overrides_file_and_names_the_variable_on_error(void **state) {
  (void)state;
  coord_config_t c;
  coord_config_error_t err;
  coord_config_defaults(&c);
  static const char json[] = "{\"limits\":{\"max_connections\":5},\"data_dir\":\"file\"}";
  assert_int_equal(coord_config_apply_json(&c, json, sizeof json - 1, "f.json", &err), 0);
  const char *env[] = {"COORDINATOR_LIMITS_MAX_CONNECTIONS=77",
                       "COORDINATOR_AUTH_JWT_SECRET=s3cr3t",
                       "COORDINATOR_STREAMS_RETENTION_MAX_AGE_S=99", "OTHER=1", NULL};
  assert_int_equal(coord_config_apply_env(&c, fake_getenv, env, &err), 0);
  assert_int_equal(c.limits.max_connections, 77);
  assert_string_equal(c.auth.jwt_secret, "s3cr3t");
  assert_int_equal(c.streams.retention_max_age_s, 99);
  assert_string_equal(c.data_dir, "file");

  /* the WebSocket transport: a file's group, an environment override, a range */
  assert_int_equal(c.websocket.own_transport, 1); /* the default */
  static const char lws[] = "{\"websocket\":{\"own_transport\":0}}";
  assert_int_equal(coord_config_apply_json(&c, lws, sizeof lws - 1, "f.json", &err), 0);
  assert_int_equal(c.websocket.own_transport, 0);
  const char *on[] = {"COORDINATOR_WEBSOCKET_OWN_TRANSPORT=1", NULL};
  assert_int_equal(coord_config_apply_env(&c, fake_getenv, on, &err), 0);
  assert_int_equal(c.websocket.own_transport, 1);
  const char *two[] = {"COORDINATOR_WEBSOCKET_OWN_TRANSPORT=2", NULL};
  assert_int_equal(coord_config_apply_env(&c, fake_getenv, two, &err), -EINVAL);
  assert_string_equal(err.text, "COORDINATOR_WEBSOCKET_OWN_TRANSPORT: websocket.own_transport: must "
                                "be an integer between 0 and 1");

  const char *bad[] = {"COORDINATOR_LIMITS_IDLE_TIMEOUT_MS=12x", NULL};
  assert_int_equal(coord_config_apply_env(&c, fake_getenv, bad, &err), -EINVAL);
  assert_string_equal(err.text,
                      "COORDINATOR_LIMITS_IDLE_TIMEOUT_MS: limits.idle_timeout_ms: must be an "
                      "integer between 0 and 86400000");
  coord_config_close(&c);
}

static void test_config_set_from_a_flag_names_the_flag(void **state) {
  (void)state;
  coord_config_t c;
  coord_config_error_t err;
  coord_config_defaults(&c);
  assert_int_equal(coord_config_set(&c, "listen", "localhost:0", "--listen", &err), 0);
  assert_string_equal(c.listen_host, "127.0.0.1");
  assert_int_equal(c.listen_port, 0);
  assert_int_equal(coord_config_set(&c, "log_level", "verbose", "--log-level", &err), -EINVAL);
  assert_string_equal(err.text, "--log-level: log_level: must be one of \"debug\", \"info\", "
                                "\"warn\", \"error\", \"off\"");
  assert_int_equal(coord_config_set(&c, "nope", "1", "--x", &err), -ENOENT);
  assert_string_equal(err.text, "--x: nope: unknown key");
  coord_config_close(&c);
}

static void test_config_validate_requires_a_long_secret_for_jwt(void **state) {
  (void)state;
  coord_config_t c;
  coord_config_error_t err;
  coord_config_defaults(&c);
  assert_int_equal(coord_config_set(&c, "auth.mode", "jwt", "t", &err), 0);
  assert_int_equal(coord_config_validate(&c, &err), -EINVAL);
  assert_string_equal(err.text,
                      "config: auth.jwt_secret: must be at least 32 bytes when auth.mode is "
                      "\"jwt\"");
  coord_config_close(&c);
}

static void test_config_validate_refuses_auth_none_on_a_public_address(void **state) {
  (void)state;
  coord_config_t c;
  coord_config_error_t err;
  coord_config_defaults(&c);
  assert_int_equal(coord_config_set(&c, "listen", "0.0.0.0:8080", "t", &err), 0);
  assert_false(c.listen_loopback);
  assert_int_equal(coord_config_validate(&c, &err), -EINVAL);
  assert_string_equal(err.text, "config: auth.mode: \"none\" is only allowed with a loopback "
                                "listen address (listen is 0.0.0.0:8080); use \"jwt\"");
  coord_config_close(&c);
}

static void test_config_listen_parser_accepts_and_rejects(void **state) {
  (void)state;
  static const struct {
    const char *in;
    int ok;
    const char *host;
    int port;
    int loopback;
  } cases[] = {
      {"127.0.0.1:8080", 1, "127.0.0.1", 8080, 1}, {"127.1.2.3:1", 1, "127.1.2.3", 1, 1},
      {"0.0.0.0:80", 1, "0.0.0.0", 80, 0},         {"[::]:443", 1, "::", 443, 0},
      {"[::1]:0", 1, "::1", 0, 1},                 {"localhost:65535", 1, "127.0.0.1", 65535, 1},
      {"::1:80", 0, "", 0, 0},                     {"127.0.0.1:", 0, "", 0, 0},
      {":80", 0, "", 0, 0},                        {"127.0.0.1:-1", 0, "", 0, 0},
      {"127.0.0.1:80x", 0, "", 0, 0},              {"[::1]80", 0, "", 0, 0},
      {"300.0.0.1:80", 0, "", 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char host[64] = "", reason[128];
    int port = -1;
    bool lb = false;
    int rc = coord_config_parse_listen(cases[i].in, host, sizeof host, &port, &lb, reason,
                                       sizeof reason);
    if ((rc == 0) != cases[i].ok) fail_msg("case %s: rc %d", cases[i].in, rc);
    if (rc == 0) {
      assert_string_equal(host, cases[i].host);
      assert_int_equal(port, cases[i].port);
      assert_int_equal(lb, cases[i].loopback);
    }
  }
}

static void test_config_file_errors_name_the_path(void **state) {
  (void)state;
  const char *dir = getenv("COORD_TEST_TMPDIR");
  char path[512];
  snprintf(path, sizeof path, "%s/test_config_%d.json", dir ? dir : "/tmp", (int)getpid());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("{\"shutdown\":{\"drain_ms\":100,\"bogus\":true}}", f);
  fclose(f);
  coord_config_t c;
  coord_config_error_t err;
  coord_config_defaults(&c);
  assert_int_equal(coord_config_apply_file(&c, path, &err), -EINVAL);
  char want[600];
  snprintf(want, sizeof want, "%s: shutdown.bogus: unknown key", path);
  assert_string_equal(err.text, want);
  assert_string_equal(err.key, "shutdown.bogus");
  unlink(path);
  assert_int_equal(coord_config_apply_file(&c, path, &err), -ENOENT);
  snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
  assert_string_equal(err.text, want);
  coord_config_close(&c);
}

/* "{"a":" then n '[' (and as many ']' when closed), so the deepest bracket is at depth n + 1. */
static char *nested(const char *head, int n, bool closed) {
  size_t hl = strlen(head);
  char *s = malloc(hl + 2 * (size_t)n + 2);
  assert_non_null(s);
  memcpy(s, head, hl);
  memset(s + hl, '[', (size_t)n);
  size_t len = hl + (size_t)n;
  if (closed) {
    memset(s + len, ']', (size_t)n);
    len += (size_t)n;
    s[len++] = '}';
  }
  s[len] = '\0';
  return s;
}

static int apply_text(const char *text, coord_config_error_t *err) {
  coord_config_t c;
  coord_config_defaults(&c);
  int rc = coord_config_apply_json(&c, text, strlen(text), "f.json", err);
  coord_config_close(&c);
  return rc;
}

static void test_config_rejects_json_nested_deeper_than_16_levels_before_parsing(void **state) {
  (void)state;
  coord_config_error_t err;
  /* 16 levels pass the depth check (and fail on the key); 17 do not */
  char *ok = nested("{\"a\":", 15, true);
  assert_int_equal(apply_text(ok, &err), -EINVAL);
  assert_string_equal(err.text, "f.json: a: unknown key");
  free(ok);
  char *deep = nested("{\"a\":", 16, true);
  assert_int_equal(apply_text(deep, &err), -EINVAL);
  assert_string_equal(err.text, "f.json:1:21: JSON nested deeper than 16 levels");
  assert_string_equal(err.where, "f.json:1:21");
  assert_string_equal(err.key, "");
  free(deep);
  /* checked before parsing: an unterminated document still gets the depth error */
  char *open = nested("{\n  \"a\": ", 20, false);
  assert_int_equal(apply_text(open, &err), -EINVAL);
  assert_string_equal(err.text, "f.json:2:23: JSON nested deeper than 16 levels");
  free(open);
  /* brackets inside strings (with escaped quotes) are not nesting */
  assert_int_equal(apply_text("{\"a\":\"\\\"[[[[[[[[[[[[[[[[[[[[[[\"}", &err), -EINVAL);
  assert_string_equal(err.text, "f.json: a: unknown key");
  /* the JSON text of an object key from the environment has the same limit */
  coord_config_t c;
  coord_config_defaults(&c);
  char *env_deep = nested("COORDINATOR_AGENTS={\"w\":", 16, true);
  const char *env[] = {env_deep, NULL};
  assert_int_equal(coord_config_apply_env(&c, fake_getenv, env, &err), -EINVAL);
  assert_string_equal(err.text,
                      "COORDINATOR_AGENTS: agents: JSON nested deeper than 16 levels at column 21");
  assert_string_equal(err.key, "agents");
  free(env_deep);
  coord_config_close(&c);
}

static void test_config_rejects_json_text_over_1_mib_before_parsing(void **state) {
  (void)state;
  enum { MIB = 1 << 20 };
  coord_config_error_t err;
  coord_config_t c;
  coord_config_defaults(&c);
  /* exactly 1 MiB is accepted: {} padded with spaces */
  char *text = malloc(MIB + 2);
  assert_non_null(text);
  memset(text, ' ', MIB);
  memcpy(text, "{}", 2);
  text[MIB] = '\0';
  assert_int_equal(coord_config_apply_json(&c, text, MIB, "f.json", &err), 0);
  /* one byte more is refused by size, before the depth check sees the brackets */
  memset(text, '[', MIB + 1);
  text[MIB + 1] = '\0';
  assert_int_equal(coord_config_apply_json(&c, text, MIB + 1, "f.json", &err), -EFBIG);
  assert_string_equal(err.text, "f.json: JSON text larger than 1 MiB");
  assert_string_equal(err.key, "");
  /* the same for an object key's JSON text from a flag */
  const char *flag = "--providers.openai.headers";
  assert_int_equal(coord_config_set(&c, "providers.openai.headers", text, flag, &err), -EINVAL);
  assert_string_equal(err.text, "--providers.openai.headers: providers.openai.headers: JSON text "
                                "larger than 1 MiB");
  free(text);
  coord_config_close(&c);
}

static void test_config_file_too_deep_names_the_path_line_and_column(void **state) {
  (void)state;
  const char *dir = getenv("COORD_TEST_TMPDIR");
  char path[512];
  snprintf(path, sizeof path, "%s/test_config_deep_%d.json", dir ? dir : "/tmp", (int)getpid());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  char *deep = nested("{\"agents\":", 16, true);
  fputs(deep, f);
  free(deep);
  fclose(f);
  coord_config_t c;
  coord_config_error_t err;
  coord_config_defaults(&c);
  assert_int_equal(coord_config_apply_file(&c, path, &err), -EINVAL);
  char want[600];
  snprintf(want, sizeof want, "%s:1:26: JSON nested deeper than 16 levels", path);
  assert_string_equal(err.text, want);
  unlink(path);
  coord_config_close(&c);
}

static void test_config_runs_and_model_keys_have_their_documented_defaults(void **state) {
  (void)state;
  coord_config_t c;
  coord_config_defaults(&c);
  assert_string_equal(c.workflows_dir, "examples/workflows");
  assert_int_equal(c.runs.token_coalesce_ms, 20);
  assert_int_equal(c.runs.max_runs, 1000);
  assert_string_equal(c.runs.default_tenant, "default");
  for (int i = 0; i < COORD_PROVIDERS; i++) {
    assert_string_equal(c.providers[i].base_url, "");
    assert_string_equal(c.providers[i].api_key_env, "");
    assert_int_equal(json_object_size(c.providers[i].headers), 0);
    assert_int_equal(c.providers[i].concurrency, 0);
  }
  assert_int_equal(json_object_size(c.agents), 0);
  assert_int_equal(c.model_calls.connect_timeout_ms, 10000);
  assert_int_equal(c.model_calls.idle_timeout_ms, 60000);
  assert_int_equal(c.model_calls.max_calls, 0);
  coord_config_close(&c);
}

static void test_config_file_sets_providers_shared_profiles_and_run_keys(void **state) {
  (void)state;
  coord_config_t c;
  coord_config_error_t err;
  coord_config_defaults(&c);
  static const char json[] =
      "{\"workflows_dir\":\"wf\",\"runs\":{\"token_coalesce_ms\":0,\"max_runs\":5,"
      "\"default_tenant\":\"acme\"},"
      "\"providers\":{\"openai\":{\"base_url\":\"http://127.0.0.1:9/v1\",\"api_key_env\":\"MY_KEY\","
      "\"headers\":{\"X-Org\":\"o1\"},\"concurrency\":3},\"ollama\":{\"base_url\":\"https://h\"}},"
      "\"agents\":{\"writer\":{\"provider\":\"openai\",\"model\":\"m\",\"params\":{\"temperature\":0.5},"
      "\"concurrency\":2,\"system\":\"You write for {{ run.workflow }}.\"},"
      "\"fake\":{\"provider\":\"mock\"}},"
      "\"model_calls\":{\"connect_timeout_ms\":500,\"idle_timeout_ms\":1500,\"max_calls\":9}}";
  assert_int_equal(coord_config_apply_json(&c, json, sizeof json - 1, "f.json", &err), 0);
  assert_string_equal(c.workflows_dir, "wf");
  assert_int_equal(c.runs.token_coalesce_ms, 0);
  assert_int_equal(c.runs.max_runs, 5);
  assert_string_equal(c.runs.default_tenant, "acme");
  assert_string_equal(c.providers[COORD_PROVIDER_OPENAI].base_url, "http://127.0.0.1:9/v1");
  assert_string_equal(c.providers[COORD_PROVIDER_OPENAI].api_key_env, "MY_KEY");
  assert_string_equal(
      json_string_value(json_object_get(c.providers[COORD_PROVIDER_OPENAI].headers, "X-Org")), "o1");
  assert_int_equal(c.providers[COORD_PROVIDER_OPENAI].concurrency, 3);
  assert_string_equal(c.providers[COORD_PROVIDER_OLLAMA].base_url, "https://h");
  assert_string_equal(c.providers[COORD_PROVIDER_ANTHROPIC].base_url, "");
  assert_int_equal(json_object_size(c.agents), 2);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(c.agents, "writer"), "model")), "m");
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(c.agents, "writer"), "system")),
      "You write for {{ run.workflow }}.");
  assert_int_equal(c.model_calls.connect_timeout_ms, 500);
  assert_int_equal(c.model_calls.idle_timeout_ms, 1500);
  assert_int_equal(c.model_calls.max_calls, 9);
  coord_config_close(&c);
}

static const struct {
  const char *json, *text, *key;
} invalid_run_cases[] = {
    {"{\"runs\":{\"default_tenant\":\"Acme\"}}",
     "f.json: runs.default_tenant: must match [a-z0-9_-]{1,64}", "runs.default_tenant"},
    {"{\"runs\":{\"max_runs\":0}}",
     "f.json: runs.max_runs: must be an integer between 1 and 1000000", "runs.max_runs"},
    {"{\"runs\":{\"token_coalesce_ms\":-1}}",
     "f.json: runs.token_coalesce_ms: must be an integer between 0 and 10000",
     "runs.token_coalesce_ms"},
    {"{\"workflows_dir\":\"\"}", "f.json: workflows_dir: must not be empty", "workflows_dir"},
    {"{\"providers\":{\"openai\":{\"base_url\":\"ftp://x\"}}}",
     "f.json: providers.openai.base_url: must be \"\" or an http:// or https:// URL with a host "
     "and no spaces",
     "providers.openai.base_url"},
    {"{\"providers\":{\"anthropic\":{\"api_key_env\":\"MY-KEY\"}}}",
     "f.json: providers.anthropic.api_key_env: must be \"\" or an environment variable name (A-Z "
     "a-z 0-9 _)",
     "providers.anthropic.api_key_env"},
    {"{\"providers\":{\"openai\":{\"headers\":{\"X-A\":\"a\\nb\"}}}}",
     "f.json: providers.openai.headers.X-A: must be a string of at most 8192 bytes without CR, "
     "LF or NUL",
     "providers.openai.headers.X-A"},
    {"{\"providers\":{\"openai\":{\"headers\":[]}}}",
     "f.json: providers.openai.headers: must be an object {\"Header-Name\": \"value\"}",
     "providers.openai.headers"},
    {"{\"providers\":{\"mock\":{}}}", "f.json: providers.mock: unknown key", "providers.mock"},
    {"{\"agents\":{\"w\":{\"provider\":\"openia\",\"model\":\"m\"}}}",
     "f.json: agents.w.provider: unknown provider \"openia\" (expected mock, openai, anthropic "
     "or ollama)",
     "agents.w.provider"},
    {"{\"agents\":{\"w\":{\"provider\":\"openai\"}}}",
     "f.json: agents.w.model: missing required field", "agents.w.model"},
    {"{\"agents\":{\"w\":{\"provider\":\"mock\",\"params\":{\"temperature\":7}}}}",
     "f.json: agents.w.params.temperature: expected a number from 0 to 2",
     "agents.w.params.temperature"},
    {"{\"agents\":{\"w\":{\"ref\":\"x\"}}}",
     "f.json: agents.w.ref: a shared profile cannot refer to another one", "agents.w.ref"},
    {"{\"agents\":{\"w\":{\"provider\":\"mock\",\"system\":\"For {{ input.audience }}\"}}}",
     "f.json: agents.w.system: unknown input \"audience\" in {{ input.audience }}",
     "agents.w.system"},
    {"{\"agents\":[]}", "f.json: agents: must be an object {\"name\": {\"provider\": ...}}",
     "agents"},
    {"{\"model_calls\":{\"idle_timeout_ms\":0}}",
     "f.json: model_calls.idle_timeout_ms: must be an integer between 100 and 86400000",
     "model_calls.idle_timeout_ms"},
};

static void test_config_rejects_bad_run_and_model_keys_naming_the_nested_field(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof invalid_run_cases / sizeof invalid_run_cases[0]; i++) {
    coord_config_t c;
    coord_config_error_t err;
    coord_config_defaults(&c);
    const char *j = invalid_run_cases[i].json;
    int rc = coord_config_apply_json(&c, j, strlen(j), "f.json", &err);
    coord_config_close(&c);
    if (rc != -EINVAL || strcmp(err.text, invalid_run_cases[i].text) != 0 ||
        strcmp(err.key, invalid_run_cases[i].key) != 0)
      fail_msg("case %zu (%s): rc %d, text \"%s\", key \"%s\"", i, j, rc, err.text, err.key);
  }
}

static void test_config_object_keys_take_json_text_from_the_environment(void **state) {
  (void)state;
  coord_config_t c;
  coord_config_error_t err;
  coord_config_defaults(&c);
  const char *env[] = {
      "COORDINATOR_AGENTS={\"w\":{\"provider\":\"ollama\",\"model\":\"llama3\"}}",
      "COORDINATOR_PROVIDERS_OLLAMA_BASE_URL=http://127.0.0.1:11434",
      "COORDINATOR_PROVIDERS_OPENAI_HEADERS={\"X-Org\":\"o\"}",
      "COORDINATOR_RUNS_DEFAULT_TENANT=team-a", "COORDINATOR_WORKFLOWS_DIR=/srv/wf", NULL};
  assert_int_equal(coord_config_apply_env(&c, fake_getenv, env, &err), 0);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(c.agents, "w"), "model")), "llama3");
  assert_string_equal(c.providers[COORD_PROVIDER_OLLAMA].base_url, "http://127.0.0.1:11434");
  assert_int_equal(json_object_size(c.providers[COORD_PROVIDER_OPENAI].headers), 1);
  assert_string_equal(c.runs.default_tenant, "team-a");
  assert_string_equal(c.workflows_dir, "/srv/wf");
  const char *bad[] = {"COORDINATOR_AGENTS={\"w\":", NULL};
  assert_int_equal(coord_config_apply_env(&c, fake_getenv, bad, &err), -EINVAL);
  assert_string_equal(err.key, "agents");
  assert_non_null(strstr(err.text, "COORDINATOR_AGENTS: agents: invalid JSON at column"));
  coord_config_close(&c);
}

static void test_config_group_keys_default_to_the_engines_and_are_checked(void **state) {
  (void)state;
  coord_config_t c;
  coord_config_error_t err;
  coord_config_defaults(&c);
  stream_config_t sc;
  stream_config_defaults(&sc);
  assert_int_equal(c.streams.groups.ack_wait_ms, sc.group_ack_wait_ms);
  assert_int_equal(c.streams.groups.max_deliveries, sc.group_max_deliveries);
  assert_int_equal(c.streams.groups.max_inflight, sc.group_max_inflight);
  assert_int_equal(c.streams.groups.max_inflight_limit, sc.group_max_inflight_limit);
  assert_int_equal(c.streams.groups.max_pending, sc.group_max_pending);
  assert_int_equal(c.streams.groups.per_topic, sc.groups_per_topic);
  assert_int_equal(c.streams.groups.members_max, sc.group_members_max);
  static const char json[] =
      "{\"streams\":{\"groups\":{\"ack_wait_ms\":500,\"max_deliveries\":0,\"max_inflight\":2,"
      "\"max_inflight_limit\":8,\"max_pending\":100,\"per_topic\":3,\"members_max\":4}}}";
  assert_int_equal(coord_config_apply_json(&c, json, sizeof json - 1, "t.json", &err), 0);
  assert_int_equal(c.streams.groups.ack_wait_ms, 500);
  assert_int_equal(c.streams.groups.max_deliveries, 0);
  assert_int_equal(c.streams.groups.max_inflight, 2);
  assert_int_equal(c.streams.groups.max_inflight_limit, 8);
  assert_int_equal(c.streams.groups.max_pending, 100);
  assert_int_equal(c.streams.groups.per_topic, 3);
  assert_int_equal(c.streams.groups.members_max, 4);
  const char *env[] = {"COORDINATOR_STREAMS_GROUPS_MAX_INFLIGHT=9", NULL};
  assert_int_equal(coord_config_apply_env(&c, fake_getenv, env, &err), 0);
  assert_int_equal(c.streams.groups.max_inflight, 9);
  assert_int_equal(coord_config_validate(&c, &err), -EINVAL);
  assert_string_equal(err.key, "streams.groups.max_inflight");
  static const char zero[] = "{\"streams\":{\"groups\":{\"ack_wait_ms\":0}}}";
  assert_int_equal(coord_config_apply_json(&c, zero, sizeof zero - 1, "t.json", &err), -EINVAL);
  assert_string_equal(err.key, "streams.groups.ack_wait_ms");
  coord_config_close(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_defaults_serve_loopback_8080_with_data_in_dot_data),
      cmocka_unit_test(test_config_streams_defaults_are_the_engines_own),
      cmocka_unit_test(test_config_json_sets_every_kind_of_key),
      cmocka_unit_test(test_config_rejects_each_invalid_document_with_its_exact_message),
      cmocka_unit_test(test_config_env_overrides_file_and_names_the_variable_on_error),
      cmocka_unit_test(test_config_set_from_a_flag_names_the_flag),
      cmocka_unit_test(test_config_validate_requires_a_long_secret_for_jwt),
      cmocka_unit_test(test_config_validate_refuses_auth_none_on_a_public_address),
      cmocka_unit_test(test_config_listen_parser_accepts_and_rejects),
      cmocka_unit_test(test_config_file_errors_name_the_path),
      cmocka_unit_test(test_config_rejects_json_nested_deeper_than_16_levels_before_parsing),
      cmocka_unit_test(test_config_rejects_json_text_over_1_mib_before_parsing),
      cmocka_unit_test(test_config_file_too_deep_names_the_path_line_and_column),
      cmocka_unit_test(test_config_runs_and_model_keys_have_their_documented_defaults),
      cmocka_unit_test(test_config_file_sets_providers_shared_profiles_and_run_keys),
      cmocka_unit_test(test_config_rejects_bad_run_and_model_keys_naming_the_nested_field),
      cmocka_unit_test(test_config_object_keys_take_json_text_from_the_environment),
      cmocka_unit_test(test_config_group_keys_default_to_the_engines_and_are_checked),
  };
  return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
