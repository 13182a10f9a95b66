/* Tests for streams/frame.c: serialization, headroom, refcounts, accounting, the lists of
 * released frames. */
#include "fastpath.h"
#include "streams/helpers.h"

static void test_frame_event_serializes_every_field_once_with_data_last(void **state) {
  (void)state;
  stream_stats_t st = {0};
  stream_frames_t fr;
  stream__frames_init(&fr, &st, 0);
  stream_evhdr_t h = {.topic = "acme/room-1", .epoch = "00ff", .seq = 42, .id = "evt-\"1", .type = "token",
                      .lane = STREAM_LANE_DATA, .ts_ms = 1764300000123};
  const char *data = "{\"text\":\"a\\nb\"}";
  stream_frame_t *f = stream__frame_event(&fr, 16, &h, data, strlen(data));
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
  stream_frames_t fr;
  stream__frames_init(&fr, &st, 0);
  json_t *o = json_pack("{s:s}", "op", "pong");
  stream_frame_t *f = stream__frame_control(&fr, 8, "pong", NULL, o);
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

/* A control frame is one allocation of exactly its parts, small or large (over the 512
 * bytes dumped on the stack first), with jansson's compact text. */
static void test_control_frame_is_one_exact_allocation_with_janssons_text(void **state) {
  (void)state;
  stream_stats_t st = {0};
  stream_frames_t fr;
  stream__frames_init(&fr, &st, 0);
  for (int big = 0; big < 2; big++) {
    json_t *o = json_pack("{s:s,s:s,s:[i,s]}", "op", "gap", "topic", "acme/r", "x", 1, "\"\n\xc3\xa9");
    if (big) {
      char pad[2000];
      memset(pad, 'p', sizeof pad - 1);
      pad[sizeof pad - 1] = '\0';
      json_object_set_new(o, "pad", json_string(pad));
    }
    char *want = json_dumps(o, JSON_COMPACT);
    stream_frame_t *f = stream__frame_control(&fr, 16, "gap", "acme/r", o);
    json_decref(o);
    size_t len;
    const unsigned char *p = stream_frame_payload(f, &len);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(p, want, len);
    assert_int_equal(p[len], '\0');
    assert_int_equal(f->size, sizeof(stream_frame_t) + 16 + len + 1 + strlen("acme/r") + 1);
    assert_int_equal(st.frame_bytes, f->size);
    assert_string_equal(stream_frame_topic(f), "acme/r");
    assert_int_equal(stream_frame_kind(f), STREAM_FRAME_CONTROL);
    stream_frame_unref(&f);
    assert_int_equal(st.frames, 0);
    free(want);
  }
}

/* The hand-written appenders fill exactly the size the caller computed. */
static void test_control_frame_alloc_and_appenders_fill_the_exact_size(void **state) {
  (void)state;
  stream_stats_t st = {0};
  stream_frames_t fr;
  stream__frames_init(&fr, &st, 0);
  const char *ref = "r\"\x01";
  size_t len = sizeof("{\"op\":\"pong\",\"ref\":,\"n\":}") - 1 + stream__json_escape_len(ref) +
               stream__cw_int_len(-9223372036854775807ll - 1);
  stream_cw_t w;
  stream_frame_t *f = stream__frame_control_alloc(&fr, 0, "pong", NULL, len, &w);
  STREAM_CW_LIT(&w, "{\"op\":\"pong\",\"ref\":");
  stream__cw_str(&w, ref);
  STREAM_CW_LIT(&w, ",\"n\":");
  stream__cw_int(&w, -9223372036854775807ll - 1);
  STREAM_CW_LIT(&w, "}");
  assert_ptr_equal(w.p, (char *)f->payload + len);
  assert_string_equal((const char *)f->payload, "{\"op\":\"pong\",\"ref\":\"r\\\"\\u0001\",\"n\":-9223372036854775808}");
  assert_null(stream_frame_topic(f));
  assert_string_equal(stream_frame_op(f), "pong");
  assert_int_equal(stream_frame_lane(f), STREAM_LANE_CONTROL);
  assert_int_equal(f->size, sizeof(stream_frame_t) + len + 1);
  stream_frame_unref(&f);
  assert_int_equal(st.frame_bytes, 0);
}

/* Integers are written two digits at a time: every digit count, both signs, the ends. */
static void test_cw_int_writes_what_printf_writes_for_every_digit_count(void **state) {
  (void)state;
  int64_t vals[64 * 4 + 4];
  size_t n = 0;
  int64_t p = 1;
  for (int d = 0; d < 19; d++) { /* 10^0 .. 10^18 */
    vals[n++] = p;
    vals[n++] = p - 1;
    vals[n++] = -p;
    vals[n++] = p + 7 * (p / 10);
    if (d < 18) p *= 10;
  }
  vals[n++] = INT64_MAX;
  vals[n++] = INT64_MIN;
  vals[n++] = 0;
  vals[n++] = 1764300000123;
  for (size_t i = 0; i < n; i++) {
    char want[32], got[32];
    snprintf(want, sizeof want, "%lld", (long long)vals[i]);
    stream_cw_t w = {.p = got};
    stream__cw_int(&w, vals[i]);
    *w.p = '\0';
    assert_string_equal(got, want);
    assert_int_equal(stream__cw_int_len(vals[i]), strlen(want));
  }
}

/* An event frame of the given data size on fr. */
static stream_frame_t *event_of(stream_frames_t *fr, uint64_t seq, size_t data_len) {
  static char data[4096];
  memset(data, '7', sizeof data);
  stream_evhdr_t h = {.topic = "acme/r", .epoch = "e", .seq = seq, .lane = STREAM_LANE_DATA, .ts_ms = 1};
  return stream__frame_event(fr, 16, &h, data, data_len);
}

static void test_a_released_frame_is_reused_by_the_next_frame_of_its_size_class(void **state) {
  (void)state;
  stream_stats_t st = {0};
  stream_frames_t fr;
  stream__frames_init(&fr, &st, 1 << 20);
  stream_frame_t *a = event_of(&fr, 1, 200);
  assert_int_equal(a->size % STREAM_FRAME_POOL_CLASS, 0); /* pooled: the block of its class */
  assert_true(a->size >= sizeof(stream_frame_t) + 16 + a->len + 1);
  assert_int_equal(st.frames, 1);
  assert_int_equal(st.frame_bytes, a->size);
  void *was = a;
  size_t block = a->size;
  stream_frame_unref(&a);
  assert_int_equal(st.frames, 0);
  assert_int_equal(st.frame_bytes, 0);
  assert_int_equal(fr.free_bytes, block);
  assert_int_equal(st.frame_pool_bytes, block);
  /* A control frame of the same class takes the same block, written afresh. */
  stream_cw_t w;
  size_t len = block - sizeof(stream_frame_t) - 16 - 1 - 7 - 1; /* payload, NUL, "acme/r", NUL */
  stream_frame_t *c = stream__frame_control_alloc(&fr, 16, "pong", "acme/r", len, &w);
  assert_ptr_equal(c, was);
  assert_int_equal(c->size, block);
  assert_int_equal(fr.free_bytes, 0);
  assert_int_equal(st.frame_pool_bytes, 0);
  assert_int_equal(c->refs, 1);
  assert_int_equal(c->seq, 0);
  assert_string_equal(stream_frame_topic(c), "acme/r");
  assert_int_equal(stream_frame_kind(c), STREAM_FRAME_CONTROL);
  /* A frame of another class does not. */
  stream_frame_t *b = event_of(&fr, 2, 600);
  assert_true(b->size > block);
  stream_frame_unref(&b);
  stream_frame_t *d = event_of(&fr, 3, 200);
  assert_ptr_not_equal(d, was);
  stream_frame_unref(&c);
  stream_frame_unref(&d);
  assert_int_equal(st.frames, 0);
  stream__frames_close(&fr);
  assert_int_equal(fr.free_bytes, 0);
}

static void test_a_shared_frame_goes_to_the_lists_only_with_its_last_reference(void **state) {
  (void)state;
  stream_stats_t st = {0};
  stream_frames_t fr;
  stream__frames_init(&fr, &st, 1 << 20);
  stream_frame_t *f = event_of(&fr, 9, 100);
  stream_frame_t *ring = stream_frame_ref(f), *pull = stream_frame_ref(f);
  stream_frame_unref(&f);
  stream_frame_unref(&ring);
  assert_int_equal(fr.free_bytes, 0);
  assert_int_equal(st.frames, 1);
  assert_int_equal(stream_frame_seq(pull), 9);
  assert_non_null(strstr((const char *)pull->payload, "\"seq\":9,"));
  /* While it is still held, a new frame of its class gets another block. */
  stream_frame_t *g = event_of(&fr, 10, 100);
  assert_ptr_not_equal(g, pull);
  stream_frame_unref(&g);
  size_t block = pull->size;
  stream_frame_unref(&pull);
  assert_int_equal(fr.free_bytes, 2 * block);
  assert_int_equal(st.frames, 0);
  stream__frames_close(&fr);
}

static void test_the_lists_keep_at_most_max_bytes_and_frames_over_1_kib_are_freed(void **state) {
  (void)state;
  stream_stats_t st = {0};
  stream_frames_t fr;
  stream_frame_t *f[6];
  size_t block;
  stream__frames_init(&fr, &st, 0);
  stream_frame_t *probe = event_of(&fr, 1, 200);
  assert_int_equal(probe->pool_class, 0); /* lists off: exact size, freed */
  stream_frame_unref(&probe);
  assert_int_equal(fr.free_bytes, 0);

  stream__frames_init(&fr, &st, 1 << 20);
  probe = event_of(&fr, 1, 200);
  block = probe->size;
  stream_frame_unref(&probe);
  stream__frames_close(&fr);
  stream__frames_init(&fr, &st, 2 * block); /* room for two blocks */
  for (int i = 0; i < 6; i++) f[i] = event_of(&fr, (uint64_t)i + 1, 200);
  for (int i = 0; i < 6; i++) stream_frame_unref(&f[i]);
  assert_int_equal(fr.free_bytes, 2 * block);
  assert_int_equal(st.frames, 0);
  assert_int_equal(st.frame_bytes, 0);
  /* The next two frames take the two kept blocks back. */
  stream_frame_t *a = event_of(&fr, 7, 200), *b = event_of(&fr, 8, 200);
  assert_int_equal(fr.free_bytes, 0);
  stream_frame_unref(&a);
  stream_frame_unref(&b);

  stream_frame_t *big = event_of(&fr, 9, 2000);
  assert_int_equal(big->pool_class, 0);
  assert_true(big->size > STREAM_FRAME_POOL_CLASSES * STREAM_FRAME_POOL_CLASS);
  stream_frame_unref(&big);
  assert_int_equal(fr.free_bytes, 2 * block);

  /* Closed: the lists are freed and later releases free at once. */
  stream_frame_t *late = event_of(&fr, 10, 200);
  stream__frames_close(&fr);
  assert_int_equal(fr.free_bytes, 0);
  stream_frame_unref(&late);
  assert_int_equal(fr.free_bytes, 0);
  assert_int_equal(st.frames, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_frame_event_serializes_every_field_once_with_data_last),
      cmocka_unit_test(test_frame_ephemeral_has_no_seq_and_null_data_when_absent),
      cmocka_unit_test(test_frame_refcount_frees_on_last_unref_and_accounts_bytes),
      cmocka_unit_test(test_lane_names_parse_both_ways),
      cmocka_unit_test(test_control_frame_is_one_exact_allocation_with_janssons_text),
      cmocka_unit_test(test_control_frame_alloc_and_appenders_fill_the_exact_size),
      cmocka_unit_test(test_cw_int_writes_what_printf_writes_for_every_digit_count),
      cmocka_unit_test(test_a_released_frame_is_reused_by_the_next_frame_of_its_size_class),
      cmocka_unit_test(test_a_shared_frame_goes_to_the_lists_only_with_its_last_reference),
      cmocka_unit_test(test_the_lists_keep_at_most_max_bytes_and_frames_over_1_kib_are_freed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
