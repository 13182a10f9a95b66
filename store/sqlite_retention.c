/* store SQLite backend: retention, the bounded deletes of old events and keys.
 *
 * A slice walks the topics that hold events (the partial index topics_live) from where
 * the last slice stopped, applies the count rule (max_events newest) and the age rule
 * (the oldest run of events older than min_ts_ms) to each, deletes the chunks wholly
 * below the new first_seq, then forgets idempotency keys past the dedupe window; all in
 * one transaction, within the slice's budget of events and topics. The rules are stated
 * in store.h (store_retention_run); the schema and the rest of the backend are sqlite.c's. */
#include <errno.h>
#include <sqlite3.h>

#include "internal.h"
#include "sqlite_events.h"

#define SQ_TOPIC_CHUNK 64 /* topics fetched per query during retention */

typedef struct sq_topic_row {
  int64_t topic_id;
  uint64_t head_seq, first_seq;
} sq_topic_row_t;

/* Loads up to cap topics with id above q->retention_cursor; *n gets their count. */
static int sq_topic_chunk(sq_store_t *q, sq_topic_row_t *rows, size_t cap, size_t *n) {
  sqlite3_stmt *st = store__sql_stmt(&q->sql, SQ_TOPIC_CHUNK_Q);
  sqlite3_bind_int64(st, 1, q->retention_cursor);
  sqlite3_bind_int64(st, 2, (int64_t)cap);
  int rc;
  *n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    rows[*n] = (sq_topic_row_t){.topic_id = sqlite3_column_int64(st, 0),
                                .head_seq = (uint64_t)sqlite3_column_int64(st, 1),
                                .first_seq = (uint64_t)sqlite3_column_int64(st, 2)};
    (*n)++;
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : store__sql_fail(&q->sql, rc, "retention topics");
}

/* Age cut within one chunk row that straddles min_ts_ms: advances *keep (< limit) over
 * the events older than min_ts_ms; *stop is set at the first newer one. */
static int sq_age_keep_chunk(sqlite3_stmt *st, int64_t topic_id, uint64_t limit,
                             int64_t min_ts_ms, uint64_t *keep, bool *stop) {
  store_chunk_iter_t it;
  uint64_t last;
  int rc = store__sq_chunk_open(st, topic_id, 4, &it, &last);
  store_event_t ev;
  while (rc == 0 && (rc = store__sq_chunk_step(&it, topic_id, last, &ev)) == 1) {
    rc = 0;
    if (ev.seq < *keep) continue;
    if (ev.seq >= limit || ev.ts_ms >= min_ts_ms) {
      *stop = true;
      break;
    }
    *keep = ev.seq + 1;
  }
  return rc < 0 ? rc : 0;
}

/* Age cut: scans at most max_rows events from seq `from` and sets *keep to the first
 * seq not older than min_ts_ms (from + rows scanned when all were older). A chunk whose
 * events are all older (ts_max) or all newer (ts_min) is decided without decoding it. */
static int sq_age_keep(sq_store_t *q, int64_t topic_id, uint64_t from, uint64_t max_rows,
                       int64_t min_ts_ms, uint64_t *keep) {
  sqlite3_stmt *st = store__sql_stmt(&q->sql, SQ_CHUNK_SCAN);
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int64(st, 2, (int64_t)from);
  uint64_t limit = from + max_rows;
  bool stop = false;
  int rc = SQLITE_DONE;
  *keep = from;
  while (!stop && *keep < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    uint64_t first = (uint64_t)sqlite3_column_int64(st, 0);
    uint64_t last = (uint64_t)sqlite3_column_int64(st, 1);
    if (first > *keep || sqlite3_column_int64(st, 2) >= min_ts_ms) break; /* a hole, or newer */
    if (sqlite3_column_int64(st, 3) < min_ts_ms && last >= first) {
      *keep = last + 1 < limit ? last + 1 : limit;
      continue;
    }
    int r = sq_age_keep_chunk(st, topic_id, limit, min_ts_ms, keep, &stop);
    if (r < 0) {
      sqlite3_reset(st);
      return r;
    }
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store__sql_fail(&q->sql, rc, "retention scan");
}

static int sq_delete_below(sq_store_t *q, int64_t topic_id, uint64_t keep) {
  sqlite3_stmt *st = store__sql_stmt(&q->sql, SQ_CHUNK_DELETE_BELOW);
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int64(st, 2, (int64_t)keep);
  int rc = store__sql_done(&q->sql, st, "retention delete");
  if (rc < 0) return rc;
  st = store__sql_stmt(&q->sql, SQ_TOPIC_SET_FIRST);
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int64(st, 2, (int64_t)keep);
  return store__sql_done(&q->sql, st, "retention first_seq");
}

/* Trims one topic by at most *budget rows; *budget is decreased by what was deleted. */
static int sq_trim_topic(sq_store_t *q, const store_retention_t *r, const sq_topic_row_t *t,
                         uint64_t *budget) {
  uint64_t first = t->first_seq, limit = first + *budget;
  uint64_t keep = store__count_keep(t->head_seq, r->max_events);
  if (keep < first) keep = first;
  if (keep > limit) keep = limit;
  if (r->min_ts_ms != 0 && keep < limit && keep <= t->head_seq) {
    int rc = sq_age_keep(q, t->topic_id, keep, limit - keep, r->min_ts_ms, &keep);
    if (rc < 0) return rc;
  }
  if (keep == first) return 0;
  *budget -= keep - first;
  return sq_delete_below(q, t->topic_id, keep);
}

/* Trims topics after the cursor; *done is set when the pass reached the last topic. */
static int sq_trim_topics(sq_store_t *q, const store_retention_t *r, uint64_t *budget, bool *done) {
  sq_topic_row_t rows[SQ_TOPIC_CHUNK];
  size_t examined = 0, n = 0;
  *done = false;
  while (*budget > 0 && examined < r->budget) {
    int rc = sq_topic_chunk(q, rows, SQ_TOPIC_CHUNK, &n);
    if (rc < 0) return rc;
    if (n == 0) {
      *done = true;
      return 0;
    }
    for (size_t i = 0; i<n && * budget> 0 && examined < r->budget; i++, examined++) {
      q->retention_topics++;
      rc = sq_trim_topic(q, r, &rows[i], budget);
      if (rc < 0) return rc;
      /* A topic that used the budget up may have more to delete: revisit it next slice. */
      q->retention_cursor = *budget > 0 ? rows[i].topic_id : rows[i].topic_id - 1;
    }
  }
  return 0;
}

static int sq_sweep_dedupe(sq_store_t *q, int64_t min_ts_ms, uint64_t budget, bool *more) {
  sqlite3_stmt *st = store__sql_stmt(&q->sql, SQ_DEDUPE_SWEEP);
  sqlite3_bind_int64(st, 1, min_ts_ms);
  sqlite3_bind_int64(st, 2, (int64_t)budget);
  int rc = store__sql_done(&q->sql, st, "dedupe sweep");
  if (rc == 0 && (uint64_t)sqlite3_changes(q->sql.db) >= budget) *more = true;
  return rc;
}

static int sq_retention_slice(sq_store_t *q, const store_retention_t *r, uint64_t *deleted,
                              bool *more) {
  uint64_t budget = r->budget;
  bool done;
  int rc = sq_trim_topics(q, r, &budget, &done);
  *deleted = r->budget - budget;
  if (rc < 0 || !done) {
    *more = rc == 0;
    return rc;
  }
  if (r->dedupe_min_ts_ms != 0) {
    if (budget == 0)
      *more = true;
    else
      rc = sq_sweep_dedupe(q, r->dedupe_min_ts_ms, budget, more);
  }
  return rc;
}

int store__sq_retention_run(void *be, const store_retention_t *r, uint64_t *deleted, bool *more) {
  sq_store_t *q = be;
  int64_t cursor = q->retention_cursor;
  int rc = store__sql_begin(&q->sql);
  if (rc < 0) return rc;
  rc = store__sql_end(&q->sql, sq_retention_slice(q, r, deleted, more));
  if (rc < 0) {
    q->retention_cursor = cursor;
    *deleted = 0;
    *more = false;
    return rc;
  }
  if (!*more) q->retention_cursor = 0; /* the pass is complete; the next one starts over */
  return 0;
}
