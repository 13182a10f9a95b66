/* Fuzz target for the WebSocket frame parser (coordinator/wsframe.c): any input must parse
 * without a memory error; feeding it whole, split at a point chosen by the first byte, or
 * byte by byte, and with a sink that stops every few pieces and is called again with the
 * rest, must give the very same messages, control frames and result (the pieces a message
 * arrives in differ from run to run). The sink checks the parser's promises:
 * one first and one last piece per message, control payloads of at most 125 bytes, no
 * message over the limit; close payloads go through coord_wsf_close_parse(). */
#include "fuzz_common.h"
#include "utf8.h"
#include "wsframe.h"

typedef struct fz_sink {
  fz_str_t *out;
  fz_str_t msg;       /* the open message's bytes: pieces are cut differently per run */
  bool open;          /* a message has had its first piece and not its last */
  uint64_t msg_bytes; /* of the open message */
  uint64_t max;
  unsigned stop_every; /* stop after every this many pieces; 0 = never */
  unsigned pieces;
} fz_sink_t;

static int fz_stop(fz_sink_t *s) { return s->stop_every && ++s->pieces % s->stop_every == 0; }

static int on_data(void *ud, bool binary, const unsigned char *p, size_t n, bool first, bool last) {
  fz_sink_t *s = ud;
  if (first == s->open) abort(); /* first exactly when no message is open */
  if (first) s->msg_bytes = 0;
  s->msg_bytes += n;
  if (s->max && s->msg_bytes > s->max) abort();
  s->open = !last;
  if (first) s->msg.len = 0;
  fz_put(&s->msg, p, n);
  if (last) {
    fz_puts(s->out, binary ? "B" : "T");
    fz_putn(s->out, (long long)s->msg.len);
    fz_puts(s->out, ":");
    fz_put(s->out, s->msg.p, s->msg.len);
    fz_puts(s->out, "|");
  }
  return fz_stop(s);
}

static int on_control(void *ud, unsigned op, const unsigned char *p, size_t n) {
  fz_sink_t *s = ud;
  if (n > COORD_WSF_CONTROL_MAX) abort();
  if (op != COORD_WSF_CLOSE && op != COORD_WSF_PING && op != COORD_WSF_PONG) abort();
  fz_puts(s->out, op == COORD_WSF_CLOSE ? "C" : op == COORD_WSF_PING ? "P" : "O");
  fz_putn(s->out, (long long)n);
  fz_puts(s->out, ":");
  fz_put(s->out, p, n);
  fz_puts(s->out, "|");
  if (op == COORD_WSF_CLOSE) {
    uint16_t code;
    const char *reason;
    size_t rlen;
    int rc = coord_wsf_close_parse(p, n, &code, &reason, &rlen);
    if (rc != 0 && rc != 1002 && rc != 1007) abort();
    if (rc == 0 && n >= 2 && (rlen != n - 2 || !coord_utf8_valid(reason, rlen))) abort();
    if (rc == 0 && n == 0 && code != 1005) abort();
    fz_putn(s->out, rc);
  }
  return fz_stop(s);
}

static const coord_wsf_sink_t SINK = {on_data, on_control};

static void run(const uint8_t *d, size_t n, uint64_t max, size_t step, size_t cut, unsigned stop_every,
                fz_str_t *out) {
  unsigned char *buf = malloc(n ? n : 1);
  if (!buf) abort();
  memcpy(buf, d, n);
  coord_wsf_parser_t p;
  coord_wsf_parser_init(&p, max);
  fz_sink_t s = {.out = out, .max = max, .stop_every = stop_every};
  size_t at = 0;
  int rc = 0;
  while (at < n) {
    size_t k = step ? step : (at < cut ? cut - at : n - at);
    if (k > n - at) k = n - at;
    size_t used = 0;
    rc = coord_wsf_parse(&p, buf + at, k, &SINK, &s, &used);
    if (used > k) abort();
    at += used;
    if (rc != 0 && rc != 1) break; /* a close code (anything else fails the check below) */
    if (rc == 0 && used != k) abort();
    if (rc == 1 && used == 0 && k > 0) {
      /* a stop consumes the piece it reported: progress is always made */
      abort();
    }
  }
  if (rc != 0 && rc != 1 && rc != 1002 && rc != 1009) abort();
  fz_puts(out, "=");
  fz_putn(out, rc > 1 ? rc : 0);
  coord_wsf_parser_close(&p);
  free(s.msg.p);
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t cfg = data[0];
  const uint8_t *d = data + 1;
  size_t n = size - 1;
  uint64_t max = (cfg & 3) == 0 ? 0 : (uint64_t)(cfg & 3) * 40;
  size_t cut = n ? (size_t)(cfg >> 2) % (n + 1) : 0;
  fz_str_t a = {0}, b = {0}, c = {0}, e = {0};
  run(d, n, max, 0, n, 0, &a);
  run(d, n, max, 0, cut, 0, &b);
  run(d, n, max, 1, 0, 0, &c);
  run(d, n, max, 0, n, 1 + (cfg >> 5), &e);
  /* the pieces were cut differently; the messages, controls and result may not differ */
  fz_str_t *all[] = {&a, &b, &c, &e};
  for (int i = 1; i < 4; i++)
    if (all[i]->len != a.len || memcmp(all[i]->p, a.p, a.len) != 0) abort();
  free(a.p);
  free(b.p);
  free(c.p);
  free(e.p);
  return 0;
}
