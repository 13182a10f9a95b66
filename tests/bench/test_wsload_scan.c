/* Unit tests for tests/bench/wsload_scan.c: the op of a message whatever its key order,
 * and an event's seq, t0 and warm-up mark as the daemon and the peer write them, in other
 * orders, with whitespace, with look-alike keys inside strings, and missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wsload.h"

static wl_op_t op_of(const char *s) { return wl_scan_op(s, strlen(s)); }

static wl_ev_scan_t ev_of(const char *s) {
  wl_ev_scan_t ev;
  wl_scan_ev(s, strlen(s), &ev);
  return ev;
}

static void test_scan_op_reads_every_op_first_or_anywhere(void **state) {
  (void)state;
  assert_int_equal(op_of("{\"op\":\"ev\",\"seq\":1}"), WL_OP_EV);
  assert_int_equal(op_of("{\"op\":\"puback\",\"ref\":\"1\"}"), WL_OP_PUBACK);
  assert_int_equal(op_of("{\"op\":\"pong\"}"), WL_OP_PONG);
  assert_int_equal(op_of("{\"op\":\"subscribed\",\"head\":0}"), WL_OP_SUBSCRIBED);
  assert_int_equal(op_of("{\"op\":\"gap\"}"), WL_OP_GAP);
  assert_int_equal(op_of("{\"op\":\"error\",\"code\":\"x\"}"), WL_OP_ERROR);
  assert_int_equal(op_of("{\"seq\":1, \"op\" : \"ev\"}"), WL_OP_EV);
  assert_int_equal(op_of("{ \"op\":\"puback\"}"), WL_OP_PUBACK);
}

static void test_scan_op_needs_the_whole_name(void **state) {
  (void)state;
  assert_int_equal(op_of("{\"op\":\"eve\"}"), WL_OP_OTHER);
  assert_int_equal(op_of("{\"op\":\"e\"}"), WL_OP_OTHER);
  assert_int_equal(op_of("{\"op\":\"ev"), WL_OP_OTHER); /* cut before the closing quote */
  assert_int_equal(op_of("{\"op\":1}"), WL_OP_OTHER);
  assert_int_equal(op_of("{\"type\":\"ev\"}"), WL_OP_OTHER);
  assert_int_equal(op_of(""), WL_OP_OTHER);
  assert_int_equal(wl_scan_op("{\"op\":\"ev\"}", 9), WL_OP_OTHER); /* length respected */
}

static void test_scan_ev_reads_the_daemons_event(void **state) {
  (void)state;
  wl_ev_scan_t ev = ev_of(
      "{\"op\":\"ev\",\"topic\":\"bench/s1-200-1-t0\",\"seq\":42,\"epoch\":\"e\",\"type\":\"bench\","
      "\"lane\":\"data\",\"ts\":1764300000123,\"data\":{\"t0\":1764300000123456,\"pad\":\"xx\"}}");
  assert_true(ev.has_seq);
  assert_int_equal(ev.seq, 42);
  assert_true(ev.has_t0);
  assert_int_equal(ev.t0_us, 1764300000123456ULL);
  assert_false(ev.warm);
}

static void test_scan_ev_sees_the_warm_up_mark_after_t0(void **state) {
  (void)state;
  wl_ev_scan_t ev = ev_of("{\"op\":\"ev\",\"seq\":7,\"data\":{\"t0\":1764300000123456,\"w\":1,\"pad\":\"\"}}");
  assert_true(ev.has_t0);
  assert_true(ev.warm);
  ev = ev_of("{\"op\":\"ev\",\"seq\":7,\"data\":{\"t0\":1764300000123456,\"w\":0}}");
  assert_false(ev.warm);
}

static void test_scan_ev_takes_a_t0_in_ms_as_ms(void **state) {
  (void)state;
  wl_ev_scan_t ev = ev_of("{\"op\":\"ev\",\"seq\":1,\"data\":{\"t0\":1764300000123}}");
  assert_int_equal(ev.t0_us, 1764300000123000ULL);
}

static void test_scan_ev_finds_fields_in_any_order(void **state) {
  (void)state;
  wl_ev_scan_t ev = ev_of("{\"data\":{\"t0\":1764300000123456},\"op\":\"ev\",\"seq\":9}");
  assert_true(ev.has_seq);
  assert_int_equal(ev.seq, 9);
  assert_true(ev.has_t0);
  assert_int_equal(ev.t0_us, 1764300000123456ULL);
  ev = ev_of("{\"op\":\"ev\",\"seq\" : \"12\",\"data\":{ \"t0\" :\t1764300000123456 }}");
  assert_int_equal(ev.seq, 12);
  assert_int_equal(ev.t0_us, 1764300000123456ULL);
}

static void test_scan_ev_reads_t0_wherever_data_puts_it(void **state) {
  (void)state;
  /* a brace in a string before data; t0 not first in data; data not an object first */
  wl_ev_scan_t ev = ev_of("{\"op\":\"ev\",\"seq\":1,\"type\":\"{x\",\"data\":{\"t0\":1764300000123456}}");
  assert_int_equal(ev.t0_us, 1764300000123456ULL);
  ev = ev_of("{\"op\":\"ev\",\"seq\":1,\"data\":{\"pad\":\"x\",\"t0\":1764300000123456,\"w\":1}}");
  assert_int_equal(ev.t0_us, 1764300000123456ULL);
  assert_true(ev.warm);
  ev = ev_of("{\"op\":\"ev\",\"seq\":1,\"data\":{\"t0\"");
  assert_false(ev.has_t0);
  ev = ev_of("{\"op\":\"ev\",\"seq\":1,\"x\":{},\"data\":{\"t0\":5}}");
  assert_int_equal(ev.t0_us, 5000);
}

static void test_scan_ev_ignores_look_alike_keys_inside_strings(void **state) {
  (void)state;
  /* "seq" and "t0" as values, and inside an escaped string, are no keys */
  wl_ev_scan_t ev = ev_of("{\"op\":\"ev\",\"type\":\"seq\",\"id\":\"a\\\"t0\\\":5\",\"seq\":3,"
                          "\"data\":{\"t0\":1764300000123456}}");
  assert_int_equal(ev.seq, 3);
  assert_int_equal(ev.t0_us, 1764300000123456ULL);
}

static void test_scan_ev_reports_missing_fields(void **state) {
  (void)state;
  wl_ev_scan_t ev = ev_of("{\"op\":\"ev\",\"topic\":\"a/b\",\"data\":{\"x\":1}}");
  assert_false(ev.has_seq);
  assert_false(ev.has_t0);
  ev = ev_of("{\"op\":\"ev\",\"seq\":null,\"data\":{\"t0\":\"1\"}}");
  assert_false(ev.has_seq);
  assert_false(ev.has_t0); /* t0 must be a number */
  ev = ev_of("{\"op\":\"ev\",\"seq\":5,\"data\":{\"t0\":");
  assert_true(ev.has_seq);
  assert_false(ev.has_t0);
}

static void test_json_helpers_read_numbers_and_strings(void **state) {
  (void)state;
  const char *m = "{\"op\":\"puback\",\"ref\":\"17\",\"seq\":58,\"duplicate\":false}";
  uint64_t v = 0;
  assert_true(wl_json_u64(m, strlen(m), "\"ref\"", &v));
  assert_int_equal(v, 17);
  assert_true(wl_json_u64(m, strlen(m), "\"seq\"", &v));
  assert_int_equal(v, 58);
  assert_false(wl_json_u64(m, strlen(m), "\"head\"", &v));
  assert_true(wl_json_str_is(m, strlen(m), "\"op\"", "puback"));
  assert_false(wl_json_str_is(m, strlen(m), "\"op\"", "pub"));
  const char *e;
  const char *d = wl_json_find(m, strlen(m), "\"duplicate\"", &e);
  assert_non_null(d);
  assert_int_equal(*d, 'f');
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scan_op_reads_every_op_first_or_anywhere),
      cmocka_unit_test(test_scan_op_needs_the_whole_name),
      cmocka_unit_test(test_scan_ev_reads_the_daemons_event),
      cmocka_unit_test(test_scan_ev_sees_the_warm_up_mark_after_t0),
      cmocka_unit_test(test_scan_ev_takes_a_t0_in_ms_as_ms),
      cmocka_unit_test(test_scan_ev_finds_fields_in_any_order),
      cmocka_unit_test(test_scan_ev_reads_t0_wherever_data_puts_it),
      cmocka_unit_test(test_scan_ev_ignores_look_alike_keys_inside_strings),
      cmocka_unit_test(test_scan_ev_reports_missing_fields),
      cmocka_unit_test(test_json_helpers_read_numbers_and_strings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
