/* WebSocket framing (RFC 6455, sections 4.2.2, 5 and 7.4) with no I/O: the frame header
 * of the server's frames, an incremental parser of the client's frames, the close
 * payload's rules and the handshake's accept key.
 *
 * The transport (ws.c) builds its coalesced writes with coord_wsf_header(). The parser,
 * the close rules and the accept key serve the daemon's own WebSocket transport (wso.c,
 * websocket.own_transport), which reads and writes established WebSockets itself instead
 * of through libwebsockets, whose own state is about 1,400 bytes per connection
 * (docs/libwebsockets.md, "Owning established WebSockets: the plan").
 *
 * The parser is strict where RFC 6455 says a server must fail the connection (close 1002):
 * a client frame that is not masked, reserved bits set (no extension is negotiated), an
 * unknown opcode, a control frame that is fragmented or longer than 125 bytes, a
 * continuation with no message open, a new message while one is open, a 64-bit length
 * with its top bit set. A message longer than the limit fails with 1009 as soon as a
 * frame header announces it, before its payload is read. Text is not validated here: the
 * sink gets the pieces (coord_utf8_feed() validates across them). */
#ifndef COORD_WSFRAME_H
#define COORD_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
  COORD_WSF_CONTINUATION = 0x0,
  COORD_WSF_TEXT = 0x1,
  COORD_WSF_BINARY = 0x2,
  COORD_WSF_CLOSE = 0x8,
  COORD_WSF_PING = 0x9,
  COORD_WSF_PONG = 0xA,
};

#define COORD_WSF_HEADER_MAX 10  /* bytes of a server (unmasked) frame header */
#define COORD_WSF_CONTROL_MAX 125 /* payload bytes of a control frame */
#define COORD_WSF_ACCEPT_LEN 28  /* characters of Sec-WebSocket-Accept */

/* Writes the header of an unmasked frame (server to client) into p, which has
 * COORD_WSF_HEADER_MAX bytes; returns its length (2, 4 or 10). */
size_t coord_wsf_header(unsigned char *p, unsigned opcode, bool fin, uint64_t len);

/* What the parser found. Either callback may return nonzero to stop parsing right after
 * that piece (the connection is closing, or its reading paused): coord_wsf_parse() then
 * returns that value and says how many bytes it used. A sink's value must lie outside
 * 1000..4999 (1 or a negative errno, say), so that it cannot be taken for a close code. */
typedef struct coord_wsf_sink {
  /* A piece of a data message's payload, unmasked (it points into the caller's buffer).
   * first is set on the message's first piece, last on its final one, which may be empty
   * (an empty message is one call with n 0, first and last). */
  int (*data)(void *ud, bool binary, const unsigned char *p, size_t n, bool first, bool last);
  /* A whole control frame (close, ping or pong), payload unmasked, n <= 125. */
  int (*control)(void *ud, unsigned opcode, const unsigned char *p, size_t n);
} coord_wsf_sink_t;

/* Invariants: in_payload is set while `left` payload bytes of the current frame are still
 * to come; msg_opcode is TEXT or BINARY from a data message's first header until its last
 * piece went to the sink (across its fragments), else 0; ctl is NULL except while a
 * control frame's payload arrives over several calls. 64 bytes on x86-64. */
typedef struct coord_wsf_parser {
  uint64_t left;     /* payload bytes of the current frame still to come */
  uint64_t msg_len;  /* payload bytes of the open data message so far */
  uint64_t max_message; /* bytes a data message may have (1009 beyond); 0 = no limit */
  unsigned char *ctl; /* owned: a control frame's payload split across calls */
  unsigned char hdr[14]; /* a frame header split across calls */
  unsigned char mask[4];
  uint8_t hdr_len;
  uint8_t mask_pos;   /* offset into mask of the next payload byte */
  uint8_t opcode;     /* of the current frame */
  uint8_t msg_opcode; /* of the open data message */
  uint8_t ctl_len;    /* bytes in ctl */
  bool in_payload;
  bool fin;           /* of the current frame */
  bool msg_started;   /* the open message's first piece went to the sink */
} coord_wsf_parser_t;

/* max_message 0 means no limit, which only tests and fuzzing should use: a transport
 * passes limits.max_ws_message, so that a hostile length is refused at its header. */
void coord_wsf_parser_init(coord_wsf_parser_t *p, uint64_t max_message);
/* Frees what the parser holds; it may be initialised again. */
void coord_wsf_parser_close(coord_wsf_parser_t *p);

/* Parses n bytes of buf (unmasking payload in place) and calls the sink. Sets *used to the
 * bytes consumed and returns 0 when all n were, a close code (1002 protocol error, 1009 too
 * big) when the client broke the protocol (stop reading it and close with that code), or
 * the sink's nonzero return (bytes after *used are not consumed; call again with them). */
int coord_wsf_parse(coord_wsf_parser_t *p, unsigned char *buf, size_t n,
                    const coord_wsf_sink_t *sink, void *ud, size_t *used)
    __attribute__((warn_unused_result));

/* Checks a close frame's payload (RFC 6455 5.5.1, 7.4): empty (no code), or a code a peer
 * may send followed by a UTF-8 reason. Returns 0 with *code (1005 when empty) and the
 * reason's bytes, 1002 for a 1-byte payload or a code a peer must not send, or 1007 for a
 * reason that is not UTF-8. */
int coord_wsf_close_parse(const unsigned char *p, size_t n, uint16_t *code, const char **reason,
                          size_t *reason_len) __attribute__((warn_unused_result));

/* Sec-WebSocket-Accept for the client's Sec-WebSocket-Key (RFC 6455 4.2.2): out gets 28
 * characters and a NUL. Returns 0, or -EINVAL when key is not the canonical base64 form of
 * 16 bytes (leading and trailing spaces and tabs are ignored). */
int coord_wsf_accept(const char *key, size_t len, char out[COORD_WSF_ACCEPT_LEN + 1])
    __attribute__((warn_unused_result));

#endif
