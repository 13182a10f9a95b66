/* Tests for store/runs.c, runs_memory.c and runs_sqlite.c: the runs contract of store.h
 * as one suite run against both backends (the group state says which), then what only
 * the SQLite files have: runs survive reopening, live in a file of their own (moved there
 * from an older build's event log) and never wait for an event batch of another thread. Files live in a fresh folder under
 * $COORD_TEST_TMPDIR (set by ctest) or /tmp. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "store.h"
#include "store/hold.h"
#include "store/tmpdir.h"

static char test_dir[512];
static char test_db[600];

typedef enum { BACKEND_MEMORY, BACKEND_SQLITE } backend_t;

static int dir_setup(void) {
  tmpdir_make(test_dir, sizeof test_dir, "runs");
  snprintf(test_db, sizeof test_db, "%s/runs.db", test_dir);
  return 0;
}

static void dir_remove(void) { tmpdir_remove(test_dir); }

static backend_t memory_backend = BACKEND_MEMORY, sqlite_backend = BACKEND_SQLITE;

static int setup(void **state) {
  (void)state;
  return dir_setup();
}

static int teardown(void **state) {
  (void)state;
  dir_remove();
  return 0;
}

static store_t *open_store(void **state) {
  backend_t b = *(backend_t *)*state;
  store_t *s = NULL;
  if (b == BACKEND_MEMORY)
    assert_int_equal(store_open_memory(&s), 0);
  else
    assert_int_equal(store_open_sqlite(&(store_options_t){.path = test_db}, &s), 0);
  return s;
}

static store_run_t make_run(const char *id, const char *tenant, const char *wf, int64_t created) {
  return (store_run_t){.run_id = id,
                       .tenant = tenant,
                       .workflow = wf,
                       .status = "running",
                       .input = "{\"topic\":\"x\"}",
                       .created_ms = created,
                       .updated_ms = created};
}

/* What a callback saw, copied. */
typedef struct seen {
  int n;
  char ids[16][STORE_RUN_ID_MAX + 1];
  char status[16][32];
  char output[16][128];
  char state[16][128];
  char keys[16][64];
  int attempts[16];
  int64_t updated[16];
  int stop_after; /* 0 = never */
} seen_t;

static void copy(char *dst, size_t cap, const char *s) {
  snprintf(dst, cap, "%s", s ? s : "(null)");
}

static int on_run(void *ud, const store_run_t *r) {
  seen_t *s = ud;
  assert_true(s->n < 16);
  copy(s->ids[s->n], sizeof s->ids[0], r->run_id);
  copy(s->status[s->n], sizeof s->status[0], r->status);
  copy(s->output[s->n], sizeof s->output[0], r->output);
  copy(s->state[s->n], sizeof s->state[0], r->state);
  s->updated[s->n] = r->updated_ms;
  s->n++;
  return s->stop_after && s->n >= s->stop_after ? 7 : 0;
}

static int on_step(void *ud, const store_step_t *st) {
  seen_t *s = ud;
  assert_true(s->n < 16);
  copy(s->keys[s->n], sizeof s->keys[0], st->key);
  copy(s->status[s->n], sizeof s->status[0], st->status);
  copy(s->output[s->n], sizeof s->output[0], st->output);
  copy(s->state[s->n], sizeof s->state[0], st->text);
  s->attempts[s->n] = st->attempt;
  s->updated[s->n] = st->updated_ms;
  s->n++;
  return 0;
}

/* ---- the contract ---- */

static void test_run_create_then_get_returns_every_field(void **state) {
  store_t *s = open_store(state);
  store_run_t r = make_run("r_1", "acme", "flow", 1000);
  r.idem_key = "k1";
  r.state = "{\"resumes\":0}";
  assert_int_equal(store_run_create(s, &r, NULL), 0);
  seen_t seen = {0};
  assert_int_equal(store_run_get(s, "r_1", on_run, &seen), 0);
  assert_int_equal(seen.n, 1);
  assert_string_equal(seen.ids[0], "r_1");
  assert_string_equal(seen.status[0], "running");
  assert_string_equal(seen.output[0], "(null)");
  assert_string_equal(seen.state[0], "{\"resumes\":0}");
  assert_int_equal(seen.updated[0], 1000);
  assert_int_equal(store_run_get(s, "r_404", on_run, &seen), -ENOENT);
  store_close(s);
}

static void test_run_create_with_a_taken_idempotency_key_names_the_holder(void **state) {
  store_t *s = open_store(state);
  store_run_t a = make_run("r_a", "acme", "flow", 1000);
  a.idem_key = "same";
  assert_int_equal(store_run_create(s, &a, NULL), 0);
  store_run_t b = make_run("r_b", "acme", "flow", 1001);
  b.idem_key = "same";
  char existing[STORE_RUN_ID_MAX + 1] = "";
  assert_int_equal(store_run_create(s, &b, existing), -EEXIST);
  assert_string_equal(existing, "r_a");
  seen_t seen = {0};
  assert_int_equal(store_run_get(s, "r_b", on_run, &seen), -ENOENT);
  /* The key is per tenant. */
  store_run_t c = make_run("r_c", "other", "flow", 1002);
  c.idem_key = "same";
  assert_int_equal(store_run_create(s, &c, existing), 0);
  /* A duplicate run id is refused too. */
  store_run_t d = make_run("r_c", "acme", "flow", 1003);
  assert_int_equal(store_run_create(s, &d, existing), -EEXIST);
  assert_string_equal(existing, "r_c");
  store_close(s);
}

static void test_run_create_rejects_missing_fields(void **state) {
  store_t *s = open_store(state);
  store_run_t r = make_run("r_1", "acme", "flow", 1);
  r.tenant = NULL;
  assert_int_equal(store_run_create(s, &r, NULL), -EINVAL);
  r = make_run("", "acme", "flow", 1);
  assert_int_equal(store_run_create(s, &r, NULL), -EINVAL);
  char long_id[STORE_RUN_ID_MAX + 2];
  memset(long_id, 'a', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = '\0';
  r = make_run(long_id, "acme", "flow", 1);
  assert_int_equal(store_run_create(s, &r, NULL), -EINVAL);
  r = make_run("r_1", "acme", "flow", 1);
  r.idem_key = "";
  assert_int_equal(store_run_create(s, &r, NULL), -EINVAL);
  store_close(s);
}

static void test_run_save_updates_the_run_and_upserts_steps_in_one_go(void **state) {
  store_t *s = open_store(state);
  store_run_t r = make_run("r_1", "acme", "flow", 1000);
  assert_int_equal(store_run_create(s, &r, NULL), 0);
  store_step_t st[2] = {
      {.run_id = "r_1",
       .key = "a",
       .step_id = "a",
       .kind = "llm",
       .attempt = 1,
       .status = "running",
       .started_ms = 1001,
       .updated_ms = 1001},
      {.run_id = "r_1",
       .key = "fan[0]/b",
       .step_id = "b",
       .kind = "transform",
       .attempt = 1,
       .status = "completed",
       .output = "42",
       .started_ms = 1002,
       .updated_ms = 1003},
  };
  assert_int_equal(store_run_save(s, NULL, st, 2), 0);
  st[0].status = "completed";
  st[0].attempt = 2;
  st[0].output = "\"hello\"";
  st[0].text = "hello";
  st[0].updated_ms = 1010;
  store_run_t upd = {
      .run_id = "r_1", .status = "completed", .output = "{\"x\":1}", .updated_ms = 1011};
  assert_int_equal(store_run_save(s, &upd, st, 1), 0);

  seen_t seen = {0};
  assert_int_equal(store_run_get(s, "r_1", on_run, &seen), 0);
  assert_string_equal(seen.status[0], "completed");
  assert_string_equal(seen.output[0], "{\"x\":1}");
  assert_int_equal(seen.updated[0], 1011);

  seen = (seen_t){0};
  assert_int_equal(store_step_list(s, "r_1", on_step, &seen), 0);
  assert_int_equal(seen.n, 2);
  assert_string_equal(seen.keys[0], "a"); /* by started_ms */
  assert_string_equal(seen.status[0], "completed");
  assert_int_equal(seen.attempts[0], 2);
  assert_string_equal(seen.output[0], "\"hello\"");
  assert_string_equal(seen.state[0], "hello");
  assert_string_equal(seen.keys[1], "fan[0]/b");
  assert_string_equal(seen.output[1], "42");
  store_close(s);
}

static void test_run_save_of_an_unknown_run_writes_nothing(void **state) {
  store_t *s = open_store(state);
  store_run_t r = make_run("r_1", "acme", "flow", 1000);
  assert_int_equal(store_run_create(s, &r, NULL), 0);
  store_step_t st[2] = {
      {.run_id = "r_1",
       .key = "a",
       .step_id = "a",
       .kind = "llm",
       .attempt = 1,
       .status = "running",
       .started_ms = 1,
       .updated_ms = 1},
      {.run_id = "r_nope",
       .key = "b",
       .step_id = "b",
       .kind = "llm",
       .attempt = 1,
       .status = "running",
       .started_ms = 1,
       .updated_ms = 1},
  };
  assert_int_equal(store_run_save(s, NULL, st, 2), -ENOENT);
  seen_t seen = {0};
  assert_int_equal(store_step_list(s, "r_1", on_step, &seen), 0);
  assert_int_equal(seen.n, 0); /* all or nothing */
  store_run_t upd = {.run_id = "r_nope", .status = "failed", .updated_ms = 2};
  assert_int_equal(store_run_save(s, &upd, NULL, 0), -ENOENT);
  assert_int_equal(store_step_list(s, "r_nope", on_step, &seen), -ENOENT);
  st[0].attempt = 0;
  assert_int_equal(store_run_save(s, NULL, st, 1), -EINVAL);
  assert_int_equal(store_run_save(s, NULL, NULL, 0), -EINVAL);
  store_close(s);
}

static void test_run_list_filters_and_orders_newest_first(void **state) {
  store_t *s = open_store(state);
  store_run_t r1 = make_run("r_1", "acme", "a", 100);
  store_run_t r2 = make_run("r_2", "acme", "b", 200);
  store_run_t r3 = make_run("r_3", "acme", "a", 300);
  store_run_t r4 = make_run("r_4", "beta", "a", 400);
  assert_int_equal(store_run_create(s, &r1, NULL), 0);
  assert_int_equal(store_run_create(s, &r2, NULL), 0);
  assert_int_equal(store_run_create(s, &r3, NULL), 0);
  assert_int_equal(store_run_create(s, &r4, NULL), 0);
  store_run_t done = {.run_id = "r_3", .status = "completed", .updated_ms = 301};
  assert_int_equal(store_run_save(s, &done, NULL, 0), 0);
  store_run_t waiting = {.run_id = "r_2", .status = "waiting", .updated_ms = 201};
  assert_int_equal(store_run_save(s, &waiting, NULL, 0), 0);

  seen_t seen = {0};
  assert_int_equal(store_run_list(s, &(store_run_filter_t){.tenant = "acme"}, on_run, &seen), 0);
  assert_int_equal(seen.n, 3);
  assert_string_equal(seen.ids[0], "r_3");
  assert_string_equal(seen.ids[2], "r_1");

  seen = (seen_t){0};
  assert_int_equal(
      store_run_list(s, &(store_run_filter_t){.tenant = "acme", .workflow = "a"}, on_run, &seen),
      0);
  assert_int_equal(seen.n, 2);

  seen = (seen_t){0};
  assert_int_equal(store_run_list(s, &(store_run_filter_t){.status = "completed"}, on_run, &seen),
                   0);
  assert_int_equal(seen.n, 1);
  assert_string_equal(seen.ids[0], "r_3");

  seen = (seen_t){0};
  assert_int_equal(store_run_list(s, &(store_run_filter_t){.unfinished = true}, on_run, &seen), 0);
  assert_int_equal(seen.n, 3);
  assert_string_equal(seen.ids[0], "r_4");
  assert_string_equal(seen.ids[1], "r_2");
  assert_string_equal(seen.ids[2], "r_1");

  seen = (seen_t){0};
  assert_int_equal(store_run_list(s, &(store_run_filter_t){.limit = 2}, on_run, &seen), 0);
  assert_int_equal(seen.n, 2);

  seen = (seen_t){.stop_after = 1};
  assert_int_equal(store_run_list(s, NULL, on_run, &seen), 7);
  assert_int_equal(seen.n, 1);
  store_close(s);
}

static void test_run_delete_removes_the_run_and_its_steps(void **state) {
  store_t *s = open_store(state);
  store_run_t r = make_run("r_1", "acme", "flow", 1);
  r.idem_key = "k";
  assert_int_equal(store_run_create(s, &r, NULL), 0);
  store_step_t st = {.run_id = "r_1",
                     .key = "a",
                     .step_id = "a",
                     .kind = "llm",
                     .attempt = 1,
                     .status = "running",
                     .started_ms = 1,
                     .updated_ms = 1};
  assert_int_equal(store_run_save(s, NULL, &st, 1), 0);
  assert_int_equal(store_run_delete(s, "r_1"), 0);
  assert_int_equal(store_run_delete(s, "r_1"), -ENOENT);
  seen_t seen = {0};
  assert_int_equal(store_step_list(s, "r_1", on_step, &seen), -ENOENT);
  /* The key is free again. */
  assert_int_equal(store_run_create(s, &r, NULL), 0);
  assert_int_equal(store_step_list(s, "r_1", on_step, &seen), 0);
  assert_int_equal(seen.n, 0);
  store_close(s);
}

/* ---- SQLite only ---- */

static void test_sqlite_runs_survive_reopening(void **state) {
  (void)state;
  store_t *s = NULL;
  const store_options_t o = {.path = test_db};
  assert_int_equal(store_open_sqlite(&o, &s), 0);
  store_run_t r = make_run("r_1", "acme", "flow", 1);
  r.idem_key = "k";
  assert_int_equal(store_run_create(s, &r, NULL), 0);
  store_step_t st = {.run_id = "r_1",
                     .key = "a",
                     .step_id = "a",
                     .kind = "llm",
                     .attempt = 3,
                     .status = "completed",
                     .output = "\"x\"",
                     .started_ms = 1,
                     .updated_ms = 2};
  assert_int_equal(store_run_save(s, NULL, &st, 1), 0);
  store_close(s);

  assert_int_equal(store_open_sqlite(&o, &s), 0);
  seen_t seen = {0};
  assert_int_equal(store_run_list(s, &(store_run_filter_t){.unfinished = true}, on_run, &seen), 0);
  assert_int_equal(seen.n, 1);
  seen = (seen_t){0};
  assert_int_equal(store_step_list(s, "r_1", on_step, &seen), 0);
  assert_int_equal(seen.n, 1);
  assert_int_equal(seen.attempts[0], 3);
  char existing[STORE_RUN_ID_MAX + 1];
  store_run_t again = make_run("r_2", "acme", "flow", 5);
  again.idem_key = "k";
  assert_int_equal(store_run_create(s, &again, existing), -EEXIST);
  assert_string_equal(existing, "r_1");
  store_close(s);
}

/* Run calls have a lock of their own (and on SQLite a file of their own): an event batch
 * open on this thread does not stop them. */
static void test_run_writes_go_through_while_an_event_batch_is_open(void **state) {
  store_t *s = open_store(state);
  store_topic_t t;
  assert_int_equal(store_topic_ensure(s, "acme/runs/r_1", &t), 0);
  store_run_t r = make_run("r_1", "acme", "flow", 1);
  assert_int_equal(store_batch_begin(s), 0);
  store_event_t ev = {.topic_id = t.topic_id,
                      .seq = 1,
                      .ts_ms = 1,
                      .type = "x",
                      .lane = 0,
                      .data = "1",
                      .data_len = 1};
  assert_int_equal(store_batch_append(s, &ev), 0);
  assert_int_equal(store_run_create(s, &r, NULL), 0);
  store_run_t upd = {.run_id = "r_1", .status = "failed", .updated_ms = 2};
  assert_int_equal(store_run_save(s, &upd, NULL, 0), 0);
  assert_int_equal(store_batch_commit(s), 0);
  seen_t seen = {0};
  assert_int_equal(store_run_get(s, "r_1", on_run, &seen), 0);
  assert_string_equal(seen.status[0], "failed");
  assert_int_equal(store_batch_begin(s), 0);
  assert_int_equal(store_run_delete(s, "r_1"), 0);
  store_batch_rollback(s); /* the event batch's rollback leaves the run's delete alone */
  assert_int_equal(store_run_get(s, "r_1", on_run, &seen), -ENOENT);
  store_close(s);
}

typedef struct run_call {
  store_t *s;
  int rc[2];
} run_call_t;

static void *run_main(void *arg) {
  run_call_t *c = arg;
  store_run_t r = make_run("r_9", "acme", "flow", 9);
  c->rc[0] = store_run_create(c->s, &r, NULL);
  store_run_t upd = {.run_id = "r_9", .status = "completed", .updated_ms = 10};
  c->rc[1] = store_run_save(c->s, &upd, NULL, 0);
  return NULL;
}

/* The workflow engine writes runs on the event loop while the commit thread holds the
 * store for a batch, a retention slice or a WAL settle: those writes do not wait for it. */
static void test_sqlite_run_writes_do_not_wait_for_another_threads_event_call(void **state) {
  (void)state;
  store_t *s = NULL;
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = test_db}, &s), 0);
  store_hold_t h;
  hold_start_on_new_topic(&h, s, "acme/held");
  run_call_t c = {.s = s};
  if (!hold_run(&h, run_main, &c, 5000)) fail_msg("a run write waited for the other thread's call to end");
  assert_int_equal(c.rc[0], 0);
  assert_int_equal(c.rc[1], 0);
  store_close(s);
}

/* The event log file of an older build, with its runs tables and one run in them. */
static void write_legacy_runs(const char *path, const char *status) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  const char *sql =
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE IF NOT EXISTS store_parts(part TEXT PRIMARY KEY, version INTEGER NOT NULL);"
      "CREATE TABLE runs(run_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, workflow TEXT NOT NULL,"
      " status TEXT NOT NULL, input TEXT, output TEXT, error TEXT, idem_key TEXT, state TEXT,"
      " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
      "CREATE UNIQUE INDEX runs_idem ON runs(tenant, idem_key) WHERE idem_key IS NOT NULL;"
      "CREATE TABLE run_steps(run_id TEXT NOT NULL, key TEXT NOT NULL, step_id TEXT NOT NULL,"
      " kind TEXT NOT NULL, attempt INTEGER NOT NULL, status TEXT NOT NULL, output TEXT,"
      " usage TEXT, text TEXT, extra TEXT, error TEXT, started_ms INTEGER NOT NULL,"
      " updated_ms INTEGER NOT NULL, PRIMARY KEY(run_id, key)) WITHOUT ROWID;"
      "INSERT OR REPLACE INTO store_parts(part, version) VALUES ('runs', 1);"
      "INSERT INTO runs VALUES ('r_old', 'acme', 'flow', '%s', NULL, NULL, NULL, 'k', NULL, 1, 2);"
      "INSERT INTO run_steps VALUES ('r_old', 'a', 'a', 'llm', 2, 'completed', '\"x\"', NULL, NULL, NULL,"
      " NULL, 1, 2);";
  char text[2048], *err = NULL;
  snprintf(text, sizeof text, sql, status);
  if (sqlite3_exec(db, text, NULL, NULL, &err) != SQLITE_OK) fail_msg("legacy file: %s", err);
  sqlite3_close(db);
}

static bool has_table(const char *path, const char *table) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name = ?1", -1, &st, NULL),
                   SQLITE_OK);
  sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  bool have = sqlite3_column_int(st, 0) > 0;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return have;
}

/* The version the event log file's store_parts holds for part, -1 when none. */
static int part_version(const char *path, const char *part) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  int v = -1;
  if (sqlite3_prepare_v2(db, "SELECT version FROM store_parts WHERE part = ?1", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, part, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static void assert_old_run_there(store_t *s, const char *status) {
  seen_t seen = {0};
  assert_int_equal(store_run_list(s, NULL, on_run, &seen), 0);
  assert_int_equal(seen.n, 1); /* once, however often it was moved */
  assert_string_equal(seen.ids[0], "r_old");
  assert_string_equal(seen.status[0], status);
  seen = (seen_t){0};
  assert_int_equal(store_step_list(s, "r_old", on_step, &seen), 0);
  assert_int_equal(seen.n, 1);
  assert_int_equal(seen.attempts[0], 2);
  char existing[STORE_RUN_ID_MAX + 1];
  store_run_t again = make_run("r_new", "acme", "flow", 5);
  again.idem_key = "k";
  assert_int_equal(store_run_create(s, &again, existing), -EEXIST); /* its key came along */
  assert_string_equal(existing, "r_old");
}

/* Runs live in <stem>-runs.db; an event log file with runs tables (an older build's) has
 * them moved there at open, also when a crash left them in both files. */
static void test_sqlite_runs_live_in_their_own_file_and_old_ones_move_there(void **state) {
  (void)state;
  char runs_path[700];
  snprintf(runs_path, sizeof runs_path, "%.*s-runs.db", (int)(strlen(test_db) - 3), test_db);
  write_legacy_runs(test_db, "running");
  store_t *s = NULL;
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = test_db}, &s), 0);
  assert_old_run_there(s, "running");
  store_close(s);
  assert_false(has_table(test_db, "runs"));
  assert_false(has_table(test_db, "run_steps"));
  assert_true(has_table(runs_path, "runs"));
  /* An older build opening the folder refuses it ("runs schema is newer than this build")
   * instead of starting with empty runs tables of its own. */
  assert_int_equal(part_version(test_db, "runs"), 1000);
  assert_int_equal(part_version(test_db, "groups"), 1000);
  assert_int_equal(part_version(runs_path, "runs"), 1);
  /* The tables in both files: a crash after the copy and before the drop, or a rollback
   * to an older build that went on with the event log's tables (here it finished the
   * run). Those are the truth. */
  write_legacy_runs(test_db, "completed");
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = test_db}, &s), 0);
  assert_old_run_there(s, "completed");
  store_close(s);
  assert_false(has_table(test_db, "runs"));
  /* A new folder is marked the same way. */
  unlink(test_db);
  unlink(runs_path);
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = test_db}, &s), 0);
  store_close(s);
  assert_int_equal(part_version(test_db, "runs"), 1000);
  assert_false(has_table(test_db, "runs"));
}

#define BOTH(f)                                                                  \
  cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, &memory_backend), \
      cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, &sqlite_backend)

int main(void) {
  const struct CMUnitTest tests[] = {
      BOTH(test_run_create_then_get_returns_every_field),
      BOTH(test_run_create_with_a_taken_idempotency_key_names_the_holder),
      BOTH(test_run_create_rejects_missing_fields),
      BOTH(test_run_save_updates_the_run_and_upserts_steps_in_one_go),
      BOTH(test_run_save_of_an_unknown_run_writes_nothing),
      BOTH(test_run_list_filters_and_orders_newest_first),
      BOTH(test_run_delete_removes_the_run_and_its_steps),
      cmocka_unit_test_setup_teardown(test_sqlite_runs_survive_reopening, setup, teardown),
      BOTH(test_run_writes_go_through_while_an_event_batch_is_open),
      cmocka_unit_test_setup_teardown(test_sqlite_run_writes_do_not_wait_for_another_threads_event_call, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_sqlite_runs_live_in_their_own_file_and_old_ones_move_there, setup,
                                      teardown),
  };
  return cmocka_run_group_tests_name("store runs", tests, NULL, NULL);
}
