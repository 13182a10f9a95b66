/* The HTTP request head of a WebSocket upgrade, read by the daemon itself (wso.c, step 2
 * of docs/libwebsockets.md, "Owning established WebSockets: the plan"): a parser of a
 * request head, header and query lookups as the upgrade's authentication reads them, the
 * RFC 6455 4.2.1 checks of an opening handshake, and the 101 answer. No I/O.
 *
 * The parser is deliberately narrow. It says "not mine" (COORD_WSH_OTHER) for anything
 * that is not a plain HTTP/1.1 head with CRLF line ends, token header names and at most
 * COORD_WSH_HEADERS_MAX headers: the listener then hands the connection to libwebsockets
 * untouched, which answers it as it answers every request (400 for junk). */
#ifndef COORD_WSHEAD_H
#define COORD_WSHEAD_H

#include <stdbool.h>
#include <stddef.h>

#define COORD_WSH_MAX 8192       /* bytes of a request head the daemon reads itself */
#define COORD_WSH_HEADERS_MAX 48 /* header lines */

typedef struct coord_wsh_field {
  const char *name, *value; /* borrowed from the head; not NUL-terminated */
  size_t name_len, value_len; /* value without surrounding spaces and tabs */
} coord_wsh_field_t;

/* A parsed head. Every pointer is into the buffer given to coord_wsh_parse(), which must
 * outlive it. */
typedef struct coord_wsh_head {
  const char *method, *path, *query; /* query: after '?', without the fragment; may be empty */
  size_t method_len, path_len, query_len;
  coord_wsh_field_t fields[COORD_WSH_HEADERS_MAX];
  size_t nfields;
} coord_wsh_head_t;

enum {
  COORD_WSH_MORE = 0,  /* no complete head yet: read more (up to COORD_WSH_MAX bytes) */
  COORD_WSH_HEAD = 1,  /* *h holds the head, *head_len its bytes (blank line included) */
  COORD_WSH_OTHER = -1 /* not a head this parser takes: leave it to libwebsockets */
};

/* Parses the first n bytes a client sent. */
int coord_wsh_parse(const char *buf, size_t n, coord_wsh_head_t *h, size_t *head_len)
    __attribute__((warn_unused_result));

/* Copies header name's value (case-insensitive name; several lines of the same name joined
 * with ", ") into out, NUL-terminated. Returns its length, or -1 when absent or when it
 * does not fit in len bytes. */
int coord_wsh_header(const coord_wsh_head_t *h, const char *name, char *out, size_t len)
    __attribute__((warn_unused_result));

/* Copies query argument name's value, %XX decoded ('+' stays '+'), NUL-terminated.
 * Returns its length, or -1 when absent, badly encoded, holding a NUL, or too long. */
int coord_wsh_query(const coord_wsh_head_t *h, const char *name, char *out, size_t len)
    __attribute__((warn_unused_result));

/* Whether the head has a header line of that name (case-insensitive). */
bool coord_wsh_has_header(const coord_wsh_head_t *h, const char *name);

/* Whether header name's comma-separated list holds token (case-insensitive). */
bool coord_wsh_has_token(const coord_wsh_head_t *h, const char *name, const char *token);

/* Whether this head asks for a WebSocket on path: GET, exactly that path, "Upgrade:
 * websocket" and "Connection: upgrade". */
bool coord_wsh_is_upgrade(const coord_wsh_head_t *h, const char *path);

/* The rest of RFC 6455 4.2.1 for an upgrade: a valid Sec-WebSocket-Key (accept gets
 * Sec-WebSocket-Accept) and Sec-WebSocket-Version 13. Returns 0, 400 (with why naming the
 * header) or 426 (a version other than 13: answer with "Sec-WebSocket-Version: 13"). */
int coord_wsh_check_upgrade(const coord_wsh_head_t *h, char accept[29], const char **why)
    __attribute__((warn_unused_result));

/* Writes the 101 answer into out (cap bytes); protocol NULL leaves the subprotocol out.
 * Returns its length, or -1 when it does not fit. */
int coord_wsh_answer_101(char *out, size_t cap, const char *accept, const char *protocol)
    __attribute__((warn_unused_result));

#endif
