/* The llm step kind: one model call per attempt through the agent client, its deltas
 * coalesced into `token` events, its result turned into the step's output.
 *
 * Coalescing: deltas of the same (part, tool call) accumulate in one pending buffer that
 * is published as one token event when the window (token_coalesce_ms from the first
 * delta in it) ends, when a delta of another part arrives, when it reaches
 * token_max_bytes, or before any control event of the step; so token events of an
 * attempt concatenate, in order, to exactly what the model streamed. Each token event
 * carries `index`, its position among the attempt's token events (0, 1, ...), which is
 * also the last part of its id.
 *
 * Does not own the attempt's flow (retry, catch, rows: run_exec.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "engine_internal.h"

typedef struct llm_buf {
  char *p;
  size_t len, cap;
} llm_buf_t;

/* Invariant: pend holds text only while pend_active; call is NULL once on_done ran or
 * the call was cancelled. */
struct wf__llm {
  wf__sx_t *s;        /* borrowed: the step that owns this */
  agent_call_t *call; /* the running call */
  bool pend_active;
  int pend_part;        /* agent_delta_kind_t */
  int pend_call;        /* tool call index; -1 otherwise */
  char *pend_tool_id;   /* owned; first fragment's, may be NULL */
  char *pend_tool_name; /* owned */
  llm_buf_t pend;
  wf__tmr_t window;
  int index; /* token events created this attempt */
  llm_buf_t text, reasoning;
  json_t *tool_calls; /* owned: array of argument strings by call index */
  bool partial;
  int64_t in_tokens, out_tokens;
};

static void buf_add(llm_buf_t *b, const char *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->p = xrealloc(b->p, b->cap);
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = '\0';
}

/* Bytes of p[0..len) to put in one event of at most max bytes, cut before a UTF-8
 * continuation byte so that no character is split. */
static size_t piece_len(const char *p, size_t len, size_t max) {
  if (len <= max) return len;
  size_t n = max;
  while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80) n--;
  return n ? n : max;
}

static void pend_flush(wf__llm_t *m) {
  wf__sx_t *s = m->s;
  if (!m->pend_active) return;
  wf_engine_t *e = s->n.run->e;
  wf__tmr_stop(e, &m->window);
  const char *p = m->pend.p ? m->pend.p : "";
  size_t left = m->pend.len;
  do { /* one event, or several for a delta larger than token_max_bytes */
    size_t n = piece_len(p, left, e->cfg.token_max_bytes);
    if (wf__emit_token(s->n.run, s->key, s->attempt, m->pend_part, m->pend_call, m->pend_tool_id,
                       m->pend_tool_name, m->index, p, n))
      m->index++;
    p += n;
    left -= n;
  } while (left > 0);
  m->pend.len = 0;
  free(m->pend_tool_id);
  free(m->pend_tool_name);
  m->pend_tool_id = m->pend_tool_name = NULL;
  m->pend_active = false;
}

static void window_cb(wf__tmr_t *t) {
  pend_flush(container_of(t, wf__llm_t, window));
}

static void on_delta(void *ud, const agent_delta_t *d) {
  wf__llm_t *m = ud;
  wf_engine_t *e = m->s->n.run->e;
  if (d->kind == AGENT_DELTA_USAGE) {
    if (d->in_tokens >= 0) m->in_tokens = d->in_tokens;
    if (d->out_tokens >= 0) m->out_tokens = d->out_tokens;
    return;
  }
  if (d->kind != AGENT_DELTA_TEXT && d->kind != AGENT_DELTA_REASONING &&
      d->kind != AGENT_DELTA_TOOL_CALL)
    return;
  if (d->choice != 0) return;
  e->stats.token_deltas++;
  m->partial = true;
  int call = d->kind == AGENT_DELTA_TOOL_CALL ? (d->index >= 0 ? d->index : 0) : -1;
  if (d->kind == AGENT_DELTA_TEXT) {
    buf_add(&m->text, d->text, d->text_len);
  } else if (d->kind == AGENT_DELTA_REASONING) {
    buf_add(&m->reasoning, d->text, d->text_len);
  } else if (call < 1024) {
    if (!m->tool_calls) m->tool_calls = json_array();
    while (json_array_size(m->tool_calls) <= (size_t)call)
      json_array_append_new(m->tool_calls, json_string(""));
    json_t *cur = json_array_get(m->tool_calls, (size_t)call);
    llm_buf_t b = {0};
    buf_add(&b, json_string_value(cur), json_string_length(cur));
    buf_add(&b, d->text, d->text_len);
    json_array_set_new(m->tool_calls, (size_t)call, wf__json_text(b.p, b.len));
    free(b.p);
  }
  if (m->pend_active && (m->pend_part != (int)d->kind || m->pend_call != call)) pend_flush(m);
  if (!m->pend_active) {
    m->pend_active = true;
    m->pend_part = (int)d->kind;
    m->pend_call = call;
    if (e->cfg.token_coalesce_ms > 0) wf__tmr_start(e, &m->window, e->cfg.token_coalesce_ms);
  }
  if (d->kind == AGENT_DELTA_TOOL_CALL) {
    if (d->tool_id && !m->pend_tool_id) m->pend_tool_id = xstrdup(d->tool_id);
    if (d->tool_name && !m->pend_tool_name) m->pend_tool_name = xstrdup(d->tool_name);
  }
  buf_add(&m->pend, d->text, d->text_len);
  if (e->cfg.token_coalesce_ms <= 0 || m->pend.len >= e->cfg.token_max_bytes) pend_flush(m);
}

/* The class a retry policy sees (docs/runs.md): the typed class of a failure, and
 * stream_error for an untyped error inside a 2xx stream. */
static const char *result_class(const agent_result_t *r) {
  if (r->status == -ETIMEDOUT) return "timeout";
  switch (r->err_class) {
    case AGENT_ERR_RATE_LIMITED:
      return "rate_limited";
    case AGENT_ERR_TIMEOUT:
      return "timeout";
    case AGENT_ERR_SERVER:
      return "server_error";
    case AGENT_ERR_NETWORK:
      return "network";
    case AGENT_ERR_BAD_REQUEST:
      return "bad_request";
    case AGENT_ERR_AUTH:
      return "auth";
    case AGENT_ERR_CONTENT_FILTER:
      return "content_filter";
    default:
      return r->http_status >= 200 && r->http_status < 300 ? "stream_error" : "unknown";
  }
}

/* The output of a step with output_schema: the text as JSON (inside a ``` fence when the
 * model added one), validated. Returns the value, or NULL with *err set. */
static json_t *parse_output(const wf__step_t *step, const char *text, size_t len, char **err) {
  const char *p = text, *end = text + len;
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  while (end > p && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\r' || end[-1] == '\t'))
    end--;
  if (end - p >= 6 && !strncmp(p, "```", 3) && !strncmp(end - 3, "```", 3)) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl && nl < end - 3) {
      p = nl + 1;
      end -= 3;
    }
  }
  json_error_t jerr;
  json_t *v = json_loadb(p, (size_t)(end - p), JSON_DECODE_ANY, &jerr);
  if (!v) {
    *err =
        xasprintf("output is not JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
    return NULL;
  }
  char *verr = NULL;
  if (wf__schema_validate(step->u.llm.output_schema, v, &verr) < 0) {
    *err = xasprintf("output does not match output_schema: %s", verr ? verr : "invalid");
    free(verr);
    json_decref(v);
    return NULL;
  }
  return v;
}

static void on_done(void *ud, const agent_result_t *res) {
  wf__llm_t *m = ud;
  wf__sx_t *s = m->s;
  m->call = NULL;
  pend_flush(m);
  if (res->in_tokens >= 0) m->in_tokens = res->in_tokens;
  if (res->out_tokens >= 0) m->out_tokens = res->out_tokens;
  if (res->status < 0) {
    wf__sx_fail(s, result_class(res),
                xstrdup(res->message && res->message[0] ? res->message : "model call failed"),
                res->retry_after_ms, m->partial || res->partial);
    return;
  }
  json_t *out;
  if (s->step->u.llm.output_schema) {
    char *err = NULL;
    out = parse_output(s->step, m->text.p ? m->text.p : "", m->text.len, &err);
    if (!out) {
      /* The stream ended normally: not a partial output, whatever it streamed. */
      wf__sx_fail(s, "invalid_output", err, -1, false);
      return;
    }
  } else {
    out = wf__json_text(m->text.p, m->text.len);
  }
  json_t *usage = NULL;
  if (m->in_tokens >= 0 || m->out_tokens >= 0) {
    usage = json_object();
    if (m->in_tokens >= 0) json_object_set_new(usage, "in_tokens", json_integer(m->in_tokens));
    if (m->out_tokens >= 0) json_object_set_new(usage, "out_tokens", json_integer(m->out_tokens));
  }
  wf__sx_ok(s, out, usage);
}

static char *render_string(const wf__tmpl_t *t, const json_t *ctx, char **err) {
  json_t *v = NULL;
  if (wf__tmpl_render(t, ctx, &v, err) < 0) return NULL;
  char *out = json_is_string(v) ? xstrdup(json_string_value(v))
                                : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(v);
  return out ? out : xstrdup("");
}

void wf__llm_start(wf__sx_t *s) {
  const wf__agent_t *a = s->step->u.llm.agent;
  char *err = NULL;
  char *prompt = render_string(s->step->u.llm.prompt, s->ctx, &err);
  if (!prompt) {
    wf__sx_fail(s, "template", err, -1, false);
    return;
  }
  char *system = NULL;
  if (a->system && !(system = render_string(a->system, s->ctx, &err))) {
    free(prompt);
    wf__sx_fail(s, "template", err, -1, false);
    return;
  }
  agent_profile_t prof = {0};
  if (!a->provider || agent_provider_parse(a->provider, &prof.provider) < 0) {
    free(prompt);
    free(system);
    wf__sx_fail(s, "bad_request", xasprintf("agent profile \"%s\" has no usable provider", a->name),
                -1, false);
    return;
  }
  char *limit_key = a->ref ? xasprintf("shared/%s", a->ref)
                           : xasprintf("%s/%s", wf_workflow_name(s->wf), a->name);
  prof.model = a->model;
  prof.system = system;
  prof.params = a->params;
  prof.base_url = a->base_url;
  prof.api_key_env = json_string_value(json_object_get(a->node, "api_key_env"));
  prof.limit_key = limit_key;
  prof.concurrency = a->concurrency;

  wf__llm_t *m = xcalloc(1, sizeof *m);
  m->s = s;
  m->pend_call = -1;
  m->in_tokens = m->out_tokens = -1;
  wf__tmr_init(&m->window, window_cb);
  s->llm = m;
  json_t *input = json_string(prompt);
  if (!input) input = wf__json_text(prompt, strlen(prompt));
  agent_call_opts_t opts = {.timeout_ms = -1, .attempt = s->attempt};
  agent_call_cbs_t cbs = {.on_delta = on_delta, .on_done = on_done};
  int rc = agent_call_start(s->n.run->e->agents, &prof, input, &opts, &cbs, m, &m->call);
  json_decref(input);
  free(prompt);
  free(system);
  free(limit_key);
  if (rc < 0) {
    m->call = NULL;
    wf__sx_fail(s, rc == -EBUSY ? "rate_limited" : "internal",
                xasprintf("model call not started: %s", rc == -EBUSY ? "client full" : "bad call"),
                -1, false);
  }
}

void wf__llm_stop(wf__sx_t *s) {
  wf__llm_t *m = s->llm;
  if (!m) return;
  if (m->call) {
    agent_call_cancel(m->call);
    m->call = NULL;
  }
  pend_flush(m);
  wf__tmr_stop(s->n.run->e, &m->window);
  free(m->pend.p);
  free(m->text.p);
  free(m->reasoning.p);
  json_decref(m->tool_calls);
  free(m->pend_tool_id);
  free(m->pend_tool_name);
  free(m);
  s->llm = NULL;
}

void wf__llm_streamed(const wf__sx_t *s, const char **text, json_t **extra) {
  const wf__llm_t *m = s->llm;
  if (text) *text = m && m->text.p ? m->text.p : (m ? "" : NULL);
  if (!extra) return;
  *extra = NULL;
  if (!m || (!m->reasoning.len && !m->tool_calls)) return;
  *extra = json_object();
  if (m->reasoning.len)
    json_object_set_new(*extra, "reasoning", wf__json_text(m->reasoning.p, m->reasoning.len));
  if (m->tool_calls) json_object_set(*extra, "tool_calls", m->tool_calls);
}

bool wf__llm_partial(const wf__sx_t *s) {
  return s->llm && s->llm->partial;
}
