/* The consumer groups HTTP API:
 *   GET /v1/streams/{tenant}/{room...}/groups   the topic's groups with their figures
 *
 * Owns the answer's shape only: authentication, the topic from the path and error
 * mapping are streams_http.c's (coord__streams_http_open), the figures come from the hub
 * (stream_list_groups: groups stored or in memory). A token needs the subscribe scope on
 * the topic's room, like reading its events. docs/protocol.md documents the answer. */
#include <errno.h>

#include <jansson.h>

#include "base/mem.h"
#include "streams_glue.h"

static int group_one(void *ud, const stream_group_info_t *g) {
  json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:b}", "group", g->group, "epoch",
                        g->epoch ? g->epoch : "", "head", (json_int_t)g->head, "position",
                        (json_int_t)g->position, "lag",
                        (json_int_t)(g->head > g->position ? g->head - g->position : 0), "pending",
                        (json_int_t)g->pending, "inflight", (json_int_t)g->inflight, "members",
                        (int)g->members, "ack_wait_ms", (int)g->ack_wait_ms, "loaded", g->loaded);
  /* Counters exist only while the group is in memory (since it was loaded). */
  if (g->loaded) {
    json_object_set_new(o, "deliveries", json_integer((json_int_t)g->deliveries));
    json_object_set_new(o, "redeliveries", json_integer((json_int_t)g->redeliveries));
    json_object_set_new(o, "acks", json_integer((json_int_t)g->acks));
    json_object_set_new(o, "nacks", json_integer((json_int_t)g->nacks));
    json_object_set_new(o, "dead_lettered", json_integer((json_int_t)g->dead_lettered));
    json_object_set_new(o, "skipped", json_integer((json_int_t)g->skipped));
  }
  json_array_append_new(ud, o);
  return 0;
}

static void groups_get(coord_http_req_t *req, void *ud) {
  coord_streams_t *s = ud;
  coord_auth_principal_t who;
  char topic[STREAM_TOPIC_MAX + 1];
  if (coord__streams_http_open(s, req, COORD_AUTH_SCOPE_SUBSCRIBE, false, &who, topic) < 0) return;
  coord_auth_principal_close(&who);
  json_t *groups = json_array();
  int rc = stream_list_groups(s->hub, topic, group_one, groups);
  if (rc < 0) {
    json_decref(groups);
    coord__streams_http_fail(req, rc, NULL);
    return;
  }
  coord_http_add_header(req, "cache-control", "no-store");
  coord_http_respond_json_take(req, 200, json_pack("{s:s,s:o}", "topic", topic, "groups", groups));
}

int coord__streams_groups_http_register(coord_streams_t *s) {
  return coord_http_route(s->d->http, COORD_HTTP_GET, "/v1/streams/{tenant}/{room...}/groups",
                          "/v1/streams/{tenant}/{room...}/groups", groups_get, s);
}
