/* Tests for streams/group_lease.c: consumer group dispatch as members see it. Exactly one
 * delivery per event across members, fairness, max_inflight, redelivery after lease
 * expiry (injected clock), after a disconnect and after a nack's delay, extend, dead
 * letters after max_deliveries, catch-up from the store and retention gaps, and plain
 * subscribers beside a group. Every test runs its own loop and closes it. */
#include "streams/helpers.h"

#define TOPIC "acme/jobs"

typedef struct fx {
  env_t e;
} fx_t;

static int setup_with(void **state, void (*tune)(stream_config_t *)) {
  fx_t *f = calloc(1, sizeof *f);
  env_config(&f->e);
  f->e.cfg.topic_publish_rate = 0; /* unlimited: the tests publish in bursts */
  f->e.cfg.publish_rate = 0;
  f->e.cfg.group_ack_wait_ms = 1000;
  if (tune) tune(&f->e.cfg);
  env_start(&f->e);
  *state = f;
  return 0;
}

static int setup(void **state) { return setup_with(state, NULL); }

static int teardown(void **state) {
  fx_t *f = *state;
  env_stop(&f->e);
  free(f);
  return 0;
}

static void join(tconn_t *t, const char *group, uint32_t inflight) {
  stream_group_join_t j = {.group = group, .max_inflight = inflight};
  stream_err_t err;
  int rc = stream_conn_group_join(t->c, TOPIC, &j, &err);
  if (rc) fail_msg("join: %d %s", rc, err.message);
}

static void publish_n(fx_t *f, int n) {
  for (int i = 0; i < n; i++) {
    char data[32];
    snprintf(data, sizeof data, "{\"n\":%d}", i + 1);
    pub_ok(&f->e, TOPIC, data);
  }
  env_run(&f->e);
}

/* The group deliveries among everything t has to pull (control replies are dropped). */
static json_t *take(tconn_t *t) {
  json_t *all = drain_all(t), *out = json_array();
  size_t i;
  json_t *m;
  json_array_foreach(all, i, m) {
    if (strcmp(msg_op(m), "ev") == 0 && json_object_get(m, "group")) json_array_append(out, m);
  }
  json_decref(all);
  return out;
}

static void ack(tconn_t *t, const char *group, uint64_t seq) {
  stream_err_t err;
  int rc = stream_conn_group_ack(t->c, TOPIC, group, seq, &err);
  if (rc) fail_msg("ack %llu: %d %s", (unsigned long long)seq, rc, err.message);
}

static uint64_t redelivered(json_t *m) { return msg_u(m, "redelivered"); }

static void test_each_event_goes_to_exactly_one_of_three_members_and_all_get_acked(void **state) {
  fx_t *f = *state;
  enum { N = 600 };
  tconn_t t[3];
  for (int i = 0; i < 3; i++) {
    tconn_any(&f->e, &t[i]);
    join(&t[i], "workers", 8);
  }
  env_run(&f->e);
  for (int i = 0; i < 3; i++) json_decref(drain_all(&t[i])); /* "subscribed" */
  publish_n(f, N);
  static int seen[N + 1];
  memset(seen, 0, sizeof seen);
  int per_member[3] = {0};
  for (int round = 0; round < 10000; round++) {
    int got = 0;
    for (int i = 0; i < 3; i++) {
      json_t *d = take(&t[i]);
      size_t k;
      json_t *m;
      json_array_foreach(d, k, m) {
        uint64_t seq = msg_u(m, "seq");
        assert_true(seq >= 1 && seq <= N);
        assert_string_equal(msg_s(m, "group"), "workers");
        assert_null(json_object_get(m, "redelivered"));
        seen[seq]++;
        per_member[i]++;
        got++;
        ack(&t[i], "workers", seq);
      }
      json_decref(d);
    }
    env_run(&f->e);
    if (got == 0) break;
  }
  for (int s = 1; s <= N; s++)
    if (seen[s] != 1) fail_msg("seq %d delivered %d times", s, seen[s]);
  for (int i = 0; i < 3; i++)
    if (per_member[i] < N / 3 - 20) fail_msg("member %d got only %d of %d", i, per_member[i], N);
  const stream_stats_t *st = stream_hub_stats(f->e.hub);
  assert_int_equal(st->group_acks, N);
  assert_int_equal(st->group_redeliveries, 0);
  assert_int_equal(st->group_pending, 0);
  for (int i = 0; i < 3; i++) stream_conn_free(t[i].c);
}

static void test_dispatch_is_fair_and_respects_max_inflight(void **state) {
  fx_t *f = *state;
  tconn_t a, b, c;
  tconn_any(&f->e, &a);
  tconn_any(&f->e, &b);
  tconn_any(&f->e, &c);
  join(&a, "w", 2);
  join(&b, "w", 2);
  join(&c, "w", 3);
  publish_n(f, 10);
  json_t *da = take(&a), *db = take(&b), *dc = take(&c);
  /* Fewest held first: 2, 2 and 3 (c's extra slot), then nothing until acks. */
  assert_int_equal(json_array_size(da), 2);
  assert_int_equal(json_array_size(db), 2);
  assert_int_equal(json_array_size(dc), 3);
  env_run(&f->e);
  assert_false(stream_conn_pending(a.c));
  /* a acks one: exactly one more comes, to a. */
  ack(&a, "w", msg_u(json_array_get(da, 0), "seq"));
  env_run(&f->e);
  json_t *more = take(&a);
  assert_int_equal(json_array_size(more), 1);
  assert_int_equal(msg_u(json_array_get(more, 0), "seq"), 8); /* position order */
  json_t *none = take(&b);
  assert_int_equal(json_array_size(none), 0);
  json_decref(none);
  json_decref(more);
  json_decref(da);
  json_decref(db);
  json_decref(dc);
  stream_conn_free(a.c);
  stream_conn_free(b.c);
  stream_conn_free(c.c);
}

static void test_the_least_loaded_member_gets_the_next_event(void **state) {
  fx_t *f = *state;
  tconn_t a, b;
  tconn_any(&f->e, &a);
  tconn_any(&f->e, &b);
  join(&a, "w", 10);
  join(&b, "w", 10);
  publish_n(f, 4);
  json_t *da = take(&a), *db = take(&b);
  assert_int_equal(json_array_size(da), 2);
  assert_int_equal(json_array_size(db), 2);
  for (size_t i = 0; i < 2; i++) ack(&a, "w", msg_u(json_array_get(da, i), "seq"));
  json_decref(da);
  json_decref(db);
  /* a is idle and b holds two: the next two go to a, not one each. */
  publish_n(f, 2);
  da = take(&a);
  db = take(&b);
  assert_int_equal(json_array_size(da), 2);
  assert_int_equal(json_array_size(db), 0);
  json_decref(da);
  json_decref(db);
  stream_conn_free(a.c);
  stream_conn_free(b.c);
}

static void test_a_nacked_event_prefers_another_member_with_room(void **state) {
  fx_t *f = *state;
  tconn_t a, b;
  tconn_any(&f->e, &a);
  tconn_any(&f->e, &b);
  join(&a, "w", 2);
  join(&b, "w", 2);
  publish_n(f, 2); /* one each */
  json_t *da = take(&a), *db = take(&b);
  assert_int_equal(json_array_size(da), 1);
  assert_int_equal(json_array_size(db), 1);
  uint64_t seq = msg_u(json_array_get(da, 0), "seq");
  json_decref(da);
  json_decref(db);
  /* a would be the least loaded after its nack, yet the event goes to b. */
  stream_err_t err;
  assert_int_equal(stream_conn_group_nack(a.c, TOPIC, "w", seq, 0, &err), 0);
  env_run(&f->e);
  da = take(&a);
  db = take(&b);
  assert_int_equal(json_array_size(da), 0);
  assert_int_equal(json_array_size(db), 1);
  assert_int_equal(msg_u(json_array_get(db, 0), "seq"), seq);
  json_decref(da);
  json_decref(db);
  stream_conn_free(a.c);
  stream_conn_free(b.c);
}

static void test_a_lease_that_expires_goes_to_another_member_marked_redelivered(void **state) {
  fx_t *f = *state;
  tconn_t a, b;
  tconn_any(&f->e, &a);
  tconn_any(&f->e, &b);
  join(&a, "w", 1);
  join(&b, "w", 1);
  publish_n(f, 1);
  json_t *da = take(&a), *db = take(&b);
  tconn_t *holder = json_array_size(da) ? &a : &b, *other = holder == &a ? &b : &a;
  assert_int_equal(json_array_size(da) + json_array_size(db), 1);
  json_decref(da);
  json_decref(db);
  env_advance_ms(&f->e, 999);
  assert_int_equal(stream_hub_groups_tick(f->e.hub), 0);
  env_advance_ms(&f->e, 1);
  assert_int_equal(stream_hub_groups_tick(f->e.hub), 1);
  env_run(&f->e);
  json_t *d = take(other);
  assert_int_equal(json_array_size(d), 1);
  assert_int_equal(msg_u(json_array_get(d, 0), "seq"), 1);
  assert_int_equal(redelivered(json_array_get(d, 0)), 1);
  json_decref(d);
  /* The first holder's late ack is refused: the event belongs to the other member now. */
  stream_err_t err;
  assert_int_equal(stream_conn_group_ack(holder->c, TOPIC, "w", 1, &err), -ENOENT);
  assert_non_null(strstr(err.message, "seq: 1 is leased to another member"));
  ack(other, "w", 1);
  assert_int_equal(stream_hub_stats(f->e.hub)->group_redeliveries, 1);
  stream_conn_free(a.c);
  stream_conn_free(b.c);
}

static void test_a_disconnected_member_s_events_are_redelivered_at_once(void **state) {
  fx_t *f = *state;
  tconn_t a, b;
  tconn_any(&f->e, &a);
  join(&a, "w", 4);
  publish_n(f, 3);
  json_t *d = take(&a);
  assert_int_equal(json_array_size(d), 3);
  json_decref(d);
  tconn_any(&f->e, &b);
  join(&b, "w", 4);
  env_run(&f->e);
  d = take(&b);
  assert_int_equal(json_array_size(d), 0); /* all three are a's */
  json_decref(d);
  stream_conn_free(a.c); /* killed mid-task, no clock movement */
  env_run(&f->e);
  d = take(&b);
  assert_int_equal(json_array_size(d), 3);
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(msg_u(json_array_get(d, i), "seq"), i + 1);
    assert_int_equal(redelivered(json_array_get(d, i)), 1);
  }
  json_decref(d);
  stream_conn_free(b.c);
}

static void test_a_delivery_never_pulled_does_not_count_as_delivered(void **state) {
  fx_t *f = *state;
  tconn_t a, b;
  tconn_any(&f->e, &a);
  join(&a, "w", 4);
  publish_n(f, 1); /* queued for a, never pulled */
  tconn_any(&f->e, &b);
  join(&b, "w", 4);
  stream_conn_free(a.c);
  env_run(&f->e);
  json_t *d = take(&b);
  assert_int_equal(json_array_size(d), 1);
  assert_null(json_object_get(json_array_get(d, 0), "redelivered"));
  json_decref(d);
  stream_conn_free(b.c);
}

static void test_extend_keeps_the_lease(void **state) {
  fx_t *f = *state;
  tconn_t a, b;
  tconn_any(&f->e, &a);
  join(&a, "w", 1);
  publish_n(f, 1);
  json_decref(take(&a));
  tconn_any(&f->e, &b);
  join(&b, "w", 1);
  stream_err_t err;
  for (int i = 0; i < 5; i++) { /* 4 s of heartbeats every 800 ms against a 1 s lease */
    env_advance_ms(&f->e, 800);
    assert_int_equal(stream_conn_group_extend(a.c, TOPIC, "w", 1, &err), 0);
    assert_int_equal(stream_hub_groups_tick(f->e.hub), 0);
  }
  assert_int_equal(stream_conn_group_extend(b.c, TOPIC, "w", 1, &err), -ENOENT); /* not b's */
  env_advance_ms(&f->e, 1000); /* heartbeats stop: the lease runs out */
  assert_int_equal(stream_hub_groups_tick(f->e.hub), 1);
  env_run(&f->e);
  json_t *d = take(&b);
  assert_int_equal(json_array_size(d), 1);
  json_decref(d);
  stream_conn_free(a.c);
  stream_conn_free(b.c);
}

static void test_nack_with_delay_redelivers_after_the_delay_to_another_member(void **state) {
  fx_t *f = *state;
  tconn_t a, b;
  tconn_any(&f->e, &a);
  tconn_any(&f->e, &b);
  join(&a, "w", 1);
  join(&b, "w", 1);
  publish_n(f, 1);
  json_t *da = take(&a), *db = take(&b);
  tconn_t *holder = json_array_size(da) ? &a : &b, *other = holder == &a ? &b : &a;
  json_decref(da);
  json_decref(db);
  stream_err_t err;
  assert_int_equal(stream_conn_group_nack(holder->c, TOPIC, "w", 1, 5000, &err), 0);
  env_run(&f->e);
  env_advance_ms(&f->e, 4900);
  stream_hub_groups_tick(f->e.hub);
  env_run(&f->e);
  assert_false(stream_conn_pending(a.c));
  assert_false(stream_conn_pending(b.c));
  env_advance_ms(&f->e, 100);
  stream_hub_groups_tick(f->e.hub);
  env_run(&f->e);
  json_t *d = take(other);
  assert_int_equal(json_array_size(d), 1);
  assert_int_equal(redelivered(json_array_get(d, 0)), 1);
  json_decref(d);
  /* A nack without delay goes again at once, here to the only member with room. */
  assert_int_equal(stream_conn_group_nack(other->c, TOPIC, "w", 1, 0, &err), 0);
  env_run(&f->e);
  d = take(holder);
  assert_int_equal(json_array_size(d), 1);
  assert_int_equal(redelivered(json_array_get(d, 0)), 2);
  json_decref(d);
  assert_int_equal(stream_hub_stats(f->e.hub)->group_nacks, 2);
  stream_conn_free(a.c);
  stream_conn_free(b.c);
}

static void max_two(stream_config_t *c) { c->group_max_deliveries = 2; }
static int setup_max_two(void **state) { return setup_with(state, max_two); }

static void test_after_max_deliveries_the_event_is_dead_lettered_with_the_reason(void **state) {
  fx_t *f = *state;
  tconn_t a, watcher;
  tconn_any(&f->e, &a);
  tconn_any(&f->e, &watcher);
  sub_live(&watcher, TOPIC ".dlq");
  join(&a, "w", 1);
  assert_int_equal(pub_full(&f->e, TOPIC, "task-7", "task", STREAM_LANE_DATA, "{\"job\":\"x\"}", NULL), 0);
  env_run(&f->e);
  for (int i = 0; i < 2; i++) { /* two deliveries, two expiries */
    json_t *d = take(&a);
    assert_int_equal(json_array_size(d), 1);
    json_decref(d);
    env_advance_ms(&f->e, 1000);
    assert_int_equal(stream_hub_groups_tick(f->e.hub), 1);
    env_run(&f->e);
  }
  json_t *d = take(&a);
  assert_int_equal(json_array_size(d), 0); /* no third delivery */
  json_decref(d);
  json_t *msgs = drain_all(&watcher);
  json_t *dl = NULL;
  size_t i;
  json_t *m;
  json_array_foreach(msgs, i, m) if (strcmp(msg_op(m), "ev") == 0) dl = m;
  assert_non_null(dl);
  assert_string_equal(msg_s(dl, "topic"), TOPIC ".dlq");
  assert_string_equal(msg_s(dl, "type"), "dead_letter");
  json_t *data = json_object_get(dl, "data");
  assert_string_equal(msg_s(data, "reason"), "max_deliveries");
  assert_string_equal(msg_s(data, "last_failure"), "ack_wait expired");
  assert_string_equal(msg_s(data, "group"), "w");
  assert_string_equal(msg_s(data, "topic"), TOPIC);
  assert_int_equal(msg_u(data, "seq"), 1);
  assert_int_equal(msg_u(data, "deliveries"), 2);
  json_t *orig = json_object_get(data, "event");
  assert_string_equal(msg_s(orig, "id"), "task-7");
  assert_string_equal(msg_s(json_object_get(orig, "data"), "job"), "x");
  json_decref(msgs);
  const stream_stats_t *st = stream_hub_stats(f->e.hub);
  assert_int_equal(st->group_dead_letters, 1);
  assert_int_equal(st->group_pending, 0);
  stream_err_t err;
  assert_int_equal(stream_conn_group_ack(a.c, TOPIC, "w", 1, &err), -ENOENT);
  stream_conn_free(a.c);
  stream_conn_free(watcher.c);
}

static void max_one(stream_config_t *c) { c->group_max_deliveries = 1; }
static int setup_max_one(void **state) { return setup_with(state, max_one); }

static int count_lease(void *ud, const store_group_lease_t *l) {
  (void)l;
  (*(int *)ud)++;
  return 0;
}
static int ignore_group(void *ud, const store_group_t *g) {
  (void)ud;
  (void)g;
  return 0;
}

static void test_a_hub_closing_with_a_dead_letter_in_flight_keeps_the_lease_stored(void **state) {
  fx_t *f = *state;
  tconn_t a;
  tconn_any(&f->e, &a);
  join(&a, "w", 1);
  publish_n(f, 1);
  json_decref(take(&a));
  stream_conn_free(a.c); /* the only delivery allowed: the next step is the dead letter */
  uv_run(&f->e.loop, UV_RUN_NOWAIT); /* one hub phase: the dead letter is queued, not committed */
  assert_int_equal(stream_hub_stats(f->e.hub)->group_dead_letters, 0);
  assert_int_equal(stream_hub_stats(f->e.hub)->pending, 1); /* the dead letter's publish */
  env_stop_hub(&f->e);
  int leases = 0;
  assert_int_equal(store_group_load(f->e.store, TOPIC, "w", ignore_group, count_lease, &leases), 0);
  assert_int_equal(leases, 1); /* dead-lettered on the next load, with the same event id */
}

static void test_plain_subscribers_still_get_every_event_in_order(void **state) {
  fx_t *f = *state;
  tconn_t a, b, plain;
  tconn_any(&f->e, &a);
  tconn_any(&f->e, &b);
  tconn_any(&f->e, &plain);
  join(&a, "w", 100);
  join(&b, "w", 100);
  sub_live(&plain, TOPIC);
  publish_n(f, 50);
  json_t *all = drain_all(&plain);
  assert_ev_seqs(all, TOPIC, 1, 50);
  size_t i;
  json_t *m;
  json_array_foreach(all, i, m) assert_null(json_object_get(m, "group"));
  json_decref(all);
  json_t *da = take(&a), *db = take(&b);
  assert_int_equal(json_array_size(da) + json_array_size(db), 50);
  json_decref(da);
  json_decref(db);
  stream_conn_free(a.c);
  stream_conn_free(b.c);
  stream_conn_free(plain.c);
}

static void small_ring(stream_config_t *c) {
  c->ring_size = 4;
  c->catchup_batch = 8;
}
static int setup_small_ring(void **state) { return setup_with(state, small_ring); }

static void test_a_new_group_from_seq_0_catches_up_from_the_store(void **state) {
  fx_t *f = *state;
  publish_n(f, 40);
  tconn_t a;
  tconn_any(&f->e, &a);
  stream_position_t from = {.seq = 0};
  stream_group_join_t j = {.group = "late", .start = &from, .max_inflight = 1000};
  stream_err_t err;
  assert_int_equal(stream_conn_group_join(a.c, TOPIC, &j, &err), 0);
  env_run(&f->e);
  json_t *d = take(&a);
  assert_ev_seqs(d, TOPIC, 1, 40);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(d, 39), "data"), "n")), 40);
  json_decref(d);
  assert_true(stream_hub_stats(f->e.hub)->store_catchup_reads > 0);
  stream_conn_free(a.c);
}

static void keep_five(stream_config_t *c) { c->retention_max_events = 5; }
static int setup_keep_five(void **state) { return setup_with(state, keep_five); }

static void test_events_lost_to_retention_are_skipped_and_counted(void **state) {
  fx_t *f = *state;
  publish_n(f, 20);
  tconn_t a;
  tconn_any(&f->e, &a);
  stream_position_t from = {.seq = 0};
  stream_group_join_t j = {.group = "late", .start = &from, .max_inflight = 100};
  stream_err_t err;
  assert_int_equal(stream_conn_group_join(a.c, TOPIC, &j, &err), 0);
  env_run(&f->e);
  json_t *d = take(&a);
  assert_ev_seqs(d, TOPIC, 16, 20);
  json_decref(d);
  assert_int_equal(stream_hub_stats(f->e.hub)->group_skipped, 15);
  stream_conn_free(a.c);
}

static void test_a_draining_member_gets_no_new_work(void **state) {
  fx_t *f = *state;
  tconn_t a, b;
  tconn_any(&f->e, &a);
  tconn_any(&f->e, &b);
  join(&a, "w", 10);
  join(&b, "w", 10);
  assert_int_equal(stream_conn_drain(a.c, 100), 0);
  publish_n(f, 6);
  json_t *db = take(&b);
  assert_int_equal(json_array_size(db), 6);
  json_decref(db);
  stream_conn_free(a.c);
  stream_conn_free(b.c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_each_event_goes_to_exactly_one_of_three_members_and_all_get_acked, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_dispatch_is_fair_and_respects_max_inflight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_the_least_loaded_member_gets_the_next_event, setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_nacked_event_prefers_another_member_with_room, setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_lease_that_expires_goes_to_another_member_marked_redelivered, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_a_disconnected_member_s_events_are_redelivered_at_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_delivery_never_pulled_does_not_count_as_delivered, setup, teardown),
      cmocka_unit_test_setup_teardown(test_extend_keeps_the_lease, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nack_with_delay_redelivers_after_the_delay_to_another_member, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_after_max_deliveries_the_event_is_dead_lettered_with_the_reason,
                                      setup_max_two, teardown),
      cmocka_unit_test_setup_teardown(test_a_hub_closing_with_a_dead_letter_in_flight_keeps_the_lease_stored,
                                      setup_max_one, teardown),
      cmocka_unit_test_setup_teardown(test_plain_subscribers_still_get_every_event_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_new_group_from_seq_0_catches_up_from_the_store, setup_small_ring,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_events_lost_to_retention_are_skipped_and_counted, setup_keep_five,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_a_draining_member_gets_no_new_work, setup, teardown),
  };
  return cmocka_run_group_tests_name("streams group dispatch", tests, NULL, NULL);
}
