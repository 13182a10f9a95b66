/* Workflow files: loading, validation and the registry of loaded workflows.
 *
 * A workflow is a JSON document (format in docs/workflows.md, JSON Schema in
 * docs/workflow.schema.json) declaring inputs, agent profiles and a tree of steps whose
 * strings may be templates. Loading parses the file with limits (size, nesting depth),
 * validates every field, compiles every template and checks every reference (agent
 * profiles, step ids used in templates, catch targets, sub-workflow names), collecting
 * all errors up to WF_MAX_ERRORS. Each error names the file, the JSON path
 * (`steps[2].agent`), the line/column of the offending value (or of its nearest
 * existing parent when the value is missing) and the reason.
 *
 * The loading half runs on the caller's thread and blocks on file I/O: call it at start,
 * on SIGHUP and from the `validate` subcommand, not per request. The last section is the
 * run engine, which runs on the daemon's loop. A loaded workflow is immutable and reference-counted, so runs keep using it
 * after a reload replaced it in the registry. */
#ifndef WORKFLOWS_H
#define WORKFLOWS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "agents.h"
#include "store.h"
#include "streams.h"

#define WF_MAX_FILE_BYTES (1024 * 1024) /* bytes; larger files are rejected unread */
#define WF_MAX_JSON_DEPTH 64            /* nesting of arrays/objects in a file */
#define WF_MAX_STEP_DEPTH 8             /* nesting of step lists (parallel, map, ...) */
#define WF_MAX_STEPS 1000               /* steps in one workflow, nested ones included */
#define WF_MAX_ERRORS 50                /* errors collected per load before truncating */
#define WF_MAX_LOOP_ITERATIONS 1000     /* upper bound of loop.max_iterations */
#define WF_MAX_MAP_CONCURRENCY 256      /* upper bound of map.concurrency */
#define WF_MAX_REGISTRY_FILES 1000      /* *.json files read from one folder */

/* ---- errors ---------------------------------------------------------------------- */

/* One validation error. All strings are owned by the wf_errors_t they came from. */
typedef struct wf_error {
  const char *file;   /* as given to the loader; "" for none */
  const char *path;   /* JSON path such as "steps[2].agent"; "" for the whole document */
  int line;           /* 1-based; 0 when unknown */
  int column;         /* 1-based, in characters; 0 when unknown */
  const char *reason; /* e.g. "unknown agent profile \"writer\"" */
} wf_error_t;

typedef struct wf_errors wf_errors_t;

size_t wf_errors_count(const wf_errors_t *errs); /* NULL counts as empty */
const wf_error_t *wf_errors_at(const wf_errors_t *errs, size_t i);
/* Whether errors were dropped after WF_MAX_ERRORS. */
bool wf_errors_truncated(const wf_errors_t *errs);
/* One line per error, each "file:line:col: path: reason" (parts that are unknown or empty
 * are left out with their separator), then a line saying errors were omitted when
 * truncated. Returns a fresh string (free()), "" when there is no error. */
char *wf_errors_format(const wf_errors_t *errs) __attribute__((warn_unused_result));
/* The errors as a JSON array of {file, path, line, column, reason, message} objects for
 * HTTP replies (new reference). */
json_t *wf_errors_json(const wf_errors_t *errs) __attribute__((warn_unused_result));
void wf_errors_free(wf_errors_t *errs);

/* ---- workflows ------------------------------------------------------------------- */

typedef struct wf_workflow wf_workflow_t;
typedef struct wf_registry wf_registry_t;

/* Loads and validates one workflow file.
 *   path:     the file; it is named as given in errors.
 *   registry: when not NULL, sub-workflow names must name workflows of the registry,
 *             and `{"ref": ...}` agent profiles must name its shared profiles when it
 *             has a profile table; when NULL both are left unchecked (the registry
 *             checks them when it loads the folder).
 *   out:      receives the workflow (one reference) on success, NULL otherwise.
 *   errs:     receives the errors (free with wf_errors_free) or NULL when there is none;
 *             may itself be NULL when the caller does not want them.
 * Returns 0, -EINVAL (the document is invalid: see errs), -EMSGSIZE (over
 * WF_MAX_FILE_BYTES), or the negative errno of open/read (-ENOENT, -EACCES, ...); every
 * failure also adds an error to errs. */
int wf_load_file(const char *path, const wf_registry_t *registry, wf_workflow_t **out,
                 wf_errors_t **errs) __attribute__((warn_unused_result));
/* Same as wf_load_file for a document in memory (HTTP uploads, tests); name is the file
 * name used in errors. The buffer is copied. */
int wf_load_buffer(const char *text, size_t len, const char *name,
                   const wf_registry_t *registry, wf_workflow_t **out, wf_errors_t **errs)
    __attribute__((warn_unused_result));

wf_workflow_t *wf_workflow_ref(wf_workflow_t *wf);
/* Drops one reference and clears *wf; the last one frees the workflow. */
void wf_workflow_unref(wf_workflow_t **wf);
/* Drops the reference returned by wf_load_file (same as unref without clearing). */
void wf_free(wf_workflow_t *wf);

const char *wf_workflow_name(const wf_workflow_t *wf);
const char *wf_workflow_file(const wf_workflow_t *wf);
/* The whole document as loaded (borrowed; never modified). */
const json_t *wf_workflow_doc(const wf_workflow_t *wf);
/* {name, description, file, inputs, agents: [names], steps: count} (new reference), the
 * body of GET /v1/workflows entries. */
json_t *wf_workflow_summary(const wf_workflow_t *wf) __attribute__((warn_unused_result));

/* Checks a run's input object against the declared inputs: unknown names, missing
 * required ones and wrong types are errors (path "input.<name>"); defaults fill absent
 * optional inputs. input may be NULL (no input). On success *out is a new object.
 * Returns 0 or -EINVAL (errors in *errs, when errs is not NULL). */
int wf_inputs_resolve(const wf_workflow_t *wf, const json_t *input, json_t **out,
                      wf_errors_t **errs) __attribute__((warn_unused_result));

/* ---- registry -------------------------------------------------------------------- */

/* Loads every regular *.json file of dir (not hidden ones, sorted by name) into a new
 * registry. A file with errors is left out and its errors are added to *errs; the
 * others still load. Workflow names must be unique across files (the later file in
 * name order is the one rejected), and sub-workflow references must resolve inside the
 * registry without cycles; a workflow whose sub-workflow was rejected is rejected too.
 *   shared_profiles: an object {name: profile} that `{"ref": name}` agents resolve
 *                    against (borrowed, copied); NULL leaves refs unchecked.
 * On SIGHUP build a new registry this way and swap it in; runs keep their references.
 * Returns 0 (every file loaded), -EINVAL (some files were rejected; *out still holds
 * the others), or a negative errno when the folder cannot be read (*out is NULL). */
int wf_registry_load_dir(const char *dir, const json_t *shared_profiles,
                         wf_registry_t **out, wf_errors_t **errs)
    __attribute__((warn_unused_result));
/* An empty registry (for tests and embedders that add workflows themselves). */
wf_registry_t *wf_registry_new(const json_t *shared_profiles);
/* Adds a workflow (takes a new reference). Returns 0 or -EEXIST for a duplicate name. */
int wf_registry_add(wf_registry_t *reg, wf_workflow_t *wf) __attribute__((warn_unused_result));
void wf_registry_free(wf_registry_t *reg);
/* Borrowed; NULL when unknown. Take a reference to keep it past the registry. */
wf_workflow_t *wf_registry_find(const wf_registry_t *reg, const char *name);
size_t wf_registry_count(const wf_registry_t *reg);
/* The i-th workflow in name order (borrowed). */
wf_workflow_t *wf_registry_at(const wf_registry_t *reg, size_t i);

/* The `coordinator validate FILE...` subcommand: loads every file, checks sub-workflow
 * references among the given files, prints each error line (wf_errors_format) or
 * "<file>: ok" to out. shared_profiles (borrowed; NULL: refs unchecked) is the `agents`
 * object of a daemon configuration that `{"ref": name}` profiles resolve against.
 * Returns the process exit code: 0 when every file is valid, 1 otherwise. */
int wf_validate_files(const char *const *paths, size_t n, const json_t *shared_profiles,
                      FILE *out);

/* ---- the run engine (engine.c, run_*.c; docs/runs.md) -------------------------------
 *
 * A run is a state machine on the daemon's libuv loop: its steps call the agent client,
 * publish their events on the run's topic "<tenant>/runs/<run_id>" through the stream
 * hub, and store each transition (one small transaction) in the store, so that a new
 * engine on the same store resumes unfinished runs (wf_engine_resume). Everything here
 * runs on the loop thread and nothing is thread-safe. Run documents (wf_run_get,
 * wf_runs_list) are JSON in the shape docs/runs.md gives. Errors are negative errno:
 * -EINVAL (bad argument or input), -ENOENT (unknown workflow or run, or a run of another
 * tenant), -EBUSY (too many runs), -ESRCH (no approval waiting for that step), -EALREADY
 * (the run already finished), -EIO (store). */

typedef struct wf_engine wf_engine_t;

#define WF_RUN_ID_MAX 64 /* bytes of a run id */

/* Wall clock for the timestamps of runs and events, injectable for tests; NULL = real. */
typedef struct wf_clock {
  int64_t (*wall_ms)(void *ud);
  void *ud;
} wf_clock_t;

typedef struct wf_engine_config {
  int64_t token_coalesce_ms;   /* token deltas of one (step, attempt, part) within this
                                  window form one `token` event; 0: default 20; -1: none */
  size_t token_max_bytes;      /* a token event is sent early at this size; 0: 8192 */
  const char *default_tenant;  /* for a NULL tenant (auth mode none); NULL: "default" */
  size_t max_runs;             /* runs executing at once in this engine; 0: 1000 */
  uint64_t random_seed;        /* retry jitter; 0: seeded from the kernel */
} wf_engine_config_t;

typedef struct wf_engine_options {
  uv_loop_t *loop;                  /* borrowed */
  store_t *store;                   /* borrowed; outlives the engine */
  stream_hub_t *hub;                /* borrowed; outlives the engine */
  agent_client_t *agents;           /* borrowed; outlives the engine */
  const wf_registry_t *registry;    /* borrowed; see wf_engine_set_registry */
  const wf_engine_config_t *config; /* copied; NULL = defaults */
  const wf_clock_t *clock;          /* copied; NULL = real clock */
} wf_engine_options_t;

/* Creates an engine. Returns 0 or -EINVAL (a required option missing). */
int wf_engine_new(const wf_engine_options_t *opts, wf_engine_t **out)
    __attribute__((warn_unused_result));
/* Stops every run where it is, without publishing or storing anything more (the store
 * keeps them unfinished, so a later engine resumes them): in-flight model calls are
 * cancelled, timers stop, publish callbacks are dropped. The engine's handles close
 * asynchronously: run the loop afterwards, before uv_loop_close. NULL is a no-op. */
void wf_engine_free(wf_engine_t *e);
/* Replaces the registry new runs look workflows up in (SIGHUP). Running runs keep the
 * workflows they hold references to. The registry is borrowed until replaced. */
void wf_engine_set_registry(wf_engine_t *e, const wf_registry_t *registry);

/* Starts a run of workflow `name` for tenant (NULL: the default tenant).
 *   input: the run's input object (borrowed; may be NULL), checked with wf_inputs_resolve.
 *   idempotency_key: NULL, or a key (1-200 bytes): a second start with the same key and
 *                    tenant returns the first run (*existing true) and starts nothing.
 *   run_id: receives the run id.  existing: may be NULL.
 *   errs: receives input errors (free with wf_errors_free) when -EINVAL; may be NULL.
 * The run's first event (run.started) is published before this returns; its steps start
 * on a later loop turn. Returns 0, -ENOENT (unknown workflow), -EINVAL (bad input or
 * key), -EBUSY (max_runs executing), -EIO (store). */
int wf_run_start(wf_engine_t *e, const char *tenant, const char *name, const json_t *input,
                 const char *idempotency_key, char run_id[WF_RUN_ID_MAX + 1], bool *existing,
                 wf_errors_t **errs) __attribute__((warn_unused_result));
/* The run's document (new reference in *out): status, input, output, error, per-step
 * states with outputs, streamed text, usage and timings, total usage, the topic, and
 * `seq`: the topic position the document reflects (subscribe "after seq" to follow it).
 * Returns 0, -ENOENT, -EIO. */
int wf_run_get(wf_engine_t *e, const char *tenant, const char *run_id, json_t **out)
    __attribute__((warn_unused_result));
/* Summaries of the tenant's runs, newest first (new reference: {"runs": [...]}).
 * workflow and status filter when not NULL; limit 0 means 100 (at most 1000). */
int wf_runs_list(wf_engine_t *e, const char *tenant, const char *workflow, const char *status,
                 size_t limit, json_t **out) __attribute__((warn_unused_result));
/* Cancels a running run: in-flight model calls are aborted, running steps end as
 * cancelled, run.cancelled is published. Returns 0, -ENOENT, -EALREADY. */
int wf_run_cancel(wf_engine_t *e, const char *tenant, const char *run_id)
    __attribute__((warn_unused_result));

/* A caller waiting for a cancelled run's events to be durable (wf_run_cancel_wait). */
typedef struct wf_run_waiter wf_run_waiter_t;
typedef void (*wf_run_settled_fn)(void *ud, int status);
/* wf_run_cancel, then: when the run was running here, *waiter is set and cb(ud, 0) runs
 * once every event of the run is acknowledged (so its document, wf_run_get, says
 * cancelled), or cb(ud, -ECANCELED) when the engine lets the run go first (stop); never
 * from inside this call. *waiter is NULL when there is nothing to wait for (a stored run,
 * or an error). wf_run_waiter_drop before the callback drops it (the caller left). */
int wf_run_cancel_wait(wf_engine_t *e, const char *tenant, const char *run_id,
                       wf_run_settled_fn cb, void *ud, wf_run_waiter_t **waiter)
    __attribute__((warn_unused_result));
void wf_run_waiter_drop(wf_run_waiter_t *waiter);
/* Decides the approval step `step` (its id, or its instance key inside a map or loop)
 * of a running run: the step completes with {"approved": approve, "comment": comment}
 * (comment may be NULL). Returns 0, -ENOENT (run), -ESRCH (no approval of that step is
 * waiting), -EALREADY (the run finished). */
int wf_run_approve(wf_engine_t *e, const char *tenant, const char *run_id, const char *step,
                   bool approve, const char *comment) __attribute__((warn_unused_result));
/* Resumes every unfinished run of the store (call once at start, after the hub is up):
 * steps stored as finished are not run again; each run publishes run.resumed naming the
 * step instances that were interrupted and run again. Resumed runs count toward max_runs
 * but are never refused. A run whose workflow is no longer in the registry is stored and
 * published as failed. *count (may be NULL) receives how many runs resumed. Returns 0 or
 * -EIO. */
int wf_engine_resume(wf_engine_t *e, size_t *count) __attribute__((warn_unused_result));

typedef struct wf_engine_stats {
  uint64_t runs_active;    /* gauge */
  uint64_t runs_started;   /* counters from here */
  uint64_t runs_resumed;
  uint64_t runs_completed;
  uint64_t runs_failed;
  uint64_t runs_cancelled;
  uint64_t steps_started;
  uint64_t step_retries;
  uint64_t token_events;   /* token events published */
  uint64_t token_deltas;   /* deltas received from the agent client */
  uint64_t publish_errors; /* events the hub refused for good */
  uint64_t tasks_offered;  /* agent tasks made durable on their coordination topic */
  uint64_t task_results;   /* results and errors agents delivered that a step took */
  uint64_t task_rejected;  /* HTTP results refused (unknown or no longer waiting) */
  uint64_t task_heartbeat_misses; /* attempts failed for a missed heartbeat */
} wf_engine_stats_t;

void wf_engine_stats(const wf_engine_t *e, wf_engine_stats_t *out);

/* ---- tasks of external agents (run_agent.c; docs/agents-external.md) ---------------
 *
 * An `agent` step publishes a `task` event to its coordination topic with a task id
 * (unique per run, step instance and attempt: "<run_id>.<16 hex>.<attempt>") and a reply
 * topic "<tenant>/runs/<run_id>/tasks/<task_id>", which the engine watches while the
 * attempt runs. Agents answer there (task.heartbeat, task.partial, task.result,
 * task.error events) or through wf_task_result (POST /v1/tasks/{task_id}/result). */

#define WF_TASK_ID_MAX 96 /* bytes of a task id */

/* Delivers the answer of task_id for tenant (NULL: the default tenant).
 *   body: {"output": any JSON} (the step completes with it; an optional "usage" object
 *         {"in_tokens","out_tokens"} is kept) or {"error": "message" or {"message":...}}
 *         (the attempt fails with class agent_error). Borrowed.
 *   why:  may be NULL; receives a fresh message (free()) for every error.
 * Returns 0 (the step took it), -EINVAL (the body has neither or both of output and
 * error), -ENOENT (no such task of this tenant: unknown run, another tenant's run, or an
 * id that is not a task id), -EALREADY (the task no longer waits: its attempt ended
 * (result, error, heartbeat miss, timeout), the run finished or was cancelled). */
int wf_task_result(wf_engine_t *e, const char *tenant, const char *task_id, const json_t *body,
                   char **why) __attribute__((warn_unused_result));

#endif
