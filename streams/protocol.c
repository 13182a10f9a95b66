/* The WebSocket protocol: one client message in, control frames out.
 *
 * Parses a message (size and nesting checked before jansson sees it), validates its shape
 * so that errors name the field, and performs sub, unsub, pub and ping on the connection.
 * Every reply (subscribed, unsubscribed, pong, error; puback later, once durable) is a
 * control frame on the connection's queue. The exact shapes are in docs/protocol.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct msg {
  stream_conn_t *conn;
  json_t *root;
  const char *ref; /* borrowed from root */
  const char *topic;
} msg_t;

static int reply_error(msg_t *m, int status, const char *message, uint32_t retry_after_ms) {
  return stream__conn_error(m->conn, m->ref, status, m->topic, message, retry_after_ms);
}

/* Optional string field: 0 (absent or ok), or -EINVAL with the error queued. */
static int opt_string(msg_t *m, const char *field, size_t max, const char **out, int *qrc) {
  *out = NULL;
  json_t *v = json_object_get(m->root, field);
  if (!v || json_is_null(v)) return 0;
  char buf[96];
  if (!json_is_string(v)) {
    snprintf(buf, sizeof buf, "%s: must be a string", field);
    *qrc = reply_error(m, -EINVAL, buf, 0);
    return -EINVAL;
  }
  if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v)) {
    snprintf(buf, sizeof buf, "%s: must be at most %zu bytes without NUL", field, max);
    *qrc = reply_error(m, -EINVAL, buf, 0);
    return -EINVAL;
  }
  *out = json_string_value(v);
  return 0;
}

static int need_topic(msg_t *m, int *qrc) {
  json_t *v = json_object_get(m->root, "topic");
  if (!json_is_string(v)) {
    *qrc = reply_error(m, -EINVAL, v ? "topic: must be a string" : "topic: missing", 0);
    return -EINVAL;
  }
  stream_err_t err = {0};
  if (stream_topic_validate(json_string_value(v), NULL, &err) < 0) {
    *qrc = reply_error(m, -EINVAL, err.message, 0);
    return -EINVAL;
  }
  m->topic = json_string_value(v);
  return 0;
}

static int op_sub(msg_t *m) {
  int qrc = 0;
  if (need_topic(m, &qrc) < 0) return qrc;
  stream_position_t pos = {.live = true};
  json_t *after = json_object_get(m->root, "after");
  if (after && !json_is_null(after)) {
    if (!json_is_object(after)) return reply_error(m, -EINVAL, "after: must be an object", 0);
    json_t *seq = json_object_get(after, "seq");
    if (!json_is_integer(seq) || json_integer_value(seq) < 0)
      return reply_error(m, -EINVAL, "after.seq: must be an integer >= 0", 0);
    json_t *epoch = json_object_get(after, "epoch");
    if (epoch && !json_is_null(epoch)) {
      if (!json_is_string(epoch) || json_string_length(epoch) > 64)
        return reply_error(m, -EINVAL, "after.epoch: must be a string", 0);
      pos.epoch = json_string_value(epoch);
    }
    pos.live = false;
    pos.seq = (uint64_t)json_integer_value(seq);
  }
  stream_err_t err;
  int rc = stream_conn_subscribe(m->conn, m->topic, &pos, &err);
  if (rc == -ENOBUFS) return rc;
  if (rc < 0) return reply_error(m, rc, err.message, 0);
  return 0;
}

static int op_unsub(msg_t *m) {
  int qrc = 0;
  if (need_topic(m, &qrc) < 0) return qrc;
  if (stream_conn_unsubscribe(m->conn, m->topic) < 0) return reply_error(m, -ENOENT, "topic: not subscribed", 0);
  stream_hub_t *hub = m->conn->hub;
  json_t *o = json_pack("{s:s,s:s}", "op", "unsubscribed", "topic", m->topic);
  if (m->ref) json_object_set_new(o, "ref", json_string(m->ref));
  stream_frame_t *f = stream__frame_control(&hub->stats, hub->cfg.frame_headroom, "unsubscribed", m->topic, o);
  json_decref(o);
  return stream__conn_control(m->conn, f, false);
}

static int op_pub(msg_t *m) {
  stream_conn_t *c = m->conn;
  stream_hub_t *hub = c->hub;
  int qrc = 0;
  if (need_topic(m, &qrc) < 0) return qrc;
  stream_pubin_t in = {.lane = STREAM_LANE_DATA};
  const char *lane;
  if (opt_string(m, "id", STREAM_ID_MAX, &in.id, &qrc) < 0) return qrc;
  if (opt_string(m, "type", STREAM_TYPE_MAX, &in.type, &qrc) < 0) return qrc;
  if (opt_string(m, "lane", 16, &lane, &qrc) < 0) return qrc;
  if (in.id && !*in.id) return reply_error(m, -EINVAL, "id: must not be empty", 0);
  if (lane && stream__lane_parse(lane, &in.lane) < 0)
    return reply_error(m, -EINVAL, "lane: must be control, data or ephemeral", 0);
  size_t tenant_len = (size_t)(strchr(m->topic, '/') - m->topic);
  if (!stream__conn_may(c, STREAM_ACTION_PUBLISH, m->topic, tenant_len))
    return reply_error(m, -EACCES, "topic: not allowed to publish", 0);
  json_t *data = json_object_get(m->root, "data");
  char *text = NULL;
  if (data) {
    text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) return reply_error(m, -EINVAL, "data: cannot be serialized", 0);
    in.data = text;
    in.data_len = strlen(text);
  }
  stream_err_t err = {0};
  int rc = stream__publish(hub, m->topic, &in, c, m->ref, NULL, NULL, NULL, &err);
  free(text);
  if (rc < 0) return reply_error(m, rc, err.message, err.retry_after_ms);
  return 0;
}

static int op_ping(msg_t *m) {
  stream_hub_t *hub = m->conn->hub;
  json_t *o = json_pack("{s:s}", "op", "pong");
  if (m->ref) json_object_set_new(o, "ref", json_string(m->ref));
  stream_frame_t *f = stream__frame_control(&hub->stats, hub->cfg.frame_headroom, "pong", NULL, o);
  json_decref(o);
  return stream__conn_control(m->conn, f, false);
}

int stream_conn_handle_message(stream_conn_t *c, const char *json, size_t len) {
  stream_hub_t *hub = c->hub;
  if (c->close_reason) return -ENOBUFS;
  msg_t m = {.conn = c};
  int rc;
  char buf[160];
  if (len > hub->cfg.max_message_bytes) {
    snprintf(buf, sizeof buf, "message: %zu bytes exceeds %zu", len, hub->cfg.max_message_bytes);
    rc = reply_error(&m, -EMSGSIZE, buf, 0);
    goto out;
  }
  if (!stream__json_depth_ok(json, len, hub->cfg.max_json_depth)) {
    snprintf(buf, sizeof buf, "message: nested deeper than %u", hub->cfg.max_json_depth);
    rc = reply_error(&m, -EINVAL, buf, 0);
    goto out;
  }
  json_error_t jerr;
  m.root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!m.root) {
    snprintf(buf, sizeof buf, "message: invalid JSON at line %d column %d: %.100s", jerr.line, jerr.column, jerr.text);
    rc = reply_error(&m, -EINVAL, buf, 0);
    goto out;
  }
  if (!json_is_object(m.root)) {
    rc = reply_error(&m, -EINVAL, "message: must be an object", 0);
    goto out;
  }
  int qrc = 0;
  if (opt_string(&m, "ref", STREAM_REF_MAX, &m.ref, &qrc) < 0) {
    rc = qrc;
    goto out;
  }
  json_t *op = json_object_get(m.root, "op");
  const char *name = json_is_string(op) ? json_string_value(op) : NULL;
  if (!name) rc = reply_error(&m, -EINVAL, op ? "op: must be a string" : "op: missing", 0);
  else if (strcmp(name, "sub") == 0) rc = op_sub(&m);
  else if (strcmp(name, "unsub") == 0) rc = op_unsub(&m);
  else if (strcmp(name, "pub") == 0) rc = op_pub(&m);
  else if (strcmp(name, "ping") == 0) rc = op_ping(&m);
  else {
    json_t *o = json_string(name);
    char *q = json_dumps(o, JSON_ENCODE_ANY);
    snprintf(buf, sizeof buf, "op: unknown %.100s", q ? q : "value");
    free(q);
    json_decref(o);
    rc = reply_error(&m, -EINVAL, buf, 0);
  }
out:
  json_decref(m.root);
  return rc == -ENOBUFS || c->close_reason ? -ENOBUFS : 0;
}
