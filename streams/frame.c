/* Frames: one message serialized once, shared by reference.
 *
 * Owns the frame allocation layout, reference counting and the lane names. An event frame
 * is the publish hot path, so it is written in one pass into one exact-size allocation by
 * a small writer: fixed keys, integers, strings escaped by stream__json_escape (checked
 * against jansson by tests), and the data value's text, which is already validated compact
 * JSON. The data's offset is recorded so that the store takes it from the frame without a
 * second serialization. Control frames (replies, gaps, drain) are built with jansson.
 * Does not know about topics, rings or connections. */
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

/* Decimal digits of v into out (at most 20 + sign); returns the count. */
static size_t put_int(char *out, int64_t v) {
  char tmp[24];
  size_t n = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  size_t k = 0;
  if (v < 0) out[k++] = '-';
  while (n) out[k++] = tmp[--n];
  return k;
}

#define PUT_LIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) += sizeof(lit) - 1)

stream_frame_t *stream__frame_event(stream_stats_t *acct, size_t headroom, const stream_evhdr_t *h, const char *data,
                                    size_t data_len) {
  if (!data) {
    data = "null";
    data_len = 4;
  }
  const char *lane = stream__lane_name(h->lane);
  size_t topic_len = strlen(h->topic), type_len = h->type ? strlen(h->type) : 0;
  size_t max_payload = 96 + 2 * 24 + stream__json_escape_len(h->topic) + stream__json_escape_len(h->epoch) +
                       (h->id ? stream__json_escape_len(h->id) : 0) +
                       (h->type ? stream__json_escape_len(h->type) : 0) + strlen(lane) + data_len;
  size_t payload_off = sizeof(stream_frame_t) + headroom;
  size_t cap = payload_off + max_payload + 1 + topic_len + 1 + (h->type ? type_len + 1 : 0);
  unsigned char *mem = xmalloc(cap);
  char *p0 = (char *)mem + payload_off, *p = p0;
  PUT_LIT(p, "{\"op\":\"ev\",\"topic\":");
  p += stream__json_escape(p, h->topic);
  if (h->seq) {
    PUT_LIT(p, ",\"seq\":");
    p += put_int(p, (int64_t)h->seq);
  }
  PUT_LIT(p, ",\"epoch\":");
  p += stream__json_escape(p, h->epoch);
  if (h->id) {
    PUT_LIT(p, ",\"id\":");
    p += stream__json_escape(p, h->id);
  }
  if (h->type) {
    PUT_LIT(p, ",\"type\":");
    p += stream__json_escape(p, h->type);
  }
  PUT_LIT(p, ",\"lane\":\"");
  memcpy(p, lane, strlen(lane));
  p += strlen(lane);
  PUT_LIT(p, "\",\"ts\":");
  p += put_int(p, h->ts_ms);
  PUT_LIT(p, ",\"data\":");
  size_t data_off = (size_t)(p - p0);
  memcpy(p, data, data_len);
  p += data_len;
  *p++ = '}';
  size_t len = (size_t)(p - p0);
  *p++ = '\0';
  char *topic = p;
  memcpy(p, h->topic, topic_len + 1);
  p += topic_len + 1;
  char *type = NULL;
  if (h->type) {
    type = p;
    memcpy(p, h->type, type_len + 1);
    p += type_len + 1;
  }
  size_t used = (size_t)(p - (char *)mem);
  stream_frame_t *f = (stream_frame_t *)(void *)mem;
  memset(f, 0, sizeof *f);
  f->refs = 1;
  f->payload = mem + payload_off;
  f->len = len;
  f->size = used;
  f->topic = topic;
  f->type = type;
  f->acct = acct;
  if (acct) {
    acct->frames++;
    acct->frame_bytes += used;
  }
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
uint64_t stream_frame_durable_us(const stream_frame_t *f) { return f->durable_us; }
