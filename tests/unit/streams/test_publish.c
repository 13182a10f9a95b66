/* Tests for streams/publish.c: validation, limits, dedupe, group commit, failures. */
#include <unistd.h>

#include "streams/helpers.h"

static uint64_t store_head(env_t *e, const char *topic) {
  store_topic_t st;
  if (store_topic_get(e->store, topic, &st) < 0) return 0;
  return st.head_seq;
}

static void test_publish_calls_back_only_after_commit_never_synchronously(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  env_start(&e);
  ack_rec_t a = {0}, b = {0};
  assert_int_equal(pub_full(&e, "acme/r", NULL, "t", STREAM_LANE_DATA, "{\"x\":1}", &a), 0);
  assert_int_equal(pub_full(&e, "acme/r", NULL, "t", STREAM_LANE_CONTROL, "2", &b), 0);
  assert_int_equal(a.calls, 0);
  assert_int_equal(store_head(&e, "acme/r"), 0); /* not durable yet */
  assert_int_equal(stream_hub_stats(e.hub)->pending, 2);
  env_run(&e);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.status, 0);
  assert_int_equal(a.seq, 1);
  assert_int_equal(b.seq, 2);
  assert_false(a.duplicate);
  assert_int_equal(strlen(a.epoch), STORE_EPOCH_LEN);
  assert_int_equal(store_head(&e, "acme/r"), 2);
  const stream_stats_t *st = stream_hub_stats(e.hub);
  assert_int_equal(st->pending, 0);
  assert_int_equal(st->published[STREAM_LANE_DATA], 1);
  assert_int_equal(st->published[STREAM_LANE_CONTROL], 1);
  assert_int_equal(st->publish_to_durable_us.count, 2);
  assert_int_equal(st->commit_batch_events.count, 1);
  env_stop(&e);
}

static void test_frames_of_a_commit_carry_the_hub_clock_of_their_durability(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  env_start(&e);
  tconn_t t;
  tconn_any(&e, &t);
  sub_live(&t, "acme/r");
  json_decref(drain_all(&t)); /* subscribed */
  assert_int_equal(stream_hub_now_us(e.hub), e.clock.mono_us);
  pub_ok(&e, "acme/r", "1");
  uint64_t committed_at = e.clock.mono_us + 1234;
  e.clock.mono_us = committed_at;
  env_run(&e);
  stream_frame_t *f[4];
  assert_int_equal(stream_conn_pull(t.c, f, 4, 1 << 20), 1);
  assert_int_equal(stream_frame_seq(f[0]), 1);
  assert_int_equal(stream_frame_durable_us(f[0]), committed_at);
  stream_frame_unref(&f[0]);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_publish_assigns_dense_seqs_per_topic(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  env_start(&e);
  ack_rec_t r[6] = {0};
  const char *topics[] = {"a/x", "a/y", "a/x", "b/x", "a/y", "a/x"};
  for (int i = 0; i < 6; i++) assert_int_equal(pub_full(&e, topics[i], NULL, NULL, STREAM_LANE_DATA, "1", &r[i]), 0);
  env_run(&e);
  uint64_t want[] = {1, 1, 2, 1, 2, 3};
  for (int i = 0; i < 6; i++) assert_int_equal(r[i].seq, want[i]);
  env_stop(&e);
}

static int read_one(void *ud, const store_event_t *ev) {
  struct {
    int n;
    int lane;
    char type[16];
    char data[64];
  } *g = ud;
  g->n++;
  g->lane = ev->lane;
  snprintf(g->type, sizeof g->type, "%s", ev->type ? ev->type : "");
  snprintf(g->data, sizeof g->data, "%.*s", (int)ev->data_len, ev->data);
  return 0;
}

static void test_publish_stored_event_keeps_id_type_lane_and_data(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  env_start(&e);
  assert_int_equal(pub_full(&e, "a/x", "evt-1", "token", STREAM_LANE_CONTROL, " { \"k\" : [1, 2] } ", NULL), 0);
  env_run(&e);
  store_topic_t st;
  assert_int_equal(store_topic_get(e.store, "a/x", &st), 0);
  uint64_t seq = 0;
  assert_int_equal(store_dedupe_find(e.store, st.topic_id, "evt-1", 0, &seq), 0);
  assert_int_equal(seq, 1);
  struct {
    int n;
    int lane;
    char type[16];
    char data[64];
  } got = {0};
  assert_int_equal(store_read(e.store, st.topic_id, 0, 0, read_one, &got), 0);
  assert_int_equal(got.n, 1);
  assert_int_equal(got.lane, STREAM_LANE_CONTROL);
  assert_string_equal(got.type, "token");
  assert_string_equal(got.data, "{\"k\":[1,2]}"); /* normalized once, compactly */
  env_stop(&e);
}

static void test_publish_duplicate_id_returns_original_seq_and_publishes_nothing(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  env_start(&e);
  ack_rec_t a = {0}, b = {0}, c = {0}, d = {0};
  assert_int_equal(pub_full(&e, "a/x", "k1", NULL, STREAM_LANE_DATA, "1", &a), 0);
  assert_int_equal(pub_full(&e, "a/x", "k1", NULL, STREAM_LANE_DATA, "2", &b), 0); /* dup of a pending one */
  env_run(&e);
  assert_int_equal(a.seq, 1);
  assert_false(a.duplicate);
  assert_int_equal(b.calls, 1);
  assert_int_equal(b.seq, 1);
  assert_true(b.duplicate);
  assert_int_equal(pub_full(&e, "a/x", "k1", NULL, STREAM_LANE_DATA, "3", &c), 0); /* dup of a committed one */
  assert_int_equal(c.calls, 0);
  assert_int_equal(pub_full(&e, "a/x", "k2", NULL, STREAM_LANE_DATA, "4", &d), 0);
  env_run(&e);
  assert_int_equal(c.seq, 1);
  assert_true(c.duplicate);
  assert_int_equal(d.seq, 2);
  assert_int_equal(store_head(&e, "a/x"), 2);
  assert_int_equal(stream_hub_stats(e.hub)->duplicates, 2);
  /* The same id on another topic is another event. */
  ack_rec_t o = {0};
  assert_int_equal(pub_full(&e, "a/y", "k1", NULL, STREAM_LANE_DATA, "1", &o), 0);
  env_run(&e);
  assert_false(o.duplicate);
  env_stop(&e);
}

static void test_publish_dedupe_window_expires_and_survives_topic_reload(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.dedupe_window_s = 10;
  e.cfg.idle_topic_s = 1;
  e.cfg.topic_publish_rate = 0;
  e.cfg.publish_rate = 0;
  env_start(&e);
  ack_rec_t a = {0}, b = {0}, c = {0};
  assert_int_equal(pub_full(&e, "a/x", "k", NULL, STREAM_LANE_DATA, "1", &a), 0);
  env_run(&e);
  env_advance_ms(&e, 2000);
  assert_int_equal(stream_hub_sweep(e.hub), 1); /* evicted: the table comes back from the store */
  assert_null(stream__topic_find(e.hub, "a/x"));
  assert_int_equal(pub_full(&e, "a/x", "k", NULL, STREAM_LANE_DATA, "1", &b), 0);
  env_run(&e);
  assert_true(b.duplicate);
  assert_int_equal(b.seq, 1);
  env_advance_ms(&e, 9000); /* 11 s after the first: outside the window */
  assert_int_equal(pub_full(&e, "a/x", "k", NULL, STREAM_LANE_DATA, "1", &c), 0);
  env_run(&e);
  assert_false(c.duplicate);
  assert_int_equal(c.seq, 2);
  env_stop(&e);
}

static void test_publish_rejects_bad_input_with_the_field_named(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.max_event_bytes = 100;
  e.cfg.max_json_depth = 4;
  env_start(&e);
  stream_err_t err;
  char big[200];
  memset(big, 'x', sizeof big);
  big[0] = '"';
  big[198] = '"';
  big[199] = 0;
  struct {
    const char *topic;
    stream_event_t ev;
    int rc;
    const char *part;
  } cases[] = {
      {"nope", {.lane = 1}, -EINVAL, "topic:"},
      {"a/x", {.lane = 7}, -EINVAL, "lane:"},
      {"a/x", {.lane = 1, .data = "{bad", .data_len = 4}, -EINVAL, "data: invalid JSON"},
      {"a/x", {.lane = 1, .data = "[[[[[1]]]]]", .data_len = 11}, -EINVAL, "data: nested deeper"},
      {"a/x", {.lane = 1, .data = big, .data_len = 199}, -EMSGSIZE, "data:"},
      {"a/x", {.lane = 1, .id = ""}, -EINVAL, "id:"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = stream_publish(e.hub, cases[i].topic, &cases[i].ev, NULL, NULL, NULL, &err);
    if (rc != cases[i].rc) fail_msg("case %zu: rc %d want %d", i, rc, cases[i].rc);
    if (!strstr(err.message, cases[i].part)) fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.message, cases[i].part);
  }
  env_run(&e);
  assert_int_equal(stream_hub_stats(e.hub)->published[STREAM_LANE_DATA], 0);
  env_stop(&e);
}

static void test_publish_rate_limits_a_tenant_without_slowing_others(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.publish_rate = 10;
  e.cfg.publish_burst = 3;
  e.cfg.topic_publish_rate = 0;
  env_start(&e);
  stream_err_t err;
  stream_event_t ev = {.lane = STREAM_LANE_DATA};
  for (int i = 0; i < 3; i++) assert_int_equal(stream_publish(e.hub, "slow/a", &ev, NULL, NULL, NULL, &err), 0);
  assert_int_equal(stream_publish(e.hub, "slow/b", &ev, NULL, NULL, NULL, &err), -EAGAIN);
  assert_int_equal(err.retry_after_ms, 100);
  assert_non_null(strstr(err.message, "tenant"));
  for (int i = 0; i < 3; i++) assert_int_equal(stream_publish(e.hub, "fast/a", &ev, NULL, NULL, NULL, &err), 0);
  env_advance_ms(&e, 100);
  assert_int_equal(stream_publish(e.hub, "slow/a", &ev, NULL, NULL, NULL, &err), 0);
  assert_int_equal(stream_hub_stats(e.hub)->rate_limited, 1);
  env_run(&e);
  env_stop(&e);
}

static void test_publish_rate_limits_a_topic_without_spending_the_tenant(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.publish_rate = 100;
  e.cfg.publish_burst = 3;
  e.cfg.topic_publish_rate = 1;
  e.cfg.topic_publish_burst = 1;
  env_start(&e);
  stream_err_t err;
  stream_event_t ev = {.lane = STREAM_LANE_DATA};
  assert_int_equal(stream_publish(e.hub, "t/a", &ev, NULL, NULL, NULL, &err), 0);
  assert_int_equal(stream_publish(e.hub, "t/a", &ev, NULL, NULL, NULL, &err), -EAGAIN);
  assert_int_equal(err.retry_after_ms, 1000);
  assert_non_null(strstr(err.message, "topic"));
  /* The refused publish did not cost the tenant a token: two more fit on other topics. */
  assert_int_equal(stream_publish(e.hub, "t/b", &ev, NULL, NULL, NULL, &err), 0);
  assert_int_equal(stream_publish(e.hub, "t/c", &ev, NULL, NULL, NULL, &err), 0);
  assert_int_equal(stream_publish(e.hub, "t/d", &ev, NULL, NULL, NULL, &err), -EAGAIN);
  env_run(&e);
  env_stop(&e);
}

static void test_publish_sheds_past_the_overload_bytes_too(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.overload_bytes = 16 * 1024; /* the count threshold stays at its default */
  env_start(&e);
  stream_err_t err;
  char big[4096 + 3];
  big[0] = '"';
  memset(big + 1, 'x', 4096);
  big[4097] = '"';
  big[4098] = '\0';
  stream_event_t ev = {.lane = STREAM_LANE_DATA, .data = big, .data_len = strlen(big)};
  int accepted = 0;
  while (stream_publish(e.hub, "a/x", &ev, NULL, NULL, NULL, &err) == 0) accepted++;
  /* about 16 KiB of 4 KiB events: 4 frames or a little fewer (each has its headers) */
  assert_true(accepted >= 3 && accepted <= 4);
  assert_int_equal(stream_publish(e.hub, "a/y", &ev, NULL, NULL, NULL, &err), -EBUSY);
  assert_true(err.retry_after_ms > 0);
  assert_true(stream_hub_overloaded(e.hub));
  assert_true(stream_hub_stats(e.hub)->pending_bytes >= 16 * 1024);
  /* ephemerals are not queued for the commit: never shed for it */
  stream_event_t eph = {.lane = STREAM_LANE_EPHEMERAL, .data = big, .data_len = strlen(big)};
  assert_int_equal(stream_publish(e.hub, "a/x", &eph, NULL, NULL, NULL, &err), 0);
  env_run(&e);
  assert_int_equal(stream_hub_stats(e.hub)->pending_bytes, 0);
  assert_false(stream_hub_overloaded(e.hub));
  assert_int_equal(stream_publish(e.hub, "a/y", &ev, NULL, NULL, NULL, &err), 0);
  env_run(&e);
  env_stop(&e);
}

static void test_publish_sheds_with_ebusy_past_the_overload_threshold(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.overload_threshold = 5;
  env_start(&e);
  stream_err_t err;
  stream_event_t ev = {.lane = STREAM_LANE_DATA};
  for (int i = 0; i < 5; i++) assert_int_equal(stream_publish(e.hub, "a/x", &ev, NULL, NULL, NULL, &err), 0);
  assert_true(stream_hub_overloaded(e.hub));
  assert_int_equal(stream_publish(e.hub, "a/y", &ev, NULL, NULL, NULL, &err), -EBUSY);
  assert_true(err.retry_after_ms > 0);
  assert_int_equal(stream_hub_stats(e.hub)->overloaded, 1);
  env_run(&e);
  assert_false(stream_hub_overloaded(e.hub));
  assert_int_equal(stream_publish(e.hub, "a/y", &ev, NULL, NULL, NULL, &err), 0);
  env_run(&e);
  env_stop(&e);
}

static void test_publish_commits_in_bounded_batches(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  e.cfg.commit_batch_max = 10;
  e.cfg.topic_publish_rate = 0;
  env_start(&e);
  ack_rec_t last = {0};
  for (int i = 0; i < 34; i++) pub_ok(&e, i % 2 ? "a/x" : "a/y", "1");
  assert_int_equal(pub_full(&e, "a/z", NULL, NULL, STREAM_LANE_DATA, "1", &last), 0);
  env_run(&e);
  const stream_stats_t *st = stream_hub_stats(e.hub);
  assert_int_equal(st->commit_batch_events.count, 4);
  assert_int_equal(st->commit_batch_events.sum_us, 35); /* the "us" sum holds event counts here */
  assert_int_equal(last.status, 0);
  assert_int_equal(store_head(&e, "a/x"), 17);
  assert_int_equal(store_head(&e, "a/y"), 17);
  env_stop(&e);
}

static void test_commit_failure_fails_the_batch_and_rewinds_seq(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  env_start(&e);
  ack_rec_t x1 = {0}, x2 = {0}, y1 = {0};
  assert_int_equal(pub_full(&e, "a/x", "idx", NULL, STREAM_LANE_DATA, "1", &x1), 0);
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "2", &x2), 0);
  assert_int_equal(pub_full(&e, "a/y", NULL, NULL, STREAM_LANE_DATA, "3", &y1), 0);
  /* Another writer takes seq 1 of a/x behind the hub's back: the batch append fails. */
  store_topic_t st;
  assert_int_equal(store_topic_ensure(e.store, "a/x", &st), 0);
  store_event_t other = {.topic_id = st.topic_id, .seq = 1, .ts_ms = e.clock.wall_ms, .lane = 1, .data = "0", .data_len = 1};
  assert_int_equal(store_batch_begin(e.store), 0);
  assert_int_equal(store_batch_append(e.store, &other), 0);
  assert_int_equal(store_batch_commit(e.store), 0);
  env_run(&e);
  assert_int_equal(x1.status, -EIO);
  assert_int_equal(x2.status, -EIO);
  assert_int_equal(y1.status, -EIO); /* same store batch */
  assert_int_equal(stream_hub_stats(e.hub)->commit_failures, 1);
  assert_int_equal(stream_hub_stats(e.hub)->pending, 0);
  assert_int_equal(store_head(&e, "a/y"), 0);
  /* No seq skipped: a/y starts at 1 again, a/x continues after the store's head. */
  ack_rec_t x3 = {0}, y2 = {0}, again = {0};
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "4", &x3), 0);
  assert_int_equal(pub_full(&e, "a/y", NULL, NULL, STREAM_LANE_DATA, "5", &y2), 0);
  assert_int_equal(pub_full(&e, "a/x", "idx", NULL, STREAM_LANE_DATA, "6", &again), 0);
  env_run(&e);
  assert_int_equal(x3.status, 0);
  assert_int_equal(x3.seq, 2);
  assert_int_equal(y2.seq, 1);
  assert_false(again.duplicate); /* the failed event's id was forgotten */
  assert_int_equal(again.seq, 3);
  /* A reader sees the other writer's event from the store, then the hub's. */
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/x", NULL, 0);
  json_t *m = drain_all(&t);
  assert_ev_seqs(m, "a/x", 1, 3);
  json_decref(m);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_cancelled_callback_does_not_fire_but_the_event_is_published(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  env_start(&e);
  ack_rec_t a = {0};
  stream_event_t ev = {.lane = STREAM_LANE_DATA, .data = "1", .data_len = 1};
  stream_pub_t *h = NULL;
  stream_err_t err;
  assert_int_equal(stream_publish(e.hub, "a/x", &ev, ack_cb, &a, &h, &err), 0);
  assert_non_null(h);
  stream_publish_cancel(h);
  env_run(&e);
  assert_int_equal(a.calls, 0);
  assert_int_equal(store_head(&e, "a/x"), 1);
  env_stop(&e);
}

static void test_ephemeral_to_a_topic_without_subscribers_is_dropped_at_ingress(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  env_start(&e);
  ack_rec_t a = {0};
  assert_int_equal(pub_full(&e, "a/x", NULL, "typing", STREAM_LANE_EPHEMERAL, "1", &a), 0);
  assert_int_equal(a.calls, 0);
  env_run(&e);
  assert_int_equal(a.calls, 1);
  assert_true(a.ephemeral);
  assert_int_equal(a.seq, 0);
  assert_int_equal(stream_hub_stats(e.hub)->ephemeral_ingress_drops, 1);
  assert_int_equal(stream_hub_stats(e.hub)->frames, 0);
  assert_int_equal(store_head(&e, "a/x"), 0);
  env_stop(&e);
}

static void test_drain_commits_pending_then_refuses_publishes(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  env_start(&e);
  ack_rec_t a = {0};
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "1", &a), 0);
  stream_hub_drain(e.hub);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.status, 0);
  assert_int_equal(store_head(&e, "a/x"), 1);
  stream_err_t err;
  stream_event_t ev = {.lane = STREAM_LANE_DATA};
  assert_int_equal(stream_publish(e.hub, "a/x", &ev, NULL, NULL, NULL, &err), -ESHUTDOWN);
  env_run(&e);
  env_stop(&e);
}

static void test_closing_the_hub_cancels_pending_callbacks(void **state) {
  (void)state;
  env_t e;
  env_config(&e);
  env_start(&e);
  ack_rec_t a = {0};
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_DATA, "1", &a), 0);
  env_stop_hub(&e);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.status, -ECANCELED);
  env_stop(&e);
}

static void test_seq_stays_dense_across_a_restart_on_sqlite(void **state) {
  (void)state;
  char dir[512], path[600];
  test_dir_make(dir, path);
  char epoch[STORE_EPOCH_LEN + 1];
  for (int round = 0; round < 2; round++) {
    env_t e;
    env_config(&e);
    store_t *s;
    store_options_t so = {.path = path};
    assert_int_equal(store_open_sqlite(&so, &s), 0);
    env_start_with(&e, s);
    ack_rec_t r[3] = {0};
    for (int i = 0; i < 3; i++) assert_int_equal(pub_full(&e, "acme/r", NULL, NULL, STREAM_LANE_DATA, "1", &r[i]), 0);
    env_run(&e);
    for (int i = 0; i < 3; i++) assert_int_equal(r[i].seq, (uint64_t)(round * 3 + i + 1));
    if (round == 0) memcpy(epoch, r[0].epoch, sizeof epoch);
    else assert_string_equal(epoch, r[0].epoch);
    env_stop(&e);
  }
  test_dir_remove(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_publish_calls_back_only_after_commit_never_synchronously),
      cmocka_unit_test(test_publish_assigns_dense_seqs_per_topic),
      cmocka_unit_test(test_publish_stored_event_keeps_id_type_lane_and_data),
      cmocka_unit_test(test_publish_duplicate_id_returns_original_seq_and_publishes_nothing),
      cmocka_unit_test(test_publish_dedupe_window_expires_and_survives_topic_reload),
      cmocka_unit_test(test_publish_rejects_bad_input_with_the_field_named),
      cmocka_unit_test(test_publish_rate_limits_a_tenant_without_slowing_others),
      cmocka_unit_test(test_publish_rate_limits_a_topic_without_spending_the_tenant),
      cmocka_unit_test(test_publish_sheds_with_ebusy_past_the_overload_threshold),
      cmocka_unit_test(test_publish_sheds_past_the_overload_bytes_too),
      cmocka_unit_test(test_publish_commits_in_bounded_batches),
      cmocka_unit_test(test_commit_failure_fails_the_batch_and_rewinds_seq),
      cmocka_unit_test(test_cancelled_callback_does_not_fire_but_the_event_is_published),
      cmocka_unit_test(test_ephemeral_to_a_topic_without_subscribers_is_dropped_at_ingress),
      cmocka_unit_test(test_drain_commits_pending_then_refuses_publishes),
      cmocka_unit_test(test_closing_the_hub_cancels_pending_callbacks),
      cmocka_unit_test(test_seq_stays_dense_across_a_restart_on_sqlite),
      cmocka_unit_test(test_frames_of_a_commit_carry_the_hub_clock_of_their_durability),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
