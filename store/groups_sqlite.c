/* store groups, SQLite backend: consumer group rows and their pending leases.
 *
 * Owns its own connection to the database file (WAL, the same synchronous setting as the
 * event log), so that group writes never join or wait for an event batch of the other
 * connection; the groups tables' schema (versioned in store_parts as 'groups'); and the
 * statements over them. Every save is one BEGIN IMMEDIATE transaction holding all the
 * changes streams collected in a loop turn. Does not own the event or runs tables.
 *
 * Schema (groups version 1):
 *   stream_groups(topic, name, epoch, next_seq, ack_wait_ms) keyed (topic, name), no rowid
 *   stream_group_leases(topic, name, seq, deliveries) keyed (topic, name, seq), no rowid */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"

#define GS_SCHEMA_VERSION 1
#define GS_BUSY_TIMEOUT_MS 2000

enum gs_stmt {
  GS_BEGIN,
  GS_COMMIT,
  GS_ROLLBACK,
  GS_GET,
  GS_LIST,
  GS_LEASES,
  GS_PUT_GROUP,
  GS_DEL_LEASE,
  GS_PUT_LEASE,
  GS_DEL_LEASES,
  GS_DEL_GROUP,
  GS__COUNT
};

#define GS_PENDING \
  "(SELECT count(*) FROM stream_group_leases l WHERE l.topic = g.topic AND l.name = g.name)"

static const char *const gs_sql[GS__COUNT] = {
    [GS_BEGIN] = "BEGIN IMMEDIATE",
    [GS_COMMIT] = "COMMIT",
    [GS_ROLLBACK] = "ROLLBACK",
    [GS_GET] = "SELECT topic, name, epoch, next_seq, ack_wait_ms, " GS_PENDING
               " FROM stream_groups g WHERE topic = ?1 AND name = ?2",
    [GS_LIST] = "SELECT topic, name, epoch, next_seq, ack_wait_ms, " GS_PENDING
                " FROM stream_groups g WHERE topic = ?1 ORDER BY name",
    [GS_LEASES] =
        "SELECT seq, deliveries FROM stream_group_leases WHERE topic = ?1 AND name = ?2"
        " ORDER BY seq",
    [GS_PUT_GROUP] =
        "INSERT OR REPLACE INTO stream_groups(topic, name, epoch, next_seq, ack_wait_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5)",
    [GS_DEL_LEASE] = "DELETE FROM stream_group_leases WHERE topic = ?1 AND name = ?2 AND seq = ?3",
    [GS_PUT_LEASE] =
        "INSERT OR REPLACE INTO stream_group_leases(topic, name, seq, deliveries)"
        " VALUES (?1, ?2, ?3, ?4)",
    [GS_DEL_LEASES] = "DELETE FROM stream_group_leases WHERE topic = ?1 AND name = ?2",
    [GS_DEL_GROUP] = "DELETE FROM stream_groups WHERE topic = ?1 AND name = ?2",
};

static const char gs_schema_v1[] =
    "CREATE TABLE stream_groups(topic TEXT NOT NULL, name TEXT NOT NULL, epoch TEXT NOT NULL,"
    " next_seq INTEGER NOT NULL, ack_wait_ms INTEGER NOT NULL, PRIMARY KEY(topic, name))"
    " WITHOUT ROWID;"
    "CREATE TABLE stream_group_leases(topic TEXT NOT NULL, name TEXT NOT NULL,"
    " seq INTEGER NOT NULL, deliveries INTEGER NOT NULL, PRIMARY KEY(topic, name, seq))"
    " WITHOUT ROWID;"
    "INSERT OR REPLACE INTO store_parts(part, version) VALUES ('groups', 1);";

typedef struct gs_store {
  sqlite3 *db;                   /* owned */
  sqlite3_stmt *stmt[GS__COUNT]; /* owned, prepared at open */
} gs_store_t;

static int gs_fail(gs_store_t *q, int rc, const char *op) {
  log_error("store", "sqlite failed (groups)", "{s:s,s:i,s:s}", "op", op, "code", rc, "error",
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

static sqlite3_stmt *gs_stmt(gs_store_t *q, enum gs_stmt which) {
  sqlite3_stmt *st = q->stmt[which];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

static void gs_ids(sqlite3_stmt *st, const char *topic, const char *name) {
  sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
}

static int gs_done(gs_store_t *q, sqlite3_stmt *st, const char *op) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : gs_fail(q, rc, op);
}

static void gs_rollback_quiet(gs_store_t *q) {
  if (!sqlite3_get_autocommit(q->db)) (void)gs_done(q, gs_stmt(q, GS_ROLLBACK), "rollback");
}

static store_group_t gs_row(sqlite3_stmt *st) {
  return (store_group_t){.topic = (const char *)sqlite3_column_text(st, 0),
                         .name = (const char *)sqlite3_column_text(st, 1),
                         .epoch = (const char *)sqlite3_column_text(st, 2),
                         .next_seq = (uint64_t)sqlite3_column_int64(st, 3),
                         .ack_wait_ms = (uint32_t)sqlite3_column_int64(st, 4),
                         .pending = (uint64_t)sqlite3_column_int64(st, 5)};
}

/* ---- open, schema, close ---- */

static int gs_exec(gs_store_t *q, const char *sql) {
  int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : gs_fail(q, rc, sql);
}

static int gs_version(gs_store_t *q, int *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(q->db, "SELECT version FROM store_parts WHERE part = 'groups'", -1,
                              &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  *out = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : gs_fail(q, rc, "groups version");
}

static int gs_migrate(gs_store_t *q) {
  int rc = gs_exec(q, "BEGIN IMMEDIATE");
  if (rc < 0) return rc;
  int version = 0;
  rc = gs_exec(q,
               "CREATE TABLE IF NOT EXISTS store_parts(part TEXT PRIMARY KEY,"
               " version INTEGER NOT NULL)");
  if (rc == 0) rc = gs_version(q, &version);
  if (rc == 0 && version > GS_SCHEMA_VERSION) {
    log_error("store", "groups schema is newer than this build", "{s:i,s:i}", "found", version,
              "supported", GS_SCHEMA_VERSION);
    rc = -EIO;
  }
  if (rc == 0 && version < 1) rc = gs_exec(q, gs_schema_v1);
  if (rc == 0) rc = gs_exec(q, "COMMIT");
  if (rc < 0) sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

static int gs_configure(gs_store_t *q, const store_options_t *opts) {
  int rc = sqlite3_busy_timeout(q->db, GS_BUSY_TIMEOUT_MS);
  if (rc != SQLITE_OK) return gs_fail(q, rc, "busy_timeout");
  rc = gs_exec(q, "PRAGMA journal_mode=WAL");
  if (rc == 0)
    rc = gs_exec(q,
                 opts->synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  if (rc == 0) rc = gs_migrate(q);
  for (int i = 0; rc == 0 && i < GS__COUNT; i++) {
    int src =
        sqlite3_prepare_v3(q->db, gs_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->stmt[i], NULL);
    if (src != SQLITE_OK) rc = gs_fail(q, src, gs_sql[i]);
  }
  return rc;
}

static void gs_close(void *gb) {
  gs_store_t *q = gb;
  if (!q) return;
  for (int i = 0; i < GS__COUNT; i++) sqlite3_finalize(q->stmt[i]);
  if (q->db) sqlite3_close(q->db);
  free(q);
}

/* ---- reads ---- */

static int gs_load(void *gb, const char *topic, const char *name, store_group_cb gcb,
                   store_lease_cb lcb, void *ud) {
  gs_store_t *q = gb;
  sqlite3_stmt *st = gs_stmt(q, GS_GET);
  gs_ids(st, topic, name);
  int rc = sqlite3_step(st);
  int out = 0;
  if (rc == SQLITE_ROW) {
    store_group_t g = gs_row(st);
    out = gcb(ud, &g);
  } else {
    out = rc == SQLITE_DONE ? -ENOENT : gs_fail(q, rc, "group get");
  }
  sqlite3_reset(st);
  if (out || !lcb) return out;
  st = gs_stmt(q, GS_LEASES);
  gs_ids(st, topic, name);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    store_group_lease_t l = {.seq = (uint64_t)sqlite3_column_int64(st, 0),
                             .deliveries = (uint32_t)sqlite3_column_int64(st, 1)};
    out = lcb(ud, &l);
    if (out) break;
  }
  if (!out && rc != SQLITE_DONE) out = gs_fail(q, rc, "lease read");
  sqlite3_reset(st);
  return out;
}

static int gs_list(void *gb, const char *topic, store_group_cb cb, void *ud) {
  gs_store_t *q = gb;
  sqlite3_stmt *st = gs_stmt(q, GS_LIST);
  sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
  int rc, out = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    store_group_t g = gs_row(st);
    out = cb(ud, &g);
    if (out) break;
  }
  if (!out && rc != SQLITE_DONE) out = gs_fail(q, rc, "group list");
  sqlite3_reset(st);
  return out;
}

/* ---- writes ---- */

static int gs_write_one(gs_store_t *q, const store_group_write_t *w) {
  const store_group_t *g = &w->group;
  sqlite3_stmt *st = gs_stmt(q, GS_PUT_GROUP);
  gs_ids(st, g->topic, g->name);
  sqlite3_bind_text(st, 3, g->epoch, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)g->next_seq);
  sqlite3_bind_int64(st, 5, g->ack_wait_ms);
  int rc = gs_done(q, st, "group put");
  for (size_t i = 0; rc == 0 && i < w->ndel; i++) {
    st = gs_stmt(q, GS_DEL_LEASE);
    gs_ids(st, g->topic, g->name);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)w->del[i]);
    rc = gs_done(q, st, "lease delete");
  }
  for (size_t i = 0; rc == 0 && i < w->nput; i++) {
    st = gs_stmt(q, GS_PUT_LEASE);
    gs_ids(st, g->topic, g->name);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)w->put[i].seq);
    sqlite3_bind_int64(st, 4, w->put[i].deliveries);
    rc = gs_done(q, st, "lease put");
  }
  return rc;
}

static int gs_save(void *gb, const store_group_write_t *w, size_t n) {
  gs_store_t *q = gb;
  int rc = gs_done(q, gs_stmt(q, GS_BEGIN), "begin");
  if (rc < 0) return rc;
  for (size_t i = 0; rc == 0 && i < n; i++) rc = gs_write_one(q, &w[i]);
  if (rc == 0) rc = gs_done(q, gs_stmt(q, GS_COMMIT), "commit");
  if (rc < 0) gs_rollback_quiet(q);
  return rc;
}

static int gs_del(void *gb, const char *topic, const char *name) {
  gs_store_t *q = gb;
  int rc = gs_done(q, gs_stmt(q, GS_BEGIN), "begin");
  if (rc < 0) return rc;
  sqlite3_stmt *st = gs_stmt(q, GS_DEL_LEASES);
  gs_ids(st, topic, name);
  rc = gs_done(q, st, "leases delete");
  if (rc == 0) {
    st = gs_stmt(q, GS_DEL_GROUP);
    gs_ids(st, topic, name);
    rc = gs_done(q, st, "group delete");
    if (rc == 0 && sqlite3_changes(q->db) == 0) rc = -ENOENT;
  }
  if (rc == 0) rc = gs_done(q, gs_stmt(q, GS_COMMIT), "commit");
  if (rc < 0) gs_rollback_quiet(q);
  return rc;
}

static const store_groups_ops_t gs_ops = {
    .close = gs_close,
    .load = gs_load,
    .list = gs_list,
    .save = gs_save,
    .del = gs_del,
};

int store__groups_sqlite_open(const store_options_t *opts, const store_groups_ops_t **ops,
                              void **gb) {
  gs_store_t *q = xcalloc(1, sizeof *q);
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(opts->path, &q->db, flags, NULL);
  if (rc != SQLITE_OK) {
    log_error("store", "cannot open database (groups)", "{s:s,s:s}", "path", opts->path, "error",
              q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
    rc = -EIO;
  } else {
    rc = gs_configure(q, opts);
  }
  if (rc < 0) {
    gs_close(q);
    return -EIO;
  }
  *ops = &gs_ops;
  *gb = q;
  return 0;
}
