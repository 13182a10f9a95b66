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
 * This header does not own the run engine (it comes later and reads the internal model
 * in workflows/internal.h). Everything here runs on the caller's thread and blocks on
 * file I/O: call it at start, on SIGHUP and from the `validate` subcommand, not per
 * request. A loaded workflow is immutable and reference-counted, so runs keep using it
 * after a reload replaced it in the registry. */
#ifndef WORKFLOWS_H
#define WORKFLOWS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

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
 * "<file>: ok" to out. Agent `ref`s are not checked (no daemon config is read).
 * Returns the process exit code: 0 when every file is valid, 1 otherwise. */
int wf_validate_files(const char *const *paths, size_t n, FILE *out);

#endif
