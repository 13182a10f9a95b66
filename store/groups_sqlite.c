/* store groups, SQLite backend: consumer group rows and their pending leases.
 *
 * The groups live beside the event log in <stem>-groups.db (store__part_path), like the
 * runs (runs_sqlite.c says why: in the event log's file each write, here one per loop
 * turn while members ack, waited for the commit thread). Owns that file's connection
 * (opened by sqlite_conn.c with the same settings as the event log's) and its
 * checkpointer thread (sqlite_wal.c); the groups tables' schema (versioned in store_parts
 * as 'groups'); and the statements over them; moves an older build's groups tables out of
 * the event log's file at open (store__sql_move_legacy). Every save is one BEGIN
 * IMMEDIATE transaction holding all the changes streams collected in a loop turn. Does
 * not own the event or runs tables.
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

enum gs_stmt {
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

/* Version 0 to 1: the tables. */
static const char gs_schema_v1[] =
    "CREATE TABLE stream_groups(topic TEXT NOT NULL, name TEXT NOT NULL, epoch TEXT NOT NULL,"
    " next_seq INTEGER NOT NULL, ack_wait_ms INTEGER NOT NULL, PRIMARY KEY(topic, name))"
    " WITHOUT ROWID;"
    "CREATE TABLE stream_group_leases(topic TEXT NOT NULL, name TEXT NOT NULL,"
    " seq INTEGER NOT NULL, deliveries INTEGER NOT NULL, PRIMARY KEY(topic, name, seq))"
    " WITHOUT ROWID;"
    "INSERT OR REPLACE INTO store_parts(part, version) VALUES ('groups', 1);";

typedef store_part_file_t gs_store_t; /* the part's file: connection, checkpointer */

/* The groups tables of an event log file written before they had a file of their own. */
static const store_legacy_table_t gs_legacy[] = {
    {"stream_groups", "topic, name, epoch, next_seq, ack_wait_ms"},
    {"stream_group_leases", "topic, name, seq, deliveries"},
};

static const char *const gs_migrations[GS_SCHEMA_VERSION] = {gs_schema_v1};

static void gs_ids(sqlite3_stmt *st, const char *topic, const char *name) {
  sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
}

static store_group_t gs_row(sqlite3_stmt *st) {
  return (store_group_t){.topic = store__sql_col_text(st, 0),
                         .name = store__sql_col_text(st, 1),
                         .epoch = store__sql_col_text(st, 2),
                         .next_seq = (uint64_t)sqlite3_column_int64(st, 3),
                         .ack_wait_ms = (uint32_t)sqlite3_column_int64(st, 4),
                         .pending = (uint64_t)sqlite3_column_int64(st, 5)};
}

/* ---- close ---- */

static void gs_close(void *gb) {
  gs_store_t *q = gb;
  if (!q) return;
  store__part_close(q);
  free(q);
}


/* ---- reads ---- */

static int gs_load(void *gb, const char *topic, const char *name, store_group_cb gcb,
                   store_lease_cb lcb, void *ud) {
  gs_store_t *q = gb;
  sqlite3_stmt *st = store__sql_stmt(&q->sql, GS_GET);
  gs_ids(st, topic, name);
  int rc = sqlite3_step(st);
  int out = 0;
  if (rc == SQLITE_ROW) {
    store_group_t g = gs_row(st);
    out = gcb(ud, &g);
  } else {
    out = rc == SQLITE_DONE ? -ENOENT : store__sql_fail(&q->sql, rc, "group get");
  }
  sqlite3_reset(st);
  if (out || !lcb) return out;
  st = store__sql_stmt(&q->sql, GS_LEASES);
  gs_ids(st, topic, name);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    store_group_lease_t l = {.seq = (uint64_t)sqlite3_column_int64(st, 0),
                             .deliveries = (uint32_t)sqlite3_column_int64(st, 1)};
    out = lcb(ud, &l);
    if (out) break;
  }
  if (!out && rc != SQLITE_DONE) out = store__sql_fail(&q->sql, rc, "lease read");
  sqlite3_reset(st);
  return out;
}

static int gs_list(void *gb, const char *topic, store_group_cb cb, void *ud) {
  gs_store_t *q = gb;
  sqlite3_stmt *st = store__sql_stmt(&q->sql, GS_LIST);
  sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
  int rc, out = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    store_group_t g = gs_row(st);
    out = cb(ud, &g);
    if (out) break;
  }
  if (!out && rc != SQLITE_DONE) out = store__sql_fail(&q->sql, rc, "group list");
  sqlite3_reset(st);
  return out;
}

/* ---- writes ---- */

static int gs_write_one(gs_store_t *q, const store_group_write_t *w) {
  const store_group_t *g = &w->group;
  sqlite3_stmt *st = store__sql_stmt(&q->sql, GS_PUT_GROUP);
  gs_ids(st, g->topic, g->name);
  sqlite3_bind_text(st, 3, g->epoch, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)g->next_seq);
  sqlite3_bind_int64(st, 5, g->ack_wait_ms);
  int rc = store__sql_done(&q->sql, st, "group put");
  for (size_t i = 0; rc == 0 && i < w->ndel; i++) {
    st = store__sql_stmt(&q->sql, GS_DEL_LEASE);
    gs_ids(st, g->topic, g->name);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)w->del[i]);
    rc = store__sql_done(&q->sql, st, "lease delete");
  }
  for (size_t i = 0; rc == 0 && i < w->nput; i++) {
    st = store__sql_stmt(&q->sql, GS_PUT_LEASE);
    gs_ids(st, g->topic, g->name);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)w->put[i].seq);
    sqlite3_bind_int64(st, 4, w->put[i].deliveries);
    rc = store__sql_done(&q->sql, st, "lease put");
  }
  return rc;
}

static int gs_save(void *gb, const store_group_write_t *w, size_t n) {
  gs_store_t *q = gb;
  int rc = store__part_begin(q);
  if (rc < 0) return rc;
  for (size_t i = 0; rc == 0 && i < n; i++) rc = gs_write_one(q, &w[i]);
  return store__sql_end(&q->sql, rc);
}

static int gs_del(void *gb, const char *topic, const char *name) {
  gs_store_t *q = gb;
  int rc = store__part_begin(q);
  if (rc < 0) return rc;
  sqlite3_stmt *st = store__sql_stmt(&q->sql, GS_DEL_LEASES);
  gs_ids(st, topic, name);
  rc = store__sql_done(&q->sql, st, "leases delete");
  if (rc == 0) {
    st = store__sql_stmt(&q->sql, GS_DEL_GROUP);
    gs_ids(st, topic, name);
    rc = store__sql_done(&q->sql, st, "group delete");
    if (rc == 0 && sqlite3_changes(q->sql.db) == 0) rc = -ENOENT;
  }
  return store__sql_end(&q->sql, rc);
}

static void gs_wal_stats(void *gb, store_stats_t *out) { store__part_wal_stats(gb, out); }

static const store_groups_ops_t gs_ops = {
    .close = gs_close,
    .load = gs_load,
    .list = gs_list,
    .save = gs_save,
    .del = gs_del,
    .wal_stats = gs_wal_stats,
};

int store__groups_sqlite_open(const store_options_t *opts, const store_groups_ops_t **ops,
                              void **gb) {
  gs_store_t *q = xcalloc(1, sizeof *q);
  const store_part_spec_t spec = {.part = "groups",
                                  .version = GS_SCHEMA_VERSION,
                                  .migrations = gs_migrations,
                                  .legacy = gs_legacy,
                                  .nlegacy = sizeof gs_legacy / sizeof *gs_legacy,
                                  .sql = gs_sql,
                                  .nsql = GS__COUNT};
  int rc = store__part_open(q, opts, &spec);
  if (rc < 0) {
    gs_close(q);
    return -EIO;
  }
  *ops = &gs_ops;
  *gb = q;
  return 0;
}
