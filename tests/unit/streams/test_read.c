/* Tests for streams/read.c: HTTP range reads with gap information, and topic lists. */
#include "streams/helpers.h"

static int collect(void *ud, const stream_frame_t *f) {
  json_t *arr = ud;
  size_t len;
  const unsigned char *p = stream_frame_payload(f, &len);
  json_array_append_new(arr, json_loadb((const char *)p, len, 0, NULL));
  return 0;
}

static int stop_after_two(void *ud, const stream_frame_t *f) {
  int *n = ud;
  (void)f;
  return ++*n == 2 ? 7 : 0;
}

static void start(env_t *e) {
  env_config(e);
  e->cfg.publish_rate = 0;
  e->cfg.topic_publish_rate = 0;
  e->cfg.ring_size = 4;
  e->cfg.retention_max_events = 8;
  e->cfg.idle_topic_s = 1;
  env_start(e);
}

static void test_read_returns_events_after_n_from_ring_and_store(void **state) {
  (void)state;
  env_t e;
  start(&e);
  for (int i = 0; i < 8; i++) pub_ok(&e, "a/x", "1");
  env_run(&e);
  json_t *got = json_array();
  stream_read_info_t info;
  assert_int_equal(stream_read(e.hub, "a/x", 2, 100, collect, got, &info), 0);
  assert_ev_seqs(got, "a/x", 3, 8);
  assert_int_equal(info.head, 8);
  assert_int_equal(info.first, 1);
  assert_int_equal(info.gap_from, 0);
  assert_string_equal(info.epoch, stream__topic_find(e.hub, "a/x")->epoch);
  json_decref(got);
  got = json_array();
  assert_int_equal(stream_read(e.hub, "a/x", 0, 3, collect, got, &info), 0);
  assert_ev_seqs(got, "a/x", 1, 3);
  json_decref(got);
  int n = 0;
  assert_int_equal(stream_read(e.hub, "a/x", 0, 100, stop_after_two, &n, &info), 0);
  assert_int_equal(n, 2);
  env_stop(&e);
}

static void test_read_reports_a_gap_when_the_range_is_gone(void **state) {
  (void)state;
  env_t e;
  start(&e);
  for (int i = 0; i < 20; i++) pub_ok(&e, "a/x", "1");
  env_run(&e);
  json_t *got = json_array();
  stream_read_info_t info;
  assert_int_equal(stream_read(e.hub, "a/x", 3, 100, collect, got, &info), 0);
  assert_int_equal(info.gap_from, 4);
  assert_int_equal(info.gap_to, 12);
  assert_int_equal(info.first, 13);
  assert_ev_seqs(got, "a/x", 13, 20);
  json_decref(got);
  env_stop(&e);
}

static void test_read_skips_events_past_the_age_rule_still_in_the_ring(void **state) {
  (void)state;
  env_t e;
  start(&e);
  e.hub->cfg.retention_max_age_s = 10;
  for (int i = 0; i < 2; i++) pub_ok(&e, "a/x", "1");
  env_run(&e);
  env_advance_ms(&e, 11000); /* both past 10 s; no retention slice has run, they are in the ring */
  for (int i = 0; i < 2; i++) pub_ok(&e, "a/x", "1");
  env_run(&e);
  json_t *got = json_array();
  stream_read_info_t info;
  assert_int_equal(stream_read(e.hub, "a/x", 0, 100, collect, got, &info), 0);
  assert_int_equal(info.gap_from, 1);
  assert_int_equal(info.gap_to, 2);
  assert_int_equal(info.first, 3);
  assert_ev_seqs(got, "a/x", 3, 4);
  json_decref(got);
  /* the same behind the ring (4 entries): the store's aged events are part of the gap */
  for (int i = 0; i < 6; i++) pub_ok(&e, "a/y", "1");
  env_run(&e);
  env_advance_ms(&e, 11000);
  for (int i = 0; i < 2; i++) pub_ok(&e, "a/y", "1");
  env_run(&e);
  got = json_array();
  assert_int_equal(stream_read(e.hub, "a/y", 0, 100, collect, got, &info), 0);
  assert_int_equal(info.gap_from, 1);
  assert_int_equal(info.gap_to, 6);
  assert_int_equal(info.first, 7);
  assert_ev_seqs(got, "a/y", 7, 8);
  json_decref(got);
  env_stop(&e);
}

static void test_read_of_an_evicted_topic_uses_the_store_without_loading_it(void **state) {
  (void)state;
  env_t e;
  start(&e);
  for (int i = 0; i < 5; i++) pub_ok(&e, "a/x", "{\"k\":\"v\"}");
  env_run(&e);
  env_advance_ms(&e, 2000);
  assert_int_equal(stream_hub_sweep(e.hub), 1);
  json_t *got = json_array();
  stream_read_info_t info;
  assert_int_equal(stream_read(e.hub, "a/x", 0, 100, collect, got, &info), 0);
  assert_ev_seqs(got, "a/x", 1, 5);
  assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(got, 0), "data"), "k")), "v");
  assert_null(stream__topic_find(e.hub, "a/x"));
  json_decref(got);
  assert_int_equal(stream_read(e.hub, "a/none", 0, 10, collect, NULL, &info), -ENOENT);
  assert_int_equal(stream_read(e.hub, "bad", 0, 10, collect, NULL, &info), -EINVAL);
  assert_int_equal(stream_read(e.hub, "a/x", 0, 0, collect, NULL, &info), -EINVAL);
  env_stop(&e);
}

static int list_cb(void *ud, const stream_topic_info_t *t) {
  json_t *arr = ud;
  json_array_append_new(arr, json_pack("{s:s,s:I,s:I}", "topic", t->topic, "head", (json_int_t)t->head, "subs",
                                       (json_int_t)t->subscribers));
  return 0;
}

static void test_list_topics_shows_only_the_tenant_with_heads_and_subscribers(void **state) {
  (void)state;
  env_t e;
  start(&e);
  pub_ok(&e, "acme/a", "1");
  pub_ok(&e, "acme/a", "1");
  pub_ok(&e, "acme/b/c", "1");
  pub_ok(&e, "acme2/a", "1");
  env_run(&e);
  tconn_t t1, t2;
  tconn_any(&e, &t1);
  tconn_any(&e, &t2);
  sub_live(&t1, "acme/b/c");
  sub_live(&t2, "acme/b/c");
  json_t *got = json_array();
  assert_int_equal(stream_list_topics(e.hub, "acme", NULL, 0, list_cb, got), 0);
  assert_int_equal(json_array_size(got), 2);
  assert_string_equal(msg_s(json_array_get(got, 0), "topic"), "acme/a");
  assert_int_equal(msg_u(json_array_get(got, 0), "head"), 2);
  assert_int_equal(msg_u(json_array_get(got, 1), "subs"), 2);
  json_decref(got);
  assert_int_equal(stream_list_topics(e.hub, "ACME", NULL, 0, list_cb, NULL), -EINVAL);
  stream_conn_free(t1.c);
  stream_conn_free(t2.c);
  env_stop(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_read_returns_events_after_n_from_ring_and_store),
      cmocka_unit_test(test_read_reports_a_gap_when_the_range_is_gone),
      cmocka_unit_test(test_read_skips_events_past_the_age_rule_still_in_the_ring),
      cmocka_unit_test(test_read_of_an_evicted_topic_uses_the_store_without_loading_it),
      cmocka_unit_test(test_list_topics_shows_only_the_tenant_with_heads_and_subscribers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
