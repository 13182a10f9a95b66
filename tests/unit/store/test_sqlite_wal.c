/* Tests for store/sqlite_wal.c: the upkeep of the event log's write-ahead log, the
 * checkpointer thread, its pacing and the settle that keeps the log within wal_max. Each
 * test's files live in a fresh folder under $COORD_TEST_TMPDIR (set by ctest) or /tmp. */
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CONTRACT_HELPERS_ONLY
#include "store/contract.h"
#include "sqlite_events.h" /* sq_store_t: the reader's lock and the WAL's state */
#define DBDIR_PREFIX "wal"
#include "store/dbdir.h"

static int contract_open(store_t **out) {
  const store_options_t opts = {.path = test_db};
  return store_open_sqlite(&opts, out);
}

/* The checkpoint sequence number in the WAL header (offset 12, big-endian): it changes
 * each time a writer starts the log over, which SQLite does only after a checkpoint
 * copied every frame back into the database. */
static uint32_t wal_checkpoint_seq(void) {
  char wal[700];
  snprintf(wal, sizeof wal, "%s-wal", test_db);
  FILE *f = fopen(wal, "rb");
  assert_non_null(f);
  unsigned char h[16];
  assert_int_equal(fread(h, 1, sizeof h, f), sizeof h);
  fclose(f);
  return (uint32_t)h[12] << 24 | (uint32_t)h[13] << 16 | (uint32_t)h[14] << 8 | h[15];
}

/* The main connection checkpoints only once the log passes wal_max (256 MB by default,
 * not reached here; its WAL hook replaces the autocheckpoint), so the log starts over
 * only if the checkpointer thread did its work. */
static void test_the_checkpointer_thread_lets_the_wal_start_over(void **state) {
  (void)state;
  store_t *s = open_store();
  store_topic_t t = ensure(s, "acme/wal");
  char data[1001];
  memset(data, 'x', sizeof data - 1);
  data[0] = '"';
  data[sizeof data - 2] = '"';
  data[sizeof data - 1] = '\0';
  uint64_t seq = 1;
  uint32_t before = 0;
  /* 4,000 events of 1 KB: well past the 1,000-page threshold. */
  for (int b = 0; b < 17; b++) {
    if (b == 1) before = wal_checkpoint_seq();
    assert_int_equal(store_batch_begin(s), 0);
    for (int i = 0; i < (b ? 250 : 1); i++, seq++) {
      store_event_t ev = {.topic_id = t.topic_id,
                          .seq = seq,
                          .ts_ms = 1,
                          .lane = 1,
                          .data = data,
                          .data_len = strlen(data)};
      assert_int_equal(store_batch_append(s, &ev), 0);
    }
    assert_int_equal(store_batch_commit(s), 0);
  }
  /* Small commits until a writer starts the log over (at most 10 s). */
  int tries = 0;
  while (wal_checkpoint_seq() == before) {
    assert_true(++tries < 1000);
    usleep(10 * 1000);
    append_range(s, t.topic_id, seq, seq, 0);
    seq++;
  }
  uint64_t n = 0;
  assert_int_equal(store_read(s, t.topic_id, 0, 0, count_rows, &n), 0);
  assert_int_equal(n, seq - 1);
  store_close(s);
}

/* Batches written back to back from a thread, as streams' writer thread does under
 * sustained load: each begins right after the previous commit, while the checkpointer
 * thread is still copying that commit's frames back. */
#define WAL_TOPICS 4
#define WAL_BATCHES 400
#define WAL_BATCH_EVENTS 100
#define WAL_EVENT_BYTES 1000
#define WAL_MAX (1u << 20) /* bytes: the store's wal_max_bytes in this test */

typedef struct wal_writer {
  store_t *s;
  int64_t topic_id[WAL_TOPICS];
  int rc; /* the first failed store_batch_write, or 0 */
  _Atomic int done;
} wal_writer_t;

/* Writes one batch of WAL_BATCH_EVENTS events over the topics; next holds their heads. */
static int wal_write_batch(wal_writer_t *w, uint64_t next[WAL_TOPICS]) {
  static char data[WAL_EVENT_BYTES + 1];
  memset(data, 'x', WAL_EVENT_BYTES);
  data[0] = data[WAL_EVENT_BYTES - 1] = '"';
  store_event_t evs[WAL_BATCH_EVENTS];
  for (int i = 0; i < WAL_BATCH_EVENTS; i++) {
    int k = i % WAL_TOPICS;
    evs[i] = (store_event_t){.topic_id = w->topic_id[k],
                             .seq = ++next[k],
                             .ts_ms = 1,
                             .lane = 1,
                             .data = data,
                             .data_len = WAL_EVENT_BYTES};
  }
  return store_batch_write(w->s, evs, WAL_BATCH_EVENTS);
}

static void *wal_writer_main(void *arg) {
  wal_writer_t *w = arg;
  uint64_t next[WAL_TOPICS] = {0};
  for (int b = 0; b < WAL_BATCHES && w->rc == 0; b++) w->rc = wal_write_batch(w, next);
  w->done = 1;
  return NULL;
}

/* Opens the test store with wal_max max and its WAL_TOPICS topics into *w. */
static store_t *wal_store_open_max(wal_writer_t *w, size_t max) {
  store_t *s = NULL;
  const store_options_t opts = {.path = test_db, .wal_max_bytes = max};
  assert_int_equal(store_open_sqlite(&opts, &s), 0);
  *w = (wal_writer_t){.s = s};
  for (int k = 0; k < WAL_TOPICS; k++) {
    char name[32];
    snprintf(name, sizeof name, "acme/wal-%d", k);
    w->topic_id[k] = ensure(s, name).topic_id;
  }
  return s;
}

static store_t *wal_store_open(wal_writer_t *w) {
  return wal_store_open_max(w, WAL_MAX);
}

static off_t wal_size(void) {
  char wal[700];
  snprintf(wal, sizeof wal, "%s-wal", test_db);
  struct stat sb;
  return stat(wal, &sb) == 0 ? sb.st_size : 0;
}

/* Without the settle in batch_begin the log is started over only when a batch happens to
 * begin after a checkpoint pass ended: here about never, and 40 MB of events leave a
 * WAL of about that size. With it, the file stays within wal_max plus one batch. A
 * reader's statements are reset before it returns, so it never holds the log. */
static void test_batches_back_to_back_keep_the_wal_within_wal_max(void **state) {
  (void)state;
  wal_writer_t w;
  store_t *s = wal_store_open(&w);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, wal_writer_main, &w), 0);
  /* A reader meanwhile (replay of the first topic), and the file's size after each read. */
  off_t max = 0;
  while (!w.done) {
    uint64_t n = 0;
    assert_int_equal(store_read(s, w.topic_id[0], 0, 50, count_rows, &n), 0);
    off_t size = wal_size();
    if (size > max) max = size;
  }
  pthread_join(th, NULL);
  assert_int_equal(w.rc, 0);
  if (wal_size() > max) max = wal_size();
  /* One batch is about 110 KB of frames (measured: 1.11-1.18 MB at most, 40-50 MB without
   * the settle). */
  if (max > (off_t)(WAL_MAX + WAL_MAX / 2)) fail_msg("the WAL reached %lld bytes", (long long)max);
  uint64_t n = 0;
  assert_int_equal(store_read(s, w.topic_id[WAL_TOPICS - 1], 0, 0, count_rows, &n), 0);
  assert_int_equal(n, WAL_BATCHES * WAL_BATCH_EVENTS / WAL_TOPICS);
  store_stats_t st;
  store_stats_get(s, &st);
  assert_true(st.wal_settles > 0); /* 40 MB through a 1 MB bound */
  assert_true(st.wal_settle_us_total > 0);
  store_close(s);
}

/* A reader outside the store (another connection, as the sqlite3 shell would be) keeps a
 * snapshot open: no pass can copy the log back past it, so the log cannot start over.
 * The settles then back off (the next one at twice the log's length) instead of making
 * every batch past the bound wait for a pass. */
static void test_a_reader_that_holds_the_wal_makes_the_settles_back_off(void **state) {
  (void)state;
  wal_writer_t w;
  store_t *s = wal_store_open(&w);
  sqlite3 *reader = NULL;
  assert_int_equal(sqlite3_open(test_db, &reader), SQLITE_OK);
  assert_int_equal(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM topics;", NULL, NULL, NULL),
                   SQLITE_OK);
  wal_writer_main(&w); /* WAL_BATCHES batches of about 110 KB: 40 times the bound */
  assert_int_equal(w.rc, 0);
  store_stats_t st;
  store_stats_get(s, &st);
  /* Past the bound after about 10 batches; every later batch would settle without the
   * back-off (about 390). With it: at 1, 2, 4, ... 32 times the bound. */
  assert_true(st.wal_settles > 0);
  if (st.wal_settles > 8)
    fail_msg("%llu settles in %d batches", (unsigned long long)st.wal_settles, WAL_BATCHES);
  assert_int_equal(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(reader);
  store_close(s);
}

/* The checkpointer is woken each time WAL_CKPT_FRAMES (1,000) frames have been appended,
 * not after every commit once the log is that long: that made a pass, with its two
 * fsyncs, per commit whenever the thread was idle (130 a second at the daemon's publish
 * ceiling), each copying little more than that commit. The wakes are counted: here about
 * 370 without the pacing (one per commit past the first 1,000 frames), against the bound
 * of one per 1,000 frames, plus one per second for a long log that only trickles on, plus
 * one per restart of the log (a settle). A 16 MB wal_max keeps the log long. */
static void test_checkpoint_passes_are_paced_by_the_frames_appended(void **state) {
  (void)state;
  wal_writer_t w;
  store_t *s = wal_store_open_max(&w, 16u << 20);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  wal_writer_main(&w);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_int_equal(w.rc, 0);
  store_stats_t st;
  store_stats_get(s, &st);
  assert_true(st.wal_frames > WAL_BATCHES * 20); /* each batch about 110 KB of pages */
  uint64_t seconds = (uint64_t)(t1.tv_sec - t0.tv_sec) + 1;
  uint64_t bound = st.wal_frames / 1000 + seconds + st.wal_settles + 2;
  if (st.wal_wakes > bound)
    fail_msg("%llu wakes for %llu frames in %llu s (%llu settles): at most %llu expected",
             (unsigned long long)st.wal_wakes, (unsigned long long)st.wal_frames,
             (unsigned long long)seconds, (unsigned long long)st.wal_settles,
             (unsigned long long)bound);
  /* The thread's own passes (the settles' are counted too): a checkpointer that is never
   * woken fails here. */
  uint64_t thread_passes =
      st.wal_checkpoints >= st.wal_settles ? st.wal_checkpoints - st.wal_settles : 0;
  if (thread_passes < 2)
    fail_msg("the checkpointer ran %llu passes for %llu frames", (unsigned long long)thread_passes,
             (unsigned long long)st.wal_frames);
  assert_true(thread_passes <= st.wal_wakes);
  store_close(s);
}

/* Opens the store (wal_store_open) and writes batches until its log is due a settle
 * (about 10 past the 1 MB bound); next[] gets each topic's head. */
static store_t *wal_store_settle_due(wal_writer_t *w, sq_store_t **q, uint64_t next[WAL_TOPICS]) {
  store_t *s = wal_store_open(w);
  *q = store__backend(s);
  for (int k = 0; k < WAL_TOPICS; k++) next[k] = 0;
  for (int b = 0; !store__wal_settle_due(&(*q)->wal); b++) {
    assert_true(b < WAL_BATCHES);
    assert_int_equal(wal_write_batch(w, next), 0);
  }
  return s;
}

/* A settle holds the reader's lock through its own pass only: event reads on the loop
 * (replay, catch-up, HTTP) waited for the checkpointer's pass before it and for the whole
 * batch after it too. That is safe because a reader that begins after a pass that copied
 * everything back reads the database file alone: the batch then starts the log over even
 * though that reader is still in its transaction, which this test also checks (the
 * reader here is another connection, as the store's reader is). */
static void test_a_read_after_a_settle_neither_waits_for_its_batch_nor_pins_the_log(void **state) {
  (void)state;
  wal_writer_t w;
  sq_store_t *q;
  uint64_t next[WAL_TOPICS];
  store_t *s = wal_store_settle_due(&w, &q, next);
  uint32_t before = wal_checkpoint_seq();
  store_stats_t st;
  store_stats_get(s, &st);
  uint64_t settles = st.wal_settles;
  assert_int_equal(store_batch_begin(s), 0); /* the settle, then the batch's transaction */
  store_stats_get(s, &st);
  assert_int_equal(st.wal_settles, settles + 1);
  if (pthread_mutex_trylock(&q->rlock) != 0)
    fail_msg("the settle holds the reader's lock through the batch after it");
  pthread_mutex_unlock(&q->rlock);
  sqlite3 *reader = NULL;
  assert_int_equal(sqlite3_open(test_db, &reader), SQLITE_OK);
  assert_int_equal(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM chunks;", NULL, NULL, NULL),
                   SQLITE_OK);
  for (int k = 0; k < WAL_TOPICS; k++) {
    store_event_t ev = {.topic_id = w.topic_id[k], .seq = ++next[k], .ts_ms = 1, .lane = 1};
    assert_int_equal(store_batch_append(s, &ev), 0);
  }
  assert_int_equal(store_batch_commit(s), 0);
  if (wal_checkpoint_seq() == before) fail_msg("a reader that began after the settle pinned the log");
  assert_int_equal(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(reader);
  uint64_t n = 0;
  assert_int_equal(store_read(s, w.topic_id[0], 0, 0, count_rows, &n), 0);
  assert_int_equal(n, next[0]);
  store_close(s);
}

/* The event loop's inline commit (store_batch_write_topics_nowait) never runs a settle:
 * once the log is due one, the call answers -EAGAIN having written nothing, and the next
 * store_batch_write (the writer thread's) settles it. */
static void test_a_nowait_batch_declines_while_a_settle_is_due(void **state) {
  (void)state;
  wal_writer_t w;
  sq_store_t *q;
  uint64_t next[WAL_TOPICS];
  store_t *s = wal_store_settle_due(&w, &q, next);
  store_event_t ev = {.topic_id = w.topic_id[0], .seq = next[0] + 1, .ts_ms = 1, .lane = 1};
  store_stats_t st;
  store_stats_get(s, &st);
  uint64_t commits = st.commits, settles = st.wal_settles;
  assert_int_equal(store_batch_write_topics_nowait(s, NULL, 0, &ev, 1), -EAGAIN);
  store_stats_get(s, &st);
  assert_int_equal(st.commits, commits); /* nothing written */
  assert_int_equal(st.wal_settles, settles);
  assert_int_equal(wal_write_batch(&w, next), 0); /* the thread's batch settles first */
  store_stats_get(s, &st);
  assert_int_equal(st.wal_settles, settles + 1);
  ev.seq = next[0] + 1;
  assert_int_equal(store_batch_write_topics_nowait(s, NULL, 0, &ev, 1), 0);
  uint64_t n = 0;
  assert_int_equal(store_read(s, w.topic_id[0], 0, 0, count_rows, &n), 0);
  assert_int_equal(n, next[0] + 1);
  store_close(s);
}

#define FILE_TEST(f) cmocka_unit_test_setup_teardown(f, dbdir_setup, dbdir_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      FILE_TEST(test_the_checkpointer_thread_lets_the_wal_start_over),
      FILE_TEST(test_batches_back_to_back_keep_the_wal_within_wal_max),
      FILE_TEST(test_a_reader_that_holds_the_wal_makes_the_settles_back_off),
      FILE_TEST(test_checkpoint_passes_are_paced_by_the_frames_appended),
      FILE_TEST(test_a_read_after_a_settle_neither_waits_for_its_batch_nor_pins_the_log),
      FILE_TEST(test_a_nowait_batch_declines_while_a_settle_is_due),
  };
  return cmocka_run_group_tests_name("store sqlite wal", tests, NULL, NULL);
}
