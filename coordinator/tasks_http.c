/* The external agents' HTTP entry point:
 *   POST /v1/tasks/{task_id}/result   {"output": ...} or {"error": ...}
 *
 * The same answer an agent may publish on the task's reply topic (task.result /
 * task.error), for agents that prefer a request with a status: 200 when the step took
 * it, 404 when the task is unknown to the token's tenant, 409 when the task no longer
 * waits (its attempt ended, the run finished or was cancelled). Owns authentication of
 * the route (the token's tenant must own the task's run; the publish scope and the room
 * globs apply to the task's reply room "runs/<run_id>/tasks/<task_id>", as for a publish
 * there) and the body checks. The engine's wf_task_result does the rest; it answers at
 * once (synchronous on the loop). docs/agents-external.md documents the contract. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "runs_glue.h"

static void task_error(coord_http_req_t *req, int status, const char *code, const char *message) {
  coord_http_respond_json_take(
      req, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message));
}

/* The reply room of a task, for room-restricted tokens: its run id is the part before the
 * first '.' ("" when there is none: the engine then answers 404). */
static void task_room(const char *task_id, char *room, size_t len) {
  const char *dot = strchr(task_id, '.');
  int run_len = dot ? (int)(dot - task_id) : 0;
  snprintf(room, len, "runs/%.*s/tasks/%s", run_len, task_id, task_id);
}

/* Authenticates req for a publish to room of its tenant, copied to tenant. On failure the
 * request is answered (503 while stopping, 401, 403) and -1 returned. */
static int task_open(coord_runs_t *r, coord_http_req_t *req, const char *room,
                     char tenant[COORD_AUTH_TENANT_MAX + 1]) {
  const coord_config_t *cfg = r->d->cfg;
  if (!r->engine) {
    coord_http_add_header(req, "retry-after", "1");
    task_error(req, 503, "shutting_down", "the server is shutting down; retry on the next one");
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
    task_error(req, 401, "unauthorized", why[0] ? why : "invalid token");
    return -1;
  }
  bool ok = coord_auth_allows(&who, COORD_AUTH_SCOPE_PUBLISH, who.tenant, room);
  snprintf(tenant, COORD_AUTH_TENANT_MAX + 1, "%s", who.tenant);
  coord_auth_principal_close(&who);
  if (!ok) {
    task_error(req, 403, "forbidden", "the token may not publish to this task's reply room");
    return -1;
  }
  return 0;
}

static void task_result(coord_http_req_t *req, void *ud) {
  coord_runs_t *r = ud;
  const char *task_id = coord_http_req_param(req, "task_id");
  char tenant[COORD_AUTH_TENANT_MAX + 1], room[2 * WF_TASK_ID_MAX + 32];
  if (strlen(task_id) > WF_TASK_ID_MAX) {
    task_error(req, 404, "not_found", "task_id: unknown task");
    return;
  }
  task_room(task_id, room, sizeof room);
  if (task_open(r, req, room, tenant) < 0) return;
  size_t len;
  const char *text = coord_http_req_body(req, &len);
  json_error_t jerr;
  json_t *body = len ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
  if (!body) {
    char msg[200];
    if (len)
      snprintf(msg, sizeof msg, "body: invalid JSON at line %d column %d: %.100s", jerr.line,
               jerr.column, jerr.text);
    else
      snprintf(msg, sizeof msg, "body: missing; send {\"output\": ...} or {\"error\": ...}");
    task_error(req, 400, "bad_request", msg);
    return;
  }
  const char *key;
  json_t *v;
  json_object_foreach(body, key, v) {
    if (strcmp(key, "output") && strcmp(key, "error") && strcmp(key, "usage")) {
      char msg[160];
      snprintf(msg, sizeof msg, "body.%.100s: unknown field (output, error, usage)", key);
      task_error(req, 400, "bad_request", msg);
      json_decref(body);
      return;
    }
  }
  char *why = NULL;
  int rc = wf_task_result(r->engine, tenant, task_id, body, &why);
  json_decref(body);
  switch (rc) {
    case 0:
      coord_http_respond_json_take(
          req, 200, json_pack("{s:s,s:s}", "task_id", task_id, "status", "accepted"));
      break;
    case -EINVAL:
      task_error(req, 400, "bad_request", why ? why : "body: invalid");
      break;
    case -ENOENT:
      task_error(req, 404, "not_found", why ? why : "task: not found");
      break;
    case -EALREADY:
      task_error(req, 409, "not_waiting", why ? why : "task: no longer waiting for a result");
      break;
    default:
      task_error(req, 500, "internal", why ? why : "task: internal error");
  }
  free(why);
}

int coord__tasks_http_register(coord_runs_t *r) {
  return coord_http_route(r->d->http, COORD_HTTP_POST, "/v1/tasks/{task_id}/result",
                          "/v1/tasks/{task_id}/result", task_result, r);
}
