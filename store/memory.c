/* store in-memory backend: the contract of store.h without a disk, for upper-layer tests.
 *
 * Owns copies of every topic, event and idempotency key in plain arrays and a chained
 * hash per topic; nothing survives store_close. Like the SQLite connection, reads inside
 * an open batch see its appends, while head_seq moves only at commit; a rollback
 * truncates the touched topics back to their committed head and replays an undo log for
 * the idempotency keys. Retention follows the same slicing rules as sqlite.c so that one
 * contract suite runs against both.
 *
 * Invariants: by_id[i]->topic_id == i + 1; by_name is by_id sorted by strcmp (bytewise,
 * as SQLite's BINARY collation); a topic's ev[ev_off + i] has seq first_seq + i. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

typedef struct mem_event {
  uint64_t seq;
  int64_t ts_ms;
  char *id;   /* owned, may be NULL */
  char *type; /* owned, may be NULL */
  char *data; /* owned, may be NULL; data_len bytes plus a NUL */
  size_t data_len;
  int lane;
} mem_event_t;

typedef struct mem_key {
  struct mem_key *next; /* owned: the rest of the bucket's chain */
  char *id;             /* owned */
  uint64_t seq;
  int64_t ts_ms;
} mem_key_t;

typedef struct mem_topic {
  char *name; /* owned */
  int64_t topic_id;
  char epoch[STORE_EPOCH_LEN + 1];
  uint64_t head_seq, first_seq; /* as committed */
  mem_event_t *ev;              /* owned; live entries are ev[ev_off .. ev_off + ev_len) */
  size_t ev_off, ev_len, ev_cap;
  mem_key_t **buckets; /* owned; nbuckets is 0 or a power of two */
  size_t nbuckets, nkeys;
  uint64_t batch_head; /* valid while touched: head after the open batch's appends */
  bool touched;
} mem_topic_t;

/* How to undo one idempotency key write of the open batch. */
typedef struct mem_undo {
  mem_topic_t *t; /* borrowed */
  char *id;       /* owned */
  bool had_old;
  uint64_t old_seq;
  int64_t old_ts_ms;
} mem_undo_t;

typedef struct mem_store {
  mem_topic_t **by_id;   /* owned topics */
  mem_topic_t **by_name; /* borrowed, sorted */
  size_t ntopics, topics_cap;
  mem_topic_t **touched; /* borrowed; topics appended to by the open batch */
  size_t ntouched, touched_cap;
  mem_undo_t *undo; /* owned */
  size_t nundo, undo_cap;
  int64_t retention_cursor; /* topics with id <= this are done in the current pass */
} mem_store_t;

#define MEM_GROW(arr, n, cap)                         \
  do {                                                \
    if ((n) == (cap)) {                               \
      (cap) = (cap) ? 2 * (cap) : 8;                  \
      (arr) = xrealloc((arr), (cap) * sizeof *(arr)); \
    }                                                 \
  } while (0)

/* ---- idempotency keys ---- */

static size_t mem_hash(const char *s) {
  size_t h = 1469598103934665603u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

/* The link that points at id's entry, or at the NULL ending its bucket. */
static mem_key_t **mem_key_link(mem_topic_t *t, const char *id) {
  mem_key_t **link = &t->buckets[mem_hash(id) & (t->nbuckets - 1)];
  while (*link && strcmp((*link)->id, id) != 0) link = &(*link)->next;
  return link;
}

static mem_key_t *mem_key_find(mem_topic_t *t, const char *id) {
  return t->nbuckets ? *mem_key_link(t, id) : NULL;
}

static void mem_keys_rehash(mem_topic_t *t) {
  size_t n = t->nbuckets ? 2 * t->nbuckets : 16;
  mem_key_t **b = xcalloc(n, sizeof *b);
  for (size_t i = 0; i < t->nbuckets; i++) {
    for (mem_key_t *k = t->buckets[i], *next; k; k = next) {
      next = k->next;
      size_t j = mem_hash(k->id) & (n - 1);
      k->next = b[j];
      b[j] = k;
    }
  }
  free(t->buckets);
  t->buckets = b;
  t->nbuckets = n;
}

static void mem_key_set(mem_topic_t *t, const char *id, uint64_t seq, int64_t ts_ms) {
  if (t->nkeys >= t->nbuckets) mem_keys_rehash(t);
  mem_key_t **link = mem_key_link(t, id);
  if (!*link) {
    *link = xcalloc(1, sizeof **link);
    (*link)->id = xstrdup(id);
    t->nkeys++;
  }
  (*link)->seq = seq;
  (*link)->ts_ms = ts_ms;
}

static void mem_key_unlink(mem_topic_t *t, mem_key_t **link) {
  mem_key_t *k = *link;
  *link = k->next;
  free(k->id);
  free(k);
  t->nkeys--;
}

static void mem_keys_free(mem_topic_t *t) {
  for (size_t i = 0; i < t->nbuckets; i++)
    while (t->buckets[i]) mem_key_unlink(t, &t->buckets[i]);
  free(t->buckets);
  t->buckets = NULL;
  t->nbuckets = 0;
}

/* ---- events ---- */

static void mem_event_free(mem_event_t *e) {
  free(e->id);
  free(e->type);
  free(e->data);
}

/* Frees the newest events until only n are live. */
static void mem_events_truncate(mem_topic_t *t, size_t n) {
  while (t->ev_len > n) mem_event_free(&t->ev[t->ev_off + --t->ev_len]);
}

/* Frees the n oldest live events; compacts when the dead prefix outgrows the rest. */
static void mem_events_drop_front(mem_topic_t *t, size_t n) {
  for (size_t i = 0; i < n; i++) mem_event_free(&t->ev[t->ev_off + i]);
  t->ev_off += n;
  t->ev_len -= n;
  if (t->ev_len == 0) {
    t->ev_off = 0;
  } else if (t->ev_off > t->ev_len) {
    memmove(t->ev, t->ev + t->ev_off, t->ev_len * sizeof *t->ev);
    t->ev_off = 0;
  }
}

static void mem_event_push(mem_topic_t *t, const store_event_t *ev) {
  if (t->ev_off + t->ev_len == t->ev_cap) {
    t->ev_cap = t->ev_cap ? 2 * t->ev_cap : 16;
    t->ev = xrealloc(t->ev, t->ev_cap * sizeof *t->ev);
  }
  mem_event_t *e = &t->ev[t->ev_off + t->ev_len++];
  *e = (mem_event_t){.seq = ev->seq,
                     .ts_ms = ev->ts_ms,
                     .id = ev->id ? xstrdup(ev->id) : NULL,
                     .type = ev->type ? xstrdup(ev->type) : NULL,
                     .data = NULL,
                     .data_len = ev->data_len,
                     .lane = ev->lane};
  if (ev->data) { /* a copy of data_len bytes, embedded NULs included, plus a NUL */
    e->data = xmalloc(ev->data_len + 1);
    memcpy(e->data, ev->data, ev->data_len);
    e->data[ev->data_len] = '\0';
  }
}

/* ---- topics ---- */

static void mem_topic_free(mem_topic_t *t) {
  mem_events_truncate(t, 0);
  free(t->ev);
  mem_keys_free(t);
  free(t->name);
  free(t);
}

static void mem_topic_out(const mem_topic_t *t, store_topic_t *out) {
  out->topic_id = t->topic_id;
  memcpy(out->epoch, t->epoch, sizeof out->epoch);
  out->head_seq = t->head_seq;
  out->first_seq = t->first_seq;
}

/* Index of the first topic whose name is not below name. */
static size_t mem_name_lower_bound(const mem_store_t *m, const char *name) {
  size_t lo = 0, hi = m->ntopics;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(m->by_name[mid]->name, name) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static mem_topic_t *mem_topic_by_name(const mem_store_t *m, const char *name) {
  size_t i = mem_name_lower_bound(m, name);
  return i < m->ntopics && strcmp(m->by_name[i]->name, name) == 0 ? m->by_name[i] : NULL;
}

static mem_topic_t *mem_topic_by_id(const mem_store_t *m, int64_t topic_id) {
  if (topic_id < 1 || (uint64_t)topic_id > m->ntopics) return NULL;
  return m->by_id[topic_id - 1];
}

static int mem_topic_get(void *be, const char *topic, store_topic_t *out) {
  mem_topic_t *t = mem_topic_by_name(be, topic);
  if (!t) return -ENOENT;
  mem_topic_out(t, out);
  return 0;
}

static int mem_topic_create(void *be, const char *topic, const char *epoch, store_topic_t *out) {
  mem_store_t *m = be;
  if (m->ntopics == m->topics_cap) {
    m->topics_cap = m->topics_cap ? 2 * m->topics_cap : 16;
    m->by_id = xrealloc(m->by_id, m->topics_cap * sizeof *m->by_id);
    m->by_name = xrealloc(m->by_name, m->topics_cap * sizeof *m->by_name);
  }
  mem_topic_t *t = xcalloc(1, sizeof *t);
  t->name = xstrdup(topic);
  t->topic_id = (int64_t)m->ntopics + 1;
  memcpy(t->epoch, epoch, sizeof t->epoch);
  t->first_seq = 1;
  size_t at = mem_name_lower_bound(m, topic);
  memmove(m->by_name + at + 1, m->by_name + at, (m->ntopics - at) * sizeof *m->by_name);
  m->by_name[at] = t;
  m->by_id[m->ntopics++] = t;
  mem_topic_out(t, out);
  return 0;
}

static int mem_topic_reset(void *be, const char *topic, const char *epoch, store_topic_t *out) {
  mem_topic_t *t = mem_topic_by_name(be, topic);
  if (!t) return -ENOENT;
  mem_events_truncate(t, 0);
  t->ev_off = 0;
  mem_keys_free(t);
  t->nkeys = 0;
  memcpy(t->epoch, epoch, sizeof t->epoch);
  t->head_seq = 0;
  t->first_seq = 1;
  mem_topic_out(t, out);
  return 0;
}

static int mem_topic_list(void *be, const char *prefix, const char *from, size_t limit, store_topic_cb cb,
                          void *ud) {
  mem_store_t *m = be;
  size_t plen = strlen(prefix), sent = 0;
  for (size_t i = mem_name_lower_bound(m, from); i < m->ntopics; i++) {
    const mem_topic_t *t = m->by_name[i];
    if (strncmp(t->name, prefix, plen) != 0 || (limit && sent == limit)) break;
    store_topic_t out;
    mem_topic_out(t, &out);
    sent++;
    int stop = cb(ud, t->name, &out);
    if (stop) return stop;
  }
  return 0;
}

/* ---- batches ---- */

static int mem_batch_begin(void *be) {
  mem_store_t *m = be;
  m->ntouched = 0;
  m->nundo = 0;
  return 0;
}

static void mem_undo_apply(mem_undo_t *u) {
  mem_topic_t *t = u->t;
  if (u->had_old)
    mem_key_set(t, u->id, u->old_seq, u->old_ts_ms);
  else
    mem_key_unlink(t, mem_key_link(t, u->id));
  free(u->id);
}

static void mem_batch_rollback(void *be) {
  mem_store_t *m = be;
  while (m->nundo > 0) mem_undo_apply(&m->undo[--m->nundo]);
  for (size_t i = 0; i < m->ntouched; i++) {
    mem_topic_t *t = m->touched[i];
    mem_events_truncate(t, (size_t)(t->head_seq + 1 - t->first_seq));
    t->touched = false;
  }
  m->ntouched = 0;
}

static void mem_dedupe_record(mem_store_t *m, mem_topic_t *t, const store_event_t *ev) {
  const mem_key_t *old = mem_key_find(t, ev->id);
  MEM_GROW(m->undo, m->nundo, m->undo_cap);
  m->undo[m->nundo++] = (mem_undo_t){.t = t,
                                     .id = xstrdup(ev->id),
                                     .had_old = old != NULL,
                                     .old_seq = old ? old->seq : 0,
                                     .old_ts_ms = old ? old->ts_ms : 0};
  mem_key_set(t, ev->id, ev->seq, ev->ts_ms);
}

static int mem_batch_append(void *be, const store_event_t *ev) {
  mem_store_t *m = be;
  mem_topic_t *t = mem_topic_by_id(m, ev->topic_id);
  int rc = 0;
  if (!t)
    rc = -ENOENT;
  else if (ev->seq != (t->touched ? t->batch_head : t->head_seq) + 1)
    rc = -EINVAL;
  if (rc < 0) {
    mem_batch_rollback(m);
    return rc;
  }
  if (!t->touched) {
    MEM_GROW(m->touched, m->ntouched, m->touched_cap);
    m->touched[m->ntouched++] = t;
    t->touched = true;
  }
  mem_event_push(t, ev);
  if (ev->id) mem_dedupe_record(m, t, ev);
  t->batch_head = ev->seq;
  return 0;
}

static int mem_batch_commit(void *be) {
  mem_store_t *m = be;
  for (size_t i = 0; i < m->ntouched; i++) {
    m->touched[i]->head_seq = m->touched[i]->batch_head;
    m->touched[i]->touched = false;
  }
  m->ntouched = 0;
  for (size_t i = 0; i < m->nundo; i++) free(m->undo[i].id);
  m->nundo = 0;
  return 0;
}

/* ---- reads ---- */

static int mem_read(void *be, int64_t topic_id, uint64_t after_seq, size_t limit, store_event_cb cb,
                    void *ud) {
  const mem_topic_t *t = mem_topic_by_id(be, topic_id);
  if (!t) return -ENOENT;
  size_t i = after_seq < t->first_seq ? 0 : (size_t)(after_seq + 1 - t->first_seq);
  for (size_t sent = 0; i < t->ev_len && (limit == 0 || sent < limit); i++, sent++) {
    const mem_event_t *e = &t->ev[t->ev_off + i];
    const store_event_t ev = {.topic_id = topic_id,
                              .seq = e->seq,
                              .ts_ms = e->ts_ms,
                              .id = e->id,
                              .type = e->type,
                              .lane = e->lane,
                              .data = e->data,
                              .data_len = e->data_len};
    int stop = cb(ud, &ev);
    if (stop) return stop;
  }
  return 0;
}

static int mem_dedupe_find(void *be, int64_t topic_id, const char *id, int64_t min_ts_ms,
                           uint64_t *seq_out) {
  mem_topic_t *t = mem_topic_by_id(be, topic_id);
  const mem_key_t *k = t ? mem_key_find(t, id) : NULL;
  if (!k || k->ts_ms < min_ts_ms) return -ENOENT;
  *seq_out = k->seq;
  return 0;
}

static int mem_dedupe_list(void *be, int64_t topic_id, int64_t min_ts_ms, store_dedupe_cb cb,
                           void *ud) {
  const mem_topic_t *t = mem_topic_by_id(be, topic_id);
  for (size_t i = 0; t && i < t->nbuckets; i++) {
    for (const mem_key_t *k = t->buckets[i]; k; k = k->next) {
      if (k->ts_ms < min_ts_ms) continue;
      int stop = cb(ud, k->id, k->seq, k->ts_ms);
      if (stop) return stop;
    }
  }
  return 0;
}

/* ---- retention ---- */

/* Trims one topic by at most *budget rows; *budget is decreased by what was deleted. */
static void mem_trim_topic(mem_topic_t *t, const store_retention_t *r, uint64_t *budget) {
  uint64_t first = t->first_seq, limit = first + *budget;
  uint64_t keep = store__count_keep(t->head_seq, r->max_events);
  if (keep < first) keep = first;
  if (keep > limit) keep = limit;
  while (r->min_ts_ms != 0 && keep < limit && keep <= t->head_seq &&
         t->ev[t->ev_off + (keep - first)].ts_ms < r->min_ts_ms)
    keep++;
  if (keep == first) return;
  mem_events_drop_front(t, (size_t)(keep - first));
  t->first_seq = keep;
  *budget -= keep - first;
}

/* Trims topics after the cursor; returns whether the pass reached the last topic. */
static bool mem_trim_topics(mem_store_t *m, const store_retention_t *r, uint64_t *budget) {
  size_t examined = 0;
  while (*budget > 0 && examined < r->budget) {
    mem_topic_t *t = mem_topic_by_id(m, m->retention_cursor + 1);
    if (!t) return true;
    mem_trim_topic(t, r, budget);
    examined++;
    /* A topic that used the budget up may have more to delete: revisit it next slice. */
    if (*budget > 0) m->retention_cursor = t->topic_id;
  }
  return false;
}

static void mem_sweep_dedupe(mem_store_t *m, int64_t min_ts_ms, uint64_t budget, bool *more) {
  uint64_t left = budget;
  for (size_t i = 0; i < m->ntopics && left > 0; i++) {
    mem_topic_t *t = m->by_id[i];
    for (size_t b = 0; b < t->nbuckets && left > 0; b++) {
      mem_key_t **link = &t->buckets[b];
      while (*link && left > 0) {
        if ((*link)->ts_ms < min_ts_ms) {
          mem_key_unlink(t, link);
          left--;
        } else {
          link = &(*link)->next;
        }
      }
    }
  }
  if (left == 0) *more = true;
}

static int mem_retention_run(void *be, const store_retention_t *r, uint64_t *deleted, bool *more) {
  mem_store_t *m = be;
  uint64_t budget = r->budget;
  bool done = mem_trim_topics(m, r, &budget);
  *deleted = r->budget - budget;
  if (!done) {
    *more = true;
    return 0;
  }
  if (r->dedupe_min_ts_ms != 0) {
    if (budget == 0)
      *more = true;
    else
      mem_sweep_dedupe(m, r->dedupe_min_ts_ms, budget, more);
  }
  if (!*more) m->retention_cursor = 0; /* the pass is complete; the next one starts over */
  return 0;
}

static void mem_close(void *be) {
  mem_store_t *m = be;
  if (!m) return;
  mem_batch_rollback(m);
  for (size_t i = 0; i < m->ntopics; i++) mem_topic_free(m->by_id[i]);
  free(m->by_id);
  free(m->by_name);
  free(m->touched);
  free(m->undo);
  free(m);
}

static const store_ops_t mem_ops = {
    .name = "memory",
    .close = mem_close,
    .topic_get = mem_topic_get,
    .topic_create = mem_topic_create,
    .topic_reset = mem_topic_reset,
    .topic_list = mem_topic_list,
    .batch_begin = mem_batch_begin,
    .batch_append = mem_batch_append,
    .batch_commit = mem_batch_commit,
    .batch_rollback = mem_batch_rollback,
    .read = mem_read,
    .dedupe_find = mem_dedupe_find,
    .dedupe_list = mem_dedupe_list,
    .retention_run = mem_retention_run,
};

int store__memory_open(const store_ops_t **ops, void **be) {
  *ops = &mem_ops;
  *be = xcalloc(1, sizeof(mem_store_t));
  return 0;
}
