/* The model client's core: configuration, concurrency limits with FIFO queues, the life
 * of a call (queued, running, finished, delivered, closed), accumulation of its output
 * and the one result handed to on_done. It knows no wire format and no socket: the
 * transports (http.c, mock.c) start and stop exchanges and push deltas here.
 *
 * Every callback to the user runs from the loop, never from agent_call_start. on_done is
 * delivered by the reaper (a zero-delay uv timer), which is also the one place where
 * transports are stopped, so a libcurl handle is never removed inside a libcurl callback
 * and a call is never freed inside its own callback. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_IDLE_TIMEOUT_MS 60000
#define DEFAULT_MAX_RESPONSE (32u * 1024u * 1024u)
#define DEFAULT_MAX_ERROR_BODY (64u * 1024u)

static const char *const provider_names[AGENT_PROVIDER_COUNT] = {"mock", "openai", "anthropic",
                                                                 "ollama"};

const char *agent_provider_name(agent_provider_t p) {
  return (unsigned)p < AGENT_PROVIDER_COUNT ? provider_names[p] : "unknown";
}

int agent_provider_parse(const char *name, agent_provider_t *out) {
  if (!name || !out) return -EINVAL;
  for (int i = 0; i < AGENT_PROVIDER_COUNT; i++)
    if (strcmp(name, provider_names[i]) == 0) {
      *out = (agent_provider_t)i;
      return 0;
    }
  return -EINVAL;
}

static char *dup_or_null(const char *s) {
  return s ? xstrdup(s) : NULL;
}

static bool headers_valid(const json_t *h) {
  const char *k;
  json_t *v;
  if (!h) return true;
  if (!json_is_object(h)) return false;
  json_object_foreach((json_t *)h, k, v) {
    if (!json_is_string(v) || !*k || strpbrk(k, ":\r\n") || strpbrk(json_string_value(v), "\r\n"))
      return false;
  }
  return true;
}

static void reaper_cb(uv_timer_t *t);

int agent_client_new(uv_loop_t *loop, const agent_client_config_t *cfg, agent_client_t **out) {
  static const agent_client_config_t defaults;
  if (!loop || !out) return -EINVAL;
  if (!cfg) cfg = &defaults;
  for (int i = 0; i < AGENT_PROVIDER_COUNT; i++)
    if (!headers_valid(cfg->providers[i].headers) || cfg->providers[i].concurrency < 0)
      return -EINVAL;
  agent_client_t *c = xcalloc(1, sizeof *c);
  c->loop = loop;
  for (int i = 0; i < AGENT_PROVIDER_COUNT; i++) {
    const agent_provider_config_t *pc = &cfg->providers[i];
    c->providers[i].base_url = dup_or_null(pc->base_url);
    c->providers[i].api_key = dup_or_null(pc->api_key);
    c->providers[i].api_key_env = dup_or_null(pc->api_key_env);
    c->providers[i].headers = pc->headers ? json_deep_copy(pc->headers) : NULL;
    c->providers[i].concurrency = pc->concurrency;
  }
  c->connect_timeout_ms =
      cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
  c->default_timeout_ms = cfg->default_timeout_ms > 0 ? cfg->default_timeout_ms : -1;
  c->default_idle_timeout_ms =
      cfg->default_idle_timeout_ms > 0 ? cfg->default_idle_timeout_ms : DEFAULT_IDLE_TIMEOUT_MS;
  c->max_response_bytes = cfg->max_response_bytes ? cfg->max_response_bytes : DEFAULT_MAX_RESPONSE;
  c->max_error_body = cfg->max_error_body ? cfg->max_error_body : DEFAULT_MAX_ERROR_BODY;
  c->max_calls = cfg->max_calls;
  base_map_init(&c->limits);
  base_queue_init(&c->calls);
  base_queue_init(&c->reap);
  uv_timer_init(loop, &c->reaper);
  c->reaper.data = c;
  c->open_handles = 1; /* the reaper */
  *out = c;
  return 0;
}

static void client_release(agent_client_t *c) {
  base_map_iter_t it;
  base_map_node_t *n = base_map_first(&c->limits, &it);
  while (n) {
    agent__limit_t *l = container_of(n, agent__limit_t, node);
    n = base_map_next(&c->limits, &it);
    base_map_remove(&c->limits, &l->node);
    free(l->key);
    free(l);
  }
  base_map_close(&c->limits);
  for (int i = 0; i < AGENT_PROVIDER_COUNT; i++) {
    free(c->providers[i].base_url);
    free(c->providers[i].api_key);
    free(c->providers[i].api_key_env);
    json_decref(c->providers[i].headers);
  }
  free(c);
}

void agent__client_unref(agent_client_t *c) {
  if (--c->open_handles == 0 && c->closing) client_release(c);
}

static void reaper_close_cb(uv_handle_t *h) {
  agent__client_unref(h->data);
}

static void call_close(agent_call_t *call);

void agent_client_free(agent_client_t *c) {
  if (!c || c->closing) return;
  c->closing = true;
  while (!base_queue_empty(&c->calls)) {
    agent_call_t *call = base_queue_data(base_queue_head(&c->calls), agent_call_t, link);
    call->cancelled = true;
    if (call->state == AGENT__CALL_QUEUED) {
      call->limit->queued--;
      c->stats.queued--;
    }
    base_queue_remove(&call->qnode);
    if (call->started) call->transport->stop(call);
    call_close(call);
  }
  agent__http_close(c);
  uv_close((uv_handle_t *)&c->reaper, reaper_close_cb);
}

void agent_client_stats(const agent_client_t *c, agent_client_stats_t *st) {
  *st = c->stats;
}

static agent__limit_t *limit_find(const agent_client_t *c, const char *key) {
  base_map_node_t *n = base_map_get(&c->limits, key, strlen(key));
  return n ? container_of(n, agent__limit_t, node) : NULL;
}

void agent_client_limit_stats(const agent_client_t *c, const char *key, uint64_t *running,
                              uint64_t *queued) {
  agent__limit_t *l = key ? limit_find(c, key) : NULL;
  *running = l ? l->running : 0;
  *queued = l ? l->queued : 0;
}

static agent__limit_t *limit_get(agent_client_t *c, const char *key, int max) {
  agent__limit_t *l = limit_find(c, key);
  if (!l) {
    l = xcalloc(1, sizeof *l);
    l->key = xstrdup(key);
    base_queue_init(&l->waiters);
    base_map_insert(&c->limits, &l->node, l->key, strlen(l->key));
  }
  if (max > 0) l->max = max;
  return l;
}

/* ---- timers ---- */

static void total_cb(uv_timer_t *t) {
  agent_call_t *call = t->data;
  agent__call_fail(call, -ETIMEDOUT, AGENT_ERR_TIMEOUT, call->http_status,
                   "timed out after %lld ms", (long long)call->timeout_ms);
  agent__call_finish(call);
}

static void idle_cb(uv_timer_t *t) {
  agent_call_t *call = t->data;
  agent__call_fail(call, -ETIMEDOUT, AGENT_ERR_TIMEOUT, call->http_status,
                   "idle timeout: no data for %lld ms", (long long)call->idle_timeout_ms);
  agent__call_finish(call);
}

void agent__call_touch(agent_call_t *call) {
  if (call->idle_timeout_ms > 0 && call->state == AGENT__CALL_RUNNING)
    uv_timer_start(&call->t_idle, idle_cb, (uint64_t)call->idle_timeout_ms, 0);
}

static void call_stop_timers(agent_call_t *call) {
  uv_timer_stop(&call->t_total);
  uv_timer_stop(&call->t_idle);
  uv_timer_stop(&call->t_tick);
}

/* ---- results ---- */

void agent__call_fail(agent_call_t *call, int status, agent_err_class_t cls, int http_status,
                      const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  if (call->failed) return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  call->failed = true;
  call->status = status;
  call->err_class = cls;
  if (http_status) call->http_status = http_status;
  agent__buf_clear(&call->message);
  agent__utf8_sanitize(msg, strlen(msg), &call->message); /* may have been cut mid-character */
}

static void reaper_kick(agent_client_t *c) {
  if (!uv_is_active((uv_handle_t *)&c->reaper)) uv_timer_start(&c->reaper, reaper_cb, 0, 0);
}

void agent__call_finish(agent_call_t *call) {
  if (call->state != AGENT__CALL_RUNNING) return;
  call_stop_timers(call);
  call->state = AGENT__CALL_FINISHED;
  base_queue_insert_tail(&call->client->reap, &call->qnode);
  reaper_kick(call->client);
}

int agent__call_delta(agent_call_t *call, const agent_delta_t *d) {
  if (call->state != AGENT__CALL_RUNNING || call->cancelled) return -ECANCELED;
  switch (d->kind) {
    case AGENT_DELTA_TEXT:
      if (d->choice == 0) agent__buf_append(&call->text, d->text, d->text_len);
      call->partial = true;
      break;
    case AGENT_DELTA_REASONING:
      if (d->choice == 0) agent__buf_append(&call->reasoning, d->text, d->text_len);
      call->partial = true;
      break;
    case AGENT_DELTA_TOOL_CALL:
      call->partial = true;
      if (d->choice == 0) {
        int rc = agent_tools_add(call->tools, d);
        if (rc < 0) {
          agent__call_fail(call, -EMSGSIZE, AGENT_ERR_UNKNOWN, 0, "tool calls: %s",
                           rc == -E2BIG ? "too many calls" : "arguments too long");
          agent__call_finish(call);
          return -ECANCELED;
        }
      }
      break;
    case AGENT_DELTA_USAGE:
      if (d->in_tokens >= 0) call->in_tokens = d->in_tokens;
      if (d->out_tokens >= 0) call->out_tokens = d->out_tokens;
      break;
    case AGENT_DELTA_FINISH:
      if (d->choice == 0 && d->finish_reason)
        snprintf(call->finish, sizeof call->finish, "%s", d->finish_reason);
      break;
    case AGENT_DELTA_ERROR:
      agent__call_fail(call, -EIO, d->err_class, 0, "%.*s", (int)d->text_len, d->text);
      agent__call_finish(call);
      return 0;
  }
  if (call->cbs.on_delta) call->cbs.on_delta(call->ud, d);
  return call->state == AGENT__CALL_RUNNING && !call->cancelled ? 0 : -ECANCELED;
}

/* ---- life of a call ---- */

static void timer_close_cb(uv_handle_t *h) {
  agent_call_t *call = h->data;
  if (--call->open_handles) return;
  agent_client_t *c = call->client;
  agent_tools_free(call->tools);
  agent__buf_free(&call->text);
  agent__buf_free(&call->reasoning);
  agent__buf_free(&call->message);
  free(call->model);
  free(call->system);
  json_decref(call->messages);
  json_decref(call->params);
  free(call->base_url);
  free(call->api_key_env);
  free(call->input_error);
  free(call);
  agent__client_unref(c);
}

/* Unlinks the call from the client and closes its timers; freed by their callbacks. */
static void call_close(agent_call_t *call) {
  agent_client_t *c = call->client;
  call_stop_timers(call);
  call->state = AGENT__CALL_CLOSING;
  base_queue_remove(&call->link);
  c->ncalls--;
  call->open_handles = 3;
  uv_close((uv_handle_t *)&call->t_total, timer_close_cb);
  uv_close((uv_handle_t *)&call->t_idle, timer_close_cb);
  uv_close((uv_handle_t *)&call->t_tick, timer_close_cb);
}

static void call_run(agent_call_t *call) {
  agent_client_t *c = call->client;
  call->state = AGENT__CALL_RUNNING;
  call->holds_slot = true;
  call->limit->running++;
  c->stats.running++;
  c->stats.started++;
  call->started_at = uv_now(c->loop);
  if (call->timeout_ms > 0) uv_timer_start(&call->t_total, total_cb, (uint64_t)call->timeout_ms, 0);
  agent__call_touch(call);
  if (call->input_error) {
    agent__call_fail(call, -EINVAL, AGENT_ERR_BAD_REQUEST, 0, "%s", call->input_error);
    agent__call_finish(call);
    return;
  }
  call->started = true;
  if (call->transport->start(call) < 0) {
    agent__call_fail(call, -EIO, AGENT_ERR_UNKNOWN, 0, "transport failed to start");
    agent__call_finish(call);
  }
}

static void limit_pump(agent__limit_t *l, agent_client_t *c) {
  while (!base_queue_empty(&l->waiters) && (l->max == 0 || l->running < (uint64_t)l->max)) {
    agent_call_t *call = base_queue_data(base_queue_head(&l->waiters), agent_call_t, qnode);
    base_queue_remove(&call->qnode);
    l->queued--;
    c->stats.queued--;
    call_run(call);
  }
}

static void call_release_slot(agent_call_t *call) {
  if (!call->holds_slot) return;
  call->holds_slot = false;
  call->limit->running--;
  call->client->stats.running--;
}

static void call_deliver(agent_call_t *call) {
  agent_result_t r;
  char err[256];
  if (!call->failed && agent_tools_finish(call->tools, err, sizeof err) < 0)
    agent__call_fail(call, -EBADMSG, AGENT_ERR_UNKNOWN, 0, "%s", err);
  if (call->failed) call->client->stats.failed++;
  memset(&r, 0, sizeof r);
  r.status = call->failed ? call->status : 0;
  r.err_class = call->failed ? call->err_class : AGENT_ERR_NONE;
  r.http_status = call->http_status;
  r.retry_after_ms = call->retry_after_ms;
  r.message = call->failed && call->message.p ? call->message.p : "";
  r.partial = call->partial;
  r.text = call->text.p ? call->text.p : "";
  r.text_len = call->text.len;
  r.reasoning = call->reasoning.p ? call->reasoning.p : "";
  r.reasoning_len = call->reasoning.len;
  r.tools = call->tools;
  r.in_tokens = call->in_tokens;
  r.out_tokens = call->out_tokens;
  r.finish_reason = call->finish[0] ? call->finish : NULL;
  r.elapsed_ms = call->started_at ? (int64_t)(uv_now(call->client->loop) - call->started_at) : 0;
  call->state = AGENT__CALL_DELIVERING;
  call->cbs.on_done(call->ud, &r);
}

static void reaper_cb(uv_timer_t *t) {
  agent_client_t *c = t->data;
  while (!base_queue_empty(&c->reap)) {
    agent_call_t *call = base_queue_data(base_queue_head(&c->reap), agent_call_t, qnode);
    base_queue_remove(&call->qnode);
    if (call->started) call->transport->stop(call);
    if (!call->cancelled) call_deliver(call);
    /* after on_done: a call it starts on this key queues behind the older waiters */
    call_release_slot(call);
    agent__limit_t *l = call->limit;
    call_close(call);
    limit_pump(l, c);
  }
}

void agent_call_cancel(agent_call_t *call) {
  if (!call || call->cancelled) return;
  switch (call->state) {
    case AGENT__CALL_QUEUED:
      base_queue_remove(&call->qnode);
      call->limit->queued--;
      call->client->stats.queued--;
      break;
    case AGENT__CALL_RUNNING:
      call_stop_timers(call);
      call->state = AGENT__CALL_FINISHED;
      break;
    case AGENT__CALL_FINISHED: /* already waiting for the reaper */
      call->cancelled = true;
      return;
    default: /* on_done running or closing: too late */
      return;
  }
  call->cancelled = true;
  base_queue_insert_tail(&call->client->reap, &call->qnode);
  reaper_kick(call->client);
}

static void call_copy_profile(agent_call_t *call, const agent_profile_t *p, const json_t *input) {
  char err[256];
  call->model = dup_or_null(p->model);
  call->system = p->system && *p->system ? xstrdup(p->system) : NULL;
  call->base_url = dup_or_null(p->base_url);
  call->api_key_env = dup_or_null(p->api_key_env);
  call->params = p->params && json_is_object(p->params) ? json_deep_copy(p->params) : json_object();
  if ((unsigned)p->provider >= AGENT_PROVIDER_COUNT) {
    call->input_error = xstrdup("provider: unknown provider");
  } else if (p->params && !json_is_object(p->params)) {
    call->input_error = xstrdup("params: expected an object");
  } else if (p->provider != AGENT_PROVIDER_MOCK && (!p->model || !*p->model)) {
    call->input_error =
        xasprintf("model: required for provider %s", agent_provider_name(p->provider));
  } else if (agent__messages_from_input(input, &call->messages, err, sizeof err) < 0) {
    call->input_error = xstrdup(err);
  }
}

static int64_t resolve_timeout(int64_t v, int64_t dflt) {
  return v > 0 ? v : v < 0 ? -1 : dflt;
}

int agent_call_start(agent_client_t *c, const agent_profile_t *p, const json_t *input,
                     const agent_call_opts_t *opts, const agent_call_cbs_t *cbs, void *ud,
                     agent_call_t **out) {
  static const agent_call_opts_t no_opts;
  if (!c || !p || !input || !cbs || !cbs->on_done || c->closing) return -EINVAL;
  if (c->max_calls && c->ncalls >= c->max_calls) return -EBUSY;
  if (!opts) opts = &no_opts;
  agent_call_t *call = xcalloc(1, sizeof *call);
  call->client = c;
  call->cbs = *cbs;
  call->ud = ud;
  call->attempt = opts->attempt > 0 ? opts->attempt : 1;
  call->timeout_ms = resolve_timeout(opts->timeout_ms, c->default_timeout_ms);
  call->idle_timeout_ms = resolve_timeout(opts->idle_timeout_ms, c->default_idle_timeout_ms);
  call->in_tokens = call->out_tokens = -1;
  call->retry_after_ms = -1;
  call->provider = p->provider;
  call->transport =
      p->provider == AGENT_PROVIDER_MOCK ? &agent__mock_transport : &agent__http_transport;
  if (agent_tools_new(0, 0, &call->tools) < 0) abort();
  call_copy_profile(call, p, input);
  base_queue_init(&call->qnode);
  uv_timer_init(c->loop, &call->t_total);
  uv_timer_init(c->loop, &call->t_idle);
  uv_timer_init(c->loop, &call->t_tick);
  call->t_total.data = call->t_idle.data = call->t_tick.data = call;
  base_queue_insert_tail(&c->calls, &call->link);
  c->ncalls++;
  c->open_handles++;

  const char *key =
      p->limit_key && *p->limit_key ? p->limit_key : agent_provider_name(call->provider);
  int max = p->concurrency > 0                             ? p->concurrency
            : (unsigned)p->provider < AGENT_PROVIDER_COUNT ? c->providers[p->provider].concurrency
                                                           : 0;
  call->limit = limit_get(c, key, max);
  call->state = AGENT__CALL_QUEUED;
  base_queue_insert_tail(&call->limit->waiters, &call->qnode);
  call->limit->queued++;
  c->stats.queued++;
  limit_pump(call->limit, c);
  if (out) *out = call;
  return 0;
}
