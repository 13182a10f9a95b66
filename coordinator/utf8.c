/* UTF-8 validator; see utf8.h. Owns nothing but its small state struct. */
#include "utf8.h"

#include <string.h>

void coord_utf8_init(coord_utf8_t *s) { memset(s, 0, sizeof *s); }

bool coord_utf8_feed(coord_utf8_t *s, const void *data, size_t n) {
  const uint8_t *p = data, *end = p + n;
  if (s->bad) return false;
  while (p < end) {
    uint8_t c = *p;
    if (s->need) {
      if (c < s->lo || c > s->hi) goto bad;
      s->need--;
      s->lo = 0x80;
      s->hi = 0xBF;
      p++;
      continue;
    }
    if (c < 0x80) {
      /* ASCII runs are the common case: skip eight bytes at a time. */
      while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (w & UINT64_C(0x8080808080808080)) break;
        p += 8;
      }
      while (p < end && *p < 0x80) p++;
      continue;
    }
    s->lo = 0x80;
    s->hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      s->need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      s->need = 2;
      if (c == 0xE0) s->lo = 0xA0;      /* no overlong 3-byte forms */
      else if (c == 0xED) s->hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
      s->need = 3;
      if (c == 0xF0) s->lo = 0x90;      /* no overlong 4-byte forms */
      else if (c == 0xF4) s->hi = 0x8F; /* nothing above U+10FFFF */
    } else {
      goto bad; /* 0x80..0xC1 as a lead byte, 0xF5..0xFF */
    }
    p++;
  }
  return true;
bad:
  s->bad = true;
  return false;
}

bool coord_utf8_complete(const coord_utf8_t *s) { return !s->bad && s->need == 0; }

bool coord_utf8_valid(const void *data, size_t n) {
  coord_utf8_t s;
  coord_utf8_init(&s);
  return coord_utf8_feed(&s, data, n) && coord_utf8_complete(&s);
}
