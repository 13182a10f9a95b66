/* Declarations shared by the files of streams/ (not part of the public interface).
 *
 * Structures and their invariants live here; each .c file owns one responsibility:
 * frame.c (serialized frames), ring.c (recent events of a topic), bucket.c (token
 * buckets), dedupe.c (idempotency keys), topic_name.c (names, partitions), topic.c (topic
 * table, loading, eviction), hub.c (lifecycle, loop phase), publish.c (publish and group
 * commit), writer.c (the commit thread), router.c (fanout walks), conn.c (connections, subscriptions, control queue),
 * cursor.c (pull), protocol.c (client messages), read.c (HTTP reads), retention.c,
 * group.c (consumer groups: table, membership, persistence, listing) and group_lease.c
 * (group dispatch, leases, acks, redelivery, dead letters). */
#ifndef STREAMS_INTERNAL_H
#define STREAMS_INTERNAL_H

#include <jansson.h>

#include "base/map.h"
#include "base/queue.h"
#include "streams.h"

#define STREAM_ID_MAX 200   /* bytes of an idempotency key */
#define STREAM_TYPE_MAX 200 /* bytes of an event type */
#define STREAM_REF_MAX 128  /* bytes of a client's ref */
#define STREAM_PUB_FREE_MAX 4096 /* finished publishes kept for reuse: publishing allocates nothing per event for them */
#define STREAM_RETRY_OVERLOAD_MS 250

/* ---- frames ---- */

#define STREAM_FRAME_POOL_CLASS 64   /* bytes: pooled allocations are multiples of it */
#define STREAM_FRAME_POOL_CLASSES 16 /* so frames of up to 1 KiB are pooled */
#define STREAM_FRAME_POOL_BYTES (4u << 20) /* a hub's bound on the bytes its lists keep */

/* The frames of a hub: their accounting, and the allocations of released frames kept for
 * reuse. A commit lands thousands of events at once, each with an event frame and a
 * puback, and the ring then releases as many older frames: in bursts that size glibc's
 * per-thread caches are overflowed and every malloc and free goes through the arena's bins.
 * Here a released frame of at most STREAM_FRAME_POOL_CLASSES x STREAM_FRAME_POOL_CLASS bytes
 * goes on the list of its size class (LIFO, linked through the block's first word) while
 * free_bytes stays within max_bytes, and the next frame of that class takes it back.
 * Loop thread only. */
typedef struct stream_frames {
  stream_stats_t *acct; /* borrowed: frames and frame_bytes gauges of live frames; NULL: none */
  void *free[STREAM_FRAME_POOL_CLASSES]; /* owned: block lists, class c holds (c+1) x CLASS bytes */
  size_t free_bytes; /* bytes held in the lists */
  size_t max_bytes;  /* bound on free_bytes; 0: nothing is kept and sizes stay exact */
} stream_frames_t;

/* acct may be NULL; max_bytes 0 turns the lists off. */
void stream__frames_init(stream_frames_t *fr, stream_stats_t *acct, size_t max_bytes);
/* Frees the lists and turns them off: frames released later are freed at once. */
void stream__frames_close(stream_frames_t *fr);

/* One serialized message. refs counts owners (ring slot, connection queue, pull output).
 * All strings point into the same allocation: [struct][headroom][payload NUL][topic NUL]
 * [type NUL]. Immutable after creation except refs and durable_us. */
struct stream_frame {
  uint32_t refs;
  uint8_t kind; /* stream_frame_kind_t */
  uint8_t lane; /* stream_lane_t; STREAM_LANE_CONTROL for control frames */
  uint8_t pool_class; /* 1 + size class: released to frames' lists; 0: freed */
  const char *op;   /* static string */
  uint64_t seq;     /* 0 when none */
  int64_t ts_ms;    /* wall clock of the publish, ms */
  uint64_t durable_us; /* mono clock when committed; 0 when unknown (store reads) */
  const char *topic;   /* inside the allocation, NULL when none */
  const char *type;    /* inside the allocation, NULL when none */
  size_t data_off;     /* bytes: where "data"'s JSON starts in payload (events) */
  size_t data_len;     /* bytes */
  size_t len;          /* bytes of payload */
  size_t size;         /* bytes of the whole allocation (accounting) */
  stream_frames_t *frames; /* borrowed: the hub's (accounting, lists); NULL: neither */
  unsigned char *payload;
};

/* What an event frame says besides its data. Strings are borrowed. */
typedef struct stream_evhdr {
  const char *topic;
  const char *epoch;
  uint64_t seq; /* 0 = ephemeral, no seq field */
  const char *id;
  const char *type;
  int lane;
  int64_t ts_ms;
} stream_evhdr_t;

/* data/data_len: compact JSON text written by jansson (NULL = null). */
stream_frame_t *stream__frame_event(stream_frames_t *fr, size_t headroom, const stream_evhdr_t *h, const char *data,
                                    size_t data_len);
/* Serializes obj (borrowed) as a control frame; topic may be NULL. */
stream_frame_t *stream__frame_control(stream_frames_t *fr, size_t headroom, const char *op, const char *topic,
                                      json_t *obj);
const char *stream__lane_name(int lane);
int stream__lane_parse(const char *name, int *lane);

/* ---- JSON text on the hot path (json_text.c) ---- */

/* Validates text as one JSON value (RFC 8259, UTF-8, no U+0000, paired surrogates, at most
 * max_depth nesting) and, when out is not NULL, writes it without insignificant whitespace
 * (out needs len bytes). -EINVAL with *err_off at the offending byte. */
int stream__json_compact(const char *text, size_t len, uint32_t max_depth, char *out, size_t *out_len,
                         size_t *err_off);
/* Writes str (valid UTF-8) as a JSON string, quotes included, escaped like jansson's
 * compact dump; out needs 6 * strlen(str) + 2 bytes. Returns the bytes written. */
size_t stream__json_escape(char *out, const char *str);
size_t stream__json_escape_len(const char *str);
/* A string measured once for a writer that sizes its output first, then writes. */
typedef struct stream_jstr {
  const char *s;  /* borrowed */
  size_t len;     /* bytes: strlen(s) */
  size_t esc_len; /* bytes: stream__json_escape_len(s); len + 2 when nothing is escaped */
} stream_jstr_t;
/* Fills j for s; returns j->esc_len. */
size_t stream__json_escape_measure(stream_jstr_t *j, const char *s);
/* What stream__json_escape writes for j->s (j->esc_len bytes), copied without a second
 * look when nothing needs escaping. */
size_t stream__json_escape_jstr(char *out, const stream_jstr_t *j);
bool stream__utf8_valid(const char *str, size_t len);

/* ---- ring: the newest committed frames of a topic, seqs [lo, lo + count) ---- */

/* Frames kept by the ring of a topic with no subscriber and no group (ring_size when it
 * has one): its newest events stay in memory for a reader that comes back, without the
 * churn of a full ring of cold frames (docs/streams.md, "A topic nobody reads keeps 16
 * frames"). */
#define STREAM_RING_QUIET 16

typedef struct stream_ring {
  stream_frame_t **slots; /* owned array of refs; capacity cap, grows to the ring size */
  uint32_t cap;
  uint32_t start; /* slot of seq lo */
  uint32_t count;
  uint64_t lo; /* seq of the oldest entry; meaningful when count > 0 */
} stream_ring_t;

void stream__ring_init(stream_ring_t *r);
void stream__ring_close(stream_ring_t *r);
/* Takes f's reference and keeps at most max frames, dropping the oldest (max may be less
 * than on earlier pushes). f->seq should be lo + count; otherwise the ring restarts at f (a
 * hole is never kept inside it). At max entries the oldest is released. */
void stream__ring_push(stream_ring_t *r, uint32_t max, stream_frame_t *f);
/* Borrowed frame of seq, or NULL when not in the ring. */
stream_frame_t *stream__ring_get(const stream_ring_t *r, uint64_t seq);
/* Releases entries with seq < seq. */
void stream__ring_drop_below(stream_ring_t *r, uint64_t seq);

/* ---- token buckets ---- */

typedef struct stream_bucket {
  double tokens;
  uint64_t last_ms; /* mono ms of the last refill */
} stream_bucket_t;

void stream__bucket_init(stream_bucket_t *b, uint32_t burst, uint64_t now_ms);
/* Whether one token is available now (refilling first); when not, *retry_ms says when. A
 * rate of 0 means unlimited. */
bool stream__bucket_check(stream_bucket_t *b, double rate, uint32_t burst, uint64_t now_ms, uint32_t *retry_ms);
void stream__bucket_take(stream_bucket_t *b);

/* ---- dedupe: idempotency keys of one topic inside the window ---- */

typedef struct stream_dedupe_entry {
  base_map_node_t node; /* key = id */
  base_queue_t fifo;    /* by ts, oldest first */
  uint64_t seq;
  int64_t ts_ms;
  bool pending; /* not yet committed */
  char id[];
} stream_dedupe_entry_t;

typedef struct stream_dedupe {
  base_map_t map;
  base_queue_t fifo;
} stream_dedupe_t;

void stream__dedupe_init(stream_dedupe_t *d);
void stream__dedupe_close(stream_dedupe_t *d);
/* Forgets keys older than min_ts_ms, then finds id. */
stream_dedupe_entry_t *stream__dedupe_find(stream_dedupe_t *d, const char *id, int64_t min_ts_ms);
stream_dedupe_entry_t *stream__dedupe_add(stream_dedupe_t *d, const char *id, uint64_t seq, int64_t ts_ms, bool pending);
void stream__dedupe_remove(stream_dedupe_t *d, stream_dedupe_entry_t *e);
size_t stream__dedupe_count(const stream_dedupe_t *d);

/* ---- topics ---- */

#define STREAM_EPH_TOPIC_MAX 16

/* A topic in memory. Invariants: head_seq < next_seq; next_seq - head_seq - 1 events are
 * pending commit; ring holds committed frames only; the topic is in hub->idle_topics
 * exactly when it is evictable (no subscriber, nothing pending, no route walk queued). */
/* A topic created in memory with a reserved id (store_topic_reserve) has no row in the
 * store until a batch writes it, before any of its events: QUEUED in hub->creates until
 * batch_take takes it into the next batch, IN_BATCH until that batch lands, then SAVED;
 * FAILED when that batch failed, queued again by the next stream__topic_get (a publish or
 * a subscribe: never in a loop of failing batches). Topics loaded from the store are
 * SAVED. QUEUED and IN_BATCH topics are never evicted, so a name is created only once. */
typedef enum stream_row {
  STREAM_ROW_SAVED = 0,
  STREAM_ROW_QUEUED,
  STREAM_ROW_IN_BATCH,
  STREAM_ROW_FAILED,
} stream_row_t;

typedef struct stream_topic {
  base_map_node_t node;      /* in hub->topics; key = name */
  base_queue_t idle_link;    /* in hub->idle_topics */
  base_queue_t route_link;   /* in its partition's route queue */
  base_queue_t route_marker; /* in subs while a router walk is under way */
  base_queue_t subs;         /* stream_sub_t.topic_link */
  uint32_t nsubs;
  uint32_t partition;
  uint32_t pins;             /* publishes not yet completed, plus one per group in memory */
  int64_t topic_id;          /* store's key */
  char epoch[STORE_EPOCH_LEN + 1];
  uint64_t head_seq;  /* newest committed */
  uint64_t next_seq;  /* next to assign */
  uint64_t first_seq; /* oldest retained according to the store at load/refresh */
  stream_ring_t ring;
  stream_dedupe_t dedupe;
  stream_bucket_t bucket;
  uint64_t idle_since_us;
  bool route_dirty;   /* committed events after the current walk started */
  bool commit_failed; /* transient inside a commit run */
  stream_row_t row;         /* whether the store has its row yet (stream_row_t) */
  base_queue_t create_link; /* in hub->creates while row is STREAM_ROW_QUEUED */
  stream_frame_t *eph_pending[STREAM_EPH_TOPIC_MAX]; /* owned; latest per type */
  uint32_t n_eph_pending;
  stream_frame_t *eph_walk[STREAM_EPH_TOPIC_MAX]; /* owned; being routed */
  uint32_t n_eph_walk;
  base_queue_t groups;       /* stream_group_t.topic_link; initialised by the first group */
  uint32_t ngroups;          /* groups in memory; t->groups is meaningful only while > 0 */
  size_t tenant_len;
  size_t name_len;
  char name[];
} stream_topic_t;

/* Looks up the topic in memory, loading it from the store on demand; a topic the store
 * does not have is created in memory at once and its row written by the next batch (see
 * stream_row_t), so the loop never waits for the commit thread here. -EIO on store
 * failure. */
int stream__topic_get(stream_hub_t *hub, const char *name, size_t tenant_len, stream_topic_t **out);
stream_topic_t *stream__topic_find(stream_hub_t *hub, const char *name);
/* For a topic whose row a batch failed to write with -EEXIST (another writer created the
 * name): takes the store's row (id, epoch, head, first, keys), moves its subscribers'
 * cursors to the head and marks it SAVED. False when the store has no such row. */
bool stream__topic_adopt(stream_hub_t *hub, stream_topic_t *t);
/* Recomputes whether the topic is evictable and moves it in or out of the idle list. */
void stream__topic_update_idle(stream_hub_t *hub, stream_topic_t *t);
/* Oldest seq still deliverable now (store first_seq, count rule); see docs/streams.md. */
uint64_t stream__topic_first(const stream_hub_t *hub, const stream_topic_t *t);
uint64_t stream__retained_first(const stream_hub_t *hub, uint64_t first_seq, uint64_t head_seq);
/* Whether a committed event with ts_ms is beyond the age rule now. */
bool stream__expired(const stream_hub_t *hub, int64_t ts_ms);
void stream__topic_free(stream_hub_t *hub, stream_topic_t *t);
/* Items (ring frames, idempotency keys, and one per topic) a sweep turn frees at most:
 * about 1 ms of cold frees (measured: 16,384 took 3.9-4.6 ms), where 20,000 topics going
 * idle together held the loop for 100-250 ms in one sweep. */
#define STREAM_SWEEP_BUDGET 4096
/* Evicts the idle topics that are due, oldest first, until their items reach budget
 * (always at least one topic), then forgets idle tenants' buckets (one item each) within
 * what is left of it; *more is set when something due is left for the next turn.
 * Returns the topics evicted. */
size_t stream__hub_sweep_some(stream_hub_t *hub, size_t budget, bool *more);

/* ---- hub ---- */

typedef struct stream_partition {
  base_queue_t pending; /* stream_pub_t.link, in seq order per topic */
  base_queue_t route;   /* stream_topic_t.route_link */
} stream_partition_t;

typedef struct stream_tenant {
  base_map_node_t node;
  base_queue_t lru;
  stream_bucket_t bucket;
  uint64_t last_ms;
  char name[];
} stream_tenant_t;

/* One retention slice's arguments, as store_retention_run takes them. */
typedef struct stream_trim_args {
  uint64_t max_events;
  int64_t min_ts_ms;        /* 0: no age rule */
  int64_t dedupe_min_ts_ms; /* idempotency keys older than this expire */
  size_t budget;            /* events at most */
} stream_trim_args_t;

/* The commit thread (writer.c): commits one batch at a time off the loop and posts the
 * result back with async. The loop hands a batch over only while no batch is in flight
 * (busy is false) and reads the result only after done; the fields marked "mu" are read
 * and written under mu, the others only on the loop thread. While a batch is in flight
 * the loop never touches evs[0..nevs) nor anything they point into (frames are immutable;
 * the ids are pending dedupe entries, which live until the batch's result is applied). */
typedef struct stream_writer {
  bool on;                /* the thread runs (cfg.commit_thread) */
  bool busy;              /* a batch is handed over and its result not yet applied */
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t wake;         /* the thread waits here for a job or stop */
  uv_cond_t landed;       /* the loop waits here in drain and close */
  uv_async_t async;       /* referenced exactly while busy, so a loop waits for the result */
  store_event_t *evs;     /* owned array, capacity cap */
  size_t nevs, cap;
  /* The batch's new topics, written before evs: tops[i] is the row of top_of[i] (whose
   * name and epoch it points into), owned arrays of capacity tops_cap. */
  store_new_topic_t *tops;
  stream_topic_t **top_of;
  size_t ntops, tops_cap;
  bool job;               /* mu: evs[0..nevs) are to be written */
  bool done;              /* mu: the job's result is in rc, us */
  bool stop;              /* mu: the thread should exit once idle */
  int rc;                 /* mu: store_batch_write's result */
  uint64_t us;            /* mu: how long it took (real clock, microseconds) */
  /* Retention slices (retention.c) run here too, between batches, so the loop never waits
   * for the store lock a commit holds nor runs SQLite's deletes itself. */
  bool trim;              /* a slice is handed over and its result not yet applied */
  stream_trim_args_t trim_args; /* written by the loop before trim_job, then read-only */
  bool trim_job;          /* mu: trim_args are to be run */
  bool trim_done;         /* mu: the slice's result is in trim_rc, trim_more */
  int trim_rc;            /* mu: store_retention_run's result */
  bool trim_more;         /* mu: the pass has work left */
} stream_writer_t;

struct stream_hub {
  uv_loop_t *loop;   /* borrowed */
  store_t *store;    /* borrowed */
  stream_config_t cfg;
  stream_clock_t clock;
  uv_check_t check;  /* commit, callbacks, router, wakes: once per loop turn */
  uv_idle_t idle;    /* active while work is left, so the loop does not block */
  uv_timer_t retention_timer;
  uv_timer_t sweep_timer;
  uv_timer_t catchup_timer; /* retries the catch-up reads a WAL settle deferred (cursor.c) */
  int open_handles;
  bool closing;
  bool draining;
  bool in_check;
  base_map_t topics;       /* stream_topic_t */
  base_queue_t idle_topics; /* evictable topics, oldest idle first */
  base_queue_t creates;     /* topics whose row no batch has taken yet (create_link) */
  base_map_t tenants;      /* stream_tenant_t */
  base_queue_t tenant_lru;
  stream_partition_t *parts; /* owned, cfg.partitions */
  uint32_t commit_rr;
  uint32_t route_rr;
  base_queue_t done;  /* stream_pub_t awaiting their callback */
  base_queue_t pub_free; /* owned stream_pub_t kept for reuse (at most STREAM_PUB_FREE_MAX) */
  uint32_t npub_free;
  base_queue_t batch; /* stream_pub_t of the batch the writer holds (writer.busy) */
  uint32_t batch_appends; /* events of that batch (the rest are duplicates) */
  stream_writer_t writer;
  uint64_t inline_paused_until_us; /* mono clock: small batches go to the thread until then */
  uint8_t inline_slow_run;         /* slow inline commits in a row (each doubles the pause) */
  bool route_left;                 /* the last router run stopped with walks left (budget) */
  base_queue_t wakes; /* stream_conn_t.wake_link */
  /* Owned: the connections whose catch-up read a WAL settle deferred (catchup_wait set),
   * woken together once the store's reader is free again; NULL where one was freed. */
  stream_conn_t **catchup_waits;
  uint32_t ncatchup_waits, catchup_waits_cap;
  stream_reader_wait_t reader_waits; /* sentinel of the stream_reader_wait list */
  uint32_t nconns;
  base_map_t groups;          /* stream_group_t, owned; key = "topic\0name" */
  base_queue_t groups_ready;  /* stream_group_t.ready_link: may have work to dispatch */
  base_queue_t groups_dirty;  /* stream_group_t.dirty_link: changes to write */
  uv_timer_t group_timer;     /* lease expiry, delayed redelivery, reaping; runs while groups exist */
  uint64_t member_ids;        /* last member id handed out */
  bool groups_flush_failed;   /* the last flush failed: retried by the timer */
  stream_stats_t stats;
  stream_frames_t frames; /* every frame the hub makes; accounts into stats */
};

uint64_t stream__mono_us(const stream_hub_t *hub);
int64_t stream__wall_ms(const stream_hub_t *hub);
/* Makes sure the loop runs the hub's phase soon (starts the idle handle). */
void stream__hub_kick(stream_hub_t *hub);

/* ---- publish ---- */

/* A publish in flight: queued in its partition (reliable, or duplicate of a pending one)
 * or in hub->done (completed, callback due). Pins its topic (topic->pins). */
struct stream_pub {
  base_queue_t link;
  base_queue_t conn_link;   /* in conn->pubs when conn is set */
  stream_topic_t *topic;    /* pinned */
  stream_frame_t *frame;    /* owned; NULL for duplicates and ephemerals */
  stream_conn_t *conn;      /* borrowed; NULL when published through the API */
  stream_dedupe_entry_t *dedupe; /* borrowed; the event's pending idempotency key */
  char *ref;                /* the client's ref: ref_inline when it fits, else owned */
  stream_publish_cb cb;     /* NULL when cancelled */
  void *ud;
  uint64_t seq;
  uint64_t start_us;
  int status;
  bool duplicate;
  bool ephemeral;
  bool queued_reliable; /* counted in stats.pending (and pending_bytes) */
  uint32_t pending_bytes; /* what it added to stats.pending_bytes */
  char ref_inline[32];  /* short refs (most) live here: no allocation per publish */
};

typedef struct stream_pubin {
  const char *id;
  const char *type;
  int lane;
  const char *data; /* compact JSON text, NULL = null */
  size_t data_len;
} stream_pubin_t;

/* Frees the publishes kept for reuse (hub close). */
void stream__pub_free_all(stream_hub_t *hub);
int stream__publish(stream_hub_t *hub, const char *topic, const stream_pubin_t *in, stream_conn_t *conn,
                    const char *ref, stream_publish_cb cb, void *ud, stream_pub_t **handle, stream_err_t *err);
/* Commits what is queued, in bounded store batches, then queues completions. Without the
 * commit thread it commits everything now; with it, it hands the next batch to the
 * writer unless one is in flight (stream__commit_landed continues). */
void stream__commit_run(stream_hub_t *hub);
/* The writer's result for hub->batch (rc from store_batch_write, us its duration):
 * applies it as a synchronous commit would, then hands over the next batch. */
void stream__commit_landed(stream_hub_t *hub, int rc, uint64_t us);
/* Commits everything queued and waits for it (drain): nothing is in flight on return. */
void stream__commit_flush(stream_hub_t *hub);
/* Fires due callbacks (hub->done). */
void stream__complete_run(stream_hub_t *hub);
/* Fails every queued publish with status (hub close). */
void stream__publish_fail_all(stream_hub_t *hub, int status);
/* Whether the nesting of text stays within max_depth (strings are skipped). */
bool stream__json_depth_ok(const char *text, size_t len, uint32_t max_depth);
void stream__errf(stream_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the commit thread (writer.c) ---- */

/* Starts the thread (hub->writer.on) and its async handle; 0 or a negative errno. */
int stream__writer_start(stream_hub_t *hub) __attribute__((warn_unused_result));
/* Hands evs[0..nevs) to the thread (not busy, nevs > 0); sets busy. */
void stream__writer_submit(stream_hub_t *hub);
/* Blocks until the batch in flight has been written and applies its result (drain). */
void stream__writer_wait(stream_hub_t *hub);
/* Waits for the batch in flight (applying its result), then stops and joins the thread
 * (hub close; the hub closes the async handle with its others). */
void stream__writer_stop(stream_hub_t *hub);
/* Hands hub->writer.trim_args to the thread (hub->writer.trim set); the result comes back
 * through stream__retention_landed. Only while no slice is in flight. */
void stream__writer_trim(stream_hub_t *hub);

/* ---- retention (retention.c) ---- */

/* The arguments of the next slice, from the config and the hub's clock. */
void stream__retention_args(stream_hub_t *hub, stream_trim_args_t *out);
/* Runs one slice (any thread: the store takes its lock); *more is set when the pass has
 * work left. 0 or the store's negative errno. */
int stream__retention_run(stream_hub_t *hub, const stream_trim_args_t *a, bool *more);
/* Applies a slice's result on the loop: logs a failure and schedules the next slice (soon
 * while the pass has work left). */
void stream__retention_landed(stream_hub_t *hub, int rc, bool more);

/* ---- router ---- */

void stream__route_schedule(stream_hub_t *hub, stream_topic_t *t);
/* Walks scheduled topics within the budget; true when work is left. */
bool stream__router_run(stream_hub_t *hub);
/* Adds an ephemeral frame (takes the ref) to be routed, latest per type. */
void stream__route_ephemeral(stream_hub_t *hub, stream_topic_t *t, stream_frame_t *f);

/* ---- connections ---- */

typedef struct stream_sub {
  base_queue_t topic_link; /* in topic->subs */
  base_queue_t conn_link;  /* in conn->subs, round-robin order */
  stream_topic_t *topic;   /* pinned by nsubs */
  stream_conn_t *conn;
  uint64_t next_seq; /* next seq to deliver */
} stream_sub_t;

typedef struct stream_eph_slot {
  stream_sub_t *sub;
  stream_frame_t *frame; /* owned */
} stream_eph_slot_t;

/* One client. Invariants: ctrl holds at most cfg.control_queue_max frames (+1 for drain);
 * eph holds at most cfg.ephemeral_slots_max slots, one per (subscription, type); the conn
 * is in hub->wakes only while woken is set and the wake is not yet delivered. */
struct stream_conn {
  /* One is held for every connection: pointers and queues first, then the 32-bit
   * counters and the flags together, so the struct has no padding (176 bytes). */
  stream_hub_t *hub;
  stream_conn_ops_t ops;
  void *ud;
  char *tenant; /* owned; NULL = any */
  bool (*allows)(void *ud, stream_action_t action, const char *tenant, const char *room);
  void *allows_ud;
  stream_frame_t **ctrl;    /* owned ring of refs */
  stream_eph_slot_t *eph;   /* owned */
  const char *close_reason; /* static string */
  base_queue_t subs;
  base_queue_t pubs;      /* stream_pub_t.conn_link */
  base_queue_t members;   /* stream_member_t.conn_link: consumer group memberships */
  base_queue_t wake_link;
  unsigned scopes;
  uint32_t nsubs;
  uint32_t ctrl_cap, ctrl_head, ctrl_count;
  uint32_t neph;
  uint32_t npubs;     /* entries of pubs: publishes whose reply is still owed */
  uint32_t nmembers;
  uint32_t group_out; /* group deliveries queued over all memberships, not yet pulled */
  bool woken;
  bool draining;
  bool catchup_wait; /* in hub->catchup_waits: a store read for a lagging cursor was deferred */
};
_Static_assert(sizeof(void *) != 8 || sizeof(struct stream_conn) <= 176,
               "stream_conn grew: it is held for every connection (S3, docs/benchmarks.md)");

#define CTRL_RING_MIN 4 /* slots of a connection's first control ring (freed again when emptied) */

/* Queues a control frame (takes the ref). force allows one over the limit (drain).
 * On overflow marks the connection for closing and returns -ENOBUFS. */
int stream__conn_control(stream_conn_t *conn, stream_frame_t *f, bool force);
void stream__conn_wake(stream_conn_t *conn);
/* Takes conn out of hub->catchup_waits (before it is freed). */
void stream__catchup_forget(stream_conn_t *conn);
/* Delivers due wakes to transports. */
void stream__wake_run(stream_hub_t *hub);
/* Offers an ephemeral frame (borrowed) to a subscription of conn. */
void stream__conn_offer_ephemeral(stream_conn_t *conn, stream_sub_t *sub, stream_frame_t *f);
/* Queues {"op":"error",...}. code NULL derives it from status. */
int stream__conn_error(stream_conn_t *conn, const char *ref, int status, const char *topic, const char *message,
                       uint32_t retry_after_ms);
const char *stream__error_code(int status);
/* Completion of a publish made by conn: puback or error. */
void stream__conn_pub_done(stream_conn_t *conn, stream_pub_t *p, const stream_ack_t *ack);
bool stream__conn_may(const stream_conn_t *conn, stream_action_t action, const char *topic, size_t tenant_len);
stream_sub_t *stream__conn_find_sub(const stream_conn_t *conn, const char *topic);

/* ---- cursors ---- */

/* Builds an event frame from a stored event of t. */
stream_frame_t *stream__frame_from_store(stream_hub_t *hub, const char *topic, const char *epoch,
                                         const store_event_t *ev);

/* ---- consumer groups (group.c, group_lease.c) ---- */

#define STREAM_GROUP_TICK_MS 50 /* lease expiry granularity */

typedef struct stream_group stream_group_t;
typedef struct stream_member stream_member_t;

typedef enum {
  STREAM_LEASE_WAITING = 0, /* in group->waiting: to be (re)delivered once due */
  STREAM_LEASE_HELD = 1,    /* in group->held and member->held */
  STREAM_LEASE_DEAD = 2,    /* its dead letter is being published (dlq set) */
} stream_lease_state_t;

/* Why a lease last went back to waiting (named in dead letters). */
typedef enum {
  STREAM_LEASE_NEW = 0, STREAM_LEASE_EXPIRED, STREAM_LEASE_NACKED, STREAM_LEASE_LEFT, STREAM_LEASE_RESTORED
} stream_lease_why_t;

/* One pending event of a group: handed out (held) or waiting to be. Invariants: held ->
 * member set, linked in member->held and group->held (ordered by due_us, the deadline);
 * waiting -> member NULL, linked in group->waiting (ordered by due_us, when it may go);
 * frame set exactly while its delivery is queued on the member (out_link) and unpulled;
 * deliveries counts the deliveries that reached the connection's pull. */
typedef struct stream_lease {
  base_map_node_t node;     /* in group->leases; key = the bytes of seq */
  base_queue_t link;        /* group->held or group->waiting (neither while dead) */
  base_queue_t member_link; /* member->held */
  base_queue_t out_link;    /* member->outq while frame is set */
  base_queue_t dirty_link;  /* group->dirty_leases: to be written */
  stream_member_t *member;  /* borrowed: the holder */
  stream_frame_t *frame;    /* owned: the delivery not yet pulled */
  stream_pub_t *dlq;        /* borrowed handle: the dead-letter publish in flight */
  stream_group_t *group;    /* borrowed */
  uint64_t seq;
  uint64_t due_us;      /* mono clock: deadline (held) or when due (waiting) */
  uint64_t last_member; /* id of the last holder, 0 = none: redelivery prefers another */
  uint32_t deliveries;
  uint8_t state;        /* stream_lease_state_t */
  uint8_t why;          /* stream_lease_why_t */
  bool stored;          /* a row exists in the store (so removing it needs a delete) */
} stream_lease_t;

/* A connection's membership of a group. inflight == number of leases in held. */
struct stream_member {
  base_queue_t conn_link;  /* conn->members */
  base_queue_t group_link; /* group->members, dispatch rotation order */
  base_queue_t held;       /* stream_lease_t.member_link */
  base_queue_t outq;       /* stream_lease_t.out_link: deliveries to pull, FIFO */
  stream_group_t *group;   /* borrowed */
  stream_conn_t *conn;     /* borrowed */
  uint64_t id;             /* unique in the hub */
  uint32_t inflight;
  uint32_t max_inflight;
};

/* A consumer group of a topic in memory. Pins its topic. Invariants: next_seq <= head + 1;
 * every seq < next_seq that is neither acknowledged nor skipped has a lease; the group is
 * in hub->groups_dirty exactly while row_dirty, dels or dirty_leases hold something. */
struct stream_group {
  base_map_node_t node;     /* hub->groups */
  base_queue_t topic_link;  /* topic->groups */
  base_queue_t ready_link;  /* hub->groups_ready */
  base_queue_t dirty_link;  /* hub->groups_dirty */
  stream_hub_t *hub;        /* borrowed */
  stream_topic_t *topic;    /* pinned */
  base_queue_t members;     /* stream_member_t.group_link */
  uint32_t nmembers;
  base_map_t leases;        /* stream_lease_t, owned */
  base_queue_t held;        /* by deadline */
  base_queue_t waiting;     /* by due time */
  base_queue_t dirty_leases;
  uint64_t *dels;           /* owned: seqs whose stored rows go at the next flush */
  size_t ndels, cap_dels;
  uint32_t ndead;           /* leases whose dead letter is in flight */
  bool row_dirty;
  bool stored;              /* the group row exists in the store */
  stream_reader_wait_t fetch_wait; /* waiting while a store read of its is put off (WAL settle) */
  uint64_t next_seq;        /* next seq to hand out for the first time */
  uint32_t ack_wait_ms;
  uint64_t empty_since_us;  /* mono clock when the last member left */
  char epoch[STORE_EPOCH_LEN + 1];
  /* counters since the group entered memory */
  uint64_t deliveries, redeliveries, acks, nacks, dead_lettered, skipped;
  const char *name;         /* inside key */
  size_t klen;
  char key[];               /* topic NUL name NUL */
};

/* group.c */
void stream__groups_init(stream_hub_t *hub);
/* Writes pending changes and frees every group (hub close; conns are gone). */
void stream__groups_close(stream_hub_t *hub);
/* The hub phase: dispatch ready groups within a budget, then write changes. */
void stream__groups_run(stream_hub_t *hub);
bool stream__groups_busy(const stream_hub_t *hub);
/* Committed events on t: its groups may dispatch. */
void stream__groups_topic_committed(stream_hub_t *hub, stream_topic_t *t);
/* Leaves every group of conn (conn free): its held leases go back at once. */
void stream__groups_conn_free(stream_conn_t *conn);
void stream__group_mark_ready(stream_hub_t *hub, stream_group_t *g);
void stream__group_mark_dirty(stream_hub_t *hub, stream_group_t *g);
stream_member_t *stream__conn_find_member(const stream_conn_t *conn, const char *topic, const char *group);
bool stream__group_name_ok(const char *name);

/* group_lease.c */
stream_lease_t *stream__lease_new(stream_hub_t *hub, stream_group_t *g, uint64_t seq, uint32_t deliveries);
/* Removes the lease for good (acked, skipped, dead-lettered) and frees it. */
void stream__lease_drop(stream_hub_t *hub, stream_lease_t *l);
/* Takes a held lease back from its member (why), waiting again after delay_ms. */
void stream__lease_release(stream_hub_t *hub, stream_lease_t *l, int why, uint32_t delay_ms);
/* Dispatches g's due redeliveries, dead letters and new events; *budget counts down. */
void stream__group_dispatch(stream_hub_t *hub, stream_group_t *g, uint32_t *budget);
/* Expires g's held leases past their deadline; returns how many. */
size_t stream__group_expire(stream_hub_t *hub, stream_group_t *g, uint64_t now_us);
/* Copy of an event frame with "group" (and "redelivered" when n > 0) after "op". */
stream_frame_t *stream__frame_group(stream_hub_t *hub, const stream_frame_t *ev, const char *group,
                                    uint32_t redelivered);

#endif
