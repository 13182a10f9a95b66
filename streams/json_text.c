/* JSON text on the publish hot path: a validating compactor, a canonical writer and a
 * string escaper.
 *
 * Measured (docs/streams.md): jansson spent ~9 us per event on parsing and re-dumping the
 * data and on building the frame header, capping publish near 100k events/s. Here data
 * text is validated against RFC 8259 (syntax, UTF-8, no U+0000, paired surrogates, a depth
 * limit) and copied without insignificant whitespace in one pass, so the frame is one line
 * (SSE needs that) and no tree is built; the header's strings are escaped the way
 * jansson's compact dump escapes them. The canonical writer (stream__json_canon, for the
 * WebSocket fast path, fastpath.h) goes further: it writes what jansson's load and compact
 * dump would write (strings re-escaped, numbers re-formatted, duplicate keys refused), so
 * that a message read without jansson publishes the same bytes as one read with it. All
 * are checked against jansson by differential tests (tests/unit/streams/test_json_text.c,
 * tests/fuzz/fuzz_json_compact.c). Owns no state. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "fastpath.h"
#include "internal.h"

typedef struct jscan {
  const unsigned char *p;
  const unsigned char *end;
  char *out; /* NULL: validate only */
  size_t n;  /* bytes written */
  uint32_t depth;
  uint32_t max_depth;
} jscan_t;

static void put(jscan_t *s, const unsigned char *from, size_t len) {
  if (s->out) memcpy(s->out + s->n, from, len);
  s->n += len;
}

static void skip_ws(jscan_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end) {
  unsigned c = p[0];
  if (c < 0x80) return 1;
  size_t n;
  unsigned min;
  if (c >= 0xC2 && c <= 0xDF) n = 2, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, min = 0x10000;
  else return 0;
  if ((size_t)(end - p) < n) return 0;
  unsigned cp = c & (0x7F >> n);
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

bool stream__utf8_valid(const char *str, size_t len) {
  const unsigned char *p = (const unsigned char *)str, *end = p + len;
  while (p < end) {
    size_t k = utf8_seq(p, end);
    if (k == 0 || (k == 1 && *p == 0)) return false;
    p += k;
  }
  return true;
}

static int hex4(const unsigned char *p, unsigned *v) {
  *v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = p[i], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return -1;
    *v = (*v << 4) | d;
  }
  return 0;
}

static int scan_string(jscan_t *s) {
  const unsigned char *start = s->p++; /* the opening quote */
  while (s->p < s->end) {
    unsigned c = *s->p;
    if (c == '"') {
      s->p++;
      put(s, start, (size_t)(s->p - start));
      return 0;
    }
    if (c < 0x20) return -1;
    if (c == '\\') {
      if (s->end - s->p < 2) return -1;
      unsigned e = s->p[1];
      if (e == 'u') {
        unsigned v, w;
        if (s->end - s->p < 6 || hex4(s->p + 2, &v) < 0 || v == 0) return -1;
        s->p += 6;
        if (v >= 0xDC00 && v <= 0xDFFF) return -1; /* lone low surrogate */
        if (v >= 0xD800 && v <= 0xDBFF) {          /* needs its low half */
          if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' || hex4(s->p + 2, &w) < 0 || w < 0xDC00 ||
              w > 0xDFFF)
            return -1;
          s->p += 6;
        }
        continue;
      }
      if (!strchr("\"\\/bfnrt", (int)e) || e == 0) return -1;
      s->p += 2;
      continue;
    }
    size_t k = utf8_seq(s->p, s->end);
    if (k == 0) return -1;
    s->p += k;
  }
  return -1;
}

static int scan_number(jscan_t *s) {
  const unsigned char *start = s->p;
  if (s->p < s->end && *s->p == '-') s->p++;
  if (s->p >= s->end) return -1;
  if (*s->p == '0') s->p++;
  else if (*s->p >= '1' && *s->p <= '9')
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  else return -1;
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9') return -1;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9') return -1;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  }
  put(s, start, (size_t)(s->p - start));
  return 0;
}

static int scan_literal(jscan_t *s, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return -1;
  put(s, s->p, n);
  s->p += n;
  return 0;
}

static int scan_value(jscan_t *s);

static int scan_container(jscan_t *s, unsigned char close, bool object) {
  if (++s->depth > s->max_depth) return -1;
  put(s, s->p++, 1);
  skip_ws(s);
  if (s->p < s->end && *s->p == close) {
    put(s, s->p++, 1);
    s->depth--;
    return 0;
  }
  for (;;) {
    skip_ws(s);
    if (object) {
      if (s->p >= s->end || *s->p != '"' || scan_string(s) < 0) return -1;
      skip_ws(s);
      if (s->p >= s->end || *s->p != ':') return -1;
      put(s, s->p++, 1);
      skip_ws(s);
    }
    if (scan_value(s) < 0) return -1;
    skip_ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == ',') {
      put(s, s->p++, 1);
      continue;
    }
    if (*s->p != close) return -1;
    put(s, s->p++, 1);
    s->depth--;
    return 0;
  }
}

static int scan_value(jscan_t *s) {
  if (s->p >= s->end) return -1;
  switch (*s->p) {
  case '{': return scan_container(s, '}', true);
  case '[': return scan_container(s, ']', false);
  case '"': return scan_string(s);
  case 't': return scan_literal(s, "true");
  case 'f': return scan_literal(s, "false");
  case 'n': return scan_literal(s, "null");
  default: return scan_number(s);
  }
}

int stream__json_compact(const char *text, size_t len, uint32_t max_depth, char *out, size_t *out_len,
                         size_t *err_off) {
  jscan_t s = {.p = (const unsigned char *)text, .end = (const unsigned char *)text + len, .out = out,
               .max_depth = max_depth};
  skip_ws(&s);
  int rc = scan_value(&s);
  if (rc == 0) {
    skip_ws(&s);
    if (s.p != s.end) rc = -1;
  }
  if (rc < 0) {
    if (err_off) *err_off = (size_t)(s.p - (const unsigned char *)text);
    return -EINVAL;
  }
  if (out_len) *out_len = s.n;
  return 0;
}

/* 8 bytes from p, the first in the lowest bits whatever the machine's byte order. */
static uint64_t load8(const unsigned char *p) {
  uint64_t w;
  memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

/* The bytes of w (load8) that jansson's dump escapes, as their high bits: below 0x20, '"'
 * or '\\'. As in canon_special8 below, the lowest flag is exact. */
static uint64_t escape_special8(uint64_t w) {
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  uint64_t below_space = (w - ones * 0x20) & ~w & high;
  uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
  return below_space | ((q - ones) & ~q & high) | ((b - ones) & ~b & high);
}

/* Which bytes jansson's dump escapes. */
static const bool escape_byte[256] = {
    [0x00 ... 0x1F] = true,
    ['"'] = true,
    ['\\'] = true,
};

/* How many of the len bytes at p go out as they are before the first one to escape. */
static size_t escape_plain(const unsigned char *p, size_t len) {
  size_t i = 0;
  for (; len - i >= 8; i += 8) {
    uint64_t special = escape_special8(load8(p + i));
    if (special) return i + (size_t)__builtin_ctzll(special) / 8;
  }
  while (i < len && !escape_byte[p[i]]) i++;
  return i;
}

size_t stream__json_escape(char *out, const char *str) {
  static const char hex[] = "0123456789ABCDEF"; /* as jansson writes them */
  const unsigned char *p = (const unsigned char *)str;
  size_t len = strlen(str), n = 0, i = 0;
  out[n++] = '"';
  for (;;) {
    size_t k = escape_plain(p + i, len - i);
    memcpy(out + n, p + i, k);
    n += k;
    i += k;
    if (i == len) break;
    unsigned c = p[i++];
    out[n++] = '\\';
    switch (c) {
    case '"':
    case '\\': out[n++] = (char)c; break;
    case '\b': out[n++] = 'b'; break;
    case '\f': out[n++] = 'f'; break;
    case '\n': out[n++] = 'n'; break;
    case '\r': out[n++] = 'r'; break;
    case '\t': out[n++] = 't'; break;
    default:
      memcpy(out + n, "u00", 3);
      n += 3;
      out[n++] = hex[c >> 4];
      out[n++] = hex[c & 15];
    }
  }
  out[n++] = '"';
  return n;
}

size_t stream__json_escape_measure(stream_jstr_t *j, const char *s) {
  j->s = s;
  j->len = strlen(s);
  const unsigned char *p = (const unsigned char *)s;
  size_t n = 2 + j->len;
  for (size_t i = escape_plain(p, j->len); i < j->len; i += 1 + escape_plain(p + i + 1, j->len - i - 1)) {
    unsigned c = p[i];
    if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') n += 1;
    else n += 5; /* \u00XX */
  }
  j->esc_len = n;
  return n;
}

size_t stream__json_escape_len(const char *str) {
  stream_jstr_t j;
  return stream__json_escape_measure(&j, str);
}

size_t stream__json_escape_jstr(char *out, const stream_jstr_t *j) {
  if (j->esc_len != j->len + 2) return stream__json_escape(out, j->s);
  out[0] = '"';
  memcpy(out + 1, j->s, j->len);
  out[j->len + 1] = '"';
  return j->len + 2;
}

/* ---- the canonical writer: jansson's load and compact dump without the tree ---- */

#define CANON_KEYS 128       /* keys of the objects open at once */
#define CANON_OBJECT_KEYS 32 /* members of one object (the duplicate check is quadratic) */
#define CANON_NUMBER_MAX 63  /* bytes of a real's literal */

typedef struct canon_key {
  uint32_t off; /* in out, quotes included */
  uint32_t len;
} canon_key_t;

/* Invariant between tokens: out->len + (end - p) <= out->cap. Every token but a real
 * writes at most the bytes it reads (unescaping never lengthens a string), so only reals
 * reserve more. */
typedef struct jcanon {
  const unsigned char *p;
  const unsigned char *end;
  stream_jout_t *out;
  uint32_t depth;
  uint32_t max_depth;
  uint32_t nkeys;
  canon_key_t keys[CANON_KEYS]; /* per open object, from its base index */
} jcanon_t;

void stream__jout_init(stream_jout_t *o, char *buf, size_t cap) {
  o->p = buf;
  o->len = 0;
  o->cap = buf ? cap : 0;
  o->heap = false;
}

void stream__jout_close(stream_jout_t *o) {
  if (o->heap) free(o->p);
  o->p = NULL;
  o->len = o->cap = 0;
  o->heap = false;
}

static void jout_reserve(stream_jout_t *o, size_t need) {
  if (need <= o->cap) return;
  size_t cap = o->cap * 2 > need ? o->cap * 2 : need;
  if (o->heap) {
    o->p = xrealloc(o->p, cap);
  } else {
    char *n = xmalloc(cap);
    if (o->len) memcpy(n, o->p, o->len);
    o->p = n;
    o->heap = true;
  }
  o->cap = cap;
}

static void canon_ws(jcanon_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static void canon_byte(jcanon_t *s) { s->out->p[s->out->len++] = (char)*s->p++; }

/* A code point from a \u escape, written as jansson's dump writes it. */
static char *canon_codepoint(char *o, uint32_t cp) {
  static const char hex[] = "0123456789ABCDEF";
  if (cp < 0x20) {
    *o++ = '\\';
    switch (cp) {
    case '\b': *o++ = 'b'; break;
    case '\f': *o++ = 'f'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    default:
      memcpy(o, "u00", 3);
      o += 3;
      *o++ = hex[cp >> 4];
      *o++ = hex[cp & 15];
    }
  } else if (cp == '"' || cp == '\\') {
    *o++ = '\\';
    *o++ = (char)cp;
  } else if (cp < 0x80) {
    *o++ = (char)cp;
  } else if (cp < 0x800) {
    *o++ = (char)(0xC0 | (cp >> 6));
    *o++ = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *o++ = (char)(0xE0 | (cp >> 12));
    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *o++ = (char)(0x80 | (cp & 0x3F));
  } else {
    *o++ = (char)(0xF0 | (cp >> 18));
    *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *o++ = (char)(0x80 | (cp & 0x3F));
  }
  return o;
}

/* The bytes of w (load8) that need a look, as their high
 * bits: outside 0x20..0x7F, '"' or '\\' (the bit tricks of "Bit Twiddling Hacks": a byte
 * below n, a zero byte). A borrow may also flag bytes above a flagged one, never below it,
 * so the lowest flag is exact: every byte before it is plain. */
static uint64_t canon_special8(uint64_t w) {
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  uint64_t below_space = (w - ones * 0x20) & ~w & high;
  uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
  uint64_t quote = (q - ones) & ~q & high, backslash = (b - ones) & ~b & high;
  return (w & high) | below_space | quote | backslash;
}

static int canon_string(jcanon_t *s) {
  const unsigned char *p = s->p + 1, *end = s->end;
  char *o0 = s->out->p + s->out->len, *o = o0;
  *o++ = '"';
  for (;;) {
    while (end - p >= 8) { /* plain runs 8 bytes at a time: most of a typical string */
      uint64_t w = load8(p);
      uint64_t special = canon_special8(w);
      memcpy(o, p, 8); /* o stays within out: see the invariant above jcanon_t */
      if (special) { /* the plain bytes before the first special one, then that one below */
        size_t n = (size_t)__builtin_ctzll(special) / 8;
        o += n;
        p += n;
        break;
      }
      o += 8;
      p += 8;
    }
    if (p >= end) return -1;
    unsigned c = *p;
    if (c == '"') break;
    if (c < 0x20) return -1;
    if (c < 0x80 && c != '\\') {
      *o++ = (char)c;
      p++;
      continue;
    }
    if (c != '\\') {
      size_t k = utf8_seq(p, end);
      if (k == 0) return -1;
      memcpy(o, p, k);
      o += k;
      p += k;
      continue;
    }
    if (end - p < 2) return -1;
    unsigned e = p[1];
    switch (e) {
    case '"':
    case '\\':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
      *o++ = '\\';
      *o++ = (char)e;
      p += 2;
      break;
    case '/':
      *o++ = '/';
      p += 2;
      break;
    case 'u': {
      unsigned v, w;
      if (end - p < 6 || hex4(p + 2, &v) < 0 || v == 0) return -1;
      p += 6;
      uint32_t cp = v;
      if (v >= 0xDC00 && v <= 0xDFFF) return -1; /* lone low surrogate */
      if (v >= 0xD800 && v <= 0xDBFF) {          /* needs its low half */
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &w) < 0 || w < 0xDC00 || w > 0xDFFF)
          return -1;
        p += 6;
        cp = 0x10000 + ((v - 0xD800) << 10) + (w - 0xDC00);
      }
      o = canon_codepoint(o, cp);
      break;
    }
    default: return -1;
    }
  }
  *o++ = '"';
  s->p = p + 1;
  s->out->len += (size_t)(o - o0);
  return 0;
}

static bool digit(const unsigned char *p, const unsigned char *end) { return p < end && *p >= '0' && *p <= '9'; }

/* Integers within int64 are copied (jansson keeps json_int_t; "-0" loads as 0). Reals are
 * converted and printed as jansson does: %.17g, ".0" when it would read as an integer,
 * no '+' and no leading zeros in the exponent. Numbers jansson refuses (integers beyond
 * int64, reals beyond double) fail. */
static int canon_number(jcanon_t *s) {
  const unsigned char *start = s->p, *p = s->p, *end = s->end;
  bool neg = false, real = false;
  if (p < end && *p == '-') {
    neg = true;
    p++;
  }
  const unsigned char *digits = p;
  if (p >= end) return -1;
  if (*p == '0') p++;
  else if (*p >= '1' && *p <= '9')
    while (digit(p, end)) p++;
  else return -1;
  size_t ndig = (size_t)(p - digits);
  if (p < end && *p == '.') {
    real = true;
    p++;
    if (!digit(p, end)) return -1;
    while (digit(p, end)) p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    real = true;
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (!digit(p, end)) return -1;
    while (digit(p, end)) p++;
  }
  size_t n = (size_t)(p - start);
  stream_jout_t *o = s->out;
  if (!real) {
    static const char max_pos[] = "9223372036854775807", max_neg[] = "9223372036854775808";
    if (ndig > 19 || (ndig == 19 && memcmp(digits, neg ? max_neg : max_pos, 19) > 0)) return -1;
    if (neg && ndig == 1 && *digits == '0') { /* -0 is the integer 0 */
      start++;
      n--;
    }
    memcpy(o->p + o->len, start, n);
    o->len += n;
    s->p = p;
    return 0;
  }
  if (n > CANON_NUMBER_MAX) return -1;
  const char *point = localeconv()->decimal_point;
  if (point[0] != '.' || point[1]) return -1; /* jansson would translate; not worth it */
  char lit[CANON_NUMBER_MAX + 1], num[48];
  memcpy(lit, start, n);
  lit[n] = '\0';
  char *lit_end;
  double d = strtod(lit, &lit_end);
  if (lit_end != lit + n || isinf(d)) return -1; /* jansson: "real number overflow" */
  int k = snprintf(num, sizeof num, "%.17g", d);
  if (k <= 0 || (size_t)k + 3 > sizeof num) return -1;
  if (!strchr(num, '.') && !strchr(num, 'e')) {
    num[k++] = '.';
    num[k++] = '0';
    num[k] = '\0';
  }
  char *x = strchr(num, 'e');
  if (x) {
    char *a = x + 1, *b = a + 1;
    if (*a == '-') a++;
    while (*b == '0') b++;
    if (b != a) {
      memmove(a, b, (size_t)(num + k + 1 - b));
      k -= (int)(b - a);
    }
  }
  s->p = p;
  jout_reserve(o, o->len + (size_t)k + (size_t)(end - p));
  memcpy(o->p + o->len, num, (size_t)k);
  o->len += (size_t)k;
  return 0;
}

static int canon_literal(jcanon_t *s, const char *word, size_t n) {
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return -1;
  memcpy(s->out->p + s->out->len, word, n);
  s->out->len += n;
  s->p += n;
  return 0;
}

/* Records the key just written at off (len bytes, quotes included) among the keys of the
 * object whose first key index is base; false when it repeats one or there is no room. */
static bool canon_key_add(jcanon_t *s, uint32_t base, size_t off, size_t len) {
  if (s->nkeys >= CANON_KEYS || s->nkeys - base >= CANON_OBJECT_KEYS) return false;
  const char *k = s->out->p + off;
  for (uint32_t i = base; i < s->nkeys; i++)
    if (s->keys[i].len == len && memcmp(s->out->p + s->keys[i].off, k, len) == 0) return false;
  s->keys[s->nkeys].off = (uint32_t)off;
  s->keys[s->nkeys].len = (uint32_t)len;
  s->nkeys++;
  return true;
}

static int canon_value(jcanon_t *s);

static int canon_container(jcanon_t *s, bool object, stream_jmember_cb member, void *ud) {
  unsigned char close = object ? '}' : ']';
  stream_jout_t *o = s->out;
  if (++s->depth > s->max_depth) return -1;
  uint32_t base = s->nkeys;
  canon_byte(s);
  canon_ws(s);
  if (s->p < s->end && *s->p == close) {
    canon_byte(s);
    s->depth--;
    return 0;
  }
  for (;;) {
    canon_ws(s);
    size_t key_off = 0, key_len = 0;
    if (object) {
      if (s->p >= s->end || *s->p != '"') return -1;
      key_off = o->len;
      if (canon_string(s) < 0) return -1;
      key_len = o->len - key_off;
      if (!canon_key_add(s, base, key_off, key_len)) return -1;
      canon_ws(s);
      if (s->p >= s->end || *s->p != ':') return -1;
      canon_byte(s);
      canon_ws(s);
    }
    size_t val_off = o->len;
    if (canon_value(s) < 0) return -1;
    if (member) member(ud, o, key_off + 1, key_len - 2, val_off, o->len - val_off);
    canon_ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == ',') {
      canon_byte(s);
      continue;
    }
    if (*s->p != close) return -1;
    canon_byte(s);
    s->depth--;
    s->nkeys = base;
    return 0;
  }
}

static int canon_value(jcanon_t *s) {
  if (s->p >= s->end) return -1;
  switch (*s->p) {
  case '{': return canon_container(s, true, NULL, NULL);
  case '[': return canon_container(s, false, NULL, NULL);
  case '"': return canon_string(s);
  case 't': return canon_literal(s, "true", 4);
  case 'f': return canon_literal(s, "false", 5);
  case 'n': return canon_literal(s, "null", 4);
  default: return canon_number(s);
  }
}

int stream__json_canon(const char *text, size_t len, uint32_t max_depth, stream_jout_t *out, stream_jmember_cb member,
                       void *ud) {
  if (len > UINT32_MAX / 2) return -EINVAL; /* key offsets are 32-bit */
  jcanon_t s;
  s.p = (const unsigned char *)text;
  s.end = s.p + len;
  s.out = out;
  s.depth = 0;
  s.max_depth = max_depth;
  s.nkeys = 0;
  out->len = 0;
  jout_reserve(out, len + 1);
  canon_ws(&s);
  int rc;
  if (member) rc = s.p < s.end && *s.p == '{' ? canon_container(&s, true, member, ud) : -1;
  else rc = canon_value(&s);
  if (rc == 0) {
    canon_ws(&s);
    if (s.p != s.end) rc = -1;
  }
  return rc < 0 ? -EINVAL : 0;
}

size_t stream__json_canon_unescape(char *dst, const char *s, size_t len) {
  const char *p = s + 1, *end = s + len - 1;
  size_t n = 0;
  while (p < end) {
    if (*p != '\\') {
      dst[n++] = *p++;
      continue;
    }
    char e = p[1];
    switch (e) {
    case 'b': dst[n++] = '\b'; break;
    case 'f': dst[n++] = '\f'; break;
    case 'n': dst[n++] = '\n'; break;
    case 'r': dst[n++] = '\r'; break;
    case 't': dst[n++] = '\t'; break;
    case 'u': { /* canonical text escapes only U+0000..U+001F this way: \u00XX */
      unsigned v = 0;
      (void)hex4((const unsigned char *)p + 2, &v);
      dst[n++] = (char)v;
      p += 4;
      break;
    }
    default: dst[n++] = e; /* '"' or '\\' */
    }
    p += 2;
  }
  dst[n] = '\0';
  return n;
}
