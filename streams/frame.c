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
 * and dumped once into one exact-size allocation too. Frames of up to 1 KiB come from and
 * go back to the hub's lists (stream_frames_t, internal.h) in blocks of a size class, so a
 * steady stream of publishes reuses the blocks of the frames it released. Does not know
 * about topics, rings or connections. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "fastpath.h"
#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define FRAME_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FRAME_ASAN 1
#endif
#endif
#ifdef FRAME_ASAN
#include <sanitizer/asan_interface.h>
/* A block on a list is poisoned but for its link, so a frame used after its release still
 * fails under ASan as it would after free. */
#define POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION((char *)(p) + sizeof(void *), (n) - sizeof(void *))
#define POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POOL_POISON(p, n) ((void)(p), (void)(n))
#define POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

void stream__frames_init(stream_frames_t *fr, stream_stats_t *acct, size_t max_bytes) {
  memset(fr, 0, sizeof *fr);
  fr->acct = acct;
  fr->max_bytes = max_bytes;
}

void stream__frames_close(stream_frames_t *fr) {
  for (size_t c = 0; c < STREAM_FRAME_POOL_CLASSES; c++) {
    while (fr->free[c]) {
      void *b = fr->free[c];
      void *next;
      memcpy(&next, b, sizeof next);
      POOL_UNPOISON(b, (c + 1) * STREAM_FRAME_POOL_CLASS);
      free(b);
      fr->free[c] = next;
    }
  }
  fr->free_bytes = 0;
  fr->max_bytes = 0;
  if (fr->acct) fr->acct->frame_pool_bytes = 0;
}

/* Memory for a frame of need bytes: from its class's list, or new; sets *size to the bytes
 * the block has and *pool_class (0 when the block is not pooled: exact size, freed). */
static unsigned char *frames_get(stream_frames_t *fr, size_t need, size_t *size, uint8_t *pool_class) {
  if (!fr || !fr->max_bytes || need > STREAM_FRAME_POOL_CLASSES * STREAM_FRAME_POOL_CLASS) {
    *size = need;
    *pool_class = 0;
    return xmalloc(need);
  }
  size_t c = (need - 1) / STREAM_FRAME_POOL_CLASS;
  *size = (c + 1) * STREAM_FRAME_POOL_CLASS;
  *pool_class = (uint8_t)(c + 1);
  void *b = fr->free[c];
  if (!b) return xmalloc(*size);
  POOL_UNPOISON(b, *size);
  memcpy(&fr->free[c], b, sizeof(void *));
  fr->free_bytes -= *size;
  if (fr->acct) fr->acct->frame_pool_bytes = fr->free_bytes;
  /* Blocks on a list are mostly cold (the ring released them long after they were
   * written): loading the next one's link now means the next frame of this class does
   * not wait for it. */
  if (fr->free[c]) __builtin_prefetch(fr->free[c], 1);
  return b;
}

/* Accounting of a new frame. */
static void frames_count(stream_frame_t *f, stream_frames_t *fr, uint8_t pool_class) {
  f->frames = fr;
  f->pool_class = pool_class;
  if (fr && fr->acct) {
    fr->acct->frames++;
    fr->acct->frame_bytes += f->size;
  }
}

/* Allocates a frame with room for a payload of len bytes (the caller writes it) and its
 * NUL, then topic and type; fills the struct and the accounting. */
static stream_frame_t *frame_alloc(stream_frames_t *fr, size_t headroom, size_t len, const char *topic,
                                   const char *type) {
  size_t topic_len = topic ? strlen(topic) + 1 : 0, type_len = type ? strlen(type) + 1 : 0;
  size_t payload_off = sizeof(stream_frame_t) + headroom;
  size_t size = payload_off + len + 1 + topic_len + type_len;
  uint8_t pool_class;
  unsigned char *mem = frames_get(fr, size, &size, &pool_class);
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
  frames_count(f, fr, pool_class);
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

/* Decimal digits of v into out (at most 20 + sign); returns the count. Two digits per
 * division: seqs and millisecond timestamps are 13 digits or so, on every frame. */
static size_t put_int(char *out, int64_t v) {
  static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                              "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                              "8081828384858687888990919293949596979899";
  char tmp[24];
  size_t n = sizeof tmp;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  while (u >= 100) {
    unsigned r = (unsigned)(u % 100);
    u /= 100;
    n -= 2;
    memcpy(tmp + n, pairs + 2 * r, 2);
  }
  if (u >= 10) {
    n -= 2;
    memcpy(tmp + n, pairs + 2 * u, 2);
  } else {
    tmp[--n] = (char)('0' + u);
  }
  size_t k = 0;
  if (v < 0) out[k++] = '-';
  memcpy(out + k, tmp + n, sizeof tmp - n);
  return k + sizeof tmp - n;
}

#define PUT_LIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) += sizeof(lit) - 1)

stream_frame_t *stream__frame_event(stream_frames_t *fr, size_t headroom, const stream_evhdr_t *h, const char *data,
                                    size_t data_len) {
  if (!data) {
    data = "null";
    data_len = 4;
  }
  const char *lane = stream__lane_name(h->lane);
  stream_jstr_t topic_j, epoch_j, id_j, type_j;
  size_t max_payload = 96 + 2 * 24 + stream__json_escape_measure(&topic_j, h->topic) +
                       stream__json_escape_measure(&epoch_j, h->epoch) +
                       (h->id ? stream__json_escape_measure(&id_j, h->id) : 0) +
                       (h->type ? stream__json_escape_measure(&type_j, h->type) : 0) + strlen(lane) + data_len;
  size_t topic_len = topic_j.len, type_len = h->type ? type_j.len : 0;
  size_t payload_off = sizeof(stream_frame_t) + headroom;
  size_t cap = payload_off + max_payload + 1 + topic_len + 1 + (h->type ? type_len + 1 : 0);
  size_t block;
  uint8_t pool_class;
  unsigned char *mem = frames_get(fr, cap, &block, &pool_class);
  char *p0 = (char *)mem + payload_off, *p = p0;
  PUT_LIT(p, "{\"op\":\"ev\",\"topic\":");
  p += stream__json_escape_jstr(p, &topic_j);
  if (h->seq) {
    PUT_LIT(p, ",\"seq\":");
    p += put_int(p, (int64_t)h->seq);
  }
  PUT_LIT(p, ",\"epoch\":");
  p += stream__json_escape_jstr(p, &epoch_j);
  if (h->id) {
    PUT_LIT(p, ",\"id\":");
    p += stream__json_escape_jstr(p, &id_j);
  }
  if (h->type) {
    PUT_LIT(p, ",\"type\":");
    p += stream__json_escape_jstr(p, &type_j);
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
  f->size = pool_class ? block : used; /* a pooled block keeps its class's size */
  f->topic = topic;
  f->type = type;
  frames_count(f, fr, pool_class);
  f->kind = STREAM_FRAME_EVENT;
  f->op = "ev";
  f->lane = (uint8_t)h->lane;
  f->seq = h->seq;
  f->ts_ms = h->ts_ms;
  f->data_off = data_off;
  f->data_len = data_len;
  return f;
}

stream_frame_t *stream__frame_control(stream_frames_t *fr, size_t headroom, const char *op, const char *topic,
                                      json_t *obj) {
  char small[512];
  size_t len = json_dumpb(obj, small, sizeof small, JSON_COMPACT);
  stream_frame_t *f = frame_alloc(fr, headroom, len, topic, NULL);
  if (len <= sizeof small) memcpy(f->payload, small, len);
  else json_dumpb(obj, (char *)f->payload, len, JSON_COMPACT);
  f->kind = STREAM_FRAME_CONTROL;
  f->op = op;
  f->lane = STREAM_LANE_CONTROL;
  return f;
}

stream_frame_t *stream__frame_control_alloc(stream_frames_t *fr, size_t headroom, const char *op, const char *topic,
                                            size_t len, stream_cw_t *w) {
  stream_frame_t *f = frame_alloc(fr, headroom, len, topic, NULL);
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

void stream__cw_jstr(stream_cw_t *w, const stream_jstr_t *j) { w->p += stream__json_escape_jstr(w->p, j); }

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
  stream_frames_t *fr = f->frames;
  size_t size = f->size;
  if (fr && fr->acct) {
    fr->acct->frames--;
    fr->acct->frame_bytes -= size;
  }
  if (f->pool_class && fr->free_bytes + size <= fr->max_bytes) {
    void **list = &fr->free[f->pool_class - 1];
    memcpy(f, list, sizeof(void *)); /* the link, over refs and what follows */
    *list = f;
    fr->free_bytes += size;
    if (fr->acct) fr->acct->frame_pool_bytes = fr->free_bytes;
    POOL_POISON(f, size);
    return;
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
