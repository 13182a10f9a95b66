/* Tests for streams/topic.c: loading, idle eviction and reload, bounded memory. */
#include <unistd.h>

#include "base/log.h"
#include "streams/helpers.h"

static void start(env_t *e) {
  env_config(e);
  e->cfg.idle_topic_s = 5;
  e->cfg.publish_rate = 0;
  e->cfg.topic_publish_rate = 0;
  env_start(e);
}

static void test_idle_topic_leaves_memory_and_comes_back_with_its_seq_and_epoch(void **state) {
  (void)state;
  env_t e;
  start(&e);
  ack_rec_t a = {0}, b = {0};
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "1", &a), 0);
  env_run(&e);
  assert_int_equal(stream_hub_stats(e.hub)->topics, 1);
  env_advance_ms(&e, 4000);
  assert_int_equal(stream_hub_sweep(e.hub), 0); /* not idle long enough */
  env_advance_ms(&e, 1000);
  assert_int_equal(stream_hub_sweep(e.hub), 1);
  assert_int_equal(stream_hub_stats(e.hub)->topics, 0);
  assert_int_equal(stream_hub_stats(e.hub)->evictions, 1);
  assert_int_equal(stream_hub_stats(e.hub)->frames, 0); /* its ring went too */
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "2", &b), 0);
  env_run(&e);
  assert_int_equal(b.seq, 2);
  assert_string_equal(a.epoch, b.epoch);
  assert_int_equal(stream_hub_stats(e.hub)->topic_loads, 2);
  env_stop(&e);
}

static void test_topics_with_subscribers_or_pending_publishes_stay(void **state) {
  (void)state;
  env_t e;
  start(&e);
  tconn_t t;
  tconn_any(&e, &t);
  sub_live(&t, "a/watched");
  pub_ok(&e, "a/pending", "1"); /* not committed yet: pinned */
  env_advance_ms(&e, 60000);
  assert_int_equal(stream_hub_sweep(e.hub), 0);
  env_run(&e);
  env_advance_ms(&e, 60000);
  assert_int_equal(stream_hub_sweep(e.hub), 1); /* a/pending, now committed and quiet */
  assert_non_null(stream__topic_find(e.hub, "a/watched"));
  assert_int_equal(stream_conn_unsubscribe(t.c, "a/watched"), 0);
  env_advance_ms(&e, 5000);
  assert_int_equal(stream_hub_sweep(e.hub), 1);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_many_distinct_topics_do_not_grow_the_hub(void **state) {
  (void)state;
  env_t e;
  start(&e);
  char topic[64];
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < 5000; i++) {
      snprintf(topic, sizeof topic, "t%d/run-%d", i % 50, round * 5000 + i);
      pub_ok(&e, topic, "1");
    }
    env_run(&e);
    env_advance_ms(&e, 6000);
    assert_int_equal(stream_hub_sweep(e.hub), 5000);
    assert_int_equal(stream_hub_stats(e.hub)->topics, 0);
    assert_int_equal(stream_hub_stats(e.hub)->frames, 0);
    assert_true(e.hub->topics.nbuckets <= 64); /* the table shrank back */
  }
  assert_int_equal(e.hub->tenants.count, 0); /* tenant buckets idle past their refill are gone */
  env_stop(&e);
}

/* A sweep turn of the timer frees at most STREAM_SWEEP_BUDGET items (a topic and each of
 * its ring's frames): 20,000 topics idle at once held the loop 100-250 ms in one sweep.
 * The rest goes in the next turns; a topic bigger than the budget still goes alone. */
static void test_a_sweep_turn_frees_at_most_its_budget(void **state) {
  (void)state;
  env_t e;
  start(&e);
  enum { TOPICS = 10000 }; /* one event each: 2 items per topic, 20,000 in all */
  char topic[64];
  for (int i = 0; i < TOPICS; i++) {
    snprintf(topic, sizeof topic, "t%d/run-%d", i % 50, i);
    pub_ok(&e, topic, "1");
  }
  env_run(&e);
  env_advance_ms(&e, 6000);
  bool more = true;
  size_t total = 0, turns = 0;
  while (more) {
    size_t n = stream__hub_sweep_some(e.hub, STREAM_SWEEP_BUDGET, &more);
    if (more) assert_int_equal(n, STREAM_SWEEP_BUDGET / 2); /* a full turn */
    total += n;
    assert_int_equal(stream_hub_stats(e.hub)->topics, TOPICS - total);
    assert_true(++turns <= TOPICS);
  }
  assert_int_equal(total, TOPICS);
  assert_int_equal(turns, (TOPICS + STREAM_SWEEP_BUDGET / 2 - 1) / (STREAM_SWEEP_BUDGET / 2));
  assert_int_equal(stream_hub_stats(e.hub)->frames, 0);
  /* topics whose ring alone passes the budget go one per turn */
  for (int i = 0; i < 40; i++) {
    pub_ok(&e, "a/big", "1");
    pub_ok(&e, "a/bigger", "1");
  }
  env_run(&e);
  env_advance_ms(&e, 6000);
  assert_int_equal(stream__hub_sweep_some(e.hub, 8, &more), 1);
  assert_true(more);
  assert_int_equal(stream__hub_sweep_some(e.hub, 8, &more), 1);
  assert_true(more); /* tenant a's bucket, due too, did not fit in that turn */
  assert_int_equal(e.hub->tenants.count, 1);
  assert_int_equal(stream__hub_sweep_some(e.hub, 8, &more), 0);
  assert_false(more);
  assert_int_equal(e.hub->tenants.count, 0);
  env_stop(&e);
}

/* ---- new topics on SQLite: created in memory at once, their row with the next batch ---- */

static void sq_start(sq_env_t *x) {
  env_config(&x->e);
  x->e.cfg.idle_topic_s = 5;
  x->e.cfg.publish_rate = 0;
  x->e.cfg.topic_publish_rate = 0;
  sq_env_start(x);
}

static bool stored(env_t *e, const char *topic, store_topic_t *st) {
  return store_topic_get(e->store, topic, st) == 0;
}

static void test_a_new_topic_is_usable_at_once_and_its_row_goes_with_the_next_batch(void **state) {
  (void)state;
  sq_env_t x;
  sq_start(&x);
  env_t *e = &x.e;
  tconn_t t;
  tconn_any(e, &t);
  sub_live(&t, "a/new");
  json_t *m = drain_all(&t);
  assert_string_equal(msg_op(json_array_get(m, 0)), "subscribed");
  char epoch[STORE_EPOCH_LEN + 1];
  snprintf(epoch, sizeof epoch, "%s", msg_s(json_array_get(m, 0), "epoch"));
  assert_int_equal(msg_u(json_array_get(m, 0), "head"), 0);
  json_decref(m);
  store_topic_t st;
  assert_false(stored(e, "a/new", &st)); /* nothing written by the subscribe itself */
  assert_int_equal(stream_hub_stats(e->hub)->topics_unsaved, 1);
  /* Unsubscribed and idle for long, a topic whose row is not written stays. */
  assert_int_equal(stream_conn_unsubscribe(t.c, "a/new"), 0);
  env_advance_ms(e, 60000);
  assert_int_equal(stream_hub_sweep(e->hub), 0);
  env_run(e); /* a batch with the row alone */
  assert_true(stored(e, "a/new", &st));
  assert_string_equal(st.epoch, epoch);
  assert_int_equal(st.head_seq, 0);
  assert_int_equal(stream_hub_stats(e->hub)->topics_unsaved, 0);
  env_advance_ms(e, 5000);
  assert_int_equal(stream_hub_sweep(e->hub), 1); /* saved and idle: it may go now */
  /* A publish to a new topic: its row and its first event in one batch. */
  ack_rec_t a = {0};
  assert_int_equal(pub_full(e, "a/pub", NULL, NULL, STREAM_LANE_DATA, "1", &a), 0);
  assert_false(stored(e, "a/pub", &st));
  env_run(e);
  assert_int_equal(a.status, 0);
  assert_int_equal(a.seq, 1);
  assert_true(stored(e, "a/pub", &st));
  assert_string_equal(st.epoch, a.epoch);
  assert_int_equal(st.head_seq, 1);
  assert_int_equal(st.topic_id, stream__topic_find(e->hub, "a/pub")->topic_id);
  /* The evicted a/new comes back from its row, with its epoch. */
  sub_live(&t, "a/new");
  m = drain_all(&t);
  assert_string_equal(msg_s(json_array_get(m, 0), "epoch"), epoch);
  json_decref(m);
  stream_conn_free(t.c);
  sq_env_stop(&x);
}

#include "store/hold.h"

typedef struct sub_call {
  tconn_t *t;
  int rc[2];
} sub_call_t;

static void *sub_main(void *arg) {
  sub_call_t *c = arg;
  stream_position_t pos = {.live = true};
  stream_err_t err;
  c->rc[0] = stream_conn_subscribe(c->t->c, "a/brand-new", &pos, &err);
  c->rc[1] = stream_conn_subscribe(c->t->c, "a/evicted", &pos, &err);
  return NULL;
}

/* While the commit thread holds the store (a commit, a retention slice, a WAL settle:
 * 10-110 ms at 120,000 events/s), subscribing to a topic that is not in memory, new or
 * evicted, answers at once: the loop never waits for that thread. */
static void test_subscribing_to_a_topic_not_in_memory_does_not_wait_for_the_commit_thread(void **state) {
  (void)state;
  sq_env_t x;
  sq_start(&x);
  env_t *e = &x.e;
  pub_ok(e, "a/evicted", "1");
  env_run(e);
  env_advance_ms(e, 60000);
  assert_int_equal(stream_hub_sweep(e->hub), 1);
  assert_null(stream__topic_find(e->hub, "a/evicted"));
  store_topic_t held;
  assert_true(stored(e, "a/evicted", &held));
  tconn_t t;
  tconn_any(e, &t);
  store_hold_t h;
  hold_start(&h, e->store, held.topic_id);
  sub_call_t c = {.t = &t};
  if (!hold_run(&h, sub_main, &c, 5000)) fail_msg("a subscribe waited for the thread holding the store");
  assert_int_equal(c.rc[0], 0);
  assert_int_equal(c.rc[1], 0);
  json_t *m = drain_all(&t);
  assert_int_equal(count_op(m, "subscribed"), 2);
  assert_int_equal(msg_u(json_array_get(m, 1), "head"), 1); /* a/evicted's head, from its row */
  json_decref(m);
  env_run(e);
  store_topic_t st;
  assert_true(stored(e, "a/brand-new", &st));
  stream_conn_free(t.c);
  sq_env_stop(&x);
}

/* A batch that fails takes the new rows in it down too: their events fail like the
 * others', and the row is queued again by the topic's next use, never retried in a loop. */
static void test_a_failed_batch_with_a_new_row_fails_its_events_and_the_next_use_retries(void **state) {
  (void)state;
  sq_env_t x;
  sq_start(&x);
  env_t *e = &x.e;
  pub_ok(e, "a/x", "0");
  env_run(e);
  ack_rec_t x2 = {0}, n1 = {0}, n2 = {0};
  assert_int_equal(pub_full(e, "a/x", NULL, NULL, STREAM_LANE_DATA, "1", &x2), 0);
  assert_int_equal(pub_full(e, "a/new", NULL, NULL, STREAM_LANE_DATA, "2", &n1), 0);
  char epoch[STORE_EPOCH_LEN + 1];
  snprintf(epoch, sizeof epoch, "%s", stream__topic_find(e->hub, "a/new")->epoch);
  /* Another writer takes seq 2 of a/x behind the hub's back: the batch will fail. */
  store_topic_t st;
  assert_true(stored(e, "a/x", &st));
  store_event_t other = {.topic_id = st.topic_id, .seq = 2, .ts_ms = 1, .lane = 1, .data = "0", .data_len = 1};
  assert_int_equal(store_batch_write(e->store, &other, 1), 0);
  uv_run(&e->loop, UV_RUN_NOWAIT); /* the batch goes to the thread */
  assert_true(e->hub->writer.busy);
  /* Queued while the doomed batch is in flight: its seq assumed the failed one. */
  assert_int_equal(pub_full(e, "a/new", NULL, NULL, STREAM_LANE_DATA, "3", &n2), 0);
  log_set_level(LOG_OFF); /* the failure is logged */
  env_run(e);
  log_set_level(LOG_INFO);
  assert_int_equal(x2.status, -EIO);
  assert_int_equal(n1.status, -EIO);
  assert_int_equal(n2.status, -EIO);
  assert_false(stored(e, "a/new", &st));
  stream_topic_t *t = stream__topic_find(e->hub, "a/new");
  assert_int_equal(t->row, STREAM_ROW_FAILED);
  assert_int_equal(stream_hub_stats(e->hub)->topics_unsaved, 1);
  env_run(e);
  assert_false(stored(e, "a/new", &st)); /* nothing retries by itself */
  tconn_t c;
  tconn_any(e, &c);
  sub_live(&c, "a/new"); /* the next use queues the row again */
  assert_int_equal(t->row, STREAM_ROW_QUEUED);
  env_run(e);
  assert_true(stored(e, "a/new", &st));
  ack_rec_t n3 = {0};
  assert_int_equal(pub_full(e, "a/new", NULL, NULL, STREAM_LANE_DATA, "4", &n3), 0);
  env_run(e);
  assert_int_equal(n3.status, 0);
  assert_int_equal(n3.seq, 1); /* no seq skipped */
  assert_string_equal(n3.epoch, epoch);
  assert_true(stored(e, "a/new", &st));
  assert_string_equal(st.epoch, epoch);
  assert_int_equal(st.head_seq, 1);
  assert_int_equal(stream_hub_stats(e->hub)->topics_unsaved, 0);
  json_t *m = drain_all(&c);
  assert_ev_seqs(m, "a/new", 1, 1);
  json_decref(m);
  stream_conn_free(c.c);
  sq_env_stop(&x);
}

/* Another writer (not supported: another process on the same file) gives the name a row
 * while the hub's is queued: the batch fails with -EEXIST once, the topic takes that row
 * and the batches after it go through. */
static void test_a_topic_whose_name_another_writer_took_adopts_that_row(void **state) {
  (void)state;
  sq_env_t x;
  sq_start(&x);
  env_t *e = &x.e;
  tconn_t c;
  tconn_any(e, &c);
  sub_live(&c, "a/taken");
  json_decref(drain_all(&c));
  store_topic_t other;
  assert_int_equal(store_topic_ensure(e->store, "a/taken", &other), 0);
  store_event_t ev = {.topic_id = other.topic_id, .seq = 1, .ts_ms = 1, .lane = 1, .data = "0", .data_len = 1};
  assert_int_equal(store_batch_write(e->store, &ev, 1), 0);
  ack_rec_t a1 = {0};
  assert_int_equal(pub_full(e, "a/bystander", NULL, NULL, STREAM_LANE_DATA, "1", &a1), 0);
  log_set_level(LOG_OFF); /* the failure and the adoption are logged */
  env_run(e);
  log_set_level(LOG_INFO);
  assert_int_equal(a1.status, -EIO); /* in the failed batch */
  stream_topic_t *t = stream__topic_find(e->hub, "a/taken");
  assert_int_equal(t->row, STREAM_ROW_SAVED);
  assert_int_equal(t->topic_id, other.topic_id);
  assert_string_equal(t->epoch, other.epoch);
  assert_int_equal(t->head_seq, 1);
  assert_int_equal(stream_hub_stats(e->hub)->topics_unsaved, 1); /* a/bystander's row failed too */
  ack_rec_t a2 = {0}, b = {0};
  assert_int_equal(pub_full(e, "a/bystander", NULL, NULL, STREAM_LANE_DATA, "2", &a2), 0);
  assert_int_equal(pub_full(e, "a/taken", NULL, NULL, STREAM_LANE_DATA, "3", &b), 0);
  env_run(e);
  assert_int_equal(a2.status, 0);
  assert_int_equal(a2.seq, 1);
  assert_int_equal(b.status, 0);
  assert_int_equal(b.seq, 2);
  assert_string_equal(b.epoch, other.epoch);
  assert_int_equal(stream_hub_stats(e->hub)->topics_unsaved, 0);
  json_t *m = drain_all(&c);
  assert_ev_seqs(m, "a/taken", 2, 2); /* from the head on, not the other writer's seq 1 */
  json_decref(m);
  stream_conn_free(c.c);
  sq_env_stop(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_a_sweep_turn_frees_at_most_its_budget),
      cmocka_unit_test(test_idle_topic_leaves_memory_and_comes_back_with_its_seq_and_epoch),
      cmocka_unit_test(test_topics_with_subscribers_or_pending_publishes_stay),
      cmocka_unit_test(test_many_distinct_topics_do_not_grow_the_hub),
      cmocka_unit_test(test_a_new_topic_is_usable_at_once_and_its_row_goes_with_the_next_batch),
      cmocka_unit_test(test_subscribing_to_a_topic_not_in_memory_does_not_wait_for_the_commit_thread),
      cmocka_unit_test(test_a_failed_batch_with_a_new_row_fails_its_events_and_the_next_use_retries),
      cmocka_unit_test(test_a_topic_whose_name_another_writer_took_adopts_that_row),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
