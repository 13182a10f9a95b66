/* Tests for streams/ring.c: push, overwrite of the oldest, lookup, drop. */
#include "streams/helpers.h"

/* Each test's ring, the frames it holds and their counters (ring_setup). */
static stream_stats_t st;
static stream_frames_t fr;
static stream_ring_t r;

static int ring_setup(void **state) {
  (void)state;
  st = (stream_stats_t){0};
  stream__frames_init(&fr, &st, 0);
  stream__ring_init(&r);
  return 0;
}

static stream_frame_t *mk(stream_frames_t *frames, uint64_t seq) {
  stream_evhdr_t h = {.topic = "a/b", .epoch = "e", .seq = seq, .lane = STREAM_LANE_DATA, .ts_ms = 1};
  return stream__frame_event(frames, 0, &h, "1", 1);
}

static void test_ring_lookup_finds_pushed_seqs_and_nothing_else(void **state) {
  (void)state;
  assert_null(stream__ring_get(&r, 1));
  for (uint64_t s = 5; s <= 7; s++) stream__ring_push(&r, 4, mk(&fr, s));
  assert_null(stream__ring_get(&r, 4));
  assert_int_equal(stream__ring_get(&r, 5)->seq, 5);
  assert_int_equal(stream__ring_get(&r, 7)->seq, 7);
  assert_null(stream__ring_get(&r, 8));
  stream__ring_close(&r);
  assert_int_equal(st.frames, 0);
}

static void test_ring_push_overwrites_oldest_when_full(void **state) {
  (void)state;
  for (uint64_t s = 1; s <= 100; s++) stream__ring_push(&r, 10, mk(&fr, s));
  assert_int_equal(r.count, 10);
  assert_int_equal(r.lo, 91);
  assert_int_equal(st.frames, 10); /* the overwritten ones were released */
  assert_null(stream__ring_get(&r, 90));
  for (uint64_t s = 91; s <= 100; s++) assert_int_equal(stream__ring_get(&r, s)->seq, s);
  stream__ring_close(&r);
  assert_int_equal(st.frames, 0);
}

static void test_ring_grows_while_keeping_order_across_wraparound(void **state) {
  (void)state;
  for (uint64_t s = 1; s <= 8; s++) stream__ring_push(&r, 64, mk(&fr, s));
  stream__ring_drop_below(&r, 4); /* start moves inside the array */
  for (uint64_t s = 9; s <= 40; s++) stream__ring_push(&r, 64, mk(&fr, s));
  assert_int_equal(r.lo, 4);
  for (uint64_t s = 4; s <= 40; s++) assert_int_equal(stream__ring_get(&r, s)->seq, s);
  assert_true(r.cap <= 64);
  stream__ring_close(&r);
}

static void test_ring_drop_below_releases_old_entries(void **state) {
  (void)state;
  for (uint64_t s = 1; s <= 6; s++) stream__ring_push(&r, 8, mk(&fr, s));
  stream__ring_drop_below(&r, 5);
  assert_int_equal(st.frames, 2);
  assert_null(stream__ring_get(&r, 4));
  assert_non_null(stream__ring_get(&r, 5));
  stream__ring_drop_below(&r, 100);
  assert_int_equal(r.count, 0);
  stream__ring_close(&r);
}

static void test_ring_restarts_when_a_push_is_not_contiguous(void **state) {
  (void)state;
  for (uint64_t s = 1; s <= 3; s++) stream__ring_push(&r, 8, mk(&fr, s));
  stream__ring_push(&r, 8, mk(&fr, 10));
  assert_null(stream__ring_get(&r, 3));
  assert_int_equal(stream__ring_get(&r, 10)->seq, 10);
  assert_int_equal(st.frames, 1);
  stream__ring_close(&r);
}

/* A push with a smaller max than before keeps only the newest max (a topic whose last
 * subscriber left), across a wrapped array; a larger max lets it grow again. */
static void test_ring_push_with_a_smaller_max_keeps_the_newest(void **state) {
  (void)state;
  for (uint64_t s = 1; s <= 70; s++) stream__ring_push(&r, 64, mk(&fr, s)); /* wrapped */
  stream__ring_push(&r, 4, mk(&fr, 71));
  assert_int_equal(r.count, 4);
  assert_int_equal(r.lo, 68);
  assert_int_equal(st.frames, 4);
  for (uint64_t s = 68; s <= 71; s++) assert_int_equal(stream__ring_get(&r, s)->seq, s);
  assert_null(stream__ring_get(&r, 67));
  for (uint64_t s = 72; s <= 100; s++) stream__ring_push(&r, 64, mk(&fr, s));
  assert_int_equal(r.count, 33);
  for (uint64_t s = 68; s <= 100; s++) assert_int_equal(stream__ring_get(&r, s)->seq, s);
  stream__ring_close(&r);
  assert_int_equal(st.frames, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_ring_lookup_finds_pushed_seqs_and_nothing_else, ring_setup),
      cmocka_unit_test_setup(test_ring_push_overwrites_oldest_when_full, ring_setup),
      cmocka_unit_test_setup(test_ring_push_with_a_smaller_max_keeps_the_newest, ring_setup),
      cmocka_unit_test_setup(test_ring_grows_while_keeping_order_across_wraparound, ring_setup),
      cmocka_unit_test_setup(test_ring_drop_below_releases_old_entries, ring_setup),
      cmocka_unit_test_setup(test_ring_restarts_when_a_push_is_not_contiguous, ring_setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
