/* streams: partitioned, sequenced topics with replay, lanes and cursor fanout.
 *
 * Owns topics ("tenant/room"), their seq and epoch, idempotent publish with group commit
 * into store/, the in-memory ring of recent events, subscriptions as cursors (no copy of
 * an event per subscriber), lanes, rate limits, overload shedding, retention and idle
 * topic eviction. Knows nothing of libwebsockets or HTTP: a transport creates one
 * stream_conn_t per client, feeds it client messages and pulls ready frames when the
 * socket is writable. Everything runs on the hub's libuv loop thread; nothing here is
 * thread-safe. The one exception is internal: with commit_thread the hub's own writer
 * thread runs the store commits (the store is then shared, see store.h "Threads"). See docs/streams.md (internals) and docs/protocol.md (wire protocol).
 *
 * Errors are negative errno values: -EINVAL (bad argument or message), -EMSGSIZE (too
 * large), -EAGAIN (rate limited; retry later), -EBUSY (overloaded), -ESHUTDOWN (draining),
 * -EACCES (forbidden), -ENOENT (unknown topic / not subscribed), -EMLINK (too many
 * subscriptions), -ENOBUFS (control queue overflow: close the connection), -EIO (store). */
#ifndef STREAMS_H
#define STREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/hist.h"
#include "store.h"

typedef struct stream_hub stream_hub_t;
typedef struct stream_conn stream_conn_t;
typedef struct stream_frame stream_frame_t;
typedef struct stream_pub stream_pub_t;

typedef enum { STREAM_LANE_CONTROL = 0, STREAM_LANE_DATA = 1, STREAM_LANE_EPHEMERAL = 2 } stream_lane_t;
#define STREAM_LANES 3
#define STREAM_TOPIC_MAX 265 /* tenant (64) + '/' + room (200) */

/* Every key with its default (stream_config_defaults). Rates are events/s, 0 = unlimited. */
typedef struct stream_config {
  uint32_t partitions;            /* 16; streams.partitions */
  uint64_t retention_max_events;  /* 10000 per topic; streams.retention.max_events (0 = none) */
  uint32_t retention_max_age_s;   /* 600; streams.retention.max_age_s (0 = none) */
  uint32_t retention_interval_ms; /* 1000; how often a retention slice runs */
  uint32_t retention_budget;      /* 2000 rows deleted per slice */
  uint32_t dedupe_window_s;       /* 300; streams.dedupe_window_s */
  double publish_rate;            /* 10000 per tenant; limits.publish_rate */
  uint32_t publish_burst;         /* 20000; limits.publish_burst */
  double topic_publish_rate;      /* 1000 per topic; limits.topic_publish_rate */
  uint32_t topic_publish_burst;   /* 2000; limits.topic_publish_burst */
  size_t max_event_bytes;         /* 65536: serialized "data" + id + type */
  size_t max_message_bytes;       /* 131072: one client message */
  uint32_t max_json_depth;        /* 32: nesting of a client message */
  uint32_t ring_size;             /* 256 newest committed events kept in memory per topic */
  uint32_t max_subs_per_conn;     /* 64 */
  uint32_t control_queue_max;     /* 1024 control frames per connection */
  uint32_t commit_batch_max;      /* 4000 events per store transaction; streams.commit_batch_max */
  bool commit_thread;             /* true: commits run on a writer thread; streams.commit_thread */
  uint32_t commit_inline_max;     /* 64: smaller batches commit on the loop all the same (0: never) */
  /* Library settings without a daemon key: an inline commit of commit_inline_slow_us or
   * more sends batches to the thread for commit_inline_pause_ms, doubled for each slow one
   * in a row (32x at most); 0 in either turns that off. */
  uint32_t commit_inline_slow_us;  /* 2000 */
  uint32_t commit_inline_pause_ms; /* 100 */
  uint32_t overload_threshold;    /* 50000 uncommitted events: shed publishes with -EBUSY */
  uint64_t overload_bytes;        /* 256 MiB of uncommitted events: shed likewise */
  uint32_t idle_topic_s;          /* 30: topics quiet this long with no subscriber leave memory */
  uint32_t router_budget;         /* subscriber visits per loop turn; streams.router_budget */
  uint32_t catchup_batch;         /* 64 events per store read for a lagging cursor */
  uint32_t pull_quantum;          /* 16 frames per subscription per round-robin round */
  uint32_t ephemeral_lag_max;     /* 64: a subscription further behind drops ephemerals */
  uint32_t ephemeral_slots_max;   /* 16 (topic, type) slots per connection */
  size_t frame_headroom;          /* 0 bytes before each payload (the transport sets LWS_PRE) */
  /* consumer groups (docs/groups.md) */
  uint32_t group_ack_wait_ms;        /* 30000: lease of a new group (a join may choose) */
  uint32_t group_max_deliveries;     /* 5: deliveries before the dead letter (0 = never) */
  uint32_t group_max_inflight;       /* 16: unacked deliveries per member by default */
  uint32_t group_max_inflight_limit; /* 1024: the most a member may ask for */
  uint32_t group_max_pending;        /* 10000 leases per group: no new events beyond */
  uint32_t groups_per_topic;         /* 16 */
  uint32_t group_members_max;        /* 1024 members per group */
} stream_config_t;

void stream_config_defaults(stream_config_t *cfg);

/* Clocks, injectable for tests. NULL functions fall back to the real clocks
 * (mono: uv_hrtime; wall: CLOCK_REALTIME). */
typedef struct stream_clock {
  uint64_t (*mono_us)(void *ud);
  int64_t (*wall_ms)(void *ud);
  void *ud;
} stream_clock_t;

typedef struct stream_hub_options {
  uv_loop_t *loop;                /* borrowed */
  store_t *store;                 /* borrowed; outlives the hub */
  const stream_config_t *config;  /* copied; NULL = defaults */
  const stream_clock_t *clock;    /* copied; NULL = real clocks */
} stream_hub_options_t;

/* A reason for a refusal, naming the field: "topic: tenant must match [a-z0-9_-]{1,64}". */
typedef struct stream_err {
  char message[192];
  uint32_t retry_after_ms; /* set with -EAGAIN and -EBUSY */
} stream_err_t;

/* Numbers for /metrics. Counters only grow; gauges are current values. Read on the loop. */
typedef struct stream_stats {
  uint64_t published[STREAM_LANES]; /* accepted (durable for control/data) events by lane */
  uint64_t duplicates;             /* publishes answered by dedupe */
  uint64_t deliveries;             /* event frames handed to transports (fanout) */
  uint64_t ephemeral_drops;        /* ephemerals dropped: behind, coalesced, no slot */
  uint64_t ephemeral_ingress_drops;/* ephemerals to topics without subscribers */
  uint64_t gaps_sent;
  uint64_t gaps_epoch;          /* of gaps_sent: reason epoch (the rest: retention) */
  uint64_t rate_limited;
  uint64_t rate_limited_topic;  /* of rate_limited: by the topic's limit (the rest: the tenant's) */
  uint64_t overloaded;
  uint64_t commit_failures;        /* failed store batches */
  uint64_t commits_inline;         /* batches committed on the loop although the thread runs */
  uint64_t commits_inline_declined; /* small batches the thread took: store busy, settle due, or FULL sync */
  uint64_t commits_inline_paused;   /* slow inline commits: each pauses them */
  uint64_t evictions;              /* topics that left memory */
  uint64_t topic_loads;            /* topics brought into memory */
  uint64_t topics_unsaved;         /* gauge: topics created in memory whose row is not committed */
  uint64_t store_catchup_reads;
  uint64_t store_catchup_deferred; /* catch-up reads put off while a WAL settle held the store's reader */
  uint64_t store_catchup_failures; /* catch-up reads the store failed: each closes its connection */
  uint64_t conns_closed_overflow;  /* control queue overflows */
  uint64_t subscriptions;          /* gauge: active subscriptions */
  uint64_t topics;                 /* gauge: topics in memory */
  uint64_t pending;                /* gauge: events accepted but not yet committed */
  uint64_t pending_bytes;          /* gauge: their frames' bytes */
  uint64_t frames;                 /* gauge: frames alive */
  uint64_t frame_bytes;            /* gauge: bytes of frames alive */
  uint64_t frame_pool_bytes;       /* gauge: bytes of released frame blocks kept for reuse */
  uint64_t group_deliveries;       /* group deliveries queued (first ones and redeliveries) */
  uint64_t group_redeliveries;
  uint64_t group_acks;
  uint64_t group_nacks;
  uint64_t group_dead_letters;     /* dead letters made durable */
  uint64_t group_skipped;          /* events a group lost to retention (counted, logged) */
  uint64_t group_flush_failures;   /* failed writes of group state */
  uint64_t groups;                 /* gauge: groups in memory */
  uint64_t group_members;          /* gauge */
  uint64_t group_pending;          /* gauge: leases over all groups in memory */
  base_hist_t publish_to_durable_us;
  base_hist_t durable_to_pull_us;
  base_hist_t commit_batch_events; /* bucket bounds are event counts, not us */
  base_hist_t commit_us;           /* duration of each store batch (begin..commit), real clock */
} stream_stats_t;

int stream_hub_new(const stream_hub_options_t *opts, stream_hub_t **out) __attribute__((warn_unused_result));
/* Fails pending publish callbacks with -ECANCELED (a batch the commit thread is writing
 * is waited for and completes as it ended), joins that thread, closes the hub's handles
 * and frees it once they are closed (run the loop afterwards). Free every conn and
 * release every frame first. */
void stream_hub_close(stream_hub_t *hub);
const stream_stats_t *stream_hub_stats(const stream_hub_t *hub);
const stream_config_t *stream_hub_config(const stream_hub_t *hub);
/* The hub's monotonic clock in microseconds (the injected one in tests, else uv_hrtime). */
uint64_t stream_hub_now_us(const stream_hub_t *hub);
/* True while uncommitted events reach the overload threshold, in count or in bytes (for
 * /readyz). */
bool stream_hub_overloaded(const stream_hub_t *hub);
/* SIGTERM: new publishes fail with -ESHUTDOWN; pending events are committed now and their
 * callbacks fire (pubacks land in control queues). Then call stream_conn_drain per conn.
 * With the commit thread this blocks until the batch in flight and the rest are written. */
void stream_hub_drain(stream_hub_t *hub);
/* One retention slice now (the timer calls this too); *more when work is left. */
int stream_hub_retention_step(stream_hub_t *hub, bool *more) __attribute__((warn_unused_result));
/* Evicts idle topics now (the sweep timer calls this too); returns how many left. */
size_t stream_hub_sweep(stream_hub_t *hub);

/* ---- topics ---- */

/* Checks "tenant/room". Returns 0 or -EINVAL with err naming the part and the reason;
 * *tenant_len gets the tenant's length. err and tenant_len may be NULL. */
int stream_topic_validate(const char *topic, size_t *tenant_len, stream_err_t *err);
/* The topic's id, epoch, head and first seq as the hub knows them: from memory when it is
 * loaded (a topic created moments ago may have no row in the store yet), else from the
 * store without waiting for its commit thread (store_topic_lookup). -ENOENT when neither
 * has it. Does not load the topic. */
int stream_topic_state(stream_hub_t *hub, const char *topic, store_topic_t *out);
/* Stable partition of a topic: 32-bit FNV-1a of its bytes modulo partitions. */
uint32_t stream_topic_partition(const char *topic, uint32_t partitions);

/* ---- frames: one serialized message, shared by reference ---- */

typedef enum { STREAM_FRAME_EVENT = 0, STREAM_FRAME_CONTROL = 1 } stream_frame_kind_t;

stream_frame_t *stream_frame_ref(stream_frame_t *f);
/* Drops a reference and clears *f. NULL and *f == NULL are accepted. */
void stream_frame_unref(stream_frame_t **f);
/* The text payload; headroom writable bytes precede it (the transport may use them). */
const unsigned char *stream_frame_payload(const stream_frame_t *f, size_t *len);
unsigned char *stream_frame_payload_mut(stream_frame_t *f, size_t *len);
stream_frame_kind_t stream_frame_kind(const stream_frame_t *f);
const char *stream_frame_op(const stream_frame_t *f);   /* "ev", "gap", "puback", ... */
uint64_t stream_frame_seq(const stream_frame_t *f);      /* 0 for ephemeral and control */
int stream_frame_lane(const stream_frame_t *f);
const char *stream_frame_topic(const stream_frame_t *f); /* NULL for connection-level */
int64_t stream_frame_ts_ms(const stream_frame_t *f);
/* The hub's monotonic clock (stream_hub_now_us) when the event became durable; 0 for
 * frames that never went through a commit here (control, ephemeral, store catch-up). A
 * transport records durable -> write latency with it at the actual write. */
uint64_t stream_frame_durable_us(const stream_frame_t *f);

/* ---- publish ---- */

typedef struct stream_event {
  const char *id;   /* idempotency key, NULL = none; <= 200 bytes */
  const char *type; /* NULL = none; <= 200 bytes */
  int lane;         /* stream_lane_t */
  const char *data; /* JSON text of any value; NULL = null */
  size_t data_len;
} stream_event_t;

typedef struct stream_ack {
  const char *topic;
  const char *epoch;
  uint64_t seq;     /* 0 for ephemeral */
  bool duplicate;
  bool ephemeral;
} stream_ack_t;

/* Called once, from the hub's loop phase after the commit (never from stream_publish):
 * status 0 with ack, or -EIO (commit failed; nothing of it is visible) / -ECANCELED (hub
 * closing) with ack->topic only. */
typedef void (*stream_publish_cb)(void *ud, int status, const stream_ack_t *ack);

/* Validates, rate-limits, dedupes and queues one event for the next group commit.
 * handle (may be NULL) identifies the pending callback for stream_publish_cancel and is
 * valid until the callback fires. Errors (nothing queued, cb never called): -EINVAL,
 * -EMSGSIZE, -EAGAIN / -EBUSY (err->retry_after_ms), -ESHUTDOWN, -EIO (topic load). */
int stream_publish(stream_hub_t *hub, const char *topic, const stream_event_t *ev, stream_publish_cb cb,
                   void *ud, stream_pub_t **handle, stream_err_t *err) __attribute__((warn_unused_result));
/* The callback will not fire; the publish itself goes on. */
void stream_publish_cancel(stream_pub_t *handle);

/* ---- connections (WebSocket or SSE clients) ---- */

enum { STREAM_SCOPE_SUBSCRIBE = 1, STREAM_SCOPE_PUBLISH = 2, STREAM_SCOPE_ADMIN = 4 };
typedef enum { STREAM_ACTION_SUBSCRIBE = 1, STREAM_ACTION_PUBLISH = 2 } stream_action_t;

typedef struct stream_principal {
  const char *tenant; /* copied; NULL = any tenant (auth mode none) */
  unsigned scopes;    /* STREAM_SCOPE_* */
  /* Optional finer check (room globs of a token); NULL = allowed. */
  bool (*allows)(void *ud, stream_action_t action, const char *tenant, const char *room);
  void *allows_ud;
} stream_principal_t;

typedef struct stream_conn_ops {
  /* The connection has frames to pull: arrange a writable callback. Called from the hub's
   * loop phase, never from a stream_conn_* call, at most once between two pulls (a wake
   * is "armed" again by stream_conn_pull). So after each pull the transport itself checks
   * stream_conn_pending() and stays writable-armed while it is true. The callback may
   * free the connection. */
  void (*wake)(stream_conn_t *conn, void *ud);
} stream_conn_ops_t;

int stream_conn_new(stream_hub_t *hub, const stream_conn_ops_t *ops, void *ud, const stream_principal_t *who,
                    stream_conn_t **out) __attribute__((warn_unused_result));
/* Unsubscribes everything, cancels pending publish callbacks (the publishes go on) and
 * releases queued frames. NULL is accepted. */
void stream_conn_free(stream_conn_t *conn);

/* Where a subscription starts: live (from the next event), or after seq (0 = everything
 * retained) optionally in a named epoch (a mismatch yields gap "epoch", then replay). */
typedef struct stream_position {
  bool live;
  const char *epoch; /* NULL = the current epoch */
  uint64_t seq;
  /* A seq beyond the head is taken as a position in another epoch (epoch gap, replay from
   * the first retained event) instead of an error: for a reconnect that cannot name its
   * epoch, such as EventSource's Last-Event-ID after the store was lost. */
  bool beyond_is_epoch;
} stream_position_t;

/* Subscribes (or repositions an existing subscription) and queues "subscribed".
 * Errors: -EINVAL (topic or position, err says which), -EACCES, -EMLINK, -EIO. */
int stream_conn_subscribe(stream_conn_t *conn, const char *topic, const stream_position_t *from,
                          stream_err_t *err) __attribute__((warn_unused_result));
/* -ENOENT when not subscribed. */
int stream_conn_unsubscribe(stream_conn_t *conn, const char *topic) __attribute__((warn_unused_result));

/* Handles one client text message (the transport checked UTF-8 and its size limit).
 * SSE connections use the same object without messages: stream_conn_subscribe, then pull
 * and write "id: <seq>\ndata: <payload>\n\n" for frames of kind STREAM_FRAME_EVENT (and,
 * as the transport chooses, "event: <op>" for control frames such as gap).
 * Replies and errors are queued as control frames. Returns 0, or -ENOBUFS when the
 * connection must be closed (reason in stream_conn_close_reason). */
int stream_conn_handle_message(stream_conn_t *conn, const char *json, size_t len) __attribute__((warn_unused_result));

/* Fills frames[] with references to what should be written now, in order: control
 * frames, then ephemerals, then data from the subscriptions round-robin, within max_frames
 * and max_bytes (at least one frame when anything is ready). The caller unrefs each frame
 * after writing it. Returns the count, or -ENOBUFS when the connection must be closed. */
int stream_conn_pull(stream_conn_t *conn, stream_frame_t **frames, size_t max_frames, size_t max_bytes);
/* Whether a pull now would return something. Not quite while a catch-up read of the
 * connection is put off (a WAL settle holds the store's reader): then only what does not
 * need the store counts, and the connection is woken (ops.wake) once the read can go. */
bool stream_conn_pending(const stream_conn_t *conn);
/* Reliable events committed but not yet pulled, over all subscriptions. */
uint64_t stream_conn_lag(const stream_conn_t *conn);
/* Queues {"op":"drain","retry_ms":N,"positions":{...}} with the last delivered position of
 * each subscription, and stops data delivery so those positions stay exact. */
int stream_conn_drain(stream_conn_t *conn, uint32_t retry_ms) __attribute__((warn_unused_result));
/* Why the connection must be closed (NULL when it need not). */
const char *stream_conn_close_reason(const stream_conn_t *conn);
/* The close reason after a store read failed for a cursor behind the ring: a fault of the
 * server (WebSocket close 1011), not of the client; it resumes from its position. */
extern const char stream_close_store_failed[];
size_t stream_conn_subscription_count(const stream_conn_t *conn);
/* Frames held by the connection itself (control queue + ephemeral slots). */
size_t stream_conn_frames_held(const stream_conn_t *conn);
/* Frames held plus publishes in flight (each will queue a reply once committed): what a
 * transport compares with control_queue_max to stop reading a client in time, since the
 * replies of everything read in one turn arrive together after the commit. */
size_t stream_conn_backlog(const stream_conn_t *conn);

/* ---- reads for HTTP ---- */

typedef struct stream_read_info {
  char epoch[STORE_EPOCH_LEN + 1];
  uint64_t head;      /* newest seq */
  uint64_t first;     /* oldest retained seq (head + 1 when none) */
  uint64_t gap_from;  /* 0 when no gap; else events gap_from..gap_to are gone */
  uint64_t gap_to;
} stream_read_info_t;

/* f is borrowed for the call (ref it to keep it). Return nonzero to stop. cb must not call
 * back into the hub (the store may be mid-iteration). */
typedef int (*stream_read_cb)(void *ud, const stream_frame_t *f);
/* Calls cb for retained events with seq > after, ascending, at most limit (1..10000).
 * -ENOENT for an unknown topic; -EINVAL for a bad name or limit. */
int stream_read(stream_hub_t *hub, const char *topic, uint64_t after, size_t limit, stream_read_cb cb, void *ud,
                stream_read_info_t *info) __attribute__((warn_unused_result));
/* stream_read for the event loop: where it would wait for a WAL settle's pass (the store's
 * reader is held, tens of ms at the publish ceiling), returns -EAGAIN instead. cb may have
 * been called for some frames by then: drop them, wait (stream_reader_wait) and read
 * again from the start. */
int stream_read_nowait(stream_hub_t *hub, const char *topic, uint64_t after, size_t limit, stream_read_cb cb,
                       void *ud, stream_read_info_t *info) __attribute__((warn_unused_result));

/* A caller put off by -EAGAIN waits in one of these (embedded in its own state) for the
 * store's reader. The links are the hub's. */
typedef struct stream_reader_wait stream_reader_wait_t;
struct stream_reader_wait {
  stream_reader_wait_t *prev, *next;
  void (*cb)(stream_reader_wait_t *w); /* called once, from the loop */
};
/* Calls cb(w) once the store's reader is free again (checked every 2 ms; at most 8
 * callbacks per loop turn, oldest first). w must not be waiting already, and must stay
 * valid until the callback or stream_reader_wait_cancel. A hub that closes drops the
 * waits left without calling them back: stop its callers first. */
void stream_reader_wait(stream_hub_t *hub, stream_reader_wait_t *w, void (*cb)(stream_reader_wait_t *w));
/* Cancels a wait not called back yet; a no-op otherwise, also on a zeroed w that never
 * waited. */
void stream_reader_wait_cancel(stream_reader_wait_t *w);

typedef struct stream_topic_info {
  const char *topic;
  const char *epoch;
  uint64_t head;
  uint64_t first;
  uint64_t subscribers;
} stream_topic_info_t;
typedef int (*stream_topic_list_cb)(void *ud, const stream_topic_info_t *t);
/* Topics of a tenant by name, after the topic `after` when not NULL (paging: the last
 * topic of the previous page), at most limit (0 = all), with live subscriber counts.
 * cb must not call back into the hub (the store is mid-iteration). */
int stream_list_topics(stream_hub_t *hub, const char *tenant, const char *after, size_t limit,
                       stream_topic_list_cb cb, void *ud) __attribute__((warn_unused_result));

/* ---- consumer groups (docs/groups.md) ----
 *
 * A connection joins a named group of a topic; each reliable event of the topic then goes
 * to exactly one live member of each group (plain subscribers still get everything), as
 * a per-delivery frame {"op":"ev","group":G,["redelivered":n,]...} that needs an ack.
 * Unacked deliveries go to another member after the group's ack_wait_ms, at once when
 * the member leaves, or after a nack's delay; after max_deliveries the event is published
 * to "<topic>.dlq" with the reason. Position and pending leases are stored (one small
 * transaction per loop turn) and survive restarts. */

#define STREAM_GROUP_NAME_MAX 64           /* [A-Za-z0-9_.-]{1,64} */
#define STREAM_GROUP_WAIT_MAX_MS 86400000u /* bound of ack_wait_ms and a nack's delay_ms */

typedef struct stream_group_join {
  const char *group;              /* the group's name */
  const stream_position_t *start; /* where a group that does not exist yet starts; NULL = live */
  uint32_t max_inflight;          /* 0 = group_max_inflight; at most group_max_inflight_limit */
  uint32_t ack_wait_ms;           /* 0 = group_ack_wait_ms; only for a new group */
} stream_group_join_t;

/* Joins (or, when already a member, updates max_inflight) and queues "subscribed" with
 * the group's figures. Errors: -EINVAL (topic, group, max_inflight, ack_wait_ms or start,
 * err names it), -EACCES, -EMLINK (subscriptions per connection, groups per topic or
 * members per group), -EIO (store). */
int stream_conn_group_join(stream_conn_t *conn, const char *topic, const stream_group_join_t *join,
                           stream_err_t *err) __attribute__((warn_unused_result));
/* Leaves: held deliveries go to other members at once. -ENOENT when not a member. */
int stream_conn_group_leave(stream_conn_t *conn, const char *topic, const char *group)
    __attribute__((warn_unused_result));
/* Acknowledges seq (held by this member, or waiting for redelivery). -ENOENT (not a
 * member; seq not pending; held by another member), err names the field. */
int stream_conn_group_ack(stream_conn_t *conn, const char *topic, const char *group, uint64_t seq,
                          stream_err_t *err) __attribute__((warn_unused_result));
/* Restarts the lease of seq held by this member (heartbeat). Errors as for ack. */
int stream_conn_group_extend(stream_conn_t *conn, const char *topic, const char *group, uint64_t seq,
                             stream_err_t *err) __attribute__((warn_unused_result));
/* Gives seq back: redelivered (preferably to another member) after delay_ms. Errors as
 * for ack, and -EINVAL for delay_ms over STREAM_GROUP_WAIT_MAX_MS. */
int stream_conn_group_nack(stream_conn_t *conn, const char *topic, const char *group, uint64_t seq,
                           uint32_t delay_ms, stream_err_t *err) __attribute__((warn_unused_result));

typedef struct stream_group_info {
  const char *topic;
  const char *group;
  const char *epoch;
  uint64_t head;     /* the topic's newest seq */
  uint64_t position; /* last seq handed out for the first time (next - 1) */
  uint64_t pending;  /* leases: delivered and unacked, or waiting for redelivery */
  uint64_t inflight; /* leases held by members */
  uint32_t members;
  uint32_t ack_wait_ms;
  bool loaded; /* in memory; the counters below count since it was loaded */
  uint64_t deliveries, redeliveries, acks, nacks, dead_lettered, skipped;
} stream_group_info_t;
typedef int (*stream_group_cb)(void *ud, const stream_group_info_t *g);

/* The groups of a topic, stored or in memory, by name. cb must not call back into the
 * hub. -EINVAL (topic name), -EIO (store). An unknown topic has no groups. */
int stream_list_groups(stream_hub_t *hub, const char *topic, stream_group_cb cb, void *ud)
    __attribute__((warn_unused_result));
/* Every group in memory (for /metrics), in no particular order. Returns 0 or cb's nonzero. */
int stream_hub_groups_foreach(stream_hub_t *hub, stream_group_cb cb, void *ud);
/* Forgets a group (its position and pending leases). -EBUSY while it has members,
 * -ENOENT when unknown, -EINVAL, -EIO. */
int stream_group_delete(stream_hub_t *hub, const char *topic, const char *group)
    __attribute__((warn_unused_result));
/* Expires leases past their deadline, makes delayed redeliveries due, retries a failed
 * state write and forgets groups idle (no member) for idle_topic_s. The hub's group timer
 * calls this every 50 ms; tests with an injected clock call it directly. Returns the number
 * of leases that expired. */
size_t stream_hub_groups_tick(stream_hub_t *hub);

#endif

