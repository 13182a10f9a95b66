/* store runs front end: the public store_run_* functions of store.h.
 *
 * Owns the argument checks every runs backend relies on (see internal.h) and dispatches
 * to the runs ops table store.c opened beside the event log. Owns no storage: that is
 * runs_sqlite.c and runs_memory.c. */
#include <errno.h>
#include <string.h>

#include "internal.h"

bool store__run_status_final(const char *status) {
  return status && (!strcmp(status, "completed") || !strcmp(status, "failed") ||
                    !strcmp(status, "cancelled"));
}

static bool str_ok(const char *s, size_t max) {
  if (!s || !s[0]) return false;
  return strnlen(s, max + 1) <= max;
}

static bool run_id_ok(const char *id) {
  return str_ok(id, STORE_RUN_ID_MAX);
}

static bool step_ok(const store_step_t *st) {
  return run_id_ok(st->run_id) && str_ok(st->key, STORE_STEP_KEY_MAX) && st->step_id && st->kind &&
         st->status && st->status[0] && st->attempt >= 1;
}

int store_run_create(store_t *s, const store_run_t *run, char existing[STORE_RUN_ID_MAX + 1]) {
  if (!s || !run || !run_id_ok(run->run_id) || !run->tenant || !run->tenant[0] || !run->workflow ||
      !run->workflow[0] || !run->status || !run->status[0])
    return -EINVAL;
  if (run->idem_key && !run->idem_key[0]) return -EINVAL;
  void *rb;
  const store_runs_ops_t *ops = store__runs(s, &rb);
  char scratch[STORE_RUN_ID_MAX + 1];
  store__runs_lock(s);
  int rc = ops->create(rb, run, existing ? existing : scratch);
  store__runs_unlock(s);
  return rc;
}

int store_run_save(store_t *s, const store_run_t *run, const store_step_t *steps, size_t n) {
  if (!s || (!run && n == 0) || (n > 0 && !steps)) return -EINVAL;
  if (run && (!run_id_ok(run->run_id) || !run->status || !run->status[0])) return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!step_ok(&steps[i])) return -EINVAL;
  void *rb;
  const store_runs_ops_t *ops = store__runs(s, &rb);
  store__runs_lock(s);
  int rc = ops->save(rb, run, steps, n);
  store__runs_unlock(s);
  return rc;
}

int store_run_get(store_t *s, const char *run_id, store_run_cb cb, void *ud) {
  if (!s || !run_id_ok(run_id) || !cb) return -EINVAL;
  void *rb;
  const store_runs_ops_t *ops = store__runs(s, &rb);
  store__runs_lock(s);
  int rc = ops->get(rb, run_id, cb, ud);
  store__runs_unlock(s);
  return rc;
}

int store_run_list(store_t *s, const store_run_filter_t *f, store_run_cb cb, void *ud) {
  if (!s || !cb) return -EINVAL;
  static const store_run_filter_t all = {0};
  void *rb;
  const store_runs_ops_t *ops = store__runs(s, &rb);
  store__runs_lock(s);
  int rc = ops->list(rb, f ? f : &all, cb, ud);
  store__runs_unlock(s);
  return rc;
}

int store_step_list(store_t *s, const char *run_id, store_step_cb cb, void *ud) {
  if (!s || !run_id_ok(run_id) || !cb) return -EINVAL;
  void *rb;
  const store_runs_ops_t *ops = store__runs(s, &rb);
  store__runs_lock(s);
  int rc = ops->steps(rb, run_id, cb, ud);
  store__runs_unlock(s);
  return rc;
}

int store_run_delete(store_t *s, const char *run_id) {
  if (!s || !run_id_ok(run_id)) return -EINVAL;
  void *rb;
  const store_runs_ops_t *ops = store__runs(s, &rb);
  store__runs_lock(s);
  int rc = ops->del(rb, run_id);
  store__runs_unlock(s);
  return rc;
}
