/* Frames: one message serialized once, shared by reference.
 *
 * Owns the frame allocation layout, reference counting and the lane names. An event frame
 * is the publish hot path, so it is written in one pass into one exact-size allocation by
 * a small writer: fixed keys, integers, strings escaped by stream__json_escape (checked
 * against jansson by tests), and the data value's text, which is already validated compact
 * JSON. The data's offset is recorded so that the store takes it from the frame without a
 * second serialization. The frequent control frames (puback, pong, acked, error) are
 * written the same way through stream__frame_control_alloc and the stream__cw_* appenders
 * (fastpath.h), byte for byte what jansson would write; the others are built with jansson
 * and dumped once into one exact-size allocation too. Does not know about topics, rings
 * or connections. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "fastpath.h"
#include "internal.h"

/* Allocates a frame with room for a payload of len bytes (the caller writes it) and its
 * NUL, then topic and type; fills the struct and the accounting. */
static stream_frame_t *frame_alloc(stream_stats_t *acct, size_t headroom, size_t len, const char *topic,
                                   const char *type) {
  size_t topic_len = topic ? strlen(topic) + 1 : 0, type_len = type ? strlen(type) + 1 : 0;
  size_t payload_off = sizeof(stream_frame_t) + headroom;
  size_t size = payload_off + len + 1 + topic_len + type_len;
  unsigned char *mem = xmalloc(size);
  stream_frame_t *f = (stream_frame_t *)(void *)mem;
  memset(f, 0, sizeof *f);
  f->refs = 1;
  f->payload = mem + payload_off;
  f->payload[len] = '\0';
  f->len = len;
  f->size = size;
  char *p = (char *)f->payload + len + 1;
  if (topic) {
    f->topic = memcpy(p, topic, topic_len);
    p += topic_len;
  }
  if (type) f->type = memcpy(p, type, type_len);
  f->acct = acct;
  if (acct) {
    acct->frames++;
    acct->frame_bytes += size;
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
  char small[512];
  size_t len = json_dumpb(obj, small, sizeof small, JSON_COMPACT);
  stream_frame_t *f = frame_alloc(acct, headroom, len, topic, NULL);
  if (len <= sizeof small) memcpy(f->payload, small, len);
  else json_dumpb(obj, (char *)f->payload, len, JSON_COMPACT);
  f->kind = STREAM_FRAME_CONTROL;
  f->op = op;
  f->lane = STREAM_LANE_CONTROL;
  return f;
}

stream_frame_t *stream__frame_control_alloc(stream_stats_t *acct, size_t headroom, const char *op, const char *topic,
                                            size_t len, stream_cw_t *w) {
  stream_frame_t *f = frame_alloc(acct, headroom, len, topic, NULL);
  f->kind = STREAM_FRAME_CONTROL;
  f->op = op;
  f->lane = STREAM_LANE_CONTROL;
  w->p = (char *)f->payload;
  return f;
}

size_t stream__cw_int_len(int64_t v) {
  char tmp[24];
  return put_int(tmp, v);
}

void stream__cw_lit(stream_cw_t *w, const char *s, size_t len) {
  memcpy(w->p, s, len);
  w->p += len;
}

void stream__cw_str(stream_cw_t *w, const char *s) { w->p += stream__json_escape(w->p, s); }

void stream__cw_int(stream_cw_t *w, int64_t v) { w->p += put_int(w->p, v); }

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
