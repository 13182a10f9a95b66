/* Tests for store/store.c, the front end over the backends: store_batch_write (the whole
 * batch in one call) and the lock that lets one store be used from two threads (a writer
 * committing batches while another thread reads, creates topics and saves runs). The
 * threaded test runs on SQLite, where a call landing inside the writer's transaction
 * would show as -EBUSY or as a missing event. Files live under $COORD_TEST_TMPDIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store/hold.h"
#include "store/tmpdir.h"

static uint64_t head_of(store_t *s, const char *topic) {
  store_topic_t t;
  assert_int_equal(store_topic_get(s, topic, &t), 0);
  return t.head_seq;
}

static store_event_t ev_of(int64_t topic_id, uint64_t seq) {
  return (store_event_t){.topic_id = topic_id, .seq = seq, .ts_ms = 1, .type = "t", .lane = 1, .data = "1",
                         .data_len = 1};
}

static void test_batch_write_commits_every_event_in_one_call(void **state) {
  (void)state;
  store_t *s;
  assert_int_equal(store_open_memory(&s), 0);
  store_topic_t t;
  assert_int_equal(store_topic_ensure(s, "a/x", &t), 0);
  store_event_t evs[3] = {ev_of(t.topic_id, 1), ev_of(t.topic_id, 2), ev_of(t.topic_id, 3)};
  evs[1].id = "k";
  assert_int_equal(store_batch_write(s, evs, 3), 0);
  assert_int_equal(head_of(s, "a/x"), 3);
  uint64_t seq = 0;
  assert_int_equal(store_dedupe_find(s, t.topic_id, "k", 0, &seq), 0);
  assert_int_equal(seq, 2);
  store_stats_t st;
  store_stats_get(s, &st);
  assert_int_equal(st.commits, 1);
  assert_int_equal(st.events_appended, 3);
  store_close(s);
}

static void test_batch_write_is_all_or_nothing(void **state) {
  (void)state;
  store_t *s;
  assert_int_equal(store_open_memory(&s), 0);
  store_topic_t t;
  assert_int_equal(store_topic_ensure(s, "a/x", &t), 0);
  store_event_t evs[3] = {ev_of(t.topic_id, 1), ev_of(t.topic_id, 3), ev_of(t.topic_id, 4)}; /* 2 missing */
  assert_int_equal(store_batch_write(s, evs, 3), -EINVAL);
  assert_int_equal(head_of(s, "a/x"), 0);
  /* Nothing is left open: the next batch and a topic creation go through. */
  evs[1].seq = 2;
  assert_int_equal(store_batch_write(s, evs, 2), 0);
  assert_int_equal(head_of(s, "a/x"), 2);
  assert_int_equal(store_topic_ensure(s, "a/y", &t), 0);
  assert_int_equal(store_batch_write(s, evs, 0), -EINVAL);
  assert_int_equal(store_batch_write(s, NULL, 1), -EINVAL);
  store_close(s);
}

static void test_batch_write_refuses_while_a_step_by_step_batch_is_open_and_leaves_it(void **state) {
  (void)state;
  store_t *s;
  assert_int_equal(store_open_memory(&s), 0);
  store_topic_t t;
  assert_int_equal(store_topic_ensure(s, "a/x", &t), 0);
  store_event_t one = ev_of(t.topic_id, 1), two = ev_of(t.topic_id, 2);
  assert_int_equal(store_batch_begin(s), 0);
  assert_int_equal(store_batch_append(s, &one), 0);
  assert_int_equal(store_batch_write(s, &two, 1), -EBUSY);
  assert_int_equal(store_batch_commit(s), 0); /* the open batch was not disturbed */
  assert_int_equal(head_of(s, "a/x"), 1);
  assert_int_equal(store_batch_write(s, &two, 1), 0);
  assert_int_equal(head_of(s, "a/x"), 2);
  store_close(s);
}

/* ---- two threads ---- */

#define WRITER_BATCHES 300
#define WRITER_BATCH 20

typedef struct writer_arg {
  store_t *s;
  int64_t topic_id;
  atomic_int rc; /* first failure, 0 when none (read by the main thread meanwhile) */
} writer_arg_t;

static void *writer_main(void *p) {
  writer_arg_t *w = p;
  store_event_t evs[WRITER_BATCH];
  uint64_t seq = 1;
  for (int b = 0; b < WRITER_BATCHES && atomic_load(&w->rc) == 0; b++) {
    for (int i = 0; i < WRITER_BATCH; i++) evs[i] = ev_of(w->topic_id, seq++);
    atomic_store(&w->rc, store_batch_write(w->s, evs, WRITER_BATCH));
  }
  return NULL;
}

typedef struct dense {
  uint64_t next;
  bool ok;
} dense_t;

static int dense_cb(void *ud, const store_event_t *ev) {
  dense_t *d = ud;
  if (ev->seq != d->next) d->ok = false;
  d->next++;
  return 0;
}

static void test_another_thread_never_lands_inside_a_batch_write(void **state) {
  (void)state;
  char dir[512], path[600];
  tmpdir_make(dir, sizeof dir, "store");
  snprintf(path, sizeof path, "%s/events.db", dir);
  store_t *s;
  assert_int_equal(store_open_sqlite(&(store_options_t){.path = path}, &s), 0);
  store_topic_t t;
  assert_int_equal(store_topic_ensure(s, "a/w", &t), 0);
  writer_arg_t w = {.s = s, .topic_id = t.topic_id};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
  /* Meanwhile: topic creations and run writes (both refused inside an open batch) and
   * reads, which must see a dense prefix of the writer's events, never a torn batch. */
  int round = 0;
  for (uint64_t head = 0; head < (uint64_t)WRITER_BATCHES * WRITER_BATCH && atomic_load(&w.rc) == 0; round++) {
    char name[32], run_id[32];
    snprintf(name, sizeof name, "a/t%d", round);
    store_topic_t nt;
    assert_int_equal(store_topic_ensure(s, name, &nt), 0);
    snprintf(run_id, sizeof run_id, "r%d", round);
    store_run_t run = {.run_id = run_id, .tenant = "a", .workflow = "wf", .status = "running",
                       .created_ms = round, .updated_ms = round};
    assert_int_equal(store_run_create(s, &run, NULL), 0);
    head = head_of(s, "a/w");
    assert_int_equal(head % WRITER_BATCH, 0);
    dense_t d = {.next = 1, .ok = true};
    assert_int_equal(store_read(s, t.topic_id, 0, 0, dense_cb, &d), 0);
    assert_true(d.ok);
    assert_true(d.next - 1 >= head); /* at least what head said, whole batches only */
    assert_int_equal((d.next - 1) % WRITER_BATCH, 0);
  }
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(atomic_load(&w.rc), 0);
  assert_true(round > 0);
  assert_int_equal(head_of(s, "a/w"), (uint64_t)WRITER_BATCHES * WRITER_BATCH);
  store_close(s);
  tmpdir_remove(dir);
}

/* ---- store_stats_get never waits for another thread's call ---- */

typedef struct stats_call {
  store_t *s;
  store_stats_t stats;
} stats_call_t;

static void *stats_main(void *arg) {
  stats_call_t *c = arg;
  store_stats_get(c->s, &c->stats);
  return NULL;
}

/* A metrics scrape on the event loop reads the store's figures while the commit thread
 * may hold the store for a commit, a retention slice or a WAL settle (tens of ms at the
 * publish ceiling): the figures of the last commit come back at once instead. */
static void test_stats_never_wait_for_a_call_in_progress(void **state) {
  (void)state;
  store_t *s;
  assert_int_equal(store_open_memory(&s), 0);
  store_topic_t t;
  assert_int_equal(store_topic_ensure(s, "a/x", &t), 0);
  store_event_t evs[2] = {ev_of(t.topic_id, 1), ev_of(t.topic_id, 2)};
  assert_int_equal(store_batch_write(s, evs, 2), 0);
  store_hold_t h;
  hold_start(&h, s, t.topic_id);
  stats_call_t c = {.s = s};
  if (!hold_run(&h, stats_main, &c, 5000)) fail_msg("store_stats_get waited for the reader's call to end");
  assert_int_equal(h.hold_rc, 0);
  assert_int_equal(c.stats.commits, 1);
  assert_int_equal(c.stats.events_appended, 2);
  /* With the store free again, the figures are taken fresh. */
  assert_int_equal(store_batch_write(s, (store_event_t[]){ev_of(t.topic_id, 3)}, 1), 0);
  store_stats_t st;
  store_stats_get(s, &st);
  assert_int_equal(st.commits, 2);
  assert_int_equal(st.events_appended, 3);
  store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batch_write_commits_every_event_in_one_call),
      cmocka_unit_test(test_stats_never_wait_for_a_call_in_progress),
      cmocka_unit_test(test_batch_write_is_all_or_nothing),
      cmocka_unit_test(test_batch_write_refuses_while_a_step_by_step_batch_is_open_and_leaves_it),
      cmocka_unit_test(test_another_thread_never_lands_inside_a_batch_write),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
