/* The WebSocket protocol: one client message in, control frames out.
 *
 * Parses a message (size and nesting checked before jansson sees it), validates its shape
 * so that errors name the field, and performs sub, unsub, pub and ping on the connection,
 * and the consumer group requests (sub/unsub with "group", ack, extend, nack).
 * Every reply (subscribed, unsubscribed, pong, error; puback later, once durable) is a
 * control frame on the connection's queue. The exact shapes are in docs/protocol.md.
 *
 * Two paths, one behaviour. The hot messages (pub, ping, ack, extend, nack) that are
 * well-formed go through the fast path: msgscan.c reads them without jansson and the
 * replies are written by hand. Anything else (other ops, any error in the message, any
 * number or width the scanner does not take) goes to the jansson path, untouched, which
 * stays the reference: both end in the same op functions below, and tests and a fuzz
 * target compare the two on the same messages (tests/unit/streams/test_protocol_fast.c,
 * tests/fuzz/fuzz_stream_fastpath.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastpath.h"
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

/* The permission to act on m->topic (validated before), false with the error queued in
 * *qrc: a topic of another tenant (or a room the token does not name) answers
 * "forbidden" for every op, never "not_found", whether or not this connection holds
 * anything there. */
static bool topic_allowed(msg_t *m, stream_action_t action, int *qrc) {
  size_t tenant_len = (size_t)(strchr(m->topic, '/') - m->topic);
  if (stream__conn_may(m->conn, action, m->topic, tenant_len)) return true;
  *qrc = reply_error(m, -EACCES,
                     action == STREAM_ACTION_PUBLISH ? "topic: not allowed to publish" : "topic: not allowed to subscribe",
                     0);
  return false;
}

/* The publish permission, which both paths (fast and jansson) check once a pub is read. */
static bool pub_allowed(msg_t *m, int *qrc) { return topic_allowed(m, STREAM_ACTION_PUBLISH, qrc); }

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
  if (!topic_allowed(m, STREAM_ACTION_SUBSCRIBE, &qrc)) return qrc;
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
  stream_frame_t *f = stream__frame_control(&hub->frames, hub->cfg.frame_headroom, "unsubscribed", m->topic, o);
  json_decref(o);
  return stream__conn_control(m->conn, f, false);
}

static int pub_exec(msg_t *m, const stream_pubin_t *in) {
  stream_err_t err = {0};
  int rc = stream__publish(m->conn->hub, m->topic, in, m->conn, m->ref, NULL, NULL, NULL, &err);
  if (rc < 0) return reply_error(m, rc, err.message, err.retry_after_ms);
  return 0;
}

static int op_pub(msg_t *m) {
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
  if (!pub_allowed(m, &qrc)) return qrc;
  json_t *data = json_object_get(m->root, "data");
  char *text = NULL;
  if (data) {
    text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) return reply_error(m, -EINVAL, "data: cannot be serialized", 0);
    in.data = text;
    in.data_len = strlen(text);
  }
  int rc = pub_exec(m, &in);
  free(text);
  return rc;
}

typedef enum { GROUP_ACK, GROUP_EXTEND, GROUP_NACK } group_op_t;

/* ack, extend and nack once read: silent on success unless the message has a ref, which
 * gets {"op":"acked"|"extended"|"nacked","ref","topic","group","seq"}. */
static int group_exec(msg_t *m, group_op_t op, const char *group, uint64_t seq, uint64_t delay) {
  stream_err_t err;
  int rc;
  if (!topic_allowed(m, STREAM_ACTION_SUBSCRIBE, &rc)) return rc;
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
  size_t len = sizeof("{\"op\":,\"ref\":,\"topic\":,\"group\":,\"seq\":}") - 1 + strlen(done) + 2 +
               stream__json_escape_len(m->ref) + stream__json_escape_len(m->topic) + stream__json_escape_len(group) +
               stream__cw_int_len((int64_t)seq);
  stream_cw_t w;
  stream_frame_t *f = stream__frame_control_alloc(&hub->frames, hub->cfg.frame_headroom, done, m->topic, len, &w);
  STREAM_CW_LIT(&w, "{\"op\":");
  stream__cw_str(&w, done);
  STREAM_CW_LIT(&w, ",\"ref\":");
  stream__cw_str(&w, m->ref);
  STREAM_CW_LIT(&w, ",\"topic\":");
  stream__cw_str(&w, m->topic);
  STREAM_CW_LIT(&w, ",\"group\":");
  stream__cw_str(&w, group);
  STREAM_CW_LIT(&w, ",\"seq\":");
  stream__cw_int(&w, (int64_t)seq);
  STREAM_CW_LIT(&w, "}");
  return stream__conn_control(m->conn, f, false);
}

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
  return group_exec(m, op, group, seq, delay);
}

/* {"op":"pong"} or {"op":"pong","ref":...}, as jansson would write them. */
static int op_ping(msg_t *m) {
  stream_hub_t *hub = m->conn->hub;
  size_t len =
      sizeof("{\"op\":\"pong\"}") - 1 + (m->ref ? sizeof(",\"ref\":") - 1 + stream__json_escape_len(m->ref) : 0);
  stream_cw_t w;
  stream_frame_t *f = stream__frame_control_alloc(&hub->frames, hub->cfg.frame_headroom, "pong", NULL, len, &w);
  STREAM_CW_LIT(&w, "{\"op\":\"pong\"");
  if (m->ref) {
    STREAM_CW_LIT(&w, ",\"ref\":");
    stream__cw_str(&w, m->ref);
  }
  STREAM_CW_LIT(&w, "}");
  return stream__conn_control(m->conn, f, false);
}

/* ---- the fast path: a scanned message, or back to jansson ---- */

#define FAST_BUF 2048 /* bytes of stack for the scan's output; larger messages use the heap */

/* An optional string field as opt_string reads it; false when the jansson path must say why
 * not. Decoded strings have no NUL (the scanner refuses an escaped NUL, as jansson does). */
static bool fast_str(const stream_msg_field_t *f, size_t max, const char **out) {
  *out = NULL;
  if (f->kind == STREAM_MSG_ABSENT || f->kind == STREAM_MSG_NULL) return true;
  if (f->kind != STREAM_MSG_STRING || f->str_len > max) return false;
  *out = f->str;
  return true;
}

static bool fast_topic(msg_t *m, const stream_msg_t *s) {
  const stream_msg_field_t *f = &s->f[STREAM_MSG_TOPIC];
  if (f->kind != STREAM_MSG_STRING || stream_topic_validate(f->str, NULL, NULL) < 0) return false;
  m->topic = f->str;
  return true;
}

static int fast_pub(msg_t *m, const stream_msg_t *s) {
  stream_pubin_t in = {.lane = STREAM_LANE_DATA};
  const char *lane;
  if (!fast_topic(m, s) || !fast_str(&s->f[STREAM_MSG_ID], STREAM_ID_MAX, &in.id) ||
      !fast_str(&s->f[STREAM_MSG_TYPE], STREAM_TYPE_MAX, &in.type) || !fast_str(&s->f[STREAM_MSG_LANE], 16, &lane) ||
      (in.id && !*in.id) || (lane && stream__lane_parse(lane, &in.lane) < 0))
    return STREAM_FAST_DEFER;
  int qrc = 0;
  if (!pub_allowed(m, &qrc)) return qrc;
  const stream_msg_field_t *data = &s->f[STREAM_MSG_DATA];
  if (data->kind != STREAM_MSG_ABSENT) {
    in.data = s->out.p + data->off;
    in.data_len = data->len;
  }
  return pub_exec(m, &in);
}

static int fast_group(msg_t *m, const stream_msg_t *s, group_op_t op) {
  const char *group;
  const stream_msg_field_t *seq = &s->f[STREAM_MSG_SEQ], *delay = &s->f[STREAM_MSG_DELAY_MS];
  if (!fast_topic(m, s) || !fast_str(&s->f[STREAM_MSG_GROUP], STREAM_GROUP_NAME_MAX, &group) || !group ||
      !stream__group_name_ok(group) || seq->kind != STREAM_MSG_INT || seq->i < 1)
    return STREAM_FAST_DEFER;
  uint64_t delay_ms = 0;
  if (op == GROUP_NACK && delay->kind != STREAM_MSG_ABSENT && delay->kind != STREAM_MSG_NULL) {
    if (delay->kind != STREAM_MSG_INT || delay->i < 0 || (uint64_t)delay->i > STREAM_GROUP_WAIT_MAX_MS)
      return STREAM_FAST_DEFER;
    delay_ms = (uint64_t)delay->i;
  }
  return group_exec(m, op, group, (uint64_t)seq->i, delay_ms);
}

int stream__conn_handle_fast(stream_conn_t *c, const char *json, size_t len) {
  stream_hub_t *hub = c->hub;
  if (c->close_reason) return -ENOBUFS;
  if (len > hub->cfg.max_message_bytes) return STREAM_FAST_DEFER;
  char buf[FAST_BUF];
  stream_msg_t s;
  msg_t m = {.conn = c};
  int rc = STREAM_FAST_DEFER;
  if (stream__msg_scan(&s, json, len, hub->cfg.max_json_depth, buf, sizeof buf) < 0) goto out;
  const stream_msg_field_t *op = &s.f[STREAM_MSG_OP];
  if (op->kind != STREAM_MSG_STRING || !fast_str(&s.f[STREAM_MSG_REF], STREAM_REF_MAX, &m.ref)) goto out;
  if (strcmp(op->str, "pub") == 0) rc = fast_pub(&m, &s);
  else if (strcmp(op->str, "ping") == 0) rc = op_ping(&m);
  else if (strcmp(op->str, "ack") == 0) rc = fast_group(&m, &s, GROUP_ACK);
  else if (strcmp(op->str, "extend") == 0) rc = fast_group(&m, &s, GROUP_EXTEND);
  else if (strcmp(op->str, "nack") == 0) rc = fast_group(&m, &s, GROUP_NACK);
out:
  stream__msg_close(&s);
  if (rc == STREAM_FAST_DEFER) return rc;
  return rc == -ENOBUFS || c->close_reason ? -ENOBUFS : 0;
}

int stream__conn_handle_slow(stream_conn_t *c, const char *json, size_t len) {
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

int stream_conn_handle_message(stream_conn_t *c, const char *json, size_t len) {
  int rc = stream__conn_handle_fast(c, json, len);
  return rc == STREAM_FAST_DEFER ? stream__conn_handle_slow(c, json, len) : rc;
}
