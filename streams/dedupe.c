/* Dedupe: the idempotency keys of one topic inside the dedupe window.
 *
 * A hash map from id to (seq, ts) plus a FIFO by insertion time, so expiry pops from the
 * front in O(expired). Entries may be pending (their event is not committed yet): a
 * duplicate of a pending event is answered when the original commits; a failed commit
 * removes the entry. Warmed from store_dedupe_list when a topic is loaded (topic.c). */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "internal.h"

void stream__dedupe_init(stream_dedupe_t *d) {
  base_map_init(&d->map);
  base_queue_init(&d->fifo);
}

void stream__dedupe_close(stream_dedupe_t *d) {
  base_queue_t *it, *tmp;
  base_queue_foreach_safe(it, tmp, &d->fifo) {
    stream_dedupe_entry_t *e = base_queue_data(it, stream_dedupe_entry_t, fifo);
    free(e);
  }
  base_queue_init(&d->fifo);
  base_map_close(&d->map);
}

void stream__dedupe_remove(stream_dedupe_t *d, stream_dedupe_entry_t *e) {
  base_map_remove(&d->map, &e->node);
  base_queue_remove(&e->fifo);
  free(e);
}

stream_dedupe_entry_t *stream__dedupe_find(stream_dedupe_t *d, const char *id, int64_t min_ts_ms) {
  while (!base_queue_empty(&d->fifo)) {
    stream_dedupe_entry_t *e = base_queue_data(base_queue_head(&d->fifo), stream_dedupe_entry_t, fifo);
    if (e->ts_ms >= min_ts_ms || e->pending) break;
    stream__dedupe_remove(d, e);
  }
  base_map_node_t *n = base_map_get(&d->map, id, strlen(id));
  if (!n) return NULL;
  stream_dedupe_entry_t *e = container_of(n, stream_dedupe_entry_t, node);
  return e->ts_ms >= min_ts_ms || e->pending ? e : NULL;
}

stream_dedupe_entry_t *stream__dedupe_add(stream_dedupe_t *d, const char *id, uint64_t seq, int64_t ts_ms,
                                          bool pending) {
  size_t len = strlen(id);
  base_map_node_t *old = base_map_get(&d->map, id, len);
  if (old) stream__dedupe_remove(d, container_of(old, stream_dedupe_entry_t, node));
  stream_dedupe_entry_t *e = xmalloc(sizeof *e + len + 1);
  memcpy(e->id, id, len + 1);
  e->seq = seq;
  e->ts_ms = ts_ms;
  e->pending = pending;
  base_queue_init(&e->fifo);
  base_queue_insert_tail(&d->fifo, &e->fifo);
  base_map_insert(&d->map, &e->node, e->id, len);
  return e;
}

size_t stream__dedupe_count(const stream_dedupe_t *d) { return d->map.count; }
