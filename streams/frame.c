/* Frames: one message serialized once, shared by reference.
 *
 * Owns the frame allocation layout, reference counting and the lane names. An event frame
 * is written in one pass: jansson dumps the header object (op, topic, seq, epoch, id,
 * type, lane, ts) compactly, its closing brace is replaced by the fixed token `,"data":`,
 * the data value's text (already compact JSON written by jansson) is appended and the
 * object closed again. Every escaped byte therefore comes from jansson; the spliced
 * tokens contain nothing that needs escaping. The data's offset is recorded so that the
 * store can take it from the frame without a second serialization. Does not know about
 * topics, rings or connections. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

typedef struct frame_buf {
  unsigned char *mem; /* owned while building */
  size_t len;         /* bytes used */
  size_t cap;
} frame_buf_t;

static void buf_reserve(frame_buf_t *b, size_t more) {
  if (b->len + more <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more) cap *= 2;
  b->mem = xrealloc(b->mem, cap);
  b->cap = cap;
}

static void buf_put(frame_buf_t *b, const void *p, size_t n) {
  buf_reserve(b, n);
  memcpy(b->mem + b->len, p, n);
  b->len += n;
}

static int buf_dump_cb(const char *buffer, size_t size, void *ud) {
  buf_put(ud, buffer, size);
  return 0;
}

static void buf_start(frame_buf_t *b, size_t headroom, size_t guess) {
  b->mem = NULL;
  b->len = 0;
  b->cap = 0;
  buf_reserve(b, sizeof(stream_frame_t) + headroom + guess);
  b->len = sizeof(stream_frame_t) + headroom;
}

/* Appends NUL, topic and type, shrinks the allocation and fills the struct. */
static stream_frame_t *buf_finish(frame_buf_t *b, stream_stats_t *acct, size_t headroom, const char *topic,
                                  const char *type) {
  size_t payload_off = sizeof(stream_frame_t) + headroom;
  size_t payload_len = b->len - payload_off;
  buf_put(b, "", 1);
  size_t topic_off = 0, type_off = 0;
  if (topic) {
    topic_off = b->len;
    buf_put(b, topic, strlen(topic) + 1);
  }
  if (type) {
    type_off = b->len;
    buf_put(b, type, strlen(type) + 1);
  }
  unsigned char *mem = xrealloc(b->mem, b->len);
  stream_frame_t *f = (stream_frame_t *)(void *)mem;
  memset(f, 0, sizeof *f);
  f->refs = 1;
  f->payload = mem + payload_off;
  f->len = payload_len;
  f->size = b->len;
  f->topic = topic ? (const char *)mem + topic_off : NULL;
  f->type = type ? (const char *)mem + type_off : NULL;
  f->acct = acct;
  if (acct) {
    acct->frames++;
    acct->frame_bytes += f->size;
  }
  return f;
}

static const char *const lane_names[STREAM_LANES] = {"control", "data", "ephemeral"};

const char *stream__lane_name(int lane) {
  return lane >= 0 && lane < STREAM_LANES ? lane_names[lane] : "data";
}

int stream__lane_parse(const char *name, int *lane) {
  for (int i = 0; i < STREAM_LANES; i++) {
    if (strcmp(name, lane_names[i]) == 0) {
      *lane = i;
      return 0;
    }
  }
  return -EINVAL;
}

stream_frame_t *stream__frame_event(stream_stats_t *acct, size_t headroom, const stream_evhdr_t *h, const char *data,
                                    size_t data_len) {
  json_t *o = json_object();
  json_object_set_new(o, "op", json_string("ev"));
  json_object_set_new(o, "topic", json_string(h->topic));
  if (h->seq) json_object_set_new(o, "seq", json_integer((json_int_t)h->seq));
  json_object_set_new(o, "epoch", json_string(h->epoch));
  if (h->id) json_object_set_new(o, "id", json_string(h->id));
  if (h->type) json_object_set_new(o, "type", json_string(h->type));
  json_object_set_new(o, "lane", json_string(stream__lane_name(h->lane)));
  json_object_set_new(o, "ts", json_integer(h->ts_ms));

  if (!data) {
    data = "null";
    data_len = 4;
  }
  frame_buf_t b;
  buf_start(&b, headroom, 128 + data_len);
  json_dump_callback(o, buf_dump_cb, &b, JSON_COMPACT);
  json_decref(o);
  b.len--; /* the closing brace */
  static const char data_key[] = ",\"data\":";
  buf_put(&b, data_key, sizeof data_key - 1);
  size_t data_off = b.len - sizeof(stream_frame_t) - headroom;
  buf_put(&b, data, data_len);
  buf_put(&b, "}", 1);
  stream_frame_t *f = buf_finish(&b, acct, headroom, h->topic, h->type);
  f->kind = STREAM_FRAME_EVENT;
  f->op = "ev";
  f->lane = (uint8_t)h->lane;
  f->seq = h->seq;
  f->ts_ms = h->ts_ms;
  f->data_off = data_off;
  f->data_len = data_len;
  return f;
}

stream_frame_t *stream__frame_control(stream_stats_t *acct, size_t headroom, const char *op, const char *topic,
                                      json_t *obj) {
  frame_buf_t b;
  buf_start(&b, headroom, 128);
  json_dump_callback(obj, buf_dump_cb, &b, JSON_COMPACT);
  stream_frame_t *f = buf_finish(&b, acct, headroom, topic, NULL);
  f->kind = STREAM_FRAME_CONTROL;
  f->op = op;
  f->lane = STREAM_LANE_CONTROL;
  return f;
}

stream_frame_t *stream_frame_ref(stream_frame_t *f) {
  f->refs++;
  return f;
}

void stream_frame_unref(stream_frame_t **fp) {
  if (!fp || !*fp) return;
  stream_frame_t *f = *fp;
  *fp = NULL;
  if (--f->refs > 0) return;
  if (f->acct) {
    f->acct->frames--;
    f->acct->frame_bytes -= f->size;
  }
  free(f);
}

const unsigned char *stream_frame_payload(const stream_frame_t *f, size_t *len) {
  if (len) *len = f->len;
  return f->payload;
}

unsigned char *stream_frame_payload_mut(stream_frame_t *f, size_t *len) {
  if (len) *len = f->len;
  return f->payload;
}

stream_frame_kind_t stream_frame_kind(const stream_frame_t *f) { return (stream_frame_kind_t)f->kind; }
const char *stream_frame_op(const stream_frame_t *f) { return f->op; }
uint64_t stream_frame_seq(const stream_frame_t *f) { return f->seq; }
int stream_frame_lane(const stream_frame_t *f) { return f->lane; }
const char *stream_frame_topic(const stream_frame_t *f) { return f->topic; }
int64_t stream_frame_ts_ms(const stream_frame_t *f) { return f->ts_ms; }
