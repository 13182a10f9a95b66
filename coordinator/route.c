/* Route pattern matching; see route.h. Owns no state: every call works on the two strings
 * it is given and on fixed-size arrays on the stack. */
#include "route.h"

#include <string.h>

#define ROUTE_MAX_SEGMENTS 64

typedef struct route_seg {
  const char *p;
  size_t len;
} route_seg_t;

/* Splits "/a/b/c" into {"a","b","c"}; "/" gives one empty segment, "/a/" gives {"a",""}.
 * Returns the count, or -1 when s does not start with '/' or has too many segments. */
static int route_split(const char *s, route_seg_t *segs) {
  if (*s != '/') return -1;
  int n = 0;
  const char *p = s + 1;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (n == ROUTE_MAX_SEGMENTS) return -1;
    segs[n].p = p;
    segs[n].len = len;
    n++;
    if (!slash) return n;
    p = slash + 1;
  }
}

static bool route_is_capture(const route_seg_t *s) {
  return s->len >= 3 && s->p[0] == '{' && s->p[s->len - 1] == '}';
}

static bool route_is_rest(const route_seg_t *s) {
  return route_is_capture(s) && s->len >= 6 && memcmp(s->p + s->len - 4, "...}", 4) == 0;
}

bool coord_route_pattern_valid(const char *pattern) {
  route_seg_t segs[ROUTE_MAX_SEGMENTS];
  int n = route_split(pattern, segs);
  if (n < 0) return false;
  int rests = 0, captures = 0;
  for (int i = 0; i < n; i++) {
    const route_seg_t *s = &segs[i];
    bool has_brace = memchr(s->p, '{', s->len) || memchr(s->p, '}', s->len);
    if (!has_brace) continue;
    if (!route_is_capture(s)) return false;
    if (memchr(s->p + 1, '{', s->len - 2) || memchr(s->p + 1, '}', s->len - 2)) return false;
    captures++;
    if (route_is_rest(s)) rests++;
  }
  return rests <= 1 && captures <= COORD_ROUTE_MAX_PARAMS;
}

static void route_capture(coord_route_param_t *params, size_t *np, const route_seg_t *pat,
                          const char *value, size_t len) {
  size_t name_len = pat->len - 2;
  if (route_is_rest(pat)) name_len -= 3;
  params[*np].name = pat->p + 1;
  params[*np].name_len = name_len;
  params[*np].value = value;
  params[*np].value_len = len;
  (*np)++;
}

/* Matches one pattern segment against one path segment (no rest captures here). */
static bool route_seg_match(const route_seg_t *pat, const route_seg_t *seg,
                            coord_route_param_t *params, size_t *np) {
  if (route_is_capture(pat)) {
    if (seg->len == 0 || *np >= COORD_ROUTE_MAX_PARAMS) return false;
    route_capture(params, np, pat, seg->p, seg->len);
    return true;
  }
  return pat->len == seg->len && memcmp(pat->p, seg->p, seg->len) == 0;
}

bool coord_route_match(const char *pattern, const char *path, coord_route_param_t *params,
                       size_t *nparams) {
  route_seg_t ps[ROUTE_MAX_SEGMENTS], xs[ROUTE_MAX_SEGMENTS];
  int np = route_split(pattern, ps), nx = route_split(path, xs);
  size_t ncap = 0;
  if (np < 0 || nx < 0) return false;

  int rest = -1;
  for (int i = 0; i < np; i++)
    if (route_is_rest(&ps[i])) rest = i;

  if (rest < 0) {
    if (np != nx) return false;
    for (int i = 0; i < np; i++)
      if (!route_seg_match(&ps[i], &xs[i], params, &ncap)) return false;
    *nparams = ncap;
    return true;
  }

  /* Segments before the rest capture match one to one, as do those after it counted from
   * the end; the rest capture takes what is left in between (at least one segment, none
   * empty, so "a//b" or a trailing "/" never smuggle an empty room name in). */
  int after = np - rest - 1;
  int taken = nx - rest - after;
  if (taken < 1) return false;
  for (int i = 0; i < rest; i++)
    if (!route_seg_match(&ps[i], &xs[i], params, &ncap)) return false;
  for (int i = 0; i < taken; i++)
    if (xs[rest + i].len == 0) return false;
  if (ncap >= COORD_ROUTE_MAX_PARAMS) return false;
  const char *start = xs[rest].p;
  const route_seg_t *last = &xs[rest + taken - 1];
  route_capture(params, &ncap, &ps[rest], start, (size_t)(last->p + last->len - start));
  for (int i = 0; i < after; i++)
    if (!route_seg_match(&ps[rest + 1 + i], &xs[rest + taken + i], params, &ncap)) return false;
  *nparams = ncap;
  return true;
}
