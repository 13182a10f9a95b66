/* Tests for base/hist.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/hist.h"

static void test_hist_counts_values_into_first_bucket_not_below_them(void **state) {
  (void)state;
  static const uint64_t bounds[] = {10, 100, 1000};
  base_hist_t h;
  base_hist_init(&h, bounds, 3);
  base_hist_record(&h, 0);
  base_hist_record(&h, 10);
  base_hist_record(&h, 11);
  base_hist_record(&h, 1000);
  base_hist_record(&h, 1001);
  assert_int_equal(h.counts[0], 2);
  assert_int_equal(h.counts[1], 1);
  assert_int_equal(h.counts[2], 1);
  assert_int_equal(h.counts[3], 1);
  assert_int_equal(h.count, 5);
  assert_int_equal(h.sum_us, 2022);
}

static void test_hist_record_n_counts_like_n_single_records(void **state) {
  (void)state;
  static const uint64_t bounds[] = {10, 100, 1000};
  base_hist_t a, b;
  base_hist_init(&a, bounds, 3);
  base_hist_init(&b, bounds, 3);
  const uint64_t values[] = {0, 10, 11, 999, 1000, 1001, 5000};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    base_hist_record_n(&a, values[i], 3);
    for (int k = 0; k < 3; k++) base_hist_record(&b, values[i]);
  }
  base_hist_record_n(&a, 50, 0); /* nothing */
  assert_memory_equal(a.counts, b.counts, sizeof a.counts);
  assert_int_equal(a.count, 21);
  assert_int_equal(a.count, b.count);
  assert_int_equal(a.sum_us, b.sum_us);
}

static void test_hist_quantile_interpolates_inside_a_bucket(void **state) {
  (void)state;
  static const uint64_t bounds[] = {100, 200};
  base_hist_t h;
  base_hist_init(&h, bounds, 2);
  for (int i = 0; i < 10; i++) base_hist_record(&h, 150);
  assert_int_equal(base_hist_quantile(&h, 0.5), 150);
  assert_int_equal(base_hist_quantile(&h, 1.0), 200);
  base_hist_t empty;
  base_hist_init(&empty, NULL, 0);
  assert_int_equal(base_hist_quantile(&empty, 0.99), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hist_counts_values_into_first_bucket_not_below_them),
      cmocka_unit_test(test_hist_record_n_counts_like_n_single_records),
      cmocka_unit_test(test_hist_quantile_interpolates_inside_a_bucket),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
