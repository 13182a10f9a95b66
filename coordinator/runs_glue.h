/* Declarations shared by the files that put the workflow engine (workflows/) and the model
 * clients (agents/) on the daemon: runs_mod.c (attach, config mapping, the registry and
 * its SIGHUP reload, metrics, drain and stop) and runs_http.c (the /v1/workflows and
 * /v1/runs routes). Included by those files only.
 *
 * Lifetime: the module (coord_runs_t) lives from attach to the daemon's exit hook. The
 * engine and the agent client are freed when the daemon starts draining (or at stop when
 * it never ran): the engine first, while the hub still takes publishes and before the
 * agent client it calls, so runs stop where they stand and resume on the next start. From
 * then on `engine` is NULL and the routes answer 503. The registry outlives the engine
 * (runs hold references to their workflows, not to the registry) and is freed at exit. */
#ifndef COORD_RUNS_GLUE_H
#define COORD_RUNS_GLUE_H

#include <stdbool.h>
#include <stdint.h>

#include "agents.h"
#include "auth.h"
#include "internal.h"
#include "workflows.h"

/* Invariants: registry is never NULL between attach and exit (an empty registry when the
 * folder could not be read); engine set implies agents set. */
typedef struct coord_runs {
  coord_daemon_t *d;        /* borrowed */
  agent_client_t *agents;   /* owned; NULL before attach made it and after drain */
  wf_engine_t *engine;      /* owned; NULL before attach made it and after drain */
  wf_registry_t *registry;  /* owned: the one new runs look workflows up in */
  coord_auth_jwt_cfg_t jwt; /* secret borrowed from the config */
  uv_signal_t sighup;       /* reloads the registry */
  bool sighup_started;
  uint64_t reloads;         /* SIGHUP reloads done */
  uint64_t reload_failures; /* reloads that kept the old registry (folder unreadable) */
  uint64_t rejected_files;  /* files left out by the last load */
} coord_runs_t;

/* ---- runs_mod.c ---- */

/* Loads workflows_dir into a new registry, logging each invalid file's errors. Returns the
 * registry (never NULL: empty when the folder cannot be read); *rejected receives the
 * number of files left out and *folder_rc the folder error (0 when it could be read). */
wf_registry_t *coord__runs_load_registry(coord_runs_t *r, size_t *rejected, int *folder_rc);

/* ---- runs_http.c ---- */

/* GET/POST /v1/workflows..., /v1/runs... */
int coord__runs_http_register(coord_runs_t *r) __attribute__((warn_unused_result));

/* ---- tasks_http.c ---- */

/* POST /v1/tasks/{task_id}/result (external agents). */
int coord__tasks_http_register(coord_runs_t *r) __attribute__((warn_unused_result));

#endif
