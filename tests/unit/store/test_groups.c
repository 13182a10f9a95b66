/* Tests for store/groups.c, groups_memory.c and groups_sqlite.c: the consumer-group
 * contract of store.h as one suite run against both backends (the prestate says which),
 * then what only the SQLite file has: groups and leases survive reopening. Files live in
 * a fresh folder under $COORD_TEST_TMPDIR (set by ctest) or /tmp. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "store.h"
#include "store/hold.h"
#include "store/tmpdir.h"

static char test_dir[512];
static char test_db[600];

typedef enum { BACKEND_MEMORY, BACKEND_SQLITE } backend_t;
static backend_t memory_backend = BACKEND_MEMORY, sqlite_backend = BACKEND_SQLITE;

static int setup(void **state) {
  (void)state;
  tmpdir_make(test_dir, sizeof test_dir, "groups");
  snprintf(test_db, sizeof test_db, "%s/groups.db", test_dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tmpdir_remove(test_dir);
  return 0;
}

static store_t *open_store(void **state) {
  store_t *s = NULL;
  if (*(backend_t *)*state == BACKEND_MEMORY)
    assert_int_equal(store_open_memory(&s), 0);
  else
    assert_int_equal(store_open_sqlite(&(store_options_t){.path = test_db}, &s), 0);
  return s;
}

/* What the callbacks saw, copied. */
typedef struct seen {
  int groups;
  char names[8][STORE_GROUP_NAME_MAX + 1];
  char epoch[32];
  uint64_t next_seq[8];
  uint64_t pending[8];
  uint32_t ack_wait_ms;
  int leases;
  uint64_t seqs[16];
  uint32_t deliveries[16];
} seen_t;

static int on_group(void *ud, const store_group_t *g) {
  seen_t *s = ud;
  assert_true(s->groups < 8);
  snprintf(s->names[s->groups], sizeof s->names[0], "%s", g->name);
  snprintf(s->epoch, sizeof s->epoch, "%s", g->epoch);
  s->next_seq[s->groups] = g->next_seq;
  s->pending[s->groups] = g->pending;
  s->ack_wait_ms = g->ack_wait_ms;
  s->groups++;
  return 0;
}

static int on_lease(void *ud, const store_group_lease_t *l) {
  seen_t *s = ud;
  assert_true(s->leases < 16);
  s->seqs[s->leases] = l->seq;
  s->deliveries[s->leases] = l->deliveries;
  s->leases++;
  return 0;
}

static store_group_write_t wr(const char *topic, const char *name, uint64_t next) {
  return (store_group_write_t){.group = {.topic = topic,
                                         .name = name,
                                         .epoch = "00112233aabbccdd",
                                         .next_seq = next,
                                         .ack_wait_ms = 30000}};
}

static void test_group_save_then_load_returns_the_row_and_leases_by_seq(void **state) {
  store_t *s = open_store(state);
  seen_t seen = {0};
  assert_int_equal(store_group_load(s, "acme/jobs", "workers", on_group, on_lease, &seen), -ENOENT);
  store_group_lease_t put[] = {{.seq = 9, .deliveries = 2}, {.seq = 4, .deliveries = 1}};
  store_group_write_t w = wr("acme/jobs", "workers", 11);
  w.put = put;
  w.nput = 2;
  assert_int_equal(store_group_save(s, &w, 1), 0);
  assert_int_equal(store_group_load(s, "acme/jobs", "workers", on_group, on_lease, &seen), 0);
  assert_int_equal(seen.groups, 1);
  assert_string_equal(seen.epoch, "00112233aabbccdd");
  assert_int_equal(seen.next_seq[0], 11);
  assert_int_equal(seen.pending[0], 2);
  assert_int_equal(seen.ack_wait_ms, 30000);
  assert_int_equal(seen.leases, 2);
  assert_int_equal(seen.seqs[0], 4);
  assert_int_equal(seen.seqs[1], 9);
  assert_int_equal(seen.deliveries[1], 2);
  store_close(s);
}

static void test_group_save_applies_deletes_then_puts_across_groups_in_one_call(void **state) {
  store_t *s = open_store(state);
  store_group_lease_t p1[] = {{.seq = 1, .deliveries = 1}, {.seq = 2, .deliveries = 1}};
  store_group_write_t w[2] = {wr("acme/jobs", "a", 3), wr("acme/jobs", "b", 1)};
  w[0].put = p1;
  w[0].nput = 2;
  assert_int_equal(store_group_save(s, w, 2), 0);
  /* seq 1 acked, seq 2 redelivered (deliveries 2), seq 3 handed out. */
  uint64_t del[] = {1};
  store_group_lease_t p2[] = {{.seq = 2, .deliveries = 2}, {.seq = 3, .deliveries = 1}};
  store_group_write_t w2 = wr("acme/jobs", "a", 4);
  w2.del = del;
  w2.ndel = 1;
  w2.put = p2;
  w2.nput = 2;
  assert_int_equal(store_group_save(s, &w2, 1), 0);
  seen_t seen = {0};
  assert_int_equal(store_group_load(s, "acme/jobs", "a", on_group, on_lease, &seen), 0);
  assert_int_equal(seen.next_seq[0], 4);
  assert_int_equal(seen.leases, 2);
  assert_int_equal(seen.seqs[0], 2);
  assert_int_equal(seen.deliveries[0], 2);
  assert_int_equal(seen.seqs[1], 3);
  /* The list is per topic, by name, with pending counts. */
  assert_int_equal(store_group_save(s, (store_group_write_t[]){wr("acme/other", "z", 1)}, 1), 0);
  seen_t list = {0};
  assert_int_equal(store_group_list(s, "acme/jobs", on_group, &list), 0);
  assert_int_equal(list.groups, 2);
  assert_string_equal(list.names[0], "a");
  assert_string_equal(list.names[1], "b");
  assert_int_equal(list.pending[0], 2);
  assert_int_equal(list.pending[1], 0);
  store_close(s);
}

static void test_group_delete_removes_the_row_and_its_leases(void **state) {
  store_t *s = open_store(state);
  store_group_lease_t put[] = {{.seq = 5, .deliveries = 1}};
  store_group_write_t w = wr("acme/jobs", "a", 6);
  w.put = put;
  w.nput = 1;
  assert_int_equal(store_group_save(s, &w, 1), 0);
  assert_int_equal(store_group_delete(s, "acme/jobs", "a"), 0);
  assert_int_equal(store_group_delete(s, "acme/jobs", "a"), -ENOENT);
  seen_t seen = {0};
  assert_int_equal(store_group_load(s, "acme/jobs", "a", on_group, on_lease, &seen), -ENOENT);
  /* Re-created, it starts without the old leases. */
  w.nput = 0;
  assert_int_equal(store_group_save(s, &w, 1), 0);
  assert_int_equal(store_group_load(s, "acme/jobs", "a", on_group, on_lease, &seen), 0);
  assert_int_equal(seen.leases, 0);
  store_close(s);
}

static void test_group_calls_reject_bad_arguments(void **state) {
  store_t *s = open_store(state);
  seen_t seen = {0};
  assert_int_equal(store_group_load(s, "acme/jobs", "", on_group, NULL, &seen), -EINVAL);
  assert_int_equal(store_group_load(s, NULL, "a", on_group, NULL, &seen), -EINVAL);
  assert_int_equal(store_group_load(s, "acme/jobs", "a", NULL, NULL, &seen), -EINVAL);
  char longname[STORE_GROUP_NAME_MAX + 2];
  memset(longname, 'g', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  store_group_write_t w = wr("acme/jobs", longname, 1);
  assert_int_equal(store_group_save(s, &w, 1), -EINVAL);
  w = wr("acme/jobs", "a", 0);
  assert_int_equal(store_group_save(s, &w, 1), -EINVAL);
  w = wr("acme/jobs", "a", 1);
  w.group.epoch = NULL;
  assert_int_equal(store_group_save(s, &w, 1), -EINVAL);
  w = wr("acme/jobs", "a", 1);
  w.nput = 1; /* without an array */
  assert_int_equal(store_group_save(s, &w, 1), -EINVAL);
  /* A rejected call in a list writes nothing of the list. */
  store_group_write_t two[2] = {wr("acme/jobs", "ok", 2), wr("acme/jobs", "", 2)};
  assert_int_equal(store_group_save(s, two, 2), -EINVAL);
  assert_int_equal(store_group_load(s, "acme/jobs", "ok", on_group, NULL, &seen), -ENOENT);
  assert_int_equal(store_group_save(s, NULL, 0), 0);
  store_close(s);
}

/* Group calls have a lock of their own (and on SQLite a file of their own): an event batch
 * open on this thread does not stop them. */
static void test_group_writes_go_through_while_an_event_batch_is_open(void **state) {
  store_t *s = open_store(state);
  store_topic_t t;
  assert_int_equal(store_topic_ensure(s, "acme/jobs", &t), 0);
  assert_int_equal(store_batch_begin(s), 0);
  store_group_write_t w = wr("acme/jobs", "a", 1);
  assert_int_equal(store_group_save(s, &w, 1), 0);
  store_batch_rollback(s); /* leaves the group's write alone */
  seen_t seen = {0};
  assert_int_equal(store_group_load(s, "acme/jobs", "a", on_group, NULL, &seen), 0);
  assert_int_equal(store_batch_begin(s), 0);
  assert_int_equal(store_group_delete(s, "acme/jobs", "a"), 0);
  store_batch_rollback(s); /* the delete stands */
  assert_int_equal(store_group_load(s, "acme/jobs", "a", on_group, NULL, &seen), -ENOENT);
  store_close(s);
}

/* Groups live in <stem>-groups.db; an older build's groups tables in the event log's file
 * move there at open, and that file's store_parts then refuses older builds. */
static void test_sqlite_groups_live_in_their_own_file_and_old_ones_move_there(void **state) {
  (void)state;
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(test_db, &db), SQLITE_OK);
  const char *legacy =
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE store_parts(part TEXT PRIMARY KEY, version INTEGER NOT NULL);"
      "CREATE TABLE stream_groups(topic TEXT NOT NULL, name TEXT NOT NULL, epoch TEXT NOT NULL,"
      " next_seq INTEGER NOT NULL, ack_wait_ms INTEGER NOT NULL, PRIMARY KEY(topic, name)) WITHOUT ROWID;"
      "CREATE TABLE stream_group_leases(topic TEXT NOT NULL, name TEXT NOT NULL,"
      " seq INTEGER NOT NULL, deliveries INTEGER NOT NULL, PRIMARY KEY(topic, name, seq)) WITHOUT ROWID;"
      "INSERT INTO store_parts VALUES ('groups', 1);"
      "INSERT INTO stream_groups VALUES ('acme/jobs', 'old', 'e0', 8, 30000);"
      "INSERT INTO stream_group_leases VALUES ('acme/jobs', 'old', 7, 3);";
  char *err = NULL;
  if (sqlite3_exec(db, legacy, NULL, NULL, &err) != SQLITE_OK) fail_msg("legacy file: %s", err);
  sqlite3_close(db);
  store_t *s;
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = test_db}, &s), 0);
  seen_t seen = {0};
  assert_int_equal(store_group_load(s, "acme/jobs", "old", on_group, on_lease, &seen), 0);
  assert_int_equal(seen.next_seq[0], 8);
  assert_int_equal(seen.leases, 1);
  assert_int_equal(seen.deliveries[0], 3);
  store_close(s);
  assert_int_equal(sqlite3_open(test_db, &db), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "SELECT (SELECT count(*) FROM sqlite_master WHERE name = 'stream_groups'),"
                                      " (SELECT version FROM store_parts WHERE part = 'groups')",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 0);
  assert_int_equal(sqlite3_column_int(st, 1), 1000);
  sqlite3_finalize(st);
  sqlite3_close(db);
  char groups_path[700];
  snprintf(groups_path, sizeof groups_path, "%.*s-groups.db", (int)(strlen(test_db) - 3), test_db);
  assert_true(access(groups_path, F_OK) == 0);
}

typedef struct group_call {
  store_t *s;
  int rc;
} group_call_t;

static void *group_main(void *arg) {
  group_call_t *c = arg;
  store_group_write_t w = wr("acme/jobs", "g", 3);
  c->rc = store_group_save(c->s, &w, 1);
  return NULL;
}

/* Streams writes its dirty groups once per loop turn while members ack, on the event loop,
 * while the commit thread holds the store: those writes do not wait for it. */
static void test_sqlite_group_writes_do_not_wait_for_another_threads_event_call(void **state) {
  (void)state;
  store_t *s;
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = test_db}, &s), 0);
  store_hold_t h;
  hold_start_on_new_topic(&h, s, "acme/held");
  group_call_t c = {.s = s};
  if (!hold_run(&h, group_main, &c, 5000)) fail_msg("a group write waited for the other thread's call to end");
  assert_int_equal(c.rc, 0);
  store_close(s);
}

/* A group flush per loop turn never leaves the groups file's log a moment without a
 * write: it starts over only through the settle (sqlite_wal.c), which keeps it near its
 * bound (here wal_max 1 MB, the smaller of that and 16 MB). */
static void test_sqlite_group_writes_keep_their_log_within_its_bound(void **state) {
  (void)state;
  store_t *s;
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = test_db, .wal_max_bytes = 1u << 20}, &s), 0);
  char wal[700];
  snprintf(wal, sizeof wal, "%.*s-groups.db-wal", (int)(strlen(test_db) - 3), test_db);
  store_group_lease_t put[16];
  long max_size = 0;
  for (uint64_t i = 1; i <= 3000; i++) {
    for (int k = 0; k < 16; k++) put[k] = (store_group_lease_t){.seq = i * 16 + (uint64_t)k, .deliveries = 1};
    store_group_write_t w = wr("acme/jobs", "busy", i * 16 + 16);
    w.put = put;
    w.nput = 16;
    assert_int_equal(store_group_save(s, &w, 1), 0);
    struct stat stt;
    if (stat(wal, &stt) == 0 && stt.st_size > max_size) max_size = stt.st_size;
  }
  /* The part's own log figures (coord_store_part_wal_*): the settles that kept it bounded,
   * and none of it counted as the event log's. */
  store_stats_t ps, es;
  store_part_stats_get(s, STORE_PART_GROUPS, &ps);
  store_stats_get(s, &es);
  assert_true(ps.wal_settles > 0);
  assert_true(ps.wal_settle_us_total > 0);
  assert_true(ps.wal_frames > 1000); /* 3,000 writes of a few pages each */
  assert_true(ps.wal_checkpoints >= ps.wal_settles);
  assert_int_equal(ps.commits, 0); /* only the wal_* fields are the part's */
  assert_int_equal(es.wal_settles, 0);
  store_part_stats_get(s, STORE_PART_RUNS, &ps);
  assert_int_equal(ps.wal_settles, 0); /* the runs' file saw no writes */
  store_close(s);
  assert_true(max_size > 0);
  /* The bound, plus what one write appends past it (a few pages). */
  if (max_size > (1L << 20) + (256L << 10)) fail_msg("the groups log grew to %ld bytes", max_size);
}

static void test_sqlite_groups_survive_reopening(void **state) {
  (void)state;
  store_t *s;
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = test_db}, &s), 0);
  store_group_lease_t put[] = {{.seq = 7, .deliveries = 3}};
  store_group_write_t w = wr("acme/jobs", "a", 8);
  w.put = put;
  w.nput = 1;
  assert_int_equal(store_group_save(s, &w, 1), 0);
  store_close(s);
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = test_db}, &s), 0);
  seen_t seen = {0};
  assert_int_equal(store_group_load(s, "acme/jobs", "a", on_group, on_lease, &seen), 0);
  assert_int_equal(seen.next_seq[0], 8);
  assert_int_equal(seen.leases, 1);
  assert_int_equal(seen.seqs[0], 7);
  assert_int_equal(seen.deliveries[0], 3);
  store_close(s);
}

#define BOTH(f)                                                                  \
  cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, &memory_backend), \
      cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, &sqlite_backend)

int main(void) {
  const struct CMUnitTest tests[] = {
      BOTH(test_group_save_then_load_returns_the_row_and_leases_by_seq),
      BOTH(test_group_save_applies_deletes_then_puts_across_groups_in_one_call),
      BOTH(test_group_delete_removes_the_row_and_its_leases),
      BOTH(test_group_calls_reject_bad_arguments),
      BOTH(test_group_writes_go_through_while_an_event_batch_is_open),
      cmocka_unit_test_setup_teardown(test_sqlite_groups_survive_reopening, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sqlite_group_writes_keep_their_log_within_its_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sqlite_group_writes_do_not_wait_for_another_threads_event_call, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_sqlite_groups_live_in_their_own_file_and_old_ones_move_there, setup,
                                      teardown),
  };
  return cmocka_run_group_tests_name("store groups", tests, NULL, NULL);
}
