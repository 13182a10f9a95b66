/* Declarations shared by the run engine's files (engine.c, run_api.c, run_events.c,
 * run_exec.c, run_kinds.c, run_llm.c, run_agent.c). Nothing here is public; the validator's model it
 * reads is in internal.h.
 *
 * Shape of a run in memory: a wf__run_t holds the root list node; a list node runs its
 * steps one after another, each as a step node (wf__sx_t); container steps (parallel,
 * map, switch, loop, workflow) own child list nodes. Nodes report their result through
 * the engine's task queue, never synchronously from the call that started them, so no
 * parent is re-entered from inside its own call. Cancelling a node is synchronous and
 * recursive: after wf__node_cancel it reports nothing and its parent frees it. */
#ifndef WORKFLOWS_ENGINE_INTERNAL_H
#define WORKFLOWS_ENGINE_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/map.h"
#include "base/queue.h"
#include "internal.h"
#include "workflows.h"

#define WF__DEFAULT_COALESCE_MS 20
#define WF__DEFAULT_TOKEN_MAX 8192
#define WF__DEFAULT_MAX_RUNS 1000
#define WF__IDEM_KEY_MAX 200
#define WF__PUBLISH_RETRY_MS 10 /* retry delay of a refused publish without a hint */

typedef struct wf__run wf__run_t;
typedef struct wf__node wf__node_t;

/* ---- engine.c: timers, tasks, the engine ---------------------------------------- */

/* A one-shot timer of the engine's heap (one uv_timer for all of them). */
typedef struct wf__tmr {
  uint64_t due; /* uv_now ms */
  size_t idx;   /* heap position; SIZE_MAX when not armed */
  void (*cb)(struct wf__tmr *t);
} wf__tmr_t;

void wf__tmr_init(wf__tmr_t *t, void (*cb)(wf__tmr_t *t));
void wf__tmr_start(wf_engine_t *e, wf__tmr_t *t, int64_t delay_ms);
void wf__tmr_stop(wf_engine_t *e, wf__tmr_t *t);
static inline bool wf__tmr_armed(const wf__tmr_t *t) {
  return t->idx != SIZE_MAX;
}

/* Work run from the loop on a later turn (FIFO). */
typedef struct wf__task {
  base_queue_t link; /* linked while queued */
  void (*fn)(struct wf__task *t);
} wf__task_t;

void wf__task_init(wf__task_t *t, void (*fn)(wf__task_t *t));
void wf__task_post(wf_engine_t *e, wf__task_t *t); /* no-op when already queued */
void wf__task_cancel(wf__task_t *t);

/* Invariant: every wf__run_t in runs is linked in run_list; handles_open counts the
 * uv handles not yet closed (the engine is freed when it reaches 0 while freeing). */
struct wf_engine {
  uv_loop_t *loop;               /* borrowed */
  store_t *store;                /* borrowed */
  stream_hub_t *hub;             /* borrowed */
  agent_client_t *agents;        /* borrowed */
  const wf_registry_t *registry; /* borrowed */
  wf_engine_config_t cfg;        /* defaults applied */
  char *default_tenant;          /* owned */
  wf_clock_t clock;
  uv_timer_t timer; /* the timer heap's */
  uv_idle_t kick;   /* runs the task queue, one batch per loop turn */
  wf__tmr_t **heap; /* owned array of borrowed timers */
  size_t nheap, heap_cap;
  base_queue_t tasks;
  base_map_t runs; /* wf__run_t by id, live in this engine */
  base_queue_t run_list;
  size_t running; /* runs not yet finished */
  uint64_t rng;
  wf_engine_stats_t stats;
  int handles_open;
  bool in_timer_cb;           /* inside the timer heap's callback */
  bool freeing;
};

int64_t wf__now_ms(const wf_engine_t *e); /* wall clock */
uint64_t wf__random(wf_engine_t *e);      /* xorshift64* */
wf__run_t *wf__run_find(wf_engine_t *e, const char *id);

/* ---- run_events.c: events, the outbox and the run document ----------------------- */

/* One event on its way to the topic: queued (outq) until the hub takes it, then in
 * flight (inflight) until its ack, when it is applied to the run's document. */
typedef struct wf__ev {
  base_queue_t link;
  wf__run_t *run;       /* borrowed */
  char *type;           /* owned */
  char *id;             /* owned */
  int lane;             /* stream_lane_t */
  json_t *data;         /* owned */
  json_t *slim;         /* owned: what is published instead when data is too large */
  stream_pub_t *handle; /* while in flight */
  /* token events only: what may still merge into it while queued */
  const char *tok_step; /* borrowed from data */
  int tok_attempt, tok_part, tok_call;
} wf__ev_t;

/* Queues an event (data taken) and publishes what the hub accepts now. */
void wf__emit(wf__run_t *r, const char *type, const char *id, int lane, json_t *data);
/* Queues a token event, or appends text to the last queued token event of the same
 * (step, attempt, part, call) when the hub has not taken it yet. Returns true when a new
 * event was created (the caller's index then advances). */
bool wf__emit_token(wf__run_t *r, const char *key, int attempt, int part, int call,
                    const char *tool_id, const char *tool_name, int index, const char *text,
                    size_t len);
/* Drops every queued and in-flight event without publishing (engine free). */
void wf__outbox_abandon(wf__run_t *r);
bool wf__outbox_empty(const wf__run_t *r);
/* The callback of a run's pub_retry timer (publishes what waited behind a refusal). */
void wf__outbox_retry_cb(wf__tmr_t *t);
/* Applies one acknowledged event to the run document (the reducer of docs/runs.md). */
void wf__view_apply(json_t *view, const char *type, const json_t *data);
/* Folds token text acknowledged so far into r->view (before reading it). */
void wf__view_sync(wf__run_t *r);
/* Releases what wf__view_sync would fold (run free). */
void wf__view_drop(wf__run_t *r);
/* A run document from stored rows; steps is {key: row object} (see wf__step_row_json). */
json_t *wf__view_from_rows(const json_t *run_row, const json_t *steps);
/* Fills totals (usage) into a copy of the document for a reader. */
json_t *wf__view_export(const json_t *view);
json_t *wf__run_row_json(const store_run_t *r);
json_t *wf__step_row_json(const store_step_t *s);
/* A JSON string of text that may hold invalid UTF-8 (replaced by U+FFFD). */
json_t *wf__json_text(const char *s, size_t len);
/* {"class": cls, "message": msg} (printf-formatted). */
json_t *wf__error(const char *cls, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- run_exec.c: runs, lists and step nodes -------------------------------------- */

typedef enum { WF__NODE_LIST, WF__NODE_STEP } wf__node_type_t;
typedef enum { WF__RES_NONE, WF__RES_OK, WF__RES_FAIL, WF__RES_GOTO } wf__res_t;

struct wf__node {
  wf__node_type_t type;
  wf__run_t *run;       /* borrowed */
  wf__node_t *parent;   /* borrowed; NULL for the root list */
  wf__task_t done_task; /* queued while the result waits for delivery */
  wf__res_t res;
  json_t *output;      /* owned: the result's output (OK) */
  json_t *error;       /* owned: {class, message, step} (FAIL) */
  const char *goto_id; /* borrowed: the target (GOTO) */
  bool caught;         /* OK after a catch "continue" */
  size_t slot;         /* position among the parent's children */
};

/* A list of steps run in order against ctx. */
typedef struct wf__list {
  wf__node_t n;
  const wf__steps_t *steps; /* borrowed from the workflow */
  json_t *ctx;              /* owned reference: {input, steps, run, item?, ...} */
  char *prefix;             /* owned: key prefix of its steps ("" at the top) */
  size_t idx;               /* the step running or next */
  wf__node_t *cur;          /* owned: the running step node */
  json_t *last;             /* owned: the last finished step's output */
} wf__list_t;

typedef enum { WF__SX_IDLE, WF__SX_RUN, WF__SX_BACKOFF, WF__SX_WAIT, WF__SX_DONE } wf__sx_phase_t;

typedef struct wf__llm wf__llm_t;
typedef struct wf__ext wf__ext_t;

/* One step instance. Containers own kids (child lists indexed by slot). */
typedef struct wf__sx {
  wf__node_t n;
  const wf__step_t *step;  /* borrowed */
  const wf_workflow_t *wf; /* borrowed: the workflow the step belongs to */
  char *key;               /* owned */
  json_t *ctx;             /* owned reference (the enclosing list's) */
  wf__sx_phase_t phase;
  int attempt; /* number in events and rows */
  int tries;   /* attempts made by this process */
  int64_t started_ms;
  wf__tmr_t timeout, backoff;
  /* containers */
  wf__node_t **kids; /* owned array of owned nodes (NULL entries when not started) */
  size_t nkids;
  json_t *results; /* owned: parallel/map outputs by slot */
  json_t *items;   /* owned: the array a map runs over */
  size_t next, active, finished, failures;
  int iteration;
  wf_workflow_t *sub; /* reference: the sub-workflow */
  json_t *error;      /* owned: the first failure among kids */
  /* llm */
  wf__llm_t *llm; /* owned while an attempt runs */
  /* agent (external task) */
  wf__ext_t *ext; /* owned while an attempt runs */
  /* approval */
  int64_t deadline_ms;    /* wall clock; 0 = none */
  json_t *prompt;         /* owned: the rendered approval prompt */
  base_queue_t wait_link; /* in the run's approvals while waiting */
} wf__sx_t;

/* Invariant: a run is in its engine's map from creation until released; `finished` is
 * set once its terminal event is queued, after which only the outbox drains. */
struct wf__run {
  base_map_node_t node;
  base_queue_t link;
  wf_engine_t *e; /* borrowed */
  char id[WF_RUN_ID_MAX + 1];
  char *tenant;      /* owned */
  char *topic;       /* owned */
  wf_workflow_t *wf; /* reference */
  json_t *input;     /* owned */
  json_t *ctx;       /* owned: the root context */
  json_t *stored;    /* owned: {key: row} of a resumed run; NULL otherwise */
  json_t *view;      /* owned: the document as of acknowledged events, except for
                        token text still in tbufs */
  base_map_t tbufs;  /* owned wf__tbuf_t (run_events.c) */
  uint64_t seq;      /* topic position of the document */
  char epoch[STORE_EPOCH_LEN + 1];
  int64_t created_ms;
  int resumes;
  wf__list_t *root; /* owned */
  wf__task_t start_task, release_task;
  base_queue_t outq, inflight; /* wf__ev_t */
  wf__tmr_t pub_retry;
  base_queue_t approvals; /* wf__sx_t waiting */
  base_map_t ext_tasks;   /* wf__ext_t of running agent attempts, by task id */
  base_queue_t waiters;   /* wf_run_waiter_t: called back when the run is let go */
  bool finished;
  bool quiet; /* being torn down: publish and store nothing more */
};

wf__run_t *wf__run_new(wf_engine_t *e, const char *id, const char *tenant, wf_workflow_t *wf,
                       json_t *input_take, int64_t created_ms);
void wf__run_start(wf__run_t *r); /* posts the root's start */
/* Cancels every step (not quiet: running steps end as cancelled) and finishes the run
 * with run.cancelled. */
void wf__run_cancel(wf__run_t *r);
/* Tears the run down without publishing or storing (engine free) and frees it. */
void wf__run_abandon(wf__run_t *r);
/* Calls back and frees every waiter (status 0 once all events are acknowledged) and
 * frees the run. */
void wf__run_free(wf__run_t *r);

struct wf_run_waiter {
  base_queue_t link; /* in wf__run_t.waiters */
  wf_run_settled_fn cb;
  void *ud;
};

wf__list_t *wf__list_new(wf__run_t *r, wf__node_t *parent, const wf__steps_t *steps,
                         json_t *ctx_take, const char *prefix);
void wf__node_start(wf__node_t *n);
void wf__node_cancel(wf__node_t *n);
void wf__node_free(wf__node_t *n);
/* Reports a result to the parent on a later loop turn (output and error taken). */
void wf__node_finish(wf__node_t *n, wf__res_t res, json_t *output, json_t *error);

/* The current attempt ended: ok (output and usage taken; usage may be NULL, text is
 * what streamed, may be NULL) or failed. */
void wf__sx_ok(wf__sx_t *s, json_t *output, json_t *usage);
/* cls is an error class name (docs/runs.md); retry_after_ms -1 when none; partial when
 * the attempt was interrupted after streaming output (retried only when the policy has
 * after_partial_output). Takes msg. */
void wf__sx_fail(wf__sx_t *s, const char *cls, char *msg, int64_t retry_after_ms, bool partial);
/* Writes the step row (one transaction) with updated_ms ts. Strings and JSON borrowed;
 * any may be NULL. Nothing is written for a quiet run. */
void wf__sx_save(wf__sx_t *s, const char *status, int64_t ts, const json_t *output,
                 const json_t *usage, const char *text, const json_t *extra, const json_t *error);
/* A fresh id for a step event: "<run>:<key>:<attempt>:<what>". */
char *wf__sx_event_id(const wf__sx_t *s, const char *what);
/* A context for a child list: a shallow copy of ctx with its own copy of steps. */
json_t *wf__ctx_child(const json_t *ctx);

/* ---- run_kinds.c / run_llm.c: what each kind does in one attempt ----------------- */

void wf__kind_start(wf__sx_t *s);
/* Stops whatever the attempt still runs (calls, kids, waits); quiet kids publish nothing. */
void wf__kind_stop(wf__sx_t *s);
void wf__kind_child_done(wf__sx_t *s, wf__node_t *child);
void wf__llm_start(wf__sx_t *s);
void wf__llm_stop(wf__sx_t *s);
/* The text, reasoning and tool-call fragments the current attempt streamed, for rows. */
void wf__llm_streamed(const wf__sx_t *s, const char **text, json_t **extra);
/* Whether the current llm attempt already streamed output. */
bool wf__llm_partial(const wf__sx_t *s);
/* The text the current attempt streamed (llm tokens, agent partial output), for rows and
 * events; NULL for kinds that stream nothing. Borrowed until the attempt stops. */
const char *wf__kind_text(const wf__sx_t *s);
/* Whether the current attempt already streamed output (llm or agent). */
bool wf__kind_partial(const wf__sx_t *s);
/* The step row's extra fields for the step's current state (new reference or NULL). */
json_t *wf__sx_extra(const wf__sx_t *s);
/* Decides a waiting approval. Returns 0 or -ESRCH. */
int wf__approval_decide(wf__sx_t *s, bool approve, const char *comment);

/* ---- run_agent.c: the agent kind (a task for an external agent) ------------------ */

/* Publishes the attempt's task to the coordination topic and waits for its result. */
void wf__ext_start(wf__sx_t *s);
/* Ends the attempt's task: stops watching its reply topic and, unless the run is quiet,
 * publishes task.closed there with the reason last given to wf__ext_reason (default
 * "stopped"). */
void wf__ext_stop(wf__sx_t *s);
/* Names why the running task is about to end ("timeout", "cancelled"); no-op otherwise. */
void wf__ext_reason(wf__sx_t *s, const char *reason);
const char *wf__ext_text(const wf__sx_t *s);
bool wf__ext_partial(const wf__sx_t *s);
/* {"task_id", "topic", "reply_to"} of the current task (new reference) or NULL. */
json_t *wf__ext_extra(const wf__sx_t *s);

#endif
