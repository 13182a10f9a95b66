/* The WebSocket protocol: one client message in, control frames out.
 *
 * Parses a message (size and nesting checked before jansson sees it), validates its shape
 * so that errors name the field, and performs sub, unsub, pub and ping on the connection,
 * and the consumer group requests (sub/unsub with "group", ack, extend, nack).
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

/* Optional integer field in [min, max]: 0 (absent: *out untouched), or -EINVAL queued. */
static int opt_uint(msg_t *m, const char *field, uint64_t min, uint64_t max, uint64_t *out, int *qrc) {
  json_t *v = json_object_get(m->root, field);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < min ||
      (uint64_t)json_integer_value(v) > max) {
    char buf[96];
    snprintf(buf, sizeof buf, "%s: must be an integer from %llu to %llu", field, (unsigned long long)min,
             (unsigned long long)max);
    *qrc = reply_error(m, -EINVAL, buf, 0);
    return -EINVAL;
  }
  *out = (uint64_t)json_integer_value(v);
  return 0;
}

/* The "group" field: NULL when absent; -EINVAL (queued) when not a valid name. */
static int opt_group(msg_t *m, const char **out, int *qrc) {
  if (opt_string(m, "group", STREAM_GROUP_NAME_MAX, out, qrc) < 0) return -EINVAL;
  if (*out && !stream__group_name_ok(*out)) {
    *qrc = reply_error(m, -EINVAL, "group: must match [A-Za-z0-9_.-]{1,64}", 0);
    return -EINVAL;
  }
  return 0;
}

static int op_sub(msg_t *m) {
  int qrc = 0;
  if (need_topic(m, &qrc) < 0) return qrc;
  const char *group;
  if (opt_group(m, &group, &qrc) < 0) return qrc;
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
  int rc;
  if (group) {
    uint64_t inflight = 0, wait = 0;
    const stream_config_t *cfg = &m->conn->hub->cfg;
    if (opt_uint(m, "max_inflight", 1, cfg->group_max_inflight_limit, &inflight, &qrc) < 0) return qrc;
    if (opt_uint(m, "ack_wait_ms", 1, STREAM_GROUP_WAIT_MAX_MS, &wait, &qrc) < 0) return qrc;
    stream_group_join_t j = {.group = group, .start = &pos, .max_inflight = (uint32_t)inflight,
                             .ack_wait_ms = (uint32_t)wait};
    rc = stream_conn_group_join(m->conn, m->topic, &j, &err);
  } else {
    rc = stream_conn_subscribe(m->conn, m->topic, &pos, &err);
  }
  if (rc == -ENOBUFS) return rc;
  if (rc < 0) return reply_error(m, rc, err.message, 0);
  return 0;
}

static int op_unsub(msg_t *m) {
  int qrc = 0;
  if (need_topic(m, &qrc) < 0) return qrc;
  const char *group;
  if (opt_group(m, &group, &qrc) < 0) return qrc;
  if (group) {
    if (stream_conn_group_leave(m->conn, m->topic, group) < 0)
      return reply_error(m, -ENOENT, "group: not a member", 0);
  } else if (stream_conn_unsubscribe(m->conn, m->topic) < 0) {
    return reply_error(m, -ENOENT, "topic: not subscribed", 0);
  }
  stream_hub_t *hub = m->conn->hub;
  json_t *o = json_pack("{s:s,s:s}", "op", "unsubscribed", "topic", m->topic);
  if (group) json_object_set_new(o, "group", json_string(group));
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

typedef enum { GROUP_ACK, GROUP_EXTEND, GROUP_NACK } group_op_t;

/* ack, extend and nack: silent on success unless the message has a ref, which gets
 * {"op":"acked"|"extended"|"nacked","ref",...}. */
static int op_group(msg_t *m, group_op_t op) {
  int qrc = 0;
  if (need_topic(m, &qrc) < 0) return qrc;
  const char *group;
  if (opt_group(m, &group, &qrc) < 0) return qrc;
  if (!group) return reply_error(m, -EINVAL, "group: missing", 0);
  json_t *jseq = json_object_get(m->root, "seq");
  if (!json_is_integer(jseq) || json_integer_value(jseq) < 1)
    return reply_error(m, -EINVAL, jseq ? "seq: must be an integer >= 1" : "seq: missing", 0);
  uint64_t seq = (uint64_t)json_integer_value(jseq), delay = 0;
  if (op == GROUP_NACK && opt_uint(m, "delay_ms", 0, STREAM_GROUP_WAIT_MAX_MS, &delay, &qrc) < 0) return qrc;
  stream_err_t err;
  int rc;
  const char *done;
  if (op == GROUP_ACK) {
    rc = stream_conn_group_ack(m->conn, m->topic, group, seq, &err);
    done = "acked";
  } else if (op == GROUP_EXTEND) {
    rc = stream_conn_group_extend(m->conn, m->topic, group, seq, &err);
    done = "extended";
  } else {
    rc = stream_conn_group_nack(m->conn, m->topic, group, seq, (uint32_t)delay, &err);
    done = "nacked";
  }
  if (rc < 0) return reply_error(m, rc, err.message, 0);
  if (!m->ref) return 0;
  stream_hub_t *hub = m->conn->hub;
  json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I}", "op", done, "ref", m->ref, "topic", m->topic, "group", group,
                        "seq", (json_int_t)seq);
  stream_frame_t *f = stream__frame_control(&hub->stats, hub->cfg.frame_headroom, done, m->topic, o);
  json_decref(o);
  return stream__conn_control(m->conn, f, false);
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
  else if (strcmp(name, "ack") == 0) rc = op_group(&m, GROUP_ACK);
  else if (strcmp(name, "extend") == 0) rc = op_group(&m, GROUP_EXTEND);
  else if (strcmp(name, "nack") == 0) rc = op_group(&m, GROUP_NACK);
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
