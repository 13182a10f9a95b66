/* The topic table: topics in memory, loading from the store, idle eviction.
 *
 * A topic enters memory on first use (publish, subscribe) with its epoch, head and first
 * seq from the store and its dedupe table warmed from the store's recent idempotency keys;
 * one the store does not have gets a reserved id and a new epoch at once, and its row
 * goes to the store with the next batch (stream_row_t), so that creating topics never
 * makes the loop wait for a commit. It leaves memory when it is evictable (no subscriber,
 * no publish in flight, no router walk queued) and has been so for idle_topic_s: the idle
 * list is ordered by the time a topic became evictable, so a sweep only looks at topics it
 * evicts. Tenants' rate-limit buckets are swept the same way. Also owns the retention
 * rules applied in memory (stream__topic_first, stream__expired). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"

stream_topic_t *stream__topic_find(stream_hub_t *hub, const char *name) {
  base_map_node_t *n = base_map_get(&hub->topics, name, strlen(name));
  return n ? container_of(n, stream_topic_t, node) : NULL;
}

/* The store lists keys in no particular order; the dedupe FIFO wants them by time. */
typedef struct warm_key {
  int64_t ts_ms;
  uint64_t seq;
  char *id; /* owned */
} warm_key_t;

typedef struct warm {
  warm_key_t *keys; /* owned */
  size_t n, cap;
} warm_t;

static int topic_warm_cb(void *ud, const char *id, uint64_t seq, int64_t ts_ms) {
  warm_t *w = ud;
  if (w->n == w->cap) {
    w->cap = w->cap ? w->cap * 2 : 16;
    w->keys = xrealloc(w->keys, w->cap * sizeof *w->keys);
  }
  w->keys[w->n++] = (warm_key_t){.ts_ms = ts_ms, .seq = seq, .id = xstrdup(id)};
  return 0;
}

static int warm_cmp(const void *a, const void *b) {
  const warm_key_t *x = a, *y = b;
  return x->ts_ms < y->ts_ms ? -1 : x->ts_ms > y->ts_ms ? 1 : (x->seq > y->seq) - (x->seq < y->seq);
}

static int topic_warm(stream_hub_t *hub, stream_topic_t *t) {
  int64_t min_ts = stream__wall_ms(hub) - (int64_t)hub->cfg.dedupe_window_s * 1000;
  warm_t w = {0};
  int rc = store_dedupe_list(hub->store, t->topic_id, min_ts, topic_warm_cb, &w);
  if (rc == 0 && w.n) qsort(w.keys, w.n, sizeof *w.keys, warm_cmp);
  for (size_t i = 0; i < w.n; i++) {
    if (rc == 0) stream__dedupe_add(&t->dedupe, w.keys[i].id, w.keys[i].seq, w.keys[i].ts_ms, false);
    free(w.keys[i].id);
  }
  free(w.keys);
  return rc;
}

/* The topic's identity and positions from its store row. */
static void topic_take_row(stream_topic_t *t, const store_topic_t *st) {
  t->topic_id = st->topic_id;
  memcpy(t->epoch, st->epoch, sizeof t->epoch);
  t->epoch[STORE_EPOCH_LEN] = '\0';
  t->head_seq = st->head_seq;
  t->next_seq = st->head_seq + 1;
  t->first_seq = st->first_seq ? st->first_seq : 1;
}

/* Queues the topic's row for the next batch (stream_row_t). */
static void topic_row_queue(stream_hub_t *hub, stream_topic_t *t) {
  t->row = STREAM_ROW_QUEUED;
  base_queue_insert_tail(&hub->creates, &t->create_link);
  stream__topic_update_idle(hub, t);
  stream__hub_kick(hub);
}

/* The topic's row as the store has it, or a new one reserved (*created set) when it has
 * none. A lookup never waits for a commit in progress (store_topic_lookup). */
static int topic_row(stream_hub_t *hub, const char *name, store_topic_t *st, bool *created) {
  *created = false;
  int rc = store_topic_lookup(hub->store, name, st);
  if (rc != -ENOENT) return rc;
  rc = store_topic_reserve(hub->store, st);
  if (rc == -ENOTSUP) return store_topic_ensure(hub->store, name, st); /* the memory backend */
  if (rc == 0) *created = true;
  return rc;
}

int stream__topic_get(stream_hub_t *hub, const char *name, size_t tenant_len, stream_topic_t **out) {
  stream_topic_t *t = stream__topic_find(hub, name);
  if (t) {
    if (t->row == STREAM_ROW_FAILED) topic_row_queue(hub, t);
    *out = t;
    return 0;
  }
  store_topic_t st;
  bool created;
  int rc = topic_row(hub, name, &st, &created);
  if (rc < 0) {
    log_error("streams", "topic load failed", "{s:s,s:i}", "topic", name, "rc", rc);
    return -EIO;
  }
  size_t len = strlen(name);
  t = xcalloc(1, sizeof *t + len + 1);
  memcpy(t->name, name, len + 1);
  t->name_len = len;
  t->tenant_len = tenant_len;
  base_queue_init(&t->idle_link);
  base_queue_init(&t->route_link);
  base_queue_init(&t->route_marker);
  base_queue_init(&t->create_link);
  base_queue_init(&t->subs);
  t->partition = stream_topic_partition(name, hub->cfg.partitions);
  topic_take_row(t, &st);
  stream__ring_init(&t->ring);
  stream__dedupe_init(&t->dedupe);
  stream__bucket_init(&t->bucket, hub->cfg.topic_publish_burst, stream__mono_us(hub) / 1000);
  rc = created ? 0 : topic_warm(hub, t); /* a new topic has no keys to warm */
  if (rc < 0) {
    log_error("streams", "dedupe warm failed", "{s:s,s:i}", "topic", name, "rc", rc);
    stream__dedupe_close(&t->dedupe);
    free(t);
    return -EIO;
  }
  base_map_insert(&hub->topics, &t->node, t->name, len);
  hub->stats.topics++;
  hub->stats.topic_loads++;
  if (created) {
    hub->stats.topics_unsaved++;
    topic_row_queue(hub, t);
  } else {
    stream__topic_update_idle(hub, t);
  }
  *out = t;
  return 0;
}

bool stream__topic_adopt(stream_hub_t *hub, stream_topic_t *t) {
  store_topic_t st;
  if (store_topic_lookup(hub->store, t->name, &st) < 0) return false;
  log_warn("streams", "topic row written by another writer: adopted", "{s:s,s:s,s:s}", "topic", t->name,
           "epoch", st.epoch, "was", t->epoch);
  topic_take_row(t, &st);
  /* Its subscribers were told another epoch and head 0: they go on from the head, not
   * through another writer's history. */
  base_queue_t *it;
  base_queue_foreach(it, &t->subs) {
    stream_sub_t *sub = base_queue_data(it, stream_sub_t, topic_link);
    if (sub->next_seq <= t->head_seq) sub->next_seq = t->head_seq + 1;
  }
  if (topic_warm(hub, t) < 0) log_error("streams", "dedupe warm failed", "{s:s}", "topic", t->name);
  t->row = STREAM_ROW_SAVED;
  hub->stats.topics_unsaved--;
  stream__topic_update_idle(hub, t);
  return true;
}

int stream_topic_state(stream_hub_t *hub, const char *topic, store_topic_t *out) {
  if (!hub || !topic || !out) return -EINVAL;
  stream_topic_t *t = stream__topic_find(hub, topic);
  if (!t) return store_topic_lookup(hub->store, topic, out);
  out->topic_id = t->topic_id;
  memcpy(out->epoch, t->epoch, sizeof out->epoch);
  out->head_seq = t->head_seq;
  out->first_seq = t->first_seq;
  return 0;
}

void stream__topic_free(stream_hub_t *hub, stream_topic_t *t) {
  base_map_remove(&hub->topics, &t->node);
  base_queue_remove(&t->idle_link);
  base_queue_remove(&t->route_link);
  base_queue_remove(&t->route_marker);
  base_queue_remove(&t->create_link);
  if (t->row != STREAM_ROW_SAVED) hub->stats.topics_unsaved--;
  stream__ring_close(&t->ring);
  stream__dedupe_close(&t->dedupe);
  for (uint32_t i = 0; i < t->n_eph_pending; i++) stream_frame_unref(&t->eph_pending[i]);
  for (uint32_t i = 0; i < t->n_eph_walk; i++) stream_frame_unref(&t->eph_walk[i]);
  hub->stats.topics--;
  free(t);
}

void stream__topic_update_idle(stream_hub_t *hub, stream_topic_t *t) {
  bool evictable = t->nsubs == 0 && t->pins == 0 && !base_queue_linked(&t->route_link) &&
                   t->next_seq == t->head_seq + 1 && t->row != STREAM_ROW_QUEUED &&
                   t->row != STREAM_ROW_IN_BATCH;
  if (evictable && !base_queue_linked(&t->idle_link)) {
    t->idle_since_us = stream__mono_us(hub);
    base_queue_insert_tail(&hub->idle_topics, &t->idle_link);
  } else if (!evictable && base_queue_linked(&t->idle_link)) {
    base_queue_remove(&t->idle_link);
  }
}

uint64_t stream__retained_first(const stream_hub_t *hub, uint64_t first, uint64_t head) {
  uint64_t max = hub->cfg.retention_max_events;
  if (max && head >= max && head - max + 1 > first) first = head - max + 1;
  return first;
}

uint64_t stream__topic_first(const stream_hub_t *hub, const stream_topic_t *t) {
  return stream__retained_first(hub, t->first_seq, t->head_seq);
}

bool stream__expired(const stream_hub_t *hub, int64_t ts_ms) {
  if (!hub->cfg.retention_max_age_s) return false;
  return ts_ms < stream__wall_ms(hub) - (int64_t)hub->cfg.retention_max_age_s * 1000;
}

/* A rate-limit bucket untouched this long is full again, so forgetting it changes nothing. */
static uint64_t refill_ms(double rate, uint32_t burst) {
  if (rate <= 0) return 0;
  return (uint64_t)((double)burst * 1000.0 / rate) + 1;
}

size_t stream__hub_sweep_some(stream_hub_t *hub, size_t budget, bool *more) {
  uint64_t now = stream__mono_us(hub);
  uint64_t idle_us = (uint64_t)hub->cfg.idle_topic_s * 1000000;
  uint64_t topic_refill_us = refill_ms(hub->cfg.topic_publish_rate, hub->cfg.topic_publish_burst) * 1000;
  if (topic_refill_us > idle_us) idle_us = topic_refill_us;
  size_t evicted = 0, items = 0;
  *more = false;
  while (!base_queue_empty(&hub->idle_topics)) {
    stream_topic_t *t = base_queue_data(base_queue_head(&hub->idle_topics), stream_topic_t, idle_link);
    if (now - t->idle_since_us < idle_us) break;
    if (evicted && items >= budget) {
      *more = true;
      break;
    }
    /* what freeing it touches: its ring's frames and idempotency keys, mostly cold */
    items += 1 + t->ring.count + t->dedupe.map.count;
    stream__topic_free(hub, t);
    hub->stats.evictions++;
    evicted++;
  }
  if (evicted) base_map_shrink(&hub->topics);

  uint64_t now_ms = now / 1000;
  uint64_t tenant_idle_ms = refill_ms(hub->cfg.publish_rate, hub->cfg.publish_burst);
  size_t tenants = 0;
  while (!base_queue_empty(&hub->tenant_lru)) {
    stream_tenant_t *tn = base_queue_data(base_queue_head(&hub->tenant_lru), stream_tenant_t, lru);
    if (now_ms - tn->last_ms < tenant_idle_ms) break;
    if (items >= budget) {
      *more = true;
      break;
    }
    items++;
    base_queue_remove(&tn->lru);
    base_map_remove(&hub->tenants, &tn->node);
    free(tn);
    tenants++;
  }
  if (tenants) base_map_shrink(&hub->tenants);
  return evicted;
}

size_t stream_hub_sweep(stream_hub_t *hub) {
  bool more;
  return stream__hub_sweep_some(hub, SIZE_MAX, &more);
}
