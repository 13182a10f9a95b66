/* Publish and group commit.
 *
 * stream__publish validates an event, applies the tenant's and the topic's token buckets,
 * sheds with -EBUSY past the overload threshold, answers duplicates from the dedupe table,
 * assigns the next seq, serializes the event once into its frame and queues it on its
 * partition. It never commits, fans out or calls back inline. Once per loop turn
 * stream__commit_run takes the queued events in store batches of at most commit_batch_max
 * (round-robin over partitions) and commits them with store_batch_write: on the loop, or,
 * with the commit thread (writer.c), one batch at a time on that thread, the result coming
 * back through stream__commit_landed. Only then are the frames pushed into the rings, the
 * topics scheduled for the router and the callbacks queued (fired by
 * stream__complete_run). When a batch fails, its events and every later queued event of
 * the same topics fail with -EIO and those topics' next seq rewinds to the committed head,
 * so seq never skips. Ephemeral events bypass the store entirely. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"

void stream__errf(stream_err_t *err, const char *fmt, ...) {
  if (!err) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
}

bool stream__json_depth_ok(const char *text, size_t len, uint32_t max_depth) {
  uint32_t depth = 0;
  bool in_str = false, esc = false;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    if (in_str) {
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if ((c == '}' || c == ']') && depth > 0) {
      depth--;
    }
  }
  return true;
}

static stream_tenant_t *tenant_get(stream_hub_t *hub, const char *topic, size_t tenant_len, uint64_t now_ms) {
  base_map_node_t *n = base_map_get(&hub->tenants, topic, tenant_len);
  stream_tenant_t *tn;
  if (n) {
    tn = container_of(n, stream_tenant_t, node);
    base_queue_remove(&tn->lru);
  } else {
    tn = xmalloc(sizeof *tn + tenant_len + 1);
    memcpy(tn->name, topic, tenant_len);
    tn->name[tenant_len] = '\0';
    base_queue_init(&tn->lru);
    stream__bucket_init(&tn->bucket, hub->cfg.publish_burst, now_ms);
    base_map_insert(&hub->tenants, &tn->node, tn->name, tenant_len);
  }
  tn->last_ms = now_ms;
  base_queue_insert_tail(&hub->tenant_lru, &tn->lru);
  return tn;
}

static stream_pub_t *pub_new(stream_hub_t *hub, stream_topic_t *t, stream_conn_t *conn, const char *ref,
                             stream_publish_cb cb, void *ud) {
  stream_pub_t *p;
  if (hub->npub_free) {
    base_queue_t *q = base_queue_head(&hub->pub_free);
    base_queue_remove(q);
    hub->npub_free--;
    p = base_queue_data(q, stream_pub_t, link);
    memset(p, 0, offsetof(stream_pub_t, ref_inline));
    p->ref_inline[0] = '\0';
  } else {
    p = xcalloc(1, sizeof *p);
  }
  base_queue_init(&p->link);
  base_queue_init(&p->conn_link);
  p->topic = t;
  t->pins++;
  p->conn = conn;
  if (conn) {
    base_queue_insert_tail(&conn->pubs, &p->conn_link);
    conn->npubs++;
  }
  if (ref) {
    size_t rl = strlen(ref);
    if (rl < sizeof p->ref_inline) {
      memcpy(p->ref_inline, ref, rl + 1);
      p->ref = p->ref_inline;
    } else {
      p->ref = xstrdup(ref);
    }
  }
  p->cb = cb;
  p->ud = ud;
  p->start_us = stream__mono_us(hub);
  stream__topic_update_idle(hub, t);
  return p;
}

static void pub_done(stream_hub_t *hub, stream_pub_t *p, int status) {
  p->status = status;
  base_queue_remove(&p->link);
  base_queue_insert_tail(&hub->done, &p->link);
}

int stream__publish(stream_hub_t *hub, const char *topic, const stream_pubin_t *in, stream_conn_t *conn,
                    const char *ref, stream_publish_cb cb, void *ud, stream_pub_t **handle, stream_err_t *err) {
  if (handle) *handle = NULL;
  if (hub->draining || hub->closing) {
    stream__errf(err, "shutting down");
    return -ESHUTDOWN;
  }
  size_t tenant_len;
  int rc = stream_topic_validate(topic, &tenant_len, err);
  if (rc < 0) return rc;
  if (in->lane < 0 || in->lane >= STREAM_LANES) {
    stream__errf(err, "lane: must be control, data or ephemeral");
    return -EINVAL;
  }
  size_t id_len = in->id ? strlen(in->id) : 0, type_len = in->type ? strlen(in->type) : 0;
  if (in->id && (id_len == 0 || id_len > STREAM_ID_MAX)) {
    stream__errf(err, "id: must be 1 to %d bytes", STREAM_ID_MAX);
    return -EINVAL;
  }
  if (type_len > STREAM_TYPE_MAX) {
    stream__errf(err, "type: longer than %d bytes", STREAM_TYPE_MAX);
    return -EINVAL;
  }
  if ((in->id && !stream__utf8_valid(in->id, id_len)) || (in->type && !stream__utf8_valid(in->type, type_len))) {
    stream__errf(err, "%s: invalid UTF-8", in->id && !stream__utf8_valid(in->id, id_len) ? "id" : "type");
    return -EINVAL;
  }
  if (in->data_len + id_len + type_len > hub->cfg.max_event_bytes) {
    stream__errf(err, "data: event of %zu bytes exceeds %zu", in->data_len + id_len + type_len,
                 hub->cfg.max_event_bytes);
    return -EMSGSIZE;
  }
  bool ephemeral = in->lane == STREAM_LANE_EPHEMERAL;
  if (!ephemeral && stream_hub_overloaded(hub)) {
    hub->stats.overloaded++;
    stream__errf(err, "overloaded");
    if (err) err->retry_after_ms = STREAM_RETRY_OVERLOAD_MS;
    return -EBUSY;
  }
  uint64_t now_ms = stream__mono_us(hub) / 1000;
  uint32_t retry = 0;
  stream_tenant_t *tn = tenant_get(hub, topic, tenant_len, now_ms);
  if (!stream__bucket_check(&tn->bucket, hub->cfg.publish_rate, hub->cfg.publish_burst, now_ms, &retry)) {
    hub->stats.rate_limited++;
    stream__errf(err, "tenant publish rate exceeded");
    if (err) err->retry_after_ms = retry;
    return -EAGAIN;
  }
  stream_topic_t *t;
  rc = stream__topic_get(hub, topic, tenant_len, &t);
  if (rc < 0) {
    stream__errf(err, "topic: store unavailable");
    return rc;
  }
  if (!stream__bucket_check(&t->bucket, hub->cfg.topic_publish_rate, hub->cfg.topic_publish_burst, now_ms, &retry)) {
    hub->stats.rate_limited++;
    hub->stats.rate_limited_topic++;
    stream__errf(err, "topic publish rate exceeded");
    if (err) err->retry_after_ms = retry;
    return -EAGAIN;
  }
  stream__bucket_take(&tn->bucket);
  stream__bucket_take(&t->bucket);

  int64_t ts = stream__wall_ms(hub);
  stream_pub_t *p;
  if (ephemeral) {
    p = pub_new(hub, t, conn, ref, cb, ud);
    p->ephemeral = true;
    if (t->nsubs == 0) {
      hub->stats.ephemeral_ingress_drops++;
    } else {
      stream_evhdr_t h = {.topic = t->name, .epoch = t->epoch, .id = in->id, .type = in->type,
                          .lane = STREAM_LANE_EPHEMERAL, .ts_ms = ts};
      stream__route_ephemeral(hub, t, stream__frame_event(&hub->frames, hub->cfg.frame_headroom, &h, in->data,
                                                          in->data_len));
      hub->stats.published[STREAM_LANE_EPHEMERAL]++;
    }
    pub_done(hub, p, 0);
  } else {
    stream_dedupe_entry_t *dup = NULL;
    if (in->id) dup = stream__dedupe_find(&t->dedupe, in->id, ts - (int64_t)hub->cfg.dedupe_window_s * 1000);
    p = pub_new(hub, t, conn, ref, cb, ud);
    if (dup) {
      p->duplicate = true;
      p->seq = dup->seq;
      hub->stats.duplicates++;
      /* A duplicate of a pending event is answered when the original commits. */
      if (dup->pending) base_queue_insert_tail(&hub->parts[t->partition].pending, &p->link);
      else pub_done(hub, p, 0);
    } else {
      p->seq = t->next_seq++;
      stream_evhdr_t h = {.topic = t->name, .epoch = t->epoch, .seq = p->seq, .id = in->id, .type = in->type,
                          .lane = in->lane, .ts_ms = ts};
      p->frame = stream__frame_event(&hub->frames, hub->cfg.frame_headroom, &h, in->data, in->data_len);
      if (in->id) p->dedupe = stream__dedupe_add(&t->dedupe, in->id, p->seq, ts, true);
      p->queued_reliable = true;
      p->pending_bytes = (uint32_t)p->frame->size;
      hub->stats.pending++;
      hub->stats.pending_bytes += p->pending_bytes;
      base_queue_insert_tail(&hub->parts[t->partition].pending, &p->link);
    }
  }
  stream__hub_kick(hub);
  if (handle) *handle = p;
  return 0;
}

int stream_publish(stream_hub_t *hub, const char *topic, const stream_event_t *ev, stream_publish_cb cb, void *ud,
                   stream_pub_t **handle, stream_err_t *err) {
  if (err) memset(err, 0, sizeof *err);
  if (handle) *handle = NULL;
  if (!hub || !ev) return -EINVAL;
  if (ev->data_len > hub->cfg.max_event_bytes) {
    stream__errf(err, "data: event of %zu bytes exceeds %zu", ev->data_len, hub->cfg.max_event_bytes);
    return -EMSGSIZE;
  }
  char *data = NULL;
  size_t data_len = 0;
  if (ev->data) {
    data = xmalloc(ev->data_len + 1);
    size_t off = 0;
    if (!stream__json_depth_ok(ev->data, ev->data_len, hub->cfg.max_json_depth)) {
      stream__errf(err, "data: nested deeper than %u", hub->cfg.max_json_depth);
      free(data);
      return -EINVAL;
    }
    if (stream__json_compact(ev->data, ev->data_len, hub->cfg.max_json_depth, data, &data_len, &off) < 0) {
      stream__errf(err, "data: invalid JSON at byte %zu", off);
      free(data);
      return -EINVAL;
    }
  }
  stream_pubin_t in = {.id = ev->id, .type = ev->type, .lane = ev->lane, .data = data, .data_len = data_len};
  int rc = stream__publish(hub, topic, &in, NULL, NULL, cb, ud, handle, err);
  free(data);
  return rc;
}

void stream_publish_cancel(stream_pub_t *p) {
  if (!p) return;
  p->cb = NULL;
  p->ud = NULL;
}

/* The dedupe entry of a failed event goes away so that a retry is not a "duplicate". */
static void pub_fail(stream_hub_t *hub, stream_pub_t *p) {
  if (p->dedupe) {
    stream__dedupe_remove(&p->topic->dedupe, p->dedupe);
    p->dedupe = NULL;
  }
  if (p->queued_reliable) {
    hub->stats.pending--;
    hub->stats.pending_bytes -= p->pending_bytes;
    p->queued_reliable = false;
  }
  pub_done(hub, p, -EIO);
}

static void batch_failed(stream_hub_t *hub, base_queue_t *batch) {
  base_queue_t *it, *tmp;
  hub->stats.commit_failures++;
  base_queue_foreach(it, batch) {
    stream_pub_t *p = base_queue_data(it, stream_pub_t, link);
    stream_topic_t *t = p->topic;
    if (t->commit_failed) continue;
    t->commit_failed = true;
    /* Resynchronise with what the store holds, in case it moved without us: its committed
     * row, read without waiting for the writer thread (store_topic_lookup). */
    store_topic_t st;
    if (store_topic_lookup(hub->store, t->name, &st) == 0 && st.head_seq > t->head_seq &&
        strcmp(st.epoch, t->epoch) == 0) {
      t->head_seq = st.head_seq;
    }
    t->next_seq = t->head_seq + 1;
  }
  base_queue_foreach_safe(it, tmp, batch) pub_fail(hub, base_queue_data(it, stream_pub_t, link));
  /* Later events of the same topics carry seqs that assumed the failed ones. */
  for (uint32_t i = 0; i < hub->cfg.partitions; i++) {
    base_queue_foreach_safe(it, tmp, &hub->parts[i].pending) {
      stream_pub_t *p = base_queue_data(it, stream_pub_t, link);
      if (p->topic->commit_failed) pub_fail(hub, p);
    }
  }
  base_queue_foreach(it, &hub->done) base_queue_data(it, stream_pub_t, link)->topic->commit_failed = false;
}

/* A batch of thousands of publishes no longer fits in the caches when it lands, and its
 * list is walked by pointer: loading the next publish while this one is handled keeps the
 * walk from waiting on each. */
static void batch_committed(stream_hub_t *hub, base_queue_t *batch, uint64_t now_us) {
  base_queue_t *it, *tmp;
  base_queue_foreach_safe(it, tmp, batch) {
    __builtin_prefetch(tmp, 1);
    stream_pub_t *p = base_queue_data(it, stream_pub_t, link);
    stream_topic_t *t = p->topic;
    if (p->frame) {
      t->head_seq = p->seq;
      p->frame->durable_us = now_us;
      /* A topic that nobody reads keeps only its newest few: the rings' churn of cold frames
       * (each evicted 256 pushes after it came) was a tenth of the loop's time at the
       * publish ceiling. One that gets a subscriber grows back to ring_size. */
      uint32_t keep = t->nsubs || t->ngroups || hub->cfg.ring_size < STREAM_RING_QUIET
                          ? hub->cfg.ring_size
                          : STREAM_RING_QUIET;
      stream__ring_push(&t->ring, keep, stream_frame_ref(p->frame));
      stream__route_schedule(hub, t);
      hub->stats.published[p->frame->lane]++;
      base_hist_record(&hub->stats.publish_to_durable_us, now_us - p->start_us);
    }
    if (p->dedupe) {
      p->dedupe->pending = false;
      p->dedupe = NULL;
    }
    if (p->queued_reliable) {
      hub->stats.pending--;
      hub->stats.pending_bytes -= p->pending_bytes;
      p->queued_reliable = false;
    }
    pub_done(hub, p, 0);
  }
}

/* Takes the next batch off the partition queues into hub->batch: round-robin, one publish
 * at a time, so no partition waits on another, up to commit_batch_max events; the
 * events' store records go into hub->writer.evs. Returns the events (duplicates ride
 * along without one). */
static uint32_t batch_take(stream_hub_t *hub) {
  stream_writer_t *w = &hub->writer;
  uint32_t nparts = hub->cfg.partitions, appends = 0, empty = 0;
  /* Every queued topic row first: an event taken below may be its topic's first. */
  w->ntops = 0;
  while (!base_queue_empty(&hub->creates)) {
    stream_topic_t *t = base_queue_data(base_queue_head(&hub->creates), stream_topic_t, create_link);
    base_queue_remove(&t->create_link);
    if (w->ntops == w->tops_cap) {
      w->tops_cap = w->tops_cap ? 2 * w->tops_cap : 16;
      w->tops = xrealloc(w->tops, w->tops_cap * sizeof *w->tops);
      w->top_of = xrealloc(w->top_of, w->tops_cap * sizeof *w->top_of);
    }
    t->row = STREAM_ROW_IN_BATCH;
    w->tops[w->ntops] = (store_new_topic_t){.name = t->name, .topic_id = t->topic_id, .epoch = t->epoch};
    w->top_of[w->ntops++] = t;
  }
  while (appends < hub->cfg.commit_batch_max && empty < nparts) {
    stream_partition_t *part = &hub->parts[hub->commit_rr];
    hub->commit_rr = (hub->commit_rr + 1) % nparts;
    if (base_queue_empty(&part->pending)) {
      empty++;
      continue;
    }
    empty = 0;
    stream_pub_t *p = base_queue_data(base_queue_head(&part->pending), stream_pub_t, link);
    base_queue_remove(&p->link);
    base_queue_insert_tail(&hub->batch, &p->link);
    if (!p->frame) continue;
    if (appends == w->cap) {
      w->cap = w->cap ? 2 * w->cap : 64;
      w->evs = xrealloc(w->evs, w->cap * sizeof *w->evs);
    }
    /* Everything here stays valid and unchanged until the batch's result is applied: the
     * frame is immutable and the id is the pending dedupe entry's. */
    stream_frame_t *f = p->frame;
    w->evs[appends++] = (store_event_t){.topic_id = p->topic->topic_id, .seq = p->seq, .ts_ms = f->ts_ms,
                                        .id = p->dedupe ? p->dedupe->id : NULL, .type = f->type,
                                        .lane = f->lane, .data = (const char *)f->payload + f->data_off,
                                        .data_len = f->data_len};
  }
  w->nevs = appends;
  hub->batch_appends = appends;
  return appends;
}

/* The batch's topic rows (rc: the batch's result): saved, or FAILED (their queued events
 * fail with the batch's, and the row is queued again when the topic is next used:
 * stream__topic_get). With -EEXIST a name may have got a row from another writer: such a
 * topic takes that row instead, so that it does not fail every batch it is queued in. */
static void batch_rows_landed(stream_hub_t *hub, int rc) {
  stream_writer_t *w = &hub->writer;
  for (size_t i = 0; i < w->ntops; i++) {
    stream_topic_t *t = w->top_of[i];
    if (rc == 0) {
      t->row = STREAM_ROW_SAVED;
      hub->stats.topics_unsaved--;
      stream__topic_update_idle(hub, t);
      continue;
    }
    t->commit_failed = true; /* batch_failed fails its queued events too */
    t->next_seq = t->head_seq + 1;
    t->row = STREAM_ROW_FAILED;
    if (rc != -EEXIST || !stream__topic_adopt(hub, t)) stream__topic_update_idle(hub, t);
  }
}

void stream__commit_landed(stream_hub_t *hub, int rc, uint64_t us) {
  uint32_t appends = hub->batch_appends;
  hub->batch_appends = 0;
  hub->writer.nevs = 0;
  if (rc < 0) {
    log_error("streams", "commit failed", "{s:i,s:i,s:i}", "rc", rc, "events", (int)appends, "topics",
              (int)hub->writer.ntops);
    batch_rows_landed(hub, rc);
    batch_failed(hub, &hub->batch);
    for (size_t i = 0; i < hub->writer.ntops; i++) hub->writer.top_of[i]->commit_failed = false;
    hub->writer.ntops = 0;
    return;
  }
  batch_rows_landed(hub, 0);
  hub->writer.ntops = 0;
  if (appends) {
    base_hist_record(&hub->stats.commit_batch_events, appends);
    base_hist_record(&hub->stats.commit_us, us);
  }
  batch_committed(hub, &hub->batch, stream__mono_us(hub));
}

/* Whether small batches go to the thread all the same: a slow inline commit paused them
 * (inline_observe), or the router has a walk left from an earlier turn. The second is a
 * fanout bigger than a turn's router_budget (5,000 subscribers of one topic, S1): the
 * loop is then the bottleneck, and the thread's commit overlaps with the walk where an
 * inline one adds to it (S1 at 500/s acknowledged 420-450 publishes/s with inline
 * commits there, docs/benchmarks.md "Small batches on the loop by default"). */
static bool inline_off(const stream_hub_t *hub) {
  /* Not "a route queue is non-empty": a landing batch (writer.c) and ephemerals queue
   * topics for this turn's walk, which is no backlog. */
  if (hub->route_left) return true;
  return hub->inline_paused_until_us && stream__mono_us(hub) < hub->inline_paused_until_us;
}

#define INLINE_PAUSE_DOUBLINGS 5 /* the pause grows to 32 times commit_inline_pause_ms */

/* A slow inline commit held every connection's turn: the kernel throttled the log's
 * writes, the disk is busy, or the loop lost its core. For a while batches then take the
 * thread, where such a wait holds back only acknowledgements; the while doubles with each
 * slow inline commit in a row (throttling that lasts). A fast one ends the run, and so
 * does the time of the longest pause passing after the last pause ended (two slow
 * commits an idle hour apart are not a run). */
static void inline_observe(stream_hub_t *hub, uint64_t us) {
  const uint64_t base_us = (uint64_t)hub->cfg.commit_inline_pause_ms * 1000;
  if (!hub->cfg.commit_inline_slow_us || !base_us || us < hub->cfg.commit_inline_slow_us) {
    hub->inline_slow_run = 0;
    return;
  }
  uint64_t now = stream__mono_us(hub);
  if (now >= hub->inline_paused_until_us + (base_us << INLINE_PAUSE_DOUBLINGS))
    hub->inline_slow_run = 0;
  hub->stats.commits_inline_paused++;
  uint64_t pause_us = base_us << hub->inline_slow_run;
  if (hub->inline_slow_run < INLINE_PAUSE_DOUBLINGS) hub->inline_slow_run++;
  hub->inline_paused_until_us = now + pause_us;
}

void stream__commit_run(stream_hub_t *hub) {
  while (!hub->writer.busy) {
    uint32_t appends = batch_take(hub);
    size_t tops = hub->writer.ntops;
    if (base_queue_empty(&hub->batch) && tops == 0) return;
    /* New topic rows always go to the thread: writing them on the loop would wait for
     * SQLite's write lock, which is what deferring them avoids. So do all batches while
     * inline_off says so. */
    if ((appends || tops) && hub->writer.on &&
        (appends > hub->cfg.commit_inline_max || tops || inline_off(hub))) {
      stream__writer_submit(hub);
      return;
    }
    /* Here without the thread, or for a batch within commit_inline_max: that one skips the
     * hand-over and the wake-up back, but only when it waits for nothing but its own
     * commit; else (the thread holds the store for a retention slice, or the log needs a
     * settle) the thread takes it as any other batch. */
    int rc = 0;
    uint64_t t0 = uv_hrtime();
    bool inl = false;
    if (appends && hub->writer.on) {
      assert(tops == 0); /* new rows always go to the thread (above) */
      rc = store_batch_write_topics_nowait(hub->store, NULL, 0, hub->writer.evs, appends);
      if (rc == -EAGAIN) {
        hub->stats.commits_inline_declined++;
        stream__writer_submit(hub);
        return;
      }
      hub->stats.commits_inline++;
      inl = true;
    } else if (appends || tops) {
      rc = store_batch_write_topics(hub->store, hub->writer.tops, tops, hub->writer.evs, appends);
    }
    uint64_t us = (uv_hrtime() - t0) / 1000;
    if (inl) inline_observe(hub, us);
    stream__commit_landed(hub, rc, us);
  }
}

void stream__commit_flush(stream_hub_t *hub) {
  do {
    stream__writer_wait(hub);
    stream__commit_run(hub);
  } while (hub->writer.busy);
}

void stream__complete_run(stream_hub_t *hub) {
  base_queue_t list;
  base_queue_init(&list);
  /* Callbacks may publish again: those land in hub->done for the next run. One splice:
   * moving the publishes one by one walked thousands of cold nodes. */
  base_queue_move_tail(&hub->done, &list);
  while (!base_queue_empty(&list)) {
    stream_pub_t *p = base_queue_data(base_queue_head(&list), stream_pub_t, link);
    __builtin_prefetch(p->link.next, 1); /* the next one, as in batch_committed */
    base_queue_remove(&p->link);
    stream_topic_t *t = p->topic;
    stream_ack_t ack = {.topic = t->name, .epoch = t->epoch, .seq = p->status == 0 ? p->seq : 0,
                        .duplicate = p->duplicate, .ephemeral = p->ephemeral};
    if (p->conn) {
      base_queue_remove(&p->conn_link);
      p->conn->npubs--;
      stream__conn_pub_done(p->conn, p, &ack);
    } else if (p->cb) {
      p->cb(p->ud, p->status, &ack);
    }
    t->pins--;
    stream__topic_update_idle(hub, t);
    stream_frame_unref(&p->frame);
    if (p->ref != p->ref_inline) free(p->ref);
    if (hub->npub_free < STREAM_PUB_FREE_MAX && !hub->closing) {
      base_queue_insert_head(&hub->pub_free, &p->link);
      hub->npub_free++;
    } else {
      free(p);
    }
  }
}

void stream__pub_free_all(stream_hub_t *hub) {
  while (hub->npub_free) {
    base_queue_t *q = base_queue_head(&hub->pub_free);
    base_queue_remove(q);
    hub->npub_free--;
    free(base_queue_data(q, stream_pub_t, link));
  }
}

void stream__publish_fail_all(stream_hub_t *hub, int status) {
  for (uint32_t i = 0; i < hub->cfg.partitions; i++) {
    while (!base_queue_empty(&hub->parts[i].pending)) {
      stream_pub_t *p = base_queue_data(base_queue_head(&hub->parts[i].pending), stream_pub_t, link);
      p->topic->next_seq = p->topic->head_seq + 1;
      pub_fail(hub, p);
      p->status = status;
    }
  }
}
