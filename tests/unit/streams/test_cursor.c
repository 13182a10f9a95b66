/* Tests for streams/cursor.c (with conn.c and router.c): positions, replay from ring and
 * store, gaps, ordering, fairness, budgets, ephemerals and memory bounds. */
#include "streams/helpers.h"

static void publish_n(env_t *e, const char *topic, int n) {
  for (int i = 0; i < n; i++) pub_ok(e, topic, "{\"v\":1}");
  env_run(e);
}

static env_t *start(env_t *e) {
  env_config(e);
  e->cfg.publish_rate = 0;
  e->cfg.topic_publish_rate = 0;
  return e;
}

static void test_live_subscription_gets_subscribed_then_only_new_events(void **state) {
  (void)state;
  env_t e;
  start(&e);
  env_start(&e);
  publish_n(&e, "a/x", 2);
  tconn_t t;
  tconn_any(&e, &t);
  sub_live(&t, "a/x");
  publish_n(&e, "a/x", 2);
  assert_true(t.wakes >= 1);
  json_t *m = drain_all(&t);
  assert_string_equal(msg_op(json_array_get(m, 0)), "subscribed");
  assert_int_equal(msg_u(json_array_get(m, 0), "head"), 2);
  assert_ev_seqs(m, "a/x", 3, 4);
  assert_int_equal(json_array_size(m), 3);
  json_decref(m);
  assert_int_equal(stream_conn_lag(t.c), 0);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_after_zero_replays_everything_retained_then_live(void **state) {
  (void)state;
  env_t e;
  start(&e);
  env_start(&e);
  publish_n(&e, "a/x", 5);
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/x", NULL, 0);
  assert_int_equal(stream_conn_lag(t.c), 5);
  publish_n(&e, "a/x", 1);
  json_t *m = drain_all(&t);
  assert_ev_seqs(m, "a/x", 1, 6);
  json_decref(m);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_resume_after_n_in_the_same_epoch_continues_at_n_plus_one(void **state) {
  (void)state;
  env_t e;
  start(&e);
  env_start(&e);
  publish_n(&e, "a/x", 5);
  stream_topic_t *tp = stream__topic_find(e.hub, "a/x");
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/x", tp->epoch, 3);
  json_t *m = drain_all(&t);
  assert_ev_seqs(m, "a/x", 4, 5);
  assert_int_equal(count_op(m, "gap"), 0);
  json_decref(m);
  stream_position_t beyond = {.seq = 9};
  stream_err_t err;
  assert_int_equal(stream_conn_subscribe(t.c, "a/x", &beyond, &err), -EINVAL);
  assert_non_null(strstr(err.message, "after.seq"));
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_cursor_behind_the_ring_catches_up_from_the_store(void **state) {
  (void)state;
  env_t e;
  start(&e);
  e.cfg.ring_size = 4;
  e.cfg.catchup_batch = 5;
  env_start(&e);
  publish_n(&e, "a/x", 40);
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/x", NULL, 0);
  json_t *m = drain_all(&t);
  assert_ev_seqs(m, "a/x", 1, 40);
  assert_int_equal(count_op(m, "gap"), 0);
  json_decref(m);
  assert_true(stream_hub_stats(e.hub)->store_catchup_reads >= 36 / 5);
  stream_conn_free(t.c);
  env_stop(&e);
}

/* Drains t and checks what a cursor behind retention gets: "subscribed", one gap from
 * gap_from (0 = not checked) to gap_to for reason "retention", then events gap_to+1..last. */
static void assert_retention_gap_then_events(tconn_t *t, const char *topic, uint64_t gap_from,
                                             uint64_t gap_to, uint64_t last) {
  json_t *m = drain_all(t);
  json_t *g = json_array_get(m, 1);
  assert_string_equal(msg_op(g), "gap");
  if (gap_from) assert_int_equal(msg_u(g, "from"), gap_from);
  assert_int_equal(msg_u(g, "to"), gap_to);
  assert_string_equal(msg_s(g, "reason"), "retention");
  assert_ev_seqs(m, topic, gap_to + 1, last);
  json_decref(m);
}

/* A topic nobody reads keeps only its newest STREAM_RING_QUIET frames in memory; with a
 * subscriber its ring grows to ring_size, and back to the few once the last one leaves.
 * A reader that comes later still gets every event, the older ones from the store. */
static void test_a_topic_without_subscribers_keeps_only_its_newest_frames(void **state) {
  (void)state;
  env_t e;
  start(&e);
  e.cfg.ring_size = 128;
  env_start(&e);
  publish_n(&e, "a/x", 50);
  stream_topic_t *tp = stream__topic_find(e.hub, "a/x");
  assert_int_equal(tp->ring.count, STREAM_RING_QUIET);
  assert_int_equal(tp->ring.lo, 50 - STREAM_RING_QUIET + 1);
  assert_int_equal(stream_hub_stats(e.hub)->frames, STREAM_RING_QUIET);
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/x", NULL, 0);
  uint64_t reads = stream_hub_stats(e.hub)->store_catchup_reads;
  publish_n(&e, "a/x", 50);
  assert_int_equal(tp->ring.count, 50 + STREAM_RING_QUIET);
  json_t *m = drain_all(&t);
  assert_ev_seqs(m, "a/x", 1, 100);
  assert_int_equal(count_op(m, "gap"), 0);
  json_decref(m);
  assert_true(stream_hub_stats(e.hub)->store_catchup_reads > reads); /* seqs 1..34 */
  assert_int_equal(stream_conn_unsubscribe(t.c, "a/x"), 0);
  publish_n(&e, "a/x", 1);
  assert_int_equal(tp->ring.count, STREAM_RING_QUIET);
  assert_int_equal(tp->ring.lo, 101 - STREAM_RING_QUIET + 1);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_cursor_behind_retention_gets_a_gap_then_continues(void **state) {
  (void)state;
  env_t e;
  start(&e);
  e.cfg.retention_max_events = 5;
  env_start(&e);
  publish_n(&e, "a/x", 20);
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/x", NULL, 0);
  assert_retention_gap_then_events(&t, "a/x", 1, 15, 20);
  assert_int_equal(stream_hub_stats(e.hub)->gaps_sent, 1);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_store_retention_discovered_during_catch_up_yields_a_gap(void **state) {
  (void)state;
  env_t e;
  start(&e);
  e.cfg.retention_max_events = 0; /* only the store knows what it deleted */
  e.cfg.ring_size = 2;
  env_start(&e);
  publish_n(&e, "a/x", 20);
  bool more = true;
  while (more) assert_int_equal(store_retention_run(e.store, 5, 0, 0, 1000, &more), 0);
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/x", NULL, 0);
  assert_retention_gap_then_events(&t, "a/x", 1, 15, 20);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_ring_entries_past_the_age_limit_are_gone(void **state) {
  (void)state;
  env_t e;
  start(&e);
  e.cfg.retention_max_age_s = 10;
  env_start(&e);
  publish_n(&e, "a/x", 3);
  env_advance_ms(&e, 11000);
  publish_n(&e, "a/x", 2);
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/x", NULL, 0);
  assert_retention_gap_then_events(&t, "a/x", 1, 3, 5);
  stream_conn_free(t.c);
  env_stop(&e);
}

/* Aged events the store still holds (no retention slice ran) are a gap too, as in the ring:
 * never delivered, and never after a gap that names newer ones. */
static void test_store_events_past_the_age_limit_are_a_gap_too(void **state) {
  (void)state;
  env_t e;
  start(&e);
  e.cfg.ring_size = 4;
  e.cfg.retention_max_age_s = 10;
  env_start(&e);
  publish_n(&e, "a/x", 10); /* the ring keeps 7..10; the store all ten */
  env_advance_ms(&e, 11000);
  publish_n(&e, "a/x", 3); /* 11..13, fresh */
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/x", NULL, 0);
  json_t *m = drain_all(&t);
  uint64_t next = 1;
  size_t i;
  json_t *msg;
  json_array_foreach(m, i, msg) {
    const char *op = json_string_value(json_object_get(msg, "op"));
    if (strcmp(op, "subscribed") == 0) continue;
    if (strcmp(op, "gap") == 0) {
      assert_int_equal(json_integer_value(json_object_get(msg, "from")), next);
      next = (uint64_t)json_integer_value(json_object_get(msg, "to")) + 1;
      assert_true(next <= 11);
      continue;
    }
    assert_string_equal(op, "ev");
    assert_int_equal(json_integer_value(json_object_get(msg, "seq")), next);
    assert_true(next >= 11); /* nothing aged is delivered */
    next++;
  }
  assert_int_equal(next, 14);
  json_decref(m);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_durable_to_pull_counts_each_event_once_with_its_own_commit_latency(void **state) {
  (void)state;
  env_t e;
  start(&e);
  env_start(&e);
  tconn_t t;
  tconn_any(&e, &t);
  sub_live(&t, "a/x");
  json_decref(drain_all(&t)); /* "subscribed" */
  publish_n(&e, "a/x", 3); /* one commit */
  env_advance_ms(&e, 2);
  publish_n(&e, "a/x", 2); /* a second commit, 2 ms later */
  env_advance_ms(&e, 5);
  const base_hist_t *h = &stream_hub_stats(e.hub)->durable_to_pull_us;
  uint64_t count0 = h->count, sum0 = h->sum_us;
  json_t *m = drain_all(&t);
  assert_ev_seqs(m, "a/x", 1, 5);
  json_decref(m);
  assert_int_equal(h->count - count0, 5);
  assert_int_equal(h->sum_us - sum0, 3 * 7000 + 2 * 5000);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_epoch_mismatch_yields_current_epoch_and_an_epoch_gap_then_replay(void **state) {
  (void)state;
  env_t e;
  start(&e);
  env_start(&e);
  publish_n(&e, "a/x", 3);
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/x", "0123456789abcdef", 40);
  json_t *m = drain_all(&t);
  json_t *s = json_array_get(m, 0), *g = json_array_get(m, 1);
  assert_string_equal(msg_op(s), "subscribed");
  assert_string_equal(msg_s(s, "epoch"), stream__topic_find(e.hub, "a/x")->epoch);
  assert_string_equal(msg_op(g), "gap");
  assert_string_equal(msg_s(g, "reason"), "epoch");
  assert_int_equal(msg_u(g, "from"), 1);
  assert_int_equal(msg_u(g, "to"), 0); /* nothing of the current epoch is missing */
  assert_ev_seqs(m, "a/x", 1, 3);
  json_decref(m);
  stream_conn_free(t.c);
  env_stop(&e);
}

/* A seq beyond the head is an error, unless the position says it may be another epoch's
 * (SSE's Last-Event-ID): then it is an epoch mismatch. */
static void test_a_seq_beyond_the_head_is_an_error_or_another_epoch(void **state) {
  (void)state;
  env_t e;
  start(&e);
  env_start(&e);
  publish_n(&e, "a/x", 3);
  tconn_t t;
  tconn_any(&e, &t);
  stream_position_t pos = {.seq = 900};
  stream_err_t err;
  assert_int_equal(stream_conn_subscribe(t.c, "a/x", &pos, &err), -EINVAL);
  assert_non_null(strstr(err.message, "beyond the head"));
  pos.beyond_is_epoch = true;
  assert_int_equal(stream_conn_subscribe(t.c, "a/x", &pos, &err), 0);
  json_t *m = drain_all(&t);
  json_t *s = json_array_get(m, 0), *g = json_array_get(m, 1);
  assert_string_equal(msg_op(s), "subscribed");
  assert_string_equal(msg_op(g), "gap");
  assert_string_equal(msg_s(g, "reason"), "epoch");
  assert_ev_seqs(m, "a/x", 1, 3);
  json_decref(m);
  /* within the head the flag changes nothing */
  pos.seq = 2;
  assert_int_equal(stream_conn_subscribe(t.c, "a/x", &pos, &err), 0);
  m = drain_all(&t);
  assert_string_equal(msg_op(json_array_get(m, 0)), "subscribed");
  assert_ev_seqs(m, "a/x", 3, 3);
  json_decref(m);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_pull_sends_control_before_data(void **state) {
  (void)state;
  env_t e;
  start(&e);
  env_start(&e);
  publish_n(&e, "a/data", 5);
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/data", NULL, 0);
  sub_live(&t, "a/ctl");
  json_decref(pull_json(&t, 2, 1 << 20, NULL)); /* the two "subscribed" */
  assert_int_equal(pub_full(&e, "a/ctl", NULL, "step", STREAM_LANE_CONTROL, "1", NULL), 0);
  env_run(&e);
  const char *ping = "{\"op\":\"ping\",\"ref\":\"p\"}";
  assert_int_equal(stream_conn_handle_message(t.c, ping, strlen(ping)), 0);
  json_t *m = pull_json(&t, 3, 1 << 20, NULL);
  assert_string_equal(msg_op(json_array_get(m, 0)), "pong");
  assert_string_equal(msg_s(json_array_get(m, 1), "topic"), "a/ctl"); /* control lane next */
  assert_string_equal(msg_s(json_array_get(m, 1), "lane"), "control");
  assert_string_equal(msg_s(json_array_get(m, 2), "topic"), "a/data");
  assert_int_equal(msg_u(json_array_get(m, 2), "seq"), 1);
  json_decref(m);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_control_lane_event_never_overtakes_earlier_events_of_its_topic(void **state) {
  (void)state;
  env_t e;
  start(&e);
  env_start(&e);
  publish_n(&e, "a/x", 3);
  assert_int_equal(pub_full(&e, "a/x", NULL, NULL, STREAM_LANE_CONTROL, "1", NULL), 0);
  env_run(&e);
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/x", NULL, 0);
  json_t *m = drain_all(&t);
  assert_ev_seqs(m, "a/x", 1, 4);
  json_decref(m);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_pull_is_round_robin_across_subscriptions(void **state) {
  (void)state;
  env_t e;
  start(&e);
  e.cfg.pull_quantum = 4;
  env_start(&e);
  const char *topics[] = {"a/1", "a/2", "a/3"};
  tconn_t t;
  tconn_any(&e, &t);
  for (int i = 0; i < 3; i++) sub_live(&t, topics[i]);
  json_decref(pull_json(&t, 64, 1 << 20, NULL));
  for (int i = 0; i < 3; i++) publish_n(&e, topics[i], 50);
  for (int round = 0; round < 3; round++) {
    json_t *m = pull_json(&t, 12, 1 << 20, NULL);
    assert_int_equal(json_array_size(m), 12);
    for (int i = 0; i < 3; i++) {
      size_t k, n = 0;
      json_t *x;
      json_array_foreach(m, k, x) if (strcmp(msg_s(x, "topic"), topics[i]) == 0) n++;
      assert_int_equal(n, 4);
    }
    json_decref(m);
  }
  /* A budget smaller than a round still rotates: 5 pulls of 4 frames visit all three. */
  int seen[3] = {0};
  for (int k = 0; k < 3; k++) {
    json_t *m = pull_json(&t, 4, 1 << 20, NULL);
    for (int i = 0; i < 3; i++)
      if (strcmp(msg_s(json_array_get(m, 0), "topic"), topics[i]) == 0) seen[i]++;
    json_decref(m);
  }
  assert_int_equal(seen[0] + seen[1] + seen[2], 3);
  assert_true(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_pull_respects_the_byte_budget_but_always_makes_progress(void **state) {
  (void)state;
  env_t e;
  start(&e);
  env_start(&e);
  publish_n(&e, "a/x", 10);
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/x", NULL, 0);
  json_decref(pull_json(&t, 1, 1 << 20, NULL)); /* subscribed */
  size_t one = stream__ring_get(&stream__topic_find(e.hub, "a/x")->ring, 1)->len;
  stream_frame_t *frames[16];
  int n = stream_conn_pull(t.c, frames, 16, one * 3 + one / 2);
  assert_int_equal(n, 3);
  for (int i = 0; i < n; i++) stream_frame_unref(&frames[i]);
  n = stream_conn_pull(t.c, frames, 16, 1); /* smaller than one frame: still one */
  assert_int_equal(n, 1);
  assert_int_equal(stream_frame_seq(frames[0]), 4);
  stream_frame_unref(&frames[0]);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_ephemerals_coalesce_latest_wins_per_type(void **state) {
  (void)state;
  env_t e;
  start(&e);
  env_start(&e);
  tconn_t t;
  tconn_live(&e, &t, "a/x");
  assert_int_equal(pub_full(&e, "a/x", NULL, "typing", STREAM_LANE_EPHEMERAL, "1", NULL), 0);
  assert_int_equal(pub_full(&e, "a/x", NULL, "typing", STREAM_LANE_EPHEMERAL, "2", NULL), 0);
  assert_int_equal(pub_full(&e, "a/x", NULL, "progress", STREAM_LANE_EPHEMERAL, "9", NULL), 0);
  env_run(&e);
  assert_int_equal(pub_full(&e, "a/x", NULL, "typing", STREAM_LANE_EPHEMERAL, "3", NULL), 0);
  env_run(&e);
  json_t *m = drain_all(&t);
  assert_int_equal(json_array_size(m), 2);
  size_t i;
  json_t *x;
  json_array_foreach(m, i, x) {
    assert_null(json_object_get(x, "seq"));
    assert_string_equal(msg_s(x, "lane"), "ephemeral");
    if (strcmp(msg_s(x, "type"), "typing") == 0) assert_int_equal(json_integer_value(json_object_get(x, "data")), 3);
    else assert_int_equal(json_integer_value(json_object_get(x, "data")), 9);
  }
  json_decref(m);
  assert_int_equal(stream_hub_stats(e.hub)->ephemeral_drops, 2);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_ephemerals_are_dropped_for_a_client_that_is_behind(void **state) {
  (void)state;
  env_t e;
  start(&e);
  e.cfg.ephemeral_lag_max = 2;
  env_start(&e);
  tconn_t slow, fast;
  tconn_any(&e, &slow);
  tconn_any(&e, &fast);
  sub_live(&slow, "a/x");
  sub_live(&fast, "a/x");
  publish_n(&e, "a/x", 5);
  json_decref(drain_all(&fast));
  assert_int_equal(pub_full(&e, "a/x", NULL, "typing", STREAM_LANE_EPHEMERAL, "1", NULL), 0);
  env_run(&e);
  assert_int_equal(stream_hub_stats(e.hub)->ephemeral_drops, 1);
  json_t *m = drain_all(&fast);
  assert_int_equal(json_array_size(m), 1);
  assert_string_equal(msg_s(json_array_get(m, 0), "lane"), "ephemeral");
  json_decref(m);
  m = drain_all(&slow);
  assert_int_equal(count_op(m, "ev"), 5); /* reliable ones all there, no ephemeral */
  assert_ev_seqs(m, "a/x", 1, 5);
  json_decref(m);
  stream_conn_free(slow.c);
  stream_conn_free(fast.c);
  env_stop(&e);
}

static void test_slow_connection_holds_no_memory_per_unread_event(void **state) {
  (void)state;
  env_t e;
  start(&e);
  e.cfg.ring_size = 64;
  env_start(&e);
  tconn_t t;
  tconn_any(&e, &t);
  sub_live(&t, "a/x");
  for (int k = 0; k < 100; k++) publish_n(&e, "a/x", 1000);
  const stream_stats_t *st = stream_hub_stats(e.hub);
  assert_int_equal(stream_conn_frames_held(t.c), 1); /* only "subscribed" */
  assert_true(st->frames <= 64 + 1);                 /* the ring and that reply */
  assert_int_equal(t.wakes, 1);                      /* woken once, not per event */
  assert_int_equal(stream_conn_lag(t.c), 100000);
  /* When it reads: the newest 10000 (retention) after one gap, nothing silently lost. */
  assert_retention_gap_then_events(&t, "a/x", 0, 90000, 100000);
  stream_conn_free(t.c);
  env_stop(&e);
}

/* An idle connection keeps no control ring once its replies are out: the smallest ring
 * goes with the pull that empties it; a grown one (a busy connection) stays. */
static void test_an_emptied_control_ring_is_freed_unless_it_grew(void **state) {
  (void)state;
  env_t e;
  start(&e);
  env_start(&e);
  tconn_t t;
  tconn_any(&e, &t);
  sub_live(&t, "a/x"); /* its reply: the first ring */
  assert_non_null(t.c->ctrl);
  assert_int_equal(t.c->ctrl_cap, CTRL_RING_MIN);
  json_decref(drain_all(&t));
  assert_null(t.c->ctrl);
  assert_int_equal(t.c->ctrl_cap, 0);
  char topic[16];
  for (int i = 0; i < 6; i++) { /* six replies: the ring grows to 8 */
    snprintf(topic, sizeof topic, "a/y%d", i);
    sub_live(&t, topic);
  }
  assert_int_equal(t.c->ctrl_cap, 2 * CTRL_RING_MIN);
  json_t *m = drain_all(&t);
  assert_int_equal(count_op(m, "subscribed"), 6);
  json_decref(m);
  assert_non_null(t.c->ctrl); /* kept */
  assert_int_equal(t.c->ctrl_count, 0);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_router_wakes_subscribers_in_bounded_batches_per_turn(void **state) {
  (void)state;
  env_t e;
  start(&e);
  e.cfg.router_budget = 2;
  e.cfg.commit_thread = false; /* one turn commits and walks: the budget per turn is tested */
  env_start(&e);
  tconn_t t[5];
  for (int i = 0; i < 5; i++) {
    tconn_live(&e, &t[i], "a/x");
    t[i].wakes = 0;
  }
  pub_ok(&e, "a/x", "1");
  uv_run(&e.loop, UV_RUN_NOWAIT); /* one turn */
  int woken = 0;
  for (int i = 0; i < 5; i++) woken += t[i].wakes;
  assert_int_equal(woken, 2);
  env_run(&e);
  for (int i = 0; i < 5; i++) assert_int_equal(t[i].wakes, 1);
  /* A subscriber leaving in the middle of a walk is fine. */
  pub_ok(&e, "a/x", "2");
  uv_run(&e.loop, UV_RUN_NOWAIT);
  stream_conn_free(t[2].c);
  stream_conn_free(t[3].c);
  env_run(&e);
  for (int i = 0; i < 5; i++) if (i != 2 && i != 3) stream_conn_free(t[i].c);
  env_stop(&e);
}

static void test_unsubscribe_stops_delivery_and_unknown_topic_is_enoent(void **state) {
  (void)state;
  env_t e;
  start(&e);
  env_start(&e);
  tconn_t t;
  tconn_any(&e, &t);
  sub_live(&t, "a/x");
  assert_int_equal(stream_conn_unsubscribe(t.c, "a/x"), 0);
  assert_int_equal(stream_conn_unsubscribe(t.c, "a/x"), -ENOENT);
  publish_n(&e, "a/x", 3);
  json_t *m = drain_all(&t);
  assert_int_equal(count_op(m, "ev"), 0);
  json_decref(m);
  assert_int_equal(stream_hub_stats(e.hub)->subscriptions, 0);
  stream_conn_free(t.c);
  env_stop(&e);
}

static void test_drain_reports_last_delivered_positions_and_stops_data(void **state) {
  (void)state;
  env_t e;
  start(&e);
  env_start(&e);
  publish_n(&e, "a/x", 5);
  tconn_t t;
  tconn_any(&e, &t);
  sub_after(&t, "a/x", NULL, 0);
  sub_live(&t, "a/y");
  json_decref(pull_json(&t, 5, 1 << 20, NULL)); /* 2 subscribed + seqs 1..3 */
  stream_hub_drain(e.hub);
  assert_int_equal(stream_conn_drain(t.c, 1500), 0);
  json_t *m = drain_all(&t);
  assert_int_equal(json_array_size(m), 1);
  json_t *d = json_array_get(m, 0);
  assert_string_equal(msg_op(d), "drain");
  assert_int_equal(msg_u(d, "retry_ms"), 1500);
  json_t *pos = json_object_get(d, "positions");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(pos, "a/x"), "seq")), 3);
  assert_string_equal(json_string_value(json_object_get(json_object_get(pos, "a/x"), "epoch")),
                      stream__topic_find(e.hub, "a/x")->epoch);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(pos, "a/y"), "seq")), 0);
  json_decref(m);
  assert_false(stream_conn_pending(t.c));
  stream_conn_free(t.c);
  env_stop(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_live_subscription_gets_subscribed_then_only_new_events),
      cmocka_unit_test(test_after_zero_replays_everything_retained_then_live),
      cmocka_unit_test(test_resume_after_n_in_the_same_epoch_continues_at_n_plus_one),
      cmocka_unit_test(test_cursor_behind_the_ring_catches_up_from_the_store),
      cmocka_unit_test(test_cursor_behind_retention_gets_a_gap_then_continues),
      cmocka_unit_test(test_store_retention_discovered_during_catch_up_yields_a_gap),
      cmocka_unit_test(test_ring_entries_past_the_age_limit_are_gone),
      cmocka_unit_test(test_store_events_past_the_age_limit_are_a_gap_too),
      cmocka_unit_test(test_durable_to_pull_counts_each_event_once_with_its_own_commit_latency),
      cmocka_unit_test(test_epoch_mismatch_yields_current_epoch_and_an_epoch_gap_then_replay),
      cmocka_unit_test(test_a_seq_beyond_the_head_is_an_error_or_another_epoch),
      cmocka_unit_test(test_pull_sends_control_before_data),
      cmocka_unit_test(test_control_lane_event_never_overtakes_earlier_events_of_its_topic),
      cmocka_unit_test(test_pull_is_round_robin_across_subscriptions),
      cmocka_unit_test(test_pull_respects_the_byte_budget_but_always_makes_progress),
      cmocka_unit_test(test_a_topic_without_subscribers_keeps_only_its_newest_frames),
      cmocka_unit_test(test_ephemerals_coalesce_latest_wins_per_type),
      cmocka_unit_test(test_ephemerals_are_dropped_for_a_client_that_is_behind),
      cmocka_unit_test(test_an_emptied_control_ring_is_freed_unless_it_grew),
      cmocka_unit_test(test_slow_connection_holds_no_memory_per_unread_event),
      cmocka_unit_test(test_router_wakes_subscribers_in_bounded_batches_per_turn),
      cmocka_unit_test(test_unsubscribe_stops_delivery_and_unknown_topic_is_enoent),
      cmocka_unit_test(test_drain_reports_last_delivered_positions_and_stops_data),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
