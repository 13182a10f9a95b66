/* Consumer group dispatch and leases.
 *
 * A lease is one pending event of a group. Dispatch (in the hub phase) hands out, in this
 * order: waiting leases that are due (redeliveries, preferably to a member other than the
 * last holder), dead letters for leases that reached max_deliveries, then new events from
 * the group's position, read from the topic's ring or, behind it, from the store in
 * batches. Each delivery goes to the live member with the fewest leases held among those
 * under their max_inflight (ties rotate), as a frame of its own (the event with "group"
 * and "redelivered"), so a member holds at most max_inflight frames. Acks remove leases;
 * extend restarts the deadline; nack, expiry and a member leaving put the lease back to
 * waiting. An event retention removed before the group got to it is skipped, counted and
 * logged (there is nothing left to dead-letter). Dead letters go to "<topic>.dlq" with
 * the original event and the reason; the lease goes only once that publish is durable.
 * The table, membership and persistence are group.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"

#define DLQ_RETRY_MS 1000
#define DLQ_SUFFIX ".dlq"

/* ---- frames ---- */

stream_frame_t *stream__frame_group(stream_hub_t *hub, const stream_frame_t *ev, const char *group,
                                    uint32_t redelivered) {
  static const char head[] = "{\"op\":\"ev\"";
  size_t hlen = sizeof head - 1;
  char extra[STREAM_GROUP_NAME_MAX + 64];
  /* Group names need no escaping ([A-Za-z0-9_.-]). */
  int xn = redelivered ? snprintf(extra, sizeof extra, ",\"group\":\"%s\",\"redelivered\":%u", group, redelivered)
                       : snprintf(extra, sizeof extra, ",\"group\":\"%s\"", group);
  size_t topic_len = ev->topic ? strlen(ev->topic) : 0, type_len = ev->type ? strlen(ev->type) : 0;
  size_t headroom = hub->cfg.frame_headroom;
  size_t len = ev->len + (size_t)xn;
  size_t size = sizeof(stream_frame_t) + headroom + len + 1 + (ev->topic ? topic_len + 1 : 0) +
                (ev->type ? type_len + 1 : 0);
  unsigned char *mem = xmalloc(size);
  /* The layout of frame.c: [struct][headroom][payload NUL][topic NUL][type NUL]. */
  stream_frame_t *f = (stream_frame_t *)(void *)mem;
  *f = *ev;
  f->refs = 1;
  f->durable_us = 0;
  f->payload = mem + sizeof(stream_frame_t) + headroom;
  char *p = (char *)f->payload;
  memcpy(p, head, hlen);
  memcpy(p + hlen, extra, (size_t)xn);
  memcpy(p + hlen + (size_t)xn, ev->payload + hlen, ev->len - hlen);
  p[len] = '\0';
  char *q = p + len + 1;
  f->topic = NULL;
  f->type = NULL;
  if (ev->topic) {
    memcpy(q, ev->topic, topic_len + 1);
    f->topic = q;
    q += topic_len + 1;
  }
  if (ev->type) {
    memcpy(q, ev->type, type_len + 1);
    f->type = q;
  }
  f->len = len;
  f->data_off = ev->data_off + (size_t)xn;
  f->size = size;
  f->frames = &hub->frames; /* accounted in hub->stats, freed on release */
  f->pool_class = 0;
  hub->stats.frames++;
  hub->stats.frame_bytes += size;
  return f;
}

/* ---- leases ---- */

stream_lease_t *stream__lease_new(stream_hub_t *hub, stream_group_t *g, uint64_t seq, uint32_t deliveries) {
  stream_lease_t *l = xcalloc(1, sizeof *l);
  hub->stats.group_pending++;
  base_queue_init(&l->link);
  base_queue_init(&l->member_link);
  base_queue_init(&l->out_link);
  base_queue_init(&l->dirty_link);
  l->group = g;
  l->seq = seq;
  l->deliveries = deliveries;
  l->state = STREAM_LEASE_WAITING;
  base_map_insert(&g->leases, &l->node, (const char *)&l->seq, sizeof l->seq);
  base_queue_insert_tail(&g->waiting, &l->link); /* due_us 0: sorts first */
  return l;
}

static stream_lease_t *lease_find(stream_group_t *g, uint64_t seq) {
  base_map_node_t *n = base_map_get(&g->leases, (const char *)&seq, sizeof seq);
  return n ? container_of(n, stream_lease_t, node) : NULL;
}

static void lease_dirty(stream_hub_t *hub, stream_lease_t *l) {
  if (!base_queue_linked(&l->dirty_link)) base_queue_insert_tail(&l->group->dirty_leases, &l->dirty_link);
  stream__group_mark_dirty(hub, l->group);
}

/* Drops an unpulled delivery: it never reached the client, so it does not count. */
static void lease_unqueue(stream_lease_t *l) {
  if (!l->frame) return;
  stream_member_t *m = l->member;
  base_queue_remove(&l->out_link);
  stream_frame_unref(&l->frame);
  m->conn->group_out--;
  if (l->deliveries) l->deliveries--;
}

/* Detaches a held lease from its member. */
static void lease_unhold(stream_lease_t *l) {
  stream_member_t *m = l->member;
  lease_unqueue(l);
  base_queue_remove(&l->link);
  base_queue_remove(&l->member_link);
  m->inflight--;
  l->last_member = m->id;
  l->member = NULL;
}

static void waiting_insert(stream_group_t *g, stream_lease_t *l) {
  base_queue_t *pos = g->waiting.prev;
  while (pos != &g->waiting && base_queue_data(pos, stream_lease_t, link)->due_us > l->due_us) pos = pos->prev;
  base_queue_insert_head(pos, &l->link); /* right after pos */
}

void stream__lease_drop(stream_hub_t *hub, stream_lease_t *l) {
  stream_group_t *g = l->group;
  if (l->state == STREAM_LEASE_HELD) lease_unhold(l);
  if (l->state == STREAM_LEASE_DEAD) g->ndead--;
  base_queue_remove(&l->link);
  base_queue_remove(&l->dirty_link);
  base_map_remove(&g->leases, &l->node);
  hub->stats.group_pending--;
  if (l->stored) {
    if (g->ndels == g->cap_dels) {
      g->cap_dels = g->cap_dels ? g->cap_dels * 2 : 16;
      g->dels = xrealloc(g->dels, g->cap_dels * sizeof *g->dels);
    }
    g->dels[g->ndels++] = l->seq;
    stream__group_mark_dirty(hub, g);
  }
  free(l);
}

void stream__lease_release(stream_hub_t *hub, stream_lease_t *l, int why, uint32_t delay_ms) {
  stream_group_t *g = l->group;
  lease_unhold(l);
  l->state = STREAM_LEASE_WAITING;
  l->why = (uint8_t)why;
  uint64_t max = hub->cfg.group_max_deliveries;
  /* Bound for the dead letter: no point waiting out the delay first. */
  if (max && l->deliveries >= max) delay_ms = 0;
  l->due_us = stream__mono_us(hub) + (uint64_t)delay_ms * 1000;
  waiting_insert(g, l);
  lease_dirty(hub, l);
  if (delay_ms == 0) stream__group_mark_ready(hub, g);
}

size_t stream__group_expire(stream_hub_t *hub, stream_group_t *g, uint64_t now_us) {
  size_t n = 0;
  while (!base_queue_empty(&g->held)) {
    stream_lease_t *l = base_queue_data(base_queue_head(&g->held), stream_lease_t, link);
    if (l->due_us > now_us) break;
    stream__lease_release(hub, l, STREAM_LEASE_EXPIRED, 0);
    n++;
  }
  return n;
}

/* ---- dispatch ---- */

static bool member_live(const stream_member_t *m) {
  return !m->conn->draining && !m->conn->close_reason && m->inflight < m->max_inflight;
}

/* The live member with capacity holding the fewest leases, preferring one whose id is
 * not avoid; the chosen one moves to the back of the rotation. */
static stream_member_t *pick(stream_group_t *g, uint64_t avoid) {
  stream_member_t *best = NULL, *alt = NULL;
  base_queue_t *it;
  base_queue_foreach(it, &g->members) {
    stream_member_t *m = base_queue_data(it, stream_member_t, group_link);
    if (!member_live(m)) continue;
    if (m->id == avoid) {
      alt = m;
      continue;
    }
    if (!best || m->inflight < best->inflight) best = m;
  }
  stream_member_t *r = best ? best : alt;
  if (r) {
    base_queue_remove(&r->group_link);
    base_queue_insert_tail(&g->members, &r->group_link);
  }
  return r;
}

/* Hands lease l (waiting) to m with the event frame ev (borrowed). */
static void deliver(stream_hub_t *hub, stream_lease_t *l, stream_member_t *m, const stream_frame_t *ev) {
  stream_group_t *g = l->group;
  base_queue_remove(&l->link);
  l->state = STREAM_LEASE_HELD;
  l->member = m;
  l->deliveries++;
  l->due_us = stream__mono_us(hub) + (uint64_t)g->ack_wait_ms * 1000;
  base_queue_insert_tail(&g->held, &l->link);
  base_queue_insert_tail(&m->held, &l->member_link);
  m->inflight++;
  l->frame = stream__frame_group(hub, ev, g->name, l->deliveries - 1);
  base_queue_insert_tail(&m->outq, &l->out_link);
  m->conn->group_out++;
  g->deliveries++;
  hub->stats.group_deliveries++;
  if (l->deliveries > 1) {
    g->redeliveries++;
    hub->stats.group_redeliveries++;
  }
  lease_dirty(hub, l);
  stream__conn_wake(m->conn);
}

typedef struct fetch {
  stream_hub_t *hub;
  stream_topic_t *t;
  stream_frame_t **out; /* owned refs */
  uint64_t *seqs;
  size_t n, max;
} fetch_t;

static int fetch_cb(void *ud, const store_event_t *ev) {
  fetch_t *fx = ud;
  fx->seqs[fx->n] = ev->seq;
  fx->out[fx->n++] = stream__frame_from_store(fx->hub, fx->t->name, fx->t->epoch, ev);
  return fx->n == fx->max ? 1 : 0;
}

/* Reads up to max events of t from seq on (ring first, then the store); out[i] gets a
 * reference to the frame of seqs[i], ascending; seqs missing from the result are gone.
 * Returns the count, -EAGAIN when a WAL settle holds the store's reader (nothing read:
 * the caller puts the work off, fetch_defer), or -EIO. */
static int fetch(stream_hub_t *hub, stream_topic_t *t, uint64_t seq, size_t max, stream_frame_t **out,
                 uint64_t *seqs) {
  stream_frame_t *f = stream__ring_get(&t->ring, seq);
  if (f) {
    out[0] = stream_frame_ref(f);
    seqs[0] = seq;
    return 1;
  }
  /* Behind the ring: never read past where it starts (those are served from memory). */
  uint64_t until = t->ring.count && t->ring.lo > seq ? t->ring.lo - 1 : t->head_seq;
  if (until - seq + 1 < max) max = (size_t)(until - seq + 1);
  fetch_t fx = {.hub = hub, .t = t, .out = out, .seqs = seqs, .max = max};
  int rc = store_read_nowait(hub->store, t->topic_id, seq - 1, max, fetch_cb, &fx);
  if (rc == -EAGAIN) return rc; /* nothing read: the caller puts it off */
  hub->stats.store_catchup_reads++;
  if (rc < 0) {
    for (size_t i = 0; i < fx.n; i++) stream_frame_unref(&out[i]);
    log_error("streams", "group read failed", "{s:s,s:i}", "topic", t->name, "rc", rc);
    return -EIO;
  }
  return (int)fx.n;
}

static void fetch_retry(stream_reader_wait_t *w) {
  stream_group_t *g = container_of(w, stream_group_t, fetch_wait);
  stream__group_mark_ready(g->hub, g);
}

/* A store read of g was put off: g dispatches again once the store's reader is free. */
static void fetch_defer(stream_hub_t *hub, stream_group_t *g) {
  hub->stats.store_catchup_deferred++;
  if (!g->fetch_wait.next) stream_reader_wait(hub, &g->fetch_wait, fetch_retry);
}

static void skipped(stream_hub_t *hub, stream_group_t *g, uint64_t from, uint64_t to) {
  g->skipped += to - from + 1;
  hub->stats.group_skipped += to - from + 1;
  log_warn("streams", "group skipped events lost to retention", "{s:s,s:s,s:I,s:I}", "topic", g->topic->name,
           "group", g->name, "from", (json_int_t)from, "to", (json_int_t)to);
}

static const char *why_name(int why) {
  switch (why) {
  case STREAM_LEASE_EXPIRED: return "ack_wait expired";
  case STREAM_LEASE_NACKED: return "nacked";
  case STREAM_LEASE_LEFT: return "member left";
  case STREAM_LEASE_RESTORED: return "restart";
  default: return "none";
  }
}

static void dlq_cb(void *ud, int status, const stream_ack_t *ack) {
  (void)ack;
  stream_lease_t *l = ud;
  stream_group_t *g = l->group;
  stream_hub_t *hub = g->hub;
  l->dlq = NULL;
  g->ndead--;
  l->state = STREAM_LEASE_WAITING;
  if (status == 0) {
    g->dead_lettered++;
    hub->stats.group_dead_letters++;
    stream__lease_drop(hub, l);
    return;
  }
  /* Not durable: try again later (the lease is still pending). */
  l->due_us = stream__mono_us(hub) + DLQ_RETRY_MS * 1000;
  waiting_insert(g, l);
}

/* Publishes l's event to the dead-letter topic. Returns 0 (in flight, or dropped because
 * the event is gone) or a negative errno when it must be retried later; *deferred is set
 * when that is because a WAL settle holds the store's reader (the catch-up timer's retry,
 * not DLQ_RETRY_MS). */
static int dead_letter(stream_hub_t *hub, stream_lease_t *l, bool *deferred) {
  stream_group_t *g = l->group;
  stream_topic_t *t = g->topic;
  stream_frame_t *src = NULL;
  uint64_t got = 0;
  int n = fetch(hub, t, l->seq, 1, &src, &got);
  *deferred = n == -EAGAIN;
  if (n < 0) return n;
  if (n == 0 || got != l->seq) {
    if (n) stream_frame_unref(&src);
    skipped(hub, g, l->seq, l->seq);
    stream__lease_drop(hub, l);
    return 0;
  }
  char dlq_topic[STREAM_TOPIC_MAX + sizeof DLQ_SUFFIX];
  snprintf(dlq_topic, sizeof dlq_topic, "%s%s", t->name, DLQ_SUFFIX);
  json_error_t jerr;
  json_t *orig = json_loadb((const char *)src->payload, src->len, 0, &jerr);
  stream_frame_unref(&src);
  json_t *d = json_pack("{s:s,s:s,s:I,s:s,s:I,s:s,s:s,s:o*}", "topic", t->name, "group", g->name, "seq",
                        (json_int_t)l->seq, "epoch", t->epoch, "deliveries", (json_int_t)l->deliveries, "reason",
                        "max_deliveries", "last_failure", why_name(l->why), "event", orig);
  char *text = json_dumps(d, JSON_COMPACT);
  json_decref(d);
  char id[STREAM_ID_MAX + 1];
  snprintf(id, sizeof id, "dlq:%s:%s:%llu", g->name, t->epoch, (unsigned long long)l->seq);
  stream_pubin_t in = {.id = id, .type = "dead_letter", .lane = STREAM_LANE_DATA, .data = text,
                       .data_len = text ? strlen(text) : 0};
  stream_err_t err = {0};
  stream_pub_t *h = NULL;
  int rc = stream__publish(hub, dlq_topic, &in, NULL, NULL, dlq_cb, l, &h, &err);
  free(text);
  if (rc == -EINVAL || rc == -EMSGSIZE) {
    /* No valid dead-letter topic for this name, or the event does not fit: drop it. */
    log_error("streams", "dead letter impossible; event dropped", "{s:s,s:s,s:I,s:s}", "topic", t->name, "group",
              g->name, "seq", (json_int_t)l->seq, "reason", err.message);
    skipped(hub, g, l->seq, l->seq);
    stream__lease_drop(hub, l);
    return 0;
  }
  if (rc < 0) return rc;
  base_queue_remove(&l->link);
  l->state = STREAM_LEASE_DEAD;
  l->dlq = h;
  g->ndead++;
  return 0;
}

/* The lease's event is gone: drop it with a counted gap. */
static void lease_gone(stream_hub_t *hub, stream_lease_t *l) {
  skipped(hub, l->group, l->seq, l->seq);
  stream__lease_drop(hub, l);
}

/* Due waiting leases: redeliver or dead-letter. Returns false when a store read was put
 * off (a WAL settle holds the store's reader): the group then waits for the catch-up
 * timer as a whole, so that new events do not overtake its due redeliveries. */
static bool dispatch_waiting(stream_hub_t *hub, stream_group_t *g, uint32_t *budget, uint64_t now) {
  uint64_t max = hub->cfg.group_max_deliveries;
  base_queue_t *it = g->waiting.next;
  while (*budget > 0 && it != &g->waiting) {
    stream_lease_t *l = base_queue_data(it, stream_lease_t, link);
    if (l->due_us > now) break;
    it = it->next; /* l may leave the list below */
    if (max && l->deliveries >= max) {
      bool deferred;
      int rc = dead_letter(hub, l, &deferred);
      if (deferred) {
        fetch_defer(hub, g);
        return false;
      }
      if (rc < 0) { /* rate limited or overloaded: later */
        base_queue_remove(&l->link);
        l->due_us = now + DLQ_RETRY_MS * 1000;
        waiting_insert(g, l);
      }
      (*budget)--;
      continue;
    }
    stream_member_t *m = pick(g, l->last_member);
    if (!m) continue; /* dead letters further on may still go */
    stream_frame_t *f = NULL;
    uint64_t got = 0;
    int n = fetch(hub, g->topic, l->seq, 1, &f, &got);
    if (n == -EAGAIN) {
      fetch_defer(hub, g);
      return false;
    }
    if (n < 0) return true;
    if (n == 0 || got != l->seq) {
      if (n) stream_frame_unref(&f);
      lease_gone(hub, l);
      continue;
    }
    deliver(hub, l, m, f);
    stream_frame_unref(&f);
    (*budget)--;
  }
  return true;
}

static uint32_t capacity(const stream_group_t *g) {
  uint32_t cap = 0;
  base_queue_t *it;
  base_queue_foreach(it, &g->members) {
    const stream_member_t *m = base_queue_data(it, stream_member_t, group_link);
    if (member_live(m)) cap += m->max_inflight - m->inflight;
  }
  return cap;
}

#define FETCH_MAX 64

/* New events from the group's position. */
static void dispatch_new(stream_hub_t *hub, stream_group_t *g, uint32_t *budget) {
  stream_topic_t *t = g->topic;
  stream_frame_t *frames[FETCH_MAX];
  uint64_t seqs[FETCH_MAX];
  while (*budget > 0 && g->next_seq <= t->head_seq && g->leases.count < hub->cfg.group_max_pending) {
    uint64_t first = stream__topic_first(hub, t);
    if (g->next_seq < first) {
      skipped(hub, g, g->next_seq, first - 1);
      g->next_seq = first;
      g->row_dirty = true;
      stream__group_mark_dirty(hub, g);
      continue;
    }
    size_t want = capacity(g);
    if (want == 0) return;
    if (want > FETCH_MAX) want = FETCH_MAX;
    if (want > hub->cfg.catchup_batch) want = hub->cfg.catchup_batch;
    if (want > *budget) want = *budget;
    if (want > hub->cfg.group_max_pending - g->leases.count) want = hub->cfg.group_max_pending - g->leases.count;
    int n = fetch(hub, t, g->next_seq, want, frames, seqs);
    if (n == -EAGAIN) fetch_defer(hub, g);
    if (n < 0) return;
    uint64_t start = g->next_seq;
    if (n == 0) { /* nothing stored up to the ring: gone */
      uint64_t until = t->ring.count && t->ring.lo > start ? t->ring.lo - 1 : t->head_seq;
      if (t->first_seq < until + 1) t->first_seq = until + 1;
      skipped(hub, g, start, until);
      g->next_seq = until + 1;
    }
    for (int i = 0; i < n; i++) {
      if (seqs[i] > g->next_seq) {
        if (t->first_seq < seqs[i]) t->first_seq = seqs[i];
        skipped(hub, g, g->next_seq, seqs[i] - 1);
      }
      stream_lease_t *l = stream__lease_new(hub, g, seqs[i], 0);
      g->next_seq = seqs[i] + 1;
      deliver(hub, l, pick(g, 0), frames[i]);
      stream_frame_unref(&frames[i]);
      (*budget)--;
    }
    g->row_dirty = true;
    stream__group_mark_dirty(hub, g);
  }
}

void stream__group_dispatch(stream_hub_t *hub, stream_group_t *g, uint32_t *budget) {
  uint64_t now = stream__mono_us(hub);
  uint32_t before = *budget;
  if (!dispatch_waiting(hub, g, budget, now)) return; /* the catch-up timer makes it ready */
  if (g->nmembers) dispatch_new(hub, g, budget);
  /* Out of budget with work left: again next turn. */
  if (*budget == 0 && before > 0) stream__group_mark_ready(hub, g);
}

/* ---- member requests ---- */

static int member_lease(stream_conn_t *c, const char *topic, const char *group, uint64_t seq, bool held_only,
                        stream_member_t **mout, stream_lease_t **lout, stream_err_t *err) {
  if (err) memset(err, 0, sizeof *err);
  if (!c || !topic || !group) return -EINVAL;
  stream_member_t *m = stream__conn_find_member(c, topic, group);
  if (!m) {
    stream__errf(err, "group: not a member of %.64s on %.200s", group, topic);
    return -ENOENT;
  }
  stream_lease_t *l = lease_find(m->group, seq);
  if (!l || l->state == STREAM_LEASE_DEAD) {
    stream__errf(err, "seq: %llu is not pending in group %s", (unsigned long long)seq, m->group->name);
    return -ENOENT;
  }
  if (l->state == STREAM_LEASE_HELD && l->member != m) {
    stream__errf(err, "seq: %llu is leased to another member", (unsigned long long)seq);
    return -ENOENT;
  }
  if (held_only && l->state != STREAM_LEASE_HELD) {
    stream__errf(err, "seq: %llu is not leased to this member (its lease expired)", (unsigned long long)seq);
    return -ENOENT;
  }
  *mout = m;
  *lout = l;
  return 0;
}

int stream_conn_group_ack(stream_conn_t *c, const char *topic, const char *group, uint64_t seq, stream_err_t *err) {
  stream_member_t *m;
  stream_lease_t *l;
  int rc = member_lease(c, topic, group, seq, false, &m, &l, err);
  if (rc < 0) return rc;
  stream_hub_t *hub = c->hub;
  stream_group_t *g = m->group;
  g->acks++;
  hub->stats.group_acks++;
  stream__lease_drop(hub, l);
  stream__group_mark_ready(hub, g);
  return 0;
}

int stream_conn_group_extend(stream_conn_t *c, const char *topic, const char *group, uint64_t seq,
                             stream_err_t *err) {
  stream_member_t *m;
  stream_lease_t *l;
  int rc = member_lease(c, topic, group, seq, true, &m, &l, err);
  if (rc < 0) return rc;
  stream_group_t *g = m->group;
  l->due_us = stream__mono_us(c->hub) + (uint64_t)g->ack_wait_ms * 1000;
  base_queue_remove(&l->link);
  base_queue_insert_tail(&g->held, &l->link); /* the latest deadline: the list stays sorted */
  return 0;
}

int stream_conn_group_nack(stream_conn_t *c, const char *topic, const char *group, uint64_t seq, uint32_t delay_ms,
                           stream_err_t *err) {
  if (delay_ms > STREAM_GROUP_WAIT_MAX_MS) {
    if (err) memset(err, 0, sizeof *err);
    stream__errf(err, "delay_ms: must be 0 to %u", STREAM_GROUP_WAIT_MAX_MS);
    return -EINVAL;
  }
  stream_member_t *m;
  stream_lease_t *l;
  int rc = member_lease(c, topic, group, seq, true, &m, &l, err);
  if (rc < 0) return rc;
  m->group->nacks++;
  c->hub->stats.group_nacks++;
  stream__lease_release(c->hub, l, STREAM_LEASE_NACKED, delay_ms);
  stream__group_mark_ready(c->hub, m->group); /* the member has room again */
  return 0;
}
