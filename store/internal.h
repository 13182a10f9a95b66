/* store internals: the backend ops table and helpers shared by the backends.
 *
 * store.c owns the public entry points, the batch state machine (open/closed), argument
 * checks and the statistics; a backend only implements storage. The contract of each op
 * is the public function of the same name in store.h, with these differences, which
 * store.c guarantees before calling:
 *  - arguments are checked (non-NULL topic names and outputs, ev->seq > 0, budget > 0);
 *  - batch_append and batch_commit are only called inside a batch; batch_begin only
 *    outside one; topic_reset, retention_run and the creating half of topic_ensure only
 *    outside one;
 *  - when batch_append or batch_commit fail, the backend has already rolled back;
 *    store.c calls batch_rollback only for an explicit rollback or a close. */
#ifndef STORE_INTERNAL_H
#define STORE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* One retention slice's parameters, as passed to store_retention_run. */
typedef struct store_retention {
  uint64_t max_events;      /* 0 = no count limit */
  int64_t min_ts_ms;        /* 0 = no age limit */
  int64_t dedupe_min_ts_ms; /* 0 = keep idempotency keys */
  size_t budget;            /* > 0: rows deleted and topics examined per slice, each */
} store_retention_t;

typedef struct store_ops {
  const char *name; /* "sqlite", "memory": for logs */
  void (*close)(void *be);
  int (*topic_get)(void *be, const char *topic, store_topic_t *out);
  int (*topic_create)(void *be, const char *topic, const char *epoch, store_topic_t *out);
  int (*topic_reset)(void *be, const char *topic, const char *epoch, store_topic_t *out);
  /* names starting with prefix, from `from` on (from >= prefix) */
  int (*topic_list)(void *be, const char *prefix, const char *from, size_t limit, store_topic_cb cb, void *ud);
  /* Optional, all three or none: reserves the next topic id (any thread, no lock held);
   * writes a reserved topic's row inside the open batch (on failure the backend has
   * rolled the batch back, as for batch_append); topic_create then takes its ids from
   * the same reservations. */
  int (*topic_reserve)(void *be, int64_t *topic_id);
  int (*batch_topic)(void *be, const store_new_topic_t *t);
  /* Optional: topic_get, dedupe_list and topic_list of committed rows only, under the same
   * rules as read_committed below. */
  int (*topic_get_committed)(void *be, const char *topic, store_topic_t *out);
  int (*dedupe_list_committed)(void *be, int64_t topic_id, int64_t min_ts_ms, store_dedupe_cb cb,
                               void *ud);
  int (*topic_list_committed)(void *be, const char *prefix, const char *from, size_t limit, store_topic_cb cb,
                              void *ud);
  int (*batch_begin)(void *be);
  int (*batch_append)(void *be, const store_event_t *ev);
  int (*batch_commit)(void *be);
  void (*batch_rollback)(void *be);
  int (*read)(void *be, int64_t topic_id, uint64_t after_seq, size_t limit, store_event_cb cb,
              void *ud);
  /* Optional: the same read of committed events only, safe to run while another thread
   * is inside a call (a commit) under the store's lock, without that lock; the backend
   * serializes these calls itself and may make them wait through a WAL settle's pass, or,
   * without wait, return -EAGAIN instead. Never called while a step-by-step batch is
   * open. */
  int (*read_committed)(void *be, int64_t topic_id, uint64_t after_seq, size_t limit,
                        store_event_cb cb, void *ud, bool wait);
  /* Optional: whether read_committed without wait would return -EAGAIN now. */
  bool (*reader_busy)(void *be);
  /* Optional, under the store's lock: whether the next batch_begin would first wait for
   * upkeep of the backend's own (a WAL settle). */
  bool (*write_would_wait)(void *be);
  /* Optional: the lock a WAL settle's pass holds against the reader (store_hold_for_test). */
  pthread_mutex_t *(*reader_lock)(void *be);
  int (*dedupe_find)(void *be, int64_t topic_id, const char *id, int64_t min_ts_ms,
                     uint64_t *seq_out);
  int (*dedupe_list)(void *be, int64_t topic_id, int64_t min_ts_ms, store_dedupe_cb cb, void *ud);
  /* *deleted: events removed by this slice (idempotency keys not counted). */
  int (*retention_run)(void *be, const store_retention_t *r, uint64_t *deleted, bool *more);
  /* Optional: adds the backend's own figures to *out (called under the store's lock). */
  void (*stats)(void *be, store_stats_t *out);
} store_ops_t;

/* The backend state of s (tests reach into the SQLite backend's locks with it). */
void *store__backend(store_t *s);

/* The file of a part (runs, groups) beside the event log's events_path: its ".db" suffix
 * (if any) replaced by "-<part>.db" ("data/coordinator.db", "runs" ->
 * "data/coordinator-runs.db"). Owned by the caller. */
char *store__part_path(const char *events_path, const char *part);

/* Backend constructors: on success *ops points at the backend's static table and *be at
 * its state, owned by the store_t that store.c builds around them. */
int store__sqlite_open(const store_options_t *opts, const store_ops_t **ops, void **be)
    __attribute__((warn_unused_result));
int store__memory_open(const store_ops_t **ops, void **be) __attribute__((warn_unused_result));

/* Fills out with STORE_EPOCH_LEN lowercase hex characters from getrandom(2) and a NUL.
 * -EIO when the kernel's random source fails. */
int store__epoch_new(char out[STORE_EPOCH_LEN + 1]) __attribute__((warn_unused_result));

/* The lowest seq that count retention keeps: everything below it is beyond max_events
 * newest. 1 when max_events is 0 (no limit) or the topic holds fewer. */
static inline uint64_t store__count_keep(uint64_t head_seq, uint64_t max_events) {
  if (max_events == 0 || head_seq <= max_events) return 1;
  return head_seq - max_events + 1;
}

/* ---- event chunks (chunk.c) ----
 *
 * The events of one topic that one batch commits are stored together in one row; the
 * blob's format is described in chunk.c. The encoder appends events (whose seqs the
 * caller keeps dense) to a growing buffer; the decoder walks a blob read back from the
 * file and treats it as hostile: every length is checked, and a malformed blob is -EIO. */
#define STORE_CHUNK_FORMAT 1 /* the blob's first byte */

/* Invariant: when started, buf[0..len) holds the format byte and count records, the
 * first of seq first_seq; ts_min and ts_max bound their ts_ms (0 while count is 0). */
typedef struct store_chunk {
  uint8_t *buf; /* owned */
  size_t len, cap; /* bytes */
  uint64_t first_seq;
  uint64_t count;
  int64_t ts_min, ts_max; /* ms */
  int64_t ts_last;        /* ms: the last record's, the base of the next delta */
} store_chunk_t;

/* Empties c (keeping its buffer) for a run of events starting at first_seq. */
void store__chunk_start(store_chunk_t *c, uint64_t first_seq);
/* Appends ev as record number c->count (its seq is assumed to be first_seq + count; ev's
 * topic_id and seq are not stored). Strings are copied; ev->data_len bytes of data. */
void store__chunk_add(store_chunk_t *c, const store_event_t *ev);
/* Frees the buffer and zeroes c. */
void store__chunk_free(store_chunk_t *c);

/* A read position in a blob; borrowed pointers into it. */
typedef struct store_chunk_iter {
  const uint8_t *p, *end; /* borrowed: the unread bytes */
  uint64_t next_seq;      /* seq of the next record */
  int64_t ts;             /* ms: the previous record's ts_ms */
} store_chunk_iter_t;

/* Starts reading blob[0..len) whose first record has seq first_seq. -EIO when the blob
 * is empty or of another format. */
int store__chunk_iter_init(store_chunk_iter_t *it, const void *blob, size_t len,
                           uint64_t first_seq) __attribute__((warn_unused_result));
/* Decodes the next record into ev (strings point into the blob, NUL-terminated, valid as
 * long as the blob is). Returns 1 for an event, 0 at the blob's end, -EIO when the record
 * is malformed (the iterator is then unusable). */
int store__chunk_next(store_chunk_iter_t *it, int64_t topic_id, store_event_t *ev)
    __attribute__((warn_unused_result));

/* ---- runs (runs.c, runs_sqlite.c, runs_memory.c) ----
 *
 * The runs half of a store is a second backend beside the event log's, opened and closed
 * with it by store.c. runs.c checks arguments before calling (non-NULL required fields,
 * lengths within STORE_RUN_ID_MAX / STORE_STEP_KEY_MAX, attempt >= 1); the contract of
 * each op is the public function of the same name. */
typedef struct store_runs_ops {
  void (*close)(void *rb);
  int (*create)(void *rb, const store_run_t *run, char existing[STORE_RUN_ID_MAX + 1]);
  int (*save)(void *rb, const store_run_t *run, const store_step_t *steps, size_t n);
  int (*get)(void *rb, const char *run_id, store_run_cb cb, void *ud);
  int (*list)(void *rb, const store_run_filter_t *f, store_run_cb cb, void *ud);
  int (*steps)(void *rb, const char *run_id, store_step_cb cb, void *ud);
  int (*del)(void *rb, const char *run_id);
  /* Optional: the wal_* figures of the runs' own file (store_part_stats_get). */
  void (*wal_stats)(void *rb, store_stats_t *out);
} store_runs_ops_t;

int store__runs_sqlite_open(const store_options_t *opts, const store_runs_ops_t **ops, void **rb)
    __attribute__((warn_unused_result));
int store__runs_memory_open(const store_runs_ops_t **ops, void **rb)
    __attribute__((warn_unused_result));
/* store.c: the runs backend of s (ops and state). */
const store_runs_ops_t *store__runs(store_t *s, void **rb);
/* The lock every run call holds (not the store's: see store.c, runs_lock). */
void store__runs_lock(store_t *s);
void store__runs_unlock(store_t *s);
/* The lock every consumer group call holds (its own too). */
void store__groups_lock(store_t *s);
void store__groups_unlock(store_t *s);
/* store.c: the store's lock, held by every public call for its whole duration (so a call
 * from one thread never lands inside another thread's store_batch_write). Not recursive:
 * backend callbacks must not call back into the store. */
void store__lock(store_t *s);
void store__unlock(store_t *s);
/* Whether a run status is final ("completed", "failed", "cancelled"). */
bool store__run_status_final(const char *status);

/* ---- consumer groups (groups.c, groups_sqlite.c, groups_memory.c) ----
 *
 * A third backend beside the event log's and the runs', opened and closed with them by
 * store.c. groups.c checks arguments before calling (non-empty names within their
 * limits, non-NULL callbacks and arrays, next_seq >= 1);
 * the contract of each op is the public function of the same name. */
typedef struct store_groups_ops {
  void (*close)(void *gb);
  int (*load)(void *gb, const char *topic, const char *name, store_group_cb gcb, store_lease_cb lcb,
              void *ud);
  int (*list)(void *gb, const char *topic, store_group_cb cb, void *ud);
  int (*save)(void *gb, const store_group_write_t *w, size_t n);
  int (*del)(void *gb, const char *topic, const char *name);
  /* Optional: the wal_* figures of the groups' own file (store_part_stats_get). */
  void (*wal_stats)(void *gb, store_stats_t *out);
} store_groups_ops_t;

int store__groups_sqlite_open(const store_options_t *opts, const store_groups_ops_t **ops,
                              void **gb) __attribute__((warn_unused_result));
int store__groups_memory_open(const store_groups_ops_t **ops, void **gb)
    __attribute__((warn_unused_result));
/* store.c: the groups backend of s (ops and state). */
const store_groups_ops_t *store__groups(store_t *s, void **gb);

/* ---- SQLite connections (sqlite_conn.c) ----
 *
 * What the three SQLite backends (sqlite.c, runs_sqlite.c, groups_sqlite.c) share: a
 * connection opened with the same settings, BEGIN IMMEDIATE / COMMIT / ROLLBACK and an
 * array of statements prepared once from the backend's table of SQL texts, the one
 * mapping of SQLite's error codes to negative errno (each failure logged once), and the
 * versioning of a part's tables in store_parts. The statements, the schema and what they
 * mean stay in each backend. sqlite3.h is not included here: the memory backends never
 * see it. All calls run on the thread that owns the connection. */
struct sqlite3;
struct sqlite3_stmt;

/* How long a connection waits for another's write lock before SQLITE_BUSY. */
#define STORE_SQL_BUSY_TIMEOUT_MS 2000 /* ms */

/* Invariant: stmt has nstmt entries, each prepared (or NULL after a failed prepare);
 * txn holds BEGIN IMMEDIATE, COMMIT and ROLLBACK once store__sql_prepare succeeded. */
typedef struct store_sql {
  struct sqlite3 *db;         /* owned */
  struct sqlite3_stmt **stmt; /* owned: the backend's statements, by its enum */
  size_t nstmt;
  struct sqlite3_stmt *txn[3]; /* owned */
  const char *part;            /* borrowed, static: NULL for the event log, "runs", "groups"
                                  (named in log lines) */
  bool sync_full;              /* opened with synchronous=FULL */
} store_sql_t;
/* The store_parts version the event log's file keeps for a part that moved to a file of
 * its own (store__sql_move_legacy), so that older builds refuse the folder. */
#define STORE_PART_MOVED 1000
/* A table of a part, as an older build kept it in the event log's file. */
typedef struct store_legacy_table {
  const char *name; /* e.g. "runs" */
  const char *cols; /* its columns, comma-separated */
} store_legacy_table_t;
/* Moves the part's tables (c->part; tables[0] tells whether there is anything to move)
 * from the event log's file at events_path into c's file, whose schema is already there:
 * copied in one synced transaction (replacing what c's tables held), then dropped from
 * the event log's file in another. A crash between the two is repaired by the next call.
 * Then, moved or not, marks the part STORE_PART_MOVED in the event log's store_parts. */
int store__sql_move_legacy(store_sql_t *c, const char *events_path, const store_legacy_table_t *tables,
                           size_t n) __attribute__((warn_unused_result));

/* Opens opts->path (created when missing) into c, which the caller zeroed, and sets the
 * busy timeout, WAL mode (checked) and opts' synchronous level. On failure c may hold an
 * open connection: the caller calls store__sql_close either way. Returns 0, -EIO when the
 * file cannot be opened or put in WAL mode, or store__sql_fail's mapping. */
int store__sql_open(store_sql_t *c, const store_options_t *opts, const char *part)
    __attribute__((warn_unused_result));
/* Prepares the transaction statements and sql[0..n-1] (persistent), in that order; the
 * texts are borrowed and must outlive c. Returns 0 or the first failure's mapping. */
int store__sql_prepare(store_sql_t *c, const char *const *sql, size_t n)
    __attribute__((warn_unused_result));
/* Finalizes every statement and closes the connection; c may be partly opened. */
void store__sql_close(store_sql_t *c);

/* The one place SQLite's error space becomes ours: logs one line (op, code, message) and
 * returns -EBUSY (busy, locked), -ENOSPC (full), -ENOMEM or -EIO. */
int store__sql_fail(store_sql_t *c, int rc, const char *op) __attribute__((warn_unused_result));
/* sqlite3_exec of sql (which may hold several statements); a failure is logged with the
 * SQL as op. Returns 0 or store__sql_fail's mapping. */
int store__sql_exec(store_sql_t *c, const char *sql) __attribute__((warn_unused_result));
/* Statement i of the backend's table, reset and unbound, ready for binding. */
struct sqlite3_stmt *store__sql_stmt(store_sql_t *c, size_t i);
/* Steps a statement that returns no rows and resets it. 0 or store__sql_fail's mapping. */
int store__sql_done(store_sql_t *c, struct sqlite3_stmt *st, const char *op)
    __attribute__((warn_unused_result));
/* Binds s as text (borrowed until the statement is reset), or NULL when s is NULL. */
void store__sql_bind_text(struct sqlite3_stmt *st, int col, const char *s);
/* Column col of the current row as text (valid until the next step or reset). */
const char *store__sql_col_text(struct sqlite3_stmt *st, int col);

/* A small transaction: store__sql_begin opens it (BEGIN IMMEDIATE); store__sql_end
 * commits when rc is 0 and rolls back when rc (or the commit) failed, returning that
 * result. Usage: rc = begin; if (rc < 0) return rc; ...; return store__sql_end(c, rc). */
int store__sql_begin(store_sql_t *c) __attribute__((warn_unused_result));
int store__sql_end(store_sql_t *c, int rc) __attribute__((warn_unused_result));
/* Rolls back the open transaction, if any; a failure is only logged. */
void store__sql_rollback(store_sql_t *c);

/* Brings c->part's tables to version `supported` in one transaction, keeping the version
 * in store_parts(part, version) (created when missing): steps[v] takes the part from
 * version v to v + 1 (steps[0] creates the tables) and must update store_parts itself.
 * Returns 0, -EIO when the file holds a newer version, or store__sql_fail's mapping. */
int store__sql_part_migrate(store_sql_t *c, int supported, const char *const *steps)
    __attribute__((warn_unused_result));

/* ---- WAL write buffering (sqlite_vfs.c) ----
 *
 * A VFS over the default one that gathers the writes SQLite makes to write-ahead logs and
 * hands them to the file in few writes, each commit complete before SQLite returns from
 * writing it (see sqlite_vfs.c); every other file is the default VFS's own. */
#define STORE_VFS_NAME "coord-walbuf"

/* Registers the VFS on first use (not as the default) and returns its name for
 * sqlite3_open_v2, or NULL (the default VFS; logged once) when it cannot be registered.
 * Thread-safe. */
const char *store__vfs(void);
/* After a transaction of db ended without committing (ROLLBACK, or a failed COMMIT that
 * SQLite rolled back): drops the frames of it still buffered, so that they never land
 * over frames another connection commits in their place. Does nothing while db has a
 * transaction open or when its log is not buffered. */
void store__vfs_rolled_back(struct sqlite3 *db);

/* Process-wide counts since start, for tests and diagnosis. */
typedef struct store_vfs_counts {
  uint64_t wal_writes;     /* xWrite calls SQLite made to WAL files */
  uint64_t wal_pwrites;    /* writes the shim made to the real WAL files */
  uint64_t wal_flush_errs; /* of those, the ones that failed */
} store_vfs_counts_t;
void store__vfs_counts(store_vfs_counts_t *out);

/* ---- the event log's write-ahead log (sqlite_wal.c) ---- */

/* The checkpointer thread and the settle that keeps the log within wal_max (see
 * sqlite_wal.c). due, running and stop are guarded by mu, and cv is broadcast whenever one
 * of them changes; db belongs to the thread while it runs. Invariant: at most one
 * checkpoint pass (the thread's or a settle's) runs at a time, the one that set running.
 * frames, woke_at, woke_ms, settle_frames, settles, settle_us, appended, wakes and seen are touched only by the main connection's
 * user, under the store's lock. */
typedef struct store_wal {
  store_sql_t *sql; /* borrowed: the main connection, whose log this keeps */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct sqlite3 *db; /* owned: the checkpointer's own connection */
  bool started;
  bool due;     /* the log passed ckpt_frames since the last pass began */
  bool running; /* a pass is under way */
  bool stop;
  int frames;        /* in the log after the main connection's last commit; 0 after a whole settle */
  int woke_at;       /* frames in the log when the checkpointer was last woken */
  int64_t woke_ms;   /* and when (CLOCK_MONOTONIC_COARSE, ms) */
  int ckpt_frames;   /* frames appended since then that wake it again */
  int max_frames;    /* the bound (wal_max) in frames */
  int settle_frames; /* frames at which the next batch settles first */
  uint64_t settles, settle_us; /* settles so far and the time they took */
  uint64_t appended;  /* frames the main connection's commits appended to the log */
  uint64_t wakes;     /* times the hook woke the checkpointer */
  int seen;           /* the log's length at the last commit, for appended (frames is
                         zeroed by a whole settle, which may not restart the log) */
  uint64_t passes;    /* mu: checkpoint passes (the thread's and the settles') */
} store_wal_t;

/* Sizes the log's bounds from opts->wal_max_bytes (PRAGMA journal_size_limit too) and
 * starts the checkpointer on sql's file; w zeroed by the caller. Without a thread (logged)
 * SQLite's autocheckpoint stays in charge. Returns 0 or store__sql_fail's mapping. */
int store__wal_open(store_wal_t *w, store_sql_t *sql, const store_options_t *opts)
    __attribute__((warn_unused_result));
/* Before a batch's transaction opens, on the committing thread under the store's lock:
 * whether the log has passed its bound, and settling it then (blocks for about one
 * checkpoint pass). readers, when not NULL, is a mutex every reader of the file takes
 * around its read transactions: the settle holds it through its own pass only. */
bool store__wal_settle_due(const store_wal_t *w);
void store__wal_settle(store_wal_t *w, pthread_mutex_t *readers);
/* Adds the settles and their time to *out. */
void store__wal_stats(store_wal_t *w, store_stats_t *out);
/* Stops the thread and closes its connection; safe on a never-started w. */
void store__wal_close(store_wal_t *w);

/* ---- parts in files of their own (sqlite_conn.c) ----
 *
 * The runs and the consumer groups live beside the event log, each in <stem>-<part>.db
 * (store__part_path) with a connection and a checkpointer thread of its own: in the event
 * log's file, SQLite's one writer made every write of theirs wait for the commit thread. */

#define STORE_PART_CACHE_BYTES (4u << 20) /* a part's page cache, at most */
#define STORE_PART_WAL_MAX (16u << 20)    /* a part's log bound, at most (a smaller wal_max too) */

typedef struct store_part_file {
  store_sql_t sql; /* owned: the connection and its statements */
  store_wal_t wal; /* the file's checkpointer */
  bool wal_open;
} store_part_file_t;

typedef struct store_part_spec {
  const char *part;                  /* "runs", "groups": the file's name and store_parts key */
  int version;                       /* the schema version this build writes */
  const char *const *migrations;     /* version entries, as store__sql_part_migrate takes */
  const store_legacy_table_t *legacy; /* the tables an older build kept in the event log's file */
  size_t nlegacy;
  const char *const *sql; /* the statements, as store__sql_prepare takes */
  size_t nsql;
} store_part_spec_t;

/* Opens (creating when missing) the part's file beside opts->path into f, which the caller
 * zeroed: schema, the move of an older build's tables (store__sql_move_legacy), the
 * statements, the checkpointer. On failure the caller calls store__part_close. */
int store__part_open(store_part_file_t *f, const store_options_t *opts, const store_part_spec_t *spec)
    __attribute__((warn_unused_result));
/* Opens a write transaction; first, once the log has passed its bound, settles it (as the
 * event log's batches do): under steady small writes (a group flush per loop turn) the log
 * starts over only then. A settle waits for one checkpoint pass, on the caller's thread
 * (the loop), once per STORE_PART_WAL_MAX of the file's log. */
int store__part_begin(store_part_file_t *f) __attribute__((warn_unused_result));
/* The wal_* figures of f's log into out (all 0 for a file without a checkpointer). */
void store__part_wal_stats(store_part_file_t *f, store_stats_t *out);
void store__part_close(store_part_file_t *f);

#endif
