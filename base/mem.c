/* Aborting allocation wrappers; see base/mem.h. */
#include "base/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void mem_die(size_t n) {
  fprintf(stderr, "{\"level\":\"fatal\",\"module\":\"mem\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
  abort();
}

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) mem_die(n);
  return p;
}

void *xcalloc(size_t count, size_t n) {
  void *p = calloc(count ? count : 1, n ? n : 1);
  if (!p) mem_die(count * n);
  return p;
}

void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) mem_die(n);
  return q;
}

void *xgrow(void *p, size_t *cap, size_t need, size_t first) {
  if (need <= *cap) return p;
  size_t c = *cap ? *cap : first;
  while (c < need) c *= 2;
  *cap = c;
  return xrealloc(p, c);
}

char *xstrdup(const char *s) {
  return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n) {
  n = strnlen(s, n);
  char *p = xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) mem_die(0);
  char *p = xmalloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}
