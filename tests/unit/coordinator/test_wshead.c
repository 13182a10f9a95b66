/* Tests for coordinator/wshead.c: parsing an upgrade's request head (whole, every prefix,
 * bytes after it), what is left to libwebsockets, header and query lookups, the RFC 6455
 * checks and the 101 answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wshead.h"

static const char UPGRADE[] = "GET /v1/ws?access_token=a.b%2Dc&x=1 HTTP/1.1\r\n"
                              "Host: 127.0.0.1:8080\r\n"
                              "Upgrade: WebSocket\r\n"
                              "Connection: keep-alive, Upgrade\r\n"
                              "Sec-WebSocket-Key:  dGhlIHNhbXBsZSBub25jZQ==\t\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Protocol: coord\r\n"
                              "Sec-WebSocket-Protocol: coord-bulk\r\n"
                              "\r\n";

static int parse(const char *s, size_t n, coord_wsh_head_t *h, size_t *len) {
  return coord_wsh_parse(s, n, h, len);
}

static void test_an_upgrade_head_parses_and_every_prefix_asks_for_more(void **state) {
  (void)state;
  coord_wsh_head_t h;
  size_t len;
  size_t n = strlen(UPGRADE);
  assert_int_equal(parse(UPGRADE, n, &h, &len), COORD_WSH_HEAD);
  assert_int_equal(len, n);
  assert_int_equal(h.method_len, 3);
  assert_memory_equal(h.path, "/v1/ws", 6);
  assert_int_equal(h.path_len, 6);
  assert_int_equal(h.query_len, strlen("access_token=a.b%2Dc&x=1"));
  assert_int_equal(h.nfields, 7);
  for (size_t k = 0; k < n; k++) {
    assert_int_equal(parse(UPGRADE, k, &h, &len), COORD_WSH_MORE);
    assert_int_equal(len, 0);
  }
  /* a client frame sent right behind the head is not part of it */
  char buf[1024];
  memcpy(buf, UPGRADE, n);
  memcpy(buf + n, "\x81\x85" "abcdefghi", 11);
  assert_int_equal(parse(buf, n + 11, &h, &len), COORD_WSH_HEAD);
  assert_int_equal(len, n);
}

static void test_what_is_left_to_libwebsockets(void **state) {
  (void)state;
  static const char *other[] = {
      "\x16\x03\x01\x02\x00\x01",                      /* a TLS client hello */
      "GET /v1/ws HTTP/1.0\r\n\r\n",                     /* not HTTP/1.1 */
      "GET /v1/ws HTTP/1.1\nHost: x\r\n\r\n",            /* a bare LF */
      "GET /v1/ws HTTP/1.1\r\nHost: x\r\n  folded\r\n\r\n", /* obs-fold */
      "GET /v1/ws HTTP/1.1\r\nBad Name: x\r\n\r\n",      /* a space in a header name */
      "GET /v1/ws HTTP/1.1\r\n: x\r\n\r\n",              /* an empty name */
      "GET /v1/ws HTTP/1.1\r\nX: a\x01b\r\n\r\n",        /* a control character in a value */
      "GET v1/ws HTTP/1.1\r\n\r\n",                      /* not an origin-form target */
      "GET  /v1/ws HTTP/1.1\r\n\r\n",                    /* two spaces */
      "G(T /v1/ws HTTP/1.1\r\n\r\n",                     /* not a token method */
      "\r\n\r\n",                                        /* no request line */
  };
  coord_wsh_head_t h;
  size_t len;
  for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
    if (parse(other[i], strlen(other[i]), &h, &len) != COORD_WSH_OTHER) fail_msg("case %zu", i);
    assert_int_equal(len, 0);
  }
  /* too many header lines */
  char *many = malloc(COORD_WSH_MAX);
  int at = snprintf(many, COORD_WSH_MAX, "GET / HTTP/1.1\r\n");
  for (int i = 0; i <= COORD_WSH_HEADERS_MAX; i++) at += snprintf(many + at, COORD_WSH_MAX - (size_t)at, "X%d: y\r\n", i);
  at += snprintf(many + at, COORD_WSH_MAX - (size_t)at, "\r\n");
  assert_int_equal(parse(many, (size_t)at, &h, &len), COORD_WSH_OTHER);
  /* no end within COORD_WSH_MAX bytes */
  memset(many, 'a', COORD_WSH_MAX);
  memcpy(many, "GET / HTTP/1.1\r\nX: ", 19);
  assert_int_equal(parse(many, COORD_WSH_MAX - 1, &h, &len), COORD_WSH_MORE);
  assert_int_equal(parse(many, COORD_WSH_MAX, &h, &len), COORD_WSH_OTHER);
  free(many);
}

static void test_header_lookups(void **state) {
  (void)state;
  coord_wsh_head_t h;
  size_t len;
  assert_int_equal(parse(UPGRADE, strlen(UPGRADE), &h, &len), COORD_WSH_HEAD);
  char v[64];
  assert_int_equal(coord_wsh_header(&h, "HOST", v, sizeof v), 14);
  assert_string_equal(v, "127.0.0.1:8080");
  assert_int_equal(coord_wsh_header(&h, "sec-websocket-key", v, sizeof v), 24); /* trimmed */
  assert_int_equal(coord_wsh_header(&h, "Sec-WebSocket-Protocol", v, sizeof v), 17);
  assert_string_equal(v, "coord, coord-bulk"); /* repeated lines joined */
  assert_int_equal(coord_wsh_header(&h, "Sec-WebSocket-Protocol", v, 17), -1); /* no room */
  assert_int_equal(coord_wsh_header(&h, "authorization", v, sizeof v), -1);
  assert_int_equal(coord_wsh_header(&h, "hos", v, sizeof v), -1);
  assert_true(coord_wsh_has_token(&h, "connection", "upgrade"));
  assert_true(coord_wsh_has_token(&h, "Connection", "KEEP-ALIVE"));
  assert_false(coord_wsh_has_token(&h, "connection", "upgrad"));
  assert_true(coord_wsh_has_token(&h, "sec-websocket-protocol", "coord-bulk"));
  assert_false(coord_wsh_has_token(&h, "upgrade", "h2c"));
}

static void test_query_arguments_are_decoded(void **state) {
  (void)state;
  static const char head[] = "GET /v1/ws?xaccess_token=no&access_token=a%2Bb+c&e=&bad=%4&nul=%00&"
                             "long=0123456789 HTTP/1.1\r\n\r\n";
  coord_wsh_head_t h;
  size_t len;
  assert_int_equal(parse(head, strlen(head), &h, &len), COORD_WSH_HEAD);
  char v[8];
  assert_int_equal(coord_wsh_query(&h, "access_token", v, sizeof v), 5);
  assert_string_equal(v, "a+b+c");
  assert_int_equal(coord_wsh_query(&h, "e", v, sizeof v), 0);
  assert_string_equal(v, "");
  assert_int_equal(coord_wsh_query(&h, "bad", v, sizeof v), -1);
  assert_int_equal(coord_wsh_query(&h, "nul", v, sizeof v), -1);
  assert_int_equal(coord_wsh_query(&h, "long", v, sizeof v), -1); /* 10 bytes into 8 */
  assert_int_equal(coord_wsh_query(&h, "missing", v, sizeof v), -1);
  assert_int_equal(coord_wsh_query(&h, "access", v, sizeof v), -1);
  static const char nq[] = "GET /v1/ws#frag?access_token=x HTTP/1.1\r\n\r\n";
  assert_int_equal(parse(nq, strlen(nq), &h, &len), COORD_WSH_HEAD);
  assert_int_equal(h.path_len, 6);
  assert_int_equal(coord_wsh_query(&h, "access_token", v, sizeof v), -1);
}

static void test_the_upgrade_checks_and_the_101(void **state) {
  (void)state;
  coord_wsh_head_t h;
  size_t len;
  assert_int_equal(parse(UPGRADE, strlen(UPGRADE), &h, &len), COORD_WSH_HEAD);
  assert_true(coord_wsh_is_upgrade(&h, "/v1/ws"));
  assert_false(coord_wsh_is_upgrade(&h, "/v1/w"));
  char accept[29];
  const char *why;
  assert_int_equal(coord_wsh_check_upgrade(&h, accept, &why), 0);
  assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  char out[256];
  int n = coord_wsh_answer_101(out, sizeof out, accept, "coord");
  assert_string_equal(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                           "Sec-WebSocket-Protocol: coord\r\n\r\n");
  assert_int_equal(n, (int)strlen(out));
  n = coord_wsh_answer_101(out, sizeof out, accept, NULL);
  assert_null(strstr(out, "Sec-WebSocket-Protocol"));
  assert_int_equal(n, (int)strlen(out));
  assert_int_equal(coord_wsh_answer_101(out, 40, accept, NULL), -1);

  static const char *not_upgrades[] = {
      "POST /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
      "GET /v1/ws/x HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
      "GET /v1/ws HTTP/1.1\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
      "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof not_upgrades / sizeof not_upgrades[0]; i++) {
    assert_int_equal(parse(not_upgrades[i], strlen(not_upgrades[i]), &h, &len), COORD_WSH_HEAD);
    if (coord_wsh_is_upgrade(&h, "/v1/ws")) fail_msg("case %zu", i);
  }
  static const char v8[] = "GET /v1/ws HTTP/1.1\r\nSec-WebSocket-Version: 8\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  assert_int_equal(parse(v8, strlen(v8), &h, &len), COORD_WSH_HEAD);
  assert_int_equal(coord_wsh_check_upgrade(&h, accept, &why), 426);
  assert_non_null(strstr(why, "sec-websocket-version"));
  static const char nokey[] = "GET /v1/ws HTTP/1.1\r\nSec-WebSocket-Version: 13\r\n\r\n";
  assert_int_equal(parse(nokey, strlen(nokey), &h, &len), COORD_WSH_HEAD);
  assert_int_equal(coord_wsh_check_upgrade(&h, accept, &why), 400);
  assert_non_null(strstr(why, "sec-websocket-key"));
  assert_string_equal(accept, "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_an_upgrade_head_parses_and_every_prefix_asks_for_more),
      cmocka_unit_test(test_what_is_left_to_libwebsockets),
      cmocka_unit_test(test_header_lookups),
      cmocka_unit_test(test_query_arguments_are_decoded),
      cmocka_unit_test(test_the_upgrade_checks_and_the_101),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
