/* Allocation helpers shared by every folder.
 *
 * Out of memory is not an error we recover from (STYLE.md): these wrappers abort with a
 * message instead of returning NULL, so callers never test for it. Sizes that input
 * controls must be checked against configured limits before they reach these calls. */
#ifndef BASE_MEM_H
#define BASE_MEM_H

#include <stddef.h>

#define container_of(ptr, type, member) \
  ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define BASE_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n) __attribute__((malloc, warn_unused_result));
void *xcalloc(size_t count, size_t n) __attribute__((malloc, warn_unused_result));
void *xrealloc(void *p, size_t n) __attribute__((warn_unused_result));
char *xstrdup(const char *s) __attribute__((malloc, warn_unused_result));
char *xstrndup(const char *s, size_t n) __attribute__((malloc, warn_unused_result));
/* xgrow: the growable-buffer step. When need > *cap, reallocates p to the first of
 * first, 2 * first, 4 * first, ... (or 2 * *cap, 4 * *cap, ... once allocated) that holds
 * need bytes, stores it in *cap and returns the new pointer; otherwise returns p as is.
 * Contents up to the old *cap are kept. first must be > 0. */
void *xgrow(void *p, size_t *cap, size_t need, size_t first) __attribute__((warn_unused_result));
/* xasprintf: formatted string in a fresh allocation (printf rules). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2), warn_unused_result));

#endif
