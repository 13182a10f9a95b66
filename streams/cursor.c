/* Cursors: what a connection writes next.
 *
 * stream_conn_pull fills the transport's frame array under a frame and byte budget, in
 * this order: the control queue; reliable events of the control lane that are next in
 * their topic (seq order within a topic is never broken); ephemeral slots; consumer group
 * deliveries (group_lease.c queues them per membership); then data from
 * the subscriptions round-robin, at most pull_quantum frames per subscription per round,
 * the round-robin position persisting across pulls. A cursor reads the ring while its
 * next seq is in it; behind the ring it reads the store (at most catchup_batch events per
 * read, serialized into fresh frames that only the pull output owns); behind retention it
 * yields {"op":"gap",...,"reason":"retention"} and continues from the first retained
 * event. A lagging connection therefore holds no frame and no memory per event.
 *
 * A store read never makes the loop wait for a WAL settle (store_read_nowait): while a
 * settle's pass holds the store's reader (tens of ms at the publish ceiling), the read is
 * put off, the connection waits in hub->catchup_waits, and a timer wakes the waiting
 * connections once the reader is free. Until then the connection's pending data is what
 * the ring holds. Consumer groups' store reads (group_lease.c) wait through
 * stream_reader_wait, whose callbacks the same timer runs. */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "base/hist.h"
#include "base/log.h"
#include "base/mem.h"
#include "internal.h"

/* One pull. Per-frame work is kept to array stores and counters: the clocks are read at
 * most once per pull (the wall clock for the age rule, the monotonic clock for
 * durable_to_pull), and the latency of frames that share a commit (durable_us) is recorded
 * once for the run. */
typedef struct pull {
  stream_conn_t *conn;
  stream_frame_t **out;
  size_t max_frames;
  size_t max_bytes;
  size_t n;
  size_t bytes;
  uint64_t now_us;          /* mono clock, read once per pull (0 until needed) */
  int64_t expire_before_ms; /* wall clock: ring frames published before are past the age rule */
  bool expiry_known;        /* expire_before_ms is set */
  uint64_t run_durable_us;  /* durable_us of the run of frames not yet recorded */
  uint32_t run_n;           /* frames in that run */
  bool full; /* the next frame did not fit */
} pull_t;

static bool pull_fits(pull_t *p, const stream_frame_t *f) {
  if (p->n >= p->max_frames || (p->n > 0 && p->bytes + f->len > p->max_bytes)) {
    p->full = true;
    return false;
  }
  return true;
}

/* stream__expired's rule with the wall clock read once per pull instead of per frame. */
static bool pull_expired(pull_t *p, int64_t ts_ms) {
  if (!p->expiry_known) {
    const stream_hub_t *hub = p->conn->hub;
    uint32_t age_s = hub->cfg.retention_max_age_s;
    p->expire_before_ms = age_s ? stream__wall_ms(hub) - (int64_t)age_s * 1000 : INT64_MIN;
    p->expiry_known = true;
  }
  return ts_ms < p->expire_before_ms;
}

/* Records the pending run of durable_to_pull observations. */
static void pull_record_run(pull_t *p) {
  if (!p->run_n) return;
  stream_hub_t *hub = p->conn->hub;
  if (!p->now_us) p->now_us = stream__mono_us(hub);
  uint64_t d = p->now_us > p->run_durable_us ? p->now_us - p->run_durable_us : 0;
  base_hist_record_n(&hub->stats.durable_to_pull_us, d, p->run_n);
  p->run_n = 0;
}

/* Takes f's reference. */
static void pull_emit(pull_t *p, stream_frame_t *f) {
  p->out[p->n++] = f;
  p->bytes += f->len;
  if (f->kind != STREAM_FRAME_EVENT) return;
  p->conn->hub->stats.deliveries++;
  if (!f->durable_us) return;
  if (p->run_n && f->durable_us != p->run_durable_us) pull_record_run(p);
  p->run_durable_us = f->durable_us;
  p->run_n++;
}

stream_frame_t *stream__frame_from_store(stream_hub_t *hub, const char *topic, const char *epoch,
                                         const store_event_t *ev) {
  stream_evhdr_t h = {.topic = topic, .epoch = epoch, .seq = ev->seq, .id = ev->id, .type = ev->type,
                      .lane = ev->lane >= 0 && ev->lane < STREAM_LANES ? ev->lane : STREAM_LANE_DATA,
                      .ts_ms = ev->ts_ms};
  return stream__frame_event(&hub->frames, hub->cfg.frame_headroom, &h, ev->data, ev->data ? ev->data_len : 0);
}

static stream_frame_t *gap_frame(stream_hub_t *hub, const stream_topic_t *t, uint64_t from, uint64_t to) {
  json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:s}", "op", "gap", "topic", t->name, "from", (json_int_t)from, "to",
                        (json_int_t)to, "reason", "retention");
  stream_frame_t *f = stream__frame_control(&hub->frames, hub->cfg.frame_headroom, "gap", t->name, o);
  json_decref(o);
  return f;
}

/* Emits a retention gap [from, to] and moves the cursor past it; false when it did not fit. */
static bool emit_gap(pull_t *p, stream_sub_t *s, uint64_t from, uint64_t to) {
  stream_hub_t *hub = p->conn->hub;
  stream_frame_t *g = gap_frame(hub, s->topic, from, to);
  if (!pull_fits(p, g)) {
    stream_frame_unref(&g);
    return false;
  }
  pull_emit(p, g);
  hub->stats.gaps_sent++;
  s->next_seq = to + 1;
  return true;
}

typedef struct catchup {
  pull_t *pull;
  stream_sub_t *sub;
  uint32_t left; /* frames this subscription may still emit this round */
  bool stopped;
  uint64_t aged_to; /* > 0: the events read from s->next_seq up to here are past the age
                     * rule (not deleted yet): one gap names them before the next event */
} catchup_t;

static int catchup_cb(void *ud, const store_event_t *ev) {
  catchup_t *cu = ud;
  stream_sub_t *s = cu->sub;
  stream_hub_t *hub = cu->pull->conn->hub;
  if (pull_expired(cu->pull, ev->ts_ms)) {
    /* Aged out and not deleted yet: the same gap as for the ring (sub_emit), and as if a
     * retention slice had run; the cursor moves once that gap is out. */
    cu->aged_to = ev->seq;
    return 0;
  }
  if (ev->seq > s->next_seq) { /* retention removed (or aged out) what lies before */
    if (s->topic->first_seq < ev->seq) s->topic->first_seq = ev->seq;
    if (!emit_gap(cu->pull, s, s->next_seq, ev->seq - 1)) goto stop;
    cu->aged_to = 0;
  }
  stream_frame_t *f = stream__frame_from_store(hub, s->topic->name, s->topic->epoch, ev);
  if (!pull_fits(cu->pull, f)) {
    stream_frame_unref(&f);
    goto stop;
  }
  pull_emit(cu->pull, f);
  s->next_seq = ev->seq + 1;
  if (--cu->left == 0) goto stop;
  return 0;
stop:
  cu->stopped = true;
  return 1;
}

#define CATCHUP_RETRY_MS 2 /* how often a deferred catch-up checks the store's reader */
#define READER_WAITS_PER_TURN 8 /* stream_reader_wait callbacks per timer turn: each may read
                                 * up to 10,000 events (an HTTP read) on the loop */

static void catchup_retry_cb(uv_timer_t *h) {
  stream_hub_t *hub = container_of(h, stream_hub_t, catchup_timer);
  if (store_reader_busy(hub->store)) {
    uv_timer_start(h, catchup_retry_cb, CATCHUP_RETRY_MS, 0);
    return;
  }
  /* The callers waiting now, oldest first and at most READER_WAITS_PER_TURN of them per
   * turn (the rest in a turn of their own right after), each once: a callback may wait
   * again (a new settle began), which puts it at the end of the list, or cancel another
   * caller's wait. */
  stream_reader_wait_t *head = &hub->reader_waits, *last = head->prev;
  for (int k = 0; k < READER_WAITS_PER_TURN && head->next != head; k++) {
    stream_reader_wait_t *w = head->next;
    bool was_last = w == last;
    stream_reader_wait_cancel(w);
    w->cb(w);
    if (was_last) break;
  }
  /* 1 ms, not 0: libuv runs a timer due now again within the same timers phase. */
  if (head->next != head && !uv_is_active((uv_handle_t *)h)) uv_timer_start(h, catchup_retry_cb, 1, 0);
  uint32_t n = hub->ncatchup_waits;
  hub->ncatchup_waits = 0;
  for (uint32_t i = 0; i < n; i++) {
    stream_conn_t *c = hub->catchup_waits[i];
    if (!c) continue;
    c->catchup_wait = false;
    stream__conn_wake(c); /* queues it: the pulls run in the hub's phase, not here */
  }
}

static void catchup_timer_arm(stream_hub_t *hub) {
  if (!uv_is_active((uv_handle_t *)&hub->catchup_timer))
    uv_timer_start(&hub->catchup_timer, catchup_retry_cb, CATCHUP_RETRY_MS, 0);
}

void stream_reader_wait(stream_hub_t *hub, stream_reader_wait_t *w, void (*cb)(stream_reader_wait_t *w)) {
  assert(!w->next); /* not waiting already */
  w->cb = cb;
  w->prev = hub->reader_waits.prev;
  w->next = &hub->reader_waits;
  w->prev->next = w;
  hub->reader_waits.prev = w;
  catchup_timer_arm(hub);
}

void stream_reader_wait_cancel(stream_reader_wait_t *w) {
  if (!w->next) return;
  w->prev->next = w->next;
  w->next->prev = w->prev;
  w->prev = w->next = NULL;
}

const char stream_close_store_failed[] = "store read failed";

static void catchup_defer(stream_hub_t *hub, stream_conn_t *c) {
  hub->stats.store_catchup_deferred++;
  if (c->catchup_wait) return;
  if (hub->ncatchup_waits == hub->catchup_waits_cap) {
    hub->catchup_waits_cap = hub->catchup_waits_cap ? 2 * hub->catchup_waits_cap : 16;
    hub->catchup_waits = xrealloc(hub->catchup_waits, hub->catchup_waits_cap * sizeof *hub->catchup_waits);
  }
  hub->catchup_waits[hub->ncatchup_waits++] = c;
  c->catchup_wait = true;
  catchup_timer_arm(hub);
}

void stream__catchup_forget(stream_conn_t *c) {
  if (!c->catchup_wait) return;
  stream_hub_t *hub = c->hub;
  for (uint32_t i = 0; i < hub->ncatchup_waits; i++)
    if (hub->catchup_waits[i] == c) hub->catchup_waits[i] = NULL;
  c->catchup_wait = false;
}

/* Reads from the store what lies between the cursor and the ring; 0 frames when the read
 * was deferred (catchup_defer). */
static uint32_t sub_catchup(pull_t *p, stream_sub_t *s, uint32_t quantum) {
  stream_hub_t *hub = p->conn->hub;
  stream_topic_t *t = s->topic;
  uint64_t start = s->next_seq;
  /* The last seq the store must supply: up to the ring, or to the head when the ring does
   * not start after the cursor (empty, or restarted below it after a resync). */
  uint64_t until = t->ring.count && t->ring.lo > start ? t->ring.lo - 1 : t->head_seq;
  uint32_t want = quantum < hub->cfg.catchup_batch ? quantum : hub->cfg.catchup_batch;
  if (until - start + 1 < want) want = (uint32_t)(until - start + 1);
  catchup_t cu = {.pull = p, .sub = s, .left = want};
  size_t before = p->n;
  int rc = store_read_nowait(hub->store, t->topic_id, start - 1, want, catchup_cb, &cu);
  if (rc == -EAGAIN) {
    catchup_defer(hub, p->conn);
    return 0;
  }
  hub->stats.store_catchup_reads++;
  if (rc < 0) {
    /* Retrying at once would spin (the connection stays pending) and fail again; the
     * connection is closed instead (1011), and the client resumes from its position. */
    hub->stats.store_catchup_failures++;
    if (!p->conn->close_reason) {
      log_error("streams", "catch-up read failed: closing the connection", "{s:s,s:i}", "topic", t->name, "rc", rc);
      p->conn->close_reason = stream_close_store_failed;
    }
    p->full = true;
    return 0;
  }
  if (!cu.stopped && cu.aged_to) {
    /* The read ended on aged events: they are a gap (the next read goes on after them). */
    if (t->first_seq < cu.aged_to + 1) t->first_seq = cu.aged_to + 1;
    emit_gap(p, s, s->next_seq, cu.aged_to);
  } else if (!cu.stopped && s->next_seq == start) {
    /* Nothing at all up to the ring: everything there is gone. */
    if (t->first_seq < until + 1) t->first_seq = until + 1;
    emit_gap(p, s, start, until);
  }
  return (uint32_t)(p->n - before);
}

/* Emits up to quantum frames of one subscription; returns how many. The head seq does not
 * move during a pull, and the oldest deliverable seq (first) only where a gap or a store
 * read moves it, so first is recomputed only there. */
static uint32_t sub_emit(pull_t *p, stream_sub_t *s, uint32_t quantum, bool control_only) {
  stream_hub_t *hub = p->conn->hub;
  stream_topic_t *t = s->topic;
  uint32_t done = 0;
  uint64_t first = stream__topic_first(hub, t);
  while (done < quantum && !p->full && s->next_seq <= t->head_seq) {
    if (s->next_seq < first) {
      if (control_only || !emit_gap(p, s, s->next_seq, first - 1)) break;
      done++;
      first = stream__topic_first(hub, t);
      continue;
    }
    stream_frame_t *f = stream__ring_get(&t->ring, s->next_seq);
    if (f) {
      if (pull_expired(p, f->ts_ms)) {
        if (control_only) break;
        /* Aged out: everything up to the first fresh ring entry is gone. */
        uint64_t to = s->next_seq;
        while (to < t->head_seq) {
          stream_frame_t *g = stream__ring_get(&t->ring, to + 1);
          if (!g || !pull_expired(p, g->ts_ms)) break;
          to++;
        }
        if (t->first_seq < to + 1) t->first_seq = to + 1;
        stream__ring_drop_below(&t->ring, to + 1);
        if (!emit_gap(p, s, s->next_seq, to)) break;
        done++;
        first = stream__topic_first(hub, t);
        continue;
      }
      if (control_only && f->lane != STREAM_LANE_CONTROL) break;
      if (!pull_fits(p, f)) break;
      pull_emit(p, stream_frame_ref(f));
      s->next_seq++;
      done++;
      continue;
    }
    if (control_only) break;
    uint32_t k = sub_catchup(p, s, quantum - done);
    if (k == 0) break;
    done += k;
    first = stream__topic_first(hub, t);
  }
  return done;
}

/* Fills p in the order of the file comment; stops at the first frame that does not fit. */
static void pull_fill(pull_t *p) {
  stream_conn_t *c = p->conn;
  stream_hub_t *hub = c->hub;
  while (c->ctrl_count) {
    if (!pull_fits(p, c->ctrl[c->ctrl_head])) return;
    pull_emit(p, c->ctrl[c->ctrl_head]);
    c->ctrl[c->ctrl_head] = NULL;
    c->ctrl_head = (c->ctrl_head + 1) % c->ctrl_cap;
    c->ctrl_count--;
  }
  if (c->draining) return;

  base_queue_t *it;
  base_queue_foreach(it, &c->subs) {
    sub_emit(p, base_queue_data(it, stream_sub_t, conn_link), UINT32_MAX, true);
    if (p->full) return;
  }
  while (c->neph) {
    if (!pull_fits(p, c->eph[0].frame)) return;
    pull_emit(p, c->eph[0].frame);
    c->eph[0] = c->eph[--c->neph];
  }
  /* Consumer group deliveries: few (bounded by each membership's max_inflight), each a
   * frame of its own that the lease hands over here. */
  base_queue_foreach(it, &c->members) {
    stream_member_t *m = base_queue_data(it, stream_member_t, conn_link);
    while (!base_queue_empty(&m->outq)) {
      stream_lease_t *l = base_queue_data(base_queue_head(&m->outq), stream_lease_t, out_link);
      if (!pull_fits(p, l->frame)) return;
      pull_emit(p, l->frame);
      l->frame = NULL;
      base_queue_remove(&l->out_link);
      c->group_out--;
    }
  }
  /* Round-robin: serve the head subscription, then move it to the tail, until a whole
   * round yields nothing or the budget is spent. */
  uint32_t idle_streak = 0;
  while (!p->full && idle_streak < c->nsubs) {
    stream_sub_t *s = base_queue_data(base_queue_head(&c->subs), stream_sub_t, conn_link);
    uint32_t k = sub_emit(p, s, hub->cfg.pull_quantum, false);
    if (p->full && k == 0) break; /* it keeps its turn */
    base_queue_remove(&s->conn_link);
    base_queue_insert_tail(&c->subs, &s->conn_link);
    idle_streak = k ? 0 : idle_streak + 1;
  }
}

int stream_conn_pull(stream_conn_t *c, stream_frame_t **frames, size_t max_frames, size_t max_bytes) {
  if (c->close_reason) return -ENOBUFS;
  c->woken = false;
  base_queue_remove(&c->wake_link);
  pull_t p = {.conn = c, .out = frames, .max_frames = max_frames, .max_bytes = max_bytes};
  pull_fill(&p);
  pull_record_run(&p);
  if (c->ctrl_count == 0 && c->ctrl_cap == CTRL_RING_MIN) {
    /* An emptied smallest ring goes: most connections only ever get their "subscribed"
     * replies, and each kept 48 bytes of empty ring for good (a grown one stays: its
     * connection is busy). The next control frame allocates it again. */
    free(c->ctrl);
    c->ctrl = NULL;
    c->ctrl_cap = 0;
    c->ctrl_head = 0;
  }
  return (int)p.n;
}

bool stream_conn_pending(const stream_conn_t *c) {
  if (c->close_reason || c->ctrl_count) return true;
  if (c->draining) return false;
  if (c->neph || c->group_out) return true;
  base_queue_t *it;
  base_queue_foreach(it, &c->subs) {
    stream_sub_t *s = base_queue_data(it, stream_sub_t, conn_link);
    if (s->next_seq > s->topic->head_seq) continue;
    /* A deferred catch-up waits for the timer's wake, not for the next writable turn. */
    if (!c->catchup_wait || stream__ring_get(&s->topic->ring, s->next_seq)) return true;
  }
  return false;
}

uint64_t stream_conn_lag(const stream_conn_t *c) {
  uint64_t lag = 0;
  base_queue_t *it;
  base_queue_foreach(it, &c->subs) {
    stream_sub_t *s = base_queue_data(it, stream_sub_t, conn_link);
    if (s->next_seq <= s->topic->head_seq) lag += s->topic->head_seq + 1 - s->next_seq;
  }
  return lag;
}
