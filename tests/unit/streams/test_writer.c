/* Tests for streams/writer.c: the group commit on the writer thread. One batch is in
 * flight at a time (after one loop turn with publishes, hub->writer.busy is set: the
 * check phase handed the batch over; the tests of the thread set commit_inline_max 0,
 * since by default small batches commit on the loop); publishes made meanwhile queue and
 * go as the next batch; results are applied on the loop exactly as a synchronous
 * commit's; drain waits for the batch in flight; close completes it and cancels the rest.
 * Small batches on the loop: the inline tests below. */
#include "helpers.h"
#include "store/hold.h"

static uint64_t store_head(env_t *e, const char *topic) {
  store_topic_t st;
  if (store_topic_get(e->store, topic, &st) < 0) return 0;
  return st.head_seq;
}

/* One loop turn: the check phase hands the queued publishes to the writer. */
static void hand_over(env_t *e) {
  uv_run(&e->loop, UV_RUN_NOWAIT);
  assert_true(e->hub->writer.busy);
}

static void test_without_the_thread_a_turn_commits_and_calls_back(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.commit_thread = false;
  env_start(&e);
  ack_rec_t a = {0};
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "1", &a), 0);
  uv_run(&e.loop, UV_RUN_NOWAIT);
  assert_false(e.hub->writer.on);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.seq, 1);
  env_stop(&e);
}

static void test_the_thread_commits_off_the_turn_and_calls_back_once_durable(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.commit_inline_max = 0; /* the thread's path */
  env_start(&e);
  assert_true(e.hub->writer.on);
  ack_rec_t a = {0};
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "1", &a), 0);
  hand_over(&e);
  assert_int_equal(a.calls, 0); /* the result has not been applied yet */
  assert_int_equal(stream_hub_stats(e.hub)->pending, 1);
  env_run(&e); /* returns only once the async handle has delivered the result */
  assert_false(e.hub->writer.busy);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.status, 0);
  assert_int_equal(a.seq, 1);
  assert_int_equal(store_head(&e, "a/x"), 1);
  const stream_stats_t *st = stream_hub_stats(e.hub);
  assert_int_equal(st->pending, 0);
  assert_int_equal(st->commit_us.count, 1);
  env_stop(&e);
}

/* The inline tests' configuration: batches of up to 3 events commit on the loop, and no
 * per-topic rate limit gets in the way of publishing in bursts. */
static void inline_config(env_t *e) {
  env_config(e);
  e->cfg.commit_inline_max = 3;
  e->cfg.topic_publish_rate = 0;
}

static void test_a_batch_within_commit_inline_max_commits_in_the_turn_a_bigger_one_on_the_thread(
    void **state) {
  (void)state;
  env_t e;
  inline_config(&e);
  env_start(&e);
  assert_true(e.hub->writer.on);
  ack_rec_t a = {0};
  for (int i = 0; i < 2; i++) pub_ok(&e, "a/x", "1");
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "2", &a), 0);
  uv_run(&e.loop, UV_RUN_NOWAIT);
  assert_false(e.hub->writer.busy);
  assert_int_equal(a.calls, 1); /* durable and answered within the turn */
  assert_int_equal(a.seq, 3);
  assert_int_equal(store_head(&e, "a/x"), 3);
  assert_int_equal(stream_hub_stats(e.hub)->commits_inline, 1);
  ack_rec_t b = {0};
  for (int i = 0; i < 3; i++) pub_ok(&e, "a/x", "1");
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "3", &b), 0);
  hand_over(&e); /* four events: the thread's */
  assert_int_equal(b.calls, 0);
  env_run(&e);
  assert_int_equal(b.seq, 7);
  assert_int_equal(store_head(&e, "a/x"), 7);
  assert_int_equal(stream_hub_stats(e.hub)->commits_inline, 1);
  env_stop(&e);
}

/* Publishes data on topic; the batch must commit inline, in the turn. Returns its seq. */
static uint64_t pub_inline(env_t *e, const char *topic, const char *data) {
  ack_rec_t a = {0};
  assert_int_equal(pub_full(e, topic, NULL, NULL, STREAM_LANE_DATA, data, &a), 0);
  uv_run(&e->loop, UV_RUN_NOWAIT);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.status, 0);
  return a.seq;
}

/* Publishes data on topic; the batch must go to the thread (handed over in the turn,
 * answered once it lands). Returns its seq. */
static uint64_t pub_thread(env_t *e, const char *topic, const char *data) {
  ack_rec_t a = {0};
  assert_int_equal(pub_full(e, topic, NULL, NULL, STREAM_LANE_DATA, data, &a), 0);
  hand_over(e);
  assert_int_equal(a.calls, 0);
  env_run(e);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.status, 0);
  return a.seq;
}

/* An inline commit that took commit_inline_slow_us or more (the kernel throttling the
 * log's writes, a busy disk) held every connection's turn: small batches then go to the
 * thread for commit_inline_pause_ms, doubled for each slow one in a row, and commit on
 * the loop again after that. */
static void test_a_slow_inline_commit_sends_small_batches_to_the_thread_for_a_while(void **state) {
  (void)state;
  sq_env_t x;
  inline_config(&x.e);
  /* Every commit to a file takes longer (SQLite's commit with its WAL write: tens of us). */
  x.e.cfg.commit_inline_slow_us = 1;
  x.e.cfg.commit_inline_pause_ms = 500;
  sq_env_start(&x);
  env_t *e = &x.e;
  uint64_t *now = &e->clock.mono_us;
  const stream_stats_t *ss = stream_hub_stats(e->hub);
  assert_int_equal(pub_thread(e, "a/x", "1"), 1); /* a new topic's row: the thread's */
  assert_int_equal(pub_inline(e, "a/x", "2"), 2); /* slow: pause 500 ms */
  assert_int_equal(ss->commits_inline_paused, 1);
  assert_int_equal(pub_thread(e, "a/x", "3"), 3);
  *now += 499 * 1000; /* still within the pause */
  assert_int_equal(pub_thread(e, "a/x", "4"), 4);
  *now += 2 * 1000; /* past it; slow again, second in a row: 1 s */
  assert_int_equal(pub_inline(e, "a/x", "5"), 5);
  assert_int_equal(ss->commits_inline_paused, 2);
  *now += 999 * 1000;
  assert_int_equal(pub_thread(e, "a/x", "6"), 6);
  *now += 2 * 1000; /* a third: 2 s */
  assert_int_equal(pub_inline(e, "a/x", "7"), 7);
  /* A fast inline commit ends the run: the next slow one pauses for 500 ms again. */
  *now += 2001 * 1000;
  e->hub->cfg.commit_inline_slow_us = 60u * 1000 * 1000; /* nothing is that slow */
  assert_int_equal(pub_inline(e, "a/x", "8"), 8);
  assert_int_equal(ss->commits_inline_paused, 3);
  e->hub->cfg.commit_inline_slow_us = 1;
  assert_int_equal(pub_inline(e, "a/x", "9"), 9); /* slow: 500 ms */
  *now += 501 * 1000;
  assert_int_equal(pub_inline(e, "a/x", "10"), 10); /* slow, second in a row: 1 s */
  assert_int_equal(ss->commits_inline_paused, 5);
  /* Long after that pause (more than the longest one, 32 x 500 ms), a slow commit starts
   * a new run: 500 ms again, not 2 s. */
  *now += (1000 + 17000) * 1000;
  assert_int_equal(pub_inline(e, "a/x", "11"), 11);
  *now += 501 * 1000;
  assert_int_equal(pub_inline(e, "a/x", "12"), 12);
  assert_int_equal(ss->commits_inline, 8);
  assert_int_equal(ss->commits_inline_paused, 7);
  assert_int_equal(store_head(e, "a/x"), 12);
  sq_env_stop(&x);
}

/* A fanout bigger than a turn's router_budget leaves a walk for the next turns: the loop
 * is then the bottleneck, so small batches go to the thread, whose commit overlaps with
 * the walk, until the router has caught up. */
static void test_a_small_batch_goes_to_the_thread_while_the_router_has_a_walk_left(void **state) {
  (void)state;
  env_t e;
  inline_config(&e);
  e.cfg.router_budget = 2;
  env_start(&e);
  pub_ok(&e, "a/x", "1"); /* a new topic: its row goes to the thread in any case */
  env_run(&e);
  tconn_t t[5];
  for (int i = 0; i < 5; i++) tconn_live(&e, &t[i], "a/x");
  assert_int_equal(pub_inline(&e, "a/x", "2"), 2); /* the walk visits 2 of 5 */
  assert_int_equal(pub_thread(&e, "a/x", "3"), 3); /* the walk is not done: the thread's */
  assert_int_equal(pub_inline(&e, "a/x", "4"), 4); /* caught up: inline again */
  for (int i = 0; i < 5; i++) {
    json_t *m = drain_all(&t[i]);
    assert_ev_seqs(m, "a/x", 2, 4);
    json_decref(m);
    stream_conn_free(t[i].c);
  }
  env_stop(&e);
}

/* Publishes made while a batch is on the thread are taken when it lands (the async
 * callback, writer.c). That landing queues its topics for this turn's walk, which is no
 * backlog: a small batch then still commits inline. */
static void test_a_small_batch_taken_as_a_thread_batch_lands_commits_inline(void **state) {
  (void)state;
  env_t e;
  inline_config(&e);
  env_start(&e);
  pub_ok(&e, "a/x", "1");
  env_run(&e);
  tconn_t t;
  tconn_live(&e, &t, "a/x");
  const stream_stats_t *ss = stream_hub_stats(e.hub);
  const uint64_t inline0 = ss->commits_inline;
  for (int i = 0; i < 4; i++) pub_ok(&e, "a/x", "2");
  hand_over(&e); /* four events: the thread's */
  ack_rec_t a = {0};
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "3", &a), 0);
  for (int i = 0; i < 1000 && a.calls == 0; i++) uv_run(&e.loop, UV_RUN_ONCE);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.seq, 6);
  assert_int_equal(ss->commits_inline, inline0 + 1); /* a: inline, in the landing's callback */
  env_run(&e);
  json_t *m = drain_all(&t);
  assert_ev_seqs(m, "a/x", 2, 6);
  json_decref(m);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void *turn_main(void *arg) {
  uv_run(&((env_t *)arg)->loop, UV_RUN_NOWAIT);
  return NULL;
}

/* A small batch commits on the loop only when that waits for nothing but its own commit.
 * While another thread holds the store (the writer thread in a retention slice, tens of ms
 * at the publish ceiling) the writer thread takes the batch and the loop's turn goes on. */
static void test_a_small_batch_goes_to_the_thread_while_another_thread_holds_the_store(void **state) {
  (void)state;
  env_t e;
  inline_config(&e);
  env_start(&e);
  pub_ok(&e, "a/x", "1"); /* a new topic: its row goes to the thread in any case */
  env_run(&e);
  store_topic_t st;
  assert_int_equal(store_topic_get(e.store, "a/x", &st), 0);
  const stream_stats_t *ss = stream_hub_stats(e.hub);
  uint64_t inline_before = ss->commits_inline;
  ack_rec_t a = {0};
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "2", &a), 0);
  store_hold_t h;
  hold_start(&h, e.store, st.topic_id);
  if (!hold_run(&h, turn_main, &e, 1000)) fail_msg("the loop's turn waited for the thread holding the store");
  assert_int_equal(ss->commits_inline_declined, 1);
  assert_int_equal(ss->commits_inline, inline_before);
  env_run(&e);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.status, 0);
  assert_int_equal(a.seq, 2);
  assert_int_equal(store_head(&e, "a/x"), 2);
  /* With the store free again, the next small batch commits in the turn. */
  ack_rec_t b = {0};
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "3", &b), 0);
  uv_run(&e.loop, UV_RUN_NOWAIT);
  assert_int_equal(b.calls, 1);
  assert_int_equal(ss->commits_inline, inline_before + 1);
  env_stop(&e);
}

static void test_publishes_during_a_batch_in_flight_go_as_the_next_batch_in_order(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.commit_inline_max = 0; /* the thread's path */
  e.cfg.topic_publish_rate = 0;
  env_start(&e);
  tconn_t t;
  tconn_any(&e, &t);
  sub_live(&t, "a/x");
  json_decref(drain_all(&t));
  ack_rec_t first = {0}, last = {0};
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "0", &first), 0);
  hand_over(&e);
  for (int i = 0; i < 49; i++) pub_ok(&e, i % 2 ? "a/x" : "a/y", "1");
  assert_int_equal(pub_full(&e, "a/x", "k", NULL, STREAM_LANE_DATA, "2", &last), 0);
  env_run(&e);
  /* Two batches: the one in flight (1 event), then everything queued behind it (50). */
  const stream_stats_t *st = stream_hub_stats(e.hub);
  assert_int_equal(st->commit_batch_events.count, 2);
  assert_int_equal(st->commit_batch_events.sum_us, 51);
  assert_int_equal(first.seq, 1);
  assert_int_equal(last.seq, 26);
  assert_int_equal(store_head(&e, "a/x"), 26);
  assert_int_equal(store_head(&e, "a/y"), 25);
  json_t *m = drain_all(&t);
  assert_ev_seqs(m, "a/x", 1, 26);
  json_decref(m);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_batches_stay_within_the_cap_and_keep_seq_dense(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.commit_inline_max = 0; /* the thread's path */
  e.cfg.commit_batch_max = 7;
  e.cfg.topic_publish_rate = 0;
  env_start(&e);
  ack_rec_t r[100];
  memset(r, 0, sizeof r);
  for (int i = 0; i < 100; i++)
    assert_int_equal(pub_full(&e, i % 3 ? "a/x" : "a/y", NULL, NULL, STREAM_LANE_DATA, "1", &r[i]), 0);
  env_run(&e);
  const stream_stats_t *st = stream_hub_stats(e.hub);
  assert_int_equal(st->commit_batch_events.count, 15); /* ceil(100 / 7) */
  assert_int_equal(st->commit_batch_events.sum_us, 100);
  uint64_t want_x = 1, want_y = 1;
  for (int i = 0; i < 100; i++) {
    assert_int_equal(r[i].status, 0);
    assert_int_equal(r[i].seq, i % 3 ? want_x++ : want_y++);
  }
  assert_int_equal(store_head(&e, "a/x"), 66);
  assert_int_equal(store_head(&e, "a/y"), 34);
  env_stop(&e);
}

static void test_a_failed_batch_in_flight_fails_what_queued_behind_it_and_rewinds_seq(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.commit_inline_max = 0; /* the thread's path */
  env_start(&e);
  ack_rec_t x1 = {0}, x2 = {0}, y1 = {0}, z1 = {0};
  assert_int_equal(pub_full(&e, "a/x", "idx", NULL, STREAM_LANE_DATA, "1", &x1), 0);
  assert_int_equal(pub_full(&e, "a/y", NULL, NULL, STREAM_LANE_DATA, "2", &y1), 0);
  /* Another writer takes seq 1 of a/x behind the hub's back: the batch will fail. */
  store_topic_t st;
  assert_int_equal(store_topic_ensure(e.store, "a/x", &st), 0);
  store_event_t other = {.topic_id = st.topic_id, .seq = 1, .ts_ms = 1, .lane = 1, .data = "0", .data_len = 1};
  assert_int_equal(store_batch_write(e.store, &other, 1), 0);
  hand_over(&e);
  /* Queued while the doomed batch is in flight: a/x's seq 2 assumed seq 1, a/z did not. */
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "3", &x2), 0);
  assert_int_equal(pub_full(&e, "a/z", NULL, NULL, STREAM_LANE_DATA, "4", &z1), 0);
  env_run(&e);
  assert_int_equal(x1.status, -EIO);
  assert_int_equal(y1.status, -EIO); /* same store batch */
  assert_int_equal(x2.status, -EIO); /* its seq followed a failed one */
  assert_int_equal(z1.status, 0);
  assert_int_equal(z1.seq, 1);
  const stream_stats_t *hs = stream_hub_stats(e.hub);
  assert_int_equal(hs->commit_failures, 1);
  assert_int_equal(hs->pending, 0);
  assert_int_equal(store_head(&e, "a/y"), 0);
  /* No seq skipped: a/x continues after the store's head, a/y starts at 1 again. */
  ack_rec_t x3 = {0}, y2 = {0}, again = {0};
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "5", &x3), 0);
  assert_int_equal(pub_full(&e, "a/y", NULL, NULL, STREAM_LANE_DATA, "6", &y2), 0);
  assert_int_equal(pub_full(&e, "a/x", "idx", NULL, STREAM_LANE_DATA, "7", &again), 0);
  env_run(&e);
  assert_int_equal(x3.seq, 2);
  assert_int_equal(y2.seq, 1);
  assert_false(again.duplicate); /* the failed event's id was forgotten */
  assert_int_equal(again.seq, 3);
  assert_int_equal(store_head(&e, "a/x"), 3);
  env_stop(&e);
}

static void test_a_duplicate_of_an_event_in_flight_completes_after_it(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.commit_inline_max = 0; /* the thread's path */
  env_start(&e);
  ack_rec_t a = {0}, dup = {0};
  assert_int_equal(pub_full(&e, "a/x", "k1", NULL, STREAM_LANE_DATA, "1", &a), 0);
  hand_over(&e);
  assert_int_equal(pub_full(&e, "a/x", "k1", NULL, STREAM_LANE_DATA, "1", &dup), 0);
  env_run(&e);
  assert_int_equal(a.status, 0);
  assert_int_equal(dup.status, 0);
  assert_true(dup.duplicate);
  assert_int_equal(dup.seq, a.seq);
  assert_int_equal(store_head(&e, "a/x"), 1);
  env_stop(&e);
}

static void test_drain_waits_for_the_batch_in_flight_and_commits_the_rest(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.commit_inline_max = 0; /* the thread's path */
  e.cfg.commit_batch_max = 2;
  env_start(&e);
  ack_rec_t r[5];
  memset(r, 0, sizeof r);
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "1", &r[0]), 0);
  hand_over(&e);
  for (int i = 1; i < 5; i++) assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "1", &r[i]), 0);
  stream_hub_drain(e.hub);
  /* On return every event is durable and every callback has fired (pubacks precede the
   * transports' drain messages). */
  assert_false(e.hub->writer.busy);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_int_equal(r[i].status, 0);
    assert_int_equal(r[i].seq, (uint64_t)i + 1);
  }
  assert_int_equal(store_head(&e, "a/x"), 5);
  assert_int_equal(stream_hub_stats(e.hub)->pending, 0);
  env_run(&e); /* the async wake-up of a result drain already took is harmless */
  env_stop(&e);
}

static void test_closing_with_a_batch_in_flight_completes_it_and_cancels_the_rest(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.commit_inline_max = 0; /* the thread's path */
  env_start(&e);
  ack_rec_t a = {0}, b = {0};
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "1", &a), 0);
  hand_over(&e);
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "2", &b), 0);
  env_stop_hub(&e);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.status, 0); /* it was committed: it says so */
  assert_int_equal(b.calls, 1);
  assert_int_equal(b.status, -ECANCELED);
  assert_int_equal(store_head(&e, "a/x"), 1);
  env_stop(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_without_the_thread_a_turn_commits_and_calls_back),
      cmocka_unit_test(test_the_thread_commits_off_the_turn_and_calls_back_once_durable),
      cmocka_unit_test(
          test_a_batch_within_commit_inline_max_commits_in_the_turn_a_bigger_one_on_the_thread),
      cmocka_unit_test(test_a_slow_inline_commit_sends_small_batches_to_the_thread_for_a_while),
      cmocka_unit_test(test_a_small_batch_goes_to_the_thread_while_the_router_has_a_walk_left),
      cmocka_unit_test(test_a_small_batch_taken_as_a_thread_batch_lands_commits_inline),
      cmocka_unit_test(test_a_small_batch_goes_to_the_thread_while_another_thread_holds_the_store),
      cmocka_unit_test(test_publishes_during_a_batch_in_flight_go_as_the_next_batch_in_order),
      cmocka_unit_test(test_batches_stay_within_the_cap_and_keep_seq_dense),
      cmocka_unit_test(test_a_failed_batch_in_flight_fails_what_queued_behind_it_and_rewinds_seq),
      cmocka_unit_test(test_a_duplicate_of_an_event_in_flight_completes_after_it),
      cmocka_unit_test(test_drain_waits_for_the_batch_in_flight_and_commits_the_rest),
      cmocka_unit_test(test_closing_with_a_batch_in_flight_completes_it_and_cancels_the_rest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
