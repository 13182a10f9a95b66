/* Shared by the fuzz targets: a tiny growable string and a check that aborts, so that
 * libFuzzer and the replay driver both report a broken invariant as a crash. The first
 * input byte configures a run (limits, split point, wire); the rest is the stream. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fz_str {
  char *p;
  size_t len, cap;
} fz_str_t;

static inline void fz_put(fz_str_t *s, const void *b, size_t n) {
  if (s->len + n + 1 > s->cap) {
    s->cap = (s->len + n + 1) * 2;
    s->p = realloc(s->p, s->cap);
    if (!s->p) abort();
  }
  memcpy(s->p + s->len, b, n);
  s->len += n;
  s->p[s->len] = '\0';
}

static inline void fz_puts(fz_str_t *s, const char *t) { fz_put(s, t, strlen(t)); }

static inline void fz_putn(fz_str_t *s, long long v) {
  char b[32];
  int n = snprintf(b, sizeof b, "%lld", v);
  fz_put(s, b, (size_t)n);
}

/* Aborts when two runs of the same input disagree. */
static inline void fz_same(const fz_str_t *a, const fz_str_t *b, const char *what) {
  if (a->len != b->len || (a->len && memcmp(a->p, b->p, a->len) != 0)) {
    fprintf(stderr, "fuzz invariant broken: %s\n--- whole\n%.*s\n--- split\n%.*s\n", what,
            (int)a->len, a->p ? a->p : "", (int)b->len, b->p ? b->p : "");
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
