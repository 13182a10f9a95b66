/* Tests for coordinator/route.c: pattern validity and matching with captures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "route.h"

/* Renders captures as "name=value;..." for compact expectations. */
static void render(const coord_route_param_t *p, size_t n, char *out, size_t len) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < n; i++)
    used += (size_t)snprintf(out + used, len - used, "%.*s=%.*s;", (int)p[i].name_len, p[i].name,
                             (int)p[i].value_len, p[i].value);
}

static const struct {
  const char *pattern, *path;
  bool match;
  const char *captures;
} cases[] = {
    {"/healthz", "/healthz", true, ""},
    {"/healthz", "/healthz/", false, ""},
    {"/healthz", "/health", false, ""},
    {"/", "/", true, ""},
    {"/v1/streams/{tenant}", "/v1/streams/acme", true, "tenant=acme;"},
    {"/v1/streams/{tenant}", "/v1/streams/", false, ""},
    {"/v1/streams/{tenant}", "/v1/streams/acme/x", false, ""},
    {"/v1/streams/{tenant}/{room...}/events", "/v1/streams/acme/room-1/events", true,
     "tenant=acme;room=room-1;"},
    {"/v1/streams/{tenant}/{room...}/events", "/v1/streams/acme/runs/r_81f/events", true,
     "tenant=acme;room=runs/r_81f;"},
    {"/v1/streams/{tenant}/{room...}/events", "/v1/streams/acme/a/b/c/events/events", true,
     "tenant=acme;room=a/b/c/events;"},
    {"/v1/streams/{tenant}/{room...}/events", "/v1/streams/acme/events", false, ""},
    {"/v1/streams/{tenant}/{room...}/events", "/v1/streams/acme//x/events", false, ""},
    {"/v1/streams/{tenant}/{room...}/sse", "/v1/streams/acme/room/events", false, ""},
    {"/static/{path...}", "/static/css/site.css", true, "path=css/site.css;"},
    {"/static/{path...}", "/static/", false, ""},
    {"/{path...}", "/index.html", true, "path=index.html;"},
    {"/{path...}", "/", false, ""},
    {"/healthz", "healthz", false, ""},
};

static void test_route_matches_each_case_with_its_captures(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    coord_route_param_t p[COORD_ROUTE_MAX_PARAMS];
    size_t n = 0;
    bool m = coord_route_match(cases[i].pattern, cases[i].path, p, &n);
    if (m != cases[i].match) fail_msg("case %zu: %s vs %s", i, cases[i].pattern, cases[i].path);
    if (!m) continue;
    char got[256];
    render(p, n, got, sizeof got);
    if (strcmp(got, cases[i].captures) != 0) fail_msg("case %zu: captures %s", i, got);
  }
}

static void test_route_pattern_validity(void **state) {
  (void)state;
  assert_true(coord_route_pattern_valid("/"));
  assert_true(coord_route_pattern_valid("/v1/streams/{tenant}/{room...}/events"));
  assert_false(coord_route_pattern_valid("v1"));
  assert_false(coord_route_pattern_valid("/{a...}/{b...}"));
  assert_false(coord_route_pattern_valid("/{}"));
  assert_false(coord_route_pattern_valid("/x{a}"));
  assert_false(coord_route_pattern_valid("/{a{b}}"));
  assert_false(coord_route_pattern_valid("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_route_matches_each_case_with_its_captures),
      cmocka_unit_test(test_route_pattern_validity),
  };
  return cmocka_run_group_tests_name("route", tests, NULL, NULL);
}
