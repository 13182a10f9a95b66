/* Tests for store/sqlite.c: the store.h contract suite against SQLite files, then what
 * only a file has: reopening, WAL mode, schema versions, crash durability, retention's
 * index, reads beside a commit. The WAL's upkeep (checkpointer, settles) is
 * test_sqlite_wal.c's; the topic calls of the event loop (reserve, lookups) are
 * test_sqlite_topics.c's. Each test's files live in a fresh folder under $COORD_TEST_TMPDIR
 * (set by ctest) or /tmp. */
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "store/contract.h"
#include "store/hold.h"
#define DBDIR_PREFIX "store"
#include "store/dbdir.h"
#include "internal.h" /* store__chunk_*: a schema 3 file written by hand */


static int contract_open(store_t **out) {
  const store_options_t opts = {.path = test_db};
  return store_open_sqlite(&opts, out);
}

/* ---- files ---- */

static void test_open_rejects_a_missing_path(void **state) {
  (void)state;
  store_t *s = NULL;
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = NULL}, &s), -EINVAL);
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = ""}, &s), -EINVAL);
  assert_int_equal(store_open_sqlite(NULL, &s), -EINVAL);
  assert_null(s);
}

static void test_open_in_a_missing_folder_is_eio_and_logs_sqlites_message(void **state) {
  (void)state;
  char path[700];
  snprintf(path, sizeof path, "%s/no/such/folder/x.db", test_dir);
  FILE *log = tmpfile();
  assert_non_null(log);
  log_set_stream(log);
  store_t *s = NULL;
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = path}, &s), -EIO);
  log_set_stream(NULL);
  char line[2048] = "";
  rewind(log);
  assert_non_null(fgets(line, sizeof line, log));
  fclose(log);
  assert_non_null(strstr(line, "\"module\":\"store\""));
  assert_non_null(strstr(line, "unable to open database file"));
}

static void test_open_with_synchronous_full_creates_a_wal_database_at_schema_3(void **state) {
  (void)state;
  store_t *s = NULL;
  const store_options_t opts = {.path = test_db, .synchronous_full = true};
  assert_int_equal(store_open_sqlite(&opts, &s), 0);
  ensure(s, "acme/a");
  sqlite3 *db;
  assert_int_equal(sqlite3_open(test_db, &db), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 3);
  sqlite3_finalize(st);
  sqlite3_close(db);
  store_close(s);
}

/* Under synchronous=FULL every commit waits for its fsync, so the event loop's inline
 * commit declines (-EAGAIN, nothing written) and leaves each batch to the writer thread. */
static void test_with_synchronous_full_a_nowait_batch_always_declines(void **state) {
  (void)state;
  store_t *s = NULL;
  const store_options_t opts = {.path = test_db, .synchronous_full = true};
  assert_int_equal(store_open_sqlite(&opts, &s), 0);
  store_topic_t t = ensure(s, "acme/a");
  store_event_t ev = make_event(t.topic_id, 1, 1, NULL);
  assert_int_equal(store_batch_write_topics_nowait(s, NULL, 0, &ev, 1), -EAGAIN);
  assert_int_equal(get(s, "acme/a").head_seq, 0);
  assert_int_equal(store_batch_write(s, &ev, 1), 0);
  assert_int_equal(get(s, "acme/a").head_seq, 1);
  store_close(s);
}

/* Schema 1 exactly as the first release wrote it, with three events and a key. */
static void make_schema_1_file(void) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(test_db, &db), SQLITE_OK);
  const char *sql =
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE topics(topic_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
      " epoch TEXT NOT NULL, head_seq INTEGER NOT NULL, first_seq INTEGER NOT NULL);"
      "CREATE TABLE events(topic_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
      " ts_ms INTEGER NOT NULL, id TEXT, type TEXT, lane INTEGER NOT NULL, data TEXT,"
      " PRIMARY KEY(topic_id, seq)) WITHOUT ROWID;"
      "CREATE TABLE dedupe(topic_id INTEGER NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,"
      " ts_ms INTEGER NOT NULL, PRIMARY KEY(topic_id, id)) WITHOUT ROWID;"
      "CREATE INDEX dedupe_ts ON dedupe(ts_ms);"
      "INSERT INTO topics VALUES(7, 'acme/old', '0123456789abcdef', 3, 1);"
      "INSERT INTO events VALUES(7, 1, 1000, 'k1', 't', 1, '{\"n\":1}');"
      "INSERT INTO events VALUES(7, 2, 1001, NULL, 't', 1, '{\"n\":2}');"
      "INSERT INTO events VALUES(7, 3, 1002, NULL, NULL, 0, NULL);"
      "INSERT INTO dedupe VALUES(7, 'k1', 1, 1000);"
      "PRAGMA user_version = 1;";
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

static int collect_event(void *ud, const store_event_t *ev) {
  char *out = ud;
  size_t n = strlen(out);
  snprintf(out + n, 512 - n, "%llu:%lld:%s:%s:%d:%.*s;", (unsigned long long)ev->seq,
           (long long)ev->ts_ms, ev->id ? ev->id : "-", ev->type ? ev->type : "-", ev->lane,
           (int)ev->data_len, ev->data ? ev->data : "-");
  return 0;
}

static void test_a_schema_1_file_is_migrated_with_every_event_and_key(void **state) {
  (void)state;
  make_schema_1_file();
  store_t *s = open_store();
  store_topic_t t = get(s, "acme/old");
  assert_int_equal(t.topic_id, 7);
  assert_int_equal(t.head_seq, 3);
  assert_string_equal(t.epoch, "0123456789abcdef");
  char got[512] = "";
  assert_int_equal(store_read(s, 7, 0, 0, collect_event, got), 0);
  assert_string_equal(got, "1:1000:k1:t:1:{\"n\":1};2:1001:-:t:1:{\"n\":2};3:1002:-:-:0:;");
  uint64_t seq = 0;
  assert_int_equal(store_dedupe_find(s, 7, "k1", 0, &seq), 0);
  assert_int_equal(seq, 1);
  append_range(s, 7, 4, 5, 2000); /* appends continue after the migrated head */
  assert_events(s, 7, 1, 5);
  store_close(s);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(test_db, &db), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 3);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

static void test_open_refuses_a_database_from_a_newer_schema(void **state) {
  (void)state;
  sqlite3 *db;
  assert_int_equal(sqlite3_open(test_db, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  log_set_level(LOG_OFF);
  store_t *s = NULL;
  assert_int_equal(contract_open(&s), -EIO);
  log_set_level(LOG_INFO);
  assert_null(s);
}

static void test_everything_committed_survives_close_and_reopen(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  append_keyed(s, a.topic_id, 1, 1000, "k1");
  append_range(s, a.topic_id, 2, 7, 1000);
  assert_int_equal(store_batch_begin(s), 0); /* open at close: rolled back */
  store_event_t ev = make_event(a.topic_id, 8, 0, NULL);
  assert_int_equal(store_batch_append(s, &ev), 0);
  store_close(s);
  s = open_store();
  store_topic_t t = get(s, "acme/a");
  assert_int_equal(t.topic_id, a.topic_id);
  assert_string_equal(t.epoch, a.epoch);
  assert_int_equal(t.head_seq, 7);
  assert_events(s, a.topic_id, 1, 7);
  uint64_t seq;
  assert_int_equal(store_dedupe_find(s, a.topic_id, "k1", 0, &seq), 0);
  assert_int_equal(seq, 1);
  store_close(s);
}

static void test_head_seq_survives_deleting_all_events_and_reopening(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  append_range(s, a.topic_id, 1, 12, 1000);
  retention_until_done(s, 0, 99999, 0, 5);
  assert_events(s, a.topic_id, 1, 0);
  store_close(s);
  s = open_store();
  store_topic_t t = get(s, "acme/a");
  assert_int_equal(t.head_seq, 12);
  assert_int_equal(t.first_seq, 13);
  assert_string_equal(t.epoch, a.epoch);
  store_event_t bad = make_event(a.topic_id, 1, 0, NULL);
  assert_int_equal(store_batch_begin(s), 0);
  assert_int_equal(store_batch_append(s, &bad), -EINVAL); /* seqs never repeat */
  append_range(s, a.topic_id, 13, 13, 0);
  assert_events(s, a.topic_id, 13, 13);
  store_close(s);
}

/* ---- schema 3: chunks ---- */

/* A statement's single integer result, on a connection of the test's own. */
static int64_t sql_int(const char *sql) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(test_db, &db), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static void sql_run(const char *sql) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(test_db, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

/* Schema 2 exactly as its code path created it, then filled: topic 7 lost seqs 1-2 to
 * retention, topic 9 holds two events; two keys. */
static void make_schema_2_file(void) {
  sql_run(
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE topics(topic_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
      " epoch TEXT NOT NULL, head_seq INTEGER NOT NULL, first_seq INTEGER NOT NULL);"
      "CREATE TABLE events(rid INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,"
      " seq INTEGER NOT NULL, ts_ms INTEGER NOT NULL, id TEXT, type TEXT,"
      " lane INTEGER NOT NULL, data TEXT);"
      "CREATE UNIQUE INDEX events_topic_seq ON events(topic_id, seq);"
      "CREATE TABLE dedupe(topic_id INTEGER NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,"
      " ts_ms INTEGER NOT NULL, PRIMARY KEY(topic_id, id)) WITHOUT ROWID;"
      "CREATE INDEX dedupe_ts ON dedupe(ts_ms);"
      "PRAGMA user_version = 2;"
      "INSERT INTO topics VALUES(7, 'acme/old', '0123456789abcdef', 5, 3);"
      "INSERT INTO topics VALUES(9, 'acme/two', 'fedcba9876543210', 2, 1);"
      "INSERT INTO events(topic_id, seq, ts_ms, id, type, lane, data)"
      " VALUES(9, 1, 900, 'j1', 'x', 0, '[1]');"
      "INSERT INTO events(topic_id, seq, ts_ms, id, type, lane, data)"
      " VALUES(7, 3, 1000, 'k3', 't', 1, '{\"n\":3}');"
      "INSERT INTO events(topic_id, seq, ts_ms, id, type, lane, data)"
      " VALUES(7, 4, 999, NULL, 't', 2, '{\"n\":4}');"
      "INSERT INTO events(topic_id, seq, ts_ms, id, type, lane, data)"
      " VALUES(9, 2, 901, NULL, NULL, 0, NULL);"
      "INSERT INTO events(topic_id, seq, ts_ms, id, type, lane, data)"
      " VALUES(7, 5, 1002, NULL, NULL, 0, NULL);"
      "INSERT INTO dedupe VALUES(7, 'k3', 3, 1000);"
      "INSERT INTO dedupe VALUES(9, 'j1', 1, 900);");
}

static void test_a_schema_2_file_is_converted_to_chunks_with_every_event_and_key(void **state) {
  (void)state;
  make_schema_2_file();
  store_t *s = open_store();
  store_topic_t t = get(s, "acme/old");
  assert_int_equal(t.topic_id, 7);
  assert_int_equal(t.head_seq, 5);
  assert_int_equal(t.first_seq, 3);
  assert_string_equal(t.epoch, "0123456789abcdef");
  char got[512] = "";
  assert_int_equal(store_read(s, 7, 0, 0, collect_event, got), 0);
  assert_string_equal(got, "3:1000:k3:t:1:{\"n\":3};4:999:-:t:2:{\"n\":4};5:1002:-:-:0:;");
  got[0] = '\0';
  assert_int_equal(store_read(s, 9, 0, 0, collect_event, got), 0);
  assert_string_equal(got, "1:900:j1:x:0:[1];2:901:-:-:0:;");
  uint64_t seq = 0;
  assert_int_equal(store_dedupe_find(s, 7, "k3", 0, &seq), 0);
  assert_int_equal(seq, 3);
  assert_int_equal(store_dedupe_find(s, 9, "j1", 0, &seq), 0);
  assert_int_equal(seq, 1);
  append_range(s, 7, 6, 8, 2000); /* appends continue after the converted head */
  assert_events(s, 7, 3, 8);
  store_close(s);
  assert_int_equal(sql_int("PRAGMA user_version"), 3);
  assert_int_equal(sql_int("SELECT count(*) FROM sqlite_master WHERE name = 'events'"), 0);
  assert_int_equal(sql_int("SELECT count(*) FROM chunks"), 3); /* one per topic, one batch */
}

static void test_a_batch_over_many_topics_writes_one_chunk_row_per_topic(void **state) {
  (void)state;
  store_t *s = open_store();
  enum { TOPICS = 100, PER_TOPIC = 10 };
  int64_t ids[TOPICS];
  for (int i = 0; i < TOPICS; i++) {
    char name[32];
    snprintf(name, sizeof name, "acme/t%d", i);
    ids[i] = ensure(s, name).topic_id;
  }
  assert_int_equal(store_batch_begin(s), 0);
  for (uint64_t seq = 1; seq <= PER_TOPIC; seq++) {
    for (int i = 0; i < TOPICS; i++) {
      store_event_t ev = make_event(ids[i], seq, 1000 + (int64_t)seq, seq == 3 ? "key" : NULL);
      assert_int_equal(store_batch_append(s, &ev), 0);
    }
  }
  assert_int_equal(store_batch_commit(s), 0);
  for (int i = 0; i < TOPICS; i++) {
    assert_events(s, ids[i], 1, PER_TOPIC);
    uint64_t seq = 0;
    assert_int_equal(store_dedupe_find(s, ids[i], "key", 0, &seq), 0);
    assert_int_equal(seq, 3);
  }
  store_close(s);
  assert_int_equal(sql_int("SELECT count(*) FROM chunks"), TOPICS);
}

static void test_reads_skip_the_events_of_a_surviving_chunk_below_first_seq(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  append_range(s, a.topic_id, 1, 10, 1000); /* one chunk, ts 1001..1010 */
  retention_until_done(s, 0, 1004, 0, 100); /* age: 1..3 go */
  assert_int_equal(get(s, "acme/a").first_seq, 4);
  assert_events(s, a.topic_id, 4, 10);
  retention_until_done(s, 4, 0, 0, 2); /* count: 4..6 go, two per slice */
  assert_int_equal(get(s, "acme/a").first_seq, 7);
  assert_events(s, a.topic_id, 7, 10);
  seqs_t c = {.n = 0};
  assert_int_equal(store_read(s, a.topic_id, 8, 0, collect_seq, &c), 0);
  assert_int_equal(c.n, 2);
  assert_int_equal(c.v[0], 9);
  c = (seqs_t){.n = 0};
  assert_int_equal(store_read(s, a.topic_id, 2, 2, collect_seq, &c), 0);
  assert_int_equal(c.n, 2);
  assert_int_equal(c.v[0], 7);
  assert_int_equal(c.v[1], 8);
  assert_int_equal(sql_int("SELECT count(*) FROM chunks"), 1);
  retention_until_done(s, 0, 99999, 0, 100); /* every event goes, and the chunk with them */
  assert_events(s, a.topic_id, 1, 0);
  assert_int_equal(sql_int("SELECT count(*) FROM chunks"), 0);
  store_close(s);
}

static void test_age_retention_inside_a_chunk_stops_at_the_first_newer_event(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/a");
  static const int64_t ts[] = {10, 11, 50, 12, 13, 60};
  assert_int_equal(store_batch_begin(s), 0);
  for (uint64_t i = 0; i < 6; i++) {
    store_event_t ev = make_event(a.topic_id, i + 1, ts[i], NULL);
    assert_int_equal(store_batch_append(s, &ev), 0);
  }
  assert_int_equal(store_batch_commit(s), 0);
  append_range(s, a.topic_id, 7, 8, 0); /* a second chunk, all older than the cut */
  retention_until_done(s, 0, 40, 0, 100);
  assert_events(s, a.topic_id, 3, 8); /* seq 3 (ts 50) stops the run of older events */
  store_close(s);
}

static void test_large_events_split_a_topics_batch_into_several_chunks(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t a = ensure(s, "acme/big");
  enum { N = 12, SIZE = 20000 };
  char *data = malloc(SIZE);
  assert_non_null(data);
  assert_int_equal(store_batch_begin(s), 0);
  for (uint64_t seq = 1; seq <= N; seq++) {
    memset(data, 'a' + (int)seq, SIZE);
    store_event_t ev = {.topic_id = a.topic_id, .seq = seq, .ts_ms = 5, .lane = 1,
                        .data = data, .data_len = SIZE};
    assert_int_equal(store_batch_append(s, &ev), 0);
  }
  assert_int_equal(store_batch_commit(s), 0);
  free(data);
  assert_events(s, a.topic_id, 1, N);
  store_close(s);
  assert_true(sql_int("SELECT count(*) FROM chunks") > 1);
  assert_int_equal(sql_int("SELECT min(first_seq) FROM chunks"), 1);
  assert_int_equal(sql_int("SELECT max(last_seq) FROM chunks"), N);
}

/* Opens the store with its log going to a temporary file; close_logged returns whether
 * a line of the log contained want. */
static FILE *open_logged(void) {
  FILE *log = tmpfile();
  assert_non_null(log);
  log_set_stream(log);
  return log;
}

static bool close_logged(FILE *log, const char *want) {
  log_set_stream(NULL);
  rewind(log);
  char line[2048];
  bool found = false;
  while (!found && fgets(line, sizeof line, log)) found = strstr(line, want) != NULL;
  fclose(log);
  return found;
}

static void test_a_corrupt_chunk_is_eio_with_a_log_line_never_a_crash(void **state) {
  (void)state;
  static const char *const damage[] = {
      "body = x'01ffffffffffffffffffff01'",          /* overlong varint */
      "body = x'01000009000061'",                    /* id past the end */
      "body = x'02'",                                /* unknown format */
      "body = 'text'",                               /* not a blob */
      "last_seq = last_seq + 1",                     /* fewer records than seqs */
      "last_seq = last_seq - 1",                     /* more records than seqs */
      "first_seq = 0",                               /* not a seq */
      "body = substr(body, 1, length(body) - 3)",    /* truncated */
  };
  for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
    char name[32], sql[256];
    snprintf(name, sizeof name, "acme/c%zu", i);
    store_t *s = open_store();
    store_topic_t t = ensure(s, name);
    append_range(s, t.topic_id, 1, 4, 0);
    store_close(s);
    snprintf(sql, sizeof sql, "UPDATE chunks SET %s WHERE topic_id = %lld", damage[i],
             (long long)t.topic_id);
    sql_run(sql);
    s = open_store();
    FILE *log = open_logged();
    seqs_t c = {.n = 0};
    int rc = store_read(s, t.topic_id, 0, 0, collect_seq, &c);
    assert_true(close_logged(log, "corrupt event chunk"));
    assert_int_equal(rc, -EIO);
    log = open_logged();
    bool more;
    rc = store_retention_run(s, 0, 3, 0, 100, &more); /* the age scan decodes it too */
    (void)close_logged(log, "");
    assert_true(rc == 0 || rc == -EIO);
    store_close(s);
  }
}

/* ---- crash durability ---- */

enum { CRASH_BATCH = 10, CRASH_ROUNDS = 16 };

/* What the child reports through the pipe: a batch up to seq is about to be committed
 * (committed = 0), or was committed (committed = 1). */
typedef struct crash_msg {
  uint64_t seq;
  uint64_t committed;
} crash_msg_t;

static bool crash_send(int fd, uint64_t seq, uint64_t committed) {
  crash_msg_t m = {.seq = seq, .committed = committed};
  return write(fd, &m, sizeof m) == (ssize_t)sizeof m;
}

/* Runs in the child: commits batches after the topic's head until killed. */
static void crash_child(int fd) {
  store_t *s = NULL;
  store_topic_t t;
  if (contract_open(&s) < 0 || store_topic_ensure(s, "acme/crash", &t) < 0) _exit(2);
  for (uint64_t seq = t.head_seq + 1; seq < 10000000;) {
    if (store_batch_begin(s) < 0) _exit(3);
    for (int i = 0; i < CRASH_BATCH; i++, seq++) {
      store_event_t ev = make_event(t.topic_id, seq, (int64_t)seq, NULL);
      if (store_batch_append(s, &ev) < 0) _exit(4);
    }
    if (!crash_send(fd, seq - 1, 0) || store_batch_commit(s) < 0) _exit(5);
    if (!crash_send(fd, seq - 1, 1)) _exit(6);
  }
  _exit(7);
}

static void crash_note(const crash_msg_t *m, uint64_t *committed, uint64_t *attempted) {
  if (m->committed)
    *committed = m->seq;
  else
    *attempted = m->seq;
}

static int check_crash_event(void *ud, const store_event_t *ev) {
  uint64_t *expect = ud;
  char data[32];
  int n = snprintf(data, sizeof data, "{\"n\":%llu}", (unsigned long long)*expect);
  assert_int_equal(ev->seq, *expect);
  assert_int_equal(ev->data_len, (size_t)n);
  assert_memory_equal(ev->data, data, (size_t)n);
  (*expect)++;
  return 0;
}

/* Forks a writer and SIGKILLs it right after it announces commit number `kill_at` of
 * this round, i.e. while that commit is in flight; returns what it reported. */
static void crash_round(int kill_at, uint64_t *committed, uint64_t *attempted) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    crash_child(fds[1]);
  }
  close(fds[1]);
  crash_msg_t m;
  for (int announced = 0; announced < kill_at;) {
    assert_int_equal(read(fds[0], &m, sizeof m), (ssize_t)sizeof m);
    crash_note(&m, committed, attempted);
    announced += m.committed ? 0 : 1;
  }
  assert_int_equal(kill(pid, SIGKILL), 0);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  while (read(fds[0], &m, sizeof m) == (ssize_t)sizeof m) crash_note(&m, committed, attempted);
  close(fds[0]);
}

static void test_events_committed_before_a_sigkill_are_all_there_after_reopen(void **state) {
  (void)state;
  store_t *s = open_store(); /* create the schema before the child races us */
  store_close(s);
  for (int round = 0; round < CRASH_ROUNDS; round++) {
    uint64_t committed = 0, attempted = 0;
    crash_round(40 + 13 * round, &committed, &attempted);
    s = open_store();
    store_topic_t t = get(s, "acme/crash");
    /* Every reported commit is there; besides, at most the batch in flight went in. */
    assert_true(committed > 0);
    assert_true(t.head_seq == committed || (t.head_seq == attempted && attempted > committed));
    uint64_t expect = 1;
    assert_int_equal(store_read(s, t.topic_id, 0, 0, check_crash_event, &expect), 0);
    assert_int_equal(expect, t.head_seq + 1); /* dense, nothing beyond head */
    store_close(s);
  }
}

/* ---- topics_live: the topics that hold events ---- */

/* Schema 3 as the builds before topics_live created it: topic 7 holds seqs 4-5 in one
 * chunk (1-3 went to retention), topic 9 none (every event deleted), topic 11 was never
 * written. */
static void make_schema_3_file(void) {
  store_chunk_t c = {0};
  store__chunk_start(&c, 4);
  for (uint64_t seq = 4; seq <= 5; seq++) {
    store_event_t ev = make_event(7, seq, 1000 + (int64_t)seq, NULL);
    store__chunk_add(&c, &ev);
  }
  sqlite3 *db;
  assert_int_equal(sqlite3_open(test_db, &db), SQLITE_OK);
  assert_int_equal(
      sqlite3_exec(db,
                   "PRAGMA journal_mode=WAL;"
                   "CREATE TABLE topics(topic_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
                   " epoch TEXT NOT NULL, head_seq INTEGER NOT NULL, first_seq INTEGER NOT NULL);"
                   "CREATE TABLE chunks(rid INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,"
                   " first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, ts_min INTEGER NOT NULL,"
                   " ts_max INTEGER NOT NULL, body BLOB NOT NULL);"
                   "CREATE UNIQUE INDEX chunks_topic_last ON chunks(topic_id, last_seq);"
                   "CREATE TABLE dedupe(topic_id INTEGER NOT NULL, id TEXT NOT NULL,"
                   " seq INTEGER NOT NULL, ts_ms INTEGER NOT NULL, PRIMARY KEY(topic_id, id))"
                   " WITHOUT ROWID;"
                   "CREATE INDEX dedupe_ts ON dedupe(ts_ms);"
                   "PRAGMA user_version = 3;"
                   "INSERT INTO topics VALUES(7, 'acme/live', '0123456789abcdef', 5, 4);"
                   "INSERT INTO topics VALUES(9, 'acme/emptied', 'fedcba9876543210', 3, 4);"
                   "INSERT INTO topics VALUES(11, 'acme/new', '00112233445566ff', 0, 1);",
                   NULL, NULL, NULL),
      SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "INSERT INTO chunks(topic_id, first_seq, last_seq, ts_min,"
                                      " ts_max, body) VALUES(7, 4, 5, 1004, 1005, ?1)",
                                      -1, &st, NULL),
                   SQLITE_OK);
  sqlite3_bind_blob(st, 1, c.buf, (int)c.len, SQLITE_STATIC);
  assert_int_equal(sqlite3_step(st), SQLITE_DONE);
  sqlite3_finalize(st);
  sqlite3_close(db);
  store__chunk_free(&c);
}

/* The index is built at open, and the file keeps its version, so the builds before it
 * still open the file (a deploy can be rolled back; they keep the index up to date). */
static void test_a_file_without_the_index_of_live_topics_gets_it_and_keeps_its_version(
    void **state) {
  (void)state;
  make_schema_3_file();
  store_t *s = open_store();
  assert_events(s, 7, 4, 5);
  assert_int_equal(get(s, "acme/emptied").head_seq, 3);
  append_range(s, 11, 1, 2, 2000); /* the never-written topic gets events */
  store_close(s);
  assert_int_equal(sql_int("PRAGMA user_version"), 3);
  assert_int_equal(sql_int("SELECT count(*) FROM sqlite_master WHERE name = 'topics_live'"), 1);
  /* The index holds exactly the topics with events, and follows later writes. */
  assert_int_equal(sql_int("SELECT count(*) FROM topics INDEXED BY topics_live"
                           " WHERE first_seq <= head_seq"),
                   2);
  assert_int_equal(sql_int("SELECT sum(topic_id) FROM topics INDEXED BY topics_live"
                           " WHERE first_seq <= head_seq"),
                   7 + 11);
}

/* Topic rows stay forever (epoch and seq continue), so most rows of a long-lived store
 * are topics whose events retention already took. A pass examines only the topics that
 * hold events: here 3 of 2,003, in one slice, where it used to read every row. */
static void test_retention_examines_only_the_topics_that_hold_events(void **state) {
  (void)state;
  store_t *s = open_store();
  enum { EMPTY = 2000 };
  for (int i = 0; i < EMPTY; i++) {
    char name[32];
    snprintf(name, sizeof name, "acme/idle-%d", i);
    ensure(s, name);
  }
  int64_t live[3];
  for (int i = 0; i < 3; i++) {
    char name[32];
    snprintf(name, sizeof name, "acme/live-%d", i);
    live[i] = ensure(s, name).topic_id;
    append_range(s, live[i], 1, 10, 1000);
  }
  store_stats_t before, after;
  store_stats_get(s, &before);
  assert_int_equal(retention_until_done(s, 4, 0, 0, 100), 1);
  store_stats_get(s, &after);
  assert_int_equal(after.retention_topics - before.retention_topics, 3);
  for (int i = 0; i < 3; i++) assert_events(s, live[i], 7, 10);
  /* A topic whose every event goes leaves the index; one that gets events joins it. */
  assert_int_equal(retention_until_done(s, 0, 2000, 0, 100), 1); /* age: everything */
  for (int i = 0; i < 3; i++) assert_events(s, live[i], 1, 0);
  store_stats_get(s, &before);
  assert_int_equal(retention_until_done(s, 4, 0, 0, 100), 1);
  store_stats_get(s, &after);
  assert_int_equal(after.retention_topics - before.retention_topics, 0);
  append_range(s, live[1], 11, 20, 3000);
  store_stats_get(s, &before);
  assert_int_equal(retention_until_done(s, 4, 0, 0, 100), 1);
  store_stats_get(s, &after);
  assert_int_equal(after.retention_topics - before.retention_topics, 1);
  assert_events(s, live[1], 17, 20);
  store_close(s);
}

/* ---- deleted pages (secure_delete) ---- */

#define MARKER "deleted-marker-0123456789"

/* Writes 8 events of 6,000 bytes (a chunk with overflow pages) carrying MARKER, then one
 * more, and lets retention delete the first 8. Returns the WAL frames that deletion wrote;
 * the store is closed. */
static uint64_t delete_marked_events(bool secure) {
  const store_options_t opts = {.path = test_db, .secure_delete = secure};
  store_t *s = NULL;
  assert_int_equal(store_open_sqlite(&opts, &s), 0);
  store_topic_t t = ensure(s, "acme/secret");
  enum { N = 8, SIZE = 6000 };
  char *data = malloc(SIZE);
  assert_non_null(data);
  memset(data, 'x', SIZE);
  for (size_t i = 0; i + sizeof MARKER <= SIZE; i += sizeof MARKER) memcpy(data + i, MARKER "-", sizeof MARKER);
  assert_int_equal(store_batch_begin(s), 0);
  for (uint64_t seq = 1; seq <= N; seq++) {
    store_event_t ev = {.topic_id = t.topic_id, .seq = seq, .ts_ms = 5, .lane = 1, .data = data,
                        .data_len = SIZE};
    assert_int_equal(store_batch_append(s, &ev), 0);
  }
  assert_int_equal(store_batch_commit(s), 0);
  free(data);
  append_range(s, t.topic_id, N + 1, N + 1, 10);
  store_stats_t before, after;
  store_stats_get(s, &before);
  assert_int_equal(retention_until_done(s, 1, 0, 0, 100), 1);
  store_stats_get(s, &after);
  assert_events(s, t.topic_id, N + 1, N + 1);
  store_close(s);
  return after.wal_frames - before.wal_frames;
}

/* Whether the file at path holds MARKER anywhere. */
static bool file_holds_marker(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf, f);
  assert_true(feof(f)); /* a test database is small */
  fclose(f);
  return memmem(buf, n, MARKER, sizeof MARKER - 1) != NULL;
}

/* Debian's SQLite zeroes every freed page by default, which wrote each page retention
 * freed once more; the store asks for FAST unless store.secure_delete is set, and then
 * nothing deleted is left in the database file (the last close removed the -wal file).
 * With FAST the freed pages keep the marker: the positive control of the same check. */
static void test_deleted_events_leave_no_bytes_behind_only_with_secure_delete(void **state) {
  (void)state;
  char wal[sizeof test_db + 8];
  snprintf(wal, sizeof wal, "%s-wal", test_db);
  uint64_t secure_frames = delete_marked_events(true);
  assert_int_equal(access(wal, F_OK), -1);
  assert_false(file_holds_marker(test_db));
  assert_int_equal(unlink(test_db), 0);
  uint64_t fast_frames = delete_marked_events(false);
  assert_int_equal(access(wal, F_OK), -1);
  assert_true(file_holds_marker(test_db));
  assert_true(fast_frames > 0);
  assert_true(fast_frames < secure_frames);
}

/* ---- reads beside a commit ---- */

typedef struct read_call {
  store_t *s;
  int64_t topic_id;
  int rc;
  uint64_t n;
} read_call_t;

static void *read_main(void *arg) {
  read_call_t *c = arg;
  c->rc = store_read(c->s, c->topic_id, 2, 0, count_rows, &c->n);
  return NULL;
}

/* While another thread holds the store (the commit thread: a commit, a retention slice or
 * a WAL settle, tens of ms at the publish ceiling), a read is served by the reader
 * connection from what is committed, instead of making the event loop wait. */
static void test_a_read_does_not_wait_for_another_threads_call(void **state) {
  (void)state;
  store_t *s = open_store();
  int64_t id = ensure(s, "acme/replay").topic_id;
  append_range(s, id, 1, 10, 1000);
  store_hold_t h;
  hold_start(&h, s, id);
  read_call_t c = {.s = s, .topic_id = id};
  if (!hold_run(&h, read_main, &c, 5000)) fail_msg("the read waited for the other thread's call to end");
  assert_int_equal(h.hold_rc, 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.n, 8); /* seqs 3..10 */
  store_close(s);
}

/* With a step-by-step batch open, a read waits for the store's lock as before, so it sees
 * the batch's appends (the contract) and never goes to the reader, which a WAL settle of
 * that batch may hold for as long as the batch stays open. */
static void test_with_a_step_by_step_batch_open_a_read_waits_and_sees_its_appends(void **state) {
  (void)state;
  store_t *s = open_store();
  int64_t id = ensure(s, "acme/stepwise").topic_id;
  append_range(s, id, 1, 10, 1000);
  assert_int_equal(store_batch_begin(s), 0);
  store_event_t ev = make_event(id, 11, 2000, NULL);
  assert_int_equal(store_batch_append(s, &ev), 0);
  store_hold_t h;
  hold_start(&h, s, id);
  read_call_t c = {.s = s, .topic_id = id};
  assert_false(hold_run(&h, read_main, &c, 300)); /* it waited for the holder */
  assert_int_equal(h.hold_rc, 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.n, 9); /* seqs 3..11: the open batch's append too */
  assert_int_equal(store_batch_commit(s), 0);
  store_close(s);
}

#define FILE_TEST(f) cmocka_unit_test_setup_teardown(f, dbdir_setup, dbdir_teardown)

int main(void) {
  /* The contract suite runs with a fresh folder per test, like the file tests. */
  struct CMUnitTest tests[] = {
      CONTRACT_TESTS,
      FILE_TEST(test_open_rejects_a_missing_path),
      FILE_TEST(test_open_in_a_missing_folder_is_eio_and_logs_sqlites_message),
      FILE_TEST(test_open_with_synchronous_full_creates_a_wal_database_at_schema_3),
      FILE_TEST(test_with_synchronous_full_a_nowait_batch_always_declines),
      FILE_TEST(test_deleted_events_leave_no_bytes_behind_only_with_secure_delete),
      FILE_TEST(test_a_schema_1_file_is_migrated_with_every_event_and_key),
      FILE_TEST(test_open_refuses_a_database_from_a_newer_schema),
      FILE_TEST(test_everything_committed_survives_close_and_reopen),
      FILE_TEST(test_head_seq_survives_deleting_all_events_and_reopening),
      FILE_TEST(test_events_committed_before_a_sigkill_are_all_there_after_reopen),
      FILE_TEST(test_a_schema_2_file_is_converted_to_chunks_with_every_event_and_key),
      FILE_TEST(test_a_batch_over_many_topics_writes_one_chunk_row_per_topic),
      FILE_TEST(test_reads_skip_the_events_of_a_surviving_chunk_below_first_seq),
      FILE_TEST(test_age_retention_inside_a_chunk_stops_at_the_first_newer_event),
      FILE_TEST(test_large_events_split_a_topics_batch_into_several_chunks),
      FILE_TEST(test_a_corrupt_chunk_is_eio_with_a_log_line_never_a_crash),
      FILE_TEST(test_a_file_without_the_index_of_live_topics_gets_it_and_keeps_its_version),
      FILE_TEST(test_retention_examines_only_the_topics_that_hold_events),
      FILE_TEST(test_a_read_does_not_wait_for_another_threads_call),
      FILE_TEST(test_with_a_step_by_step_batch_open_a_read_waits_and_sees_its_appends),
  };
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    tests[i].setup_func = dbdir_setup;
    tests[i].teardown_func = dbdir_teardown;
  }
  return cmocka_run_group_tests_name("store sqlite", tests, NULL, NULL);
}
