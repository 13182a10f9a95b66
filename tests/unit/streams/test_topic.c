/* Tests for streams/topic.c: loading, idle eviction and reload, bounded memory. */
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_a_sweep_turn_frees_at_most_its_budget),
      cmocka_unit_test(test_idle_topic_leaves_memory_and_comes_back_with_its_seq_and_epoch),
      cmocka_unit_test(test_topics_with_subscribers_or_pending_publishes_stay),
      cmocka_unit_test(test_many_distinct_topics_do_not_grow_the_hub),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
