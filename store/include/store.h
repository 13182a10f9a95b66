/* store: the durable log of events per topic, behind a narrow backend interface.
 *
 * Owns: topic metadata (id, epoch, head and first retained seq), the events of each topic
 * keyed by (topic, seq), the idempotency keys inside the dedupe window, retention by count
 * and age; workflow runs and their step results (last section). Knows nothing of streams,
 * subscribers or the event loop: every call is synchronous and runs on the caller's thread;
 * the caller batches appends (group commit) so that one commit covers many events.
 *
 * Threads: every public call takes the store's lock for its whole duration, so one store
 * may be used from several threads (streams commits from a writer thread while its loop
 * reads, creates topics, runs retention and saves runs and groups). A call blocks while
 * another thread's call holds the lock, e.g. for the length of a store_batch_write, except
 * store_stats_get (see there), store_topic_reserve, and on SQLite store_read,
 * store_topic_lookup, store_dedupe_list and store_topic_list, which then read on a second
 * connection what was committed when they began (never another thread's batch in
 * progress), unless a WAL settle is under way (for store_read and an unbounded
 * store_topic_list) or a step-by-step batch is open. The
 * step-by-step batch calls (store_batch_begin/append/commit) do not hold the lock between
 * them: use them from one thread only; store_batch_write is the batch for shared use.
 *
 * Backends are ops tables: SQLite in WAL mode (store_open_sqlite) is the default, an
 * in-memory one (store_open_memory) serves tests; Redis may stand beside them later.
 *
 * Invariants every backend keeps:
 *  - seq is dense per topic: store_batch_append() is only called with head_seq + 1 for
 *    that topic (the caller assigns seqs); a batch is all-or-nothing.
 *  - head_seq never goes back, even when retention deletes every event of a topic, and
 *    survives restarts; epoch changes only through store_topic_reset().
 *  - Only what store_batch_commit() returned 0 for is visible to store_read() after a
 *    crash and restart.
 *
 * Errors are negative errno values: -ENOENT (unknown topic or id), -EINVAL (bad argument),
 * -EIO (the backend failed; the message is logged), -EBUSY (batch misuse, or the database
 * stayed locked by another process past the busy timeout), -ENOSPC (disk full).
 *
 * Callbacks (store_*_cb) must not call back into the same store; the strings they get
 * are valid only during the call. */
#ifndef STORE_H
#define STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_EPOCH_LEN 16 /* hex characters, not counting the terminator */

typedef struct store store_t;

#define STORE_WAL_MAX_DEFAULT (256u << 20) /* bytes */
#define STORE_CACHE_DEFAULT (32u << 20)   /* bytes of SQLite page cache per connection */

typedef struct store_options {
  const char *path;      /* SQLite file; its folder must exist. Ignored by memory backend */
  bool synchronous_full; /* PRAGMA synchronous=FULL instead of NORMAL (WAL) */
  /* bytes; 0 = STORE_WAL_MAX_DEFAULT. The write-ahead log is started over from its
   * beginning once it holds this much (the commit that crosses it may add one batch), and
   * a file that grew past it is truncated back to it when the log starts over. */
  size_t wal_max_bytes;
  /* bytes; 0 = STORE_CACHE_DEFAULT. SQLite's page cache of each of the store's
   * connections, taken only as pages are used (PRAGMA cache_size). */
  size_t cache_bytes;
  /* PRAGMA secure_delete=ON: every deleted byte is overwritten with zeros, freed pages
   * too, which writes each page retention frees once more. Off (the default), it is FAST:
   * deleted bytes are zeroed inside the pages a delete writes anyway, and freed pages keep
   * their old bytes until they are reused. */
  bool secure_delete;
} store_options_t;

typedef struct store_topic {
  int64_t topic_id;                  /* backend's key for the topic; stable */
  char epoch[STORE_EPOCH_LEN + 1];   /* lowercase hex */
  uint64_t head_seq;                 /* newest seq ever committed; 0 when none */
  uint64_t first_seq;                /* oldest retained seq; head_seq + 1 when none kept */
} store_topic_t;

/* One event as stored. Strings are borrowed for the duration of the call that takes or
 * yields the struct; data is the event's "data" as compact JSON text (may be NULL). */
typedef struct store_event {
  int64_t topic_id;
  uint64_t seq;
  int64_t ts_ms;      /* wall clock, ms since the Unix epoch */
  const char *id;     /* idempotency key, NULL when none */
  const char *type;   /* NULL when none */
  int lane;           /* streams' lane number; the store keeps it opaque */
  const char *data;
  size_t data_len;
} store_event_t;

/* Returns 0 to continue, nonzero to stop the iteration early (that value is returned). */
typedef int (*store_event_cb)(void *ud, const store_event_t *ev);
typedef int (*store_topic_cb)(void *ud, const char *topic, const store_topic_t *t);
typedef int (*store_dedupe_cb)(void *ud, const char *id, uint64_t seq, int64_t ts_ms);

typedef struct store_stats {
  uint64_t commits;         /* successful store_batch_commit calls */
  uint64_t events_appended; /* events in those commits */
  uint64_t events_deleted;  /* by retention */
  uint64_t retention_slices; /* store_retention_run calls that ran */
  uint64_t retention_us_total; /* time they took, microseconds */
  uint64_t retention_topics;   /* SQLite: topics they examined (only those holding events) */
  uint64_t commit_us_total; /* time spent committing, microseconds */
  uint64_t wal_settles;     /* SQLite: batches that first waited for the WAL to be copied back */
  uint64_t wal_settle_us_total; /* SQLite: time those waits held commits, microseconds */
  uint64_t wal_frames;      /* SQLite: pages (frames) commits appended to the WAL */
  uint64_t wal_checkpoints; /* SQLite: checkpoint passes that copied the WAL back */
  uint64_t wal_wakes;       /* SQLite: times commits woke the checkpointer */
} store_stats_t;

/* Opens (creating when missing) the SQLite store at opts->path, in WAL mode, with the
 * schema migrated. Errors: -EINVAL (no path), -EIO (cannot open, locked, corrupt). */
int store_open_sqlite(const store_options_t *opts, store_t **out) __attribute__((warn_unused_result));
/* An in-memory backend with the same contract (tests, benchmarks of the upper layers). */
int store_open_memory(store_t **out) __attribute__((warn_unused_result));
/* Closes the store; an open batch is rolled back. NULL is accepted. */
void store_close(store_t *s);

/* Looks a topic up by name ("tenant/room"). -ENOENT when it was never created. */
int store_topic_get(store_t *s, const char *topic, store_topic_t *out) __attribute__((warn_unused_result));
/* Looks a topic up like store_topic_get, but never waits for another thread's call: while
 * one holds the store, a SQLite store looks on its reader connection (what was committed;
 * see "Threads"), the others wait. For the event loop, while a commit thread writes. */
int store_topic_lookup(store_t *s, const char *topic, store_topic_t *out) __attribute__((warn_unused_result));
/* Creates the topic with a fresh random epoch, or returns the existing one. Creating a
 * topic while a batch is open is -EBUSY (looking up an existing one is fine). */
int store_topic_ensure(store_t *s, const char *topic, store_topic_t *out) __attribute__((warn_unused_result));
/* A topic that store_batch_write_topics creates: its id and epoch from store_topic_reserve. */
typedef struct store_new_topic {
  const char *name;  /* "tenant/room", not yet in the store */
  int64_t topic_id;  /* reserved */
  const char *epoch; /* STORE_EPOCH_LEN hex characters */
} store_new_topic_t;
/* Reserves a new topic's id and draws a fresh epoch without writing or waiting for the
 * lock: out gets them, head_seq 0 and first_seq 1. The topic exists once a
 * store_batch_write_topics that names it commits; until then the caller must make sure
 * that no other creation of the same name happens (streams keeps such a topic in memory).
 * An id reserved and never written is never handed out again. -ENOTSUP on a backend
 * that creates topics only through store_topic_ensure (memory). */
int store_topic_reserve(store_t *s, store_topic_t *out) __attribute__((warn_unused_result));
/* Drops every event and idempotency key of the topic and gives it a new epoch; head_seq
 * and first_seq restart (0 and 1). For operators' resets and corrupted histories.
 * -EBUSY while a batch is open. */
int store_topic_reset(store_t *s, const char *topic, store_topic_t *out) __attribute__((warn_unused_result));
/* Calls cb for every topic whose name starts with prefix (e.g. "acme/") and, when after is
 * not NULL, sorts after it (the last name of the previous page), by name order, at most
 * limit topics (0 = no limit). Like store_read, a SQLite store lists the committed rows
 * instead of waiting while another thread's call holds the store. */
int store_topic_list(store_t *s, const char *prefix, const char *after, size_t limit, store_topic_cb cb,
                     void *ud) __attribute__((warn_unused_result));

/* Group commit. begin opens a transaction (-EBUSY if one is open); append adds one event
 * (its seq must be the topic's head_seq + 1 counting the batch's earlier appends, else
 * -EINVAL) and records its idempotency key when ev->id is set; commit makes the batch
 * durable and advances head_seq; on any error the whole batch is rolled back and nothing
 * of it is visible (a later commit then returns -EBUSY: there is no batch). Unknown
 * topic_id is -ENOENT. While the batch is open, store_read and store_dedupe_* already see
 * its appends but store_topic_get still shows the committed head_seq. An idempotency key
 * that is already recorded (an expired one still awaiting retention) is replaced.
 * store_batch_rollback without an open batch does nothing. */
int store_batch_begin(store_t *s) __attribute__((warn_unused_result));
int store_batch_append(store_t *s, const store_event_t *ev) __attribute__((warn_unused_result));
int store_batch_commit(store_t *s) __attribute__((warn_unused_result));
void store_batch_rollback(store_t *s);
/* The whole batch in one call, under the lock from begin to commit: begin, append each of
 * evs[0..n) in order, commit; all or nothing, with the errors above (-EBUSY when a
 * step-by-step batch is open; n 0 is -EINVAL). Safe from any thread; the strings of evs
 * are only read. May block for the length of the commit: streams calls it from its
 * writer thread (or, with the thread off, from the loop). */
int store_batch_write(store_t *s, const store_event_t *evs, size_t n) __attribute__((warn_unused_result));
/* store_batch_write_topics for the event loop's small batches: returns -EAGAIN at once,
 * having written nothing, where it would wait for more than its own commit: another
 * thread's call holds the store (a commit, a retention slice), a step-by-step batch is
 * open, the backend must first settle its log (a checkpoint pass, with fsyncs), or each
 * commit syncs (synchronous_full). */
int store_batch_write_topics_nowait(store_t *s, const store_new_topic_t *tops, size_t nt,
                                    const store_event_t *evs, size_t n) __attribute__((warn_unused_result));
/* store_batch_write that first creates the topics tops[0..nt) (reserved), in the same
 * transaction, so evs may hold their first events; nt + n > 0. A name or id that exists
 * already fails the whole batch with -EEXIST. -ENOTSUP for nt > 0 on a backend without
 * store_topic_reserve. */
int store_batch_write_topics(store_t *s, const store_new_topic_t *tops, size_t nt, const store_event_t *evs,
                             size_t n) __attribute__((warn_unused_result));

/* Calls cb for the retained events of the topic with seq > after_seq, ascending, at most
 * limit (0 = no limit). Returns 0, cb's nonzero value, or an error (-ENOENT for an
 * unknown topic_id). While another thread's call holds the store, a SQLite store reads
 * the committed events without waiting for it (see "Threads"); cb then runs under the
 * reader's own lock, which a commit may wait for around a WAL settle: keep cb short. */
int store_read(store_t *s, int64_t topic_id, uint64_t after_seq, size_t limit, store_event_cb cb,
               void *ud) __attribute__((warn_unused_result));
/* store_read for the event loop: where store_read would wait for a WAL settle's pass
 * (tens of ms at the publish ceiling), returns -EAGAIN at once instead, having called cb
 * for nothing; store_reader_busy then says when to try again. It may still wait, as
 * store_read does, for another thread's call on a backend without a reader (the memory
 * one) or while a step-by-step batch is open. */
int store_read_nowait(store_t *s, int64_t topic_id, uint64_t after_seq, size_t limit,
                      store_event_cb cb, void *ud) __attribute__((warn_unused_result));
/* Whether store_read_nowait would return -EAGAIN now (a settle holds the reader). */
bool store_reader_busy(store_t *s);

/* Finds the seq that idempotency key id got on the topic at or after min_ts_ms.
 * -ENOENT when none. */
int store_dedupe_find(store_t *s, int64_t topic_id, const char *id, int64_t min_ts_ms,
                      uint64_t *seq_out) __attribute__((warn_unused_result));
/* Calls cb for each idempotency key of the topic recorded at or after min_ts_ms (used to
 * warm a topic's in-memory dedupe table when it is loaded), in no particular order. Like
 * store_read, a SQLite store lists the committed keys instead of waiting while another
 * thread's call holds the store (cb then runs under the reader's lock: keep it short). */
int store_dedupe_list(store_t *s, int64_t topic_id, int64_t min_ts_ms, store_dedupe_cb cb, void *ud)
    __attribute__((warn_unused_result));

/* Retention over all topics: keeps at most max_events newest events per topic (0 = no
 * count limit) and deletes events older than min_ts_ms (0 = no age limit), and forgets
 * idempotency keys older than dedupe_min_ts_ms (0 = keep them). Works in slices of at
 * most `budget` deleted rows so the caller can spread it over loop turns; *more is set
 * when work is left. Updates first_seq.
 * Details: a slice also examines at most `budget` topics, continuing where the previous
 * slice stopped; call again while *more is true (it may be true once more than needed).
 * Age retention deletes only the oldest run of events older than min_ts_ms, stopping at
 * the first newer one, so the retained events stay exactly first_seq..head_seq even when
 * the clock stepped back; it may delete every event of a topic (first_seq = head_seq + 1).
 * Count retention never deletes any of the max_events newest. budget 0 is -EINVAL;
 * -EBUSY while a batch is open. */
int store_retention_run(store_t *s, uint64_t max_events, int64_t min_ts_ms, int64_t dedupe_min_ts_ms,
                        size_t budget, bool *more) __attribute__((warn_unused_result));

/* The store's figures. Never waits for another thread's call: while one holds the store
 * (a commit, a retention slice), the figures are those taken at the end of the last
 * commit or slice (or by the last get that found the store free). Counters never go
 * back; what changed since (a checkpoint pass of the checkpointer thread, the WAL frames
 * of a topic's creation) shows at the next commit, slice or free get. */
void store_stats_get(const store_t *s, store_stats_t *out);

/* For the daemon's test routes (integration tests): a stand-in for the commit thread in a
 * WAL settle's pass. A thread of its own takes the store's lock and the reader's lock and
 * holds both for ms (1..10,000) milliseconds, then lets go; the call returns once both are
 * held (it waits for a commit in progress). -EBUSY while a hold runs; store_close waits for
 * it. */
int store_hold_for_test(store_t *s, uint32_t ms) __attribute__((warn_unused_result));

/* The files beside the event log's (SQLite): each has a log and a checkpointer of its own. */
typedef enum { STORE_PART_RUNS = 0, STORE_PART_GROUPS = 1 } store_part_t;
/* The wal_* figures of store_stats_t for that part's file into *out (every other field 0;
 * all 0 for a backend without such a file). Waits only for the part's own lock, which
 * its calls hold for one transaction at most. */
void store_part_stats_get(store_t *s, store_part_t part, store_stats_t *out);

/* ---- workflow runs and their steps (issue 4) ----
 *
 * A run row per workflow run and one row per step instance of it. The run engine writes
 * one small transaction per transition (store_run_save), synchronously on its loop: a few
 * per step, far fewer than events. Runs are independent of the event log above: the
 * SQLite backend keeps them in a file of their own beside it (<stem>-runs.db, with its own
 * checkpointer thread), and the run calls hold a lock of their own, so they never wait
 * for an event batch, retention slice or WAL settle of another thread, and an open
 * step-by-step event batch does not stop them. Never touched by retention.
 *
 * Strings are NUL-terminated; the JSON fields hold compact JSON text the store keeps
 * opaque. A status is any short string; the store knows only that "completed", "failed"
 * and "cancelled" are final for a run (the unfinished filter). */

#define STORE_RUN_ID_MAX 64   /* bytes of a run id */
#define STORE_STEP_KEY_MAX 512 /* bytes of a step key */

typedef struct store_run {
  const char *run_id;   /* 1..STORE_RUN_ID_MAX bytes, unique */
  const char *tenant;   /* required */
  const char *workflow; /* required */
  const char *status;   /* required */
  const char *input;    /* JSON; NULL when none */
  const char *output;   /* JSON; NULL when none */
  const char *error;    /* JSON; NULL when none */
  const char *idem_key; /* idempotency key, unique per tenant; NULL when none */
  const char *state;    /* JSON, the engine's own bookkeeping; NULL when none */
  int64_t created_ms;   /* wall clock, ms since the Unix epoch */
  int64_t updated_ms;
} store_run_t;

typedef struct store_step {
  const char *run_id;  /* the run it belongs to */
  const char *key;     /* the step instance ("fan[2]/ask"), unique in the run */
  const char *step_id; /* the step's id in its workflow */
  const char *kind;    /* "llm", "map", ... */
  int attempt;         /* >= 1 */
  const char *status;  /* required */
  const char *output;  /* JSON; NULL when none */
  const char *usage;   /* JSON; NULL when none */
  const char *text;    /* text streamed by the last attempt; NULL when none */
  const char *extra;   /* JSON object of further fields; NULL when none */
  const char *error;   /* JSON; NULL when none */
  int64_t started_ms;
  int64_t updated_ms;
} store_step_t;

/* Filter of store_run_list; NULL strings match anything. */
typedef struct store_run_filter {
  const char *tenant;
  const char *workflow;
  const char *status;
  bool unfinished; /* only runs whose status is not completed, failed or cancelled */
  size_t limit;    /* 0 = no limit */
} store_run_filter_t;

typedef int (*store_run_cb)(void *ud, const store_run_t *run);
typedef int (*store_step_cb)(void *ud, const store_step_t *step);

/* Creates a run. When run->idem_key is set and a run of the same tenant already holds
 * it, nothing is written and existing (may be NULL) receives that run's id. Returns 0,
 * -EEXIST (the key is taken, or run_id exists: existing then holds run_id), -EINVAL
 * (a required field missing or too long), -EIO. */
int store_run_create(store_t *s, const store_run_t *run, char existing[STORE_RUN_ID_MAX + 1])
    __attribute__((warn_unused_result));
/* One transaction: when run is not NULL, updates its status, output, error, state and
 * updated_ms (other fields are ignored); then inserts or replaces each of steps[0..n)
 * (their run_id must be an existing run). All or nothing. Returns 0, -ENOENT (unknown
 * run), -EINVAL, -EIO. */
int store_run_save(store_t *s, const store_run_t *run, const store_step_t *steps, size_t n)
    __attribute__((warn_unused_result));
/* Calls cb once with the run. -ENOENT when unknown. */
int store_run_get(store_t *s, const char *run_id, store_run_cb cb, void *ud)
    __attribute__((warn_unused_result));
/* Runs matching f (NULL: all), newest first (created_ms, then run_id, descending). */
int store_run_list(store_t *s, const store_run_filter_t *f, store_run_cb cb, void *ud)
    __attribute__((warn_unused_result));
/* The steps of a run, by started_ms then key. -ENOENT when the run is unknown. */
int store_step_list(store_t *s, const char *run_id, store_step_cb cb, void *ud)
    __attribute__((warn_unused_result));
/* Deletes a run and its steps. -ENOENT when unknown. */
int store_run_delete(store_t *s, const char *run_id) __attribute__((warn_unused_result));

/* ---- consumer groups of topics (issue 6) ----
 *
 * The durable half of a streams consumer group: one row per (topic, group) with the
 * group's position (the next seq it hands out for the first time) and the topic epoch
 * that position belongs to, plus one row per pending lease (a seq handed out and not yet
 * acknowledged, with how many times it was delivered). streams writes the changes of a
 * loop turn in one store_group_save transaction, never one per event. Like runs, groups
 * live beside the event log (the SQLite backend keeps them in a file of their own,
 * <stem>-groups.db, with its own checkpointer thread; the group calls hold a lock of
 * their own), so they never wait for an event batch of another thread, and an open
 * step-by-step event batch does not stop them. Never touched by retention or
 * store_topic_reset.
 *
 * Names are checked by streams; the store only requires non-empty strings of at most
 * STORE_GROUP_NAME_MAX bytes (group) and 265 bytes (topic). */

#define STORE_GROUP_NAME_MAX 64

typedef struct store_group {
  const char *topic;    /* "tenant/room" */
  const char *name;     /* the group's name */
  const char *epoch;    /* the topic epoch that next_seq and the leases belong to */
  uint64_t next_seq;    /* next seq to hand out for the first time (>= 1) */
  uint32_t ack_wait_ms; /* the group's lease duration, fixed at creation */
  uint64_t pending;     /* leases stored (reported by load and list; ignored by save) */
} store_group_t;

typedef struct store_group_lease {
  uint64_t seq;
  uint32_t deliveries; /* times the event was handed to a member */
} store_group_lease_t;

/* One group's changes: the row (inserted or replaced), then leases removed (del) and
 * leases inserted or replaced (put). del and put are applied in that order. */
typedef struct store_group_write {
  store_group_t group;
  const uint64_t *del;
  size_t ndel;
  const store_group_lease_t *put;
  size_t nput;
} store_group_write_t;

typedef int (*store_group_cb)(void *ud, const store_group_t *g);
typedef int (*store_lease_cb)(void *ud, const store_group_lease_t *l);

/* Calls gcb once with the group row (pending filled), then lcb (may be NULL) for each of
 * its leases by seq. -ENOENT when the group was never saved; -EINVAL; -EIO. */
int store_group_load(store_t *s, const char *topic, const char *name, store_group_cb gcb,
                     store_lease_cb lcb, void *ud) __attribute__((warn_unused_result));
/* The groups of a topic by name, pending filled. Returns 0, cb's nonzero value, or an
 * error. */
int store_group_list(store_t *s, const char *topic, store_group_cb cb, void *ud)
    __attribute__((warn_unused_result));
/* Applies w[0..n) in one transaction, all or nothing. -EINVAL (a missing name, epoch or
 * next_seq 0), -EBUSY (the file stayed locked), -EIO. */
int store_group_save(store_t *s, const store_group_write_t *w, size_t n)
    __attribute__((warn_unused_result));
/* Deletes a group and its leases. -ENOENT when unknown. */
int store_group_delete(store_t *s, const char *topic, const char *name)
    __attribute__((warn_unused_result));

#endif
