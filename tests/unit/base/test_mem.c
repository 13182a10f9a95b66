/* Tests for base/mem.c: xgrow, the growable-buffer step the buffers of every folder use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/mem.h"

static void test_xgrow_starts_at_first_and_doubles_until_need_fits(void **state) {
  (void)state;
  size_t cap = 0;
  char *p = xgrow(NULL, &cap, 1, 64);
  assert_non_null(p);
  assert_int_equal(cap, 64);
  p = xgrow(p, &cap, 64, 64); /* fits: nothing changes */
  assert_int_equal(cap, 64);
  memset(p, 'a', 64);
  p = xgrow(p, &cap, 65, 64);
  assert_int_equal(cap, 128);
  p = xgrow(p, &cap, 1000, 64);
  assert_int_equal(cap, 1024);
  for (int i = 0; i < 64; i++) assert_int_equal(p[i], 'a'); /* contents kept */
  free(p);
}

static void test_xgrow_returns_the_same_pointer_when_it_fits(void **state) {
  (void)state;
  size_t cap = 0;
  char *p = xgrow(NULL, &cap, 10, 16);
  char *q = xgrow(p, &cap, 16, 16);
  assert_ptr_equal(p, q);
  assert_int_equal(cap, 16);
  free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_xgrow_starts_at_first_and_doubles_until_need_fits),
      cmocka_unit_test(test_xgrow_returns_the_same_pointer_when_it_fits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
