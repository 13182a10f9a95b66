/* Tests for coordinator/wsframe.c: server frame headers, the client frame parser (fed
 * whole, byte by byte, and stopped by its sink), every protocol error RFC 6455 names for a
 * server, the close payload's rules and the accept key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsframe.h"

/* ---- building client frames ---- */

typedef struct wire {
  unsigned char b[200000];
  size_t len;
} wire_t;

static const unsigned char MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends a frame; len_form 0 = the shortest length encoding, 2 = 16-bit, 8 = 64-bit. */
static void frame_ex(wire_t *w, unsigned first_byte, bool masked, const void *payload, size_t n,
                     int len_form) {
  unsigned char *p = w->b + w->len;
  size_t at = 0;
  p[at++] = (unsigned char)first_byte;
  unsigned char m = masked ? 0x80 : 0;
  if (len_form == 0 && n < 126) {
    p[at++] = (unsigned char)(m | n);
  } else if (len_form != 8 && n < 65536) {
    p[at++] = m | 126;
    p[at++] = (unsigned char)(n >> 8);
    p[at++] = (unsigned char)n;
  } else {
    p[at++] = m | 127;
    for (int i = 0; i < 8; i++) p[at++] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
  }
  if (masked) {
    memcpy(p + at, MASK, 4);
    at += 4;
  }
  for (size_t i = 0; i < n; i++)
    p[at + i] = (unsigned char)(((const unsigned char *)payload)[i] ^ (masked ? MASK[i & 3] : 0));
  w->len += at + n;
}

static void frame(wire_t *w, bool fin, unsigned op, const char *payload) {
  frame_ex(w, (fin ? 0x80u : 0u) | op, true, payload, strlen(payload), 0);
}

/* ---- a sink that writes what it saw as text ---- */

typedef struct seen {
  char log[4096];
  char msg[200000]; /* the data bytes of every message, concatenated */
  size_t msg_len;
  int stop_after; /* stop (return 1) after this many callbacks; 0 = never */
  int stop_every; /* stop (return 1) after every this many callbacks; 0 = never */
  int calls;
  char ctl[1024]; /* the control frames alone: the same however the input is cut */
  int firsts, lasts;
} seen_t;

/* Logs "<prefix><up to 20 payload bytes>|". */
static void seen_add(seen_t *s, const char *prefix, const unsigned char *p, size_t n) {
  size_t at = strlen(s->log), k = strlen(prefix), show = n < 20 ? n : 20;
  if (at + k + show + 2 >= sizeof s->log) return; /* long runs: the bytes are in msg */
  memcpy(s->log + at, prefix, k);
  memcpy(s->log + at + k, p, show);
  s->log[at + k + show] = '|';
  s->log[at + k + show + 1] = '\0';
}

static int on_data(void *ud, bool binary, const unsigned char *p, size_t n, bool first, bool last) {
  seen_t *s = ud;
  char prefix[8];
  snprintf(prefix, sizeof prefix, "%c%s%s:", binary ? 'B' : 'T', first ? "<" : "", last ? ">" : "");
  seen_add(s, prefix, p, n);
  memcpy(s->msg + s->msg_len, p, n);
  s->msg_len += n;
  s->firsts += first;
  s->lasts += last;
  s->calls++;
  if (s->stop_every && s->calls % s->stop_every == 0) return 1;
  return s->stop_after && s->calls >= s->stop_after ? 1 : 0;
}

static int on_control(void *ud, unsigned op, const unsigned char *p, size_t n) {
  seen_t *s = ud;
  char prefix[8];
  snprintf(prefix, sizeof prefix, "C%x:", op);
  seen_add(s, prefix, p, n);
  size_t at = strlen(s->ctl);
  assert_true(at + strlen(prefix) + n + 2 < sizeof s->ctl);
  memcpy(s->ctl + at, prefix, strlen(prefix));
  memcpy(s->ctl + at + strlen(prefix), p, n);
  s->ctl[at + strlen(prefix) + n] = '|';
  s->ctl[at + strlen(prefix) + n + 1] = '\0';
  s->calls++;
  if (s->stop_every && s->calls % s->stop_every == 0) return 1;
  return s->stop_after && s->calls >= s->stop_after ? 1 : 0;
}

static const coord_wsf_sink_t SINK = {on_data, on_control};

/* Parses a copy of the wire (the parser unmasks in place) in pieces of `step` bytes
 * (0 = at once); returns the parser's result. */
static int parse(const wire_t *orig, size_t step, uint64_t max, seen_t *s) {
  wire_t *w = malloc(sizeof *w);
  memcpy(w, orig, sizeof *w);
  coord_wsf_parser_t p;
  coord_wsf_parser_init(&p, max);
  size_t at = 0;
  int rc = 0;
  while (at < w->len) {
    size_t n = step ? step : w->len;
    if (n > w->len - at) n = w->len - at;
    size_t used = 0;
    rc = coord_wsf_parse(&p, w->b + at, n, &SINK, s, &used);
    assert_true(used <= n);
    assert_true(rc != 0 || used == n); /* 0: everything was taken */
    assert_true(rc != 1 || used > 0);  /* a stop follows a piece, so bytes were taken */
    at += used;
    if (rc > 1) break; /* a close code */
    if (rc == 1 && !s->stop_every) s->stop_after = 0; /* stopped: go on with the rest */
  }
  coord_wsf_parser_close(&p);
  free(w);
  return rc;
}

/* ---- tests ---- */

static void test_server_headers_use_the_shortest_length(void **state) {
  (void)state;
  unsigned char h[COORD_WSF_HEADER_MAX];
  assert_int_equal(coord_wsf_header(h, COORD_WSF_TEXT, true, 0), 2);
  assert_int_equal(h[0], 0x81);
  assert_int_equal(h[1], 0);
  assert_int_equal(coord_wsf_header(h, COORD_WSF_BINARY, true, 125), 2);
  assert_int_equal(h[0], 0x82);
  assert_int_equal(h[1], 125);
  assert_int_equal(coord_wsf_header(h, COORD_WSF_TEXT, false, 126), 4);
  assert_int_equal(h[0], 0x01);
  assert_int_equal(h[1], 126);
  assert_int_equal(h[2], 0);
  assert_int_equal(h[3], 126);
  assert_int_equal(coord_wsf_header(h, COORD_WSF_TEXT, true, 65535), 4);
  assert_int_equal(h[2], 0xff);
  assert_int_equal(h[3], 0xff);
  assert_int_equal(coord_wsf_header(h, COORD_WSF_CLOSE, true, 65536), 10);
  assert_int_equal(h[0], 0x88);
  assert_int_equal(h[1], 127);
  static const unsigned char l65536[8] = {0, 0, 0, 0, 0, 1, 0, 0};
  assert_memory_equal(h + 2, l65536, 8);
  assert_int_equal(coord_wsf_header(h, COORD_WSF_TEXT, true, (uint64_t)1 << 40), 10);
  static const unsigned char l40[8] = {0, 0, 1, 0, 0, 0, 0, 0};
  assert_memory_equal(h + 2, l40, 8);
}

static void test_a_text_frame_whole_and_byte_by_byte(void **state) {
  (void)state;
  wire_t *w = calloc(1, sizeof *w);
  frame(w, true, COORD_WSF_TEXT, "hello");
  frame_ex(w, 0x82, true, "bin", 3, 0);
  for (size_t step = 0; step <= 2; step++) {
    seen_t *s = calloc(1, sizeof *s);
    assert_int_equal(parse(w, step, 0, s), 0);
    if (step == 0) assert_string_equal(s->log, "T<>:hello|B<>:bin|");
    if (step == 1) assert_string_equal(s->log, "T<:h|T:e|T:l|T:l|T>:o|B<:b|B:i|B>:n|");
    assert_int_equal(s->msg_len, 8);
    assert_memory_equal(s->msg, "hellobin", 8);
    /* one first and one last per message, whatever the pieces */
    size_t firsts = 0, lasts = 0;
    for (const char *c = s->log; *c; c++) firsts += *c == '<', lasts += *c == '>';
    assert_int_equal(firsts, 2);
    assert_int_equal(lasts, 2);
    free(s);
  }
  free(w);
}

static void test_fragments_with_a_ping_between_and_empty_messages(void **state) {
  (void)state;
  wire_t *w = calloc(1, sizeof *w);
  frame(w, false, COORD_WSF_TEXT, "Hel");
  frame(w, true, COORD_WSF_PING, "x");
  frame(w, false, COORD_WSF_CONTINUATION, ""); /* an empty fragment in the middle */
  frame(w, true, COORD_WSF_CONTINUATION, "lo");
  frame(w, true, COORD_WSF_TEXT, ""); /* an empty message */
  frame(w, true, COORD_WSF_PONG, "");
  frame(w, false, COORD_WSF_BINARY, "ab");
  frame(w, true, COORD_WSF_CONTINUATION, ""); /* ends with an empty final fragment */
  seen_t *s = calloc(1, sizeof *s);
  assert_int_equal(parse(w, 0, 0, s), 0);
  assert_string_equal(s->log, "T<:Hel|C9:x|T>:lo|T<>:|Ca:|B<:ab|B>:|");
  free(s);
  s = calloc(1, sizeof *s);
  assert_int_equal(parse(w, 1, 0, s), 0);
  assert_memory_equal(s->msg, "Helloab", 7);
  assert_non_null(strstr(s->log, "C9:x|"));
  free(s);
  free(w);
}

static void test_16_and_64_bit_lengths(void **state) {
  (void)state;
  wire_t *w = calloc(1, sizeof *w);
  char *big = malloc(70000);
  for (size_t i = 0; i < 70000; i++) big[i] = (char)('a' + i % 26);
  frame_ex(w, 0x81, true, big, 300, 0);
  frame_ex(w, 0x81, true, big, 70000, 0);
  frame_ex(w, 0x81, true, big, 5, 8); /* a longer length form than needed is accepted */
  seen_t *s = calloc(1, sizeof *s);
  assert_int_equal(parse(w, 0, 0, s), 0);
  assert_int_equal(s->msg_len, 70305);
  assert_memory_equal(s->msg + 300, big, 70000);
  free(s);
  s = calloc(1, sizeof *s);
  assert_int_equal(parse(w, 7, 0, s), 0);
  assert_int_equal(s->msg_len, 70305);
  free(s);
  free(big);
  free(w);
}

static int parse_one(unsigned first_byte, bool masked, const char *payload, size_t n, int len_form,
                     uint64_t max) {
  wire_t *w = calloc(1, sizeof *w);
  frame_ex(w, first_byte, masked, payload, n, len_form);
  seen_t *s = calloc(1, sizeof *s);
  int rc = parse(w, 0, max, s);
  free(s);
  free(w);
  return rc;
}

static void test_protocol_errors_close_with_1002(void **state) {
  (void)state;
  assert_int_equal(parse_one(0x81, false, "hi", 2, 0, 0), 1002); /* not masked */
  assert_int_equal(parse_one(0xc1, true, "hi", 2, 0, 0), 1002);  /* RSV1 */
  assert_int_equal(parse_one(0xa1, true, "hi", 2, 0, 0), 1002);  /* RSV2 */
  assert_int_equal(parse_one(0x91, true, "hi", 2, 0, 0), 1002);  /* RSV3 */
  assert_int_equal(parse_one(0x83, true, "hi", 2, 0, 0), 1002);  /* reserved data opcode */
  assert_int_equal(parse_one(0x8b, true, "hi", 2, 0, 0), 1002);  /* reserved control opcode */
  assert_int_equal(parse_one(0x09, true, "hi", 2, 0, 0), 1002);  /* fragmented ping */
  char c126[126];
  memset(c126, 'x', sizeof c126);
  assert_int_equal(parse_one(0x89, true, c126, 126, 0, 0), 1002); /* ping over 125 bytes */
  assert_int_equal(parse_one(0x89, true, c126, 125, 0, 0), 0);
  assert_int_equal(parse_one(0x80, true, "hi", 2, 0, 0), 1002); /* continuation of nothing */
  /* a new message while one is open */
  wire_t *w = calloc(1, sizeof *w);
  frame(w, false, COORD_WSF_TEXT, "a");
  frame(w, true, COORD_WSF_BINARY, "b");
  seen_t *s = calloc(1, sizeof *s);
  assert_int_equal(parse(w, 0, 0, s), 1002);
  free(s);
  /* a 64-bit length with its top bit set */
  static const unsigned char top[] = {0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
  memcpy(w->b, top, sizeof top);
  w->len = sizeof top;
  s = calloc(1, sizeof *s);
  assert_int_equal(parse(w, 0, 0, s), 1002);
  assert_string_equal(s->log, "");
  free(s);
  free(w);
}

static void test_a_message_over_the_limit_fails_at_its_header(void **state) {
  (void)state;
  assert_int_equal(parse_one(0x81, true, "0123456789", 10, 0, 10), 0);
  assert_int_equal(parse_one(0x81, true, "0123456789", 10, 0, 9), 1009);
  /* across fragments: the second header already says too much; nothing of it is read */
  wire_t *w = calloc(1, sizeof *w);
  frame(w, false, COORD_WSF_TEXT, "01234");
  frame(w, true, COORD_WSF_CONTINUATION, "56789");
  seen_t *s = calloc(1, sizeof *s);
  assert_int_equal(parse(w, 0, 9, s), 1009);
  assert_string_equal(s->log, "T<:01234|");
  free(s);
  /* the limit counts data only: a ping between fragments does not use it */
  w->len = 0;
  frame(w, false, COORD_WSF_TEXT, "01234");
  frame(w, true, COORD_WSF_PING, "pppp");
  frame(w, true, COORD_WSF_CONTINUATION, "5678");
  s = calloc(1, sizeof *s);
  assert_int_equal(parse(w, 0, 9, s), 0);
  free(s);
  free(w);
}

static void test_a_sink_that_stops_leaves_the_rest_unread(void **state) {
  (void)state;
  wire_t *w = calloc(1, sizeof *w);
  frame(w, true, COORD_WSF_TEXT, "one");
  frame(w, true, COORD_WSF_TEXT, "two");
  coord_wsf_parser_t p;
  coord_wsf_parser_init(&p, 0);
  seen_t *s = calloc(1, sizeof *s);
  s->stop_after = 1;
  size_t used = 0;
  assert_int_equal(coord_wsf_parse(&p, w->b, w->len, &SINK, s, &used), 1);
  assert_int_equal(used, 2 + 4 + 3); /* the first frame, not a byte more */
  assert_string_equal(s->log, "T<>:one|");
  s->stop_after = 0;
  size_t used2 = 0;
  assert_int_equal(coord_wsf_parse(&p, w->b + used, w->len - used, &SINK, s, &used2), 0);
  assert_int_equal(used + used2, w->len);
  assert_string_equal(s->log, "T<>:one|T<>:two|");
  coord_wsf_parser_close(&p);
  free(s);
  free(w);
}

static void test_a_control_frame_split_across_calls_arrives_whole(void **state) {
  (void)state;
  wire_t *w = calloc(1, sizeof *w);
  frame(w, true, COORD_WSF_CLOSE, "\x03\xe8" "bye");
  seen_t *s = calloc(1, sizeof *s);
  assert_int_equal(parse(w, 1, 0, s), 0);
  assert_string_equal(s->log, "C8:\x03\xe8" "bye|");
  free(s);
  /* stopped half way through one: closing the parser frees what it gathered (ASan) */
  coord_wsf_parser_t p;
  coord_wsf_parser_init(&p, 0);
  size_t used;
  s = calloc(1, sizeof *s);
  assert_int_equal(coord_wsf_parse(&p, w->b, w->len - 2, &SINK, s, &used), 0);
  assert_int_equal(used, w->len - 2);
  assert_non_null(p.ctl);
  coord_wsf_parser_close(&p);
  assert_null(p.ctl);
  free(s);
  free(w);
}

/* Every way to cut the input in two, and a sink that stops after every piece: the same
 * bytes, control frames and message boundaries as parsing it whole. */
static void test_every_split_and_a_sink_that_stops_after_every_piece(void **state) {
  (void)state;
  wire_t *w = calloc(1, sizeof *w);
  frame(w, false, COORD_WSF_TEXT, "frag");
  frame(w, true, COORD_WSF_PING, "ping!");
  frame(w, true, COORD_WSF_CONTINUATION, "mented");
  char mid[300];
  memset(mid, 'm', sizeof mid);
  frame_ex(w, 0x82, true, mid, sizeof mid, 0);
  frame(w, true, COORD_WSF_TEXT, "");
  frame(w, true, COORD_WSF_CLOSE, "\x03\xe8" "bye");
  seen_t *whole = calloc(1, sizeof *whole);
  assert_int_equal(parse(w, 0, 1000, whole), 0);
  assert_int_equal(whole->firsts, 3);
  assert_int_equal(whole->lasts, 3);
  assert_string_equal(whole->ctl, "C9:ping!|C8:\x03\xe8" "bye|");
  for (size_t k = 0; k <= w->len; k++) {
    wire_t *c = malloc(sizeof *c);
    memcpy(c, w, sizeof *c);
    coord_wsf_parser_t p;
    coord_wsf_parser_init(&p, 1000);
    seen_t *s = calloc(1, sizeof *s);
    size_t used;
    assert_int_equal(coord_wsf_parse(&p, c->b, k, &SINK, s, &used), 0);
    assert_int_equal(used, k);
    assert_int_equal(coord_wsf_parse(&p, c->b + k, c->len - k, &SINK, s, &used), 0);
    assert_int_equal(used, c->len - k);
    assert_int_equal(s->msg_len, whole->msg_len);
    assert_memory_equal(s->msg, whole->msg, whole->msg_len);
    assert_string_equal(s->ctl, whole->ctl);
    assert_int_equal(s->firsts, 3);
    assert_int_equal(s->lasts, 3);
    coord_wsf_parser_close(&p);
    free(s);
    free(c);
  }
  for (size_t step = 0; step <= 3; step++) {
    seen_t *s = calloc(1, sizeof *s);
    s->stop_every = 1;
    assert_int_equal(parse(w, step, 1000, s), 1);
    assert_int_equal(s->msg_len, whole->msg_len);
    assert_memory_equal(s->msg, whole->msg, whole->msg_len);
    assert_string_equal(s->ctl, whole->ctl);
    assert_int_equal(s->lasts, 3);
    free(s);
  }
  free(whole);
  free(w);
}

static void test_close_payloads(void **state) {
  (void)state;
  uint16_t code;
  const char *reason;
  size_t rlen;
  assert_int_equal(coord_wsf_close_parse((const unsigned char *)"", 0, &code, &reason, &rlen), 0);
  assert_int_equal(code, 1005);
  assert_int_equal(rlen, 0);
  assert_int_equal(coord_wsf_close_parse((const unsigned char *)"\x03", 1, &code, &reason, &rlen), 1002);
  assert_int_equal(coord_wsf_close_parse((const unsigned char *)"\x03\xe8" "bye", 5, &code, &reason, &rlen), 0);
  assert_int_equal(code, 1000);
  assert_int_equal(rlen, 3);
  assert_memory_equal(reason, "bye", 3);
  static const unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999};
  static const unsigned bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    unsigned char b[2] = {(unsigned char)(ok[i] >> 8), (unsigned char)ok[i]};
    assert_int_equal(coord_wsf_close_parse(b, 2, &code, &reason, &rlen), 0);
    assert_int_equal(code, ok[i]);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    unsigned char b[2] = {(unsigned char)(bad[i] >> 8), (unsigned char)bad[i]};
    assert_int_equal(coord_wsf_close_parse(b, 2, &code, &reason, &rlen), 1002);
  }
  assert_int_equal(coord_wsf_close_parse((const unsigned char *)"\x03\xe8\xc0\xaf", 4, &code, &reason, &rlen),
                   1007); /* an overlong '/' */
}

static void test_the_accept_key(void **state) {
  (void)state;
  char out[COORD_WSF_ACCEPT_LEN + 1];
  /* RFC 6455 section 1.3's example */
  static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
  assert_int_equal(coord_wsf_accept(key, strlen(key), out), 0);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  static const char spaced[] = " \tdGhlIHNhbXBsZSBub25jZQ== ";
  assert_int_equal(coord_wsf_accept(spaced, strlen(spaced), out), 0);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  static const char *bad[] = {"", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===",
                              "dGhlIHNhbXBsZSBub25jZQAA", "dGhlIHNhbXBsZSBub25jZ*==",
                              "dGhlIHNhbXBsZSBub25j\x01Q==",
                              "dGhlIHNhbXBsZSBub25jZR==" /* leftover bits in the last character */};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(coord_wsf_accept(bad[i], strlen(bad[i]), out), -EINVAL);
    assert_string_equal(out, "");
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_server_headers_use_the_shortest_length),
      cmocka_unit_test(test_a_text_frame_whole_and_byte_by_byte),
      cmocka_unit_test(test_fragments_with_a_ping_between_and_empty_messages),
      cmocka_unit_test(test_16_and_64_bit_lengths),
      cmocka_unit_test(test_protocol_errors_close_with_1002),
      cmocka_unit_test(test_a_message_over_the_limit_fails_at_its_header),
      cmocka_unit_test(test_a_sink_that_stops_leaves_the_rest_unread),
      cmocka_unit_test(test_a_control_frame_split_across_calls_arrives_whole),
      cmocka_unit_test(test_every_split_and_a_sink_that_stops_after_every_piece),
      cmocka_unit_test(test_close_payloads),
      cmocka_unit_test(test_the_accept_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
