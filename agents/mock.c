/* The mock provider: a deterministic, offline model that streams on uv timers with the
 * same callback contract as the HTTP providers. Its text is params.mock_text, the last
 * user message (mock_echo), or words picked by a hash of the whole request, so two steps
 * with different prompts get different text and a rerun gets the same. It paces chunks at
 * mock_tokens_per_s (one chunk counts as one token) and injects the failures mock_fail
 * describes. It owns no socket; docs/agents.md lists every option. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

#define MOCK_MAX_FAILS 16
#define MOCK_DEFAULT_WORDS 24
#define MOCK_DEFAULT_CHUNK 4

typedef struct mock_fail {
  int attempt; /* 0: every attempt */
  agent_err_class_t cls;
  bool stall; /* stop sending instead of failing */
  int64_t after_chunks;
  int status;             /* HTTP status to report; 0: from the class */
  int64_t retry_after_ms; /* -1: none */
  char *message;          /* owned; NULL: a default */
} mock_fail_t;

struct agent__mock {
  agent__buf_t text;
  agent__buf_t reasoning;
  size_t pos;          /* bytes of reasoning then text already sent */
  size_t chunk;        /* bytes per chunk */
  double tokens_per_s; /* 0: a chunk per loop turn */
  int64_t first_token_ms;
  char finish[32];
  int64_t in_tokens;
  uint64_t t0;      /* uv_now at start, ms */
  uint64_t sent;    /* chunks sent */
  mock_fail_t fail; /* the entry for this attempt; cls NONE when none */
};

static const char *const words[] = {
    "signal",  "stream",   "river",   "bright",  "quiet",   "amber",   "vector", "harbor",
    "lattice", "orbit",    "meadow",  "cipher",  "gentle",  "copper",  "summit", "drift",
    "beacon",  "willow",   "prism",   "ember",   "canyon",  "delta",   "frost",  "granite",
    "hollow",  "island",   "juniper", "kernel",  "lantern", "marble",  "nectar", "onyx",
    "pebble",  "quartz",   "ripple",  "saffron", "tundra",  "umber",   "velvet", "wander",
    "yarrow",  "zenith",   "anchor",  "bramble", "cobalt",  "dune",    "echo",   "fable",
    "glacier", "horizon",  "ivory",   "jasper",  "kestrel", "lumen",   "mosaic", "nimbus",
    "opal",    "pinnacle", "quill",   "rover",   "sparrow", "thistle", "upland", "verdant"};

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *u = p;
  for (size_t i = 0; i < n; i++) {
    h ^= u[i];
    h *= 1099511628211ull;
  }
  return h;
}

/* Words chosen by a hash of model, system and messages: same request, same text. */
static void derive_text(const agent_call_t *call, int64_t nwords, agent__buf_t *out) {
  uint64_t h = 14695981039346656037ull;
  char *msgs = json_dumps(call->messages, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  if (call->model) h = fnv1a(h, call->model, strlen(call->model) + 1);
  if (call->system) h = fnv1a(h, call->system, strlen(call->system) + 1);
  if (msgs) h = fnv1a(h, msgs, strlen(msgs));
  free(msgs);
  for (int64_t i = 0; i < nwords; i++) {
    h ^= h >> 33; /* splitmix-style scramble between picks */
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 29;
    const char *w = words[h % BASE_ARRAY_SIZE(words)];
    if (i) agent__buf_append(out, " ", 1);
    size_t at = out->len;
    agent__buf_append(out, w, strlen(w));
    if (i == 0) out->p[at] = (char)(out->p[at] - 'a' + 'A');
  }
  agent__buf_append(out, ".", 1);
}

static void last_user_text(const agent_call_t *call, agent__buf_t *out) {
  size_t i;
  json_t *m, *last = NULL;
  json_array_foreach(call->messages, i, m) {
    if (strcmp(json_string_value(json_object_get(m, "role")), "user") == 0) last = m;
  }
  json_t *content = last ? json_object_get(last, "content") : NULL;
  if (json_is_string(content))
    agent__buf_append(out, json_string_value(content), json_string_length(content));
}

/* ---- params ---- */

static const struct {
  const char *name;
  agent_err_class_t cls;
  int status;
} classes[] = {
    {"rate_limited", AGENT_ERR_RATE_LIMITED, 429},     {"timeout", AGENT_ERR_TIMEOUT, 504},
    {"server_error", AGENT_ERR_SERVER, 500},           {"network", AGENT_ERR_NETWORK, 0},
    {"bad_request", AGENT_ERR_BAD_REQUEST, 400},       {"auth", AGENT_ERR_AUTH, 401},
    {"content_filter", AGENT_ERR_CONTENT_FILTER, 400}, {"unknown", AGENT_ERR_UNKNOWN, 0},
};

static bool get_int(const json_t *v, int64_t lo, int64_t hi, int64_t *out) {
  if (!json_is_integer(v)) return false;
  *out = json_integer_value(v);
  return *out >= lo && *out <= hi;
}

static int parse_fail(const json_t *f, const char *path, mock_fail_t *out, char *err,
                      size_t errlen) {
  const char *k;
  json_t *v;
  int64_t n;
  memset(out, 0, sizeof *out);
  out->retry_after_ms = -1;
  out->cls = AGENT_ERR_NONE;
  if (!json_is_object(f)) return snprintf(err, errlen, "%s: expected an object", path), -EINVAL;
  json_object_foreach((json_t *)f, k, v) {
    if (strcmp(k, "attempt") == 0) {
      if (!get_int(v, 1, 1000000, &n))
        return snprintf(err, errlen, "%s.attempt: expected an integer >= 1", path), -EINVAL;
      out->attempt = (int)n;
    } else if (strcmp(k, "class") == 0) {
      const char *s = json_string_value(v);
      bool found = false;
      if (s && strcmp(s, "stall") == 0) {
        out->stall = found = true;
        out->cls = AGENT_ERR_TIMEOUT;
      }
      for (size_t i = 0; s && !found && i < BASE_ARRAY_SIZE(classes); i++)
        if (strcmp(s, classes[i].name) == 0) {
          out->cls = classes[i].cls;
          found = true;
        }
      if (!found)
        return snprintf(err, errlen, "%s.class: expected an error class or \"stall\"", path),
               -EINVAL;
    } else if (strcmp(k, "after_chunks") == 0) {
      if (!get_int(v, 0, INT64_MAX, &out->after_chunks))
        return snprintf(err, errlen, "%s.after_chunks: expected an integer >= 0", path), -EINVAL;
    } else if (strcmp(k, "status") == 0) {
      if (!get_int(v, 100, 599, &n))
        return snprintf(err, errlen, "%s.status: expected an HTTP status", path), -EINVAL;
      out->status = (int)n;
    } else if (strcmp(k, "retry_after_ms") == 0) {
      if (!get_int(v, 0, INT64_MAX, &out->retry_after_ms))
        return snprintf(err, errlen, "%s.retry_after_ms: expected an integer >= 0", path), -EINVAL;
    } else if (strcmp(k, "message") == 0) {
      if (!json_is_string(v))
        return snprintf(err, errlen, "%s.message: expected a string", path), -EINVAL;
      out->message = xstrdup(json_string_value(v));
    } else {
      return snprintf(err, errlen, "%s.%s: unknown field", path, k), -EINVAL;
    }
  }
  if (out->cls == AGENT_ERR_NONE) return snprintf(err, errlen, "%s.class: required", path), -EINVAL;
  return 0;
}

/* Picks the first mock_fail entry for this attempt. */
static int parse_fails(const json_t *v, int attempt, mock_fail_t *out, char *err, size_t errlen) {
  char path[64];
  mock_fail_t f;
  out->cls = AGENT_ERR_NONE;
  if (json_is_object(v)) {
    if (parse_fail(v, "params.mock_fail", &f, err, errlen) < 0) return free(f.message), -EINVAL;
    if (!f.attempt || f.attempt == attempt)
      *out = f;
    else
      free(f.message);
    return 0;
  }
  if (!json_is_array(v) || json_array_size(v) > MOCK_MAX_FAILS)
    return snprintf(err, errlen, "params.mock_fail: expected an object or an array of at most %d",
                    MOCK_MAX_FAILS),
           -EINVAL;
  for (size_t i = 0; i < json_array_size(v); i++) {
    snprintf(path, sizeof path, "params.mock_fail[%zu]", i);
    if (parse_fail(json_array_get(v, i), path, &f, err, errlen) < 0)
      return free(f.message), -EINVAL;
    if (out->cls == AGENT_ERR_NONE && (!f.attempt || f.attempt == attempt))
      *out = f;
    else
      free(f.message);
  }
  return 0;
}

static int parse_params(agent_call_t *call, agent__mock_t *m, char *err, size_t errlen) {
  const char *k;
  json_t *v;
  int64_t n, nwords = MOCK_DEFAULT_WORDS;
  const json_t *text = NULL;
  bool echo = false;
  json_object_foreach(call->params, k, v) {
    if (strncmp(k, "mock_", 5) != 0) continue;
    if (strcmp(k, "mock_text") == 0) {
      if (!json_is_string(v))
        return snprintf(err, errlen, "params.mock_text: expected a string"), -EINVAL;
      text = v;
    } else if (strcmp(k, "mock_echo") == 0) {
      if (!json_is_boolean(v))
        return snprintf(err, errlen, "params.mock_echo: expected true or false"), -EINVAL;
      echo = json_is_true(v);
    } else if (strcmp(k, "mock_words") == 0) {
      if (!get_int(v, 1, 100000, &nwords))
        return snprintf(err, errlen, "params.mock_words: expected an integer 1-100000"), -EINVAL;
    } else if (strcmp(k, "mock_reasoning") == 0) {
      if (!json_is_string(v))
        return snprintf(err, errlen, "params.mock_reasoning: expected a string"), -EINVAL;
      agent__buf_set(&m->reasoning, json_string_value(v), json_string_length(v));
    } else if (strcmp(k, "mock_tokens_per_s") == 0) {
      double d = json_number_value(v);
      if (!json_is_number(v) || !(d >= 0 && d <= 1e6))
        return snprintf(err, errlen, "params.mock_tokens_per_s: expected a number 0-1000000"),
               -EINVAL;
      m->tokens_per_s = d;
    } else if (strcmp(k, "mock_chunk_chars") == 0) {
      if (!get_int(v, 1, 65536, &n))
        return snprintf(err, errlen, "params.mock_chunk_chars: expected an integer 1-65536"),
               -EINVAL;
      m->chunk = (size_t)n;
    } else if (strcmp(k, "mock_first_token_ms") == 0) {
      if (!get_int(v, 0, 3600000, &m->first_token_ms))
        return snprintf(err, errlen, "params.mock_first_token_ms: expected an integer 0-3600000"),
               -EINVAL;
    } else if (strcmp(k, "mock_finish_reason") == 0) {
      if (!json_is_string(v) || json_string_length(v) == 0 ||
          json_string_length(v) >= sizeof m->finish)
        return snprintf(err, errlen, "params.mock_finish_reason: expected a short string"), -EINVAL;
      snprintf(m->finish, sizeof m->finish, "%s", json_string_value(v));
    } else if (strcmp(k, "mock_fail") == 0) {
      if (parse_fails(v, call->attempt, &m->fail, err, errlen) < 0) return -EINVAL;
    } else {
      return snprintf(err, errlen, "params.%s: unknown mock option", k), -EINVAL;
    }
  }
  if (text)
    agent__buf_set(&m->text, json_string_value(text), json_string_length(text));
  else if (echo)
    last_user_text(call, &m->text);
  else
    derive_text(call, nwords, &m->text);
  return 0;
}

/* ---- streaming ---- */

static void tick_cb(uv_timer_t *t);

static void schedule(agent_call_t *call) {
  agent__mock_t *m = call->mock;
  uint64_t due = m->t0 + (uint64_t)m->first_token_ms;
  if (m->tokens_per_s > 0) due += (uint64_t)((double)m->sent * 1000.0 / m->tokens_per_s + 0.5);
  uint64_t now = uv_now(call->client->loop);
  uv_timer_start(&call->t_tick, tick_cb, due > now ? due - now : 0, 0);
}

/* Length of the next chunk of s from pos: m->chunk bytes, never ending inside a UTF-8
 * sequence (at least one whole character). */
static size_t chunk_len(const agent__mock_t *m, const char *s, size_t len, size_t pos) {
  size_t n = len - pos < m->chunk ? len - pos : m->chunk;
  while (pos + n < len && n > 0 && ((unsigned char)s[pos + n] & 0xC0) == 0x80) n--;
  if (n == 0) {
    n = 1;
    while (pos + n < len && ((unsigned char)s[pos + n] & 0xC0) == 0x80) n++;
  }
  return n;
}

static void inject(agent_call_t *call) {
  agent__mock_t *m = call->mock;
  const mock_fail_t *f = &m->fail;
  int status = f->status;
  for (size_t i = 0; !status && i < BASE_ARRAY_SIZE(classes); i++)
    if (classes[i].cls == f->cls) status = classes[i].status;
  if (m->sent > 0) status = 200; /* a mid-stream error arrives after HTTP 200 */
  int err = f->cls == AGENT_ERR_TIMEOUT   ? -ETIMEDOUT
            : f->cls == AGENT_ERR_NETWORK ? -ECONNRESET
                                          : -EIO;
  call->retry_after_ms = f->retry_after_ms;
  agent__call_fail(call, err, f->cls, status, "%s",
                   f->message ? f->message : "mock: injected failure");
  call->http_status = status;
  agent__call_finish(call);
}

static void tick_cb(uv_timer_t *t) {
  agent_call_t *call = t->data;
  agent__mock_t *m = call->mock;
  agent_delta_t d;
  if (call->state != AGENT__CALL_RUNNING || call->cancelled) return;
  if (m->fail.cls != AGENT_ERR_NONE && m->sent == (uint64_t)m->fail.after_chunks) {
    if (!m->fail.stall) inject(call);
    return; /* a stall sends nothing more: the idle or total timeout ends the call */
  }
  size_t total = m->reasoning.len + m->text.len;
  if (m->pos < total) {
    bool reasoning = m->pos < m->reasoning.len;
    const agent__buf_t *b = reasoning ? &m->reasoning : &m->text;
    size_t off = reasoning ? m->pos : m->pos - m->reasoning.len;
    size_t n = chunk_len(m, b->p, b->len, off);
    agent__delta_init(&d, reasoning ? AGENT_DELTA_REASONING : AGENT_DELTA_TEXT);
    /* the delta's text must be NUL-terminated: copy the chunk */
    char *piece = xstrndup(b->p + off, n);
    d.text = piece;
    d.text_len = n;
    m->pos += n;
    m->sent++;
    agent__call_touch(call);
    int rc = agent__call_delta(call, &d);
    free(piece);
    if (rc == 0) schedule(call);
    return;
  }
  agent__delta_init(&d, AGENT_DELTA_FINISH);
  d.finish_reason = d.text = m->finish;
  d.text_len = strlen(m->finish);
  if (agent__call_delta(call, &d) < 0) return;
  agent__delta_init(&d, AGENT_DELTA_USAGE);
  d.in_tokens = m->in_tokens;
  d.out_tokens = (int64_t)m->sent;
  if (agent__call_delta(call, &d) < 0) return;
  agent__call_finish(call);
}

static int64_t count_in_tokens(const agent_call_t *call) {
  size_t bytes = call->system ? strlen(call->system) : 0, i;
  json_t *msg;
  json_array_foreach(call->messages, i, msg) {
    json_t *c = json_object_get(msg, "content");
    if (json_is_string(c)) bytes += json_string_length(c);
  }
  return (int64_t)((bytes + 3) / 4) + 1;
}

static void mock_stop(agent_call_t *call) {
  agent__mock_t *m = call->mock;
  if (!m) return;
  uv_timer_stop(&call->t_tick);
  agent__buf_free(&m->text);
  agent__buf_free(&m->reasoning);
  free(m->fail.message);
  free(m);
  call->mock = NULL;
}

static int mock_start(agent_call_t *call) {
  char err[256];
  agent__mock_t *m = xcalloc(1, sizeof *m);
  call->mock = m;
  m->chunk = MOCK_DEFAULT_CHUNK;
  m->fail.cls = AGENT_ERR_NONE;
  snprintf(m->finish, sizeof m->finish, "stop");
  if (parse_params(call, m, err, sizeof err) < 0) {
    agent__call_fail(call, -EINVAL, AGENT_ERR_BAD_REQUEST, 0, "%s", err);
    return -EINVAL;
  }
  m->in_tokens = count_in_tokens(call);
  m->t0 = uv_now(call->client->loop);
  call->http_status = 200;
  schedule(call);
  return 0;
}

const agent__transport_ops_t agent__mock_transport = {
    .start = mock_start,
    .stop = mock_stop,
};
