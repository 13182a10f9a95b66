/* Tests for streams/frame.c: serialization, headroom, refcounts, accounting. */
#include "streams/helpers.h"

static void test_frame_event_serializes_every_field_once_with_data_last(void **state) {
  (void)state;
  stream_stats_t st = {0};
  stream_evhdr_t h = {.topic = "acme/room-1", .epoch = "00ff", .seq = 42, .id = "evt-\"1", .type = "token",
                      .lane = STREAM_LANE_DATA, .ts_ms = 1764300000123};
  const char *data = "{\"text\":\"a\\nb\"}";
  stream_frame_t *f = stream__frame_event(&st, 16, &h, data, strlen(data));
  size_t len;
  const unsigned char *p = stream_frame_payload(f, &len);
  assert_string_equal((const char *)p,
                      "{\"op\":\"ev\",\"topic\":\"acme/room-1\",\"seq\":42,\"epoch\":\"00ff\",\"id\":\"evt-\\\"1\","
                      "\"type\":\"token\",\"lane\":\"data\",\"ts\":1764300000123,\"data\":{\"text\":\"a\\nb\"}}");
  assert_int_equal(len, strlen((const char *)p));
  assert_memory_equal(p + f->data_off, data, strlen(data));
  assert_int_equal(f->data_len, strlen(data));
  assert_string_equal(stream_frame_topic(f), "acme/room-1");
  assert_string_equal(f->type, "token");
  assert_int_equal(stream_frame_seq(f), 42);
  assert_string_equal(stream_frame_op(f), "ev");
  assert_int_equal(stream_frame_kind(f), STREAM_FRAME_EVENT);
  /* The headroom is writable memory before the payload. */
  unsigned char *m = stream_frame_payload_mut(f, NULL);
  memset(m - 16, 0xAB, 16);
  stream_frame_unref(&f);
  assert_null(f);
}

static void test_frame_ephemeral_has_no_seq_and_null_data_when_absent(void **state) {
  (void)state;
  stream_evhdr_t h = {.topic = "a/b", .epoch = "e", .lane = STREAM_LANE_EPHEMERAL, .ts_ms = 5};
  stream_frame_t *f = stream__frame_event(NULL, 0, &h, NULL, 0);
  assert_string_equal((const char *)f->payload,
                      "{\"op\":\"ev\",\"topic\":\"a/b\",\"epoch\":\"e\",\"lane\":\"ephemeral\",\"ts\":5,\"data\":null}");
  assert_null(f->type);
  stream_frame_unref(&f);
}

static void test_frame_refcount_frees_on_last_unref_and_accounts_bytes(void **state) {
  (void)state;
  stream_stats_t st = {0};
  json_t *o = json_pack("{s:s}", "op", "pong");
  stream_frame_t *f = stream__frame_control(&st, 8, "pong", NULL, o);
  json_decref(o);
  assert_int_equal(st.frames, 1);
  assert_true(st.frame_bytes >= f->len + 8);
  stream_frame_t *g = stream_frame_ref(f);
  stream_frame_t *h = stream_frame_ref(f);
  stream_frame_unref(&f);
  stream_frame_unref(&g);
  assert_int_equal(st.frames, 1);
  assert_string_equal((const char *)h->payload, "{\"op\":\"pong\"}");
  assert_int_equal(stream_frame_kind(h), STREAM_FRAME_CONTROL);
  stream_frame_unref(&h);
  assert_int_equal(st.frames, 0);
  assert_int_equal(st.frame_bytes, 0);
  stream_frame_unref(&h); /* NULL is fine */
  stream_frame_unref(NULL);
}

static void test_lane_names_parse_both_ways(void **state) {
  (void)state;
  int lane = -1;
  assert_int_equal(stream__lane_parse("control", &lane), 0);
  assert_int_equal(lane, STREAM_LANE_CONTROL);
  assert_int_equal(stream__lane_parse("ephemeral", &lane), 0);
  assert_int_equal(lane, STREAM_LANE_EPHEMERAL);
  assert_int_equal(stream__lane_parse("bulk", &lane), -EINVAL);
  assert_string_equal(stream__lane_name(STREAM_LANE_DATA), "data");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_frame_event_serializes_every_field_once_with_data_last),
      cmocka_unit_test(test_frame_ephemeral_has_no_seq_and_null_data_when_absent),
      cmocka_unit_test(test_frame_refcount_frees_on_last_unref_and_accounts_bytes),
      cmocka_unit_test(test_lane_names_parse_both_ways),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
