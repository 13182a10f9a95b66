/* Connections: one per WebSocket or SSE client, created by the transport.
 *
 * Owns a connection's principal (tenant, scopes, the transport's finer room check), its
 * subscriptions (cursors: a next seq per topic, never a copy of the data), a small bounded
 * queue of control frames (replies, errors, gaps for epochs, drain), the ephemeral slots
 * (latest-wins per subscription and type, bounded) and the publishes it has in flight
 * (cancelled when it goes). A connection whose control queue would overflow is marked for
 * closing with a reason instead of growing. Wakes are deferred to the hub's loop phase, so
 * the transport's wake callback never runs inside a stream_conn_* call. Pulling frames is
 * cursor.c's job; client messages are protocol.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "fastpath.h"
#include "internal.h"

int stream_conn_new(stream_hub_t *hub, const stream_conn_ops_t *ops, void *ud, const stream_principal_t *who,
                    stream_conn_t **out) {
  if (!hub || !ops || !who || !out) return -EINVAL;
  stream_conn_t *c = xcalloc(1, sizeof *c);
  c->hub = hub;
  c->ops = *ops;
  c->ud = ud;
  c->tenant = who->tenant ? xstrdup(who->tenant) : NULL;
  c->scopes = who->scopes;
  c->allows = who->allows;
  c->allows_ud = who->allows_ud;
  base_queue_init(&c->subs);
  base_queue_init(&c->pubs);
  base_queue_init(&c->members);
  base_queue_init(&c->wake_link);
  hub->nconns++;
  *out = c;
  return 0;
}

static void eph_remove_at(stream_conn_t *c, uint32_t i) {
  stream_frame_unref(&c->eph[i].frame);
  c->eph[i] = c->eph[--c->neph];
}

static void sub_free(stream_conn_t *c, stream_sub_t *s) {
  stream_hub_t *hub = c->hub;
  for (uint32_t i = 0; i < c->neph;) {
    if (c->eph[i].sub == s) eph_remove_at(c, i);
    else i++;
  }
  base_queue_remove(&s->topic_link);
  base_queue_remove(&s->conn_link);
  s->topic->nsubs--;
  c->nsubs--;
  hub->stats.subscriptions--;
  stream__topic_update_idle(hub, s->topic);
  free(s);
}

void stream_conn_free(stream_conn_t *c) {
  if (!c) return;
  stream__groups_conn_free(c); /* held group deliveries go to other members at once */
  while (!base_queue_empty(&c->subs)) sub_free(c, base_queue_data(base_queue_head(&c->subs), stream_sub_t, conn_link));
  while (!base_queue_empty(&c->pubs)) {
    stream_pub_t *p = base_queue_data(base_queue_head(&c->pubs), stream_pub_t, conn_link);
    base_queue_remove(&p->conn_link);
    c->npubs--;
    p->conn = NULL;
    p->cb = NULL;
  }
  while (c->ctrl_count) {
    stream_frame_unref(&c->ctrl[c->ctrl_head]);
    c->ctrl_head = (c->ctrl_head + 1) % c->ctrl_cap;
    c->ctrl_count--;
  }
  while (c->neph) eph_remove_at(c, c->neph - 1);
  base_queue_remove(&c->wake_link);
  stream__catchup_forget(c);
  c->hub->nconns--;
  free(c->ctrl);
  free(c->eph);
  free(c->tenant);
  free(c);
}

void stream__conn_wake(stream_conn_t *c) {
  if (c->woken) return;
  c->woken = true;
  base_queue_insert_tail(&c->hub->wakes, &c->wake_link);
  stream__hub_kick(c->hub);
}

void stream__wake_run(stream_hub_t *hub) {
  while (!base_queue_empty(&hub->wakes)) {
    stream_conn_t *c = base_queue_data(base_queue_head(&hub->wakes), stream_conn_t, wake_link);
    base_queue_remove(&c->wake_link);
    if (c->ops.wake) c->ops.wake(c, c->ud); /* may free c: it is no longer in any list */
  }
}

int stream__conn_control(stream_conn_t *c, stream_frame_t *f, bool force) {
  uint32_t max = c->hub->cfg.control_queue_max;
  if (c->close_reason || (c->ctrl_count >= max && !force)) {
    stream_frame_unref(&f);
    if (!c->close_reason) {
      c->close_reason = "control queue overflow";
      c->hub->stats.conns_closed_overflow++;
    }
    stream__conn_wake(c);
    return -ENOBUFS;
  }
  if (c->ctrl_count == c->ctrl_cap) { /* grow the ring: 4, 8, ... up to max + 1 */
    uint32_t cap = c->ctrl_cap ? c->ctrl_cap * 2 : CTRL_RING_MIN;
    if (cap > max + 1) cap = max + 1;
    stream_frame_t **nq = xcalloc(cap, sizeof *nq);
    for (uint32_t i = 0; i < c->ctrl_count; i++) nq[i] = c->ctrl[(c->ctrl_head + i) % c->ctrl_cap];
    free(c->ctrl);
    c->ctrl = nq;
    c->ctrl_cap = cap;
    c->ctrl_head = 0;
  }
  c->ctrl[(c->ctrl_head + c->ctrl_count) % c->ctrl_cap] = f;
  c->ctrl_count++;
  stream__conn_wake(c);
  return 0;
}

void stream__conn_offer_ephemeral(stream_conn_t *c, stream_sub_t *s, stream_frame_t *f) {
  stream_hub_t *hub = c->hub;
  if (c->draining || c->close_reason) return;
  /* Behind on reliable events: the ephemeral would be stale by the time it is read. */
  if (s->topic->head_seq + 1 - s->next_seq > hub->cfg.ephemeral_lag_max ||
      c->ctrl_count > hub->cfg.control_queue_max / 2) {
    hub->stats.ephemeral_drops++;
    return;
  }
  for (uint32_t i = 0; i < c->neph; i++) {
    stream_eph_slot_t *sl = &c->eph[i];
    if (sl->sub != s) continue;
    const char *a = sl->frame->type, *b = f->type;
    if ((a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0)) {
      stream_frame_unref(&sl->frame); /* latest wins */
      hub->stats.ephemeral_drops++;
      sl->frame = stream_frame_ref(f);
      return;
    }
  }
  if (c->neph >= hub->cfg.ephemeral_slots_max) {
    hub->stats.ephemeral_drops++;
    return;
  }
  if (!c->eph) c->eph = xcalloc(hub->cfg.ephemeral_slots_max, sizeof *c->eph);
  c->eph[c->neph].sub = s;
  c->eph[c->neph].frame = stream_frame_ref(f);
  c->neph++;
}

bool stream__conn_may(const stream_conn_t *c, stream_action_t action, const char *topic, size_t tenant_len) {
  unsigned need = action == STREAM_ACTION_SUBSCRIBE ? STREAM_SCOPE_SUBSCRIBE : STREAM_SCOPE_PUBLISH;
  if (!(c->scopes & need)) return false;
  if (c->tenant && (strlen(c->tenant) != tenant_len || memcmp(c->tenant, topic, tenant_len) != 0)) return false;
  if (c->allows) {
    char tenant[65];
    memcpy(tenant, topic, tenant_len);
    tenant[tenant_len] = '\0';
    if (!c->allows(c->allows_ud, action, tenant, topic + tenant_len + 1)) return false;
  }
  return true;
}

stream_sub_t *stream__conn_find_sub(const stream_conn_t *c, const char *topic) {
  base_queue_t *it;
  base_queue_foreach(it, &c->subs) {
    stream_sub_t *s = base_queue_data(it, stream_sub_t, conn_link);
    if (strcmp(s->topic->name, topic) == 0) return s;
  }
  return NULL;
}

static stream_frame_t *subscribed_frame(stream_hub_t *hub, const stream_topic_t *t) {
  json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "op", "subscribed", "topic", t->name, "epoch", t->epoch, "head",
                        (json_int_t)t->head_seq);
  stream_frame_t *f = stream__frame_control(&hub->frames, hub->cfg.frame_headroom, "subscribed", t->name, o);
  json_decref(o);
  return f;
}

static stream_frame_t *epoch_gap_frame(stream_hub_t *hub, const stream_topic_t *t, uint64_t first) {
  json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s}", "op", "gap", "topic", t->name, "from", (json_int_t)1, "to",
                        (json_int_t)(first - 1), "reason", "epoch", "epoch", t->epoch);
  stream_frame_t *f = stream__frame_control(&hub->frames, hub->cfg.frame_headroom, "gap", t->name, o);
  json_decref(o);
  return f;
}

int stream_conn_subscribe(stream_conn_t *c, const char *topic, const stream_position_t *from, stream_err_t *err) {
  stream_hub_t *hub = c->hub;
  if (err) memset(err, 0, sizeof *err);
  size_t tenant_len;
  int rc = stream_topic_validate(topic, &tenant_len, err);
  if (rc < 0) return rc;
  if (!stream__conn_may(c, STREAM_ACTION_SUBSCRIBE, topic, tenant_len)) {
    stream__errf(err, "topic: not allowed to subscribe");
    return -EACCES;
  }
  if (c->close_reason) return -ENOBUFS;
  stream_sub_t *s = stream__conn_find_sub(c, topic);
  if (!s && c->nsubs + c->nmembers >= hub->cfg.max_subs_per_conn) {
    stream__errf(err, "topic: more than %u subscriptions", hub->cfg.max_subs_per_conn);
    return -EMLINK;
  }
  stream_topic_t *t;
  rc = stream__topic_get(hub, topic, tenant_len, &t);
  if (rc < 0) {
    stream__errf(err, "topic: store unavailable");
    return rc;
  }
  bool epoch_gap = false;
  uint64_t next;
  if (!from || from->live) {
    next = t->head_seq + 1;
  } else if (from->epoch && strcmp(from->epoch, t->epoch) != 0) {
    epoch_gap = true;
    next = 1;
  } else if (from->seq > t->head_seq && from->beyond_is_epoch) {
    /* seqs are dense and never reused in an epoch: the position is from another one */
    epoch_gap = true;
    next = 1;
  } else if (from->seq > t->head_seq) {
    stream__errf(err, "after.seq: %llu is beyond the head %llu of epoch %s", (unsigned long long)from->seq,
                 (unsigned long long)t->head_seq, t->epoch);
    stream__topic_update_idle(hub, t);
    return -EINVAL;
  } else {
    next = from->seq + 1;
  }
  if (!s) {
    s = xcalloc(1, sizeof *s);
    s->conn = c;
    s->topic = t;
    base_queue_insert_tail(&t->subs, &s->topic_link);
    base_queue_insert_tail(&c->subs, &s->conn_link);
    t->nsubs++;
    c->nsubs++;
    hub->stats.subscriptions++;
    stream__topic_update_idle(hub, t);
  }
  s->next_seq = next;
  rc = stream__conn_control(c, subscribed_frame(hub, t), false);
  if (rc == 0 && epoch_gap) {
    /* The client's positions are void; what the new epoch no longer keeps is named here,
     * and replay starts at its first retained event. */
    uint64_t first = stream__topic_first(hub, t);
    s->next_seq = first;
    hub->stats.gaps_sent++;
    hub->stats.gaps_epoch++;
    rc = stream__conn_control(c, epoch_gap_frame(hub, t, first), false);
  }
  return rc;
}

int stream_conn_unsubscribe(stream_conn_t *c, const char *topic) {
  stream_sub_t *s = stream__conn_find_sub(c, topic);
  if (!s) return -ENOENT;
  sub_free(c, s);
  return 0;
}

const char *stream__error_code(int status) {
  switch (status) {
  case -EINVAL: return "bad_request";
  case -EACCES:
  case -EPERM: return "forbidden";
  case -ENOENT: return "not_found";
  case -EAGAIN: return "rate_limited";
  case -EMSGSIZE: return "too_large";
  case -EBUSY: return "overloaded";
  case -ESHUTDOWN: return "shutting_down";
  case -EMLINK: return "too_many_subscriptions";
  default: return "unavailable";
  }
}

/* The error and puback frames are frequent under load (every publish, every refusal), so
 * they are written by hand: the same bytes as jansson's compact dump of
 * {"op","ref"?,"code","message","topic"?,"retry_after_ms"?} and
 * {"op","ref"?,"topic","seq","epoch","duplicate"} (tests/unit/streams/test_protocol_fast.c).
 * ref is valid UTF-8 (it was read from a JSON message) and topic and epoch are ASCII. */
int stream__conn_error(stream_conn_t *c, const char *ref, int status, const char *topic, const char *message,
                       uint32_t retry_after_ms) {
  stream_hub_t *hub = c->hub;
  const char *code = stream__error_code(status);
  const char *text = message && *message ? message : code;
  /* jansson's json_string refuses invalid UTF-8, and the member was then left out. */
  bool has_text = stream__utf8_valid(text, strlen(text));
  size_t len = sizeof("{\"op\":\"error\",\"code\":}") - 1 + stream__json_escape_len(code) +
               (ref ? sizeof(",\"ref\":") - 1 + stream__json_escape_len(ref) : 0) +
               (has_text ? sizeof(",\"message\":") - 1 + stream__json_escape_len(text) : 0) +
               (topic ? sizeof(",\"topic\":") - 1 + stream__json_escape_len(topic) : 0) +
               (retry_after_ms ? sizeof(",\"retry_after_ms\":") - 1 + stream__cw_int_len(retry_after_ms) : 0);
  stream_cw_t w;
  stream_frame_t *f = stream__frame_control_alloc(&hub->frames, hub->cfg.frame_headroom, "error", topic, len, &w);
  STREAM_CW_LIT(&w, "{\"op\":\"error\"");
  if (ref) {
    STREAM_CW_LIT(&w, ",\"ref\":");
    stream__cw_str(&w, ref);
  }
  STREAM_CW_LIT(&w, ",\"code\":");
  stream__cw_str(&w, code);
  if (has_text) {
    STREAM_CW_LIT(&w, ",\"message\":");
    stream__cw_str(&w, text);
  }
  if (topic) {
    STREAM_CW_LIT(&w, ",\"topic\":");
    stream__cw_str(&w, topic);
  }
  if (retry_after_ms) {
    STREAM_CW_LIT(&w, ",\"retry_after_ms\":");
    stream__cw_int(&w, retry_after_ms);
  }
  STREAM_CW_LIT(&w, "}");
  return stream__conn_control(c, f, false);
}

void stream__conn_pub_done(stream_conn_t *c, stream_pub_t *p, const stream_ack_t *ack) {
  stream_hub_t *hub = c->hub;
  if (p->status < 0) {
    (void)stream__conn_error(c, p->ref, p->status, ack->topic,
                             p->status == -EIO ? "commit failed; nothing was published" : NULL, 0);
    return;
  }
  stream_jstr_t ref_j, topic_j, epoch_j;
  size_t len = sizeof("{\"op\":\"puback\",\"topic\":,\"seq\":,\"epoch\":,\"duplicate\":}") - 1 +
               (p->ref ? sizeof(",\"ref\":") - 1 + stream__json_escape_measure(&ref_j, p->ref) : 0) +
               stream__json_escape_measure(&topic_j, ack->topic) +
               (ack->ephemeral ? 4 : stream__cw_int_len((int64_t)ack->seq)) +
               stream__json_escape_measure(&epoch_j, ack->epoch) + (ack->duplicate ? 4 : 5);
  stream_cw_t w;
  stream_frame_t *f = stream__frame_control_alloc(&hub->frames, hub->cfg.frame_headroom, "puback", ack->topic, len, &w);
  STREAM_CW_LIT(&w, "{\"op\":\"puback\"");
  if (p->ref) {
    STREAM_CW_LIT(&w, ",\"ref\":");
    stream__cw_jstr(&w, &ref_j);
  }
  STREAM_CW_LIT(&w, ",\"topic\":");
  stream__cw_jstr(&w, &topic_j);
  STREAM_CW_LIT(&w, ",\"seq\":");
  if (ack->ephemeral) STREAM_CW_LIT(&w, "null");
  else stream__cw_int(&w, (int64_t)ack->seq);
  STREAM_CW_LIT(&w, ",\"epoch\":");
  stream__cw_jstr(&w, &epoch_j);
  if (ack->duplicate) STREAM_CW_LIT(&w, ",\"duplicate\":true}");
  else STREAM_CW_LIT(&w, ",\"duplicate\":false}");
  (void)stream__conn_control(c, f, false);
}

int stream_conn_drain(stream_conn_t *c, uint32_t retry_ms) {
  stream_hub_t *hub = c->hub;
  json_t *pos = json_object();
  base_queue_t *it;
  base_queue_foreach(it, &c->subs) {
    stream_sub_t *s = base_queue_data(it, stream_sub_t, conn_link);
    json_object_set_new(pos, s->topic->name,
                        json_pack("{s:s,s:I}", "epoch", s->topic->epoch, "seq", (json_int_t)(s->next_seq - 1)));
  }
  json_t *o = json_pack("{s:s,s:I,s:o}", "op", "drain", "retry_ms", (json_int_t)retry_ms, "positions", pos);
  stream_frame_t *f = stream__frame_control(&hub->frames, hub->cfg.frame_headroom, "drain", NULL, o);
  json_decref(o);
  c->draining = true;
  while (c->neph) eph_remove_at(c, c->neph - 1);
  /* Unpulled group deliveries stay queued (unsent); they go to other members when this
   * connection is freed. */
  return stream__conn_control(c, f, true);
}

const char *stream_conn_close_reason(const stream_conn_t *c) { return c->close_reason; }
size_t stream_conn_subscription_count(const stream_conn_t *c) { return c->nsubs; }
size_t stream_conn_frames_held(const stream_conn_t *c) { return c->ctrl_count + c->neph; }

size_t stream_conn_backlog(const stream_conn_t *c) { return c->ctrl_count + c->neph + c->npubs; }
