/* Declarations shared by the files of one wsload worker process (not the parent's):
 * wsload_worker.c (the loop, phases, timers, publishing and the result), wsload_conn.c
 * (a connection: connect, upgrade, reads, writes, close) and wsload_msg.c (what the
 * server's messages mean for the counters and samples). */
#ifndef BENCH_WSLOAD_WORKER_H
#define BENCH_WSLOAD_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "wsframe.h"
#include "wsload.h"

#define WL_RING 65536u              /* publishes in flight per publisher connection */
#define WL_MAX_MESSAGE (4u << 20)   /* bytes */
#define WL_MAX_WRITE_QUEUE (4u << 20) /* bytes queued per connection before skipping */
#define WL_MAX_INPROGRESS 1024u     /* connections being set up at once per worker */
#define WL_CLOSE_WAIT_MS 2000

typedef enum {
  WL_C_NEW, WL_C_CONNECTING, WL_C_HANDSHAKE, WL_C_SUBSCRIBING, WL_C_OPEN, WL_C_CLOSING, WL_C_DEAD
} wl_cstate_t;

typedef enum { WL_P_CONNECT, WL_P_WAIT_GO, WL_P_RUN, WL_P_DRAIN, WL_P_CLOSING } wl_phase_t;

typedef struct wl_inflight {
  uint64_t sent_us; /* monotonic; 0 = slot free */
  uint32_t topic;
  uint32_t warm;
} wl_inflight_t;

/* One client connection. Invariants: handle_open while tcp is initialised and not yet
 * closed; settled once it is open (and subscribed when it subscribes) or has failed. */
typedef struct wl_conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  struct wl_worker *w; /* borrowed */
  uint32_t gindex;     /* global connection number */
  uint32_t topic;
  wl_cstate_t state;
  bool handle_open, settled, opened, saw_close, sub_ok;
  uint64_t deadline_us; /* monotonic: give up connecting / subscribing */
  char key[WSF_KEY_LEN + 1];
  char *hs; /* owned: upgrade answer so far */
  size_t hs_len, hs_cap;
  wsf_reader_t rd;
  wl_seq_t seq;
  wl_inflight_t *ring; /* owned, publishers only */
  uint64_t next_ref, inflight;
  uint8_t *out; /* owned: frames batched this tick */
  size_t out_len, out_cap;
} wl_conn_t;

typedef struct wl_worker {
  const wl_opts_t *o;
  const wl_worker_spec_t *spec;
  uv_loop_t loop;
  uv_timer_t tick, sweep, phase_timer, deadline;
  uv_pipe_t ctl;
  wl_conn_t *conns; /* owned, n */
  uint32_t n, started, settled;
  uint32_t open_handles;
  wl_phase_t phase;
  bool ctl_open;
  uint64_t t_connect_us, go_us, drain_us, last_ev_us;
  uint64_t rx_realtime_us; /* CLOCK_REALTIME when the current read returned; 0 = not read yet */
  uint64_t pub_count, pub_rr, sweep_count;
  uint64_t rng;
  char *pad; /* owned: payload padding */
  size_t pad_len, prefix_len; /* strlen of pad and of the options' topic_prefix */
  uint64_t realtime_offset_us; /* CLOCK_REALTIME minus CLOCK_MONOTONIC at this tick */
  wl_result_t res;
  char rbuf[65536]; /* every connection's reads land here, one at a time */
  char ctlbuf[64];
  struct sockaddr_storage dst;
} wl_worker_t;

/* wsload_worker.c */
uint64_t wl_rand(wl_worker_t *w);
void wl_mask_make(wl_worker_t *w, uint8_t mask[4]);
/* Sends every connection a close frame and ends the worker's loop once all are closed. */
void wl_worker_begin_close(wl_worker_t *w);
/* Closes the worker's own handles (timers, control pipe): the last step of the loop. */
void wl_worker_close_handles(wl_worker_t *w);

/* wsload_conn.c */
/* Starts connecting c (TCP, then the upgrade; subscribers then subscribe). */
void wl_conn_start(wl_conn_t *c);
/* Queues bytes on c (copied); close_after closes c once they are written. */
void wl_send_raw(wl_conn_t *c, const void *data, size_t len, bool close_after);
/* Sends one masked frame. */
void wl_send_frame(wl_conn_t *c, uint8_t opcode, const void *payload, size_t len,
                   bool close_after);
void wl_send_text(wl_conn_t *c, const char *text);
/* c is open (and subscribed when it subscribes) or has failed: counts it once. */
void wl_settle(wl_conn_t *c);
void wl_conn_close(wl_conn_t *c);
/* c failed before it opened: counts reason once, settles and closes it. */
void wl_conn_fail(wl_conn_t *c, uint64_t *reason);
/* The server ended an open connection (close frame code, or 0 for no close frame). */
void wl_conn_lost(wl_conn_t *c, int code);

/* wsload_msg.c */
/* The wsf_message_cb of every connection (ud is the wl_conn_t). */
int wl_on_message(void *ud, uint8_t opcode, const uint8_t *payload, size_t len);

#endif
