/* The hand-written scan of the server messages wsload reads by the million (ev, puback):
 * the op, and the few fields the checks need (seq, t0 and the warm-up mark, ref,
 * duplicate). It never allocates and never builds a tree; rarer messages are parsed with
 * jansson by wsload_msg.c. The scan accepts keys in any order and whitespace around the
 * colon; it reads the first occurrence of a key as its value, which is right for the
 * messages of the daemon and of the peer (a nested object's key of the same name would
 * come after the top-level one). */
#include <string.h>

#include "wsload.h"

static bool wl_is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

const char *wl_json_find(const char *p, size_t len, const char *key, const char **end) {
  size_t kl = strlen(key);
  const char *e = p + len, *s = p;
  *end = e;
  while (s < e && (s = memmem(s, (size_t)(e - s), key, kl)) != NULL) {
    const char *q = s + kl;
    while (q < e && wl_is_space(*q)) q++;
    if (q < e && *q == ':') {
      q++;
      while (q < e && wl_is_space(*q)) q++;
      return q < e ? q : NULL;
    }
    s += kl;
  }
  return NULL;
}

/* Reads the digits at *q (at most up to e) into *out; false when there is none. */
static bool wl_digits(const char **q, const char *e, uint64_t *out) {
  const char *s = *q;
  if (s >= e || *s < '0' || *s > '9') return false;
  uint64_t v = 0;
  while (s < e && *s >= '0' && *s <= '9') v = v * 10 + (uint64_t)(*s++ - '0');
  *out = v;
  *q = s;
  return true;
}

bool wl_json_u64(const char *p, size_t len, const char *key, uint64_t *out) {
  const char *e;
  const char *q = wl_json_find(p, len, key, &e);
  if (!q) return false;
  if (*q == '"') q++;
  return wl_digits(&q, e, out);
}

/* Whether the string at v (just past its opening quote, ending before e) is want. */
static bool wl_str_at(const char *v, const char *e, const char *want, size_t wl) {
  return (size_t)(e - v) > wl && memcmp(v, want, wl) == 0 && v[wl] == '"';
}

bool wl_json_str_is(const char *p, size_t len, const char *key, const char *want) {
  const char *e;
  const char *q = wl_json_find(p, len, key, &e);
  return q && *q == '"' && wl_str_at(q + 1, e, want, strlen(want));
}

wl_op_t wl_scan_op(const char *p, size_t len) {
  static const char head[] = "{\"op\":\"";
  static const struct {
    const char *name;
    size_t len;
    wl_op_t op;
  } ops[] = {{"ev", 2, WL_OP_EV},     {"puback", 6, WL_OP_PUBACK},         {"pong", 4, WL_OP_PONG},
             {"gap", 3, WL_OP_GAP},   {"subscribed", 10, WL_OP_SUBSCRIBED}, {"error", 5, WL_OP_ERROR}};
  const char *e = p + len, *v;
  if (len > sizeof head - 1 && memcmp(p, head, sizeof head - 1) == 0) {
    v = p + sizeof head - 1; /* the daemon and the peer write op first */
  } else {
    v = wl_json_find(p, len, "\"op\"", &e);
    if (!v || *v != '"') return WL_OP_OTHER;
    v++;
  }
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (wl_str_at(v, e, ops[i].name, ops[i].len)) return ops[i].op;
  return WL_OP_OTHER;
}

void wl_scan_ev(const char *p, size_t len, wl_ev_scan_t *ev) {
  memset(ev, 0, sizeof *ev);
  const char *e = p + len, *after_seq = p;
  const char *q = wl_json_find(p, len, "\"seq\"", &e);
  if (q) {
    if (*q == '"') q++;
    ev->has_seq = wl_digits(&q, e, &ev->seq);
    if (ev->has_seq) after_seq = q;
  }
  /* data (and t0 in it) follows seq in the daemon's and the peer's events: look there
   * first, so the scan does not cover the head of the message twice. */
  q = wl_json_find(after_seq, (size_t)(e - after_seq), "\"t0\"", &e);
  if (!q && after_seq != p) q = wl_json_find(p, len, "\"t0\"", &e);
  if (!q || !wl_digits(&q, e, &ev->t0_us)) return;
  ev->has_t0 = true;
  /* wsload's publishers put the warm-up mark right after t0: no second scan. */
  ev->warm = (size_t)(e - q) >= 6 && memcmp(q, ",\"w\":1", 6) == 0;
  if (ev->t0_us < 100000000000000ULL) ev->t0_us *= 1000; /* milliseconds */
}
