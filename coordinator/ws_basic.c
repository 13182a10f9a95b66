/* The issue-2 WebSocket session: JSON ping/pong and errors for everything else. Stateless;
 * the streams protocol replaces it through coord_ws_set_session(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"

static void basic_reply(coord_ws_conn_t *c, json_t *msg) {
  char *text = json_dumps(msg, JSON_COMPACT);
  json_decref(msg);
  if (!text) return;
  if (coord_ws_send(c, text, strlen(text), false) < 0) {
    /* -EPIPE / -ENOBUFS: the connection is closing anyway. */
  }
  free(text);
}

static void basic_error(coord_ws_conn_t *c, json_t *ref, const char *message) {
  json_t *msg = json_pack("{s:s,s:s,s:s}", "op", "error", "code", "bad_request", "message",
                          message);
  if (msg && ref) json_object_set(msg, "ref", ref);
  basic_reply(c, msg);
}

static int basic_open(coord_ws_conn_t *c, void *ud, void **session) {
  (void)c;
  (void)ud;
  *session = NULL;
  return 0;
}

static void basic_message(coord_ws_conn_t *c, void *session, const char *data, size_t len,
                          bool binary) {
  (void)session;
  if (binary) {
    basic_error(c, NULL, "binary messages are not supported");
    return;
  }
  json_error_t jerr;
  json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    char m[200];
    snprintf(m, sizeof m, "invalid JSON: %s", jerr.text);
    basic_error(c, NULL, m);
    return;
  }
  if (!json_is_object(root)) {
    basic_error(c, NULL, "a message must be a JSON object");
    json_decref(root);
    return;
  }
  json_t *ref = json_object_get(root, "ref");
  if (ref && !json_is_string(ref)) ref = NULL;
  const char *op = json_string_value(json_object_get(root, "op"));
  if (!op) {
    basic_error(c, ref, "op: missing or not a string");
  } else if (strcmp(op, "ping") == 0) {
    json_t *pong = json_pack("{s:s}", "op", "pong");
    if (pong && ref) json_object_set(pong, "ref", ref);
    basic_reply(c, pong);
  } else {
    char m[160];
    snprintf(m, sizeof m, "op: unknown op \"%.100s\"", op);
    basic_error(c, ref, m);
  }
  json_decref(root);
}

/* Shutdown began: tell the client to come back later, with jitter so that a restart is
 * not met by every client at the same instant. No positions yet: nothing is subscribed in
 * this session (the streams session fills them in). */
static void basic_drain(coord_ws_conn_t *c, void *session) {
  (void)session;
  json_int_t retry_ms = 250 + (json_int_t)((uv_hrtime() / 1000) % 1000);
  basic_reply(c, json_pack("{s:s,s:I,s:{}}", "op", "drain", "retry_ms", retry_ms, "positions"));
}

const coord_ws_session_ops_t coord_ws_basic_session = {
    .on_open = basic_open,
    .on_message = basic_message,
    .on_drain = basic_drain,
};
