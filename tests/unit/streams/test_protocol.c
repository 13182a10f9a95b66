/* Tests for streams/protocol.c: every op and every error code, as seen by a client. */
#include "streams/helpers.h"

typedef struct proto {
  env_t e;
  tconn_t t;
} proto_t;

static int setup(void **state) {
  proto_t *p = calloc(1, sizeof *p);
  env_config(&p->e);
  p->e.cfg.max_message_bytes = 2048;
  p->e.cfg.max_event_bytes = 512;
  p->e.cfg.max_json_depth = 8;
  p->e.cfg.max_subs_per_conn = 3;
  p->e.cfg.topic_publish_rate = 1;
  p->e.cfg.topic_publish_burst = 2;
  env_start(&p->e);
  tconn_open(&p->e, &p->t, "acme", STREAM_SCOPE_SUBSCRIBE | STREAM_SCOPE_PUBLISH);
  *state = p;
  return 0;
}

static int teardown(void **state) {
  proto_t *p = *state;
  stream_conn_free(p->t.c);
  env_stop(&p->e);
  free(p);
  return 0;
}

static int send_msg(proto_t *p, const char *json) { return stream_conn_handle_message(p->t.c, json, strlen(json)); }

/* Sends json and returns the single reply it produced (after running the loop). */
static json_t *roundtrip(proto_t *p, const char *json) {
  assert_int_equal(send_msg(p, json), 0);
  env_run(&p->e);
  json_t *m = drain_all(&p->t);
  if (json_array_size(m) != 1) {
    char *s = json_dumps(m, 0);
    fail_msg("%s: %zu replies: %s", json, json_array_size(m), s);
  }
  json_t *r = json_incref(json_array_get(m, 0));
  json_decref(m);
  return r;
}

static void expect_error(proto_t *p, const char *json, const char *code, const char *message_part) {
  json_t *r = roundtrip(p, json);
  assert_string_equal(msg_op(r), "error");
  if (strcmp(msg_s(r, "code"), code) != 0) fail_msg("%s: code %s, want %s", json, msg_s(r, "code"), code);
  if (message_part && !strstr(msg_s(r, "message"), message_part))
    fail_msg("%s: message \"%s\" lacks \"%s\"", json, msg_s(r, "message"), message_part);
  json_decref(r);
}

static void test_ping_gets_pong_with_the_same_ref(void **state) {
  proto_t *p = *state;
  json_t *r = roundtrip(p, "{\"op\":\"ping\",\"ref\":\"p1\"}");
  assert_string_equal(msg_op(r), "pong");
  assert_string_equal(msg_s(r, "ref"), "p1");
  json_decref(r);
}

static void test_sub_replies_subscribed_with_epoch_and_head(void **state) {
  proto_t *p = *state;
  pub_ok(&p->e, "acme/room-1", "1");
  env_run(&p->e);
  json_t *r = roundtrip(p, "{\"op\":\"sub\",\"topic\":\"acme/room-1\"}");
  assert_string_equal(msg_op(r), "subscribed");
  assert_string_equal(msg_s(r, "topic"), "acme/room-1");
  assert_int_equal(msg_u(r, "head"), 1);
  assert_int_equal(strlen(msg_s(r, "epoch")), STORE_EPOCH_LEN);
  json_decref(r);
  /* after {epoch, seq} */
  char buf[200];
  snprintf(buf, sizeof buf, "{\"op\":\"sub\",\"topic\":\"acme/room-2\",\"after\":{\"seq\":0}}");
  json_decref(roundtrip(p, buf));
  assert_int_equal(stream_conn_subscription_count(p->t.c), 2);
}

static void test_unsub_replies_unsubscribed_or_not_found(void **state) {
  proto_t *p = *state;
  json_decref(roundtrip(p, "{\"op\":\"sub\",\"topic\":\"acme/a\"}"));
  json_t *r = roundtrip(p, "{\"op\":\"unsub\",\"topic\":\"acme/a\",\"ref\":\"u\"}");
  assert_string_equal(msg_op(r), "unsubscribed");
  assert_string_equal(msg_s(r, "ref"), "u");
  json_decref(r);
  expect_error(p, "{\"op\":\"unsub\",\"topic\":\"acme/a\"}", "not_found", "not subscribed");
}

static void test_pub_gets_puback_once_durable_and_duplicate_flag(void **state) {
  proto_t *p = *state;
  assert_int_equal(send_msg(p, "{\"op\":\"pub\",\"ref\":\"c1\",\"topic\":\"acme/r\",\"id\":\"e1\",\"type\":\"token\","
                               "\"data\":{\"t\":\"hi\"}}"),
                   0);
  assert_false(stream_conn_pending(p->t.c)); /* nothing before the commit */
  env_run(&p->e);
  json_t *m = drain_all(&p->t);
  json_t *r = json_array_get(m, 0);
  assert_string_equal(msg_op(r), "puback");
  assert_string_equal(msg_s(r, "ref"), "c1");
  assert_string_equal(msg_s(r, "topic"), "acme/r");
  assert_int_equal(msg_u(r, "seq"), 1);
  assert_false(json_is_true(json_object_get(r, "duplicate")));
  json_decref(m);
  r = roundtrip(p, "{\"op\":\"pub\",\"ref\":\"c2\",\"topic\":\"acme/r\",\"id\":\"e1\",\"data\":1}");
  assert_int_equal(msg_u(r, "seq"), 1);
  assert_true(json_is_true(json_object_get(r, "duplicate")));
  json_decref(r);
}

static void test_pub_of_an_ephemeral_acks_with_null_seq(void **state) {
  proto_t *p = *state;
  json_t *r = roundtrip(p, "{\"op\":\"pub\",\"topic\":\"acme/r\",\"lane\":\"ephemeral\",\"type\":\"typing\"}");
  assert_string_equal(msg_op(r), "puback");
  assert_true(json_is_null(json_object_get(r, "seq")));
  json_decref(r);
}

static void test_subscriber_receives_the_published_event_frame(void **state) {
  proto_t *p = *state;
  json_decref(roundtrip(p, "{\"op\":\"sub\",\"topic\":\"acme/r\"}"));
  assert_int_equal(send_msg(p, "{\"op\":\"pub\",\"topic\":\"acme/r\",\"id\":\"evt-123\",\"type\":\"token\","
                               "\"lane\":\"data\",\"data\":{\"a\":[1,\"x\"]}}"),
                   0);
  env_run(&p->e);
  json_t *m = drain_all(&p->t);
  assert_int_equal(json_array_size(m), 2);
  json_t *ack = json_array_get(m, 0), *ev = json_array_get(m, 1);
  assert_string_equal(msg_op(ack), "puback"); /* control first */
  assert_string_equal(msg_op(ev), "ev");
  assert_string_equal(msg_s(ev, "id"), "evt-123");
  assert_string_equal(msg_s(ev, "type"), "token");
  assert_string_equal(msg_s(ev, "lane"), "data");
  assert_int_equal(msg_u(ev, "seq"), 1);
  assert_int_equal(json_integer_value(json_object_get(ev, "ts")), p->e.clock.wall_ms);
  assert_string_equal(msg_s(ev, "epoch"), msg_s(ack, "epoch"));
  json_t *want = json_pack("{s:[i,s]}", "a", 1, "x");
  assert_true(json_equal(json_object_get(ev, "data"), want));
  json_decref(want);
  json_decref(m);
}

static void test_malformed_messages_get_bad_request_naming_the_field(void **state) {
  proto_t *p = *state;
  expect_error(p, "{\"op\":\"sub\"", "bad_request", "message: invalid JSON");
  expect_error(p, "[1,2]", "bad_request", "message: must be an object");
  expect_error(p, "{\"topic\":\"acme/a\"}", "bad_request", "op: missing");
  expect_error(p, "{\"op\":7}", "bad_request", "op: must be a string");
  expect_error(p, "{\"op\":\"jump\"}", "bad_request", "op: unknown \"jump\"");
  expect_error(p, "{\"op\":\"ping\",\"ref\":5}", "bad_request", "ref: must be a string");
  expect_error(p, "{\"op\":\"sub\"}", "bad_request", "topic: missing");
  expect_error(p, "{\"op\":\"sub\",\"topic\":\"Acme/x\"}", "bad_request", "topic: tenant");
  expect_error(p, "{\"op\":\"sub\",\"topic\":\"acme/x\",\"after\":5}", "bad_request", "after: must be an object");
  expect_error(p, "{\"op\":\"sub\",\"topic\":\"acme/x\",\"after\":{\"seq\":-1}}", "bad_request", "after.seq");
  expect_error(p, "{\"op\":\"sub\",\"topic\":\"acme/x\",\"after\":{\"seq\":1,\"epoch\":3}}", "bad_request",
               "after.epoch");
  expect_error(p, "{\"op\":\"sub\",\"topic\":\"acme/x\",\"after\":{\"seq\":99}}", "bad_request", "beyond the head");
  expect_error(p, "{\"op\":\"pub\",\"topic\":\"acme/x\",\"lane\":\"bulk\"}", "bad_request", "lane:");
  expect_error(p, "{\"op\":\"pub\",\"topic\":\"acme/x\",\"id\":[1]}", "bad_request", "id: must be a string");
  expect_error(p, "{\"op\":\"pub\",\"topic\":\"acme/x\",\"type\":{}}", "bad_request", "type: must be a string");
  expect_error(p, "{\"op\":\"ping\",\"x\":[[[[[[[[[1]]]]]]]]]}", "bad_request", "nested deeper than 8");
  expect_error(p, "{\"op\":\"ping\",\"op\":\"ping\"}", "bad_request", "invalid JSON");
  /* The error echoes the ref when it could be read. */
  json_t *r = roundtrip(p, "{\"op\":\"sub\",\"ref\":\"s9\"}");
  assert_string_equal(msg_s(r, "ref"), "s9");
  json_decref(r);
}

static void test_other_tenants_and_missing_scopes_are_forbidden(void **state) {
  proto_t *p = *state;
  expect_error(p, "{\"op\":\"sub\",\"topic\":\"other/x\"}", "forbidden", NULL);
  expect_error(p, "{\"op\":\"pub\",\"topic\":\"other/x\",\"data\":1}", "forbidden", NULL);
  tconn_t ro;
  tconn_open(&p->e, &ro, "acme", STREAM_SCOPE_SUBSCRIBE);
  const char *pub = "{\"op\":\"pub\",\"topic\":\"acme/x\",\"data\":1}";
  assert_int_equal(stream_conn_handle_message(ro.c, pub, strlen(pub)), 0);
  json_t *m = drain_all(&ro);
  assert_string_equal(msg_s(json_array_get(m, 0), "code"), "forbidden");
  json_decref(m);
  stream_conn_free(ro.c);
  assert_int_equal(stream_hub_stats(p->e.hub)->published[STREAM_LANE_DATA], 0);
}

static bool only_room_a(void *ud, stream_action_t action, const char *tenant, const char *room) {
  (void)ud;
  (void)action;
  return strcmp(tenant, "acme") == 0 && strcmp(room, "a") == 0;
}

static void test_the_transports_room_check_is_applied(void **state) {
  proto_t *p = *state;
  tconn_t g;
  memset(&g, 0, sizeof g);
  stream_principal_t who = {.tenant = "acme", .scopes = STREAM_SCOPE_SUBSCRIBE, .allows = only_room_a};
  assert_int_equal(stream_conn_new(p->e.hub, &tconn_ops, &g, &who, &g.c), 0);
  stream_err_t err;
  stream_position_t live = {.live = true};
  assert_int_equal(stream_conn_subscribe(g.c, "acme/a", &live, &err), 0);
  assert_int_equal(stream_conn_subscribe(g.c, "acme/b", &live, &err), -EACCES);
  stream_conn_free(g.c);
}

static void test_limits_map_to_too_large_rate_limited_and_too_many_subscriptions(void **state) {
  proto_t *p = *state;
  char big[3000];
  snprintf(big, sizeof big, "{\"op\":\"ping\",\"pad\":\"%02900d\"}", 0);
  expect_error(p, big, "too_large", "message:");
  char ev[900];
  snprintf(ev, sizeof ev, "{\"op\":\"pub\",\"topic\":\"acme/x\",\"data\":\"%0600d\"}", 0);
  expect_error(p, ev, "too_large", "data:");
  json_decref(roundtrip(p, "{\"op\":\"pub\",\"topic\":\"acme/y\",\"data\":1}"));
  json_decref(roundtrip(p, "{\"op\":\"pub\",\"topic\":\"acme/y\",\"data\":2}"));
  json_t *r = roundtrip(p, "{\"op\":\"pub\",\"ref\":\"r3\",\"topic\":\"acme/y\",\"data\":3}");
  assert_string_equal(msg_s(r, "code"), "rate_limited");
  assert_string_equal(msg_s(r, "ref"), "r3");
  assert_int_equal(msg_u(r, "retry_after_ms"), 1000);
  json_decref(r);
  for (int i = 0; i < 3; i++) {
    char sub[80];
    snprintf(sub, sizeof sub, "{\"op\":\"sub\",\"topic\":\"acme/s%d\"}", i);
    json_decref(roundtrip(p, sub));
  }
  expect_error(p, "{\"op\":\"sub\",\"topic\":\"acme/s9\"}", "too_many_subscriptions", NULL);
  /* Re-subscribing an existing topic repositions it instead. */
  json_t *again = roundtrip(p, "{\"op\":\"sub\",\"topic\":\"acme/s0\"}");
  assert_string_equal(msg_op(again), "subscribed");
  json_decref(again);
}

static void test_overload_and_shutdown_map_to_their_codes(void **state) {
  proto_t *p = *state;
  p->e.hub->cfg.overload_threshold = 0;
  json_t *r = roundtrip(p, "{\"op\":\"pub\",\"topic\":\"acme/x\",\"data\":1}");
  assert_string_equal(msg_s(r, "code"), "overloaded");
  assert_true(msg_u(r, "retry_after_ms") > 0);
  json_decref(r);
  p->e.hub->cfg.overload_threshold = 100;
  stream_hub_drain(p->e.hub);
  expect_error(p, "{\"op\":\"pub\",\"topic\":\"acme/x\",\"data\":1}", "shutting_down", NULL);
}

static void test_control_queue_overflow_closes_the_connection_with_a_reason(void **state) {
  proto_t *p = *state;
  uint32_t max = p->e.cfg.control_queue_max;
  int rc = 0;
  for (uint32_t i = 0; i <= max && rc == 0; i++) rc = send_msg(p, "{\"op\":\"ping\"}");
  assert_int_equal(rc, -ENOBUFS);
  assert_string_equal(stream_conn_close_reason(p->t.c), "control queue overflow");
  stream_frame_t *f[4];
  assert_int_equal(stream_conn_pull(p->t.c, f, 4, 1 << 20), -ENOBUFS);
  assert_int_equal(send_msg(p, "{\"op\":\"ping\"}"), -ENOBUFS);
  assert_int_equal(stream_hub_stats(p->e.hub)->conns_closed_overflow, 1);
  env_run(&p->e);
  assert_true(p->t.wakes >= 1); /* so the transport comes to close it */
}

static void test_backlog_counts_publishes_in_flight_until_their_replies_are_pulled(void **state) {
  proto_t *p = *state;
  assert_int_equal(stream_conn_backlog(p->t.c), 0);
  assert_int_equal(send_msg(p, "{\"op\":\"pub\",\"topic\":\"acme/b1\",\"data\":1}"), 0);
  assert_int_equal(send_msg(p, "{\"op\":\"pub\",\"topic\":\"acme/b2\",\"data\":2}"), 0);
  /* Not committed yet: no reply is queued, but two are owed. */
  assert_int_equal(stream_conn_frames_held(p->t.c), 0);
  assert_int_equal(stream_conn_backlog(p->t.c), 2);
  env_run(&p->e);
  assert_int_equal(stream_conn_frames_held(p->t.c), 2); /* the pubacks */
  assert_int_equal(stream_conn_backlog(p->t.c), 2);
  json_decref(drain_all(&p->t));
  assert_int_equal(stream_conn_backlog(p->t.c), 0);
}

static void test_freeing_a_connection_with_a_pub_in_flight_is_safe(void **state) {
  proto_t *p = *state;
  tconn_t x;
  tconn_open(&p->e, &x, NULL, STREAM_SCOPE_PUBLISH);
  const char *pub = "{\"op\":\"pub\",\"topic\":\"acme/z\",\"data\":1}";
  assert_int_equal(stream_conn_handle_message(x.c, pub, strlen(pub)), 0);
  stream_conn_free(x.c);
  env_run(&p->e);
  stream_read_info_t info;
  assert_int_equal(stream_read(p->e.hub, "acme/z", 0, 10, (stream_read_cb)NULL, NULL, &info), -EINVAL);
  store_topic_t st;
  assert_int_equal(store_topic_get(p->e.store, "acme/z", &st), 0);
  assert_int_equal(st.head_seq, 1); /* published all the same */
}

static void test_random_and_mutated_messages_never_crash_or_grow_the_queue(void **state) {
  proto_t *p = *state;
  static const char *seeds[] = {
      "{\"op\":\"sub\",\"topic\":\"acme/a\",\"after\":{\"epoch\":\"e\",\"seq\":1}}",
      "{\"op\":\"pub\",\"ref\":\"c\",\"topic\":\"acme/a\",\"id\":\"i\",\"lane\":\"ephemeral\",\"data\":[1,{}]}",
      "{\"op\":\"unsub\",\"topic\":\"acme/a\"}",
      "{\"op\":\"ping\",\"ref\":\"p\"}",
  };
  unsigned seed = 12345;
  char buf[256];
  for (int i = 0; i < 4000; i++) {
    const char *s = seeds[i % 4];
    size_t len = strlen(s);
    memcpy(buf, s, len);
    for (int k = 0; k < 3; k++) {
      seed = seed * 1103515245u + 12345u;
      size_t at = (seed >> 8) % len;
      seed = seed * 1103515245u + 12345u;
      buf[at] = (char)((seed >> 16) & 0xff);
    }
    seed = seed * 1103515245u + 12345u;
    size_t cut = 1 + (seed >> 8) % len;
    int rc = stream_conn_handle_message(p->t.c, buf, cut);
    assert_true(rc == 0 || rc == -ENOBUFS);
    if (i % 16 == 0) {
      env_run(&p->e);
      json_decref(drain_all(&p->t));
    }
    assert_true(stream_conn_frames_held(p->t.c) <= p->e.cfg.control_queue_max + 1);
    if (stream_conn_close_reason(p->t.c)) break;
  }
  env_run(&p->e);
  json_decref(drain_all(&p->t));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_ping_gets_pong_with_the_same_ref, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sub_replies_subscribed_with_epoch_and_head, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unsub_replies_unsubscribed_or_not_found, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pub_gets_puback_once_durable_and_duplicate_flag, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pub_of_an_ephemeral_acks_with_null_seq, setup, teardown),
      cmocka_unit_test_setup_teardown(test_subscriber_receives_the_published_event_frame, setup, teardown),
      cmocka_unit_test_setup_teardown(test_malformed_messages_get_bad_request_naming_the_field, setup, teardown),
      cmocka_unit_test_setup_teardown(test_other_tenants_and_missing_scopes_are_forbidden, setup, teardown),
      cmocka_unit_test_setup_teardown(test_the_transports_room_check_is_applied, setup, teardown),
      cmocka_unit_test_setup_teardown(test_limits_map_to_too_large_rate_limited_and_too_many_subscriptions, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_overload_and_shutdown_map_to_their_codes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_control_queue_overflow_closes_the_connection_with_a_reason, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_backlog_counts_publishes_in_flight_until_their_replies_are_pulled, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_freeing_a_connection_with_a_pub_in_flight_is_safe, setup, teardown),
      cmocka_unit_test_setup_teardown(test_random_and_mutated_messages_never_crash_or_grow_the_queue, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
