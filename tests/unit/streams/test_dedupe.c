/* Tests for streams/dedupe.c: the dedupe window. */
#include "streams/helpers.h"

static void test_dedupe_finds_ids_inside_the_window_only(void **state) {
  (void)state;
  stream_dedupe_t d;
  stream__dedupe_init(&d);
  stream__dedupe_add(&d, "a", 1, 1000, false);
  stream__dedupe_add(&d, "b", 2, 2000, false);
  stream__dedupe_add(&d, "c", 3, 3000, false);
  assert_int_equal(stream__dedupe_find(&d, "b", 0)->seq, 2);
  assert_null(stream__dedupe_find(&d, "zz", 0));
  /* Window starts at 2000: "a" is forgotten (and freed), "b" and "c" remain. */
  assert_null(stream__dedupe_find(&d, "a", 2000));
  assert_int_equal(stream__dedupe_count(&d), 2);
  assert_int_equal(stream__dedupe_find(&d, "c", 2000)->seq, 3);
  assert_null(stream__dedupe_find(&d, "b", 2500)); /* expired on lookup */
  assert_int_equal(stream__dedupe_count(&d), 1);
  stream__dedupe_close(&d);
}

static void test_dedupe_keeps_pending_entries_whatever_their_age(void **state) {
  (void)state;
  stream_dedupe_t d;
  stream__dedupe_init(&d);
  stream_dedupe_entry_t *e = stream__dedupe_add(&d, "p", 9, 10, true);
  assert_ptr_equal(stream__dedupe_find(&d, "p", 99999), e);
  e->pending = false;
  assert_null(stream__dedupe_find(&d, "p", 99999));
  stream__dedupe_close(&d);
}

static void test_dedupe_add_replaces_an_existing_id(void **state) {
  (void)state;
  stream_dedupe_t d;
  stream__dedupe_init(&d);
  stream__dedupe_add(&d, "x", 1, 10, false);
  stream__dedupe_add(&d, "x", 7, 20, false);
  assert_int_equal(stream__dedupe_count(&d), 1);
  assert_int_equal(stream__dedupe_find(&d, "x", 0)->seq, 7);
  stream_dedupe_entry_t *e = stream__dedupe_find(&d, "x", 0);
  stream__dedupe_remove(&d, e);
  assert_int_equal(stream__dedupe_count(&d), 0);
  stream__dedupe_close(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dedupe_finds_ids_inside_the_window_only),
      cmocka_unit_test(test_dedupe_keeps_pending_entries_whatever_their_age),
      cmocka_unit_test(test_dedupe_add_replaces_an_existing_id),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
