/* Shared helpers of the agents loop tests: a recorder of one call's deltas and result,
 * running a test's own uv loop until calls are done (with a watchdog so a hang fails
 * instead of blocking), tearing the client down with every handle closed, and the fake
 * model endpoint (tests/fake/fake-llm.mjs) started as a child process on a free loopback
 * port. Node is found through $NODE or PATH; without it the fake-endpoint tests skip. */
#ifndef AGENTS_LOOP_TEST_H
#define AGENTS_LOOP_TEST_H

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agents_test.h"

#define LT_WATCHDOG_MS 15000

/* Everything one call reported. Strings owned. */
typedef struct lt_rec {
  at_str_t deltas; /* rendered with at_render_delta */
  int ndeltas;
  int done;          /* on_done count */
  uint64_t done_at;  /* uv_now at on_done, ms */
  uint64_t first_at; /* uv_now at the first delta, ms */
  uv_loop_t *loop;
  int status;
  agent_err_class_t cls;
  int http_status;
  int64_t retry_after_ms;
  char *message;
  char *text;
  size_t text_len;
  char *reasoning;
  char *finish; /* NULL when none */
  int64_t in_tokens, out_tokens;
  bool partial;
  int64_t elapsed_ms;
  size_t ntools;
  char *tool0; /* "name args" of the first tool call */
  /* optional: cancel this call after this many deltas */
  int cancel_after;
  agent_call_t *call;
} lt_rec_t;

static AT_UNUSED void lt_on_delta(void *ud, const agent_delta_t *d) {
  lt_rec_t *r = ud;
  if (!r->ndeltas++) r->first_at = uv_now(r->loop);
  at_render_delta(&r->deltas, d);
  if (r->cancel_after && r->ndeltas == r->cancel_after) {
    agent_call_cancel(r->call);
    r->call = NULL;
  }
}

static AT_UNUSED void lt_on_done(void *ud, const agent_result_t *res) {
  lt_rec_t *r = ud;
  r->done++;
  r->done_at = uv_now(r->loop);
  r->status = res->status;
  r->cls = res->err_class;
  r->http_status = res->http_status;
  r->retry_after_ms = res->retry_after_ms;
  r->message = xstrdup(res->message);
  r->text = xstrndup(res->text, res->text_len);
  r->text_len = res->text_len;
  r->reasoning = xstrndup(res->reasoning, res->reasoning_len);
  r->finish = res->finish_reason ? xstrdup(res->finish_reason) : NULL;
  r->in_tokens = res->in_tokens;
  r->out_tokens = res->out_tokens;
  r->partial = res->partial;
  r->elapsed_ms = res->elapsed_ms;
  r->ntools = agent_tools_count(res->tools);
  if (r->ntools) {
    const agent_tool_call_t *t = agent_tools_get(res->tools, 0);
    r->tool0 = xasprintf("%s %s", t->name, t->args);
  }
  r->call = NULL;
}

static AT_UNUSED void lt_rec_init(lt_rec_t *r, uv_loop_t *loop) {
  memset(r, 0, sizeof *r);
  r->loop = loop;
}

static AT_UNUSED void lt_rec_free(lt_rec_t *r) {
  free(r->deltas.p);
  free(r->message);
  free(r->text);
  free(r->reasoning);
  free(r->finish);
  free(r->tool0);
  memset(r, 0, sizeof *r);
}

static const agent_call_cbs_t lt_cbs = {.on_delta = lt_on_delta, .on_done = lt_on_done};

static AT_UNUSED void lt_start(agent_client_t *c, const agent_profile_t *p, const char *prompt,
                               const agent_call_opts_t *o, lt_rec_t *r) {
  json_t *in = json_string(prompt);
  assert_int_equal(agent_call_start(c, p, in, o, &lt_cbs, r, &r->call), 0);
  json_decref(in);
  assert_int_equal(r->done, 0); /* never synchronous */
}

static AT_UNUSED void lt_watchdog_cb(uv_timer_t *t) {
  *(bool *)t->data = true;
}

/* Runs loop until *flag >= want; fails the test after LT_WATCHDOG_MS. */
static AT_UNUSED void lt_run_until(uv_loop_t *loop, const int *flag, int want) {
  bool fired = false;
  uv_timer_t wd;
  uv_timer_init(loop, &wd);
  wd.data = &fired;
  uv_timer_start(&wd, lt_watchdog_cb, LT_WATCHDOG_MS, 0);
  while (*flag < want && !fired) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&wd, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  if (fired) fail_msg("watchdog: condition not reached in %d ms", LT_WATCHDOG_MS);
}

static AT_UNUSED void lt_wait_cb(uv_timer_t *t) {
  *(bool *)t->data = true;
}

/* Runs the loop for ms (to see that nothing more happens). */
static AT_UNUSED void lt_run_for(uv_loop_t *loop, uint64_t ms) {
  bool fired = false;
  uv_timer_t t;
  uv_timer_init(loop, &t);
  t.data = &fired;
  uv_timer_start(&t, lt_wait_cb, ms, 0);
  while (!fired) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

/* Frees the client, runs the loop until every handle closed, closes the loop. */
static AT_UNUSED void lt_teardown(uv_loop_t *loop, agent_client_t *c) {
  agent_client_free(c);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- the fake endpoint ---- */

typedef struct lt_fake {
  pid_t pid;
  int port;
  char base[64];  /* http://127.0.0.1:PORT */
  char skip[200]; /* why the fake is unavailable, "" when running */
} lt_fake_t;

static AT_UNUSED char *lt_find_node(void) {
  const char *env = getenv("NODE");
  if (env && *env) return access(env, X_OK) == 0 ? xstrdup(env) : NULL;
  const char *path = getenv("PATH");
  if (!path) return NULL;
  char *copy = xstrdup(path), *save = NULL;
  for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
    char *cand = xasprintf("%s/node", dir);
    if (access(cand, X_OK) == 0) {
      free(copy);
      return cand;
    }
    free(cand);
  }
  free(copy);
  return NULL;
}

static AT_UNUSED char *lt_fake_script(void) {
  const char *here = __FILE__;
  const char *slash = strrchr(here, '/');
  size_t dir = slash ? (size_t)(slash - here) : 0;
  return xasprintf("%.*s%s../../fake/fake-llm.mjs", (int)dir, here, slash ? "/" : "");
}

/* Starts the fake; returns 0, or -ENOENT with f->skip set when node is missing. */
static AT_UNUSED int lt_fake_start(lt_fake_t *f) {
  memset(f, 0, sizeof *f);
  char *node = lt_find_node();
  if (!node) {
    snprintf(f->skip, sizeof f->skip,
             "node not found ($NODE or PATH): fake endpoint tests skipped");
    return -ENOENT;
  }
  char *script = lt_fake_script();
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(pfd[1], 1);
    close(pfd[0]);
    close(pfd[1]);
    execl(node, node, script, (char *)NULL);
    _exit(127);
  }
  close(pfd[1]);
  FILE *in = fdopen(pfd[0], "r");
  char line[256];
  bool got = fgets(line, sizeof line, in) != NULL;
  fclose(in);
  free(node);
  free(script);
  if (!got) {
    waitpid(pid, NULL, 0);
    fail_msg("fake endpoint did not start");
  }
  json_error_t je;
  json_t *j = json_loads(line, 0, &je);
  assert_non_null(j);
  f->pid = pid;
  f->port = (int)json_integer_value(json_object_get(j, "port"));
  json_decref(j);
  assert_true(f->port > 0);
  snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", f->port);
  return 0;
}

static AT_UNUSED void lt_fake_stop(lt_fake_t *f) {
  if (f->pid <= 0) return;
  kill(f->pid, SIGTERM);
  waitpid(f->pid, NULL, 0);
  f->pid = 0;
}

static AT_UNUSED size_t lt_curl_sink(char *p, size_t sz, size_t n, void *ud) {
  at_puts(ud, p, sz * n);
  return sz * n;
}

/* GET base+path from the fake (blocking, outside any loop); returns its JSON (owned). */
static AT_UNUSED json_t *lt_fake_get(const lt_fake_t *f, const char *path) {
  at_str_t body = {0};
  char *url = xasprintf("%s%s", f->base, path);
  CURL *e = curl_easy_init();
  assert_non_null(e);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, lt_curl_sink);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 20000L);
  assert_int_equal(curl_easy_perform(e), CURLE_OK);
  curl_easy_cleanup(e);
  free(url);
  json_error_t je;
  json_t *j = json_loadb(body.p ? body.p : "", body.len, 0, &je);
  if (!j) fail_msg("fake answered non-JSON: %s", body.p ? body.p : "");
  free(body.p);
  return j;
}

/* A counter of the fake's /_stats for tag, after waiting (long poll) until the counter
 * `wait` ("disconnect", "complete", "request", or NULL for none) reaches count. */
static AT_UNUSED int64_t lt_fake_stat(const lt_fake_t *f, const char *tag, const char *wait,
                                      int count, const char *field) {
  char *path = wait ? xasprintf("/_stats?tag=%s&wait=%s&count=%d&timeout_ms=5000", tag, wait, count)
                    : xasprintf("/_stats?tag=%s", tag);
  json_t *j = lt_fake_get(f, path);
  int64_t v = json_integer_value(json_object_get(j, field));
  json_decref(j);
  free(path);
  return v;
}

#endif
