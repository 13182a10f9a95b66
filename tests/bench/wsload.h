/* Declarations shared by the files of the wsload tool (tests/bench/wsload*.c).
 *
 * wsload.c owns the command line, the worker processes and the merged JSON summary;
 * wsload_worker.c, wsload_conn.c and wsload_msg.c are one worker process (its loop, its
 * connections, the meaning of messages; wsload_worker.h); wsload_scan.c scans the hot
 * messages; wsload_stats.c owns latency samples (exact percentiles), per-connection
 * sequence checks and the result blob a worker hands to the parent. Nothing here is a
 * public API of the project. */
#ifndef BENCH_WSLOAD_H
#define BENCH_WSLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { WL_MODE_IDLE, WL_MODE_SUB, WL_MODE_PUB, WL_MODE_PUBSUB } wl_mode_t;
typedef enum { WL_ROLE_IDLE, WL_ROLE_SUB, WL_ROLE_PUB } wl_role_t;

/* Everything the command line sets; read-only once workers are forked. */
typedef struct wl_opts {
  wl_mode_t mode;
  char host[64];        /* numeric loopback address */
  int port;
  char path[512];       /* request target, including any query string */
  bool ipv6;
  uint32_t conns;       /* idle/sub connections (subscribers in pubsub) */
  uint32_t pubs;        /* publisher connections */
  uint32_t topics;
  char topic_prefix[128];
  double rate;          /* publishes/s, all publishers together */
  uint32_t payload;     /* bytes of the event's data object, about */
  double duration;      /* s: hold (idle), receive (sub) or publish (pub) time */
  double warmup;        /* s: first part of the publish window left out of latency */
  double grace;         /* s: after publishing, wait up to this for acks and events */
  uint32_t workers;     /* processes for idle/sub connections */
  uint32_t pub_workers; /* processes for publishers */
  double conn_rate;     /* new connections/s, all workers together */
  double connect_timeout; /* s, per connection, until open (and subscribed) */
  uint32_t src_addrs;   /* bind to 127.0.0.2 .. 127.0.0.(1+src_addrs); 0 = no bind */
  bool subscribe;       /* idle: each connection subscribes to one topic */
  bool ping_once;       /* idle: one {"op":"ping"} per connection once open */
  double ping_interval; /* s, 0 = never: {"op":"ping"} from every connection */
  uint64_t max_samples; /* latency samples kept per worker; reservoir beyond */
  char ready_file[512]; /* created once every connection is open or failed */
  bool quiet;
  bool nats;            /* idle only: speak NATS's client protocol over the WebSocket */
  char pub_subprotocol[32]; /* Sec-WebSocket-Protocol of publishers ("" = none) */
} wl_opts_t;

/* The error codes counted one by one; anything else counts as the last, "other". */
#define WL_PAYLOAD_MAX 65000 /* --payload bytes at most (wsload_worker.c sizes its buffer by it) */
#define WL_NCODES 8
extern const char *const wl_error_codes[WL_NCODES];

/* Counters a worker reports; the parent adds them up field by field (all uint64_t). */
typedef struct wl_counts {
  uint64_t conns;           /* connections this worker was asked to open */
  uint64_t opened;          /* upgrade answered 101 with the right accept key */
  uint64_t failed;          /* never opened */
  uint64_t fail_connect, fail_http, fail_handshake, fail_timeout;
  uint64_t closed_by_server; /* open connections the server closed before the end */
  uint64_t close_1000, close_1001, close_1008, close_1009, close_1011, close_other, close_abrupt;
  uint64_t proto_errors;    /* frames that broke RFC 6455 (connection dropped) */
  uint64_t sub_sent, subscribed, sub_errors, sub_timeouts;
  uint64_t ev_received, ev_no_seq, ev_duplicates, ev_reordered, ev_holes, gaps;
  uint64_t pub_sent, pub_acked, pub_ack_duplicate, pub_err_rate_limited, pub_err_overloaded,
      pub_err_other, pub_skipped;
  uint64_t pings_sent, pongs, server_pings;
  uint64_t other_messages, bad_messages;
  uint64_t error_codes[WL_NCODES]; /* every {"op":"error"} received, by wl_error_codes[] */
  uint64_t connect_us;      /* time from first connect to all settled */
  uint64_t publish_us;      /* time publishing actually lasted */
  uint64_t ack_span_us;     /* from the start of publishing to the last ack */
  /* connect_us, publish_us and ack_span_us are merged as maxima, the rest as sums. */
} wl_counts_t;

/* ---- the hand-written scan of hot messages (wsload_scan.c) ---- */

/* Where key's value starts in a JSON text (key given with its quotes, first occurrence
 * followed by a colon), or NULL; *end gets the end of the text. */
const char *wl_json_find(const char *p, size_t len, const char *key, const char **end);
/* The unsigned integer value of key (also inside quotes); false when absent. */
bool wl_json_u64(const char *p, size_t len, const char *key, uint64_t *out);
/* Whether key's value is the string want (compared as raw bytes, no unescaping). */
bool wl_json_str_is(const char *p, size_t len, const char *key, const char *want);

typedef enum {
  WL_OP_OTHER = 0, WL_OP_EV, WL_OP_PUBACK, WL_OP_PONG, WL_OP_SUBSCRIBED, WL_OP_GAP, WL_OP_ERROR
} wl_op_t;

/* The op of a server message (WL_OP_OTHER when missing or unknown). */
wl_op_t wl_scan_op(const char *p, size_t len);

/* What wsload checks in an event. */
typedef struct wl_ev_scan {
  bool has_seq;
  uint64_t seq;
  bool has_t0;     /* data.t0, an unsigned integer */
  uint64_t t0_us;  /* publisher's CLOCK_REALTIME; a t0 below 10^14 is taken as ms */
  bool warm;       /* ,"w":1 right after t0: published during the warm-up */
} wl_ev_scan_t;

void wl_scan_ev(const char *p, size_t len, wl_ev_scan_t *ev);

/* Latency samples in microseconds: all of them up to max, a uniform reservoir beyond. */
typedef struct wl_samples {
  uint32_t *v; /* owned */
  uint64_t n, cap, max;
  uint64_t seen; /* observations offered, n <= seen */
  uint64_t sum_us;
  uint32_t max_us;
  uint64_t rng;
} wl_samples_t;

void wl_samples_init(wl_samples_t *s, uint64_t max, uint64_t seed);
void wl_samples_add(wl_samples_t *s, uint64_t us);
void wl_samples_close(wl_samples_t *s);
/* Sorts v in place (radix) so percentiles can be read exactly. */
void wl_samples_sort(uint32_t *v, uint64_t n);
/* Nearest-rank percentile of sorted v; q in (0,1]. 0 when n is 0. */
uint32_t wl_percentile(const uint32_t *sorted, uint64_t n, double q);

/* Per-connection sequence check: dense seq expected (1 step at a time). Invariant:
 * seen marks seqs last, last-1, ... last-63 (bit i = last - i) that have arrived. */
typedef struct wl_seq {
  bool have;
  uint64_t first, last; /* lowest and highest seq received */
  uint64_t window;
  uint64_t unique, duplicates, reordered, holes; /* holes: missing between first and last */
} wl_seq_t;

void wl_seq_see(wl_seq_t *s, uint64_t seq);

/* One subscriber connection's outcome, to compute loss against what was acked. */
typedef struct wl_conn_rec {
  uint32_t topic;
  uint32_t subscribed;
  uint64_t first, last, unique, holes;
} wl_conn_rec_t;

/* What publishers saw acknowledged per topic. */
typedef struct wl_topic_rec {
  uint64_t min_seq, max_seq, acked; /* min_seq UINT64_MAX when nothing acked */
} wl_topic_rec_t;

/* Events subscriber c missed of those acknowledged on its topic t: holes between the
 * first and last seq it saw, plus acked seqs before its first and after its last (all of
 * them when it saw none). *expected gets how many acked seqs it should have seen. */
uint64_t wl_loss_for(const wl_conn_rec_t *c, const wl_topic_rec_t *t, uint64_t *expected);

/* A worker's whole result. */
typedef struct wl_result {
  wl_counts_t c;
  wl_samples_t lat; /* delivery latency, publisher t0 to receipt */
  wl_samples_t ack; /* publish to puback */
  wl_conn_rec_t *conn_recs; /* owned, nconn_recs */
  uint64_t nconn_recs;
  wl_topic_rec_t *topic_recs; /* owned, ntopics */
  uint64_t ntopics;
} wl_result_t;

/* Writes r to fd / reads one from fd (blocking, whole). Return 0 or -errno. */
int wl_result_write(int fd, const wl_result_t *r) __attribute__((warn_unused_result));
int wl_result_read(int fd, wl_result_t *r) __attribute__((warn_unused_result));
void wl_result_close(wl_result_t *r);

/* Control bytes on the pipes between parent and workers. */
#define WL_MSG_READY 'R' /* worker -> parent: every connection settled */
#define WL_MSG_DONE 'D'  /* worker -> parent: result blob follows */
#define WL_MSG_GO 'G'    /* parent -> worker: start holding / publishing / receiving */
#define WL_MSG_STOP 'S'  /* parent -> worker: publishers finished, drain then stop */

/* A worker's assignment. */
typedef struct wl_worker_spec {
  wl_role_t role;
  uint32_t index;     /* among workers of its role */
  uint32_t first_conn; /* global index of its first connection */
  uint32_t nconns;
  double share;       /* fraction of the publish rate (publishers) */
  int ctl_in;         /* fd: parent -> worker */
  int ctl_out;        /* fd: worker -> parent */
} wl_worker_spec_t;

/* Runs one worker to completion and returns the process exit code. */
int wl_worker_run(const wl_opts_t *o, const wl_worker_spec_t *spec);

/* CLOCK_REALTIME and CLOCK_MONOTONIC in microseconds. */
uint64_t wl_realtime_us(void);
uint64_t wl_monotonic_us(void);

#endif
