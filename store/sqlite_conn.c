/* store SQLite connections: what the three SQLite backends share.
 *
 * Owns opening a connection with the store's settings (busy timeout, WAL, synchronous),
 * the BEGIN IMMEDIATE / COMMIT / ROLLBACK statements and the array of a backend's
 * statements prepared from its table of SQL texts, the mapping of SQLite's error codes to
 * negative errno (one log line per failure), and the store_parts versioning used by the
 * runs and groups parts. Does not own any table, statement text or schema: those stay in
 * sqlite.c, runs_sqlite.c and groups_sqlite.c. Contracts are in internal.h. */
#include <assert.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"

enum { SQL_BEGIN, SQL_COMMIT, SQL_ROLLBACK, SQL__TXN };

static const char *const sql_txn[SQL__TXN] = {
    [SQL_BEGIN] = "BEGIN IMMEDIATE",
    [SQL_COMMIT] = "COMMIT",
    [SQL_ROLLBACK] = "ROLLBACK",
};

/* A log message with the part named after it, as "sqlite failed (runs)". */
static const char *sql_msg(const store_sql_t *c, const char *msg, char *buf, size_t cap) {
  if (!c->part) return msg;
  snprintf(buf, cap, "%s (%s)", msg, c->part);
  return buf;
}

int store__sql_fail(store_sql_t *c, int rc, const char *op) {
  char buf[96];
  log_error("store", sql_msg(c, "sqlite failed", buf, sizeof buf), "{s:s,s:i,s:s}", "op", op,
            "code", rc, "error", c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
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

int store__sql_exec(store_sql_t *c, const char *sql) {
  int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : store__sql_fail(c, rc, sql);
}

sqlite3_stmt *store__sql_stmt(store_sql_t *c, size_t i) {
  sqlite3_stmt *st = c->stmt[i];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

int store__sql_done(store_sql_t *c, sqlite3_stmt *st, const char *op) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : store__sql_fail(c, rc, op);
}

void store__sql_bind_text(sqlite3_stmt *st, int col, const char *s) {
  if (s)
    sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, col);
}

const char *store__sql_col_text(sqlite3_stmt *st, int col) {
  return (const char *)sqlite3_column_text(st, col);
}

/* ---- transactions ---- */

static int sql_txn_run(store_sql_t *c, int which, const char *op) {
  sqlite3_stmt *st = c->txn[which];
  sqlite3_reset(st);
  return store__sql_done(c, st, op);
}

int store__sql_begin(store_sql_t *c) {
  return sql_txn_run(c, SQL_BEGIN, "begin");
}

void store__sql_rollback(store_sql_t *c) {
  if (!sqlite3_get_autocommit(c->db)) (void)sql_txn_run(c, SQL_ROLLBACK, "rollback");
  store__vfs_rolled_back(c->db);
}

int store__sql_end(store_sql_t *c, int rc) {
  if (rc == 0) rc = sql_txn_run(c, SQL_COMMIT, "commit");
  if (rc < 0) store__sql_rollback(c);
  return rc;
}

/* ---- open, prepare, close ---- */

static int sql_wal_on(store_sql_t *c) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
  if (rc != SQLITE_OK) return store__sql_fail(c, rc, "journal_mode");
  rc = sqlite3_step(st);
  bool wal = rc == SQLITE_ROW && strcmp(store__sql_col_text(st, 0), "wal") == 0;
  sqlite3_finalize(st);
  if (wal) return 0;
  char buf[96];
  log_error("store", sql_msg(c, "sqlite cannot enter WAL mode", buf, sizeof buf), "{s:s}", "error",
            sqlite3_errmsg(c->db));
  return -EIO;
}

int store__sql_open(store_sql_t *c, const store_options_t *opts, const char *part) {
  c->part = part;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(opts->path, &c->db, flags, store__vfs());
  if (rc != SQLITE_OK) {
    char buf[96];
    log_error("store", sql_msg(c, "cannot open database", buf, sizeof buf), "{s:s,s:s}", "path",
              opts->path, "error", c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
    return -EIO;
  }
  c->sync_full = opts->synchronous_full;
  rc = sqlite3_busy_timeout(c->db, STORE_SQL_BUSY_TIMEOUT_MS);
  if (rc != SQLITE_OK) return store__sql_fail(c, rc, "busy_timeout");
  rc = sql_wal_on(c);
  if (rc == 0)
    rc = store__sql_exec(
        c, opts->synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  /* Debian's SQLite is built with secure_delete on: every page retention frees was zeroed
   * and written once more, through the WAL and the checkpoint. FAST leaves freed pages as
   * they are (store.h): at the publish ceiling, 0.77x the WAL frames per event and 0.71x
   * the retention time per deleted event (docs/streams.md, "Deleted pages"). */
  if (rc == 0)
    rc = store__sql_exec(c, opts->secure_delete ? "PRAGMA secure_delete=ON"
                                                : "PRAGMA secure_delete=FAST");
  /* SQLite's default page cache (2 MB) kept few of the pages every batch touches (the
   * index leaves of the topics it appends to, the tree's inner pages): at the publish
   * ceiling the commit thread then read about three times as many pages back from the
   * files as with 32 MB (docs/streams.md). Memory is taken only as pages are used. */
  if (rc == 0) {
    char sql[64];
    size_t kib = (opts->cache_bytes ? opts->cache_bytes : STORE_CACHE_DEFAULT) >> 10;
    snprintf(sql, sizeof sql, "PRAGMA cache_size=-%zu", kib ? kib : 1);
    rc = store__sql_exec(c, sql);
  }
  return rc;
}

static int sql_prepare_one(store_sql_t *c, const char *sql, sqlite3_stmt **out) {
  int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
  return rc == SQLITE_OK ? 0 : store__sql_fail(c, rc, sql);
}

int store__sql_prepare(store_sql_t *c, const char *const *sql, size_t n) {
  assert(!c->stmt);
  c->stmt = xcalloc(n ? n : 1, sizeof *c->stmt);
  c->nstmt = n;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < SQL__TXN; i++) rc = sql_prepare_one(c, sql_txn[i], &c->txn[i]);
  for (size_t i = 0; rc == 0 && i < n; i++) rc = sql_prepare_one(c, sql[i], &c->stmt[i]);
  return rc;
}

void store__sql_close(store_sql_t *c) {
  for (size_t i = 0; i < SQL__TXN; i++) sqlite3_finalize(c->txn[i]);
  for (size_t i = 0; i < c->nstmt; i++) sqlite3_finalize(c->stmt[i]);
  free(c->stmt);
  if (c->db) sqlite3_close(c->db);
  *c = (store_sql_t){0};
}

/* ---- store_parts versions ---- */

static int sql_part_version(store_sql_t *c, int *out) {
  sqlite3_stmt *st = NULL;
  int rc =
      sqlite3_prepare_v2(c->db, "SELECT version FROM store_parts WHERE part = ?1", -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, c->part, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
  }
  *out = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  sqlite3_finalize(st);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) return 0;
  char op[64];
  snprintf(op, sizeof op, "%s version", c->part);
  return store__sql_fail(c, rc, op);
}

static int sql_part_steps(store_sql_t *c, int supported, const char *const *steps) {
  int version = 0;
  int rc = store__sql_exec(
      c, "CREATE TABLE IF NOT EXISTS store_parts(part TEXT PRIMARY KEY, version INTEGER NOT NULL)");
  if (rc == 0) rc = sql_part_version(c, &version);
  if (rc < 0) return rc;
  if (version > supported) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s schema is newer than this build", c->part);
    log_error("store", msg, "{s:i,s:i}", "found", version, "supported", supported);
    return -EIO;
  }
  for (int v = version < 0 ? 0 : version; rc == 0 && v < supported; v++)
    rc = store__sql_exec(c, steps[v]);
  return rc;
}

int store__sql_part_migrate(store_sql_t *c, int supported, const char *const *steps) {
  assert(c->part);
  int rc = store__sql_exec(c, "BEGIN IMMEDIATE");
  if (rc < 0) return rc;
  rc = sql_part_steps(c, supported, steps);
  if (rc == 0) rc = store__sql_exec(c, "COMMIT");
  if (rc < 0) {
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    store__vfs_rolled_back(c->db);
  }
  return rc;
}

/* ---- parts moved out of the event log's file ---- */

/* internal.h */
char *store__part_path(const char *events_path, const char *part) {
  size_t n = strlen(events_path), m = strlen(part);
  if (n > 3 && strcmp(events_path + n - 3, ".db") == 0) n -= 3;
  char *p = xmalloc(n + 1 + m + sizeof ".db");
  memcpy(p, events_path, n);
  p[n] = '-';
  memcpy(p + n + 1, part, m);
  memcpy(p + n + 1 + m, ".db", sizeof ".db");
  return p;
}

static int sql_legacy_has(store_sql_t *c, const char *table, bool *have) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c->db, "SELECT count(*) FROM legacy.sqlite_master WHERE type = 'table' AND name = ?1",
                              -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
  }
  *have = rc == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : store__sql_fail(c, rc, "legacy tables");
}

/* Runs sql (a script) in one transaction; rolled back on failure. */
static int sql_script_txn(store_sql_t *c, const char *sql) {
  char *text = xasprintf("BEGIN IMMEDIATE;%sCOMMIT", sql);
  int rc = store__sql_exec(c, text);
  free(text);
  if (rc < 0) sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

/* The event log file's store_parts row of a part that left it: an older build that opens
 * the data folder refuses it ("schema is newer than this build") instead of creating the
 * part's tables anew, empty, and running without the runs or groups it had. */
static int sql_part_moved_mark(store_sql_t *c) {
  char *sql = xasprintf("CREATE TABLE IF NOT EXISTS legacy.store_parts(part TEXT PRIMARY KEY,"
                        " version INTEGER NOT NULL);"
                        "INSERT INTO legacy.store_parts(part, version) VALUES ('%s', %d)"
                        " ON CONFLICT(part) DO UPDATE SET version = excluded.version"
                        " WHERE version != excluded.version;",
                        c->part, STORE_PART_MOVED);
  int rc = sql_script_txn(c, sql);
  free(sql);
  return rc;
}

/* internal.h */
int store__sql_move_legacy(store_sql_t *c, const char *events_path, const store_legacy_table_t *tables,
                           size_t n) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c->db, "ATTACH DATABASE ?1 AS legacy", -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, events_path, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return store__sql_fail(c, rc, "attach the event log");
  bool have = false;
  int out = n ? sql_legacy_has(c, tables[0].name, &have) : 0;
  if (out == 0 && have) {
    /* Copied in one transaction of this file, then dropped in one of the event log's: a
     * crash between the two leaves both, and the next open copies again and drops them
     * then. While the event log's file has the tables, they are the truth: the copy first
     * empties this file's (nothing writes it before the drop succeeds; and after a rollback
     * to an older build, which worked on the event log's tables, this file is stale). */
    char *copy = xstrdup(""), *drop = xstrdup("");
    for (size_t i = 0; i < n; i++) {
      char *c2 = xasprintf("%sDELETE FROM main.%s;INSERT INTO main.%s(%s) SELECT %s FROM legacy.%s;", copy,
                           tables[i].name, tables[i].name, tables[i].cols, tables[i].cols, tables[i].name);
      char *d2 = xasprintf("%sDROP TABLE IF EXISTS legacy.%s;", drop, tables[n - 1 - i].name);
      free(copy);
      free(drop);
      copy = c2;
      drop = d2;
    }
    /* The copy is synced before the drop (this file's commits are not, at NORMAL), so that
     * no power loss can keep the drop without the copy. */
    out = store__sql_exec(c, "PRAGMA main.synchronous=FULL");
    if (out == 0) out = sql_script_txn(c, copy);
    if (out == 0) out = store__sql_exec(c, c->sync_full ? "PRAGMA main.synchronous=FULL"
                                                        : "PRAGMA main.synchronous=NORMAL");
    if (out == 0) out = sql_script_txn(c, drop);
    free(copy);
    free(drop);
    if (out == 0) log_info("store", "moved to a file of its own", "{s:s,s:s}", "part", c->part, "from", events_path);
  }
  if (out == 0) out = sql_part_moved_mark(c);
  int d = store__sql_exec(c, "DETACH DATABASE legacy");
  return out < 0 ? out : d;
}

/* internal.h */
int store__part_open(store_part_file_t *f, const store_options_t *opts, const store_part_spec_t *spec) {
  char *path = store__part_path(opts->path, spec->part);
  store_options_t o = *opts;
  o.path = path;
  if (o.cache_bytes == 0 || o.cache_bytes > STORE_PART_CACHE_BYTES) o.cache_bytes = STORE_PART_CACHE_BYTES;
  if (o.wal_max_bytes == 0 || o.wal_max_bytes > STORE_PART_WAL_MAX) o.wal_max_bytes = STORE_PART_WAL_MAX;
  int rc = store__sql_open(&f->sql, &o, spec->part);
  if (rc == 0) rc = store__sql_part_migrate(&f->sql, spec->version, spec->migrations);
  if (rc == 0) rc = store__sql_move_legacy(&f->sql, opts->path, spec->legacy, spec->nlegacy);
  if (rc == 0) rc = store__sql_prepare(&f->sql, spec->sql, spec->nsql);
  /* Checkpoints on a thread, as for the event log: none inside a write on the loop. */
  if (rc == 0) {
    rc = store__wal_open(&f->wal, &f->sql, &o);
    f->wal_open = rc == 0;
  }
  free(path);
  return rc;
}

/* internal.h */
int store__part_begin(store_part_file_t *f) {
  if (f->wal_open && store__wal_settle_due(&f->wal)) store__wal_settle(&f->wal, NULL);
  return store__sql_begin(&f->sql);
}

/* internal.h */
void store__part_wal_stats(store_part_file_t *f, store_stats_t *out) {
  if (f->wal_open) store__wal_stats(&f->wal, out);
}

void store__part_close(store_part_file_t *f) {
  if (f->wal_open) store__wal_close(&f->wal);
  f->wal_open = false;
  store__sql_close(&f->sql);
}
