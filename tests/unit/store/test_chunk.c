/* Tests for store/chunk.c: the event chunk codec. Round trips of every field, then
 * hostile blobs: every truncation and every single-byte change of a valid chunk, decoded
 * from an allocation of exactly its size so that a sanitizer build catches any read past
 * the end. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"

static const store_event_t sample[] = {
    {.seq = 1, .ts_ms = 1764300000123, .id = "evt-1", .type = "token", .lane = 1,
     .data = "{\"n\":1}", .data_len = 7},
    {.seq = 2, .ts_ms = 1764300000100, .lane = 0}, /* clock stepped back; no strings */
    {.seq = 3, .ts_ms = INT64_MIN, .id = "", .type = "", .lane = -7, .data = "", .data_len = 0},
    {.seq = 4, .ts_ms = INT64_MAX, .lane = INT32_MAX, .data = "a\0b", .data_len = 3},
    {.seq = 5, .ts_ms = 0, .id = "k", .lane = INT32_MIN, .data = "{}", .data_len = 2},
};
#define NSAMPLE (sizeof sample / sizeof sample[0])

static void encode_sample(store_chunk_t *c) {
  store__chunk_start(c, 41);
  for (size_t i = 0; i < NSAMPLE; i++) store__chunk_add(c, &sample[i]);
}

static void assert_same_string(const char *got, const char *want) {
  if (!want) {
    assert_null(got);
    return;
  }
  assert_non_null(got);
  assert_string_equal(got, want);
}

/* Decodes blob[0..len) from a copy of exactly len bytes; returns the last result of
 * store__chunk_next (0 at a clean end, -EIO) and the events decoded before it. */
static int decode_copy(const uint8_t *blob, size_t len, size_t *nevents) {
  uint8_t *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  memcpy(copy, blob, len);
  store_chunk_iter_t it;
  int rc = store__chunk_iter_init(&it, copy, len, 1);
  *nevents = 0;
  store_event_t ev;
  while (rc == 0 && (rc = store__chunk_next(&it, 9, &ev)) == 1) {
    /* Touch every byte handed out, so an out-of-bounds pointer shows. */
    size_t sum = 0;
    if (ev.id) sum += strlen(ev.id);
    if (ev.type) sum += strlen(ev.type);
    for (size_t i = 0; i < ev.data_len; i++) sum += (unsigned char)ev.data[i];
    if (ev.data) assert_int_equal(ev.data[ev.data_len], '\0');
    (void)sum;
    (*nevents)++;
    rc = 0;
  }
  free(copy);
  return rc;
}

static void test_chunk_round_trips_every_field_null_and_extreme_value(void **state) {
  (void)state;
  store_chunk_t c = {0};
  encode_sample(&c);
  assert_int_equal(c.count, NSAMPLE);
  assert_int_equal(c.first_seq, 41);
  assert_int_equal(c.ts_min, INT64_MIN);
  assert_int_equal(c.ts_max, INT64_MAX);
  store_chunk_iter_t it;
  assert_int_equal(store__chunk_iter_init(&it, c.buf, c.len, 41), 0);
  for (size_t i = 0; i < NSAMPLE; i++) {
    store_event_t ev;
    assert_int_equal(store__chunk_next(&it, 9, &ev), 1);
    assert_int_equal(ev.topic_id, 9);
    assert_int_equal(ev.seq, 41 + i);
    assert_int_equal(ev.ts_ms, sample[i].ts_ms);
    assert_int_equal(ev.lane, sample[i].lane);
    assert_same_string(ev.id, sample[i].id);
    assert_same_string(ev.type, sample[i].type);
    if (sample[i].data) {
      assert_non_null(ev.data);
      assert_int_equal(ev.data_len, sample[i].data_len);
      assert_memory_equal(ev.data, sample[i].data, sample[i].data_len);
      assert_int_equal(ev.data[ev.data_len], '\0');
    } else {
      assert_null(ev.data);
      assert_int_equal(ev.data_len, 0);
    }
  }
  store_event_t ev;
  assert_int_equal(store__chunk_next(&it, 9, &ev), 0);
  store__chunk_free(&c);
}

static void test_chunk_start_reuses_the_buffer_for_a_new_run(void **state) {
  (void)state;
  store_chunk_t c = {0};
  encode_sample(&c);
  store__chunk_start(&c, 7);
  store__chunk_add(&c, &sample[1]);
  assert_int_equal(c.count, 1);
  assert_int_equal(c.ts_min, sample[1].ts_ms);
  assert_int_equal(c.ts_max, sample[1].ts_ms);
  size_t n;
  assert_int_equal(decode_copy(c.buf, c.len, &n), 0);
  assert_int_equal(n, 1);
  store__chunk_free(&c);
  assert_null(c.buf);
}

static void test_chunk_decoding_rejects_an_empty_blob_or_another_format(void **state) {
  (void)state;
  store_chunk_iter_t it;
  const uint8_t v2[] = {STORE_CHUNK_FORMAT + 1, 0, 0, 0, 0, 0};
  assert_int_equal(store__chunk_iter_init(&it, v2, sizeof v2, 1), -EIO);
  assert_int_equal(store__chunk_iter_init(&it, v2, 0, 1), -EIO);
  assert_int_equal(store__chunk_iter_init(&it, NULL, 0, 1), -EIO);
  const uint8_t none[] = {STORE_CHUNK_FORMAT};
  size_t n;
  assert_int_equal(decode_copy(none, sizeof none, &n), 0);
  assert_int_equal(n, 0);
}

static void test_chunk_decoding_rejects_overlong_varints_and_lanes_beyond_int(void **state) {
  (void)state;
  size_t n;
  /* An 11-byte varint for ts. */
  const uint8_t overlong[] = {STORE_CHUNK_FORMAT, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                              0x80, 0x80, 0x80, 0x80, 0x00, 0, 0, 0, 0};
  assert_int_equal(decode_copy(overlong, sizeof overlong, &n), -EIO);
  /* A 10-byte varint whose last byte carries bits beyond 64. */
  const uint8_t wide[] = {STORE_CHUNK_FORMAT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                          0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0};
  assert_int_equal(decode_copy(wide, sizeof wide, &n), -EIO);
  /* lane zigzag 2^32 (= 2^31 after decoding): beyond int. */
  const uint8_t lane[] = {STORE_CHUNK_FORMAT, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0, 0};
  assert_int_equal(decode_copy(lane, sizeof lane, &n), -EIO);
  /* A string length past the end, and one without its NUL. */
  const uint8_t past[] = {STORE_CHUNK_FORMAT, 0, 0, 9, 0, 0, 'a', 'b', 0};
  assert_int_equal(decode_copy(past, sizeof past, &n), -EIO);
  const uint8_t no_nul[] = {STORE_CHUNK_FORMAT, 0, 0, 3, 0, 0, 'a', 'b', 'c'};
  assert_int_equal(decode_copy(no_nul, sizeof no_nul, &n), -EIO);
  const uint8_t ok[] = {STORE_CHUNK_FORMAT, 0, 0, 3, 0, 0, 'a', 'b', 0};
  assert_int_equal(decode_copy(ok, sizeof ok, &n), 0);
  assert_int_equal(n, 1);
}

static void test_chunk_decoding_every_truncation_is_eio_or_fewer_events(void **state) {
  (void)state;
  store_chunk_t c = {0};
  encode_sample(&c);
  for (size_t len = 0; len < c.len; len++) {
    size_t n = 0;
    int rc = decode_copy(c.buf, len, &n);
    /* A cut exactly between records decodes cleanly with fewer events. */
    assert_true(rc == -EIO || (rc == 0 && n < NSAMPLE));
  }
  store__chunk_free(&c);
}

static void test_chunk_decoding_survives_every_single_byte_change(void **state) {
  (void)state;
  store_chunk_t c = {0};
  encode_sample(&c);
  uint8_t *blob = malloc(c.len);
  assert_non_null(blob);
  static const uint8_t values[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
  for (size_t at = 0; at < c.len; at++) {
    for (size_t v = 0; v < sizeof values; v++) {
      memcpy(blob, c.buf, c.len);
      blob[at] = values[v];
      size_t n = 0;
      int rc = decode_copy(blob, c.len, &n);
      assert_true(rc == 0 || rc == -EIO);
    }
  }
  free(blob);
  store__chunk_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chunk_round_trips_every_field_null_and_extreme_value),
      cmocka_unit_test(test_chunk_start_reuses_the_buffer_for_a_new_run),
      cmocka_unit_test(test_chunk_decoding_rejects_an_empty_blob_or_another_format),
      cmocka_unit_test(test_chunk_decoding_rejects_overlong_varints_and_lanes_beyond_int),
      cmocka_unit_test(test_chunk_decoding_every_truncation_is_eio_or_fewer_events),
      cmocka_unit_test(test_chunk_decoding_survives_every_single_byte_change),
  };
  return cmocka_run_group_tests_name("store chunk", tests, NULL, NULL);
}
