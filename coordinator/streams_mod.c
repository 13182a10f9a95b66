/* The streams module of the daemon: opens the store at <data_dir>/coordinator.db (runs and
 * groups beside it, in coordinator-runs.db and coordinator-groups.db), maps the
 * configuration onto stream_config_t, creates the hub, installs the WebSocket session and
 * the HTTP/SSE routes, runs the housekeeping timer (slow clients, token expiry, SSE
 * keepalives), copies the engine's statistics into /metrics, answers /readyz "overloaded",
 * and orders drain and shutdown (connections freed, hub closed, loop run, store closed).
 * It owns no protocol: streams_ws.c, streams_http.c and streams_sse.c do. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/hist.h"
#include "base/log.h"
#include "base/mem.h"
#include "streams_glue.h"

/* ---- helpers shared by the transports ---- */

int64_t coord__streams_now_s(void) {
  return (int64_t)time(NULL);
}

uint64_t coord__streams_mono_ms(void) {
  return uv_hrtime() / 1000000u;
}

int coord__streams_authenticate(coord_streams_t *s, const char *token, coord_auth_principal_t *out,
                                char *reason, size_t reason_len) {
  memset(out, 0, sizeof *out);
  if (s->d->cfg->auth.mode == COORD_AUTH_NONE) {
    /* config validation allows mode none on a loopback listen address only */
    coord_auth_principal_init_any(out);
    return 0;
  }
  if (!token || !*token) {
    snprintf(reason, reason_len, "missing bearer token");
    return 401;
  }
  char why[160] = "";
  int rc = coord_auth_verify_jwt(&s->jwt, token, coord__streams_now_s(), out, why, sizeof why);
  if (rc < 0) {
    snprintf(reason, reason_len, "%s", why[0] ? why : "invalid token");
    return 401;
  }
  return 0;
}

static bool streams_allows(void *ud, stream_action_t action, const char *tenant, const char *room) {
  const coord_auth_principal_t *p = ud;
  unsigned scope =
      action == STREAM_ACTION_PUBLISH ? COORD_AUTH_SCOPE_PUBLISH : COORD_AUTH_SCOPE_SUBSCRIBE;
  return coord_auth_allows(p, scope, tenant, room);
}

void coord__streams_principal(const coord_auth_principal_t *p, stream_principal_t *out) {
  memset(out, 0, sizeof *out);
  out->tenant = p->any_tenant ? NULL : p->tenant;
  /* admin implies subscribe and publish inside the token's tenant and rooms */
  if (p->scopes & COORD_AUTH_SCOPE_ADMIN)
    out->scopes = STREAM_SCOPE_SUBSCRIBE | STREAM_SCOPE_PUBLISH | STREAM_SCOPE_ADMIN;
  if (p->scopes & COORD_AUTH_SCOPE_SUBSCRIBE) out->scopes |= STREAM_SCOPE_SUBSCRIBE;
  if (p->scopes & COORD_AUTH_SCOPE_PUBLISH) out->scopes |= STREAM_SCOPE_PUBLISH;
  out->allows = streams_allows;
  out->allows_ud = (void *)p;
}

uint32_t coord__streams_retry_ms(coord_streams_t *s) {
  /* xorshift64: spreads reconnects of many clients; not security-relevant */
  uint64_t x = s->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  s->rng = x;
  return 250 + (uint32_t)(x % 2000);
}

uint64_t coord__streams_slow_due(coord_streams_t *s, const char *transport, const stream_conn_t *conn,
                                 bool waiting, uint64_t *waiting_since_ms, uint64_t progress_ms,
                                 uint64_t now_ms) {
  uint64_t timeout = (uint64_t)s->d->cfg->limits.slow_client_timeout_ms;
  if (!waiting) {
    *waiting_since_ms = 0;
    return 0;
  }
  if (!*waiting_since_ms) *waiting_since_ms = now_ms;
  uint64_t since = *waiting_since_ms > progress_ms ? *waiting_since_ms : progress_ms;
  if (!timeout || now_ms - since < timeout) return 0;
  uint64_t ms = now_ms - since;
  log_info("streams", "closing a slow client", "{s:s,s:I,s:I}", "transport", transport, "unwritable_ms",
           (json_int_t)ms, "lag", (json_int_t)stream_conn_lag(conn));
  coord_metric_add(s->m.closed_slow, 1);
  return ms;
}

void coord__streams_count_writes(coord_streams_t *s, int transport, stream_frame_t *const *frames,
                                 size_t n, uint64_t now_us) {
  uint64_t lanes[STREAM_LANES] = {0};
  base_hist_t *h = coord_metric_hist(s->m.durable_to_write[transport]);
  uint64_t run_durable = 0, run_n = 0;
  for (size_t i = 0; i < n; i++) {
    const stream_frame_t *f = frames[i];
    if (stream_frame_kind(f) != STREAM_FRAME_EVENT) continue;
    int lane = stream_frame_lane(f);
    if (lane < 0 || lane >= STREAM_LANES) continue;
    lanes[lane]++;
    uint64_t durable = stream_frame_durable_us(f);
    if (!durable || now_us < durable) continue;
    if (run_n && durable != run_durable) {
      base_hist_record_n(h, now_us - run_durable, run_n);
      run_n = 0;
    }
    run_durable = durable;
    run_n++;
  }
  if (run_n) base_hist_record_n(h, now_us - run_durable, run_n);
  for (int l = 0; l < STREAM_LANES; l++)
    if (lanes[l]) coord_metric_add(s->m.delivered[transport][l], (double)lanes[l]);
}

void coord__streams_count_write(coord_streams_t *s, int transport, const stream_frame_t *f,
                                uint64_t now_us) {
  stream_frame_t *one = (stream_frame_t *)f; /* only read */
  coord__streams_count_writes(s, transport, &one, 1, now_us);
}

/* ---- configuration ---- */

static void streams_map_config(const coord_config_t *cfg, stream_config_t *sc) {
  stream_config_defaults(sc);
  sc->partitions = (uint32_t)cfg->streams.partitions;
  sc->retention_max_events = (uint64_t)cfg->streams.retention_max_events;
  sc->retention_max_age_s = (uint32_t)cfg->streams.retention_max_age_s;
  sc->dedupe_window_s = (uint32_t)cfg->streams.dedupe_window_s;
  sc->idle_topic_s = (uint32_t)cfg->streams.idle_topic_s;
  sc->publish_rate = (double)cfg->limits.publish_rate;
  sc->publish_burst = (uint32_t)cfg->limits.publish_burst;
  sc->topic_publish_rate = (double)cfg->limits.topic_publish_rate;
  sc->topic_publish_burst = (uint32_t)cfg->limits.topic_publish_burst;
  sc->overload_threshold = (uint32_t)cfg->streams.overload_threshold;
  sc->overload_bytes = (uint64_t)cfg->streams.overload_mb << 20;
  sc->commit_thread = cfg->streams.commit_thread != 0;
  sc->control_queue_max = (uint32_t)cfg->streams.control_queue_max;
  sc->commit_batch_max = (uint32_t)cfg->streams.commit_batch_max;
  sc->commit_inline_max = (uint32_t)cfg->streams.commit_inline_max;
  sc->router_budget = (uint32_t)cfg->streams.router_budget;
  sc->ring_size = (uint32_t)cfg->streams.ring_size;
  sc->group_ack_wait_ms = (uint32_t)cfg->streams.groups.ack_wait_ms;
  sc->group_max_deliveries = (uint32_t)cfg->streams.groups.max_deliveries;
  sc->group_max_inflight = (uint32_t)cfg->streams.groups.max_inflight;
  sc->group_max_inflight_limit = (uint32_t)cfg->streams.groups.max_inflight_limit;
  sc->group_max_pending = (uint32_t)cfg->streams.groups.max_pending;
  sc->groups_per_topic = (uint32_t)cfg->streams.groups.per_topic;
  sc->group_members_max = (uint32_t)cfg->streams.groups.members_max;
  /* A message the transport lets through (limits.max_ws_message) but the engine finds too
   * large gets a too_large error instead of a close. */
  if ((int64_t)sc->max_message_bytes > cfg->limits.max_ws_message)
    sc->max_message_bytes = (size_t)cfg->limits.max_ws_message;
  /* lws writes the WebSocket header in place in front of each shared frame */
  sc->frame_headroom = COORD_WS_PRE;
}

/* ---- metrics ---- */

static const char *const lane_names[STREAM_LANES] = {"control", "data", "ephemeral"};
static const char *const transport_names[COORD_STREAMS_TRANSPORTS] = {"ws", "sse"};

static coord_metric_t *streams_series(coord_metrics_t *m, const char *name, const char *help,
                                      coord_metric_type_t type, const char *const *labels) {
  return coord_metric_series(coord_metrics_family(m, name, help, type), labels);
}

static void streams_set(coord_metrics_t *m, const char *name, const char *help,
                        coord_metric_type_t type, double v) {
  coord_metric_set(streams_series(m, name, help, type, NULL), v);
}

static void streams_register_metrics(coord_streams_t *s) {
  coord_metrics_t *m = s->d->metrics;
  coord_metric_family_t *delivered = coord_metrics_family(
      m, "coord_stream_deliveries_total",
      "Event frames written to clients, by transport and lane (counted at the write).",
      COORD_METRIC_COUNTER);
  coord_metric_family_t *d2w = coord_metrics_histogram(
      m, "coord_stream_durable_to_write_seconds",
      "From an event's commit to its write to a live subscriber, by transport.", NULL, 0);
  for (int t = 0; t < COORD_STREAMS_TRANSPORTS; t++) {
    for (int l = 0; l < STREAM_LANES; l++)
      s->m.delivered[t][l] = coord_metric_series(
          delivered,
          (const char *const[]){"transport", transport_names[t], "lane", lane_names[l], NULL});
    s->m.durable_to_write[t] =
        coord_metric_series(d2w, (const char *const[]){"transport", transport_names[t], NULL});
  }
  coord_metric_family_t *closed = coord_metrics_family(
      m, "coord_stream_connections_closed_total",
      "Stream connections closed by the server, by reason.", COORD_METRIC_COUNTER);
  s->m.closed_slow =
      coord_metric_series(closed, (const char *const[]){"reason", "slow_client", NULL});
  s->m.closed_expired =
      coord_metric_series(closed, (const char *const[]){"reason", "token_expired", NULL});
  s->m.closed_overflow =
      coord_metric_series(closed, (const char *const[]){"reason", "control_queue_overflow", NULL});
  s->m.http_published =
      streams_series(m, "coord_stream_http_publishes_total",
                     "Events accepted through POST .../events.", COORD_METRIC_COUNTER, NULL);
  s->m.reads_deferred = streams_series(
      m, "coord_stream_http_reads_deferred_total",
      "GET .../events answered later, not waited for, because a WAL settle held the store's reader.",
      COORD_METRIC_COUNTER, NULL);
}

static void streams_copy_hist(coord_metrics_t *m, const char *name, const char *help,
                              const base_hist_t *h, bool plain) {
  coord_metric_family_t *f =
      plain ? coord_metrics_histogram_plain(m, name, help, h->bounds_us, h->nbounds)
            : coord_metrics_histogram(m, name, help, h->bounds_us, h->nbounds);
  *coord_metric_hist(coord_metric_series(f, NULL)) = *h;
}

static void streams_collect(coord_metrics_t *m, void *ud) {
  coord_streams_t *s = ud;
  if (!s->hub) return;
  const stream_stats_t *st = stream_hub_stats(s->hub);
  coord_metric_family_t *pub = coord_metrics_family(
      m, "coord_stream_events_published_total",
      "Events accepted by lane (control and data once durable; ephemeral when routed or dropped).",
      COORD_METRIC_COUNTER);
  for (int l = 0; l < STREAM_LANES; l++)
    coord_metric_set(coord_metric_series(pub, (const char *const[]){"lane", lane_names[l], NULL}),
                     (double)st->published[l]);
  streams_set(m, "coord_stream_duplicates_total", "Publishes answered from the idempotency window.",
              COORD_METRIC_COUNTER, (double)st->duplicates);
  streams_set(m, "coord_stream_fanout_deliveries_total",
              "Event frames handed by the router stage to connections (pulled).",
              COORD_METRIC_COUNTER, (double)st->deliveries);
  coord_metric_family_t *drops =
      coord_metrics_family(m, "coord_stream_ephemeral_drops_total",
                           "Ephemeral events dropped: for subscribers behind / coalesced, or at "
                           "ingress without subscribers.",
                           COORD_METRIC_COUNTER);
  coord_metric_set(coord_metric_series(drops, (const char *const[]){"stage", "connection", NULL}),
                   (double)st->ephemeral_drops);
  coord_metric_set(coord_metric_series(drops, (const char *const[]){"stage", "ingress", NULL}),
                   (double)st->ephemeral_ingress_drops);
  coord_metric_family_t *gaps =
      coord_metrics_family(m, "coord_stream_gaps_total", "gap messages sent, by reason (retention or epoch).",
                           COORD_METRIC_COUNTER);
  coord_metric_set(coord_metric_series(gaps, (const char *const[]){"reason", "retention", NULL}),
                   (double)(st->gaps_sent - st->gaps_epoch));
  coord_metric_set(coord_metric_series(gaps, (const char *const[]){"reason", "epoch", NULL}),
                   (double)st->gaps_epoch);
  coord_metric_family_t *limited = coord_metrics_family(
      m, "coord_stream_rate_limited_total", "Publishes refused by a rate limit: the tenant's or the topic's.",
      COORD_METRIC_COUNTER);
  coord_metric_set(coord_metric_series(limited, (const char *const[]){"limit", "tenant", NULL}),
                   (double)(st->rate_limited - st->rate_limited_topic));
  coord_metric_set(coord_metric_series(limited, (const char *const[]){"limit", "topic", NULL}),
                   (double)st->rate_limited_topic);
  streams_set(m, "coord_stream_overloaded_total",
              "Publishes shed because too many events await their commit.", COORD_METRIC_COUNTER,
              (double)st->overloaded);
  streams_set(m, "coord_stream_commit_failures_total",
              "Store batches that failed (their publishes got errors).", COORD_METRIC_COUNTER,
              (double)st->commit_failures);
  streams_set(m, "coord_stream_commits_inline_total",
              "Small batches committed on the loop although the writer thread runs "
              "(streams.commit_inline_max).",
              COORD_METRIC_COUNTER, (double)st->commits_inline);
  streams_set(m, "coord_stream_commits_inline_declined_total",
              "Small batches handed to the writer thread after all, because the store was busy "
              "(a retention slice), its log was due a settle, or it syncs every commit.",
              COORD_METRIC_COUNTER, (double)st->commits_inline_declined);
  streams_set(m, "coord_stream_commits_inline_paused_total",
              "Slow inline commits (2 ms or more by default); each sends batches to the writer "
              "thread for a while (100 ms, doubled for each such commit in a row).",
              COORD_METRIC_COUNTER, (double)st->commits_inline_paused);
  streams_set(m, "coord_stream_topic_evictions_total", "Idle topics that left memory.",
              COORD_METRIC_COUNTER, (double)st->evictions);
  streams_set(m, "coord_stream_topic_loads_total", "Topics brought into memory.",
              COORD_METRIC_COUNTER, (double)st->topic_loads);
  streams_set(m, "coord_stream_topics_unsaved",
              "Topics created in memory whose row the next store batch writes "
              "(stays above 0 only while commits fail).",
              COORD_METRIC_GAUGE, (double)st->topics_unsaved);
  streams_set(m, "coord_stream_store_catchup_reads_total",
              "Store reads for subscribers behind the ring.", COORD_METRIC_COUNTER,
              (double)st->store_catchup_reads);
  streams_set(m, "coord_stream_store_catchup_deferred_total",
              "Catch-up store reads put off (not waited for) while a WAL settle held the store's "
              "reader, counting each attempt.",
              COORD_METRIC_COUNTER, (double)st->store_catchup_deferred);
  streams_set(m, "coord_stream_store_catchup_failures_total",
              "Catch-up store reads that failed; each closed its connection (1011), whose client "
              "resumes from its position.",
              COORD_METRIC_COUNTER, (double)st->store_catchup_failures);
  coord_metric_set(s->m.closed_overflow, (double)st->conns_closed_overflow);
  streams_set(m, "coord_stream_subscriptions", "Active subscriptions (WebSocket and SSE).",
              COORD_METRIC_GAUGE, (double)st->subscriptions);
  streams_set(m, "coord_stream_topics", "Topics in memory.", COORD_METRIC_GAUGE,
              (double)st->topics);
  streams_set(m, "coord_stream_pending_events", "Events accepted and not yet committed.",
              COORD_METRIC_GAUGE, (double)st->pending);
  streams_set(m, "coord_stream_pending_bytes",
              "Bytes of the events accepted and not yet committed (streams.overload_mb sheds).",
              COORD_METRIC_GAUGE, (double)st->pending_bytes);
  streams_set(m, "coord_stream_frames", "Serialized frames alive (shared by reference).",
              COORD_METRIC_GAUGE, (double)st->frames);
  streams_set(m, "coord_stream_frame_bytes", "Bytes of frames alive.", COORD_METRIC_GAUGE,
              (double)st->frame_bytes);
  streams_set(m, "coord_stream_frame_pool_bytes",
              "Bytes of released frame blocks kept for reuse (at most 4 MiB).", COORD_METRIC_GAUGE,
              (double)st->frame_pool_bytes);
  streams_set(m, "coord_stream_overloaded",
              "1 while publishes are shed (and /readyz says overloaded).", COORD_METRIC_GAUGE,
              stream_hub_overloaded(s->hub) ? 1 : 0);
  streams_set(m, "coord_stream_sse_streams", "Open SSE streams.", COORD_METRIC_GAUGE,
              (double)coord__streams_sse_count(s));
  uint64_t lag_max = 0, lag_total = 0, lagging = 0;
  coord__streams_ws_lag(s, &lag_max, &lag_total, &lagging);
  streams_set(m, "coord_stream_subscriber_lag_max_events",
              "Largest number of committed events a WebSocket connection has not been sent yet "
              "(sampled at scrape).",
              COORD_METRIC_GAUGE, (double)lag_max);
  streams_set(
      m, "coord_stream_subscriber_lag_events",
      "Committed events not yet sent, summed over WebSocket connections (sampled at scrape).",
      COORD_METRIC_GAUGE, (double)lag_total);
  streams_set(m, "coord_stream_lagging_connections", "WebSocket connections with a lag above zero.",
              COORD_METRIC_GAUGE, (double)lagging);
  coord_metric_family_t *grp =
      coord_metrics_family(m, "coord_stream_group_events_total",
                           "Consumer group traffic: deliveries (first and repeated), redeliveries, "
                           "acks, nacks, dead letters, "
                           "events skipped by retention.",
                           COORD_METRIC_COUNTER);
  const struct {
    const char *kind;
    uint64_t v;
  } g[] = {{"delivered", st->group_deliveries},
           {"redelivered", st->group_redeliveries},
           {"acked", st->group_acks},
           {"nacked", st->group_nacks},
           {"dead_lettered", st->group_dead_letters},
           {"skipped", st->group_skipped}};
  for (size_t i = 0; i < BASE_ARRAY_SIZE(g); i++)
    coord_metric_set(coord_metric_series(grp, (const char *const[]){"kind", g[i].kind, NULL}),
                     (double)g[i].v);
  streams_set(m, "coord_stream_group_flush_failures_total",
              "Failed writes of consumer group state.", COORD_METRIC_COUNTER,
              (double)st->group_flush_failures);
  streams_set(m, "coord_stream_groups", "Consumer groups in memory.", COORD_METRIC_GAUGE,
              (double)st->groups);
  streams_set(m, "coord_stream_group_members", "Members of consumer groups.", COORD_METRIC_GAUGE,
              (double)st->group_members);
  streams_set(m, "coord_stream_group_pending", "Unacknowledged group deliveries (leases).",
              COORD_METRIC_GAUGE, (double)st->group_pending);
  streams_copy_hist(m, "coord_stream_publish_to_durable_seconds", "From a publish to its commit.",
                    &st->publish_to_durable_us, false);
  streams_copy_hist(m, "coord_stream_durable_to_pull_seconds",
                    "From a commit to the frame's pull by a live subscriber's transport.",
                    &st->durable_to_pull_us, false);
  streams_copy_hist(m, "coord_stream_commit_batch_events",
                    "Events per store transaction (group commit).", &st->commit_batch_events, true);
  streams_copy_hist(m, "coord_stream_commit_seconds",
                    "Duration of each store transaction (group commit), on the writer thread "
                    "when streams.commit_thread is 1.",
                    &st->commit_us, false);
  store_stats_t ss;
  store_stats_get(s->store, &ss);
  streams_set(m, "coord_store_commits_total", "Store transactions committed.", COORD_METRIC_COUNTER,
              (double)ss.commits);
  streams_set(m, "coord_store_events_appended_total", "Events written to the store.",
              COORD_METRIC_COUNTER, (double)ss.events_appended);
  streams_set(m, "coord_store_events_deleted_total", "Events removed by retention.",
              COORD_METRIC_COUNTER, (double)ss.events_deleted);
  streams_set(m, "coord_store_retention_slices_total", "Retention slices run (bounded deletes).",
              COORD_METRIC_COUNTER, (double)ss.retention_slices);
  streams_set(m, "coord_store_retention_seconds_total", "Time spent in retention slices.",
              COORD_METRIC_COUNTER, (double)ss.retention_us_total / 1e6);
  streams_set(m, "coord_store_retention_topics_total",
              "Topics retention slices examined (only those holding events).",
              COORD_METRIC_COUNTER, (double)ss.retention_topics);
  streams_set(m, "coord_store_commit_seconds_total", "Time spent in store commits.",
              COORD_METRIC_COUNTER, (double)ss.commit_us_total / 1e6);
  streams_set(m, "coord_store_wal_settles_total",
              "Batches that first waited for the WAL to be copied back (store.wal_max_mb).",
              COORD_METRIC_COUNTER, (double)ss.wal_settles);
  streams_set(m, "coord_store_wal_settle_seconds_total",
              "Time those waits held store commits.", COORD_METRIC_COUNTER,
              (double)ss.wal_settle_us_total / 1e6);
  streams_set(m, "coord_store_wal_frames_total",
              "Pages (WAL frames) store commits appended to the write-ahead log.",
              COORD_METRIC_COUNTER, (double)ss.wal_frames);
  streams_set(m, "coord_store_wal_checkpoints_total",
              "Checkpoint passes that copied the write-ahead log back into the database.",
              COORD_METRIC_COUNTER, (double)ss.wal_checkpoints);
  /* The same for the runs' and the consumer groups' files (their own logs). */
  static const char *const part_names[] = {"runs", "groups"};
  for (int p = 0; p < 2; p++) {
    store_part_stats_get(s->store, (store_part_t)p, &ss);
    const char *const labels[] = {"part", part_names[p], NULL};
    coord_metric_set(streams_series(m, "coord_store_part_wal_settles_total",
                                    "Writes of the runs' or the groups' file that first waited for its "
                                    "WAL to be copied back.",
                                    COORD_METRIC_COUNTER, labels),
                     (double)ss.wal_settles);
    coord_metric_set(streams_series(m, "coord_store_part_wal_settle_seconds_total",
                                    "Time those waits held the part's writes.", COORD_METRIC_COUNTER,
                                    labels),
                     (double)ss.wal_settle_us_total / 1e6);
    coord_metric_set(streams_series(m, "coord_store_part_wal_frames_total",
                                    "Pages (WAL frames) the part's writes appended to its log.",
                                    COORD_METRIC_COUNTER, labels),
                     (double)ss.wal_frames);
    coord_metric_set(streams_series(m, "coord_store_part_wal_checkpoints_total",
                                    "Checkpoint passes that copied the part's log back into its file.",
                                    COORD_METRIC_COUNTER, labels),
                     (double)ss.wal_checkpoints);
  }
}

/* ---- daemon hooks ---- */

static const char *streams_not_ready(void *ud) {
  coord_streams_t *s = ud;
  return s->hub && stream_hub_overloaded(s->hub) ? "overloaded" : NULL;
}

static void streams_tick(uv_timer_t *t) {
  coord_streams_t *s = t->data;
  if (s->stopped) return;
  uint64_t now = coord__streams_mono_ms();
  coord__streams_ws_tick(s, now);
  coord__streams_sse_tick(s, now);
}

static void streams_on_drain(coord_daemon_t *d, void *ud) {
  (void)d;
  coord_streams_t *s = ud;
  if (!s->hub) return;
  s->draining = true;
  /* Pending events are committed now; their pubacks land before each drain message. The
   * WebSocket sessions get their drain from on_drain, which the daemon calls next. */
  stream_hub_drain(s->hub);
  coord__streams_sse_drain(s);
}

static void streams_on_stop(coord_daemon_t *d, void *ud) {
  (void)d;
  coord_streams_t *s = ud;
  if (s->tick_started) {
    uv_timer_stop(&s->tick);
    uv_close((uv_handle_t *)&s->tick, NULL);
    s->tick_started = false;
  }
  if (!s->hub) return;
  coord__streams_ws_stop(s);
  coord__streams_sse_stop(s);
  coord__streams_http_stop(s);
  stream_hub_close(s->hub); /* its handles close while the loop runs on */
  s->hub = NULL;
  s->d->streams_hub = NULL;
  s->stopped = true;
}

static void streams_on_exit(coord_daemon_t *d, void *ud) {
  coord_streams_t *s = ud;
  d->streams_store = NULL;
  store_close(s->store);
  free(s);
}

int coord__streams_attach(coord_daemon_t *d) {
  const coord_config_t *cfg = d->cfg;
  coord_streams_t *s = xcalloc(1, sizeof *s);
  s->d = d;
  base_queue_init(&s->ws_sessions);
  base_queue_init(&s->sse_streams);
  base_queue_init(&s->posts);
  base_queue_init(&s->reads);
  s->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
  if (!s->rng) s->rng = 1;
  s->jwt.secret = (const unsigned char *)cfg->auth.jwt_secret;
  s->jwt.secret_len = strlen(cfg->auth.jwt_secret);
  s->jwt.leeway_s = COORD_AUTH_LEEWAY_DEFAULT_S;
  /* From here the hooks own s: a failure below still ends in streams_on_exit. */
  coord_daemon_on_drain(d, streams_on_drain, s);
  coord_daemon_on_stop(d, streams_on_stop, s);
  coord_daemon_on_exit(d, streams_on_exit, s);

  char *path = xasprintf("%s/coordinator.db", cfg->data_dir);
  store_options_t so = {.path = path,
                        .wal_max_bytes = (size_t)cfg->store.wal_max_mb << 20,
                        .cache_bytes = (size_t)cfg->store.cache_mb << 20,
                        .secure_delete = cfg->store.secure_delete != 0};
  int rc = store_open_sqlite(&so, &s->store);
  if (rc < 0) {
    log_error("streams", "cannot open the store", "{s:s,s:s}", "path", path, "error",
              strerror(-rc));
    free(path);
    return rc;
  }
  streams_map_config(cfg, &s->scfg);
  stream_hub_options_t ho = {.loop = d->loop, .store = s->store, .config = &s->scfg};
  rc = stream_hub_new(&ho, &s->hub);
  if (rc < 0) {
    log_error("streams", "cannot start the streams hub", "{s:s}", "error", strerror(-rc));
    free(path);
    return rc;
  }
  log_info("streams", "store open", "{s:s,s:i,s:I,s:I}", "path", path, "partitions",
           (int)s->scfg.partitions, "retention_max_events",
           (json_int_t)s->scfg.retention_max_events, "retention_max_age_s",
           (json_int_t)s->scfg.retention_max_age_s);
  free(path);

  streams_register_metrics(s);
  coord_metrics_on_collect(d->metrics, streams_collect, s);
  coord_daemon_set_ready_check(d, streams_not_ready, s);
  coord_ws_set_session(d->ws, &coord__streams_ws_session, s);
  d->streams_hub = s->hub;
  d->streams_store = s->store;
  rc = coord__streams_http_register(s);
  if (rc == 0) rc = coord__streams_sse_register(s);
  if (rc == 0) rc = coord__streams_groups_http_register(s);
  if (rc < 0) return rc;

  /* Housekeeping resolution: a quarter of the shortest deadline, 25 ms .. 1 s. */
  uint64_t shortest = (uint64_t)cfg->streams.sse_keepalive_ms;
  if (cfg->limits.slow_client_timeout_ms > 0 &&
      (uint64_t)cfg->limits.slow_client_timeout_ms < shortest)
    shortest = (uint64_t)cfg->limits.slow_client_timeout_ms;
  s->tick_ms = shortest / 4;
  if (s->tick_ms < 25) s->tick_ms = 25;
  if (s->tick_ms > 1000) s->tick_ms = 1000;
  uv_timer_init(d->loop, &s->tick);
  s->tick.data = s;
  uv_timer_start(&s->tick, streams_tick, s->tick_ms, s->tick_ms);
  uv_unref((uv_handle_t *)&s->tick);
  s->tick_started = true;
  return 0;
}
