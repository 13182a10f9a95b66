/* Incremental UTF-8 validation (RFC 3629) for WebSocket text messages.
 *
 * Text messages arrive in fragments split at arbitrary bytes, so the validator carries the
 * state of an unfinished sequence between calls. It rejects overlong forms, surrogates
 * (U+D800..U+DFFF) and code points above U+10FFFF, which is what RFC 6455 requires before a
 * server may accept a text frame (close 1007 otherwise). No allocation, no locale. */
#ifndef COORD_UTF8_H
#define COORD_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct coord_utf8 {
  uint8_t need; /* continuation bytes still expected for the current sequence */
  uint8_t lo;   /* allowed range of the next continuation byte */
  uint8_t hi;
  bool bad;     /* sticky: once invalid, always invalid */
} coord_utf8_t;

void coord_utf8_init(coord_utf8_t *s);
/* Feeds n bytes; returns false as soon as the input so far cannot be valid UTF-8. */
bool coord_utf8_feed(coord_utf8_t *s, const void *data, size_t n);
/* True when everything fed so far is valid and no sequence is left unfinished. */
bool coord_utf8_complete(const coord_utf8_t *s);
/* One-shot check of a whole buffer. */
bool coord_utf8_valid(const void *data, size_t n);

#endif
