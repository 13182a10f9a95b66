/* Path patterns for the HTTP router: literal segments, {name} for one segment and
 * {name...} for one or more segments (at most one per pattern, anywhere in it), e.g.
 * "/v1/streams/{tenant}/{room...}/events". Pure string matching, no allocation: captured
 * values point into the path and are not NUL-terminated. A trailing slash is significant. */
#ifndef COORD_ROUTE_H
#define COORD_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#define COORD_ROUTE_MAX_PARAMS 8

typedef struct coord_route_param {
  const char *name; /* points into the pattern */
  size_t name_len;
  const char *value; /* points into the path */
  size_t value_len;
} coord_route_param_t;

/* Checks that pattern is well formed: starts with '/', braces closed, names non-empty, at
 * most one {x...}, at most COORD_ROUTE_MAX_PARAMS captures. */
bool coord_route_pattern_valid(const char *pattern);

/* Matches path against pattern; on success fills params[0..*nparams). */
bool coord_route_match(const char *pattern, const char *path, coord_route_param_t *params,
                       size_t *nparams);

#endif
