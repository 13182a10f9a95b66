/* store SQLite backend: one connection in WAL mode, every statement prepared once.
 *
 * Owns the database file's schema (migrated by PRAGMA user_version) and the in-memory
 * state of an open batch: each append checks its seq against the topic's head as of the
 * batch plus its earlier appends and is encoded into the topic's pending chunk; commit
 * writes each touched topic's chunk and head_seq once. Opening the connection, statement handling and the mapping of SQLite's errors to
 * negative errno are sqlite_conn.c's. Argument checks and the batch state machine are in
 * store.c; retention's slicing rules are stated in store.h and run in sqlite_retention.c
 * (the state and statements both files use are in sqlite_events.h).
 *
 * Schema (version 3):
 *   topics(topic_id INTEGER PRIMARY KEY, name TEXT UNIQUE, epoch, head_seq, first_seq),
 *     partial index topics_live (topic_id, head_seq, first_seq) of the topics holding
 *     events (first_seq <= head_seq), which retention walks instead of every topic
 *     (built at open when missing, not versioned: older builds still open the file)
 *   chunks(rid INTEGER PRIMARY KEY, topic_id, first_seq, last_seq, ts_min, ts_max, body),
 *     unique index (topic_id, last_seq)
 *   dedupe(topic_id, id, seq, ts_ms) keyed (topic_id, id), no rowid, indexed by ts_ms
 * A chunk holds the events first_seq..last_seq of one topic, encoded in body (chunk.c);
 * a batch writes one chunk per topic it touched (more when a topic's events pass
 * SQ_CHUNK_BYTES), so a commit of 1,000 events over 100 topics inserts 100 rows instead
 * of 1,000. Invariant: the chunks of a topic cover its seqs without overlap, up to
 * head_seq; the retained events are exactly first_seq..head_seq. Retention moves
 * first_seq per event and deletes a chunk once all its events are below first_seq, so a
 * chunk may hold events before first_seq, which reads skip. ts_min and ts_max bound the
 * chunk's timestamps (clocks may step back) so the age rule decodes only the chunks that
 * straddle its cut. Reads inside an open batch see its appends: a read of a topic with
 * appends not yet written writes them as a chunk first, in the batch's transaction.
 * Version 2 kept one row per event (events(rid, topic_id, seq, ts_ms, id, type, lane,
 * data) with a unique index (topic_id, seq)): two B-tree inserts per event. Version 1
 * kept events in a WITHOUT ROWID table keyed (topic_id, seq), which rewrote one full leaf
 * page per topic and batch. Opening a version 1 or 2 file converts it in place in one
 * transaction.
 *
 * The write-ahead log's upkeep (the checkpointer thread, the settle that keeps the log
 * within wal_max) is sqlite_wal.c's. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"
#include "sqlite_events.h"

#define SQ_SCHEMA_VERSION 3
#define SQ_CHUNK_BYTES (64 * 1024) /* a topic's pending chunk is written once it reaches this */
#define SQ_CHUNK_KEEP (16 * 1024)  /* pending buffers larger than this are freed after a batch */


static const char *const sq_sql[SQ__COUNT] = {
    [SQ_TOPIC_GET] = "SELECT topic_id, epoch, head_seq, first_seq FROM topics WHERE name = ?1",
    [SQ_TOPIC_INSERT] =
        "INSERT INTO topics(topic_id, name, epoch, head_seq, first_seq) VALUES (?3, ?1, ?2, 0, 1)",
    [SQ_TOPIC_HEAD] = "SELECT head_seq, first_seq FROM topics WHERE topic_id = ?1",
    [SQ_TOPIC_SET_HEAD] = "UPDATE topics SET head_seq = ?2 WHERE topic_id = ?1",
    [SQ_TOPIC_SET_FIRST] = "UPDATE topics SET first_seq = ?2 WHERE topic_id = ?1",
    [SQ_TOPIC_RESET] =
        "UPDATE topics SET epoch = ?2, head_seq = 0, first_seq = 1 WHERE topic_id = ?1",
    [SQ_TOPIC_LIST] =
        "SELECT name, topic_id, epoch, head_seq, first_seq FROM topics"
        " WHERE name >= ?1 AND name < ?2 ORDER BY name LIMIT ?3",
    [SQ_TOPIC_CHUNK_Q] =
        "SELECT topic_id, head_seq, first_seq FROM topics INDEXED BY topics_live"
        " WHERE topic_id > ?1 AND first_seq <= head_seq ORDER BY topic_id LIMIT ?2",
    [SQ_CHUNK_INSERT] =
        "INSERT INTO chunks(topic_id, first_seq, last_seq, ts_min, ts_max, body)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [SQ_CHUNK_READ] =
        "SELECT first_seq, last_seq, body FROM chunks"
        " WHERE topic_id = ?1 AND last_seq >= ?2 ORDER BY last_seq",
    [SQ_CHUNK_SCAN] =
        "SELECT first_seq, last_seq, ts_min, ts_max, body FROM chunks"
        " WHERE topic_id = ?1 AND last_seq >= ?2 ORDER BY last_seq",
    [SQ_CHUNK_DELETE_BELOW] = "DELETE FROM chunks WHERE topic_id = ?1 AND last_seq < ?2",
    [SQ_CHUNK_DELETE_ALL] = "DELETE FROM chunks WHERE topic_id = ?1",
    [SQ_DEDUPE_PUT] =
        "INSERT OR REPLACE INTO dedupe(topic_id, id, seq, ts_ms) VALUES (?1, ?2, ?3, ?4)",
    [SQ_DEDUPE_FIND] = "SELECT seq FROM dedupe WHERE topic_id = ?1 AND id = ?2 AND ts_ms >= ?3",
    [SQ_DEDUPE_LIST] = "SELECT id, seq, ts_ms FROM dedupe WHERE topic_id = ?1 AND ts_ms >= ?2",
    [SQ_DEDUPE_DELETE_ALL] = "DELETE FROM dedupe WHERE topic_id = ?1",
    [SQ_DEDUPE_SWEEP] =
        "DELETE FROM dedupe WHERE (topic_id, id) IN"
        " (SELECT topic_id, id FROM dedupe WHERE ts_ms < ?1 LIMIT ?2)",
};

#define SQ_EVENTS_V2                                                        \
  "CREATE TABLE events(rid INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL," \
  " seq INTEGER NOT NULL, ts_ms INTEGER NOT NULL, id TEXT, type TEXT,"      \
  " lane INTEGER NOT NULL, data TEXT);"                                     \
  "CREATE UNIQUE INDEX events_topic_seq ON events(topic_id, seq);"

#define SQ_CHUNKS_V3                                                                       \
  "CREATE TABLE chunks(rid INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,"                \
  " first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, ts_min INTEGER NOT NULL,"       \
  " ts_max INTEGER NOT NULL, body BLOB NOT NULL);"                                         \
  "CREATE UNIQUE INDEX chunks_topic_last ON chunks(topic_id, last_seq);"

/* The topics that hold events, for retention. Topic rows stay forever (a topic keeps its
 * epoch and seq), so a store that saw a million run topics has a million rows, nearly all
 * empty once retention took their events; a pass over every row cost the commit thread
 * about 5 ms per 20,000 topics, every second, on an idle daemon (docs/streams.md,
 * "Retention"). Covering, so a pass reads the index alone. Created when missing at every
 * open instead of by a schema version, so that a file stays readable by the builds before
 * it (which keep the index up to date without using it): a deploy can be rolled back. */
#define SQ_TOPICS_LIVE                                                                 \
  "CREATE INDEX IF NOT EXISTS topics_live ON topics(topic_id, head_seq, first_seq)"    \
  " WHERE first_seq <= head_seq;"

static const char sq_schema_v3[] =
    "CREATE TABLE topics(topic_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " epoch TEXT NOT NULL, head_seq INTEGER NOT NULL, first_seq INTEGER NOT NULL);" SQ_CHUNKS_V3
    "CREATE TABLE dedupe(topic_id INTEGER NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " ts_ms INTEGER NOT NULL, PRIMARY KEY(topic_id, id)) WITHOUT ROWID;"
    "CREATE INDEX dedupe_ts ON dedupe(ts_ms);"
    "PRAGMA user_version = 3;";

/* Version 1 to 2: the same events, in an appendable table (see the file comment). */
static const char sq_migrate_v1_v2[] =
    "ALTER TABLE events RENAME TO events_v1;" SQ_EVENTS_V2
    "INSERT INTO events(topic_id, seq, ts_ms, id, type, lane, data)"
    " SELECT topic_id, seq, ts_ms, id, type, lane, data FROM events_v1 ORDER BY ts_ms;"
    "DROP TABLE events_v1;";


/* ---- open, schema, close ---- */

static int sq_user_version(sq_store_t *q, int *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(q->sql.db, "PRAGMA user_version", -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *out = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : store__sql_fail(&q->sql, rc, "user_version");
}

/* Writes c (count > 0) as the chunk row of topic_id through the prepared statement st. */
static int sq_chunk_insert(sq_store_t *q, sqlite3_stmt *st, int64_t topic_id,
                           const store_chunk_t *c) {
  sqlite3_reset(st);
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int64(st, 2, (int64_t)c->first_seq);
  sqlite3_bind_int64(st, 3, (int64_t)(c->first_seq + c->count - 1));
  sqlite3_bind_int64(st, 4, c->ts_min);
  sqlite3_bind_int64(st, 5, c->ts_max);
  sqlite3_bind_blob64(st, 6, c->buf, c->len, SQLITE_STATIC);
  return store__sql_done(&q->sql, st, "chunk insert");
}

/* Version 2 to 3: the rows of events, a topic's run of consecutive seqs at a time, become
 * chunks of at most SQ_CHUNK_BYTES; then the events table goes. */
static int sq_migrate_v2_v3_rows(sq_store_t *q, sqlite3_stmt *sel, sqlite3_stmt *ins) {
  store_chunk_t c = {0};
  int64_t topic_id = 0;
  int rc;
  while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
    const char *data = store__sql_col_text(sel, 6);
    const store_event_t ev = {
        .topic_id = sqlite3_column_int64(sel, 0),
        .seq = (uint64_t)sqlite3_column_int64(sel, 1),
        .ts_ms = sqlite3_column_int64(sel, 2),
        .id = store__sql_col_text(sel, 3),
        .type = store__sql_col_text(sel, 4),
        .lane = sqlite3_column_int(sel, 5),
        .data = data,
        .data_len = data ? (size_t)sqlite3_column_bytes(sel, 6) : 0,
    };
    if (c.count > 0 && (ev.topic_id != topic_id || ev.seq != c.first_seq + c.count ||
                        c.len >= SQ_CHUNK_BYTES)) {
      rc = sq_chunk_insert(q, ins, topic_id, &c);
      if (rc < 0) break;
      c.count = 0;
    }
    if (c.count == 0) store__chunk_start(&c, ev.seq);
    topic_id = ev.topic_id;
    store__chunk_add(&c, &ev);
  }
  if (rc == SQLITE_DONE)
    rc = c.count > 0 ? sq_chunk_insert(q, ins, topic_id, &c) : 0;
  else if (rc > 0)
    rc = store__sql_fail(&q->sql, rc, "migrate events");
  store__chunk_free(&c);
  return rc;
}

static int sq_migrate_v2_v3(sq_store_t *q) {
  sqlite3_stmt *sel = NULL, *ins = NULL;
  int rc = store__sql_exec(&q->sql, SQ_CHUNKS_V3);
  if (rc < 0) return rc;
  rc = sqlite3_prepare_v2(q->sql.db,
                          "SELECT topic_id, seq, ts_ms, id, type, lane, data FROM events"
                          " ORDER BY topic_id, seq",
                          -1, &sel, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(q->sql.db, sq_sql[SQ_CHUNK_INSERT], -1, &ins, NULL);
  rc = rc == SQLITE_OK ? sq_migrate_v2_v3_rows(q, sel, ins)
                       : store__sql_fail(&q->sql, rc, "migrate prepare");
  sqlite3_finalize(sel);
  sqlite3_finalize(ins);
  if (rc == 0) rc = store__sql_exec(&q->sql, "DROP TABLE events");
  return rc;
}

/* Brings the schema to SQ_SCHEMA_VERSION in one transaction. */
static int sq_migrate(sq_store_t *q) {
  int version = 0;
  int rc = sq_user_version(q, &version);
  if (rc < 0) return rc;
  if (version > SQ_SCHEMA_VERSION) {
    log_error("store", "database schema is newer than this build", "{s:i,s:i}", "found", version,
              "supported", SQ_SCHEMA_VERSION);
    return -EIO;
  }
  if (version == SQ_SCHEMA_VERSION) return 0;
  rc = store__sql_exec(&q->sql, "BEGIN IMMEDIATE");
  if (rc == 0 && version == 0) rc = store__sql_exec(&q->sql, sq_schema_v3);
  if (rc == 0 && version == 1) rc = store__sql_exec(&q->sql, sq_migrate_v1_v2);
  if (rc == 0 && version >= 1) rc = sq_migrate_v2_v3(q);
  if (rc == 0 && version >= 1) rc = store__sql_exec(&q->sql, "PRAGMA user_version = 3");
  if (rc == 0) rc = store__sql_exec(&q->sql, "COMMIT");
  if (rc == 0 && version >= 1)
    log_info("store", "events migrated to schema 3", "{s:i}", "from", version);
  if (rc < 0) {
    sqlite3_exec(q->sql.db, "ROLLBACK", NULL, NULL, NULL);
    store__vfs_rolled_back(q->sql.db);
  }
  return rc;
}

/* Builds topics_live when the file has none (a new file, or one an older build wrote):
 * it reads every topic row once (106-147 ms for 1,000,000, tests/bench/run-idle-topics.sh). */
static int sq_topics_live(sq_store_t *q) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(
      q->sql.db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'topics_live'",
      -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  bool have = rc == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW) return store__sql_fail(&q->sql, rc, "topics_live");
  if (have) return 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  rc = store__sql_exec(&q->sql, SQ_TOPICS_LIVE);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (rc == 0)
    log_info("store", "index of the topics holding events built", "{s:i}", "ms",
             (int)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
  return rc;
}

/* The first id to reserve: above every topic row (also those of older builds, which let
 * SQLite choose). */
static int sq_topic_ids_init(sq_store_t *q) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(q->sql.db, "SELECT coalesce(max(topic_id), 0) FROM topics", -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) atomic_store(&q->next_topic_id, sqlite3_column_int64(st, 0) + 1);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : store__sql_fail(&q->sql, rc, "topic ids");
}

static int sq_configure(sq_store_t *q, const store_options_t *opts) {
  int rc = store__sql_open(&q->sql, opts, NULL);
  if (rc == 0) rc = store__sql_exec(&q->sql, "PRAGMA foreign_keys=OFF");
  if (rc == 0) rc = sq_migrate(q);
  if (rc == 0) rc = sq_topics_live(q);
  if (rc == 0) rc = sq_topic_ids_init(q);
  if (rc == 0) rc = store__sql_prepare(&q->sql, sq_sql, SQ__COUNT);
  if (rc == 0) rc = store__wal_open(&q->wal, &q->sql, opts);
  /* The reader: a second connection, so that reads need not wait for a commit. */
  if (rc == 0) rc = store__sql_open(&q->rsql, opts, "reader");
  if (rc == 0) rc = store__sql_prepare(&q->rsql, sq_sql, SQ__COUNT);
  return rc;
}

static void sq_close(void *be) {
  sq_store_t *q = be;
  if (!q) return;
  store__wal_close(&q->wal);
  store__sql_close(&q->rsql);
  store__sql_close(&q->sql);
  pthread_mutex_destroy(&q->rlock);
  pthread_mutex_destroy(&q->rsql_mu);
  for (size_t i = 0; i < q->heads_cap; i++) store__chunk_free(&q->heads[i].chunk);
  free(q->heads);
  free(q->slots);
  free(q);
}

/* ---- topics ---- */

static void sq_topic_from_row(sqlite3_stmt *st, int col, store_topic_t *out) {
  out->topic_id = sqlite3_column_int64(st, col);
  const char *epoch = store__sql_col_text(st, col + 1);
  snprintf(out->epoch, sizeof out->epoch, "%s", epoch ? epoch : "");
  out->head_seq = (uint64_t)sqlite3_column_int64(st, col + 2);
  out->first_seq = (uint64_t)sqlite3_column_int64(st, col + 3);
}

/* The topic named topic, read on connection c. */
static int sq_topic_get_on(store_sql_t *c, const char *topic, store_topic_t *out) {
  sqlite3_stmt *st = store__sql_stmt(c, SQ_TOPIC_GET);
  store__sql_bind_text(st, 1, topic);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) sq_topic_from_row(st, 0, out);
  sqlite3_reset(st);
  if (rc == SQLITE_ROW) return 0;
  return rc == SQLITE_DONE ? -ENOENT : store__sql_fail(c, rc, "topic get");
}

static int sq_topic_get(void *be, const char *topic, store_topic_t *out) {
  sq_store_t *q = be;
  return sq_topic_get_on(&q->sql, topic, out);
}

/* A short read on the reader connection (one statement, its own snapshot: a topic row,
 * a topic's idempotency keys), for the loop while the commit thread holds the store.
 * Under the reader's lock when it is free (sq_read_committed says why); while a settle
 * holds it (up to a checkpoint pass, 10-110 ms at 120,000 events/s) the read goes ahead
 * without: it lasts microseconds, and the worst it can do is be reading at the moment
 * the batch after the settle would start the log over, which then happens at the next
 * settle instead. Returns whether rlock was taken (for sq_short_read_end). */
static bool sq_short_read_begin(sq_store_t *q) {
  bool locked = pthread_mutex_trylock(&q->rlock) == 0;
  pthread_mutex_lock(&q->rsql_mu);
  return locked;
}

static void sq_short_read_end(sq_store_t *q, bool locked) {
  pthread_mutex_unlock(&q->rsql_mu);
  if (locked) pthread_mutex_unlock(&q->rlock);
}

static int sq_topic_get_committed(void *be, const char *topic, store_topic_t *out) {
  sq_store_t *q = be;
  bool locked = sq_short_read_begin(q);
  int rc = sq_topic_get_on(&q->rsql, topic, out);
  sq_short_read_end(q, locked);
  return rc;
}

static int sq_topic_reserve(void *be, int64_t *topic_id) {
  sq_store_t *q = be;
  *topic_id = atomic_fetch_add(&q->next_topic_id, 1);
  return 0;
}

/* Writes the row of a topic whose id was reserved. */
static int sq_topic_insert(sq_store_t *q, const char *name, int64_t topic_id, const char *epoch) {
  sqlite3_stmt *st = store__sql_stmt(&q->sql, SQ_TOPIC_INSERT);
  store__sql_bind_text(st, 1, name);
  store__sql_bind_text(st, 2, epoch);
  sqlite3_bind_int64(st, 3, topic_id);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE) return 0;
  int fail = store__sql_fail(&q->sql, rc, "topic insert");
  return (rc & 0xff) == SQLITE_CONSTRAINT ? -EEXIST : fail; /* the name or the id is taken */
}

static int sq_topic_create(void *be, const char *topic, const char *epoch, store_topic_t *out) {
  sq_store_t *q = be;
  int64_t id;
  int rc = sq_topic_reserve(q, &id);
  if (rc == 0) rc = sq_topic_insert(q, topic, id, epoch);
  return rc < 0 ? rc : sq_topic_get(q, topic, out);
}


static int sq_topic_reset_rows(sq_store_t *q, int64_t topic_id, const char *epoch) {
  sqlite3_stmt *st = store__sql_stmt(&q->sql, SQ_CHUNK_DELETE_ALL);
  sqlite3_bind_int64(st, 1, topic_id);
  int rc = store__sql_done(&q->sql, st, "reset chunks");
  if (rc < 0) return rc;
  st = store__sql_stmt(&q->sql, SQ_DEDUPE_DELETE_ALL);
  sqlite3_bind_int64(st, 1, topic_id);
  rc = store__sql_done(&q->sql, st, "reset dedupe");
  if (rc < 0) return rc;
  st = store__sql_stmt(&q->sql, SQ_TOPIC_RESET);
  sqlite3_bind_int64(st, 1, topic_id);
  store__sql_bind_text(st, 2, epoch);
  return store__sql_done(&q->sql, st, "reset topic");
}

static int sq_topic_reset(void *be, const char *topic, const char *epoch, store_topic_t *out) {
  sq_store_t *q = be;
  store_topic_t t;
  int rc = sq_topic_get(q, topic, &t);
  if (rc < 0) return rc;
  rc = store__sql_begin(&q->sql);
  if (rc < 0) return rc;
  rc = store__sql_end(&q->sql, sq_topic_reset_rows(q, t.topic_id, epoch));
  return rc < 0 ? rc : sq_topic_get(q, topic, out);
}

/* The smallest string above every string that starts with prefix, in byte order; false
 * when there is none (empty prefix or all 0xff bytes). */
static bool sq_prefix_end(const char *prefix, char **out) {
  size_t n = strlen(prefix);
  while (n > 0 && (unsigned char)prefix[n - 1] == 0xff) n--;
  if (n == 0) return false;
  char *end = xstrndup(prefix, n);
  end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
  *out = end;
  return true;
}

/* The topics named prefix..., from `from` on, read on connection c. */
static int sq_topic_list_on(store_sql_t *c, const char *prefix, const char *from, size_t limit,
                            store_topic_cb cb, void *ud) {
  char *end = NULL;
  sqlite3_stmt *st = store__sql_stmt(c, SQ_TOPIC_LIST);
  store__sql_bind_text(st, 1, from);
  /* Without an end, a zero-length blob bounds nothing: every TEXT sorts below a BLOB. */
  if (sq_prefix_end(prefix, &end))
    sqlite3_bind_text(st, 2, end, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_zeroblob(st, 2, 0);
  sqlite3_bind_int64(st, 3, limit ? (int64_t)limit : -1);
  free(end);
  int rc, stop = 0;
  while (stop == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    store_topic_t t;
    sq_topic_from_row(st, 1, &t);
    stop = cb(ud, store__sql_col_text(st, 0), &t);
  }
  sqlite3_reset(st);
  if (stop) return stop;
  return rc == SQLITE_DONE ? 0 : store__sql_fail(c, rc, "topic list");
}

static int sq_topic_list(void *be, const char *prefix, const char *from, size_t limit, store_topic_cb cb,
                         void *ud) {
  sq_store_t *q = be;
  return sq_topic_list_on(&q->sql, prefix, from, limit, cb, ud);
}

/* A short read too (sq_short_read_begin) when limit bounds it; an unbounded list waits for
 * the reader's lock like sq_read_committed. */
static int sq_topic_list_committed(void *be, const char *prefix, const char *from, size_t limit,
                                   store_topic_cb cb, void *ud) {
  sq_store_t *q = be;
  bool locked;
  if (limit == 0) {
    pthread_mutex_lock(&q->rlock);
    pthread_mutex_lock(&q->rsql_mu);
    locked = true;
  } else {
    locked = sq_short_read_begin(q);
  }
  int rc = sq_topic_list_on(&q->rsql, prefix, from, limit, cb, ud);
  sq_short_read_end(q, locked);
  return rc;
}

/* ---- batches ---- */

/* Ends the batch's bookkeeping: no topic touched, large pending buffers released. */
static void sq_heads_clear(sq_store_t *q) {
  for (size_t i = 0; i < q->nheads; i++)
    if (q->heads[i].chunk.cap > SQ_CHUNK_KEEP) store__chunk_free(&q->heads[i].chunk);
  q->nheads = 0;
  if (q->nslots) memset(q->slots, 0, q->nslots * sizeof *q->slots);
}

/* The slot holding topic_id, or the free slot where it would go. */
static size_t sq_slot_of(const sq_store_t *q, int64_t topic_id) {
  size_t mask = q->nslots - 1;
  size_t i = (size_t)(((uint64_t)topic_id * 0x9e3779b97f4a7c15u) >> 32) & mask;
  while (q->slots[i] && q->heads[q->slots[i] - 1].topic_id != topic_id) i = (i + 1) & mask;
  return i;
}

static void sq_slots_grow(sq_store_t *q) {
  size_t n = q->nslots ? 2 * q->nslots : 64;
  free(q->slots);
  q->slots = xcalloc(n, sizeof *q->slots);
  q->nslots = n;
  for (size_t k = 0; k < q->nheads; k++)
    q->slots[sq_slot_of(q, q->heads[k].topic_id)] = (uint32_t)(k + 1);
}

/* The batch's entry of topic_id, NULL when the batch has not touched it. */
static sq_head_t *sq_head_find(sq_store_t *q, int64_t topic_id) {
  if (q->nheads == 0) return NULL;
  uint32_t k = q->slots[sq_slot_of(q, topic_id)];
  return k ? &q->heads[k - 1] : NULL;
}

static int sq_batch_begin(void *be) {
  sq_store_t *q = be;
  if (store__wal_settle_due(&q->wal)) store__wal_settle(&q->wal, &q->rlock); /* see rlock */
  sq_heads_clear(q);
  return store__sql_begin(&q->sql);
}

static void sq_batch_rollback(void *be) {
  sq_store_t *q = be;
  sq_heads_clear(q);
  store__sql_rollback(&q->sql);
}

/* Finds or adds the batch's head entry of topic_id; -ENOENT for an unknown topic. */
static int sq_batch_head(sq_store_t *q, int64_t topic_id, sq_head_t **out) {
  sq_head_t *h = sq_head_find(q, topic_id);
  if (h) {
    *out = h;
    return 0;
  }
  sqlite3_stmt *st = store__sql_stmt(&q->sql, SQ_TOPIC_HEAD);
  sqlite3_bind_int64(st, 1, topic_id);
  int rc = sqlite3_step(st);
  uint64_t head = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  if (rc != SQLITE_ROW)
    return rc == SQLITE_DONE ? -ENOENT : store__sql_fail(&q->sql, rc, "topic head");
  if (q->nheads == q->heads_cap) {
    size_t cap = q->heads_cap ? 2 * q->heads_cap : 8;
    q->heads = xrealloc(q->heads, cap * sizeof *q->heads);
    memset(q->heads + q->heads_cap, 0, (cap - q->heads_cap) * sizeof *q->heads);
    q->heads_cap = cap;
  }
  if (2 * (q->nheads + 1) >= q->nslots) sq_slots_grow(q);
  h = &q->heads[q->nheads];
  h->topic_id = topic_id;
  h->head = head;
  h->chunk.count = 0;
  q->slots[sq_slot_of(q, topic_id)] = (uint32_t)++q->nheads;
  *out = h;
  return 0;
}

/* Writes the topic's pending appends as one chunk row (nothing when there are none). */
static int sq_head_flush(sq_store_t *q, sq_head_t *h) {
  if (h->chunk.count == 0) return 0;
  int rc = sq_chunk_insert(q, store__sql_stmt(&q->sql, SQ_CHUNK_INSERT), h->topic_id, &h->chunk);
  if (rc == 0) h->chunk.count = 0;
  return rc;
}

static int sq_dedupe_put(sq_store_t *q, const store_event_t *ev) {
  sqlite3_stmt *st = store__sql_stmt(&q->sql, SQ_DEDUPE_PUT);
  sqlite3_bind_int64(st, 1, ev->topic_id);
  store__sql_bind_text(st, 2, ev->id);
  sqlite3_bind_int64(st, 3, (int64_t)ev->seq);
  sqlite3_bind_int64(st, 4, ev->ts_ms);
  return store__sql_done(&q->sql, st, "dedupe put");
}

static int sq_batch_append_rows(sq_store_t *q, const store_event_t *ev) {
  if (ev->data_len > INT32_MAX) return -EINVAL;
  sq_head_t *h = NULL;
  int rc = sq_batch_head(q, ev->topic_id, &h);
  if (rc < 0) return rc;
  if (ev->seq != h->head + 1) return -EINVAL;
  if (ev->id) {
    rc = sq_dedupe_put(q, ev);
    if (rc < 0) return rc;
  }
  if (h->chunk.count == 0) store__chunk_start(&h->chunk, ev->seq);
  store__chunk_add(&h->chunk, ev);
  h->head = ev->seq;
  return h->chunk.len >= SQ_CHUNK_BYTES ? sq_head_flush(q, h) : 0;
}

static int sq_batch_topic(void *be, const store_new_topic_t *t) {
  sq_store_t *q = be;
  int rc = sq_topic_insert(q, t->name, t->topic_id, t->epoch);
  if (rc < 0) sq_batch_rollback(q);
  return rc;
}

static int sq_batch_append(void *be, const store_event_t *ev) {
  int rc = sq_batch_append_rows(be, ev);
  if (rc < 0) sq_batch_rollback(be);
  return rc;
}

static int sq_batch_commit(void *be) {
  sq_store_t *q = be;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < q->nheads; i++) {
    rc = sq_head_flush(q, &q->heads[i]);
    if (rc < 0) break;
    sqlite3_stmt *st = store__sql_stmt(&q->sql, SQ_TOPIC_SET_HEAD);
    sqlite3_bind_int64(st, 1, q->heads[i].topic_id);
    sqlite3_bind_int64(st, 2, (int64_t)q->heads[i].head);
    rc = store__sql_done(&q->sql, st, "set head");
  }
  rc = store__sql_end(&q->sql, rc);
  sq_heads_clear(q);
  return rc;
}

/* ---- reads ---- */

/* The first retained seq of topic_id, read on connection c; -ENOENT when the topic is
 * unknown. */
static int sq_topic_first(store_sql_t *c, int64_t topic_id, uint64_t *first) {
  sqlite3_stmt *st = store__sql_stmt(c, SQ_TOPIC_HEAD);
  sqlite3_bind_int64(st, 1, topic_id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *first = (uint64_t)sqlite3_column_int64(st, 1);
  sqlite3_reset(st);
  if (rc == SQLITE_ROW) return 0;
  return rc == SQLITE_DONE ? -ENOENT : store__sql_fail(c, rc, "topic head");
}

/* Logs a malformed chunk (seq: the row's first, or the record that failed). */
static int sq_corrupt(int64_t topic_id, uint64_t seq) {
  log_error("store", "corrupt event chunk", "{s:I,s:I}", "topic_id", (long long)topic_id, "seq",
            (long long)seq);
  return -EIO;
}

/* sqlite_events.h */
int store__sq_chunk_open(sqlite3_stmt *st, int64_t topic_id, int body_col,
                         store_chunk_iter_t *it, uint64_t *last) {
  int64_t first = sqlite3_column_int64(st, 0), last_seq = sqlite3_column_int64(st, 1);
  if (first < 1 || last_seq < first || sqlite3_column_type(st, body_col) != SQLITE_BLOB)
    return sq_corrupt(topic_id, (uint64_t)first);
  const void *body = sqlite3_column_blob(st, body_col);
  size_t len = (size_t)sqlite3_column_bytes(st, body_col);
  if (store__chunk_iter_init(it, body, len, (uint64_t)first) < 0)
    return sq_corrupt(topic_id, (uint64_t)first);
  *last = (uint64_t)last_seq;
  return 0;
}

/* sqlite_events.h */
int store__sq_chunk_step(store_chunk_iter_t *it, int64_t topic_id, uint64_t last,
                         store_event_t *ev) {
  uint64_t seq = it->next_seq;
  bool want = seq <= last;
  int rc = store__chunk_next(it, topic_id, ev);
  if (rc < 0 || (rc == 1) != want) return sq_corrupt(topic_id, seq);
  return rc;
}

/* Sends the events of the chunk rows of st with seq >= from, at most limit (0: no limit). */
static int sq_read_rows(store_sql_t *c, sqlite3_stmt *st, int64_t topic_id, uint64_t from,
                        size_t limit, store_event_cb cb, void *ud) {
  size_t sent = 0;
  int rc = SQLITE_DONE;
  while ((limit == 0 || sent < limit) && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    store_chunk_iter_t it;
    uint64_t last;
    int r = store__sq_chunk_open(st, topic_id, 2, &it, &last);
    if (r < 0) return r;
    store_event_t ev;
    while ((limit == 0 || sent < limit) && (r = store__sq_chunk_step(&it, topic_id, last, &ev)) == 1) {
      if (ev.seq < from) continue;
      sent++;
      int stop = cb(ud, &ev);
      if (stop) return stop;
    }
    if (r < 0) return r;
  }
  if (limit != 0 && sent == limit) return 0;
  return rc == SQLITE_DONE ? 0 : store__sql_fail(c, rc, "read");
}

/* The events of topic_id after after_seq on connection c (at most limit, 0: all). */
static int sq_read_on(store_sql_t *c, int64_t topic_id, uint64_t first, uint64_t after_seq,
                      size_t limit, store_event_cb cb, void *ud) {
  uint64_t from = after_seq + 1 > first ? after_seq + 1 : first;
  sqlite3_stmt *st = store__sql_stmt(c, SQ_CHUNK_READ);
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int64(st, 2, (int64_t)from);
  int rc = sq_read_rows(c, st, topic_id, from, limit, cb, ud);
  sqlite3_reset(st);
  return rc;
}

static int sq_read(void *be, int64_t topic_id, uint64_t after_seq, size_t limit, store_event_cb cb,
                   void *ud) {
  sq_store_t *q = be;
  uint64_t first = 0;
  int rc = sq_topic_first(&q->sql, topic_id, &first);
  if (rc < 0) return rc;
  sq_head_t *h = sq_head_find(q, topic_id);
  if (h) rc = sq_head_flush(q, h); /* the batch's appends are read back from their chunk */
  if (rc < 0) return rc;
  return sq_read_on(&q->sql, topic_id, first, after_seq, limit, cb, ud);
}

/* The same read on the reader connection, in one read transaction (one snapshot for the
 * topic's first seq and its chunks): what was committed when it began, never an open
 * batch's appends. Runs beside the main connection's commits, under the store's reader
 * lock only (store.c). */
static int sq_read_committed(void *be, int64_t topic_id, uint64_t after_seq, size_t limit,
                             store_event_cb cb, void *ud, bool wait) {
  sq_store_t *q = be;
  if (!wait && pthread_mutex_trylock(&q->rlock) != 0) return -EAGAIN;
  /* Taken by the committing thread through a settle's own pass (store__wal_settle), not
   * through the thread's pass before it nor the batch after it: the wait is bounded by
   * one pass. Waiting for the store's lock instead was worse (reads took up to 75 and
   * 129 ms in two runs, against 13-28 ms this way, docs/benchmarks.md), most likely
   * because the commit thread takes that lock again right after the batch, for a
   * retention slice or the next batch. */
  if (wait) pthread_mutex_lock(&q->rlock);
  pthread_mutex_lock(&q->rsql_mu);
  int rc = store__sql_exec(&q->rsql, "BEGIN");
  if (rc < 0) {
    pthread_mutex_unlock(&q->rsql_mu);
    pthread_mutex_unlock(&q->rlock);
    return rc;
  }
  uint64_t first = 0;
  rc = sq_topic_first(&q->rsql, topic_id, &first);
  if (rc == 0) rc = sq_read_on(&q->rsql, topic_id, first, after_seq, limit, cb, ud);
  if (sqlite3_exec(q->rsql.db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    int end = store__sql_fail(&q->rsql, sqlite3_errcode(q->rsql.db), "read commit");
    sqlite3_exec(q->rsql.db, "ROLLBACK", NULL, NULL, NULL);
    if (rc == 0) rc = end;
  }
  pthread_mutex_unlock(&q->rsql_mu);
  pthread_mutex_unlock(&q->rlock);
  return rc;
}

/* Whether a settle's pass holds the reader's lock (only the committing thread's settle
 * takes it from another thread than the loop's). */
static bool sq_reader_busy(void *be) {
  sq_store_t *q = be;
  if (pthread_mutex_trylock(&q->rlock) != 0) return true;
  pthread_mutex_unlock(&q->rlock);
  return false;
}

static pthread_mutex_t *sq_reader_lock(void *be) { return &((sq_store_t *)be)->rlock; }

/* A commit under synchronous=FULL waits for its fsync: never one for the loop. */
static bool sq_write_would_wait(void *be) {
  sq_store_t *q = be;
  return q->sql.sync_full || store__wal_settle_due(&q->wal);
}

static int sq_dedupe_find(void *be, int64_t topic_id, const char *id, int64_t min_ts_ms,
                          uint64_t *seq_out) {
  sq_store_t *q = be;
  sqlite3_stmt *st = store__sql_stmt(&q->sql, SQ_DEDUPE_FIND);
  sqlite3_bind_int64(st, 1, topic_id);
  store__sql_bind_text(st, 2, id);
  sqlite3_bind_int64(st, 3, min_ts_ms);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *seq_out = (uint64_t)sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  if (rc == SQLITE_ROW) return 0;
  return rc == SQLITE_DONE ? -ENOENT : store__sql_fail(&q->sql, rc, "dedupe find");
}

static int sq_dedupe_list_on(store_sql_t *c, int64_t topic_id, int64_t min_ts_ms, store_dedupe_cb cb,
                             void *ud) {
  sqlite3_stmt *st = store__sql_stmt(c, SQ_DEDUPE_LIST);
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int64(st, 2, min_ts_ms);
  int rc, stop = 0;
  while (stop == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    stop = cb(ud, store__sql_col_text(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
              sqlite3_column_int64(st, 2));
  }
  sqlite3_reset(st);
  if (stop) return stop;
  return rc == SQLITE_DONE ? 0 : store__sql_fail(c, rc, "dedupe list");
}

static int sq_dedupe_list(void *be, int64_t topic_id, int64_t min_ts_ms, store_dedupe_cb cb,
                          void *ud) {
  sq_store_t *q = be;
  return sq_dedupe_list_on(&q->sql, topic_id, min_ts_ms, cb, ud);
}

/* A short read too (sq_short_read_begin): a topic keeps the keys of one dedupe window. */
static int sq_dedupe_list_committed(void *be, int64_t topic_id, int64_t min_ts_ms, store_dedupe_cb cb,
                                    void *ud) {
  sq_store_t *q = be;
  bool locked = sq_short_read_begin(q);
  int rc = sq_dedupe_list_on(&q->rsql, topic_id, min_ts_ms, cb, ud);
  sq_short_read_end(q, locked);
  return rc;
}

static void sq_stats(void *be, store_stats_t *out) {
  sq_store_t *q = be;
  out->retention_topics = q->retention_topics;
  store__wal_stats(&q->wal, out);
}

static const store_ops_t sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .topic_get = sq_topic_get,
    .topic_create = sq_topic_create,
    .topic_reset = sq_topic_reset,
    .topic_list = sq_topic_list,
    .topic_reserve = sq_topic_reserve,
    .batch_topic = sq_batch_topic,
    .topic_get_committed = sq_topic_get_committed,
    .dedupe_list_committed = sq_dedupe_list_committed,
    .topic_list_committed = sq_topic_list_committed,
    .batch_begin = sq_batch_begin,
    .batch_append = sq_batch_append,
    .batch_commit = sq_batch_commit,
    .batch_rollback = sq_batch_rollback,
    .read = sq_read,
    .read_committed = sq_read_committed,
    .reader_busy = sq_reader_busy,
    .write_would_wait = sq_write_would_wait,
    .reader_lock = sq_reader_lock,
    .dedupe_find = sq_dedupe_find,
    .dedupe_list = sq_dedupe_list,
    .retention_run = store__sq_retention_run,
    .stats = sq_stats,
};

int store__sqlite_open(const store_options_t *opts, const store_ops_t **ops, void **be) {
  sq_store_t *q = xcalloc(1, sizeof *q);
  pthread_mutex_init(&q->rlock, NULL);
  pthread_mutex_init(&q->rsql_mu, NULL);
  int rc = sq_configure(q, opts);
  if (rc < 0) {
    sq_close(q);
    return -EIO; /* store.h: every open failure is -EIO */
  }
  *ops = &sq_ops;
  *be = q;
  return 0;
}
