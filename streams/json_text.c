/* JSON text on the publish hot path: a validating compactor and a string escaper.
 *
 * Measured (docs/streams.md): jansson spent ~9 us per event on parsing and re-dumping the
 * data and on building the frame header, capping publish near 100k events/s. Here data
 * text is validated against RFC 8259 (syntax, UTF-8, no U+0000, paired surrogates, a depth
 * limit) and copied without insignificant whitespace in one pass, so the frame is one line
 * (SSE needs that) and no tree is built; the header's strings are escaped the way
 * jansson's compact dump escapes them. Both are checked against jansson by differential
 * tests (tests/unit/streams/test_json_text.c). Owns no state. */
#include <errno.h>
#include <string.h>

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

size_t stream__json_escape_len(const char *str) {
  size_t n = 2;
  for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
    unsigned c = *p;
    if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') n += 2;
    else if (c < 0x20) n += 6;
    else n++;
  }
  return n;
}

size_t stream__json_escape(char *out, const char *str) {
  static const char hex[] = "0123456789ABCDEF"; /* as jansson writes them */
  size_t n = 0;
  out[n++] = '"';
  for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
    unsigned c = *p;
    if (c == '"' || c == '\\') {
      out[n++] = '\\';
      out[n++] = (char)c;
    } else if (c < 0x20) {
      out[n++] = '\\';
      switch (c) {
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
    } else {
      out[n++] = (char)c;
    }
  }
  out[n++] = '"';
  return n;
}
