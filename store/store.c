/* store front end: the public functions of store.h, dispatching to a backend ops table.
 *
 * Owns the store_t (ops, backend state, statistics), the batch state machine, the lock
 * that makes every public call safe from several threads (each call holds it for its
 * whole duration, store_batch_write across begin..append..commit, so that no other
 * thread's call lands inside that transaction) and the argument checks every backend
 * relies on (see internal.h). Owns no storage: that is
 * sqlite.c and memory.c (and runs_*.c for runs, whose entry points are in runs.c, and
 * groups_*.c for consumer groups, entry points in groups.c). Also
 * the epoch generator the backends share. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/mem.h"
#include "internal.h"

/* Invariant: in_batch is true exactly while the backend holds an open batch;
 * batch_events counts the appends of that batch. Every field but the backends' tables,
 * stats_mu and snap is read and written under lock (store__lock). snap is read and
 * written under stats_mu: the figures of store_stats_get as of the last time they were
 * taken under lock (the end of each commit and retention slice, and each get that found
 * the lock free). */
struct store {
  pthread_mutex_t lock;
  /* A step-by-step batch (store_batch_begin) is open: set and cleared under lock, read
   * without it by store_read, which then always takes the lock, so that the batch's
   * appends are seen and a reader of the backend is never left waiting on that batch. */
  _Atomic bool stepwise;
  pthread_mutex_t stats_mu;
  store_stats_t snap;
  const store_ops_t *ops; /* borrowed: a backend's static table */
  void *be;               /* owned, freed through ops->close */
  bool in_batch;
  uint64_t batch_events;
  store_stats_t stats;
  /* The runs' own lock: their SQLite backend has a file of its own (runs_sqlite.c), so
   * run calls never wait for the event log's batches under lock. The groups' the same. */
  pthread_mutex_t runs_lock;
  const store_runs_ops_t *runs_ops; /* borrowed: the runs backend's static table */
  void *runs_be;                    /* owned, freed through runs_ops->close */
  pthread_mutex_t groups_lock; /* the groups' own, like runs_lock */
  const store_groups_ops_t *groups_ops; /* borrowed: the groups backend's static table */
  void *groups_be;                      /* owned, freed through groups_ops->close */
  /* store_hold_for_test: its thread (joined by the next hold or by store_close). */
  pthread_t hold_thread;
  bool hold_joinable;
  _Atomic bool hold_active;
  _Atomic bool hold_holding; /* the thread holds both locks */
  uint32_t hold_ms;
};

int store__epoch_new(char out[STORE_EPOCH_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char raw[STORE_EPOCH_LEN / 2];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -EIO;
    got += (size_t)n;
  }
  for (size_t i = 0; i < sizeof raw; i++) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 15];
  }
  out[STORE_EPOCH_LEN] = '\0';
  return 0;
}

static int store_wrap(const store_ops_t *ops, void *be, const store_runs_ops_t *runs_ops,
                      void *runs_be, store_t **out) {
  store_t *s = xcalloc(1, sizeof *s);
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->stats_mu, NULL);
  pthread_mutex_init(&s->runs_lock, NULL);
  pthread_mutex_init(&s->groups_lock, NULL);
  s->ops = ops;
  s->be = be;
  s->runs_ops = runs_ops;
  s->runs_be = runs_be;
  *out = s;
  return 0;
}

const store_groups_ops_t *store__groups(store_t *s, void **gb) {
  *gb = s->groups_be;
  return s->groups_ops;
}

const store_runs_ops_t *store__runs(store_t *s, void **rb) {
  *rb = s->runs_be;
  return s->runs_ops;
}

void store__runs_lock(store_t *s) {
  pthread_mutex_lock(&s->runs_lock);
}

void store__runs_unlock(store_t *s) {
  pthread_mutex_unlock(&s->runs_lock);
}

void store__groups_lock(store_t *s) {
  pthread_mutex_lock(&s->groups_lock);
}

void store__groups_unlock(store_t *s) {
  pthread_mutex_unlock(&s->groups_lock);
}

void *store__backend(store_t *s) {
  return s->be;
}

void store__lock(store_t *s) {
  pthread_mutex_lock(&s->lock);
}

void store__unlock(store_t *s) {
  pthread_mutex_unlock(&s->lock);
}

int store_open_sqlite(const store_options_t *opts, store_t **out) {
  if (!opts || !opts->path || !opts->path[0] || !out) return -EINVAL;
  const store_ops_t *ops;
  void *be;
  int rc = store__sqlite_open(opts, &ops, &be);
  if (rc < 0) return rc;
  const store_runs_ops_t *rops;
  void *rb;
  rc = store__runs_sqlite_open(opts, &rops, &rb);
  if (rc < 0) {
    ops->close(be);
    return rc;
  }
  const store_groups_ops_t *gops;
  void *gb;
  rc = store__groups_sqlite_open(opts, &gops, &gb);
  if (rc < 0) {
    rops->close(rb);
    ops->close(be);
    return rc;
  }
  rc = store_wrap(ops, be, rops, rb, out);
  (*out)->groups_ops = gops;
  (*out)->groups_be = gb;
  return rc;
}

int store_open_memory(store_t **out) {
  if (!out) return -EINVAL;
  const store_ops_t *ops;
  void *be;
  int rc = store__memory_open(&ops, &be);
  if (rc < 0) return rc;
  const store_runs_ops_t *rops;
  void *rb;
  rc = store__runs_memory_open(&rops, &rb);
  if (rc < 0) {
    ops->close(be);
    return rc;
  }
  const store_groups_ops_t *gops;
  void *gb;
  rc = store__groups_memory_open(&gops, &gb);
  if (rc < 0) {
    rops->close(rb);
    ops->close(be);
    return rc;
  }
  rc = store_wrap(ops, be, rops, rb, out);
  (*out)->groups_ops = gops;
  (*out)->groups_be = gb;
  return rc;
}

/* The batch is over (committed, rolled back, or failed): call under lock. */
static void batch_ended_locked(store_t *s) {
  s->in_batch = false;
  atomic_store(&s->stepwise, false);
}

static void batch_rollback_locked(store_t *s) {
  if (!s->in_batch) return;
  s->ops->batch_rollback(s->be);
  batch_ended_locked(s);
}

void store_close(store_t *s) {
  if (!s) return;
  if (s->hold_joinable) pthread_join(s->hold_thread, NULL);
  batch_rollback_locked(s);
  s->groups_ops->close(s->groups_be);
  s->runs_ops->close(s->runs_be);
  s->ops->close(s->be);
  pthread_mutex_destroy(&s->stats_mu);
  pthread_mutex_destroy(&s->runs_lock);
  pthread_mutex_destroy(&s->groups_lock);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

static bool store_name_ok(const char *topic) {
  return topic && topic[0];
}

int store_topic_get(store_t *s, const char *topic, store_topic_t *out) {
  if (!s || !store_name_ok(topic) || !out) return -EINVAL;
  store__lock(s);
  int rc = s->ops->topic_get(s->be, topic, out);
  store__unlock(s);
  return rc;
}

/* Whether a read may go to the backend's reader connection: it has one, no step-by-step
 * batch is open, and another thread holds the lock. Returns false with the lock taken
 * otherwise (the caller reads on the main connection, then unlocks). */
static bool store_reader_instead(store_t *s, bool has_reader) {
  if (!has_reader || atomic_load(&s->stepwise)) {
    store__lock(s);
    return false;
  }
  return pthread_mutex_trylock(&s->lock) != 0;
}

int store_topic_lookup(store_t *s, const char *topic, store_topic_t *out) {
  if (!s || !store_name_ok(topic) || !out) return -EINVAL;
  if (store_reader_instead(s, s->ops->topic_get_committed != NULL))
    return s->ops->topic_get_committed(s->be, topic, out);
  int rc = s->ops->topic_get(s->be, topic, out);
  store__unlock(s);
  return rc;
}

int store_topic_reserve(store_t *s, store_topic_t *out) {
  if (!s || !out) return -EINVAL;
  if (!s->ops->topic_reserve) return -ENOTSUP;
  memset(out, 0, sizeof *out);
  int rc = store__epoch_new(out->epoch);
  if (rc == 0) rc = s->ops->topic_reserve(s->be, &out->topic_id);
  out->first_seq = 1;
  return rc;
}

int store_topic_ensure(store_t *s, const char *topic, store_topic_t *out) {
  if (!s || !store_name_ok(topic) || !out) return -EINVAL;
  char epoch[STORE_EPOCH_LEN + 1];
  store__lock(s);
  int rc = s->ops->topic_get(s->be, topic, out);
  if (rc != -ENOENT) goto out;
  rc = -EBUSY;
  if (s->in_batch) goto out;
  rc = store__epoch_new(epoch);
  if (rc < 0) goto out;
  rc = s->ops->topic_create(s->be, topic, epoch, out);
out:
  store__unlock(s);
  return rc;
}

int store_topic_reset(store_t *s, const char *topic, store_topic_t *out) {
  if (!s || !store_name_ok(topic) || !out) return -EINVAL;
  char epoch[STORE_EPOCH_LEN + 1];
  int rc = store__epoch_new(epoch);
  if (rc < 0) return rc;
  store__lock(s);
  rc = s->in_batch ? -EBUSY : s->ops->topic_reset(s->be, topic, epoch, out);
  store__unlock(s);
  return rc;
}

int store_topic_list(store_t *s, const char *prefix, const char *after, size_t limit, store_topic_cb cb,
                     void *ud) {
  if (!s || !cb) return -EINVAL;
  if (!prefix) prefix = "";
  /* The names after `after`: from the least string above it. A byte 1 sorts below every
   * byte a name may hold, so after + "\x01" is that string for any valid name. */
  char *from = NULL;
  if (after && strcmp(after, prefix) >= 0) {
    size_t n = strlen(after);
    from = xmalloc(n + 2);
    memcpy(from, after, n);
    from[n] = '\x01';
    from[n + 1] = '\0';
  }
  const char *start = from ? from : prefix;
  int rc;
  if (store_reader_instead(s, s->ops->topic_list_committed != NULL)) {
    rc = s->ops->topic_list_committed(s->be, prefix, start, limit, cb, ud);
  } else {
    rc = s->ops->topic_list(s->be, prefix, start, limit, cb, ud);
    store__unlock(s);
  }
  free(from);
  return rc;
}

static int batch_begin_locked(store_t *s) {
  if (s->in_batch) return -EBUSY;
  int rc = s->ops->batch_begin(s->be);
  if (rc < 0) return rc;
  s->in_batch = true;
  s->batch_events = 0;
  return 0;
}

static bool store_event_ok(const store_event_t *ev) {
  return ev && ev->seq > 0 && ev->seq <= INT64_MAX && (ev->data || ev->data_len == 0);
}

static int batch_append_locked(store_t *s, const store_event_t *ev) {
  if (!s->in_batch) return -EBUSY;
  if (!store_event_ok(ev)) {
    batch_rollback_locked(s);
    return -EINVAL;
  }
  int rc = s->ops->batch_append(s->be, ev);
  if (rc < 0) {
    batch_ended_locked(s); /* the backend rolled back already */
    return rc;
  }
  s->batch_events++;
  return 0;
}

static uint64_t store_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Takes the figures (the store's and the backend's) into snap; call under lock. */
static void stats_take_locked(store_t *s) {
  store_stats_t now = s->stats;
  if (s->ops->stats) s->ops->stats(s->be, &now);
  pthread_mutex_lock(&s->stats_mu);
  s->snap = now;
  pthread_mutex_unlock(&s->stats_mu);
}

/* t0: when the batch began (commit_us_total counts the whole transaction). */
static int batch_commit_locked(store_t *s, uint64_t t0) {
  if (!s->in_batch) return -EBUSY;
  int rc = s->ops->batch_commit(s->be);
  batch_ended_locked(s);
  if (rc < 0) return rc;
  s->stats.commits++;
  s->stats.events_appended += s->batch_events;
  s->stats.commit_us_total += store_now_us() - t0;
  stats_take_locked(s);
  return 0;
}

int store_batch_begin(store_t *s) {
  if (!s) return -EINVAL;
  store__lock(s);
  int rc = batch_begin_locked(s);
  if (rc == 0) atomic_store(&s->stepwise, true);
  store__unlock(s);
  return rc;
}

int store_batch_append(store_t *s, const store_event_t *ev) {
  if (!s) return -EINVAL;
  store__lock(s);
  int rc = batch_append_locked(s, ev);
  store__unlock(s);
  return rc;
}

int store_batch_commit(store_t *s) {
  if (!s) return -EINVAL;
  store__lock(s);
  int rc = batch_commit_locked(s, store_now_us());
  store__unlock(s);
  return rc;
}

void store_batch_rollback(store_t *s) {
  if (!s) return;
  store__lock(s);
  batch_rollback_locked(s);
  store__unlock(s);
}

static bool store_new_topic_ok(const store_new_topic_t *t) {
  return store_name_ok(t->name) && t->topic_id > 0 && t->epoch && strlen(t->epoch) == STORE_EPOCH_LEN;
}

static int batch_write_args(store_t *s, const store_new_topic_t *tops, size_t nt, const store_event_t *evs,
                            size_t n) {
  if (!s || (nt && !tops) || (n && !evs) || nt + n == 0) return -EINVAL;
  if (nt && !s->ops->batch_topic) return -ENOTSUP;
  for (size_t i = 0; i < nt; i++)
    if (!store_new_topic_ok(&tops[i])) return -EINVAL;
  return 0;
}

/* The batch of store_batch_write_topics, under the lock the caller took; unlocks. */
static int batch_write_locked(store_t *s, const store_new_topic_t *tops, size_t nt, const store_event_t *evs,
                              size_t n, uint64_t t0) {
  int rc = batch_begin_locked(s);
  if (rc == 0) {
    for (size_t i = 0; rc == 0 && i < nt; i++) {
      rc = s->ops->batch_topic(s->be, &tops[i]);
      if (rc < 0) batch_ended_locked(s); /* the backend rolled back */
    }
    for (size_t i = 0; rc == 0 && i < n; i++) rc = batch_append_locked(s, &evs[i]);
    if (rc == 0) rc = batch_commit_locked(s, t0);
    else batch_rollback_locked(s); /* nothing left to undo when the backend did it already */
  }
  store__unlock(s);
  return rc;
}

int store_batch_write_topics(store_t *s, const store_new_topic_t *tops, size_t nt, const store_event_t *evs,
                             size_t n) {
  int rc = batch_write_args(s, tops, nt, evs, n);
  if (rc < 0) return rc;
  uint64_t t0 = store_now_us();
  store__lock(s);
  return batch_write_locked(s, tops, nt, evs, n, t0);
}

int store_batch_write_topics_nowait(store_t *s, const store_new_topic_t *tops, size_t nt,
                                    const store_event_t *evs, size_t n) {
  int rc = batch_write_args(s, tops, nt, evs, n);
  if (rc < 0) return rc;
  uint64_t t0 = store_now_us();
  if (pthread_mutex_trylock(&s->lock) != 0) return -EAGAIN;
  if (atomic_load(&s->stepwise) || (s->ops->write_would_wait && s->ops->write_would_wait(s->be))) {
    store__unlock(s);
    return -EAGAIN;
  }
  return batch_write_locked(s, tops, nt, evs, n, t0);
}

int store_batch_write(store_t *s, const store_event_t *evs, size_t n) {
  if (!s || !evs || n == 0) return -EINVAL;
  return store_batch_write_topics(s, NULL, 0, evs, n);
}

/* store_read, and with wait false store_read_nowait. */
static int read_events(store_t *s, int64_t topic_id, uint64_t after_seq, size_t limit, store_event_cb cb,
                       void *ud, bool wait) {
  if (!s || !cb || after_seq > INT64_MAX) return -EINVAL;
  /* While another thread holds the store (the commit thread: a commit, a retention slice,
   * a WAL settle, tens of ms at the publish ceiling), a backend with a reader serves the
   * read from what is committed instead of making the caller (the event loop) wait. Not
   * while a step-by-step batch is open (its appends must be seen): then the read waits
   * for the lock as every other call does. */
  if (store_reader_instead(s, s->ops->read_committed != NULL))
    return s->ops->read_committed(s->be, topic_id, after_seq, limit, cb, ud, wait);
  int rc = s->ops->read(s->be, topic_id, after_seq, limit, cb, ud);
  store__unlock(s);
  return rc;
}

int store_read(store_t *s, int64_t topic_id, uint64_t after_seq, size_t limit, store_event_cb cb,
               void *ud) {
  return read_events(s, topic_id, after_seq, limit, cb, ud, true);
}

int store_read_nowait(store_t *s, int64_t topic_id, uint64_t after_seq, size_t limit,
                      store_event_cb cb, void *ud) {
  return read_events(s, topic_id, after_seq, limit, cb, ud, false);
}

bool store_reader_busy(store_t *s) {
  return s && s->ops->reader_busy && s->ops->reader_busy(s->be);
}

int store_dedupe_find(store_t *s, int64_t topic_id, const char *id, int64_t min_ts_ms,
                      uint64_t *seq_out) {
  if (!s || !id || !seq_out) return -EINVAL;
  store__lock(s);
  int rc = s->ops->dedupe_find(s->be, topic_id, id, min_ts_ms, seq_out);
  store__unlock(s);
  return rc;
}

int store_dedupe_list(store_t *s, int64_t topic_id, int64_t min_ts_ms, store_dedupe_cb cb,
                      void *ud) {
  if (!s || !cb) return -EINVAL;
  if (store_reader_instead(s, s->ops->dedupe_list_committed != NULL))
    return s->ops->dedupe_list_committed(s->be, topic_id, min_ts_ms, cb, ud);
  int rc = s->ops->dedupe_list(s->be, topic_id, min_ts_ms, cb, ud);
  store__unlock(s);
  return rc;
}

int store_retention_run(store_t *s, uint64_t max_events, int64_t min_ts_ms,
                        int64_t dedupe_min_ts_ms, size_t budget, bool *more) {
  if (!s || !more || budget == 0) return -EINVAL;
  const store_retention_t r = {.max_events = max_events,
                               .min_ts_ms = min_ts_ms,
                               .dedupe_min_ts_ms = dedupe_min_ts_ms,
                               .budget = budget};
  uint64_t deleted = 0;
  *more = false;
  store__lock(s);
  int rc = -EBUSY;
  if (!s->in_batch) {
    uint64_t t0 = store_now_us();
    rc = s->ops->retention_run(s->be, &r, &deleted, more);
    s->stats.events_deleted += deleted;
    s->stats.retention_slices++;
    s->stats.retention_us_total += store_now_us() - t0;
    stats_take_locked(s);
  }
  store__unlock(s);
  return rc;
}

void store_stats_get(const store_t *s, store_stats_t *out) {
  store_t *m = (store_t *)s; /* the locks and snap are the mutable part of a const store */
  /* Never waits for the lock: a commit, retention slice or WAL settle of another thread
   * may hold it for tens of ms, and a metrics scrape on the event loop would wait as long. */
  if (pthread_mutex_trylock(&m->lock) == 0) {
    stats_take_locked(m);
    store__unlock(m);
  }
  pthread_mutex_lock(&m->stats_mu);
  *out = m->snap;
  pthread_mutex_unlock(&m->stats_mu);
}

void store_part_stats_get(store_t *s, store_part_t part, store_stats_t *out) {
  memset(out, 0, sizeof *out);
  if (!s) return;
  void *b;
  if (part == STORE_PART_RUNS) {
    const store_runs_ops_t *ops = store__runs(s, &b);
    if (!ops->wal_stats) return;
    store__runs_lock(s);
    ops->wal_stats(b, out);
    store__runs_unlock(s);
  } else if (part == STORE_PART_GROUPS) {
    const store_groups_ops_t *ops = store__groups(s, &b);
    if (!ops->wal_stats) return;
    store__groups_lock(s);
    ops->wal_stats(b, out);
    store__groups_unlock(s);
  }
}

static void *hold_main(void *arg) {
  store_t *s = arg;
  pthread_mutex_t *reader = s->ops->reader_lock ? s->ops->reader_lock(s->be) : NULL;
  store__lock(s);
  if (reader) pthread_mutex_lock(reader);
  atomic_store(&s->hold_holding, true);
  struct timespec ts = {.tv_sec = s->hold_ms / 1000, .tv_nsec = (long)(s->hold_ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  atomic_store(&s->hold_holding, false);
  if (reader) pthread_mutex_unlock(reader);
  store__unlock(s);
  atomic_store(&s->hold_active, false);
  return NULL;
}

int store_hold_for_test(store_t *s, uint32_t ms) {
  if (!s || ms == 0 || ms > 10000) return -EINVAL;
  if (atomic_load(&s->hold_active)) return -EBUSY;
  if (s->hold_joinable) pthread_join(s->hold_thread, NULL); /* the last one, ended */
  s->hold_joinable = false;
  s->hold_ms = ms;
  atomic_store(&s->hold_active, true);
  int rc = pthread_create(&s->hold_thread, NULL, hold_main, s);
  if (rc != 0) {
    atomic_store(&s->hold_active, false);
    return -rc;
  }
  s->hold_joinable = true;
  /* Back only once the locks are held, so that what the caller does next meets them. */
  while (!atomic_load(&s->hold_holding) && atomic_load(&s->hold_active)) {
    struct timespec ms1 = {.tv_nsec = 1000000L};
    nanosleep(&ms1, NULL);
  }
  return 0;
}
