/* The HTTP side of the daemon: a router of (method, path pattern) -> handler on top of
 * libwebsockets, with request bodies collected up to a limit, JSON responses, responses
 * given later (after a durable commit, say), and streamed responses (SSE).
 *
 * Handlers run on the loop thread. Each request (coord_http_req_t) is answered exactly
 * once, by one of coord_http_respond*(), coord_http_stream_begin() (then _write, _end), or
 * coord_http_serve_file(); a handler that cannot answer yet calls coord_http_defer() and
 * answers later from any loop callback. If the client goes away before the answer is given
 * (or before a stream is ended), the abort callback given to coord_http_defer() /
 * coord_http_stream_begin() runs and the request is freed right after it returns: the
 * handler must drop its pointer then. Answering or ending a stream also lets go of req.
 * Nothing here blocks.
 *
 * Paths are as libwebsockets delivers them: %-decoded, with "//", "/./" and "/../"
 * collapsed. Patterns are those of route.h. This header does not include libwebsockets.h. */
#ifndef COORD_HTTP_H
#define COORD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct coord_http coord_http_t;
typedef struct coord_http_req coord_http_req_t;

enum {
  COORD_HTTP_GET = 1 << 0,
  COORD_HTTP_POST = 1 << 1,
  COORD_HTTP_PUT = 1 << 2,
  COORD_HTTP_DELETE = 1 << 3,
  COORD_HTTP_PATCH = 1 << 4,
  COORD_HTTP_OPTIONS = 1 << 5,
  COORD_HTTP_HEAD = 1 << 6,
};

typedef void (*coord_http_handler_fn)(coord_http_req_t *req, void *ud);
/* The client disconnected before the answer was complete; req is freed after this. */
typedef void (*coord_http_abort_fn)(coord_http_req_t *req, void *ud);
/* A streamed response can take more: write with coord_http_stream_write(), at most about
 * budget bytes; return true to be called again when the socket is writable. */
typedef bool (*coord_http_pull_fn)(coord_http_req_t *req, void *ud, size_t budget);

/* Registers a route. methods is a mask of COORD_HTTP_*; pattern as in route.h; metric_route
 * labels its requests in coord_http_requests_total (NULL = pattern). Routes are tried in
 * registration order; the first whose pattern matches wins, and a match with the wrong
 * method gives 405. HEAD requests go to GET routes and get the headers only (the handler
 * answers as for GET; coord_http_req_method() says HEAD). Returns 0 or -EINVAL for a
 * malformed pattern. */
int coord_http_route(coord_http_t *h, unsigned methods, const char *pattern,
                     const char *metric_route, coord_http_handler_fn fn, void *ud)
    __attribute__((warn_unused_result));

/* Handles requests no route matches (for methods in the mask; others get 404): the static
 * file server uses it for the web UI. metric_route labels them in metrics. */
void coord_http_set_fallback(coord_http_t *h, unsigned methods, const char *metric_route,
                             coord_http_handler_fn fn, void *ud);

/* --- the request (valid until answered, or until its abort callback returns) --- */
unsigned coord_http_req_method(const coord_http_req_t *req);
const char *coord_http_req_path(const coord_http_req_t *req);
/* A capture of the route pattern by name; NULL when absent. Owned by req, NUL-terminated. */
const char *coord_http_req_param(const coord_http_req_t *req, const char *name);
/* Copies the value of query argument name (decoded) into buf; returns its length, or -1
 * when absent. Values longer than len - 1 are truncated. */
int coord_http_req_query(const coord_http_req_t *req, const char *name, char *buf, size_t len);
/* Copies request header name (case-insensitive) into buf; returns its length or -1. Works
 * until the response starts (the header table is released then). */
int coord_http_req_header(const coord_http_req_t *req, const char *name, char *buf, size_t len);
/* The collected body (NUL-terminated for convenience; may contain NULs). */
const char *coord_http_req_body(const coord_http_req_t *req, size_t *len);
/* Peer address as text ("127.0.0.1"); "" when unknown. */
const char *coord_http_req_peer(const coord_http_req_t *req);

/* --- answering --- */
/* Adds a response header (before the answer starts). name without ':'. */
void coord_http_add_header(coord_http_req_t *req, const char *name, const char *value);
/* Sends status with body[len] (copied). content_type may be NULL when len is 0. */
void coord_http_respond(coord_http_req_t *req, int status, const char *content_type,
                        const void *body, size_t len);
/* Sends status with the compact JSON of body, which this call takes (decref'd). */
void coord_http_respond_json_take(coord_http_req_t *req, int status, json_t *body);
/* Sends status with {"error": {"code": code, "message": message}}. */
void coord_http_respond_error(coord_http_req_t *req, int status, const char *code,
                              const char *message);
/* Serves a file from disk (already resolved and checked by the caller) with content_type;
 * a missing file gives 404. */
void coord_http_serve_file(coord_http_req_t *req, const char *fs_path, const char *content_type);
/* The handler answers later; on_abort (may be NULL) runs if the client leaves first. */
void coord_http_defer(coord_http_req_t *req, coord_http_abort_fn on_abort, void *ud);

/* Starts a streamed response without Content-Length (the connection closes at the end).
 * pull is called whenever the socket can take more and the queued data is written; it may
 * be NULL when the producer pushes with coord_http_stream_write() instead. */
void coord_http_stream_begin(coord_http_req_t *req, int status, const char *content_type,
                             coord_http_pull_fn pull, coord_http_abort_fn on_abort, void *ud);
/* Queues data (copied); returns 0, or -EPIPE when the client is gone or the stream ended. */
int coord_http_stream_write(coord_http_req_t *req, const void *data, size_t len)
    __attribute__((warn_unused_result));
/* Bytes queued and not yet written (for backpressure decisions). */
size_t coord_http_stream_pending(const coord_http_req_t *req);
/* Asks for pull to be called again (after new data became available). */
void coord_http_stream_wake(coord_http_req_t *req);
/* Ends the stream after what is queued has been written. The caller lets go of req here:
 * it is freed once written, and the abort callback no longer runs. */
void coord_http_stream_end(coord_http_req_t *req);
/* Bytes of the stream handed to the socket so far: what a reader took moves it. */
uint64_t coord_http_stream_sent(const coord_http_req_t *req);
/* Whether anything written is still waiting for the socket (queued here or in lws). */
bool coord_http_stream_backlog(const coord_http_req_t *req);
/* Ends the stream now, dropping what is queued, and closes the connection (within a
 * second). The caller lets go of req here, as with coord_http_stream_end(). */
void coord_http_stream_abort(coord_http_req_t *req);

#endif
