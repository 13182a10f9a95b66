/* Consumer groups: the group table, membership, persistence and listing.
 *
 * A group enters memory when a connection joins it: loaded from the store (position,
 * epoch, lease duration and pending leases, which become due for redelivery at once) or
 * created at the join's start position. While in memory it pins its topic. Changes
 * (position, leases put or removed) are marked dirty and written by the hub phase in one
 * store_group_save transaction per loop turn (never one commit per event); a failed write
 * stays dirty and is retried by the group timer. A group with no member is forgotten
 * from memory after idle_topic_s once its state is written. Dispatch, leases, acks and
 * dead letters are group_lease.c's job. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"

/* ---- names, lookup ---- */

bool stream__group_name_ok(const char *name) {
  size_t n = 0;
  if (!name) return false;
  for (const char *p = name; *p; p++, n++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-';
    if (!ok || n >= STREAM_GROUP_NAME_MAX) return false;
  }
  return n > 0;
}

static size_t group_key(char *out, const char *topic, const char *name) {
  size_t a = strlen(topic), b = strlen(name);
  memcpy(out, topic, a + 1);
  memcpy(out + a + 1, name, b + 1);
  return a + 1 + b;
}

static stream_group_t *group_find(const stream_hub_t *hub, const char *topic, const char *name) {
  char key[STREAM_TOPIC_MAX + STREAM_GROUP_NAME_MAX + 2];
  if (strlen(topic) > STREAM_TOPIC_MAX || strlen(name) > STREAM_GROUP_NAME_MAX) return NULL;
  size_t klen = group_key(key, topic, name);
  base_map_node_t *n = base_map_get(&hub->groups, key, klen);
  return n ? container_of(n, stream_group_t, node) : NULL;
}

stream_member_t *stream__conn_find_member(const stream_conn_t *c, const char *topic, const char *group) {
  base_queue_t *it;
  base_queue_foreach(it, &c->members) {
    stream_member_t *m = base_queue_data(it, stream_member_t, conn_link);
    if (strcmp(m->group->name, group) == 0 && strcmp(m->group->topic->name, topic) == 0) return m;
  }
  return NULL;
}

void stream__group_mark_ready(stream_hub_t *hub, stream_group_t *g) {
  if (!base_queue_linked(&g->ready_link)) base_queue_insert_tail(&hub->groups_ready, &g->ready_link);
  stream__hub_kick(hub);
}

void stream__group_mark_dirty(stream_hub_t *hub, stream_group_t *g) {
  if (!base_queue_linked(&g->dirty_link)) base_queue_insert_tail(&hub->groups_dirty, &g->dirty_link);
  stream__hub_kick(hub);
}

void stream__groups_topic_committed(stream_hub_t *hub, stream_topic_t *t) {
  base_queue_t *it;
  base_queue_foreach(it, &t->groups) {
    stream_group_t *g = base_queue_data(it, stream_group_t, topic_link);
    if (g->nmembers && !base_queue_linked(&g->ready_link)) stream__group_mark_ready(hub, g);
  }
}

/* ---- lifecycle ---- */

static void group_timer_cb(uv_timer_t *h) {
  stream_hub_t *hub = container_of(h, stream_hub_t, group_timer);
  stream_hub_groups_tick(hub);
}

void stream__groups_init(stream_hub_t *hub) {
  base_map_init(&hub->groups);
  base_queue_init(&hub->groups_ready);
  base_queue_init(&hub->groups_dirty);
  uv_timer_init(hub->loop, &hub->group_timer);
  uv_unref((uv_handle_t *)&hub->group_timer);
}

static stream_group_t *group_new(stream_hub_t *hub, stream_topic_t *t, const char *name) {
  size_t nlen = strlen(name);
  stream_group_t *g = xcalloc(1, sizeof *g + t->name_len + 1 + nlen + 1);
  g->klen = group_key(g->key, t->name, name);
  g->name = g->key + t->name_len + 1;
  base_queue_init(&g->topic_link);
  base_queue_init(&g->ready_link);
  base_queue_init(&g->dirty_link);
  base_queue_init(&g->members);
  base_queue_init(&g->held);
  base_queue_init(&g->waiting);
  base_queue_init(&g->dirty_leases);
  base_map_init(&g->leases);
  g->hub = hub;
  g->topic = t;
  t->pins++;
  if (t->ngroups++ == 0) base_queue_init(&t->groups);
  base_queue_insert_tail(&t->groups, &g->topic_link);
  stream__topic_update_idle(hub, t);
  memcpy(g->epoch, t->epoch, sizeof g->epoch);
  g->empty_since_us = stream__mono_us(hub);
  base_map_insert(&hub->groups, &g->node, g->key, g->klen);
  hub->stats.groups++;
  if (!uv_is_active((uv_handle_t *)&hub->group_timer))
    uv_timer_start(&hub->group_timer, group_timer_cb, STREAM_GROUP_TICK_MS, STREAM_GROUP_TICK_MS);
  return g;
}

/* Frees g and its leases; members must be gone. Unwritten changes are lost: callers flush
 * first. */
static void group_free(stream_hub_t *hub, stream_group_t *g) {
  base_map_iter_t it;
  for (base_map_node_t *n = base_map_first(&g->leases, &it); n; n = base_map_next(&g->leases, &it)) {
    stream_lease_t *l = container_of(n, stream_lease_t, node);
    if (l->dlq) stream_publish_cancel(l->dlq);
    l->dlq = NULL;
    l->stored = false; /* nothing to delete: the rows stay for the next load */
    stream__lease_drop(hub, l);
  }
  base_map_close(&g->leases);
  stream_reader_wait_cancel(&g->fetch_wait);
  base_map_remove(&hub->groups, &g->node);
  base_queue_remove(&g->ready_link);
  base_queue_remove(&g->dirty_link);
  base_queue_remove(&g->topic_link);
  stream_topic_t *t = g->topic;
  t->ngroups--;
  t->pins--;
  stream__topic_update_idle(hub, t);
  hub->stats.groups--;
  free(g->dels);
  free(g);
  if (hub->groups.count == 0) uv_timer_stop(&hub->group_timer);
}

static void member_free(stream_hub_t *hub, stream_member_t *m) {
  stream_group_t *g = m->group;
  while (!base_queue_empty(&m->held)) {
    stream_lease_t *l = base_queue_data(base_queue_head(&m->held), stream_lease_t, member_link);
    stream__lease_release(hub, l, STREAM_LEASE_LEFT, 0);
  }
  base_queue_remove(&m->conn_link);
  base_queue_remove(&m->group_link);
  m->conn->nmembers--;
  g->nmembers--;
  hub->stats.group_members--;
  if (g->nmembers == 0) g->empty_since_us = stream__mono_us(hub);
  free(m);
}

void stream__groups_conn_free(stream_conn_t *c) {
  while (!base_queue_empty(&c->members))
    member_free(c->hub, base_queue_data(base_queue_head(&c->members), stream_member_t, conn_link));
}

/* ---- persistence ---- */

typedef struct load_ctx {
  stream_hub_t *hub;
  stream_group_t *g;
  stream_topic_t *t;
  bool found;
  bool epoch_changed;
} load_ctx_t;

static int load_group_cb(void *ud, const store_group_t *row) {
  load_ctx_t *lc = ud;
  lc->found = true;
  lc->g = group_new(lc->hub, lc->t, row->name);
  stream_group_t *g = lc->g;
  g->stored = true;
  g->ack_wait_ms = row->ack_wait_ms ? row->ack_wait_ms : lc->hub->cfg.group_ack_wait_ms;
  if (strcmp(row->epoch, lc->t->epoch) != 0) {
    /* The topic's history was reset: positions of the old epoch mean nothing now. */
    lc->epoch_changed = true;
    g->next_seq = stream__topic_first(lc->hub, lc->t);
    g->row_dirty = true;
    return 0;
  }
  g->next_seq = row->next_seq;
  if (g->next_seq > lc->t->head_seq + 1) g->next_seq = lc->t->head_seq + 1;
  return 0;
}

static void dels_push(stream_group_t *g, uint64_t seq) {
  if (g->ndels == g->cap_dels) {
    g->cap_dels = g->cap_dels ? g->cap_dels * 2 : 16;
    g->dels = xrealloc(g->dels, g->cap_dels * sizeof *g->dels);
  }
  g->dels[g->ndels++] = seq;
}

static int load_lease_cb(void *ud, const store_group_lease_t *row) {
  load_ctx_t *lc = ud;
  stream_group_t *g = lc->g;
  if (lc->epoch_changed || row->seq >= g->next_seq) {
    dels_push(g, row->seq); /* void now, or beyond the position (never handed out) */
    return 0;
  }
  stream_lease_t *l = stream__lease_new(lc->hub, g, row->seq, row->deliveries);
  l->stored = true;
  l->why = STREAM_LEASE_RESTORED;
  return 0;
}

/* Loads the stored group into memory; -ENOENT when there is none. */
static int group_load(stream_hub_t *hub, stream_topic_t *t, const char *name, stream_group_t **out) {
  load_ctx_t lc = {.hub = hub, .t = t};
  int rc = store_group_load(hub->store, t->name, name, load_group_cb, load_lease_cb, &lc);
  if (rc < 0 && lc.g) {
    group_free(hub, lc.g);
    lc.g = NULL;
  }
  if (rc == -ENOENT) return -ENOENT;
  if (rc < 0) {
    log_error("streams", "group load failed", "{s:s,s:s,s:i}", "topic", t->name, "group", name, "rc", rc);
    return -EIO;
  }
  stream_group_t *g = lc.g;
  if (lc.epoch_changed) log_warn("streams", "group reset: topic epoch changed", "{s:s,s:s}", "topic", t->name, "group", name);
  if (g->row_dirty || g->ndels) stream__group_mark_dirty(hub, g);
  *out = g;
  return 0;
}

typedef struct flush_item {
  stream_group_t *g;
  store_group_lease_t *puts; /* owned */
} flush_item_t;

/* Writes every dirty group in one transaction. */
static int groups_flush(stream_hub_t *hub) {
  if (base_queue_empty(&hub->groups_dirty)) return 0;
  size_t n = 0;
  base_queue_t *it;
  base_queue_foreach(it, &hub->groups_dirty) n++;
  store_group_write_t *w = xcalloc(n, sizeof *w);
  flush_item_t *items = xcalloc(n, sizeof *items);
  size_t i = 0;
  base_queue_foreach(it, &hub->groups_dirty) {
    stream_group_t *g = base_queue_data(it, stream_group_t, dirty_link);
    size_t np = 0;
    base_queue_t *lt;
    base_queue_foreach(lt, &g->dirty_leases) np++;
    store_group_lease_t *puts = np ? xmalloc(np * sizeof *puts) : NULL;
    size_t k = 0;
    base_queue_foreach(lt, &g->dirty_leases) {
      stream_lease_t *l = base_queue_data(lt, stream_lease_t, dirty_link);
      puts[k++] = (store_group_lease_t){.seq = l->seq, .deliveries = l->deliveries};
    }
    items[i] = (flush_item_t){.g = g, .puts = puts};
    w[i] = (store_group_write_t){
        .group = {.topic = g->topic->name, .name = g->name, .epoch = g->epoch, .next_seq = g->next_seq,
                  .ack_wait_ms = g->ack_wait_ms},
        .del = g->dels,
        .ndel = g->ndels,
        .put = puts,
        .nput = np};
    i++;
  }
  int rc = store_group_save(hub->store, w, n);
  for (i = 0; i < n; i++) {
    stream_group_t *g = items[i].g;
    if (rc == 0) {
      g->row_dirty = false;
      g->stored = true;
      g->ndels = 0;
      while (!base_queue_empty(&g->dirty_leases)) {
        stream_lease_t *l = base_queue_data(base_queue_head(&g->dirty_leases), stream_lease_t, dirty_link);
        base_queue_remove(&l->dirty_link);
        l->stored = true;
      }
      base_queue_remove(&g->dirty_link);
    }
    free(items[i].puts);
  }
  free(items);
  free(w);
  if (rc < 0) {
    hub->stats.group_flush_failures++;
    if (!hub->groups_flush_failed) log_error("streams", "group state write failed", "{s:i,s:i}", "rc", rc, "groups", (int)n);
  }
  hub->groups_flush_failed = rc < 0;
  return rc;
}

/* ---- the hub phase ---- */

void stream__groups_run(stream_hub_t *hub) {
  uint32_t budget = hub->cfg.router_budget;
  base_queue_t list;
  base_queue_init(&list);
  /* Groups marked ready during this run (acks cannot happen here, but dead letters and
   * releases can) wait for the next turn. */
  while (!base_queue_empty(&hub->groups_ready)) {
    base_queue_t *q = base_queue_head(&hub->groups_ready);
    base_queue_remove(q);
    base_queue_insert_tail(&list, q);
  }
  while (!base_queue_empty(&list)) {
    stream_group_t *g = base_queue_data(base_queue_head(&list), stream_group_t, ready_link);
    base_queue_remove(&g->ready_link);
    if (budget == 0) {
      stream__group_mark_ready(hub, g);
      continue;
    }
    stream__group_dispatch(hub, g, &budget);
  }
  if (!hub->groups_flush_failed) (void)groups_flush(hub);
}

bool stream__groups_busy(const stream_hub_t *hub) {
  return !base_queue_empty(&hub->groups_ready) || (!hub->groups_flush_failed && !base_queue_empty(&hub->groups_dirty));
}

/* Whether a waiting lease is due and can go somewhere: to a member, or (without
 * members) to the dead-letter topic. */
static bool waiting_due(const stream_hub_t *hub, const stream_group_t *g, uint64_t now) {
  base_queue_t *it;
  base_queue_foreach(it, &g->waiting) {
    const stream_lease_t *l = base_queue_data(it, stream_lease_t, link);
    if (l->due_us > now) return false;
    if (g->nmembers) return true;
    if (hub->cfg.group_max_deliveries && l->deliveries >= hub->cfg.group_max_deliveries) return true;
  }
  return false;
}

size_t stream_hub_groups_tick(stream_hub_t *hub) {
  if (hub->closing) return 0;
  uint64_t now = stream__mono_us(hub);
  uint64_t idle_us = (uint64_t)hub->cfg.idle_topic_s * 1000000;
  size_t expired = 0;
  if (hub->groups_flush_failed) (void)groups_flush(hub);
  base_map_iter_t it;
  for (base_map_node_t *n = base_map_first(&hub->groups, &it); n; n = base_map_next(&hub->groups, &it)) {
    stream_group_t *g = container_of(n, stream_group_t, node);
    expired += stream__group_expire(hub, g, now);
    if (waiting_due(hub, g, now)) stream__group_mark_ready(hub, g);
    if (g->nmembers == 0 && g->ndead == 0 && !base_queue_linked(&g->dirty_link) &&
        !base_queue_linked(&g->ready_link) && now - g->empty_since_us >= idle_us)
      group_free(hub, g);
  }
  return expired;
}

void stream__groups_close(stream_hub_t *hub) {
  (void)groups_flush(hub);
  base_map_iter_t it;
  for (base_map_node_t *n = base_map_first(&hub->groups, &it); n; n = base_map_next(&hub->groups, &it)) {
    stream_group_t *g = container_of(n, stream_group_t, node);
    while (!base_queue_empty(&g->members)) {
      stream_member_t *m = base_queue_data(base_queue_head(&g->members), stream_member_t, group_link);
      member_free(hub, m);
    }
    group_free(hub, g);
  }
  base_map_close(&hub->groups);
}

/* ---- joining and leaving ---- */

static stream_frame_t *joined_frame(stream_hub_t *hub, const stream_group_t *g, const stream_member_t *m) {
  const stream_topic_t *t = g->topic;
  json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "op", "subscribed", "topic", t->name, "group",
                        g->name, "epoch", t->epoch, "head", (json_int_t)t->head_seq, "position",
                        (json_int_t)(g->next_seq - 1), "pending", (json_int_t)g->leases.count, "ack_wait_ms",
                        (json_int_t)g->ack_wait_ms, "max_inflight", (json_int_t)m->max_inflight);
  stream_frame_t *f = stream__frame_control(&hub->frames, hub->cfg.frame_headroom, "subscribed", t->name, o);
  json_decref(o);
  return f;
}

typedef struct count_ctx {
  size_t n;
  const stream_hub_t *hub;
} count_ctx_t;

static int count_stored_cb(void *ud, const store_group_t *row) {
  count_ctx_t *cc = ud;
  /* Stored groups in memory are counted by the caller's walk over the topic's groups. */
  if (!group_find(cc->hub, row->topic, row->name)) cc->n++;
  return 0;
}

/* Where a new group starts; -EINVAL with err for a position beyond the head. */
static int start_seq(stream_hub_t *hub, stream_topic_t *t, const stream_position_t *from, uint64_t *next,
                     stream_err_t *err) {
  if (!from || from->live) {
    *next = t->head_seq + 1;
  } else if (from->epoch && strcmp(from->epoch, t->epoch) != 0) {
    *next = stream__topic_first(hub, t);
  } else if (from->seq > t->head_seq) {
    stream__errf(err, "after.seq: %llu is beyond the head %llu of epoch %s", (unsigned long long)from->seq,
                 (unsigned long long)t->head_seq, t->epoch);
    return -EINVAL;
  } else {
    *next = from->seq + 1;
  }
  return 0;
}

/* The group in memory, loaded or created. */
static int group_get(stream_hub_t *hub, stream_topic_t *t, const stream_group_join_t *j, stream_group_t **out,
                     stream_err_t *err) {
  stream_group_t *g = group_find(hub, t->name, j->group);
  if (g) {
    *out = g;
    return 0;
  }
  int rc = group_load(hub, t, j->group, &g);
  if (rc == 0) {
    *out = g;
    return 0;
  }
  if (rc != -ENOENT) {
    stream__errf(err, "group: store unavailable");
    return rc;
  }
  uint64_t next;
  rc = start_seq(hub, t, j->start, &next, err);
  if (rc < 0) return rc;
  count_ctx_t cc = {.hub = hub};
  rc = store_group_list(hub->store, t->name, count_stored_cb, &cc);
  if (rc < 0) {
    stream__errf(err, "group: store unavailable");
    return -EIO;
  }
  if (cc.n + t->ngroups >= hub->cfg.groups_per_topic) {
    stream__errf(err, "group: topic already has %u groups", hub->cfg.groups_per_topic);
    return -EMLINK;
  }
  g = group_new(hub, t, j->group);
  g->next_seq = next;
  g->ack_wait_ms = j->ack_wait_ms ? j->ack_wait_ms : hub->cfg.group_ack_wait_ms;
  g->row_dirty = true;
  stream__group_mark_dirty(hub, g);
  *out = g;
  return 0;
}

int stream_conn_group_join(stream_conn_t *c, const char *topic, const stream_group_join_t *j, stream_err_t *err) {
  if (err) memset(err, 0, sizeof *err);
  if (!c || !j) return -EINVAL;
  stream_hub_t *hub = c->hub;
  size_t tenant_len;
  int rc = stream_topic_validate(topic, &tenant_len, err);
  if (rc < 0) return rc;
  if (!stream__group_name_ok(j->group)) {
    stream__errf(err, "group: must match [A-Za-z0-9_.-]{1,%d}", STREAM_GROUP_NAME_MAX);
    return -EINVAL;
  }
  uint32_t inflight = j->max_inflight ? j->max_inflight : hub->cfg.group_max_inflight;
  if (inflight > hub->cfg.group_max_inflight_limit) {
    stream__errf(err, "max_inflight: must be 1 to %u", hub->cfg.group_max_inflight_limit);
    return -EINVAL;
  }
  if (j->ack_wait_ms > STREAM_GROUP_WAIT_MAX_MS) {
    stream__errf(err, "ack_wait_ms: must be 1 to %u", STREAM_GROUP_WAIT_MAX_MS);
    return -EINVAL;
  }
  if (!stream__conn_may(c, STREAM_ACTION_SUBSCRIBE, topic, tenant_len)) {
    stream__errf(err, "topic: not allowed to subscribe");
    return -EACCES;
  }
  if (c->close_reason) return -ENOBUFS;
  stream_member_t *m = stream__conn_find_member(c, topic, j->group);
  if (m) { /* already a member: only max_inflight may change */
    m->max_inflight = inflight;
    stream__group_mark_ready(hub, m->group);
    return stream__conn_control(c, joined_frame(hub, m->group, m), false);
  }
  if (c->nsubs + c->nmembers >= hub->cfg.max_subs_per_conn) {
    stream__errf(err, "group: more than %u subscriptions", hub->cfg.max_subs_per_conn);
    return -EMLINK;
  }
  stream_topic_t *t;
  rc = stream__topic_get(hub, topic, tenant_len, &t);
  if (rc < 0) {
    stream__errf(err, "topic: store unavailable");
    return rc;
  }
  stream_group_t *g;
  rc = group_get(hub, t, j, &g, err);
  if (rc < 0) {
    stream__topic_update_idle(hub, t);
    return rc;
  }
  if (g->nmembers >= hub->cfg.group_members_max) {
    stream__errf(err, "group: %s already has %u members", g->name, hub->cfg.group_members_max);
    return -EMLINK;
  }
  m = xcalloc(1, sizeof *m);
  base_queue_init(&m->held);
  base_queue_init(&m->outq);
  m->group = g;
  m->conn = c;
  m->id = ++hub->member_ids;
  m->max_inflight = inflight;
  base_queue_insert_tail(&c->members, &m->conn_link);
  base_queue_insert_tail(&g->members, &m->group_link);
  c->nmembers++;
  g->nmembers++;
  hub->stats.group_members++;
  stream__group_mark_ready(hub, g);
  return stream__conn_control(c, joined_frame(hub, g, m), false);
}

int stream_conn_group_leave(stream_conn_t *c, const char *topic, const char *group) {
  if (!c || !topic || !group) return -EINVAL;
  stream_member_t *m = stream__conn_find_member(c, topic, group);
  if (!m) return -ENOENT;
  member_free(c->hub, m);
  return 0;
}

/* ---- listing ---- */

static void info_fill(const stream_hub_t *hub, const stream_group_t *g, stream_group_info_t *info) {
  (void)hub;
  uint64_t inflight = 0;
  base_queue_t *it;
  base_queue_foreach(it, &g->members) inflight += base_queue_data(it, stream_member_t, group_link)->inflight;
  *info = (stream_group_info_t){.topic = g->topic->name, .group = g->name, .epoch = g->epoch,
                                .head = g->topic->head_seq, .position = g->next_seq - 1,
                                .pending = g->leases.count, .inflight = inflight, .members = g->nmembers,
                                .ack_wait_ms = g->ack_wait_ms, .loaded = true, .deliveries = g->deliveries,
                                .redeliveries = g->redeliveries, .acks = g->acks, .nacks = g->nacks,
                                .dead_lettered = g->dead_lettered, .skipped = g->skipped};
}

int stream_hub_groups_foreach(stream_hub_t *hub, stream_group_cb cb, void *ud) {
  base_map_iter_t it;
  for (base_map_node_t *n = base_map_first(&hub->groups, &it); n; n = base_map_next(&hub->groups, &it)) {
    stream_group_info_t info;
    info_fill(hub, container_of(n, stream_group_t, node), &info);
    int rc = cb(ud, &info);
    if (rc) return rc;
  }
  return 0;
}

/* Stored rows of a topic merged with the groups in memory, by name. */
typedef struct list_entry {
  char name[STREAM_GROUP_NAME_MAX + 1];
  char epoch[STORE_EPOCH_LEN + 1];
  uint64_t next_seq, pending;
  uint32_t ack_wait_ms;
} list_entry_t;

typedef struct list_ctx {
  list_entry_t *rows; /* owned */
  size_t n, cap;
} list_ctx_t;

static int list_row_cb(void *ud, const store_group_t *row) {
  list_ctx_t *lc = ud;
  if (lc->n == lc->cap) {
    lc->cap = lc->cap ? lc->cap * 2 : 8;
    lc->rows = xrealloc(lc->rows, lc->cap * sizeof *lc->rows);
  }
  list_entry_t *e = &lc->rows[lc->n++];
  snprintf(e->name, sizeof e->name, "%s", row->name);
  snprintf(e->epoch, sizeof e->epoch, "%s", row->epoch);
  e->next_seq = row->next_seq;
  e->pending = row->pending;
  e->ack_wait_ms = row->ack_wait_ms;
  return 0;
}

static int list_name_cmp(const void *a, const void *b) {
  return strcmp(((const list_entry_t *)a)->name, ((const list_entry_t *)b)->name);
}

int stream_list_groups(stream_hub_t *hub, const char *topic, stream_group_cb cb, void *ud) {
  if (!hub || !cb) return -EINVAL;
  if (stream_topic_validate(topic, NULL, NULL) < 0) return -EINVAL;
  list_ctx_t lc = {0};
  int rc = store_group_list(hub->store, topic, list_row_cb, &lc);
  if (rc < 0) {
    free(lc.rows);
    return -EIO;
  }
  /* Groups in memory that were never written yet are listed too. */
  stream_topic_t *t = stream__topic_find(hub, topic);
  if (t && t->ngroups) {
    base_queue_t *it;
    base_queue_foreach(it, &t->groups) {
      stream_group_t *g = base_queue_data(it, stream_group_t, topic_link);
      if (g->stored) continue;
      store_group_t row = {.topic = topic, .name = g->name, .epoch = g->epoch, .next_seq = g->next_seq};
      list_row_cb(&lc, &row);
    }
  }
  if (lc.n) qsort(lc.rows, lc.n, sizeof *lc.rows, list_name_cmp);
  uint64_t head = 0;
  if (t) {
    head = t->head_seq;
  } else {
    store_topic_t st;
    if (lc.n && store_topic_lookup(hub->store, topic, &st) == 0) head = st.head_seq;
  }
  for (size_t i = 0; i < lc.n && rc == 0; i++) {
    list_entry_t *e = &lc.rows[i];
    stream_group_t *g = group_find(hub, topic, e->name);
    stream_group_info_t info;
    if (g) {
      info_fill(hub, g, &info);
    } else {
      info = (stream_group_info_t){.topic = topic, .group = e->name, .epoch = e->epoch, .head = head,
                                   .position = e->next_seq - 1, .pending = e->pending,
                                   .ack_wait_ms = e->ack_wait_ms};
    }
    rc = cb(ud, &info);
  }
  free(lc.rows);
  return rc;
}

int stream_group_delete(stream_hub_t *hub, const char *topic, const char *group) {
  if (!hub || stream_topic_validate(topic, NULL, NULL) < 0 || !stream__group_name_ok(group)) return -EINVAL;
  stream_group_t *g = group_find(hub, topic, group);
  bool was_stored = !g || g->stored;
  if (g) {
    if (g->nmembers || g->ndead) return -EBUSY;
    base_queue_remove(&g->dirty_link); /* what it would have written goes with it */
    group_free(hub, g);
  }
  int rc = store_group_delete(hub->store, topic, group);
  if (rc == -ENOENT) return was_stored ? -ENOENT : 0;
  return rc < 0 ? (rc == -EBUSY ? -EBUSY : -EIO) : 0;
}
