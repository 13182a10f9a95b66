/* The WebSocket endpoint /v1/ws: transport for one message protocol behind a small
 * session interface.
 *
 * The transport (ws.c) owns framing concerns: reassembly of fragmented messages up to
 * limits.max_ws_message (close 1009 beyond), UTF-8 validation of text messages (close
 * 1007), an outbound queue written only when the socket is writable with LWS_PRE headroom
 * and a byte budget per writable turn, idle and close handling, drain. A session (ops
 * below; the issue-2 one is ws_basic.c, the streams protocol replaces it) sees complete
 * messages and decides what to answer.
 *
 * Two ways to send: coord_ws_send() copies a frame into the connection's queue (replies,
 * errors); inside on_writable a session may also write frames it owns with
 * coord_ws_write() without a copy, e.g. shared, refcounted event frames: each must have
 * COORD_WS_PRE writable bytes before the payload (lws writes the frame header there; the
 * bytes are the same for every connection, so a shared buffer stays correct).
 * coord_ws_write_frames() sends several complete frames with one send() (headers built
 * here, payloads copied into one buffer): at fanout scale the cost is system calls, not
 * bytes. It relies on what lws 4.1.6 does with LWS_WRITE_RAW on a WebSocket (server
 * frames are unmasked and no extension is negotiated): the bytes go to lws_issue_raw()
 * unchanged; an unsent remainder is kept in lws's buflist_out, which is flushed before
 * lws writes anything else on the connection (its own pings and close included) and before
 * the next WRITEABLE callback, so frames never interleave. See docs/operations.md
 * ("WebSocket write coalescing").
 * With websocket.own_transport 1 (the default) the daemon carries established WebSockets
 * itself (wso.c): the same interface and behaviour, frames written by coord_wsf_header()
 * and send().
 * Loop thread only. The conn pointer is valid from on_open until on_close returns. */
#ifndef COORD_WS_H
#define COORD_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct coord_ws coord_ws_t;
typedef struct coord_ws_conn coord_ws_conn_t;
/* An upgrade request being decided (only inside on_upgrade). */
typedef struct coord_ws_upgrade coord_ws_upgrade_t;

/* One outgoing message for coord_ws_write_frames(). */
typedef struct coord_ws_out {
  unsigned char *payload; /* COORD_WS_PRE writable bytes precede it */
  size_t len;             /* bytes */
  bool binary;
} coord_ws_out_t;

/* Headroom a zero-copy frame needs before its payload (LWS_PRE of the lws build). */
#define COORD_WS_PRE 16

/* Close codes the transport uses (RFC 6455 section 7.4.1). */
enum {
  COORD_WS_CLOSE_NORMAL = 1000,
  COORD_WS_CLOSE_GOING_AWAY = 1001,
  COORD_WS_CLOSE_PROTOCOL = 1002,
  COORD_WS_CLOSE_UNSUPPORTED = 1003,
  COORD_WS_CLOSE_INVALID_DATA = 1007,
  COORD_WS_CLOSE_POLICY = 1008,
  COORD_WS_CLOSE_TOO_BIG = 1009,
  COORD_WS_CLOSE_INTERNAL = 1011,
};

typedef struct coord_ws_session_ops {
  /* Before the upgrade is accepted (may be NULL): return 0 to accept, or an HTTP status
   * (401, 403, ...) to refuse it with reason as the message. Headers and query are readable
   * with coord_ws_upgrade_header/query. */
  int (*on_upgrade)(const coord_ws_upgrade_t *u, void *ud, char *reason, size_t reason_len);
  /* After the upgrade. Request headers and query are readable (coord_ws_conn_header/query)
   * only during this call. Store per-connection state in *session. Return 0, or a negative
   * errno after calling coord_ws_close() to refuse (e.g. 1008 "unauthorized"). */
  int (*on_open)(coord_ws_conn_t *c, void *ud, void **session);
  /* One complete message; text is valid UTF-8. data is only valid during the call. */
  void (*on_message)(coord_ws_conn_t *c, void *session, const char *data, size_t len,
                     bool binary);
  /* Socket writable and the copy queue empty: write up to about budget bytes with
   * coord_ws_write(); return true if more is waiting (the transport asks again). May be NULL. */
  bool (*on_writable)(coord_ws_conn_t *c, void *session, size_t budget);
  /* Graceful shutdown began: a chance to queue a last message (the close 1001 follows
   * after shutdown.drain_ms). May be NULL. */
  void (*on_drain)(coord_ws_conn_t *c, void *session);
  /* The connection is gone (any reason); free the session. Never calls back afterwards. */
  void (*on_close)(coord_ws_conn_t *c, void *session);
} coord_ws_session_ops_t;

/* Installs the session implementation used for new connections (existing ones keep theirs).
 * ops is borrowed and must outlive the daemon; ud is passed to on_open. */
void coord_ws_set_session(coord_ws_t *ws, const coord_ws_session_ops_t *ops, void *ud);

/* Queues one message (copied). Above 256 KiB queued the transport stops reading from the
 * client until the queue is below 64 KiB (so a client that does not read its replies is
 * slowed down, not buffered for). Returns 0, -EPIPE when closing, or -ENOBUFS when the
 * queue already holds more than 1 MiB (the connection is then closed with 1008). */
int coord_ws_send(coord_ws_conn_t *c, const void *data, size_t len, bool binary)
    __attribute__((warn_unused_result));
/* Only inside on_writable: writes payload (COORD_WS_PRE bytes of headroom before it) now.
 * Returns 0, or -EPIPE when the connection failed. Check coord_ws_choked() afterwards. */
int coord_ws_write(coord_ws_conn_t *c, unsigned char *payload, size_t len, bool binary)
    __attribute__((warn_unused_result));
/* Only inside on_writable: sends n complete messages with one write (n >= 1). The total
 * should stay within the budget given to on_writable; a remainder the kernel does not take
 * is buffered by lws and goes out before anything else. Returns 0 or -EPIPE. */
int coord_ws_write_frames(coord_ws_conn_t *c, const coord_ws_out_t *frames, size_t n)
    __attribute__((warn_unused_result));
/* Frames the transport coalesces into one write at most (limits.ws_frames_per_write). */
size_t coord_ws_frames_per_write(const coord_ws_conn_t *c);
/* True when the kernel buffer is full: stop writing until the next on_writable. */
bool coord_ws_choked(const coord_ws_conn_t *c);
/* Asks for on_writable to be called soon (new data became available for this session). */
void coord_ws_wake(coord_ws_conn_t *c);
/* Like coord_ws_wake, but calls on_writable right now when nothing of an earlier write is
 * still buffered (the socket took it all, so it very likely takes more): one send() and no
 * poll round trip. When a budget is not enough and the socket took it whole, on_writable
 * follows in the next loop turn (the again run, before the poll); otherwise (a remainder
 * the socket did not take) when the socket is writable. Never call it from inside a
 * session callback of the same connection (on_message, on_writable); the streams session
 * calls it from the hub's wake phase. */
void coord_ws_flush(coord_ws_conn_t *c);
/* The session stops (true) or resumes (false) reading the client's messages, e.g. while
 * its replies pile up; independent of the transport's own copy-queue backpressure. */
void coord_ws_pause_reading(coord_ws_conn_t *c, bool paused);
/* True once a close was started (by either side) or the connection is gone. */
bool coord_ws_closing(const coord_ws_conn_t *c);
/* Whether the client asked for the coord-bulk subprotocol (a declared bulk publisher). */
bool coord_ws_bulk(const coord_ws_conn_t *c);
/* Sends a close frame with code and reason (at most 123 bytes) after what is queued, then
 * hangs up. Idempotent: the first code wins. */
void coord_ws_close(coord_ws_conn_t *c, uint16_t code, const char *reason);

/* During on_upgrade only: request header (case-insensitive) / query argument into buf;
 * returns the length or -1 when absent. */
int coord_ws_upgrade_header(const coord_ws_upgrade_t *u, const char *name, char *buf, size_t len);
int coord_ws_upgrade_query(const coord_ws_upgrade_t *u, const char *name, char *buf, size_t len);

/* During on_open only: request header (case-insensitive) / query argument into buf;
 * returns the length or -1 when absent. */
int coord_ws_conn_header(const coord_ws_conn_t *c, const char *name, char *buf, size_t len);
int coord_ws_conn_query(const coord_ws_conn_t *c, const char *name, char *buf, size_t len);
/* Copies the peer address as text ("127.0.0.1") into buf; "" when unknown. */
void coord_ws_conn_peer(const coord_ws_conn_t *c, char *buf, size_t len);

/* Calls fn for every open connection (for drain notices and broadcasts by the owner). */
void coord_ws_foreach(coord_ws_t *ws, void (*fn)(coord_ws_conn_t *c, void *session, void *ud),
                      void *ud);
size_t coord_ws_count(const coord_ws_t *ws);

/* The issue-2 session: {"op":"ping","ref":R} -> {"op":"pong","ref":R}; anything else gets
 * {"op":"error","code":"bad_request","message":...}; at drain start it sends
 * {"op":"drain","retry_ms":250..1249,"positions":{}}. */
extern const coord_ws_session_ops_t coord_ws_basic_session;

#endif
