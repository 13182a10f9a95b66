/* Tests for the store reads of streams/cursor.c, streams/group_lease.c and streams/read.c
 * against the SQLite store: a cursor, a consumer group or an HTTP read behind the ring
 * reads the store, and that read never makes the event loop wait for a WAL settle. The database lives in a fresh
 * folder (sq_env_start). */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "streams/helpers.h"
#include "../../../store/sqlite_events.h" /* sq_store_t: the reader's lock a settle holds */
#include "store/hold.h"                   /* after sqlite_events.h: reader_hold_t */

static void sq_start(sq_env_t *x) {
  env_config(&x->e);
  x->e.cfg.publish_rate = 0;
  x->e.cfg.topic_publish_rate = 0;
  x->e.cfg.ring_size = 4;
  x->e.cfg.catchup_batch = 5;
  sq_env_start(x);
}

static void *noop_main(void *arg) { return arg; }

/* A stand-in for the commit thread in a WAL settle's pass: one thread inside a store call
 * (so reads go to the store's reader) and one holding the reader's lock, as the pass
 * does. topic needs an event (the first thread reads it). */
typedef struct settle {
  store_hold_t h;
  reader_hold_t rh;
} settle_t;

static void settle_start(settle_t *st, env_t *e, const char *topic) {
  store_topic_t t;
  assert_int_equal(store_topic_get(e->store, topic, &t), 0);
  hold_start(&st->h, e->store, t.topic_id);
  reader_hold_start(&st->rh, e->store);
}

static void settle_end(settle_t *st) {
  reader_hold_end(&st->rh);
  assert_true(hold_run(&st->h, noop_main, NULL, 5000));
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* While the commit thread holds the store (here: a thread inside a store call) a read
 * goes to the store's reader, whose lock a WAL settle's pass holds for tens of ms at the
 * publish ceiling. A catch-up read then is put off instead of stalling the loop and every
 * other connection with it: the pull returns what it has, the connection counts as having
 * nothing to send, and once the reader is free a timer wakes it and it gets everything,
 * in order, without a gap. */
static void test_a_catch_up_read_is_put_off_while_a_settle_holds_the_reader(void **state) {
  (void)state;
  sq_env_t x;
  sq_start(&x);
  env_t *e = &x.e;
  for (int i = 0; i < 40; i++) pub_ok(e, "a/x", "{\"v\":1}");
  env_run(e);
  tconn_t t;
  tconn_any(e, &t);
  sub_after(&t, "a/x", NULL, 0); /* seqs 1..36 are only in the store (ring of 4) */
  settle_t st;
  settle_start(&st, e, "a/x");
  double t0 = now_ms();
  json_t *m = drain_all(&t);
  double waited = now_ms() - t0;
  settle_end(&st);
  if (waited > 1000) fail_msg("the pull waited %.0f ms for the settle", waited);
  assert_int_equal(json_array_size(m), 1); /* subscribed, and no event out of order */
  assert_string_equal(msg_op(json_array_get(m, 0)), "subscribed");
  json_decref(m);
  const stream_stats_t *ss = stream_hub_stats(e->hub);
  assert_true(ss->store_catchup_deferred >= 1);
  assert_int_equal(ss->store_catchup_reads, 0);
  assert_false(stream_conn_pending(t.c)); /* the timer's wake, not a writable turn, resumes it */

  int wakes = t.wakes;
  env_run(e); /* the retry timer: the reader is free, so it wakes the connection */
  assert_true(t.wakes > wakes);
  assert_true(stream_conn_pending(t.c));
  m = drain_all(&t);
  assert_ev_seqs(m, "a/x", 1, 40);
  assert_int_equal(count_op(m, "gap"), 0);
  json_decref(m);
  assert_true(ss->store_catchup_reads >= 36 / 5);
  stream_conn_free(t.c);
  sq_env_stop(&x);
}

/* A catch-up read that the store fails (not a settle: its table is gone here) closes the
 * connection with a reason instead of leaving it pending, which retried the read every
 * turn and logged each failure; what was pulled before the failure stays delivered. */
static void test_a_failed_catch_up_read_closes_the_connection(void **state) {
  (void)state;
  sq_env_t x;
  sq_start(&x);
  env_t *e = &x.e;
  for (int i = 0; i < 40; i++) pub_ok(e, "a/z", "{\"v\":1}");
  env_run(e);
  tconn_t t;
  tconn_any(e, &t);
  sub_after(&t, "a/z", NULL, 0); /* seqs 1..36 are only in the store (ring of 4) */
  sqlite3 *db;
  assert_int_equal(sqlite3_open(x.path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char *err = NULL;
  int rc = sqlite3_exec(db, "DROP TABLE chunks", NULL, NULL, &err);
  if (rc != SQLITE_OK) fail_msg("DROP TABLE chunks: %s", err ? err : "?");
  sqlite3_close(db);
  json_t *m = pull_json(&t, 64, 1 << 20, &rc);
  assert_true(rc >= 1); /* "subscribed", then nothing from the broken store */
  assert_string_equal(msg_op(json_array_get(m, 0)), "subscribed");
  json_decref(m);
  assert_string_equal(stream_conn_close_reason(t.c), "store read failed");
  assert_ptr_equal(stream_conn_close_reason(t.c), stream_close_store_failed);
  assert_true(stream_conn_pending(t.c)); /* so the transport pulls once more and closes */
  json_decref(pull_json(&t, 64, 1 << 20, &rc));
  assert_int_equal(rc, -ENOBUFS);
  assert_int_equal(stream_hub_stats(e->hub)->store_catchup_failures, 1);
  stream_conn_free(t.c);
  sq_env_stop(&x);
}

/* A connection freed while its catch-up waits leaves nothing behind for the timer. */
static void test_a_connection_freed_while_its_catch_up_waits_is_forgotten(void **state) {
  (void)state;
  sq_env_t x;
  sq_start(&x);
  env_t *e = &x.e;
  for (int i = 0; i < 20; i++) pub_ok(e, "a/y", "{\"v\":1}");
  env_run(e);
  tconn_t t, u;
  tconn_any(e, &t);
  tconn_any(e, &u);
  sub_after(&t, "a/y", NULL, 0);
  sub_after(&u, "a/y", NULL, 0);
  settle_t st;
  settle_start(&st, e, "a/y");
  json_decref(drain_all(&t));
  json_decref(drain_all(&u));
  settle_end(&st);
  assert_true(stream_hub_stats(e->hub)->store_catchup_deferred >= 2);
  stream_conn_free(t.c); /* ASan: the timer must not touch it */
  int wakes = u.wakes;
  env_run(e);
  assert_true(u.wakes > wakes);
  json_t *m = drain_all(&u);
  assert_ev_seqs(m, "a/y", 1, 20);
  json_decref(m);
  stream_conn_free(u.c);
  sq_env_stop(&x);
}

/* Runs a few loop turns without blocking (the hub's phase included), as env_run would but
 * without waiting for the catch-up timer, which keeps the loop alive while reads wait. */
static void run_turns(env_t *e) {
  for (int i = 0; i < 5; i++) uv_run(&e->loop, UV_RUN_NOWAIT);
}

/* The same for a consumer group whose position is behind the ring: its dispatch puts the
 * read off, and the timer makes the group ready again once the reader is free. */
static void test_a_group_read_is_put_off_while_a_settle_holds_the_reader(void **state) {
  (void)state;
  sq_env_t x;
  sq_start(&x);
  env_t *e = &x.e;
  for (int i = 0; i < 20; i++) pub_ok(e, "a/jobs", "{\"v\":1}");
  env_run(e);
  tconn_t a;
  tconn_any(e, &a);
  settle_t st;
  settle_start(&st, e, "a/jobs");
  stream_position_t from = {.seq = 0};
  stream_group_join_t j = {.group = "g", .start = &from, .max_inflight = 100};
  stream_err_t err;
  double t0 = now_ms();
  assert_int_equal(stream_conn_group_join(a.c, "a/jobs", &j, &err), 0);
  run_turns(e);
  json_t *m = drain_all(&a);
  double waited = now_ms() - t0;
  settle_end(&st);
  if (waited > 1000) fail_msg("the group's dispatch waited %.0f ms for the settle", waited);
  assert_int_equal(count_op(m, "ev"), 0);
  json_decref(m);
  const stream_stats_t *ss = stream_hub_stats(e->hub);
  assert_true(ss->store_catchup_deferred >= 1);
  assert_int_equal(ss->store_catchup_reads, 0);
  env_run(e); /* the timer finds the reader free: the group dispatches */
  m = drain_all(&a);
  assert_ev_seqs(m, "a/jobs", 1, 20);
  json_decref(m);
  assert_true(ss->store_catchup_reads > 0);
  stream_conn_free(a.c);
  sq_env_stop(&x);
}

/* The messages of msgs that are group deliveries ("ev" with a "group"). */
static size_t count_deliveries(json_t *msgs) {
  size_t n = 0, i;
  json_t *m;
  json_array_foreach(msgs, i, m) n += strcmp(msg_op(m), "ev") == 0 && json_object_get(m, "group");
  return n;
}

/* A put-off read of a due redelivery holds the whole group back: new events must not go
 * first and fill the members (groups.md: due redeliveries first, then new events). */
static void test_a_put_off_redelivery_is_not_overtaken_by_new_events(void **state) {
  (void)state;
  sq_env_t x;
  sq_start(&x);
  env_t *e = &x.e;
  tconn_t a;
  tconn_any(e, &a);
  stream_position_t from = {.seq = 0};
  stream_group_join_t j = {.group = "g", .start = &from, .max_inflight = 1};
  stream_err_t err;
  pub_ok(e, "a/q", "{\"v\":1}");
  env_run(e);
  assert_int_equal(stream_conn_group_join(a.c, "a/q", &j, &err), 0);
  env_run(e);
  json_t *m = drain_all(&a);
  assert_int_equal(count_deliveries(m), 1); /* seq 1 */
  json_decref(m);
  assert_int_equal(stream_conn_group_nack(a.c, "a/q", "g", 1, 1000, &err), 0);
  /* Seqs 2..5: seq 1 leaves the ring of 4, seq 3 (the next new one) is in it. */
  for (int i = 0; i < 4; i++) pub_ok(e, "a/q", "{\"v\":1}");
  env_run(e);
  m = drain_all(&a);
  assert_int_equal(count_deliveries(m), 1); /* seq 2, the member's one slot */
  json_decref(m);
  env_advance_ms(e, 1000);
  stream_hub_groups_tick(e->hub); /* seq 1 is due again */
  settle_t st;
  settle_start(&st, e, "a/q");
  assert_int_equal(stream_conn_group_ack(a.c, "a/q", "g", 2, &err), 0); /* a free slot */
  run_turns(e);
  m = drain_all(&a);
  settle_end(&st);
  assert_int_equal(count_deliveries(m), 0); /* not seq 3 (from the ring) ahead of the due seq 1 */
  json_decref(m);
  env_run(e);
  m = drain_all(&a);
  assert_int_equal(count_deliveries(m), 1);
  json_t *d = json_array_get(m, json_array_size(m) - 1);
  assert_int_equal(msg_u(d, "seq"), 1);
  assert_int_equal(msg_u(d, "redelivered"), 1);
  json_decref(m);
  stream_conn_free(a.c);
  sq_env_stop(&x);
}

typedef struct read_try {
  stream_reader_wait_t w; /* first: the callback gets &w */
  env_t *e;
  int calls, rc;
  size_t frames;
} read_try_t;

static int count_frame(void *ud, const stream_frame_t *f) {
  (void)f;
  ((read_try_t *)ud)->frames++;
  return 0;
}

static void read_again(stream_reader_wait_t *w) {
  read_try_t *r = (read_try_t *)w;
  r->calls++;
  r->frames = 0;
  stream_read_info_t info;
  r->rc = stream_read_nowait(r->e->hub, "a/r", 0, 100, count_frame, r, &info);
}

/* The HTTP reads' path: stream_read_nowait answers -EAGAIN while a settle holds the
 * reader, and stream_reader_wait calls back once it is free; a cancelled wait never does. */
static void test_an_http_read_waits_for_the_reader_through_a_callback_not_on_the_loop(void **state) {
  (void)state;
  sq_env_t x;
  sq_start(&x);
  env_t *e = &x.e;
  for (int i = 0; i < 20; i++) pub_ok(e, "a/r", "{\"v\":1}");
  env_run(e);
  settle_t st;
  settle_start(&st, e, "a/r");
  read_try_t r = {.e = e}, gone = {.e = e};
  double t0 = now_ms();
  read_again(&r.w);
  double waited = now_ms() - t0;
  assert_int_equal(r.rc, -EAGAIN);
  stream_reader_wait(e->hub, &r.w, read_again);
  stream_reader_wait(e->hub, &gone.w, read_again);
  stream_reader_wait_cancel(&gone.w);
  stream_reader_wait_cancel(&gone.w); /* twice: a no-op */
  run_turns(e);
  assert_int_equal(r.calls, 1); /* not called back while the reader is held */
  settle_end(&st);
  if (waited > 1000) fail_msg("the read waited %.0f ms for the settle", waited);
  env_run(e);
  assert_int_equal(r.calls, 2);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.frames, 20);
  assert_int_equal(gone.calls, 0);
  sq_env_stop(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_a_catch_up_read_is_put_off_while_a_settle_holds_the_reader),
      cmocka_unit_test(test_a_connection_freed_while_its_catch_up_waits_is_forgotten),
      cmocka_unit_test(test_a_failed_catch_up_read_closes_the_connection),
      cmocka_unit_test(test_a_group_read_is_put_off_while_a_settle_holds_the_reader),
      cmocka_unit_test(test_a_put_off_redelivery_is_not_overtaken_by_new_events),
      cmocka_unit_test(test_an_http_read_waits_for_the_reader_through_a_callback_not_on_the_loop),
  };
  return cmocka_run_group_tests_name("streams catch-up reads with the SQLite store", tests, NULL, NULL);
}
