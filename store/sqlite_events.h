/* store SQLite backend: what sqlite.c shares with sqlite_retention.c (the event log's
 * statements, the backend's state, the chunk row readers). Private to those two files. */
#ifndef STORE_SQLITE_EVENTS_H
#define STORE_SQLITE_EVENTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "internal.h"

/* The backend's statements, prepared on both connections (sqlite.c, sq_sql). */
enum sq_stmt {
  SQ_TOPIC_GET,
  SQ_TOPIC_INSERT,
  SQ_TOPIC_HEAD,
  SQ_TOPIC_SET_HEAD,
  SQ_TOPIC_SET_FIRST,
  SQ_TOPIC_RESET,
  SQ_TOPIC_LIST,
  SQ_TOPIC_CHUNK_Q,
  SQ_CHUNK_INSERT,
  SQ_CHUNK_READ,
  SQ_CHUNK_SCAN,
  SQ_CHUNK_DELETE_BELOW,
  SQ_CHUNK_DELETE_ALL,
  SQ_DEDUPE_PUT,
  SQ_DEDUPE_FIND,
  SQ_DEDUPE_LIST,
  SQ_DEDUPE_DELETE_ALL,
  SQ_DEDUPE_SWEEP,
  SQ__COUNT
};

/* A topic touched by the open batch: head is its seq after the batch's appends so far;
 * chunk holds those appends not yet written (chunk.count of them, ending at head). */
typedef struct sq_head {
  int64_t topic_id;
  uint64_t head;
  store_chunk_t chunk; /* owned; its buffer is reused by later batches */
} sq_head_t;

/* Invariant: nheads is non-zero only while a batch (BEGIN IMMEDIATE) is open; slots is
 * an open-addressing table of nslots (0 or a power of two, > 2 * nheads) entries, each 0
 * (free) or the index + 1 of the heads entry of a topic touched by the batch. */
typedef struct sq_store {
  store_sql_t sql;  /* owned: the connection and its statements */
  store_sql_t rsql; /* owned: the reader connection (sq_read_committed), same statements */
  /* Held by each sq_read_committed, and by the committing thread through a WAL settle's
   * own pass (store__wal_settle): a pass copies back only what every reader's snapshot
   * allows, and SQLite starts the log over only if no reader that began before the pass
   * still reads when the next batch writes. Readers that begin after a pass that copied
   * everything back read the database file alone and do not hold the log. */
  pthread_mutex_t rlock;
  /* Held by every use of rsql (taken after rlock when both are): the short lookups
   * (sq_short_read_begin) may run without rlock, so rlock alone no longer keeps two
   * threads off the connection. */
  pthread_mutex_t rsql_mu;
  sq_head_t *heads; /* owned; heads[0..nheads) are the batch's topics, the rest spares */
  size_t nheads, heads_cap;
  uint32_t *slots; /* owned */
  size_t nslots;
  /* The next topic id to hand out (sq_topic_reserve, from any thread): ids are never
   * taken from SQLite's rowid choice, so that a reserved id whose row is not written yet
   * cannot be given to another topic. */
  _Atomic int64_t next_topic_id;
  int64_t retention_cursor; /* topics with id <= this are done in the current pass */
  uint64_t retention_topics; /* topics the slices examined (store_stats_t) */
  store_wal_t wal; /* the log's upkeep: checkpointer thread and settle (sqlite_wal.c) */
} sq_store_t;

/* Opens the chunk row st is on (first_seq, last_seq at columns 0 and 1, body at
 * body_col): *last gets its last seq. -EIO (logged) when the row is malformed. */
int store__sq_chunk_open(sqlite3_stmt *st, int64_t topic_id, int body_col, store_chunk_iter_t *it,
                         uint64_t *last);
/* The next event of an opened chunk: 1, 0 at its end, -EIO (logged) when the records
 * are malformed or do not number exactly the row's seqs. */
int store__sq_chunk_step(store_chunk_iter_t *it, int64_t topic_id, uint64_t last, store_event_t *ev);
/* store_ops_t.retention_run (sqlite_retention.c). */
int store__sq_retention_run(void *be, const store_retention_t *r, uint64_t *deleted, bool *more);

#endif
