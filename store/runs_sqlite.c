/* store runs, SQLite backend: workflow runs and step rows in the event log's file.
 *
 * Owns its own connection to the database file (WAL, the same synchronous setting as the
 * event log) so that run writes never join or wait for an event batch of the other
 * connection, the runs tables' schema (versioned in store_parts, not user_version, which
 * belongs to sqlite.c), and the statements over them. Every save is one BEGIN IMMEDIATE
 * transaction. Does not own the event tables.
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
#define RS_BUSY_TIMEOUT_MS 2000

enum rs_stmt {
  RS_BEGIN,
  RS_COMMIT,
  RS_ROLLBACK,
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
    [RS_BEGIN] = "BEGIN IMMEDIATE",
    [RS_COMMIT] = "COMMIT",
    [RS_ROLLBACK] = "ROLLBACK",
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

typedef struct rs_store {
  sqlite3 *db;                   /* owned */
  sqlite3_stmt *stmt[RS__COUNT]; /* owned, prepared at open */
} rs_store_t;

static int rs_fail(rs_store_t *q, int rc, const char *op) {
  log_error("store", "sqlite failed (runs)", "{s:s,s:i,s:s}", "op", op, "code", rc, "error",
            q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return -EBUSY;
    case SQLITE_FULL:
      return -ENOSPC;
    case SQLITE_NOMEM:
      return -ENOMEM;
    default:
      return -EIO;
  }
}

static sqlite3_stmt *rs_stmt(rs_store_t *q, enum rs_stmt which) {
  sqlite3_stmt *st = q->stmt[which];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

static void rs_text(sqlite3_stmt *st, int col, const char *s) {
  if (s)
    sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, col);
}

static const char *rs_col(sqlite3_stmt *st, int col) {
  return (const char *)sqlite3_column_text(st, col);
}

static int rs_done(rs_store_t *q, sqlite3_stmt *st, const char *op) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : rs_fail(q, rc, op);
}

static void rs_rollback_quiet(rs_store_t *q) {
  if (!sqlite3_get_autocommit(q->db)) (void)rs_done(q, rs_stmt(q, RS_ROLLBACK), "rollback");
}

/* ---- open, schema, close ---- */

static int rs_exec(rs_store_t *q, const char *sql) {
  int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : rs_fail(q, rc, sql);
}

static int rs_version(rs_store_t *q, int *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(q->db, "SELECT version FROM store_parts WHERE part = 'runs'", -1, &st,
                              NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  *out = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : rs_fail(q, rc, "runs version");
}

static int rs_migrate(rs_store_t *q) {
  int rc = rs_exec(q, "BEGIN IMMEDIATE");
  if (rc < 0) return rc;
  int version = 0;
  rc = rs_exec(q,
               "CREATE TABLE IF NOT EXISTS store_parts(part TEXT PRIMARY KEY,"
               " version INTEGER NOT NULL)");
  if (rc == 0) rc = rs_version(q, &version);
  if (rc == 0 && version > RS_SCHEMA_VERSION) {
    log_error("store", "runs schema is newer than this build", "{s:i,s:i}", "found", version,
              "supported", RS_SCHEMA_VERSION);
    rc = -EIO;
  }
  if (rc == 0 && version < 1) rc = rs_exec(q, rs_schema_v1);
  if (rc == 0) rc = rs_exec(q, "COMMIT");
  if (rc < 0) sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

static int rs_configure(rs_store_t *q, const store_options_t *opts) {
  int rc = sqlite3_busy_timeout(q->db, RS_BUSY_TIMEOUT_MS);
  if (rc != SQLITE_OK) return rs_fail(q, rc, "busy_timeout");
  /* The event log's connection already put the file in WAL mode; this one only sets its
   * own synchronous level (a per-connection setting). */
  rc = rs_exec(q, "PRAGMA journal_mode=WAL");
  if (rc == 0)
    rc = rs_exec(q,
                 opts->synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  if (rc == 0) rc = rs_migrate(q);
  for (int i = 0; rc == 0 && i < RS__COUNT; i++) {
    int src =
        sqlite3_prepare_v3(q->db, rs_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->stmt[i], NULL);
    if (src != SQLITE_OK) rc = rs_fail(q, src, rs_sql[i]);
  }
  return rc;
}

static void rs_close(void *rb) {
  rs_store_t *q = rb;
  if (!q) return;
  for (int i = 0; i < RS__COUNT; i++) sqlite3_finalize(q->stmt[i]);
  if (q->db) sqlite3_close(q->db);
  free(q);
}

/* ---- runs ---- */

static int rs_find_key(rs_store_t *q, const char *tenant, const char *key,
                       char existing[STORE_RUN_ID_MAX + 1]) {
  sqlite3_stmt *st = rs_stmt(q, RS_FIND_KEY);
  rs_text(st, 1, tenant);
  rs_text(st, 2, key);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) snprintf(existing, STORE_RUN_ID_MAX + 1, "%s", rs_col(st, 0));
  sqlite3_reset(st);
  if (rc == SQLITE_ROW) return -EEXIST;
  return rc == SQLITE_DONE ? 0 : rs_fail(q, rc, "run find key");
}

static int rs_exists(rs_store_t *q, const char *run_id) {
  sqlite3_stmt *st = rs_stmt(q, RS_EXISTS);
  rs_text(st, 1, run_id);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_ROW) return 0;
  return rc == SQLITE_DONE ? -ENOENT : rs_fail(q, rc, "run exists");
}

static int rs_create(void *rb, const store_run_t *run, char existing[STORE_RUN_ID_MAX + 1]) {
  rs_store_t *q = rb;
  int rc = rs_done(q, rs_stmt(q, RS_BEGIN), "begin");
  if (rc < 0) return rc;
  if (run->idem_key) rc = rs_find_key(q, run->tenant, run->idem_key, existing);
  if (rc == 0 && rs_exists(q, run->run_id) == 0) {
    snprintf(existing, STORE_RUN_ID_MAX + 1, "%s", run->run_id);
    rc = -EEXIST;
  }
  if (rc == 0) {
    sqlite3_stmt *st = rs_stmt(q, RS_INSERT);
    rs_text(st, 1, run->run_id);
    rs_text(st, 2, run->tenant);
    rs_text(st, 3, run->workflow);
    rs_text(st, 4, run->status);
    rs_text(st, 5, run->input);
    rs_text(st, 6, run->output);
    rs_text(st, 7, run->error);
    rs_text(st, 8, run->idem_key);
    rs_text(st, 9, run->state);
    sqlite3_bind_int64(st, 10, run->created_ms);
    sqlite3_bind_int64(st, 11, run->updated_ms);
    rc = rs_done(q, st, "run insert");
  }
  if (rc == 0) rc = rs_done(q, rs_stmt(q, RS_COMMIT), "commit");
  if (rc < 0) rs_rollback_quiet(q);
  return rc;
}

static int rs_step_put(rs_store_t *q, const store_step_t *s) {
  int rc = rs_exists(q, s->run_id);
  if (rc < 0) return rc;
  sqlite3_stmt *st = rs_stmt(q, RS_STEP_PUT);
  rs_text(st, 1, s->run_id);
  rs_text(st, 2, s->key);
  rs_text(st, 3, s->step_id);
  rs_text(st, 4, s->kind);
  sqlite3_bind_int(st, 5, s->attempt);
  rs_text(st, 6, s->status);
  rs_text(st, 7, s->output);
  rs_text(st, 8, s->usage);
  rs_text(st, 9, s->text);
  rs_text(st, 10, s->extra);
  rs_text(st, 11, s->error);
  sqlite3_bind_int64(st, 12, s->started_ms);
  sqlite3_bind_int64(st, 13, s->updated_ms);
  return rs_done(q, st, "step put");
}

static int rs_save(void *rb, const store_run_t *run, const store_step_t *steps, size_t n) {
  rs_store_t *q = rb;
  int rc = rs_done(q, rs_stmt(q, RS_BEGIN), "begin");
  if (rc < 0) return rc;
  if (run) {
    sqlite3_stmt *st = rs_stmt(q, RS_UPDATE);
    rs_text(st, 1, run->run_id);
    rs_text(st, 2, run->status);
    rs_text(st, 3, run->output);
    rs_text(st, 4, run->error);
    rs_text(st, 5, run->state);
    sqlite3_bind_int64(st, 6, run->updated_ms);
    rc = rs_done(q, st, "run update");
    if (rc == 0 && sqlite3_changes(q->db) == 0) rc = -ENOENT;
  }
  for (size_t i = 0; rc == 0 && i < n; i++) rc = rs_step_put(q, &steps[i]);
  if (rc == 0) rc = rs_done(q, rs_stmt(q, RS_COMMIT), "commit");
  if (rc < 0) rs_rollback_quiet(q);
  return rc;
}

static store_run_t rs_run_row(sqlite3_stmt *st) {
  return (store_run_t){.run_id = rs_col(st, 0),
                       .tenant = rs_col(st, 1),
                       .workflow = rs_col(st, 2),
                       .status = rs_col(st, 3),
                       .input = rs_col(st, 4),
                       .output = rs_col(st, 5),
                       .error = rs_col(st, 6),
                       .idem_key = rs_col(st, 7),
                       .state = rs_col(st, 8),
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
  if (!out && rc != SQLITE_DONE) out = rs_fail(q, rc, "run read");
  sqlite3_reset(st);
  return out;
}

static int rs_get(void *rb, const char *run_id, store_run_cb cb, void *ud) {
  rs_store_t *q = rb;
  sqlite3_stmt *st = rs_stmt(q, RS_GET);
  rs_text(st, 1, run_id);
  int rows = 0;
  int rc = rs_iter_runs(q, st, cb, ud, &rows);
  return rc == 0 && rows == 0 ? -ENOENT : rc;
}

static int rs_list(void *rb, const store_run_filter_t *f, store_run_cb cb, void *ud) {
  rs_store_t *q = rb;
  sqlite3_stmt *st = rs_stmt(q, RS_LIST);
  rs_text(st, 1, f->tenant);
  rs_text(st, 2, f->workflow);
  rs_text(st, 3, f->status);
  sqlite3_bind_int(st, 4, f->unfinished ? 1 : 0);
  sqlite3_bind_int64(st, 5, f->limit ? (sqlite3_int64)f->limit : -1);
  int rows = 0;
  return rs_iter_runs(q, st, cb, ud, &rows);
}

static int rs_steps(void *rb, const char *run_id, store_step_cb cb, void *ud) {
  rs_store_t *q = rb;
  int rc = rs_exists(q, run_id);
  if (rc < 0) return rc;
  sqlite3_stmt *st = rs_stmt(q, RS_STEPS);
  rs_text(st, 1, run_id);
  int out = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    store_step_t s = {.run_id = rs_col(st, 0),
                      .key = rs_col(st, 1),
                      .step_id = rs_col(st, 2),
                      .kind = rs_col(st, 3),
                      .attempt = sqlite3_column_int(st, 4),
                      .status = rs_col(st, 5),
                      .output = rs_col(st, 6),
                      .usage = rs_col(st, 7),
                      .text = rs_col(st, 8),
                      .extra = rs_col(st, 9),
                      .error = rs_col(st, 10),
                      .started_ms = sqlite3_column_int64(st, 11),
                      .updated_ms = sqlite3_column_int64(st, 12)};
    out = cb(ud, &s);
    if (out) break;
  }
  if (!out && rc != SQLITE_DONE) out = rs_fail(q, rc, "step read");
  sqlite3_reset(st);
  return out;
}

static int rs_del(void *rb, const char *run_id) {
  rs_store_t *q = rb;
  int rc = rs_done(q, rs_stmt(q, RS_BEGIN), "begin");
  if (rc < 0) return rc;
  sqlite3_stmt *st = rs_stmt(q, RS_DEL_STEPS);
  rs_text(st, 1, run_id);
  rc = rs_done(q, st, "delete steps");
  if (rc == 0) {
    st = rs_stmt(q, RS_DEL);
    rs_text(st, 1, run_id);
    rc = rs_done(q, st, "delete run");
    if (rc == 0 && sqlite3_changes(q->db) == 0) rc = -ENOENT;
  }
  if (rc == 0) rc = rs_done(q, rs_stmt(q, RS_COMMIT), "commit");
  if (rc < 0) rs_rollback_quiet(q);
  return rc;
}

static const store_runs_ops_t rs_ops = {
    .close = rs_close,
    .create = rs_create,
    .save = rs_save,
    .get = rs_get,
    .list = rs_list,
    .steps = rs_steps,
    .del = rs_del,
};

int store__runs_sqlite_open(const store_options_t *opts, const store_runs_ops_t **ops, void **rb) {
  rs_store_t *q = xcalloc(1, sizeof *q);
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(opts->path, &q->db, flags, NULL);
  if (rc != SQLITE_OK) {
    log_error("store", "cannot open database (runs)", "{s:s,s:s}", "path", opts->path, "error",
              q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
    rc = -EIO;
  } else {
    rc = rs_configure(q, opts);
  }
  if (rc < 0) {
    rs_close(q);
    return -EIO;
  }
  *ops = &rs_ops;
  *rb = q;
  return 0;
}
