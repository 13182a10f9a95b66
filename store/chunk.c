/* store event chunks: the byte format of the events of one topic stored in one row.
 *
 * Owns encoding a run of dense events of one topic into a blob and decoding it back with
 * every length checked against the blob's end, so a corrupt or hostile file yields -EIO,
 * never a read out of bounds. Does not own the rows around the blob (topic, first and
 * last seq, time range): that is sqlite.c's schema. Contracts are in internal.h.
 *
 * Format (version STORE_CHUNK_FORMAT): one byte, the format; then one record per event,
 * in seq order (the seq of record i is the row's first_seq + i: seqs are dense, so the
 * offset is implicit and the row's last_seq checks the count). A record is
 *   zigzag varint  ts_ms minus the previous record's ts_ms (0 before the first)
 *   zigzag varint  lane
 *   varint         id length + 1 (0: no id)
 *   varint         type length + 1 (0: no type)
 *   varint         data length + 1 (0: no data)
 *   id bytes, NUL; type bytes, NUL; data bytes, NUL (each only when present)
 * Varints are LEB128, at most 10 bytes. The NULs let a reader hand out pointers into the
 * blob as C strings without copying. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

#define CHUNK_VARINT_MAX 10 /* bytes of a 64-bit LEB128 varint */

/* ---- encoding ---- */

static void chunk_reserve(store_chunk_t *c, size_t more) {
  c->buf = xgrow(c->buf, &c->cap, c->len + more, 256);
}

static void chunk_put_varint(store_chunk_t *c, uint64_t v) {
  uint8_t *p = c->buf + c->len;
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  c->len = (size_t)(p - c->buf);
}

static uint64_t chunk_zigzag(int64_t v) {
  return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static void chunk_put_bytes(store_chunk_t *c, const char *s, size_t n) {
  if (!s) return;
  memcpy(c->buf + c->len, s, n);
  c->buf[c->len + n] = 0;
  c->len += n + 1;
}

void store__chunk_start(store_chunk_t *c, uint64_t first_seq) {
  c->len = 0;
  c->count = 0;
  c->first_seq = first_seq;
  c->ts_min = c->ts_max = c->ts_last = 0;
  chunk_reserve(c, 1);
  c->buf[c->len++] = STORE_CHUNK_FORMAT;
}

void store__chunk_add(store_chunk_t *c, const store_event_t *ev) {
  size_t id_len = ev->id ? strlen(ev->id) : 0, type_len = ev->type ? strlen(ev->type) : 0;
  size_t data_len = ev->data ? ev->data_len : 0;
  chunk_reserve(c, 5 * CHUNK_VARINT_MAX + id_len + type_len + data_len + 3);
  /* Two's complement difference: wraps for extreme clocks and unwraps on decoding. */
  chunk_put_varint(c, chunk_zigzag((int64_t)((uint64_t)ev->ts_ms - (uint64_t)c->ts_last)));
  chunk_put_varint(c, chunk_zigzag(ev->lane));
  chunk_put_varint(c, ev->id ? id_len + 1 : 0);
  chunk_put_varint(c, ev->type ? type_len + 1 : 0);
  chunk_put_varint(c, ev->data ? (uint64_t)data_len + 1 : 0);
  chunk_put_bytes(c, ev->id, id_len);
  chunk_put_bytes(c, ev->type, type_len);
  chunk_put_bytes(c, ev->data, data_len);
  if (c->count == 0 || ev->ts_ms < c->ts_min) c->ts_min = ev->ts_ms;
  if (c->count == 0 || ev->ts_ms > c->ts_max) c->ts_max = ev->ts_ms;
  c->ts_last = ev->ts_ms;
  c->count++;
}

void store__chunk_free(store_chunk_t *c) {
  free(c->buf);
  *c = (store_chunk_t){0};
}

/* ---- decoding ---- */

static int chunk_get_varint(store_chunk_iter_t *it, uint64_t *out) {
  uint64_t v = 0;
  for (unsigned shift = 0, i = 0; i < CHUNK_VARINT_MAX; i++, shift += 7) {
    if (it->p == it->end) return -EIO;
    uint8_t b = *it->p++;
    if (i == CHUNK_VARINT_MAX - 1 && b > 1) return -EIO; /* beyond 64 bits */
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return -EIO;
}

static int64_t chunk_unzigzag(uint64_t v) {
  return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* A field of encoded length n (0: absent) as a pointer into the blob, NUL checked. */
static int chunk_get_bytes(store_chunk_iter_t *it, uint64_t n, const char **out) {
  *out = NULL;
  if (n == 0) return 0;
  if (n > (uint64_t)(it->end - it->p) || it->p[n - 1] != 0) return -EIO;
  *out = (const char *)it->p;
  it->p += n;
  return 0;
}

int store__chunk_iter_init(store_chunk_iter_t *it, const void *blob, size_t len,
                           uint64_t first_seq) {
  const uint8_t *p = blob;
  if (!p || len == 0 || p[0] != STORE_CHUNK_FORMAT) return -EIO;
  *it = (store_chunk_iter_t){.p = p + 1, .end = p + len, .next_seq = first_seq};
  return 0;
}

int store__chunk_next(store_chunk_iter_t *it, int64_t topic_id, store_event_t *ev) {
  if (it->p == it->end) return 0;
  uint64_t ts, lane, n[3];
  int rc = chunk_get_varint(it, &ts);
  if (rc == 0) rc = chunk_get_varint(it, &lane);
  for (int i = 0; rc == 0 && i < 3; i++) rc = chunk_get_varint(it, &n[i]);
  if (rc < 0) return rc;
  int64_t lane_v = chunk_unzigzag(lane);
  if (lane_v < INT32_MIN || lane_v > INT32_MAX) return -EIO;
  *ev = (store_event_t){
      .topic_id = topic_id,
      .seq = it->next_seq,
      .ts_ms = (int64_t)((uint64_t)it->ts + (uint64_t)chunk_unzigzag(ts)),
      .lane = (int)lane_v,
  };
  rc = chunk_get_bytes(it, n[0], &ev->id);
  if (rc == 0) rc = chunk_get_bytes(it, n[1], &ev->type);
  if (rc == 0) rc = chunk_get_bytes(it, n[2], &ev->data);
  if (rc < 0) return rc;
  ev->data_len = ev->data ? (size_t)(n[2] - 1) : 0;
  it->ts = ev->ts_ms;
  it->next_seq++;
  return 1;
}
