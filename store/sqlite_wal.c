/* store SQLite backend: the upkeep of the event log's write-ahead log.
 *
 * Checkpoints run on a thread of their own with a second connection (PASSIVE, so writers
 * never wait): the main connection's WAL hook wakes it each time WAL_CKPT_FRAMES more
 * frames (a quarter of wal_max when that is less) have been appended, instead of SQLite's
 * autocheckpoint, which would copy pages and fsync inside whichever commit crossed the
 * limit, on the event loop. Copying frames back is not enough to keep the log small:
 * SQLite starts it over from its beginning only when a transaction begins while every
 * frame is already copied back (and no other connection is reading). Under sustained load
 * the next batch begins right after each commit, while the thread is still copying that
 * commit's frames, so that moment comes only by chance and the file grows without bound.
 * Hence the settle: once the log passes wal_max, the next batch first waits for the
 * thread's pass and copies the rest itself (what was committed since that pass began), on
 * the committing thread, where nothing can commit in between; the transaction it then
 * opens starts the log over. Each settle holds commits for about one checkpoint pass (its
 * fsyncs), which is why wal_max is tens of MB, not a few. A settle that cannot copy
 * everything back (a reader of another process holds the log) makes the next one wait
 * until the log is twice as long. See docs/streams.md, "The WAL under sustained
 * saturation". Owns the checkpointer's thread and connection; borrows the main one. */
#include <limits.h>
#include <stdio.h>
#include <time.h>

#include <sqlite3.h>

#include "base/log.h"
#include "internal.h"

#define WAL_FRAME_HDR 24     /* bytes before each page in the WAL file */
#define WAL_CKPT_FRAMES 1000 /* WAL frames that wake the checkpointer (SQLite's default limit) */
#define WAL_WAKE_MS 1000     /* a long log that trickles on is woken for at least this often */

/* One PASSIVE pass on db, with running set by the caller; true when every frame of the log
 * is copied back. BUSY only means another process checkpoints: the next wake or settle
 * tries again. */
static bool wal_pass(sqlite3 *db) {
  int log_frames = 0, done_frames = 0;
  int rc =
      sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &done_frames);
  if (rc != SQLITE_OK && rc != SQLITE_BUSY)
    log_warn("store", "checkpoint failed", "{s:i,s:s}", "code", rc, "error", sqlite3_errmsg(db));
  return rc == SQLITE_OK && done_frames == log_frames;
}

static void *wal_thread_main(void *arg) {
  store_wal_t *w = arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while ((!w->due || w->running) && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
    if (w->stop) break;
    w->due = false;
    w->running = true;
    w->passes++;
    pthread_mutex_unlock(&w->mu);
    (void)wal_pass(w->db);
    pthread_mutex_lock(&w->mu);
    w->running = false;
    pthread_cond_broadcast(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* Runs on the main connection's thread after each of its commits. */
static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames) {
  (void)db;
  (void)name;
  store_wal_t *w = ud;
  if (frames < w->frames) w->woke_at = 0; /* the log started over */
  w->appended += (uint64_t)(frames >= w->seen ? frames - w->seen : frames);
  w->seen = frames;
  w->frames = frames;
  if (frames < w->max_frames) w->settle_frames = w->max_frames;
  /* Paced by what was appended since the last wake, not by the log's length: once the log
   * is long, a wake per commit made a pass (and its two fsyncs) per commit, 130 a second
   * at the publish ceiling, each copying little more than that one commit. But a long log
   * that only trickles on is also woken for once WAL_WAKE_MS after the last wake: else the
   * tail a burst left behind would wait for ckpt_frames more frames to be copied, and the
   * log could not start over meanwhile. */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  bool paced = frames - w->woke_at >= w->ckpt_frames;
  bool trickle = frames >= w->ckpt_frames && frames != w->woke_at && now_ms - w->woke_ms >= WAL_WAKE_MS;
  if (!paced && !trickle) return SQLITE_OK;
  w->woke_ms = now_ms;
  w->woke_at = frames;
  w->wakes++;
  pthread_mutex_lock(&w->mu);
  if (!w->due) {
    w->due = true;
    pthread_cond_broadcast(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
  return SQLITE_OK;
}

/* The settle (see the file comment): waits for the thread's pass, then copies back what
 * is left; the next transaction then starts the log over, unless another connection is
 * reading at that moment (then the next commit's count brings the settle back).
 *
 * readers (may be NULL) is held through this file's own pass only. A reader that began
 * before the pass would pin the log (its snapshot's read mark) if it were still reading
 * when the next batch writes; one that begins after a pass that copied everything back
 * reads the database file alone (SQLite's read mark 0) and does not stop the log from
 * starting over. So readers wait for one pass at most, never for the thread's pass before
 * it or for the batch after it (test_a_read_after_a_settle_neither_waits_for_its_batch_
 * nor_pins_the_log). */
void store__wal_settle(store_wal_t *w, pthread_mutex_t *readers) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pthread_mutex_lock(&w->mu);
  while (w->running) pthread_cond_wait(&w->cv, &w->mu);
  w->running = true;
  w->passes++;
  w->due = false; /* this pass covers what the thread was woken for */
  pthread_mutex_unlock(&w->mu);
  if (readers) pthread_mutex_lock(readers);
  bool whole = wal_pass(w->sql->db);
  if (readers) pthread_mutex_unlock(readers);
  pthread_mutex_lock(&w->mu);
  w->running = false;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  if (whole) {
    w->frames = 0;
    w->woke_at = 0;
  } else {
    w->settle_frames = w->frames < INT_MAX / 2 ? 2 * w->frames : INT_MAX;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  w->settles++;
  w->settle_us += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
}

/* Sizes the log's thresholds in frames from opts->wal_max_bytes and the page size, and
 * has SQLite truncate a larger WAL file back to wal_max when it starts the log over. */
static int wal_limits(store_wal_t *w, const store_options_t *opts) {
  size_t max = opts->wal_max_bytes ? opts->wal_max_bytes : STORE_WAL_MAX_DEFAULT;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(w->sql->db, "PRAGMA page_size", -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int page = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW) return store__sql_fail(w->sql, rc, "page_size");
  size_t frames = max / ((size_t)page + WAL_FRAME_HDR);
  if (frames > INT32_MAX) frames = INT32_MAX;
  w->max_frames = frames > 4 ? (int)frames : 4;
  w->ckpt_frames = w->max_frames / 4 < WAL_CKPT_FRAMES ? w->max_frames / 4 : WAL_CKPT_FRAMES;
  w->settle_frames = w->max_frames;
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA journal_size_limit=%zu", max);
  return store__sql_exec(w->sql, sql);
}

/* Starts the checkpointer; when it cannot, SQLite's autocheckpoint stays in charge. */
static void wal_thread_start(store_wal_t *w, const store_options_t *opts) {
  int rc = sqlite3_open_v2(opts->path, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                           store__vfs());
  if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(w->db, STORE_SQL_BUSY_TIMEOUT_MS);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(
        w->db, opts->synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
        NULL, NULL, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_wal_autocheckpoint(w->db, 0);
  if (rc == SQLITE_OK) {
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, wal_thread_main, w) == 0) {
      w->started = true;
      sqlite3_wal_hook(w->sql->db, wal_hook, w); /* replaces the autocheckpoint */
      return;
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
  }
  log_warn("store", "no checkpoint thread; checkpoints stay in commits", "{s:s}", "error",
           w->db ? sqlite3_errmsg(w->db) : sqlite3_errstr(rc));
  sqlite3_close(w->db);
  w->db = NULL;
}

int store__wal_open(store_wal_t *w, store_sql_t *sql, const store_options_t *opts) {
  w->sql = sql;
  int rc = wal_limits(w, opts);
  if (rc == 0) wal_thread_start(w, opts);
  return rc;
}

bool store__wal_settle_due(const store_wal_t *w) {
  return w->started && w->frames >= w->settle_frames;
}

void store__wal_stats(store_wal_t *w, store_stats_t *out) {
  out->wal_settles = w->settles;
  out->wal_settle_us_total = w->settle_us;
  out->wal_frames = w->appended;
  out->wal_wakes = w->wakes;
  if (!w->started) return;
  pthread_mutex_lock(&w->mu);
  out->wal_checkpoints = w->passes;
  pthread_mutex_unlock(&w->mu);
}

void store__wal_close(store_wal_t *w) {
  if (!w->started) return;
  sqlite3_wal_hook(w->sql->db, NULL, NULL);
  pthread_mutex_lock(&w->mu);
  w->stop = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  sqlite3_close(w->db);
  w->db = NULL;
  w->started = false;
}
