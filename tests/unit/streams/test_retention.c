/* Tests for streams/retention.c: bounded retention slices against the store. */
#include "streams/helpers.h"
#include "../../../store/internal.h" /* store__lock: to hold the store as a long commit does */

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

/* Runs the loop until the store's first seq of "a/x" is want or 5 s have passed (a bound,
 * not a wait: it returns as soon as the store says so). */
static uint64_t run_until_first_seq(env_t *e, uint64_t want) {
  bool expired = false;
  uv_timer_t deadline;
  uv_timer_init(&e->loop, &deadline);
  deadline.data = &expired;
  uv_timer_start(&deadline, deadline_cb, 5000, 0);
  store_topic_t st = {0};
  while (!expired) {
    uv_run(&e->loop, UV_RUN_ONCE);
    assert_int_equal(store_topic_get(e->store, "a/x", &st), 0);
    if (st.first_seq == want) break;
  }
  uv_close((uv_handle_t *)&deadline, NULL);
  uv_run(&e->loop, UV_RUN_NOWAIT);
  return st.first_seq;
}

static void trim_env(env_t *e, bool thread) {
  env_config(e);
  e->cfg.commit_thread = thread;
  e->cfg.retention_max_events = 3;
  e->cfg.retention_interval_ms = 1;
  e->cfg.retention_budget = 2;
  env_start(e);
  for (int i = 0; i < 10; i++) pub_ok(e, "a/x", "1");
  env_run(e);
}

static void test_retention_timer_runs_slices_on_the_loop_without_the_commit_thread(void **state) {
  (void)state;
  env_t e;
  trim_env(&e, false);
  assert_false(e.hub->writer.on);
  assert_int_equal(run_until_first_seq(&e, 8), 8);
  env_stop(&e);
}

/* With the commit thread the timer hands each slice to it: the loop turns on while the
 * store is locked (as by a long commit or a WAL settle), where a slice on the loop would
 * wait for the lock (here, on its own thread: for ever). */
static void test_retention_slices_run_on_the_commit_thread_and_never_hold_the_loop(void **state) {
  (void)state;
  env_t e;
  trim_env(&e, true);
  assert_true(e.hub->writer.on);
  bool expired = false;
  uv_timer_t deadline; /* keeps the loop alive (the retention timer does not) and bounds it */
  uv_timer_init(&e.loop, &deadline);
  deadline.data = &expired;
  uv_timer_start(&deadline, deadline_cb, 5000, 0);
  /* A slice handed over during the set-up may still be running, holding the lock, and land
   * during the turns below: let it land first. Nothing is handed over between the last
   * turn and the lock (that takes a turn of the loop). */
  while (!expired && e.hub->writer.trim) uv_run(&e.loop, UV_RUN_ONCE);
  assert_false(expired); /* the set-up's slice landed */
  store__lock(e.store);
  while (!expired && !e.hub->writer.trim) uv_run(&e.loop, UV_RUN_ONCE);
  assert_true(e.hub->writer.trim); /* handed over, and this loop was not held */
  for (int i = 0; i < 20; i++) uv_run(&e.loop, UV_RUN_NOWAIT);
  assert_true(e.hub->writer.trim); /* the thread waits for the lock, the loop does not */
  store__unlock(e.store);
  uv_close((uv_handle_t *)&deadline, NULL);
  assert_int_equal(run_until_first_seq(&e, 8), 8);
  env_stop(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_retention_steps_delete_by_count_in_bounded_slices),
      cmocka_unit_test(test_retention_steps_delete_by_age),
      cmocka_unit_test(test_retention_timer_runs_slices_on_the_loop_without_the_commit_thread),
      cmocka_unit_test(test_retention_slices_run_on_the_commit_thread_and_never_hold_the_loop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
