/* The hand-written scan of the server messages wsload reads by the million (ev, puback):
 * the op, and the few fields the checks need (seq, t0 and the warm-up mark, ref,
 * duplicate). It never allocates and never builds a tree; rarer messages are parsed with
 * jansson by wsload_msg.c. The scan accepts keys in any order and whitespace around the
 * colon; it reads the first occurrence of a key as its value, which is right for the
 * messages of the daemon and of the peer (a nested object's key of the same name would
 * come after the top-level one). */
#include <stddef.h>
#include <string.h>

#include "wsload.h"

static bool wl_is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

/* The value after the first colon that directly follows key (compact JSON: "key":v),
 * found colon by colon. Compact JSON has one colon per key, so this touches far fewer
 * places than a substring search for the key (glibc's memmem costs a table setup per
 * call). A key inside a string cannot match: its quotes would be escaped. */
static const char *wl_key_compact(const char *p, const char *e, const char *key, size_t kl) {
  const char *s = p;
  ptrdiff_t n = (ptrdiff_t)kl; /* >= 3: a key comes with its quotes */
  while (s < e) {
    const char *c = memchr(s, ':', (size_t)(e - s));
    if (!c) return NULL;
    /* Its first two bytes rule out most other keys before the full compare. */
    if (c - p >= n && c[-n] == '"' && c[1 - n] == key[1] && memcmp(c - n, key, kl) == 0)
      return c + 1;
    s = c + 1;
  }
  return NULL;
}

/* wl_json_find with the key's length given (kl >= 3) and the text as [p, e). */
static const char *wl_find(const char *p, const char *e, const char *key, size_t kl) {
  const char *q = wl_key_compact(p, e, key, kl);
  if (q) {
    while (q < e && wl_is_space(*q)) q++;
    return q < e ? q : NULL;
  }
  /* Whitespace between the key and its colon: search for the key itself. */
  const char *s = p;
  while (s < e && (s = memmem(s, (size_t)(e - s), key, kl)) != NULL) {
    q = s + kl;
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

const char *wl_json_find(const char *p, size_t len, const char *key, const char **end) {
  *end = p + len;
  size_t kl = strlen(key);
  return kl < 3 ? NULL : wl_find(p, p + len, key, kl);
}

/* Reads the digits at *q (at most up to e) into *out; false when there is none. */
static bool wl_digits(const char **q, const char *e, uint64_t *out) {
  const unsigned char *s = (const unsigned char *)*q, *end = (const unsigned char *)e;
  unsigned d;
  if (s >= end || (d = (unsigned)*s - '0') > 9) return false;
  uint64_t v = d;
  while (++s < end && (d = (unsigned)*s - '0') <= 9) v = v * 10 + d;
  *out = v;
  *q = (const char *)s;
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
  static const struct {
    const char *name;
    size_t len;
    wl_op_t op;
  } ops[] = {{"ev", 2, WL_OP_EV},     {"puback", 6, WL_OP_PUBACK},         {"pong", 4, WL_OP_PONG},
             {"gap", 3, WL_OP_GAP},   {"subscribed", 10, WL_OP_SUBSCRIBED}, {"error", 5, WL_OP_ERROR}};
  const char *e = p + len, *v;
  /* The daemon and the peer write op first: {"op":"ev",... is the hot case. */
  if (len >= 11 && memcmp(p, "{\"op\":\"", 7) == 0) {
    v = p + 7;
    if (memcmp(v, "ev\"", 3) == 0) return WL_OP_EV;
  } else {
    v = wl_json_find(p, len, "\"op\"", &e);
    if (!v || *v != '"') return WL_OP_OTHER;
    v++;
  }
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (wl_str_at(v, e, ops[i].name, ops[i].len)) return ops[i].op;
  return WL_OP_OTHER;
}

/* Where data.t0's value starts when the first '{' at or after s opens "data" and t0 is
 * its first key, as in events of wsload's publishers relayed by the daemon or the peer
 * (data comes after seq, and nothing before it holds a brace); NULL otherwise. One
 * memchr instead of a colon-by-colon walk over epoch, type, lane and ts. */
static const char *wl_data_t0(const char *s, const char *e) {
  const char *b = memchr(s, '{', (size_t)(e - s));
  if (!b || b - s < 7 || e - b < 7) return NULL;
  if (memcmp(b - 7, "\"data\":", 7) != 0 || memcmp(b + 1, "\"t0\":", 5) != 0) return NULL;
  return b + 6;
}

void wl_scan_ev(const char *p, size_t len, wl_ev_scan_t *ev) {
  static const char seq_key[] = "\"seq\"", t0_key[] = "\"t0\"";
  memset(ev, 0, sizeof *ev);
  const char *e = p + len, *after_seq = p;
  const char *q = wl_find(p, e, seq_key, sizeof seq_key - 1);
  if (q) {
    if (*q == '"') q++;
    ev->has_seq = wl_digits(&q, e, &ev->seq);
    if (ev->has_seq) after_seq = q;
  }
  /* data (and t0 in it) follows seq in the daemon's and the peer's events: look there
   * first, so the scan does not cover the head of the message twice. */
  q = wl_data_t0(after_seq, e);
  if (!q) q = wl_find(after_seq, e, t0_key, sizeof t0_key - 1);
  if (!q && after_seq != p) q = wl_find(p, e, t0_key, sizeof t0_key - 1);
  if (!q || !wl_digits(&q, e, &ev->t0_us)) return;
  ev->has_t0 = true;
  /* wsload's publishers put the warm-up mark right after t0: no second scan. */
  ev->warm = (size_t)(e - q) >= 6 && memcmp(q, ",\"w\":1", 6) == 0;
  if (ev->t0_us < 100000000000000ULL) ev->t0_us *= 1000; /* milliseconds */
}
