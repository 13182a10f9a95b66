/* The hub: configuration, lifecycle, clocks and the loop phase that drives the stages.
 *
 * Once per loop turn (a uv_check handle, right after I/O callbacks have queued publishes)
 * the hub runs, in order: the group commit (publish.c), the publishers' callbacks, the
 * router walks (router.c), consumer group dispatch and the write of group state
 * (group.c) and the wakes of connections with something to send. With the commit thread
 * (writer.c) the group commit only hands a batch over; its result lands through an async
 * handle in the poll phase of a later turn, right before this phase. A uv_idle
 * handle is active only while work is left (router over budget, publishes queued from a
 * callback), so the loop does not block in poll meanwhile; otherwise the hub's handles
 * are unreferenced and never keep the loop alive, except the catch-up timer (cursor.c),
 * which runs only while store reads wait for a WAL settle. Two timers run retention
 * slices and the idle-topic sweep. Owns none of the stages' logic. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "internal.h"

#define SWEEP_INTERVAL_MS 1000
#define SWEEP_SOON_MS 10 /* after a sweep turn that left due topics for later */

void stream_config_defaults(stream_config_t *c) {
  memset(c, 0, sizeof *c);
  c->partitions = 16;
  c->retention_max_events = 10000;
  c->retention_max_age_s = 600;
  c->retention_interval_ms = 1000;
  c->retention_budget = 20000;
  c->dedupe_window_s = 300;
  c->publish_rate = 10000;
  c->publish_burst = 20000;
  c->topic_publish_rate = 1000;
  c->topic_publish_burst = 2000;
  c->max_event_bytes = 65536;
  c->max_message_bytes = 131072;
  c->max_json_depth = 32;
  c->ring_size = 256;
  c->max_subs_per_conn = 64;
  c->control_queue_max = 1024;
  c->commit_batch_max = 4000;
  c->commit_thread = true;
  c->commit_inline_max = 64;
  c->commit_inline_slow_us = 2000;
  c->commit_inline_pause_ms = 100;
  c->overload_threshold = 50000;
  c->overload_bytes = (uint64_t)256 << 20;
  c->idle_topic_s = 30;
  c->router_budget = 1000;
  c->catchup_batch = 64;
  c->pull_quantum = 16;
  c->ephemeral_lag_max = 64;
  c->ephemeral_slots_max = 16;
  c->frame_headroom = 0;
  c->group_ack_wait_ms = 30000;
  c->group_max_deliveries = 5;
  c->group_max_inflight = 16;
  c->group_max_inflight_limit = 1024;
  c->group_max_pending = 10000;
  c->groups_per_topic = 16;
  c->group_members_max = 1024;
}

uint64_t stream__mono_us(const stream_hub_t *hub) {
  if (hub->clock.mono_us) return hub->clock.mono_us(hub->clock.ud);
  return uv_hrtime() / 1000;
}

uint64_t stream_hub_now_us(const stream_hub_t *hub) { return stream__mono_us(hub); }

int64_t stream__wall_ms(const stream_hub_t *hub) {
  if (hub->clock.wall_ms) return hub->clock.wall_ms(hub->clock.ud);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hub_idle_cb(uv_idle_t *h) { (void)h; }

void stream__hub_kick(stream_hub_t *hub) {
  if (!hub->closing && !uv_is_active((uv_handle_t *)&hub->idle)) uv_idle_start(&hub->idle, hub_idle_cb);
}

static bool hub_work_left(stream_hub_t *hub) {
  if (!base_queue_empty(&hub->done) || !base_queue_empty(&hub->wakes)) return true;
  if (stream__groups_busy(hub)) return true;
  /* Publishes queued behind a batch in flight wait for its result (the async handle), not
   * for the next turn: counting them would spin the loop while the writer works. */
  bool commit_ready = !hub->writer.busy;
  if (commit_ready && !base_queue_empty(&hub->creates)) return true;
  for (uint32_t i = 0; i < hub->cfg.partitions; i++) {
    if ((commit_ready && !base_queue_empty(&hub->parts[i].pending)) || !base_queue_empty(&hub->parts[i].route))
      return true;
  }
  return false;
}

static void hub_check_cb(uv_check_t *h) {
  stream_hub_t *hub = container_of(h, stream_hub_t, check);
  hub->in_check = true;
  stream__commit_run(hub);
  stream__complete_run(hub);
  hub->route_left = stream__router_run(hub);
  stream__groups_run(hub);
  stream__wake_run(hub);
  hub->in_check = false;
  if (hub_work_left(hub)) stream__hub_kick(hub);
  else uv_idle_stop(&hub->idle);
}

static void hub_retention_cb(uv_timer_t *h) {
  stream_hub_t *hub = container_of(h, stream_hub_t, retention_timer);
  if (hub->writer.on) {
    /* The thread runs it; stream__retention_landed starts the timer again. */
    if (!hub->writer.trim) {
      stream__retention_args(hub, &hub->writer.trim_args);
      stream__writer_trim(hub);
    }
    return;
  }
  stream_trim_args_t a;
  stream__retention_args(hub, &a);
  bool more;
  int rc = stream__retention_run(hub, &a, &more);
  stream__retention_landed(hub, rc, more);
}

void stream__retention_landed(stream_hub_t *hub, int rc, bool more) {
  if (rc < 0) log_error("streams", "retention failed", "{s:i}", "rc", rc);
  if (hub->closing) return;
  /* Work left: the next slice soon, not a full interval later. */
  uv_timer_start(&hub->retention_timer, hub_retention_cb, more ? 10 : hub->cfg.retention_interval_ms, 0);
}

static void hub_sweep_cb(uv_timer_t *h) {
  stream_hub_t *hub = container_of(h, stream_hub_t, sweep_timer);
  bool more;
  stream__hub_sweep_some(hub, STREAM_SWEEP_BUDGET, &more);
  /* Due topics left over: the next turn soon, then the usual interval again. */
  if (more) uv_timer_start(&hub->sweep_timer, hub_sweep_cb, SWEEP_SOON_MS, SWEEP_INTERVAL_MS);
}

static void stats_init(stream_stats_t *s) {
  static const uint64_t batch_bounds[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};
  memset(s, 0, sizeof *s);
  base_hist_init(&s->publish_to_durable_us, NULL, 0);
  base_hist_init(&s->durable_to_pull_us, NULL, 0);
  base_hist_init(&s->commit_batch_events, batch_bounds, BASE_ARRAY_SIZE(batch_bounds));
  base_hist_init(&s->commit_us, NULL, 0);
}

int stream_hub_new(const stream_hub_options_t *opts, stream_hub_t **out) {
  if (!opts || !opts->loop || !opts->store || !out) return -EINVAL;
  stream_config_t cfg;
  if (opts->config) cfg = *opts->config;
  else stream_config_defaults(&cfg);
  if (cfg.partitions == 0 || cfg.commit_batch_max == 0 || cfg.control_queue_max == 0 || cfg.pull_quantum == 0 ||
      cfg.catchup_batch == 0 || cfg.router_budget == 0 || cfg.group_ack_wait_ms == 0 ||
      cfg.group_ack_wait_ms > STREAM_GROUP_WAIT_MAX_MS || cfg.group_max_inflight == 0 ||
      cfg.group_max_inflight_limit < cfg.group_max_inflight || cfg.group_max_pending == 0)
    return -EINVAL;
  stream_hub_t *hub = xcalloc(1, sizeof *hub);
  hub->loop = opts->loop;
  hub->store = opts->store;
  hub->cfg = cfg;
  if (opts->clock) hub->clock = *opts->clock;
  base_map_init(&hub->topics);
  base_queue_init(&hub->idle_topics);
  base_queue_init(&hub->creates);
  base_map_init(&hub->tenants);
  base_queue_init(&hub->tenant_lru);
  base_queue_init(&hub->done);
  base_queue_init(&hub->pub_free);
  base_queue_init(&hub->batch);
  base_queue_init(&hub->wakes);
  hub->reader_waits.prev = hub->reader_waits.next = &hub->reader_waits;
  if (cfg.commit_thread) {
    int rc = stream__writer_start(hub);
    if (rc < 0) {
      log_error("streams", "cannot start the commit thread", "{s:i}", "rc", rc);
      free(hub);
      return rc;
    }
  }
  hub->parts = xcalloc(cfg.partitions, sizeof *hub->parts);
  for (uint32_t i = 0; i < cfg.partitions; i++) {
    base_queue_init(&hub->parts[i].pending);
    base_queue_init(&hub->parts[i].route);
  }
  stats_init(&hub->stats);
  stream__frames_init(&hub->frames, &hub->stats, STREAM_FRAME_POOL_BYTES);

  uv_check_init(hub->loop, &hub->check);
  uv_idle_init(hub->loop, &hub->idle);
  uv_timer_init(hub->loop, &hub->retention_timer);
  uv_timer_init(hub->loop, &hub->sweep_timer);
  uv_timer_init(hub->loop, &hub->catchup_timer); /* referenced: runs only while reads wait */
  stream__groups_init(hub); /* its timer is the sixth handle */
  hub->open_handles = 6 + (hub->writer.on ? 1 : 0);
  uv_check_start(&hub->check, hub_check_cb);
  uv_unref((uv_handle_t *)&hub->check);
  uv_timer_start(&hub->retention_timer, hub_retention_cb, cfg.retention_interval_ms, 0);
  uv_unref((uv_handle_t *)&hub->retention_timer);
  uv_timer_start(&hub->sweep_timer, hub_sweep_cb, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS);
  uv_unref((uv_handle_t *)&hub->sweep_timer);
  *out = hub;
  return 0;
}

static void hub_handle_closed(uv_handle_t *h) {
  stream_hub_t *hub = h->data;
  if (--hub->open_handles > 0) return;
  free(hub->parts);
  free(hub->writer.evs);
  free(hub->writer.tops);
  free(hub->writer.top_of);
  free(hub->catchup_waits);
  stream__frames_close(&hub->frames);
  base_map_close(&hub->topics);
  base_map_close(&hub->tenants);
  free(hub);
}

void stream_hub_close(stream_hub_t *hub) {
  if (!hub || hub->closing) return;
  if (hub->nconns) log_warn("streams", "hub closed with connections", "{s:i}", "conns", (int)hub->nconns);
  bool writer = hub->writer.on;
  stream__writer_stop(hub); /* the batch in flight completes as it ended */
  stream__groups_close(hub);
  stream__publish_fail_all(hub, -ECANCELED);
  stream__complete_run(hub);
  hub->closing = true; /* from here on finished publishes are freed, not kept */
  stream__pub_free_all(hub);
  base_map_iter_t it;
  for (base_map_node_t *n = base_map_first(&hub->topics, &it); n; n = base_map_next(&hub->topics, &it))
    stream__topic_free(hub, container_of(n, stream_topic_t, node));
  for (base_map_node_t *n = base_map_first(&hub->tenants, &it); n; n = base_map_next(&hub->tenants, &it)) {
    stream_tenant_t *tn = container_of(n, stream_tenant_t, node);
    base_map_remove(&hub->tenants, n);
    free(tn);
  }
  while (hub->reader_waits.next != &hub->reader_waits) stream_reader_wait_cancel(hub->reader_waits.next);
  uv_handle_t *handles[] = {(uv_handle_t *)&hub->check, (uv_handle_t *)&hub->idle,
                            (uv_handle_t *)&hub->retention_timer, (uv_handle_t *)&hub->sweep_timer,
                            (uv_handle_t *)&hub->catchup_timer, (uv_handle_t *)&hub->group_timer};
  for (size_t i = 0; i < BASE_ARRAY_SIZE(handles); i++) {
    handles[i]->data = hub;
    uv_close(handles[i], hub_handle_closed);
  }
  if (writer) {
    hub->writer.async.data = hub;
    uv_close((uv_handle_t *)&hub->writer.async, hub_handle_closed);
  }
}

const stream_stats_t *stream_hub_stats(const stream_hub_t *hub) { return &hub->stats; }
const stream_config_t *stream_hub_config(const stream_hub_t *hub) { return &hub->cfg; }

bool stream_hub_overloaded(const stream_hub_t *hub) {
  return hub->stats.pending >= hub->cfg.overload_threshold || hub->stats.pending_bytes >= hub->cfg.overload_bytes;
}

void stream_hub_drain(stream_hub_t *hub) {
  if (hub->draining) return;
  hub->draining = true;
  stream__commit_flush(hub); /* waits for the commit thread's batches */
  stream__complete_run(hub);
  stream__hub_kick(hub);
}
