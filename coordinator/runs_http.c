/* The workflows and runs HTTP API:
 *   GET  /v1/workflows                         the loaded workflows (summaries)
 *   GET  /v1/workflows/{name}                  one workflow: summary and document
 *   POST /v1/workflows/{name}/runs             start a run {"input":{...}} (Idempotency-Key)
 *   GET  /v1/runs?workflow=&status=&limit=     the tenant's runs, newest first
 *   GET  /v1/runs/{id}                         the run document
 *   POST /v1/runs/{id}/cancel                  cancel a running run
 *   POST /v1/runs/{id}/approvals/{step...}     decide a waiting approval
 *
 * Owns authentication of these routes (the run's tenant is the token's; auth mode none
 * uses runs.default_tenant), body checks, and the mapping of the engine's errors to
 * statuses. Every answer is immediate: the engine's calls are synchronous on the loop.
 * A token never sees another tenant's run: the engine answers -ENOENT for it (404). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "runs_glue.h"

#define RUNS_LIST_LIMIT_DEFAULT 100
#define RUNS_LIST_LIMIT_MAX 1000

static void runs_error(coord_http_req_t *req, int status, const char *code, const char *message,
                       json_t *errors) {
  json_t *e = json_pack("{s:s,s:s}", "code", code, "message", message);
  if (errors) json_object_set_new(e, "errors", errors);
  coord_http_respond_json_take(req, status, json_pack("{s:o}", "error", e));
}

/* Answers an engine error; errs (may be NULL) details an -EINVAL. */
static void runs_fail(coord_http_req_t *req, int rc, const char *what, wf_errors_t *errs) {
  char msg[300];
  switch (rc) {
    case -ENOENT:
      snprintf(msg, sizeof msg, "%s: not found", what);
      runs_error(req, 404, "not_found", msg, NULL);
      return;
    case -EINVAL:
      if (wf_errors_count(errs)) {
        const wf_error_t *e = wf_errors_at(errs, 0);
        snprintf(msg, sizeof msg, "%s%s%s", e->path, e->path[0] ? ": " : "", e->reason);
        runs_error(req, 400, "invalid_input", msg, wf_errors_json(errs));
      } else {
        snprintf(msg, sizeof msg, "%s: invalid", what);
        runs_error(req, 400, "bad_request", msg, NULL);
      }
      return;
    case -EBUSY:
      coord_http_add_header(req, "retry-after", "1");
      runs_error(req, 503, "too_many_runs",
                 "runs.max_runs runs are executing; retry when some have finished", NULL);
      return;
    case -ESRCH:
      snprintf(msg, sizeof msg, "%s: no approval of this step is waiting", what);
      runs_error(req, 409, "not_waiting", msg, NULL);
      return;
    case -EALREADY:
      snprintf(msg, sizeof msg, "%s: the run has already finished", what);
      runs_error(req, 409, "finished", msg, NULL);
      return;
    case -EIO:
      runs_error(req, 500, "store_failed", "the store failed; nothing was changed", NULL);
      return;
    default:
      snprintf(msg, sizeof msg, "%s: %s", what, strerror(rc < 0 ? -rc : rc));
      runs_error(req, 500, "internal", msg, NULL);
  }
}

/* Authenticates req and checks that it may do action (COORD_AUTH_SCOPE_*) on room (NULL:
 * the whole tenant) of its tenant, which is copied to tenant. On failure the request is
 * answered (503 while stopping, 401, 403) and -1 returned. */
static int runs_open(coord_runs_t *r, coord_http_req_t *req, unsigned action, const char *room,
                     char tenant[COORD_AUTH_TENANT_MAX + 1]) {
  const coord_config_t *cfg = r->d->cfg;
  if (!r->engine) {
    coord_http_add_header(req, "retry-after", "1");
    runs_error(req, 503, "shutting_down", "the server is shutting down; retry on the next one",
               NULL);
    return -1;
  }
  if (cfg->auth.mode == COORD_AUTH_NONE) {
    snprintf(tenant, COORD_AUTH_TENANT_MAX + 1, "%s", cfg->runs.default_tenant);
    return 0;
  }
  char hdr[COORD_AUTH_TOKEN_MAX_DEFAULT + 64];
  char token[COORD_AUTH_TOKEN_MAX_DEFAULT + 1] = "";
  char why[160] = "missing bearer token";
  coord_auth_principal_t who;
  memset(&who, 0, sizeof who);
  int rc = -EINVAL;
  if (coord_http_req_header(req, "authorization", hdr, sizeof hdr) > 0) {
    if (coord_auth_extract_bearer(hdr, token, sizeof token) < 0)
      snprintf(why, sizeof why, "authorization: expected \"Bearer <token>\"");
    else
      rc = coord_auth_verify_jwt(&r->jwt, token, (int64_t)time(NULL), &who, why, sizeof why);
  }
  if (rc < 0) {
    coord_http_add_header(req, "www-authenticate", "Bearer");
    runs_error(req, 401, "unauthorized", why[0] ? why : "invalid token", NULL);
    return -1;
  }
  bool ok = coord_auth_allows(&who, action, who.tenant, room);
  snprintf(tenant, COORD_AUTH_TENANT_MAX + 1, "%s", who.tenant);
  coord_auth_principal_close(&who);
  if (!ok) {
    char msg[128];
    snprintf(msg, sizeof msg, "the token may not %s",
             action == COORD_AUTH_SCOPE_PUBLISH ? (room ? "act on this run" : "start runs")
                                                : (room ? "read this run" : "list runs"));
    runs_error(req, 403, "forbidden", msg, NULL);
    return -1;
  }
  return 0;
}

/* The room of a run's topic, for room-restricted tokens. */
static void runs_room(const char *run_id, char *room, size_t len) {
  snprintf(room, len, "runs/%s", run_id);
}

/* Parses the body as a JSON object (an empty body gives {} when empty_ok). On failure the
 * request is answered and NULL returned. */
static json_t *runs_body(coord_http_req_t *req, bool empty_ok) {
  size_t len;
  const char *body = coord_http_req_body(req, &len);
  if (len == 0) {
    if (empty_ok) return json_object();
    runs_error(req, 400, "bad_request", "body: missing; send a JSON object", NULL);
    return NULL;
  }
  json_error_t jerr;
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    char msg[200];
    snprintf(msg, sizeof msg, "body: invalid JSON at line %d column %d: %.100s", jerr.line,
             jerr.column, jerr.text);
    runs_error(req, 400, "bad_request", msg, NULL);
    return NULL;
  }
  return root;
}

/* Refuses fields of obj other than those in allowed (NULL-terminated). */
static bool runs_only_fields(coord_http_req_t *req, json_t *obj, const char *const *allowed) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    const char *const *a = allowed;
    while (*a && strcmp(*a, key) != 0) a++;
    if (*a) continue;
    char msg[200];
    snprintf(msg, sizeof msg, "body.%.100s: unknown field", key);
    runs_error(req, 400, "bad_request", msg, NULL);
    return false;
  }
  return true;
}

/* ---- workflows ---- */

static void workflows_list(coord_http_req_t *req, void *ud) {
  coord_runs_t *r = ud;
  char tenant[COORD_AUTH_TENANT_MAX + 1];
  if (runs_open(r, req, COORD_AUTH_SCOPE_SUBSCRIBE, NULL, tenant) < 0) return;
  json_t *list = json_array();
  for (size_t i = 0; i < wf_registry_count(r->registry); i++)
    json_array_append_new(list, wf_workflow_summary(wf_registry_at(r->registry, i)));
  coord_http_add_header(req, "cache-control", "no-store");
  coord_http_respond_json_take(req, 200, json_pack("{s:o}", "workflows", list));
}

static void workflows_get(coord_http_req_t *req, void *ud) {
  coord_runs_t *r = ud;
  char tenant[COORD_AUTH_TENANT_MAX + 1];
  if (runs_open(r, req, COORD_AUTH_SCOPE_SUBSCRIBE, NULL, tenant) < 0) return;
  const char *name = coord_http_req_param(req, "name");
  wf_workflow_t *wf = wf_registry_find(r->registry, name);
  if (!wf) {
    runs_fail(req, -ENOENT, "workflow", NULL);
    return;
  }
  json_t *out = wf_workflow_summary(wf);
  json_object_set_new(out, "document", json_deep_copy(wf_workflow_doc(wf)));
  coord_http_add_header(req, "cache-control", "no-store");
  coord_http_respond_json_take(req, 200, out);
}

static void runs_start(coord_http_req_t *req, void *ud) {
  coord_runs_t *r = ud;
  char tenant[COORD_AUTH_TENANT_MAX + 1];
  if (runs_open(r, req, COORD_AUTH_SCOPE_PUBLISH, NULL, tenant) < 0) return;
  const char *name = coord_http_req_param(req, "name");
  char key[256];
  int klen = coord_http_req_header(req, "idempotency-key", key, sizeof key);
  if (klen >= (int)sizeof key - 1 || klen == 0) {
    runs_error(req, 400, "bad_request", "idempotency-key: must be 1 to 200 bytes", NULL);
    return;
  }
  json_t *body = runs_body(req, true);
  if (!body) return;
  json_t *input = NULL;
  if (!json_is_object(body)) {
    runs_error(req, 400, "bad_request", "body: must be an object {\"input\": {...}}", NULL);
    goto out;
  }
  if (!runs_only_fields(req, body, (const char *const[]){"input", NULL})) goto out;
  input = json_object_get(body, "input");
  if (input && json_is_null(input)) input = NULL;
  if (input && !json_is_object(input)) {
    runs_error(req, 400, "bad_request", "body.input: must be an object", NULL);
    goto out;
  }
  char run_id[WF_RUN_ID_MAX + 1];
  bool existing = false;
  wf_errors_t *errs = NULL;
  int rc =
      wf_run_start(r->engine, tenant, name, input, klen > 0 ? key : NULL, run_id, &existing, &errs);
  if (rc < 0) {
    if (rc == -EINVAL && !wf_errors_count(errs) && klen > 0)
      runs_error(req, 400, "bad_request", "idempotency-key: must be 1 to 200 bytes", NULL);
    else
      runs_fail(req, rc, rc == -ENOENT ? "workflow" : "input", errs);
    wf_errors_free(errs);
    goto out;
  }
  wf_errors_free(errs);
  char *location = xasprintf("/v1/runs/%s", run_id);
  char *topic = xasprintf("%s/runs/%s", tenant, run_id);
  coord_http_add_header(req, "location", location);
  coord_http_respond_json_take(req, 202,
                               json_pack("{s:s,s:s,s:s,s:b}", "run_id", run_id, "topic", topic,
                                         "workflow", name, "existing", existing));
  free(location);
  free(topic);
out:
  json_decref(body);
}

/* ---- runs ---- */

static const char *const run_statuses[] = {"running", "completed", "failed", "cancelled", NULL};

static void runs_list(coord_http_req_t *req, void *ud) {
  coord_runs_t *r = ud;
  char tenant[COORD_AUTH_TENANT_MAX + 1];
  if (runs_open(r, req, COORD_AUTH_SCOPE_SUBSCRIBE, NULL, tenant) < 0) return;
  char workflow[256], status[32], limit_text[32];
  bool has_wf = coord_http_req_query(req, "workflow", workflow, sizeof workflow) > 0;
  bool has_status = coord_http_req_query(req, "status", status, sizeof status) > 0;
  long limit = RUNS_LIST_LIMIT_DEFAULT;
  int n = coord_http_req_query(req, "limit", limit_text, sizeof limit_text);
  if (n >= 0) {
    char *end;
    limit = n > 0 && n < 8 ? strtol(limit_text, &end, 10) : -1;
    if (n == 0 || n >= 8 || *end || limit < 1 || limit > RUNS_LIST_LIMIT_MAX) {
      runs_error(req, 400, "bad_request", "limit: must be an integer from 1 to 1000", NULL);
      return;
    }
  }
  if (has_status) {
    const char *const *s = run_statuses;
    while (*s && strcmp(*s, status) != 0) s++;
    if (!*s) {
      runs_error(req, 400, "bad_request",
                 "status: must be one of running, completed, failed, cancelled", NULL);
      return;
    }
  }
  json_t *out = NULL;
  int rc = wf_runs_list(r->engine, tenant, has_wf ? workflow : NULL, has_status ? status : NULL,
                        (size_t)limit, &out);
  if (rc < 0) {
    runs_fail(req, rc, "runs", NULL);
    return;
  }
  coord_http_add_header(req, "cache-control", "no-store");
  coord_http_respond_json_take(req, 200, out);
}

static void runs_get(coord_http_req_t *req, void *ud) {
  coord_runs_t *r = ud;
  const char *id = coord_http_req_param(req, "id");
  char tenant[COORD_AUTH_TENANT_MAX + 1], room[WF_RUN_ID_MAX + 16];
  runs_room(id, room, sizeof room);
  if (runs_open(r, req, COORD_AUTH_SCOPE_SUBSCRIBE, room, tenant) < 0) return;
  json_t *doc = NULL;
  int rc = wf_run_get(r->engine, tenant, id, &doc);
  if (rc < 0) {
    runs_fail(req, rc, "run", NULL);
    return;
  }
  coord_http_add_header(req, "cache-control", "no-store");
  coord_http_respond_json_take(req, 200, doc);
}

/* A cancel answered once the run's events are durable (wf_run_cancel_wait), so that the
 * run's document says cancelled as soon as the client has the 200. */
typedef struct runs_cancel_wait {
  coord_http_req_t *req;   /* borrowed until answered or aborted */
  wf_run_waiter_t *waiter; /* the engine's, until it calls back or is dropped */
  char id[WF_RUN_ID_MAX + 1];
} runs_cancel_wait_t;

static void runs_cancel_answer(coord_http_req_t *req, const char *id) {
  coord_http_respond_json_take(req, 200,
                               json_pack("{s:s,s:s}", "run_id", id, "status", "cancelled"));
}

static void runs_cancel_settled(void *ud, int status) {
  runs_cancel_wait_t *w = ud;
  (void)status; /* -ECANCELED: the engine stops; the run's row says cancelled all the same */
  runs_cancel_answer(w->req, w->id);
  free(w);
}

static void runs_cancel_abort(coord_http_req_t *req, void *ud) {
  (void)req;
  runs_cancel_wait_t *w = ud;
  wf_run_waiter_drop(w->waiter);
  free(w);
}

static void runs_cancel(coord_http_req_t *req, void *ud) {
  coord_runs_t *r = ud;
  const char *id = coord_http_req_param(req, "id");
  char tenant[COORD_AUTH_TENANT_MAX + 1], room[WF_RUN_ID_MAX + 16];
  runs_room(id, room, sizeof room);
  if (runs_open(r, req, COORD_AUTH_SCOPE_PUBLISH, room, tenant) < 0) return;
  runs_cancel_wait_t *w = xcalloc(1, sizeof *w);
  w->req = req;
  snprintf(w->id, sizeof w->id, "%s", id);
  int rc = wf_run_cancel_wait(r->engine, tenant, id, runs_cancel_settled, w, &w->waiter);
  if (rc < 0 || !w->waiter) {
    free(w);
    if (rc < 0) runs_fail(req, rc, "run", NULL);
    else runs_cancel_answer(req, id);
    return;
  }
  coord_http_defer(req, runs_cancel_abort, w);
}

static void runs_approve(coord_http_req_t *req, void *ud) {
  coord_runs_t *r = ud;
  const char *id = coord_http_req_param(req, "id");
  const char *step = coord_http_req_param(req, "step");
  char tenant[COORD_AUTH_TENANT_MAX + 1], room[WF_RUN_ID_MAX + 16];
  runs_room(id, room, sizeof room);
  if (runs_open(r, req, COORD_AUTH_SCOPE_PUBLISH, room, tenant) < 0) return;
  json_t *body = runs_body(req, false);
  if (!body) return;
  if (!json_is_object(body)) {
    runs_error(req, 400, "bad_request",
               "body: must be an object {\"approve\": true|false, \"comment\": \"...\"}", NULL);
    goto out;
  }
  if (!runs_only_fields(req, body, (const char *const[]){"approve", "comment", NULL})) goto out;
  json_t *approve = json_object_get(body, "approve");
  json_t *comment = json_object_get(body, "comment");
  if (!json_is_boolean(approve)) {
    runs_error(req, 400, "bad_request", "body.approve: required, true or false", NULL);
    goto out;
  }
  if (comment && !json_is_null(comment) &&
      (!json_is_string(comment) || json_string_length(comment) > 4096 ||
       strlen(json_string_value(comment)) != json_string_length(comment))) {
    runs_error(req, 400, "bad_request",
               "body.comment: must be a string of at most 4096 bytes without NUL, or null", NULL);
    goto out;
  }
  int rc = wf_run_approve(r->engine, tenant, id, step, json_is_true(approve),
                          json_is_string(comment) ? json_string_value(comment) : NULL);
  if (rc < 0) {
    runs_fail(req, rc, rc == -ESRCH ? "step" : "run", NULL);
    goto out;
  }
  coord_http_respond_json_take(
      req, 200,
      json_pack("{s:s,s:s,s:b}", "run_id", id, "step", step, "approved", json_is_true(approve)));
out:
  json_decref(body);
}

int coord__runs_http_register(coord_runs_t *r) {
  coord_http_t *h = r->d->http;
  static const struct {
    unsigned methods;
    const char *pattern;
    coord_http_handler_fn fn;
  } routes[] = {
      {COORD_HTTP_GET, "/v1/workflows", workflows_list},
      {COORD_HTTP_GET, "/v1/workflows/{name}", workflows_get},
      {COORD_HTTP_POST, "/v1/workflows/{name}/runs", runs_start},
      {COORD_HTTP_GET, "/v1/runs", runs_list},
      {COORD_HTTP_GET, "/v1/runs/{id}", runs_get},
      {COORD_HTTP_POST, "/v1/runs/{id}/cancel", runs_cancel},
      {COORD_HTTP_POST, "/v1/runs/{id}/approvals/{step...}", runs_approve},
  };
  for (size_t i = 0; i < BASE_ARRAY_SIZE(routes); i++) {
    int rc = coord_http_route(h, routes[i].methods, routes[i].pattern, NULL, routes[i].fn, r);
    if (rc < 0) return rc;
  }
  return 0;
}
