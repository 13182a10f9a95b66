/* Unit tests for tests/bench/wsframe.c: header parsing and encoding (RFC 6455 section
 * 5.7 examples), masking, the message reader fed a transcript split at every byte
 * boundary, its protocol errors, and the opening handshake checks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wsframe.h"

/* Records what the reader delivered, as "<opcode>:<payload>|" entries. */
typedef struct seen {
  char text[4096];
  size_t len;
  int stop_after; /* return 7 from the callback after this many messages (0 = never) */
  int count;
} seen_t;

static int seen_cb(void *ud, uint8_t opcode, const uint8_t *payload, size_t len) {
  seen_t *s = ud;
  int n = snprintf(s->text + s->len, sizeof(s->text) - s->len, "%x:%.*s|", opcode, (int)len,
                   (const char *)payload);
  s->len += (size_t)n;
  s->count++;
  if (s->stop_after && s->count >= s->stop_after) return 7;
  return 0;
}

static void test_header_parse_reads_the_rfc_examples(void **state) {
  (void)state;
  static const uint8_t unmasked[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
  static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  static const uint8_t len16[] = {0x82, 0x7E, 0x01, 0x00};
  static const uint8_t len64[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0};
  wsf_header_t h;
  assert_int_equal(wsf_header_parse(unmasked, sizeof(unmasked), &h), 0);
  assert_true(h.fin);
  assert_int_equal(h.opcode, WSF_OP_TEXT);
  assert_false(h.masked);
  assert_int_equal(h.payload_len, 5);
  assert_int_equal(h.header_len, 2);

  assert_int_equal(wsf_header_parse(masked, sizeof(masked), &h), 0);
  assert_true(h.masked);
  assert_int_equal(h.header_len, 6);
  uint8_t payload[5];
  memcpy(payload, masked + 6, 5);
  wsf_mask_apply(payload, 5, h.mask, 0);
  assert_memory_equal(payload, "Hello", 5);

  assert_int_equal(wsf_header_parse(len16, sizeof(len16), &h), 0);
  assert_int_equal(h.payload_len, 256);
  assert_int_equal(h.header_len, 4);
  assert_int_equal(wsf_header_parse(len64, sizeof(len64), &h), 0);
  assert_int_equal(h.payload_len, 65536);
  assert_int_equal(h.header_len, 10);
}

static void test_header_parse_asks_for_more_on_every_short_prefix(void **state) {
  (void)state;
  static const uint8_t len64_masked[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4};
  wsf_header_t h;
  for (size_t n = 0; n < sizeof(len64_masked); n++)
    assert_int_equal(wsf_header_parse(len64_masked, n, &h), -EAGAIN);
  assert_int_equal(wsf_header_parse(len64_masked, sizeof(len64_masked), &h), 0);
  assert_int_equal(h.header_len, 14);
}

static void test_header_parse_rejects_malformed_headers(void **state) {
  (void)state;
  static const struct {
    uint8_t bytes[10];
    size_t len;
  } bad[] = {
      {{0xC1, 0x00}, 2},                      /* RSV1 without an extension */
      {{0x91, 0x00}, 2},                      /* RSV3 */
      {{0x83, 0x00}, 2},                      /* reserved data opcode */
      {{0x8B, 0x00}, 2},                      /* reserved control opcode */
      {{0x09, 0x00}, 2},                      /* fragmented ping */
      {{0x89, 0x7E, 0x00, 0x7E}, 4},          /* ping longer than 125 */
      {{0x82, 0x7E, 0x00, 0x05}, 4},          /* 16-bit length not minimal */
      {{0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}, 10}, /* 64-bit length not minimal */
      {{0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10},    /* top bit set */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    wsf_header_t h;
    assert_int_equal(wsf_header_parse(bad[i].bytes, bad[i].len, &h), -EPROTO);
  }
}

static void test_frame_encode_round_trips_every_length_form(void **state) {
  (void)state;
  static const size_t lens[] = {0, 1, 125, 126, 65535, 65536, 70000};
  static const uint8_t mask[4] = {0xde, 0xad, 0xbe, 0xef};
  uint8_t *payload = malloc(70000), *out = malloc(70000 + WSF_MAX_HEADER);
  for (size_t i = 0; i < 70000; i++) payload[i] = (uint8_t)(i * 31);
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    size_t n = wsf_frame_encode(out, 70000 + WSF_MAX_HEADER, WSF_OP_BINARY, true, mask, payload, lens[i]);
    wsf_header_t h;
    assert_int_equal(wsf_header_parse(out, n, &h), 0);
    assert_int_equal(h.payload_len, lens[i]);
    assert_true(h.masked);
    assert_memory_equal(h.mask, mask, 4);
    assert_int_equal(n, h.header_len + lens[i]);
    wsf_mask_apply(out + h.header_len, lens[i], h.mask, 0);
    if (lens[i]) assert_memory_equal(out + h.header_len, payload, lens[i]);
  }
  assert_int_equal(wsf_frame_encode(out, 6, WSF_OP_TEXT, true, mask, payload, 1), 0);
  free(payload);
  free(out);
}

static void test_frame_encode_matches_the_rfc_masked_hello(void **state) {
  (void)state;
  static const uint8_t want[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  uint8_t out[32];
  assert_int_equal(wsf_frame_encode(out, sizeof(out), WSF_OP_TEXT, true, mask, "Hello", 5), sizeof(want));
  assert_memory_equal(out, want, sizeof(want));
}

static void test_mask_apply_continues_the_mask_at_an_offset(void **state) {
  (void)state;
  static const uint8_t mask[4] = {1, 2, 3, 4};
  uint8_t whole[7] = "abcdefg", split[7] = "abcdefg";
  wsf_mask_apply(whole, 7, mask, 0);
  wsf_mask_apply(split, 3, mask, 0);
  wsf_mask_apply(split + 3, 4, mask, 3);
  assert_memory_equal(whole, split, 7);
}

static void test_close_payload_puts_the_code_first_and_truncates_the_reason(void **state) {
  (void)state;
  uint8_t out[125];
  assert_int_equal(wsf_close_payload(out, 1000, "bye"), 5);
  assert_int_equal(out[0], 0x03);
  assert_int_equal(out[1], 0xE8);
  assert_memory_equal(out + 2, "bye", 3);
  char longr[300];
  memset(longr, 'r', sizeof(longr) - 1);
  longr[299] = 0;
  assert_int_equal(wsf_close_payload(out, 1001, longr), 125);
}

/* A server transcript: a text message in three fragments with a ping between the
 * fragments, a 300-byte binary message, a pong and a close. */
static size_t transcript(uint8_t *out) {
  size_t n = 0;
  n += wsf_frame_encode(out + n, 64, WSF_OP_TEXT, false, NULL, "Hel", 3);
  n += wsf_frame_encode(out + n, 64, WSF_OP_PING, true, NULL, "p1", 2);
  n += wsf_frame_encode(out + n, 64, WSF_OP_CONT, false, NULL, "lo ", 3);
  n += wsf_frame_encode(out + n, 64, WSF_OP_CONT, true, NULL, "world", 5);
  uint8_t big[300];
  memset(big, 'b', sizeof(big));
  n += wsf_frame_encode(out + n, 400, WSF_OP_BINARY, true, NULL, big, sizeof(big));
  n += wsf_frame_encode(out + n, 64, WSF_OP_PONG, true, NULL, "", 0);
  uint8_t cp[125];
  size_t cl = wsf_close_payload(cp, 1000, "ok");
  n += wsf_frame_encode(out + n, 64, WSF_OP_CLOSE, true, NULL, cp, cl);
  return n;
}

static void expect_transcript(const seen_t *s) {
  char want[1024];
  char big[301];
  memset(big, 'b', 300);
  big[300] = 0;
  snprintf(want, sizeof(want), "9:p1|1:Hello world|2:%s|a:|8:%c%cok|", big, 0x03, (char)0xE8);
  assert_int_equal(s->len, strlen(want));
  assert_memory_equal(s->text, want, s->len);
}

static void test_reader_delivers_the_same_messages_at_every_split(void **state) {
  (void)state;
  uint8_t t[1024];
  size_t n = transcript(t);
  for (size_t cut = 0; cut <= n; cut++) {
    wsf_reader_t r;
    seen_t s = {0};
    wsf_reader_init(&r, 1 << 20);
    assert_int_equal(wsf_reader_feed(&r, t, cut, seen_cb, &s), 0);
    assert_int_equal(wsf_reader_feed(&r, t + cut, n - cut, seen_cb, &s), 0);
    expect_transcript(&s);
    assert_int_equal(r.pending_len, 0);
    wsf_reader_close(&r);
  }
}

static void test_reader_delivers_the_same_messages_one_byte_at_a_time(void **state) {
  (void)state;
  uint8_t t[1024];
  size_t n = transcript(t);
  wsf_reader_t r;
  seen_t s = {0};
  wsf_reader_init(&r, 1 << 20);
  for (size_t i = 0; i < n; i++) assert_int_equal(wsf_reader_feed(&r, t + i, 1, seen_cb, &s), 0);
  expect_transcript(&s);
  wsf_reader_close(&r);
}

static void test_reader_stops_with_the_callbacks_value(void **state) {
  (void)state;
  uint8_t t[1024];
  size_t n = transcript(t);
  wsf_reader_t r;
  seen_t s = {.stop_after = 2};
  wsf_reader_init(&r, 1 << 20);
  assert_int_equal(wsf_reader_feed(&r, t, n, seen_cb, &s), 7);
  assert_int_equal(s.count, 2);
  wsf_reader_close(&r);
}

static int feed_all(const uint8_t *bytes, size_t n, size_t max_message) {
  wsf_reader_t r;
  seen_t s = {0};
  wsf_reader_init(&r, max_message);
  int rc = wsf_reader_feed(&r, bytes, n, seen_cb, &s);
  wsf_reader_close(&r);
  return rc;
}

static void test_reader_rejects_protocol_violations(void **state) {
  (void)state;
  static const uint8_t mask[4] = {1, 2, 3, 4};
  uint8_t b[256];
  size_t n;

  n = wsf_frame_encode(b, sizeof(b), WSF_OP_TEXT, true, mask, "hi", 2);
  assert_int_equal(feed_all(b, n, 1024), -EPROTO); /* masked server frame */

  n = wsf_frame_encode(b, sizeof(b), WSF_OP_CONT, true, NULL, "hi", 2);
  assert_int_equal(feed_all(b, n, 1024), -EPROTO); /* continuation with nothing open */

  n = wsf_frame_encode(b, sizeof(b), WSF_OP_TEXT, false, NULL, "a", 1);
  n += wsf_frame_encode(b + n, sizeof(b) - n, WSF_OP_TEXT, true, NULL, "b", 1);
  assert_int_equal(feed_all(b, n, 1024), -EPROTO); /* new message inside a fragmented one */

  n = wsf_frame_encode(b, sizeof(b), WSF_OP_TEXT, true, NULL, "0123456789", 10);
  assert_int_equal(feed_all(b, n, 9), -EMSGSIZE); /* one frame too large */

  n = wsf_frame_encode(b, sizeof(b), WSF_OP_TEXT, false, NULL, "01234", 5);
  n += wsf_frame_encode(b + n, sizeof(b) - n, WSF_OP_CONT, true, NULL, "56789", 5);
  assert_int_equal(feed_all(b, n, 9), -EMSGSIZE); /* fragments add up too large */
  assert_int_equal(feed_all(b, n, 10), 0);
}

static void test_key_and_accept_match_the_rfc_example(void **state) {
  (void)state;
  char key[WSF_KEY_LEN + 1], accept[WSF_ACCEPT_LEN + 1];
  wsf_key_make((const uint8_t *)"the sample nonce", key);
  assert_string_equal(key, "dGhlIHNhbXBsZSBub25jZQ==");
  wsf_accept_for(key, accept);
  assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_request_build_writes_an_upgrade_request(void **state) {
  (void)state;
  char out[512];
  size_t n = wsf_request_build(out, sizeof(out), "127.0.0.1", 8080, "/v1/ws", "dGhlIHNhbXBsZSBub25jZQ==", NULL);
  assert_int_equal(n, strlen(out));
  assert_non_null(strstr(out, "GET /v1/ws HTTP/1.1\r\n"));
  assert_non_null(strstr(out, "\r\nHost: 127.0.0.1:8080\r\n"));
  assert_non_null(strstr(out, "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
  assert_non_null(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  assert_null(strstr(out, "Sec-WebSocket-Protocol"));
  assert_int_equal(wsf_request_build(out, 20, "127.0.0.1", 8080, "/v1/ws", "k", NULL), 0);
  n = wsf_request_build(out, sizeof(out), "127.0.0.1", 8080, "/v1/ws", "k", "coord-bulk");
  assert_int_equal(n, strlen(out));
  assert_non_null(strstr(out, "\r\nSec-WebSocket-Protocol: coord-bulk\r\n"));
  assert_non_null(strstr(out, "\r\n\r\n"));
  assert_int_equal(out[n - 1], '\n');
}

static const char *const good_response =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "upgrade: WebSocket\r\n"
    "connection: keep-alive, Upgrade\r\n"
    "sec-websocket-accept:   s3pPLMBiTxaQ9kYGzzhZRbK+xOo=  \r\n"
    "\r\n";

static void test_response_check_accepts_a_valid_101_and_says_where_frames_start(void **state) {
  (void)state;
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
  size_t hl = strlen(good_response);
  char buf[512];
  snprintf(buf, sizeof(buf), "%s\x81\x02hi", good_response);
  assert_int_equal(wsf_response_check(buf, hl + 4, key, NULL), (int)hl);
  for (size_t n = 0; n < hl; n++) assert_int_equal(wsf_response_check(buf, n, key, NULL), -EAGAIN);
}

static void test_response_check_rejects_wrong_answers(void **state) {
  (void)state;
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
  int status = 0;
  const char *r503 = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
  assert_int_equal(wsf_response_check(r503, strlen(r503), key, &status), -ECONNREFUSED);
  assert_int_equal(status, 503);
  const char *wrong = "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
  assert_int_equal(wsf_response_check(wrong, strlen(wrong), key, NULL), -EPROTO);
  const char *noup = "HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
  assert_int_equal(wsf_response_check(noup, strlen(noup), key, NULL), -EPROTO);
  const char *garbage = "SSH-2.0-OpenSSH\r\n\r\n";
  assert_int_equal(wsf_response_check(garbage, strlen(garbage), key, NULL), -EPROTO);
  char huge[9000];
  memset(huge, 'x', sizeof(huge));
  assert_int_equal(wsf_response_check(huge, sizeof(huge), key, NULL), -EMSGSIZE);
}

/* The eight-bytes-at-a-time mask gives what the RFC's byte rule gives, at every length
 * and starting offset, including the tails. */
static void test_mask_apply_matches_the_byte_rule_at_every_length_and_offset(void **state) {
  (void)state;
  static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  for (size_t off = 0; off < 4; off++) {
    for (size_t n = 0; n <= 70; n++) {
      uint8_t got[80], want[80];
      for (size_t i = 0; i < sizeof got; i++) got[i] = want[i] = (uint8_t)(i * 7 + 3);
      wsf_mask_apply(got, n, mask, off);
      for (size_t i = 0; i < n; i++) want[i] ^= mask[(off + i) & 3];
      assert_memory_equal(got, want, sizeof got); /* nothing past n changed either */
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_header_parse_reads_the_rfc_examples),
      cmocka_unit_test(test_mask_apply_matches_the_byte_rule_at_every_length_and_offset),
      cmocka_unit_test(test_header_parse_asks_for_more_on_every_short_prefix),
      cmocka_unit_test(test_header_parse_rejects_malformed_headers),
      cmocka_unit_test(test_frame_encode_round_trips_every_length_form),
      cmocka_unit_test(test_frame_encode_matches_the_rfc_masked_hello),
      cmocka_unit_test(test_mask_apply_continues_the_mask_at_an_offset),
      cmocka_unit_test(test_close_payload_puts_the_code_first_and_truncates_the_reason),
      cmocka_unit_test(test_reader_delivers_the_same_messages_at_every_split),
      cmocka_unit_test(test_reader_delivers_the_same_messages_one_byte_at_a_time),
      cmocka_unit_test(test_reader_stops_with_the_callbacks_value),
      cmocka_unit_test(test_reader_rejects_protocol_violations),
      cmocka_unit_test(test_key_and_accept_match_the_rfc_example),
      cmocka_unit_test(test_request_build_writes_an_upgrade_request),
      cmocka_unit_test(test_response_check_accepts_a_valid_101_and_says_where_frames_start),
      cmocka_unit_test(test_response_check_rejects_wrong_answers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
