/* Reads for HTTP: a range of retained events, and a tenant's topic list.
 *
 * stream_read serves GET .../events?after=N&limit=M: it does not load the topic into
 * memory (reads must not grow the topic table); it uses the in-memory ring when the topic
 * is there and the store otherwise, applies the same retention rules as cursors, and
 * reports the lost range as gap information. stream_list_topics lists the store's topics
 * of a tenant, overlaying head and subscriber counts of topics in memory. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "internal.h"

#define READ_LIMIT_MAX 10000

typedef struct read_ctx {
  stream_hub_t *hub;
  const char *topic;
  const char *epoch;
  const stream_ring_t *ring; /* NULL when the topic is not in memory */
  stream_read_info_t *info;
  uint64_t next; /* next seq to return */
  size_t left;
  stream_read_cb cb;
  void *ud;
  int stop; /* the caller's nonzero */
  int64_t expire_before_ms; /* the age rule's cut-off, read once per read (INT64_MIN: none) */
} read_ctx_t;

static void note_gap(read_ctx_t *r, uint64_t from, uint64_t to) {
  if (r->info->gap_from == 0) r->info->gap_from = from;
  r->info->gap_to = to;
}

/* An event past the age rule (in the ring, or in the store before a retention slice
 * deleted it): it and what precedes it from r->next are a gap, as a cursor gets. */
static void skip_aged(read_ctx_t *r, uint64_t seq) {
  note_gap(r, r->next, seq);
  if (r->info->first <= seq) r->info->first = seq + 1;
  r->next = seq + 1;
}

static int read_store_cb(void *ud, const store_event_t *ev) {
  read_ctx_t *r = ud;
  if (ev->ts_ms < r->expire_before_ms) {
    skip_aged(r, ev->seq);
    return 0;
  }
  if (ev->seq > r->next) note_gap(r, r->next, ev->seq - 1);
  stream_frame_t *f = stream__frame_from_store(r->hub, r->topic, r->epoch, ev);
  int rc = r->cb(r->ud, f);
  stream_frame_unref(&f);
  r->next = ev->seq + 1;
  r->left--;
  if (rc) {
    r->stop = rc;
    return rc;
  }
  return r->left == 0 ? 1 : 0;
}

/* Serves from the ring while it has r->next; false when the caller stopped. */
static bool read_ring(read_ctx_t *r) {
  while (r->ring && r->left > 0 && r->next <= r->info->head) {
    stream_frame_t *f = stream__ring_get(r->ring, r->next);
    if (!f) break;
    if (f->ts_ms < r->expire_before_ms) {
      skip_aged(r, r->next);
      continue;
    }
    int rc = r->cb(r->ud, f);
    r->next++;
    r->left--;
    if (rc) return false;
  }
  return true;
}

static int read_range(stream_hub_t *hub, const char *topic, uint64_t after, size_t limit, stream_read_cb cb,
                      void *ud, stream_read_info_t *info, bool wait) {
  if (!hub || !cb || !info || limit == 0 || limit > READ_LIMIT_MAX) return -EINVAL;
  memset(info, 0, sizeof *info);
  if (stream_topic_validate(topic, NULL, NULL) < 0) return -EINVAL;
  uint32_t age_s = hub->cfg.retention_max_age_s;
  int64_t cut = age_s ? stream__wall_ms(hub) - (int64_t)age_s * 1000 : INT64_MIN;
  read_ctx_t r = {.hub = hub, .topic = topic, .info = info, .left = limit, .cb = cb, .ud = ud,
                  .expire_before_ms = cut};
  int64_t topic_id;
  uint64_t first_seq;
  stream_topic_t *t = stream__topic_find(hub, topic);
  if (t) {
    topic_id = t->topic_id;
    memcpy(info->epoch, t->epoch, sizeof info->epoch);
    info->head = t->head_seq;
    first_seq = t->first_seq;
    r.ring = &t->ring;
  } else {
    store_topic_t st;
    int rc = store_topic_lookup(hub->store, topic, &st);
    if (rc == -ENOENT) return -ENOENT;
    if (rc < 0) return -EIO;
    topic_id = st.topic_id;
    memcpy(info->epoch, st.epoch, sizeof info->epoch);
    info->epoch[STORE_EPOCH_LEN] = '\0';
    info->head = st.head_seq;
    first_seq = st.first_seq ? st.first_seq : 1;
  }
  r.epoch = info->epoch;
  info->first = stream__retained_first(hub, first_seq, info->head);
  r.next = after + 1;
  if (r.next > info->head) return 0;
  if (r.next < info->first) {
    note_gap(&r, r.next, info->first - 1);
    r.next = info->first;
  }
  if (!read_ring(&r)) return 0;
  while (r.left > 0 && r.next <= info->head) {
    uint64_t start = r.next;
    uint64_t until = r.ring && r.ring->count && r.ring->lo > start ? r.ring->lo - 1 : info->head;
    int rc = wait ? store_read(hub->store, topic_id, start - 1, r.left, read_store_cb, &r)
                  : store_read_nowait(hub->store, topic_id, start - 1, r.left, read_store_cb, &r);
    if (rc == -EAGAIN && !wait) return rc;
    if (rc < 0) {
      log_error("streams", "read failed", "{s:s,s:i}", "topic", topic, "rc", rc);
      return -EIO;
    }
    if (r.stop) return 0;
    if (r.next == start) { /* nothing stored from start on: up to the ring it is gone */
      if (until < start) break;
      note_gap(&r, start, until);
      r.next = until + 1;
    }
    if (!read_ring(&r)) return 0;
  }
  return 0;
}

int stream_read(stream_hub_t *hub, const char *topic, uint64_t after, size_t limit, stream_read_cb cb, void *ud,
                stream_read_info_t *info) {
  return read_range(hub, topic, after, limit, cb, ud, info, true);
}

int stream_read_nowait(stream_hub_t *hub, const char *topic, uint64_t after, size_t limit, stream_read_cb cb,
                       void *ud, stream_read_info_t *info) {
  return read_range(hub, topic, after, limit, cb, ud, info, false);
}

typedef struct list_ctx {
  stream_hub_t *hub;
  stream_topic_list_cb cb;
  void *ud;
} list_ctx_t;

static int list_cb(void *ud, const char *topic, const store_topic_t *st) {
  list_ctx_t *l = ud;
  stream_topic_info_t info = {.topic = topic, .epoch = st->epoch, .head = st->head_seq,
                              .first = stream__retained_first(l->hub, st->first_seq, st->head_seq)};
  stream_topic_t *t = stream__topic_find(l->hub, topic);
  if (t) {
    info.epoch = t->epoch;
    info.head = t->head_seq;
    info.first = stream__topic_first(l->hub, t);
    info.subscribers = t->nsubs;
  }
  return l->cb(l->ud, &info);
}

int stream_list_topics(stream_hub_t *hub, const char *tenant, const char *after, size_t limit,
                       stream_topic_list_cb cb, void *ud) {
  if (!hub || !tenant || !cb) return -EINVAL;
  char probe[80];
  if (strlen(tenant) > 64) return -EINVAL;
  snprintf(probe, sizeof probe, "%s/x", tenant);
  if (stream_topic_validate(probe, NULL, NULL) < 0) return -EINVAL;
  probe[strlen(probe) - 1] = '\0'; /* "tenant/" */
  list_ctx_t l = {.hub = hub, .cb = cb, .ud = ud};
  int rc = store_topic_list(hub->store, probe, after, limit, list_cb, &l);
  return rc < 0 ? -EIO : 0;
}
