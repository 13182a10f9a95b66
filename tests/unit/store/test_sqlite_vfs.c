/* Tests for store/sqlite_vfs.c: the write buffering of the store's write-ahead logs loses
 * nothing (reopen, a reader on another file handle, SIGKILL of the writer), gathers the
 * frames into far fewer writes than SQLite makes, and keeps the frames SQLite rewrites
 * in place and the ones it rolls back right. Files live in a fresh folder under
 * $COORD_TEST_TMPDIR (set by ctest) or /tmp. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "internal.h"
#include "store.h"
#define DBDIR_PREFIX "walbuf"
#include "store/dbdir.h"

static bool test_sync_full;

static int dir_setup(void **state) {
  test_sync_full = false;
  return dbdir_setup(state);
}

static int store_open_test(store_t **out) {
  const store_options_t opts = {.path = test_db, .synchronous_full = test_sync_full};
  return store_open_sqlite(&opts, out);
}

static store_t *open_store(void) {
  store_t *s = NULL;
  assert_int_equal(store_open_test(&s), 0);
  return s;
}

static store_topic_t ensure(store_t *s, const char *name) {
  store_topic_t t;
  assert_int_equal(store_topic_ensure(s, name, &t), 0);
  return t;
}

/* ---- batches of big events: several pages each ---- */

enum { EV_PER_BATCH = 12, EV_DATA = 1500 };

/* Event data for seq: a JSON string of EV_DATA bytes that only seq produces. */
static size_t big_data(uint64_t seq, char *out) {
  out[0] = '"';
  for (size_t i = 1; i < EV_DATA - 1; i++) out[i] = (char)('a' + (seq * 7 + i * 13) % 26);
  out[EV_DATA - 1] = '"';
  return EV_DATA;
}

/* Commits batch b (seqs b * EV_PER_BATCH + 1 ...) of the topic with store_batch_write. */
static int write_batch(store_t *s, int64_t topic_id, uint64_t b) {
  static char data[EV_PER_BATCH][EV_DATA];
  store_event_t evs[EV_PER_BATCH];
  for (uint64_t i = 0; i < EV_PER_BATCH; i++) {
    uint64_t seq = b * EV_PER_BATCH + i + 1;
    size_t n = big_data(seq, data[i]);
    evs[i] = (store_event_t){.topic_id = topic_id,
                             .seq = seq,
                             .ts_ms = (int64_t)seq,
                             .type = "msg",
                             .lane = 1,
                             .data = data[i],
                             .data_len = n};
  }
  return store_batch_write(s, evs, EV_PER_BATCH);
}

/* Checks that the events come as seq 1, 2, ... with their data; counts them. */
static int check_big_event(void *ud, const store_event_t *ev) {
  uint64_t *next = ud;
  char want[EV_DATA];
  size_t n = big_data(ev->seq, want);
  assert_int_equal(ev->seq, *next + 1);
  assert_int_equal(ev->data_len, n);
  assert_memory_equal(ev->data, want, n);
  (*next)++;
  return 0;
}

/* The number of events of the topic, each checked; 0 when the topic does not exist. */
static uint64_t check_topic(store_t *s, const char *name) {
  store_topic_t t;
  if (store_topic_get(s, name, &t) == -ENOENT) return 0;
  uint64_t n = 0;
  assert_int_equal(store_read(s, t.topic_id, 0, 0, check_big_event, &n), 0);
  assert_int_equal(n, t.head_seq);
  return n;
}

static void commit_and_reopen(void) {
  enum { BATCHES = 300, TOPICS = 3 };
  store_t *s = open_store();
  store_topic_t t[TOPICS] = {ensure(s, "acme/a"), ensure(s, "acme/b"), ensure(s, "acme/c")};
  for (uint64_t b = 0; b < BATCHES; b++)
    assert_int_equal(write_batch(s, t[b % TOPICS].topic_id, b / TOPICS), 0);
  store_close(s);
  s = open_store();
  assert_int_equal(check_topic(s, "acme/a"), BATCHES / TOPICS * EV_PER_BATCH);
  assert_int_equal(check_topic(s, "acme/b"), BATCHES / TOPICS * EV_PER_BATCH);
  assert_int_equal(check_topic(s, "acme/c"), BATCHES / TOPICS * EV_PER_BATCH);
  store_close(s);
}

static void test_events_committed_through_the_store_are_all_read_back_after_reopen(void **state) {
  (void)state;
  commit_and_reopen();
}

static void test_with_synchronous_full_the_events_are_all_read_back_after_reopen(void **state) {
  (void)state;
  test_sync_full = true;
  commit_and_reopen();
}

/* Each commit is in the file when store_batch_write returns: a connection of its own
 * (the default VFS, its own file handle) sees it while the writer stays open. */
static void test_a_reader_on_its_own_handle_sees_each_commit_when_it_returns(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t t = ensure(s, "acme/a");
  sqlite3 *db;
  assert_int_equal(sqlite3_open_v2(test_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(
      sqlite3_prepare_v2(db, "SELECT head_seq FROM topics WHERE name = 'acme/a'", -1, &st, NULL),
      SQLITE_OK);
  for (uint64_t b = 0; b < 100; b++) {
    assert_int_equal(write_batch(s, t.topic_id, b), 0);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), (int64_t)((b + 1) * EV_PER_BATCH));
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_exec(db, "PRAGMA integrity_check", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  store_close(s);
}

/* ---- SIGKILL ---- */

/* The child's self-destruction: once `committed` reaches kill_at, the process kills
 * itself at once, wherever the writing thread is (most often inside a commit). */
typedef struct killer {
  _Atomic uint64_t committed;
  uint64_t kill_at;
} killer_t;

static void *killer_main(void *arg) {
  killer_t *k = arg;
  while (atomic_load(&k->committed) < k->kill_at) sched_yield();
  kill(getpid(), SIGKILL);
  return NULL;
}

/* Runs in the child: commits batch after batch, reporting each one's number after
 * store_batch_write returned, until the killer strikes. */
static void kill_child(int fd, uint64_t first, uint64_t kill_at) {
  store_t *s = NULL;
  store_topic_t t;
  if (store_open_test(&s) < 0 || store_topic_ensure(s, "acme/kill", &t) < 0) _exit(2);
  static killer_t k;
  k.kill_at = kill_at;
  pthread_t th;
  if (pthread_create(&th, NULL, killer_main, &k) != 0) _exit(3);
  for (uint64_t b = first;; b++) {
    if (write_batch(s, t.topic_id, b) < 0) _exit(4);
    if (write(fd, &b, sizeof b) != (ssize_t)sizeof b) _exit(5);
    atomic_fetch_add(&k.committed, 1);
  }
}

static void test_every_batch_reported_committed_survives_a_sigkill_of_the_writer(void **state) {
  (void)state;
  store_t *s = open_store();
  ensure(s, "acme/kill"); /* the schema and the topic before the children race us */
  store_close(s);
  uint64_t batches = 0; /* committed and found so far */
  for (int round = 0; round < 12; round++) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      kill_child(fds[1], batches, (uint64_t)(20 + 17 * round));
    }
    close(fds[1]);
    uint64_t b, reported = 0, last = 0;
    while (read(fds[0], &b, sizeof b) == (ssize_t)sizeof b) {
      assert_int_equal(b, batches + reported);
      last = b;
      reported++;
    }
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_true(reported >= (uint64_t)(20 + 17 * round));
    s = open_store();
    uint64_t n = check_topic(s, "acme/kill");
    store_close(s);
    /* Every reported batch is there; besides, at most the one in flight went in. */
    assert_true(n == (last + 1) * EV_PER_BATCH || n == (last + 2) * EV_PER_BATCH);
    batches = n / EV_PER_BATCH;
  }
}

/* ---- the syscall effect ---- */

static void test_commits_reach_the_log_in_far_fewer_writes_than_two_per_frame(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t t = ensure(s, "acme/a");
  store_stats_t st0, st1;
  store_vfs_counts_t c0, c1;
  store_stats_get(s, &st0);
  store__vfs_counts(&c0);
  enum { K = 200 };
  for (uint64_t b = 0; b < K; b++) assert_int_equal(write_batch(s, t.topic_id, b), 0);
  store_stats_get(s, &st1);
  store__vfs_counts(&c1);
  store_close(s);
  uint64_t frames = st1.wal_frames - st0.wal_frames;
  uint64_t calls = c1.wal_writes - c0.wal_writes;
  uint64_t writes = c1.wal_pwrites - c0.wal_pwrites;
  /* SQLite writes a frame as a header and a page; a batch here is about 6 frames. */
  assert_true(frames >= 4 * K);
  assert_true(calls >= 2 * frames);
  /* One write per commit (its frames are contiguous), and nothing fails. */
  assert_true(writes >= K);
  assert_true(writes <= K + K / 10);
  assert_true(writes * 4 < frames);
  assert_int_equal(c1.wal_flush_errs, c0.wal_flush_errs);
}

/* ---- frames SQLite rewrites or rolls back ---- */

static sqlite3 *open_raw(void) {
  const char *vfs = store__vfs();
  assert_non_null(vfs);
  sqlite3 *db;
  assert_int_equal(sqlite3_open_v2(test_db, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
                   SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                "PRAGMA cache_size=4; PRAGMA wal_autocheckpoint=0",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  return db;
}

static void exec_ok(sqlite3 *db, const char *sql) {
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) fprintf(stderr, "%s: %s\n", sql, err ? err : "?");
  sqlite3_free(err);
  assert_int_equal(rc, SQLITE_OK);
}

static int64_t query_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void assert_intact(sqlite3 *db) {
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
  sqlite3_finalize(st);
}

/* A fresh read-only connection of the default VFS, after integrity_check said "ok". */
static sqlite3 *open_intact(void) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open_v2(test_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_intact(db);
  return db;
}

/* Runs in a child: a transaction larger than a 4-page cache spills frames to the log and
 * then, updating the same rows again, rewrites those frames in place before it commits
 * (SQLite then rewrites the checksums from the first frame rewritten on, the commit
 * frame's last); once COMMIT returned, the process dies without closing anything. */
static void rewrite_child(void) {
  sqlite3 *db = open_raw();
  if (sqlite3_exec(db,
                   "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB); BEGIN;"
                   "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)"
                   " INSERT INTO t SELECT i, randomblob(900) FROM n;"
                   "UPDATE t SET v = zeroblob(900) WHERE k % 2 = 0;"
                   "UPDATE t SET v = zeroblob(901) WHERE k % 2 = 1; COMMIT",
                   NULL, NULL, NULL) != SQLITE_OK)
    _exit(2);
  store_vfs_counts_t c;
  store__vfs_counts(&c);
  if (c.wal_flush_errs) _exit(3);
  kill(getpid(), SIGKILL);
}

static void test_frames_a_transaction_rewrites_in_place_are_committed_intact(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) rewrite_child();
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  sqlite3 *db = open_intact();
  assert_int_equal(query_int(db, "SELECT count(*) FROM t WHERE length(v) = 900"), 100);
  assert_int_equal(query_int(db, "SELECT count(*) FROM t WHERE length(v) = 901"), 100);
  sqlite3_close(db);
}

/* Frames a transaction spilled and reads back come from the file, and once it rolled
 * back nothing of it lands over the frames another connection then commits at the same
 * place. (SQLite 3.40 reads the last spilled frame back before the rollback ends, so the
 * discard after the rollback finds the buffer empty here; it guards the versions that
 * would not.) */
static void test_frames_of_a_rolled_back_spill_never_overwrite_another_connections(void **state) {
  (void)state;
  sqlite3 *a = open_raw();
  exec_ok(a, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
  exec_ok(a,
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)"
          " INSERT INTO t SELECT i, zeroblob(900) FROM n");
  sqlite3 *b = open_raw();
  for (int round = 1; round <= 5; round++) {
    exec_ok(a, "BEGIN");
    exec_ok(a, "UPDATE t SET v = randomblob(900)");
    exec_ok(a, "ROLLBACK");
    store__vfs_rolled_back(a);
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE t SET v = zeroblob(900), k = k + 0 WHERE k <= %d",
             round * 40);
    exec_ok(b, "BEGIN");
    exec_ok(b, sql);
    snprintf(sql, sizeof sql, "INSERT INTO t VALUES(%d, 'b')", 1000 + round);
    exec_ok(b, sql);
    exec_ok(b, "COMMIT");
    snprintf(sql, sizeof sql, "INSERT INTO t VALUES(%d, 'a')", 2000 + round);
    exec_ok(a, sql);
  }
  sqlite3_close(a);
  sqlite3_close(b);
  sqlite3 *db = open_intact();
  assert_int_equal(query_int(db, "SELECT count(*) FROM t WHERE v = zeroblob(900)"), 200);
  assert_int_equal(query_int(db, "SELECT count(*) FROM t WHERE v IN ('a', 'b')"), 10);
  sqlite3_close(db);
}

/* The next pwrite of the unix VFS fails with a full disk (set fail_next), through its
 * system call table. */
static _Atomic int fail_next;
static sqlite3_syscall_ptr real_pwrite64;
static ssize_t failing_pwrite64(int fd, const void *buf, size_t n, off_t off) {
  if (atomic_exchange(&fail_next, 0)) {
    errno = ENOSPC;
    return -1;
  }
  return ((ssize_t (*)(int, const void *, size_t, off_t))real_pwrite64)(fd, buf, n, off);
}

/* A flush that fails under a read (here the full disk hits the buffered frames of a spill
 * when the next statement reads the log) must fail the whole transaction. Reported as the
 * disk's SQLITE_FULL, SQLite undid only the reading statement, and the COMMIT that
 * followed published frames the file never got: integrity_check then found the database
 * malformed. */
static void test_a_flush_that_fails_under_a_read_rolls_the_whole_transaction_back(void **state) {
  (void)state;
  sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");
  assert_non_null(unix_vfs);
  real_pwrite64 = unix_vfs->xGetSystemCall(unix_vfs, "pwrite64");
  assert_non_null(real_pwrite64);
  sqlite3 *db = open_raw();
  exec_ok(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB, u UNIQUE);"
              "CREATE TABLE n(k INTEGER PRIMARY KEY, v BLOB)");
  exec_ok(db, "WITH RECURSIVE q(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM q WHERE i < 200)"
              " INSERT INTO t SELECT i, zeroblob(900), i FROM q");
  exec_ok(db, "BEGIN");
  /* More pages than the cache holds: SQLite spills frames to the log, into the buffer. */
  exec_ok(db, "WITH RECURSIVE q(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM q WHERE i < 60)"
              " INSERT INTO n SELECT i, zeroblob(3000) FROM q");
  assert_int_equal(unix_vfs->xSetSystemCall(unix_vfs, "pwrite64", (sqlite3_syscall_ptr)failing_pwrite64),
                   SQLITE_OK);
  store_vfs_counts_t c0, c1;
  store__vfs_counts(&c0);
  atomic_store(&fail_next, 1);
  int rc = sqlite3_exec(db, "INSERT INTO t SELECT k + 1000, v, k + 1000 FROM t WHERE k > 150", NULL,
                        NULL, NULL);
  atomic_store(&fail_next, 0);
  assert_int_equal(unix_vfs->xSetSystemCall(unix_vfs, "pwrite64", real_pwrite64), SQLITE_OK);
  store__vfs_counts(&c1);
  assert_int_equal(c1.wal_flush_errs, c0.wal_flush_errs + 1); /* the flush was what failed */
  assert_int_equal(rc & 0xff, SQLITE_IOERR);
  assert_int_equal(sqlite3_get_autocommit(db), 1); /* the transaction is gone */
  assert_int_not_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  db = open_intact();
  assert_int_equal(query_int(db, "SELECT count(*) FROM n"), 0);
  assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 200);
  sqlite3_close(db);
}

/* When another connection starts the log over, a handle that wrote further into the old
 * log still gathers its next transaction's frames (it sees the new salts). */
static void test_a_log_started_over_by_another_connection_is_still_gathered(void **state) {
  (void)state;
  sqlite3 *a = open_raw();
  exec_ok(a, "PRAGMA cache_size=-8000");
  exec_ok(a, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
  exec_ok(a,
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)"
          " INSERT INTO t SELECT i, randomblob(3000) FROM n");
  sqlite3 *b = open_raw();
  exec_ok(b, "PRAGMA wal_checkpoint(TRUNCATE)");
  exec_ok(b, "INSERT INTO t VALUES(1000, 'b')"); /* the new log's header and first frames */
  store_vfs_counts_t c0, c1;
  store__vfs_counts(&c0);
  exec_ok(a,
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)"
          " INSERT INTO t SELECT 2000 + i, randomblob(3000) FROM n");
  store__vfs_counts(&c1);
  /* About 55 frames, 110 writes from SQLite: two pieces of at most 124 KB, plus one. */
  assert_true(c1.wal_writes - c0.wal_writes >= 100);
  assert_true(c1.wal_pwrites - c0.wal_pwrites <= 4);
  sqlite3_close(b);
  sqlite3_close(a);
  sqlite3 *db = open_intact();
  assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 151);
  sqlite3_close(db);
}

/* Files that are not logs are the default VFS's own: the database file answers with the
 * methods of the default VFS's files. */
static void test_the_database_file_keeps_the_default_vfs_methods(void **state) {
  (void)state;
  sqlite3 *a = open_raw();
  sqlite3 *plain;
  assert_int_equal(sqlite3_open_v2(test_db, &plain, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  sqlite3_file *fa = NULL, *fp = NULL, *wa = NULL, *wp = NULL;
  exec_ok(a, "CREATE TABLE t(k)");
  exec_ok(plain, "SELECT * FROM t");
  assert_int_equal(sqlite3_file_control(a, "main", SQLITE_FCNTL_FILE_POINTER, &fa), SQLITE_OK);
  assert_int_equal(sqlite3_file_control(plain, "main", SQLITE_FCNTL_FILE_POINTER, &fp), SQLITE_OK);
  assert_ptr_equal(fa->pMethods, fp->pMethods);
  assert_int_equal(sqlite3_file_control(a, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wa), SQLITE_OK);
  assert_int_equal(sqlite3_file_control(plain, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wp),
                   SQLITE_OK);
  assert_non_null(wa);
  assert_non_null(wp);
  assert_ptr_not_equal(wa->pMethods, wp->pMethods);
  assert_int_equal(wa->pMethods->iVersion, wp->pMethods->iVersion);
  sqlite3_close(plain);
  sqlite3_close(a);
}

#define FILE_TEST(f) cmocka_unit_test_setup_teardown(f, dir_setup, dbdir_teardown)

int main(void) {
  struct CMUnitTest tests[] = {
      FILE_TEST(test_events_committed_through_the_store_are_all_read_back_after_reopen),
      FILE_TEST(test_with_synchronous_full_the_events_are_all_read_back_after_reopen),
      FILE_TEST(test_a_reader_on_its_own_handle_sees_each_commit_when_it_returns),
      FILE_TEST(test_every_batch_reported_committed_survives_a_sigkill_of_the_writer),
      FILE_TEST(test_commits_reach_the_log_in_far_fewer_writes_than_two_per_frame),
      FILE_TEST(test_frames_a_transaction_rewrites_in_place_are_committed_intact),
      FILE_TEST(test_frames_of_a_rolled_back_spill_never_overwrite_another_connections),
      FILE_TEST(test_a_log_started_over_by_another_connection_is_still_gathered),
      FILE_TEST(test_the_database_file_keeps_the_default_vfs_methods),
      FILE_TEST(test_a_flush_that_fails_under_a_read_rolls_the_whole_transaction_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
