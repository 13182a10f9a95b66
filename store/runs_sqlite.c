/* store runs, SQLite backend: workflow runs and step rows in a file of their own.
 *
 * The runs live beside the event log in <stem>-runs.db (store__part_path): SQLite has one
 * writer per file, and in the event log's file every run write (a few per step, on the
 * event loop) waited for the commit thread's batch, retention slice or WAL settle: 2.4 s
 * of 14 with 20 runs/s beside 120,000 events/s (docs/benchmarks.md, "Run writes beside
 * publishing"). Owns that file's connection (opened by sqlite_conn.c with the same
 * settings as the event log's) and its checkpointer (sqlite_wal.c, as for the event log:
 * no checkpoint and no fsync inside a run write), the runs tables' schema (versioned in
 * store_parts) and the statements over them; moves the runs tables of an event log file
 * written by an older build into the runs file at open (store__sql_move_legacy). Every save is
 * one BEGIN IMMEDIATE transaction. Does not own the event tables.
 *
 * Schema (runs version 1):
 *   runs(run_id PRIMARY KEY, tenant, workflow, status, input, output, error, idem_key,
 *        state, created_ms, updated_ms); unique (tenant, idem_key) where idem_key is set
 *   run_steps(run_id, key, step_id, kind, attempt, status, output, usage, text, extra,
 *             error, started_ms, updated_ms) keyed (run_id, key), no rowid */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"

#define RS_SCHEMA_VERSION 1

enum rs_stmt {
  RS_INSERT,
  RS_FIND_KEY,
  RS_EXISTS,
  RS_UPDATE,
  RS_STEP_PUT,
  RS_GET,
  RS_LIST,
  RS_STEPS,
  RS_DEL_STEPS,
  RS_DEL,
  RS__COUNT
};

#define RS_RUN_COLS                                                                       \
  "run_id, tenant, workflow, status, input, output, error, idem_key, state, created_ms, " \
  "updated_ms"

static const char *const rs_sql[RS__COUNT] = {
    [RS_INSERT] = "INSERT INTO runs(" RS_RUN_COLS ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
    [RS_FIND_KEY] = "SELECT run_id FROM runs WHERE tenant = ?1 AND idem_key = ?2",
    [RS_EXISTS] = "SELECT 1 FROM runs WHERE run_id = ?1",
    [RS_UPDATE] =
        "UPDATE runs SET status = ?2, output = ?3, error = ?4, state = ?5, updated_ms = ?6"
        " WHERE run_id = ?1",
    [RS_STEP_PUT] =
        "INSERT OR REPLACE INTO run_steps(run_id, key, step_id, kind, attempt, status, output,"
        " usage, text, extra, error, started_ms, updated_ms)"
        " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
    [RS_GET] = "SELECT " RS_RUN_COLS " FROM runs WHERE run_id = ?1",
    [RS_LIST] = "SELECT " RS_RUN_COLS
                " FROM runs WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR workflow = ?2)"
                " AND (?3 IS NULL OR status = ?3)"
                " AND (?4 = 0 OR status NOT IN ('completed', 'failed', 'cancelled'))"
                " ORDER BY created_ms DESC, run_id DESC LIMIT ?5",
    [RS_STEPS] =
        "SELECT run_id, key, step_id, kind, attempt, status, output, usage, text, extra, error,"
        " started_ms, updated_ms FROM run_steps WHERE run_id = ?1 ORDER BY started_ms, key",
    [RS_DEL_STEPS] = "DELETE FROM run_steps WHERE run_id = ?1",
    [RS_DEL] = "DELETE FROM runs WHERE run_id = ?1",
};

/* Version 0 to 1: the tables. */
static const char rs_schema_v1[] =
    "CREATE TABLE runs(run_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, workflow TEXT NOT NULL,"
    " status TEXT NOT NULL, input TEXT, output TEXT, error TEXT, idem_key TEXT, state TEXT,"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX runs_idem ON runs(tenant, idem_key) WHERE idem_key IS NOT NULL;"
    "CREATE INDEX runs_created ON runs(created_ms);"
    "CREATE INDEX runs_status ON runs(status);"
    "CREATE TABLE run_steps(run_id TEXT NOT NULL, key TEXT NOT NULL, step_id TEXT NOT NULL,"
    " kind TEXT NOT NULL, attempt INTEGER NOT NULL, status TEXT NOT NULL, output TEXT,"
    " usage TEXT, text TEXT, extra TEXT, error TEXT, started_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, PRIMARY KEY(run_id, key)) WITHOUT ROWID;"
    "INSERT OR REPLACE INTO store_parts(part, version) VALUES ('runs', 1);";

typedef store_part_file_t rs_store_t; /* the part's file: connection, checkpointer */

static const char *const rs_migrations[RS_SCHEMA_VERSION] = {rs_schema_v1};

static void rs_close(void *rb) {
  rs_store_t *q = rb;
  if (!q) return;
  store__part_close(q);
  free(q);
}


/* The runs tables of an event log file written before the runs had a file of their own. */
static const store_legacy_table_t rs_legacy[] = {
    {"runs", RS_RUN_COLS},
    {"run_steps", "run_id, key, step_id, kind, attempt, status, output, usage, text, extra, error,"
                  " started_ms, updated_ms"},
};

/* ---- runs ---- */

static int rs_find_key(rs_store_t *q, const char *tenant, const char *key,
                       char existing[STORE_RUN_ID_MAX + 1]) {
  sqlite3_stmt *st = store__sql_stmt(&q->sql, RS_FIND_KEY);
  store__sql_bind_text(st, 1, tenant);
  store__sql_bind_text(st, 2, key);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) snprintf(existing, STORE_RUN_ID_MAX + 1, "%s", store__sql_col_text(st, 0));
  sqlite3_reset(st);
  if (rc == SQLITE_ROW) return -EEXIST;
  return rc == SQLITE_DONE ? 0 : store__sql_fail(&q->sql, rc, "run find key");
}

static int rs_exists(rs_store_t *q, const char *run_id) {
  sqlite3_stmt *st = store__sql_stmt(&q->sql, RS_EXISTS);
  store__sql_bind_text(st, 1, run_id);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_ROW) return 0;
  return rc == SQLITE_DONE ? -ENOENT : store__sql_fail(&q->sql, rc, "run exists");
}

static int rs_create(void *rb, const store_run_t *run, char existing[STORE_RUN_ID_MAX + 1]) {
  rs_store_t *q = rb;
  int rc = store__part_begin(q);
  if (rc < 0) return rc;
  if (run->idem_key) rc = rs_find_key(q, run->tenant, run->idem_key, existing);
  if (rc == 0 && rs_exists(q, run->run_id) == 0) {
    snprintf(existing, STORE_RUN_ID_MAX + 1, "%s", run->run_id);
    rc = -EEXIST;
  }
  if (rc == 0) {
    sqlite3_stmt *st = store__sql_stmt(&q->sql, RS_INSERT);
    store__sql_bind_text(st, 1, run->run_id);
    store__sql_bind_text(st, 2, run->tenant);
    store__sql_bind_text(st, 3, run->workflow);
    store__sql_bind_text(st, 4, run->status);
    store__sql_bind_text(st, 5, run->input);
    store__sql_bind_text(st, 6, run->output);
    store__sql_bind_text(st, 7, run->error);
    store__sql_bind_text(st, 8, run->idem_key);
    store__sql_bind_text(st, 9, run->state);
    sqlite3_bind_int64(st, 10, run->created_ms);
    sqlite3_bind_int64(st, 11, run->updated_ms);
    rc = store__sql_done(&q->sql, st, "run insert");
  }
  return store__sql_end(&q->sql, rc);
}

static int rs_step_put(rs_store_t *q, const store_step_t *s) {
  int rc = rs_exists(q, s->run_id);
  if (rc < 0) return rc;
  sqlite3_stmt *st = store__sql_stmt(&q->sql, RS_STEP_PUT);
  store__sql_bind_text(st, 1, s->run_id);
  store__sql_bind_text(st, 2, s->key);
  store__sql_bind_text(st, 3, s->step_id);
  store__sql_bind_text(st, 4, s->kind);
  sqlite3_bind_int(st, 5, s->attempt);
  store__sql_bind_text(st, 6, s->status);
  store__sql_bind_text(st, 7, s->output);
  store__sql_bind_text(st, 8, s->usage);
  store__sql_bind_text(st, 9, s->text);
  store__sql_bind_text(st, 10, s->extra);
  store__sql_bind_text(st, 11, s->error);
  sqlite3_bind_int64(st, 12, s->started_ms);
  sqlite3_bind_int64(st, 13, s->updated_ms);
  return store__sql_done(&q->sql, st, "step put");
}

static int rs_save(void *rb, const store_run_t *run, const store_step_t *steps, size_t n) {
  rs_store_t *q = rb;
  int rc = store__part_begin(q);
  if (rc < 0) return rc;
  if (run) {
    sqlite3_stmt *st = store__sql_stmt(&q->sql, RS_UPDATE);
    store__sql_bind_text(st, 1, run->run_id);
    store__sql_bind_text(st, 2, run->status);
    store__sql_bind_text(st, 3, run->output);
    store__sql_bind_text(st, 4, run->error);
    store__sql_bind_text(st, 5, run->state);
    sqlite3_bind_int64(st, 6, run->updated_ms);
    rc = store__sql_done(&q->sql, st, "run update");
    if (rc == 0 && sqlite3_changes(q->sql.db) == 0) rc = -ENOENT;
  }
  for (size_t i = 0; rc == 0 && i < n; i++) rc = rs_step_put(q, &steps[i]);
  return store__sql_end(&q->sql, rc);
}

static store_run_t rs_run_row(sqlite3_stmt *st) {
  return (store_run_t){.run_id = store__sql_col_text(st, 0),
                       .tenant = store__sql_col_text(st, 1),
                       .workflow = store__sql_col_text(st, 2),
                       .status = store__sql_col_text(st, 3),
                       .input = store__sql_col_text(st, 4),
                       .output = store__sql_col_text(st, 5),
                       .error = store__sql_col_text(st, 6),
                       .idem_key = store__sql_col_text(st, 7),
                       .state = store__sql_col_text(st, 8),
                       .created_ms = sqlite3_column_int64(st, 9),
                       .updated_ms = sqlite3_column_int64(st, 10)};
}

/* Steps st, calling cb per row (conv turns the row into the callback's struct). Returns
 * 0, the callback's nonzero value, or an error. */
static int rs_iter_runs(rs_store_t *q, sqlite3_stmt *st, store_run_cb cb, void *ud, int *rows) {
  int rc, out = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    (*rows)++;
    store_run_t r = rs_run_row(st);
    out = cb(ud, &r);
    if (out) break;
  }
  if (!out && rc != SQLITE_DONE) out = store__sql_fail(&q->sql, rc, "run read");
  sqlite3_reset(st);
  return out;
}

static int rs_get(void *rb, const char *run_id, store_run_cb cb, void *ud) {
  rs_store_t *q = rb;
  sqlite3_stmt *st = store__sql_stmt(&q->sql, RS_GET);
  store__sql_bind_text(st, 1, run_id);
  int rows = 0;
  int rc = rs_iter_runs(q, st, cb, ud, &rows);
  return rc == 0 && rows == 0 ? -ENOENT : rc;
}

static int rs_list(void *rb, const store_run_filter_t *f, store_run_cb cb, void *ud) {
  rs_store_t *q = rb;
  sqlite3_stmt *st = store__sql_stmt(&q->sql, RS_LIST);
  store__sql_bind_text(st, 1, f->tenant);
  store__sql_bind_text(st, 2, f->workflow);
  store__sql_bind_text(st, 3, f->status);
  sqlite3_bind_int(st, 4, f->unfinished ? 1 : 0);
  sqlite3_bind_int64(st, 5, f->limit ? (sqlite3_int64)f->limit : -1);
  int rows = 0;
  return rs_iter_runs(q, st, cb, ud, &rows);
}

static int rs_steps(void *rb, const char *run_id, store_step_cb cb, void *ud) {
  rs_store_t *q = rb;
  int rc = rs_exists(q, run_id);
  if (rc < 0) return rc;
  sqlite3_stmt *st = store__sql_stmt(&q->sql, RS_STEPS);
  store__sql_bind_text(st, 1, run_id);
  int out = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    store_step_t s = {.run_id = store__sql_col_text(st, 0),
                      .key = store__sql_col_text(st, 1),
                      .step_id = store__sql_col_text(st, 2),
                      .kind = store__sql_col_text(st, 3),
                      .attempt = sqlite3_column_int(st, 4),
                      .status = store__sql_col_text(st, 5),
                      .output = store__sql_col_text(st, 6),
                      .usage = store__sql_col_text(st, 7),
                      .text = store__sql_col_text(st, 8),
                      .extra = store__sql_col_text(st, 9),
                      .error = store__sql_col_text(st, 10),
                      .started_ms = sqlite3_column_int64(st, 11),
                      .updated_ms = sqlite3_column_int64(st, 12)};
    out = cb(ud, &s);
    if (out) break;
  }
  if (!out && rc != SQLITE_DONE) out = store__sql_fail(&q->sql, rc, "step read");
  sqlite3_reset(st);
  return out;
}

static int rs_del(void *rb, const char *run_id) {
  rs_store_t *q = rb;
  int rc = store__part_begin(q);
  if (rc < 0) return rc;
  sqlite3_stmt *st = store__sql_stmt(&q->sql, RS_DEL_STEPS);
  store__sql_bind_text(st, 1, run_id);
  rc = store__sql_done(&q->sql, st, "delete steps");
  if (rc == 0) {
    st = store__sql_stmt(&q->sql, RS_DEL);
    store__sql_bind_text(st, 1, run_id);
    rc = store__sql_done(&q->sql, st, "delete run");
    if (rc == 0 && sqlite3_changes(q->sql.db) == 0) rc = -ENOENT;
  }
  return store__sql_end(&q->sql, rc);
}

static void rs_wal_stats(void *rb, store_stats_t *out) { store__part_wal_stats(rb, out); }

static const store_runs_ops_t rs_ops = {
    .close = rs_close,
    .create = rs_create,
    .save = rs_save,
    .get = rs_get,
    .list = rs_list,
    .steps = rs_steps,
    .del = rs_del,
    .wal_stats = rs_wal_stats,
};

int store__runs_sqlite_open(const store_options_t *opts, const store_runs_ops_t **ops, void **rb) {
  rs_store_t *q = xcalloc(1, sizeof *q);
  const store_part_spec_t spec = {.part = "runs",
                                  .version = RS_SCHEMA_VERSION,
                                  .migrations = rs_migrations,
                                  .legacy = rs_legacy,
                                  .nlegacy = sizeof rs_legacy / sizeof *rs_legacy,
                                  .sql = rs_sql,
                                  .nsql = RS__COUNT};
  int rc = store__part_open(q, opts, &spec);
  if (rc < 0) {
    rs_close(q);
    return -EIO;
  }
  *ops = &rs_ops;
  *rb = q;
  return 0;
}
