/* Unit tests for tests/bench/wsload_stats.c: the per-connection sequence check (holes,
 * duplicates, late events), loss against acknowledged seqs, exact percentiles after the
 * radix sort, the sample reservoir, and the result blob's round trip through a pipe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "wsload.h"

static void see_all(wl_seq_t *s, const uint64_t *seqs, size_t n) {
  for (size_t i = 0; i < n; i++) wl_seq_see(s, seqs[i]);
}

static void test_seq_counts_nothing_wrong_for_a_dense_stream(void **state) {
  (void)state;
  wl_seq_t s = {0};
  for (uint64_t q = 41; q <= 1041; q++) wl_seq_see(&s, q);
  assert_int_equal(s.first, 41);
  assert_int_equal(s.last, 1041);
  assert_int_equal(s.unique, 1001);
  assert_int_equal(s.holes + s.duplicates + s.reordered, 0);
}

static void test_seq_counts_a_hole_and_a_duplicate(void **state) {
  (void)state;
  static const uint64_t seqs[] = {1, 2, 3, 6, 7, 7, 8};
  wl_seq_t s = {0};
  see_all(&s, seqs, sizeof(seqs) / sizeof(seqs[0]));
  assert_int_equal(s.holes, 2);
  assert_int_equal(s.duplicates, 1);
  assert_int_equal(s.reordered, 0);
  assert_int_equal(s.unique, 6);
}

static void test_seq_turns_a_late_event_from_hole_into_reordered(void **state) {
  (void)state;
  static const uint64_t seqs[] = {1, 2, 4, 5, 3, 3};
  wl_seq_t s = {0};
  see_all(&s, seqs, sizeof(seqs) / sizeof(seqs[0]));
  assert_int_equal(s.holes, 0);
  assert_int_equal(s.reordered, 1);
  assert_int_equal(s.duplicates, 1);
  assert_int_equal(s.unique, 5);
}

static void test_seq_treats_an_event_before_the_first_as_late_not_a_hole(void **state) {
  (void)state;
  static const uint64_t seqs[] = {10, 11, 9};
  wl_seq_t s = {0};
  see_all(&s, seqs, sizeof(seqs) / sizeof(seqs[0]));
  assert_int_equal(s.first, 9);
  assert_int_equal(s.holes, 0);
  assert_int_equal(s.reordered, 1);
}

static void test_seq_survives_jumps_wider_than_its_window(void **state) {
  (void)state;
  wl_seq_t s = {0};
  wl_seq_see(&s, 1);
  wl_seq_see(&s, 200);
  wl_seq_see(&s, 200);
  assert_int_equal(s.holes, 198);
  assert_int_equal(s.duplicates, 1);
}

static void test_loss_counts_head_tail_and_holes_against_acked_seqs(void **state) {
  (void)state;
  wl_topic_rec_t t = {.min_seq = 5, .max_seq = 104, .acked = 100};
  uint64_t exp;
  wl_conn_rec_t all = {.subscribed = 1, .first = 5, .last = 104, .unique = 100};
  assert_int_equal(wl_loss_for(&all, &t, &exp), 0);
  assert_int_equal(exp, 100);
  wl_conn_rec_t partial = {.subscribed = 1, .first = 8, .last = 100, .unique = 90, .holes = 3};
  assert_int_equal(wl_loss_for(&partial, &t, &exp), 3 + 3 + 4);
  wl_conn_rec_t none = {.subscribed = 1};
  assert_int_equal(wl_loss_for(&none, &t, &exp), 100);
  wl_topic_rec_t quiet = {.min_seq = UINT64_MAX, .max_seq = 0, .acked = 0};
  assert_int_equal(wl_loss_for(&none, &quiet, &exp), 0);
  assert_int_equal(exp, 0);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static void test_radix_sort_matches_qsort(void **state) {
  (void)state;
  size_t n = 100003;
  uint32_t *a = malloc(n * sizeof(uint32_t)), *b = malloc(n * sizeof(uint32_t));
  uint64_t x = 88172645463325252ULL;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    a[i] = b[i] = (uint32_t)(i % 3 == 0 ? x % 1000 : x);
  }
  wl_samples_sort(a, n);
  qsort(b, n, sizeof(uint32_t), cmp_u32);
  assert_memory_equal(a, b, n * sizeof(uint32_t));
  free(a);
  free(b);
}

static void test_percentile_uses_the_nearest_rank(void **state) {
  (void)state;
  uint32_t v[1000];
  for (uint32_t i = 0; i < 1000; i++) v[i] = i + 1; /* 1..1000 */
  assert_int_equal(wl_percentile(v, 1000, 0.5), 500);
  assert_int_equal(wl_percentile(v, 1000, 0.99), 990);
  assert_int_equal(wl_percentile(v, 1000, 0.999), 999);
  assert_int_equal(wl_percentile(v, 1000, 1.0), 1000);
  assert_int_equal(wl_percentile(v, 1, 0.999), 1);
  assert_int_equal(wl_percentile(v, 0, 0.5), 0);
}

static void test_samples_keep_everything_up_to_max_then_a_reservoir(void **state) {
  (void)state;
  wl_samples_t s;
  wl_samples_init(&s, 1000, 42);
  for (uint64_t i = 0; i < 1000; i++) wl_samples_add(&s, i);
  assert_int_equal(s.n, 1000);
  for (uint64_t i = 0; i < 9000; i++) wl_samples_add(&s, 5000000000ULL); /* clamps to u32 */
  assert_int_equal(s.n, 1000);
  assert_int_equal(s.seen, 10000);
  assert_int_equal(s.max_us, UINT32_MAX);
  size_t big = 0;
  for (uint64_t i = 0; i < s.n; i++) big += s.v[i] == UINT32_MAX;
  assert_true(big > 800 && big < 980); /* about 90% of a uniform reservoir */
  wl_samples_close(&s);
}

static void test_result_blob_round_trips_through_a_pipe(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  wl_result_t r;
  memset(&r, 0, sizeof(r));
  r.c.opened = 7;
  r.c.ev_received = 3;
  wl_samples_init(&r.lat, 100, 1);
  wl_samples_init(&r.ack, 100, 2);
  wl_samples_add(&r.lat, 11);
  wl_samples_add(&r.lat, 12);
  wl_samples_add(&r.ack, 99);
  r.nconn_recs = 2;
  r.conn_recs = calloc(2, sizeof(wl_conn_rec_t));
  r.conn_recs[1].last = 77;
  r.ntopics = 1;
  r.topic_recs = calloc(1, sizeof(wl_topic_rec_t));
  r.topic_recs[0].max_seq = 5;
  assert_int_equal(wl_result_write(fds[1], &r), 0);
  wl_result_t back;
  assert_int_equal(wl_result_read(fds[0], &back), 0);
  assert_int_equal(back.c.opened, 7);
  assert_int_equal(back.lat.n, 2);
  assert_int_equal(back.lat.v[1], 12);
  assert_int_equal(back.ack.v[0], 99);
  assert_int_equal(back.conn_recs[1].last, 77);
  assert_int_equal(back.topic_recs[0].max_seq, 5);
  close(fds[1]);
  wl_result_t eof;
  assert_int_not_equal(wl_result_read(fds[0], &eof), 0);
  close(fds[0]);
  wl_result_close(&r);
  wl_result_close(&back);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seq_counts_nothing_wrong_for_a_dense_stream),
      cmocka_unit_test(test_seq_counts_a_hole_and_a_duplicate),
      cmocka_unit_test(test_seq_turns_a_late_event_from_hole_into_reordered),
      cmocka_unit_test(test_seq_treats_an_event_before_the_first_as_late_not_a_hole),
      cmocka_unit_test(test_seq_survives_jumps_wider_than_its_window),
      cmocka_unit_test(test_loss_counts_head_tail_and_holes_against_acked_seqs),
      cmocka_unit_test(test_radix_sort_matches_qsort),
      cmocka_unit_test(test_percentile_uses_the_nearest_rank),
      cmocka_unit_test(test_samples_keep_everything_up_to_max_then_a_reservoir),
      cmocka_unit_test(test_result_blob_round_trips_through_a_pipe),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
