/* Tests for streams/retention.c: bounded retention slices against the store. */
#include "streams/helpers.h"

static int count_cb(void *ud, const store_event_t *ev) {
  (void)ev;
  (*(int *)ud)++;
  return 0;
}

static void test_retention_steps_delete_by_count_in_bounded_slices(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.publish_rate = 0;
  e.cfg.topic_publish_rate = 0;
  e.cfg.retention_max_events = 10;
  e.cfg.retention_budget = 7;
  env_start(&e);
  for (int i = 0; i < 40; i++) pub_ok(&e, "a/x", "1");
  env_run(&e);
  bool more = true;
  int steps = 0;
  while (more) {
    assert_int_equal(stream_hub_retention_step(e.hub, &more), 0);
    steps++;
  }
  assert_true(steps >= 30 / 7);
  store_topic_t st;
  assert_int_equal(store_topic_get(e.store, "a/x", &st), 0);
  assert_int_equal(st.first_seq, 31);
  int n = 0;
  assert_int_equal(store_read(e.store, st.topic_id, 0, 0, count_cb, &n), 0);
  assert_int_equal(n, 10);
  env_stop(&e);
}

static void test_retention_steps_delete_by_age(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.retention_max_age_s = 60;
  env_start(&e);
  for (int i = 0; i < 3; i++) pub_ok(&e, "a/x", "1");
  env_run(&e);
  env_advance_ms(&e, 61000);
  pub_ok(&e, "a/x", "1");
  env_run(&e);
  bool more = true;
  while (more) assert_int_equal(stream_hub_retention_step(e.hub, &more), 0);
  store_topic_t st;
  assert_int_equal(store_topic_get(e.store, "a/x", &st), 0);
  assert_int_equal(st.first_seq, 4);
  env_stop(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_retention_steps_delete_by_count_in_bounded_slices),
      cmocka_unit_test(test_retention_steps_delete_by_age),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
