/* Requests of the HTTP providers: the URL, the JSON body (built with jansson) and the
 * headers of an OpenAI-compatible chat completion, an Anthropic Messages call and an
 * Ollama /api/chat call, all streaming. Also the normalisation of a call's input into
 * messages. It sends nothing (http.c does) and reads the environment only for API keys. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "internal.h"

#define ANTHROPIC_VERSION "2023-06-01"
#define ANTHROPIC_DEFAULT_MAX_TOKENS 4096

typedef struct provider_ops {
  agent_wire_t wire;
  const char *default_base;
  const char *default_key_env; /* NULL: no key by default */
  const char *path;            /* appended to the base URL */
  /* Fills body (an empty object on entry) from the call. Returns 0 or -EINVAL. */
  int (*body)(const agent_call_t *call, json_t *body, char *err, size_t errlen);
  /* Adds the key header(s) to rq when key is set, and fixed headers. */
  void (*headers)(agent__request_t *rq, const char *key);
} provider_ops_t;

int agent__messages_from_input(const json_t *input, json_t **out, char *err, size_t errlen) {
  *out = NULL;
  if (json_is_string(input)) {
    *out = json_pack("[{s:s,s:O}]", "role", "user", "content", input);
    return 0;
  }
  if (!json_is_array(input) || json_array_size(input) == 0) {
    snprintf(err, errlen, "input: expected a prompt string or a non-empty array of messages");
    return -EINVAL;
  }
  size_t i;
  json_t *m;
  json_array_foreach(input, i, m) {
    json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
    if (!json_is_object(m)) {
      snprintf(err, errlen, "input[%zu]: expected an object", i);
      return -EINVAL;
    }
    if (!json_is_string(role) || !json_string_length(role)) {
      snprintf(err, errlen, "input[%zu].role: expected a non-empty string", i);
      return -EINVAL;
    }
    if (!json_is_string(content) && !json_is_array(content) && !json_object_get(m, "tool_calls")) {
      snprintf(err, errlen, "input[%zu].content: expected a string or an array", i);
      return -EINVAL;
    }
  }
  *out = json_deep_copy(input);
  return 0;
}

/* Text of a message's content: the string, or the text parts of an array joined. */
static void content_text(const json_t *content, agent__buf_t *out) {
  if (json_is_string(content)) {
    agent__buf_append(out, json_string_value(content), json_string_length(content));
    return;
  }
  size_t i;
  json_t *part;
  json_array_foreach(content, i, part) {
    json_t *t = json_object_get(part, "text");
    if (json_is_string(t)) agent__buf_append(out, json_string_value(t), json_string_length(t));
  }
}

/* Params without our own mock_* keys (real endpoints reject unknown parameters). */
static void merge_params(json_t *body, const json_t *params) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)params, k, v) {
    if (strncmp(k, "mock_", 5) != 0) json_object_set(body, k, v);
  }
}

static int openai_body(const agent_call_t *call, json_t *body, char *err, size_t errlen) {
  json_t *msgs = json_array();
  if (call->system)
    json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", call->system));
  json_array_extend(msgs, call->messages);
  merge_params(body, call->params);
  json_object_set_new(body, "model", json_string(call->model));
  json_object_set_new(body, "messages", msgs);
  json_object_set_new(body, "stream", json_true());
  json_t *so = json_object_get(body, "stream_options");
  if (!json_is_object(so)) {
    so = json_object();
    json_object_set_new(body, "stream_options", so);
  }
  json_object_set_new(so, "include_usage", json_true());
  return 0;
}

static void bearer(agent__request_t *rq, const char *key);
static void add_header(agent__request_t *rq, const char *name, const char *value);

static void openai_headers(agent__request_t *rq, const char *key) {
  bearer(rq, key);
}

/* Anthropic takes the system prompt apart: the profile's, then any system messages of the
 * input, joined by blank lines. max_tokens is required there. */
static int anthropic_body(const agent_call_t *call, json_t *body, char *err, size_t errlen) {
  agent__buf_t sys = {0};
  json_t *msgs = json_array();
  size_t i;
  json_t *m;
  if (call->system) agent__buf_append(&sys, call->system, strlen(call->system));
  json_array_foreach(call->messages, i, m) {
    if (strcmp(json_string_value(json_object_get(m, "role")), "system") == 0) {
      if (sys.len) agent__buf_append(&sys, "\n\n", 2);
      content_text(json_object_get(m, "content"), &sys);
    } else {
      json_array_append(msgs, m);
    }
  }
  if (json_array_size(msgs) == 0) {
    json_decref(msgs);
    agent__buf_free(&sys);
    snprintf(err, errlen, "input: anthropic needs at least one non-system message");
    return -EINVAL;
  }
  merge_params(body, call->params);
  json_object_set_new(body, "model", json_string(call->model));
  if (sys.len) json_object_set_new(body, "system", json_stringn(sys.p, sys.len));
  json_object_set_new(body, "messages", msgs);
  json_object_set_new(body, "stream", json_true());
  if (!json_object_get(body, "max_tokens"))
    json_object_set_new(body, "max_tokens", json_integer(ANTHROPIC_DEFAULT_MAX_TOKENS));
  agent__buf_free(&sys);
  return 0;
}

static void anthropic_headers(agent__request_t *rq, const char *key) {
  if (key) add_header(rq, "x-api-key", key);
  add_header(rq, "anthropic-version", ANTHROPIC_VERSION);
}

/* Ollama's own request: sampling parameters go under "options" (max_tokens becomes
 * num_predict); the keys /api/chat knows at top level stay there. */
static int ollama_body(const agent_call_t *call, json_t *body, char *err, size_t errlen) {
  static const char *const top[] = {"format", "keep_alive", "think", "tools", "options"};
  json_t *msgs = json_array();
  json_t *options = json_object();
  const char *k;
  json_t *v;
  if (call->system)
    json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", call->system));
  json_array_extend(msgs, call->messages);
  json_object_foreach(call->params, k, v) {
    bool is_top = false;
    if (strncmp(k, "mock_", 5) == 0) continue;
    for (size_t i = 0; i < BASE_ARRAY_SIZE(top); i++) is_top |= strcmp(k, top[i]) == 0;
    if (strcmp(k, "options") == 0 && json_is_object(v))
      json_object_update(options, v);
    else if (is_top)
      json_object_set(body, k, v);
    else
      json_object_set(options, strcmp(k, "max_tokens") == 0 ? "num_predict" : k, v);
  }
  json_object_set_new(body, "model", json_string(call->model));
  json_object_set_new(body, "messages", msgs);
  json_object_set_new(body, "stream", json_true());
  if (json_object_size(options))
    json_object_set_new(body, "options", options);
  else
    json_decref(options);
  return 0;
}

static const provider_ops_t openai_ops = {
    .wire = AGENT_WIRE_OPENAI,
    .default_base = "https://api.openai.com/v1",
    .default_key_env = "OPENAI_API_KEY",
    .path = "/chat/completions",
    .body = openai_body,
    .headers = openai_headers,
};

static const provider_ops_t anthropic_ops = {
    .wire = AGENT_WIRE_ANTHROPIC,
    .default_base = "https://api.anthropic.com",
    .default_key_env = "ANTHROPIC_API_KEY",
    .path = "/v1/messages",
    .body = anthropic_body,
    .headers = anthropic_headers,
};

static const provider_ops_t ollama_ops = {
    .wire = AGENT_WIRE_OLLAMA,
    .default_base = "http://127.0.0.1:11434",
    .default_key_env = NULL,
    .path = "/api/chat",
    .body = ollama_body,
    .headers = openai_headers,
};

static const provider_ops_t *ops_of(agent_provider_t p) {
  switch (p) {
    case AGENT_PROVIDER_OPENAI:
      return &openai_ops;
    case AGENT_PROVIDER_ANTHROPIC:
      return &anthropic_ops;
    case AGENT_PROVIDER_OLLAMA:
      return &ollama_ops;
    default:
      return NULL;
  }
}

agent_wire_t agent__provider_wire(agent_provider_t p) {
  const provider_ops_t *ops = ops_of(p);
  return ops ? ops->wire : AGENT_WIRE_OPENAI;
}

/* Appends "name: value" to rq's headers. */
static void add_header(agent__request_t *rq, const char *name, const char *value) {
  rq->headers = xrealloc(rq->headers, (rq->nheaders + 1) * sizeof *rq->headers);
  rq->headers[rq->nheaders++] = xasprintf("%s: %s", name, value);
}

static void bearer(agent__request_t *rq, const char *key) {
  if (!key) return;
  char *v = xasprintf("Bearer %s", key);
  add_header(rq, "Authorization", v);
  free(v);
}

static bool has_header(const json_t *cfg_headers, const char *line) {
  const char *k;
  json_t *v;
  size_t n = strcspn(line, ":");
  json_object_foreach((json_t *)cfg_headers, k, v) {
    if (strlen(k) == n && strncasecmp(k, line, n) == 0) return true;
  }
  return false;
}

static const char *call_key(const agent_call_t *call, const provider_ops_t *ops) {
  const agent__provider_cfg_t *pc = &call->client->providers[call->provider];
  const char *key = NULL;
  if (call->api_key_env)
    key = getenv(call->api_key_env);
  else if (pc->api_key)
    key = pc->api_key;
  else if (pc->api_key_env)
    key = getenv(pc->api_key_env);
  else if (ops->default_key_env)
    key = getenv(ops->default_key_env);
  return key && *key && !strpbrk(key, "\r\n") ? key : NULL;
}

int agent__request_build(const agent_call_t *call, agent__request_t *rq, char *err, size_t errlen) {
  const provider_ops_t *ops = ops_of(call->provider);
  const agent__provider_cfg_t *pc = &call->client->providers[call->provider];
  memset(rq, 0, sizeof *rq);
  if (!ops) {
    snprintf(err, errlen, "provider: %s has no HTTP request", agent_provider_name(call->provider));
    return -EINVAL;
  }
  const char *base = call->base_url ? call->base_url
                     : pc->base_url ? pc->base_url
                                    : ops->default_base;
  size_t blen = strlen(base);
  while (blen && base[blen - 1] == '/') blen--;
  if (!(strncmp(base, "http://", 7) == 0 || strncmp(base, "https://", 8) == 0) ||
      strpbrk(base, " \r\n")) {
    snprintf(err, errlen, "base_url: expected an http:// or https:// URL");
    return -EINVAL;
  }
  json_t *body = json_object();
  int rc = ops->body(call, body, err, errlen);
  if (rc < 0) {
    json_decref(body);
    return rc;
  }
  rq->body = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  if (!rq->body) {
    snprintf(err, errlen, "params: cannot be serialised");
    return -EINVAL;
  }
  rq->body_len = strlen(rq->body);
  rq->url = xasprintf("%.*s%s", (int)blen, base, ops->path);

  agent__request_t own = {0};
  add_header(&own, "Content-Type", "application/json");
  add_header(&own, "Accept",
             ops->wire == AGENT_WIRE_OLLAMA ? "application/x-ndjson" : "text/event-stream");
  ops->headers(&own, call_key(call, ops));
  for (size_t i = 0; i < own.nheaders; i++) {
    if (pc->headers && has_header(pc->headers, own.headers[i])) {
      free(own.headers[i]);
      continue;
    }
    rq->headers = xrealloc(rq->headers, (rq->nheaders + 1) * sizeof *rq->headers);
    rq->headers[rq->nheaders++] = own.headers[i];
  }
  free(own.headers);
  const char *k;
  json_t *v;
  if (pc->headers) json_object_foreach(pc->headers, k, v) add_header(rq, k, json_string_value(v));
  return 0;
}

void agent__request_free(agent__request_t *rq) {
  free(rq->url);
  free(rq->body);
  for (size_t i = 0; i < rq->nheaders; i++) free(rq->headers[i]);
  free(rq->headers);
  memset(rq, 0, sizeof *rq);
}
