/* store runs, in-memory backend: the runs contract of store.h without a file.
 *
 * Owns copies of every run and step row, a map of runs by id and, per run, a map of its
 * steps by key. Listing sorts on the fly (tests and benchmarks hold few runs). Nothing
 * survives store_close. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"
#include "base/mem.h"
#include "internal.h"

typedef struct mr_step {
  base_map_node_t node; /* keyed by key */
  char *run_id, *key, *step_id, *kind, *status, *output, *usage, *text, *extra, *error;
  int attempt;
  int64_t started_ms, updated_ms;
} mr_step_t;

/* Invariant: every step in steps has run_id equal to the run's. */
typedef struct mr_run {
  base_map_node_t node; /* keyed by run_id */
  char *run_id, *tenant, *workflow, *status, *input, *output, *error, *idem_key, *state;
  int64_t created_ms, updated_ms;
  base_map_t steps; /* mr_step_t, owned */
} mr_run_t;

typedef struct mr_store {
  base_map_t runs; /* mr_run_t, owned */
} mr_store_t;

static char *dup_or_null(const char *s) {
  return s ? xstrdup(s) : NULL;
}

static void replace(char **field, const char *v) {
  free(*field);
  *field = dup_or_null(v);
}

static mr_run_t *find_run(mr_store_t *m, const char *id) {
  base_map_node_t *n = base_map_get(&m->runs, id, strlen(id));
  return n ? container_of(n, mr_run_t, node) : NULL;
}

static void step_free(mr_step_t *st) {
  free(st->run_id);
  free(st->key);
  free(st->step_id);
  free(st->kind);
  free(st->status);
  free(st->output);
  free(st->usage);
  free(st->text);
  free(st->extra);
  free(st->error);
  free(st);
}

static void run_free(mr_run_t *r) {
  base_map_iter_t it;
  for (base_map_node_t *n = base_map_first(&r->steps, &it); n; n = base_map_next(&r->steps, &it)) {
    base_map_remove(&r->steps, n);
    step_free(container_of(n, mr_step_t, node));
  }
  base_map_close(&r->steps);
  free(r->run_id);
  free(r->tenant);
  free(r->workflow);
  free(r->status);
  free(r->input);
  free(r->output);
  free(r->error);
  free(r->idem_key);
  free(r->state);
  free(r);
}

static void mr_close(void *rb) {
  mr_store_t *m = rb;
  base_map_iter_t it;
  for (base_map_node_t *n = base_map_first(&m->runs, &it); n; n = base_map_next(&m->runs, &it)) {
    base_map_remove(&m->runs, n);
    run_free(container_of(n, mr_run_t, node));
  }
  base_map_close(&m->runs);
  free(m);
}

static store_run_t run_view(const mr_run_t *r) {
  return (store_run_t){.run_id = r->run_id,
                       .tenant = r->tenant,
                       .workflow = r->workflow,
                       .status = r->status,
                       .input = r->input,
                       .output = r->output,
                       .error = r->error,
                       .idem_key = r->idem_key,
                       .state = r->state,
                       .created_ms = r->created_ms,
                       .updated_ms = r->updated_ms};
}

static int mr_create(void *rb, const store_run_t *run, char existing[STORE_RUN_ID_MAX + 1]) {
  mr_store_t *m = rb;
  if (run->idem_key) {
    base_map_iter_t it;
    for (base_map_node_t *n = base_map_first(&m->runs, &it); n; n = base_map_next(&m->runs, &it)) {
      mr_run_t *r = container_of(n, mr_run_t, node);
      if (r->idem_key && !strcmp(r->idem_key, run->idem_key) && !strcmp(r->tenant, run->tenant)) {
        strcpy(existing, r->run_id);
        return -EEXIST;
      }
    }
  }
  if (find_run(m, run->run_id)) {
    strcpy(existing, run->run_id);
    return -EEXIST;
  }
  mr_run_t *r = xcalloc(1, sizeof *r);
  r->run_id = xstrdup(run->run_id);
  r->tenant = xstrdup(run->tenant);
  r->workflow = xstrdup(run->workflow);
  r->status = xstrdup(run->status);
  r->input = dup_or_null(run->input);
  r->output = dup_or_null(run->output);
  r->error = dup_or_null(run->error);
  r->idem_key = dup_or_null(run->idem_key);
  r->state = dup_or_null(run->state);
  r->created_ms = run->created_ms;
  r->updated_ms = run->updated_ms;
  base_map_init(&r->steps);
  base_map_insert(&m->runs, &r->node, r->run_id, strlen(r->run_id));
  return 0;
}

static void put_step(mr_run_t *r, const store_step_t *in) {
  base_map_node_t *n = base_map_get(&r->steps, in->key, strlen(in->key));
  if (n) {
    base_map_remove(&r->steps, n);
    step_free(container_of(n, mr_step_t, node));
  }
  mr_step_t *st = xcalloc(1, sizeof *st);
  st->run_id = xstrdup(in->run_id);
  st->key = xstrdup(in->key);
  st->step_id = xstrdup(in->step_id);
  st->kind = xstrdup(in->kind);
  st->status = xstrdup(in->status);
  st->output = dup_or_null(in->output);
  st->usage = dup_or_null(in->usage);
  st->text = dup_or_null(in->text);
  st->extra = dup_or_null(in->extra);
  st->error = dup_or_null(in->error);
  st->attempt = in->attempt;
  st->started_ms = in->started_ms;
  st->updated_ms = in->updated_ms;
  base_map_insert(&r->steps, &st->node, st->key, strlen(st->key));
}

static int mr_save(void *rb, const store_run_t *run, const store_step_t *steps, size_t n) {
  mr_store_t *m = rb;
  /* Check everything first: the save is all or nothing. */
  if (run && !find_run(m, run->run_id)) return -ENOENT;
  for (size_t i = 0; i < n; i++)
    if (!find_run(m, steps[i].run_id)) return -ENOENT;
  if (run) {
    mr_run_t *r = find_run(m, run->run_id);
    replace(&r->status, run->status);
    replace(&r->output, run->output);
    replace(&r->error, run->error);
    replace(&r->state, run->state);
    r->updated_ms = run->updated_ms;
  }
  for (size_t i = 0; i < n; i++) put_step(find_run(m, steps[i].run_id), &steps[i]);
  return 0;
}

static int mr_get(void *rb, const char *run_id, store_run_cb cb, void *ud) {
  mr_run_t *r = find_run(rb, run_id);
  if (!r) return -ENOENT;
  store_run_t v = run_view(r);
  int rc = cb(ud, &v);
  return rc;
}

static bool matches(const mr_run_t *r, const store_run_filter_t *f) {
  if (f->tenant && strcmp(f->tenant, r->tenant)) return false;
  if (f->workflow && strcmp(f->workflow, r->workflow)) return false;
  if (f->status && strcmp(f->status, r->status)) return false;
  if (f->unfinished && store__run_status_final(r->status)) return false;
  return true;
}

static int newest_first(const void *a, const void *b) {
  const mr_run_t *x = *(mr_run_t *const *)a, *y = *(mr_run_t *const *)b;
  if (x->created_ms != y->created_ms) return x->created_ms > y->created_ms ? -1 : 1;
  return -strcmp(x->run_id, y->run_id);
}

static int mr_list(void *rb, const store_run_filter_t *f, store_run_cb cb, void *ud) {
  mr_store_t *m = rb;
  mr_run_t **v = xmalloc((m->runs.count + 1) * sizeof *v);
  size_t n = 0;
  base_map_iter_t it;
  for (base_map_node_t *nd = base_map_first(&m->runs, &it); nd; nd = base_map_next(&m->runs, &it)) {
    mr_run_t *r = container_of(nd, mr_run_t, node);
    if (matches(r, f)) v[n++] = r;
  }
  qsort(v, n, sizeof *v, newest_first);
  int rc = 0;
  for (size_t i = 0; i < n && (f->limit == 0 || i < f->limit) && rc == 0; i++) {
    store_run_t view = run_view(v[i]);
    rc = cb(ud, &view);
  }
  free(v);
  return rc;
}

static int by_start(const void *a, const void *b) {
  const mr_step_t *x = *(mr_step_t *const *)a, *y = *(mr_step_t *const *)b;
  if (x->started_ms != y->started_ms) return x->started_ms < y->started_ms ? -1 : 1;
  return strcmp(x->key, y->key);
}

static int mr_steps(void *rb, const char *run_id, store_step_cb cb, void *ud) {
  mr_run_t *r = find_run(rb, run_id);
  if (!r) return -ENOENT;
  mr_step_t **v = xmalloc((r->steps.count + 1) * sizeof *v);
  size_t n = 0;
  base_map_iter_t it;
  for (base_map_node_t *nd = base_map_first(&r->steps, &it); nd; nd = base_map_next(&r->steps, &it))
    v[n++] = container_of(nd, mr_step_t, node);
  qsort(v, n, sizeof *v, by_start);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const mr_step_t *st = v[i];
    store_step_t view = {.run_id = st->run_id,
                         .key = st->key,
                         .step_id = st->step_id,
                         .kind = st->kind,
                         .attempt = st->attempt,
                         .status = st->status,
                         .output = st->output,
                         .usage = st->usage,
                         .text = st->text,
                         .extra = st->extra,
                         .error = st->error,
                         .started_ms = st->started_ms,
                         .updated_ms = st->updated_ms};
    rc = cb(ud, &view);
  }
  free(v);
  return rc;
}

static int mr_del(void *rb, const char *run_id) {
  mr_store_t *m = rb;
  mr_run_t *r = find_run(m, run_id);
  if (!r) return -ENOENT;
  base_map_remove(&m->runs, &r->node);
  run_free(r);
  return 0;
}

static const store_runs_ops_t mr_ops = {
    .close = mr_close,
    .create = mr_create,
    .save = mr_save,
    .get = mr_get,
    .list = mr_list,
    .steps = mr_steps,
    .del = mr_del,
};

int store__runs_memory_open(const store_runs_ops_t **ops, void **rb) {
  mr_store_t *m = xcalloc(1, sizeof *m);
  base_map_init(&m->runs);
  *ops = &mr_ops;
  *rb = m;
  return 0;
}
