/* Declarations shared inside workflows/: the error list builder, the JSON position
 * scanner, templates, the output-schema subset and the validated workflow model that
 * the run engine reads. Nothing here is part of the public interface. */
#ifndef WORKFLOWS_INTERNAL_H
#define WORKFLOWS_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "workflows.h"

/* ---- errors.c -------------------------------------------------------------------- */

wf_errors_t *wf__errors_new(void);
/* Adds one error (strings copied; reason is printf-formatted). Control characters left in
 * the path or the reason (text quoted from elsewhere, such as jansson's "invalid token near
 * '<byte>'") are escaped as wf__quote does, so an error is always one line; strings from the
 * document must still be quoted with WF__Q. Past WF_MAX_ERRORS the error is counted as
 * truncated instead. */
void wf__errors_add(wf_errors_t *errs, const char *file, const char *path, int line,
                    int column, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Moves every error of src to the end of dst (src stays allocated, emptied). */
void wf__errors_move(wf_errors_t *dst, wf_errors_t *src);
/* Quoting document text in messages. Every message that quotes a string taken from the
 * input goes through wf__quote, so that a string cannot break a message over several lines
 * or forge another error of wf_errors_format (`coordinator validate`), nor fill a screen.
 * The first WF__QUOTE_MAX bytes are shown (cut back to a UTF-8 boundary), then ... inside
 * the quotes ("aaaa..."), as template sources always were. */
#define WF__QUOTE_MAX 64 /* bytes */
/* Worst case: every byte as \u00XX, two quotes, "..." and the NUL. */
#define WF__QUOTE_SIZE (6 * WF__QUOTE_MAX + 6)
/* Writes s into buf (WF__QUOTE_SIZE bytes) and returns buf. quoted: as a JSON string
 * literal ("a\"b\n", with \n \t \r \b \f, \u00XX for other controls, DEL and U+0080..U+009F,
 * \u2028 and \u2029; other UTF-8 as is). Not quoted: the same but without the quotes and
 * with " and \ as they are, for text already between delimiters ({{ %s }}). NULL shows as
 * null. Plain names render as "name" (or name), as they always did. */
const char *wf__quote(char *buf, const char *s, bool quoted);
/* wf__quote into a buffer that lives until the end of the enclosing block, for use as a
 * printf argument: wf__v_error(v, "type", "unknown step type %s", WF__Q(type)). */
#define WF__Q(s) wf__quote((char[WF__QUOTE_SIZE]){0}, (s), true)
#define WF__BARE(s) wf__quote((char[WF__QUOTE_SIZE]){0}, (s), false)
/* A fresh copy of s with control characters escaped as wf__quote does (no quotes, no
 * length cap): for text that is not ours to quote, such as a file name. */
char *wf__escape_dup(const char *s) __attribute__((warn_unused_result));
/* Edit distance capped at 3 (for "did you mean"); 3 means "3 or more". */
int wf__edit_distance(const char *a, const char *b);
/* The candidate closest to word within distance 2 (and not equal), or NULL. */
const char *wf__closest(const char *word, const char *const *cands, size_t n);

/* ---- jsonpos.c ------------------------------------------------------------------- */

/* One component of a JSON path: an object key, or an array index when key is NULL. */
typedef struct wf__path_comp {
  const char *key; /* borrowed */
  size_t index;
} wf__path_comp_t;

/* Returns -EMLINK with *line and *column at the first bracket deeper than max_depth, or 0.
 * Strings are skipped properly; the text need not be valid JSON. */
int wf__json_depth_check(const char *text, size_t len, int max_depth, int *line, int *column);
/* In valid JSON text, finds the value at comps[0..n) and sets *line and *column (1-based) to
 * its first character, or to that of the deepest existing ancestor. Returns how many
 * components matched. */
size_t wf__json_locate(const char *text, size_t len, const wf__path_comp_t *comps, size_t n,
                       int *line, int *column);
/* Appends comps as "a.b[2]" (keys outside [A-Za-z0-9_-] as ["k"]) into a fresh string. */
char *wf__path_format(const wf__path_comp_t *comps, size_t n);

/* ---- template.c ------------------------------------------------------------------ */

/* A compiled template: text with `{{ expr }}` parts. expr is an operand, optionally
 * negated with `!`, optionally compared to another with `==` or `!=`; an operand is a
 * path (root then `.name` or `[N]` parts) or a JSON literal. */
typedef struct wf__tmpl wf__tmpl_t;

typedef enum {
  WF__ROOT_INPUT,
  WF__ROOT_STEPS,
  WF__ROOT_ITEM,
  WF__ROOT_INDEX,
  WF__ROOT_ITERATION,
  WF__ROOT_RUN,
} wf__root_t;

/* A path read by a template, as the validator sees it. */
typedef struct wf__tmpl_ref {
  wf__root_t root;
  const char *name;  /* first part after the root ("topic", step id, "id"); may be NULL */
  const char *field; /* second part ("output" for steps); may be NULL */
  const char *text;  /* the whole path as written, for messages */
} wf__tmpl_ref_t;

/* Compiles src. Returns 0, or -EINVAL with *err a fresh message ("unterminated {{ at
 * offset 7", ...). */
int wf__tmpl_compile(const char *src, wf__tmpl_t **out, char **err)
    __attribute__((warn_unused_result));
void wf__tmpl_free(wf__tmpl_t *t);
const char *wf__tmpl_source(const wf__tmpl_t *t);
/* Whether the template is exactly one `{{ expr }}` (it then renders to a JSON value). */
bool wf__tmpl_is_whole(const wf__tmpl_t *t);
/* Whether the template has no `{{ }}` at all. */
bool wf__tmpl_is_literal(const wf__tmpl_t *t);
size_t wf__tmpl_ref_count(const wf__tmpl_t *t);
void wf__tmpl_ref_at(const wf__tmpl_t *t, size_t i, wf__tmpl_ref_t *out);
/* Renders against ctx ({input, steps: {id: {output}}, item, index, iteration, run}).
 * A whole template yields the value itself, other templates a string in which strings
 * appear raw and other values as compact JSON. Returns 0 with *out a new reference, or
 * -EINVAL with *err a fresh message naming the template and the missing path. */
int wf__tmpl_render(const wf__tmpl_t *t, const json_t *ctx, json_t **out, char **err)
    __attribute__((warn_unused_result));
/* JSON truthiness for conditions: null, false, 0, "", [] and {} are false. */
bool wf__json_truthy(const json_t *v);
/* The case key a switch value selects: a string as is, anything else as compact JSON. */
char *wf__switch_key(const json_t *v) __attribute__((warn_unused_result));

/* A JSON value whose strings are templates (transform.value, workflow.input, ...). */
typedef struct wf__vtmpl wf__vtmpl_t;
/* Compiles every string of v (borrowed; must outlive the result). fn, when not NULL, is
 * called for every string with its place inside v and either the compiled template (err
 * NULL) or the syntax error (t NULL). Returns 0, or -EINVAL when some string failed. */
typedef void (*wf__vtmpl_fn)(void *arg, const wf__path_comp_t *comps, size_t n,
                             const wf__tmpl_t *t, const char *err);
int wf__vtmpl_compile(const json_t *v, wf__vtmpl_t **out, wf__vtmpl_fn fn, void *arg)
    __attribute__((warn_unused_result));
void wf__vtmpl_free(wf__vtmpl_t *vt);
int wf__vtmpl_render(const wf__vtmpl_t *vt, const json_t *ctx, json_t **out, char **err)
    __attribute__((warn_unused_result));

/* ---- schema.c -------------------------------------------------------------------- */

/* Checks that schema uses only the documented JSON Schema subset. On the first problem
 * returns -EINVAL with *err a fresh reason and *path a fresh relative path ("" for the
 * root, "properties.title.type", ...). */
int wf__schema_check(const json_t *schema, char **path, char **err)
    __attribute__((warn_unused_result));
/* Validates value against a checked schema. Returns 0 or -EINVAL with *err a fresh
 * message such as "$.items[1].score: expected number, got string". */
int wf__schema_validate(const json_t *schema, const json_t *value, char **err)
    __attribute__((warn_unused_result));

/* ---- the model (validate.c builds it) --------------------------------------------- */

typedef enum {
  WF_STEP_LLM,
  WF_STEP_AGENT,
  WF_STEP_PARALLEL,
  WF_STEP_MAP,
  WF_STEP_SWITCH,
  WF_STEP_LOOP,
  WF_STEP_APPROVAL,
  WF_STEP_WORKFLOW,
  WF_STEP_TRANSFORM,
  WF_STEP__COUNT,
} wf_step_kind_t;

extern const char *const wf__step_kind_names[WF_STEP__COUNT];

/* Error classes a retry policy may name (bit flags). */
enum {
  WF_RETRY_RATE_LIMITED = 1u << 0,
  WF_RETRY_TIMEOUT = 1u << 1,
  WF_RETRY_SERVER_ERROR = 1u << 2,
  WF_RETRY_NETWORK = 1u << 3,
  WF_RETRY_INVALID_OUTPUT = 1u << 4,
  WF_RETRY_STREAM_ERROR = 1u << 5,
  WF_RETRY_AGENT_ERROR = 1u << 6,
  WF_RETRY_ANY = (1u << 7) - 1,
};

typedef struct wf__retry {
  int max_attempts;            /* >= 1; 1 = no retry */
  int64_t backoff_ms;          /* first delay, doubled per attempt */
  int64_t max_backoff_ms;      /* cap of the delay, >= backoff_ms */
  double jitter;               /* fraction of the delay randomised, 0..1 */
  unsigned on;                 /* WF_RETRY_* classes that are retried */
  bool after_partial_output;   /* retry even after tokens were streamed */
} wf__retry_t;

typedef enum { WF_CATCH_NONE, WF_CATCH_FAIL, WF_CATCH_CONTINUE, WF_CATCH_GOTO } wf__catch_kind_t;

typedef struct wf__step wf__step_t;

typedef struct wf__steps {
  wf__step_t *v; /* owned array */
  size_t n;
} wf__steps_t;

typedef struct wf__agent {
  const char *name;     /* borrowed from the document */
  const char *ref;      /* shared profile name, or NULL for an inline profile */
  const json_t *node;   /* borrowed: the inline profile, or the shared one when resolved */
  const char *provider; /* borrowed; NULL for an unresolved ref */
  const char *model;    /* borrowed; may be NULL for mock */
  wf__tmpl_t *system;   /* owned; may be NULL */
  const json_t *params; /* borrowed (from node, or from owned_params); may be NULL */
  int concurrency;      /* 0 = provider default */
  const char *base_url; /* borrowed; may be NULL */
  json_t *shared;       /* owned: the resolved shared profile (keeps node alive after the
                           registry that resolved it is gone); NULL for inline profiles */
  json_t *owned_params; /* owned: the shared params merged with the workflow's own */
} wf__agent_t;

typedef struct wf__case {
  const char *value; /* borrowed key */
  wf__steps_t steps;
} wf__case_t;

/* One validated step. Strings and json_t pointers are borrowed from the document owned
 * by the workflow; templates and arrays are owned. */
struct wf__step {
  const char *id;
  char *path; /* owned: "steps[1].branches[0][2]" */
  wf__path_comp_t *comps; /* owned array (keys borrowed from the document): the path */
  size_t ncomps;
  wf_step_kind_t kind;
  const json_t *node;  /* the step's object */
  int64_t timeout_ms;  /* 0 = none */
  wf__retry_t retry;
  wf__catch_kind_t catch_kind;
  const char *catch_goto;      /* WF_CATCH_GOTO: a later sibling's id */
  wf__vtmpl_t *catch_output;   /* WF_CATCH_CONTINUE: the output to use; may be NULL */
  union {
    struct { const wf__agent_t *agent; wf__tmpl_t *prompt; const json_t *output_schema; bool stream; } llm;
    struct { wf__tmpl_t *topic; wf__vtmpl_t *input; int64_t heartbeat_ms; const char *group; } agent;
    struct { wf__steps_t *branches; size_t nbranches; bool join_any; } parallel;
    struct { wf__tmpl_t *over; wf__steps_t steps; int concurrency; int tolerated_failures; } map;
    struct { wf__tmpl_t *value; wf__case_t *cases; size_t ncases; wf__steps_t deflt; bool has_default; } sw;
    struct { wf__steps_t steps; int max_iterations; wf__tmpl_t *until; } loop;
    struct { wf__tmpl_t *prompt; } approval;
    struct { const char *name; wf__vtmpl_t *input; } workflow;
    struct { wf__vtmpl_t *value; } transform;
  } u;
};

typedef struct wf__input {
  const char *name;      /* borrowed */
  const char *type;      /* "string" | "number" | "integer" | "boolean" | "object" | "array" */
  bool required;
  const json_t *deflt;   /* borrowed; may be NULL */
} wf__input_t;

/* A loaded workflow. Immutable after wf__validate succeeded; shared by refcount. */
struct wf_workflow {
  int refs;
  char *file;            /* owned: as given to the loader */
  char *text;            /* owned: the file's bytes, for positions of late errors */
  size_t text_len;       /* bytes */
  json_t *doc;           /* owned */
  const char *name;      /* borrowed from doc */
  const char *description;
  wf__input_t *inputs;   /* owned array */
  size_t ninputs;
  wf__agent_t *agents;   /* owned array */
  size_t nagents;
  wf__steps_t steps;
  wf__vtmpl_t *output;   /* owned; NULL = the last step's output */
  size_t nsteps_total;
};

/* Validates wf->doc (already parsed from wf->text) and builds the model. shared is the
 * shared-profile table for refs (NULL: unchecked); has_workflow, when not NULL, answers
 * whether a sub-workflow name exists. Errors go to errs. Returns 0 or -EINVAL. */
int wf__validate(wf_workflow_t *wf, const json_t *shared,
                 bool (*has_workflow)(void *arg, const char *name), void *arg,
                 wf_errors_t *errs) __attribute__((warn_unused_result));
/* Adds an error located at comps[0..n) of the workflow's document. */
void wf__error_at(const wf_workflow_t *wf, const wf__path_comp_t *comps, size_t n,
                  wf_errors_t *errs, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* load.c: parses text (copied) into a new workflow and validates it; see wf__validate.
 * Returns 0 with *out, or a negative errno with errors in errs. */
int wf__load(const char *text, size_t len, const char *name, const json_t *shared,
             bool (*has_workflow)(void *arg, const char *name), void *arg, wf_workflow_t **out,
             wf_errors_t *errs) __attribute__((warn_unused_result));
/* load.c: reads a whole file within WF_MAX_FILE_BYTES into *text (free()); errors are
 * added to errs. Returns 0 or a negative errno. */
int wf__read_file(const char *path, char **text, size_t *len, wf_errors_t *errs)
    __attribute__((warn_unused_result));
/* Adds an error located at the value of a step field (field may be NULL for the step). */
void wf__error_at_step(const wf_workflow_t *wf, const wf__step_t *s, const char *field,
                       wf_errors_t *errs, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---- shared by validate.c and steps.c --------------------------------------------- */

typedef enum { WF__SCOPE_LIST, WF__SCOPE_MAP, WF__SCOPE_LOOP } wf__scope_kind_t;

/* One step list being validated: the steps of list->v[0..list->n) are finished and
 * visible to templates of later steps; kind says what the list is the body of. */
typedef struct wf__scope {
  struct wf__scope *up; /* borrowed: the enclosing list */
  const wf__steps_t *list;
  wf__scope_kind_t kind;
  const char *owner; /* id of the step whose body this is; NULL at the top */
} wf__scope_t;

/* Validation state. path[0..depth) is where the validator is in the document. */
typedef struct wf__vctx {
  wf_workflow_t *wf;
  wf_errors_t *errs;
  const json_t *shared;
  bool (*has_workflow)(void *arg, const char *name);
  void *hw_arg;
  wf__path_comp_t path[WF_MAX_JSON_DEPTH + 8];
  size_t depth;
  json_t *ids_all;  /* owned: {id: true} for every step id in the document */
  json_t *ids_seen; /* owned: {id: "path of its first definition"} */
  wf__scope_t *scope;
  const char *cur_step; /* id of the step whose fields are being checked */
  bool in_agents;       /* templates of agent profiles see only input and run */
  int step_depth;
  size_t nsteps;
} wf__vctx_t;

void wf__v_push_key(wf__vctx_t *v, const char *key);
void wf__v_push_index(wf__vctx_t *v, size_t index);
void wf__v_pop(wf__vctx_t *v);
/* An error at the current path (plus key, when not NULL). */
void wf__v_error(wf__vctx_t *v, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reports keys of obj that are not in allowed[0..n) (with a hint). Returns false if any. */
bool wf__v_known_keys(wf__vctx_t *v, const json_t *obj, const char *const *allowed, size_t n);
/* Field getters: false when the field is missing (error if required) or has the wrong
 * type/range (error). *out is left untouched unless the field is present and valid. */
bool wf__v_string(wf__vctx_t *v, const json_t *obj, const char *key, bool required,
                  const char **out);
bool wf__v_int(wf__vctx_t *v, const json_t *obj, const char *key, bool required, int64_t min,
               int64_t max, int64_t *out);
bool wf__v_bool(wf__vctx_t *v, const json_t *obj, const char *key, bool *out);
/* Compiles a template field and checks the names it reads against the current scope. */
bool wf__v_template(wf__vctx_t *v, const json_t *obj, const char *key, bool required,
                    wf__tmpl_t **out);
/* Same for a value template (any JSON value; its strings are templates). */
bool wf__v_vtemplate(wf__vctx_t *v, const json_t *obj, const char *key, bool required,
                     wf__vtmpl_t **out);
const char *wf__v_type_name(const json_t *j);
/* Whether j has the declared input type ("string", "integer", ...). */
bool wf__input_type_matches(const char *type, const json_t *j);
/* steps.c: validates the step array at obj[key] as a list of the given scope kind. */
void wf__v_steps(wf__vctx_t *v, const json_t *obj, const char *key, wf__scope_kind_t kind,
                 const char *owner, wf__steps_t *out);
/* steps.c: the fields a step of kind may have (common ones first), for the schema
 * consistency test; returns how many were stored in out[0..max). */
size_t wf__step_keys(wf_step_kind_t kind, const char **out, size_t max);
/* The names the validator accepts, by table: "workflow", "input", "input_type", "agent",
 * "provider" (validate.c); "retry", "catch", "retry_class", "step_type" (steps.c).
 * For the schema consistency test and hints. NULL with *n 0 for an unknown table. */
const char *const *wf__names(const char *table, size_t *n);
const char *const *wf__step_names(const char *table, size_t *n);
/* steps.c: frees a step list built by wf__v_steps. */
void wf__steps_free(wf__steps_t *steps);

/* Calls fn for each step of the tree, depth first in document order. */
void wf__steps_walk(const wf__steps_t *steps, void (*fn)(void *arg, const wf__step_t *s),
                    void *arg);
/* Frees the model (not the document or the struct). */
void wf__model_free(wf_workflow_t *wf);
/* Registry lookups shared by load.c and registry.c. */
const json_t *wf__registry_profiles(const wf_registry_t *reg);

#endif
