/* Tests for streams/bucket.c: token buckets on an explicit clock. */
#include "streams/helpers.h"

static void test_bucket_allows_a_burst_then_refills_at_the_rate(void **state) {
  (void)state;
  stream_bucket_t b;
  uint64_t now = 1000;
  stream__bucket_init(&b, 5, now);
  uint32_t retry = 0;
  for (int i = 0; i < 5; i++) {
    assert_true(stream__bucket_check(&b, 10, 5, now, &retry));
    stream__bucket_take(&b);
  }
  assert_false(stream__bucket_check(&b, 10, 5, now, &retry));
  assert_int_equal(retry, 100); /* 10/s: one token per 100 ms */
  now += 50;
  assert_false(stream__bucket_check(&b, 10, 5, now, &retry));
  assert_int_equal(retry, 50);
  now += 50;
  assert_true(stream__bucket_check(&b, 10, 5, now, &retry));
  stream__bucket_take(&b);
  now += 10000; /* a long pause refills to the burst, not beyond */
  for (int i = 0; i < 5; i++) {
    assert_true(stream__bucket_check(&b, 10, 5, now, &retry));
    stream__bucket_take(&b);
  }
  assert_false(stream__bucket_check(&b, 10, 5, now, &retry));
}

static void test_bucket_with_rate_zero_is_unlimited(void **state) {
  (void)state;
  stream_bucket_t b;
  stream__bucket_init(&b, 0, 0);
  for (int i = 0; i < 1000; i++) {
    assert_true(stream__bucket_check(&b, 0, 0, 0, NULL));
    stream__bucket_take(&b);
  }
}

static void test_bucket_clock_going_back_does_not_refill(void **state) {
  (void)state;
  stream_bucket_t b;
  stream__bucket_init(&b, 1, 5000);
  stream__bucket_take(&b);
  uint32_t retry;
  assert_false(stream__bucket_check(&b, 1, 1, 4000, &retry));
  assert_int_equal(retry, 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bucket_allows_a_burst_then_refills_at_the_rate),
      cmocka_unit_test(test_bucket_with_rate_zero_is_unlimited),
      cmocka_unit_test(test_bucket_clock_going_back_does_not_refill),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
