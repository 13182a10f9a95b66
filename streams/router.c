/* The router stage: after a commit, wake the subscribers of each touched topic.
 *
 * Separate from publish. A topic with new committed events (or ephemerals) is queued on
 * its partition's route queue; once per loop turn the router walks the queued topics'
 * subscriber lists, at most router_budget subscriptions in total, and continues on the
 * next turn where it stopped. The position of a walk is a marker node inside the
 * subscriber list, so subscriptions may come and go during a walk. Reliable events are
 * not copied anywhere: a visit only wakes the connection, whose cursor reads the ring.
 * Ephemeral frames of the walk are offered to each connection's latest-wins slots.
 * Commits during a walk mark it dirty, and the topic is walked again. Partitions are the
 * unit of work here so that router threads can later own disjoint sets of them. */
#include <string.h>

#include "internal.h"

void stream__route_schedule(stream_hub_t *hub, stream_topic_t *t) {
  if (t->ngroups) stream__groups_topic_committed(hub, t); /* groups dispatch on their own */
  if (base_queue_linked(&t->route_marker)) t->route_dirty = true;
  if (!base_queue_linked(&t->route_link)) {
    if (t->nsubs == 0 && t->n_eph_pending == 0) return; /* nobody to wake */
    base_queue_insert_tail(&hub->parts[t->partition].route, &t->route_link);
    stream__topic_update_idle(hub, t);
  }
  stream__hub_kick(hub);
}

void stream__route_ephemeral(stream_hub_t *hub, stream_topic_t *t, stream_frame_t *f) {
  for (uint32_t i = 0; i < t->n_eph_pending; i++) {
    const char *ty = t->eph_pending[i]->type;
    if ((ty == NULL && f->type == NULL) || (ty && f->type && strcmp(ty, f->type) == 0)) {
      stream_frame_unref(&t->eph_pending[i]); /* coalesced: latest wins */
      hub->stats.ephemeral_drops++;
      t->eph_pending[i] = f;
      stream__route_schedule(hub, t);
      return;
    }
  }
  if (t->n_eph_pending == STREAM_EPH_TOPIC_MAX) {
    hub->stats.ephemeral_drops++;
    stream_frame_unref(&f);
    return;
  }
  t->eph_pending[t->n_eph_pending++] = f;
  stream__route_schedule(hub, t);
}

static void walk_start(stream_topic_t *t) {
  base_queue_insert_head(&t->subs, &t->route_marker);
  for (uint32_t i = 0; i < t->n_eph_pending; i++) t->eph_walk[i] = t->eph_pending[i];
  t->n_eph_walk = t->n_eph_pending;
  t->n_eph_pending = 0;
  t->route_dirty = false;
}

static void walk_end(stream_topic_t *t) {
  base_queue_remove(&t->route_marker);
  for (uint32_t i = 0; i < t->n_eph_walk; i++) stream_frame_unref(&t->eph_walk[i]);
  t->n_eph_walk = 0;
}

static void visit(stream_topic_t *t, stream_sub_t *s) {
  stream_conn_t *c = s->conn;
  for (uint32_t i = 0; i < t->n_eph_walk; i++) stream__conn_offer_ephemeral(c, s, t->eph_walk[i]);
  if (c->neph > 0 || (!c->draining && s->next_seq <= t->head_seq)) stream__conn_wake(c);
}

/* Returns true when the topic is done (no walk needed any more). */
static bool walk(stream_topic_t *t, uint32_t *budget) {
  for (;;) {
    if (!base_queue_linked(&t->route_marker)) walk_start(t);
    while (*budget > 0) {
      base_queue_t *it = t->route_marker.next;
      if (it == &t->subs) break;
      base_queue_remove(&t->route_marker);
      base_queue_insert_head(it, &t->route_marker); /* i.e. just after it */
      (*budget)--;
      visit(t, base_queue_data(it, stream_sub_t, topic_link));
    }
    if (t->route_marker.next != &t->subs) return false; /* budget ran out mid-walk */
    walk_end(t);
    if (!t->route_dirty && t->n_eph_pending == 0) return true;
    if (*budget == 0) return false;
  }
}

bool stream__router_run(stream_hub_t *hub) {
  uint32_t budget = hub->cfg.router_budget;
  uint32_t nparts = hub->cfg.partitions;
  for (uint32_t k = 0; k < nparts && budget > 0; k++) {
    stream_partition_t *part = &hub->parts[hub->route_rr];
    while (budget > 0 && !base_queue_empty(&part->route)) {
      stream_topic_t *t = base_queue_data(base_queue_head(&part->route), stream_topic_t, route_link);
      if (!walk(t, &budget)) break;
      base_queue_remove(&t->route_link);
      stream__topic_update_idle(hub, t);
    }
    if (budget > 0) hub->route_rr = (hub->route_rr + 1) % nparts;
  }
  for (uint32_t i = 0; i < nparts; i++)
    if (!base_queue_empty(&hub->parts[i].route)) return true;
  return false;
}
