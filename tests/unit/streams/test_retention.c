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

static void deadline_cb(uv_timer_t *t) { *(bool *)t->data = true; }

static void test_retention_timer_runs_slices_on_the_loop_by_itself(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.retention_max_events = 3;
  e.cfg.retention_interval_ms = 1;
  e.cfg.retention_budget = 2;
  env_start(&e);
  for (int i = 0; i < 10; i++) pub_ok(&e, "a/x", "1");
  env_run(&e);
  bool expired = false;
  uv_timer_t deadline;
  uv_timer_init(&e.loop, &deadline);
  deadline.data = &expired;
  uv_timer_start(&deadline, deadline_cb, 5000, 0); /* a bound, not a wait: the loop exits early */
  store_topic_t st = {0};
  while (!expired) {
    uv_run(&e.loop, UV_RUN_ONCE);
    assert_int_equal(store_topic_get(e.store, "a/x", &st), 0);
    if (st.first_seq == 8) break;
  }
  assert_int_equal(st.first_seq, 8);
  uv_close((uv_handle_t *)&deadline, NULL);
  env_stop(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_retention_steps_delete_by_count_in_bounded_slices),
      cmocka_unit_test(test_retention_steps_delete_by_age),
      cmocka_unit_test(test_retention_timer_runs_slices_on_the_loop_by_itself),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
