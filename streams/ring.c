/* The ring: a topic's newest committed frames, by seq.
 *
 * A circular array of frame references covering seqs [lo, lo + count) without holes. It
 * starts small and doubles up to the configured ring size, so a quiet topic costs a few
 * pointers; at the limit, pushing releases the oldest frame. Lookups are O(1). Knows
 * nothing of retention: callers decide what is too old (stream__topic_first). */
#include <stdlib.h>

#include "base/mem.h"
#include "internal.h"

#define RING_MIN 8

/* Slot of the entry off places after the oldest (off < cap): a compare instead of a
 * division, since cap need not be a power of two (it stops at the configured size). */
static inline uint32_t ring_slot(const stream_ring_t *r, uint64_t off) {
  uint64_t i = r->start + off;
  return (uint32_t)(i < r->cap ? i : i - r->cap);
}

/* The slot after slot i. */
static inline uint32_t ring_next(const stream_ring_t *r, uint32_t i) {
  return i + 1 < r->cap ? i + 1 : 0;
}

void stream__ring_init(stream_ring_t *r) {
  r->slots = NULL;
  r->cap = 0;
  r->start = 0;
  r->count = 0;
  r->lo = 0;
}

void stream__ring_close(stream_ring_t *r) {
  for (uint32_t i = 0; i < r->count; i++) stream_frame_unref(&r->slots[ring_slot(r, i)]);
  free(r->slots);
  stream__ring_init(r);
}

static void ring_grow(stream_ring_t *r, uint32_t cap) {
  stream_frame_t **slots = xcalloc(cap, sizeof *slots);
  for (uint32_t i = 0; i < r->count; i++) slots[i] = r->slots[ring_slot(r, i)];
  free(r->slots);
  r->slots = slots;
  r->cap = cap;
  r->start = 0;
}

void stream__ring_push(stream_ring_t *r, uint32_t max, stream_frame_t *f) {
  if (max == 0) {
    stream_frame_unref(&f);
    return;
  }
  if (r->count > 0 && f->seq != r->lo + r->count) { /* not contiguous: start over */
    for (uint32_t i = 0; i < r->count; i++) stream_frame_unref(&r->slots[ring_slot(r, i)]);
    r->count = 0;
    r->start = 0;
  }
  if (r->count == 0) r->lo = f->seq;
  while (r->count >= max) { /* full at max (or max shrank): drop the oldest */
    stream_frame_unref(&r->slots[r->start]);
    r->start = ring_next(r, r->start);
    r->count--;
    r->lo++;
  }
  if (r->count == r->cap) {
    uint32_t cap = r->cap ? r->cap * 2 : RING_MIN;
    if (cap > max) cap = max;
    ring_grow(r, cap);
  }
  r->slots[ring_slot(r, r->count)] = f;
  r->count++;
}

stream_frame_t *stream__ring_get(const stream_ring_t *r, uint64_t seq) {
  if (r->count == 0 || seq < r->lo || seq - r->lo >= r->count) return NULL;
  return r->slots[ring_slot(r, seq - r->lo)];
}

void stream__ring_drop_below(stream_ring_t *r, uint64_t seq) {
  while (r->count > 0 && r->lo < seq) {
    stream_frame_unref(&r->slots[r->start]);
    r->start = ring_next(r, r->start);
    r->count--;
    r->lo++;
  }
}
